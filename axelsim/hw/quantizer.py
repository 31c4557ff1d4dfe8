"""Comparator quantizer: idx_i = #{j : y_i >= t_j} (ties take the upper level).

Timing (cycles): d*(L-1) comparisons per vector on `comparators`: II = latency = ceil(d(L-1)/comparators).
"""

from __future__ import annotations

import numpy as np

from axelsim.config.macro import MacroConfig


def quantizer_timing(macro: MacroConfig) -> tuple[int, int]:
    ii = -(-macro.head_dim * (macro.levels - 1) // macro.write_path.comparators)
    return ii, ii


def quantize(y: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Indices [n, d] int64 from rotated y [n, d] and thresholds t [n, L-1]."""
    return (y[:, :, None] >= t[:, None, :]).sum(axis=2, dtype=np.int64)
