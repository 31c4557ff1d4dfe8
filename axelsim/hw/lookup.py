"""Lookup pipeline timing: d table reads, pairwise adder tree, one norm multiplication per key
(the datapath is axelsim.hw.kernels: lookup_stage, tree_stage, norm_mul_stage, score_burst).

Timing (cycles) per key and per query head served (G heads share a read when gqa_shared_read):
lookup II = latency = ceil(G d / lookups_per_cycle); adder tree latency
ceil(log2 d / adder_tree_stages_per_cycle), II = G; norm multiplier latency 1, II = ceil(G / norm_multipliers).
"""

from __future__ import annotations

from axelsim.config.macro import MacroConfig


def lookup_stage_timing(macro: MacroConfig, heads: int) -> list[tuple[str, int, int]]:
    """[(stage name, latency, II)] of the lookup pipeline for `heads` query heads per key."""
    rp = macro.read_path
    lookup = -(-heads * macro.head_dim // rp.lookups_per_cycle)
    tree = -(-macro.log2_dim // rp.adder_tree_stages_per_cycle)
    return [("table_sram", lookup, lookup), ("adder_tree", tree, heads),
            ("norm_multiplier", 1, -(-heads // rp.norm_multipliers))]
