"""Shared datapath building blocks of the units: pairwise adder tree, FWHT, ordered accumulation.

Every function takes a leading batch axis and rounds every operation in the format it is given
(see axelsim.hw.arith); the order of operations is the circuit's order of docs/architecture.md.
"""

from __future__ import annotations

import numpy as np

from axelsim.config.formats import NumberFormat
from axelsim.hw import arith

_NUMPY_FLOAT = {"fp16": np.float16, "fp32": np.float32}


def pairwise_tree(fmt: NumberFormat, leaves: np.ndarray) -> np.ndarray:
    """Sum leaves [..., d] stage by stage: a'_m = rnd(a_2m + a_2m+1); d - 1 additions."""
    level = leaves
    while level.shape[-1] > 1:
        level = arith.add(fmt, level[..., 0::2], level[..., 1::2])
    return level[..., 0]


def fwht(fmt: NumberFormat, u: np.ndarray) -> np.ndarray:
    """Unnormalised FWHT of u [..., d]: stages h = 1, 2, ..., d/2, butterflies (a + c, a - c)."""
    d = u.shape[-1]
    lead = u.shape[:-1]
    h = 1
    while h < d:
        blocks = u.reshape(lead + (d // (2 * h), 2, h))
        a, c = blocks[..., 0, :], blocks[..., 1, :]
        u = np.stack([arith.add(fmt, a, c), arith.sub(fmt, a, c)], axis=-2).reshape(lead + (d,))
        h *= 2
    return u


def running_sum(fmt: NumberFormat, terms: np.ndarray) -> np.ndarray:
    """E = rnd(E + e_t) in order t = 0.. from E = 0, over the last axis; returns [...]."""
    if terms.shape[-1] == 0:
        return np.zeros(terms.shape[:-1])
    if fmt.kind in _NUMPY_FLOAT:
        # numpy's accumulate is strictly sequential and rounds every step in the array dtype
        typed = terms.astype(_NUMPY_FLOAT[fmt.kind])
        return np.add.accumulate(typed, axis=-1)[..., -1].astype(np.float64)
    total = np.zeros(terms.shape[:-1])
    for t in range(terms.shape[-1]):
        total = arith.add(fmt, total, terms[..., t])
    return total


def bin_accumulate(fmt: NumberFormat, idx: np.ndarray, weights: np.ndarray, levels: int) -> np.ndarray:
    """Bins B[i][j] += w_t for idx[t, i] == j, keys in order; idx [T, d], weights [T] -> [d, L]."""
    n_keys, d = idx.shape
    if fmt.kind in _NUMPY_FLOAT:
        bins = np.zeros(d * levels, dtype=_NUMPY_FLOAT[fmt.kind])
        flat = (np.arange(d, dtype=np.int64) * levels + idx.astype(np.int64)).reshape(-1)
        # np.add.at is unbuffered and applies the additions in index-array order (t-major)
        np.add.at(bins, flat, np.repeat(weights.astype(bins.dtype), d))
        return bins.reshape(d, levels).astype(np.float64)
    bins = np.zeros((d, levels))
    cols = np.arange(d)
    for t in range(n_keys):
        bins[cols, idx[t]] = arith.add(fmt, bins[cols, idx[t]], weights[t])
    return bins
