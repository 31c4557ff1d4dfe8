"""Norm extractor timing: d squares, pairwise adder tree, square root, FP16 norm, scaled
thresholds (the datapath is axelsim.hw.kernels.norm_stage).

Timing (cycles): II = max(ceil(d / norm_squarers), ceil((L-1) / threshold_multipliers));
latency = ceil(d / norm_squarers) + log2 d (tree) + SQRT_LATENCY + ceil((L-1) / threshold_multipliers).
"""

from __future__ import annotations

from axelsim.config.macro import MacroConfig

SQRT_LATENCY = 2


def norm_timing(macro: MacroConfig) -> tuple[int, int]:
    """(latency, II) of the norm extractor in cycles."""
    d, thr = macro.head_dim, macro.levels - 1
    square = -(-d // macro.write_path.norm_squarers)
    scale = -(-thr // macro.write_path.threshold_multipliers)
    return square + macro.log2_dim + SQRT_LATENCY + scale, max(square, scale)
