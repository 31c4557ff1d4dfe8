"""The RTL twin against the golden model (bits) and the cycle model (cycles per unit and item).

The cycle model is only read here, after both ran: its schedule (every stream's per-item
start cycles per stage, recorded from `hw.controller.Machine.run_stream`) is compared with
the cycles at which the RTL units took and released each item.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from axelsim.config.macro import MacroConfig
from axelsim.errors import ConfigError
from axelsim.numerics.codebook import lloyd_max_codebook
from axelsim.numerics.golden import NumericsSpec, golden_layer
from axelsim.rtl.harness import RtlRun, simulate_rtl

def resolved_macro(loaded) -> MacroConfig:
    """The macro config of a loaded macro with its derived timing made explicit: the index SRAM
    latencies and bank II and the bin adder latency that `axelsim run` derives from the technology
    table (or the macro's overriding keys) become config keys, so the RTL and the cycle model are
    built from the same numbers. The RTL takes one cycle per FP operation: a derived softmax add
    or multiply (the exp stage's 8 adds + 7 multiplies + 1) or bin adder of more is refused."""
    from axelsim.cost import CostModel

    timing = CostModel.from_macro(loaded).timing(spills=loaded.config.sram.overflow == "spill",
                                                 source=str(loaded.path))
    mac = loaded.config
    if timing.bank_ii_cycles != 1:
        raise ConfigError(str(loaded.path), "sram.bank_ii_cycles",
                          f"a bank II of 1 cycle for the RTL twin (its banks take one access per cycle), "
                          f"got {timing.bank_ii_cycles} at this clock and tile size")
    one_cycle = {"value_path.bin_adder_latency": timing.bin_adder_latency_cycles,
                 "formats.softmax (add cycles)": timing.softmax_add_cycles,
                 "formats.softmax (multiply cycles)": timing.softmax_mul_cycles}
    for key, cycles in one_cycle.items():  # the RTL's operators each take one cycle
        if cycles != 1 and mac.value_path.enabled:
            raise ConfigError(str(loaded.path), key, f"1 cycle for the RTL twin (one FP operation per cycle), "
                              f"got {cycles} at this clock")
    if mac.signs.separate_values:
        raise ConfigError(str(loaded.path), "signs.rule", "'axelsim' (one sign vector per layer for keys, values and "
                          "queries) for the RTL twin, got 'paper'")
    if mac.residual != "none":
        raise ConfigError(str(loaded.path), "residual", f"'none' for the RTL twin (it has no QJL units), got {mac.residual!r}")
    if mac.value_path.partial_accumulators != 1 and mac.value_path.enabled:
        raise ConfigError(str(loaded.path), "value_path.partial_accumulators", "1 for the RTL twin (one set of bins)")
    sram = mac.sram.model_copy(update={"read_latency_cycles": timing.read_latency_cycles,
                                       "write_latency_cycles": timing.write_latency_cycles,
                                       "bank_ii_cycles": timing.bank_ii_cycles})
    value = mac.value_path.model_copy(update={"bin_adder_latency": timing.bin_adder_latency_cycles})
    return mac.model_copy(update={"sram": sram, "value_path": value})


def hw_schedule(macro: MacroConfig, signs, trace, layer_ids: list[int], source: str,
                counts: Optional[dict] = None) -> tuple[dict, int]:
    """The cycle model's schedule of the slice (`axelsim.hw.macro.stage_schedule`, key fidelity:
    every stream through `run_stream`, the writes one stream per position and layer; burst mode
    times the same cycles, tests/test_hw_write_batch.py): per stage key name, the (start, done)
    cycles of every item in program order; returns (schedule, total cycles). `counts`, if given,
    receives the model's counted actions per unit ({unit: {action: n}})."""
    from axelsim.cost.tiles import SramTiming
    from axelsim.hw.macro import stage_schedule

    return stage_schedule(macro, signs, trace, layer_ids, source, SramTiming.ideal(macro), counts=counts)


@dataclass
class Comparison:
    """Results of one RTL check (JSON-ready through `to_dict`)."""

    bit_exact: dict
    cycles: dict
    total_cycles_rtl: int
    total_cycles_model: int
    overruns: int
    cycles_simulated: int
    model_counts: dict = field(default_factory=dict)
    """The cycle model's counted actions, {cost-model unit: {action: n}} (for the activity table)."""

    def to_dict(self) -> dict:
        return {"bit_exact": all(self.bit_exact.values()), "bit_exact_by_unit": self.bit_exact,
                "cycles_equal": all(c["equal"] for c in self.cycles.values()),
                "cycles_by_unit": self.cycles, "total_cycles_rtl": self.total_cycles_rtl,
                "total_cycles_model": self.total_cycles_model,
                "end_to_end_cycle_error": (self.total_cycles_model - self.total_cycles_rtl) / max(self.total_cycles_rtl, 1),
                "overruns": self.overruns, "cycles_simulated": self.cycles_simulated}


def golden_results(macro: MacroConfig, signs, trace, layer_ids: list[int]) -> dict:
    spec = NumericsSpec.build(macro.head_dim, macro.bits, signs, macro.formats)
    out = {}
    for slot, L in enumerate(layer_ids):
        v = trace.v(L) if trace.has_values else None
        out[slot] = golden_layer(spec, np.asarray(trace.k(L)), None if v is None else np.asarray(v),
                                 np.asarray(trace.q(L)), np.asarray(trace.q_positions), L)
    return out


def _same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    """Equal as values, NaN equal to NaN, +0 distinct from -0."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        return False
    both_nan = np.isnan(a) & np.isnan(b)
    return bool(np.all(both_nan | ((a == b) & (np.signbit(a) == np.signbit(b)))))


def compare_bits(run: RtlRun, golden: dict) -> dict:
    """Per unit: the RTL's stored rows (quantizer indices, norm unit's FP16 norms) and scores
    against the golden model, bit for bit."""
    idx_ok = norm_ok = True
    for (slot, h, tok, kv), (idx, norm, _sat) in run.rows.items():
        g = golden[slot]
        gi, gn = (g.k_indices, g.k_norms) if kv == 0 else (g.v_indices, g.v_norms)
        idx_ok &= bool(np.array_equal(idx, gi[h, tok]))
        norm_ok &= _same_bits(norm, float(gn[h, tok]))
    score_ok = bool(run.scores)
    for (slot, h, qi), scores in run.scores.items():
        want = golden[slot].scores[h, qi, :scores.size]
        score_ok &= _same_bits(scores, want)
    out = {"norm_unit": norm_ok and bool(run.rows), "quantizer": idx_ok and bool(run.rows),
           "norm_multiplier": score_ok}
    if run.outputs or any(g.outputs is not None for g in golden.values()):
        # every query's attention output: the value path's exp, bins, centroids, FWHT and scale
        out_ok = len(run.outputs) == len(run.scores) > 0
        for (slot, h, qi), vec in run.outputs.items():
            out_ok &= golden[slot].outputs is not None and _same_bits(vec, golden[slot].outputs[h, qi])
        out["output_scale"] = out_ok
    return out


def compare_cycles(run: RtlRun, schedule: dict) -> dict:
    """Per unit: every item's (entered, left) cycles in the RTL against the cycle model's."""
    out = {}
    for unit in run.timing:
        rtl = [(s, d) for _, s, d in run.timing[unit]]
        model = [tuple(x) for x in schedule.get(unit, [])]
        diff = [abs(a[1] - b[1]) for a, b in zip(rtl, model)]
        out[unit] = {"items": len(rtl), "items_model": len(model), "equal": rtl == model,
                     "max_abs_diff_cycles": max(diff, default=0),
                     "first_left_rtl": rtl[0][1] if rtl else None, "first_left_model": model[0][1] if model else None,
                     "last_left_rtl": rtl[-1][1] if rtl else None, "last_left_model": model[-1][1] if model else None}
    return out


def check(macro: MacroConfig, signs, trace, layer_ids: list[int], source: str, vcd_path=None) -> tuple[Comparison, RtlRun]:
    """Simulate the RTL on the slice and compare it with the golden and cycle models.

    macro: with explicit SRAM timing keys (`resolved_macro`); a key left null is one cycle on both sides."""
    mac = macro
    if trace.head_dim != mac.head_dim:
        raise ConfigError(source, "head_dim", f"the trace's head_dim {trace.head_dim}, got {mac.head_dim}")
    cb = lloyd_max_codebook(mac.head_dim, mac.bits)
    sign_table = {L: np.asarray(signs.vector(L), dtype=np.int8) for L in layer_ids}
    run = simulate_rtl(mac, sign_table, trace, layer_ids, cb.rom_centroids, cb.rom_boundaries, vcd_path)
    golden = golden_results(mac, signs, trace, layer_ids)
    counts: dict = {}
    schedule, total_model = hw_schedule(mac, signs, trace, layer_ids, source, counts)
    comp = Comparison(compare_bits(run, golden), compare_cycles(run, schedule), run.total_cycles, total_model,
                      run.overruns, run.cycles_simulated, counts)
    return comp, run
