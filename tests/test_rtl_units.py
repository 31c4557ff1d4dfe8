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


def test_issue_controller_intervals_interlocks_and_arbiter():
    from axelsim.rtl.controller import IssueController

    ii = {"norm_unit": 3, "rotator": 1, "quantizer": 1, "index_sram_write": 1, "table_generator": 2,
          "index_sram_read": 1, "table_sram": 1, "softmax_scale": 1, "index_sram_read_v": 1, "exp": 1,
          "bins": 1, "centroids": 2}
    ctl = IssueController(ii, banks=4, max_keys=8)
    log = []

    async def bench(ctx):
        def grants():
            return {u for u, g in ctl.grant.items() if ctx.get(g)}

        # the norm unit requested every cycle: granted every 3rd cycle
        ctx.set(ctl.req["norm_unit"], 1)
        for _ in range(7):
            log.append("norm_unit" in grants())
            await ctx.tick()
        ctx.set(ctl.req["norm_unit"], 0)
        # a table done with 2 keys pending: no new table until both left the table SRAM
        ctx.set(ctl.req["table_generator"], 1)
        ctx.set(ctl.table_done, 1)
        ctx.set(ctl.job_keys, 2)
        assert "table_generator" not in grants()  # not while a table completes
        await ctx.tick()
        ctx.set(ctl.table_done, 0)
        assert "table_generator" not in grants()
        ctx.set(ctl.key_looked_up, 1)
        assert "table_generator" not in grants()  # one of two keys leaving
        await ctx.tick()
        assert "table_generator" in grants()  # the last key leaves this cycle
        await ctx.tick()
        ctx.set(ctl.key_looked_up, 0)
        assert "table_generator" not in grants()  # granted a cycle ago: its interval of 2
        ctx.set(ctl.req["table_generator"], 0)
        # both read requesters: the value stream wins a shared bank, the score stream another bank
        ctx.set(ctl.req["index_sram_read"], 1)
        ctx.set(ctl.req["index_sram_read_v"], 1)
        ctx.set(ctl.read_bank, 2)
        ctx.set(ctl.read_v_bank, 2)
        assert grants() >= {"index_sram_read_v"} and "index_sram_read" not in grants()
        ctx.set(ctl.read_bank, 1)
        assert {"index_sram_read", "index_sram_read_v"} <= grants()
        ctx.set(ctl.req["index_sram_read"], 0)
        ctx.set(ctl.req["index_sram_read_v"], 0)
        # bins: job 0's first key enters; job 1's first key waits for job 0's finalisation
        ctx.set(ctl.req["bins"], 1)
        ctx.set(ctl.bins_first, 1)
        assert "bins" in grants()
        await ctx.tick()
        assert "bins" not in grants()
        ctx.set(ctl.req["centroids"], 1)
        await ctx.tick()
        ctx.set(ctl.req["centroids"], 0)
        assert "bins" in grants()

    sim = Simulator(ctl)
    sim.add_clock(1e-9)
    sim.add_testbench(bench)
    sim.run()
    assert log == [True, False, False, True, False, False, True]
