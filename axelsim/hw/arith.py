"""The cycle model's own arithmetic: one correctly rounded operation per call, per format.

Values travel as float64 arrays holding exactly the value of their format. Techniques (chosen
to differ from the golden model's bit tricks, so `bit_exact` is a real check):

- fp16 / fp32 add, sub, div, sqrt: compute in float64, then `.astype(float16/float32)`. Double
  rounding is innocuous here because 53 >= 2p + 2 for p = 11 and p = 24 (Figueroa 1995).
- multiplication: operands carry at most 32 significant bits (fixed32, fp32, fp16), so the
  exact product is an int64 significand times a power of two. It is rounded to 53 bits with
  round-to-odd (innocuous before a final rounding to p <= 51 bits) or, for fixed point,
  shifted with round-half-even in integer arithmetic. When the operands' significands fit in
  53 bits together (e.g. fp32 x fp16) the float64 product is exact and used directly.
- fixed<W>.<F>: round-half-even on the 2^-F grid (`np.rint` of an exactly scaled float64, or
  integer shifts), saturation at [-2^(W-1), 2^(W-1) - 1] * 2^-F.
"""

from __future__ import annotations

import math

import numpy as np

from axelsim.config.formats import NumberFormat

_SIG_BITS = {"fp16": 11, "fp32": 24}


def significand_bits(fmt: NumberFormat) -> int:
    """Most significant bits a value of this format can carry (fixed: W, sign included)."""
    return _SIG_BITS.get(fmt.kind, fmt.width_bits)


def _fixed_limits(fmt: NumberFormat) -> tuple[int, int]:
    top = 1 << (fmt.width_bits - 1)
    return -top, top - 1


def rnd(fmt: NumberFormat, x) -> np.ndarray:
    """Round exact (or single-operation float64) values x to fmt; returns float64."""
    x = np.asarray(x, dtype=np.float64)
    if fmt.kind == "fp16":
        with np.errstate(over="ignore"):
            return x.astype(np.float16).astype(np.float64)
    if fmt.kind == "fp32":
        with np.errstate(over="ignore"):
            return x.astype(np.float32).astype(np.float64)
    lo, hi = _fixed_limits(fmt)
    scaled = np.rint(np.ldexp(x, fmt.frac_bits))
    return np.ldexp(np.clip(scaled, lo, hi), -fmt.frac_bits)


# The modelled arithmetic is IEEE: an overflow gives inf and inf - inf gives NaN, as the
# hardware's would. Those are results of the model (reported by axelsim.report.numerics),
# not faults of the simulator, so numpy's RuntimeWarnings about them are silenced here.


def add(fmt: NumberFormat, a, b) -> np.ndarray:
    """rnd_fmt(a + b); a, b are values of fmt (or of a narrower format)."""
    with np.errstate(invalid="ignore", over="ignore"):
        return rnd(fmt, np.add(a, b, dtype=np.float64))


def sub(fmt: NumberFormat, a, b) -> np.ndarray:
    """rnd_fmt(a - b)."""
    with np.errstate(invalid="ignore", over="ignore"):
        return rnd(fmt, np.subtract(a, b, dtype=np.float64))


def _split(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """x = sig * 2^exp exactly, |sig| <= 2^31 as int64 (x has at most 32 significant bits)."""
    mant, expo = np.frexp(x)
    return np.ldexp(mant, 31).astype(np.int64), expo.astype(np.int64) - 31


def _round_odd_to_f64(sig: np.ndarray) -> np.ndarray:
    """int64 -> float64 with round-to-odd (keeps a later rounding to <= 51 bits correct)."""
    near = sig.astype(np.float64)
    back = near.astype(np.int64)
    inexact = back != sig
    toward = np.where(sig > back, np.inf, -np.inf)
    other = np.nextafter(near, toward)
    near_odd = (near.view(np.int64) & 1) == 1
    pick = np.where(near_odd, near, other)
    return np.where(inexact, pick, near)


def _shift_round_even(sig: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """round(sig / 2^shift) to nearest, ties to even, in int64 (shift >= 0; |sig| <= 2^62, so a
    shift above 62 leaves at most half a unit: 0)."""
    tiny = shift > 62
    shift = np.minimum(shift, 62)
    quot = sig >> shift
    rem = sig - (quot << shift)
    half = np.where(shift > 0, np.int64(1) << np.maximum(shift - 1, 0), 0)
    up = (shift > 0) & ((rem > half) | ((rem == half) & ((quot & 1) == 1)))
    return np.where(tiny, 0, quot + up.astype(np.int64))


def _round_exact(fmt: NumberFormat, sig: np.ndarray, expo: np.ndarray) -> np.ndarray:
    """Round the exact value sig * 2^expo (int64 arrays) to fmt."""
    if fmt.kind in _SIG_BITS:
        return rnd(fmt, np.ldexp(_round_odd_to_f64(sig), expo))
    lo, hi = _fixed_limits(fmt)
    shift = -(expo + fmt.frac_bits)
    right = _shift_round_even(sig, np.maximum(shift, 0))
    left_amount = np.minimum(np.maximum(-shift, 0), 40)
    left_big = (np.abs(sig) >= (np.int64(1) << np.maximum(62 - left_amount, 0))) & (sig != 0) & (shift < 0)
    left = np.where(left_big, np.sign(sig) * (np.int64(1) << 62), sig << left_amount)
    grid = np.where(shift >= 0, right, left)
    return np.ldexp(np.clip(grid, lo, hi).astype(np.float64), -fmt.frac_bits)


def mul(fmt: NumberFormat, a, a_fmt: NumberFormat, b, b_fmt: NumberFormat) -> np.ndarray:
    """rnd_fmt(a * b) with one rounding; a_fmt, b_fmt are the operands' formats."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if significand_bits(a_fmt) + significand_bits(b_fmt) <= 53:
        with np.errstate(invalid="ignore", over="ignore"):
            return rnd(fmt, a * b)
    a, b = np.broadcast_arrays(a, b)
    sa, ea = _split(a)
    sb, eb = _split(b)
    return _round_exact(fmt, sa * sb, ea + eb)


def div_one_by(fmt: NumberFormat, x) -> np.ndarray:
    """rnd_fmt(1 / x) for scalar-like x (one division per query)."""
    x = np.asarray(x, dtype=np.float64)
    if fmt.kind in _SIG_BITS:
        with np.errstate(divide="ignore"):
            return rnd(fmt, 1.0 / x)
    lo, hi = _fixed_limits(fmt)
    frac = fmt.frac_bits
    out = np.empty(x.shape, dtype=np.float64)
    for pos, value in np.ndenumerate(x):
        num, den = (1 << (2 * frac)), int(np.ldexp(value, frac))
        if den == 0:
            grid = hi
        else:
            grid = _div_round_even(num, den)
        out[pos] = math.ldexp(min(max(grid, lo), hi), -frac)
    return out


def _div_round_even(num: int, den: int) -> int:
    """round(num / den) to nearest, ties to even, on Python integers."""
    sign = -1 if (num < 0) != (den < 0) else 1
    q, r = divmod(abs(num), abs(den))
    twice = 2 * r
    if twice > abs(den) or (twice == abs(den) and q % 2 == 1):
        q += 1
    return sign * q


def sqrt(fmt: NumberFormat, x) -> np.ndarray:
    """rnd_fmt(sqrt(x)), x >= 0."""
    x = np.asarray(x, dtype=np.float64)
    if fmt.kind in _SIG_BITS:
        return rnd(fmt, np.sqrt(x))
    lo, hi = _fixed_limits(fmt)
    frac = fmt.frac_bits
    out = np.empty(x.shape, dtype=np.float64)
    for pos, value in np.ndenumerate(x):
        n = int(np.ldexp(value, frac)) << frac  # sqrt(X 2^-F) 2^F = sqrt(X 2^F)
        root = math.isqrt(n)
        if n - root * root > root:  # n >= root^2 + root + 1: nearer to root + 1 (no exact ties)
            root += 1
        out[pos] = math.ldexp(min(max(root, lo), hi), -frac)
    return out


class ExpUnit:
    """exp_S of docs/architecture.md: range reduction, degree-6 Horner of 2^f, scale by 2^k."""

    def __init__(self, fmt: NumberFormat):
        self.fmt = fmt
        self.log2e = float(rnd(fmt, 1.4426950408889634))
        ln2 = math.log(2.0)
        self.coeffs = [float(rnd(fmt, ln2**n / math.factorial(n))) for n in range(6, -1, -1)]
        self.coeff_array = np.array(self.coeffs)

    def __call__(self, x) -> np.ndarray:
        """exp of x <= 0 (values of fmt), elementwise."""
        fmt = self.fmt
        scaled = mul(fmt, x, fmt, self.log2e, fmt)
        k = np.rint(scaled)
        f = sub(fmt, scaled, k)
        p = np.full_like(f, self.coeffs[0])
        for c in self.coeffs[1:]:
            p = add(fmt, mul(fmt, p, fmt, f, fmt), c)
        # A non-finite k comes with a NaN p (f = k - k is NaN): any finite exponent keeps it NaN.
        return rnd(fmt, np.ldexp(p, np.where(np.isfinite(k), k, 0).astype(np.int64)))
