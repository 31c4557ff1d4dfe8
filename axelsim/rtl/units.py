"""The macro's units as Amaranth Elaboratables, sized from the typed MacroConfig.

Every unit takes an item with `in_valid` high for one cycle (its data on the input signals in
that cycle) and raises `out_valid` for one cycle when the result is on its output signals.
A unit has no back-pressure: the controller issues items no faster than the unit's initiation
interval; `overrun` rises if an item arrives while a time-multiplexed unit is still busy
(a scheduling error the harness checks). Timing comes from the structure:

- a *time-multiplexed* stage (`chunked_map`) does `work` operations on `lanes` operators over
  C = ceil(work / lanes) cycles (latency C, II C); chunk 0 is computed from the live inputs,
  later chunks from a copy latched in the first cycle;
- a *pipelined* stage (adder trees, FWHT) registers after every stage or group of stages
  (latency = registers, II 1).

Formats follow docs/architecture.md (`formats.*`); values are raw IEEE bit patterns.
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import numpy as np
from amaranth.hdl import Array, Cat, Const, Elaboratable, Module, Mux, Signal
from amaranth.lib.memory import Memory

from axelsim.config.macro import MacroConfig
from axelsim.errors import ConfigError
from axelsim.rtl.fp import (FP16, Fmt, fmt_of, fp_add, fp_convert, fp_ge, fp_mul, fp_sqrt, widen)


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def fp16_bits(values) -> list[int]:
    return [int(v) for v in np.asarray(values, dtype=np.float16).view(np.uint16)]


def valid_delay(m: Module, start, cycles: int, name: str) -> Signal:
    """`start` delayed by `cycles` register stages (a valid shift register)."""
    sig = start
    for i in range(cycles):
        nxt = Signal(name=f"{name}_v{i}")
        m.d.sync += nxt.eq(sig)
        sig = nxt
    return sig


class Chunked:
    """A time-multiplexed stage: `work` results out[e] = op(operands(e)) on `lanes` operators.

    `operands(e)` gives, for result e, the list of operand Values built from the stage's
    source words (see `source`); `op(m, operands, name)` builds one operator. Results are
    registers, complete and `valid` C = ceil(work / lanes) cycles after `in_valid`.
    """

    def __init__(self, m: Module, name: str, in_valid, inputs: Sequence, work: int, lanes: int):
        self.m, self.name, self.work, self.lanes = m, name, work, lanes
        self.cycles = ceil_div(work, lanes)
        self.phase = Signal(range(max(self.cycles, 2)), name=f"{name}_phase")
        self.busy = Signal(name=f"{name}_busy")
        self.overrun = Signal(name=f"{name}_overrun")
        self.in_valid = in_valid
        live = list(inputs)
        if self.cycles == 1:
            self.source = live
        else:
            latched = [Signal(len(x), name=f"{name}_l{i}") for i, x in enumerate(live)]
            with m.If(in_valid):
                m.d.sync += [lt.eq(x) for lt, x in zip(latched, live)]
            self.source = [Mux(self.busy, lt, x) for lt, x in zip(latched, live)]
            with m.If(in_valid):
                m.d.sync += [self.busy.eq(1), self.phase.eq(1)]
            with m.Elif(self.busy):
                with m.If(self.phase == self.cycles - 1):
                    m.d.sync += [self.busy.eq(0), self.phase.eq(0)]
                with m.Else():
                    m.d.sync += self.phase.eq(self.phase + 1)
        m.d.comb += self.overrun.eq(in_valid & self.busy)
        active = Signal(name=f"{name}_act")
        m.d.comb += active.eq(in_valid | self.busy)
        self.active = active
        self.valid = Signal(name=f"{name}_valid")
        last = Mux(self.cycles == 1, in_valid, self.busy & (self.phase == self.cycles - 1)) if self.cycles > 1 else in_valid
        m.d.sync += self.valid.eq(last)

    def run(self, operands: Callable[[int], list], op: Callable[[Module, list, str], Signal], width: int) -> list[Signal]:
        m, c_total = self.m, self.cycles
        out = [Signal(width, name=f"{self.name}_o{e}") for e in range(self.work)]
        phase = self.phase if c_total > 1 else Const(0, 1)
        for k in range(self.lanes):
            entries = [c * self.lanes + k for c in range(c_total) if c * self.lanes + k < self.work]
            per_entry = [operands(e) for e in entries]
            ops = [Array(p[q] for p in per_entry)[phase] if len(entries) > 1 else per_entry[0][q]
                   for q in range(len(per_entry[0]))]
            res = op(m, ops, f"{self.name}_k{k}")
            for c, e in enumerate(entries):
                with m.If(self.active & (phase == c)):
                    m.d.sync += out[e].eq(res)
        return out


def adder_tree(m: Module, leaves: list, fmt: Fmt, stages_per_register: int, name: str, in_valid) -> tuple[Signal, Signal, int]:
    """Pairwise tree: stage k adds neighbours a'_m = rnd(a_2m + a_2m+1); a register after every
    `stages_per_register` stages and after the last. Returns (sum, valid, latency)."""
    level = list(leaves)
    valid = in_valid
    registers = 0
    stage = 0
    while len(level) > 1:
        level = [fp_add(m, level[2 * i], level[2 * i + 1], fmt, fmt, f"{name}_s{stage}_{i}") for i in range(len(level) // 2)]
        stage += 1
        if stage % stages_per_register == 0 or len(level) == 1:
            regs = [Signal(fmt.width, name=f"{name}_r{stage}_{i}") for i in range(len(level))]
            m.d.sync += [r.eq(x) for r, x in zip(regs, level)]
            level = regs
            nv = Signal(name=f"{name}_v{stage}")
            m.d.sync += nv.eq(valid)
            valid = nv
            registers += 1
    return level[0], valid, registers


def fwht_pipeline(m: Module, u: list, fin: Fmt, fout: Fmt, name: str, in_valid) -> tuple[list, Signal, int]:
    """Unnormalised FWHT, stages h = 1, 2, ..., d/2, one registered stage per cycle (latency log2 d, II 1)."""
    d = len(u)
    level, fmt, valid, h, stages = list(u), fin, in_valid, 1, 0
    while h < d:
        nxt = [None] * d
        for j0 in range(0, d, 2 * h):
            for k in range(h):
                a, c = level[j0 + k], level[j0 + k + h]
                nxt[j0 + k] = fp_add(m, a, c, fmt, fout, f"{name}_h{h}_{j0 + k}")
                nxt[j0 + k + h] = fp_add(m, a, c, fmt, fout, f"{name}_h{h}_{j0 + k + h}", subtract=True)
        regs = [Signal(fout.width, name=f"{name}_r{h}_{i}") for i in range(d)]
        m.d.sync += [r.eq(x) for r, x in zip(regs, nxt)]
        nv = Signal(name=f"{name}_v{h}")
        m.d.sync += nv.eq(valid)
        level, fmt, valid, h, stages = regs, fout, nv, h * 2, stages + 1
    return level, valid, stages


class Formats:
    """The RTL formats of a macro (fp16/fp32 only)."""

    def __init__(self, macro: MacroConfig):
        f = macro.formats
        for where in ("input", "rotator", "table", "accumulator", "score"):
            setattr(self, where, fmt_of(f.get(where), where))


class NormUnit(Elaboratable):
    """Squares (norm_squarers lanes), pairwise adder tree, square root, FP16 norm, and the
    2^b - 1 scaled thresholds t_j = rnd_rot(beta_j * n) (threshold_multipliers lanes).

    In: x[d] (input format). Out: norm (rotator format), stored norm (FP16, saturated),
    saturated flag, thresholds[L-1] (rotator format)."""

    def __init__(self, macro: MacroConfig, boundaries_fp16: Sequence[float]):
        self.macro, self.f = macro, Formats(macro)
        d, nthr = macro.head_dim, macro.levels - 1
        self.x = [Signal(self.f.input.width, name=f"x{i}") for i in range(d)]
        self.in_valid = Signal()
        self.out_valid = Signal()
        self.overrun = Signal()
        self.norm = Signal(self.f.rotator.width)
        self.stored = Signal(16)
        self.saturated = Signal()
        self.thresholds = [Signal(self.f.rotator.width, name=f"t{j}") for j in range(nthr)]
        self.boundary_bits = fp16_bits(boundaries_fp16)

    def elaborate(self, platform):
        m = Module()
        mac, f = self.macro, self.f
        d = mac.head_dim
        sq = Chunked(m, "sq", self.in_valid, self.x, d, mac.write_path.norm_squarers)
        squares = sq.run(lambda e: [sq.source[e]],
                         lambda mm, ops, nm: fp_mul(mm, ops[0], ops[0], f.input, f.input, f.rotator, nm), f.rotator.width)
        total, tv, _ = adder_tree(m, squares, f.rotator, 1, "tree", sq.valid)
        held = Signal(f.rotator.width)  # sqrt: input register, root, output register (2 cycles)
        hv = Signal()
        m.d.sync += [held.eq(total), hv.eq(tv)]
        root = Signal(f.rotator.width)
        rv = Signal()
        m.d.sync += [root.eq(fp_sqrt(m, held, f.rotator, "sqrt")), rv.eq(hv)]
        nthr = mac.levels - 1
        thr = Chunked(m, "thr", rv, [root], nthr, mac.write_path.threshold_multipliers)
        beta = [Const(b, 16) for b in self.boundary_bits]
        thresholds = thr.run(lambda e: [thr.source[0], beta[e]],
                             lambda mm, ops, nm: fp_mul(mm, ops[1], ops[0], FP16, f.rotator, f.rotator, nm), f.rotator.width)
        stored, sat = fp_convert(m, root, f.rotator, FP16, "norm16", saturate=True)
        with m.If(rv):
            m.d.sync += [self.norm.eq(root), self.stored.eq(stored), self.saturated.eq(sat)]
        m.d.comb += [self.out_valid.eq(thr.valid), self.overrun.eq(sq.overrun | thr.overrun)]
        m.d.comb += [t.eq(v) for t, v in zip(self.thresholds, thresholds)]
        return m


class Rotator(Elaboratable):
    """FWHT of s * x (sign flip = sign-bit XOR with the layer's sign ROM word), fully unrolled:
    (d/2) log2 d butterflies, log2 d registered stages (the only lane count built in RTL)."""

    def __init__(self, macro: MacroConfig):
        d = macro.head_dim
        full = (d // 2) * macro.log2_dim
        if macro.write_path.fwht_butterflies != full:
            raise ConfigError("macro", "write_path.fwht_butterflies",
                              f"(d/2) log2 d = {full} (the fully unrolled rotator) for the RTL twin, got {macro.write_path.fwht_butterflies}")
        self.macro, self.f = macro, Formats(macro)
        self.x = [Signal(self.f.input.width, name=f"x{i}") for i in range(d)]
        self.signs = Signal(d)
        """Bit i set: s_i = -1."""
        self.in_valid = Signal()
        self.out_valid = Signal()
        self.y = [Signal(self.f.rotator.width, name=f"y{i}") for i in range(d)]

    def elaborate(self, platform):
        m = Module()
        w = self.f.input.width
        u = [Cat(x[:w - 1], x[w - 1] ^ self.signs[i]) for i, x in enumerate(self.x)]
        y, valid, _ = fwht_pipeline(m, u, self.f.input, self.f.rotator, "fwht", self.in_valid)
        m.d.comb += [o.eq(v) for o, v in zip(self.y, y)] + [self.out_valid.eq(valid)]
        return m


class Quantizer(Elaboratable):
    """idx_i = #{j : y_i >= t_j} (write_path.ties 'upper'; 'lower': y_i > t_j) on `comparators`
    comparators (comparators / (L-1) coordinates per cycle)."""

    def __init__(self, macro: MacroConfig):
        self.macro, self.f = macro, Formats(macro)
        d, nthr = macro.head_dim, macro.levels - 1
        self.y = [Signal(self.f.rotator.width, name=f"y{i}") for i in range(d)]
        self.thresholds = [Signal(self.f.rotator.width, name=f"t{j}") for j in range(nthr)]
        self.in_valid = Signal()
        self.out_valid = Signal()
        self.overrun = Signal()
        self.idx = [Signal(macro.bits, name=f"idx{i}") for i in range(d)]

    def elaborate(self, platform):
        m = Module()
        mac, rot = self.macro, self.f.rotator
        d, nthr = mac.head_dim, mac.levels - 1
        ch = Chunked(m, "cmp", self.in_valid, self.y + self.thresholds, d, mac.write_path.comparators // nthr)

        upper = mac.write_path.ties == "upper"  # y >= t, or y > t (= y >= t and not t >= y)

        def above(mm, y, t, nm):
            ge = fp_ge(mm, y, t, rot, nm)
            return ge if upper else ge & ~fp_ge(mm, t, y, rot, f"{nm}_r")

        def count(mm, ops, nm):
            ge = [above(mm, ops[0], ops[1 + j], f"{nm}_{j}") for j in range(nthr)]
            total = Signal(mac.bits + 1, name=f"{nm}_n")
            mm.d.comb += total.eq(sum(ge))
            return total[:mac.bits]

        idx = ch.run(lambda e: [ch.source[e]] + ch.source[d:], count, mac.bits)
        m.d.comb += [o.eq(v) for o, v in zip(self.idx, idx)] + [self.out_valid.eq(ch.valid), self.overrun.eq(ch.overrun)]
        return m


class IndexSram(Elaboratable):
    """Banks of rows (d*b index bits, LSB first, then the 16 FP16 norm bits), behavioural.

    `depth` rows per bank are built (the rows the simulated trace needs, not the configured
    rows_per_bank). One write port and one read port per bank are modelled; an access lands
    after write/read_latency_cycles. `conflict` rises when two accesses of one kind meet in
    one bank and cycle beyond its ports (the controller must avoid it)."""

    def __init__(self, macro: MacroConfig, depth: int, read_channels: int = 1):
        if macro.sram.read_ports != 1 or macro.sram.write_ports != 1:
            raise ConfigError("macro", "sram.read_ports", "1 read and 1 write port per bank for the RTL twin")
        self.macro, self.depth = macro, depth
        banks = macro.sram.banks
        self.wbank, self.wrow = Signal(range(max(banks, 2))), Signal(range(max(depth, 2)))
        self.wdata = Signal(macro.row_bits)
        self.w_valid, self.w_done = Signal(), Signal()
        self.reads = [ReadChannel(banks, depth, macro.row_bits, f"rd{c}") for c in range(read_channels)]
        """Read requesters (the score stream's, then the value stream's): each reaches every bank's
        one read port; two in one bank and cycle raise `conflict` (the controller avoids it)."""
        self.conflict = Signal()

    def elaborate(self, platform):
        m = Module()
        mac = self.macro
        banks, wl, rl = mac.sram.banks, mac.sram.write_latency_cycles, mac.sram.read_latency_cycles
        wbank, wrow, wdata, wv = self.wbank, self.wrow, self.wdata, self.w_valid
        for i in range(wl - 1):  # write pipeline: address and data registers before the array
            nb_, nr, nd, nv = Signal.like(wbank), Signal.like(wrow), Signal.like(wdata), Signal()
            m.d.sync += [nb_.eq(wbank), nr.eq(wrow), nd.eq(wdata), nv.eq(wv)]
            wbank, wrow, wdata, wv = nb_, nr, nd, nv
        outs = []
        hits = []
        for b in range(banks):
            mem = Memory(shape=mac.row_bits, depth=self.depth, init=[])
            m.submodules[f"bank{b}"] = mem
            wp = mem.write_port()
            m.d.comb += [wp.addr.eq(wrow), wp.data.eq(wdata), wp.en.eq(wv & (wbank == b))]
            rp = mem.read_port()
            want = [ch.valid & (ch.bank == b) for ch in self.reads]
            hits.append(sum(want) > 1 if len(want) > 1 else Const(0, 1))
            addr = self.reads[-1].row
            for ch, w in zip(self.reads[-2::-1], want[-2::-1]):  # the first requester's row wins the port
                addr = Mux(w, ch.row, addr)
            m.d.comb += [rp.addr.eq(addr), rp.en.eq(sum(want) != 0)]
            outs.append(rp.data)
        m.d.comb += self.conflict.eq(Cat(*hits) != 0)
        for ch in self.reads:
            sel = Signal.like(ch.bank)
            m.d.sync += sel.eq(ch.bank)
            data = Signal(mac.row_bits)
            m.d.comb += data.eq(Array(outs)[sel])
            rv = Signal()
            m.d.sync += rv.eq(ch.valid)
            for i in range(rl - 1):
                nd, nv = Signal.like(data), Signal()
                m.d.sync += [nd.eq(data), nv.eq(rv)]
                data, rv = nd, nv
            m.d.comb += [ch.data.eq(data), ch.done.eq(rv)]
        done = Signal()
        m.d.sync += done.eq(wv)
        m.d.comb += self.w_done.eq(done)
        return m


class ReadChannel:
    """One read requester of the index SRAM: bank, row, valid in; data and done `read_latency` later."""

    def __init__(self, banks: int, depth: int, row_bits: int, name: str):
        self.bank = Signal(range(max(banks, 2)), name=f"{name}_bank")
        self.row = Signal(range(max(depth, 2)), name=f"{name}_row")
        self.valid = Signal(name=f"{name}_valid")
        self.done = Signal(name=f"{name}_done")
        self.data = Signal(row_bits, name=f"{name}_data")


class TableGenerator(Elaboratable):
    """P[i][j] = rnd_table(r_i * gamma_j * 2^-log2 d) on `table_multipliers` multipliers, into the
    table SRAM (registers: the lookup reads d entries per cycle)."""

    def __init__(self, macro: MacroConfig, centroids_fp16: Sequence[float]):
        self.macro, self.f = macro, Formats(macro)
        d, L = macro.head_dim, macro.levels
        self.r = [Signal(self.f.rotator.width, name=f"r{i}") for i in range(d)]
        self.in_valid = Signal()
        self.out_valid = Signal()
        self.overrun = Signal()
        self.table = [[Signal(self.f.table.width, name=f"P{i}_{j}") for j in range(L)] for i in range(d)]
        self.centroid_bits = fp16_bits(centroids_fp16)

    def elaborate(self, platform):
        m = Module()
        mac, f = self.macro, self.f
        d, L = mac.head_dim, mac.levels
        gamma = [Const(c, 16) for c in self.centroid_bits]
        ch = Chunked(m, "tab", self.in_valid, self.r, d * L, mac.read_path.table_multipliers)
        entries = ch.run(lambda e: [ch.source[e // L], gamma[e % L]],
                         lambda mm, ops, nm: fp_mul(mm, ops[0], ops[1], f.rotator, FP16, f.table, nm, -mac.log2_dim),
                         f.table.width)
        for e, sig in enumerate(entries):
            m.d.comb += self.table[e // L][e % L].eq(sig)
        m.d.comb += [self.out_valid.eq(ch.valid), self.overrun.eq(ch.overrun)]
        return m


class LookupPipeline(Elaboratable):
    """Per key: d table reads a_i = rnd_acc(P[i][idx_i]) (lookups_per_cycle lanes), the pairwise
    adder tree (adder_tree_stages_per_cycle stages per register), score = rnd_score(sum * norm)."""

    def __init__(self, macro: MacroConfig):
        if macro.read_path.gqa_shared_read or macro.read_path.pipelines != 1:
            raise ConfigError("macro", "read_path.pipelines", "one lookup pipeline serving one query head per key for the RTL twin")
        self.macro, self.f = macro, Formats(macro)
        d, L = macro.head_dim, macro.levels
        self.table = [[Signal(self.f.table.width, name=f"P{i}_{j}") for j in range(L)] for i in range(d)]
        self.row = Signal(macro.row_bits)
        self.in_valid = Signal()
        self.overrun = Signal()
        self.leaves_valid = Signal()
        self.tree_valid = Signal()
        self.out_valid = Signal()
        self.score = Signal(self.f.score.width)

    def elaborate(self, platform):
        m = Module()
        mac, f = self.macro, self.f
        d, b = mac.head_dim, mac.bits
        norm_in = self.row[d * b:d * b + 16]
        ch = Chunked(m, "look", self.in_valid, [self.row], d, mac.read_path.lookups_per_cycle)
        norm_hold = Signal(16)  # the key's norm travels with it to the norm multiplier
        with m.If(self.in_valid):
            m.d.sync += norm_hold.eq(norm_in)

        def leaf(mm, ops, nm):
            entry = Array(ops[1:])[ops[0]]
            if f.table == f.accumulator:
                return entry
            if f.accumulator.precision > f.table.precision:
                return widen(mm, entry, f.table, f.accumulator, nm)
            return fp_convert(mm, entry, f.table, f.accumulator, nm)[0]

        leaves = ch.run(lambda e: [ch.source[0][e * b:(e + 1) * b]] + self.table[e], leaf, f.accumulator.width)
        total, tv, _ = adder_tree(m, leaves, f.accumulator, mac.read_path.adder_tree_stages_per_cycle, "tree", ch.valid)
        tree_lat = ceil_div(mac.log2_dim, mac.read_path.adder_tree_stages_per_cycle)
        norm_at_tree = norm_hold
        for i in range(tree_lat):  # the norm rides along the tree's registers
            nxt = Signal(16, name=f"norm_d{i}")
            m.d.sync += nxt.eq(norm_at_tree)
            norm_at_tree = nxt
        score = fp_mul(m, total, norm_at_tree, f.accumulator, FP16, f.score, "normmul")
        sv = Signal()
        m.d.sync += [self.score.eq(score), sv.eq(tv)]
        m.d.comb += [self.leaves_valid.eq(ch.valid), self.tree_valid.eq(tv), self.out_valid.eq(sv),
                     self.overrun.eq(ch.overrun)]
        return m


__all__ = ["NormUnit", "Rotator", "Quantizer", "IndexSram", "TableGenerator", "LookupPipeline",
           "Chunked", "adder_tree", "fwht_pipeline", "ceil_div", "valid_delay"]
