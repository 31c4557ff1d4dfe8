"""The compiled FP16 -> float32 widening (axelsim.trace.widen) against numpy's conversion."""

from __future__ import annotations

import numpy as np

from axelsim.trace.widen import as_float32


def test_every_float16_pattern_widens_as_numpy_converts_it():
    """All 65,536 bit patterns: zeros of both signs, subnormals, normals, infinities, NaNs
    (payloads kept), bit for bit."""
    halves = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16).view(np.float16)
    got = as_float32(halves)
    assert got.dtype == np.float32 and got.shape == halves.shape
    assert np.array_equal(got.view(np.uint32), halves.astype(np.float32).view(np.uint32))


def test_views_and_other_dtypes_keep_shape_and_values():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((3, 40, 8)).astype(np.float16)
    view = x[:, 5:33:2, ::-1]  # strided, not contiguous
    got = as_float32(view)
    assert got.flags.c_contiguous and got.shape == view.shape
    assert np.array_equal(got.view(np.uint32), view.astype(np.float32).view(np.uint32))
    wide = rng.standard_normal((4, 6))
    assert np.array_equal(as_float32(wide), wide.astype(np.float32))
    same = wide.astype(np.float32)
    copied = as_float32(same)
    assert copied is not same and np.array_equal(copied, same)
