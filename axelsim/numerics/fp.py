"""Rounding to the datapath number formats (IEEE round to nearest, ties to even).

Every datapath value is held in a float64 (or, on the fast read path, a float32) that is
exactly representable in its format. An operation is computed in float64 and rounded once
to its result format with the functions here. That is the correctly rounded result when

- the exact result fits in float64 (every product in the contract: at most 24 x 24 bits), or
- both operands already lie in the result format (IEEE double rounding through a format of
  p' >= 2p + 2 significand bits is innocuous for +, -, x, /, sqrt: 53 >= 2*24 + 2).

The mixed cases, a sum of two operands finer than its result format (first FWHT stage with
fp32 input and an fp16 rotator) and a product wider than 53 bits (a fixed<W> score with
W > 29 times the fp32 softmax scale), go through `add_round` / `mul_round`, which round the
float64 result to odd before the final rounding (exact: round-to-odd into p + 2 or more bits
never double-rounds).

A format is passed to kernels as a `FormatCode`: a 4-tuple of floats (kind, scale, lo, hi);
for fixed<W>.<F>, scale = 2**F and the integer grid is saturated to [lo, hi] =
[-2**(W-1), 2**(W-1) - 1]. Floating formats overflow to infinity; NaN passes through.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np
from numba import types
from numba.extending import overload

from axelsim.config.formats import NumberFormat

FP16_KIND = 0.0
FP32_KIND = 1.0
FIXED_KIND = 2.0

FP16_MAX = 65504.0
"""Largest finite binary16 value."""
_FP16_OVERFLOW = 65520.0  # halfway between 65504 and 2**16: ties to even round up to inf
_FP16_MIN_NORMAL = 2.0**-14
_SUBNORMAL_SHIFT_F64 = 2.0**28  # its float64 ulp is 2**-24, the binary16 subnormal step

FormatCode = tuple[float, float, float, float]


def format_code(fmt: NumberFormat) -> FormatCode:
    """The kernel encoding of a number format: (kind, 2**F, lo, hi) with the fixed grid range."""
    if fmt.kind == "fp16":
        return (FP16_KIND, 1.0, 0.0, 0.0)
    if fmt.kind == "fp32":
        return (FP32_KIND, 1.0, 0.0, 0.0)
    if fmt.kind == "fixed":
        half = float(2 ** (fmt.width_bits - 1))
        return (FIXED_KIND, float(2**fmt.frac_bits), -half, half - 1.0)
    raise ValueError(f"unknown number format kind {fmt.kind!r}")


def float32_holds(fmt: NumberFormat) -> bool:
    """True when every value of `fmt` is exactly a float32 (fp16 and fp32)."""
    return fmt.kind in ("fp16", "fp32")


def max_finite(fmt: NumberFormat) -> float:
    """Largest finite value of a format."""
    if fmt.kind == "fp16":
        return FP16_MAX
    if fmt.kind == "fp32":
        return float(np.finfo(np.float32).max)
    return (2 ** (fmt.width_bits - 1) - 1) / 2**fmt.frac_bits


@nb.njit(cache=True, nogil=True)
def round_fp16_f64(x: float) -> float:
    """float64 -> nearest binary16 value (ties to even), returned as float64."""
    if x != x:
        return x
    ax = abs(x)
    if ax >= _FP16_OVERFLOW:
        return math.copysign(math.inf, x)
    if ax < _FP16_MIN_NORMAL:
        return math.copysign((ax + _SUBNORMAL_SHIFT_F64) - _SUBNORMAL_SHIFT_F64, x)
    bits = np.float64(ax).view(np.uint64)
    lsb = (bits >> np.uint64(42)) & np.uint64(1)
    bits = (bits + np.uint64(0x1FFFFFFFFFF) + lsb) & np.uint64(0xFFFFFC0000000000)
    return math.copysign(np.uint64(bits).view(np.float64), x)


@nb.njit(cache=True, nogil=True)
def round_fp16_f32(x: np.float32) -> np.float32:
    """float32 -> nearest binary16 value (ties to even), returned as float32.

    Branch-free (both roundings computed, then selected) so that loops over it vectorise.
    """
    bits = np.float32(x).view(np.uint32)
    sign = bits & np.uint32(0x80000000)
    abits = bits & np.uint32(0x7FFFFFFF)
    lsb = (abits >> np.uint32(13)) & np.uint32(1)
    normal = (abits + np.uint32(0xFFF) + lsb) & np.uint32(0xFFFFE000)
    ax = np.uint32(abits).view(np.float32)
    subnormal = np.float32((ax + np.float32(0.5)) - np.float32(0.5)).view(np.uint32)  # 2^-24 grid
    r = normal if abits >= np.uint32(0x38800000) else subnormal  # 2**-14
    r = np.uint32(0x7F800000) if abits >= np.uint32(0x477FF000) else r  # 65520 -> inf
    r = abits if abits > np.uint32(0x7F800000) else r  # NaN passes through
    return np.uint32(r | sign).view(np.float32)


@nb.njit(cache=True, nogil=True)
def round_fixed(x: float, scale: float, lo: float, hi: float) -> float:
    """float64 -> nearest point of the 2**-F grid (ties to even), saturated to [lo, hi]/2**F."""
    m = np.rint(x * scale)
    if m > hi:
        m = hi
    elif m < lo:
        m = lo
    return m / scale


@nb.njit(cache=True, nogil=True)
def rnd(x: float, code: FormatCode) -> float:
    """Round a float64 to the format `code` (a FormatCode), returned as float64."""
    kind = code[0]
    if kind == FP16_KIND:
        return round_fp16_f64(x)
    if kind == FP32_KIND:
        return np.float64(np.float32(x))
    return round_fixed(x, code[1], code[2], code[3])


def rnd_same(x, code):
    """Round `x` to format `code`, keeping x's float type (float32 only for fp16/fp32)."""
    raise NotImplementedError("rnd_same is only callable inside numba kernels")


@overload(rnd_same, jit_options={"cache": True})
def _rnd_same_overload(x, code):
    if isinstance(x, types.Float) and x.bitwidth == 32:

        def impl32(x, code):
            if code[0] == FP16_KIND:
                return round_fp16_f32(x)
            return x

        return impl32

    def impl64(x, code):
        return rnd(x, code)

    return impl64


def round_fp16_same(x):
    """Round `x` to fp16 keeping its float type (kernel-only, dispatches on float32/float64)."""
    raise NotImplementedError("round_fp16_same is only callable inside numba kernels")


@overload(round_fp16_same, jit_options={"cache": True})
def _round_fp16_same_overload(x):
    if isinstance(x, types.Float) and x.bitwidth == 32:
        return lambda x: round_fp16_f32(x)
    return lambda x: round_fp16_f64(x)


@nb.njit(cache=True, nogil=True)
def _round_array(flat: np.ndarray, out: np.ndarray, code: FormatCode) -> None:
    for i in range(flat.size):
        out[i] = rnd(np.float64(flat[i]), code)


@nb.njit(cache=True, nogil=True)
def _is_odd_f64(x: float) -> bool:
    return (np.float64(x).view(np.uint64) & np.uint64(1)) == np.uint64(1)


@nb.njit(cache=True, nogil=True)
def add_round(a: float, b: float, code: FormatCode) -> float:
    """rnd_F(a + b) correctly rounded even when a and b are finer than F (round-to-odd)."""
    s = a + b
    bb = s - a
    err = (a - (s - bb)) + (b - bb)  # TwoSum: a + b = s + err exactly
    if err != 0.0 and not _is_odd_f64(s) and s == s and abs(s) != math.inf:
        s = np.nextafter(s, math.inf if err > 0.0 else -math.inf)
    return rnd(s, code)


@nb.njit(cache=True, nogil=True)
def _split(a: float) -> tuple[float, float]:
    c = 134217729.0 * a  # Veltkamp split with 2**27 + 1
    hi = c - (c - a)
    return hi, a - hi


@nb.njit(cache=True, nogil=True)
def mul_round(a: float, b: float, code: FormatCode) -> float:
    """rnd_F(a * b) correctly rounded even when the exact product exceeds 53 bits.

    Dekker's TwoProduct gives the float64 product's error exactly; the product is then
    rounded to odd before the final rounding (as in `add_round`).
    """
    p = a * b
    if p != p or abs(p) == math.inf or p == 0.0:
        return rnd(p, code)
    a_hi, a_lo = _split(a)
    b_hi, b_lo = _split(b)
    err = ((a_hi * b_hi - p) + a_hi * b_lo + a_lo * b_hi) + a_lo * b_lo
    if err != 0.0 and not _is_odd_f64(p):
        p = np.nextafter(p, math.inf if err > 0.0 else -math.inf)
    return rnd(p, code)


def round_to(x: np.ndarray | float, fmt: NumberFormat) -> np.ndarray:
    """Vectorised rnd_F over an array (any shape, any float dtype); returns float64."""
    arr = np.array(x, dtype=np.float64, order="C")
    out = np.empty_like(arr)
    _round_array(arr.reshape(-1), out.reshape(-1), format_code(fmt))
    return out
