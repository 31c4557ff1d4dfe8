"""The cycle model's compiled arithmetic against exact rational arithmetic and numpy's casts,
and the sliding-window bank calendar."""

from __future__ import annotations

from fractions import Fraction

import numba
import numpy as np
import pytest

from axelsim.config.formats import parse_format
from axelsim.hw import kernels
from axelsim.hw.controller import raw_vectors
from axelsim.hw.sram import BankCalendar


@numba.njit
def _round_all(x, code, out):
    for i in range(x.size):
        out[i] = kernels.rnd(x[i], code)


@numba.njit
def _mul_all(a, b, code, wide, out):
    for i in range(a.size):
        out[i] = kernels.mul(a[i], b[i], code, wide)


@numba.njit
def _add_all(a, b, code, out):
    for i in range(a.size):
        out[i] = kernels.add_exact(a[i], b[i], code)


def _exact_round(value: Fraction, fmt) -> float:
    """Round-half-even of an exact rational to fmt, by brute force over neighbours."""
    if fmt.kind == "fixed":
        scaled = value * 2**fmt.frac_bits
        n = scaled.numerator // scaled.denominator
        rest = scaled - n
        if rest > Fraction(1, 2) or (rest == Fraction(1, 2) and n % 2 == 1):
            n += 1
        top = 2 ** (fmt.width_bits - 1)
        return min(max(n, -top), top - 1) / 2**fmt.frac_bits
    dtype = np.float16 if fmt.kind == "fp16" else np.float32
    with np.errstate(over="ignore"):
        near = dtype(float(value))  # within one ulp; pick the nearest neighbour exactly
    if not np.isfinite(near):
        return float(near)  # beyond the largest finite value plus half an ulp: overflow
    cands = [near, np.nextafter(near, dtype(np.inf)), np.nextafter(near, dtype(-np.inf))]
    cands = [c for c in cands if np.isfinite(c)]
    best = min(cands, key=lambda c: (abs(Fraction(float(c)) - value), int(np.array(c).view(
        np.uint16 if dtype is np.float16 else np.uint32)) & 1))
    return float(best)


def _values(rng, n):
    x = rng.standard_normal(n) * np.exp2(rng.integers(-30, 18, n))
    h = rng.standard_normal(n).astype(np.float16).astype(np.float64)
    ties = h + np.spacing(h.astype(np.float16)).astype(np.float64) / 2  # exact fp16 ties
    tiny = rng.standard_normal(n) * 2.0**-20  # fp16 subnormal range
    edges = np.array([0.0, -0.0, 65504.0, 65519.99, 65520.0, -65520.0, 2.0**-25, 3 * 2.0**-26, 1e300, np.inf])
    return np.concatenate([x, ties, tiny, edges])


@pytest.mark.parametrize("name", ["fp16", "fp32"])
def test_float_rounding_equals_numpy_casts(name):
    x = _values(np.random.default_rng(1), 200_000)
    out = np.empty_like(x)
    fmt = parse_format(name)
    _round_all(x, kernels.fmt_code(fmt), out)
    with np.errstate(over="ignore"):
        ref = x.astype(np.float16 if name == "fp16" else np.float32).astype(np.float64)
    assert np.array_equal(out.view(np.int64), ref.view(np.int64))


@pytest.mark.parametrize("name", ["fixed16.8", "fixed8.0", "fixed32.20"])
def test_fixed_rounding_against_fractions(name):
    fmt = parse_format(name)
    x = _values(np.random.default_rng(2), 2_000)[:-1]  # no inf
    out = np.empty_like(x)
    _round_all(x, kernels.fmt_code(fmt), out)
    assert all(out[i] == _exact_round(Fraction(float(v)), fmt) for i, v in enumerate(x))


@pytest.mark.parametrize("a_name,b_name,r_name", [("fixed32.20", "fixed32.20", "fp32"),
                                                   ("fixed32.16", "fp32", "fixed32.10"),
                                                   ("fp32", "fp32", "fp16"), ("fixed30.10", "fixed30.10", "fixed32.12")])
def test_products_round_once_against_fractions(a_name, b_name, r_name):
    a_fmt, b_fmt, r_fmt = map(parse_format, (a_name, b_name, r_name))
    rng = np.random.default_rng(3)
    code_a, code_b = kernels.fmt_code(a_fmt), kernels.fmt_code(b_fmt)
    a, b = np.empty(3000), np.empty(3000)
    _round_all(rng.standard_normal(3000) * np.exp2(rng.integers(-10, 10, 3000)), code_a, a)
    _round_all(rng.standard_normal(3000) * np.exp2(rng.integers(-10, 10, 3000)), code_b, b)
    out = np.empty(3000)
    _mul_all(a, b, kernels.fmt_code(r_fmt), kernels.is_wide(a_fmt, b_fmt), out)
    assert all(out[i] == _exact_round(Fraction(float(a[i])) * Fraction(float(b[i])), r_fmt) for i in range(3000))


def test_sum_of_finer_operands_rounds_once():
    # fp32 operands summed into fp16: a plain float64 sum then a rounding could double-round
    rng = np.random.default_rng(4)
    a = rng.standard_normal(20_000).astype(np.float32).astype(np.float64)
    b = (rng.standard_normal(20_000) * 2.0**-12).astype(np.float32).astype(np.float64)
    out = np.empty_like(a)
    fmt = parse_format("fp16")
    _add_all(a, b, kernels.fmt_code(fmt), out)
    assert all(out[i] == _exact_round(Fraction(float(a[i])) + Fraction(float(b[i])), fmt) for i in range(0, 20_000, 7))


def test_calendar_window_stays_small_and_refuses_released_cycles():
    cal = BankCalendar(banks=4, ports=1, window=64)
    t = 0
    for _ in range(200):  # 200 runs of 100 accesses, each run released once done
        starts, _ = cal.reserve_run(np.full(100, t, dtype=np.int64), 1, t, np.arange(100) % 4)
        assert starts[0] == t
        t = int(starts[-1]) + 1
        cal.release_before(t)
    assert t == 200 * 100 and cal.window <= 256
    with pytest.raises(RuntimeError):
        cal.reserve_one(0, t - 1)
    assert cal.reserve_one(1, t) == t and cal.reserve_one(1, t) == t + 1  # one port: the next cycle


def test_key_mode_unit_kernels_equal_their_stages():
    """kernels.bind (the compiled entry point, arrays bound) and the per-unit fused serial kernels
    of key mode give the stage kernels' results bit for bit."""
    rng = np.random.default_rng(3)
    h, n, d, levels = 2, 5, 16, 8
    acc, score, soft, value = (kernels.fmt_code(parse_format(f)) for f in ("fp32", "fp16", "fp32", "fp32"))
    leaves = rng.normal(size=(h, n, d))
    norms = rng.uniform(0.5, 4.0, n)
    sums_a, scores_a, sums_b, scores_b = (np.empty((h, n)) for _ in range(4))
    tree = kernels.bind(kernels.SERIAL.tree_stage, leaves, sums_a, acc)
    assert not isinstance(tree.func, numba.core.registry.CPUDispatcher)  # bound past the dispatcher
    pipe = kernels.bind(kernels.pipe_stage, leaves, sums_b, norms, scores_b, acc, score)
    for t in range(n):
        tree(t, t + 1)
        kernels.SERIAL.norm_mul_stage(sums_a, norms, scores_a, score, t, t + 1)
        pipe(t, t + 1)
    assert np.array_equal(sums_a, sums_b) and np.array_equal(scores_a, scores_b)
    z = -rng.uniform(0, 8, (h, n))
    zmax = np.zeros(h)
    idx = rng.integers(0, levels, (n, d)).astype(np.uint8)
    coeffs = np.array([1.0, 0.6931471805599453, 0.2402265069591007, 0.05550410866482158])
    # three running-sum partials and two bin copies: key t into partial t mod P
    outs = [(np.empty((h, n)), np.zeros((h, 2, d, levels)), np.zeros((h, 3))) for _ in range(2)]
    fused = kernels.bind(kernels.exp_bins_stage, z, zmax, outs[1][0], norms, idx, outs[1][1], outs[1][2], soft, value,
                         1.4426950408889634, coeffs)
    for t in range(n):
        kernels.SERIAL.exp_stage(z, zmax, outs[0][0], soft, 1.4426950408889634, coeffs, t, t + 1)
        kernels.SERIAL.bins_stage(outs[0][0], norms, idx, outs[0][1], outs[0][2], soft, value, t, t + 1)
        fused(t, t + 1)
    assert all(np.array_equal(a, b) for a, b in zip(*outs))
    # not a numba kernel: plain partial
    assert kernels.bind(lambda a, lo, hi: a + lo + hi, 1)(2, 3) == 6


def _stages_rows(raw, signs, bnd, inp, rot, f16, wide_sq, exact_first, upper, bits, row_bytes):
    """The write path through the four per-stage kernels (serial twins): rows and saturation flags."""
    n, d = raw.shape
    x, y, t = np.empty((n, d)), np.empty((n, d)), np.empty((n, bnd.size))
    nrm, stored, sat = np.empty(n), np.empty(n), np.empty(n, dtype=np.bool_)
    idx, rows = np.empty((n, d), dtype=np.uint8), np.empty((n, row_bytes), dtype=np.uint8)
    k = kernels.SERIAL
    k.norm_stage(raw, x, nrm, stored, sat, t, bnd, inp, rot, f16, wide_sq, 0, n)
    k.rotate_stage(x, signs, y, rot, exact_first, 0, n)
    k.quantize_stage(y, t, idx, upper, 0, n)
    k.pack_stage(idx, stored, bits, rows, 0, n)
    return rows, sat


@pytest.mark.parametrize("inp_name,rot_name", [("fp16", "fp32"), ("fp16", "fp16"), ("fp32", "fp32"),
                                               ("fixed16.8", "fp32"), ("fp16", "fixed24.12"),
                                               ("fixed32.16", "fixed32.16")])
@pytest.mark.parametrize("d,bits", [(4, 3), (8, 2), (16, 3), (32, 4), (64, 1)])
def test_fused_write_equals_the_stage_kernels(inp_name, rot_name, d, bits):
    """kernels.write_burst (preloading: the four write stages fused per vector, rows stored in
    place through a row map) stores the per-stage kernels' rows bit for bit, serial and parallel,
    on its vectorised path (float formats, values in the normal range; an fp32 rotator rounding
    by conversion) and its per-vector fallback to the stage code (subnormals, nan, overflow;
    fixed formats), from float64 and from float32 data."""
    rng = np.random.default_rng(d * 7 + bits)
    inp, rot = parse_format(inp_name), parse_format(rot_name)
    ci, cr, c16 = kernels.fmt_code(inp), kernels.fmt_code(rot), kernels.fmt_code(parse_format("fp16"))
    wide_sq = kernels.is_wide(inp, inp)
    exact_first = inp != rot and (inp.kind, rot.kind) != ("fp16", "fp32")
    levels = 2 ** bits
    bnd = np.sort(rng.standard_normal(levels - 1)).astype(np.float16).astype(np.float64) * 0.3
    signs = rng.choice([-1.0, 1.0], d)
    row_bytes = -(-(d * bits + 16) // 8) + 1  # one spare byte: must come out zero
    for n, upper in ((7, True), (300, True), (7, False), (300, False)):  # serial twin, parallel; tie rules
        vals = rng.permutation(_values(rng, n * d))[: n * d]  # also inf, 1e300, fp16 ties and subnormals
        raw = vals.reshape(n, d) * np.exp2(rng.integers(-12, 6, (n, 1)))
        raw[0] = 0.0
        raw[1] = 60000.0  # saturating norm
        raw[2::2] = rng.standard_normal((len(raw[2::2]), d)) * 3.0  # plain vectors: the vectorised path
        want_rows, want_sat = _stages_rows(raw, signs, bnd, ci, cr, c16, wide_sq, exact_first, upper, bits, row_bytes)
        storage = np.full((n + 3, row_bytes), 0xA5, dtype=np.uint8)
        flat = rng.permutation(n + 3)[:n].astype(np.int64)
        sat = np.empty(n, dtype=np.bool_)
        kernels.write_burst(raw, signs, bnd, ci, cr, c16, wide_sq, exact_first, upper, bits, storage, flat, sat)
        assert np.array_equal(storage[flat], want_rows)
        assert np.array_equal(sat, want_sat)
        # float16/float32 data reach the kernel as float32 (controller.raw_vectors): same rows as
        # the stage code on the float64 of those values
        with np.errstate(over="ignore"):  # 1e300 becomes inf
            raw32 = raw_vectors(raw.astype(np.float32), d)
        assert raw32.dtype == np.float32
        want_rows, want_sat = _stages_rows(raw32.astype(np.float64), signs, bnd, ci, cr, c16, wide_sq, exact_first,
                                           upper, bits, row_bytes)
        kernels.write_burst(raw32, signs, bnd, ci, cr, c16, wide_sq, exact_first, upper, bits, storage, flat, sat)
        assert np.array_equal(storage[flat], want_rows)
        assert np.array_equal(sat, want_sat)
