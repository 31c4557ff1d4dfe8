"""Table generator and table SRAM: P[i][j] = rnd_table(r_i * gamma_j * 2^-log2 d).

Timing (cycles): d*L products on `table_multipliers`: II = latency = ceil(d L / table_multipliers)
(the table SRAM write of each product happens in the same cycle as the product).
"""

from __future__ import annotations

import numpy as np

from axelsim.config.formats import FP16, NumberFormat
from axelsim.config.macro import MacroConfig
from axelsim.hw import arith


def table_timing(macro: MacroConfig) -> tuple[int, int]:
    ii = -(-macro.head_dim * macro.levels // macro.read_path.table_multipliers)
    return ii, ii


def build_table(table_fmt: NumberFormat, rot_fmt: NumberFormat, r: np.ndarray,
                centroids_rom: np.ndarray) -> np.ndarray:
    """P [n, d, L] from rotated queries r [n, d] (rot values) and the FP16 centroid ROM [L]."""
    d = r.shape[-1]
    scale = np.ldexp(centroids_rom, -(d.bit_length() - 1))  # exact: FP16 value times 2^-log2 d
    return arith.mul(table_fmt, r[:, :, None], rot_fmt, scale[None, None, :], FP16)
