"""The QJL residual macro (`residual: qjl`) in the cycle model: AXELRAM's units plus a residual
unit, a sketch projector shared by the write path and the query precompute, a sketch ROM and a
QJL accumulator per lookup pipeline (docs/cycle_model.md, "QJL residual keys").

Keys are written with the (b-1)-bit codebook (write path, thresholds and comparators of b-1
bits); the residual unit forms ρ = y − ñ γ[idx] from the rotator's y and the quantized row,
its norm, and the projector the m signs of S ρ (S the FP16 sketch ROM, m x d); the row holds
(b-1)·d index bits, the FP16 norm, the m sign bits and the FP16 residual norm. Values keep the
b-bit write path and rows. A query is rotated once, its (b-1)-bit table built, and the projector
forms its sketch weights w = rnd_table((S r) c 2^-log2 d) once; per key the lookup pipeline
gives the MSE score and the QJL accumulator adds rnd_score(tree_acc(±w) ρ̃). The value path
is AXELRAM's, on those scores.

Timing (cycles): the projector evaluates `qjl.projection_rows_per_cycle` = R sketch rows per
cycle (R·d multipliers and R d-leaf adder trees): II = m / R per vector or query, latency
m / R + log2 d (+ 1 for a query's scaling multiply). The residual unit: latency 2 (centroid x
norm, subtract), II 1; its norm (squares, tree, sqrt) runs beside the projection and is hidden
unless it is longer. The write chain is in order: a value row passes the projector's bypass register
(one cycle) behind the key before it (per-item intervals: pipeline.Stage.iis). The
QJL accumulator: latency ceil(log2 m) + 2 (tree, multiply, add), II = heads per key. Every
stream is timed by the closed form (`fidelity` key is refused for a QJL macro: hw.macro.simulate);
the datapaths are compiled kernels (axelsim.hw.qjl_kernels).
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from axelsim.config.formats import FP16, FP32
from axelsim.config.macro import MacroConfig
from axelsim.cost.tiles import SramTiming
from axelsim.errors import ConfigError
from axelsim.hw import arith, kernels, lookup, norm_unit, rotator, table
from axelsim.hw import qjl_kernels as qk
from axelsim.hw.controller import Machine, StageSpec
from axelsim.hw.units import Ledger
from axelsim.numerics.codebook import lloyd_max_codebook

RESIDUAL_LATENCY = 2
"""Residual unit: the centroid x norm multiply, then the subtraction (cycles)."""


def sketch_scale(m: int) -> float:
    """c = rnd_fp32(sqrt(pi / 2) / m), the estimator's constant (a register of the accumulator)."""
    return float(arith.rnd(FP32, np.array([np.sqrt(np.pi / 2.0) / m]))[0])


def projector_timing(macro: MacroConfig, query: bool) -> tuple[int, int]:
    """(latency, II) of the sketch projector for one key residual or one query (cycles)."""
    ii = macro.sketch_bits // macro.qjl.projection_rows_per_cycle
    if query:
        return ii + macro.log2_dim + 1, ii
    norm = 1 + macro.log2_dim + norm_unit.SQRT_LATENCY  # squares, tree, sqrt beside the projection
    return max(ii + macro.log2_dim, norm), ii


def accumulator_timing(macro: MacroConfig, heads: int) -> tuple[int, int]:
    """(latency, II) of the QJL accumulator per key: the m-leaf tree, the ρ̃ multiply, the add."""
    return max(1, (macro.sketch_bits - 1).bit_length()) + 2, heads


def qjl_instances(macro: MacroConfig) -> dict:
    """Instances of the QJL units (added to the AXELRAM macro's)."""
    return {"qjl_residual": 1, "qjl_projector": 1, "sketch_rom": 1, "qjl_accumulator": macro.read_path.pipelines}


class QjlMachine(Machine):
    """A Machine whose keys carry the QJL residual sketch; `setup` before use."""

    def setup(self, sketch: np.ndarray) -> None:
        """The (b-1)-bit key codebook and the sketch ROM (float64 [m, d] of FP16 values)."""
        m, f = self.macro, self.fmt
        book = lloyd_max_codebook(m.head_dim, m.key_bits)
        self.key_centroids = np.asarray(book.rom_centroids, dtype=np.float64)
        self.key_boundaries = np.asarray(book.rom_boundaries, dtype=np.float64)
        self.key_levels = 1 << m.key_bits
        self.sketch = np.ascontiguousarray(sketch, dtype=np.float64)
        self.step = sketch_scale(m.sketch_bits) * 2.0 ** -m.log2_dim  # exact: a power of two
        self.sketch_offset = m.head_dim * m.key_bits + 16
        self.wide_qjl = {"squares": kernels.is_wide(f["rotator"], f["rotator"]),
                         "project": kernels.is_wide(FP16, f["rotator"]),
                         "step": kernels.is_wide(f["rotator"], FP32),
                         "score": kernels.is_wide(f["accumulator"], FP16)}

    # ---- write path ------------------------------------------------------------------------
    def batch_chain(self, bank_ids: np.ndarray, latencies: Optional[np.ndarray], kinds: int) -> list[StageSpec]:
        """AXELRAM's write chain with the residual unit and the projector before the row write:
        a key holds the projector for its m / R cycles, a value passes its bypass register
        (one cycle) in order behind it."""
        chain = self.write_chain(bank_ids, latencies)
        pl, pii = projector_timing(self.macro, query=False)
        is_key = np.arange(bank_ids.size) % kinds == 0  # program order: head by head, K before V
        iis = np.where(is_key, pii, 1).astype(np.int64)
        lats = np.where(is_key, pl, 1).astype(np.int64)
        return chain[:-1] + [StageSpec("qjl_residual", ("qjl_residual", 0), RESIDUAL_LATENCY, 1),
                             StageSpec("qjl_projector", ("qjl_projector", 0), pl, pii, iis=iis, latencies=lats),
                             chain[-1]]

    def store(self, slot: int, layer: int, first: int, last: int, k: np.ndarray, v: Optional[np.ndarray]) -> tuple:
        """Rows of positions first..last of one layer: keys (b-1 bits, then the sketch and ρ̃), values
        (b bits). Returns (keys, values, spilled, saturated) for the counts."""
        m, c = self.macro, self.codes
        counts = [0, 0, 0, 0]
        for kind, data in ((0, k), (1, v)):
            if data is None:
                continue
            raw, bank, row = self.stored_vectors(slot, data, first, last, kind)
            flat = self.amap.flat(bank, row)
            sat = np.empty(len(raw), dtype=np.bool_)
            signs = self.rom_row(layer, kind)
            bits, bounds = (m.key_bits, self.key_boundaries) if kind == 0 else (m.bits, self.boundaries)
            kernels.write_burst(raw, signs, bounds, c["input"], c["rotator"], c["fp16"], self.wide["squares"],
                                self.wide["fwht_first"], self.upper_ties, bits, self.sram.rows, flat, sat)
            if kind == 0:
                qk.residual_burst(raw, signs.astype(np.float64), self.key_centroids, self.sram.rows, flat, m.key_bits,
                                  self.sketch, c["input"], c["rotator"], c["fp16"], self.wide["fwht_first"],
                                  self.wide_qjl["squares"], self.wide_qjl["project"])
            counts[kind] += len(raw)
            counts[2] += int(np.count_nonzero(row >= self.amap.rows_per_bank))
            counts[3] += int(np.count_nonzero(sat))
        return tuple(counts)

    def _store_positions(self, slot, layer, first, last, k, v) -> None:
        self.count_qjl_write(layer, *self.store(slot, layer, first, last, k, v))

    def preload(self, slot, layer, k, v) -> None:
        """Every key and value of one layer stored before cycle 0, untimed and uncounted."""
        self.store(slot, layer, 0, k.shape[1] - 1, k, v)

    def count_qjl_write(self, layer: int, n_keys: int, n_values: int, spilled: int, saturated: int) -> None:
        """The write path's actions for n_keys QJL keys and n_values b-bit values."""
        m, rot = self.macro, self.fmt["rotator"].name
        d, mk, lk, lv = m.head_dim, m.sketch_bits, self.key_levels, m.levels
        n = n_keys + n_values
        thresholds = n_keys * (lk - 1) + n_values * (lv - 1)
        count = self.ledger.count
        count("norm_unit", f"mul.{rot}", n * d, layer, "write_path")
        count("norm_unit", f"add.{rot}", n * (d - 1), layer, "write_path")
        count("norm_unit", f"sqrt.{rot}", n, layer, "write_path")
        count("quantizer", f"mul.{rot}", thresholds, layer, "write_path")
        count("codebook_rom", "read", thresholds + n_keys * lk, layer, "write_path")  # + the residual's centroids
        self.count_fwht("rotator", rot, layer, "write_path", n)
        count("quantizer", f"cmp.{rot}", d * thresholds, layer, "write_path")
        # residual: centroid x norm and the square per coordinate; subtract, then the d-leaf tree
        count("qjl_residual", f"mul.{rot}", n_keys * 2 * d, layer, "write_path")
        count("qjl_residual", f"add.{rot}", n_keys * (2 * d - 1), layer, "write_path")
        count("qjl_residual", f"sqrt.{rot}", n_keys, layer, "write_path")
        count("qjl_projector", f"mul.{rot}", n_keys * mk * d, layer, "write_path")
        count("qjl_projector", f"add.{rot}", n_keys * mk * (d - 1), layer, "write_path")
        count("sketch_rom", "read", n_keys * mk * d, layer, "write_path")
        count("index_sram", "write", n - spilled, layer, "write_path")
        count("offchip", "write", spilled, layer, "write_path")
        self.ledger.event("sram_write_bits", n * m.row_bits, layer, "write_path")
        self.ledger.event("square_roots", n + n_keys, layer, "write_path")
        self.ledger.event("norm_saturations", saturated, layer, "write_path")

    # ---- read path ---------------------------------------------------------------------------
    def query_job(self, slot, layer, kv_head, heads, q, n_keys, ready, has_values):
        """Machine.query_job with the (b-1)-bit table and the query sketch on the shared
        projector (precompute), then the QJL score stream and AXELRAM's value stream."""
        m, f, c = self.macro, self.fmt, self.codes
        h, d, mk = len(heads), m.head_dim, m.sketch_bits
        pipe = self.pick_pipeline()
        label = f"L{layer} kv{kv_head} q{list(map(int, heads))}"
        r = rotator.rotate(f["rotator"], arith.rnd(f["input"], q), self.signs[layer])
        P = table.build_table(f["table"], f["rotator"], r, self.key_centroids)
        w = np.empty((h, mk))
        qk.query_sketch(np.ascontiguousarray(r), self.sketch, self.step, c["rotator"], c["table"],
                        self.wide_qjl["project"], self.wide_qjl["step"], w)
        tab, rot = f["table"].name, f["rotator"].name
        self.count_fwht("rotator", rot, layer, "read_path", h)
        self.ledger.count("table_generator", f"mul.{tab}", h * d * self.key_levels, layer, "read_path")
        self.ledger.count("table_sram", "write", h * d * self.key_levels, layer, "read_path")
        self.ledger.count("codebook_rom", "read", h * self.key_levels, layer, "read_path")
        self.ledger.count("qjl_projector", f"mul.{rot}", h * mk * d, layer, "read_path")
        self.ledger.count("qjl_projector", f"add.{rot}", h * mk * (d - 1), layer, "read_path")
        self.ledger.count("qjl_projector", f"mul.{tab}", h * mk, layer, "read_path")
        self.ledger.count("sketch_rom", "read", h * mk * d, layer, "read_path")
        rl, rii = rotator.rotator_timing(m)
        tii = -(-d * self.key_levels // m.read_path.table_multipliers)
        pl, pii = projector_timing(m, query=True)
        gen = ("table_generator", 0)
        self.free_at[gen] = max(self.free_at.get(gen, 0), self.free_at.get(("table_sram", pipe), 0))
        pre = self.run_stream("precompute", layer, np.full(h, ready, dtype=np.int64),
                              [StageSpec("rotator", ("rotator", 0), rl, rii),
                               StageSpec("table_generator", gen, tii, tii),
                               StageSpec("qjl_projector", ("qjl_projector", 0), pl, pii)], "precompute " + label)
        tokens = np.arange(n_keys)
        kbank, krow = self.amap.locate(slot, kv_head, tokens, 0)
        scores, z = self.qjl_score_stream(layer, pipe, h, kbank, krow, P, w, int(pre.done.max()), label, has_values)
        if not (has_values and m.value_path.enabled):
            return scores, None, self.last_done
        vbank, vrow = self.amap.locate(slot, kv_head, tokens, 1)
        outputs = self.value_stream(layer, pipe, h, vbank, vrow, z, self.value_signs[layer], label)
        return scores, outputs, self.last_done

    def key_rows(self, bank: np.ndarray, row: np.ndarray) -> dict:
        """The (b-1)-bit indices, norms, sign bits and residual norms of the key rows read."""
        m = self.macro
        n = bank.size
        flat = self.amap.flat(bank, row)
        out = {"idx": np.empty((n, m.head_dim), dtype=np.uint8), "norms": np.empty(n),
               "bits": np.empty((n, m.sketch_bits), dtype=np.uint8), "rnorms": np.empty(n)}
        kernels.PARALLEL.unpack_stage(self.sram.rows, flat, m.key_bits, out["idx"], out["norms"], 0, n)
        qk.unpack_sketch(self.sram.rows, flat, self.sketch_offset, out["bits"], out["rnorms"])
        return out

    def qjl_score_stream(self, layer, pipe, h, bank, row, P, w, ready, label, with_softmax):
        """Scores [h, n] (and z = scaled scores) of the keys at (bank, row): read, lookup, tree,
        norm multiply, QJL accumulator, softmax scale."""
        m, f, c = self.macro, self.fmt, self.codes
        n, d, mk = bank.size, m.head_dim, m.sketch_bits
        with_scale = bool(with_softmax and m.value_path.enabled)
        rows = self.key_rows(bank, row)
        leaf = kernels.leaf_table(P, c["accumulator"])
        scores, z = np.empty((h, n)), np.empty((h, n))
        kernels.score_burst(leaf, rows["idx"], rows["norms"], scores, z, c["accumulator"], c["score"],
                            self.softmax.sigma, c["softmax"], self.wide["scale"], False)
        qk.qjl_scores(w, rows["bits"], rows["rnorms"], scores, c["accumulator"], c["score"], self.wide_qjl["score"])
        acc, sc, soft = f["accumulator"].name, f["score"].name, f["softmax"].name
        spilled = int(np.count_nonzero(row >= self.amap.rows_per_bank))
        count = self.ledger.count
        count("index_sram", "read", n - spilled, layer, "read_path")
        count("offchip", "read", spilled, layer, "read_path")
        self.ledger.event("sram_read_bits", n * m.row_bits, layer, "read_path")
        count("table_sram", "read", h * d * n, layer, "read_path")
        count("lookup_pipeline", f"add.{acc}", h * (d - 1) * n, layer, "read_path")
        count("lookup_pipeline", f"mul.{sc}", h * n, layer, "read_path")
        count("qjl_accumulator", f"add.{acc}", h * (mk - 1) * n, layer, "read_path")
        count("qjl_accumulator", f"mul.{sc}", h * n, layer, "read_path")
        count("qjl_accumulator", f"add.{sc}", h * n, layer, "read_path")
        stages = [("table_sram" if name == "table_sram" else "lookup_pipeline", name, lat, ii)
                  for name, lat, ii in lookup.lookup_stage_timing(m, h)]
        al, aii = accumulator_timing(m, h)
        stages.append(("qjl_accumulator", "qjl_accumulator", al, aii))
        if with_scale:
            kernels.PARALLEL.scale_stage(scores, z, self.softmax.sigma, c["softmax"], self.wide["scale"], 0, n)
            count("value_unit", f"mul.{soft}", h * n, layer, "value_path")
            count("value_unit", f"cmp.{soft}", h * max(n - 1, 0), layer, "value_path")
            stages.append(("value_unit", "softmax_scale", 1, h))
        issue = max(1, *(ii for _, _, _, ii in stages))
        ids, lats = self.sram_access(bank, row, self.timing.read_latency_cycles)
        specs = [StageSpec("index_sram", ("index_sram_read", pipe), self.timing.read_latency_cycles, issue,
                           bank_ids=ids, calendar=self.read_cal, latencies=lats)]
        specs += [StageSpec(unit, (name, pipe), lat, ii) for unit, name, lat, ii in stages]
        timing = self.run_stream("read", layer, np.full(n, ready, dtype=np.int64), specs, "scores " + label)
        self.last_done = int(timing.done.max())
        return scores, z


def simulate_qjl(macro: MacroConfig, trace, sign_table: dict, value_table: Optional[dict],
                 timing: SramTiming, prefill: str, progress, ledger: Ledger, amap) -> tuple:
    """Replay `trace` through a QJL macro (hw.macro.simulate's dispatch): (machine, scores,
    outputs, key counts served)."""
    from axelsim.hw.macro import replay
    from axelsim.numerics.qjl import sketch_matrix

    if macro.residual != "qjl":
        raise ConfigError(macro.name, "residual", f"'qjl' for the QJL machine, got {macro.residual!r}")
    book = lloyd_max_codebook(macro.head_dim, macro.bits)
    machine = QjlMachine(macro, sign_table, np.asarray(book.rom_centroids, dtype=np.float64),
                         np.asarray(book.rom_boundaries, dtype=np.float64), "burst", ledger, amap, timing,
                         value_signs=value_table)
    machine.setup(sketch_matrix(macro.qjl.seed, macro.sketch_bits, macro.head_dim))
    scores, outputs, served = replay(machine, trace, list(trace.layer_indices), prefill, progress)
    return machine, scores, outputs, served
