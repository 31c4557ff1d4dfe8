"""The RTL floating-point operators against the golden model's rounding (numerics.fp), bit for bit.

Operands: edge patterns (zeros, subnormals, the largest finite, infinities, NaN, values one
ulp apart, ties) crossed with each other, plus random bit patterns and random pairs with near
exponents (where rounding and cancellation happen). Evaluated in Amaranth's simulator.
"""

import numpy as np
import pytest

amaranth = pytest.importorskip("amaranth", reason="the rtl extra (amaranth) is not installed: pip install -e '.[rtl]'")

from amaranth.sim import Simulator  # noqa: E402

from axelsim.config.formats import FP16 as NF16, FP32 as NF32  # noqa: E402
from axelsim.numerics.fp import add_round, format_code, mul_round, round_to  # noqa: E402
from axelsim.rtl.fp import FP16, FP32, FPOp  # noqa: E402

DTYPES = {FP16: (np.float16, np.uint16), FP32: (np.float32, np.uint32)}
NFMT = {FP16: NF16, FP32: NF32}


def run_comb(op, a_bits, b_bits):
    """Evaluate a combinational FPOp on each (a, b) pair; returns the outputs as uint64."""
    sim = Simulator(op)
    out = []

    async def bench(ctx):
        for x, y in zip(a_bits, b_bits):
            ctx.set(op.a, int(x))
            ctx.set(op.b, int(y))
            out.append(ctx.get(op.out))

    sim.add_testbench(bench)
    sim.run()
    return np.array(out, dtype=np.uint64)


def edge_patterns(fmt):
    w, f = fmt.width, fmt.frac_bits
    sign = 1 << (w - 1)
    pats = [0, 1, 2, 3, (1 << f) - 1, 1 << f, (1 << f) + 1, fmt.bias << f, (fmt.bias << f) + 1,
            ((fmt.bias + 1) << f) - 1, fmt.max_finite_bits, fmt.max_finite_bits - 1, fmt.inf_bits,
            fmt.nan_bits, (fmt.bias + f + 1) << f, (fmt.bias - f - 2) << f, (fmt.bias << f) | (1 << (f - 1))]
    return [p | s for p in pats for s in (0, sign)]


def operands(fmt, n_random, seed):
    rng = np.random.default_rng(seed)
    edges = np.array(edge_patterns(fmt), dtype=np.uint64)
    ea, eb = np.meshgrid(edges, edges)
    a = rng.integers(0, 1 << fmt.width, n_random, dtype=np.uint64)
    b = rng.integers(0, 1 << fmt.width, n_random, dtype=np.uint64)
    near = n_random // 2  # same sign and exponent region: rounding, ties, cancellation
    b[:near] = a[:near] ^ rng.integers(0, 1 << (fmt.frac_bits + 3), near, dtype=np.uint64)
    b[near:near + near // 2] ^= np.uint64(1 << (fmt.width - 1))
    return np.concatenate([ea.ravel(), a]), np.concatenate([eb.ravel(), b])


def as_float(bits, fmt):
    fdt, udt = DTYPES[fmt]
    with np.errstate(invalid="ignore"):  # NaN payloads
        return bits.astype(udt).view(fdt).astype(np.float64)


def to_bits(values, fmt):
    fdt, udt = DTYPES[fmt]
    return values.astype(fdt).view(udt).astype(np.uint64)


def check(got, ref_values, fmt):
    nan = np.isnan(ref_values)
    assert (got[nan] == fmt.nan_bits).all(), "NaN results must be the canonical quiet NaN"
    want = to_bits(ref_values[~nan], fmt)
    bad = np.flatnonzero(got[~nan] != want)
    assert bad.size == 0, f"{bad.size} mismatches, first: got {hex(int(got[~nan][bad[0]]))} want {hex(int(want[bad[0]]))}"


@pytest.mark.parametrize("fin,fout,sub", [(FP16, FP16, False), (FP32, FP32, False), (FP32, FP32, True), (FP32, FP16, False)])
def test_add_matches_golden_rounding(fin, fout, sub):
    a, b = operands(fin, 600, 1)
    got = run_comb(FPOp("sub" if sub else "add", fin, fout), a, b)
    fa, fb = as_float(a, fin), as_float(b, fin)
    code = format_code(NFMT[fout])
    with np.errstate(invalid="ignore"):
        ref = np.array([add_round(x, -y if sub else y, code) for x, y in zip(fa, fb)])
    check(got, ref, fout)


@pytest.mark.parametrize("fa,fb,fout,scale", [(FP32, FP32, FP32, 0), (FP16, FP16, FP16, 0), (FP32, FP16, FP16, -4),
                                              (FP16, FP16, FP32, 0), (FP16, FP32, FP32, 0)])
def test_mul_matches_golden_rounding(fa, fb, fout, scale):
    a, b = operands(fa, 600, 2)
    if fb != fa:
        b = np.random.default_rng(3).integers(0, 1 << fb.width, a.size, dtype=np.uint64)
    got = run_comb(FPOp("mul", fa, fout, fb=fb, scale_log2=scale), a, b)
    x, y = as_float(a, fa), as_float(b, fb)
    code = format_code(NFMT[fout])
    with np.errstate(invalid="ignore"):
        ref = np.array([mul_round(p, q * 2.0**scale, code) for p, q in zip(x, y)])
    check(got, ref, fout)


@pytest.mark.parametrize("fmt", [FP16, FP32])
def test_sqrt_matches_numpy(fmt):
    rng = np.random.default_rng(4)
    a = np.concatenate([np.array(edge_patterns(fmt), dtype=np.uint64),
                        rng.integers(0, 1 << (fmt.width - 1), 300, dtype=np.uint64)])  # mostly positive
    got = run_comb(FPOp("sqrt", fmt, fmt), a, a)
    with np.errstate(invalid="ignore"):
        ref = np.sqrt(as_float(a, fmt).astype(DTYPES[fmt][0])).astype(np.float64)  # IEEE sqrt: correctly rounded
    check(got, ref, fmt)


@pytest.mark.parametrize("fmt", [FP16, FP32])
def test_compare_ge(fmt):
    a, b = operands(fmt, 600, 5)
    got = run_comb(FPOp("ge", fmt, fmt), a, b)
    with np.errstate(invalid="ignore"):
        ref = as_float(a, fmt) >= as_float(b, fmt)
    assert (got.astype(bool) == ref).all()


def test_convert_fp32_to_fp16_saturates_like_the_stored_norm():
    a = np.concatenate([np.array(edge_patterns(FP32), dtype=np.uint64),
                        np.random.default_rng(6).integers(0, 1 << 32, 600, dtype=np.uint64)])
    got = run_comb(FPOp("convert", FP32, FP16), a, a)
    x = as_float(a, FP32)
    ref = round_to(x, NF16)
    finite_over = np.isinf(ref) & np.isfinite(x)
    ref[finite_over] = np.copysign(65504.0, x[finite_over])  # the golden model's norm saturation
    check(got, ref, FP16)
