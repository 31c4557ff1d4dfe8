"""The conventional baselines, modelled with the same stream engine, SRAM calendars and counters.

- `fp16`: keys and values stored as FP16 rows (d*16 bits) in `kv_sram`; per key d
  multiplications p_i = rnd_acc(q_i k_i) and the pairwise adder tree (`dot_product`); values
  accumulated as acc_i = rnd_V(acc_i + rnd_V(e_t v_t,i)), out = rnd_V(acc * rnd_V(1/E)).
- `dequant`: AXELRAM's write path and index rows; per key the `dequantizer` forms
  c_i = rnd_rot(gamma[idx_i] * norm) (d multiplications), the `inverse_rotator` one FWHT and
  the exact s_i 2^-log2 d scaling, then the same dot product; values likewise dequantized.
The softmax is AXELRAM's (same exp unit). Timing per key: row read (II = the bottleneck),
then each unit at II = ceil(G d / read_path.lookups_per_cycle) (dequantizer, dot product) or the
rotator formula (inverse rotator).
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from axelsim.config.formats import FP16
from axelsim.config.macro import MacroConfig
from axelsim.cost.tiles import SramTiming
from axelsim.errors import ConfigError
from axelsim.hw import arith, rotator
from axelsim.hw.controller import Machine, StageSpec
from axelsim.hw.datapath import fwht, pairwise_tree
from axelsim.hw.macro import SimResult, _instances, _sign_table, replay, summarize
from axelsim.hw.sram import AddressMap
from axelsim.hw.units import Ledger
from axelsim.numerics.codebook import lloyd_max_codebook

KINDS = ("fp16", "dequant")


class BaselineMachine(Machine):
    """A Machine whose query jobs (and, for fp16, write streams) follow a baseline datapath."""

    kind: str = "fp16"

    def __post_init__(self):
        super().__post_init__()
        self.fp16_rows = np.zeros((self.amap.banks * self.amap.rows_needed, self.macro.head_dim))

    def read_floor(self) -> int:
        """Baseline read streams start at the controller's ready cycle: keep every reservation."""
        return 0

    def write_floor(self) -> int:
        return self.free_at.get(("kv_sram_write", 0), 0) if self.kind == "fp16" else super().write_floor()

    # ---- fp16 storage ---------------------------------------------------------------------
    def write_stream(self, slot, layer, token, k, v, ready):
        if self.kind == "dequant":
            return super().write_stream(slot, layer, token, k, v, ready)
        m = self.macro
        vectors = k if v is None else np.stack([k, v], axis=1).reshape(-1, m.head_dim)
        kinds = 1 if v is None else 2
        heads, kv = np.repeat(np.arange(k.shape[0]), kinds), np.tile(np.arange(kinds), k.shape[0])
        bank, row = self.amap.locate(slot, heads, token, kv)
        x = arith.rnd(self.fmt["input"], vectors)

        def store(sl):
            self.fp16_rows[self.amap.flat(bank[sl], row[sl])] = arith.rnd(FP16, x[sl])
            self.ledger.count("kv_sram", "write", len(x[sl]), layer, "write_path")
            self.ledger.event("sram_write_bits", len(x[sl]) * m.head_dim * 16, layer, "write_path")

        spec = StageSpec("kv_sram", ("kv_sram_write", 0), self.timing.write_latency_cycles, 1,
                         bank_ids=bank, calendar=self.write_cal, work=store)
        return int(self.run_stream("write", layer, np.full(len(x), ready, dtype=np.int64), [spec],
                                   f"write L{layer} t{token}").done.max())

    def preload(self, slot, layer, k, v):
        if self.kind == "dequant":
            return super().preload(slot, layer, k, v)
        for kind, data in ((0, k), (1, v)):
            if data is not None:
                heads, tokens = np.meshgrid(np.arange(data.shape[0]), np.arange(data.shape[1]), indexing="ij")
                bank, row = self.amap.locate(slot, heads.reshape(-1), tokens.reshape(-1), kind)
                x = arith.rnd(FP16, arith.rnd(self.fmt["input"], data.reshape(-1, self.macro.head_dim)))
                self.fp16_rows[self.amap.flat(bank, row)] = x

    # ---- per-key vectors -------------------------------------------------------------------
    def key_vectors(self, layer, path, bank, row, sl, signs) -> np.ndarray:
        """The vectors the dot product sees: stored FP16, or dequantized and inverse-rotated."""
        m, rot = self.macro, self.fmt["rotator"]
        if self.kind == "fp16":
            c = len(bank[sl])
            self.ledger.count("kv_sram", "read", c, layer, path)
            self.ledger.event("sram_read_bits", c * m.head_dim * 16, layer, path)
            return self.fp16_rows[self.amap.flat(bank[sl], row[sl])]
        idx, norms = self.read_rows(layer, path, bank, row, sl, 1)
        c = len(norms)
        scaled = arith.mul(rot, self.centroids[idx], FP16, norms[:, None], FP16)
        self.ledger.count("dequantizer", f"mul.{rot.name}", c * m.head_dim, layer, path)
        u = fwht(rot, scaled)
        self.count_fwht("inverse_rotator", rot.name, layer, path, c)
        return np.ldexp(u * signs[None, :], -m.log2_dim)  # exact: sign flip and 2^-log2 d

    def query_job(self, slot, layer, kv_head, heads, q, n_keys, ready, has_values):
        m, f = self.macro, self.fmt
        h, d = len(heads), m.head_dim
        pipe = self.pick_pipeline()
        signs = self.signs[layer]
        qin = arith.rnd(f["input"], q)
        tokens = np.arange(n_keys)
        kbank, krow = self.amap.locate(slot, kv_head, tokens, 0)
        acc, sc = f["accumulator"], f["score"]
        scores = np.empty((h, n_keys))
        keys = np.empty((n_keys, d))
        in_fmt = FP16 if self.kind == "fp16" else f["rotator"]

        def read(sl):
            keys[sl] = self.key_vectors(layer, "read_path", kbank, krow, sl, signs)

        def dot(sl):
            prod = arith.mul(acc, qin[:, None, :], f["input"], keys[None, sl], in_fmt)
            scores[:, sl] = arith.rnd(sc, pairwise_tree(acc, prod))
            c = h * len(keys[sl])
            self.ledger.count("dot_product", f"mul.{acc.name}", c * d, layer, "read_path")
            self.ledger.count("dot_product", f"add.{acc.name}", c * (d - 1), layer, "read_path")

        lanes = -(-h * d // m.read_path.lookups_per_cycle)
        tree = -(-m.log2_dim // m.read_path.adder_tree_stages_per_cycle)
        stages = [("dot_product", ("dot_product", pipe), lanes + tree, lanes, dot)]
        if self.kind == "dequant":
            rl, rii = rotator.rotator_timing(m)
            stages = [("dequantizer", ("dequantizer", pipe), lanes, lanes, None),
                      ("inverse_rotator", ("inverse_rotator", pipe), rl, rii, None)] + stages
        issue = max(1, *(ii for *_, ii, _ in stages))
        specs = [StageSpec("index_sram" if self.kind == "dequant" else "kv_sram", ("sram_read", pipe),
                           self.timing.read_latency_cycles, issue, bank_ids=kbank, calendar=self.read_cal, work=read)]
        specs += [StageSpec(u, key, lat, ii, work=w) for u, key, lat, ii, w in stages]
        timing = self.run_stream("read", layer, np.full(n_keys, ready, dtype=np.int64), specs, f"scores L{layer}")
        done = int(timing.done.max())
        if not (has_values and m.value_path.enabled):
            return scores, None, done
        return scores, self.values(layer, pipe, h, slot, kv_head, scores, signs, done), self.last_done

    def values(self, layer, pipe, h, slot, kv_head, scores, signs, ready):
        m, f = self.macro, self.fmt
        s_fmt, v_fmt, d = f["softmax"], f["value"], m.head_dim
        n = scores.shape[1]
        vbank, vrow = self.amap.locate(slot, kv_head, np.arange(n), 1)
        z = self.softmax.scale(scores, f["score"])
        e = self.softmax.exps(z, z.max(axis=1, keepdims=True))
        vin = FP16 if self.kind == "fp16" else f["rotator"]
        accs = np.zeros((h, d))
        totals = np.zeros(h)
        vals = np.empty((n, d))

        def read(sl):
            vals[sl] = self.key_vectors(layer, "value_path", vbank, vrow, sl, signs)

        def accumulate(sl):
            for t in np.arange(n)[sl]:
                totals[:] = arith.add(s_fmt, totals, e[:, t])
                accs[:] = arith.add(v_fmt, accs, arith.mul(v_fmt, e[:, t, None], s_fmt, vals[None, t], vin))
            c = h * len(vals[sl])
            self.ledger.count("value_unit", f"mul.{s_fmt.name}", c, layer, "value_path")
            self.ledger.count("value_unit", f"exp.{s_fmt.name}", c, layer, "value_path")
            self.ledger.count("value_unit", f"add.{s_fmt.name}", 2 * c, layer, "value_path")
            self.ledger.count("value_unit", f"mul.{v_fmt.name}", c * d, layer, "value_path")
            self.ledger.count("value_unit", f"add.{v_fmt.name}", c * d, layer, "value_path")

        lanes = -(-h * d // m.value_path.bin_lanes)
        specs = [StageSpec("index_sram" if self.kind == "dequant" else "kv_sram", ("sram_read_v", pipe),
                           self.timing.read_latency_cycles, lanes, bank_ids=vbank, calendar=self.read_cal, work=read),
                 StageSpec("value_unit", ("value_mac", pipe), lanes + 1, lanes, work=accumulate)]
        vt = self.run_stream("value", layer, np.full(n, ready, dtype=np.int64), specs, f"values L{layer}")
        g = arith.div_one_by(v_fmt, totals)
        self.ledger.count("value_unit", f"div.{v_fmt.name}", h, layer, "value_path")
        self.ledger.count("value_unit", f"mul.{v_fmt.name}", h * d, layer, "value_path")
        self.last_done = int(vt.done.max()) + 1
        self.intervals[-1].end = self.last_done
        return arith.mul(v_fmt, accs, v_fmt, g[:, None], v_fmt)


def simulate_baseline(kind: str, macro: MacroConfig, trace, signs=None, *, layers=None, kv_heads=None,
                      queries=None, fidelity: str = "burst", prefill: str = "simulate",
                      record_waveform: bool = False, progress=None, source: Optional[str] = None,
                      timing: Optional[SramTiming] = None) -> SimResult:
    """Replay the trace through baseline `kind` ('fp16' or 'dequant'); same fields as simulate().

    signs (SignRom or [n_layers, d] int8) is needed by 'dequant'; 'fp16' ignores it.
    source: the macro file, named by configuration errors (default: the macro's name).
    timing: the row store's timing (CostModel.for_baseline(...).timing()); None: SramTiming.ideal.
    """
    source = source or macro.name
    if kind not in KINDS:
        raise ConfigError("baselines", "kind", f"one of {KINDS}, got {kind!r}")
    if layers is not None or kv_heads is not None or queries is not None:
        trace = trace.with_selection(layers=layers, kv_heads=kv_heads, queries=queries)
    layer_ids = list(trace.layer_indices)
    d = macro.head_dim
    sign_table = _sign_table(signs, layer_ids, d) if signs is not None else {L: np.ones(d, np.int8) for L in layer_ids}
    codebook = lloyd_max_codebook(d, macro.bits)
    ledger = Ledger(record=record_waveform)
    amap = AddressMap(macro, len(layer_ids), trace.kv_heads, trace.tokens, source)
    machine = BaselineMachine(macro, sign_table, np.asarray(codebook.rom_centroids, dtype=np.float64),
                              np.asarray(codebook.rom_boundaries, dtype=np.float64), fidelity, ledger, amap,
                              timing or SramTiming.ideal(macro))
    machine.kind = kind
    scores, outputs, served = replay(machine, trace, layer_ids, prefill, progress)
    instances = {**_instances(macro), "kv_sram": macro.sram.banks, "dot_product": macro.read_path.pipelines,
                 "dequantizer": macro.read_path.pipelines, "inverse_rotator": macro.read_path.pipelines}
    summary = summarize(ledger, machine.intervals, machine.stall_total, layer_ids, macro.clock_hz,
                        instances, served, d)
    return SimResult(scores=scores, outputs=outputs, waveform=ledger.activity, instances=instances,
                     fidelity=fidelity, prefill=prefill, clock_hz=macro.clock_hz, timing=machine.timing,
                     rows_used=amap.rows_needed, **summary)
