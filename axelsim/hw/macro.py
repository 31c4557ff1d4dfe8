"""simulate(): wire the units, replay a trace, and collect cycles, statistics, ops and results."""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np

from axelsim.config.macro import MacroConfig
from axelsim.cost.tiles import SramTiming
from axelsim.errors import ConfigError
from axelsim.hw.controller import PHASES, IntervalLog, Machine
from axelsim.hw.sram import AddressMap
from axelsim.hw.units import PATHS, Ledger, covered_before, merged_spans, union_cycles
from axelsim.numerics.codebook import lloyd_max_codebook

OPS_KINDS = ("multiplications", "additions", "comparisons", "table_lookups", "sram_read_bits",
             "sram_write_bits", "butterflies", "divisions", "square_roots", "exps", "norm_saturations")
_ACTION_KIND = {"mul": "multiplications", "add": "additions", "cmp": "comparisons"}


@dataclass
class SimResult:
    """Everything one simulation measured (cycles in clock cycles, time in seconds)."""

    cycles: dict
    time_s: float
    unit_stats: dict
    actions: dict
    ops: dict
    per_layer: dict
    multiplications_per_query: dict
    scores: dict
    outputs: dict
    waveform: list = field(default_factory=list)
    phase_active: dict = field(default_factory=dict)
    """Cycles with at least one stream of each phase in flight (overlapping)."""
    timeline: dict = field(default_factory=dict)
    """Per unit, the busy fraction of each time bin (see `timeline`)."""
    decode_cycles: list = field(default_factory=list)
    """Per query position, the cycles of its decode step (Machine.decode_cycles)."""
    instances: dict = field(default_factory=dict)
    fidelity: str = "burst"
    prefill: str = "simulate"
    clock_hz: float = 1.0e9
    preload_wall_s: float = 0.0
    """Host wall time spent storing the preloaded KV cache (seconds; not simulated time)."""
    timing: Optional[SramTiming] = None
    """The index SRAM timing the run used (latencies, bank II, and where each came from)."""
    rows_used: int = 0
    """Rows each bank holds for this trace (on-macro and spilled): the SRAM's occupancy."""


def _sign_table(signs, layers: list[int], dim: int) -> dict:
    """{layer: int8 [d]} from a SignRom (has .vector) or an array [n_layers, d]."""
    table = {}
    for layer in layers:
        vec = signs.vector(layer) if hasattr(signs, "vector") else np.asarray(signs)[layer]
        vec = np.asarray(vec, dtype=np.int8)
        if vec.shape != (dim,):
            raise ConfigError("signs", f"layers.{layer}", f"a sign vector of length {dim}, got shape {vec.shape}")
        table[layer] = vec
    return table


def _value_sign_table(signs, layers: list[int], dim: int) -> Optional[dict]:
    """The value ROM's rows when the SignRom has one (`SignRom.values`), else None."""
    values = getattr(signs, "values", None)
    return None if values is None else _sign_table(values, layers, dim)


def _phase_table(intervals: IntervalLog) -> dict:
    """{phase: (layers, starts, ends)} int64 arrays of the intervals of each phase, in their
    order."""
    return {phase: tuple(intervals.of_phase(phase).T) for phase in PHASES}


def _of_layer(table: dict, layer: Optional[int]) -> dict:
    """{phase: (starts, ends)} of the table's intervals of `layer` (of every layer for None)."""
    if layer is None:
        return {phase: (starts, ends) for phase, (_, starts, ends) in table.items()}
    return {phase: (starts[layers == layer], ends[layers == layer]) for phase, (layers, starts, ends) in table.items()}


def attribute_phases(spans: dict) -> dict:
    """Cycles per phase of {phase: (starts, ends)}: each covered cycle goes to its highest phase
    value > read > precompute > write. A phase's share is how much it adds to the union of
    the phases above it."""
    out, starts, ends, above = {}, np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), 0
    for phase in reversed(PHASES):
        starts, ends = np.concatenate((starts, spans[phase][0])), np.concatenate((ends, spans[phase][1]))
        union = union_cycles(starts, ends)
        out[phase] = union - above
        above = union
    return out


def phase_active(spans: dict) -> dict:
    """Cycles of {phase: (starts, ends)} in which at least one stream of each phase was in
    flight (phases overlap)."""
    return {phase: union_cycles(*spans[phase]) for phase in PHASES}


def _ops(counts: dict, events: dict, layer: Optional[int]) -> dict:
    ops = {kind: {p: 0 for p in PATHS} for kind in OPS_KINDS}
    for (lay, path, unit, action), n in counts.items():
        if layer is not None and lay != layer:
            continue
        kind = _ACTION_KIND.get(action.split(".")[0])
        if kind is None and unit == "table_sram" and action == "read":
            kind = "table_lookups"
        if kind is not None:
            ops[kind][path] += n
    for (lay, path, kind), n in events.items():
        if layer is None or lay == layer:
            ops[kind][path] += n
    for kind in ops:
        ops[kind]["total"] = sum(ops[kind][p] for p in PATHS)
    return ops


def _actions(counts: dict, layer: Optional[int]) -> dict:
    out: dict = defaultdict(lambda: defaultdict(int))
    for (lay, _path, unit, action), n in counts.items():
        if layer is None or lay == layer:
            out[unit][action] += n
    return {u: dict(a) for u, a in out.items()}


POOLED_UNITS = ("index_sram", "kv_sram")
"""Banked memories: every access from any stream takes one port of one bank for one cycle, so
their utilisation is accesses / (total cycles x bank ports)."""
TIMELINE_BINS = 200


def unit_utilisation(ledger: Ledger, unit: str, total: int, instances: int) -> float:
    """Fraction 0..1 of the unit's issue capacity used: for a pipelined unit, the mean over its
    instances of its busiest stage's occupancy (cycles the stage accepted items, n x II per
    stream) over the total cycles; for a banked memory, accesses over bank-port cycles."""
    stages = {key: busy for (name, key), busy in ledger.stage_busy.items() if name == unit}
    if not total or not stages:
        return 0.0
    if unit in POOLED_UNITS:
        return sum(stages.values()) / (total * instances)
    per_instance: dict = defaultdict(int)
    for key, busy in stages.items():
        instance = key[-1] if key else 0
        per_instance[instance] = max(per_instance[instance], busy)
    return sum(per_instance.values()) / (total * max(instances, len(per_instance)))


def _waits(ledger: Ledger, match) -> int:
    """Cycles in which at least one item waited, over the (unit, cause) windows `match` accepts."""
    windows = [w for key, lists in ledger.waits.items() if match(*key) for w in lists]
    if not windows:
        return 0
    return union_cycles(np.concatenate([w[0] for w in windows]), np.concatenate([w[1] for w in windows]))


def timeline(ledger: Ledger, total: int, bins: int = TIMELINE_BINS) -> dict:
    """Per unit, the fraction of each of `bins` equal slices of [0, total) during which a stream
    was inside the unit (union of its streams' stays): the data of the timeline plot."""
    width = max(1, -(-total // bins)) if total else 1
    count = -(-total // width) if total else 0
    edges = np.arange(count + 1, dtype=np.int64) * width
    out = {}
    for unit, flat in sorted(ledger.spans.items()):
        pairs = np.frombuffer(flat, dtype=np.int64).reshape(-1, 2)
        a, b = merged_spans(pairs[:, 0], pairs[:, 1])
        covered = np.diff(covered_before(a, b, edges)) if count else np.zeros(0)
        out[unit] = [round(float(c) / width, 4) for c in covered]
    return {"bin_cycles": int(width), "bins": int(count), "units": out}


def summarize(ledger: Ledger, intervals: IntervalLog, stall: int, layers: list[int], clock_hz: float,
              instances: dict, served: list[int], head_dim: int) -> dict:
    """The shared sections of SimResult (cycles, unit_stats, actions, ops, per_layer, mults/query).

    cycles: total; write/precompute/read/value attribute every covered cycle to one phase
    (priority value > read > precompute > write) and `idle` holds the rest, so the five add up
    to total; `stall` counts the cycles in which at least one item waited at some unit (the
    waits summed over streams are `stall_summed`, which can exceed total).
    """
    total = intervals.end()
    table = _phase_table(intervals)
    phases = attribute_phases(_of_layer(table, None))
    cycles = {"total": int(total), **phases, "idle": int(total - sum(phases.values())),
              "stall": _waits(ledger, lambda unit, cause: True), "stall_summed": int(stall)}
    actions = _actions(ledger.counts, None)
    unit_stats = {}
    for unit in sorted(set(actions) | set(ledger.busy)):
        busy = ledger.busy.get(unit, 0)
        causes = sorted({cause for (name, cause) in ledger.waits if name == unit})
        unit_stats[unit] = {"busy_cycles": int(busy),
                            "utilisation": unit_utilisation(ledger, unit, total, instances.get(unit, 1)),
                            "stall_cycles": _waits(ledger, lambda name, cause, unit=unit: name == unit),
                            "stall_causes": {cause: _waits(ledger, lambda name, c, unit=unit, cause=cause:
                                                           (name, c) == (unit, cause)) for cause in causes},
                            "stall_summed": dict(ledger.stalls[unit]), "actions": actions.get(unit, {}),
                            "instances": instances.get(unit, 1)}
    ops = _ops(ledger.counts, ledger.events, None)
    layer_spans = {layer: _of_layer(table, layer) for layer in layers}
    per_layer = {layer: {"cycles": attribute_phases(layer_spans[layer]),
                         "active": phase_active(layer_spans[layer]),
                         "actions": _actions(ledger.counts, layer),
                         "ops": _ops(ledger.counts, ledger.events, layer)} for layer in layers}
    n_served = len(served)
    mean_t = float(np.mean(served)) if served else 0.0
    axel = ops["multiplications"]["read_path"] / n_served if n_served else 0.0
    conventional = mean_t * head_dim
    mpq = {"axelram": axel, "conventional": conventional,
           "reduction": conventional / axel if axel else 0.0,
           "keys_per_query_mean": mean_t, "query_heads_served": n_served}
    return {"cycles": cycles, "time_s": total / clock_hz, "unit_stats": unit_stats, "actions": actions,
            "ops": ops, "per_layer": per_layer, "multiplications_per_query": mpq,
            "phase_active": phase_active(_of_layer(table, None)), "timeline": timeline(ledger, total)}


def _instances(macro: MacroConfig) -> dict:
    per_pipe = macro.read_path.pipelines
    return {"index_sram": macro.sram.banks * (macro.sram.read_ports + macro.sram.write_ports), "table_sram": per_pipe, "lookup_pipeline": per_pipe,
            "value_unit": per_pipe}


def derived_timing(macro: MacroConfig, source: Optional[str] = None) -> SramTiming:
    """The timing `axelsim run` uses: derived from the macro's technology table (its
    technology.file relative to the current folder, else the package's built-in table) unless
    the macro's keys override it; spilling macros also get the off-chip channel's timing."""
    from axelsim.config.load import from_config
    from axelsim.cost import CostModel

    loaded = from_config(macro, source=source or macro.name)
    return CostModel.from_macro(loaded).timing(spills=macro.sram.overflow == "spill", source=source or macro.name)


def simulate(macro: MacroConfig, signs, trace, *, layers=None, kv_heads=None, queries=None,
             fidelity: str = "burst", prefill: str = "simulate", record_waveform: bool = False,
             progress: Optional[Callable[[int, int], None]] = None, source: Optional[str] = None,
             timing: Optional[SramTiming] = None) -> SimResult:
    """Replay `trace` through the macro; see docs/cycle_model.md for the schedule.

    signs: a SignRom or an int8 array [n_layers, d]; fidelity 'key' | 'burst' (identical
    results); prefill 'simulate' (time every write) | 'preloaded' (all keys stored before cycle 0).
    source: the macro file, named by configuration errors (default: the macro's name).
    timing: the macro's SRAM latencies, bank II and value-path FP latencies; None derives them
    from the macro's technology table (`derived_timing`, as `axelsim run` does); pass
    `SramTiming.ideal(macro)` for the bare one-cycle model (explicit keys, else one cycle).
    """
    source = source or macro.name
    if fidelity not in ("key", "burst"):
        raise ConfigError("simulate", "fidelity", f"'key' or 'burst', got {fidelity!r}")
    if fidelity == "key" and macro.residual == "qjl":
        # Key mode's event loop takes one interval per unit; the QJL projector has one per item.
        raise ConfigError(source, "residual", "qjl is timed by the closed form only: --fidelity key is not "
                          "available for it (use burst)")
    if prefill not in ("simulate", "preloaded"):
        raise ConfigError("simulate", "prefill", f"'simulate' or 'preloaded', got {prefill!r}")
    if layers is not None or kv_heads is not None or queries is not None:
        trace = trace.with_selection(layers=layers, kv_heads=kv_heads, queries=queries)
    if trace.head_dim != macro.head_dim:
        raise ConfigError(source, "head_dim", f"the trace's head_dim {trace.head_dim}, got {macro.head_dim}")
    layer_ids = list(trace.layer_indices)
    codebook = lloyd_max_codebook(macro.head_dim, macro.bits)
    ledger = Ledger(record=record_waveform)
    amap = AddressMap(macro, len(layer_ids), trace.kv_heads, trace.tokens, source)
    timing = timing or derived_timing(macro, source)
    sign_table = _sign_table(signs, layer_ids, macro.head_dim)
    value_table = _value_sign_table(signs, layer_ids, macro.head_dim)
    instances = _instances(macro)
    if macro.residual == "qjl":
        from axelsim.hw.qjl import qjl_instances, simulate_qjl

        machine, scores, outputs, served_t = simulate_qjl(macro, trace, sign_table, value_table, timing,
                                                          prefill, progress, ledger, amap)
        instances.update(qjl_instances(macro))
    else:
        machine = Machine(macro, sign_table, np.asarray(codebook.rom_centroids, dtype=np.float64),
                          np.asarray(codebook.rom_boundaries, dtype=np.float64), fidelity, ledger, amap, timing,
                          value_signs=value_table)
        scores, outputs, served_t = replay(machine, trace, layer_ids, prefill, progress)
    summary = summarize(ledger, machine.intervals, machine.stall_total, layer_ids, macro.clock_hz,
                        instances, served_t, macro.head_dim)
    return SimResult(scores=scores, outputs=outputs, waveform=ledger.activity, decode_cycles=list(machine.decode_cycles),
                     instances=instances, fidelity=fidelity, prefill=prefill,
                     clock_hz=macro.clock_hz, preload_wall_s=machine.preload_wall_s, timing=timing,
                     rows_used=amap.rows_needed, **summary)


def replay(machine: Machine, trace, layer_ids: list[int], prefill: str, progress) -> tuple:
    """SPEC.md replay order; returns scores, outputs and the key count of every query head served."""
    macro = machine.macro
    T, Hq, Hkv, d = trace.tokens, trace.q_heads, trace.kv_heads, macro.head_dim
    group = Hq // Hkv
    qpos = np.asarray(trace.q_positions, dtype=np.int64)
    has_values = trace.has_values
    # keys and values in the trace's stored precision (float16 or float32, no float32 copy of
    # the whole trace): the write kernels convert each batch to float32 exactly
    # (controller.raw_vectors); key mode's write streams convert their vectors to float64
    ks = {L: trace.stored(L, "k", copy=False) for L in layer_ids}  # read only: no second copy of the trace
    vs = {L: trace.stored(L, "v", copy=False) for L in layer_ids} if has_values else {}
    qs = {L: np.asarray(trace.q(L), dtype=np.float64) for L in layer_ids}
    scores = {L: np.full((Hq, qpos.size, T), np.nan) for L in layer_ids}
    outputs = {L: np.full((Hq, qpos.size, d), np.nan) for L in layer_ids} if has_values and macro.value_path.enabled else {}
    served: list[int] = []
    shared = macro.read_path.gqa_shared_read
    jobs_per_query = len(layer_ids) * (Hkv if shared else Hq)
    last_pos = int(qpos.max()) if qpos.size else -1
    write_positions = range(last_pos + 1) if prefill == "simulate" else range(0)
    total_steps = len(write_positions) * len(layer_ids) + qpos.size * jobs_per_query
    done_steps = 0
    if prefill == "preloaded":
        started = time.perf_counter()
        for slot, L in enumerate(layer_ids):
            machine.preload(slot, L, ks[L], vs.get(L))
        machine.preload_wall_s = time.perf_counter() - started
    ready = 0
    slots = list(enumerate(layer_ids))
    written = -1  # positions 0..written are stored
    for p in np.unique(qpos[qpos >= 0]) if qpos.size else ():
        p = int(p)
        if prefill == "simulate" and p - 1 > written:
            # every position before p, in program order (not part of p's decode step)
            ready = max(ready, machine.write_positions(slots, written + 1, p - 1, ks, vs))
            done_steps += (p - 1 - written) * len(layer_ids)
            written = p - 1
        step_first = machine.intervals.mark()
        if prefill == "simulate":
            ready = max(ready, machine.write_positions(slots, p, p, ks, vs))
            done_steps += len(layer_ids)
            written = p
        for qi in np.flatnonzero(qpos == p):
            for slot, L in enumerate(layer_ids):
                for kvh in range(Hkv):
                    head_sets = [np.arange(kvh * group, (kvh + 1) * group)] if shared else \
                        [np.array([h]) for h in range(kvh * group, (kvh + 1) * group)]
                    for heads in head_sets:
                        sc, out, _ = machine.query_job(slot, L, kvh, heads, qs[L][heads, qi], p + 1, ready, has_values)
                        scores[L][heads, qi, :p + 1] = sc
                        if out is not None:
                            outputs[L][heads, qi] = out
                        served.extend([p + 1] * len(heads))
                        done_steps += 1
                        if progress is not None:
                            progress(done_steps, total_steps)
        step = machine.intervals.span_since(step_first)
        if step is not None:
            machine.decode_cycles.append(step[1] - step[0])
    return scores, outputs, served


class RecordingMachine(Machine):
    """A Machine that keeps, per stage key name, the (start, done) cycles of every item of every
    stream it runs, in program order (`schedule`)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.schedule: dict = {}

    def run_stream(self, phase, layer, ready, specs, label, burst_work=None):
        timing = super().run_stream(phase, layer, ready, specs, label, burst_work)
        for s, spec in enumerate(specs):
            self.schedule.setdefault(spec.key[0], []).extend((st, st + spec.latency) for st in timing.start[s].tolist())
        return timing


def stage_schedule(macro: MacroConfig, signs, trace, layer_ids: list[int], source: str, timing: SramTiming,
                   fidelity: str = "key", counts: Optional[dict] = None) -> tuple[dict, int]:
    """Replay the trace's layers `layer_ids` (every write timed) and return the schedule
    ({stage key name: [(start, done) cycles per item, program order]}) and the last done
    cycle. `counts`, if given, receives the counted actions per unit ({unit: {action: n}})."""
    cb = lloyd_max_codebook(macro.head_dim, macro.bits)
    amap = AddressMap(macro, len(layer_ids), trace.kv_heads, trace.tokens, source)
    machine = RecordingMachine(macro, _sign_table(signs, layer_ids, macro.head_dim), np.asarray(cb.rom_centroids),
                               np.asarray(cb.rom_boundaries), fidelity, Ledger(), amap, timing)
    replay(machine, trace, layer_ids, "simulate", None)
    if counts is not None:
        for (_layer, _path, unit, action), n in machine.ledger.counts.items():
            counts.setdefault(unit, {}).setdefault(action, 0)
            counts[unit][action] += int(n)
    total = max((done for items in machine.schedule.values() for _, done in items), default=0)
    return machine.schedule, total
