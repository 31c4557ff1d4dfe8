"""Small in-memory traces and configs for the cycle-model tests (no test functions here)."""

from __future__ import annotations

import numpy as np

from axelsim.config.macro import MacroConfig
from axelsim.numerics.hadamard import SignRom
from axelsim.trace.format import Trace


def small_macro(d: int = 16, bits: int = 3, **sections) -> MacroConfig:
    """A fully parallel macro for head size d (every lane count scaled to d), overridable per section."""
    levels = 1 << bits
    full_fwht = (d // 2) * (d.bit_length() - 1)
    base = {
        "write_path": dict(norm_squarers=d, fwht_butterflies=full_fwht, comparators=d * (levels - 1)),
        "read_path": dict(table_multipliers=d * levels, lookups_per_cycle=d),
        "value_path": dict(bin_lanes=d, centroid_multipliers=d * levels, inverse_fwht_butterflies=full_fwht),
    }
    for name, values in sections.items():
        base[name] = {**base.get(name, {}), **values}
    return MacroConfig(head_dim=d, bits=bits, **base)


def random_trace(seed: int, layers: int = 1, kv_heads: int = 1, q_heads: int = 1, tokens: int = 8,
                 d: int = 16, q_positions=None, values: bool = True, scale: float = 1.0) -> Trace:
    rng = np.random.default_rng(seed)
    positions = list(q_positions if q_positions is not None else [tokens - 1])
    k = {L: scale * rng.standard_normal((kv_heads, tokens, d)) for L in range(layers)}
    v = {L: rng.standard_normal((kv_heads, tokens, d)) for L in range(layers)} if values else None
    q = {L: rng.standard_normal((q_heads, len(positions), d)) for L in range(layers)}
    return Trace.from_arrays(k, v, q, positions)


def signs_for(layers: int, d: int, seed: int = 0) -> SignRom:
    return SignRom.from_seed(seed, layers, d)
