"""Baselines: each kind bit-exact against its own golden reference (axelsim.numerics.baselines),
counted actions equal to their closed forms, KIVI's dequantized vectors equal to an
independent numpy implementation written here, and timed writes equal to preloaded results."""

import numpy as np
import pytest

from axelsim.config.formats import FP16, parse_format
from axelsim.config.macro import BASELINE_KINDS as KINDS
from axelsim.hw.baselines import BaselineMachine, simulate_baseline
from axelsim.numerics.baselines import KiviSpec, kivi_vectors
from axelsim.report.numerics import baseline_numerics
from axelsim.trace import Trace
from test_hw_helpers import assert_same_machine_state, random_trace, signs_for, small_macro, write_each

D, T, W, G = 16, 30, 8, 4
POSITIONS = [5, 17, 29]


@pytest.fixture(scope="module")
def case():
    macro = small_macro(D, 3, baselines={"kivi": {"group_size": G, "window": W, "bits": 2}})
    trace = random_trace(4, layers=2, kv_heads=2, q_heads=4, tokens=T, q_positions=POSITIONS)
    signs = signs_for(2, D)
    runs = {kind: simulate_baseline(kind, macro, trace, signs) for kind in KINDS}
    return macro, trace, signs, runs


@pytest.mark.parametrize("kind", KINDS)
def test_bit_exact_against_own_golden_reference(case, kind):
    macro, trace, signs, runs = case
    numerics = baseline_numerics(kind, macro, signs, trace, runs[kind].scores, runs[kind].outputs)
    assert numerics["bit_exact_scores"] and numerics["bit_exact_outputs"]
    assert 0.0 <= numerics["score_rel_rmse"] < (0.01 if kind == "fp16" else 0.5)


def test_golden_reference_catches_a_changed_result(case):
    macro, trace, signs, runs = case
    scores = {L: s.copy() for L, s in runs["kivi"].scores.items()}
    scores[1][2, 1, 3] = np.nextafter(scores[1][2, 1, 3], np.inf)
    assert not baseline_numerics("kivi", macro, signs, trace, scores, runs["kivi"].outputs)["bit_exact_scores"]


def _keys_served():
    """Sum over query heads of keys (= values) served: 4 heads x 2 layers x sum(p + 1)."""
    return 4 * 2 * sum(p + 1 for p in POSITIONS)


def test_read_and_value_counts_equal_their_closed_forms(case):
    _, _, _, runs = case
    n = _keys_served()
    jobs = 4 * 2 * len(POSITIONS)
    for kind, run in runs.items():
        a = run.actions
        assert a["dot_product"]["add.fp16"] == n * (D - 1), kind
        # d accumulations per value, the softmax's subtract and running sum (also fp32), and
        # dequant_rotated's inverse FWHT (d log2 d adds) per query head
        assert a["value_unit"]["add.fp32"] == n * D + 2 * n + (jobs * D * 4 if kind == "dequant_rotated" else 0), kind
        assert a["value_unit"]["exp.fp32"] == n and a["value_unit"]["div.fp32"] == jobs, kind
    assert runs["fp16"].actions["dot_product"]["mul.fp16"] == n * D
    assert runs["fp16"].actions["kv_sram"] == {"write": 2 * 2 * 2 * T, "read": 2 * n}
    rot = runs["dequant_rotated"].actions
    # d multiply-accumulates and one norm multiply per key; d + 1 multiplies per value, one
    # rotation of each query and one inverse FWHT per query head
    assert rot["dot_product"]["mul.fp16"] == n * D and rot["dot_product"]["mul.fp32"] == n
    assert rot["value_unit"]["mul.fp32"] == n * (D + 1) + jobs * (1 + D) + n  # + the softmax scale
    assert rot["rotator"]["add.fp32"] == (2 * 2 * 2 * T + jobs) * D * 4
    inv = runs["dequant_inverse_rotate"].actions
    assert inv["dequantizer"]["mul.fp32"] == 2 * n * D
    assert inv["inverse_rotator"]["add.fp32"] == 2 * n * D * 4
    assert "inverse_rotator" not in rot and "table_sram" not in rot


def test_kivi_counts_equal_their_closed_forms(case):
    _, _, _, runs = case
    a = runs["kivi"].actions
    quant_k = sum(4 * 2 * ((p + 1) // W * W) for p in POSITIONS)
    quant_v = sum(4 * 2 * max(0, p + 1 - W) for p in POSITIONS)
    n = _keys_served()
    assert a["quant_sram"]["read"] == quant_k + quant_v
    assert a["kv_sram"]["read"] == 2 * n - quant_k - quant_v + a["quant_sram"]["write"]
    assert a["dequantizer"]["mul.fp16"] == (quant_k + quant_v) * D
    assert a["scale_sram"]["read"] == sum(4 * 2 * -(-((p + 1) // W * W) // G) for p in POSITIONS) + quant_v
    # written positions 0..29 of 2 layers x 2 heads: values 0..21 leave the window, keys 0..23 form 3 windows
    assert a["quant_sram"]["write"] == 2 * 2 * ((T - W) + (T // W) * W)
    groups = a["quant_sram"]["write"] * D // G
    assert a["kivi_quantizer"]["div.fp32"] == groups
    assert a["kivi_quantizer"]["cmp.fp32"] == 2 * groups * (G - 1) + 2 * a["quant_sram"]["write"] * D


def _numpy_kivi(x16, axis, bits, group):
    """KIVI's asymmetric quantize-dequantize in plain numpy float32/float16 arithmetic."""
    top = (1 << bits) - 1
    x = x16.astype(np.float32)
    n, d = x.shape
    g = x.reshape(n // group, group, d) if axis == 0 else x.reshape(n, d // group, group)
    red = 1 if axis == 0 else 2
    lo, hi = g.min(axis=red, keepdims=True), g.max(axis=red, keepdims=True)
    scale = ((hi - lo) * np.float32(1.0 / top)).astype(np.float16).astype(np.float32)
    with np.errstate(divide="ignore"):
        inv = np.where(scale > 0, np.float32(1.0) / np.where(scale > 0, scale, 1), np.float32(0))
    codes = np.clip(np.rint((g - lo) * inv), 0, top)
    deq = (codes * scale).astype(np.float16).astype(np.float32) + lo
    return deq.astype(np.float16).astype(np.float64).reshape(n, d)


def _hw_kivi(x16, axis, bits, group):
    """The cycle model's quantizer and dequantizer kernels on one head's rows x16 [n, d]."""
    from axelsim.hw import baseline_kernels as bk
    from axelsim.hw.kernels import fmt_code

    n, d = x16.shape
    codes = np.empty((n, d), dtype=np.uint8)
    shape = (n // group, d) if axis == 0 else (n, d // group)
    scale, zero = np.empty(shape), np.empty(shape)
    f16, rot = fmt_code(FP16), fmt_code(parse_format("fp32"))
    bk.kivi_quantize(x16[None], axis, group, 1 << bits, rot, f16, codes[None], scale[None], zero[None])
    out = np.empty((n, d))
    bk.kivi_dequantize(codes, scale, zero, x16.astype(np.float32), n, group, axis, f16, out)
    return out


def test_kivi_dequantized_vectors_equal_an_independent_numpy_implementation():
    rng = np.random.default_rng(7)
    x16 = (rng.standard_normal((2, 24, D)) * 3).astype(np.float16).astype(np.float64)
    x16[0, :4, 0] = 1.5  # a constant group: scale 0, every code 0
    x16[1, 3, :4] = -0.25
    spec = KiviSpec(2, G, W, G)
    for axis, golden_axis in ((0, -2), (1, -1)):
        mine = np.stack([_numpy_kivi(x16[h], axis, 2, G) for h in range(2)])
        golden = kivi_vectors(x16, golden_axis, spec, parse_format("fp32"))
        n = 24 if axis == 1 else (24 // W) * W
        assert np.array_equal(golden[:, :n], mine[:, :n])
        assert np.array_equal(np.stack([_hw_kivi(x16[h, :n], axis, 2, G) for h in range(2)]), mine[:, :n])
        assert not np.array_equal(mine, x16)  # 2-bit codes do change the vectors


def test_timed_writes_give_the_preloaded_results_and_more_cycles(case):
    macro, trace, signs, runs = case
    for kind in KINDS:
        pre = simulate_baseline(kind, macro, trace, signs, prefill="preloaded")
        for L in (0, 1):
            assert np.array_equal(pre.scores[L], runs[kind].scores[L], equal_nan=True), kind
            assert np.array_equal(pre.outputs[L], runs[kind].outputs[L], equal_nan=True), kind
        assert runs[kind].cycles["write"] > 0 and pre.cycles["write"] == 0
        assert pre.ops["sram_write_bits"]["total"] == 0


def _machines(macro, trace, signs, timing):
    from axelsim.hw.controller import Machine
    from axelsim.hw.sram import AddressMap
    from axelsim.hw.units import Ledger
    from axelsim.numerics.codebook import lloyd_max_codebook

    book = lloyd_max_codebook(macro.head_dim, macro.bits)
    table = {L: signs.vector(L) for L in trace.layer_indices}
    out = []
    for cls in (Machine, BaselineMachine):
        amap = AddressMap(macro, trace.n_layers, trace.kv_heads, trace.tokens, "test")
        machine = cls(macro, table, np.asarray(book.rom_centroids, float), np.asarray(book.rom_boundaries, float),
                      "burst", Ledger(record=True), amap, timing)
        out.append(machine)
    out[1].setup("dequant_rotated", list(trace.layer_indices), trace.kv_heads, trace.tokens)
    return out


def test_batched_writes_time_like_one_stream_per_position():
    """BaselineMachine.write_positions (one burst per segment) against the controller's one
    write stream per position and layer: same cycles, intervals, stalls, wait windows, busy
    stages, unit spans, counts, rows; with SRAM latencies and a bank II above one cycle."""
    from axelsim.cost.tiles import SramTiming

    macro = small_macro(D, 3, write_path={"fwht_butterflies": 8, "threshold_multipliers": 7}, sram={"banks": 2})
    trace = random_trace(5, layers=2, kv_heads=2, q_heads=2, tokens=12, q_positions=[4, 11])
    signs = signs_for(2, D)
    timing = SramTiming(read_latency_cycles=3, write_latency_cycles=2, bank_ii_cycles=2)
    per_stream, batched = _machines(macro, trace, signs, timing)
    ks = {L: np.asarray(trace.k(L), float) for L in (0, 1)}
    vs = {L: np.asarray(trace.v(L), float) for L in (0, 1)}
    layers = [(0, 0), (1, 1)]
    for first, last in ((0, 4), (5, 11)):
        assert write_each(per_stream, layers, first, last, ks, vs) == batched.write_positions(layers, first, last, ks, vs)
    assert_same_machine_state(per_stream, batched)
    assert per_stream.stall_total > 0  # the narrow rotator makes each stream wait for the one before


def test_dequant_rotated_scores_equal_axelram_when_table_and_accumulator_agree(case):
    """The lookup table holds exactly rnd(r_i c_j / d): with table = accumulator format the fair
    dequantizer's products are AXELRAM's table entries, so the scores agree bit for bit."""
    from axelsim.hw.macro import simulate

    macro, trace, signs, runs = case
    axel = simulate(macro, signs, trace)
    for L in (0, 1):
        assert np.array_equal(axel.scores[L], runs["dequant_rotated"].scores[L], equal_nan=True)


def test_unknown_kind_is_a_config_error(case):
    from axelsim.errors import ConfigError

    macro, trace, signs, _ = case
    with pytest.raises(ConfigError):
        simulate_baseline("dequant", macro, trace, signs)
    assert FP16.kind == "fp16"


def test_float32_lanes_only_for_vectors_float32_holds_exactly():
    """as_lanes gives the float32 form of vectors that are float32 values (converted once and
    shared, as the decoded vectors are), and None (float64 lanes then) for one that is not: a
    rotator value scaled by 1/d below float32's range, or NaN."""
    from types import SimpleNamespace

    machine = SimpleNamespace(memo={})
    machine.decoded = lambda key, compute, form="decoded": BaselineMachine.decoded(machine, key, compute, form)
    exact = np.array([[1.5, -0.0, 2.0 ** -140, 65504.0]])
    first = BaselineMachine.as_lanes(machine, 0, 0, 1, exact, np.float32)
    assert first.dtype == np.float32 and np.array_equal(first, exact)
    assert BaselineMachine.as_lanes(machine, 0, 0, 1, exact, np.float32) is first  # shared
    for element in (2.0 ** -152, 1.0 + 2.0 ** -30, np.nan):
        machine.memo.clear()
        assert BaselineMachine.as_lanes(machine, 0, 0, 1, np.array([[1.0, element]]), np.float32) is None
    assert BaselineMachine.as_lanes(machine, 0, 0, 1, first, np.float32) is first  # already float32


@pytest.mark.parametrize("dtype", ["float32", "float16"])
@pytest.mark.parametrize("prefill", ["simulate", "preloaded"])
def test_a_trace_file_replays_from_its_mapped_arrays_as_from_memory(case, tmp_path, dtype, prefill):
    """Replay reads a trace file's tensors in place (Trace.stored(copy=False): read-only views of
    the mapped file, never a second copy): AXELRAM and every baseline give the same scores,
    outputs and cycles as the same values held in memory, for either stored precision and
    either prefill (the preload writes whole tensors, so their views reach the write paths as
    they are)."""
    from axelsim.hw.macro import simulate
    from axelsim.trace import load_trace, save_trace

    macro, trace, signs, _ = case
    layers = trace.layer_indices
    in_memory = Trace.from_arrays({L: trace.k(L) for L in layers}, {L: trace.v(L) for L in layers},
                                  {L: trace.q(L) for L in layers}, trace.q_positions, dtype=dtype)
    save_trace(in_memory, tmp_path / "t.safetensors")
    mapped = load_trace(tmp_path / "t.safetensors")
    assert not mapped.stored(layers[0], "k", copy=False).flags.writeable
    runs = [(simulate(macro, signs, t, prefill=prefill), *(simulate_baseline(kind, macro, t, signs, prefill=prefill)
                                                          for kind in KINDS)) for t in (in_memory, mapped)]
    for memory_run, file_run in zip(*runs):
        assert memory_run.cycles == file_run.cycles
        for L in layers:
            assert np.array_equal(memory_run.scores[L], file_run.scores[L], equal_nan=True)
            assert np.array_equal(memory_run.outputs[L], file_run.outputs[L], equal_nan=True)
