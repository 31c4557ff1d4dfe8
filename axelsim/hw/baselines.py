"""The conventional macros the report compares AXELRAM against, on the same stream engine,
SRAM calendars, counters and cost model; their datapaths are compiled kernels
(axelsim.hw.baseline_kernels) and each has its own golden reference
(axelsim.numerics.baselines). docs/cycle_model.md ("Baselines") gives the arithmetic and the
timing of each:

- `fp16`: keys and values stored as FP16 rows; per key d products and the adder tree.
- `dequant_rotated`: AXELRAM's write path and index rows; the query is rotated once; per key
  the indices select FP16 centroids in the rotated domain, d multiply-accumulates with the
  rotated query and one norm multiply; values accumulate in the rotated domain (d
  multiply-accumulates per value), one inverse FWHT per query.
- `kivi`: KIVI-style asymmetric quantization (Liu et al., ICML 2024): keys per channel over
  groups of G tokens, values per token over groups of G channels, FP16 scale and zero per
  group, the most recent tokens in FP16; dequantized on read, then the FP16 datapath.
- `dequant_inverse_rotate` (named `dequant` in the first release): AXELRAM's rows, every key
  and value dequantized and inverse-rotated (one FWHT each) before an FP16-style datapath.

Writes between two query positions run as one burst (`write_positions`): the same closed-form
recurrence as one stream per position and layer, with each such stream's interval, contention
stall and activity recovered from it. Every stream is timed with the closed form (run_burst);
`fidelity` 'key' gives the same cycles for AXELRAM by construction (tests/test_hw_macro.py), so
the baselines use the closed form in both modes.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from axelsim.config.formats import FP16
from axelsim.config.macro import BASELINE_KINDS, MacroConfig, kivi_channel_group
from axelsim.cost.tiles import SramTiming
from axelsim.errors import ConfigError
from axelsim.hw import arith, kernels, rotator, value_unit
from axelsim.hw import baseline_kernels as bk
from axelsim.hw.controller import Machine, StageSpec
from axelsim.hw.datapath import fwht
from axelsim.hw.macro import SimResult, _sign_table, _value_sign_table, replay, summarize
from axelsim.hw.sram import AddressMap, BankCalendar
from axelsim.hw.units import Ledger
from axelsim.trace.widen import as_float32
from axelsim.numerics.codebook import lloyd_max_codebook

QUANTIZED = ("dequant_rotated", "dequant_inverse_rotate")
"""Kinds that store AXELRAM's index rows (its write path)."""
FP16_ROWS = ("fp16", "kivi")
"""Kinds that write FP16 rows."""
DEQUANT_LATENCY = 2
"""KIVI dequantizer: one multiply, one add (cycles)."""
KIVI_QUANT_LATENCY = 4
"""KIVI quantizer after its min/max tree: subtract, multiply, round, clamp (cycles)."""
FLOAT32_LANES = ("fp16", "fp32")
"""Formats whose values float32 holds exactly (the value accumulation's float32 lanes)."""


def kivi_quantized_keys(n_keys: int, window: int) -> int:
    """Keys of a query over n_keys that KIVI holds quantized: whole windows (a window of keys is
    quantized per channel once complete), the rest FP16."""
    return (n_keys // window) * window


def kivi_quantized_values(n_keys: int, window: int) -> int:
    """Values held quantized: all but the most recent `window` (one leaves the window per token)."""
    return max(0, n_keys - window)


class BaselineMachine(Machine):
    """A Machine whose writes, query jobs and value streams follow a baseline datapath."""

    kind: str = "fp16"

    def setup(self, kind: str, layers: list[int], kv_heads: int, tokens: int) -> None:
        """Storage of the kind for `layers` x kv_heads x tokens (FP16 rows and KIVI codes)."""
        self.kind = kind
        self.memo: dict = {}
        self.query_floor = 0
        self.quant_floor = 0
        d = self.macro.head_dim
        self.codes["fp16"] = kernels.fmt_code(FP16)
        self.cents = np.asarray(self.centroids, dtype=np.float64)
        self.cents_scaled = np.ldexp(self.cents, -self.macro.log2_dim)  # exact: FP16 x 2^-log2 d
        self.rows16: dict = {}
        if kind in FP16_ROWS:
            self.rows16 = {(L, kv): np.zeros((kv_heads, tokens, d), dtype=np.float32) for L in layers for kv in (0, 1)}
        if kind == "kivi":
            kc = self.macro.baselines.kivi
            g = kc.group_size
            self.kivi = kc
            self.gc = gc = kivi_channel_group(kc, d)
            self.k_codes = {L: np.zeros((kv_heads, tokens, d), dtype=np.uint8) for L in layers}
            self.v_codes = {L: np.zeros((kv_heads, tokens, d), dtype=np.uint8) for L in layers}
            self.k_scale = {L: np.zeros((kv_heads, -(-tokens // g), d)) for L in layers}
            self.k_zero = {L: np.zeros((kv_heads, -(-tokens // g), d)) for L in layers}
            self.v_scale = {L: np.zeros((kv_heads, tokens, d // gc)) for L in layers}
            self.v_zero = {L: np.zeros((kv_heads, tokens, d // gc)) for L in layers}
            self.quant_cal = BankCalendar(self.macro.sram.banks, self.macro.sram.write_ports,
                                         busy=[self.timing.bank_ii_cycles] * self.macro.sram.banks)

    def decoded(self, key: tuple, compute, form: str = "decoded") -> np.ndarray:
        """The vectors a dequantizer delivers for `key` = (layer, kv_head, kv, n): computed once and
        reused by the next jobs of the same KV head (the query heads of a group read the same rows;
        the hardware decodes them again, and the counters say so: only the host work is shared).
        One entry per kv (K, V) and form (the decoded vectors, and each lane type they are
        converted to: `as_lanes`); every write clears them."""
        slot = (key[2], form)
        hit = self.memo.get(slot)
        if hit is not None and hit[0] == key:
            return hit[1]
        out = compute()
        self.memo[slot] = (key, out)
        return out

    def as_lanes(self, layer: int, kv_head: int, kv: int, vectors: np.ndarray, dtype) -> Optional[np.ndarray]:
        """A KV head's vectors as the kernels' lane type `dtype` (float64 for every kind, float32
        for `accumulate`'s float32 lanes), converted once per write epoch and shared by the KV
        head's jobs (`decoded`); vectors of that type as they are; None when a vector element is
        not exactly a float32 (a rotator value scaled by 1/d below float32's range, or NaN)."""
        if vectors.dtype == dtype:
            return vectors

        def convert():
            out = vectors.astype(dtype)
            return out if np.dtype(dtype) == np.float64 or np.array_equal(out, vectors) else None

        return self.decoded((layer, kv_head, kv, vectors.shape[0]), convert, np.dtype(dtype).name)

    def read_floor(self) -> int:
        """A cycle no future read precedes. A query job's read streams arrive at or after its
        ready cycle, and replay hands jobs a ready cycle that never decreases and is at least the
        done cycle of every write so far (`query_floor`); KIVI's quantizer also reads, at the done
        cycle of a write, which is after the write port's free cycle when its write_positions
        began (`quant_floor`)."""
        return min(self.query_floor, self.quant_floor) if self.kind == "kivi" else self.query_floor

    def write_floor(self) -> int:
        if self.kind in FP16_ROWS:
            return self.free_at.get(("kv_sram_write", 0), 0)
        return super().write_floor()

    # ---- write path ------------------------------------------------------------------------
    def write_positions(self, layers: list[tuple[int, int]], first: int, last: int, ks: dict, vs: dict) -> int:
        """Write keys (and values) of positions first..last of every (slot, layer) in program
        order (position, then layer, then head, K before V); returns the last done cycle."""
        if last < first:
            return 0
        self.memo.clear()
        self.quant_floor = self.free_at.get(("kv_sram_write", 0), 0)
        positions = np.arange(first, last + 1)
        hkv = next(iter(ks.values())).shape[0]
        bank, row, starts, group_layers, tokens = self.write_layout(layers, first, last, hkv, 2 if vs else 1)
        for slot, L in layers:
            self.store_layer(slot, L, first, last, ks[L], vs.get(L))
        if self.kind in FP16_ROWS:
            specs = [StageSpec("kv_sram", ("kv_sram_write", 0), self.timing.write_latency_cycles, 1,
                               bank_ids=bank, calendar=self.write_cal)]
        else:
            specs = self.write_chain(bank)
        done = self.run_groups("write", group_layers, starts, np.zeros(bank.size, dtype=np.int64), specs, "write", tokens)
        last_done = int(done.max())
        if self.kind == "kivi":
            last_done = max(last_done, self.kivi_quantize_stream(layers, positions, done.reshape(positions.size, len(layers)),
                                                                 hkv, bool(vs)))
        self.query_floor = max(self.query_floor, last_done)
        return last_done

    def store_layer(self, slot: int, layer: int, first: int, last: int, k: np.ndarray, v: Optional[np.ndarray]) -> None:
        """The write datapath of one layer's positions first..last, and its counted actions."""
        m, c = self.macro, self.codes
        d = m.head_dim
        for kv, data in ((0, k), (1, v)):
            if data is None:
                continue
            n = data.shape[0] * (last + 1 - first)
            if self.kind in FP16_ROWS:
                # strided views of the layer's positions, written in place (no contiguous copies);
                # float32 for float16/float32 data, as the AXELRAM write path takes them (exact)
                chosen = data[:, first:last + 1]
                if chosen.dtype == np.float16 or not chosen.flags.writeable:
                    chosen = as_float32(chosen)  # a new float32 array: a mapped trace's own is read only
                bk.fp16_rows(chosen if chosen.dtype == np.float32 else chosen.astype(np.float64),
                             self.rows16[(layer, kv)][:, first:last + 1], c["input"], c["fp16"])
                self.ledger.count("kv_sram", "write", n, layer, "write_path")
                self.ledger.event("sram_write_bits", n * d * 16, layer, "write_path")
                continue
            # the AXELRAM write path's own input (float32 for float16/float32 data): one compiled
            # write kernel serves AXELRAM and the index-row baselines
            raw, bank, row = self.stored_vectors(slot, data, first, last, kv, native=True)
            sat = np.empty(n, dtype=np.bool_)
            kernels.write_burst(raw, self.rom_row(layer, kv), self.boundaries, c["input"], c["rotator"],
                                c["fp16"], self.wide["squares"], self.wide["fwht_first"], self.upper_ties, m.bits, self.sram.rows,
                                self.amap.flat(bank, row), sat)
            spilled = int(np.count_nonzero(row >= self.amap.rows_per_bank))
            self.count_write(layer, n, spilled, int(np.count_nonzero(sat)))

    def preload(self, slot, layer, k, v):
        """Every key and value of one layer stored before cycle 0, untimed and uncounted."""
        self.memo.clear()
        if self.kind not in FP16_ROWS:
            return super().preload(slot, layer, k, v)
        saved = self.ledger
        self.ledger = Ledger()
        try:
            self.store_layer(slot, layer, 0, k.shape[1] - 1, k, v)
            if self.kind == "kivi":
                self.kivi_quantize_layer(layer, 0, k.shape[1] - 1, v is not None)
        finally:
            self.ledger = saved

    # ---- KIVI write path: the quantizer ------------------------------------------------------
    def kivi_quantize_layer(self, layer: int, first: int, last: int, has_values: bool) -> tuple[np.ndarray, list]:
        """Quantize what leaves KIVI's FP16 window while positions first..last are written:
        values t - W for t in first..last, key windows completed at t ((t + 1) % W == 0).
        Returns (value tokens, key windows [(t0, t1)])."""
        kc, c = self.kivi, self.codes
        W, G, L = kc.window, kc.group_size, 1 << kc.bits
        rot = c["rotator"]
        v_tokens = np.arange(max(first - W, 0), max(last + 1 - W, 0))
        windows = [(t + 1 - W, t + 1) for t in range(first, last + 1) if (t + 1) % W == 0]
        hkv = self.k_codes[layer].shape[0]
        # one kernel call per kind for every head, reading the FP16 window rows (float32, exact) and
        # writing the codes, scales and zeros in place; the windows are adjacent and W is a
        # multiple of G, so their token groups are those of the one span they cover
        if has_values and v_tokens.size:
            t0, t1 = int(v_tokens[0]), int(v_tokens[-1]) + 1
            bk.kivi_quantize(self.rows16[(layer, 1)][:, t0:t1], 1, self.gc, L, rot, c["fp16"], self.v_codes[layer][:, t0:t1],
                             self.v_scale[layer][:, t0:t1], self.v_zero[layer][:, t0:t1])
        if windows:
            t0, t1 = windows[0][0], windows[-1][1]
            bk.kivi_quantize(self.rows16[(layer, 0)][:, t0:t1], 0, G, L, rot, c["fp16"], self.k_codes[layer][:, t0:t1],
                             self.k_scale[layer][:, t0 // G:t1 // G], self.k_zero[layer][:, t0 // G:t1 // G])
        self.count_kivi_quantizer(layer, hkv * W * len(windows), hkv * (v_tokens.size if has_values else 0))
        return v_tokens, windows

    def count_kivi_quantizer(self, layer: int, keys: int, values: int) -> None:
        """Actions of quantizing `keys` key rows (d / G groups per row: G tokens per channel) and
        `values` value rows (d / G_c groups per row, G_c = kivi_channel_group)."""
        m, kc = self.macro, self.kivi
        d, G = m.head_dim, kc.group_size
        rot = self.fmt["rotator"].name
        vectors = keys + values
        groups = keys * d // G + values * d // self.gc
        key_scale_rows, value_scale_rows = keys // G, values
        self.ledger.count("kv_sram", "read", vectors, layer, "write_path")
        self.ledger.event("sram_read_bits", vectors * d * 16, layer, "write_path")
        # per group: min and max over G (2 (G - 1) compares), max - min, x 1/(L - 1), 1/scale;
        # per element: x - zero, x inv, and the clamp to [0, L - 1] (two compares)
        self.ledger.count("kivi_quantizer", f"cmp.{rot}", 2 * groups * (G - 1) + 2 * vectors * d, layer, "write_path")
        self.ledger.count("kivi_quantizer", f"add.{rot}", groups + vectors * d, layer, "write_path")
        self.ledger.count("kivi_quantizer", f"mul.{rot}", groups + vectors * d, layer, "write_path")
        self.ledger.count("kivi_quantizer", f"div.{rot}", groups, layer, "write_path")
        self.ledger.event("divisions", groups, layer, "write_path")
        self.ledger.count("quant_sram", "write", vectors, layer, "write_path")
        self.ledger.count("scale_sram", "write", key_scale_rows + value_scale_rows, layer, "write_path")
        self.ledger.event("sram_write_bits", vectors * d * kc.bits + (key_scale_rows * d + value_scale_rows * (d // self.gc)) * 32,
                          layer, "write_path")

    def kivi_quantize_stream(self, layers, positions, write_done: np.ndarray, hkv: int, has_values: bool) -> int:
        """Datapath and timing of KIVI's quantizer for the positions just written: a value stream
        (one row per KV head and position past the window) and a key stream (a window of rows
        per KV head when one completes); each row is read from the FP16 window, quantized and
        written; an item is ready when the write that pushed it out of the window is done."""
        m, kc = self.macro, self.kivi
        W, G = kc.window, kc.group_size
        first, last = int(positions[0]), int(positions[-1])
        for slot, L in layers:
            self.kivi_quantize_layer(L, first, last, has_values)
        tree = max(1, (G - 1).bit_length())
        slots = np.array([slot for slot, _ in layers], dtype=np.int64)
        layer_ids = np.array([L for _, L in layers], dtype=np.int64)
        done = 0
        for kind, latency in (("value", KIVI_QUANT_LATENCY + tree), ("key", KIVI_QUANT_LATENCY + tree + G)):
            if kind == "value":
                pick = np.flatnonzero(positions >= W) if has_values else np.array([], dtype=np.int64)
                offsets = np.array([-W])
            else:
                pick = np.flatnonzero((positions + 1) % W == 0)
                offsets = np.arange(1 - W, 1)
            if pick.size == 0:
                continue
            # items in program order: position, layer, head, token
            PI, LI, H, O = np.meshgrid(pick, np.arange(len(layers)), np.arange(hkv), offsets, indexing="ij")
            PI, LI, H, O = (a.reshape(-1) for a in (PI, LI, H, O))
            ready = write_done[PI, LI].astype(np.int64)
            bank, row = self.amap.locate(slots[LI], H, positions[PI] + O, 1 if kind == "value" else 0)
            per = len(layers) * hkv * offsets.size  # items per position; a group per (position, layer)
            starts = np.arange(0, PI.size, per // len(layers), dtype=np.int64)
            specs = [StageSpec("kv_sram", ("kv_sram_read", 0), self.timing.read_latency_cycles, 1,
                               bank_ids=bank, calendar=self.read_cal),
                     StageSpec("kivi_quantizer", ("kivi_quantizer", 0), latency, 1),
                     StageSpec("quant_sram", ("quant_sram_write", 0), self.timing.write_latency_cycles, 1,
                               bank_ids=bank, calendar=self.quant_cal)]
            done = max(done, int(self.run_groups("write", layer_ids[LI[starts]], starts, ready, specs,
                                                 f"quantize {kind}").max()))
        return done

    # ---- read path ---------------------------------------------------------------------------
    def read_vectors(self, layer: int, path: str, slot: int, kv_head: int, kv: int, n: int) -> tuple:
        """What the datapath after the row read sees for tokens 0..n-1 of one KV head, and the
        read stage's counting; returns (data dict, stage unit name)."""
        m = self.macro
        d = m.head_dim
        bank, row = self.amap.locate(slot, kv_head, np.arange(n), kv)
        if self.kind == "fp16":
            self.ledger.count("kv_sram", "read", n, layer, path)
            self.ledger.event("sram_read_bits", n * d * 16, layer, path)
            return {"vectors": self.rows16[(layer, kv)][kv_head, :n]}, "kv_sram", bank
        if self.kind == "kivi":
            return self.kivi_read(layer, path, kv_head, kv, n), "kv_sram", bank
        rd: dict = {}
        read, count = self.read_stage(layer, path, bank, row, rd)
        read(slice(0, n))
        count(slice(0, n))
        return rd, "index_sram", bank

    def kivi_read(self, layer: int, path: str, kv_head: int, kv: int, n: int) -> dict:
        """KIVI rows of tokens 0..n-1, dequantized by the dequantizer (d multiplies and adds per
        quantized row, FP16), the recent window as stored; counts the reads and the dequantizer."""
        kc, d = self.kivi, self.macro.head_dim
        G = kc.group_size
        nq = kivi_quantized_keys(n, kc.window) if kv == 0 else kivi_quantized_values(n, kc.window)

        def compute():
            out = np.empty((n, d))
            if kv == 0:
                bk.kivi_dequantize(self.k_codes[layer][kv_head], self.k_scale[layer][kv_head], self.k_zero[layer][kv_head],
                                   self.rows16[(layer, 0)][kv_head], nq, G, 0, self.codes["fp16"], out)
            else:
                bk.kivi_dequantize(self.v_codes[layer][kv_head], self.v_scale[layer][kv_head], self.v_zero[layer][kv_head],
                                   self.rows16[(layer, 1)][kv_head], nq, self.gc, 1, self.codes["fp16"], out)
            return out

        out = self.decoded((layer, kv_head, kv, n), compute)
        scale_rows, scale_bits = (-(-nq // G), d * 32) if kv == 0 else (nq, (d // self.gc) * 32)
        self.ledger.count("kv_sram", "read", n - nq, layer, path)
        self.ledger.count("quant_sram", "read", nq, layer, path)
        self.ledger.count("scale_sram", "read", scale_rows, layer, path)
        self.ledger.event("sram_read_bits", (n - nq) * d * 16 + nq * d * kc.bits + scale_rows * scale_bits, layer, path)
        self.ledger.count("dequantizer", "mul.fp16", nq * d, layer, path)
        self.ledger.count("dequantizer", "add.fp16", nq * d, layer, path)
        return {"vectors": out, "quantized": nq}

    def query_job(self, slot, layer, kv_head, heads, q, n_keys, ready, has_values):
        m, f, c = self.macro, self.fmt, self.codes
        h, d = len(heads), m.head_dim
        pipe = self.pick_pipeline()
        signs = self.signs[layer]
        label = f"L{layer} kv{kv_head} q{list(map(int, heads))}"
        acc, sc = f["accumulator"], f["score"]
        qin = arith.rnd(f["input"], q)
        if ready < self.query_floor:
            raise RuntimeError(f"baseline query job ready at cycle {ready}, before the released read horizon {self.query_floor}")
        self.query_floor = ready
        if self.kind == "dequant_rotated":
            # the query is rotated once, on the shared rotator (AXELRAM's precompute minus the table)
            rl, rii = rotator.rotator_timing(m)
            r = rotator.rotate(f["rotator"], qin, signs)
            self.count_fwht("rotator", f["rotator"].name, layer, "read_path", h)
            pre = self.run_stream("precompute", layer, np.full(h, ready, dtype=np.int64),
                                  [StageSpec("rotator", ("rotator", 0), rl, rii)], "precompute " + label)
            ready = int(pre.done.max())
        data, read_unit, bank = self.read_vectors(layer, "read_path", slot, kv_head, 0, n_keys)
        scores = np.empty((h, n_keys))
        lanes = -(-h * d // m.read_path.lookups_per_cycle)
        tree = -(-m.log2_dim // m.read_path.adder_tree_stages_per_cycle)
        stages = []
        if self.kind == "dequant_rotated":
            bk.rotated_scores(r, data["idx"], data["norms"], self.cents_scaled, scores, c["accumulator"], c["score"],
                              kernels.is_wide(f["rotator"], FP16), kernels.is_wide(acc, FP16))
            self.ledger.count("codebook_rom", "read", n_keys * d, layer, "read_path")
            self.ledger.count("dot_product", f"mul.{acc.name}", h * n_keys * d, layer, "read_path")
            self.ledger.count("dot_product", f"mul.{sc.name}", h * n_keys, layer, "read_path")
            tree += 1  # the norm multiplier after the tree
        else:
            if self.kind == "dequant_inverse_rotate":
                keys = self.inverse_rotated(layer, "read_path", data, n_keys, kv_head, 0)
                rl, rii = rotator.rotator_timing(m)
                stages += [("dequantizer", lanes, lanes), ("inverse_rotator", rl, rii)]
                key_fmt = f["rotator"]
            else:
                keys = data["vectors"]
                key_fmt = FP16
                if self.kind == "kivi":
                    stages += [("dequantizer", DEQUANT_LATENCY, lanes)]
            bk.dot_scores(qin, self.as_lanes(layer, kv_head, 0, keys, np.float64), scores, c["accumulator"], c["score"],
                          kernels.is_wide(f["input"], key_fmt))
            self.ledger.count("dot_product", f"mul.{acc.name}", h * n_keys * d, layer, "read_path")
        self.ledger.count("dot_product", f"add.{acc.name}", h * n_keys * (d - 1), layer, "read_path")
        stages.append(("dot_product", lanes + tree, lanes))
        issue = max(1, *(ii for _, _, ii in stages))
        specs = [StageSpec(read_unit, ("sram_read", pipe), self.timing.read_latency_cycles, issue, bank_ids=bank,
                           calendar=self.read_cal)]
        specs += [StageSpec(u, (u, pipe), lat, ii) for u, lat, ii in stages]
        timing = self.run_stream("read", layer, np.full(n_keys, ready, dtype=np.int64), specs, "scores " + label)
        done = int(timing.done.max())
        self.last_done = done
        if not (has_values and m.value_path.enabled):
            return scores, None, done
        return scores, self.values(slot, layer, pipe, h, kv_head, scores, self.value_signs[layer], done, label), \
            self.last_done

    def inverse_rotated(self, layer: int, path: str, data: dict, n: int, kv_head: int, kv: int) -> np.ndarray:
        """dequant_inverse_rotate: rows -> centroids x norm -> inverse FWHT (counted)."""
        m, f = self.macro, self.fmt

        def compute():
            out = np.empty((n, m.head_dim))
            bk.inverse_rotate(data["idx"], data["norms"], self.cents, self.rom_row(layer, kv).astype(np.float64), out,
                              self.codes["rotator"], m.log2_dim)
            return out

        out = self.decoded((layer, kv_head, kv, n), compute)
        self.ledger.count("dequantizer", f"mul.{f['rotator'].name}", n * m.head_dim, layer, path)
        self.ledger.count("codebook_rom", "read", n * m.head_dim, layer, path)
        self.count_fwht("inverse_rotator", f["rotator"].name, layer, path, n)
        return out

    # ---- value path ---------------------------------------------------------------------------
    def values(self, slot, layer, pipe, h, kv_head, scores, signs, ready, label):
        m, f, c = self.macro, self.fmt, self.codes
        s_fmt, v_fmt, d = f["softmax"], f["value"], m.head_dim
        n = scores.shape[1]
        z = np.empty((h, n))
        kernels.PARALLEL.scale_stage(scores, z, self.softmax.sigma, c["softmax"], self.wide["scale"], 0, n)
        zmax = z.max(axis=1)
        e = np.empty((h, n))
        ex = self.softmax.exp
        kernels.PARALLEL.exp_stage(z, zmax, e, c["softmax"], ex.log2e, ex.coeff_array, 0, n)
        self.ledger.count("value_unit", f"mul.{s_fmt.name}", h * n, layer, "value_path")
        self.ledger.count("value_unit", f"cmp.{s_fmt.name}", h * max(n - 1, 0), layer, "value_path")
        self.ledger.count("value_unit", f"exp.{s_fmt.name}", h * n, layer, "value_path")
        self.ledger.count("value_unit", f"add.{s_fmt.name}", 2 * h * n, layer, "value_path")
        self.ledger.event("exps", h * n, layer, "value_path")
        data, read_unit, bank = self.read_vectors(layer, "value_path", slot, kv_head, 1, n)
        accs = np.zeros((h, d))
        totals = np.zeros(h)
        bk.sum_weights(e, totals, c["softmax"])
        lanes = -(-h * d // m.value_path.bin_lanes)
        stages = []
        if self.kind == "dequant_rotated":
            w = np.empty((h, n))
            bk.scale_weights(e, data["norms"], w, c["value"], kernels.is_wide(s_fmt, FP16))
            gamma = self.decoded((layer, kv_head, 1, n), lambda: self.cents[data["idx"]])  # host work, shared
            self.accumulate(layer, kv_head, w, v_fmt, gamma, FP16, accs)
            self.ledger.count("codebook_rom", "read", n * d, layer, "value_path")
            self.ledger.count("value_unit", f"mul.{v_fmt.name}", h * n * (d + 1), layer, "value_path")
        else:
            if self.kind == "dequant_inverse_rotate":
                vals = self.inverse_rotated(layer, "value_path", data, n, kv_head, 1)
                rl, rii = rotator.rotator_timing(m)
                stages += [("dequantizer", lanes, lanes), ("inverse_rotator", rl, rii)]
                v_in = f["rotator"]
            else:
                vals = data["vectors"]
                v_in = FP16
                if self.kind == "kivi":
                    stages += [("dequantizer", DEQUANT_LATENCY, lanes)]
            self.accumulate(layer, kv_head, e, s_fmt, vals, v_in, accs)
            self.ledger.count("value_unit", f"mul.{v_fmt.name}", h * n * d, layer, "value_path")
        self.ledger.count("value_unit", f"add.{v_fmt.name}", h * n * d, layer, "value_path")
        stages += [("exp", self.timing.exp_latency_cycles, -(-h // m.value_path.exp_units)), ("value_mac", 1 + lanes, lanes)]  # multiply, then the lane groups (AXELRAM bins at A = 1)
        issue = max(1, *(ii for _, _, ii in stages))
        specs = [StageSpec(read_unit, ("sram_read_v", pipe), self.timing.read_latency_cycles, issue, bank_ids=bank,
                           calendar=self.read_cal)]
        specs += [StageSpec("value_unit" if u in ("exp", "value_mac") else u, (u + "_v", pipe), lat, ii)
                  for u, lat, ii in stages]
        vt = self.run_stream("value", layer, np.full(n, ready, dtype=np.int64), specs, "values " + label)
        outputs, fin = self.finish(layer, h, accs, totals, signs)
        ft = self.run_stream("value", layer, np.full(h, int(vt.done.max()), dtype=np.int64),
                             [StageSpec("value_unit", (name, pipe), lat, ii) for name, lat, ii in fin], "output " + label)
        self.last_done = int(ft.done.max())
        return outputs

    def accumulate(self, layer: int, kv_head: int, w: np.ndarray, w_fmt, vals: np.ndarray, x_fmt,
                   accs: np.ndarray) -> None:
        """The value unit's multiply-accumulate in token order, accs [h, d] += w [h, n] (values of
        w_fmt) times vals [n, d] (values of x_fmt): bk.accumulate, or its float32-lane twin
        bk.accumulate_fp32 (the same results) when the value format is fp32, both operand
        formats are FP16 or FP32 (products of at most 48 bits, never wide) and every vector
        element is exactly a float32 (`as_lanes`)."""
        lanes32 = self.fmt["value"].kind == "fp32" and w_fmt.kind in FLOAT32_LANES and x_fmt.kind in FLOAT32_LANES
        vals32 = self.as_lanes(layer, kv_head, 1, vals, np.float32) if lanes32 else None
        if vals32 is not None:
            acc32 = accs.astype(np.float32)
            bk.accumulate_fp32(w.astype(np.float32), vals32, acc32)
            accs[:] = acc32
            return
        bk.accumulate(w, self.as_lanes(layer, kv_head, 1, vals, np.float64), accs, self.codes["value"],
                      kernels.is_wide(w_fmt, x_fmt))

    def finish(self, layer: int, h: int, accs: np.ndarray, totals: np.ndarray, signs: np.ndarray) -> tuple:
        """Outputs [h, d] from the accumulators and running sums, and the finalisation's timing
        stages: out = acc / E (one division per head, d multiplies), or for dequant_rotated
        out = s * FWHT(acc) / (E d) (AXELRAM's finalisation without the centroid multiplies)."""
        m, v = self.macro, self.fmt["value"]
        d, vp = m.head_dim, m.value_path
        scale = -(-d // vp.centroid_multipliers)
        stages = [("output_scale", value_unit.DIV_LATENCY + scale, scale)]
        self.ledger.count("value_unit", f"div.{v.name}", h, layer, "value_path")
        self.ledger.event("divisions", h, layer, "value_path")
        if self.kind != "dequant_rotated":
            g = arith.div_one_by(v, totals)
            self.ledger.count("value_unit", f"mul.{v.name}", h * d, layer, "value_path")
            return arith.mul(v, accs, v, g[:, None], v), stages
        u = fwht(v, accs)
        self.count_fwht("value_unit", v.name, layer, "value_path", h)
        g = arith.div_one_by(v, arith.rnd(v, totals * d))  # E * d, d a power of two: one rounding
        self.ledger.count("value_unit", f"mul.{v.name}", h * (d + 1), layer, "value_path")
        inv_lat, inv_ii = rotator.fwht_timing(d, vp.inverse_fwht_butterflies)
        return arith.mul(v, u * signs[None, :], v, g[:, None], v), [("inverse_fwht", inv_lat, inv_ii)] + stages


def baseline_instances(kind: str, macro: MacroConfig) -> dict:
    """Instances of each unit of a baseline (per pipeline, per bank)."""
    pipes, banks = macro.read_path.pipelines, macro.sram.banks
    out = {"value_unit": pipes, "dot_product": pipes}
    if kind in FP16_ROWS:
        out["kv_sram"] = banks
    if kind == "kivi":
        out.update(quant_sram=banks, scale_sram=banks, dequantizer=pipes, kivi_quantizer=1)
    if kind in QUANTIZED:
        out["index_sram"] = banks
    if kind == "dequant_inverse_rotate":
        out.update(dequantizer=pipes, inverse_rotator=pipes)
    return out


def simulate_baseline(kind: str, macro: MacroConfig, trace, signs=None, *, layers=None, kv_heads=None,
                      queries=None, fidelity: str = "burst", prefill: str = "simulate",
                      record_waveform: bool = False, progress=None, source: Optional[str] = None,
                      timing: Optional[SramTiming] = None) -> SimResult:
    """Replay the trace through baseline `kind` (one of BASELINE_KINDS); same fields as simulate().

    signs (SignRom or [n_layers, d] int8) is used by the kinds that rotate; the others ignore it.
    source: the macro file, named by configuration errors (default: the macro's name).
    timing: the row store's timing (CostModel.for_baseline(...).timing()); None: SramTiming.ideal.
    """
    source = source or macro.name
    macro = macro.without_residual()  # the plain b-bit designs, whatever the macro's residual
    if kind not in BASELINE_KINDS:
        raise ConfigError("baselines", "kind", f"one of {', '.join(BASELINE_KINDS)}, got {kind!r}")
    if fidelity not in ("key", "burst"):
        raise ConfigError("simulate", "fidelity", f"'key' or 'burst', got {fidelity!r}")
    if layers is not None or kv_heads is not None or queries is not None:
        trace = trace.with_selection(layers=layers, kv_heads=kv_heads, queries=queries)
    layer_ids = list(trace.layer_indices)
    d = macro.head_dim
    sign_table = _sign_table(signs, layer_ids, d) if signs is not None else {L: np.ones(d, np.int8) for L in layer_ids}
    value_table = _value_sign_table(signs, layer_ids, d) if signs is not None else None
    codebook = lloyd_max_codebook(d, macro.bits)
    ledger = Ledger(record=record_waveform)
    amap = AddressMap(macro, len(layer_ids), trace.kv_heads, trace.tokens, source)
    machine = BaselineMachine(macro, sign_table, np.asarray(codebook.rom_centroids, dtype=np.float64),
                              np.asarray(codebook.rom_boundaries, dtype=np.float64), "burst", ledger, amap,
                              timing or SramTiming.ideal(macro), value_signs=value_table)
    machine.setup(kind, layer_ids, trace.kv_heads, trace.tokens)
    scores, outputs, served = replay(machine, trace, layer_ids, prefill, progress)
    instances = baseline_instances(kind, macro)
    summary = summarize(ledger, machine.intervals, machine.stall_total, layer_ids, macro.clock_hz,
                        instances, served, d)
    return SimResult(scores=scores, outputs=outputs, waveform=ledger.activity, instances=instances,
                     fidelity=fidelity, prefill=prefill, clock_hz=macro.clock_hz, timing=machine.timing,
                     rows_used=amap.rows_needed, decode_cycles=list(machine.decode_cycles),
                     preload_wall_s=machine.preload_wall_s, **summary)
