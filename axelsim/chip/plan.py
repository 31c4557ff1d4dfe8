"""Mapping a workload onto instances: shares, instance count, residency.

A share is one (layer, sequence, KV head, token range). head_parallel keeps each KV head's T
tokens in one range; token_split cuts them into S contiguous ranges (range s holds tokens
s*T//S .. (s+1)*T//S - 1, so the newest token is in range S - 1). Shares are listed layer by
layer (then sequence, KV head, range) and share j goes to instance j mod N, so one layer's
shares spread over distinct instances.

An instance holds C = rows / rows_per_token tokens (rows_per_token = 2: K and V) and so
k = floor(C / n_max) ranges. `instances: auto` is the fewest instances holding every share:
N = ceil(shares / k). With fewer, an instance given more than k shares pins the first k - 1
and streams the others, one at a time, through its last slot from off-chip memory every step
(a cyclic schedule over more data than fits re-fetches what it evicts).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from axelsim.chip.models import ModelShape
from axelsim.config import MacroConfig
from axelsim.config.chip import ChipConfig
from axelsim.errors import ConfigError


@dataclass(frozen=True)
class Share:
    index: int
    layer: int
    batch: int
    kv_head: int
    part: int
    lo: int
    hi: int
    instance: int
    streamed: bool

    @property
    def tokens(self) -> int:
        return self.hi - self.lo


@dataclass(frozen=True)
class Plan:
    shape: ModelShape
    context: int
    batch: int
    split: int
    capacity_tokens: int
    """Tokens one instance holds (K and V of each)."""
    shares_per_instance: int
    instances: int
    instances_needed: int
    shares: tuple[Share, ...]

    @property
    def used_instances(self) -> int:
        return len({share.instance for share in self.shares})

    def layer_groups(self, layer: int) -> dict[tuple[int, int], list[Share]]:
        """{(sequence, KV head): its shares in range order} of one layer."""
        groups: dict[tuple[int, int], list[Share]] = {}
        for share in self.shares:
            if share.layer == layer:
                groups.setdefault((share.batch, share.kv_head), []).append(share)
        return groups


def rows_per_token(macro: MacroConfig) -> int:
    return 2 if macro.value_path.enabled else 1


def capacity_tokens(macro: MacroConfig) -> int:
    """Tokens (K and V) one instance's index SRAM holds."""
    return macro.sram.banks * macro.sram.rows_per_bank // rows_per_token(macro)


def make_plan(chip: ChipConfig, macro: MacroConfig, shape: ModelShape, context: int, batch: int,
              source: str) -> Plan:
    """The shares and their instances; ConfigError when the mapping cannot hold a range."""
    if shape.head_dim != macro.head_dim:
        raise ConfigError(source, "macro.file", f"a macro with head_dim {shape.head_dim} (the model {shape.name}), "
                          f"got head_dim {macro.head_dim}")
    cap = capacity_tokens(macro)
    if chip.mapping.kind == "head_parallel":
        split = 1
    elif chip.mapping.split == "auto":
        split = max(1, math.ceil(context / cap))
    else:
        split = chip.mapping.split
    if split > context:
        raise ConfigError(source, "mapping.split", f"at most the context ({context} tokens), got {split}")
    longest = math.ceil(context / split)
    per_instance = cap // longest
    if per_instance == 0:
        hint = "use mapping.kind: token_split" if split == 1 else f"a split of at least {math.ceil(context / cap)}"
        raise ConfigError(source, "mapping", f"token ranges of at most {cap} tokens (one instance of "
                          f"{macro.name} holds {cap}); T = {context} in {split} range(s) needs {longest}: {hint}")
    count = shape.layers * batch * shape.kv_heads * split
    needed = math.ceil(count / per_instance)
    n = needed if chip.instances == "auto" else chip.instances
    held = [0] * n
    shares = []
    index = 0
    for layer in range(shape.layers):
        for b in range(batch):
            for head in range(shape.kv_heads):
                for part in range(split):
                    inst = index % n
                    held[inst] += 1
                    total = -(-(count - inst) // n)  # shares instance `inst` gets in all
                    pinned = total if total <= per_instance else per_instance - 1
                    shares.append(Share(index, layer, b, head, part, part * context // split,
                                        (part + 1) * context // split, inst, held[inst] > pinned))
                    index += 1
    return Plan(shape, context, batch, split, cap, per_instance, n, needed, tuple(shares))
