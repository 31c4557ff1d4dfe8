"""Run the RTL units cycle by cycle (Amaranth simulator) over a trace slice.

The datapath is the RTL of axelsim.rtl.units and axelsim.rtl.value; the issue controller is
RTL too (axelsim.rtl.controller: interval counters, the table and bins write-after-read
interlocks, the read-port arbiter). The program sequencer and the buffers between units are
behavioural (this testbench): it replays the trace in SPEC.md program order (positions
ascending; at p the K and V vectors of every KV head, layer by layer; then every query at p),
requests entry for the item at the head of each unit's buffer once its data is there (it has
left the unit before; every older item of that unit has entered it: in-order issue, program
order), and moves it in when the controller grants it (a score stream's first stage issues at
the stream's slowest unit's interval, so no later stage backs up). A query job is ready when
every write so far is done. Nothing here reads the cycle model; `compare.py` does, afterwards.

Recorded per unit and item: the cycle it entered and the cycle it left (its `out_valid`).
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from typing import Optional

import numpy as np
from amaranth.hdl import Cat, Elaboratable, Module, Signal
from amaranth.sim import Simulator

from axelsim.config.macro import MacroConfig
from axelsim.rtl.controller import IssueController
from axelsim.rtl.fp import FP16, FP32
from axelsim.rtl.units import (Formats, IndexSram, LookupPipeline, NormUnit, Quantizer, Rotator,
                               TableGenerator, ceil_div)
from axelsim.rtl.value import BinsFinalize, ExpUnit, SoftmaxScale

UNITS = ("norm_unit", "rotator", "quantizer", "index_sram_write", "table_generator", "index_sram_read",
         "table_sram", "adder_tree", "norm_multiplier")
"""Stage names of the write and score paths, as the cycle model's stream stages are keyed."""
VALUE_UNITS = ("softmax_scale", "index_sram_read_v", "exp", "bins", "centroids", "inverse_fwht", "output_scale")
"""Stage names of the value path (built when value_path.enabled)."""


def units_of(macro: MacroConfig) -> tuple[str, ...]:
    return UNITS + (VALUE_UNITS if macro.value_path.enabled else ())

_NP = {16: (np.float16, np.uint16), 32: (np.float32, np.uint32)}


def to_bits(values, width: int) -> list[int]:
    fdt, udt = _NP[width]
    return [int(b) for b in np.asarray(values, dtype=fdt).reshape(-1).view(udt)]


def pack(words, width: int) -> int:
    """Words (LSB first) into one integer of len(words) * width bits."""
    value = 0
    for i, w in enumerate(words):
        value |= int(w) << (i * width)
    return value


def unpack(value: int, width: int, count: int) -> list[int]:
    mask = (1 << width) - 1
    return [(value >> (i * width)) & mask for i in range(count)]


def from_bits(bits, width: int) -> np.ndarray:
    fdt, udt = _NP[width]
    return np.asarray(bits, dtype=udt).view(fdt).astype(np.float64)


class MacroTop(Elaboratable):
    """All RTL units of one macro (one lookup pipeline, its value unit when value_path.enabled),
    side by side; the testbench wires them."""

    def __init__(self, macro: MacroConfig, centroids, boundaries, sram_depth: int, max_keys: int = 4096):
        self.value = macro.value_path.enabled
        self.norm = NormUnit(macro, boundaries)
        self.rotator = Rotator(macro)
        self.quantizer = Quantizer(macro)
        self.sram = IndexSram(macro, sram_depth, read_channels=2 if self.value else 1)
        self.table = TableGenerator(macro, centroids)
        self.lookup = LookupPipeline(macro)
        self.parts = ["norm", "rotator", "quantizer", "sram", "table", "lookup"]
        d, levels = macro.head_dim, macro.levels
        self.norm_ii = max(ceil_div(d, macro.write_path.norm_squarers),
                           ceil_div(levels - 1, macro.write_path.threshold_multipliers))
        self.quant_ii = ceil_div(d, macro.write_path.comparators // (levels - 1))
        self.table_ii = ceil_div(d * levels, macro.read_path.table_multipliers)
        self.lookup_ii = ceil_div(d, macro.read_path.lookups_per_cycle)
        self.lookup_issue_ii = self.lookup_ii  # softmax scale: II 1 (one query head per key)
        intervals = {"norm_unit": self.norm_ii, "rotator": 1, "quantizer": self.quant_ii, "index_sram_write": 1,
                     "table_generator": self.table_ii, "index_sram_read": self.lookup_issue_ii,
                     "table_sram": self.lookup_ii}
        if self.value:
            self.scale = SoftmaxScale(macro)
            self.exp = ExpUnit(macro)
            self.bins_fin = BinsFinalize(macro, centroids)  # one part: the bins feed the finalisation inside it
            self.bins, self.fin = self.bins_fin.bins, self.bins_fin.fin
            self.parts += ["scale", "exp", "bins_fin"]
            self.bins_ii = ceil_div(d, macro.value_path.bin_lanes)
            self.value_issue_ii = max(1, self.bins_ii)
            self.cen_ii = ceil_div(d * levels, macro.value_path.centroid_multipliers)
            intervals.update(softmax_scale=1, index_sram_read_v=self.value_issue_ii, exp=1, bins=self.bins_ii,
                             centroids=self.cen_ii)
        self.ctl = IssueController(intervals, macro.sram.banks, max_keys)
        self.parts.append("ctl")

        # flat ports: one testbench write per vector instead of one per word
        self.flat_in = {"norm.x": self.norm.x, "rotator.x": self.rotator.x, "quantizer.y": self.quantizer.y,
                        "quantizer.t": self.quantizer.thresholds, "table.r": self.table.r}
        self.flat_out = {"norm.t": self.norm.thresholds, "rotator.y": self.rotator.y, "quantizer.idx": self.quantizer.idx}
        if self.value:
            self.flat_out["fin.out"] = self.fin.out
        self.flat = {k: Signal(sum(len(s) for s in v), name=k.replace(".", "_"))
                     for k, v in {**self.flat_in, **self.flat_out}.items()}

    def elaborate(self, platform):
        m = Module()
        for key, words in self.flat_in.items():
            m.d.comb += Cat(*words).eq(self.flat[key])
        for key, words in self.flat_out.items():
            m.d.comb += self.flat[key].eq(Cat(*words))
        for name in self.parts:
            m.submodules[name] = getattr(self, name)
        for mine, theirs in zip(self.lookup.table, self.table.table):  # the table SRAM feeds the lookups
            m.d.comb += [a.eq(b) for a, b in zip(mine, theirs)]
        # the controller sees a table completed and every key leaving the table SRAM
        m.d.comb += [self.ctl.table_done.eq(self.table.out_valid), self.ctl.key_looked_up.eq(self.lookup.leaves_valid)]
        return m


def row_location(macro: MacroConfig, kv_heads: int, tokens: int, slot: int, head: int, token: int, kv: int) -> tuple[int, int]:
    """(bank, row) of a stored vector, per sram.mapping (docs/config.md)."""
    banks = macro.sram.banks
    stream = slot * kv_heads + head
    if macro.sram.mapping == "token_interleaved":
        per = -(-tokens // banks)
        return token % banks, (stream * 2 + kv) * per + token // banks
    return stream % banks, ((stream // banks) * 2 + kv) * tokens + token


def sram_depth(macro: MacroConfig, n_layers: int, kv_heads: int, tokens: int) -> int:
    """Rows per bank the slice needs (the behavioural SRAM is built this deep)."""
    rows = 0
    for slot in range(n_layers):
        for h in range(kv_heads):
            for t in range(tokens):
                for kv in (0, 1):
                    rows = max(rows, row_location(macro, kv_heads, tokens, slot, h, t, kv)[1] + 1)
    return rows


@dataclass
class Item:
    """One item in flight: a vector to write, a query to prepare, or a key to score."""

    kind: str
    label: tuple
    data: dict = field(default_factory=dict)


@dataclass
class RtlRun:
    """What the RTL simulation produced."""

    timing: dict
    """unit -> list of (label, entered cycle, left cycle), in program order."""
    rows: dict
    """(slot, kv_head, token, kv) -> (indices uint8 [d], stored norm float64, saturated)."""
    scores: dict
    """(slot, q_head, query number) -> float64 [p + 1] scores."""
    outputs: dict
    """(slot, q_head, query number) -> float64 [d] attention outputs (value path built)."""
    total_cycles: int
    overruns: int
    cycles_simulated: int
    overrun_units: list = field(default_factory=list)
    """(unit, cycle) of every item that arrived while its unit was busy (a scheduling error)."""
    bin_holds: int = 0
    """Cycles a job's first key waited for the previous job's finalisation to take the bins."""
    host_s: dict = field(default_factory=dict)
    """Host seconds: build_s (elaborate and compile the design), simulate_s (run it)."""
    design: Optional[MacroTop] = None
    """The simulated design (its parts are written and synthesised by `axelsim rtl`)."""


class Testbench:
    """The behavioural controller and buffers around MacroTop (see the module docstring)."""

    def __init__(self, macro: MacroConfig, top: MacroTop, signs: dict, trace, layer_ids: list[int]):
        self.macro, self.top, self.signs, self.trace, self.layer_ids = macro, top, signs, trace, layer_ids
        self.f = Formats(macro)
        units = units_of(macro)
        self.queues = {u: deque() for u in ("norm_unit", "rotator", "quantizer", "index_sram_write",
                                            "table_generator", "index_sram_read", "table_sram") + VALUE_UNITS[:5]}
        self.timing = {u: [] for u in units}
        self.inflight: dict[str, deque] = {u: deque() for u in units}
        self.rows: dict = {}
        self.scores: dict = {}
        self.outputs: dict = {}
        self.jobs: dict = {}
        """job number -> {z: {token: bits}, m: bits}: the value path's behavioural buffers."""

        self.overruns = 0
        self.driven: dict = {}
        self.overrun_units: list = []
        self.writes_done = 0
        self.write_done = 0
        self.last_done = 0
        self.bin_holds = 0
        """Cycles a job's first key waited at the bins for the previous job's finalisation."""
        self.program = self._program()

    # ---- program order ----------------------------------------------------------------------
    def _program(self) -> list:
        tr, mac = self.trace, self.macro
        qpos = np.asarray(tr.q_positions, dtype=np.int64)
        group = tr.q_heads // tr.kv_heads
        steps = []
        for p in range(int(qpos.max()) + 1 if qpos.size else 0):
            for slot, L in enumerate(self.layer_ids):
                k = np.asarray(tr.k(L), dtype=np.float64)
                v = np.asarray(tr.v(L), dtype=np.float64) if tr.has_values else None
                for h in range(tr.kv_heads):
                    steps.append(("write", (slot, h, p, 0), k[h, p]))
                    if v is not None:
                        steps.append(("write", (slot, h, p, 1), v[h, p]))
            for qi in np.flatnonzero(qpos == p):
                for slot, L in enumerate(self.layer_ids):
                    q = np.asarray(tr.q(L), dtype=np.float64)
                    for kvh in range(tr.kv_heads):
                        for h in range(kvh * group, (kvh + 1) * group):
                            steps.append(("query", (slot, h, int(qi), kvh, p), q[h, qi]))
        return steps

    def _enqueue_program(self):
        """Every item into its first unit's queue, in program order. The rotator serves writes
        (after their norm) and queries (once every older write is stored) in program order."""
        self.rot_order: deque = deque()
        older_writes = 0
        for kind, label, vec in self.program:
            item = Item(kind, label, {"x": pack(to_bits(vec, self.f.input.width), self.f.input.width),
                                      "layer": self.layer_ids[label[0]]})
            if kind == "write":
                item.data["ready"] = 0
                self.queues["norm_unit"].append(item)
                older_writes += 1
            else:
                item.data["ready"] = None
                item.data["older_writes"] = older_writes
                item.data["job"] = len(self.jobs)
                self.jobs[len(self.jobs)] = {"z": {}}
            self.rot_order.append(item)

    # ---- one cycle ------------------------------------------------------------------------------
    async def run(self, ctx):
        t = self.top
        self._enqueue_program()
        cycle = 0
        limit = 200000
        self.arrived_rot: dict = {}
        while cycle < limit:
            self._collect(ctx, cycle)
            if self._finished():
                break
            self._issue(ctx, cycle)
            await ctx.tick()
            cycle += 1
        self.cycles_simulated = cycle
        self.total_cycles = self.last_done

    def _finished(self) -> bool:
        return (not self.rot_order and all(not q for q in self.queues.values())
                and all(not q for q in self.inflight.values()))

    def _left(self, unit: str, cycle: int) -> Item:
        item, start = self.inflight[unit].popleft()
        self.timing[unit].append((item.label, start, cycle))
        self.last_done = max(self.last_done, cycle)
        return item

    def _collect(self, ctx, cycle):
        t, d = self.top, self.macro.head_dim
        if ctx.get(t.norm.out_valid):
            item = self._left("norm_unit", cycle)
            item.data["thr"] = ctx.get(t.flat["norm.t"])
            item.data["stored"] = ctx.get(t.norm.stored)
            item.data["sat"] = ctx.get(t.norm.saturated)
            item.data["ready"] = cycle
            self.arrived_rot[id(item)] = cycle
        if ctx.get(t.rotator.out_valid):
            item = self._left("rotator", cycle)
            item.data["y"] = ctx.get(t.flat["rotator.y"])
            item.data["ready"] = cycle
            self.queues["quantizer" if item.kind == "write" else "table_generator"].append(item)
        if ctx.get(t.quantizer.out_valid):
            item = self._left("quantizer", cycle)
            packed = ctx.get(t.flat["quantizer.idx"])
            item.data["idx"] = unpack(packed, self.macro.bits, d)
            row = packed | (item.data["stored"] << (d * self.macro.bits))
            item.data["row"] = row
            item.data["ready"] = cycle
            self.queues["index_sram_write"].append(item)
        if ctx.get(t.sram.w_done):
            item = self._left("index_sram_write", cycle)
            slot, h, p, kv = item.label
            self.rows[(slot, h, p, kv)] = (np.array(item.data["idx"], dtype=np.uint8),
                                           float(from_bits([item.data["stored"]], 16)[0]), bool(item.data["sat"]))
            self.writes_done += 1
            self.write_done = max(self.write_done, cycle)
        if ctx.get(t.table.out_valid):
            item = self._left("table_generator", cycle)
            self._start_scores(item, cycle)
        if ctx.get(t.sram.reads[0].done):
            item = self._left("index_sram_read", cycle)
            item.data["row"] = ctx.get(t.sram.reads[0].data)
            item.data["ready"] = cycle
            self.queues["table_sram"].append(item)
        if ctx.get(t.lookup.leaves_valid):
            item = self._left("table_sram", cycle)
            self.inflight["adder_tree"].append((item, cycle))
        if ctx.get(t.lookup.tree_valid):
            item = self._left("adder_tree", cycle)
            self.inflight["norm_multiplier"].append((item, cycle))
        if ctx.get(t.lookup.out_valid):
            item = self._left("norm_multiplier", cycle)
            key = item.label[:3]
            item.data["score"] = ctx.get(t.lookup.score)
            self.scores.setdefault(key, {})[item.label[3]] = item.data["score"]
            if t.value:
                item.data["ready"] = cycle
                self.queues["softmax_scale"].append(item)
        if t.value:
            self._collect_value(ctx, cycle)

    def _collect_value(self, ctx, cycle):
        """The value path's unit outputs (see `_collect`)."""
        t, mac = self.top, self.macro
        if ctx.get(t.scale.out_valid):
            item = self._left("softmax_scale", cycle)
            job = self.jobs[item.data["job"]]
            job["z"][item.label[3]] = ctx.get(t.scale.z)
            if item.data["last"]:  # the job's value stream: its value rows 0..p
                job["m"] = ctx.get(t.scale.top)
                slot, h, qi, _ = item.label
                for tok in range(item.label[3] + 1):
                    bank, row = row_location(mac, self.trace.kv_heads, self.trace.tokens, slot, item.data["kvh"], tok, 1)
                    self.queues["index_sram_read_v"].append(Item("value", (slot, h, qi, tok), {
                        "bank": bank, "row": row, "ready": cycle, "job": item.data["job"], "first": tok == 0,
                        "last": tok == item.label[3], "layer": item.data["layer"]}))
        if ctx.get(t.sram.reads[1].done):
            item = self._left("index_sram_read_v", cycle)
            item.data["row"] = ctx.get(t.sram.reads[1].data)
            item.data["ready"] = cycle
            self.queues["exp"].append(item)
        if ctx.get(t.exp.out_valid):
            item = self._left("exp", cycle)
            item.data["e"] = ctx.get(t.exp.e)
            item.data["ready"] = cycle
            self.queues["bins"].append(item)
        if ctx.get(t.bins.out_valid):
            item = self._left("bins", cycle)
            if item.data["last"]:
                item.data["ready"] = cycle
                self.queues["centroids"].append(item)
        if ctx.get(t.fin.centroids_valid):
            item = self._left("centroids", cycle)
            self.inflight["inverse_fwht"].append((item, cycle))
        if ctx.get(t.fin.fwht_valid):
            item = self._left("inverse_fwht", cycle)
            self.inflight["output_scale"].append((item, cycle))
        if ctx.get(t.fin.out_valid):
            item = self._left("output_scale", cycle)
            width = t.fin.f.value.width
            bits = unpack(ctx.get(t.flat["fin.out"]), width, mac.head_dim)
            self.outputs[item.label[:3]] = from_bits(bits, width)

    def _start_scores(self, query: Item, cycle: int):
        slot, h, qi, kvh, p = query.label
        for tok in range(p + 1):
            bank, row = row_location(self.macro, self.trace.kv_heads, self.trace.tokens, slot, kvh, tok, 0)
            self.queues["index_sram_read"].append(
                Item("key", (slot, h, qi, tok), {"bank": bank, "row": row, "ready": cycle, "first": tok == 0,
                                                 "last": tok == p, "job": query.data["job"], "kvh": kvh,
                                                 "layer": query.data["layer"]}))

    def _head(self, unit: str, cycle: int) -> Optional[Item]:
        """The item at the head of a unit's buffer if its data is there by this cycle."""
        if unit == "rotator":  # program order over writes (after their norm) and queries (after older writes)
            if not self.rot_order:
                return None
            head = self.rot_order[0]
            if head.kind == "write":
                return head if id(head) in self.arrived_rot and self.arrived_rot[id(head)] <= cycle else None
            return head if self._query_ready(head, cycle) else None
        q = self.queues[unit]
        if q and q[0].data["ready"] is not None and q[0].data["ready"] <= cycle:
            return q[0]
        return None

    def _drive(self, ctx, sets) -> None:
        for sig, value in sets:  # only changes: every set settles the design
            if self.driven.get(id(sig)) != value:
                ctx.set(sig, value)
                self.driven[id(sig)] = value

    def _issue(self, ctx, cycle):
        """Requests to the issue controller (RTL), then the granted items into their units."""
        t, ctl = self.top, self.top.ctl
        heads = {u: self._head(u, cycle) for u in ctl.req}
        reqs = [(ctl.req[u], int(item is not None)) for u, item in heads.items()]
        for unit, sig in (("index_sram_read", ctl.read_bank), ("index_sram_read_v", ctl.read_v_bank)):
            if heads.get(unit) is not None:
                reqs.append((sig, heads[unit].data["bank"]))
        if heads.get("bins") is not None:
            reqs.append((ctl.bins_first, int(heads["bins"].data["first"])))
        self._drive(ctx, reqs)
        granted = {u: heads[u] if heads[u] is not None and ctx.get(ctl.grant[u]) else None for u in heads}
        if heads.get("bins") is not None and granted["bins"] is None and heads["bins"].data["first"]:
            self.bin_holds += 1
        for unit, item in granted.items():
            if item is not None:
                (self.rot_order if unit == "rotator" else self.queues[unit]).popleft()
                self.inflight[unit].append((item, cycle))
        sets = self._unit_inputs(granted)
        self._drive(ctx, sets)
        checks = [("norm_unit", t.norm.overrun), ("quantizer", t.quantizer.overrun),
                  ("table_generator", t.table.overrun), ("table_sram", t.lookup.overrun)]
        if t.value:
            checks += [("bins", t.bins.overrun), ("centroids", t.fin.overrun), ("index_sram_read", t.sram.conflict)]
        for unit, sig in checks:
            if ctx.get(sig):
                self.overruns += 1
                self.overrun_units.append((unit, cycle))

    def _unit_inputs(self, granted: dict) -> list:
        """(signal, value) pairs: each granted item's data and every unit's in_valid."""
        t, mac = self.top, self.macro
        sets = []
        item = granted["norm_unit"]
        if item is not None:
            sets.append((t.flat["norm.x"], item.data["x"]))
        sets.append((t.norm.in_valid, int(item is not None)))
        item = granted["rotator"]
        if item is not None:
            sets += [(t.flat["rotator.x"], item.data["x"]), (t.rotator.signs, self._sign_word(item.data["layer"]))]
        sets.append((t.rotator.in_valid, int(item is not None)))
        item = granted["quantizer"]
        if item is not None:
            sets += [(t.flat["quantizer.y"], item.data["y"]), (t.flat["quantizer.t"], item.data["thr"])]
        sets.append((t.quantizer.in_valid, int(item is not None)))
        item = granted["index_sram_write"]
        if item is not None:
            slot, h, p, kv = item.label
            bank, row = row_location(mac, self.trace.kv_heads, self.trace.tokens, slot, h, p, kv)
            sets += [(t.sram.wbank, bank), (t.sram.wrow, row), (t.sram.wdata, item.data["row"])]
        sets.append((t.sram.w_valid, int(item is not None)))
        item = granted["table_generator"]
        if item is not None:  # the job's key count, pending at the controller once the table is done
            sets += [(t.flat["table.r"], item.data["y"]), (t.ctl.job_keys, item.label[4] + 1)]
        sets.append((t.table.in_valid, int(item is not None)))
        for unit, ch in (("index_sram_read", 0), ("index_sram_read_v", 1)):
            if unit not in granted:
                continue
            item, port = granted[unit], t.sram.reads[ch]
            if item is not None:
                sets += [(port.bank, item.data["bank"]), (port.row, item.data["row"])]
            sets.append((port.valid, int(item is not None)))
        item = granted["table_sram"]
        if item is not None:
            sets.append((t.lookup.row, item.data["row"]))
        sets.append((t.lookup.in_valid, int(item is not None)))
        if t.value:
            sets += self._value_inputs(granted)
        return sets

    def _value_inputs(self, granted: dict) -> list:
        """The value path's part of `_unit_inputs`."""
        t, mac = self.top, self.macro
        sets = []
        item = granted["softmax_scale"]
        if item is not None:
            sets += [(t.scale.score, item.data["score"]), (t.scale.first, int(item.data["first"]))]
        sets.append((t.scale.in_valid, int(item is not None)))
        item = granted["exp"]
        if item is not None:
            job = self.jobs[item.data["job"]]
            sets += [(t.exp.z, job["z"][item.label[3]]), (t.exp.m, job["m"])]
        sets.append((t.exp.in_valid, int(item is not None)))
        item = granted["bins"]
        if item is not None:
            db = mac.head_dim * mac.bits
            row = item.data["row"]
            sets += [(t.bins.e, item.data["e"]), (t.bins.idx, row & ((1 << db) - 1)), (t.bins.norm, row >> db),
                     (t.bins.first, int(item.data["first"]))]
        sets.append((t.bins.in_valid, int(item is not None)))
        item = granted["centroids"]
        if item is not None:
            sets.append((t.fin.signs, self._sign_word(item.data["layer"])))
        sets.append((t.fin.in_valid, int(item is not None)))
        return sets

    def _query_ready(self, query: Item, cycle: int) -> bool:
        """A query job is ready when every write before it in program order is stored."""
        if query.data["ready"] is None and self.writes_done >= query.data["older_writes"]:
            query.data["ready"] = self.write_done
        return query.data["ready"] is not None and query.data["ready"] <= cycle

    def _sign_word(self, layer: int) -> int:
        word = 0
        for i, s in enumerate(self.signs[layer]):
            if s < 0:
                word |= 1 << i
        return word


def simulate_rtl(macro: MacroConfig, signs: dict, trace, layer_ids: list[int], centroids, boundaries,
                 vcd_path: Optional[str] = None) -> RtlRun:
    """Build MacroTop for the slice and run it; signs {layer: int8 [d]}."""
    depth = sram_depth(macro, len(layer_ids), trace.kv_heads, trace.tokens)
    top = MacroTop(macro, centroids, boundaries, depth, trace.tokens)
    bench = Testbench(macro, top, signs, trace, layer_ids)
    started = time.perf_counter()
    sim = Simulator(top)
    sim.add_clock(1e-9)
    sim.add_testbench(bench.run)
    built = time.perf_counter()
    if vcd_path:
        with sim.write_vcd(vcd_path):
            sim.run()
    else:
        sim.run()
    host = {"build_s": built - started, "simulate_s": time.perf_counter() - built}
    scores = {}
    for key, per_tok in bench.scores.items():
        n = max(per_tok) + 1
        scores[key] = from_bits([per_tok[i] for i in range(n)], bench.f.score.width)
    return RtlRun(bench.timing, bench.rows, scores, bench.outputs, bench.total_cycles, bench.overruns,
                  bench.cycles_simulated, bench.overrun_units, bench.bin_holds, host, top)


__all__ = ["MacroTop", "RtlRun", "simulate_rtl", "UNITS", "VALUE_UNITS", "units_of", "row_location", "to_bits", "from_bits", "FP16", "FP32"]
