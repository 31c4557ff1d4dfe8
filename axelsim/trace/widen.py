"""Exact FP16 -> float32 widening, compiled: a trace's stored float16 tensors as the float32 arrays
the simulators and the golden models read.

Every float16 value is a float32, so the widening is a change of encoding, no rounding: the
bits shifted up 13 and the exponent rebiased from 15 to 127 by one exact multiply, which also
normalises the subnormals (infinities and NaNs keep an all-ones exponent and their payload).
numpy converts float16 element by element without the CPU's vector conversion: 7.4 ms for a
layer's keys of the 8B slice (8 x 4096 x 128) on this machine, 1.2 ms here (in-process
microbenchmark, one thread). tests/test_trace_widen.py checks all 65,536 float16 bit patterns
against numpy's conversion.
"""

from __future__ import annotations

import numba
import numpy as np

_FP16_MAG = np.uint32(0x7FFF)
_FP16_SIGN = np.uint32(0x8000)
_INF_SHIFTED = np.uint32(0x7C00 << 13)
_FP32_EXPONENT = np.uint32(0x7F800000)
_REBIAS = np.float32(2.0 ** 112)


@numba.njit(cache=True, nogil=True)
def _widen(bits, out_bits):
    """out_bits = the float32 bit patterns of the float16 bit patterns `bits` (1-D uint16 and
    uint32). The magnitude shifted into float32's place is the value times 2^-112, a normal or
    subnormal float32, and one exact multiply by 2^112 rebiases it (the golden input loader's
    route, numerics.kernels.load_input); infinities and NaNs take the all-ones exponent, their
    payload kept."""
    for i in range(bits.size):
        b = np.uint32(bits[i])
        mag = np.uint32((b & _FP16_MAG) << np.uint32(13))
        r = np.float32(mag.view(np.float32) * _REBIAS).view(np.uint32)
        if mag >= _INF_SHIFTED:
            r = np.uint32(mag | _FP32_EXPONENT)
        out_bits[i] = np.uint32(r | ((b & _FP16_SIGN) << np.uint32(16)))


def as_float32(x: np.ndarray) -> np.ndarray:
    """x as a new contiguous float32 array of the same shape: float16 widened by `_widen`, any
    other dtype by numpy's conversion. x may be a read-only view of a mapped trace file."""
    x = np.asarray(x)
    if x.dtype != np.float16:
        return np.array(x, dtype=np.float32, order="C")
    bits = np.ascontiguousarray(x).view(np.uint16).reshape(-1)
    if bits.flags.writeable:  # `_widen` only reads: always handed a read-only input, one compiled signature
        bits = bits.view()
        bits.flags.writeable = False
    out = np.empty(x.shape, dtype=np.float32)
    _widen(bits, out.reshape(-1).view(np.uint32))
    return out
