"""The chip's merge unit: combines the partial softmax outputs of a token_split KV head.

Arithmetic (docs/architecture.md, "Merging a split softmax"), in the macro's softmax format S
and value format V, built on the cycle model's own arithmetic (axelsim.hw.arith); the golden
model's independent implementation is axelsim/numerics/merge.py. Operations are counted as
they execute (one count per element operation performed), by kind and format.

Timing (cycles, one merge of S partials of one query head, units not pipelined across heads):
  S (max, one comparator) + S + exp latency (exps, one exp unit, II 1; the instances' derived exp
  stage, `SramTiming.exp_latency_cycles`: 16 cycles at 1 GHz, 45 nm) + S (weights, one S
  multiplier) + S (sum) + S * ceil(d / lanes) (weighted accumulate, `lanes` V multiply-add lanes)
  + DIV_LATENCY + ceil(d / lanes) (1 / W and the output scaling).
"""

from __future__ import annotations

from collections import Counter

import numba
import numpy as np

from axelsim.config.formats import NumberFormat
from axelsim.hw import arith, kernels
from axelsim.hw.value_unit import DIV_LATENCY, Softmax


@numba.njit(cache=True, nogil=True)
def _running_sums(e, code):
    """E = rnd_S(E + e_t) in key order, per head; e [heads, n]."""
    heads, n = e.shape
    out = np.zeros(heads)
    for a in range(heads):
        total = 0.0
        for t in range(n):
            total = kernels.rnd(total + e[a, t], code)
        out[a] = total
    return out


def instance_stats(scores: np.ndarray, dim: int, score_fmt: NumberFormat, softmax: NumberFormat
                   ) -> tuple[np.ndarray, np.ndarray]:
    """(m, E) [heads] as an instance's value unit forms them over its range (scores [heads, n])."""
    unit = Softmax(softmax, dim)
    z = unit.scale(np.asarray(scores, dtype=np.float64), score_fmt)
    m = z.max(axis=1)
    e = unit.exps(z, m[:, None])
    return m, _running_sums(np.ascontiguousarray(e), kernels.fmt_code(softmax))


def merge_cycles(parts: int, dim: int, lanes: int, exp_cycles: int) -> int:
    """Cycles of one merge of `parts` partials with an exp stage of `exp_cycles` (module docstring)."""
    vector = -(-dim // lanes)
    return 4 * parts + exp_cycles + parts * vector + DIV_LATENCY + vector


class MergeUnit:
    """Merges partials and counts what it executes (`actions`: 'mul.fp32' -> count, ...)."""

    def __init__(self, softmax: NumberFormat, value: NumberFormat, lanes: int):
        self.s, self.v, self.lanes = softmax, value, lanes
        self.exp = arith.ExpUnit(softmax)
        self.actions: Counter = Counter()

    def _count(self, op: str, fmt: NumberFormat, n: int) -> None:
        self.actions[f"{op}.{fmt.name}"] += int(n)

    def merge(self, m: np.ndarray, e: np.ndarray, outputs: np.ndarray) -> np.ndarray:
        """m, e [heads, S]; outputs [heads, S, d] -> merged outputs [heads, d]."""
        s, v = self.s, self.v
        heads, parts, dim = outputs.shape
        top = m[:, 0]
        for i in range(1, parts):
            top = np.maximum(top, m[:, i])
            self._count("cmp", s, heads)
        w = []
        for i in range(parts):
            a = self.exp(arith.sub(s, m[:, i], top))
            w.append(arith.mul(s, a, s, e[:, i], s))
            self._count("add", s, heads)
            self._count("exp", s, heads)
            self._count("mul", s, heads)
        total = w[0]
        for i in range(1, parts):
            total = arith.add(s, total, w[i])
            self._count("add", s, heads)
        acc = arith.mul(v, w[0][:, None], s, outputs[:, 0], v)
        self._count("mul", v, heads * dim)
        for i in range(1, parts):
            acc = arith.add(v, acc, arith.mul(v, w[i][:, None], s, outputs[:, i], v))
            self._count("mul", v, heads * dim)
            self._count("add", v, heads * dim)
        gain = arith.div_one_by(v, total)
        self._count("div", v, heads)
        self._count("mul", v, heads * dim)
        return arith.mul(v, acc, v, gain[:, None], v)
