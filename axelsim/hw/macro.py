"""simulate(): wire the units, replay a trace, and collect cycles, statistics, ops and results."""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np

from axelsim.config.macro import MacroConfig
from axelsim.errors import ConfigError
from axelsim.hw.controller import PHASES, Machine
from axelsim.hw.sram import AddressMap
from axelsim.hw.units import PATHS, Ledger
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
    instances: dict = field(default_factory=dict)
    fidelity: str = "burst"
    prefill: str = "simulate"
    clock_hz: float = 1.0e9
    preload_wall_s: float = 0.0
    """Host wall time spent storing the preloaded KV cache (seconds; not simulated time)."""


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


def _union_length(spans: list[tuple[int, int]]) -> tuple[int, list[tuple[int, int]]]:
    """Total length and the disjoint sorted union of [start, end) spans."""
    merged: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        elif end > start:
            merged.append((start, end))
    return sum(e - s for s, e in merged), merged


def _subtract(spans: list[tuple[int, int]], cover: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """spans minus cover (both disjoint, sorted)."""
    out, j = [], 0
    for start, end in spans:
        cur = start
        while j < len(cover) and cover[j][1] <= cur:
            j += 1
        k = j
        while k < len(cover) and cover[k][0] < end:
            if cover[k][0] > cur:
                out.append((cur, cover[k][0]))
            cur = max(cur, cover[k][1])
            k += 1
        if cur < end:
            out.append((cur, end))
    return out


def attribute_phases(intervals, layer: Optional[int] = None) -> dict:
    """Cycles per phase: each covered cycle goes to its highest phase value > read > precompute > write."""
    covered: list[tuple[int, int]] = []
    out = {}
    for phase in reversed(PHASES):
        spans = [(iv.start, iv.end) for iv in intervals if iv.phase == phase and (layer is None or iv.layer == layer)]
        _, merged = _union_length(spans)
        own = _subtract(merged, covered)
        out[phase] = int(sum(e - s for s, e in own))
        _, covered = _union_length(covered + merged)
    return out


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


def summarize(ledger: Ledger, intervals: list, stall: int, layers: list[int], clock_hz: float,
              instances: dict, served: list[int], head_dim: int) -> dict:
    """The shared sections of SimResult (cycles, unit_stats, actions, ops, per_layer, mults/query)."""
    total = max((iv.end for iv in intervals), default=0)
    cycles = {"total": int(total), **attribute_phases(intervals), "stall": int(stall)}
    actions = _actions(ledger.counts, None)
    unit_stats = {}
    for unit in sorted(set(actions) | set(ledger.busy)):
        busy = ledger.busy.get(unit, 0)
        capacity = total * instances.get(unit, 1)
        unit_stats[unit] = {"busy_cycles": int(busy), "utilisation": busy / capacity if capacity else 0.0,
                            "stall_cycles": int(sum(ledger.stalls[unit].values())),
                            "stall_causes": dict(ledger.stalls[unit]), "actions": actions.get(unit, {}),
                            "instances": instances.get(unit, 1)}
    ops = _ops(ledger.counts, ledger.events, None)
    per_layer = {layer: {"cycles": attribute_phases(intervals, layer),
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
            "ops": ops, "per_layer": per_layer, "multiplications_per_query": mpq}


def _instances(macro: MacroConfig) -> dict:
    per_pipe = macro.read_path.pipelines
    return {"index_sram": macro.sram.banks, "table_sram": per_pipe, "lookup_pipeline": per_pipe,
            "value_unit": per_pipe}


def simulate(macro: MacroConfig, signs, trace, *, layers=None, kv_heads=None, queries=None,
             fidelity: str = "burst", prefill: str = "simulate", record_waveform: bool = False,
             progress: Optional[Callable[[int, int], None]] = None, source: Optional[str] = None) -> SimResult:
    """Replay `trace` through the macro; see docs/cycle_model.md for the schedule.

    signs: a SignRom or an int8 array [n_layers, d]; fidelity 'key' | 'burst' (identical
    results); prefill 'simulate' (time every write) | 'preloaded' (all keys stored before cycle 0).
    source: the macro file, named by configuration errors (default: the macro's name).
    """
    source = source or macro.name
    if fidelity not in ("key", "burst"):
        raise ConfigError("simulate", "fidelity", f"'key' or 'burst', got {fidelity!r}")
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
    machine = Machine(macro, _sign_table(signs, layer_ids, macro.head_dim),
                      np.asarray(codebook.rom_centroids, dtype=np.float64),
                      np.asarray(codebook.rom_boundaries, dtype=np.float64), fidelity, ledger, amap)
    scores, outputs, served_t = replay(machine, trace, layer_ids, prefill, progress)
    summary = summarize(ledger, machine.intervals, machine.stall_total, layer_ids, macro.clock_hz,
                        _instances(macro), served_t, macro.head_dim)
    return SimResult(scores=scores, outputs=outputs, waveform=ledger.activity,
                     instances=_instances(macro), fidelity=fidelity, prefill=prefill,
                     clock_hz=macro.clock_hz, preload_wall_s=machine.preload_wall_s, **summary)


def replay(machine: Machine, trace, layer_ids: list[int], prefill: str, progress) -> tuple:
    """SPEC.md replay order; returns scores, outputs and the key count of every query head served."""
    macro = machine.macro
    T, Hq, Hkv, d = trace.tokens, trace.q_heads, trace.kv_heads, macro.head_dim
    group = Hq // Hkv
    qpos = np.asarray(trace.q_positions, dtype=np.int64)
    has_values = trace.has_values
    ks = {L: np.asarray(trace.k(L), dtype=np.float64) for L in layer_ids}
    vs = {L: np.asarray(trace.v(L), dtype=np.float64) for L in layer_ids} if has_values else {}
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
    for p in range(last_pos + 1):
        if prefill == "simulate":
            for slot, L in enumerate(layer_ids):
                v = vs[L][:, p] if has_values else None
                ready = max(ready, machine.write_stream(slot, L, p, ks[L][:, p], v, 0))
                done_steps += 1
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
    return scores, outputs, served
