"""RTL units alone: the comparator quantizer's tie rules and its time-multiplexed timing."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("amaranth", reason="the rtl extra (amaranth) is not installed: pip install -e '.[rtl]'")

from amaranth.sim import Simulator  # noqa: E402

from axelsim.rtl.harness import pack, to_bits, unpack  # noqa: E402
from axelsim.rtl.units import Quantizer  # noqa: E402
from test_hw_helpers import small_macro  # noqa: E402


@pytest.mark.parametrize("ties", ["upper", "lower"])
def test_quantizer_ties_and_latency_on_fewer_comparators(ties):
    d, b = 8, 3
    macro = small_macro(d, b, write_path=dict(comparators=7 * 2, ties=ties))  # 2 coordinates per cycle: 4 cycles
    q = Quantizer(macro)
    thr = np.array([-1.5, -1.0, -0.5, 0.0, 0.5, 1.0, 1.5], dtype=np.float32)
    y = np.array([-1.0, 0.0, 0.25, 1.5, -2.0, 2.0, -0.0, 0.5], dtype=np.float32)  # ties on 5 of 8
    want = (y[:, None] >= thr[None, :]).sum(1) if ties == "upper" else (y[:, None] > thr[None, :]).sum(1)
    seen = {}

    async def bench(ctx):
        for i, s in enumerate(q.y):
            ctx.set(s, to_bits([y[i]], 32)[0])
        for j, s in enumerate(q.thresholds):
            ctx.set(s, to_bits([thr[j]], 32)[0])
        ctx.set(q.in_valid, 1)
        await ctx.tick()
        ctx.set(q.in_valid, 0)
        for cycle in range(1, 8):
            if ctx.get(q.out_valid):
                seen[cycle] = [ctx.get(s) for s in q.idx]
            await ctx.tick()

    sim = Simulator(q)
    sim.add_clock(1e-9)
    sim.add_testbench(bench)
    sim.run()
    assert list(seen) == [4], "one result, ceil(d (L-1) / comparators) = 4 cycles after the item entered"
    assert seen[4] == want.tolist()
    assert unpack(pack(seen[4], b), b, d) == want.tolist()
