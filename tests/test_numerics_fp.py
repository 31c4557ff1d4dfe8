"""Rounding to fp16 / fp32 / fixed point: against numpy and an exact rational oracle."""

from fractions import Fraction

import numba as nb
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from axelsim.config.formats import FP16, FP32, parse_format
from axelsim.numerics.fp import add_round, format_code, mul_round, rnd_same, round_fp16_f32, round_to
from axelsim.numerics.kernels import round_fp16_fast


def exact_round(value: Fraction, fmt) -> float:
    """Independent oracle: round an exact rational to fmt (RNE), by integer arithmetic."""
    if fmt.kind == "fixed":
        scaled = value * 2**fmt.frac_bits
        m = round(scaled)  # Python rounds Fractions half to even
        half = 2 ** (fmt.width_bits - 1)
        return float(min(max(m, -half), half - 1)) / 2**fmt.frac_bits
    mant, emin, emax = (10, -14, 15) if fmt.kind == "fp16" else (23, -126, 127)
    if value == 0:
        return 0.0
    mag = abs(value)
    e = mag.numerator.bit_length() - mag.denominator.bit_length()
    if Fraction(2) ** e > mag:
        e -= 1
    e = max(e, emin)
    ulp = Fraction(2) ** (e - mant)
    rounded = round(mag / ulp) * ulp
    if rounded >= Fraction(2) ** (emax + 1):
        return float("inf") if value > 0 else float("-inf")
    return float(rounded) if value > 0 else -float(rounded)


def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    a64, b64 = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return bool(np.all((a64.view(np.uint64) == b64.view(np.uint64)) | (np.isnan(a64) & np.isnan(b64))))


def same_value(got: float, expected: float) -> bool:
    """Equal values (+0 == -0: the rational oracle has no signed zero) or both NaN."""
    return bool(got == expected or (np.isnan(got) and np.isnan(expected)))


@nb.njit(cache=True)
def _round_f32_array(a, code):
    out = np.empty_like(a)
    for i in range(a.size):
        out[i] = rnd_same(a[i], code)
    return out


@nb.njit(cache=True)
def _add_round_array(a, b, code):
    out = np.empty_like(a)
    for i in range(a.size):
        out[i] = add_round(a[i], b[i], code)
    return out


@nb.njit(cache=True)
def _mul_round_array(a, b, code):
    out = np.empty_like(a)
    for i in range(a.size):
        out[i] = mul_round(a[i], b[i], code)
    return out


def _float32_sample() -> np.ndarray:
    bits = np.arange(0, 2**32, 4099, dtype=np.uint64).astype(np.uint32)
    edges = np.array([0.0, -0.0, 65504.0, 65519.996, 65520.0, 65536.0, 2.0**-14, 2.0**-24, 2.0**-25,
                      3 * 2.0**-25, 2.0**-26, 1 + 2.0**-11, 1 + 3 * 2.0**-11, np.inf, -np.inf, np.nan],
                     dtype=np.float32)
    return np.concatenate([bits.view(np.float32), edges, -edges])


def test_fp16_rounding_matches_numpy_float16_on_float32_patterns():
    x = _float32_sample()
    with np.errstate(over="ignore", invalid="ignore"):
        expected = x.astype(np.float16).astype(np.float64)
        assert same_bits(round_to(x, FP16), expected)


def test_fp16_rounding_of_float32_values_in_float32_kernels():
    x = _float32_sample()
    with np.errstate(over="ignore", invalid="ignore"):
        expected = x.astype(np.float16).astype(np.float64)
        assert same_bits(_round_f32_array(x, format_code(FP16)).astype(np.float64), expected)


def test_fp16_rounding_of_float64_values_matches_exact_oracle():
    rng = np.random.default_rng(1)
    mids = (np.arange(1, 2048) + 0.5) * 2.0**-10  # exact fp16 midpoints in [1, 2)
    x = np.concatenate([mids, mids + 2.0**-40, mids - 2.0**-40, rng.standard_normal(500) * 1e3,
                        rng.standard_normal(200) * 1e-6, [65519.99999, 65520.0, 2.0**-25 + 2.0**-70]])
    expected = np.array([exact_round(Fraction(v), FP16) for v in x])
    assert same_bits(round_to(x, FP16), expected)


def test_fp32_rounding_matches_numpy_float32():
    x = np.random.default_rng(2).standard_normal(1000) * 10.0 ** np.arange(-20, 20, 0.04)
    assert same_bits(round_to(x, FP32), x.astype(np.float32).astype(np.float64))


@pytest.mark.parametrize("name, value, expected", [
    ("fixed8.2", 0.125, 0.0), ("fixed8.2", 0.375, 0.5), ("fixed8.2", -0.375, -0.5),
    ("fixed8.2", 100.0, 31.75), ("fixed8.2", -100.0, -32.0), ("fixed16.0", 2.5, 2.0), ("fixed16.0", 3.5, 4.0),
])
def test_fixed_point_rounds_to_even_and_saturates(name, value, expected):
    assert round_to(value, parse_format(name)) == expected


def test_sum_of_fp32_operands_rounds_once_to_fp16():
    # a is an fp16 midpoint (1 + 2^-11, exact in fp32); b is far below a's float64 ulp:
    # naive float64 rounding then fp16 rounding ties to even (down); the exact sum rounds up.
    a = np.array([1 + 2.0**-11, 1 + 2.0**-11, 1 + 3 * 2.0**-11, 3.0])
    b = np.array([2.0**-100, -(2.0**-100), -(2.0**-100), 2.0**-60])
    expected = np.array([exact_round(Fraction(x) + Fraction(y), FP16) for x, y in zip(a, b)])
    assert same_bits(_add_round_array(a, b, format_code(FP16)), expected)
    assert expected[0] == 1 + 2.0**-10 and expected[1] == 1.0


@settings(max_examples=300, deadline=None)
@given(st.floats(-1e4, 1e4, width=32), st.floats(-1e4, 1e4, width=32),
       st.sampled_from(["fp16", "fp32", "fixed16.8", "fixed32.20"]))
def test_add_round_is_correctly_rounded(a, b, name):
    fmt = parse_format(name)
    got = _add_round_array(np.array([a]), np.array([b]), format_code(fmt))[0]
    assert same_value(got, exact_round(Fraction(a) + Fraction(b), fmt))


@settings(max_examples=300, deadline=None)
@given(st.integers(-(2**31), 2**31 - 1), st.floats(-1e3, 1e3, width=32), st.sampled_from(["fp32", "fp16"]))
def test_mul_round_of_wide_fixed_operand_is_correctly_rounded(m, b, name):
    a = m / 2.0**20  # a fixed32.20 value: 32 significant bits, times a 24-bit float
    fmt = parse_format(name)
    got = _mul_round_array(np.array([a]), np.array([b]), format_code(fmt))[0]
    assert same_value(got, exact_round(Fraction(a) * Fraction(b), fmt))


@nb.njit(cache=True)
def _fast_vs_reference(bits_in, out):
    for n in range(bits_in.size):
        x = np.uint32(bits_in[n]).view(np.float32)
        a = np.float32(round_fp16_fast(x)).view(np.uint32)
        b = np.float32(round_fp16_f32(x)).view(np.uint32)
        out[n] = a != b


def test_native_fp16_rounding_of_the_read_kernel_equals_round_fp16_f32():
    """The read kernel's tree rounds float32 sums with the CPU's fp16 conversion (F16C) when it
    has one: same bits as round_fp16_f32 for every high half-word (all exponents, signs, the
    fp16 subnormal range, the overflow edge, inf, NaNs) with low half-words that exercise ties."""
    hi = np.arange(1 << 16, dtype=np.uint32) << np.uint32(16)
    lows = np.array([0, 1, 0x0FFF, 0x1000, 0x1001, 0x1FFF, 0x2000, 0x3000, 0x7FFF, 0x8000, 0xE000, 0xF000, 0xFFFF],
                    dtype=np.uint32)
    patterns = (hi[:, None] | lows[None, :]).reshape(-1)
    rng = np.random.default_rng(0)
    patterns = np.concatenate([patterns, rng.integers(0, 1 << 32, 1 << 20, dtype=np.uint64).astype(np.uint32)])
    out = np.zeros(patterns.size, dtype=np.bool_)
    _fast_vs_reference(patterns, out)
    assert not out.any(), [hex(v) for v in patterns[out][:5]]
