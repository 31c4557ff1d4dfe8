"""The controller: replays a trace in SPEC.md's order, issuing streams to the units.

Program order: positions ascending; at position p, for every layer, the write stream of the
key and value vectors of every KV head (K then V, head by head); then every query at p,
layer by layer, KV group by group: its precompute stream (query rotation on the shared
rotator, table generation), its score stream over keys 0..p on a lookup pipeline, its value
stream and its finalisation on that pipeline's value unit. Streams reserve units and SRAM
ports in program order (older first); see docs/cycle_model.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np

from axelsim.config.formats import FP16
from axelsim.config.macro import MacroConfig
from axelsim.hw import arith, lookup, norm_unit, quantizer, rotator, table, value_unit
from axelsim.hw.datapath import bin_accumulate, running_sum
from axelsim.hw.pipeline import Stage, StreamTiming, run_burst, run_keys
from axelsim.hw.sram import AddressMap, BankCalendar, IndexSram, pack_index_rows, unpack_index_rows
from axelsim.hw.units import Ledger

PHASES = ("write", "precompute", "read", "value")


@dataclass
class StageSpec:
    """A stage of a stream before it is bound to unit state: unit, state key, timing."""

    unit: str
    key: tuple
    latency: int
    ii: int
    bank_ids: Optional[np.ndarray] = None
    calendar: Optional[BankCalendar] = None
    work: Optional[Callable[[slice], None]] = None


@dataclass
class Interval:
    phase: str
    layer: int
    start: int
    end: int


@dataclass
class Machine:
    """State of one simulation: units' release cycles, SRAM contents and calendars, results."""

    macro: MacroConfig
    signs: dict
    centroids: np.ndarray
    boundaries: np.ndarray
    fidelity: str
    ledger: Ledger
    amap: AddressMap
    free_at: dict = field(default_factory=dict)
    intervals: list = field(default_factory=list)
    stall_total: int = 0

    def __post_init__(self):
        m = self.macro
        self.fmt = {k: m.formats.get(k) for k in ("input", "rotator", "table", "accumulator",
                                                  "score", "softmax", "value")}
        self.sram = IndexSram(self.amap, m.row_bits)
        self.read_cal = BankCalendar(m.sram.banks, m.sram.read_ports)
        self.write_cal = BankCalendar(m.sram.banks, m.sram.write_ports)
        self.softmax = value_unit.Softmax(self.fmt["softmax"], m.head_dim)

    # ---- generic stream execution ---------------------------------------------------------
    def run_stream(self, phase: str, layer: int, ready: np.ndarray, specs: list[StageSpec],
                   label: str) -> StreamTiming:
        """Time a stream through its stages (key or burst fidelity) and run its datapath."""
        stages = [Stage(s.unit, s.latency, s.ii, self.free_at.get(s.key, 0), s.key[-1],
                        s.bank_ids, s.calendar,
                        None if s.work is None else (lambda i, w=s.work: w(slice(i, i + 1))))
                  for s in specs]
        if self.fidelity == "key":
            timing = run_keys(ready, stages)
        else:
            timing = run_burst(ready, stages)
            for s in specs:
                if s.work is not None:
                    s.work(slice(None))
        n = ready.size
        for s, (spec, stage) in enumerate(zip(specs, stages)):
            self.free_at[spec.key] = int(timing.start[s, -1]) + spec.ii
            self.ledger.add_busy(spec.unit, n * spec.ii)
            # waiting at stage 0 is queueing for issue; a started stream waiting is a stall
            contention = int(timing.stall_busy[s]) if s > 0 else 0
            self.ledger.add_stall(spec.unit, "contention", contention)
            self.ledger.add_stall(spec.unit, "bank_conflict", int(timing.stall_bank[s]))
            self.stall_total += contention + int(timing.stall_bank[s])
            self.ledger.add_activity(spec.unit, stage.instance, int(timing.start[s, 0]),
                                     int(timing.start[s, -1]) + spec.latency, label)
        self.intervals.append(Interval(phase, layer, int(timing.start[0, 0]), int(timing.done.max())))
        return timing

    # ---- write path ------------------------------------------------------------------------
    def write_stream(self, slot: int, layer: int, token: int, k: np.ndarray, v: Optional[np.ndarray],
                     ready: int) -> int:
        """Write key (and value) `token` of every KV head of one layer; returns the done cycle."""
        m, f = self.macro, self.fmt
        vectors = k if v is None else np.stack([k, v], axis=1).reshape(-1, m.head_dim)
        kinds = 1 if v is None else 2
        heads = np.repeat(np.arange(k.shape[0]), kinds)
        kv = np.tile(np.arange(kinds), k.shape[0])
        bank, row = self.amap.locate(slot, heads, token, 0)
        if kinds == 2:
            bank2, row2 = self.amap.locate(slot, heads, token, 1)
            bank, row = np.where(kv == 1, bank2, bank), np.where(kv == 1, row2, row)
        x = arith.rnd(f["input"], vectors)
        st = {}
        signs = self.signs[layer]

        def norms(sl):
            n, stored, sat = norm_unit.extract_norms(f["rotator"], f["input"], x[sl])
            thr = norm_unit.thresholds(f["rotator"], self.boundaries, n)
            st.setdefault("n", np.empty(len(x)))[sl] = stored
            st.setdefault("t", np.empty((len(x), m.levels - 1)))[sl] = thr
            c = len(n)
            self.count_write_norm(layer, c, int(np.count_nonzero(sat)))

        def rotate(sl):
            st.setdefault("y", np.empty(x.shape))[sl] = rotator.rotate(f["rotator"], x[sl], signs)
            self.count_fwht("rotator", f["rotator"].name, layer, "write_path", len(x[sl]))

        def quantize(sl):
            st.setdefault("idx", np.empty(x.shape, dtype=np.int64))[sl] = quantizer.quantize(st["y"][sl], st["t"][sl])
            c = len(x[sl])
            self.ledger.count("quantizer", f"cmp.{f['rotator'].name}", c * m.head_dim * (m.levels - 1), layer, "write_path")

        def store(sl):
            rows = pack_index_rows(st["idx"][sl], st["n"][sl], m.bits, self.sram.row_bytes)
            spilled = self.sram.write(bank[sl], row[sl], rows)
            c = rows.shape[0]
            self.ledger.count("index_sram", "write", c - spilled, layer, "write_path")
            self.ledger.count("offchip", "write", spilled, layer, "write_path")
            self.ledger.event("sram_write_bits", c * m.row_bits, layer, "write_path")

        nl, nii = norm_unit.norm_timing(m)
        rl, rii = rotator.rotator_timing(m)
        ql, qii = quantizer.quantizer_timing(m)
        specs = [StageSpec("norm_unit", ("norm_unit", 0), nl, nii, work=norms),
                 StageSpec("rotator", ("rotator", 0), rl, rii, work=rotate),
                 StageSpec("quantizer", ("quantizer", 0), ql, qii, work=quantize),
                 StageSpec("index_sram", ("index_sram_write", 0), m.sram.write_latency_cycles, 1,
                           bank_ids=bank, calendar=self.write_cal, work=store)]
        timing = self.run_stream("write", layer, np.full(len(x), ready, dtype=np.int64), specs,
                                 f"write L{layer} t{token}")
        return int(timing.done.max())

    def count_write_norm(self, layer: int, vectors: int, saturated: int) -> None:
        m, rot = self.macro, self.fmt["rotator"].name
        d, thr = m.head_dim, m.levels - 1
        self.ledger.count("norm_unit", f"mul.{rot}", vectors * (d + thr), layer, "write_path")
        self.ledger.count("norm_unit", f"add.{rot}", vectors * (d - 1), layer, "write_path")
        self.ledger.count("norm_unit", f"sqrt.{rot}", vectors, layer, "write_path")
        self.ledger.count("codebook_rom", "read", vectors * thr, layer, "write_path")
        self.ledger.event("square_roots", vectors, layer, "write_path")
        self.ledger.event("norm_saturations", saturated, layer, "write_path")

    def count_fwht(self, unit: str, fmt: str, layer: int, path: str, vectors: int) -> None:
        d = self.macro.head_dim
        self.ledger.count(unit, f"add.{fmt}", vectors * d * self.macro.log2_dim, layer, path)
        self.ledger.count("sign_rom", "read", vectors, layer, path)
        self.ledger.event("butterflies", vectors * rotator.butterflies_per_vector(d), layer, path)

    def preload(self, slot: int, layer: int, k: np.ndarray, v: Optional[np.ndarray]) -> None:
        """Store every key and value of one layer at cycle 0, untimed and uncounted."""
        m, f = self.macro, self.fmt
        for kind, data in ((0, k), (1, v)):
            if data is None:
                continue
            heads, tokens = np.meshgrid(np.arange(data.shape[0]), np.arange(data.shape[1]), indexing="ij")
            x = arith.rnd(f["input"], data.reshape(-1, m.head_dim))
            n, stored, _ = norm_unit.extract_norms(f["rotator"], f["input"], x)
            idx = quantizer.quantize(rotator.rotate(f["rotator"], x, self.signs[layer]),
                                     norm_unit.thresholds(f["rotator"], self.boundaries, n))
            bank, row = self.amap.locate(slot, heads.reshape(-1), tokens.reshape(-1), kind)
            self.sram.write(bank, row, pack_index_rows(idx, stored, m.bits, self.sram.row_bytes))

    # ---- read and value paths ----------------------------------------------------------------
    def pick_pipeline(self) -> int:
        """The lookup pipeline that frees first (lowest number on ties)."""
        frees = [self.free_at.get(("index_sram_read", p), 0) for p in range(self.macro.read_path.pipelines)]
        return int(np.argmin(frees))

    def query_job(self, slot: int, layer: int, kv_head: int, heads: np.ndarray, q: np.ndarray,
                  n_keys: int, ready: int, has_values: bool) -> tuple[np.ndarray, Optional[np.ndarray], int]:
        """Serve query heads `heads` (one GQA group share reads, or one head) against keys 0..n_keys-1.

        q [h, d] trace queries; returns scores [h, n_keys], outputs [h, d] or None, done cycle.
        """
        m, f = self.macro, self.fmt
        h = len(heads)
        pipe = self.pick_pipeline()
        signs = self.signs[layer]
        st: dict = {}
        label = f"L{layer} kv{kv_head} q{list(map(int, heads))}"

        def rot_query(sl):
            st.setdefault("r", np.empty((h, m.head_dim)))[sl] = rotator.rotate(f["rotator"], arith.rnd(f["input"], q[sl]), signs)
            self.count_fwht("rotator", f["rotator"].name, layer, "read_path", len(q[sl]))

        def make_table(sl):
            tab = table.build_table(f["table"], f["rotator"], st["r"][sl], self.centroids)
            st.setdefault("P", np.empty((h, m.head_dim, m.levels)))[sl] = tab
            c = tab.shape[0]
            self.ledger.count("table_generator", f"mul.{f['table'].name}", c * m.head_dim * m.levels, layer, "read_path")
            self.ledger.count("table_sram", "write", c * m.head_dim * m.levels, layer, "read_path")
            self.ledger.count("codebook_rom", "read", c * m.levels, layer, "read_path")

        rl, rii = rotator.rotator_timing(m)
        tl, tii = table.table_timing(m)
        pre = self.run_stream("precompute", layer, np.full(h, ready, dtype=np.int64),
                              [StageSpec("rotator", ("rotator", 0), rl, rii, work=rot_query),
                               StageSpec("table_generator", ("table_generator", 0), tl, tii, work=make_table)],
                              "precompute " + label)
        tokens = np.arange(n_keys)
        kbank, krow = self.amap.locate(slot, kv_head, tokens, 0)
        scores, z_all = self.score_stream(layer, pipe, h, kbank, krow, st, int(pre.done.max()), label, has_values)
        if not (has_values and m.value_path.enabled):
            return scores, None, self.last_done
        vbank, vrow = self.amap.locate(slot, kv_head, tokens, 1)
        outputs = self.value_stream(layer, pipe, h, vbank, vrow, z_all, signs, label)
        return scores, outputs, self.last_done

    def read_rows(self, layer: int, path: str, bank, row, sl, heads: int):
        rows, spilled = self.sram.read(bank[sl], row[sl])
        c = rows.shape[0]
        self.ledger.count("index_sram", "read", c - spilled, layer, path)
        self.ledger.count("offchip", "read", spilled, layer, path)
        self.ledger.event("sram_read_bits", c * self.macro.row_bits, layer, path)
        return unpack_index_rows(rows, self.macro.head_dim, self.macro.bits)

    def score_stream(self, layer, pipe, h, bank, row, st, ready, label, with_softmax):
        m, f = self.macro, self.fmt
        n = bank.size
        scores = np.empty((h, n))
        z = np.empty((h, n))
        leaves = np.empty((h, n, m.head_dim))
        acc_sum = np.empty((h, n))
        norms = np.empty(n)
        idx = np.empty((n, m.head_dim), dtype=np.int64)
        acc, sc = f["accumulator"], f["score"]

        def read(sl):
            idx[sl], norms[sl] = self.read_rows(layer, "read_path", bank, row, sl, h)

        def look(sl):
            leaves[:, sl] = lookup.lookup_leaves(acc, st["P"], idx[sl])
            self.ledger.count("table_sram", "read", h * m.head_dim * len(norms[sl]), layer, "read_path")

        def tree(sl):
            from axelsim.hw.datapath import pairwise_tree
            acc_sum[:, sl] = pairwise_tree(acc, leaves[:, sl])
            self.ledger.count("lookup_pipeline", f"add.{acc.name}", h * (m.head_dim - 1) * len(norms[sl]), layer, "read_path")

        def norm_mul(sl):
            scores[:, sl] = arith.mul(sc, acc_sum[:, sl], acc, norms[None, sl], FP16)
            self.ledger.count("lookup_pipeline", f"mul.{sc.name}", h * len(norms[sl]), layer, "read_path")

        def scale(sl):
            z[:, sl] = self.softmax.scale(scores[:, sl], sc)
            c = h * len(norms[sl])
            s_name = f["softmax"].name
            self.ledger.count("value_unit", f"mul.{s_name}", c, layer, "value_path")
            # the running max compares every z but the first against the max so far
            later = int(np.count_nonzero(np.arange(n)[sl] > 0))
            self.ledger.count("value_unit", f"cmp.{s_name}", h * later, layer, "value_path")

        timing = lookup.lookup_stage_timing(m, h)
        stages = [("index_sram", ("index_sram_read", pipe), m.sram.read_latency_cycles, read)]
        works = [look, tree, norm_mul]
        stages += [("table_sram" if name == "table_sram" else "lookup_pipeline", (name, pipe), lat, w)
                   for (name, lat, _), w in zip(timing, works)]
        iis = [1] + [ii for _, _, ii in timing]
        if with_softmax and m.value_path.enabled:
            stages.append(("value_unit", ("softmax_scale", pipe), 1, scale))
            iis.append(h)
        issue_ii = max(iis)
        iis[0] = issue_ii
        specs = [StageSpec(unit, key, lat, ii, work=w) for (unit, key, lat, w), ii in zip(stages, iis)]
        specs[0].bank_ids, specs[0].calendar = bank, self.read_cal
        result = self.run_stream("read", layer, np.full(n, ready, dtype=np.int64), specs, "scores " + label)
        self.last_done = int(result.done.max())
        return scores, z

    def value_stream(self, layer, pipe, h, bank, row, z, signs, label):
        m, f = self.macro, self.fmt
        n = bank.size
        s_fmt, v_fmt = f["softmax"], f["value"]
        zmax = z.max(axis=1, keepdims=True)
        norms = np.empty(n)
        idx = np.empty((n, m.head_dim), dtype=np.int64)
        e = np.empty((h, n))
        bins = np.zeros((h, m.head_dim, m.levels))
        totals = np.zeros(h)
        outputs = np.empty((h, m.head_dim))

        def read(sl):
            idx[sl], norms[sl] = self.read_rows(layer, "value_path", bank, row, sl, h)

        def exps(sl):
            e[:, sl] = self.softmax.exps(z[:, sl], zmax)
            c = h * len(norms[sl])
            self.ledger.count("value_unit", f"add.{s_fmt.name}", 2 * c, layer, "value_path")
            self.ledger.count("value_unit", f"exp.{s_fmt.name}", c, layer, "value_path")
            self.ledger.event("exps", c, layer, "value_path")

        def accumulate(sl):
            w = value_unit.weights(v_fmt, s_fmt, e[:, sl], norms[sl])
            c = len(norms[sl])
            if self.fidelity == "key":
                cols = np.arange(m.head_dim)
                for j in range(h):
                    totals[j] = arith.add(s_fmt, totals[j], e[j, sl][0])
                    bins[j, cols, idx[sl][0]] = arith.add(v_fmt, bins[j, cols, idx[sl][0]], w[j, 0])
            else:
                totals[:] = running_sum(s_fmt, e)
                for j in range(h):
                    bins[j] = bin_accumulate(v_fmt, idx, w[j], m.levels)
            self.ledger.count("value_unit", f"mul.{v_fmt.name}", h * c, layer, "value_path")
            self.ledger.count("value_unit", f"add.{v_fmt.name}", h * c * m.head_dim, layer, "value_path")

        def finish(sl):
            outputs[sl] = value_unit.finalize(v_fmt, s_fmt, bins[sl], totals[sl], self.centroids, signs)
            c = outputs[sl].shape[0]
            d, L = m.head_dim, m.levels
            self.ledger.count("value_unit", f"mul.{v_fmt.name}", c * (d * L + 1 + d), layer, "value_path")
            self.ledger.count("value_unit", f"add.{v_fmt.name}", c * d * (L - 1), layer, "value_path")
            self.ledger.count("value_unit", f"div.{v_fmt.name}", c, layer, "value_path")
            self.ledger.count("codebook_rom", "read", c * L, layer, "value_path")
            self.count_fwht("value_unit", v_fmt.name, layer, "value_path", c)
            self.ledger.event("divisions", c, layer, "value_path")

        stream = value_unit.stream_timing(m, h)
        issue_ii = max(1, *(ii for _, _, ii in stream))
        specs = [StageSpec("index_sram", ("index_sram_read_v", pipe), m.sram.read_latency_cycles, issue_ii,
                           bank_ids=bank, calendar=self.read_cal, work=read)]
        specs += [StageSpec("value_unit", (name, pipe), lat, ii, work=w)
                  for (name, lat, ii), w in zip(stream, (exps, accumulate))]
        vt = self.run_stream("value", layer, np.full(n, self.last_done, dtype=np.int64), specs, "values " + label)
        fin = [StageSpec("value_unit", (name, pipe), lat, ii) for name, lat, ii in value_unit.finalize_timing(m)]
        fin[-1].work = finish
        ft = self.run_stream("value", layer, np.full(h, int(vt.done.max()), dtype=np.int64), fin, "output " + label)
        self.last_done = int(ft.done.max())
        return outputs
