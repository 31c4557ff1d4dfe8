"""Cycle model: counters against closed forms, cycles against hand traces, fidelity modes,
and bit-exactness against the golden model (separate code), including a corrupted SRAM bit."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import example, given, settings, strategies as st

from axelsim.errors import ConfigError
from axelsim.hw import controller
from axelsim.cost.tiles import SramTiming
from axelsim.hw.macro import derived_timing, simulate
from axelsim.numerics.golden import NumericsSpec, golden_layer
from test_hw_helpers import random_trace, signs_for, small_macro


def _golden(macro, signs, trace, layer):
    spec = NumericsSpec.from_macro(macro, signs)
    v = trace.v(layer) if trace.has_values else None
    return golden_layer(spec, trace.k(layer), v, trace.q(layer), trace.q_positions, layer)


def _same(a, b):
    return np.array_equal(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64), equal_nan=True)


def test_bit_exact_against_golden_with_gqa_and_values():
    macro = small_macro(16, 3)
    trace = random_trace(3, layers=2, kv_heads=2, q_heads=4, tokens=10, q_positions=[2, 6, 9])
    signs = signs_for(2, 16)
    result = simulate(macro, signs, trace)
    for layer in (0, 1):
        gold = _golden(macro, signs, trace, layer)
        assert _same(gold.scores, result.scores[layer])
        assert _same(gold.outputs, result.outputs[layer])


@pytest.mark.parametrize("min_work", [1, 10**12])
def test_parallel_and_serial_burst_kernels_are_bit_exact(monkeypatch, min_work):
    # Burst mode runs a stream on the parallel kernels only when its work is large enough; force each
    # flavour on a small trace so both stay checked against the golden model.
    from axelsim import jit

    monkeypatch.setattr(jit, "PARALLEL_MIN_WORK", min_work)
    macro = small_macro(16, 3)
    trace = random_trace(5, layers=1, kv_heads=2, q_heads=4, tokens=12, q_positions=[0, 5, 11])
    signs = signs_for(1, 16)
    result = simulate(macro, signs, trace, fidelity="burst")
    gold = _golden(macro, signs, trace, 0)
    assert _same(gold.scores, result.scores[0])
    assert _same(gold.outputs, result.outputs[0])


def test_flipped_index_bit_breaks_bit_exactness(monkeypatch):
    macro = small_macro(16, 3)
    trace = random_trace(4, tokens=6)
    signs = signs_for(1, 16)
    original = controller.Machine.query_job

    def corrupt_then_serve(self, slot, layer, kv_head, *args, **kwargs):
        bank, row = self.amap.locate(slot, kv_head, 2, 0)
        self.sram.flip_bit(int(bank), int(row), 1)  # bit 1 of index 0 of key 2
        return original(self, slot, layer, kv_head, *args, **kwargs)

    monkeypatch.setattr(controller.Machine, "query_job", corrupt_then_serve)
    result = simulate(macro, signs, trace)
    gold = _golden(macro, signs, trace, 0)
    assert not _same(gold.scores, result.scores[0])
    assert _same(np.asarray(gold.scores)[..., :2], result.scores[0][..., :2])


def test_paper_counters_d128_b3():
    macro = small_macro(128, 3)
    trace = random_trace(5, tokens=1, d=128, values=False)
    result = simulate(macro, signs_for(1, 128), trace)
    ops = result.ops
    assert ops["butterflies"]["write_path"] == 448
    assert result.actions["rotator"]["add.fp32"] == 896 + 896  # one key written, one query rotated
    assert ops["comparisons"]["write_path"] == 896
    assert result.actions["norm_unit"]["mul.fp32"] == 128  # the squares
    assert result.actions["quantizer"]["mul.fp32"] == 7  # the scaled thresholds (boundary x norm)
    assert ops["multiplications"]["read_path"] == 128 * 8 + 1
    assert ops["sram_write_bits"]["write_path"] == 400


def test_reduction_at_t4096_from_counters():
    macro = small_macro(128, 3)
    trace = random_trace(6, tokens=4096, d=128, values=False)
    result = simulate(macro, signs_for(1, 128), trace, prefill="preloaded")
    mpq = result.multiplications_per_query
    assert mpq["axelram"] == 1024 + 4096
    assert mpq["conventional"] == 4096 * 128
    assert mpq["reduction"] == pytest.approx(102.4)
    assert result.ops["table_lookups"]["read_path"] == 4096 * 128


def test_read_cycles_match_closed_form_pipeline():
    # rotator fill 4, table 2 cycles, then keys at II = 16 / 4 = 4: fill (1 + 4 + 4 + 1) + (n-1)*4
    macro = small_macro(16, 2, read_path=dict(table_multipliers=32, lookups_per_cycle=4))
    n = 9
    trace = random_trace(7, tokens=n, values=False)
    result = simulate(macro, signs_for(1, 16), trace, prefill="preloaded", timing=SramTiming.ideal(macro))
    assert result.cycles["total"] == 4 + 2 + 10 + (n - 1) * 4
    assert result.cycles["stall"] == 0
    assert result.cycles["precompute"] == 6 and result.cycles["read"] == 10 + (n - 1) * 4


def test_bank_conflict_hand_trace():
    # Two query heads on two pipelines over two token-interleaved banks. Head 1's table is ready
    # 2 cycles after head 0's (the shared table generator, II 2): its key 0 asks for bank 0 in
    # the cycle head 0 reads key 2 from bank 0, waits one cycle, then never conflicts again.
    macro = small_macro(16, 2, read_path=dict(table_multipliers=32, pipelines=2),
                        sram=dict(banks=2))
    n = 8
    trace = random_trace(8, q_heads=2, tokens=n, values=False)
    result = simulate(macro, signs_for(1, 16), trace, prefill="preloaded", timing=SramTiming.ideal(macro))
    assert result.unit_stats["index_sram"]["stall_causes"] == {"bank_conflict": 1}
    assert result.unit_stats["table_generator"]["stall_causes"] == {"contention": 1}
    assert result.cycles["total"] == 9 + (n - 1) + 7


def test_simulate_derives_the_timing_by_default():
    # one path: without `timing` the cycle model uses what `axelsim run` derives, not 1-cycle SRAM
    macro = small_macro(16, 2)
    trace = random_trace(7, tokens=4, values=False)
    derived = derived_timing(macro)
    assert derived.source["read_latency_cycles"] == "derived" and derived.exp_latency_cycles >= 16
    result = simulate(macro, signs_for(1, 16), trace, prefill="preloaded")
    assert result.timing == derived
    assert result.cycles == simulate(macro, signs_for(1, 16), trace, prefill="preloaded", timing=derived).cycles
    ideal = simulate(macro, signs_for(1, 16), trace, prefill="preloaded", timing=SramTiming.ideal(macro))
    assert ideal.timing.source["read_latency_cycles"] == "ideal"


def test_overflow_reject_names_the_key():
    macro = small_macro(16, 3, sram=dict(banks=2, rows_per_bank=4))
    with pytest.raises(ConfigError) as err:
        simulate(macro, signs_for(1, 16), random_trace(9, tokens=8))
    assert err.value.where == "sram.rows_per_bank" and "8 rows" in err.value.expected


def test_overflow_spill_counts_offchip_and_stays_exact():
    macro = small_macro(16, 3, sram=dict(banks=2, rows_per_bank=4, overflow="spill"))
    trace = random_trace(10, tokens=8)
    signs = signs_for(1, 16)
    result = simulate(macro, signs, trace)
    assert result.actions["offchip"]["write"] == 16 - 2 * 4
    assert _same(_golden(macro, signs, trace, 0).scores, result.scores[0])


def _compare_modes(a, b):
    assert a.cycles == b.cycles
    assert a.actions == b.actions
    assert a.ops == b.ops
    assert {u: s["stall_causes"] for u, s in a.unit_stats.items()} == \
        {u: s["stall_causes"] for u, s in b.unit_stats.items()}
    for layer in a.scores:
        assert _same(a.scores[layer], b.scores[layer])
    for layer in a.outputs:
        assert _same(a.outputs[layer], b.outputs[layer])


@settings(max_examples=12, deadline=None)
@given(seed=st.integers(0, 1000), d=st.sampled_from([8, 16]), bits=st.integers(1, 4),
       tokens=st.integers(1, 7), kv_heads=st.integers(1, 2), group=st.sampled_from([1, 2]),
       pipelines=st.sampled_from([1, 2]), banks=st.sampled_from([2, 4]), shared=st.booleans(),
       mapping=st.sampled_from(["token_interleaved", "head_per_bank"]), lanes=st.sampled_from([1, 2]),
       prefill=st.sampled_from(["simulate", "preloaded"]))
def test_key_and_burst_fidelity_agree(seed, d, bits, tokens, kv_heads, group, pipelines, banks, shared,
                                      mapping, lanes, prefill):
    macro = small_macro(d, bits, read_path=dict(pipelines=pipelines, gqa_shared_read=shared,
                                                lookups_per_cycle=d // lanes),
                        sram=dict(banks=banks, mapping=mapping),
                        value_path=dict(bin_lanes=d // lanes))
    positions = sorted({tokens - 1, tokens // 2})
    trace = random_trace(seed, kv_heads=kv_heads, q_heads=kv_heads * group, tokens=tokens, d=d,
                         q_positions=positions)
    signs = signs_for(1, d, seed)
    burst = simulate(macro, signs, trace, fidelity="burst", prefill=prefill)
    key = simulate(macro, signs, trace, fidelity="key", prefill=prefill)
    _compare_modes(burst, key)
    gold = _golden(macro, signs, trace, 0)
    assert _same(gold.scores, burst.scores[0]) and _same(gold.outputs, burst.outputs[0])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(st.tuples(st.sampled_from(controller.PHASES), st.integers(0, 3), st.integers(0, 90),
                                   st.integers(0, 25)), max_size=6), max_size=8), st.integers(0, 8))
@example([[("write", 0, 0, 5)], [("read", 1, 10, 5), ("read", 2, 12, 1)]], 1)
def test_interval_log_against_a_list_of_rows(bursts, cut):
    """IntervalLog against a plain list: bursts of one phase go in through add_many, single rows
    through add; per phase the rows in order, the latest end, and the span of what came after a
    mark taken after `cut` bursts."""
    log, plain, mark, after = controller.IntervalLog(), [], None, []
    for b, burst in enumerate(bursts):
        if b == cut:
            mark = log.mark()
        if len({phase for phase, *_ in burst}) == 1 and len(burst) > 1:
            rows = np.array([(layer, start, start + length) for _, layer, start, length in burst], dtype=np.int64)
            log.add_many(burst[0][0], rows[:, 0], rows[:, 1], rows[:, 2])
        else:
            for phase, layer, start, length in burst:
                log.add(phase, layer, start, start + length)
        added = [(phase, layer, start, start + length) for phase, layer, start, length in burst]
        plain += added
        after += added if mark is not None else []
    for phase in controller.PHASES:
        assert log.of_phase(phase).tolist() == [[layer, s, e] for p, layer, s, e in plain if p == phase]
    assert log.end() == max((e for *_, e in plain), default=0)
    if mark is not None:
        assert log.span_since(mark) == ((min(s for *_, s, _ in after), max(e for *_, e in after)) if after else None)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(controller.PHASES), st.integers(0, 2), st.integers(0, 60), st.integers(0, 25)),
                max_size=30))
def test_phase_cycles_equal_a_cycle_by_cycle_count(rows):
    """attribute_phases and phase_active against a per-cycle oracle: each covered cycle belongs to
    its highest phase (value > read > precompute > write); active counts a phase's own cover."""
    from axelsim.hw.macro import _of_layer, _phase_table, attribute_phases, phase_active

    intervals = controller.IntervalLog()
    for phase, layer, start, length in rows:
        intervals.add(phase, layer, start, start + length)
    table = _phase_table(intervals)
    for layer in (None, 0, 1, 2):
        cover = {phase: set() for phase in controller.PHASES}
        for phase, at, start, length in rows:
            if layer is None or at == layer:
                cover[phase].update(range(start, start + length))
        owner = {}
        for phase in controller.PHASES:  # later phases overwrite: the highest priority wins
            owner.update(dict.fromkeys(cover[phase], phase))
        spans = _of_layer(table, layer)
        assert attribute_phases(spans) == {p: sum(1 for o in owner.values() if o == p) for p in controller.PHASES}
        assert phase_active(spans) == {p: len(cover[p]) for p in controller.PHASES}
