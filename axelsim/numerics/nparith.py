"""The golden arithmetic of axelsim.numerics.fp as vectorised numpy.

The baselines' golden references (axelsim.numerics.baselines) use it. Each function returns
rnd_F of the exact result, computed as the golden model does: the operation in float64, then
one correct rounding to F (round to nearest, ties to even, overflow to infinity): numpy's
float64 -> float32 conversion for fp32, `round_fp16` for FP16. That one step is compiled: the
golden model's FP16 rounding (axelsim.numerics.kernels, never the cycle model's), a small
kernel compiled once per install. tests/test_numerics_fp.py checks both roundings against the
exact rational oracle. Products wider than 53 bits and sums of operands finer than F go
through round-to-odd first, as `mul_round` and `add_round` do.

In `mul`, `add` and `tree_sum`, float32 arrays are a fast path for fp32 results only: a native float32 +, -, x of float32
operands is rnd_fp32 of the exact result, which equals the float64 route (double rounding
through 53 >= 2 * 24 + 2 bits is innocuous). Any other float32 operation there is done in float64.

Operands known to be FP16 values take their own functions (`mul16`, `tree_sum16`): FP16
values are exact in float32, and one native float32 +, -, x of two FP16 values, then one
rounding to FP16, is rnd_fp16 of the exact result (double rounding through 24 >= 2 * 11 + 2
bits is innocuous: S. A. Figueroa, "When is double rounding innocuous?", ACM SIGNUM Newsletter
30(3), 1995).

`rnd`, `mul`, `add` and `tree_sum` run in loops of thousands of calls, so they leave numpy's
overflow warnings (a rounding to infinity is a result here, not an error) to the caller:
`quiet()` silences them around a whole computation.
"""

from __future__ import annotations

import numpy as np

from axelsim.config.formats import NumberFormat
from axelsim.numerics.kernels import round_fp16_into

FLOAT64_BITS = 53


def significand_bits(fmt: NumberFormat) -> int:
    """Bits of a format's significand (fixed<W>: W): two operands of a and b bits multiply
    exactly in float64 when a + b <= 53."""
    return {"fp16": 11, "fp32": 24}.get(fmt.kind, fmt.width_bits if fmt.kind == "fixed" else FLOAT64_BITS)


def wide(a: NumberFormat, b: NumberFormat) -> bool:
    """True when a product of an `a` and a `b` value may exceed float64's 53 bits."""
    return significand_bits(a) + significand_bits(b) > FLOAT64_BITS


def quiet():
    """numpy's overflow and invalid-operation warnings off (a context manager)."""
    return np.errstate(over="ignore", invalid="ignore")


def round_fp16(x: np.ndarray, dtype=np.float32) -> np.ndarray:
    """Nearest FP16 values of a float32 or float64 array (ties to even, overflow to infinity), as
    `dtype` (float32 or float64: FP16 values are exact in both); other input dtypes go through
    float64. The one compiled step of this module: the golden model's FP16 rounding
    (axelsim.numerics.kernels.round_fp16_into; float32 by the CPU's conversion instruction where
    it has one), element by element over a contiguous copy of x's type. numpy has no faster
    correct rounding: x.astype(np.float16) takes 4.5 ns an element here, the compiled loop 0.3 ns
    (float32) and 0.7 ns (float64)."""
    x = np.asarray(x)
    if x.dtype not in (np.float32, np.float64):
        x = x.astype(np.float64)
    flat = np.ascontiguousarray(x).reshape(-1)
    out = np.empty(x.shape, dtype=x.dtype)
    round_fp16_into(flat, out.reshape(-1))
    return out if out.dtype == np.dtype(dtype) else out.astype(dtype)


def rnd(x: np.ndarray, fmt: NumberFormat) -> np.ndarray:
    """Nearest values of `fmt` (ties to even; fixed point saturates), float64 (or float32 for
    an fp16 or fp32 result of a float32 array)."""
    x = np.asarray(x)
    if fmt.kind == "fp16":
        return round_fp16(x, np.float32 if x.dtype == np.float32 else np.float64)
    if fmt.kind == "fp32":
        return x if x.dtype == np.float32 else x.astype(np.float32).astype(np.float64)
    scale, half = 2.0**fmt.frac_bits, 2.0 ** (fmt.width_bits - 1)
    return np.clip(np.rint(x.astype(np.float64) * scale), -half, half - 1.0) / scale


def _float64_unless_fp32(a, b, fmt: NumberFormat):
    if fmt.kind != "fp32":
        return np.asarray(a, dtype=np.float64), b
    return a, b


def _to_odd(p: np.ndarray, err: np.ndarray) -> np.ndarray:
    """p moved one float64 ulp towards the exact p + err when inexact and p's last bit is even."""
    fix = (err != 0.0) & ((p.view(np.uint64) & np.uint64(1)) == 0) & np.isfinite(p) & (p != 0.0)
    if not fix.any():
        return p
    return np.where(fix, np.nextafter(p, np.where(err > 0.0, np.inf, -np.inf)), p)


def _split(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    c = 134217729.0 * a  # Veltkamp split with 2**27 + 1
    hi = c - (c - a)
    return hi, a - hi


def mul(a, b, fmt: NumberFormat, is_wide: bool = False) -> np.ndarray:
    """rnd_F(a x b); is_wide: the exact product may exceed 53 bits (see `wide`)."""
    a, b = _float64_unless_fp32(a, b, fmt)
    p = np.multiply(a, b)
    if is_wide:
        a64, b64 = np.broadcast_arrays(np.asarray(a, np.float64), np.asarray(b, np.float64))
        a_hi, a_lo = _split(a64)
        b_hi, b_lo = _split(b64)
        p = _to_odd(p, ((a_hi * b_hi - p) + a_hi * b_lo + a_lo * b_hi) + a_lo * b_lo)
    return rnd(p, fmt)


def add(a, b, fmt: NumberFormat) -> np.ndarray:
    """rnd_F(a + b) of two operands that are `fmt` values."""
    a, b = _float64_unless_fp32(a, b, fmt)
    return rnd(np.add(a, b), fmt)


def add_odd(a, b, fmt: NumberFormat) -> np.ndarray:
    """rnd_F(a + b) for operands finer than F (TwoSum, round to odd, then F)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    s = a + b
    bb = s - a
    return rnd(_to_odd(s, (a - (s - bb)) + (b - bb)), fmt)


def mul16(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """rnd_fp16(a x b) of FP16 values a, b held as float32 (the product is exact in float32:
    11 + 11 <= 24 bits, exponents within float32's range), float32."""
    return round_fp16(np.multiply(np.asarray(a, np.float32), np.asarray(b, np.float32)))


def tree_sum16(x: np.ndarray) -> np.ndarray:
    """`tree_sum` to FP16 of FP16 values held as float32: each add native float32, then rounded
    to FP16 (innocuous double rounding, module docstring), float32."""
    x = np.asarray(x, dtype=np.float32)
    while x.shape[-1] > 1:
        x = round_fp16(np.add(x[..., 0::2], x[..., 1::2]))
    return x[..., 0]


def tree_sum(x: np.ndarray, fmt: NumberFormat) -> np.ndarray:
    """Pairwise adder tree over the last axis (a power of two), stage by stage, every add rounded."""
    while x.shape[-1] > 1:
        x = add(x[..., 0::2], x[..., 1::2], fmt)
    return x[..., 0]


FWHT_CHUNK_ELEMENTS = 1 << 18
"""Elements `fwht` transforms at a time (its transposed chunk and stage buffers stay in cache)."""


def fwht(x: np.ndarray, fmt: NumberFormat, fine_input: bool = False) -> np.ndarray:
    """Unnormalised FWHT over the last axis, every add/subtract rounded to fmt; fine_input: the
    first stage's operands may be finer than fmt (round-to-odd there). Other operands are fmt
    values, so an fp32 transform runs in native float32 after that stage (returned as float32).
    Works on chunks of vectors transposed to [d, vectors], where each stage's operands are
    contiguous rows (`_fwht_columns`); the same additions as on the vectors themselves."""
    d = x.shape[-1]
    native = fmt.kind == "fp32"
    x = np.asarray(x, dtype=np.float32 if native and not fine_input else np.float64)
    flat = x.reshape(-1, d)
    out = np.empty(flat.shape, dtype=np.float32 if native else np.float64)
    step = max(1, FWHT_CHUNK_ELEMENTS // max(1, d))
    for s in range(0, flat.shape[0], step):
        out[s:s + step] = _fwht_columns(np.ascontiguousarray(flat[s:s + step].T), fmt, fine_input).T
    return out.reshape(x.shape)


def _fwht_columns(xt: np.ndarray, fmt: NumberFormat, fine_input: bool) -> np.ndarray:
    """`fwht` of the columns of xt [d, m]: stage h pairs rows i and i + h of each block of 2h rows."""
    d, m = xt.shape
    h = 1
    while h < d:
        y = xt.reshape(d // (2 * h), 2, h * m)
        a, c = y[:, 0], y[:, 1]
        if fine_input and h == 1:
            out = np.empty(y.shape, dtype=np.float64)
            out[:, 0], out[:, 1] = add_odd(a, c, fmt), add_odd(a, -c, fmt)
            if fmt.kind == "fp32":  # fp32 values from here on: the later stages in native float32
                out = out.astype(np.float32)
        else:
            out = np.empty(y.shape, dtype=xt.dtype)
            np.add(a, c, out=out[:, 0])
            np.subtract(a, c, out=out[:, 1])
            out = rnd(out, fmt)
        xt = out.reshape(d, m)
        h *= 2
    return xt


def exp_unit(x: np.ndarray, fmt: NumberFormat, log2e: float, coeffs: np.ndarray) -> np.ndarray:
    """The contract's exp unit (numerics.kernels.exp_unit) elementwise: y = rnd(x log2 e),
    2^rint(y) x Horner polynomial of degree 6 in f = rnd(y - rint(y))."""
    x = np.asarray(x, dtype=np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        y = rnd(x * log2e, fmt)
        k = np.rint(y)
        f = rnd(y - k, fmt)
        p = np.zeros_like(x)
        for c in coeffs[::-1]:
            p = rnd(rnd(p * f, fmt) + c, fmt)
        k = np.nan_to_num(np.clip(k, -2000.0, 2000.0)).astype(np.int64)
        out = rnd(np.ldexp(p, k), fmt)
    out = np.where(x == -np.inf, 0.0, out)
    return np.where(np.isnan(x), x, out)
