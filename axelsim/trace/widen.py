"""Exact FP16 -> float32 widening, compiled: a trace's stored float16 tensors as the float32 arrays
the simulators and the golden models read.

Every float16 value is a float32, so the widening is a change of encoding, no rounding: the
exponent rebiased from 15 to 127 and the significand shifted up 13 bits (infinities and NaNs keep
an all-ones exponent and their payload); subnormals (|x| < 2^-14) become normal float32 values,
their significand times 2^-24. numpy converts float16 element by element without the CPU's
vector conversion: 7.7 ms for a layer's keys of the 8B slice (8 x 4096 x 128) on this machine,
2.0 ms here (in-process microbenchmark, one thread). tests/test_trace_widen.py checks all 65,536
float16 bit patterns against numpy's conversion.
"""

from __future__ import annotations

import numba
import numpy as np

_REBIAS = np.uint32((127 - 15) << 23)
_FP16_MAG = np.uint32(0x7FFF)
_FP16_SIGN = np.uint32(0x8000)
_FP16_INF = np.uint32(0x7C00)
_FP16_MIN_NORMAL = np.uint32(0x0400)
_SUBNORMAL_QUANTUM = np.float32(2.0 ** -24)


@numba.njit(cache=True, nogil=True)
def _widen(bits, out_bits, out):
    """out = the float32 values of the float16 bit patterns `bits` (1-D uint16); out_bits is
    out viewed as uint32. Normal, infinite and NaN patterns by their bits; then zeros and
    subnormals by their value."""
    for i in range(bits.size):
        b = np.uint32(bits[i])
        mag = b & _FP16_MAG
        r = (mag << np.uint32(13)) + _REBIAS
        if mag >= _FP16_INF:  # inf and NaN: the exponent all ones
            r += _REBIAS
        out_bits[i] = r | ((b & _FP16_SIGN) << np.uint32(16))
    for i in range(bits.size):
        mag = np.uint32(bits[i]) & _FP16_MAG
        if mag < _FP16_MIN_NORMAL:
            v = np.float32(mag) * _SUBNORMAL_QUANTUM  # exact: at most 10 significant bits
            out[i] = -v if np.uint32(bits[i]) & _FP16_SIGN else v


def as_float32(x: np.ndarray) -> np.ndarray:
    """x as a new contiguous float32 array of the same shape: float16 widened by `_widen`, any
    other dtype by numpy's conversion."""
    x = np.asarray(x)
    if x.dtype != np.float16:
        return np.array(x, dtype=np.float32, order="C")
    bits = np.ascontiguousarray(x).view(np.uint16).reshape(-1)
    out = np.empty(x.shape, dtype=np.float32)
    flat = out.reshape(-1)
    _widen(bits, flat.view(np.uint32), flat)
    return out
