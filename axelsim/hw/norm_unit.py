"""Norm extractor: d squares, pairwise adder tree, square root, FP16 norm, scaled thresholds.

Timing (cycles): II = max(ceil(d / norm_squarers), ceil((L-1) / threshold_multipliers));
latency = ceil(d / norm_squarers) + log2 d (tree) + SQRT_LATENCY + ceil((L-1) / threshold_multipliers).
"""

from __future__ import annotations

import numpy as np

from axelsim.config.formats import FP16, NumberFormat
from axelsim.config.macro import MacroConfig
from axelsim.hw import arith
from axelsim.hw.datapath import pairwise_tree

SQRT_LATENCY = 2
FP16_MAX = 65504.0


def norm_timing(macro: MacroConfig) -> tuple[int, int]:
    """(latency, II) of the norm extractor in cycles."""
    d, thr = macro.head_dim, macro.levels - 1
    square = -(-d // macro.write_path.norm_squarers)
    scale = -(-thr // macro.write_path.threshold_multipliers)
    return square + macro.log2_dim + SQRT_LATENCY + scale, max(square, scale)


def extract_norms(rot: NumberFormat, inp: NumberFormat, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Norms of x [n, d] (values of format inp): (n in rot, stored FP16 norm, saturated flags)."""
    squares = arith.mul(rot, x, inp, x, inp)
    total = pairwise_tree(rot, squares)
    norm = arith.sqrt(rot, total)
    saturated = norm > FP16_MAX
    stored = np.where(saturated, FP16_MAX, arith.rnd(FP16, np.minimum(norm, FP16_MAX)))
    return norm, stored, saturated


def thresholds(rot: NumberFormat, boundaries_rom: np.ndarray, norm: np.ndarray) -> np.ndarray:
    """t_j = rnd_rot(beta_j * n) [n, L-1] (the divider-free fold; n, not the stored norm)."""
    return arith.mul(rot, boundaries_rom[None, :], FP16, norm[:, None], rot)
