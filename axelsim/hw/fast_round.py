"""Rounding to FP16 and FP32 without branches, for the baselines' compiled datapaths.

`rnd_fast(x, code)` returns exactly `kernels.rnd(x, code)` for every float64 x (zero, subnormal,
tie, overflow, inf and nan included; tests/test_hw_fast_round.py checks it bit for bit), so a
kernel built of it gives the same results as one built of `rnd`, in fewer instructions:

- FP32: the float64 -> float32 conversion (an LLVM fptrunc) is IEEE round-half-even, gradual
  underflow and overflow to inf included: one rounding of x, as `rnd`.
- FP16: one rounding of x straight from float64 (no float32 step, hence no double rounding):
  in FP16's normal range round-half-even on the float64 bit pattern (add half - 1 + lsb below
  the 11 kept significand bits, mask; the carry runs into the exponent field; above the largest
  FP16 value: inf); below 2^-14 the float64 addition |x| + 2^28 (its ulp is FP16's subnormal
  quantum 2^-24) rounds |x| half-even onto the subnormal grid once, and subtracting 2^28 is
  exact. Both candidates are computed and one selected: no data-dependent branch, so loops of
  it vectorize.
- Any other format (fixed point) falls through to `kernels.rnd`. The choice depends on the
  code only (invariant in a kernel's loops).

Units: none (values).
"""

from __future__ import annotations

import numba
import numpy as np

from axelsim.hw.kernels import _bits, _float, mul, rnd

_SIGN = np.int64(-(1 << 63))
_EXP_ALL = np.int64(0x7FF << 52)
_FP16_DROP = 52 - 10
_FP16_HALF_M1 = np.int64((1 << (_FP16_DROP - 1)) - 1)
_FP16_MASK = np.int64(~((1 << _FP16_DROP) - 1))
_FP16_MAX_BITS = np.int64(np.array([65504.0]).view(np.int64)[0])
_FP16_MIN_NORMAL_BITS = np.int64((1023 - 14) << 52)  # 2^-14
_FP16_SUB_MAGIC = 2.0 ** 28  # ulp(2^28) = 2^(28 - 52) = 2^-24, FP16's subnormal quantum


@numba.njit(cache=True, nogil=True)
def rnd_fp16(x):
    """x (float64) rounded half-even to FP16, as a float64; overflow to signed inf."""
    b = _bits(x)
    sign = b & _SIGN
    a = b ^ sign
    r = (a + _FP16_HALF_M1 + ((a >> _FP16_DROP) & 1)) & _FP16_MASK
    r = _EXP_ALL if r > _FP16_MAX_BITS else r
    sub = _bits((_float(a) + _FP16_SUB_MAGIC) - _FP16_SUB_MAGIC)
    r = r if a >= _FP16_MIN_NORMAL_BITS else sub
    r = a if a >= _EXP_ALL else r  # inf and nan unchanged
    return _float(sign | r)


@numba.njit(cache=True, nogil=True)
def rnd_fp32(x):
    """x (float64) rounded half-even to FP32 (IEEE conversion), as a float64; nan unchanged
    (the conversion would drop its low payload bits; `rnd` keeps them)."""
    y = np.float64(np.float32(x))
    return x if x != x else y


@numba.njit(cache=True, nogil=True)
def rnd_fast(x, code):
    """kernels.rnd(x, code), branch-free for FP16 and FP32 (see the module docstring)."""
    if code[0] == 0 and code[1] == 10 and code[2] == -14:
        return rnd_fp16(x)
    if code[0] == 0 and code[1] == 23 and code[2] == -126:
        return rnd_fp32(x)
    return rnd(x, code)


@numba.njit(cache=True, nogil=True)
def mul_fast(a, b, code, wide):
    """kernels.mul(a, b, code, wide): a * b exact in float64 unless `wide`."""
    if wide:
        return mul(a, b, code, wide)
    return rnd_fast(a * b, code)


# ---- whole-array forms: the format test hoisted out of the loop, so the loops vectorize ------
GENERIC, FP16_MODE, FP32_MODE = 0, 1, 2


@numba.njit(cache=True, nogil=True)
def mode_of(code):
    """FP16_MODE, FP32_MODE or GENERIC (any other format) for a `kernels.fmt_code` tuple."""
    if code[0] == 0 and code[1] == 10 and code[2] == -14:
        return FP16_MODE
    if code[0] == 0 and code[1] == 23 and code[2] == -126:
        return FP32_MODE
    return GENERIC


@numba.njit(cache=True, nogil=True)
def round_vec(buf, n, code):
    """buf[:n] = rnd(buf[:n], code) in place (each element rounded once)."""
    mode = mode_of(code)
    if mode == FP16_MODE:
        for i in range(n):
            buf[i] = rnd_fp16(buf[i])
    elif mode == FP32_MODE:
        for i in range(n):
            buf[i] = rnd_fp32(buf[i])
    else:
        for i in range(n):
            buf[i] = rnd(buf[i], code)


@numba.njit(cache=True, nogil=True)
def tree_cols(buf, tmp, n, lanes, code):
    """kernels._tree over each of `lanes` columns at once: buf holds n rows of `lanes` values
    (element (i, b) at i * lanes + b), tmp at least n / 2 rows; the same sums stage by stage,
    each stage rounded as one contiguous array. Returns the row of sums (a view of buf or tmp);
    buf is overwritten."""
    width = n
    src, dst = buf, tmp
    while width > 1:
        half = width // 2
        for m in range(half):
            lo, hi, out = 2 * m * lanes, (2 * m + 1) * lanes, m * lanes
            for b in range(lanes):
                dst[out + b] = src[lo + b] + src[hi + b]
        round_vec(dst, half * lanes, code)
        src, dst = dst, src
        width = half
    return src[:lanes]


@numba.njit(cache=True, nogil=True)
def fwht_cols(u, code):
    """kernels._fwht(., code, False) on every column of u [d, lanes] at once, in place: the same
    butterflies (a + c, a - c), stages h = 1, 2, ..., d/2, each stage rounded as one array."""
    d, lanes = u.shape
    flat = u.reshape(d * lanes)
    h = 1
    while h < d:
        for j0 in range(0, d, 2 * h):
            for k in range(j0, j0 + h):
                top, bottom = u[k], u[k + h]
                for b in range(lanes):
                    x, y = top[b], bottom[b]
                    top[b], bottom[b] = x + y, x - y
        round_vec(flat, d * lanes, code)
        h *= 2


@numba.njit(cache=True, nogil=True)
def scale_vec(w, b, out, n, code, wide):
    """out[:n] = mul(w, b[:n], code, wide) for one scalar w."""
    if wide:
        for i in range(n):
            out[i] = mul(w, b[i], code, wide)
        return
    for i in range(n):
        out[i] = w * b[i]
    round_vec(out, n, code)
