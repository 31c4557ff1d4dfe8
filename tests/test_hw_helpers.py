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


def write_each(machine, layers, first, last, ks, vs) -> int:
    """The reference for batched writes: one `write_stream` per position and layer, in program
    order (what Machine.write_positions does in key mode)."""
    ready = 0
    for p in range(first, last + 1):
        for slot, layer in layers:
            ready = max(ready, machine.write_stream(slot, layer, p, ks[layer][:, p], vs[layer][:, p] if vs else None, 0))
    return ready


def assert_same_machine_state(a, b) -> None:
    """Two Machines after the same writes: free_at, stalls, intervals, counts, busy, stage busy,
    spans, the union of every wait window, activity and SRAM rows all equal."""
    from axelsim.hw.units import union_cycles

    assert a.free_at == b.free_at and a.stall_total == b.stall_total
    assert {p: r.tolist() for p, r in a.intervals.rows.items()} == {p: r.tolist() for p, r in b.intervals.rows.items()}
    assert dict(a.ledger.counts) == dict(b.ledger.counts) and dict(a.ledger.events) == dict(b.ledger.events)
    assert dict(a.ledger.busy) == dict(b.ledger.busy) and dict(a.ledger.stage_busy) == dict(b.ledger.stage_busy)
    assert {u: dict(c) for u, c in a.ledger.stalls.items()} == {u: dict(c) for u, c in b.ledger.stalls.items()}
    assert {u: sorted(zip(s[::2], s[1::2])) for u, s in a.ledger.spans.items()} == \
        {u: sorted(zip(s[::2], s[1::2])) for u, s in b.ledger.spans.items()}

    def waited(ledger):
        return {key: union_cycles(np.concatenate([w[0] for w in ws]), np.concatenate([w[1] for w in ws]))
                for key, ws in ledger.waits.items()}

    assert waited(a.ledger) == waited(b.ledger)
    assert sorted((x.unit, x.instance, x.start, x.end, x.label) for x in a.ledger.activity) == \
        sorted((x.unit, x.instance, x.start, x.end, x.label) for x in b.ledger.activity)
    assert np.array_equal(a.sram.rows, b.sram.rows)
