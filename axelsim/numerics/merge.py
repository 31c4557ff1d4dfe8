"""Golden model of the chip's split softmax (token_split): partial statistics and the merge.

A KV head's tokens are split into S contiguous ranges, one per macro instance. Instance i
serves the query against its range alone and returns its output o_i (normalised by its own
sum) with its softmax statistics (m_i, E_i). The merge (docs/architecture.md, "Merging a split
softmax") combines them, each binary operation one rounding in the format named:

  M   = max_i m_i                                           (S - 1 comparisons, S)
  a_i = exp_S(rnd_S(m_i - M))                               (S subtractions, S exps)
  w_i = rnd_S(a_i * E_i)                                    (S multiplications, S)
  W   = w_0, then W = rnd_S(W + w_i), i = 1..S-1            (S - 1 additions, S)
  acc = rnd_V(w_0 * o_0), then acc = rnd_V(acc + rnd_V(w_i * o_i))   (S d mul, (S-1) d add, V)
  g   = rnd_V(1 / W);  out = rnd_V(acc * g)                 (1 division, d multiplications, V)

This module is the golden side; axelsim/chip/merge.py is the merge unit's own implementation
(built on the cycle model's arithmetic) and `numerics.bit_exact` of `axelsim chip` compares them.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

from axelsim.config.formats import NumberFormat
from axelsim.numerics.fp import add_round, format_code, mul_round, rnd, round_to
from axelsim.numerics.golden import exp_constants
from axelsim.numerics.kernels import exp_unit


@nb.njit(cache=True, nogil=True)
def _stats_kernel(scores, sigma, sm, log2e, coeffs, m_out, e_out):
    """Per head a: z_t = rnd_S(score_t sigma), m = max z, E = sum in key order of exp_S(rnd_S(z - m))."""
    heads, n = scores.shape
    z = np.empty(n)
    for a in range(heads):
        m = -math.inf
        for t in range(n):
            z[t] = mul_round(scores[a, t], sigma, sm)
            if z[t] > m:
                m = z[t]
        total = 0.0
        for t in range(n):
            total = add_round(total, exp_unit(add_round(z[t], -m, sm), sm, log2e, coeffs), sm)
        m_out[a] = m
        e_out[a] = total


def partial_stats(scores: np.ndarray, dim: int, softmax: NumberFormat) -> tuple[np.ndarray, np.ndarray]:
    """(m, E) [heads] of one instance's scores [heads, n] (its range only), format S."""
    sc = np.ascontiguousarray(scores, dtype=np.float64)
    heads = sc.shape[0]
    m, e = np.empty(heads), np.empty(heads)
    log2e, coeffs = exp_constants(softmax)
    sigma = float(round_to(1.0 / math.sqrt(dim), softmax))
    _stats_kernel(sc, sigma, format_code(softmax), log2e, coeffs, m, e)
    return m, e


@nb.njit(cache=True, nogil=True)
def _merge_kernel(m, e, o, sm, val, log2e, coeffs, out):
    """m, e [heads, S]; o [heads, S, d]; out [heads, d]."""
    heads, parts, d = o.shape
    w = np.empty(parts)
    for a in range(heads):
        top = m[a, 0]
        for i in range(1, parts):
            if m[a, i] > top:
                top = m[a, i]
        for i in range(parts):
            w[i] = mul_round(exp_unit(add_round(m[a, i], -top, sm), sm, log2e, coeffs), e[a, i], sm)
        total = w[0]
        for i in range(1, parts):
            total = add_round(total, w[i], sm)
        gain = rnd(1.0 / total, val)
        for j in range(d):
            acc = mul_round(w[0], o[a, 0, j], val)
            for i in range(1, parts):
                acc = add_round(acc, mul_round(w[i], o[a, i, j], val), val)
            out[a, j] = mul_round(acc, gain, val)


def merge_partials(m: np.ndarray, e: np.ndarray, outputs: np.ndarray, softmax: NumberFormat,
                   value: NumberFormat) -> np.ndarray:
    """The merged outputs [heads, d] of S partials: m, e [heads, S], outputs [heads, S, d]."""
    o = np.ascontiguousarray(outputs, dtype=np.float64)
    out = np.empty((o.shape[0], o.shape[2]))
    log2e, coeffs = exp_constants(softmax)
    _merge_kernel(np.ascontiguousarray(m, dtype=np.float64), np.ascontiguousarray(e, dtype=np.float64), o,
                  format_code(softmax), format_code(value), log2e, coeffs, out)
    return out


def golden_split(spec, k: np.ndarray, v: np.ndarray, q: np.ndarray, ranges: list[tuple[int, int]], layer: int,
                 source: str = "trace") -> tuple[np.ndarray, np.ndarray]:
    """The golden model of one KV head served over token ranges and merged.

    k, v [T, d] float; q [G, d] (one query, at position T - 1, against every key); ranges the
    contiguous (lo, hi) token ranges in order. Returns (scores [G, T], outputs [G, d]).
    """
    from axelsim.numerics.golden import golden_layer

    scores, outs, ms, es = [], [], [], []
    for lo, hi in ranges:
        part = golden_layer(spec, k[None, lo:hi], v[None, lo:hi], q[:, None, :],
                            np.array([hi - lo - 1], dtype=np.int64), layer, source)
        sc = part.scores[:, 0, :]
        scores.append(sc)
        outs.append(part.outputs[:, 0, :])
        m, e = partial_stats(sc, spec.dim, spec.formats["softmax"])
        ms.append(m)
        es.append(e)
    if len(ranges) == 1:
        return scores[0], outs[0]
    merged = merge_partials(np.stack(ms, axis=1), np.stack(es, axis=1), np.stack(outs, axis=1),
                            spec.formats["softmax"], spec.formats["value"])
    return np.concatenate(scores, axis=1), merged
