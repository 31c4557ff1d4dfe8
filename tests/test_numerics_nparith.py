"""The golden arithmetic as vectorised numpy (axelsim.numerics.nparith): numpy's float16 and
float32 conversions against the exact rational oracle, and each operation bit for bit against
the compiled golden helpers of axelsim.numerics.fp / kernels (independent implementations)."""

from fractions import Fraction

import numba as nb
import numpy as np
import pytest

from axelsim.config.formats import FP16, FP32, parse_format
from axelsim.numerics import nparith as ar
from axelsim.numerics.fp import add_round, format_code, mul_round, round_to
from axelsim.numerics.golden import exp_constants
from axelsim.numerics.kernels import exp_unit, fwht_rounded, tree_sum_rounded
from test_numerics_fp import exact_round, same_bits

FORMATS = ["fp16", "fp32", "fixed16.8", "fixed32.20"]
pytestmark = pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")  # roundings to inf are results


def _hard_values(rng) -> np.ndarray:
    """Ties and near-ties of fp16 and fp32, subnormals of both, the overflow edges, wide spread."""
    mids16 = (np.arange(1, 2048) + 0.5) * 2.0**-10
    mids32 = (rng.integers(1, 2**23, 500) + 0.5) * 2.0**-23
    sub = rng.integers(1, 2**11, 300) * 2.0**-25
    x = np.concatenate([mids16, mids16 + 2.0**-40, mids16 - 2.0**-40, mids32, mids32 * (1 + 2.0**-50), sub,
                        rng.standard_normal(500) * 10.0 ** rng.uniform(-9, 6, 500),
                        [65504.0, 65519.99999, 65520.0, 2.0**-24, 2.0**-25, 2.0**-25 + 2.0**-70, 3.4e38, 3.5e38]])
    return np.concatenate([x, -x])


@pytest.mark.parametrize("name", FORMATS)
def test_rnd_of_float64_equals_exact_oracle(name):
    fmt = parse_format(name)
    x = _hard_values(np.random.default_rng(3))
    expected = np.array([exact_round(Fraction(v), fmt) for v in x])
    got = ar.rnd(x, fmt)
    assert np.array_equal(got, expected)  # +0 == -0: the oracle has no signed zero


def test_fp16_rnd_of_float32_equals_float64_route():
    x = _hard_values(np.random.default_rng(4)).astype(np.float32)
    got = ar.rnd(x, FP16)
    assert got.dtype == np.float32
    assert same_bits(got.astype(np.float64), round_to(x.astype(np.float64), FP16))


@nb.njit(cache=True)
def _golden_ops(a, b, code, mul_out, add_out):
    for i in range(a.size):
        mul_out[i] = mul_round(a[i], b[i], code)
        add_out[i] = add_round(a[i], b[i], code)


@pytest.mark.parametrize("name", FORMATS)
def test_mul_and_add_odd_equal_the_golden_helpers(name):
    fmt = parse_format(name)
    rng = np.random.default_rng(5)
    a = np.concatenate([rng.integers(-(2**31), 2**31, 2000) / 2.0**20, _hard_values(rng)[:2000]])  # fixed32.20 and wide
    b = np.concatenate([rng.standard_normal(2000).astype(np.float32), rng.standard_normal(a.size - 2000) * 1e-3])
    mul_out, add_out = np.empty_like(a), np.empty_like(a)
    _golden_ops(a, b, format_code(fmt), mul_out, add_out)
    assert same_bits(ar.mul(a, b, fmt, is_wide=True), mul_out)
    assert same_bits(ar.add_odd(a, b, fmt), add_out)


def test_native_float32_path_equals_float64_route():
    rng = np.random.default_rng(6)
    a = ar.rnd(rng.standard_normal(5000) * 10.0 ** rng.uniform(-20, 20, 5000), FP32)
    b = ar.rnd(rng.standard_normal(5000), FP16)
    assert same_bits(ar.mul(a.astype(np.float32), b.astype(np.float32), FP32).astype(np.float64), ar.mul(a, b, FP32))
    assert same_bits(ar.add(a.astype(np.float32), b.astype(np.float32), FP32).astype(np.float64), ar.add(a, b, FP32))
    # an fp16 result of float32 operands is computed in float64 (no double rounding through float32)
    assert same_bits(ar.mul(a.astype(np.float32), b.astype(np.float32), FP16), ar.mul(a, b, FP16))


@nb.njit(cache=True)
def _golden_tree_fwht(x, code, tree_out, fwht_out):
    for r in range(x.shape[0]):
        buf = x[r].copy()
        tree_out[r], _ = tree_sum_rounded(buf, code)
        u = x[r].copy()
        fwht_rounded(u, code)
        fwht_out[r] = u


@pytest.mark.parametrize("name", ["fp16", "fp32", "fixed16.8"])
def test_tree_and_fwht_equal_the_golden_kernels(name):
    fmt = parse_format(name)
    x = np.random.default_rng(7).standard_normal((300, 64)) * 8.0  # finer than fp16: the first stage needs odd rounding
    tree_out, fwht_out = np.empty(300), np.empty((300, 64))
    _golden_tree_fwht(x, format_code(fmt), tree_out, fwht_out)
    assert same_bits(ar.fwht(x, fmt, fine_input=True), fwht_out)
    xf = ar.rnd(x, fmt)
    _golden_tree_fwht(xf, format_code(fmt), tree_out, fwht_out)
    assert same_bits(ar.tree_sum(xf, fmt), tree_out)
    assert same_bits(ar.fwht(xf, fmt), fwht_out)


@pytest.mark.parametrize("name", ["fp16", "fp32"])
def test_fwht_in_chunks_equals_the_golden_kernel(name, monkeypatch):
    """Chunks of 7 vectors (the last one partial) of a [3, 100, 64] batch: the same bits as the
    golden kernel vector by vector, with and without the fine first stage."""
    monkeypatch.setattr(ar, "FWHT_CHUNK_ELEMENTS", 7 * 64)
    fmt = parse_format(name)
    x = np.random.default_rng(11).standard_normal((300, 64)) * 8.0
    tree_out, fwht_out = np.empty(300), np.empty((300, 64))
    _golden_tree_fwht(x, format_code(fmt), tree_out, fwht_out)
    assert same_bits(ar.fwht(x.reshape(3, 100, 64), fmt, fine_input=True), fwht_out.reshape(3, 100, 64))
    xf = ar.rnd(x, fmt)
    _golden_tree_fwht(xf, format_code(fmt), tree_out, fwht_out)
    assert same_bits(ar.fwht(xf.reshape(3, 100, 64), fmt), fwht_out.reshape(3, 100, 64))


@nb.njit(cache=True)
def _golden_exp(x, code, log2e, coeffs, out):
    for i in range(x.size):
        out[i] = exp_unit(x[i], code, log2e, coeffs)


@pytest.mark.parametrize("name", ["fp16", "fp32"])
def test_exp_unit_equals_the_golden_exp_unit(name):
    fmt = parse_format(name)
    log2e, coeffs = exp_constants(fmt)
    x = ar.rnd(np.concatenate([-np.abs(np.random.default_rng(8).standard_normal(3000)) * 10.0 ** np.linspace(-8, 3, 3000),
                               [0.0, -0.0, -np.inf, np.nan, -1e4, 10.0]]), fmt)
    out = np.empty_like(x)
    _golden_exp(x, format_code(fmt), log2e, np.asarray(coeffs), out)
    assert same_bits(ar.exp_unit(x, fmt, log2e, np.asarray(coeffs)), out)


def _fp16_values() -> np.ndarray:
    """Every finite FP16 value, ascending, as float32 (+0 and -0 both)."""
    h = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16).view(np.float16)
    return np.sort(h[np.isfinite(h)].astype(np.float32))


def _fp16_edges() -> np.ndarray:
    """Every FP16 value, every midpoint of two neighbours (exact in float32) and the float32
    neighbours of each midpoint, both signs; the overflow edge 65520 and beyond."""
    h = _fp16_values()
    mids = ((h[1:].astype(np.float64) + h[:-1]) / 2).astype(np.float32)
    assert np.array_equal(mids.astype(np.float64), (h[1:].astype(np.float64) + h[:-1]) / 2)  # exact
    top = np.array([65520.0, 65536.0, 1e30], dtype=np.float32)
    return np.concatenate([h, mids, np.nextafter(mids, np.float32(np.inf)), np.nextafter(mids, np.float32(-np.inf)),
                           top, -top])


def test_round_fp16_is_the_exact_rounding_of_every_fp16_value_midpoint_and_neighbour():
    x = _fp16_edges()
    got = ar.round_fp16(x)
    assert got.dtype == np.float32
    expected = np.array([exact_round(Fraction(float(v)), FP16) if abs(v) < 65520.0 else np.copysign(np.inf, v)
                         for v in x.tolist()])
    assert np.array_equal(got.astype(np.float64), expected)  # +0 == -0 here; the signs below
    assert same_bits(got.astype(np.float64), x.astype(np.float16).astype(np.float64))  # signed zeros too
    special = ar.round_fp16(np.array([np.inf, -np.inf, np.nan], dtype=np.float32))
    assert special[0] == np.inf and special[1] == -np.inf and np.isnan(special[2])


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")  # inf - inf in the trees
def test_fp16_lanes_in_float32_equal_the_float64_route():
    """mul16 and tree_sum16 (native float32, then FP16) against the float64 route (exact
    products and sums of FP16 values, one rounding) on every FP16 value with random partners,
    and against the exact rational oracle on a sample."""
    rng = np.random.default_rng(7)
    a = _fp16_values()
    a = np.concatenate([a, -a])
    b = rng.permutation(a)
    assert same_bits(ar.mul16(a, b).astype(np.float64), ar.mul(a.astype(np.float64), b.astype(np.float64), FP16))
    pairs = np.stack([a, b], axis=-1)
    assert same_bits(ar.tree_sum16(pairs).astype(np.float64), ar.tree_sum(pairs.astype(np.float64), FP16))
    rows = rng.permutation(a)[: 64 * 1024].reshape(1024, 64)
    assert same_bits(ar.tree_sum16(rows).astype(np.float64), ar.tree_sum(rows.astype(np.float64), FP16))
    pick = rng.integers(0, a.size, 3000)
    exact_mul = [exact_round(Fraction(float(x)) * Fraction(float(y)), FP16) for x, y in zip(a[pick], b[pick])]
    exact_add = [exact_round(Fraction(float(x)) + Fraction(float(y)), FP16) for x, y in zip(a[pick], b[pick])]
    assert np.array_equal(ar.mul16(a[pick], b[pick]).astype(np.float64), exact_mul)
    assert np.array_equal(ar.tree_sum16(pairs[pick]).astype(np.float64), exact_add)


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
def test_round_fp16_equals_numpys_conversion_on_a_sweep_of_float32_and_float64_bit_patterns():
    """round_fp16 (the golden model's compiled rounding) against numpy's float16 conversion, bit
    for bit (zero signs too; NaN where numpy gives NaN: the rounding keeps a NaN's payload,
    numpy's conversion truncates it): float32 patterns every 4099 (all exponents, both signs,
    NaNs), a non-contiguous view of them, float64 patterns near FP16 midpoints and ties, in
    float32 and float64 results."""
    f32 = np.arange(0, 2**32, 4099, dtype=np.uint64).astype(np.uint32).view(np.float32)[:1047795].reshape(-1, 7, 3)[:, :, ::-1]
    assert not f32.flags.c_contiguous and np.isnan(f32).any()
    expected = f32.astype(np.float16).astype(np.float32)
    got = ar.round_fp16(f32)
    assert got.shape == f32.shape and got.dtype == np.float32
    assert same_bits(got, expected)
    mids = _fp16_edges().astype(np.float64)
    rng = np.random.default_rng(9)
    f64 = np.concatenate([mids, np.nextafter(mids, np.inf), np.nextafter(mids, -np.inf), mids * (1 + 2.0**-40),
                          rng.integers(0, 2**64, 300000, dtype=np.uint64).view(np.float64),
                          rng.standard_normal(100000) * 10.0 ** rng.uniform(-12, 6, 100000)])
    expected = f64.astype(np.float16)
    assert same_bits(ar.round_fp16(f64, np.float64), expected.astype(np.float64))
    assert same_bits(ar.round_fp16(f64), expected.astype(np.float32))
    assert same_bits(ar.rnd(f64, FP16), expected.astype(np.float64))
    assert ar.round_fp16(np.float64(1.0 + 2.0**-11)).shape == () and ar.round_fp16(np.zeros(0)).shape == (0,)
    assert ar.round_fp16(np.array([1, 2049], dtype=np.int64)).tolist() == [1.0, 2048.0]  # other dtypes via float64
