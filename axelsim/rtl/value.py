"""The value path in Amaranth: softmax scale + running max, the exp unit, weights + rotated-domain
bins, and the per-head finalisation (centroid multiply, inverse FWHT, output scale with the
one division), sized from the MacroConfig, bit for bit docs/architecture.md ("Value path",
"The exp unit"). S = formats.softmax, V = formats.value (fp16 or fp32).

Timing comes from the structure, as in axelsim.rtl.units (an item enters with `in_valid` for one
cycle; `out_valid` rises for one cycle when its result is on the output registers):

- softmax scale: z = rnd_S(score * sigma) and the running max, one register (latency 1, II 1);
- exp: the chain of EXP_STEPS = 16 operations, one registered stage each (latency 16, II 1; the
  cycle model's 8 adds + 7 multiplies + the exponent stage at one cycle per operation), one
  exp unit;
- weights + bins: w = rnd_V(e * norm) and E = rnd_S(E + e) (one register), then the d bin
  read-modify-writes on `bin_lanes` adders over ceil(d / bin_lanes) cycles (the adder reads and
  writes its bin within the cycle, so consecutive keys never wait for one another);
- centroids: centroid_multipliers / L coordinates per cycle, each the in-order chain of L
  multiplications and L - 1 additions (latency = II = ceil(d L / centroid_multipliers));
- inverse FWHT: fully unrolled, log2 d registered stages (II 1);
- output scale: DIV_STAGES registers (E d, two halves of the radix-2 reciprocal recurrence,
  rounding: g = rnd_V(1 / rnd_V(E d))), then out_i = rnd_V(s_i u_i g) on centroid_multipliers
  multipliers over ceil(d / centroid_multipliers) cycles.
"""

from __future__ import annotations

import math

import numpy as np
from amaranth.hdl import Array, Cat, Const, Elaboratable, Module, Mux, Signal, signed

from axelsim.config.formats import NumberFormat
from axelsim.config.macro import MacroConfig
from axelsim.errors import ConfigError
from axelsim.numerics.fp import round_to
from axelsim.numerics.golden import exp_constants
from axelsim.rtl.fp import (EXP_WIDTH, FP16, Fmt, fmt_of, fp_add, fp_ge, fp_mul, leading_zeros, round_pack,
                            select_special, unpack)
from axelsim.rtl.units import Chunked, ceil_div, fwht_pipeline

EXP_STEPS = 16
"""The exp unit's chain, one FP operation (or the exponent add) per step: 0 x = z - m,
1 y = x log2e, 2 k = rint(y) and f = y - k, then the six Horner steps p = p f + c_n from
p = c_6 (a multiply step and an add step each, 3-14), 15 p 2^k (the exponent add)."""


def exp_groups(latency: int) -> list[tuple[int, ...]]:
    """The exp chain cut into `latency` registered stages: contiguous, as even as possible (one
    step per stage at latency EXP_STEPS; more stages than steps add plain delay registers)."""
    cuts = [round(g * EXP_STEPS / latency) for g in range(latency + 1)] if latency <= EXP_STEPS else \
        list(range(EXP_STEPS + 1)) + [EXP_STEPS] * (latency - EXP_STEPS)
    return [tuple(range(cuts[g], cuts[g + 1])) for g in range(latency)]


DIV_STAGES = 4
"""Output scale before the multiplications: E d, quotient bits high half, low half, rounding."""


def fmt_bits(value: float, fmt: Fmt) -> int:
    """The bit pattern of a value already representable in fmt."""
    dt = {16: (np.float16, np.uint16), 32: (np.float32, np.uint32)}[fmt.width]
    return int(np.asarray(value, dtype=dt[0]).view(dt[1]))


class ValueFormats:
    def __init__(self, macro: MacroConfig):
        f = macro.formats
        self.score = fmt_of(f.get("score"), "score")
        self.softmax = fmt_of(f.get("softmax"), "softmax")
        self.value = fmt_of(f.get("value"), "value")
        self.soft_nf: NumberFormat = f.get("softmax")


def check_value_lanes(macro: MacroConfig) -> None:
    """The lane counts the RTL value unit builds (ConfigError naming the key otherwise)."""
    vp, d, levels = macro.value_path, macro.head_dim, macro.levels
    full = (d // 2) * macro.log2_dim
    if vp.inverse_fwht_butterflies != full:
        raise ConfigError("macro", "value_path.inverse_fwht_butterflies",
                          f"(d/2) log2 d = {full} (the fully unrolled inverse FWHT) for the RTL twin, got {vp.inverse_fwht_butterflies}")
    if vp.centroid_multipliers % levels:
        raise ConfigError("macro", "value_path.centroid_multipliers",
                          f"a multiple of the {levels} levels (whole coordinates per cycle) for the RTL twin, got {vp.centroid_multipliers}")
    if vp.exp_units != 1 or macro.read_path.gqa_shared_read:
        raise ConfigError("macro", "value_path.exp_units", "one exp unit serving one query head per key for the RTL twin")


class SoftmaxScale(Elaboratable):
    """z = rnd_S(score * sigma), sigma = rnd_S(1/sqrt d); the running max `top` (the first key of a
    job, `first`, sets it; a later z replaces it when strictly greater)."""

    def __init__(self, macro: MacroConfig):
        self.f = ValueFormats(macro)
        self.sigma_bits = fmt_bits(float(round_to(1.0 / math.sqrt(macro.head_dim), self.f.soft_nf)), self.f.softmax)
        self.score = Signal(self.f.score.width)
        self.in_valid, self.first = Signal(), Signal()
        self.z = Signal(self.f.softmax.width)
        self.top = Signal(self.f.softmax.width)
        self.out_valid = Signal()

    def elaborate(self, platform):
        m = Module()
        s = self.f.softmax
        z = fp_mul(m, self.score, Const(self.sigma_bits, s.width), self.f.score, s, s, "scale")
        greater = fp_ge(m, z, self.top, s, "gt_a") & ~fp_ge(m, self.top, z, s, "gt_b")
        with m.If(self.in_valid):
            m.d.sync += [self.z.eq(z), self.top.eq(Mux(self.first | greater, z, self.top))]
        m.d.sync += self.out_valid.eq(self.in_valid)
        return m


def rint(m: Module, y, fmt: Fmt, name: str):
    """Round half-even of a finite |y| < 2^10 to an integer: (magnitude, sign)."""
    u = unpack(m, y, fmt, name)
    p = fmt.precision
    shift = Signal(range(p + 2), name=f"{name}_sh")  # y = sig 2^exp with exp < 0 here
    m.d.comb += shift.eq(Mux(-u.exp > p + 1, p + 1, -u.exp))
    wide = Signal(p + 1, name=f"{name}_w")
    m.d.comb += wide.eq((u.sig << 1) >> shift)  # wide[0]: the half bit; wide[1:]: the integer part
    mask = Signal(p + 1, name=f"{name}_m")
    m.d.comb += mask.eq(((Const(1, p + 2) << shift) >> 1) - 1)
    sticky = (u.sig & mask) != 0
    mag = Signal(11, name=f"{name}_k")
    m.d.comb += mag.eq(wide[1:] + (wide[0] & (sticky | wide[1])))
    return mag, u.sign


class ExpUnit(Elaboratable):
    """e = exp_S(rnd_S(z - m)) of docs/architecture.md (x <= 0): k = rint(rnd_S(x log2e)),
    f = rnd_S(y - k), Horner of 2^f, rnd_S(p 2^k). x = -inf or |y| >= 2^9 (p 2^k underflows to 0
    in fp16 and fp32) gives +0; NaN x, or x log2e overflowing, gives NaN (as the golden model)."""

    def __init__(self, macro: MacroConfig, latency: int = 0):
        self.f = ValueFormats(macro)
        s = self.f.softmax
        log2e, coeffs = exp_constants(self.f.soft_nf)
        self.log2e_bits = fmt_bits(log2e, s)
        self.coeff_bits = [fmt_bits(float(c), s) for c in coeffs]  # c_0 .. c_6
        self.z, self.m = Signal(s.width), Signal(s.width)
        self.in_valid = Signal()
        self.e = Signal(s.width)
        self.out_valid = Signal()
        self.groups = exp_groups(latency or EXP_STEPS)
        """latency 0: one operation per stage (the macro's); tests cut the chain shorter."""

    def _steps(self, m: Module, s: Fmt):
        c = [Const(b, s.width) for b in self.coeff_bits]

        def diff(v):
            v["x"] = fp_add(m, v["z"], v["m"], s, s, "exp_x", subtract=True)

        def scale(v):
            v["y"] = fp_mul(m, v["x"], Const(self.log2e_bits, s.width), s, s, s, "exp_y")
            ux = unpack(m, v["x"], s, "exp_ux")
            v["nan"] = ux.is_nan | (~ux.is_inf & (v["y"][:s.width - 1] == s.inf_bits))  # NaN x, or x log2e overflowed
            v["flush"] = v["y"][s.frac_bits:s.width - 1] >= s.bias + 9  # |y| >= 2^9 (or inf): e = 0

        def reduce(v):
            mag, sign = rint(m, v["y"], s, "exp_k")
            kf, _ = round_pack(m, sign, 0, mag, s, "exp_kf")
            v["f"] = fp_add(m, v["y"], kf, s, s, "exp_f", subtract=True)
            k = Signal(signed(EXP_WIDTH), name="exp_ks")
            m.d.comb += k.eq(Mux(sign, -mag, mag))
            v["k"] = k
            v["p"] = c[6]

        def horner_mul(n):
            def step(v):
                v["q"] = fp_mul(m, v["p"], v["f"], s, s, s, f"exp_pm{n}")
            return step

        def horner_add(n):
            def step(v):
                v["p"] = fp_add(m, v["q"], c[n], s, s, f"exp_pa{n}")
            return step

        def pow2(v):
            up = unpack(m, v["p"], s, "exp_up")
            bits, _ = round_pack(m, 0, up.exp + v["k"], up.sig, s, "exp_e")
            v["e"] = Mux(v["nan"], s.nan_bits, Mux(v["flush"], 0, bits))

        horner = [step for n in range(5, -1, -1) for step in (horner_mul(n), horner_add(n))]
        return [diff, scale, reduce] + horner + [pow2]

    USES = [("z", "m"), ("x",), ("y",)] + [("p", "f"), ("q",)] * 6 + [("p", "k", "nan", "flush")]
    """The values each step reads (the rest of a group's values die at its register)."""

    def elaborate(self, platform):
        m = Module()
        s = self.f.softmax
        steps = self._steps(m, s)
        vals = {"z": self.z, "m": self.m}
        valid = self.in_valid
        done = 0
        for g, group in enumerate(self.groups):
            for i in group:
                steps[i](vals)
            done += len(group)
            later = {key for i in range(done, len(steps)) for key in self.USES[i]}
            later.add("e")
            regs = {}
            for key in sorted(later & set(vals)):
                r = Signal(signed(EXP_WIDTH) if key == "k" else len(vals[key]), name=f"exp_g{g}_{key}")
                m.d.sync += r.eq(vals[key])
                regs[key] = r
            nv = Signal(name=f"exp_g{g}_v")
            m.d.sync += nv.eq(valid)
            vals, valid = regs, nv
        m.d.comb += [self.e.eq(vals["e"]), self.out_valid.eq(valid)]
        return m


class Bins(Elaboratable):
    """Weights and bins of one pipeline: w = rnd_V(e * norm) and E = rnd_S(E + e) (a register),
    then B[i][idx_i] = rnd_V(B[i][idx_i] + w) for every coordinate on `bin_lanes` adders. A
    job's first key (`first`) starts from zero bins and E = 0."""

    def __init__(self, macro: MacroConfig):
        self.macro, self.f = macro, ValueFormats(macro)
        d, levels, v = macro.head_dim, macro.levels, self.f.value
        self.e = Signal(self.f.softmax.width)
        self.norm = Signal(16)
        self.idx = Signal(d * macro.bits)
        self.in_valid, self.first = Signal(), Signal()
        self.total = Signal(self.f.softmax.width)
        self.bins = [[Signal(v.width, name=f"B{i}_{j}") for j in range(levels)] for i in range(d)]
        self.out_valid = Signal()
        self.overrun = Signal()
        self.cycles = 1 + ceil_div(d, macro.value_path.bin_lanes)

    def elaborate(self, platform):
        m = Module()
        mac, f = self.macro, self.f
        d, b, s, v = mac.head_dim, mac.bits, f.softmax, f.value
        w = Signal(v.width)
        idx, first, wv = Signal.like(self.idx), Signal(), Signal()
        total = fp_add(m, Mux(self.first, 0, self.total), self.e, s, s, "bins_E")
        with m.If(self.in_valid):
            m.d.sync += [w.eq(fp_mul(m, self.e, self.norm, s, FP16, v, "bins_w")), idx.eq(self.idx),
                         first.eq(self.first), self.total.eq(total)]
        m.d.sync += wv.eq(self.in_valid)
        ch = Chunked(m, "bins", wv, [w, idx, first], d, mac.value_path.bin_lanes)
        src_w, src_idx, src_first = ch.source
        phase = ch.phase if ch.cycles > 1 else Const(0, 1)
        for k in range(ch.lanes):
            coords = [c * ch.lanes + k for c in range(ch.cycles) if c * ch.lanes + k < d]
            for c, i in enumerate(coords):
                sel = src_idx[i * b:(i + 1) * b]
                old = Array(self.bins[i])[sel]
                new = fp_add(m, Mux(src_first, 0, old), src_w, v, v, f"bins_a{i}")
                with m.If(ch.active & (phase == c)):
                    for j in range(mac.levels):
                        with m.If(sel == j):
                            m.d.sync += self.bins[i][j].eq(new)
                        with m.Elif(src_first):
                            m.d.sync += self.bins[i][j].eq(0)
        m.d.comb += [self.out_valid.eq(ch.valid), self.overrun.eq(ch.overrun)]
        return m


def reciprocal_stages(m: Module, x, fmt: Fmt, valid, name: str):
    """rnd_fmt(1 / x) over three registers (the radix-2 restoring recurrence of 2^(2P+1) / sig,
    high quotient bits, low quotient bits and sticky, rounding). Returns (bits, valid)."""
    p = fmt.precision
    ux = unpack(m, x, fmt, f"{name}_x")
    lz = leading_zeros(m, ux.sig, f"{name}_lz")
    den = Signal(p, name=f"{name}_den")
    m.d.comb += den.eq(ux.sig << lz)  # normalised: 2^(p-1) <= den < 2^p
    nbits = p + 2  # quotient of 2^(2p+1) / den lies in (2^(p+1), 2^(p+2)]
    exp0 = Signal(signed(EXP_WIDTH), name=f"{name}_e0")
    m.d.comb += exp0.eq(-(2 * p + 1) - (ux.exp - lz) - 1)  # of (q << 1 | sticky)

    def recurrence(rem, q, count, tag):
        for i in range(count):
            fits = rem >= den
            nr = Signal(p + 1, name=f"{name}_{tag}r{i}")
            m.d.comb += nr.eq(Mux(fits, rem - den, rem) << 1)
            q = Cat(fits, q)
            rem = nr
        return rem, q

    r0 = Signal(p + 1, name=f"{name}_r0")
    m.d.comb += r0.eq(1 << p)
    half = nbits // 2
    rem1, q1 = recurrence(r0, Const(0, 0), half, "a")
    regs1 = [Signal(p + 1, name=f"{name}_rem1"), Signal(half, name=f"{name}_q1"), Signal(p, name=f"{name}_den1"),
             Signal(signed(EXP_WIDTH), name=f"{name}_e1"), Signal(3, name=f"{name}_sp1"), Signal(name=f"{name}_v1")]
    m.d.sync += [regs1[0].eq(rem1), regs1[1].eq(q1), regs1[2].eq(den), regs1[3].eq(exp0),
                 regs1[4].eq(Cat(ux.is_zero, ux.is_inf | ux.is_nan, ux.is_nan)), regs1[5].eq(valid)]
    rem, qh, den, e1, sp, v1 = regs1
    rem2, q2 = recurrence(rem, qh, nbits - half, "b")
    qfull = Signal(nbits, name=f"{name}_q2")
    regs2 = [Signal(nbits + 1, name=f"{name}_sig2"), Signal(signed(EXP_WIDTH), name=f"{name}_e2"),
             Signal(3, name=f"{name}_sp2"), Signal(name=f"{name}_v2"), Signal(name=f"{name}_s2")]
    m.d.comb += qfull.eq(q2)
    sign1 = Signal(name=f"{name}_s1")
    m.d.sync += sign1.eq(ux.sign)
    m.d.sync += [regs2[0].eq(Cat(rem2 != 0, qfull)), regs2[1].eq(e1), regs2[2].eq(sp), regs2[3].eq(v1),
                 regs2[4].eq(sign1)]
    sig, e2, sp2, v2, sign2 = regs2
    rounded, _ = round_pack(m, sign2, e2, sig, fmt, f"{name}_rp")
    # 1/0 = inf, 1/inf = 0, NaN -> NaN
    special = select_special(m, fmt, sp2[2], sp2[0], sign2, Mux(sp2[1], Cat(Const(0, fmt.width - 1), sign2), rounded), name)
    out, ov = Signal(fmt.width, name=f"{name}_g"), Signal(name=f"{name}_gv")
    m.d.sync += [out.eq(special), ov.eq(v2)]
    return out, ov


class Finalize(Elaboratable):
    """Per query head: o_i = sum_j B[i][j] gamma_j (in order), u = FWHT(o) in V, out_i =
    rnd_V(s_i u_i g) with g = rnd_V(1 / rnd_V(E d)). Valid flags per stage for the timing."""

    def __init__(self, macro: MacroConfig, centroids_fp16):
        check_value_lanes(macro)
        self.macro, self.f = macro, ValueFormats(macro)
        d, levels, v = macro.head_dim, macro.levels, self.f.value
        self.centroid_bits = [int(c) for c in np.asarray(centroids_fp16, dtype=np.float16).view(np.uint16)]
        self.bins = [[Signal(v.width, name=f"B{i}_{j}") for j in range(levels)] for i in range(d)]
        self.total = Signal(self.f.softmax.width)
        self.signs = Signal(d)
        self.in_valid = Signal()
        self.centroids_valid, self.fwht_valid, self.out_valid = Signal(), Signal(), Signal()
        self.overrun = Signal()
        self.out = [Signal(v.width, name=f"out{i}") for i in range(d)]

    def elaborate(self, platform):
        m = Module()
        mac, f = self.macro, self.f
        d, levels, s, v = mac.head_dim, mac.levels, f.softmax, f.value
        cm = mac.value_path.centroid_multipliers
        gamma = [Const(c, 16) for c in self.centroid_bits]
        flat = [b for row in self.bins for b in row]
        cen = Chunked(m, "cen", self.in_valid, flat, d, cm // levels)

        def chain(mm, ops, nm):
            acc = fp_mul(mm, ops[0], gamma[0], v, FP16, v, f"{nm}_m0")
            for j in range(1, levels):
                acc = fp_add(mm, acc, fp_mul(mm, ops[j], gamma[j], v, FP16, v, f"{nm}_m{j}"), v, v, f"{nm}_a{j}")
            return acc

        o = cen.run(lambda i: cen.source[i * levels:(i + 1) * levels], chain, v.width)
        total = Signal(s.width)  # E travels with the head through the centroid stage and the FWHT
        with m.If(self.in_valid):
            m.d.sync += total.eq(self.total)
        u, fv, stages = fwht_pipeline(m, o, v, v, "ifwht", cen.valid)
        t_at = total
        for i in range(stages):
            nxt = Signal(s.width, name=f"E_d{i}")
            m.d.sync += nxt.eq(t_at)
            t_at = nxt
        ed = Signal(v.width)
        edv = Signal()
        one = Const(fmt_bits(1.0, s), s.width)
        m.d.sync += [ed.eq(fp_mul(m, t_at, one, s, s, v, "Ed", mac.log2_dim)), edv.eq(fv)]
        u_at = u  # u rides along the reciprocal's registers
        for i in range(DIV_STAGES):
            nxt = [Signal(v.width, name=f"u_d{i}_{k}") for k in range(d)]
            m.d.sync += [a.eq(b) for a, b in zip(nxt, u_at)]
            u_at = nxt
        g, gv = reciprocal_stages(m, ed, v, edv, "recip")
        w = v.width
        flipped = [Cat(x[:w - 1], x[w - 1] ^ self.signs[i]) for i, x in enumerate(u_at)]
        sc = Chunked(m, "osc", gv, flipped + [g], d, cm)
        out = sc.run(lambda i: [sc.source[i], sc.source[d]],
                     lambda mm, ops, nm: fp_mul(mm, ops[0], ops[1], v, v, v, nm), w)
        m.d.comb += [a.eq(b) for a, b in zip(self.out, out)]
        m.d.comb += [self.centroids_valid.eq(cen.valid), self.fwht_valid.eq(fv), self.out_valid.eq(sc.valid),
                     self.overrun.eq(cen.overrun | sc.overrun)]
        return m



class BinsFinalize(Elaboratable):
    """The bins and the finalisation of one value unit as one part: the bins' d L registers feed
    the finalisation inside it, so they are no input of a written design. (Amaranth 0.5's netlist
    numbers a design's input bits in 16 bits, 2 of them reserved: the bins alone are d L V bits,
    65,536 at d = 128, b = 4 in fp32, too many to be the finalisation's inputs.) `bins` and `fin`
    are the two units (the testbench drives and watches their ports); the part's ports are theirs
    apart from the bins and the running sum E, which stay inside."""

    def __init__(self, macro: MacroConfig, centroids_fp16):
        self.bins = Bins(macro)
        self.fin = Finalize(macro, centroids_fp16)
        b, f = self.bins, self.fin
        self.ports = [b.e, b.norm, b.idx, b.in_valid, b.first, b.out_valid, b.overrun, f.signs, f.in_valid,
                      f.centroids_valid, f.fwht_valid, f.out_valid, f.overrun, f.out]
        """The part's ports (axelsim.rtl.synth.unit_ports reads them from here)."""

    def elaborate(self, platform):
        m = Module()
        m.submodules.bins = self.bins
        m.submodules.fin = self.fin
        for mine, theirs in zip(self.fin.bins, self.bins.bins):
            m.d.comb += [a.eq(b) for a, b in zip(mine, theirs)]
        m.d.comb += self.fin.total.eq(self.bins.total)
        return m


__all__ = ["SoftmaxScale", "ExpUnit", "Bins", "Finalize", "BinsFinalize", "EXP_STEPS", "exp_groups", "DIV_STAGES", "check_value_lanes"]
