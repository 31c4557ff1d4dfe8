"""Value-path hazards: the bin read-modify-write through an adder of A cycles (stall or partial
accumulators), the exp stage's latency from its pipelined chain, and the golden model following
the partial-accumulator merge bit for bit."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from axelsim.config import LoadedMacro, load_macro
from axelsim.cost import CostModel
from axelsim.cost.tiles import SramTiming
from axelsim.hw import value_unit
from axelsim.hw.macro import simulate
from axelsim.numerics.golden import NumericsSpec, golden_layer
from test_hw_helpers import random_trace, signs_for, small_macro

ROOT = Path(__file__).resolve().parents[1]


def _ideal(macro):
    return SramTiming.ideal(macro)


def test_bin_hazard_hand_trace_stall_and_partial():
    # d = 2 coordinates, L = 2 levels, A = 3, II = 1, keys all ready at cycle 0.
    idx = np.array([[0, 1], [1, 0], [0, 0], [0, 0], [1, 1]], dtype=np.uint8)
    arrive = np.zeros(5, dtype=np.int64)
    # stall (one copy of each bin), three running-sum partials (E never waits at II = 1):
    #   k0 issues 0; k1 touches other bins: 1; k2 needs (0,0) from k0 (0+3) and (1,0) from k1
    #   (1+3): 4, waited 2; k3 the same bins as k2: 4+3 = 7, waited 2; k4 (0,1) k1, (1,1) k0: 8.
    h = value_unit.BinHazard(idx, levels=2, latency=3, bin_partials=1, sum_partials=3)
    start, waited = h.reserve_run(arrive, 1, 0, np.arange(5))
    assert start.tolist() == [0, 1, 4, 7, 8] and waited == 4
    # partial, P = 2 (bins and E): k2 copy 0 after k0's (0,0): 3; k3 copy 1 after k1's (1,0): 4;
    #   k4: copy 0 has (1,1) from k0 (ready 3), but E partial 0 was last added by k2 at 3: 6.
    h = value_unit.BinHazard(idx, levels=2, latency=3, bin_partials=2, sum_partials=2)
    start, waited = h.reserve_run(arrive, 1, 0, np.arange(5))
    assert start.tolist() == [0, 1, 3, 4, 6] and waited == 2
    # key mode asks one key at a time: the same issue cycles
    h = value_unit.BinHazard(idx, levels=2, latency=3, bin_partials=2, sum_partials=2)
    prev, slots = -1, []
    for k in range(5):
        prev = h.reserve_one(k, prev + 1)
        slots.append(prev)
    assert slots == [0, 1, 3, 4, 6]


def _hazard_macro(d=8, bits=1, hazard="stall", parts=3, latency=3, **value):
    return small_macro(d, bits, value_path=dict(bin_adder_latency=latency, bin_hazard=hazard,
                                                partial_accumulators=parts, **value))


def _independent_stalls(v_idx: np.ndarray, latency: int, bin_parts: int, sum_parts: int, ii: int) -> int:
    """The stall recurrence re-derived from the golden model's stored indices (python loop)."""
    last: dict = {}
    prev, waited = None, 0
    for k, row in enumerate(v_idx):
        want = 0 if prev is None else prev + ii
        keys = [("E", k % sum_parts)] + [("B", k % bin_parts, i, int(j)) for i, j in enumerate(row)]
        slot = max([want] + [last[x] + latency for x in keys if x in last])
        waited += slot - want
        for x in keys:
            last[x] = slot
        prev = slot
    return waited


@pytest.mark.parametrize("hazard,parts", [("stall", 3), ("partial", 2)])
def test_cycle_model_shows_bin_stalls_counted_independently(hazard, parts):
    macro = _hazard_macro(hazard=hazard, parts=parts)
    trace = random_trace(21, tokens=24, d=8)
    signs = signs_for(1, 8)
    timing = _ideal(macro)
    assert timing.bin_adder_latency_cycles == 3 and timing.source["bin_adder_latency_cycles"] == "overridden"
    result = simulate(macro, signs, trace, prefill="preloaded", timing=timing)
    gold = golden_layer(NumericsSpec.from_macro(macro, signs), trace.k(0), trace.v(0), trace.q(0),
                        trace.q_positions, 0)
    expect = _independent_stalls(gold.v_indices[0], 3, macro.value_path.bin_partials(),
                                 macro.value_path.sum_partials(), 1)
    assert expect > 0
    assert result.unit_stats["value_unit"]["stall_causes"]["bin_hazard"] == expect
    # the hazard costs exactly its stall cycles: the same macro without hazards (A = 1 and the
    # bins stage 2 cycles shorter) finishes `expect + 2` cycles sooner
    quick = macro.model_copy(update={"value_path": macro.value_path.model_copy(update={"bin_adder_latency": 1})})
    base = simulate(quick, signs, trace, prefill="preloaded", timing=_ideal(quick))
    merge_delta = (value_unit.merge_timing(macro, timing)[0] - value_unit.merge_timing(quick, _ideal(quick))[0]
                   if parts > 1 else 0)
    assert result.cycles["total"] - base.cycles["total"] == expect + 2 + merge_delta
    assert np.array_equal(result.outputs[0], gold.outputs, equal_nan=True)


def test_stall_mode_with_one_sum_partial_waits_every_key():
    # one running-sum accumulator, hit by every key: each key waits A - II = 2 cycles on E
    macro = _hazard_macro(parts=1)
    n = 10
    result = simulate(macro, signs_for(1, 8), random_trace(3, tokens=n, d=8), prefill="preloaded",
                      timing=_ideal(macro))
    assert result.unit_stats["value_unit"]["stall_causes"]["bin_hazard"] == (n - 1) * 2


@pytest.mark.parametrize("parts", [2, 3, 4])
def test_partial_accumulators_bit_exact_golden_vs_hw_and_key_vs_burst(parts):
    macro = _hazard_macro(d=16, bits=3, hazard="partial", parts=parts, latency=4)
    trace = random_trace(30 + parts, kv_heads=1, q_heads=2, tokens=19, d=16, q_positions=[7, 18])
    signs = signs_for(1, 16)
    timing = _ideal(macro)
    burst = simulate(macro, signs, trace, timing=timing)
    key = simulate(macro, signs, trace, fidelity="key", timing=timing)
    spec = NumericsSpec.from_macro(macro, signs)
    assert (spec.sum_partials, spec.bin_partials) == (parts, parts)
    gold = golden_layer(spec, trace.k(0), trace.v(0), trace.q(0), trace.q_positions, 0)
    assert np.array_equal(burst.outputs[0], gold.outputs) and np.array_equal(key.outputs[0], gold.outputs)
    assert burst.cycles == key.cycles
    assert burst.unit_stats["value_unit"]["stall_causes"] == key.unit_stats["value_unit"]["stall_causes"]
    # the merge order is not a no-op: one accumulator rounds differently somewhere
    single = golden_layer(NumericsSpec.from_macro(small_macro(16, 3), signs), trace.k(0), trace.v(0), trace.q(0),
                          trace.q_positions, 0)
    assert not np.array_equal(single.outputs, gold.outputs)
    # the merge adds are counted where they happen, in hw and golden alike
    adds = 16 * 8 * (parts - 1) * 2 * 2  # d L (P - 1) per head, 2 heads, 2 queries
    hw_adds = burst.actions["value_unit"]["add.fp32"]
    assert hw_adds == gold.actions["value_path"]["add.fp32"]
    one = simulate(small_macro(16, 3), signs, trace, timing=_ideal(small_macro(16, 3)))
    assert hw_adds - one.actions["value_unit"]["add.fp32"] == adds + (parts - 1) * 2 * 2  # and E's merge (fp32)


def test_no_hazard_when_the_adder_keeps_up():
    # A = 2 with II = 2 (half the bin lanes): consecutive keys are 2 cycles apart, never a stall
    macro = _hazard_macro(d=8, latency=2, parts=1, bin_lanes=4)
    assert not value_unit.hazards_possible(macro, 1, _ideal(macro))
    result = simulate(macro, signs_for(1, 8), random_trace(4, tokens=9, d=8), prefill="preloaded",
                      timing=_ideal(macro))
    assert "bin_hazard" not in result.unit_stats["value_unit"]["stall_causes"]


def _at_clock(loaded: LoadedMacro, clock_hz: float) -> LoadedMacro:
    return LoadedMacro(loaded.config.model_copy(update={"clock_hz": clock_hz}), loaded.path, None, loaded.tech_path)


def test_fp_latencies_and_exp_latency_by_hand():
    paper = load_macro(ROOT / "macros" / "axelram_paper.yaml")
    # fp32 adder: 30.6 FO4 x log2(24) / log2(53); FO4 = 15 ps x 45 / 65 at 45 nm
    fp32_ns = 30.6 * math.log2(24) / math.log2(53) * 15 * 45 / 65 * 1e-3
    assert fp32_ns == pytest.approx(0.2543, abs=1e-4)
    for clock, add_cycles in ((1e9, 1), (3.9e9, 1), (4e9, 2), (8e9, 3)):
        t = CostModel.from_macro(_at_clock(paper, clock)).timing()
        assert t.fp_add_ns["fp32"] == pytest.approx(fp32_ns)
        assert t.softmax_add_cycles == t.softmax_mul_cycles == add_cycles == math.ceil(fp32_ns * clock * 1e-9)
        assert t.bin_adder_latency_cycles == add_cycles and t.source["bin_adder_latency_cycles"] == "derived"
        # 8 adds and 7 multiplies in series, one exponent stage
        assert t.exp_latency_cycles == 8 * add_cycles + 7 * add_cycles + 1
        assert value_unit.stream_timing(paper.config, 1, t)[0] == ("exp", t.exp_latency_cycles, 1)
    # the fp16 adder is shallower: log2(11) / log2(53) of the double-precision depth
    half = paper.config.formats.model_copy(update={"softmax": "fp16"})
    t = CostModel.from_macro(LoadedMacro(paper.config.model_copy(update={"formats": half}), paper.path, None,
                                         paper.tech_path)).timing()
    assert t.fp_add_ns["fp16"] == pytest.approx(fp32_ns * math.log2(11) / math.log2(24))
    # an explicit bin_adder_latency overrides and says so
    over = paper.config.model_copy(update={"value_path": paper.config.value_path.model_copy(
        update={"bin_adder_latency": 5})})
    t = CostModel.from_macro(LoadedMacro(over, paper.path, None, paper.tech_path)).timing()
    assert t.bin_adder_latency_cycles == 5 and t.source["bin_adder_latency_cycles"] == "overridden"


def test_exp_latency_drives_the_value_stream_cycles():
    # the value stream's last key leaves the exp stage exp_latency cycles after entering it:
    # two timings that differ only in the exp latency differ by exactly that much in total cycles
    macro = small_macro(8, 2)
    trace = random_trace(5, tokens=6, d=8)
    signs = signs_for(1, 8)
    fast = _ideal(macro)
    slow = SramTiming(**{**fast.__dict__, "exp_latency_cycles": fast.exp_latency_cycles + 9})
    a = simulate(macro, signs, trace, prefill="preloaded", timing=fast)
    b = simulate(macro, signs, trace, prefill="preloaded", timing=slow)
    assert b.cycles["total"] - a.cycles["total"] == 9
    assert fast.exp_latency_cycles == value_unit.EXP_LATENCY == 16


def test_partial_accumulators_are_priced_in_area():
    paper = load_macro(ROOT / "macros" / "axelram_paper.yaml")
    cfg = paper.config
    d, levels = cfg.head_dim, cfg.levels

    def value_area(**keys):
        vp = cfg.value_path.model_copy(update=keys)
        cost = CostModel.from_macro(LoadedMacro(cfg.model_copy(update={"value_path": vp}), paper.path, None,
                                                paper.tech_path))
        return cost.area_um2(1)["value_unit"], cost.tech

    one, tech = value_area()
    stall, _ = value_area(partial_accumulators=3)  # E keeps 3 partials, the bins one copy
    partial, _ = value_area(partial_accumulators=3, bin_hazard="partial")
    reg = tech.register_bits(1).area_um2
    assert stall - one == pytest.approx(2 * 32 * reg)
    assert partial - one == pytest.approx((2 * d * levels * 32 + 2 * 32) * reg)


def test_hazards_with_spilled_rows_key_equals_burst_and_golden():
    # the hazard reads the levels of spilled value rows from off-chip storage as well
    macro = small_macro(8, 2, sram=dict(banks=2, rows_per_bank=4, overflow="spill"),
                        value_path=dict(bin_adder_latency=3, partial_accumulators=2))
    trace = random_trace(41, tokens=12, d=8, q_positions=[5, 11])
    signs = signs_for(1, 8)
    timing = _ideal(macro)
    burst = simulate(macro, signs, trace, timing=timing)
    key = simulate(macro, signs, trace, fidelity="key", timing=timing)
    assert burst.cycles == key.cycles and burst.actions["offchip"]["read"] > 0
    assert burst.unit_stats["value_unit"]["stall_causes"] == key.unit_stats["value_unit"]["stall_causes"]
    gold = golden_layer(NumericsSpec.from_macro(macro, signs), trace.k(0), trace.v(0), trace.q(0),
                        trace.q_positions, 0)
    assert np.array_equal(burst.outputs[0], gold.outputs) and np.array_equal(key.outputs[0], gold.outputs)


@pytest.mark.parametrize("engine", ["burst", "key", "simpy"])
def test_next_jobs_first_key_enters_the_bins_after_the_centroid_stage_took_them(engine, monkeypatch):
    # One pipeline, two query heads at one position: two jobs in a row on one value unit, one
    # set of bins. Bins on 4 of 16 lanes (C = 4 cycles per key), centroids on 16 multipliers at
    # L = 8 (8 cycles per head). The second job's first key clears the bins, so it enters at
    # max(its exp done, the last key's entry + C, the first job's centroid start + 1).
    from functools import partial

    from axelsim.hw import controller, pipeline
    from axelsim.hw.macro import stage_schedule

    if engine == "simpy":
        monkeypatch.setattr(controller, "run_keys", partial(pipeline.run_keys, engine="simpy"))
    macro = small_macro(16, 3, value_path=dict(bin_lanes=4, centroid_multipliers=16))
    tokens = 3
    trace = random_trace(4, q_heads=2, tokens=tokens, q_positions=[tokens - 1])
    sched, total = stage_schedule(macro, signs_for(1, 16), trace, [0], "test", _ideal(macro),
                                  fidelity="burst" if engine == "burst" else "key")
    bins, exp, cent = ([s for s, _ in sched[u]] for u in ("bins", "exp", "centroids"))
    assert len(bins) == len(exp) == 2 * tokens and len(cent) == 2
    c = value_unit.bins_ii(macro, 1)
    assert c == 4 and [b - a for a, b in zip(bins[:tokens], bins[1:tokens])] == [c] * (tokens - 1)
    first = bins[tokens]
    held = cent[0] + 1
    assert held > max(sched["exp"][tokens][1], bins[tokens - 1] + c)  # the rule binds here
    assert first == held
    # the later keys follow at C; the second job's centroids wait for its own last bin only
    assert bins[tokens:] == [first + k * c for k in range(tokens)]
    assert cent[1] == max(sched["bins"][-1][1], cent[0] + 8)
    # every engine the same value path (burst mode batches the writes into one stream)
    reference, ref_total = stage_schedule(macro, signs_for(1, 16), trace, [0], "test", _ideal(macro), fidelity="burst")
    value = ("index_sram_read_v", "exp", "bins", "centroids", "inverse_fwht", "output_scale")
    assert total == ref_total and all(sched[u] == reference[u] for u in value)
