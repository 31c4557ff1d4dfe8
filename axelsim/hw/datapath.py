"""Vectorised numpy datapath blocks (pairwise adder tree, FWHT) for the per-query parts (query
rotation, value finalisation) and the baselines; the per-key paths use axelsim.hw.kernels.

Every function takes a leading batch axis and rounds every operation in the format it is given
(see axelsim.hw.arith); the order of operations is the circuit's order of docs/architecture.md.
"""

from __future__ import annotations

import numpy as np

from axelsim.config.formats import NumberFormat
from axelsim.hw import arith


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
