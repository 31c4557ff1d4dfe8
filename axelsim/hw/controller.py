"""The controller: replays a trace in SPEC.md's order, issuing streams to the units.

Program order: positions ascending; at position p, for every layer, the write stream of the
key and value vectors of every KV head (K then V, head by head); then every query at p,
layer by layer, KV group by group: its precompute stream (query rotation on the shared
rotator, table generation), its score stream over keys 0..p on a lookup pipeline, its value
stream and its finalisation on that pipeline's value unit. Streams reserve units and SRAM
ports in program order (older first); see docs/cycle_model.md.
"""

from __future__ import annotations

from array import array
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np

from axelsim.config.formats import FP16
from axelsim.config.macro import MacroConfig
from axelsim.hw import arith, kernels, lookup, norm_unit, quantizer, rotator, table, value_unit
from axelsim.hw.pipeline import Stage, StreamTiming, run_burst, run_keys
from axelsim.cost.tiles import SramTiming
from axelsim.hw.sram import AddressMap, BankCalendar, IndexSram, unpack_index_rows
from axelsim.hw.units import Ledger
from axelsim.trace.widen import as_float32

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
    """The stage's datapath for a range of items (run as items pass, or for all at once)."""
    count: Optional[Callable[[slice], None]] = None
    """Adds the stage's counted actions for a range of processed items to the ledger."""
    item: Optional[Callable[[int, int], None]] = None
    """Key mode: the stage's datapath for items [lo, hi), usually a serial kernel with its arrays
    bound (kernels.bind: the compiled entry point, arrays pre-bound), cheaper per item than `work`;
    None: `work` is used."""
    latencies: Optional[np.ndarray] = None
    """Per-item latencies (spilled rows read off chip), else None."""
    wait_cause: str = "bank_conflict"
    """What items held back by the stage's `calendar` wait for (a bank port, or a bin hazard)."""
    iis: Optional[np.ndarray] = None
    """Per-item initiation intervals (pipeline.Stage.iis; burst timing only), else None: `ii`."""

    def item_ii(self) -> "int | np.ndarray":
        """The II of every item: `iis`, or the scalar `ii`."""
        return self.ii if self.iis is None else self.iis


@dataclass
class IntervalLog:
    """Each stream's cycle interval [start, end) by phase, with its layer: flat (layer, start,
    end) triples per phase in program order (as Ledger.spans keeps pairs), so a burst of many
    streams adds one block of rows instead of an object per stream."""

    rows: dict = field(default_factory=lambda: defaultdict(lambda: array("q")))

    def add(self, phase: str, layer: int, start: int, end: int) -> None:
        self.rows[phase].extend((int(layer), int(start), int(end)))

    def add_many(self, phase: str, layers: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> None:
        """`add` for many streams at once, in their order."""
        self.rows[phase].frombytes(np.stack([layers, starts, ends], axis=1).astype(np.int64).tobytes())

    def of_phase(self, phase: str, first: int = 0) -> np.ndarray:
        """int64 [n, 3] (layer, start, end) of `phase`'s intervals from its `first` on (a copy)."""
        flat = self.rows.get(phase, array("q"))
        return np.array(flat[3 * first:], dtype=np.int64).reshape(-1, 3)

    def mark(self) -> dict:
        """{phase: intervals so far}: where `span_since` starts."""
        return {phase: len(flat) // 3 for phase, flat in self.rows.items()}

    def span_since(self, mark: dict) -> Optional[tuple[int, int]]:
        """(earliest start, latest end) of the intervals added after `mark`, None if none were."""
        new = [self.of_phase(phase, mark.get(phase, 0)) for phase in self.rows]
        new = np.concatenate(new) if new else np.zeros((0, 3), dtype=np.int64)
        return (int(new[:, 1].min()), int(new[:, 2].max())) if new.size else None

    def end(self) -> int:
        """The latest end of any interval (0 with none): the simulation's last cycle."""
        return max((int(self.of_phase(phase)[:, 2].max(initial=0)) for phase in self.rows), default=0)


def raw_vectors(data: np.ndarray, d: int) -> np.ndarray:
    """Vectors [..., d] as the write kernel's [n, d] input: float32 for float16/float32 data
    (exact; no copy when already contiguous float32 and writeable: a read-only view of a mapped
    trace is copied, as the kernel is compiled for writeable arrays), else float64."""
    if data.dtype == np.float16:
        return as_float32(data).reshape(-1, d)
    dtype = np.float32 if data.dtype == np.float32 else np.float64
    out = np.ascontiguousarray(data, dtype=dtype)
    return (out if out.flags.writeable else out.copy()).reshape(-1, d)


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
    timing: SramTiming
    free_at: dict = field(default_factory=dict)
    intervals: IntervalLog = field(default_factory=IntervalLog)
    stall_total: int = 0
    preload_wall_s: float = 0.0
    decode_cycles: list = field(default_factory=list)
    """Per query position: cycles from the first stream of its step (its token's writes, then
    its queries over every layer and head) starting to the last one ending."""
    value_signs: Optional[dict] = None
    """{layer: int8 [d]} of the value sign ROM when values have their own (signs.rule: paper);
    None: `signs` rotates values too."""

    def __post_init__(self):
        m = self.macro
        if self.value_signs is None:
            self.value_signs = self.signs
        # x -> (s_k s_v) x (an exact sign flip, commuting with every rounding and the norm) makes
        # FWHT(s_k . flipped) = FWHT(s_v . x): values interleaved with keys in one write stream
        # ride the key-signed stage kernels
        self.value_flip = {L: (self.signs[L] * self.value_signs[L]).astype(np.float64) for L in self.signs}
        self.fmt = {k: m.formats.get(k) for k in ("input", "rotator", "table", "accumulator",
                                                  "score", "softmax", "value")}
        self.sram = IndexSram(self.amap, m.row_bits)
        # one calendar entry per bank plus the off-chip channel of spilled rows (index `banks`)
        busy = [self.timing.bank_ii_cycles] * m.sram.banks + [self.timing.offchip_ii_cycles]
        self.read_cal = BankCalendar(m.sram.banks + 1, m.sram.read_ports, busy=busy)
        # every index-SRAM write is issued by one unit in program order (write_floor)
        self.write_cal = BankCalendar(m.sram.banks + 1, m.sram.write_ports, busy=busy, in_order=True)
        self.softmax = value_unit.Softmax(self.fmt["softmax"], m.head_dim)
        self.kern = kernels.SERIAL if self.fidelity == "key" else kernels.PARALLEL
        self.codes = {k: kernels.fmt_code(v) for k, v in self.fmt.items()}
        self.codes["fp16"] = kernels.fmt_code(FP16)
        self.upper_ties = m.write_path.ties == "upper"
        f = self.fmt
        self.wide = {"squares": kernels.is_wide(f["input"], f["input"]),
                     "scale": kernels.is_wide(f["score"], f["softmax"]),
                     # the first FWHT stage adds input values, which may be finer than the rotator's
                     "fwht_first": f["input"] != f["rotator"] and (f["input"].kind, f["rotator"].kind) != ("fp16", "fp32")}

    def rom_row(self, layer: int, kind: int) -> np.ndarray:
        """The sign vector that rotates keys (kind 0) or values (kind 1) of `layer`."""
        return self.signs[layer] if kind == 0 else self.value_signs[layer]

    # ---- generic stream execution ---------------------------------------------------------
    def run_stream(self, phase: str, layer: int, ready: np.ndarray, specs: list[StageSpec],
                   label: str, burst_work: Optional[Callable[[], None]] = None) -> StreamTiming:
        """Time a stream through its stages (key or burst fidelity) and run its datapath.

        Key mode times every item as an event at every unit (pipeline.run_keys, one process
        per unit) and runs each stage's `item` kernel (else its `work`) over the items in item
        order; burst mode runs
        `burst_work` (the stream's fused datapath) if given, else every stage's work over all
        items. Either way a stage's `count` is called once with the items it processed.
        """
        n = ready.size
        key = self.fidelity == "key"
        stages = [Stage(s.unit, s.latency, s.ii, self.free_at.get(s.key, 0), s.key[-1],
                        s.bank_ids, s.calendar, s.work if key else None, s.item if key else None, s.latencies)
                  for s in specs]
        if self.fidelity == "key":
            timing = run_keys(ready, stages)
        else:
            timing = run_burst(ready, stages)
            if burst_work is not None:
                burst_work()
            else:
                for s in specs:
                    if s.work is not None:
                        s.work(slice(0, n))
        arrive = ready
        for s, (spec, stage) in enumerate(zip(specs, stages)):
            if spec.count is not None:
                spec.count(slice(0, n))
            self.free_at[spec.key] = int(timing.start[s, -1]) + spec.ii
            self.ledger.add_busy(spec.unit, n * spec.ii, spec.key)
            # waiting at stage 0 is queueing for issue; a started stream waiting is a stall
            contention = int(timing.stall_busy[s]) if s > 0 else 0
            self.ledger.add_stall(spec.unit, "contention", contention)
            self.ledger.add_stall(spec.unit, spec.wait_cause, int(timing.stall_bank[s]))
            self.stall_total += contention + int(timing.stall_bank[s])
            if n:
                self.record_waits(spec.unit, stage.free_at, spec.ii, arrive, timing.start[s], contention,
                                  int(timing.stall_bank[s]), spec.wait_cause)
            end = int(timing.start[s, -1]) + spec.latency
            self.ledger.add_span(spec.unit, int(timing.start[s, 0]), end)
            self.ledger.add_activity(spec.unit, stage.instance, int(timing.start[s, 0]), end, label)
            arrive = timing.start[s] + spec.latency
        self.intervals.add(phase, layer, int(timing.start[0, 0]), int(timing.done.max()))
        self.release_calendars()
        return timing

    def record_waits(self, unit: str, free_at: int, ii: int, arrive: np.ndarray, start: np.ndarray,
                     contention: int, bank_waited: int, cause: str = "bank_conflict") -> None:
        """The wait windows of one stage of a stream: the first item's wait for the unit
        (contention, [arrival, release)) and every item's wait for its calendar (`cause`: a bank
        port or a bin hazard; from the cycle it could have issued, were it free, to the cycle it did)."""
        first = int(arrive[0])
        if contention:
            self.ledger.add_waits(unit, "contention", np.array([first]), np.array([first + contention]))
        if bank_waited:
            previous = np.concatenate(([free_at], start[:-1] + ii))
            earliest = np.maximum(np.maximum(arrive, previous), free_at)
            held = start > earliest
            self.ledger.add_waits(unit, cause, earliest[held], start[held])

    def run_groups(self, phase: str, layers: np.ndarray, starts: np.ndarray, ready: np.ndarray,
                   specs: list[StageSpec], label: str, tokens: Optional[np.ndarray] = None) -> np.ndarray:
        """Consecutive streams of one stage chain (group g = items [starts[g], starts[g+1])) timed
        as one burst; returns each group's done cycle. The recurrence is the one of a stream
        per group (a group's first item waits for the previous group's last item + II, as it
        waits for the unit's release between streams); per group this records the interval
        and the contention stall of every stage after the first, as `run_stream` does. Activity
        labels are "LABEL L<layer>", or "LABEL L<layer> t<token>" with `tokens` (one per group),
        run_stream's label of a write stream."""
        n = ready.size
        stages = [Stage(s.unit, s.latency, s.ii, self.free_at.get(s.key, 0), s.key[-1], s.bank_ids, s.calendar,
                        latencies=s.latencies, iis=s.iis) for s in specs]
        timing = run_burst(ready, stages)
        ends = np.append(starts[1:], n) - 1
        arrive = ready
        for s, (spec, stage) in enumerate(zip(specs, stages)):
            iis = np.broadcast_to(np.asarray(spec.item_ii(), dtype=np.int64), (n,))
            self.free_at[spec.key] = int(timing.start[s, -1] + iis[-1]) if n else self.free_at.get(spec.key, 0)
            self.ledger.add_busy(spec.unit, int(iis.sum()), spec.key)
            contention = np.zeros(len(starts), dtype=np.int64)
            if s > 0:
                release = np.empty(len(starts), dtype=np.int64)
                release[0] = stage.free_at
                release[1:] = timing.start[s, starts[1:] - 1] + iis[starts[1:] - 1]
                contention = np.maximum(release - arrive[starts], 0)
            banked = int(timing.stall_bank[s])
            self.ledger.add_stall(spec.unit, "contention", int(contention.sum()))
            self.ledger.add_stall(spec.unit, "bank_conflict", banked)
            self.stall_total += int(contention.sum()) + banked
            self.record_group_waits(spec.unit, stage.free_at, iis, arrive, timing.start[s], starts, contention, banked)
            group_end = timing.start[s, ends] + spec.latency
            self.ledger.add_spans(spec.unit, timing.start[s, starts], group_end)
            if self.ledger.record:
                for g, (lo, end) in enumerate(zip(starts, group_end)):
                    name = f"{label} L{layers[g]}" if tokens is None else f"{label} L{layers[g]} t{tokens[g]}"
                    self.ledger.add_activity(spec.unit, stage.instance, int(timing.start[s, lo]), int(end), name)
            arrive = timing.start[s] + spec.latency
        done = np.maximum.reduceat(timing.done, starts)
        first = timing.start[0, starts]
        self.intervals.add_many(phase, layers, first, done)
        self.release_calendars()
        return done

    def record_group_waits(self, unit: str, free_at: int, ii: "int | np.ndarray", arrive: np.ndarray, start: np.ndarray,
                           starts: np.ndarray, contention: np.ndarray, bank_waited: int) -> None:
        """Machine.record_waits over the streams of one burst: each group's first item waits
        [arrival, arrival + contention) for the unit; every item held for a bank port waits from
        the cycle it could have issued to the cycle it did (the previous item of the burst is the
        previous stream's last, as between streams)."""
        held = contention > 0
        if held.any():
            first = arrive[starts[held]]
            self.ledger.add_waits(unit, "contention", first, first + contention[held])
        if bank_waited:
            previous = np.concatenate(([free_at], start[:-1] + np.broadcast_to(ii, start.shape)[:-1]))
            earliest = np.maximum(np.maximum(arrive, previous), free_at)
            late = start > earliest
            self.ledger.add_waits(unit, "bank_conflict", earliest[late], start[late])

    def release_calendars(self) -> None:
        """Forget port reservations that no future request can reach (calendars stay O(window))."""
        self.read_cal.release_before(self.read_floor())
        self.write_cal.release_before(self.write_floor())

    def read_floor(self) -> int:
        """A cycle no future index-SRAM read precedes: every read stream (scores, then values)
        starts after its job's table is built, and tables are built in program order."""
        return self.free_at.get(("table_generator", 0), 0)

    def write_floor(self) -> int:
        """A cycle no future index-SRAM write precedes (the single write port user's release)."""
        return self.free_at.get(("index_sram_write", 0), 0)

    def sram_access(self, bank: np.ndarray, row: np.ndarray, on_chip_latency: int) -> tuple[np.ndarray, Optional[np.ndarray]]:
        """Calendar ids (spilled rows use the off-chip channel, id `banks`) and per-item latencies
        (None when no row is spilled) of a stream of index-SRAM accesses."""
        spilled = row >= self.amap.rows_per_bank
        if not spilled.any():
            return bank, None
        ids = np.where(spilled, self.macro.sram.banks, bank)
        return ids, np.where(spilled, self.timing.offchip_latency_cycles, on_chip_latency).astype(np.int64)

    # ---- write path ------------------------------------------------------------------------
    def _write_arrays(self, n: int) -> dict:
        d, levels = self.macro.head_dim, self.macro.levels
        return {"x": np.empty((n, d)), "n": np.empty(n), "stored": np.empty(n), "sat": np.empty(n, dtype=np.bool_),
                "t": np.empty((n, levels - 1)), "y": np.empty((n, d)), "idx": np.empty((n, d), dtype=np.uint8),
                "rows": np.empty((n, self.sram.row_bytes), dtype=np.uint8)}

    def _write_kernels(self, layer: int, raw: np.ndarray, st: dict, kern: kernels.RangeKernels):
        """The write path's unit datapaths over vector ranges (norm, rotate, quantize, pack)."""
        m, c = self.macro, self.codes
        signs = self.signs[layer]

        def norms(sl):
            kern.norm_stage(raw, st["x"], st["n"], st["stored"], st["sat"], st["t"], self.boundaries,
                               c["input"], c["rotator"], c["fp16"], self.wide["squares"], sl.start, sl.stop)

        def rotate(sl):
            kern.rotate_stage(st["x"], signs, st["y"], c["rotator"], self.wide["fwht_first"], sl.start, sl.stop)

        def quantize(sl):
            kern.quantize_stage(st["y"], st["t"], st["idx"], self.upper_ties, sl.start, sl.stop)

        def pack(sl):
            kern.pack_stage(st["idx"], st["stored"], m.bits, st["rows"], sl.start, sl.stop)

        return norms, rotate, quantize, pack

    WRITE_BATCH_ITEMS = 1 << 18
    """Burst mode times at most about this many written vectors as one burst (bounds the
    per-item timing arrays and the write calendar's ring)."""

    def write_positions(self, layers: list[tuple[int, int]], first: int, last: int, ks: dict, vs: dict) -> int:
        """Write positions first..last of every (slot, layer) in program order (position, then
        layer, then head, K before V); ks/vs {layer: [kv_heads, T, d]} (vs empty without
        values). Returns the last done cycle (0 when nothing is written).

        Key mode runs one write stream per position and layer (`write_stream`, each vector an
        event at every unit). Burst mode times consecutive positions as one burst
        (`run_groups`: the same recurrence as a stream per position and layer, the same
        intervals, stalls, waits, spans and activity) and runs the write datapath once per
        layer over all of them (`kernels.write_burst`: bit-equal to the per-stage kernels)."""
        if last < first:
            return 0
        if self.fidelity == "key":
            ready = 0
            for p in range(first, last + 1):
                for slot, layer in layers:
                    v = vs[layer][:, p] if vs else None
                    ready = max(ready, self.write_stream(slot, layer, p, ks[layer][:, p], v, 0))
            return ready
        per_position = len(layers) * ks[layers[0][1]].shape[0] * (2 if vs else 1)
        step = max(1, self.WRITE_BATCH_ITEMS // per_position)
        done = 0
        for p0 in range(first, last + 1, step):
            done = max(done, self._write_batch(layers, p0, min(last, p0 + step - 1), ks, vs))
        return done

    def _write_batch(self, layers: list[tuple[int, int]], first: int, last: int, ks: dict, vs: dict) -> int:
        """Burst mode: positions first..last of every layer, datapath and counts per layer, then
        the timing of one write stream per (position, layer) as one burst."""
        for slot, layer in layers:
            self._store_positions(slot, layer, first, last, ks[layer], vs.get(layer))
        kinds = 2 if vs else 1
        bank, row, starts, group_layers, tokens = self.write_layout(layers, first, last, ks[layers[0][1]].shape[0], kinds)
        ids, lats = self.sram_access(bank, row, self.timing.write_latency_cycles)
        done = self.run_groups("write", group_layers, starts, np.zeros(bank.size, dtype=np.int64),
                               self.batch_chain(ids, lats, kinds), "write", tokens)
        return int(done.max())

    def batch_chain(self, bank_ids: np.ndarray, latencies: Optional[np.ndarray], kinds: int) -> list[StageSpec]:
        """The stages of a write burst whose items are in program order with `kinds` vectors
        (K, or K then V) per head: the write chain (hw.qjl tells keys and values apart)."""
        return self.write_chain(bank_ids, latencies)

    def write_layout(self, layers: list[tuple[int, int]], first: int, last: int, kv_heads: int,
                     kinds: int) -> tuple[np.ndarray, ...]:
        """The writes of positions first..last in program order (position, layer, head, K then
        V): bank and row per vector, the first vector of each (position, layer) stream, and each
        stream's layer and position."""
        positions = np.arange(first, last + 1)
        slots = np.array([s for s, _ in layers])
        P, S, H, K = np.meshgrid(positions, slots, np.arange(kv_heads), np.arange(kinds), indexing="ij")
        bank, row = self.amap.locate(S.reshape(-1), H.reshape(-1), P.reshape(-1), K.reshape(-1))
        starts = np.arange(positions.size * len(layers), dtype=np.int64) * (kv_heads * kinds)
        return bank, row, starts, np.tile([L for _, L in layers], positions.size), np.repeat(positions, len(layers))

    def write_chain(self, bank_ids: np.ndarray, latencies: Optional[np.ndarray] = None) -> list[StageSpec]:
        """The write path's stages (norm_unit, rotator, quantizer, index_sram write on `bank_ids`)
        with their timing, no datapath (burst writes run it per layer)."""
        m = self.macro
        nl, nii = norm_unit.norm_timing(m)
        rl, rii = rotator.rotator_timing(m)
        ql, qii = quantizer.quantizer_timing(m)
        return [StageSpec("norm_unit", ("norm_unit", 0), nl, nii), StageSpec("rotator", ("rotator", 0), rl, rii),
                StageSpec("quantizer", ("quantizer", 0), ql, qii),
                StageSpec("index_sram", ("index_sram_write", 0), self.timing.write_latency_cycles, 1,
                          bank_ids=bank_ids, calendar=self.write_cal, latencies=latencies)]

    def stored_vectors(self, slot: int, data: np.ndarray, first: int, last: int, kind: int,
                       native: bool = False) -> tuple[np.ndarray, ...]:
        """Vectors [n, d] of positions first..last of data [kv_heads, T, d] (head by head;
        float64, or with `native` as `raw_vectors` gives them) and the (bank, row) each is
        stored at (kind 0 keys, 1 values)."""
        d = self.macro.head_dim
        chosen = data[:, first:last + 1]
        raw = raw_vectors(chosen, d) if native else np.ascontiguousarray(chosen, dtype=np.float64).reshape(-1, d)
        heads, tokens = np.meshgrid(np.arange(data.shape[0]), np.arange(first, last + 1), indexing="ij")
        bank, row = self.amap.locate(slot, heads.reshape(-1), tokens.reshape(-1), kind)
        return raw, bank, row

    def _store_positions(self, slot: int, layer: int, first: int, last: int, k: np.ndarray, v: Optional[np.ndarray]) -> None:
        """The write datapath of positions first..last of one layer (norm, rotate, quantize,
        pack fused per vector, rows stored in place) and what the write streams count."""
        m, c = self.macro, self.codes
        n = sat = spilled = 0
        for kind, data in ((0, k), (1, v)):
            if data is None:
                continue
            raw, bank, row = self.stored_vectors(slot, data, first, last, kind, native=True)
            saturated = np.empty(len(raw), dtype=np.bool_)
            kernels.write_burst(raw, self.rom_row(layer, kind), self.boundaries, c["input"], c["rotator"], c["fp16"],
                                self.wide["squares"], self.wide["fwht_first"], self.upper_ties, m.bits, self.sram.rows,
                                self.amap.flat(bank, row), saturated)
            n += len(raw)
            sat += int(np.count_nonzero(saturated))
            spilled += int(np.count_nonzero(row >= self.amap.rows_per_bank))
        self.count_write(layer, n, spilled, sat)

    def count_write(self, layer: int, n: int, spilled: int, saturated: int) -> None:
        """The AXELRAM write path's actions for n vectors (what write_stream's stages count, in their order)."""
        m, rot = self.macro, self.fmt["rotator"].name
        self.count_write_norm(layer, n, saturated)
        self.count_fwht("rotator", rot, layer, "write_path", n)
        self.ledger.count("quantizer", f"cmp.{rot}", n * m.head_dim * (m.levels - 1), layer, "write_path")
        self.ledger.count("index_sram", "write", n - spilled, layer, "write_path")
        self.ledger.count("offchip", "write", spilled, layer, "write_path")
        self.ledger.event("sram_write_bits", n * m.row_bits, layer, "write_path")

    def write_stream(self, slot: int, layer: int, token: int, k: np.ndarray, v: Optional[np.ndarray],
                     ready: int) -> int:
        """Write key (and value) `token` of every KV head of one layer; returns the done cycle."""
        m, f = self.macro, self.fmt
        vectors = k if v is None else np.stack([k, v * self.value_flip[layer]], axis=1).reshape(-1, m.head_dim)
        vectors = np.ascontiguousarray(vectors, dtype=np.float64)
        kinds = 1 if v is None else 2
        heads = np.repeat(np.arange(k.shape[0]), kinds)
        kv = np.tile(np.arange(kinds), k.shape[0])
        bank, row = self.amap.locate(slot, heads, token, 0)
        if kinds == 2:
            bank2, row2 = self.amap.locate(slot, heads, token, 1)
            bank, row = np.where(kv == 1, bank2, bank), np.where(kv == 1, row2, row)
        n = len(vectors)
        st = self._write_arrays(n)
        norms, rotate, quantize, pack = self._write_kernels(layer, vectors, st, self.kern)
        rot = f["rotator"].name

        def store(sl):
            pack(sl)
            self.sram.write(bank[sl], row[sl], st["rows"][sl])

        def count_norms(sl):
            self.count_write_norm(layer, n, int(np.count_nonzero(st["sat"])))

        def count_store(sl):
            spilled = int(np.count_nonzero(row >= self.amap.rows_per_bank))
            self.ledger.count("index_sram", "write", n - spilled, layer, "write_path")
            self.ledger.count("offchip", "write", spilled, layer, "write_path")
            self.ledger.event("sram_write_bits", n * m.row_bits, layer, "write_path")

        ids, lats = self.sram_access(bank, row, self.timing.write_latency_cycles)
        nl, nii = norm_unit.norm_timing(m)
        rl, rii = rotator.rotator_timing(m)
        ql, qii = quantizer.quantizer_timing(m)
        specs = [StageSpec("norm_unit", ("norm_unit", 0), nl, nii, work=norms, count=count_norms),
                 StageSpec("rotator", ("rotator", 0), rl, rii, work=rotate,
                           count=lambda sl: self.count_fwht("rotator", rot, layer, "write_path", n)),
                 StageSpec("quantizer", ("quantizer", 0), ql, qii, work=quantize,
                           count=lambda sl: self.ledger.count("quantizer", f"cmp.{rot}",
                                                              n * m.head_dim * (m.levels - 1), layer, "write_path")),
                 StageSpec("index_sram", ("index_sram_write", 0), self.timing.write_latency_cycles, 1,
                           bank_ids=ids, calendar=self.write_cal, work=store, count=count_store, latencies=lats)]
        timing = self.run_stream("write", layer, np.full(n, ready, dtype=np.int64), specs,
                                 f"write L{layer} t{token}")
        return int(timing.done.max())

    def count_write_norm(self, layer: int, vectors: int, saturated: int) -> None:
        m, rot = self.macro, self.fmt["rotator"].name
        d, thr = m.head_dim, m.levels - 1
        self.ledger.count("norm_unit", f"mul.{rot}", vectors * d, layer, "write_path")
        # the 2^b - 1 scaled thresholds (boundary x norm) are formed by the quantizer's multipliers
        self.ledger.count("quantizer", f"mul.{rot}", vectors * thr, layer, "write_path")
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
        d = self.macro.head_dim
        for kind, data in ((0, k), (1, v)):
            if data is None:
                continue
            heads, tokens = np.meshgrid(np.arange(data.shape[0]), np.arange(data.shape[1]), indexing="ij")
            raw = raw_vectors(data, d)
            bank, row = self.amap.locate(slot, heads.reshape(-1), tokens.reshape(-1), kind)
            # norm, rotate, quantize and pack fused per vector, rows stored in place: the same
            # arithmetic as the per-stage kernels (tests/test_hw_kernels.py checks bit equality)
            c = self.codes
            kernels.write_burst(raw, self.rom_row(layer, kind), self.boundaries, c["input"], c["rotator"], c["fp16"],
                                self.wide["squares"], self.wide["fwht_first"], self.upper_ties, self.macro.bits, self.sram.rows,
                                self.amap.flat(bank, row), np.empty(len(raw), dtype=np.bool_))

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
        # write-after-read on the pipeline's table copy: the new table is written only once the
        # previous job's last key has been looked up (found by the RTL twin, docs/rtl_validation.md)
        gen = ("table_generator", 0)
        self.free_at[gen] = max(self.free_at.get(gen, 0), self.free_at.get(("table_sram", pipe), 0))
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
        outputs = self.value_stream(layer, pipe, h, vbank, vrow, z_all, self.value_signs[layer], label)
        return scores, outputs, self.last_done

    def read_rows(self, layer: int, path: str, bank, row, sl, heads: int):
        rows, spilled = self.sram.read(bank[sl], row[sl])
        c = rows.shape[0]
        self.ledger.count("index_sram", "read", c - spilled, layer, path)
        self.ledger.count("offchip", "read", spilled, layer, path)
        self.ledger.event("sram_read_bits", c * self.macro.row_bits, layer, path)
        return unpack_index_rows(rows, self.macro.head_dim, self.macro.bits)

    def read_stage(self, layer: int, path: str, bank: np.ndarray, row: np.ndarray, st: dict) -> tuple:
        """Work and count of an index-SRAM read stage: rows of the stream into st['idx'], st['norms']."""
        m = self.macro
        n = bank.size
        flat = self.amap.flat(bank, row)
        kern = self.kern
        st["idx"] = np.empty((n, m.head_dim), dtype=np.uint8)
        st["norms"] = np.empty(n)

        def read(sl):
            kern.unpack_stage(self.sram.rows, flat, m.bits, st["idx"], st["norms"], sl.start, sl.stop)

        # key mode: the SRAM image is not replaced during a read stream (writes go in place)
        if self.fidelity == "key":
            st["item"] = kernels.bind(kern.unpack_stage, self.sram.rows, flat, m.bits, st["idx"], st["norms"])

        def count(sl):
            spilled = int(np.count_nonzero(row[sl] >= self.amap.rows_per_bank))
            c = len(row[sl])
            self.ledger.count("index_sram", "read", c - spilled, layer, path)
            self.ledger.count("offchip", "read", spilled, layer, path)
            self.ledger.event("sram_read_bits", c * m.row_bits, layer, path)

        return read, count

    def value_indices(self, bank: np.ndarray, row: np.ndarray) -> np.ndarray:
        """The level indices [n, d] of the rows a value stream reads (the bin hazards depend on
        them before the stream's datapath runs)."""
        m = self.macro
        idx, norms = np.empty((bank.size, m.head_dim), dtype=np.uint8), np.empty(bank.size)
        kernels.PARALLEL.unpack_stage(self.sram.rows, self.amap.flat(bank, row), m.bits, idx, norms, 0, bank.size)
        return idx

    def score_stream(self, layer, pipe, h, bank, row, st, ready, label, with_softmax):
        m, f, c = self.macro, self.fmt, self.codes
        n = bank.size
        with_scale = bool(with_softmax and m.value_path.enabled)
        scores = np.empty((h, n))
        z = np.empty((h, n))
        leaf = kernels.leaf_table(st["P"], c["accumulator"])
        kern = self.kern
        rd: dict = {}
        read, count_read = self.read_stage(layer, "read_path", bank, row, rd)
        keyed: dict = {}
        if self.fidelity == "key":
            keyed = {"leaves": np.empty((h, n, m.head_dim)), "sums": np.empty((h, n))}
        acc, sc, s_name = f["accumulator"], f["score"], f["softmax"].name

        def look(sl):
            kern.lookup_stage(leaf, rd["idx"], keyed["leaves"], sl.start, sl.stop)

        def tree(sl):
            kern.tree_stage(keyed["leaves"], keyed["sums"], c["accumulator"], sl.start, sl.stop)

        def norm_mul(sl):
            kern.norm_mul_stage(keyed["sums"], rd["norms"], scores, c["score"], sl.start, sl.stop)

        def scale(sl):
            kern.scale_stage(scores, z, self.softmax.sigma, c["softmax"], self.wide["scale"], sl.start, sl.stop)

        items = {}
        if self.fidelity == "key":
            # one compiled call per unit and key: the lookup pipeline's adder tree and norm
            # multiplier (one unit, one resumption) run as one kernel on the tree stage
            items = {look: kernels.bind(kern.lookup_stage, leaf, rd["idx"], keyed["leaves"]),
                     tree: kernels.bind(kernels.pipe_stage, keyed["leaves"], keyed["sums"], rd["norms"], scores,
                                        c["accumulator"], c["score"]),
                     scale: kernels.bind(kern.scale_stage, scores, z, self.softmax.sigma, c["softmax"],
                                         self.wide["scale"]),
                     read: rd["item"]}

        def fused():
            read(slice(0, n))
            kernels.score_burst(leaf, rd["idx"], rd["norms"], scores, z, c["accumulator"], c["score"],
                                self.softmax.sigma, c["softmax"], self.wide["scale"], with_scale)

        def count_scale(sl):
            self.ledger.count("value_unit", f"mul.{s_name}", h * n, layer, "value_path")
            # the running max compares every z but the first against the max so far
            self.ledger.count("value_unit", f"cmp.{s_name}", h * max(n - 1, 0), layer, "value_path")

        counts = [lambda sl: self.ledger.count("table_sram", "read", h * m.head_dim * n, layer, "read_path"),
                  lambda sl: self.ledger.count("lookup_pipeline", f"add.{acc.name}", h * (m.head_dim - 1) * n,
                                               layer, "read_path"),
                  lambda sl: self.ledger.count("lookup_pipeline", f"mul.{sc.name}", h * n, layer, "read_path")]
        timing = lookup.lookup_stage_timing(m, h)
        stages = [("index_sram", ("index_sram_read", pipe), self.timing.read_latency_cycles, read, count_read)]
        stages += [("table_sram" if name == "table_sram" else "lookup_pipeline", (name, pipe), lat, w, cnt)
                   for (name, lat, _), w, cnt in zip(timing, (look, tree, norm_mul), counts)]
        iis = [1] + [ii for _, _, ii in timing]
        if with_scale:
            stages.append(("value_unit", ("softmax_scale", pipe), 1, scale, count_scale))
            iis.append(h)
        issue_ii = max(iis)
        iis[0] = issue_ii
        specs = [StageSpec(unit, key, lat, ii, work=None if (w is norm_mul and items) else w, count=cnt,
                           item=items.get(w))
                 for (unit, key, lat, w, cnt), ii in zip(stages, iis)]
        specs[0].bank_ids, specs[0].latencies = self.sram_access(bank, row, self.timing.read_latency_cycles)
        specs[0].calendar = self.read_cal
        result = self.run_stream("read", layer, np.full(n, ready, dtype=np.int64), specs, "scores " + label,
                                 burst_work=fused)
        self.last_done = int(result.done.max())
        return scores, z

    def value_stream(self, layer, pipe, h, bank, row, z, signs, label):
        m, f, c = self.macro, self.fmt, self.codes
        n = bank.size
        s_fmt, v_fmt = f["softmax"], f["value"]
        zmax = z.max(axis=1)
        e = np.empty((h, n))
        vp = m.value_path
        bins = np.zeros((h, vp.bin_partials(), m.head_dim, m.levels))
        totals = np.zeros((h, vp.sum_partials()))
        outputs = np.empty((h, m.head_dim))
        rd: dict = {}
        read, count_read = self.read_stage(layer, "value_path", bank, row, rd)
        ex = self.softmax.exp
        kern = self.kern

        def exps(sl):
            kern.exp_stage(z, zmax, e, c["softmax"], ex.log2e, ex.coeff_array, sl.start, sl.stop)

        def accumulate(sl):
            kern.bins_stage(e, rd["norms"], rd["idx"], bins, totals, c["softmax"], c["value"], sl.start, sl.stop)

        items = {}
        if self.fidelity == "key":
            # the value unit's exp and weights + bins (one unit, one resumption): one kernel per key
            items = {exps: kernels.bind(kernels.exp_bins_stage, z, zmax, e, rd["norms"], rd["idx"], bins, totals,
                                        c["softmax"], c["value"], ex.log2e, ex.coeff_array)}

        def fused():
            read(slice(0, n))
            exps(slice(0, n))
            kernels.bins_burst(e, rd["norms"], rd["idx"], bins, totals, c["softmax"], c["value"])

        def count_exps(sl):
            self.ledger.count("value_unit", f"add.{s_fmt.name}", 2 * h * n, layer, "value_path")
            self.ledger.count("value_unit", f"exp.{s_fmt.name}", h * n, layer, "value_path")
            self.ledger.event("exps", h * n, layer, "value_path")

        def count_bins(sl):
            self.ledger.count("value_unit", f"mul.{v_fmt.name}", h * n, layer, "value_path")
            self.ledger.count("value_unit", f"add.{v_fmt.name}", h * n * m.head_dim, layer, "value_path")

        def finish(sl):
            outputs[sl] = value_unit.finalize(v_fmt, s_fmt, bins[sl], totals[sl], self.centroids, signs)

        def count_finish(sl):
            c = h
            d, L = m.head_dim, m.levels
            # merging the partial accumulators, left to right: P - 1 adds per bin and for E
            self.ledger.count("value_unit", f"add.{v_fmt.name}", c * d * L * (vp.bin_partials() - 1), layer,
                              "value_path")
            self.ledger.count("value_unit", f"add.{s_fmt.name}", c * (vp.sum_partials() - 1), layer, "value_path")
            self.ledger.count("value_unit", f"mul.{v_fmt.name}", c * (d * L + 1 + d), layer, "value_path")
            self.ledger.count("value_unit", f"add.{v_fmt.name}", c * d * (L - 1), layer, "value_path")
            self.ledger.count("value_unit", f"div.{v_fmt.name}", c, layer, "value_path")
            self.ledger.count("codebook_rom", "read", c * L, layer, "value_path")
            self.count_fwht("value_unit", v_fmt.name, layer, "value_path", c)
            self.ledger.event("divisions", c, layer, "value_path")

        stream = value_unit.stream_timing(m, h, self.timing)
        issue_ii = max(1, *(ii for _, _, ii in stream))
        ids, lats = self.sram_access(bank, row, self.timing.read_latency_cycles)
        specs = [StageSpec("index_sram", ("index_sram_read_v", pipe), self.timing.read_latency_cycles, issue_ii,
                           bank_ids=ids, calendar=self.read_cal, work=read, count=count_read, item=rd.get("item"),
                           latencies=lats)]
        specs += [StageSpec("value_unit", (name, pipe), lat, ii, work=None if (w is accumulate and items) else w,
                            count=cnt, item=items.get(w))
                  for (name, lat, ii), w, cnt in zip(stream, (exps, accumulate), (count_exps, count_bins))]
        if n and value_unit.hazards_possible(m, h, self.timing):
            specs[-1].bank_ids, specs[-1].wait_cause = np.arange(n, dtype=np.int64), "bin_hazard"
            specs[-1].calendar = value_unit.BinHazard(self.value_indices(bank, row), m.levels,
                                                      self.timing.bin_adder_latency_cycles, vp.bin_partials(),
                                                      vp.sum_partials())
        vt = self.run_stream("value", layer, np.full(n, self.last_done, dtype=np.int64), specs, "values " + label,
                             burst_work=fused)
        fin = [StageSpec("value_unit", (name, pipe), lat, ii)
               for name, lat, ii in value_unit.finalize_timing(m, self.timing)]
        fin[-1].work, fin[-1].count = finish, count_finish
        ft = self.run_stream("value", layer, np.full(h, int(vt.done.max()), dtype=np.int64), fin, "output " + label)
        # write-after-read on the pipeline's one set of bins: the next job's first key clears
        # them, so it enters only once this job's centroid stage has taken them (found by the
        # RTL twin, docs/rtl_validation.md); its release holds that key in every engine
        bins = ("bins", pipe)
        taken = int(ft.start[[s.key[0] for s in fin].index("centroids"), -1])
        self.free_at[bins] = max(self.free_at[bins], value_unit.bins_released(taken))
        self.last_done = int(ft.done.max())
        return outputs
