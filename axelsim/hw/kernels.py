"""The cycle model's own compiled arithmetic (numba): rounding, the units' datapaths per item range.

Independent of axelsim.numerics by construction (no import from it, different techniques):

- Floating formats (fp16, fp32) are rounded on the *integer bit pattern* of the exact float64
  value: round-half-even by adding (half - 1 + lsb) below the kept significand bits and masking,
  which carries into the exponent field by itself; below the target's normal range the float64
  significand is shifted right as an integer with an explicit remainder test.
- fixed<W>.<F>: floor of the exactly scaled value, round-half-even from the exact remainder,
  saturation to [-2^(W-1), 2^(W-1) - 1] on the 2^-F grid.
- Products wider than 53 bits (fixed inputs/scores of more than 26/29 bits) are split
  (Veltkamp, 21-bit high part) into two exact products, summed with an exact error term
  (TwoSum), rounded to odd on the bit pattern, then rounded to the format: correct because
  round-to-odd into 53 bits never double-rounds a later rounding to at most 51 bits.
- Sums whose operands may be finer than the result format (the first FWHT stage) use the
  same TwoSum + round-to-odd; other sums have operands in the result format, where one
  float64 addition then one rounding is correct (53 >= 2p + 2).

A format is passed as a `code` tuple (kind, i1, i2, i3, f1, f2) built by `fmt_code`:
kind 0 float (i1 = stored mantissa bits, i2 = emin, i3 = bit pattern of the largest finite
value as float64, f1 = the subnormal quantum 2^(emin - mantissa bits)); kind 1 fixed (i2, i3 =
integer grid limits, f1 = 2^F, f2 = 2^-F).

Kernels work on item ranges [lo, hi) so the same code serves burst mode (the whole stream
at once, `prange` over items) and key mode (one item per call). Units: none (values); every
array is float64 holding exact values of its format unless said otherwise.
"""

from __future__ import annotations

import math
from functools import partial

import numba
import numpy as np
from llvmlite import ir
from numba import prange
from numba.core import types
from numba.extending import intrinsic

from axelsim import jit
from axelsim.config.formats import NumberFormat

_SIGN = np.int64(-(1 << 63))
_MANT = np.int64((1 << 52) - 1)
_IMPLICIT = np.int64(1 << 52)
_EXP_ALL = np.int64(0x7FF << 52)
_INF_BITS = np.int64(0x7FF << 52)
_FP16_MAX = 65504.0


@intrinsic
def _bits(typingctx, x):
    """The IEEE bit pattern of a float64 as int64 (an LLVM bitcast)."""
    sig = types.int64(types.float64)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(64))

    return sig, codegen


@intrinsic
def _float(typingctx, b):
    """The float64 whose IEEE bit pattern is the int64 b."""
    sig = types.float64(types.int64)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.DoubleType())

    return sig, codegen


def fmt_code(fmt: NumberFormat) -> tuple:
    """The kernel encoding of a number format (see the module docstring)."""
    if fmt.kind in ("fp16", "fp32"):
        mant, emin, emax = (10, -14, 15) if fmt.kind == "fp16" else (23, -126, 127)
        largest = (2.0 - 2.0 ** -mant) * 2.0 ** emax
        maxbits = int(np.array([largest]).view(np.int64)[0])
        return (0, mant, emin, maxbits, 2.0 ** (emin - mant), 0.0)
    half = 1 << (fmt.width_bits - 1)
    return (1, fmt.frac_bits, -half, half - 1, 2.0 ** fmt.frac_bits, 2.0 ** -fmt.frac_bits)


def significand_bits(fmt: NumberFormat) -> int:
    """Most significant bits a value of fmt carries (fixed: W)."""
    return {"fp16": 11, "fp32": 24}.get(fmt.kind, fmt.width_bits)


def is_wide(a: NumberFormat, b: NumberFormat) -> bool:
    """True when a product of an a value and a b value may not be exact in float64."""
    return significand_bits(a) + significand_bits(b) > 53


@numba.njit(cache=True, nogil=True)
def rnd(x, code):
    """x (an exact value, or one correctly rounded float64 operation) rounded to the format."""
    if code[0] == 1:
        v = x * code[4]
        if not v < code[3] + 1.0:  # also inf and nan: saturate high
            return code[3] * code[5]
        if v <= code[2] - 1.0:
            return code[2] * code[5]
        n = math.floor(v)
        rest = v - n
        if rest > 0.5 or (rest == 0.5 and (np.int64(n) & 1) == 1):
            n += 1.0
        if n < code[2]:
            n = float(code[2])
        elif n > code[3]:
            n = float(code[3])
        return n * code[5]
    b = _bits(x)
    sign = b & _SIGN
    a = b ^ sign
    if a >= _EXP_ALL:  # inf or nan
        return x
    e = (a >> 52) - 1023
    mant = code[1]
    if e >= code[2]:
        drop = 52 - mant
        r = (a + ((np.int64(1) << (drop - 1)) - 1) + ((a >> drop) & 1)) & ~((np.int64(1) << drop) - 1)
        if r > code[3]:
            r = _INF_BITS
        return _float(sign | r)
    if e < -1022:  # zero or a float64 subnormal: far below half the smallest target quantum
        return _float(sign)
    m = (a & _MANT) | _IMPLICIT
    s = (52 - mant) + (code[2] - e)
    if s >= 54:
        return _float(sign)
    q = m >> s
    rem = m & ((np.int64(1) << s) - 1)
    half = np.int64(1) << (s - 1)
    if rem > half or (rem == half and (q & 1) == 1):
        q += 1
    y = q * code[4]
    return -y if sign != 0 else y


@numba.njit(cache=True, nogil=True)
def _to_odd(s, err):
    """s + err (s the rounded float64 sum, err its exact error) rounded to odd in float64."""
    if err == 0.0:
        return s
    b = _bits(s)
    if (b & 1) == 1:
        return s
    if (err > 0.0) == (s > 0.0):
        return _float(b + 1)
    return _float(b - 1)


@numba.njit(cache=True, nogil=True)
def add_exact(a, b, code):
    """rnd(a + b) for operands of any formats (TwoSum, round to odd, round)."""
    s = a + b
    bb = s - a
    err = (a - (s - bb)) + (b - bb)
    return rnd(_to_odd(s, err), code)


@numba.njit(cache=True, nogil=True)
def mul(a, b, code, wide):
    """rnd(a * b); `wide` when the operands' significands may exceed 53 bits together."""
    if not wide:
        return rnd(a * b, code)
    c = a * 4294967297.0  # 2^32 + 1: a's high part keeps 21 bits
    hi = c - (c - a)
    lo = a - hi
    p1 = hi * b
    p2 = lo * b
    s = p1 + p2
    bb = s - p1
    err = (p1 - (s - bb)) + (p2 - bb)
    return rnd(_to_odd(s, err), code)


@numba.njit(cache=True, nogil=True)
def sqrt_r(x, code):
    """rnd(sqrt(x)), x >= 0 a value of the format."""
    if code[0] == 0:
        return rnd(math.sqrt(x), code)  # float64 sqrt then one rounding: 53 >= 2p + 2
    n = np.int64(x * code[4]) << np.int64(code[1])  # sqrt(X 2^-F) 2^F = sqrt(X 2^F)
    r = np.int64(math.sqrt(float(n)))
    while r * r > n:
        r -= 1
    while (r + 1) * (r + 1) <= n:
        r += 1
    if n - r * r > r:  # nearer to r + 1 (no exact ties for integers)
        r += 1
    if r > code[3]:
        r = code[3]
    return r * code[5]


@numba.njit(cache=True, nogil=True)
def _tree(buf, n, code):
    """Pairwise adder tree over buf[:n] in place (stage by stage); returns the sum."""
    width = n
    while width > 1:
        half = width // 2
        for m in range(half):
            buf[m] = rnd(buf[2 * m] + buf[2 * m + 1], code)
        width = half
    return buf[0]


@numba.njit(cache=True, nogil=True)
def _fwht(u, code, exact_first):
    """Unnormalised FWHT of u in place: stages h = 1, 2, ..., d/2, (a + c, a - c)."""
    d = u.shape[0]
    h = 1
    while h < d:
        for j0 in range(0, d, 2 * h):
            for k in range(j0, j0 + h):
                a = u[k]
                c = u[k + h]
                if h == 1 and exact_first:
                    u[k] = add_exact(a, c, code)
                    u[k + h] = add_exact(a, -c, code)
                else:
                    u[k] = rnd(a + c, code)
                    u[k + h] = rnd(a - c, code)
        h *= 2


# ---- write path -----------------------------------------------------------------------------
def _norm_stage(raw, xr, nrm, stored, sat, thr, bnd, inp, rot, f16, wide_sq, lo, hi):
    """Input rounding, squares, pairwise sum, sqrt, FP16 norm (saturating), thresholds t_j."""
    d = raw.shape[1]
    for v in prange(lo, hi):
        buf = np.empty(d)
        for i in range(d):
            x = rnd(raw[v, i], inp)
            xr[v, i] = x
            buf[i] = mul(x, x, rot, wide_sq)
        n = sqrt_r(_tree(buf, d, rot), rot)
        nrm[v] = n
        if n > _FP16_MAX:
            sat[v] = True
            stored[v] = _FP16_MAX
        else:
            sat[v] = False
            stored[v] = rnd(n, f16)
        for j in range(bnd.shape[0]):
            thr[v, j] = rnd(bnd[j] * n, rot)  # FP16 ROM value x rot: at most 35 bits, exact


def _rotate_stage(xr, signs, y, rot, exact_first, lo, hi):
    """y = FWHT(s * x) in the rotator format."""
    d = xr.shape[1]
    for v in prange(lo, hi):
        u = np.empty(d)
        for i in range(d):
            u[i] = xr[v, i] * signs[i]
        _fwht(u, rot, exact_first)
        for i in range(d):
            y[v, i] = u[i]


def _quantize_stage(y, thr, idx, upper_ties, lo, hi):
    """idx_i = #{j : y_i >= t_j} (uint8); #{j : y_i > t_j} when not upper_ties (ties to the lower level)."""
    d, levels = y.shape[1], thr.shape[1] + 1
    for v in prange(lo, hi):
        for i in range(d):
            c = 0
            for j in range(levels - 1):
                if y[v, i] > thr[v, j] or (upper_ties and y[v, i] == thr[v, j]):
                    c += 1
            idx[v, i] = c


@numba.njit(cache=True, nogil=True)
def _fp16_bits(x):
    """The binary16 bit pattern (int64) of a finite FP16 value held in a float64."""
    b = _bits(x)
    sign = (b >> 48) & 0x8000
    a = b & ~_SIGN
    if a == 0:
        return sign
    e = (a >> 52) - 1023
    if e >= -14:
        return sign | ((e + 15) << 10) | ((a >> 42) & 0x3FF)
    return sign | np.int64(abs(x) * 16777216.0)  # subnormal: x / 2^-24, an integer


@numba.njit(cache=True, nogil=True)
def _fp16_value(w):
    """The FP16 value (float64) of a binary16 bit pattern (finite)."""
    e = (w >> 10) & 0x1F
    m = w & 0x3FF
    if e == 0:
        y = m * 2.0 ** -24
    else:
        y = _float((e - 15 + 1023) << 52) * (1.0 + m * 2.0 ** -10)
    return -y if (w & 0x8000) != 0 else y


def _pack_stage(idx, stored, bits, rows, lo, hi):
    """SRAM rows: index i at bits [i b, (i+1) b) little-endian, then the 16 FP16 norm bits."""
    d = idx.shape[1]
    for v in prange(lo, hi):
        for k in range(rows.shape[1]):
            rows[v, k] = 0
        for i in range(d):
            val = np.int64(idx[v, i])
            for k in range(bits):
                if (val >> k) & 1:
                    p = i * bits + k
                    rows[v, p >> 3] |= np.uint8(1 << (p & 7))
        w = _fp16_bits(stored[v])
        for k in range(16):
            if (w >> k) & 1:
                p = d * bits + k
                rows[v, p >> 3] |= np.uint8(1 << (p & 7))


@numba.njit(cache=True, nogil=True)
def _rnd_normal(x, drop, maxbits):
    """rnd(x) to a float format when x is zero, inf or within the format's normal range (the
    first branch of `rnd`, branch-free): round-half-even on the bit pattern, overflow to inf."""
    b = _bits(x)
    sign = b & _SIGN
    a = b ^ sign
    r = (a + ((np.int64(1) << (drop - 1)) - 1) + ((a >> drop) & 1)) & ~((np.int64(1) << drop) - 1)
    r = _INF_BITS if r > maxbits else r
    return _float(sign | r)


@numba.njit(cache=True, nogil=True)
def _off_normal(x, minbits):
    """1 when `_rnd_normal` does not apply to x (nonzero below the normal range, or nan)."""
    a = _bits(x) & ~_SIGN
    return np.int64((a != 0) & (a < minbits)) | np.int64(a > _INF_BITS)


_FP32_CODE = (0, 23, -126, int(np.array([(2.0 - 2.0 ** -23) * 2.0 ** 127]).view(np.int64)[0]))
"""The leading fields of fmt_code(fp32): a rotator of this format rounds by conversion (`_write_block`)."""


@numba.njit(cache=True, nogil=True)
def _write_fast(raw, v, signs, d, x, p, q, di, mi, ni, dr, mr, nr):
    """Squares' pairwise sum and FWHT(s * x) of vector v for float input and rotator formats,
    `_rnd_normal` everywhere, with the sum and transform stages in constant geometry (stage
    outputs k and k + n/2 from inputs 2k and 2k + 1: the same butterflies on the same operands,
    the result in natural order), vectorisable. Returns (sum of squares, buffer holding y,
    flag): flag 1 when some rounded value was outside `_rnd_normal`'s range (the caller then
    recomputes the vector with the stage code)."""
    bad = np.int64(0)
    for i in range(d):
        r = np.float64(raw[v, i])
        bad |= _off_normal(r, ni)
        xi = _rnd_normal(r, di, mi)
        x[i] = xi
        sq = xi * xi
        bad |= _off_normal(sq, nr)
        p[i] = _rnd_normal(sq, dr, mr)
    src, dst = p, q
    width = d
    while width > 1:
        half = width // 2
        for m in range(half):
            t = src[2 * m] + src[2 * m + 1]
            bad |= _off_normal(t, nr)
            dst[m] = _rnd_normal(t, dr, mr)
        src, dst = dst, src
        width = half
    total = src[0]
    for i in range(d):
        p[i] = x[i] * signs[i]
    src, dst = p, q
    half = d // 2
    width = d
    while width > 1:
        for k in range(half):
            a = src[2 * k]
            c = src[2 * k + 1]
            t0 = a + c
            t1 = a - c
            bad |= _off_normal(t0, nr) | _off_normal(t1, nr)
            dst[k] = _rnd_normal(t0, dr, mr)
            dst[k + half] = _rnd_normal(t1, dr, mr)
        src, dst = dst, src
        width //= 2
    return total, src, bad


_LANES = 16
"""Vectors per block of `_write_block` (one per lane; its two [d, 16] float64 buffers stay in L1)."""


@numba.njit(cache=True, nogil=True)
def _write_block(raw, v0, nb, signs, d, a, b, total, bad, di, mi, ni, nr):
    """`_write_fast` for an IEEE binary32 rotator on vectors v0 .. v0 + nb - 1 at once, one
    vector per lane: every loop runs over the lanes, contiguous, so it vectorises. The same
    operations on the same operands in the same order per vector: input rounding, squares, the
    squares' pairwise tree, s * x, the FWHT in constant geometry; each rotator value rounded by
    the conversion float64 -> float32 -> float64 (ties to even, overflow to inf: `_rnd_normal`'s
    rounding wherever that applies, i.e. zero, inf and the normal range). Fills total[:nb] (sum of squares) and
    bad[:nb] (1: some rounded value outside `_rnd_normal`'s range, the vector is recomputed by
    the stage code); returns the buffer holding y [d, lanes] (a or b)."""
    for k in range(nb):
        bad[k] = 0
    for k in range(nb):
        for i in range(d):
            r = np.float64(raw[v0 + k, i])
            bad[k] |= _off_normal(r, ni)
            a[i, k] = _rnd_normal(r, di, mi)
    for i in range(d):
        for k in range(nb):
            sq = a[i, k] * a[i, k]
            bad[k] |= _off_normal(sq, nr)
            b[i, k] = np.float64(np.float32(sq))
    width = d
    while width > 1:  # in place: row m is written after rows 2m and 2m + 1 were read
        half = width // 2
        for m in range(half):
            for k in range(nb):
                t = b[2 * m, k] + b[2 * m + 1, k]
                bad[k] |= _off_normal(t, nr)
                b[m, k] = np.float64(np.float32(t))
        width = half
    for k in range(nb):
        total[k] = b[0, k]
    for i in range(d):
        for k in range(nb):
            a[i, k] = a[i, k] * signs[i]
    src, dst = a, b
    half = d // 2
    width = d
    while width > 1:
        for j in range(half):
            for k in range(nb):
                x = src[2 * j, k]
                c = src[2 * j + 1, k]
                t0 = x + c
                t1 = x - c
                bad[k] |= _off_normal(t0, nr) | _off_normal(t1, nr)
                dst[j, k] = np.float64(np.float32(t0))
                dst[j + half, k] = np.float64(np.float32(t1))
        src, dst = dst, src
        width //= 2
    return src


def _write_burst(raw, signs, bnd, inp, rot, f16, wide_sq, exact_first, upper_ties, bits, storage, flat, sat):
    """norm_stage, rotate_stage, quantize_stage and pack_stage fused per vector, rows stored
    straight into storage[flat[v]] (preloading and burst writes; raw [n, d] float32 or float64):
    the same operations in the same order, one pass per vector over per-thread scratch instead
    of [n, d] float64 intermediates (an fp32 rotator: `_write_block`, 16 vectors per pass);
    indices packed 8 at a time (`bits` whole bytes) when d is a multiple of 8."""
    n, d = raw.shape
    nthr = bnd.shape[0]
    row_bytes = storage.shape[1]
    chunks = (n + 63) // 64  # per-thread scratch allocated once per 64 vectors
    groups = d // 8
    # float input and rotator formats, squares exact in float64, no exact first FWHT stage:
    # the vectorisable `_write_fast`, falling back per vector to the stage code
    fast = inp[0] == 0 and rot[0] == 0 and not wide_sq and not exact_first and d >= 2 and (d & (d - 1)) == 0
    di, mi, ni = 52 - inp[1], inp[3], (np.int64(inp[2]) + 1023) << 52
    dr, mr, nr = 52 - rot[1], rot[3], (np.int64(rot[2]) + 1023) << 52
    f32 = rot[0] == _FP32_CODE[0] and rot[1] == _FP32_CODE[1] and rot[2] == _FP32_CODE[2] and rot[3] == _FP32_CODE[3]
    lanes = _LANES if fast and f32 else 1
    for c in prange(chunks):
        v0 = c * n // chunks
        v1 = (c + 1) * n // chunks
        x = np.empty(d)
        u = np.empty(d)
        buf = np.empty(d)
        pa = np.empty(d)
        pb = np.empty(d)
        thr = np.empty(nthr)
        idx = np.empty(d, dtype=np.int64)
        ba = np.empty((d, lanes))
        bb = np.empty((d, lanes))
        btotal = np.empty(lanes)
        bbad = np.ones(lanes, dtype=np.int64)
        yb = ba
        for v in range(v0, v1):
            k = (v - v0) % lanes
            if lanes > 1 and k == 0:
                yb = _write_block(raw, v, min(lanes, v1 - v), signs, d, ba, bb, btotal, bbad, di, mi, ni, nr)
            bad = 1
            if lanes > 1:
                bad = bbad[k]
                if bad == 0:
                    total = btotal[k]
                    for i in range(d):
                        pa[i] = yb[i, k]
                    y = pa
            elif fast:
                total, y, bad = _write_fast(raw, v, signs, d, x, pa, pb, di, mi, ni, dr, mr, nr)
            if bad != 0:  # the stage code: any format, any value
                for i in range(d):
                    xi = rnd(np.float64(raw[v, i]), inp)
                    x[i] = xi
                    buf[i] = mul(xi, xi, rot, wide_sq)
                total = _tree(buf, d, rot)
                for i in range(d):
                    u[i] = x[i] * signs[i]
                _fwht(u, rot, exact_first)
                y = u
            nv = sqrt_r(total, rot)
            if nv > _FP16_MAX:
                sat[v] = True
                stored = _FP16_MAX
            else:
                sat[v] = False
                stored = rnd(nv, f16)
            for j in range(nthr):
                thr[j] = rnd(bnd[j] * nv, rot)
            for i in range(d):
                idx[i] = 0
            for j in range(nthr):  # threshold by threshold: the comparisons vectorise over i
                t = thr[j]
                for i in range(d):
                    idx[i] += np.int64((y[i] > t) | (upper_ties & (y[i] == t)))
            r = flat[v]
            for k in range(row_bytes):
                storage[r, k] = 0
            for g in range(groups):
                word = np.int64(0)
                for j in range(8):
                    word |= idx[g * 8 + j] << (j * bits)
                for k in range(bits):
                    storage[r, g * bits + k] = np.uint8((word >> (8 * k)) & 0xFF)
            for i in range(groups * 8, d):
                val = idx[i]
                for k in range(bits):
                    if (val >> k) & 1:
                        p = i * bits + k
                        storage[r, p >> 3] |= np.uint8(1 << (p & 7))
            w = _fp16_bits(stored)
            for k in range(16):
                if (w >> k) & 1:
                    p = d * bits + k
                    storage[r, p >> 3] |= np.uint8(1 << (p & 7))


# ---- index SRAM read ------------------------------------------------------------------------
def _unpack_stage(storage, flat, bits, idx, norms, lo, hi):
    """Read rows storage[flat[t]] for t in [lo, hi): indices (uint8 [n, d]) and FP16 norms."""
    d = idx.shape[1]
    mask = (1 << bits) - 1
    groups = d // 8
    for t in prange(lo, hi):
        r = flat[t]
        for g in range(groups):  # 8 indices fill exactly `bits` bytes
            word = np.int64(0)
            for k in range(bits):
                word |= np.int64(storage[r, g * bits + k]) << (8 * k)
            for j in range(8):
                idx[t, g * 8 + j] = (word >> (j * bits)) & mask
        for i in range(groups * 8, d):
            val = 0
            for k in range(bits):
                p = i * bits + k
                val |= ((storage[r, p >> 3] >> (p & 7)) & 1) << k
            idx[t, i] = val
        w = np.int64(0)
        for k in range(16):
            p = d * bits + k
            w |= np.int64((storage[r, p >> 3] >> (p & 7)) & 1) << k
        norms[t] = _fp16_value(w)


# ---- read path ------------------------------------------------------------------------------
@numba.njit(cache=True, nogil=True)
def leaf_table(P, acc):
    """The table SRAM's read converter output rnd_acc(P[h][i][j]) for every entry."""
    out = np.empty_like(P)
    for a in range(P.shape[0]):
        for i in range(P.shape[1]):
            for j in range(P.shape[2]):
                out[a, i, j] = rnd(P[a, i, j], acc)
    return out


def _lookup_stage(leaf, idx, leaves, lo, hi):
    """Table reads a_i = leaf[h][i][idx_t,i] into leaves [h, n, d]."""
    d = idx.shape[1]
    for t in prange(lo, hi):
        for a in range(leaf.shape[0]):
            for i in range(d):
                leaves[a, t, i] = leaf[a, i, idx[t, i]]


def _tree_stage(leaves, sums, acc, lo, hi):
    """Adder tree of every key's leaves: sums [h, n]."""
    d = leaves.shape[2]
    for t in prange(lo, hi):
        buf = np.empty(d)
        for a in range(leaves.shape[0]):
            for i in range(d):
                buf[i] = leaves[a, t, i]
            sums[a, t] = _tree(buf, d, acc)


def _norm_mul_stage(sums, norms, scores, score, lo, hi):
    """score_t = rnd_score(sum_t * norm_t) (accumulator x FP16: at most 43 bits, exact)."""
    for t in range(lo, hi):
        for a in range(sums.shape[0]):
            scores[a, t] = rnd(sums[a, t] * norms[t], score)


def _scale_stage(scores, z, sigma, soft, wide, lo, hi):
    """z_t = rnd_S(score_t * sigma)."""
    for t in range(lo, hi):
        for a in range(scores.shape[0]):
            z[a, t] = mul(scores[a, t], sigma, soft, wide)


def _score_burst(leaf, idx, norms, scores, z, acc, score, sigma, soft, wide, with_scale):
    """lookup_stage, tree_stage, norm_mul_stage and scale_stage fused over all keys (no leaves kept)."""
    d = idx.shape[1]
    for t in prange(idx.shape[0]):
        buf = np.empty(d)
        for a in range(leaf.shape[0]):
            for i in range(d):
                buf[i] = leaf[a, i, idx[t, i]]
            s = rnd(_tree(buf, d, acc) * norms[t], score)
            scores[a, t] = s
            if with_scale:
                z[a, t] = mul(s, sigma, soft, wide)


# ---- value path -----------------------------------------------------------------------------
@numba.njit(cache=True, nogil=True)
def exp_unit(x, soft, log2e, coeffs):
    """exp_S(x), x <= 0: k = rint(rnd(x log2e)), f = rnd(. - k), Horner of 2^f, times 2^k."""
    scaled = fast_round.rnd_fast(x * log2e, soft)
    k = np.rint(scaled)
    f = fast_round.rnd_fast(scaled - k, soft)
    p = coeffs[0]
    for c in coeffs[1:]:
        p = fast_round.rnd_fast(fast_round.rnd_fast(p * f, soft) + c, soft)
    ki = np.int64(k)
    if ki < -1022:
        return fast_round.rnd_fast(0.0, soft)
    return fast_round.rnd_fast(p * _float((ki + 1023) << 52), soft)


def _exp_stage(z, zmax, e, soft, log2e, coeffs, lo, hi):
    """e_t = exp_S(rnd_S(z_t - m)) for every head; z, e [h, n], zmax [h]."""
    for t in prange(lo, hi):
        for a in range(z.shape[0]):
            e[a, t] = exp_unit(fast_round.rnd_fast(z[a, t] - zmax[a], soft), soft, log2e, coeffs)


def _bins_stage(e, norms, idx, bins, totals, soft, value, lo, hi):
    """Per key t in order, into partial copy t mod P (bins [h, P_b, d, L], totals [h, P_E]):
    E_p = rnd_S(E_p + e), w = rnd_V(e * norm), B_p[i][idx_i] = rnd_V(B_p + w)."""
    d = idx.shape[1]
    for t in range(lo, hi):
        ps = t % totals.shape[1]
        pb = t % bins.shape[1]
        for a in range(e.shape[0]):
            totals[a, ps] = rnd(totals[a, ps] + e[a, t], soft)
            w = rnd(e[a, t] * norms[t], value)  # softmax x FP16: at most 35 bits, exact
            for i in range(d):
                j = idx[t, i]
                bins[a, pb, i, j] = rnd(bins[a, pb, i, j] + w, value)


def _bins_burst(e, norms, idx, bins, totals, soft, value):
    """bins_stage over all keys: coordinates in parallel chunks, keys in order within each."""
    n, d = idx.shape
    heads = e.shape[0]
    n_sum, n_bin = totals.shape[1], bins.shape[1]
    w = np.empty((heads, n))
    for a in range(heads):
        for t in range(n):
            ps = t % n_sum
            totals[a, ps] = rnd(totals[a, ps] + e[a, t], soft)
            w[a, t] = rnd(e[a, t] * norms[t], value)
    chunk = 16
    for c in prange((d + chunk - 1) // chunk):
        i0 = c * chunk
        i1 = min(d, i0 + chunk)
        for a in range(heads):
            for t in range(n):
                wt = w[a, t]
                pb = t % n_bin
                for i in range(i0, i1):
                    j = idx[t, i]
                    bins[a, pb, i, j] = fast_round.rnd_fast(bins[a, pb, i, j] + wt, value)


def _pipe_stage(leaves, sums, norms, scores, acc, score, lo, hi):
    """Key mode, the lookup pipeline unit in one call: tree_stage then norm_mul_stage."""
    d = leaves.shape[2]
    buf = np.empty(d)
    for t in range(lo, hi):
        for a in range(leaves.shape[0]):
            for i in range(d):
                buf[i] = leaves[a, t, i]
            s = _tree(buf, d, acc)
            sums[a, t] = s
            scores[a, t] = rnd(s * norms[t], score)


def _exp_bins_stage(z, zmax, e, norms, idx, bins, totals, soft, value, log2e, coeffs, lo, hi):
    """Key mode, the value unit in one call: exp_stage then bins_stage."""
    d = idx.shape[1]
    for t in range(lo, hi):
        for a in range(z.shape[0]):
            e[a, t] = exp_unit(rnd(z[a, t] - zmax[a], soft), soft, log2e, coeffs)
        ps = t % totals.shape[1]
        pb = t % bins.shape[1]
        for a in range(e.shape[0]):
            totals[a, ps] = rnd(totals[a, ps] + e[a, t], soft)
            w = rnd(e[a, t] * norms[t], value)
            for i in range(d):
                j = idx[t, i]
                bins[a, pb, i, j] = rnd(bins[a, pb, i, j] + w, value)


pipe_stage = numba.njit(cache=True, nogil=True)(_pipe_stage)
exp_bins_stage = numba.njit(cache=True, nogil=True)(_exp_bins_stage)


def bind(kernel, *args):
    """kernel(*args, lo, hi) as a callable f(lo, hi) (key mode, one call per item).

    A numba kernel is bound to its compiled entry point for the types of `args` and two int64
    bounds: the call then skips the dispatcher's per-call type resolution (same machine code,
    same results). Anything else (or a signature not compiled) is bound with functools.partial."""
    overloads = getattr(kernel, "overloads", None)
    if overloads is not None:
        try:
            key = (kernel, tuple(_type_key(a) for a in args))
            cres = _BOUND.get(key)
            if cres is None:
                sig = tuple(kernel.typeof_pyval(a) for a in args) + (types.int64, types.int64)
                kernel(*args, 0, 0)  # compiles or loads this signature (an empty range does nothing)
                cres = _BOUND[key] = overloads[sig]
            return partial(cres.entry_point, *args)
        except Exception:  # noqa: BLE001 - fall back to the dispatcher
            pass
    return partial(kernel, *args)


_BOUND: dict = {}
"""(kernel, argument type keys) -> compiled overload (numba's typeof costs about 10 us per array)."""


def _type_key(a):
    """What numba's type of `a` depends on (arrays: dtype, dimensions, layout, flags)."""
    if isinstance(a, np.ndarray):
        f = a.flags
        return (a.dtype.str, a.ndim, f.c_contiguous, f.f_contiguous, f.writeable, f.aligned)
    if isinstance(a, tuple):
        return (tuple,) + tuple(_type_key(x) for x in a)
    return type(a)


class RangeKernels:
    """The range kernels of one flavour, by unit stage name: serial (key mode, one item per
    call), or by work (burst mode: parallel once a call's items x d reach jit.PARALLEL_MIN_WORK)."""

    def __init__(self, which: int):
        for name in STAGES:
            kernel = _BY_WORK[name]
            setattr(self, name, kernel.serial if which else kernel)


_WIDTH_ARG = {"norm_stage": 0, "rotate_stage": 0, "quantize_stage": 0, "pack_stage": 0, "unpack_stage": 3,
              "lookup_stage": 1, "tree_stage": 0, "bins_stage": 2}
"""The argument whose last dimension is a range kernel's work per item (d); others: 1 per item."""


def _range_work(name: str):
    """Work of a range kernel call (..., lo, hi): items x d."""
    arg = _WIDTH_ARG.get(name)
    return lambda args: (args[-1] - args[-2]) * (args[arg].shape[-1] if arg is not None else 1)


STAGES = ('norm_stage', 'rotate_stage', 'quantize_stage', 'pack_stage', 'unpack_stage', 'lookup_stage', 'tree_stage', 'norm_mul_stage', 'scale_stage', 'exp_stage', 'bins_stage')
_BY_WORK = {name: jit.by_work(globals()["_" + name], _range_work(name)) for name in STAGES}
PARALLEL = RangeKernels(0)
"""Burst mode: whole streams, items in parallel when the stream is large enough."""
SERIAL = RangeKernels(1)
"""Key mode: one item per call."""
score_burst = jit.by_work(_score_burst, lambda args: args[1].shape[0] * args[1].shape[1] * args[0].shape[0])
"""lookup, tree, norm multiply and scale fused over a whole stream of keys (work: keys x d x heads)."""
bins_burst = jit.by_work(_bins_burst, lambda args: args[2].shape[0] * args[2].shape[1] * args[0].shape[0])
"""bins_stage over a whole stream of values (work: values x d x heads)."""
write_burst = jit.by_work(_write_burst, lambda args: args[0].shape[0] * args[0].shape[1])
"""norm, rotate, quantize and pack fused per vector, rows stored in place (preloading; work: vectors x d)."""


# the branch-free FP16/FP32 rounding, bit for bit `rnd` (tests/test_hw_fast_round.py), for the
# hottest loops. axelsim.hw.fast_round is built on this module's rnd, so it is imported last and
# as a module: when fast_round is imported first it is still partly initialised here, and the
# kernels look `fast_round.rnd_fast` up when they compile, not now
from axelsim.hw import fast_round  # noqa: E402
