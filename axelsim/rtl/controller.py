"""The issue controller of the macro, synthesizable: when may the item at the head of each unit's
buffer enter that unit.

Per unit u with initiation interval II_u: an interval counter (an item entering loads II_u - 1,
the unit accepts again when it is back at 0), and grant_u = req_u (the buffer's head item is
there and its data ready) & counter_u == 0 & the unit's interlocks:

- table generator: no key of the previous job still between its index read and its lookup
  (write after read on the one table copy): a counter of pending keys, loaded with the job's
  key count when its table is done, decremented when a key leaves the table SRAM (free in the
  cycle the last one leaves);
- index SRAM read ports: the value stream (always the older job's when both request) takes a
  bank first; the score stream is granted only on another bank;
- bins: a job's first key (it clears the bins and the running sum) only once every earlier
  job's finalisation has taken them: counters of jobs started at the bins and at the centroids.

The program sequencer (program order, which item is at each head) and the buffers between
units stay behavioural in the testbench (axelsim.rtl.harness), which follows these grants.
"""

from __future__ import annotations

from amaranth.hdl import Elaboratable, Module, Signal

ISSUE_UNITS = ("norm_unit", "rotator", "quantizer", "index_sram_write", "table_generator", "index_sram_read",
               "table_sram", "softmax_scale", "index_sram_read_v", "exp", "bins", "centroids")
"""Units whose entry the controller grants (the rest are fixed-latency stages behind them)."""


class IssueController(Elaboratable):
    """Grants per unit from requests, interval counters and the interlocks (module docstring).

    intervals: {unit: II in cycles}; units absent (the value path not built) are not built."""

    def __init__(self, intervals: dict[str, int], banks: int, max_keys: int):
        self.intervals = {u: int(intervals[u]) for u in ISSUE_UNITS if u in intervals}
        self.req = {u: Signal(name=f"req_{u}") for u in self.intervals}
        self.grant = {u: Signal(name=f"grant_{u}") for u in self.intervals}
        self.read_bank = Signal(range(max(banks, 2)))
        self.read_v_bank = Signal(range(max(banks, 2)))
        self.bins_first = Signal()
        self.table_done = Signal()
        """A table is complete: `job_keys` keys of its job are now pending."""
        self.job_keys = Signal(range(max_keys + 1))
        self.key_looked_up = Signal()
        """A key left the table SRAM."""
        self.pending = Signal(range(max_keys + 1))

    def elaborate(self, platform):
        m = Module()
        free = {}
        for u, ii in self.intervals.items():
            if ii <= 1:
                free[u] = 1
                continue
            count = Signal(range(ii), name=f"ii_{u}")
            with m.If(self.grant[u]):
                m.d.sync += count.eq(ii - 1)
            with m.Elif(count != 0):
                m.d.sync += count.eq(count - 1)
            free[u] = count == 0
        extra = {u: 1 for u in self.intervals}
        # free in the cycle the last pending key leaves the table SRAM; not while a table completes
        extra["table_generator"] = (self.pending == self.key_looked_up) & ~self.table_done
        with m.If(self.table_done):
            m.d.sync += self.pending.eq(self.pending + self.job_keys - self.key_looked_up)
        with m.Elif(self.key_looked_up):
            m.d.sync += self.pending.eq(self.pending - 1)
        if "bins" in self.intervals:
            started, finalised = Signal(16), Signal(16)
            with m.If(self.grant["bins"] & self.bins_first):
                m.d.sync += started.eq(started + 1)
            with m.If(self.grant["centroids"]):
                m.d.sync += finalised.eq(finalised + 1)
            extra["bins"] = ~self.bins_first | (started == finalised)
            v_granted = self.grant["index_sram_read_v"]
            extra["index_sram_read"] = ~v_granted | (self.read_bank != self.read_v_bank)
        for u in self.intervals:
            m.d.comb += self.grant[u].eq(self.req[u] & free[u] & extra[u])
        return m


__all__ = ["IssueController", "ISSUE_UNITS"]
