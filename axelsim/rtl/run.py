"""`axelsim rtl`: write the RTL, simulate it on a trace slice, compare with the golden, cycle and
cost models. Returns a JSON-ready report (units in key names: cycles, um2, transistors)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

from axelsim.config.macro import MacroConfig
from axelsim.numerics.codebook import lloyd_max_codebook
from axelsim.rtl.compare import check, resolved_macro
from axelsim.rtl.harness import MacroTop, sram_depth
from axelsim.rtl.synth import NAND2_AREA_UM2, rtlil_text, synthesize, write_verilog

SYNTH_UNITS = {"norm_unit": ("norm", ("norm_unit",)), "rotator": ("rotator", ("rotator",)),
               "quantizer": ("quantizer", ("quantizer",)),
               "table_generator": ("table", ("table_generator", "table_sram")),
               "lookup_pipeline": ("lookup", ("lookup_pipeline",))}
"""RTL unit -> (MacroTop attribute, the cost model's units it corresponds to). The RTL table
generator holds the table SRAM as registers, so it is compared with both cost-model units."""


def build_top(macro: MacroConfig, n_layers: int, kv_heads: int, tokens: int) -> MacroTop:
    cb = lloyd_max_codebook(macro.head_dim, macro.bits)
    return MacroTop(macro, cb.rom_centroids, cb.rom_boundaries, sram_depth(macro, n_layers, kv_heads, tokens))


def write_sources(top: MacroTop, out: Path, verilog: bool) -> list[str]:
    """RTLIL of every unit (and Verilog through Yosys when `verilog`) into out/."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for unit, (attr, _) in {**SYNTH_UNITS, "index_sram": ("sram", ())}.items():
        elab = getattr(top, attr)
        path = out / f"{unit}.il"
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(rtlil_text(elab, unit))
        tmp.replace(path)
        written.append(path.name)
        if verilog:
            written.append(write_verilog(elab, out / f"{unit}.v").name)
    return written


def area_table(top: MacroTop, loaded) -> dict:
    """Per unit: the RTL's synthesised estimate against the cost model's area."""
    from axelsim.cost.model import CostModel

    model = CostModel.from_macro(loaded).area_um2(1)
    rows = {}
    for unit, (attr, cost_units) in SYNTH_UNITS.items():
        est = synthesize(getattr(top, attr))
        cost = sum(model.get(u, 0.0) for u in cost_units)
        rows[unit] = {"transistors": est["transistors"], "flip_flops": est["flip_flops"],
                      "rtl_area_um2": est["area_um2"], "cost_model_area_um2": cost,
                      "area_ratio_cost_over_rtl": cost / est["area_um2"] if est["area_um2"] else None,
                      "cost_model_units": list(cost_units)}
    return rows


def run_rtl(loaded, signs, view, out: Path, synth: bool = False, source: Optional[str] = None) -> dict:
    """The whole `axelsim rtl` run (see the module docstring)."""
    started = time.perf_counter()
    mac = resolved_macro(loaded)
    layer_ids = list(view.layer_indices)
    src = source or str(loaded.path)
    top = build_top(mac, len(layer_ids), view.kv_heads, view.tokens)
    files = write_sources(top, out, verilog=synth)
    comp, run = check(mac, signs, view, layer_ids, src, vcd_path=None)
    report = {"macro": loaded.config.name, "head_dim": mac.head_dim, "bits": mac.bits,
              "value_path_built": False, "trace": str(view.path or view.name),
              "layers": layer_ids, "kv_heads": view.kv_heads, "q_heads": view.q_heads,
              "tokens_written": 1 + max(int(p) for p in view.q_positions), "queries": int(len(view.q_positions)),
              **comp.to_dict(), "files": files}
    if synth:
        report["area_by_unit"] = area_table(top, loaded)
        report["nand2_area_um2"] = NAND2_AREA_UM2
    report["wall_s"] = time.perf_counter() - started
    report["units"] = {"cycles": "clock cycles", "area": "um^2 at 45 nm (NAND2_X1 equivalents, NanGate FreePDK45)",
                       "wall_s": "seconds of host time"}
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
    lines.append("bit exact: " + ", ".join(f"{u}={v}" for u, v in report["bit_exact_by_unit"].items()))
    return "\n".join(lines)
