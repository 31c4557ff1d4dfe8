"""The golden datapaths against an independent numpy implementation of the arithmetic contract.

The oracle below rounds with numpy casts (float16/float32) and rint/clip (fixed point) and
vectorises differently from the numba kernels; equality is checked bit for bit.
"""

import dataclasses
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from axelsim.config.formats import parse_format
from axelsim.config.macro import FormatsConfig, MacroConfig
from axelsim.errors import NumericsError, TraceError
from axelsim.numerics.golden import (
    NumericsSpec, attend, golden_layer, pack_indices, pack_rows, read_scores, read_scores_gqa,
    unpack_indices, unpack_rows, write_vectors,
)
from axelsim.numerics.hadamard import SignRom
from axelsim.numerics.reference import dequantize_f64, lut_scores_f64, qdq_attention_f64, quantize_f64
from axelsim.numerics.metrics import attention_metrics


# ---------------------------------------------------------------- the numpy oracle
def npr(x, fmt):
    x = np.asarray(x, dtype=np.float64)
    if fmt.kind == "fp16":
        with np.errstate(over="ignore"):
            return x.astype(np.float16).astype(np.float64)
    if fmt.kind == "fp32":
        return x.astype(np.float32).astype(np.float64)
    s, half = 2.0**fmt.frac_bits, 2.0 ** (fmt.width_bits - 1)
    return np.clip(np.rint(x * s), -half, half - 1) / s


def np_fwht(u, fmt):
    u = np.array(u, dtype=np.float64)
    d, h = u.shape[-1], 1
    while h < d:
        blocks = u.reshape(u.shape[:-1] + (d // (2 * h), 2, h))
        a, c = blocks[..., 0, :].copy(), blocks[..., 1, :].copy()
        blocks[..., 0, :], blocks[..., 1, :] = npr(a + c, fmt), npr(a - c, fmt)
        h *= 2
    return u


def np_tree(a, fmt):
    while a.shape[-1] > 1:
        a = npr(a[..., 0::2] + a[..., 1::2], fmt)
    return a[..., 0]


def oracle_write(spec, x, layer):
    f = spec.formats
    xin = npr(x, f["input"])
    n = npr(np.sqrt(np_tree(npr(xin * xin, f["rotator"]), f["rotator"])), f["rotator"])
    y = np_fwht(xin * spec.signs.vector(layer), f["rotator"])
    thr = npr(spec.codebook.rom_boundaries * n[..., None], f["rotator"])
    idx = (y[..., :, None] >= thr[..., None, :]).sum(-1).astype(np.uint8)
    stored = np.minimum(npr(n, parse_format("fp16")), 65504.0)
    return idx, stored


def oracle_scores(spec, q, idx, norms, layer):
    """q [M, d] against idx [T, d], norms [T] -> [M, T]."""
    f, d = spec.formats, spec.dim
    r = np_fwht(npr(q, f["input"]) * spec.signs.vector(layer), f["rotator"])
    table = npr(r[:, :, None] * spec.codebook.rom_centroids[None, None, :] / d, f["table"])
    leaves = npr(table[:, np.arange(d)[None, :], idx], f["accumulator"])  # [M, T, d]
    return npr(np_tree(leaves, f["accumulator"]) * norms[None, :].astype(np.float64), f["score"])


def oracle_exp(x, fmt):
    log2e = npr(1.4426950408889634, fmt)
    coeffs = npr([math.log(2.0) ** n / math.factorial(n) for n in range(7)], fmt)
    y = npr(x * log2e, fmt)
    k = np.rint(y)
    f = npr(y - k, fmt)
    p = np.zeros_like(x)
    for n in range(6, -1, -1):
        p = npr(npr(p * f, fmt) + coeffs[n], fmt)
    return npr(p * 2.0 ** np.maximum(k, -2000), fmt)


def oracle_value(spec, scores, v_idx, v_norms, layer):
    """One query: scores [T] over values v_idx [T, d], v_norms [T] -> out [d]."""
    S, V, d = spec.formats["softmax"], spec.formats["value"], spec.dim
    z = npr(scores * npr(1 / math.sqrt(d), S), S)
    e = oracle_exp(npr(z - z.max(), S), S)
    total = 0.0
    bins = np.zeros((d, spec.levels))
    for t in range(scores.size):
        total = float(npr(total + e[t], S))
        w = npr(e[t] * float(v_norms[t]), V)
        bins[np.arange(d), v_idx[t]] = npr(bins[np.arange(d), v_idx[t]] + w, V)
    o = npr(bins[:, 0] * spec.codebook.rom_centroids[0], V)
    for j in range(1, spec.levels):
        o = npr(o + npr(bins[:, j] * spec.codebook.rom_centroids[j], V), V)
    gain = npr(1.0 / npr(total * d, V), V)
    return npr(spec.signs.vector(layer) * np_fwht(o, V) * gain, V)


# ---------------------------------------------------------------- helpers
def make_spec(dim=128, bits=3, n_layers=2, seed=0, **formats):
    return NumericsSpec.build(dim, bits, SignRom.from_seed(seed, n_layers, dim), FormatsConfig(**formats))


def test_spec_from_the_papers_macro():
    spec = NumericsSpec.from_macro(MacroConfig(), SignRom.from_seed(0, 1, 128))
    assert (spec.dim, spec.levels, spec.fmt_name("table"), spec.codebook.rom_bytes) == (128, 8, "fp16", 30)


def same_bits(a, b):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return a.shape == b.shape and bool(np.all((a.view(np.uint64) == b.view(np.uint64)) | (np.isnan(a) & np.isnan(b))))


def gaussian(shape, seed, scale=1.0):
    return (np.random.default_rng(seed).standard_normal(shape) * scale).astype(np.float32)


# ---------------------------------------------------------------- write path
@pytest.mark.parametrize("formats", [{}, {"rotator": "fp16"}, {"rotator": "fixed24.12", "input": "fp32"}])
def test_write_path_matches_numpy_oracle(formats):
    spec = make_spec(**formats)
    x = gaussian((300, 128), 1, scale=2.0)
    result = write_vectors(spec, x, 1, "k")
    idx, stored = oracle_write(spec, x.astype(np.float64), 1)
    assert np.array_equal(result.indices, idx)
    assert same_bits(result.norms.astype(np.float64), stored)
    assert result.norm_saturations == 0


def test_write_path_counts_match_the_papers_figures():
    spec = make_spec()
    actions = write_vectors(spec, gaussian((10, 128), 2), 0).actions
    per_vector = {k: v / 10 for k, v in actions.items()}
    assert per_vector["cmp.fp32"] == 896 and per_vector["rotator.butterfly"] == 448
    assert per_vector["add.fp32"] == 896 + 127 and per_vector["mul.fp32"] == 128 + 7
    assert per_vector["sqrt.fp32"] == 1 and per_vector["index_sram.write"] == 1


def test_zero_vector_stores_top_level_and_zero_norm_and_scores_zero():
    spec = make_spec()
    result = write_vectors(spec, np.zeros((1, 128), np.float32), 0)
    assert np.all(result.indices == 7) and result.norms[0] == 0
    scores, _ = read_scores(spec, gaussian((2, 128), 3), result.indices, result.norms, 0)
    assert np.all(scores == 0.0)


def test_norm_above_fp16_range_saturates_and_is_counted():
    spec = make_spec()
    x = np.full((3, 128), 1.0, np.float32)
    x[1] *= 10000.0  # norm 113137 > 65504
    result = write_vectors(spec, x, 0)
    assert result.norm_saturations == 1
    assert result.norms[1] == np.float16(65504.0) and np.isfinite(result.norms).all()
    assert np.array_equal(result.indices[1], result.indices[0])


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_or_inf_input_is_rejected_naming_the_tensor(bad):
    spec = make_spec()
    k = gaussian((1, 8, 128), 4)
    k[0, 5, 17] = bad
    with pytest.raises(NumericsError) as err:
        golden_layer(spec, k, None, gaussian((1, 1, 128), 5), np.array([7]), 1)
    assert err.value.where == "layers.1.k" and "[0, 5, 17]" in err.value.expected
    q = gaussian((2, 1, 128), 6)
    q[1, 0, 3] = bad
    with pytest.raises(NumericsError) as err:
        read_scores_gqa(spec, q, np.zeros((1, 4, 128), np.uint8), np.ones((1, 4)), 0)
    assert err.value.where == "q"


def test_values_beyond_the_fp16_input_range_are_rejected():
    with pytest.raises(NumericsError, match="65504"):
        write_vectors(make_spec(), np.full((1, 128), 7e4, np.float32), 0, "layers.0.v")


@pytest.mark.parametrize("call", ["shape", "positions", "heads"])
def test_bad_shapes_and_positions_are_rejected(call):
    spec = make_spec()
    idx, norms = np.zeros((2, 4, 128), np.uint8), np.ones((2, 4))
    with pytest.raises((NumericsError, TraceError)):
        if call == "shape":
            write_vectors(spec, np.zeros((3, 64), np.float32), 0)
        elif call == "positions":
            read_scores_gqa(spec, gaussian((2, 1, 128), 0), idx, norms, 0, q_positions=np.array([4]))
        else:
            read_scores_gqa(spec, gaussian((3, 1, 128), 0), idx, norms, 0)


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 2**20), st.integers(-6, 6))
def test_write_is_invariant_to_power_of_two_scaling(seed, shift):
    spec = make_spec(dim=32, bits=3)
    x = gaussian((4, 32), seed)
    a, b = write_vectors(spec, x, 0), write_vectors(spec, x * np.float32(2.0**shift), 0)
    assert np.array_equal(a.indices, b.indices)
    assert np.array_equal(a.norms.astype(np.float64) * 2.0**shift, b.norms.astype(np.float64))


# ---------------------------------------------------------------- read path
def test_read_path_fp16_is_bit_exact_against_numpy_float16():
    spec = make_spec(table="fp16", accumulator="fp16", score="fp16")
    k = write_vectors(spec, gaussian((200, 128), 7, 3.0), 1)
    q = gaussian((5, 128), 8, 0.5)
    scores, _ = read_scores(spec, q, k.indices, k.norms, 1)
    assert same_bits(scores, oracle_scores(spec, q, k.indices, k.norms, 1))


@pytest.mark.parametrize("formats", [
    {"table": "fp32", "accumulator": "fp32", "score": "fp32"},
    {"table": "fp16", "accumulator": "fp32", "score": "fp32"},
    {"table": "fp32", "accumulator": "fp16", "score": "fp16"},
    {"table": "fixed16.12", "accumulator": "fixed24.12", "score": "fp32"},
    {"table": "fp16", "accumulator": "fixed12.6", "score": "fixed20.8", "rotator": "fp16"},
])
def test_read_path_formats_are_bit_exact_against_oracle(formats):
    spec = make_spec(**formats)
    k = write_vectors(spec, gaussian((150, 128), 9, 2.0), 0)
    q = gaussian((3, 128), 10)
    scores, _ = read_scores(spec, q, k.indices, k.norms, 0)
    assert same_bits(scores, oracle_scores(spec, q, k.indices, k.norms, 0))


def test_read_counts_give_1024_plus_t_multiplications_and_102x():
    spec = make_spec()
    n_tok = 4096
    idx = np.random.default_rng(0).integers(0, 8, (n_tok, 128), dtype=np.uint8)
    _, actions = read_scores(spec, gaussian((1, 128), 11), idx, np.ones(n_tok, np.float16), 0)
    multiplications = sum(v for k, v in actions.items() if k.startswith("mul."))
    assert multiplications == 128 * 8 + n_tok == 5120
    assert n_tok * 128 / multiplications == pytest.approx(102.4)
    assert actions["add.fp16"] == n_tok * 127 and actions["table_sram.read"] == n_tok * 128
    assert actions["add.fp32"] == 896 and actions["rotator.butterfly"] == 448
    assert actions["index_sram.read"] == n_tok and actions["table_sram.write"] == 1024


def test_gqa_mapping_and_causal_mask():
    spec = make_spec(dim=16, bits=2)
    k = gaussian((2, 10, 16), 12)
    q = gaussian((4, 3, 16), 13)
    pos = np.array([0, 4, 9])
    layer = golden_layer(spec, k, None, q, pos, 1)
    for h in range(4):
        kv = h // 2
        full, _ = read_scores(spec, q[h], layer.k_indices[kv], layer.k_norms[kv], 1)
        for n, p in enumerate(pos):
            assert same_bits(layer.scores[h, n, : p + 1], full[n, : p + 1])
            assert np.isnan(layer.scores[h, n, p + 1 :]).all()


@pytest.mark.parametrize("bits, group, formats", [
    (3, 4, {}), (3, 4, {"table": "fp32", "accumulator": "fp32"}), (4, 4, {}), (3, 3, {}), (2, 8, {}),
])
def test_gqa_groups_read_keys_once_bit_exact_against_oracle(bits, group, formats):
    """The lookup kernel serves the query heads of a GQA group together (G = 4 has its own gather
    loop): every head's scores equal the oracle's, over several key blocks and a partial one."""
    spec = make_spec(bits=bits, **formats)
    n_kv, n_tok = 2, 150
    k = gaussian((n_kv, n_tok, 128), 40, 3.0)
    q = gaussian((n_kv * group, 2, 128), 41)
    pos = np.array([70, n_tok - 1])
    layer = golden_layer(spec, k, None, q, pos, 1)
    for h in range(n_kv * group):
        kv = h // group
        ref = oracle_scores(spec, q[h], layer.k_indices[kv], layer.k_norms[kv], 1)
        for n, p in enumerate(pos):
            assert same_bits(layer.scores[h, n, : p + 1], ref[n, : p + 1])


def test_asymmetric_identity_in_float64():
    spec = make_spec()
    signs = spec.signs.vector(0)
    keys = gaussian((64, 128), 14, 5.0).astype(np.float64)
    q = gaussian((4, 128), 15).astype(np.float64)
    idx, norms = quantize_f64(keys, signs, spec.codebook)
    lut = lut_scores_f64(q, idx, norms, signs, spec.codebook)
    direct = q @ dequantize_f64(idx, norms, signs, spec.codebook).T
    assert np.max(np.abs(lut - direct)) <= 1e-12 * np.max(np.abs(direct))


def test_fp32_golden_is_close_to_the_float64_quantize_dequantize_path():
    spec = make_spec(input="fp32", table="fp32", accumulator="fp32", value="fp32")
    k, v = gaussian((2, 300, 128), 16, 2.0), gaussian((2, 300, 128), 17)
    q = gaussian((4, 5, 128), 18, 0.3)
    pos = np.array([10, 50, 100, 200, 299])
    golden = golden_layer(spec, k, v, q, pos, 1)
    rom = dataclasses.replace(spec.codebook, centroids=spec.codebook.rom_centroids, boundaries=spec.codebook.rom_boundaries)
    ref = qdq_attention_f64(k, v, q, pos, spec.signs.vector(1), rom)
    m = attention_metrics(golden.scores, ref.scores, 128, golden.outputs, ref.outputs)
    # with the same (FP16 ROM) codebook only fp32 rounding and the FP16 stored norms differ
    assert m["score_rel_rmse"] < 1e-3 and m["output_rel_rmse"] < 1e-3 and m["top1_agreement"] == 1.0
    exact = qdq_attention_f64(k, v, q, pos, spec.signs.vector(1), spec.codebook)
    m_exact = attention_metrics(golden.scores, exact.scores, 128, golden.outputs, exact.outputs)
    assert m_exact["score_rel_rmse"] < 2e-2 and m_exact["attn_kl"] < 1e-3


# ---------------------------------------------------------------- value path
@pytest.mark.parametrize("formats", [{}, {"softmax": "fp16", "value": "fp16"}, {"value": "fixed32.16"}])
def test_value_path_matches_numpy_oracle(formats):
    spec = make_spec(**formats)
    k, v = gaussian((1, 40, 128), 19, 2.0), gaussian((1, 40, 128), 20)
    q = gaussian((2, 2, 128), 21, 0.3)
    pos = np.array([17, 39])
    layer = golden_layer(spec, k, v, q, pos, 0)
    for h in range(2):
        for n, p in enumerate(pos):
            expected = oracle_value(spec, layer.scores[h, n, : p + 1], layer.v_indices[0, : p + 1], layer.v_norms[0, : p + 1], 0)
            assert same_bits(layer.outputs[h, n], expected)


def test_value_path_counts():
    spec = make_spec()
    n_tok = 50
    scores = gaussian((1, 1, n_tok), 22).astype(np.float64)
    _, actions = attend(spec, scores, np.zeros((1, n_tok, 128), np.uint8), np.ones((1, n_tok)), 0)
    assert actions["exp.fp32"] == n_tok and actions["div.fp32"] == 1 and actions["cmp.fp32"] == n_tok - 1
    assert actions["mul.fp32"] == n_tok + (n_tok + 128 * 8 + 1 + 128)
    assert actions["add.fp32"] == 2 * n_tok + n_tok * 128 + 128 * 7 + 896


@pytest.mark.parametrize("name, lowest, unit", [("fp32", -80.0, 2.0**-24), ("fp16", -9.0, 2.0**-11)])
def test_exp_unit_error_bound(name, lowest, unit):
    """The contract's exp unit (bit-exact with the golden kernel via the value-path tests):
    relative error <= u (4 + 1.5 |x|): the range reduction rounds x*log2(e) in the format,
    so the error grows with |x| (about 60 ulp at x = -80 in fp32, 3 ulp for |x| < 1)."""
    x = -np.linspace(0.0, -lowest, 20001)
    rel = np.abs(oracle_exp(x, parse_format(name)) / np.exp(x) - 1.0)
    assert np.all(rel <= unit * (4.0 + 1.5 * np.abs(x)))
    assert np.max(rel[x > -1.0]) <= 4 * unit


# ---------------------------------------------------------------- random shapes, whole layer
@settings(max_examples=25, deadline=None)
@given(
    st.sampled_from([8, 16, 64]), st.integers(1, 4), st.integers(1, 30), st.integers(1, 2),
    st.integers(1, 4), st.integers(0, 2**20), st.integers(-3, 3),
)
def test_whole_layer_is_bit_exact_against_oracle(dim, bits, n_tok, n_kv, group, seed, exponent):
    spec = make_spec(dim=dim, bits=bits)
    rng = np.random.default_rng(seed)
    k = (rng.standard_normal((n_kv, n_tok, dim)) * 10.0**exponent).astype(np.float32)
    v = rng.standard_normal((n_kv, n_tok, dim)).astype(np.float32)
    q = rng.standard_normal((n_kv * group, 2, dim)).astype(np.float32)
    pos = np.sort(rng.integers(0, n_tok, 2))
    layer = golden_layer(spec, k, v, q, pos, 1)
    for kv in range(n_kv):
        idx, stored = oracle_write(spec, k[kv].astype(np.float64), 1)
        assert np.array_equal(layer.k_indices[kv], idx) and same_bits(layer.k_norms[kv].astype(np.float64), stored)
    for h in range(n_kv * group):
        kv = h // group
        ref = oracle_scores(spec, q[h], layer.k_indices[kv], layer.k_norms[kv], 1)
        for n, p in enumerate(pos):
            assert same_bits(layer.scores[h, n, : p + 1], ref[n, : p + 1])
            out = oracle_value(spec, layer.scores[h, n, : p + 1], layer.v_indices[kv, : p + 1], layer.v_norms[kv, : p + 1], 1)
            assert same_bits(layer.outputs[h, n], out)


# ---------------------------------------------------------------- packing
@settings(max_examples=40, deadline=None)
@given(st.integers(1, 8), st.sampled_from([8, 16, 128]), st.integers(1, 5), st.integers(0, 2**20))
def test_pack_unpack_round_trip(bits, dim, n, seed):
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, 1 << bits, (n, dim), dtype=np.uint8)
    norms = rng.standard_normal(n).astype(np.float16)
    rows = pack_indices(idx, bits)
    assert rows.shape == (n, dim * bits // 8)
    assert np.array_equal(unpack_indices(rows, bits, dim), idx)
    full = pack_rows(idx, norms, bits)
    assert full.shape[1] * 8 == dim * bits + 16
    back_idx, back_norms = unpack_rows(full, bits, dim)
    assert np.array_equal(back_idx, idx) and np.array_equal(back_norms.view(np.uint16), norms.view(np.uint16))


def test_pack_layout_is_little_endian_within_the_row():
    idx = np.zeros((1, 8), np.uint8)
    idx[0, 0], idx[0, 1], idx[0, 2] = 5, 3, 7  # bits 0-2: 101, bits 3-5: 011, bits 6-8: 111
    rows = pack_indices(idx, 3)
    assert rows[0, 0] == 0b11011101 and rows[0, 1] == 0b1 and rows.shape == (1, 3)
