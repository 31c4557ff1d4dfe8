"""Assemble the report dict (docs/report.md) from the cycle result, the numerics and the cost model.

Only reads and arranges: every number comes from the cycle model (cycles, counted operations),
the golden/reference comparison (numerics) or the cost model (energy, area, memory). Keys carry
their unit in their name (`_pj`, `_um2`, `_bytes`, `_s`, `_hz`, `_x` for ratios) or in `UNITS`.
"""

from __future__ import annotations

from typing import Any, Mapping

from axelsim.config import LoadedMacro
from axelsim.cost import CostModel, baseline_memory_bytes
from axelsim.report.accelergy import energy_per_action
from axelsim.report.figures import PHASES

REPORT_FORMAT = "axelsim-report"
REPORT_VERSION = 1
OP_KINDS = ("multiplications", "additions", "comparisons", "table_lookups", "sram_read_bits", "sram_write_bits")

UNITS: dict[str, str] = {
    "cycles.*": "clock cycles of the macro clock (clock_hz)",
    "time_s": "seconds",
    "node_nm": "nanometres (technology node the cost model scales to)",
    "decode.steps": "query positions (decode steps) measured",
    "decode.latency_cycles_mean, decode.latency_cycles_max": "clock cycles per decode step (all replayed layers and heads)",
    "decode.latency_s_mean": "seconds per decode step",
    "decode.tokens_per_s": "tokens per second for one sequence (1 / mean decode step)",
    "decode.layers_replayed": "layers in the replayed selection (the step covers these only)",
    "clock_hz": "hertz",
    "ops.multiplications.*, ops.additions.*, ops.comparisons.*": "operations executed (counted by the units)",
    "ops.table_lookups.*": "table SRAM entry reads",
    "ops.sram_read_bits.*, ops.sram_write_bits.*": "bits",
    "multiplications_per_query.axelram, .conventional": "multiplications per query vector and KV head",
    "multiplications_per_query.reduction": "ratio conventional / axelram",
    "multiplications_per_query.keys_per_query_mean": "keys a query is scored against (causal), mean",
    "multiplications_per_query.query_heads_served": "query vectors served (layer x query head x position)",
    "cycles.idle": "clock cycles inside [0, total) with no stream in flight (phases + idle = total)",
    "cycles.stall": "clock cycles in which at least one item waited at some unit",
    "cycles.stall_summed": "clock cycles of waiting summed over streams and units (can exceed total)",
    "stall_cycles_by_cause.*.*": "clock cycles in which at least one item waited at the unit for the cause",
    "stall_cycles_by_unit.*": "clock cycles in which at least one item waited at the unit",
    "phase_active_cycles.*": "clock cycles with at least one stream of the phase in flight (phases overlap)",
    "timeline.bin_cycles": "clock cycles per timeline bin",
    "timeline.units.*": "fraction 0..1 of each bin with a stream inside the unit",
    "layers.*.cycles.*": "clock cycles of the layer's own streams, attributed by the phase priority",
    "layers.*.active_cycles.*": "clock cycles with a stream of the layer and phase in flight",
    "ops.butterflies.*, ops.divisions.*, ops.square_roots.*, ops.exps.*": "operations executed",
    "ops.norm_saturations.*": "stored vectors whose norm saturated at 65504",
    "energy_pj.*": "picojoules",
    "actions.*.*": "actions the component performed in the run (operations; memory reads and writes)",
    "energy_per_action_pj.*.*": "picojoules per action of the component (the Accelergy ERT, `run --accelergy`)",
    "energy_pj.by_state.*": "picojoules: dynamic, leakage of active tiles and logic, of idle (retention) tiles, of off (gated) tiles",
    "energy_pj.leakage_share": "fraction of energy_pj.total that is leakage (0..1)",
    "sram_tiles.capacity_bits, .occupied_bits, .spilled_bits, .tile_width_bits": "bits",
    "sram_tiles.occupancy": "fraction of rows per bank holding data (0..1)",
    "sram_tiles.tile_bytes": "bytes",
    "sram_tiles.tiles, .tiles_holding_data, .tiles_off": "tiles (CACTI arrays) of the row store",
    "sram_tiles.node_nm": "nanometres",
    "sram_tiles.wire_mm, sram_tiles.timing.wire_mm": "millimetres (H-tree, port to farthest tile)",
    "sram_tiles.timing.access_ns, .cycle_ns, .wire_ns": "nanoseconds",
    "sram_tiles.timing.*_cycles": "clock cycles of the macro clock",
    "sram_tiles.timing.fp_add_ns.*, .fp_mul_ns.*": "nanoseconds (one FP add / multiply, per format name)",
    "sram_tiles.timing.source.*": "derived (technology table) | overridden (macro key) | ideal (no table)",
    "area_um2.*": "square micrometres",
    "memory_bytes.*": "bytes",
    "kv_compression_x": "ratio FP16 KV bytes / AXELRAM KV bytes",
    "utilisation.*": ("fraction 0..1 of a unit's issue capacity used: its busiest stage's occupied cycles "
                      "over total cycles, mean over instances (banked SRAM: accesses over bank-port cycles)"),
    "numerics.score_rel_rmse, numerics.output_rel_rmse": ("dimensionless (RMS error / RMS reference; "
                                                        "the plain RMS error if the reference is all zero)"),
    "numerics.score_max_abs_err": "score units (raw q.k in the trace's activation units squared)",
    "numerics.attn_kl": "nats (mean over queries of KL(reference || simulated) softmax)",
    "numerics.top1_agreement": "fraction of queries (0..1)",
    "numerics.norm_saturations": "stored vectors whose norm saturated at 65504",
    "numerics.overflows, layers.*.numerics.overflows, baselines.*.numerics.overflows": (
        "scores and output coordinates the datapath made inf or NaN where float64 attention is finite "
        "(its error figures are then inf: null in JSON)"),
    "trace.tokens, trace.queries": "token positions; queries per query head",
    "trace.n_layers, .kv_heads, .q_heads, .head_dim": "layers; KV heads; query heads; coordinates per vector",
    "trace.layer_indices": "layer numbers of the replayed selection",
    "timeline.bins": "time bins of the timeline (count)",
    "sram_tiles.timing.fp_add_ns.*, sram_tiles.timing.fp_mul_ns.*": "nanoseconds (one add or multiply of the format at the node)",
    "layers.*.ops.*": "as ops.* (operations; bits for sram_*_bits), the layer's share",
    "layers.*.numerics.*, numerics_by_bits.*.*": "as the numerics.* key of the same name",
    "run_info.wall_s": "seconds of host wall time (not part of the deterministic report)",
    "run_info.workers": "worker processes that simulated report sections beside the main process (count; 0: serial)",
    "run_info.worker_peak_rss_mib": "peak resident memory of the process that computed each section, a worker or the main process (MiB)",
    "qjl.sketch_bits": "sign bits per stored key (m, rows of the sketch ROM)",
    "qjl.key_index_bits, qjl.value_index_bits": "bits per coordinate index of a key (b - 1) and a value (b)",
    "qjl.key_row_bits, qjl.value_row_bits, qjl.row_bits": "bits (a key row, a value row, the index SRAM row width)",
    "qjl.sketch_rom_bytes, memory_bytes.sketch_rom": "bytes (m x d FP16 values)",
    "qjl.projection_rows_per_cycle": "sketch rows the projector evaluates per clock cycle",
    "qjl.projector_ii_cycles": "clock cycles the projector spends per key residual or query (m / rows per cycle)",
    "qjl.sketch_seed": "seed of the sketch ROM draws (dimensionless)",
}


def trace_section(trace) -> dict[str, Any]:
    """Name, provenance, shape and digest of the replayed trace selection."""
    return {
        "name": trace.name,
        "model": trace.model,
        "digest_sha256": trace.digest(),
        "n_layers": trace.n_layers,
        "layer_indices": list(trace.layer_indices),
        "kv_heads": trace.kv_heads,
        "q_heads": trace.q_heads,
        "head_dim": trace.head_dim,
        "tokens": trace.tokens,
        "queries": trace.n_queries,
        "dtype": trace.dtype,
    }


def query_count(trace) -> int:
    """Query vectors served: one per (layer, query head, query position)."""
    return trace.n_layers * trace.q_heads * trace.n_queries


def energy_section(cost: CostModel, result, trace) -> dict[str, Any]:
    """Energy in pJ: totals, per query vector, per token position, by power state, and by
    component and action."""
    actions, time_s = result.actions, result.time_s
    store, memory = cost.row_store(trace.n_layers)
    accesses = sum(actions.get(store, {}).get(a, 0) for a in ("read", "write"))
    timing = getattr(result, "timing", None)
    busy = accesses * (timing.bank_ii_cycles if timing is not None else 1)
    used = getattr(result, "rows_used", 0)
    rows_used = min(used, memory.words) if used else memory.words
    energy = cost.energy_pj(actions, time_s, trace.n_layers, rows_used=rows_used, busy_cycles=busy)
    components = sorted(set(energy["dynamic"]) | set(energy["leakage"]))
    by_component = {}
    for name in components:
        dynamic = dict(sorted(energy["dynamic"].get(name, {}).items()))
        dynamic_total = energy["dynamic_by_component"].get(name, 0.0)
        leakage = energy["leakage"].get(name, 0.0)
        by_component[name] = {"dynamic": dynamic, "dynamic_total": dynamic_total, "leakage": leakage,
                              "total": dynamic_total + leakage}
    return {
        "total": energy["total"],
        "dynamic_total": energy["dynamic_total"],
        "leakage_total": energy["leakage_total"],
        "per_query": energy["total"] / query_count(trace),
        "per_token": energy["total"] / trace.tokens,
        "by_state": {"dynamic": energy["dynamic_total"], "leakage_active": energy["leakage_by_state"]["active"],
                     "leakage_idle": energy["leakage_by_state"]["idle"], "leakage_off": energy["leakage_by_state"]["off"]},
        "leakage_share": energy["leakage_total"] / energy["total"] if energy["total"] else 0.0,
        "by_component": by_component,
    }


def sram_tiles_section(cost: CostModel, result, trace) -> dict[str, Any]:
    """The row store: capacity against occupancy, tiles by power state, and its timing with the
    source of every value (derived / overridden / ideal)."""
    store, memory = cost.row_store(trace.n_layers)
    geo = cost.geometry(memory)
    used = getattr(result, "rows_used", 0)
    rows_used = min(used, memory.words) if used else memory.words
    holding = geo.banks * geo.tiles_holding(rows_used)
    spilled_rows = max(0, used - memory.words) * memory.arrays
    section = {
        "unit": store,
        "node_nm": cost.config.technology.node_nm,
        "sram_cells": cost.config.technology.sram_cells,
        "sram_energy": cost.config.technology.sram_energy,
        "capacity_bits": memory.bits,
        "occupied_bits": rows_used * memory.arrays * memory.word_bits,
        "spilled_bits": spilled_rows * memory.word_bits,
        "occupancy": rows_used / memory.words if memory.words else 0.0,
        "tile_bytes": geo.tile_bytes,
        "tile_width_bits": geo.tile_width_bits,
        "tiles": geo.tiles,
        "tiles_holding_data": holding,
        "gating": cost.config.power.gating,
        "tiles_off": geo.tiles - holding if cost.config.power.gating != "none" else 0,
        "wire_mm": cost.wire_mm(),
    }
    if getattr(result, "timing", None) is not None:
        section["timing"] = result.timing.as_report()
    return section


def area_section(cost: CostModel, n_layers: int) -> dict[str, Any]:
    """Area in µm²: total and by component."""
    areas = cost.area_um2(n_layers)
    total = areas.pop("total")
    return {"total": total, "by_component": dict(sorted(areas.items()))}


def memory_section(cost: CostModel, trace) -> tuple[dict[str, float], float]:
    """(memory_bytes section, KV compression ratio against FP16)."""
    memory = cost.memory_bytes(trace.n_layers, trace.kv_heads, trace.tokens)
    keys = ("kv_storage", "kv_storage_fp16", "codebook_rom", "sign_rom", "table", "sketch_rom")
    section = {key: memory[key] for key in keys if key in memory}
    section["per_vector"] = memory["per_vector"]
    section["total"] = sum(memory[key] for key in keys if key in memory and key != "kv_storage_fp16")
    return section, memory["compression"]


def utilisation(unit_stats: Mapping[str, Mapping[str, Any]]) -> dict[str, float]:
    """Fraction of cycles each unit was busy, as the cycle model measured it."""
    return {name: float(stats["utilisation"]) for name, stats in sorted(unit_stats.items())}


def stall_causes(unit_stats: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, int]]:
    """Stall cycles per unit and cause (only units that stalled): cycles in which at least one
    item waited there for that cause, so each is at most cycles.total."""
    return {name: {cause: int(n) for cause, n in sorted(stats["stall_causes"].items()) if n}
            for name, stats in sorted(unit_stats.items()) if stats.get("stall_cycles")}


def stall_units(unit_stats: Mapping[str, Mapping[str, Any]]) -> dict[str, int]:
    """Cycles in which at least one item waited at each unit, whatever the cause (units that stalled)."""
    return {name: int(stats["stall_cycles"]) for name, stats in sorted(unit_stats.items()) if stats.get("stall_cycles")}


def cycles_section(cycles: Mapping[str, int]) -> dict[str, int]:
    """Cycles by phase in a fixed order: total first, the phases, then stall (those present)."""
    order = ("total", *PHASES, "idle", "stall", "stall_summed")
    keys = [key for key in order if key in cycles] + sorted(key for key in cycles if key not in order)
    return {key: int(cycles[key]) for key in keys}


def ops_section(ops: Mapping[str, Mapping[str, int]]) -> dict[str, dict[str, int]]:
    """Counted operations by kind and path (the SPEC kinds first, then any others the units count)."""
    kinds = [kind for kind in OP_KINDS if kind in ops] + sorted(kind for kind in ops if kind not in OP_KINDS)
    return {kind: {path: int(count) for path, count in ops[kind].items()} for kind in kinds}


def decode_section(decode_cycles, clock_hz: float, trace) -> dict[str, Any]:
    """Decode step of each query position (its token's K/V writes and its queries over every
    replayed layer and head): mean and max latency, and the tokens per second one sequence
    decodes at (one token per step, 1 / mean latency)."""
    if not decode_cycles:
        return {"steps": 0, "latency_cycles_mean": None, "latency_cycles_max": None, "latency_s_mean": None,
                "tokens_per_s": None, "layers_replayed": trace.n_layers}
    mean = float(sum(decode_cycles)) / len(decode_cycles)
    return {"steps": len(decode_cycles), "latency_cycles_mean": mean, "latency_cycles_max": int(max(decode_cycles)),
            "latency_s_mean": mean / clock_hz, "tokens_per_s": clock_hz / mean if mean else None,
            "layers_replayed": trace.n_layers}


def build_report(loaded: LoadedMacro, trace, result, numerics: dict[str, Any], baselines: dict[str, Any],
                 fidelity: str) -> dict[str, Any]:
    """The full report of one run (everything but `run_info`, which the caller adds)."""
    config = loaded.config
    cost = CostModel.from_macro(loaded)
    memory, compression = memory_section(cost, trace)
    layer_numerics = numerics.pop("layers")
    report: dict[str, Any] = {
        "report": {"format": REPORT_FORMAT, "version": REPORT_VERSION},
        "macro": config.model_dump(mode="json"),
        "inputs": {
            "macro_file": loaded.path.name,
            "signs": loaded.signs_path.name if loaded.signs_path is not None else
            f"paper rule, seed {config.signs.seed} (separate key and value ROMs)" if config.signs.separate_values else
            f"seed {config.signs.seed}",
            "technology_file": loaded.tech_path.name,
            "technology_builtin": loaded.tech_builtin,
            "fidelity": fidelity,
            "derived": dict(sorted(loaded.derived.items())),
        },
        "trace": trace_section(trace),
        "clock_hz": config.clock_hz,
        "node_nm": config.technology.node_nm,
        "time_s": result.time_s,
        "decode": decode_section(result.decode_cycles, config.clock_hz, trace),
        "cycles": cycles_section(result.cycles),
        "utilisation": utilisation(result.unit_stats),
        "stall_cycles_by_cause": stall_causes(result.unit_stats),
        "stall_cycles_by_unit": stall_units(result.unit_stats),
        "phase_active_cycles": {phase: int(n) for phase, n in result.phase_active.items()},
        "timeline": result.timeline,
        **costed_sections(cost, result, trace, memory),
        "kv_compression_x": compression,
        "numerics": numerics,
        "baselines": baselines,
        "layers": {
            str(layer): {
                "cycles": cycles_section(entry["cycles"]),
                "active_cycles": {phase: int(n) for phase, n in entry["active"].items()},
                "ops": ops_section(entry["ops"]),
                "numerics": layer_numerics[str(layer)],
            }
            for layer, entry in sorted(result.per_layer.items())
        },
        "units": UNITS,
    }
    if config.residual == "qjl":
        report["qjl"] = qjl_section(config)
    return report


def qjl_section(config) -> dict[str, Any]:
    """The QJL residual's geometry (`residual: qjl`): bits per key and row, the sketch ROM, the
    projector's interval (hw/qjl.py)."""
    from axelsim.hw.qjl import projector_timing

    q = config.qjl
    return {"sketch_bits": config.sketch_bits, "key_index_bits": config.key_bits, "value_index_bits": config.bits,
            "key_row_bits": config.key_row_bits, "value_row_bits": config.vector_bits, "row_bits": config.row_bits,
            "sketch_rom_bytes": config.sketch_bits * config.head_dim * 2, "sketch_seed": q.seed,
            "projection_rows_per_cycle": q.projection_rows_per_cycle,
            "projector_ii_cycles": projector_timing(config, query=False)[1]}


def costed_sections(cost: CostModel, result, trace, memory: dict[str, Any]) -> dict[str, Any]:
    """The keys the main report and every baseline share, in report order: counted operations,
    actions, energy (pJ), area (µm²), memory (bytes) and SRAM tiles of one simulated design."""
    return {
        "ops": ops_section(result.ops),
        "multiplications_per_query": dict(result.multiplications_per_query),
        "energy_pj": energy_section(cost, result, trace),
        "actions": {unit: dict(sorted(counts.items())) for unit, counts in sorted(result.actions.items())},
        "energy_per_action_pj": energy_per_action(cost, trace.n_layers, result.actions),
        "area_um2": area_section(cost, trace.n_layers),
        "memory_bytes": memory,
        "sram_tiles": sram_tiles_section(cost, result, trace),
    }


def baseline_section(kind: str, loaded: LoadedMacro, trace, result, numerics: dict[str, Any]) -> dict[str, Any]:
    """One conventional macro's figures, in the same keys and units as the main report;
    `numerics` is report.numerics.baseline_numerics of its scores and outputs."""
    cost = CostModel.for_baseline(kind, loaded)
    memory = baseline_memory_bytes(kind, loaded.config, trace.n_layers, trace.kv_heads, trace.tokens)
    return {
        "cycles": cycles_section(result.cycles),
        "time_s": result.time_s,
        **costed_sections(cost, result, trace, memory),
        "numerics": numerics,
    }
