"""The branch-free FP16/FP32 rounding (axelsim.hw.fast_round) against the generic kernels.rnd,
bit for bit, on edge values (zeros, subnormals, ties, the largest finite values, overflow, inf,
nan) and on random float64 values of every magnitude."""

from __future__ import annotations

import numba
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from axelsim.config.formats import parse_format
from axelsim.hw import fast_round, kernels

FP16, FP32 = (kernels.fmt_code(parse_format(k)) for k in ("fp16", "fp32"))
FIXED = kernels.fmt_code(parse_format("fixed16.8"))


@numba.njit
def _both(x, code, fast, slow):
    for i in range(x.size):
        fast[i] = fast_round.rnd_fast(x[i], code)
        slow[i] = kernels.rnd(x[i], code)


def _bits_equal(x: np.ndarray, code: tuple) -> None:
    x = np.ascontiguousarray(x, dtype=np.float64)
    fast, slow = np.empty_like(x), np.empty_like(x)
    _both(x, code, fast, slow)
    bad = np.flatnonzero(fast.view(np.int64) != slow.view(np.int64))
    assert bad.size == 0, f"x={x[bad[:5]]!r}: fast {fast[bad[:5]]!r}, rnd {slow[bad[:5]]!r}"


def _edges(mant: int, emin: int, largest: float) -> np.ndarray:
    """Values at and next to every rounding boundary class of a float format."""
    q = 2.0 ** (emin - mant)  # subnormal quantum
    ulp_max = 2.0 ** (np.floor(np.log2(largest)) - mant)
    base = [0.0, q, q / 2, q / 4, 3 * q / 2, 5 * q / 2, 2.0 ** emin, 2.0 ** emin - q / 2, 2.0 ** emin - q,
            2.0 ** emin + q / 2, 1.0, 1.0 + 2.0 ** -mant / 2, 1.0 + 3 * 2.0 ** -mant / 2, 1.0 - 2.0 ** -mant / 4,
            largest, largest + ulp_max / 2, largest + ulp_max / 4, largest + ulp_max, 2 * largest,
            2.0 ** -1074, 2.0 ** -1022, 1e300, np.inf, np.nan]
    vals = np.array(base)
    vals = np.concatenate([vals, np.nextafter(vals, np.inf), np.nextafter(vals, -np.inf)])
    return np.concatenate([vals, -vals])


def test_fp16_edges_match_rnd():
    _bits_equal(_edges(10, -14, 65504.0), FP16)


def test_fp32_edges_match_rnd():
    _bits_equal(_edges(23, -126, float(np.finfo(np.float32).max)), FP32)


def test_every_fp16_tie_and_neighbour_matches_rnd():
    """All midpoints between consecutive FP16 values (both signs), and their float64 neighbours."""
    h = np.arange(0, 0x7C00, dtype=np.uint16).view(np.float16).astype(np.float64)
    mid = (h[:-1] + h[1:]) / 2  # exact in float64
    x = np.concatenate([mid, np.nextafter(mid, np.inf), np.nextafter(mid, -np.inf), h])
    _bits_equal(np.concatenate([x, -x]), FP16)


def test_random_magnitudes_match_rnd():
    rng = np.random.default_rng(18)
    x = rng.standard_normal(200_000) * np.exp2(rng.integers(-160, 140, 200_000).astype(np.float64))
    for code in (FP16, FP32, FIXED):
        _bits_equal(x, code)


@settings(max_examples=300, deadline=None)
@given(st.floats(allow_nan=True, allow_infinity=True, allow_subnormal=True))
def test_any_float64_matches_rnd(x):
    for code in (FP16, FP32, FIXED):
        _bits_equal(np.array([x]), code)


@numba.njit
def _ops(a, b, code, fast, slow):
    """Rows: the FWHT of b, the adder tree of a (first column), a x b[0] products (scale_vec), the
    rounding of a x b (round_vec); lanes: 4 copies of each column-wise form."""
    n = a.size
    u = np.empty((n, 4))
    for j in range(4):
        u[:, j] = b
    fast_round.fwht_cols(u, code)
    fast[0, :n] = u[:, 3]
    slow[0, :n] = b
    kernels._fwht(slow[0, :n], code, False)
    col = np.empty(n * 4)
    for i in range(n):
        for j in range(4):
            col[i * 4 + j] = a[i]
    fast[1, 0] = fast_round.tree_cols(col, np.empty(n * 4), n, 4, code)[2]
    slow[1, 0] = kernels._tree(a.copy(), n, code)
    fast_round.scale_vec(b[0], a, fast[2], n, code, False)
    p = a * b
    fast_round.round_vec(p, n, code)
    fast[3, :n] = p
    for i in range(n):
        slow[2, i] = kernels.mul(b[0], a[i], code, False)
        slow[3, i] = kernels.rnd(a[i] * b[i], code)


def test_array_forms_match_generic():
    """The whole-array helpers keep the generic kernels' order: equal results on FP16 operands
    for FP16, FP32 and fixed-point targets."""
    rng = np.random.default_rng(5)
    a = (rng.standard_normal(128) * 30).astype(np.float16).astype(np.float64)
    b = (rng.standard_normal(128) * 0.01).astype(np.float16).astype(np.float64)
    for code in (FP16, FP32, FIXED):
        fast, slow = np.zeros((4, 128)), np.zeros((4, 128))
        _ops(a, b, code, fast, slow)
        assert np.array_equal(fast.view(np.int64), slow.view(np.int64))


# ---- whole kernels against the generic formulation (kernels.rnd / mul / _tree / _fwht) --------
@numba.njit
def _generic_dot(q, keys, scores, acc, score, wide):
    buf = np.empty(keys.shape[1])
    for t in range(keys.shape[0]):
        for a in range(q.shape[0]):
            for i in range(keys.shape[1]):
                buf[i] = kernels.mul(q[a, i], keys[t, i], acc, wide)
            scores[a, t] = kernels.rnd(kernels._tree(buf, keys.shape[1], acc), score)


@numba.njit
def _generic_rotated(r, idx, norms, cents, scores, acc, score):
    buf = np.empty(idx.shape[1])
    for t in range(idx.shape[0]):
        for a in range(r.shape[0]):
            for i in range(idx.shape[1]):
                buf[i] = kernels.mul(r[a, i], cents[idx[t, i]], acc, False)
            scores[a, t] = kernels.mul(kernels._tree(buf, idx.shape[1], acc), norms[t], score, False)


@numba.njit
def _generic_inverse(idx, norms, cents, signs, out, rot, log2d):
    u = np.empty(idx.shape[1])
    for t in range(idx.shape[0]):
        for i in range(idx.shape[1]):
            u[i] = kernels.rnd(cents[idx[t, i]] * norms[t], rot)
        kernels._fwht(u, rot, False)
        for i in range(idx.shape[1]):
            out[t, i] = u[i] * signs[i] * 2.0 ** -log2d


@numba.njit
def _generic_accumulate(w, vals, accs, value, wide):
    for t in range(vals.shape[0]):
        for a in range(w.shape[0]):
            for i in range(vals.shape[1]):
                accs[a, i] = kernels.rnd(accs[a, i] + kernels.mul(w[a, t], vals[t, i], value, wide), value)


def _same(x, y):
    assert np.array_equal(np.asarray(x).view(np.int64), np.asarray(y).view(np.int64))


def test_baseline_kernels_match_generic_formulation():
    """dot_scores, rotated_scores, inverse_rotate, accumulate (serial and parallel flavours) equal a
    direct loop of kernels.rnd / mul / _tree / _fwht bit for bit: FP16, FP32 and fixed formats,
    a key count that is not a multiple of the key block, magnitudes that overflow FP16."""
    from axelsim.hw import baseline_kernels as bk

    rng = np.random.default_rng(7)
    n, d, h = 37, 16, 3
    f16 = lambda x: x.astype(np.float16).astype(np.float64)
    q = f16(rng.standard_normal((h, d)) * 300)
    keys = f16(rng.standard_normal((n, d)) * 4)
    idx = rng.integers(0, 8, (n, d)).astype(np.uint8)
    norms = f16(rng.random(n) * 40)
    cents = f16(np.linspace(-2.1, 2.1, 8))
    signs = rng.choice([-1.0, 1.0], d)
    w = rng.random((h, n)).astype(np.float32).astype(np.float64)
    for acc, score in ((FP16, FP32), (FP32, FP32), (FIXED, FP32), (FP16, FIXED)):
        for flavour in ("serial", "parallel"):
            got, want = np.empty((h, n)), np.empty((h, n))
            getattr(bk.dot_scores, flavour)(q, keys, got, acc, score, False)
            _generic_dot(q, keys, want, acc, score, False)
            _same(got, want)
            getattr(bk.rotated_scores, flavour)(q, idx, norms, cents, got, acc, score, False, False)
            _generic_rotated(q, idx, norms, cents, want, acc, score)
            _same(got, want)
            out, ref = np.empty((n, d)), np.empty((n, d))
            getattr(bk.inverse_rotate, flavour)(idx, norms, cents, signs, out, acc, 4)
            _generic_inverse(idx, norms, cents, signs, ref, acc, 4)
            _same(out, ref)
            got, want = np.zeros((h, d)), np.zeros((h, d))
            getattr(bk.accumulate, flavour)(w, keys, got, acc, False)
            _generic_accumulate(w, keys, want, acc, False)
            _same(got, want)


def test_float32_lane_accumulation_equals_the_generic_fp32_one():
    """accumulate_fp32 (serial and parallel flavours) against the direct loop of kernels.rnd /
    mul to FP32, on FP16 and FP32 weights and vectors: lane counts that are not a multiple of
    the lane block, products below FP32's normal range and past its largest value (inf, then
    inf - inf = NaN), signed zeros. Equal bit for bit where finite or infinite, NaN where NaN."""
    from axelsim.hw import baseline_kernels as bk

    rng = np.random.default_rng(11)
    n, d, h = 53, 80, 3
    f16 = lambda x: x.astype(np.float16).astype(np.float64)
    f32 = lambda x: x.astype(np.float32).astype(np.float64)
    vals16 = f16(rng.standard_normal((n, d)) * 10.0 ** rng.integers(-6, 5, (n, 1)))
    vals16[5, :8] = -0.0
    vals32 = f32(rng.standard_normal((n, d)) * 10.0 ** rng.integers(-30, 30, (n, 1)))
    vals32[7, :4] = f32(np.array([3e38, -3e38, 1e-45, -1e-45]))  # near FP32's largest; its least subnormal
    w = f32(rng.random((h, n)) * 10.0 ** rng.integers(-20, 10, (h, n)))
    w[1, 3] = -0.0
    vals32[9, :2] = vals32[7, 1::-1]
    w[2, [7, 9]] = f32(np.array(1e30))  # x 3e38 overflows, then x -3e38 at token 9 makes inf - inf
    for vals in (vals16, vals32):
        want = np.zeros((h, d))
        _generic_accumulate(w, vals, want, FP32, False)
        for flavour in ("serial", "parallel"):
            got = np.zeros((h, d), dtype=np.float32)
            getattr(bk.accumulate_fp32, flavour)(w.astype(np.float32), vals.astype(np.float32), got)
            got64 = got.astype(np.float64)
            assert np.array_equal(np.isnan(got64), np.isnan(want))
            finite = ~np.isnan(want)
            _same(got64[finite], want[finite])
    assert np.isnan(want).any() and np.isinf(want).any()  # of the FP32 vectors


def test_every_kernel_releases_the_gil():
    """Every compiled kernel of the package (numba dispatchers at module level, and both
    flavours of each jit.by_work kernel) compiles with nogil, so a process's other threads (the
    section dispatcher and the process pool's queue threads) run while a kernel does."""
    import importlib
    import pkgutil

    import numba.core.registry

    import axelsim

    seen = 0
    for info in pkgutil.walk_packages(axelsim.__path__, "axelsim."):
        if info.name.startswith("axelsim.rtl") or info.name.endswith("__main__"):  # Amaranth HDL (an extra); the CLI's entry
            continue
        module = importlib.import_module(info.name)
        for name, value in vars(module).items():
            kernels = [getattr(value, "serial", None), getattr(value, "parallel", None), value]
            for kernel in kernels:
                if isinstance(kernel, numba.core.registry.CPUDispatcher) and kernel.__module__ == info.name:
                    assert kernel.targetoptions.get("nogil"), f"{info.name}.{name}"
                    seen += 1
    assert seen > 100  # every module was reached
