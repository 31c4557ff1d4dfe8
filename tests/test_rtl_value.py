"""RTL value-path units alone: the exp unit and the reciprocal bit for bit against the golden
model's arithmetic (numerics.kernels.exp_unit; float64 1/x rounded once, exact for binary16/32),
their latencies, the exp chain's cut into stages, and the bins on fewer lanes than d."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("amaranth", reason="the rtl extra (amaranth) is not installed: pip install -e '.[rtl]'")

from amaranth.hdl import Elaboratable, Module, Signal  # noqa: E402
from amaranth.sim import Simulator  # noqa: E402

from axelsim.numerics.fp import format_code  # noqa: E402
from axelsim.numerics.golden import exp_constants  # noqa: E402
from axelsim.numerics.kernels import exp_unit  # noqa: E402
from axelsim.rtl.fp import FP16, FP32  # noqa: E402
from axelsim.rtl.harness import from_bits, to_bits  # noqa: E402
from axelsim.rtl.value import EXP_STEPS, Bins, ExpUnit, exp_groups, reciprocal_stages  # noqa: E402
from test_hw_helpers import small_macro  # noqa: E402

DT = {"fp16": np.float16, "fp32": np.float32}


def stream(unit, drive, inputs, out_valid, read, extra_cycles):
    """Feed one item per cycle; returns {input number: (cycles after entry, output)}."""
    seen = {}

    async def bench(ctx):
        entered = []
        for cycle in range(len(inputs) + extra_cycles):
            if cycle < len(inputs):
                drive(ctx, inputs[cycle], 1)
                entered.append(cycle)
            else:
                drive(ctx, None, 0)
            await ctx.tick()
            if ctx.get(out_valid):
                k = len(seen)
                seen[k] = (cycle + 1 - entered[k], read(ctx))

    sim = Simulator(unit)
    sim.add_clock(1e-9)
    sim.add_testbench(bench)
    sim.run()
    return seen


@pytest.mark.parametrize("fmt,latency", [("fp32", EXP_STEPS), ("fp16", 4)])
def test_exp_unit_bit_exact_at_its_latency(fmt, latency):
    macro = small_macro(16, 3, formats=dict(softmax=fmt, value=fmt))
    unit = ExpUnit(macro, latency)
    width = 32 if fmt == "fp32" else 16
    # ties of the rounding to an integer (-0.5, -1.5), subnormal and zero results, -inf, -0
    z = [0.0, -0.0, -0.5, -1.5, -2.5, -0.3, -7.77, -16.6, -17.3, -24.9, -103.0, -151.5, -152.0, -600.0, -np.inf]
    z = np.array(z, dtype=DT[fmt])
    log2e, coeffs = exp_constants(macro.formats.get("softmax"))
    code = format_code(macro.formats.get("softmax"))
    want = [exp_unit(float(x), code, log2e, coeffs) for x in z.astype(np.float64)]

    def drive(ctx, x, valid):
        if valid:
            ctx.set(unit.z, to_bits([x], width)[0])
            ctx.set(unit.m, 0)
        ctx.set(unit.in_valid, valid)

    seen = stream(unit, drive, list(z), unit.out_valid, lambda ctx: ctx.get(unit.e), latency + 2)
    assert sorted(seen) == list(range(len(z)))
    assert {lat for lat, _ in seen.values()} == {latency}
    got = from_bits([seen[k][1] for k in range(len(z))], width)
    assert np.array_equal(got, np.asarray(want)) and np.array_equal(np.signbit(got), np.signbit(want))


@pytest.mark.parametrize("fmt", [FP32, FP16])
def test_reciprocal_rounds_once(fmt):
    dt = np.float32 if fmt is FP32 else np.float16
    rng = np.random.default_rng(3)
    x = np.concatenate([rng.uniform(0.5, 2.0, 6), 10.0 ** rng.uniform(-4, 4, 6),
                        [1.0, 3.0, 0.0, np.inf, 6e-8, 65504.0]]).astype(dt)

    class Wrap(Elaboratable):
        def __init__(self):
            self.x, self.valid, self.g, self.g_valid = Signal(fmt.width), Signal(), Signal(fmt.width), Signal()

        def elaborate(self, platform):
            m = Module()
            g, gv = reciprocal_stages(m, self.x, fmt, self.valid, "r")
            m.d.comb += [self.g.eq(g), self.g_valid.eq(gv)]
            return m

    w = Wrap()

    def drive(ctx, v, valid):
        if valid:
            ctx.set(w.x, to_bits([v], fmt.width)[0])
        ctx.set(w.valid, valid)

    seen = stream(w, drive, list(x), w.g_valid, lambda ctx: ctx.get(w.g), 5)
    assert {lat for lat, _ in seen.values()} == {3}
    got = from_bits([seen[k][1] for k in range(len(x))], fmt.width)
    with np.errstate(divide="ignore", over="ignore"):
        want = (1.0 / x.astype(np.float64)).astype(dt).astype(np.float64)
    assert np.array_equal(got, want)


def test_exp_chain_cut():
    for latency in (1, 3, 4, 7, EXP_STEPS, EXP_STEPS + 2):
        groups = exp_groups(latency)
        assert len(groups) == latency
        assert [i for g in groups for i in g] == list(range(EXP_STEPS))
    assert all(len(g) == 1 for g in exp_groups(EXP_STEPS))


def test_bins_on_half_the_lanes():
    # d = 8 bins on 4 lanes: weight register + 2 chunks = 3 cycles per key; a key's first bin
    # update clears the others; values against float32 sums in key order
    d, b = 8, 2
    macro = small_macro(d, b, value_path=dict(bin_lanes=4))
    unit = Bins(macro)
    rng = np.random.default_rng(5)
    e = rng.uniform(0, 1, 3).astype(np.float32)
    norms = rng.uniform(0.5, 2, 3).astype(np.float16)
    idx = rng.integers(0, 1 << b, (3, d))
    keys = list(range(3))
    bins = np.zeros((d, 1 << b), dtype=np.float32)
    for t in keys:
        w = np.float32(np.float64(e[t]) * np.float64(norms[t]))
        for i in range(d):
            bins[i, idx[t, i]] = np.float32(bins[i, idx[t, i]] + w)

    async def bench(ctx):
        for t in keys:
            ctx.set(unit.e, to_bits([e[t]], 32)[0])
            ctx.set(unit.norm, to_bits([norms[t]], 16)[0])
            ctx.set(unit.idx, sum(int(v) << (i * b) for i, v in enumerate(idx[t])))
            ctx.set(unit.first, int(t == 0))
            ctx.set(unit.in_valid, 1)
            await ctx.tick()
            ctx.set(unit.in_valid, 0)
            for _ in range(2):
                assert not ctx.get(unit.out_valid)
                await ctx.tick()
            assert ctx.get(unit.out_valid) and not ctx.get(unit.overrun)
        got = np.array([[ctx.get(s) for s in row] for row in unit.bins], dtype=np.uint32).view(np.float32)
        assert np.array_equal(got, bins)

    sim = Simulator(unit)
    sim.add_clock(1e-9)
    sim.add_testbench(bench)
    sim.run()


def test_toggles_by_scope_counts_changed_bits_per_unit(tmp_path):
    from axelsim.rtl.activity import toggles_by_scope

    vcd = tmp_path / "t.vcd"
    vcd.write_text("\n".join([
        "$timescale 1 ps $end", "$scope module bench $end", "$scope module top $end",
        "$var wire 1 ! clk $end",
        "$scope module exp $end", "$var wire 4 # a $end", "$scope module exp_pm0 $end",
        "$var wire 1 % p $end", "$upscope $end", "$upscope $end",
        "$scope module bins $end", "$var wire 4 # a_port $end", "$var wire 8 & w $end", "$upscope $end",
        "$upscope $end", "$upscope $end", "$enddefinitions $end",
        "#0", "b0000 #", "0%", "b0 &", "1!",
        "#1", "b0101 #", "1%", "0!",         # exp: 2 bits of a + 1 of p; clk not counted
        "#2", "b0110 #", "b11111111 &", "1!",  # exp: 2 bits of a; bins: 8 bits of w
        "#3", "b0110 #", "0%", "",           # no change of a; p back: 1
    ]) + "\n")
    got = toggles_by_scope(vcd, {"exp": "value_unit", "bins": "bins_unit"})
    assert got == {"value_unit": 2 + 1 + 2 + 1, "bins_unit": 8}
