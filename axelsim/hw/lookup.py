"""Lookup pipeline: d table reads, pairwise adder tree, one norm multiplication per key.

Timing (cycles) per key and per query head served (G heads share a read when gqa_shared_read):
lookup II = latency = ceil(G d / lookups_per_cycle); adder tree latency
ceil(log2 d / adder_tree_stages_per_cycle), II = G; norm multiplier latency 1, II = ceil(G / norm_multipliers).
"""

from __future__ import annotations

import numpy as np

from axelsim.config.formats import FP16, NumberFormat
from axelsim.config.macro import MacroConfig
from axelsim.hw import arith
from axelsim.hw.datapath import pairwise_tree


def lookup_stage_timing(macro: MacroConfig, heads: int) -> list[tuple[str, int, int]]:
    """[(stage name, latency, II)] of the lookup pipeline for `heads` query heads per key."""
    rp = macro.read_path
    lookup = -(-heads * macro.head_dim // rp.lookups_per_cycle)
    tree = -(-macro.log2_dim // rp.adder_tree_stages_per_cycle)
    return [("table_sram", lookup, lookup), ("adder_tree", tree, heads),
            ("norm_multiplier", 1, -(-heads // rp.norm_multipliers))]


def lookup_leaves(acc: NumberFormat, table: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """a_i = rnd_acc(P[i][idx_i]): table [h, d, L], idx [n, d] -> leaves [h, n, d]."""
    d = idx.shape[1]
    return arith.rnd(acc, table[:, np.arange(d)[None, :], idx])


def scores(acc: NumberFormat, score: NumberFormat, leaves: np.ndarray, norms: np.ndarray) -> np.ndarray:
    """score = rnd_score(tree(leaves) * norm): leaves [h, n, d], norms [n] -> [h, n]."""
    total = pairwise_tree(acc, leaves)
    return arith.mul(score, total, acc, norms[None, :], FP16)
