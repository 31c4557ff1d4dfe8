"""A whole model's decode step and prefill on a chip of macro instances: the chip report.

Workload (model shape, context T, batch B) -> plan (shares on instances, axelsim.chip.plan)
-> every share through the macro cycle model (axelsim.chip.instance) -> the step's events
(axelsim.chip.step) -> energy, area, utilisation -> the report of docs/chip.md. The same chip
is built of each baseline macro (fp16 and dequant_rotated), and
the measured GPU anchor is looked up (axelsim.chip.anchor).
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

from axelsim.chip.anchor import gpu_h200
from axelsim.chip.instance import ShareData, ShareRunner
from axelsim.chip.merge import MergeUnit, instance_stats
from axelsim.chip.models import ModelShape
from axelsim.chip.plan import Plan, Share, make_plan
from axelsim.chip.power import leakage_by_state
from axelsim.chip.step import decode_step, prefill
from axelsim.config.chip import LoadedChip
from axelsim.config.formats import parse_format
from axelsim.cost.model import CostModel
from axelsim.errors import ConfigError, TraceError
from axelsim.numerics.hadamard import SignRom

BASELINES = ("fp16", "dequant_rotated")
"""The same chip built of each of these macros of axelsim.hw.baselines (docs/chip.md, Baselines)."""
UNITS = {
    "latency_cycles": "cycles at the macro clock", "latency_s": "s", "tokens_per_s": "tokens/s",
    "energy_j_per_token": "J per generated (decode) or written (prefill) token", "area_mm2": "mm^2",
    "kv_capacity_tokens": "context tokens of one sequence the instances hold on chip",
    "utilisation": "busy fraction of the decode step", "bits": "bits", "pitch_mm": "mm",
    "instance_area_mm2": "mm^2", "leakage_w": "W",
}


@dataclass
class Workload:
    """A model shape at a context and batch, and where its vectors come from."""

    shape: ModelShape
    context: int
    batch: int
    source: str
    trace: Any = None
    synthetic: Optional[tuple] = None

    @classmethod
    def from_model(cls, shape: ModelShape, context: int, batch: int, seed: int = 0) -> "Workload":
        """Vectors from the synthetic generator: one KV head's slice and layer 0's sign vector, used for
        every (sequence, layer, KV head), so equal ranges are one simulation (a trace is simulated whole)."""
        from axelsim.trace.synth import SynthSpec, synth_trace

        if not (isinstance(context, int) and context >= 1):
            raise ConfigError("--context", "", f"a positive number of tokens, got {context!r}")
        if not (isinstance(batch, int) and batch >= 1):
            raise ConfigError("--batch", "", f"a positive integer, got {batch!r}")
        spec = SynthSpec(layers=1, kv_heads=1, q_heads=shape.group, head_dim=shape.head_dim, tokens=context,
                         queries=1, seed=seed)
        trace = synth_trace(spec)
        data = (np.asarray(trace.k(0)[0]), np.asarray(trace.v(0)[0]), np.asarray(trace.q(0)[:, 0]))
        return cls(shape, context, batch, f"synthetic (axelsim.trace.synth, seed {seed}; one KV head's slice "
                   "and layer 0's sign vector for every sequence, layer and KV head)", synthetic=data)

    @classmethod
    def from_trace(cls, trace, batch: int = 1) -> "Workload":
        """The decode step of the trace's last query position (context = that position + 1)."""
        if batch != 1:
            raise ConfigError("--batch", "", f"1 with --trace (a trace holds one sequence), got {batch}")
        if not trace.has_values:
            raise TraceError(str(trace.path or trace.name), "layers.<L>.v", "values (the chip serves attention outputs)")
        shape = ModelShape(trace.model, trace.n_layers, trace.q_heads, trace.kv_heads, trace.head_dim,
                           f"trace {trace.name}")
        context = int(trace.q_positions[-1]) + 1
        return cls(shape, context, 1, f"trace {trace.name} (decode step at its last query, position {context - 1})",
                   trace=trace)

    def layer_id(self, layer: int) -> int:
        """The model layer (sign vector) of plan layer `layer` (0 for every layer without a trace)."""
        return self.trace.layer_indices[layer] if self.trace is not None else 0

    def share_data(self, share: Share) -> ShareData:
        G = self.shape.group
        if self.trace is None:
            k, v, q = self.synthetic
            return ShareData(0, k[share.lo:share.hi], v[share.lo:share.hi], q, "float16", ("synthetic", share.lo, share.hi))
        L = self.layer_id(share.layer)
        h = share.kv_head
        return ShareData(L, np.asarray(self.trace.k(L)[h, share.lo:share.hi]),
                         np.asarray(self.trace.v(L)[h, share.lo:share.hi]),
                         np.asarray(self.trace.q(L)[h * G:(h + 1) * G, -1]), self.trace.dtype)


def _signs(loaded, n_layers: int):
    config = loaded.config
    if loaded.signs_path is not None:
        rom = SignRom.from_file(loaded.signs_path)
        if rom.n_layers < n_layers or rom.dim != config.head_dim:
            raise ConfigError(str(loaded.signs_path), "n_layers", f"sign vectors of length {config.head_dim} for "
                              f"{n_layers} layers, the file holds {rom.n_layers} of length {rom.dim}")
        return rom
    return SignRom.from_seed(config.signs.seed, n_layers, config.head_dim)


def _cost(kind: str, loaded) -> CostModel:
    return CostModel.from_macro(loaded) if kind == "axelram" else CostModel.for_baseline(kind, loaded)


class _Pricer:
    """Dynamic energy (pJ) of an action dict, cached per dict object (replicated shares share it)."""

    def __init__(self, cost: CostModel):
        self.cost = cost
        self._seen: dict[int, float] = {}

    def __call__(self, actions: dict) -> float:
        key = id(actions)
        if key not in self._seen:
            self._seen[key] = self.cost.energy_pj(actions, 0.0, 1)["dynamic_total"] if actions else 0.0
        return self._seen[key]


def _merge_area_leak(tech, macro, lanes: int, split: int) -> tuple[float, float]:
    """(um^2, W) of one merge unit: `lanes` V multiply-add lanes, one exp, cmp, mul, add in S, one div in V,
    and a buffer of `split` partials of one head (d values in V plus m and E in S)."""
    s, v = macro.formats.get("softmax"), macro.formats.get("value")
    parts = [(tech.operation("mul", v), lanes), (tech.operation("add", v), lanes), (tech.operation("exp", s), 1),
             (tech.operation("cmp", s), 1), (tech.operation("mul", s), 1), (tech.operation("add", s), 1),
             (tech.operation("div", v), 1)]
    buffer = tech.register_bits(split * (macro.head_dim * v.width_bits + 2 * s.width_bits))
    area = sum(price.area_um2 * n for price, n in parts) + buffer.area_um2
    leak = sum(price.leakage_w * n for price, n in parts) + buffer.leakage_w
    return area, leak


def _merge_groups(plan: Plan, results: dict, unit: MergeUnit, dim: int, score_fmt) -> tuple[dict, Counter]:
    """Merged outputs {(layer, sequence, KV head): [G, d]} and the merge unit's counted actions."""
    cache: dict[tuple, tuple[np.ndarray, Counter]] = {}
    outputs: dict[tuple, np.ndarray] = {}
    total: Counter = Counter()
    for layer in range(plan.shape.layers):
        for (b, h), shares in plan.layer_groups(layer).items():
            parts = [results[share.index] for share in shares]
            if len(parts) == 1:
                outputs[(layer, b, h)] = parts[0].outputs
                continue
            key = tuple(id(part) for part in parts)
            if key not in cache:
                before = Counter(unit.actions)
                stats = [instance_stats(part.scores, dim, score_fmt, unit.s) for part in parts]
                merged = unit.merge(np.stack([m for m, _ in stats], axis=1), np.stack([e for _, e in stats], axis=1),
                                    np.stack([part.outputs for part in parts], axis=1))
                counted = Counter(unit.actions)
                counted.subtract(before)
                cache[key] = (merged, counted)
            merged, counted = cache[key]
            outputs[(layer, b, h)] = merged
            total.update(counted)
    return outputs, total


def run_design(kind: str, chip: LoadedChip, workload: Workload, plan: Plan, replicate: bool = True) -> dict[str, Any]:
    """One chip built of `kind` macros ('axelram' or a baseline kind): the report's figures for it."""
    loaded, config = chip.macro, chip.config
    macro = loaded.config
    signs = _signs(loaded, max(workload.layer_id(layer) for layer in range(plan.shape.layers)) + 1)
    runner = ShareRunner(loaded, signs, kind, replicate)
    results = {share.index: runner.run(workload.share_data(share), share.hi == plan.context) for share in plan.shares}
    cost = _cost(kind, loaded)
    units = cost.units(1)
    area_um2 = cost.area_um2(1)["total"]
    leak_w = cost.leakage_w(1)["total"]
    pitch = config.interconnect.pitch_mm or math.sqrt(area_um2) / 1000.0
    row_bits = cost.offchip_row_bits(units)
    store = "index_sram" if "index_sram" in units else "kv_sram"
    row_write_pj = cost.action_pj(store, "write", units)
    step = decode_step(plan, config, macro, results, pitch, row_bits, runner.timing.exp_latency_cycles)
    pre = prefill(plan, config, macro, results, pitch, row_bits)

    unit = MergeUnit(macro.formats.get("softmax"), macro.formats.get("value"), config.merge.lanes)
    merged, merge_actions = _merge_groups(plan, results, unit, macro.head_dim, macro.formats.get("score"))
    tech = cost.tech
    merge_pj = sum(n * tech.operation(*_op_fmt(name)).energy_pj for name, n in merge_actions.items())
    merge_area, merge_leak = _merge_area_leak(tech, macro, config.merge.lanes, plan.split) if plan.split > 1 else (0.0, 0.0)
    merge_area, merge_leak = merge_area * config.merge.units, merge_leak * config.merge.units

    price = _Pricer(cost)
    clock = macro.clock_hz
    latency_s = step.latency_cycles / clock
    bank_ii = runner.timing.bank_ii_cycles
    states = leakage_by_state(cost, plan, results, config.power_gating, latency_s, bank_ii, "decode")
    tokens = workload.batch
    dynamic = sum(price(results[s.index].service_actions) + (price(results[s.index].write_actions)
                                                              if s.hi == plan.context else 0.0) for s in plan.shares)
    energy = {
        "macro_dynamic": dynamic,
        "macro_leakage": states["pj"]["active"] + states["pj"]["idle"],
        "interconnect": step.network.traffic.bit_mm * config.interconnect.energy_pj_per_bit_mm,
        "merge": merge_pj + merge_leak * latency_s * 1e12,
        "host_io": (step.host_in.bits + step.host_out.bits) * config.host.energy_pj_per_bit,
        "offchip": step.offchip.bits * config.offchip.energy_pj_per_bit + step.offchip_rows * row_write_pj,
    }
    total_pj = sum(energy.values())
    merge_leak_pj = merge_leak * latency_s * 1e12
    by_state = {"dynamic": total_pj - energy["macro_leakage"] - merge_leak_pj,
                "leakage_active": states["pj"]["active"] + merge_leak_pj, "leakage_idle": states["pj"]["idle"],
                "leakage_off": states["pj"]["off"]}
    pre_s = pre.latency_cycles / clock
    pre_states = leakage_by_state(cost, plan, results, config.power_gating, pre_s, bank_ii, "prefill")
    written = workload.batch * plan.context
    pre_energy = (sum(price(results[s.index].prefill_actions) for s in plan.shares)
                  + pre_states["pj"]["active"] + pre_states["pj"]["idle"] + merge_leak * pre_s * 1e12
                  + pre.network.traffic.bit_mm * config.interconnect.energy_pj_per_bit_mm
                  + pre.host_in.bits * config.host.energy_pj_per_bit
                  + pre.offchip.bits * config.offchip.energy_pj_per_bit)
    links = step.network.links.values()
    util_den = max(step.latency_cycles, 1)
    section = {
        "instances": plan.instances,
        "instances_holding_data": plan.used_instances,
        "decode": {
            "latency_cycles": step.latency_cycles,
            "latency_s": latency_s,
            "tokens_per_s": tokens / latency_s if latency_s else 0.0,
            "energy_j_per_token": total_pj * 1e-12 / tokens,
            "energy_j_per_token_by_component": {name: pj * 1e-12 / tokens for name, pj in energy.items()},
            "energy_j_per_token_by_state": {name: pj * 1e-12 / tokens for name, pj in by_state.items()},
            "leakage_share": (by_state["leakage_active"] + by_state["leakage_idle"]) / total_pj if total_pj else 0.0,
            "layer_end_cycles": step.layer_end_cycles,
            "traffic_bits": {"host_in": step.host_in.bits, "host_out": step.host_out.bits,
                             "offchip": step.offchip.bits, **dict(step.network.traffic.by_kind)},
            "merges": step.merges,
            "merge_actions": dict(sorted(merge_actions.items())),
        },
        "prefill": {
            "latency_cycles": pre.latency_cycles,
            "latency_s": pre_s,
            "tokens_per_s": written / pre_s if pre_s else 0.0,
            "energy_j_per_token": pre_energy * 1e-12 / written,
        },
        "area_mm2": {"total": (area_um2 * plan.instances + merge_area) * 1e-6,
                     "instances": area_um2 * plan.instances * 1e-6, "merge": merge_area * 1e-6,
                     "interconnect": 0.0},
        "instance": {"area_mm2": area_um2 * 1e-6, "pitch_mm": pitch, "pitch_derived": config.interconnect.pitch_mm is None,
                     "leakage_w": leak_w, "row_bits": row_bits},
        "utilisation": {
            "instances": sum(step.instance_busy_cycles) / (util_den * max(plan.used_instances, 1)),
            "interconnect_busiest_link": max((link.busy_cycles for link in links), default=0) / util_den,
            "merge": step.merge_busy_cycles / (util_den * config.merge.units),
            "host_in": step.host_in.busy_cycles / util_den,
            "host_out": step.host_out.busy_cycles / util_den,
            "offchip": step.offchip.busy_cycles / util_den,
        },
        "power": {"gating": config.power_gating, "macro_power_gating": macro.power.gating,
                  "instances_gated": states["instances_gated"], "tiles_total": states["tiles_total"],
                  "tiles_powered": states["tiles_powered"], "tiles_off": states["tiles_off"],
                  "retention_leakage_fraction": cost.tech.retention_fraction},
        "simulation": {"shares": runner.requested, "shares_simulated": runner.simulated},
    }
    section["_results"] = (results, merged)
    return section


def _op_fmt(action: str):
    op, _, fmt = action.partition(".")
    return op, parse_format(fmt)


def chip_numerics(chip: LoadedChip, workload: Workload, plan: Plan, results: dict, merged: dict) -> dict[str, Any]:
    """bit_exact of the chip (cycle model + merge unit) against the golden split and merge; error metrics."""
    from axelsim.numerics.golden import NumericsSpec
    from axelsim.numerics.merge import golden_split
    from axelsim.numerics.metrics import attention_metrics
    from axelsim.numerics.reference import attention_f64
    from axelsim.report.numerics import same_bits

    macro = chip.macro.config
    spec = NumericsSpec.from_macro(macro, _signs(chip.macro, max(workload.trace.layer_indices) + 1))
    G, T = plan.shape.group, plan.context
    exact_scores = exact_outputs = True
    pooled = {"s": [], "rs": [], "o": [], "ro": []}
    for layer in range(plan.shape.layers):
        L = workload.layer_id(layer)
        for (b, h), shares in plan.layer_groups(layer).items():
            k = np.asarray(workload.trace.k(L)[h, :T], dtype=np.float64)
            v = np.asarray(workload.trace.v(L)[h, :T], dtype=np.float64)
            q = np.asarray(workload.trace.q(L)[h * G:(h + 1) * G, -1], dtype=np.float64)
            g_scores, g_out = golden_split(spec, k, v, q, [(s.lo, s.hi) for s in shares], L, str(workload.trace.name))
            scores = np.concatenate([results[s.index].scores for s in shares], axis=1)
            exact_scores &= same_bits(scores, g_scores)
            exact_outputs &= same_bits(merged[(layer, b, h)], g_out)
            ref = attention_f64(k[None], v[None], q[:, None, :], None)
            pooled["s"].append(scores[:, None, :])
            pooled["rs"].append(ref.scores)
            pooled["o"].append(merged[(layer, b, h)][:, None, :])
            pooled["ro"].append(ref.outputs)
    metrics = attention_metrics(np.concatenate(pooled["s"]), np.concatenate(pooled["rs"]), macro.head_dim,
                                np.concatenate(pooled["o"]), np.concatenate(pooled["ro"]))
    return {"bit_exact": bool(exact_scores and exact_outputs), "bit_exact_scores": bool(exact_scores),
            "bit_exact_outputs": bool(exact_outputs), "split": plan.split, **metrics,
            "against": "golden model of the same split and merge (axelsim/numerics/merge.py); metrics against "
                       "float64 attention over the whole context"}


def _public(section: dict) -> dict:
    return {key: value for key, value in section.items() if not key.startswith("_")}


def simulate_chip(chip: LoadedChip, workload: Workload, *, baselines: bool = True, replicate: bool = True) -> dict[str, Any]:
    """The chip report (docs/chip.md) of one workload."""
    config = chip.config
    plan = make_plan(config, chip.macro.config, workload.shape, workload.context, workload.batch, str(chip.path))
    if not chip.macro.config.value_path.enabled:
        raise ConfigError(str(chip.path), "macro", "a macro with value_path.enabled (the chip returns attention outputs)")
    main = run_design("axelram", chip, workload, plan, replicate)
    results, merged = main.pop("_results")
    report: dict[str, Any] = {
        "chip": {**config.model_dump(mode="json"), "file": chip.path.name, "macro_resolved": chip.macro.config.model_dump(mode="json")},
        "workload": {**workload.shape.to_dict(), "context_tokens": workload.context, "batch": workload.batch,
                     "data": workload.source},
        "instances": plan.instances,
        "instances_needed_to_hold_kv": plan.instances_needed,
        "instances_auto": config.instances == "auto",
        "mapping": {"kind": config.mapping.kind, "split": plan.split, "split_auto": config.mapping.split == "auto",
                    "shares": len(plan.shares), "shares_per_instance": plan.shares_per_instance,
                    "streamed_shares": sum(s.streamed for s in plan.shares), "schedule": config.schedule,
                    "tokens_per_instance": plan.capacity_tokens},
        "kv_capacity_tokens": plan.instances * plan.capacity_tokens // (plan.shape.layers * plan.shape.kv_heads),
        **{key: value for key, value in _public(main).items() if key not in ("instances",)},
        "baselines": {},
        "notes": [],
        "units": UNITS,
    }
    if baselines:
        for kind in BASELINES:
            report["baselines"][kind] = _public(run_design(kind, chip, workload, plan, replicate))
        anchor = gpu_h200(workload.shape, workload.context, workload.batch)
        if anchor is None:
            report["notes"].append("baselines.gpu_h200: no measured row for this shape, context and batch "
                                   "(data/gpu_anchor/README.md); left out, never extrapolated")
        else:
            report["baselines"]["gpu_h200"] = anchor
    if workload.trace is not None:
        report["numerics"] = chip_numerics(chip, workload, plan, results, merged)
    return report
