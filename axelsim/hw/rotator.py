"""FWHT rotator, shared by the write path and the query rotation (they contend for it).

Timing (cycles): (d/2)*log2 d butterflies per vector on `fwht_butterflies` instances:
II = ceil((d/2) log2 d / butterflies), latency = max(log2 d, II) (a fully unrolled rotator is
a log2 d-stage pipeline accepting one vector per cycle).
"""

from __future__ import annotations

import numpy as np

from axelsim.config.formats import NumberFormat
from axelsim.config.macro import MacroConfig
from axelsim.hw.datapath import fwht


def fwht_timing(dim: int, butterflies: int) -> tuple[int, int]:
    """(latency, II) in cycles of an FWHT of size dim on `butterflies` butterfly units."""
    log2d = dim.bit_length() - 1
    ii = -(-(dim // 2) * log2d // butterflies)
    return max(log2d, ii), ii


def rotator_timing(macro: MacroConfig) -> tuple[int, int]:
    return fwht_timing(macro.head_dim, macro.write_path.fwht_butterflies)


def butterflies_per_vector(dim: int) -> int:
    return (dim // 2) * (dim.bit_length() - 1)


def rotate(fmt: NumberFormat, x: np.ndarray, signs: np.ndarray) -> np.ndarray:
    """y = FWHT(s * x) in fmt for x [n, d] (the sign flip is exact)."""
    return fwht(fmt, x * signs[None, :].astype(np.float64))
