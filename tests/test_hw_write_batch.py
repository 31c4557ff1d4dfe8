"""Burst mode's batched writes (Machine.write_positions: consecutive positions timed as one
burst, the datapath once per layer) against one write stream per position and layer
(Machine.write_stream, the key mode path): the same machine state bit for bit."""

import numpy as np
import pytest

from axelsim.cost.tiles import SramTiming
from axelsim.hw.controller import Machine
from axelsim.hw.sram import AddressMap
from axelsim.hw.units import Ledger
from axelsim.numerics.codebook import lloyd_max_codebook
from test_hw_helpers import assert_same_machine_state, random_trace, signs_for, small_macro, write_each

D = 16


def _machine(macro, trace, signs, timing):
    book = lloyd_max_codebook(macro.head_dim, macro.bits)
    amap = AddressMap(macro, trace.n_layers, trace.kv_heads, trace.tokens, "test")
    return Machine(macro, {L: signs.vector(L) for L in trace.layer_indices}, np.asarray(book.rom_centroids, float),
                   np.asarray(book.rom_boundaries, float), "burst", Ledger(record=True), amap, timing)


@pytest.mark.parametrize("sram, values", [
    ({"banks": 2}, True),
    ({"banks": 2, "rows_per_bank": 20, "overflow": "spill"}, True),  # spilled rows: per-item latencies
    ({"banks": 4, "mapping": "head_per_bank"}, False),
])
def test_batched_writes_equal_one_stream_per_position(sram, values):
    macro = small_macro(D, 3, write_path={"fwht_butterflies": 8, "threshold_multipliers": 7}, sram=sram)
    trace = random_trace(7, layers=2, kv_heads=2, q_heads=2, tokens=12, q_positions=[4, 11], values=values)
    signs = signs_for(2, D)
    timing = SramTiming(read_latency_cycles=3, write_latency_cycles=2, bank_ii_cycles=2)
    each, batched = _machine(macro, trace, signs, timing), _machine(macro, trace, signs, timing)
    ks = {L: np.asarray(trace.k(L), float) for L in (0, 1)}
    vs = {L: np.asarray(trace.v(L), float) for L in (0, 1)} if values else {}
    layers = [(0, 0), (1, 1)]
    for first, last in ((0, 3), (4, 4), (5, 11)):
        assert write_each(each, layers, first, last, ks, vs) == batched.write_positions(layers, first, last, ks, vs)
    assert_same_machine_state(each, batched)
    assert each.stall_total > 0  # the narrow rotator makes each stream wait for the one before
    if "rows_per_bank" in sram:
        assert batched.ledger.counts[(0, "write_path", "offchip", "write")] > 0


def test_batches_split_by_size_time_like_one(monkeypatch):
    """A prefill split into several bursts (WRITE_BATCH_ITEMS) gives the same state as one."""
    macro = small_macro(D, 3, write_path={"fwht_butterflies": 8}, sram={"banks": 2})
    trace = random_trace(3, layers=2, kv_heads=2, q_heads=2, tokens=10)
    signs = signs_for(2, D)
    timing = SramTiming(read_latency_cycles=3, write_latency_cycles=2, bank_ii_cycles=1)
    one, split = _machine(macro, trace, signs, timing), _machine(macro, trace, signs, timing)
    ks = {L: np.asarray(trace.k(L), float) for L in (0, 1)}
    vs = {L: np.asarray(trace.v(L), float) for L in (0, 1)}
    layers = [(0, 0), (1, 1)]
    done = one.write_positions(layers, 0, 9, ks, vs)
    monkeypatch.setattr(Machine, "WRITE_BATCH_ITEMS", 24)  # 3 positions of 8 vectors per burst
    assert split.write_positions(layers, 0, 9, ks, vs) == done
    assert_same_machine_state(one, split)
