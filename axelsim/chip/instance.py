"""One instance's share of a decode step through the macro cycle model (burst mode).

A share is one (sequence, layer, KV head, token range): its keys and values are resident
(preloaded), the query heads of its GQA group are served against the whole range. The
instance that holds the newest token first writes that token's key and value. Everything is
measured by the cycle model:
- service: `hw.macro.simulate(..., prefill='preloaded')` of a one-layer, one-KV-head trace of
  the share, one query at its last position (all keys of the range);
- the new token's write: the same one-token trace replayed with its write timed
  (prefill='simulate') minus the preloaded replay: the extra cycles and the extra actions,
  exact because both replays are deterministic and identical but for the write;
- prefill of the share (its tokens written): the share replayed with every write timed, minus
  the service replay (once per range length: see `ShareRunner._prefill`).

`ShareRunner` simulates each distinct share once. Two shares are the same simulation only when
their macro kind, configuration, layer sign vector and data are identical (a digest of the
bytes): the replay is a deterministic function of exactly these, so replicating the result is
exact (tests/test_chip.py checks it against simulating every share).
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass
from typing import Optional

import numpy as np

from axelsim.config import LoadedMacro
from axelsim.trace.format import Trace


@dataclass(frozen=True)
class ShareData:
    """Keys, values [n, d] of a token range, the group's queries [G, d], the layer's index."""

    layer: int
    k: np.ndarray
    v: Optional[np.ndarray]
    q: np.ndarray
    dtype: str = "float16"
    origin: Optional[tuple] = None
    """Where the vectors come from, when that fixes them (the synthetic slice: its token range):
    equal origins are equal data, so the digest need not read the bytes."""

    def digest(self) -> str:
        if self.origin is not None:
            return "origin:" + repr((self.layer, self.origin, self.k.shape, self.q.shape, self.v is None, self.dtype))
        h = hashlib.blake2b(digest_size=16)
        h.update(np.int64(self.layer).tobytes())
        for arr in (self.k, self.v, self.q):
            if arr is not None:
                h.update(np.ascontiguousarray(arr).tobytes())
                h.update(str(arr.shape).encode())
        h.update(self.dtype.encode())
        return h.hexdigest()


@dataclass
class ShareResult:
    """What one share costs and computes (cycles at the macro clock; actions unit -> action -> count)."""

    service_cycles: int
    service_actions: dict
    write_cycles: int
    write_actions: dict
    prefill_cycles: int
    prefill_actions: dict
    scores: np.ndarray
    """[G, n] raw scores of the range."""
    outputs: Optional[np.ndarray]
    """[G, d] the instance's output over its range (normalised by its own sum)."""


def _trace(data: ShareData, k: np.ndarray, v: Optional[np.ndarray]) -> Trace:
    L = data.layer
    return Trace.from_arrays({L: k[None]}, None if v is None else {L: v[None]}, {L: data.q[:, None, :]},
                             [k.shape[0] - 1], source=f"chip share of layer {L}", dtype=data.dtype,
                             extra_meta={"model_layers": str(L + 1)})


def _minus(a: dict, b: dict) -> dict:
    out = {}
    for unit in set(a) | set(b):
        diff = Counter(a.get(unit, {}))
        diff.subtract(b.get(unit, {}))
        kept = {action: int(n) for action, n in diff.items() if n}
        if kept:
            out[unit] = kept
    return out


class ShareRunner:
    """Simulates shares on one macro kind ('axelram' or a baseline kind), each distinct one once."""

    def __init__(self, loaded: LoadedMacro, signs, kind: str = "axelram", replicate: bool = True):
        self.loaded, self.signs, self.kind, self.replicate = loaded, signs, kind, replicate
        self._done: dict[tuple, ShareResult] = {}
        self._prefills: dict[tuple, tuple[int, dict]] = {}
        self.simulated = 0
        self.requested = 0
        from axelsim.cost import CostModel

        cost = CostModel.from_macro(loaded) if kind == "axelram" else CostModel.for_baseline(kind, loaded)
        self.timing = cost.timing(spills=loaded.config.sram.overflow == "spill", source=str(loaded.path))
        """The row store's timing derived from the technology table (as `axelsim run` uses it)."""

    def _simulate(self, trace: Trace, prefill: str):
        config = self.loaded.config
        if self.kind == "axelram":
            from axelsim.hw.macro import simulate

            return simulate(config, self.signs, trace, fidelity="burst", prefill=prefill, source=str(self.loaded.path),
                            timing=self.timing)
        from axelsim.hw.baselines import simulate_baseline

        return simulate_baseline(self.kind, config, trace, self.signs, fidelity="burst", prefill=prefill,
                                 source=str(self.loaded.path), timing=self.timing)

    def _prefill(self, data: ShareData, trace: Trace, served) -> tuple[int, dict]:
        """Cycles and actions of writing the whole range (timed writes minus the preloaded replay).

        The write path's timing and counts do not depend on the vectors' values (fixed stage
        intervals, token-interleaved banks; tests/test_chip.py checks two data sets), so this is
        simulated once per range length and layer count, not once per share.
        """
        key = (data.k.shape, data.v is None, data.q.shape)
        if key not in self._prefills:
            timed = self._simulate(trace, "simulate")
            self._prefills[key] = (int(timed.cycles["total"] - served.cycles["total"]), _minus(timed.actions, served.actions))
        return self._prefills[key]

    def run(self, data: ShareData, writer: bool, prefill: bool = True) -> ShareResult:
        """The share's service (and, for the newest range, the new token's write; its prefill)."""
        self.requested += 1
        key = (data.digest(), writer, prefill)
        if self.replicate and key in self._done:
            return self._done[key]
        self.simulated += 1
        trace = _trace(data, data.k, data.v)
        served = self._simulate(trace, "preloaded")
        L = data.layer
        write_cycles, write_actions = 0, {}
        if writer:
            last = _trace(data, data.k[-1:], None if data.v is None else data.v[-1:])
            timed, untimed = self._simulate(last, "simulate"), self._simulate(last, "preloaded")
            write_cycles = int(timed.cycles["total"] - untimed.cycles["total"])
            write_actions = _minus(timed.actions, untimed.actions)
        prefill_cycles, prefill_actions = self._prefill(data, trace, served) if prefill else (0, {})
        outputs = served.outputs.get(L) if served.outputs else None
        result = ShareResult(
            service_cycles=int(served.cycles["total"]), service_actions=served.actions,
            write_cycles=write_cycles, write_actions=write_actions,
            prefill_cycles=prefill_cycles, prefill_actions=prefill_actions,
            scores=served.scores[L][:, 0, :], outputs=None if outputs is None else outputs[:, 0, :])
        if self.replicate:
            self._done[key] = result
        return result
