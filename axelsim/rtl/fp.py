"""IEEE binary16 / binary32 arithmetic in Amaranth: add, multiply, square root, compare, convert.

Written for this project from the IEEE 754 definitions (round to nearest, ties to even,
gradual underflow, overflow to infinity), following the arithmetic contract of
docs/architecture.md. Every operator is combinational: exact intermediate result, then one
rounding by `round_pack` into the result format. Operands and results are raw bit patterns.

Design notes (the why):
- One rounder for every operator. An operator produces an exact value sign * sig * 2^exp
  (sig an unsigned integer, possibly with a sticky bit jammed into its LSB, far enough below
  the result's quantum); `round_pack` normalises it with a leading-zero count, picks the
  quantum (normal or subnormal), rounds half-even and packs, with carry into the exponent.
- The adder aligns the smaller operand into p + G bits, G = max(3, p_out - p + 3) guard bits,
  and jams every bit shifted further out into the LSB (sticky): after an effective subtraction
  with exponent difference >= 2 at most one bit cancels, so the jammed bit lies at least two
  places below the result's quantum and the rounding is exact.
- The square root takes 2 (p_out + 2) (+1 for an even exponent) bits of the radicand and a
  restoring digit-by-digit integer root; a nonzero remainder is the sticky bit.
- NaN results are the canonical quiet NaN (sign 0, MSB of the fraction set).
"""

from __future__ import annotations

import functools
import inspect
from dataclasses import dataclass

from amaranth.hdl import Cat, Const, Elaboratable, Module, Mux, Signal, signed
from amaranth.utils import bits_for

from axelsim.config.formats import NumberFormat
from axelsim.errors import ConfigError

EXP_WIDTH = 12
"""Width of the signed internal exponents (binary32 products and scalings stay within +-2^11)."""


@dataclass(frozen=True)
class Fmt:
    """A binary floating-point format: exponent bits, fraction bits."""

    exp_bits: int
    frac_bits: int

    @property
    def width(self) -> int:
        return 1 + self.exp_bits + self.frac_bits

    @property
    def precision(self) -> int:
        return self.frac_bits + 1

    @property
    def bias(self) -> int:
        return (1 << (self.exp_bits - 1)) - 1

    @property
    def emin(self) -> int:
        return 1 - self.bias

    @property
    def exp_all_ones(self) -> int:
        return (1 << self.exp_bits) - 1

    @property
    def inf_bits(self) -> int:
        return self.exp_all_ones << self.frac_bits

    @property
    def nan_bits(self) -> int:
        return self.inf_bits | (1 << (self.frac_bits - 1))

    @property
    def max_finite_bits(self) -> int:
        return self.inf_bits - 1


FP16 = Fmt(5, 10)
FP32 = Fmt(8, 23)


def fmt_of(fmt: NumberFormat, where: str) -> Fmt:
    """The RTL format of a config format; ConfigError for fixed point (not built in RTL)."""
    if fmt.kind == "fp16":
        return FP16
    if fmt.kind == "fp32":
        return FP32
    raise ConfigError("macro", f"formats.{where}", f"fp16 or fp32 for the RTL twin, got {fmt.name}")


@dataclass
class Unpacked:
    """Fields of an operand: value = (-1)^sign * sig * 2^exp (sig has the hidden bit)."""

    sign: Signal
    exp: Signal
    sig: Signal
    is_zero: Signal
    is_inf: Signal
    is_nan: Signal


def unpack(m: Module, bits, fmt: Fmt, name: str) -> Unpacked:
    """Decode a bit pattern; subnormals get exponent emin - frac_bits and no hidden bit."""
    frac = bits[:fmt.frac_bits]
    efield = bits[fmt.frac_bits:fmt.frac_bits + fmt.exp_bits]
    u = Unpacked(
        sign=Signal(name=f"{name}_s"), exp=Signal(signed(EXP_WIDTH), name=f"{name}_e"),
        sig=Signal(fmt.precision, name=f"{name}_m"), is_zero=Signal(name=f"{name}_z"),
        is_inf=Signal(name=f"{name}_inf"), is_nan=Signal(name=f"{name}_nan"),
    )
    sub = efield == 0
    special = efield == fmt.exp_all_ones
    m.d.comb += [
        u.sign.eq(bits[fmt.width - 1]),
        u.sig.eq(Mux(sub, frac, Cat(frac, Const(1, 1)))),
        u.exp.eq(Mux(sub, fmt.emin - fmt.frac_bits, efield - (fmt.bias + fmt.frac_bits))),
        u.is_zero.eq(sub & (frac == 0)),
        u.is_inf.eq(special & (frac == 0)),
        u.is_nan.eq(special & (frac != 0)),
    ]
    return u


def leading_zeros(m: Module, value: Signal, name: str) -> Signal:
    """Count of leading zeros of `value` (its width when value is 0): a priority encoder."""
    width = len(value)
    lz = Signal(range(width + 1), name=name)
    m.d.comb += lz.eq(width)
    for i in range(width):  # later (higher) bits override: the highest set bit wins
        with m.If(value[i]):
            m.d.comb += lz.eq(width - 1 - i)
    return lz


def round_pack(m: Module, sign, exp, sig: Signal, fmt: Fmt, name: str) -> tuple[Signal, Signal]:
    """Round (-1)^sign * sig * 2^exp to `fmt` (half-even, gradual underflow, overflow to inf).

    Returns (bits, overflow). sig == 0 gives a zero of the given sign. The caller guarantees
    that any sticky bit jammed into sig's LSB lies at least two places below the quantum.
    """
    width = len(sig)
    lz = leading_zeros(m, sig, f"{name}_lz")
    top = Signal(signed(EXP_WIDTH), name=f"{name}_top")
    qexp = Signal(signed(EXP_WIDTH), name=f"{name}_q")
    shift = Signal(signed(EXP_WIDTH), name=f"{name}_sh")
    m.d.comb += [
        top.eq(exp + (width - 1) - lz),
        qexp.eq(Mux(top < fmt.emin, fmt.emin, top) - fmt.frac_bits),
        shift.eq(exp - qexp),
    ]
    # shift >= 0: exact left shift (at most frac_bits places); shift < 0: round off -shift bits
    left_amt = Signal(range(fmt.frac_bits + 1), name=f"{name}_la")
    right_amt = Signal(range(width + 2), name=f"{name}_ra")
    m.d.comb += [
        left_amt.eq(Mux(shift > fmt.frac_bits, fmt.frac_bits, Mux(shift < 0, 0, shift))),
        right_amt.eq(Mux(-shift > width + 1, width + 1, Mux(shift > 0, 0, -shift))),
    ]
    wide = Signal(width + 2, name=f"{name}_w")  # sig followed by two zero bits
    m.d.comb += wide.eq(Cat(Const(0, 2), sig))
    kept = Signal(width + 2, name=f"{name}_k")
    m.d.comb += kept.eq(wide >> (right_amt + 2))
    half = Signal(name=f"{name}_half")
    m.d.comb += half.eq((wide >> (right_amt + 1))[0])
    below_mask = Signal(width + 2, name=f"{name}_bm")
    m.d.comb += below_mask.eq((Const(1, width + 3) << (right_amt + 1)) - 1)
    sticky = Signal(name=f"{name}_st")
    m.d.comb += sticky.eq((wide & below_mask) != 0)
    rounded = Signal(fmt.precision + 1, name=f"{name}_n")
    with m.If(shift >= 0):
        m.d.comb += rounded.eq((sig << left_amt)[:fmt.precision + 1])
    with m.Else():
        m.d.comb += rounded.eq(kept + (half & (sticky | kept[0])))
    packed = Signal(EXP_WIDTH + fmt.frac_bits + 2, name=f"{name}_p")  # unsigned: qexp + bias + frac >= 1
    m.d.comb += packed.eq(((qexp + (fmt.frac_bits + fmt.bias - 1)) << fmt.frac_bits) + rounded)
    overflow = Signal(name=f"{name}_ovf")
    bits = Signal(fmt.width, name=f"{name}_bits")
    m.d.comb += overflow.eq((sig != 0) & (packed >= fmt.inf_bits))
    with m.If(sig == 0):
        m.d.comb += bits.eq(Cat(Const(0, fmt.width - 1), sign))
    with m.Elif(overflow):
        m.d.comb += bits.eq(Cat(Const(fmt.inf_bits, fmt.width - 1), sign))
    with m.Else():
        m.d.comb += bits.eq(Cat(packed[:fmt.width - 1], sign))
    return bits, overflow


def select_special(m: Module, fout: Fmt, nan, inf, inf_sign, finite: Signal, name: str) -> Signal:
    """The result: canonical NaN if `nan`, else a signed infinity if `inf`, else `finite`."""
    res = Signal(fout.width, name=f"{name}_r")
    with m.If(nan):
        m.d.comb += res.eq(fout.nan_bits)
    with m.Elif(inf):
        m.d.comb += res.eq(Cat(Const(fout.inf_bits, fout.width - 1), inf_sign))
    with m.Else():
        m.d.comb += res.eq(finite)
    return res


def operator(build):
    """Build an operator in a submodule of its own, named by its `name` argument: one fragment,
    which the simulator evaluates only when that operator's operands change (not whenever
    anything in the enclosing unit does)."""
    params = inspect.signature(build)

    @functools.wraps(build)
    def wrapped(m: Module, *args, **kwargs):
        name = params.bind(m, *args, **kwargs).arguments["name"]
        sub = Module()
        m.submodules[name] = sub
        return build(sub, *args, **kwargs)

    return wrapped


def widen(m: Module, bits, src: Fmt, dst: Fmt, name: str) -> Signal:
    """Exact conversion to a format at least as wide (binary16 -> binary32), NaN canonical."""
    if src == dst:
        return bits
    u = unpack(m, bits, src, name)
    out, _ = round_pack(m, u.sign, u.exp, u.sig, dst, name)
    return select_special(m, dst, u.is_nan, u.is_inf, u.sign, out, name)


def wider(a: Fmt, b: Fmt) -> Fmt:
    return a if a.precision >= b.precision else b


@operator
def fp_add(m: Module, a, b, fin: Fmt, fout: Fmt, name: str, subtract: bool = False) -> Signal:
    """rnd_fout(a + b) (or a - b) of two fin operands; returns the result bits."""
    if subtract:
        b = Cat(b[:fin.width - 1], ~b[fin.width - 1])
    ua, ub = unpack(m, a, fin, f"{name}_a"), unpack(m, b, fin, f"{name}_b")
    guard = max(3, fout.precision - fin.precision + 3)
    work = fin.precision + guard
    mag_a, mag_b = a[:fin.width - 1], b[:fin.width - 1]
    swap = Signal(name=f"{name}_swap")
    m.d.comb += swap.eq(mag_b > mag_a)
    big_s, big_e, big_m = Signal(name=f"{name}_bs"), Signal(signed(EXP_WIDTH), name=f"{name}_be"), Signal(fin.precision, name=f"{name}_bm")
    sml_s, sml_e, sml_m = Signal(name=f"{name}_ss"), Signal(signed(EXP_WIDTH), name=f"{name}_se"), Signal(fin.precision, name=f"{name}_sm")
    m.d.comb += [
        big_s.eq(Mux(swap, ub.sign, ua.sign)), big_e.eq(Mux(swap, ub.exp, ua.exp)), big_m.eq(Mux(swap, ub.sig, ua.sig)),
        sml_s.eq(Mux(swap, ua.sign, ub.sign)), sml_e.eq(Mux(swap, ua.exp, ub.exp)), sml_m.eq(Mux(swap, ua.sig, ub.sig)),
    ]
    diff = Signal(signed(EXP_WIDTH), name=f"{name}_d")
    amt = Signal(range(work + 2), name=f"{name}_amt")
    m.d.comb += [diff.eq(big_e - sml_e), amt.eq(Mux(diff > work + 1, work + 1, diff))]
    sml_ext = Signal(work, name=f"{name}_sx")
    m.d.comb += sml_ext.eq(sml_m << guard)
    aligned = Signal(work, name=f"{name}_al")
    lost_mask = Signal(work, name=f"{name}_lm")
    m.d.comb += [aligned.eq(sml_ext >> amt), lost_mask.eq((Const(1, work + 2) << amt) - 1)]
    jammed = Signal(work, name=f"{name}_j")
    m.d.comb += jammed.eq(aligned | ((sml_ext & lost_mask) != 0))
    total = Signal(work + 1, name=f"{name}_t")
    big_ext = big_m << guard
    with m.If(big_s == sml_s):
        m.d.comb += total.eq(big_ext + jammed)
    with m.Else():
        m.d.comb += total.eq(big_ext - jammed)
    sign = Signal(name=f"{name}_sign")  # exact zero: +0 unless both operands are negative
    m.d.comb += sign.eq(Mux(total == 0, ua.sign & ub.sign, big_s))
    rounded, _ = round_pack(m, sign, big_e - guard, total, fout, name)
    nan = ua.is_nan | ub.is_nan | (ua.is_inf & ub.is_inf & (ua.sign != ub.sign))
    return select_special(m, fout, nan, ua.is_inf | ub.is_inf, Mux(ua.is_inf, ua.sign, ub.sign), rounded, name)


@operator
def fp_mul(m: Module, a, b, fa: Fmt, fb: Fmt, fout: Fmt, name: str, scale_log2: int = 0) -> Signal:
    """rnd_fout(a * b * 2^scale_log2): the exact product, one rounding (the scale is exact)."""
    ua, ub = unpack(m, a, fa, f"{name}_a"), unpack(m, b, fb, f"{name}_b")
    prod = Signal(fa.precision + fb.precision, name=f"{name}_pr")
    m.d.comb += prod.eq(ua.sig * ub.sig)
    sign = ua.sign ^ ub.sign
    rounded, _ = round_pack(m, sign, ua.exp + ub.exp + scale_log2, prod, fout, name)
    nan = ua.is_nan | ub.is_nan | (ua.is_inf & ub.is_zero) | (ua.is_zero & ub.is_inf)
    return select_special(m, fout, nan, ua.is_inf | ub.is_inf, sign, rounded, name)


def isqrt(m: Module, radicand: Signal, name: str) -> tuple[Signal, Signal]:
    """Restoring digit-by-digit integer square root: (floor(sqrt(x)), remainder != 0)."""
    width = len(radicand) + (len(radicand) & 1)
    x = Signal(width, name=f"{name}_x")
    m.d.comb += x.eq(radicand)
    root = Const(0, 1)
    rem = Const(0, 1)
    for i in range(width // 2):
        pair = x[width - 2 * i - 2:width - 2 * i]
        cur = Signal(i + 4, name=f"{name}_c{i}")
        trial = Signal(i + 3, name=f"{name}_t{i}")
        m.d.comb += [cur.eq(Cat(pair, rem)), trial.eq(Cat(Const(1, 2), root))]
        fits = Signal(name=f"{name}_f{i}")
        m.d.comb += fits.eq(cur >= trial)
        new_rem = Signal(i + 3, name=f"{name}_r{i}")
        new_root = Signal(i + 1, name=f"{name}_q{i}")
        m.d.comb += [new_rem.eq(Mux(fits, cur - trial, cur)), new_root.eq(Cat(fits, root) if i else fits)]
        root, rem = new_root, new_rem
    return root, rem != 0


@operator
def fp_sqrt(m: Module, a, fmt: Fmt, name: str) -> Signal:
    """rnd_fmt(sqrt(a)); sqrt(-0) = -0, negative or NaN -> NaN, +inf -> +inf."""
    ua = unpack(m, a, fmt, f"{name}_a")
    lz = leading_zeros(m, ua.sig, f"{name}_lz")
    norm = Signal(fmt.precision, name=f"{name}_nm")
    m.d.comb += norm.eq(ua.sig << lz)
    pad = 2 * (fmt.precision + 2) - fmt.precision  # radicand bits beyond the operand's
    e_norm = Signal(signed(EXP_WIDTH), name=f"{name}_en")
    m.d.comb += e_norm.eq(ua.exp - lz - pad)
    odd = e_norm[0]
    radicand = Signal(2 * (fmt.precision + 2) + 1, name=f"{name}_x")
    m.d.comb += radicand.eq(Mux(odd, norm << (pad + 1), norm << pad))
    root, inexact = isqrt(m, radicand, f"{name}_i")
    half_exp = Signal(signed(EXP_WIDTH), name=f"{name}_he")
    m.d.comb += half_exp.eq((e_norm - odd) >> 1)
    jam = Signal(len(root) + 1, name=f"{name}_jm")
    m.d.comb += jam.eq(Cat(inexact, root))
    rounded, _ = round_pack(m, 0, half_exp - 1, jam, fmt, name)
    res = Signal(fmt.width, name=f"{name}_r")
    with m.If(ua.is_nan | (ua.sign & ~ua.is_zero)):
        m.d.comb += res.eq(fmt.nan_bits)
    with m.Elif(ua.is_zero):
        m.d.comb += res.eq(a)
    with m.Elif(ua.is_inf):
        m.d.comb += res.eq(fmt.inf_bits)
    with m.Else():
        m.d.comb += res.eq(rounded)
    return res


@operator
def fp_ge(m: Module, a, b, fmt: Fmt, name: str) -> Signal:
    """a >= b (IEEE: false if either is NaN, -0 == +0)."""
    ua, ub = unpack(m, a, fmt, f"{name}_a"), unpack(m, b, fmt, f"{name}_b")
    mag_a, mag_b = a[:fmt.width - 1], b[:fmt.width - 1]
    ge = Signal(name=f"{name}_ge")
    with m.If(ua.is_nan | ub.is_nan):
        m.d.comb += ge.eq(0)
    with m.Elif(ua.is_zero & ub.is_zero):
        m.d.comb += ge.eq(1)
    with m.Elif(ua.sign != ub.sign):
        m.d.comb += ge.eq(ub.sign)
    with m.Elif(ua.sign):
        m.d.comb += ge.eq(mag_a <= mag_b)
    with m.Else():
        m.d.comb += ge.eq(mag_a >= mag_b)
    return ge


@operator
def fp_convert(m: Module, a, fin: Fmt, fout: Fmt, name: str, saturate: bool = False) -> tuple[Signal, Signal]:
    """rnd_fout(a); with `saturate` a finite value beyond fout's range becomes +-max finite.

    Returns (bits, saturated)."""
    ua = unpack(m, a, fin, f"{name}_a")
    rounded, overflow = round_pack(m, ua.sign, ua.exp, ua.sig, fout, name)
    sat = Signal(name=f"{name}_sat")
    m.d.comb += sat.eq(overflow & ~ua.is_inf & ~ua.is_nan & saturate)
    finite = Mux(sat, Cat(Const(fout.max_finite_bits, fout.width - 1), ua.sign), rounded)
    return select_special(m, fout, ua.is_nan, ua.is_inf, ua.sign, finite, name), sat


class FPOp(Elaboratable):
    """One combinational operator as a module with ports (tests and per-operator synthesis).

    kind: 'add', 'sub', 'mul', 'sqrt', 'ge', 'convert'. Inputs a (and b), output `out`.
    """

    def __init__(self, kind: str, fin: Fmt, fout: Fmt, fb: Fmt | None = None, scale_log2: int = 0):
        self.kind, self.fin, self.fout, self.fb, self.scale_log2 = kind, fin, fout, fb or fin, scale_log2
        self.a = Signal(fin.width)
        self.b = Signal(self.fb.width)
        self.out = Signal(1 if kind == "ge" else fout.width)

    def elaborate(self, platform):
        m = Module()
        k = self.kind
        if k in ("add", "sub"):
            res = fp_add(m, self.a, self.b, self.fin, self.fout, "add", subtract=(k == "sub"))
        elif k == "mul":
            res = fp_mul(m, self.a, self.b, self.fin, self.fb, self.fout, "mul", self.scale_log2)
        elif k == "sqrt":
            res = fp_sqrt(m, self.a, self.fin, "sqrt")
        elif k == "ge":
            res = fp_ge(m, self.a, self.b, self.fin, "ge")
        elif k == "convert":
            res, _ = fp_convert(m, self.a, self.fin, self.fout, "cvt", saturate=True)
        else:
            raise ValueError(f"unknown operator {k!r}")
        m.d.comb += self.out.eq(res)
        return m

    def ports(self) -> list[Signal]:
        return [self.a, self.b, self.out]


__all__ = ["Fmt", "FP16", "FP32", "fmt_of", "fp_add", "fp_mul", "fp_sqrt", "fp_ge", "fp_convert",
           "round_pack", "unpack", "widen", "wider", "FPOp", "bits_for"]
