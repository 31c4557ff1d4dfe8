"""Comparator quantizer timing: idx_i = #{j : y_i >= t_j}, ties take the upper level (the
datapath is axelsim.hw.kernels.quantize_stage).

Timing (cycles): d*(L-1) comparisons per vector on `comparators`: II = latency = ceil(d(L-1)/comparators).
"""

from __future__ import annotations

from axelsim.config.macro import MacroConfig


def quantizer_timing(macro: MacroConfig) -> tuple[int, int]:
    ii = -(-macro.head_dim * (macro.levels - 1) // macro.write_path.comparators)
    return ii, ii
