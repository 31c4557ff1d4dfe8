"""`axelsim rtl`: write the RTL, simulate it on a trace slice, compare with the golden, cycle and
cost models. Returns a JSON-ready report (units in key names: cycles, um2, transistors)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

from axelsim.errors import ConfigError
from axelsim.io import atomic_path
from axelsim.rtl.activity import toggles_by_scope
from axelsim.rtl.compare import check, resolved_macro
from axelsim.rtl.harness import MacroTop
from axelsim.rtl.synth import NAND2_AREA_UM2, ElaboratedUnit, synthesize, write_verilog

MAX_INPUT_BITS = (1 << 16) - 2
"""Amaranth 0.5's netlist numbers a written design's input bits as the outputs of one cell, in 16
bits with 2 reserved for the constants: a design has at most 65,534 input bits (output ports are
not counted)."""

SYNTH_UNITS = {"norm_unit": (("norm",), ("norm_unit",)), "rotator": (("rotator",), ("rotator",)),
               "quantizer": (("quantizer",), ("quantizer",)),
               "table_generator": (("table",), ("table_generator", "table_sram")),
               "lookup_pipeline": (("lookup",), ("lookup_pipeline",)),
               "value_unit": (("scale", "exp", "bins_fin"), ("value_unit",)),
               "controller": (("ctl",), ())}
"""RTL unit -> (its MacroTop parts, the cost model's units it corresponds to). The RTL table
generator holds the table SRAM as registers, so it is compared with both cost-model units; the
value unit is the sum of its three parts; the cost model prices no controller."""
PART_FILES = {"norm": "norm_unit", "rotator": "rotator", "quantizer": "quantizer", "table": "table_generator",
              "lookup": "lookup_pipeline", "sram": "index_sram", "scale": "softmax_scale", "exp": "exp_unit",
              "bins_fin": "bins_finalize", "ctl": "controller"}
"""MacroTop part -> the file stem of its RTLIL / Verilog."""


def write_sources(top: MacroTop, out: Path, verilog: bool) -> list[str]:
    """RTLIL of every unit (and Verilog through Yosys when `verilog`) into out/."""
    designs = {attr: ElaboratedUnit(getattr(top, attr)) for attr in top.parts}
    for attr, design in designs.items():  # refused before any file is written
        if design.input_bits > MAX_INPUT_BITS:
            raise ConfigError("macro", "head_dim", f"a {PART_FILES[attr]} with at most {MAX_INPUT_BITS} input bits for "
                              f"the RTL writer (Amaranth 0.5 numbers a design's input bits in 16 bits), "
                              f"got {design.input_bits}")
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for attr, design in designs.items():
        unit, elab = PART_FILES[attr], getattr(top, attr)
        path = out / f"{unit}.il"
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(design.rtlil(unit))
        tmp.replace(path)
        written.append(path.name)
        if verilog:
            written.append(write_verilog(elab, out / f"{unit}.v").name)
    return written


def elaborated(loaded, tokens: int) -> MacroTop:
    """The macro's RTL units as `axelsim rtl` builds them for a slice of `tokens` tokens of one
    layer and one KV head (the token count sizes only the behavioural SRAM and the controller's
    key counter), without simulating them."""
    from axelsim.numerics.codebook import lloyd_max_codebook
    from axelsim.rtl.harness import sram_depth

    mac = resolved_macro(loaded)
    cb = lloyd_max_codebook(mac.head_dim, mac.bits)
    return MacroTop(mac, cb.rom_centroids, cb.rom_boundaries, sram_depth(mac, 1, 1, tokens), tokens)


def area_table(top: MacroTop, loaded, units: Optional[tuple[str, ...]] = None) -> dict:
    """Per unit (of SYNTH_UNITS, or only `units`): the RTL's synthesised estimate against the
    cost model's area."""
    from axelsim.cost.model import CostModel

    model = CostModel.from_macro(loaded).area_um2(1)
    rows = {}
    for unit, (attrs, cost_units) in SYNTH_UNITS.items():
        if not all(hasattr(top, a) for a in attrs) or (units is not None and unit not in units):
            continue
        parts = [synthesize(getattr(top, a)) for a in attrs]
        est = {k: sum(p[k] for p in parts) for k in ("transistors", "flip_flops", "area_um2")}
        cost = sum(model.get(u, 0.0) for u in cost_units)
        rows[unit] = {"transistors": est["transistors"], "flip_flops": est["flip_flops"],
                      "rtl_area_um2": est["area_um2"], "cost_model_area_um2": cost,
                      "area_ratio_cost_over_rtl": cost / est["area_um2"] if est["area_um2"] and cost_units else None,
                      "cost_model_units": list(cost_units)}
    return rows


ACTIVITY_ITEMS = {"norm_unit": "norm_unit", "rotator": "rotator", "quantizer": "quantizer",
                  "table_generator": "table_generator", "lookup_pipeline": "table_sram", "value_unit": "bins"}
"""RTL unit -> the unit whose items count its operations (vectors, vectors, vectors, tables,
keys scored, values binned)."""


def activity_table(vcd: Path, run, model_counts: dict) -> dict:
    """Per unit: toggles in the simulation (activity.toggles_by_scope) against the cycle model's
    counted actions of the corresponding cost-model units."""
    parts = {attr: unit for unit, (attrs, _) in SYNTH_UNITS.items() for attr in attrs}
    toggles = toggles_by_scope(vcd, parts)
    rows = {}
    for unit, (attrs, cost_units) in SYNTH_UNITS.items():
        if unit not in ACTIVITY_ITEMS or not all(hasattr(run.design, a) for a in attrs):
            continue
        items = len(run.timing.get(ACTIVITY_ITEMS[unit], []))
        actions = {f"{u}.{a}": n for u in cost_units for a, n in sorted(model_counts.get(u, {}).items())}
        total = sum(actions.values())
        t = toggles.get(unit, 0)
        rows[unit] = {"toggles": t, "operations": items, "toggles_per_operation": t / items if items else None,
                      "model_actions": total, "model_actions_by_kind": actions,
                      "model_actions_per_operation": total / items if items else None,
                      "toggles_per_model_action": t / total if total else None}
    return rows


def _amaranth_version() -> str:
    from importlib.metadata import version

    return version("amaranth")


def run_rtl(loaded, signs, view, out: Path, synth: bool = False, source: Optional[str] = None,
            vcd: Optional[Path] = None) -> dict:
    """The whole `axelsim rtl` run (see the module docstring). With `vcd`, the simulation's
    waveform is written there and the activity table is computed from it; without, neither
    (the simulator runs faster without tracing every signal)."""
    started = time.perf_counter()
    mac = resolved_macro(loaded)
    layer_ids = list(view.layer_indices)
    src = source or str(loaded.path)
    out.mkdir(parents=True, exist_ok=True)
    if vcd is not None:
        vcd.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(vcd) as tmp:
            comp, run = check(mac, signs, view, layer_ids, src, vcd_path=str(tmp))
    else:
        comp, run = check(mac, signs, view, layer_ids, src)
    top = run.design  # the design just simulated (every part elaborated) is the one written
    files = write_sources(top, out, verilog=synth)
    report = {"macro": loaded.config.name, "head_dim": mac.head_dim, "bits": mac.bits,
              "value_path_built": bool(mac.value_path.enabled and view.has_values), "trace": str(view.path or view.name),
              "layers": layer_ids, "kv_heads": view.kv_heads, "q_heads": view.q_heads,
              "tokens_written": 1 + max(int(p) for p in view.q_positions), "queries": int(len(view.q_positions)),
              **comp.to_dict(), "files": files, "simulator": "amaranth pysim " + _amaranth_version()}
    if vcd is not None:
        report["vcd"] = str(vcd)
        report["activity_by_unit"] = activity_table(vcd, run, comp.model_counts)
    if synth:
        report["area_by_unit"] = area_table(top, loaded)
        report["nand2_area_um2"] = NAND2_AREA_UM2
    report["bin_holds"] = run.bin_holds
    report["host_s"] = run.host_s
    report["wall_s"] = time.perf_counter() - started
    report["units"] = {"cycles": "clock cycles", "area": "um^2 at 45 nm (NAND2_X1 equivalents, NanGate FreePDK45)",
                       "wall_s": "seconds of host time", "host_s": "seconds of host time",
                       "toggles": "signal bits that changed value between clock cycles",
                       "model_actions": "actions counted by the cycle model (arithmetic operations, memory accesses)"}
    return report


def format_rtl(report: dict) -> str:
    """The printed summary: verdicts, then one line per unit."""
    lines = [f"rtl {report['macro']}  d={report['head_dim']} b={report['bits']}  "
             f"bit_exact={report['bit_exact']}  cycles_equal={report['cycles_equal']}  "
             f"total cycles rtl={report['total_cycles_rtl']} model={report['total_cycles_model']} "
             f"(error {report['end_to_end_cycle_error']:+.3%})  overruns={report['overruns']}",
             f"{'unit':<18}{'items':>6}{'equal':>7}{'max|diff|':>10}{'last left rtl/model':>22}"]
    for unit, c in report["cycles_by_unit"].items():
        lines.append(f"{unit:<18}{c['items']:>6}{str(c['equal']):>7}{c['max_abs_diff_cycles']:>10}"
                     f"{str(c['last_left_rtl']) + '/' + str(c['last_left_model']):>22}")
    for unit, a in report.get("area_by_unit", {}).items():
        ratio = a["area_ratio_cost_over_rtl"]
        lines.append(f"area {unit:<18} rtl {a['rtl_area_um2']:>10.0f} um2  cost model {a['cost_model_area_um2']:>10.0f} um2"
                     f"  ratio {ratio:.2f}" if ratio is not None else f"area {unit}: no RTL area")
    for unit, a in report.get("activity_by_unit", {}).items():
        per = a["toggles_per_model_action"]
        lines.append(f"activity {unit:<16} {a['toggles']:>9} toggles over {a['operations']:>3} operations, "
                     f"{a['model_actions']:>6} model actions" + (f", {per:.0f} toggles per action" if per else ""))
    lines.append("bit exact: " + ", ".join(f"{u}={v}" for u, v in report["bit_exact_by_unit"].items()))
    return "\n".join(lines)
