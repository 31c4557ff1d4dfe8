"""Every claim of the AXELRAM paper set against what axelsim measures: writes docs/validation.md.

    .venv/bin/python scripts/reproduce_paper.py                 # full version, about 2 minutes on 2 cores (warm numba cache; real traces and row 28's executed count)
    .venv/bin/python scripts/reproduce_paper.py --quick --out /tmp/v.md   # smaller shapes (the test's)

Nothing in the generated table is typed in: the "paper" column restates the claim of
/work/shared/PAPER.md, the "axelsim measured" column is computed when this script runs, from
the cycle model's counters (hw.macro.simulate, hw.baselines.simulate_baseline), the cost model
(CostModel) fed with those counted actions and simulated times, the golden model and the float64
references, and the sensitivity / perplexity JSON of the calibrate study when it is present.
Hand-written commentary lives in docs/validation_notes.md and is included verbatim.

Shapes (full / --quick):
- paper point: synthetic trace, d = 128, 1 layer, 1 KV head, 1 query head, one query at position
  T - 1, T = 4096 / 256, through macros/axelram_paper.yaml and every baseline. Each design runs
  twice: with every key and value written through the write path ('simulate'), and with the
  cache preloaded ('preloaded', writes untimed and uncounted), so that write-path and per-query
  counts and energies are separated by subtraction of measured quantities.
- reduction sweep: T in 256..4096 / 64, 256 and b in 2, 3, 4, preloaded, counters only.
- real traces (macros/axelram_d64.yaml): smollm2_austen_full all 30 layers x 16 queries and
  smollm2_austen_long all 4 layers x 16 queries / 2 layers x 2 queries of the full trace.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from axelsim import api  # noqa: E402
from axelsim.cost import CostModel  # noqa: E402
from axelsim.numerics.codebook import lloyd_max_codebook  # noqa: E402
from axelsim.numerics import opcount  # noqa: E402
from axelsim.trace import SynthSpec, synth_trace  # noqa: E402

PAPER_MACRO = ROOT / "macros" / "axelram_paper.yaml"
D64_MACRO = ROOT / "macros" / "axelram_d64.yaml"
TRACES = {"smollm2_austen_full": ROOT / "traces" / "smollm2_austen_full.safetensors",
          "smollm2_austen_long": ROOT / "traces" / "smollm2_austen_long.safetensors"}
NOTES = ROOT / "docs" / "validation_notes.md"
CHIP_TABLE = ROOT / "docs" / "validation_chip.md"
SCRIPT = "scripts/reproduce_paper.py"

# The paper's figures (PAPER.md), the claim column. N(0, 1) units for the codebook.
PAPER_CENTROIDS_B3 = (0.2451, 0.7560, 1.3439, 2.1519)
PAPER_BOUNDARIES_B3 = (0.0, 0.5005, 1.0500, 1.7479)
PAPER_DISTORTION_B3 = 0.03455
PAPER_8B = {"layers": 32, "kv_heads": 8, "tokens": 4096}
PAPER_POINT_DESIGNS = ("axelram", "fp16", "dequant_rotated", "kivi", "dequant_inverse_rotate")
"""AXELRAM and every baseline of docs/cycle_model.md, at the paper point."""


@dataclass
class Row:
    """One line of the table: a claim, the paper's figure, ours, the verdict and the command."""

    section: str
    claim: str
    paper: str
    measured: str
    agrees: str  # "yes", "no", "partly", "n/a"
    command: str
    values: dict = field(default_factory=dict)  # raw measured numbers (for tests and the JSON)


@dataclass
class Shapes:
    tokens: int
    sweep_tokens: tuple
    sweep_bits: tuple
    real: dict  # trace name -> selection kwargs for api.simulate


FULL = Shapes(4096, (256, 512, 1024, 2048, 4096), (2, 3, 4),
              {"smollm2_austen_full": {}, "smollm2_austen_long": {"queries": 16}})
QUICK = Shapes(256, (64, 256), (2, 3, 4), {"smollm2_austen_full": {"layers": [0, 29], "queries": 2}})


def rel(path: Path) -> str:
    """A path relative to the repository when it is inside it (the page must not name the host's folders)."""
    path = Path(path).resolve()
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def verdict(ok: bool) -> str:
    return "yes" if ok else "no"


def fmt_int(x: float) -> str:
    return f"{int(round(x)):,}"


def fmt_pj(pj: float) -> str:
    """Energy with a readable unit (input in pJ)."""
    for unit, scale in (("uJ", 1e6), ("nJ", 1e3)):
        if abs(pj) >= scale:
            return f"{pj / scale:.3g} {unit}"
    return f"{pj:.3g} pJ"


def fmt_area(um2: float) -> str:
    return f"{um2 / 1e6:.3g} mm^2" if um2 >= 1e4 else f"{um2:.3g} um^2"


# ------------------------------------------------------------------------------------------------
# Simulation helpers
# ------------------------------------------------------------------------------------------------
def paper_trace(tokens: int, dim: int = 128):
    """The synthetic paper-point trace: 1 layer, 1 KV head, 1 query head, one query at T - 1."""
    return synth_trace(SynthSpec(layers=1, kv_heads=1, q_heads=1, head_dim=dim, tokens=tokens,
                                 query_positions=[tokens - 1]))


def synth_command(tokens: int) -> str:
    return (f"axelsim trace synth --layers 1 --kv-heads 1 --q-heads 1 --head-dim 128 --tokens {tokens} "
            f"--query-positions {tokens - 1} --out t{tokens}.safetensors")


def run_command(tokens: int, macro: str = "macros/axelram_paper.yaml") -> str:
    return f"{synth_command(tokens)} && axelsim run {macro} --trace t{tokens}.safetensors --json r.json"


def paper_macro(bits: int = 3, node_nm: int = 45):
    overrides: dict[str, Any] = {"technology.node_nm": node_nm}
    if bits != 3:
        overrides.update({"bits": bits, "write_path.comparators": 128 * ((1 << bits) - 1)})
    return api.load_macro(PAPER_MACRO, overrides)


def simulate_design(kind: str, loaded, trace, prefill: str):
    """The cycle model of AXELRAM ('axelram') or a baseline ('fp16', 'dequant_inverse_rotate', ...): a SimResult."""
    from axelsim.hw.baselines import simulate_baseline
    from axelsim.hw.macro import simulate

    signs = api.sign_rom(loaded, trace)
    timing = api.sram_timing(loaded, kind)  # derived from the technology table, as `axelsim run`
    if kind == "axelram":
        return simulate(loaded.config, signs, trace, prefill=prefill, timing=timing)
    return simulate_baseline(kind, loaded.config, trace, signs, prefill=prefill, timing=timing)


def cost_model(kind: str, loaded) -> CostModel:
    return CostModel.from_macro(loaded) if kind == "axelram" else CostModel.for_baseline(kind, loaded)


def subtract_actions(full: dict, part: dict) -> dict:
    """Per unit and action, full - part (the write path: full run minus the preloaded run)."""
    out: dict = {}
    for unit, actions in full.items():
        for action, count in actions.items():
            rest = count - part.get(unit, {}).get(action, 0)
            if rest < 0:
                raise RuntimeError(f"preloaded run counted more {unit}.{action} than the full run")
            if rest:
                out.setdefault(unit, {})[action] = rest
    return out


def dominant(energy: dict) -> tuple[str, float]:
    """The largest single contribution ('<unit> leakage' or '<unit> dynamic') and its share of the total."""
    parts = {f"{u} leakage": pj for u, pj in energy["leakage"].items()}
    parts.update({f"{u} dynamic": pj for u, pj in energy["dynamic_by_component"].items()})
    name = max(parts, key=parts.get)
    return name, parts[name] / energy["total"] if energy["total"] else 0.0


# ------------------------------------------------------------------------------------------------
# Sections: each returns rows (and may add entries to `extra`, the Markdown details)
# ------------------------------------------------------------------------------------------------
def normal_cdf(x: float) -> float:
    return 0.5 * math.erfc(-x / math.sqrt(2.0))


def normal_pdf(x: float) -> float:
    return math.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi) if math.isfinite(x) else 0.0


def section_codebook(shapes: Shapes, extra: dict) -> list[Row]:
    cb = lloyd_max_codebook(128, 3)
    cmd = "axelsim codebook --dim 128 --bits 3"
    cents, bounds = np.asarray(cb.centroids), np.asarray(cb.boundaries)
    # Independent check of the two Lloyd-Max conditions with the closed-form truncated-normal mean.
    edges = [-math.inf, *bounds.tolist(), math.inf]
    cond_mean = [(normal_pdf(a) - normal_pdf(b)) / (normal_cdf(b) - normal_cdf(a)) for a, b in zip(edges[:-1], edges[1:])]
    centroid_res = float(np.max(np.abs(cents - np.array(cond_mean))))
    midpoint_res = float(np.max(np.abs(bounds - 0.5 * (cents[:-1] + cents[1:]))))
    mass = np.array([normal_cdf(b) - normal_cdf(a) for a, b in zip(edges[:-1], edges[1:])])
    distortion_indep = float(1.0 - np.sum(mass * cents ** 2))  # E[X^2] - sum P_j g_j^2 at the optimum
    pos_c, pos_b = cents[cents > 0], bounds[bounds >= 0]
    c_err = float(np.max(np.abs(pos_c - np.array(PAPER_CENTROIDS_B3))))
    b_err = float(np.max(np.abs(pos_b - np.array(PAPER_BOUNDARIES_B3))))
    rom_rel = float(np.max(np.abs(np.concatenate([cb.rom_centroids - cents, cb.rom_boundaries[bounds != 0] - bounds[bounds != 0]])
                                  / np.abs(np.concatenate([cents, bounds[bounds != 0]])))))
    sign_bytes = CostModel.from_macro(paper_macro()).memory_bytes(1, 1, 1)["sign_rom"]
    extra["codebook"] = (
        f"Centroids (N(0, 1)): {', '.join(f'{c:+.6f}' for c in cents)}; boundaries: "
        f"{', '.join(f'{b:+.6f}' for b in bounds)}; distortion {cb.distortion:.6f} per coordinate "
        f"(N(0, 1)), {cb.distortion / 128:.3e} per coordinate of a unit vector at d = 128. FP16 ROM values "
        f"differ from the float64 ones by at most {rom_rel:.2e} relative.")
    return [
        Row("codebook", "Codebook ROM size (b = 3: 8 centroids + 7 boundaries in FP16)", "30 bytes",
            f"{cb.rom_bytes} bytes", verdict(cb.rom_bytes == 30), cmd, {"rom_bytes": cb.rom_bytes}),
        Row("codebook", "Lloyd-Max optimality residuals", "< 1e-11",
            f"centroid {cb.centroid_residual:.1e}, midpoint {cb.midpoint_residual:.1e} (library); "
            f"{centroid_res:.1e} / {midpoint_res:.1e} (closed-form truncated-normal check here), N(0, 1) units",
            verdict(max(cb.centroid_residual, cb.midpoint_residual, centroid_res, midpoint_res) < 1e-11), cmd,
            {"centroid_residual": centroid_res, "midpoint_residual": midpoint_res}),
        Row("codebook", "3-bit centroids of N(0, 1)", "±0.2451, ±0.7560, ±1.3439, ±2.1519",
            "±" + ", ±".join(f"{c:.4f}" for c in pos_c) + f" (max deviation {c_err:.1e})",
            verdict(c_err <= 5e-5), cmd, {"centroids": cents.tolist()}),
        Row("codebook", "3-bit boundaries of N(0, 1)", "0, ±0.5005, ±1.0500, ±1.7479",
            ", ±".join(f"{b:.4f}" for b in pos_b) + f" (max deviation {b_err:.1e})",
            verdict(b_err <= 5e-5), cmd, {"boundaries": bounds.tolist()}),
        Row("codebook", "3-bit MSE per coordinate (N(0, 1); divide by d for a unit vector)", "about 0.03455",
            f"{cb.distortion:.5f} (independent: {distortion_indep:.5f})",
            verdict(abs(cb.distortion - PAPER_DISTORTION_B3) < 5e-6), cmd,
            {"distortion": cb.distortion, "distortion_independent": distortion_indep}),
        Row("codebook", "Sign ROM per layer (d bits)", "16 bytes for d = 128", f"{sign_bytes:g} bytes",
            verdict(sign_bytes == 16), "CostModel.memory_bytes (also `axelsim run --json`: memory_bytes.sign_rom)",
            {"sign_rom_bytes": sign_bytes}),
    ]


def section_paper_point(shapes: Shapes, extra: dict, tick: Callable[[str], None]) -> list[Row]:
    """Counters, cycles, energy and area of the paper's macro and every baseline at T = shapes.tokens."""
    T, d, L = shapes.tokens, 128, 8
    trace = paper_trace(T)
    loaded = {45: paper_macro(3, 45), 7: paper_macro(3, 7)}
    runs: dict = {}
    for kind in PAPER_POINT_DESIGNS:
        for prefill in ("simulate", "preloaded"):
            tick(f"paper point: {kind} ({prefill})")
            runs[kind, prefill] = simulate_design(kind, loaded[45], trace, prefill)
    ax_full, ax_q = runs["axelram", "simulate"], runs["axelram", "preloaded"]
    vectors = 2 * T  # every key and value of the one KV head
    write_actions = subtract_actions(ax_full.actions, ax_q.actions)
    wp = {kind: ax_full.ops[kind]["write_path"] for kind in ax_full.ops}
    per_vec = {kind: n / vectors for kind, n in wp.items()}
    rot_adds = sum(n for a, n in write_actions.get("rotator", {}).items() if a.startswith("add.")) / vectors
    norm_mults = sum(n for a, n in write_actions.get("norm_unit", {}).items() if a.startswith("mul.")) / vectors
    thr_mults = sum(n for a, n in write_actions.get("quantizer", {}).items() if a.startswith("mul.")) / vectors
    inventory = CostModel.from_macro(loaded[45]).inventory(1)
    inst_cmp = sum(n for r, n in inventory["quantizer"].items() if r.startswith("cmp."))
    inst_mul_write = sum(n for u in ("norm_unit", "quantizer") for r, n in inventory[u].items() if r.startswith("mul."))
    inst_tree_adds = sum(n for r, n in inventory["lookup_pipeline"].items() if r.startswith("add."))
    cmd = run_command(T) + f"  (write/query split: {SCRIPT})"
    rows = [
        Row("write path", "FWHT rotator: add/sub per vector (d = 128, 7 stages)", "448 add/sub",
            f"{per_vec['butterflies']:g} butterflies = {rot_adds:g} add/sub operations per vector "
            f"(one butterfly is one add and one subtract)",
            "partly" if per_vec["butterflies"] == 448 else "no", cmd,
            {"butterflies_per_vector": per_vec["butterflies"], "rotator_addsub_per_vector": rot_adds}),
        Row("write path", "Quantizer comparators (d x (2^b - 1))", "896 comparators",
            f"{per_vec['comparisons']:g} comparisons per vector counted; {inst_cmp} comparators instantiated",
            verdict(per_vec["comparisons"] == 896 and inst_cmp == 896), cmd,
            {"comparisons_per_vector": per_vec["comparisons"], "comparators": inst_cmp}),
        Row("write path", "Stored bits per vector (d b index bits + FP16 norm)", "400 bits = 50 bytes",
            f"{ax_full.ops['sram_write_bits']['write_path'] / vectors:g} bits written per vector",
            verdict(ax_full.ops["sram_write_bits"]["write_path"] / vectors == 400), cmd,
            {"write_bits_per_vector": ax_full.ops["sram_write_bits"]["write_path"] / vectors}),
        Row("write path", "Write path is multiplier-free ('zero multipliers')", "0 multiplications",
            f"{per_vec['multiplications']:g} multiplications per vector ({norm_mults + thr_mults:g} booked to the norm "
            f"unit and quantizer: d = {d} squares + 2^b - 1 = {L - 1} threshold multiplies by the contract), "
            f"{per_vec['square_roots']:g} square root, {per_vec['divisions']:g} divisions; {inst_mul_write} multipliers "
            f"instantiated",
            verdict(per_vec["multiplications"] == 0), cmd,
            {"write_mults_per_vector": per_vec["multiplications"], "squares_per_vector": norm_mults,
             "threshold_mults_per_vector": thr_mults, "sqrt_per_vector": per_vec["square_roots"],
             "div_per_vector": per_vec["divisions"], "write_multipliers": inst_mul_write}),
    ]
    # Read path: per query, from the preloaded run (the query alone).
    mpq = ax_q.multiplications_per_query
    table_mults = sum(n for a, n in ax_q.actions.get("table_generator", {}).items() if a.startswith("mul."))
    norm_mults_q = sum(n for a, n in ax_q.actions.get("lookup_pipeline", {}).items() if a.startswith("mul."))
    conv = runs["fp16", "preloaded"].ops["multiplications"]["read_path"]
    axel = ax_q.ops["multiplications"]["read_path"]
    tree_adds_per_key = (ax_q.ops["additions"]["read_path"] - d * int(math.log2(d))) / T
    read_bfly = ax_q.ops["butterflies"]["read_path"]
    deq_inv = sum(n for a, n in runs["dequant_inverse_rotate", "preloaded"].actions.get("inverse_rotator", {}).items())
    try:
        from axelsim.hw.lookup import lookup_stage_timing

        tree_stages = dict((s, lat) for s, lat, _ in lookup_stage_timing(loaded[45].config, 1)).get("adder_tree")
    except (ImportError, AttributeError, TypeError):  # the hw engineer may rename it
        tree_stages = None
    mem45 = CostModel.from_macro(loaded[45]).memory_bytes(1, 1, T)
    rows += [
        Row("read path", "Table precompute multiplications per query (d x 2^b)", "1,024",
            f"{fmt_int(table_mults)}", verdict(table_mults == d * L), cmd, {"table_mults": table_mults}),
        Row("read path", f"Norm multiplications per query (one per key, T = {T})", f"{fmt_int(T)} (paper: T = 4096)",
            f"{fmt_int(norm_mults_q)}", verdict(norm_mults_q == T), cmd, {"norm_mults": norm_mults_q}),
        Row("read path", f"Multiplications per query, AXELRAM vs conventional dot product (T = {T})",
            "5,120 vs 524,288 at T = 4096" if T == 4096 else f"d 2^b + T vs T d (paper's T = 4096)",
            f"{fmt_int(axel)} (AXELRAM read-path counter) vs {fmt_int(conv)} (FP16 baseline's counter)",
            verdict(axel == d * L + T and conv == T * d), cmd, {"axelram_mults": axel, "conventional_mults": conv}),
        Row("read path", "Multiplication reduction (\"a mathematical identity\")", "102.4x at T = 4096",
            f"{conv / axel:.4g}x at T = {T} (report key multiplications_per_query.reduction: {mpq['reduction']:.4g}x); "
            f"over T and b: docs/img/validation_reduction.png",
            verdict(abs(conv / axel - T * d / (d * L + T)) < 1e-9 and (T != 4096 or abs(conv / axel - 102.4) < 1e-9)), cmd,
            {"reduction": conv / axel, "report_reduction": mpq["reduction"]}),
        Row("read path", "Table SRAM (d 2^b FP16 entries)", "2 KB (1,024 entries)",
            f"{mem45['table']:g} bytes, {ax_q.actions['table_sram'].get('write', 0):g} entries written per query",
            verdict(mem45["table"] == 2048), cmd, {"table_bytes": mem45["table"]}),
        Row("read path", "Adder tree: adders and stages", "127 adders, 7 stages",
            f"{tree_adds_per_key:g} additions counted per key, {inst_tree_adds} adders instantiated, "
            + (f"{tree_stages} pipeline cycles at 1 stage per cycle" if tree_stages is not None else "stage count not exposed by hw.lookup"),
            verdict(tree_adds_per_key == 127 and inst_tree_adds == 127 and tree_stages in (7, None)), cmd,
            {"tree_adds_per_key": tree_adds_per_key, "tree_adders": inst_tree_adds, "tree_stages": tree_stages}),
        Row("read path", "No inverse transform on the read path", "none (only the query is rotated)",
            f"{read_bfly:g} butterflies per query on the read path (the query rotation); the dequantize baseline "
            f"runs {fmt_int(deq_inv)} inverse-FWHT add/sub per query ({deq_inv / (2 * T):g} per key and as many per value)",
            verdict(read_bfly == d // 2 * int(math.log2(d))), cmd, {"read_butterflies": read_bfly}),
    ]
    # Value path against the baselines (per query, from the preloaded runs).
    vq = {k: runs[k, "preloaded"].ops for k in PAPER_POINT_DESIGNS}
    vm = {k: vq[k]["multiplications"]["value_path"] for k in vq}
    va = {k: vq[k]["additions"]["value_path"] for k in vq}
    vb = {k: vq[k]["butterflies"]["value_path"] for k in vq}
    deq_value_rot = vq["dequant_inverse_rotate"]["butterflies"]
    rows.append(Row(
        "value path", f"Value side kept in the rotated domain (paper: not described; section 4), per query, T = {T}",
        "not described",
        f"multiplications {fmt_int(vm['axelram'])} vs {fmt_int(vm['dequant_rotated'])} (fair dequantizer, rotated domain), "
        f"{fmt_int(vm['dequant_inverse_rotate'])} (dequantize-and-inverse-rotate baseline) and "
        f"{fmt_int(vm['fp16'])} (FP16); additions {fmt_int(va['axelram'])} vs {fmt_int(va['dequant_inverse_rotate'])} / "
        f"{fmt_int(va['fp16'])}; inverse FWHT {vb['axelram']:g} butterflies per query (one transform)",
        "n/a", cmd, {"value_mults": vm, "value_adds": va, "value_butterflies": vb}))
    extra["value"] = (
        f"Value path, per query at T = {T}: AXELRAM multiplies T times for the softmax scale, T times for the "
        f"weights p_t ||v_t||, d 2^b times for the centroids and d + 1 times for the output scale "
        f"(= {fmt_int(2 * T + d * L + d + 1)} by formula; counted {fmt_int(vm['axelram'])}); it still adds T d "
        f"times into the (coordinate, level) bins, so the additions stay of order T d "
        f"({fmt_int(va['axelram'])} counted vs {fmt_int(va['fp16'])} for FP16). The dequantize baseline's "
        f"{fmt_int(vm['dequant_inverse_rotate'])} value-path multiplications include d per value to dequantize, and it runs "
        f"{fmt_int(deq_value_rot['value_path'])} inverse-FWHT butterflies on the value path (a whole transform per value) "
        f"against AXELRAM's {vb['axelram']:g} (one transform per query).")
    # Cycles (the paper gives none).
    rows.append(Row(
        "cycles", f"Cycles per query (T = {T}) and per written token, paper macro at 1 GHz", "not given",
        f"query {fmt_int(ax_q.cycles['total'])} cycles (read {fmt_int(ax_q.cycles['read'])}, value "
        f"{fmt_int(ax_q.cycles['value'])}, precompute {ax_q.cycles['precompute']}); write "
        f"{(ax_full.cycles['total'] - ax_q.cycles['total']) / T:.3g} cycles per token (K and V); FP16 baseline "
        f"query {fmt_int(runs['fp16', 'preloaded'].cycles['total'])}, dequantize baseline "
        f"{fmt_int(runs['dequant_inverse_rotate', 'preloaded'].cycles['total'])}",
        "n/a", cmd, {"query_cycles": ax_q.cycles["total"], "fp16_query_cycles": runs["fp16", "preloaded"].cycles["total"],
                     "write_cycles_per_token": (ax_full.cycles["total"] - ax_q.cycles["total"]) / T}))
    # Energy and area at 45 nm and 7 nm, from the counted actions and the simulated times.
    energy_table = []
    values: dict = {}
    for node in (45, 7):
        for kind in PAPER_POINT_DESIGNS:
            cost = cost_model(kind, loaded[node])
            full, q = runs[kind, "simulate"], runs[kind, "preloaded"]
            e_query = cost.energy_pj(q.actions, q.time_s, 1)
            w_time = full.time_s - q.time_s
            e_write = cost.energy_pj(subtract_actions(full.actions, q.actions), w_time, 1)
            area = cost.area_um2(1)
            storage = cost.row_store(1)[0]
            dom_q, share_q = dominant(e_query)
            values[node, kind] = {"query_pj": e_query["total"], "query_dynamic_pj": e_query["dynamic_total"],
                                  "query_leakage_pj": e_query["leakage_total"], "token_pj": e_write["total"] / T,
                                  "token_dynamic_pj": e_write["dynamic_total"] / T, "area_um2": area["total"],
                                  "storage_area_share": area[storage] / area["total"], "dominant_query": dom_q,
                                  "dominant_share": share_q}
            energy_table.append(
                f"| {node} nm | {kind} | {fmt_pj(e_query['total'])} | {fmt_pj(e_query['dynamic_total'])} | "
                f"{fmt_pj(e_query['leakage_total'])} | {dom_q} ({100 * share_q:.0f} %) | {fmt_pj(e_write['total'] / T)} | "
                f"{fmt_pj(e_write['dynamic_total'] / T)} | {fmt_area(area['total'])} ({100 * area[storage] / area['total']:.1f} % {storage}) |")
    extra["energy"] = (
        "| node | design | energy per query | of which dynamic | of which leakage | largest contribution | "
        "energy per stored token (K+V, one head) | of which dynamic | area (storage share) |\n"
        "|---|---|---|---|---|---|---|---|---|\n" + "\n".join(energy_table))
    for node in (45, 7):
        a, f16, dq = values[node, "axelram"], values[node, "fp16"], values[node, "dequant_inverse_rotate"]
        fair, kivi = values[node, "dequant_rotated"], values[node, "kivi"]
        rows.append(Row(
            "energy", f"Energy per query at T = {T}, {node} nm (paper: no energy figure; implied by fewer multiplications)",
            "not given",
            f"AXELRAM {fmt_pj(a['query_pj'])} ({fmt_pj(a['query_dynamic_pj'])} dynamic) vs FP16 {fmt_pj(f16['query_pj'])} "
            f"({fmt_pj(f16['query_dynamic_pj'])}) vs fair dequantizer (dequant_rotated) {fmt_pj(fair['query_pj'])} "
            f"({fmt_pj(fair['query_dynamic_pj'])}) vs KIVI 2-bit {fmt_pj(kivi['query_pj'])} ({fmt_pj(kivi['query_dynamic_pj'])}) "
            f"vs dequantize-and-inverse-rotate {fmt_pj(dq['query_pj'])} ({fmt_pj(dq['query_dynamic_pj'])}); "
            f"largest: {a['dominant_query']} ({100 * a['dominant_share']:.0f} %)",
            "n/a", cmd + " and CostModel at technology.node_nm", {k: values[node, k] for k in PAPER_POINT_DESIGNS}))
        rows.append(Row(
            "energy", f"Energy per stored token (K and V of one head) and area, {node} nm", "not given",
            f"AXELRAM {fmt_pj(a['token_pj'])} ({fmt_pj(a['token_dynamic_pj'])} dynamic) vs FP16 {fmt_pj(f16['token_pj'])} "
            f"vs fair dequantizer {fmt_pj(fair['token_pj'])} vs KIVI {fmt_pj(kivi['token_pj'])} "
            f"vs dequantize-and-inverse-rotate {fmt_pj(dq['token_pj'])}; area {fmt_area(a['area_um2'])} vs "
            f"{fmt_area(f16['area_um2'])} vs {fmt_area(fair['area_um2'])} vs {fmt_area(kivi['area_um2'])} vs "
            f"{fmt_area(dq['area_um2'])} (storage {100 * a['storage_area_share']:.0f} % of AXELRAM's)",
            "n/a", cmd + " and CostModel at technology.node_nm", {}))
    # bit-exactness of the cycle model on this synthetic point
    from axelsim.report.numerics import compare_numerics

    tick("paper point: golden model and float64 reference")
    num = compare_numerics(loaded[45].config, api.sign_rom(loaded[45], trace), trace, ax_full.scores, ax_full.outputs)
    rows.append(Row(
        "numerics", f"Cycle model = golden model bit for bit, synthetic d = 128, T = {T}", "(no simulator in the paper)",
        f"bit_exact {num['bit_exact']}; score rel. RMSE {num['score_rel_rmse']:.3g} vs float64 exact attention",
        verdict(bool(num["bit_exact"])), run_command(T) + "  (numerics.bit_exact)", {"bit_exact": bool(num["bit_exact"])}))
    extra["paper_point"] = {"write_per_vector": per_vec, "values": {f"{n}nm/{k}": v for (n, k), v in values.items()}}
    return rows


READ_KINDS = ("multiplications", "additions", "table_lookups", "sram_read_bits")


def section_reduction(shapes: Shapes, extra: dict, img: Optional[Path], tick: Callable[[str], None]) -> list[Row]:
    """Read-path counters at several T and b (preloaded), each against an independent count
    (numerics/opcount.py: a float64 read path that counts every operation as it executes), and
    the reduction they give against the paper's closed form."""
    d = 128
    points = []
    for bits in shapes.sweep_bits:
        loaded = paper_macro(bits)
        cb = lloyd_max_codebook(d, bits)
        for T in shapes.sweep_tokens:
            tick(f"reduction sweep: b = {bits}, T = {T}")
            trace = paper_trace(T)
            res = simulate_design("axelram", loaded, trace, "preloaded")
            signs = api.sign_rom(loaded, trace).vector(0)
            counted = opcount.count_layer(np.asarray(trace.k(0), dtype=np.float64), None,
                                          np.asarray(trace.q(0), dtype=np.float64), trace.q_positions, signs,
                                          cb.rom_boundaries, cb.rom_centroids, loaded.config.row_bits, write=False)
            axel = res.ops["multiplications"]["read_path"]
            points.append({"bits": bits, "tokens": T, "axelram_mults": axel, "conventional_mults": T * d,
                           "executed_mults": counted["multiplications"]["read_path"],
                           "counters_equal_executed": all(res.ops[k]["read_path"] == counted[k]["read_path"]
                                                          for k in READ_KINDS),
                           "reduction": T * d / axel, "closed_form": T * d / (d * (1 << bits) + T)})
    worst = max(abs(p["reduction"] - p["closed_form"]) for p in points)
    equal = all(p["counters_equal_executed"] for p in points)
    if img is not None:
        plot_reduction(points, d, img)
    extra["reduction"] = points
    listing = "; ".join(f"b={p['bits']} T={p['tokens']}: {p['reduction']:.4g}x" for p in points)
    return [Row("read path", "Reduction d T / (d 2^b + T) over T and b: the cycle model's read-path counters "
                "against operations counted as they execute (numerics/opcount.py), and against the formula",
                "102.4x at d = 128, b = 3, T = 4096 (formula)",
                f"{listing}; counters {'equal' if equal else 'DIFFER from'} the executed count "
                f"({', '.join(READ_KINDS)}) at all {len(points)} points; largest deviation from the formula {worst:.1e}",
                verdict(equal and worst < 1e-9), f"{SCRIPT} (docs/img/validation_reduction.png)", {"points": points})]


BALANCED_MACRO = ROOT / "macros" / "axelram_balanced.yaml"


def _point_figures(kind: str, loaded, trace, T: int) -> dict:
    """Cycles, energy (pJ) and area of one design at the paper point: a run with every key and
    value written and a preloaded run, the write path as their difference."""
    full = simulate_design(kind, loaded, trace, "simulate")
    q = simulate_design(kind, loaded, trace, "preloaded")
    cost = cost_model(kind, loaded)
    e_q = cost.energy_pj(q.actions, q.time_s, 1)
    e_w = cost.energy_pj(subtract_actions(full.actions, q.actions), full.time_s - q.time_s, 1)
    return {"query_cycles": q.cycles["total"], "write_cycles_per_token": (full.cycles["total"] - q.cycles["total"]) / T,
            "decode_step_cycles": max(full.decode_cycles),
            "query_pj": e_q["total"], "query_leakage_share": e_q["leakage_total"] / e_q["total"],
            "index_sram_dynamic_pj": e_q["dynamic_by_component"].get("index_sram", 0.0),
            "token_pj": e_w["total"] / T, "area_um2": cost.area_um2(1)["total"]}


def section_design_points(shapes: Shapes, extra: dict, tick: Callable[[str], None]) -> list[Row]:
    """The paper's write path against the balanced one, and the paper macro's energy under each
    SRAM energy source (technology.sram_cells, technology.sram_energy), at the paper point."""
    from axelsim.hw import norm_unit, rotator

    T = shapes.tokens
    trace = paper_trace(T)
    paper, balanced = paper_macro(), api.load_macro(BALANCED_MACRO, {"technology.node_nm": 45})
    tick("design points: paper vs balanced")
    fig = {name: _point_figures("axelram", loaded, trace, T) for name, loaded in (("paper", paper), ("balanced", balanced))}
    ii = {name: norm_unit.norm_timing(loaded.config)[1] for name, loaded in (("paper", paper), ("balanced", balanced))}
    rot_ii = rotator.rotator_timing(balanced.config)[1]
    port = api.sram_timing(balanced, "axelram").bank_ii_cycles + 1  # K and V share a bank; in-order port
    p, b = fig["paper"], fig["balanced"]
    keeps_up = ii["balanced"] == rot_ii and b["write_cycles_per_token"] < p["write_cycles_per_token"]
    keeps_up = keeps_up and round(b["write_cycles_per_token"]) == max(2 * ii["balanced"], port)
    same_query = b["query_cycles"] == p["query_cycles"]
    cmd = f"{run_command(T)} && axelsim run macros/axelram_balanced.yaml --trace t{T}.safetensors --json b.json"
    rows = [Row(
        "design", f"Balanced write path (2^b - 1 = {balanced.config.write_path.threshold_multipliers} threshold "
        f"multipliers) against the paper's one multiplier, T = {T}, 45 nm: the write path keeps up with the rotator, "
        "the query path is unchanged", "not given (the paper draws one threshold multiplier)",
        f"norm-unit II {ii['paper']} -> {ii['balanced']} cycles per vector (rotator II {rot_ii}); write "
        f"{p['write_cycles_per_token']:.3g} -> {b['write_cycles_per_token']:.3g} cycles per token (K and V); energy "
        f"per written token {fmt_pj(p['token_pj'])} -> {fmt_pj(b['token_pj'])}; query {fmt_int(p['query_cycles'])} -> "
        f"{fmt_int(b['query_cycles'])} cycles, {fmt_pj(p['query_pj'])} -> {fmt_pj(b['query_pj'])}; decode step at "
        f"T - 1 after the T-token write burst {fmt_int(p['decode_step_cycles'])} -> {fmt_int(b['decode_step_cycles'])} "
        f"cycles (the balanced write units take {2 * ii['balanced']} cycles per token but the index SRAM write port "
        f"{port}: K and V share a bank, so the last token waits behind the burst's queued rows; docs/cycle_model.md); area "
        f"{fmt_area(p['area_um2'])} -> {fmt_area(b['area_um2'])} ({100 * (b['area_um2'] / p['area_um2'] - 1):+.2f} %)",
        verdict(keeps_up and same_query), cmd, {"norm_ii": ii, "rotator_ii": rot_ii, **{f"{k}_{n}": v for n, f in fig.items()
                                                                                        for k, v in f.items()}})]
    sources = {"itrs-lop (default)": paper,
               "itrs-hp": paper_macro_with({"technology.sram_cells": "itrs-hp"}),
               "Horowitz SRAM points": paper_macro_with({"technology.sram_energy": "horowitz"})}
    tick("design points: SRAM energy sources")
    src = {name: _point_figures("axelram", loaded, trace, T) for name, loaded in sources.items()}
    lop, hp, hz = (src[n] for n in sources)
    listing = "; ".join(f"{name}: {fmt_pj(f['query_pj'])} per query (leakage {100 * f['query_leakage_share']:.0f} %, "
                        f"index_sram dynamic {fmt_pj(f['index_sram_dynamic_pj'])}), {fmt_pj(f['token_pj'])} per "
                        f"written token" for name, f in src.items())
    expected = hp["query_leakage_share"] > lop["query_leakage_share"] and \
        hz["index_sram_dynamic_pj"] > lop["index_sram_dynamic_pj"]
    rows.append(Row(
        "energy", f"Paper macro's energy per query (T = {T}, 45 nm) under each SRAM energy source: itrs-hp cells "
        "leak more than itrs-lop, and Horowitz's 64-bit SRAM points price the reads above the CACTI lop fit",
        "not given", f"{listing}; Horowitz / lop index_sram dynamic "
        f"{hz['index_sram_dynamic_pj'] / lop['index_sram_dynamic_pj']:.2f}x",
        verdict(expected), f"{run_command(T)}, and the same with a copy of the macro setting technology.sram_cells: itrs-hp, or technology.sram_energy: horowitz",
        {name: f for name, f in src.items()}))
    extra["design_points"] = {"balanced": fig, "sources": src}
    return rows


def paper_macro_with(overrides: dict):
    return api.load_macro(PAPER_MACRO, {"technology.node_nm": 45, **overrides})


def plot_reduction(points: list[dict], d: int, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    tokens = sorted({p["tokens"] for p in points})
    grid = np.geomspace(min(tokens) / 2, max(tokens) * 2, 200)
    for color, bits in zip(("tab:blue", "tab:orange", "tab:green", "tab:red"), sorted({p["bits"] for p in points})):
        ax.plot(grid, grid * d / (d * (1 << bits) + grid), color=color, lw=1,
                label=f"b = {bits}: d T / (d 2^b + T)")
        pts = [p for p in points if p["bits"] == bits]
        ax.plot([p["tokens"] for p in pts], [p["reduction"] for p in pts], "o", color=color,
                label=f"b = {bits}: cycle-model counters")
    ax.axhline(102.4, color="grey", ls=":", lw=1)
    ax.annotate("paper: 102.4x (b = 3, T = 4096)", (max(tokens) * 2, 102.4), textcoords="offset points", xytext=(-4, -11),
                fontsize=8, color="grey", ha="right")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("T, keys per query (tokens)")
    ax.set_ylabel("multiplications per query: conventional / AXELRAM (ratio)")
    ax.set_title(f"Multiplication reduction, d = {d}")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.stem + ".tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)


def section_memory(shapes: Shapes, extra: dict) -> list[Row]:
    cost = CostModel.from_macro(paper_macro())
    m = cost.memory_bytes(PAPER_8B["layers"], PAPER_8B["kv_heads"], PAPER_8B["tokens"])
    mib, mb = 2 ** 20, 1e6
    cmd = "CostModel.from_macro(macros/axelram_paper.yaml).memory_bytes(32, 8, 4096)"
    return [
        Row("memory", "Bytes per stored vector (d = 128, b = 3) vs FP16", "50 vs 256 bytes",
            f"{m['per_vector']:g} vs {m['per_vector_fp16']:g} bytes",
            verdict(m["per_vector"] == 50 and m["per_vector_fp16"] == 256), cmd, {"per_vector": m["per_vector"]}),
        Row("memory", "KV compression", "5.1x", f"{m['compression']:.4g}x (256 / 50)",
            verdict(round(m["compression"], 1) == 5.1), cmd, {"compression": m["compression"]}),
        Row("memory", "KV cache of an 8B model (32 layers, 8 KV heads, T = 4096, K and V)", "about 100 MB vs 512 MB",
            f"{m['kv_storage']:,.0f} bytes = {m['kv_storage'] / mib:.4g} MiB = {m['kv_storage'] / mb:.4g} MB; FP16 "
            f"{m['kv_storage_fp16'] / mib:.4g} MiB = {m['kv_storage_fp16'] / mb:.4g} MB",
            "partly" if m["kv_storage"] == 100 * mib else "no", cmd,
            {"kv_storage": m["kv_storage"], "kv_storage_fp16": m["kv_storage_fp16"]}),
    ]


def section_real_traces(shapes: Shapes, extra: dict, tick: Callable[[str], None]) -> list[Row]:
    rows = []
    for name, selection in shapes.real.items():
        tick(f"real trace: {name}")
        report = api.simulate(D64_MACRO, TRACES[name], baselines=False, **selection)
        n = report["numerics"]
        tr = report["trace"]
        sel = " ".join(f"--{k} {','.join(map(str, v)) if isinstance(v, list) else v}" for k, v in selection.items())
        rows.append(Row(
            "numerics", f"bit_exact on the shipped real trace {name} (SmolLM2-135M, d = 64, b = 3)",
            "(no simulator in the paper)",
            f"bit_exact {n['bit_exact']} over {tr['n_layers']} layers x {tr['q_heads']} query heads x {tr['queries']} "
            f"queries, T = {tr['tokens']}; vs float64: score rel. RMSE {n['score_rel_rmse']:.3g}, attn KL "
            f"{n['attn_kl']:.3g} nats, top-1 {n['top1_agreement']:.3g}, output rel. RMSE {n['output_rel_rmse']:.3g}",
            verdict(bool(n["bit_exact"])),
            f"axelsim run macros/axelram_d64.yaml --trace traces/{name}.safetensors {sel}".rstrip(),
            {"bit_exact": bool(n["bit_exact"]), **{k: n[k] for k in ("score_rel_rmse", "attn_kl", "top1_agreement")}}))
    return rows


def section_consequences(shapes: Shapes, extra: dict, tick: Callable[[str], None]) -> list[Row]:
    """The 'Measured consequences' of docs/architecture.md and the FP16 decisions of docs/numerics.md."""
    import dataclasses

    from axelsim.config.macro import FormatsConfig
    from axelsim.numerics.golden import NumericsSpec, golden_layer, write_vectors
    from axelsim.numerics.hadamard import SignRom
    from axelsim.numerics.metrics import attention_metrics
    from axelsim.numerics.reference import dequantize_f64, qdq_attention_f64, quantize_f64

    tick("consequences: FP16 codebook ROM, fp16 rotator, zero vector")
    d, T = 128, (300 if shapes is QUICK else 1024)
    rng = np.random.Generator(np.random.PCG64(2026))
    k, v = 2.0 * rng.standard_normal((2, T, d)), rng.standard_normal((2, T, d))
    q = 0.3 * rng.standard_normal((4, 5, d))
    pos = np.linspace(T // 10, T - 1, 5).astype(np.int64)
    signs = SignRom.from_seed(0, 1, d)
    fp32 = FormatsConfig(input="fp32", rotator="fp32", table="fp32", accumulator="fp32", score="fp32",
                         softmax="fp32", value="fp32")
    spec = NumericsSpec.build(d, 3, signs, fp32)
    golden = golden_layer(spec, k, v, q, pos, 0)
    exact = qdq_attention_f64(k, v, q, pos, signs.vector(0), spec.codebook)
    rom_cb = dataclasses.replace(spec.codebook, centroids=spec.codebook.rom_centroids, boundaries=spec.codebook.rom_boundaries)
    same = qdq_attention_f64(k, v, q, pos, signs.vector(0), rom_cb)
    m_exact = attention_metrics(golden.scores, exact.scores, d)["score_rel_rmse"]
    m_same = attention_metrics(golden.scores, same.scores, d)["score_rel_rmse"]
    idx_golden = golden.k_indices.reshape(-1, d)
    idx_exact, _ = quantize_f64(k.reshape(-1, d), signs.vector(0), spec.codebook)
    moved = float(np.mean(idx_golden != idx_exact))
    rows = [Row(
        "numerics", "FP16 codebook ROM: effect on scores (fp32 datapath otherwise; docs/architecture.md 'Measured consequences': "
        "0.75 % vs 0.02 %)", "30-byte FP16 ROM, no accuracy effect stated",
        f"score rel. RMSE {100 * m_exact:.3g} % vs the exact-codebook float64 path, {100 * m_same:.3g} % vs the same FP16 "
        f"codebook; {100 * moved:.3g} % of key coordinates change cell (synthetic d = 128, T = {T})",
        "partly", f"{SCRIPT} (golden_layer vs reference.qdq_attention_f64)",
        {"rel_rmse_vs_exact": m_exact, "rel_rmse_vs_fp16_codebook": m_same, "moved_fraction": moved})]
    # fp16 rotator: the norm unit overflows when ||x||^2 >= 65520 (norm above 256).
    spec16 = NumericsSpec.build(d, 3, signs, FormatsConfig(rotator="fp16", input="fp32"))
    spec32 = NumericsSpec.build(d, 3, signs, FormatsConfig(input="fp32"))
    direction = rng.standard_normal(d)
    direction /= np.linalg.norm(direction)
    differ = {}
    for norm in (200.0, 300.0):
        x = (norm * direction)[None, :]
        a, b = write_vectors(spec16, x, 0), write_vectors(spec32, x, 0)
        differ[norm] = float(np.mean(a.indices != b.indices))
    rows.append(Row(
        "numerics", "fp16 rotator overflows the norm unit above norm 256 (docs/architecture.md)", "(FP16 not detailed)",
        f"fraction of indices differing from the fp32 rotator: {differ[200.0]:.3g} at norm 200, {differ[300.0]:.3g} at norm 300",
        "n/a", f"{SCRIPT} (golden write_vectors, formats.rotator fp16 vs fp32)", {"differ": differ}))
    # FP16 norm saturation: a norm above 65504 is stored as 65504 (docs/numerics.md), never as infinity.
    big = (1.0e5 * direction)[None, :]
    wb, wb_dir = write_vectors(spec32, big, 0), write_vectors(spec32, direction[None, :], 0)
    rows.append(Row(
        "numerics", "FP16 norm overflow: a key norm above 65504 (paper section 4: overflows FP16)", "overflows FP16 (open)",
        f"norm 1e5 stored as {float(wb.norms[0]):g} with {wb.norm_saturations} saturation counted; indices "
        f"{'equal' if np.array_equal(wb.indices, wb_dir.indices) else 'not equal'} to those of the unit vector",
        verdict(float(wb.norms[0]) == 65504.0 and wb.norm_saturations == 1 and np.array_equal(wb.indices, wb_dir.indices)),
        f"{SCRIPT} (golden write_vectors; report key numerics.norm_saturations)",
        {"stored_norm": float(wb.norms[0]), "saturations": int(wb.norm_saturations)}))
    # zero vector
    zero = np.zeros((1, d))
    wz = write_vectors(spec32, zero, 0)
    ref_idx, ref_norm = quantize_f64(zero, signs.vector(0), spec.codebook)
    recon_macro = dequantize_f64(wz.indices.astype(np.int64), wz.norms.astype(np.float64), signs.vector(0), spec.codebook)
    recon_ref = dequantize_f64(ref_idx, ref_norm, signs.vector(0), spec.codebook)
    rows.append(Row(
        "numerics", "Zero vector (docs/numerics.md: macro index L - 1, reference L/2, both reconstruct zero)",
        "(zero vector has no direction; not treated)",
        f"macro indices {sorted(set(wz.indices.ravel().tolist()))}, stored norm {float(wz.norms[0]):g}; reference "
        f"indices {sorted(set(np.asarray(ref_idx).ravel().tolist()))}; max |reconstruction| {float(np.max(np.abs(recon_macro))):g} / "
        f"{float(np.max(np.abs(recon_ref))):g}",
        verdict(float(np.max(np.abs(recon_macro))) == 0.0 and float(np.max(np.abs(recon_ref))) == 0.0),
        f"{SCRIPT} (golden write_vectors, reference.quantize_f64)", {}))
    return rows


def _sens_stats(data: dict, bits: str) -> dict:
    """Key MSE / D_b, score error and KL of one trace at one bit-width, from the study's summary."""
    summary = data.get("summary", {}).get(bits, {})
    mse, score, kl = (summary.get(k, {}) for k in ("key_mse_ratio", "score_rel_rmse", "attn_kl"))
    nan = float("nan")
    return {"ratio": data.get("norm_heterogeneity", nan),
            "mse_mean": mse.get("seed_mean", nan), "mse_worst": mse.get("worst_seed_layer", nan),
            "mse_cal_worst": mse.get("calibrated_worst_layer", nan), "mse_spread": mse.get("max_seed_spread", nan),
            "score_mean": score.get("seed_mean", nan), "score_cal": score.get("calibrated_mean", nan),
            "kl_mean": kl.get("seed_mean", nan), "kl_worst": kl.get("worst_seed_layer", nan),
            "kl_cal": kl.get("calibrated_mean", nan), "kl_cal_worst": kl.get("calibrated_worst_layer", nan)}


def _ppl_results(ppl_dir: Path) -> Optional[dict]:
    """The perplexity JSON of record (QDQ: 10 seeds x 12 windows, calibrated), else the bit-exact
    one (the macro's arithmetic, fewer and shorter windows; docs/sensitivity.md compares them)."""
    for path in (ppl_dir / "ppl.json", _bitexact_file(ppl_dir)):
        if path.exists():
            return {**json.loads(path.read_text()), "_file": rel(path)}
    return None


def _bitexact_file(ppl_dir: Path) -> Path:
    return ppl_dir.parent / "ppl_bitexact" / "ppl.json"


def _bitexact_results(ppl_dir: Path) -> Optional[dict]:
    """The bit-exact perplexity JSON (the macro's arithmetic), when it is present and not the record."""
    path = _bitexact_file(ppl_dir)
    return {**json.loads(path.read_text()), "_file": rel(path)} if path.exists() else None


def _seed_increases(res: dict, bits: int) -> Optional[np.ndarray]:
    ppl = res["perplexity"]
    if not all(f"b{bits}/seed{s}" in ppl for s in res["seeds"]):
        return None
    return np.array([ppl[f"b{bits}/seed{s}"] - ppl["fp32"] for s in res["seeds"]])


PPL_SAFE_FRACTION = 0.01
"""'Safe' for the paper's < 2x row: a 3-bit PPL increase within 1 % of the full-precision PPL
(the paper's LLaMA-3.1-8B: +0.02 on about 6, 0.3 %)."""


def norm_ratio_rows(studies: dict, ppl_dir: Path, cmd: str) -> list[Row]:
    """'< 2x safe' judged on the perplexity measured on the same model; '> 5x calls for
    calibration' on a trace whose high-norm layer also has another direction distribution."""
    rows = []
    real = {n: d for n, d in studies.items() if n.startswith("smollm2")}
    res = _ppl_results(ppl_dir)
    if real and res is not None and all(f"b3/seed{s}" in res["perplexity"] for s in res["seeds"]):
        ratio = max(d.get("norm_heterogeneity", float("nan")) for d in real.values())
        ppl = res["perplexity"]
        inc = np.array([ppl[f"b3/seed{s}"] - ppl["fp32"] for s in res["seeds"]])
        rel_inc = inc.mean() / ppl["fp32"]
        cal = ppl.get("b3/calibrated")
        spread = inc.std(ddof=1) if inc.size > 1 else 0.0
        signs_matter = cal is not None and (inc.mean() - (cal - ppl["fp32"])) > 2 * spread
        exact = _bitexact_results(ppl_dir)
        exact_inc = None if exact is None or exact["_file"] == res["_file"] else _seed_increases(exact, 3)
        if exact_inc is not None:
            rel_exact = exact_inc.mean() / exact["perplexity"]["fp32"]
            safe_exact = rel_exact <= PPL_SAFE_FRACTION
        safe = rel_inc <= PPL_SAFE_FRACTION and (exact_inc is None or safe_exact)
        agrees = "yes" if safe and not signs_matter else ("partly" if not signs_matter else "no")
        rows.append(Row(
            "sensitivity", "Layer norm ratio < 2x: random signs are safe (b = 3, SmolLM2-135M, judged on perplexity)",
            "< 2x safe (LLaMA-3.1-8B about 1.5x: +0.02 PPL)",
            f"norm ratio {ratio:.3g}x; 3-bit PPL {ppl['fp32']:.3f} -> {inc.mean():+.3f} ± {spread:.3f} over "
            f"{inc.size} seeds ({100 * rel_inc:+.1f} %, 'safe' needs <= {100 * PPL_SAFE_FRACTION:.0f} %); "
            + (f"calibrated {cal - ppl['fp32']:+.3f}: " if cal is not None else "")
            + ("other signs would help" if signs_matter else "the seed does not matter (calibration within 2 std of the seeds)")
            + f" [{res.get('mode', 'qdq')} perplexity, {res['_file']}]"
            + ("" if exact_inc is None else
               f"; bit-exact (the macro's arithmetic, {exact['windows']['scored_tokens']} scored tokens): "
               f"{exact_inc.mean():+.3f} ± {exact_inc.std(ddof=1) if exact_inc.size > 1 else 0.0:.3f} "
               f"({100 * rel_exact:+.1f} %) [{exact['_file']}]"),
            agrees, f"scripts/perplexity.py (see {res['_file']})",
            {"norm_ratio": ratio, "ppl_increase_rel": float(rel_inc), "signs_matter": bool(signs_matter)}))
    elif real:
        rows.append(Row("sensitivity", "Layer norm ratio < 2x: random signs are safe (judged on perplexity)",
                        "< 2x safe", "not available: no perplexity JSON with 3-bit seeds when this ran",
                        "n/a", "scripts/perplexity.py", {}))
    return rows


def calibrated_perplexity(res: dict) -> Optional[tuple[bool, str]]:
    """(repaired, text): whether the held-out calibrated signs (chosen on the file's start, scored
    on its end) land below the seed mean and the worst seed at every b; None without them."""
    ppl = res["perplexity"]
    if not all(f"b{b}/calibrated" in ppl and _seed_increases(res, b) is not None for b in res["bits"]):
        return None
    parts, ok = [], True
    for b in res["bits"]:
        inc = _seed_increases(res, b)
        cal = ppl[f"b{b}/calibrated"] - ppl["fp32"]
        ok = ok and bool(cal <= inc.mean() and cal < inc.max())
        parts.append(f"b = {b} {cal:+.3f} vs seeds {inc.mean():+.3f} mean / {inc.max():+.3f} worst "
                     f"(rank {int(np.sum(inc < cal)) + 1} of {inc.size + 1})")
    return ok, ("SmolLM2-135M perplexity, calibrated on the file's start and scored on its end: " + ", ".join(parts)
                + f" [{res.get('mode', 'qdq')}, {res.get('_file', 'ppl.json')}]")


CALIBRATION_GAIN = 0.10
"""Calibration 'helps' when the held-out calibrated error is at least 10 % below the seeds' mean."""


def heldout_rows(shapes: Shapes, extra: dict, ppl_dir: Optional[Path] = None) -> list[Row]:
    """Held-out calibration (chosen on the first half of the tokens, measured on the second) on
    the norm-and-direction traces: the '> 5x' row and the repair row. Computed here (about 10 s;
    --quick: 256 tokens, 50 candidates)."""
    from axelsim.calibrate.heldout import heldout_study, norm_direction_traces, norm_ratio

    quick = shapes is QUICK
    tokens, candidates = (256, 50) if quick else (512, 200)
    high, control = norm_direction_traces(tokens=tokens)
    seeds = range(1, 11)
    study = {name: heldout_study(tr, 0, 3, seeds, candidates) for name, tr in (("high", high), ("control", control))}
    ratios = {"high": norm_ratio(high), "control": norm_ratio(control)}
    extra["heldout"] = {"norm_ratio": ratios, **study}

    def gain(name, metric):
        s = study[name]["summary"][metric]
        return (s["seed_mean"] - s["calibrated"]) / s["seed_mean"]

    def worst_to_cal(name, metric):
        s = study[name]["summary"][metric]
        return f"{s['seed_mean']:.4g} mean / {s['seed_worst']:.4g} worst -> {s['calibrated']:.4g}"

    helps_high, helps_control = gain("high", "kl") >= CALIBRATION_GAIN, gain("control", "kl") >= CALIBRATION_GAIN
    agrees = "yes" if helps_high and not helps_control else ("partly" if helps_high else "no")
    cmd = "scripts/reproduce_paper.py (axelsim.calibrate.heldout, synthetic d = 128, b = 3, held-out halves)"
    rows = [Row(
        "sensitivity", "Layer norm ratio > 5x calls for calibration (b = 3; layer 0 with a common key component "
        f"per head, at 8x the norm vs the same at 1x; calibrated on the first {tokens // 2} tokens, measured on the rest)",
        "> 5x: calibrate (Qwen2.5-3B 7.8x: worst +51.0 -> +0.58 PPL)",
        f"norm ratio {ratios['high']:.3g}x: layer-0 KL {worst_to_cal('high', 'kl')} nats calibrated "
        f"({100 * gain('high', 'kl'):+.1f} % vs the seed mean); at {ratios['control']:.3g}x: KL "
        f"{worst_to_cal('control', 'kl')} ({100 * gain('control', 'kl'):+.1f} %); key MSE/D "
        + (f"{worst_to_cal('high', 'mse_ratio')} in both (the relative error is scale-invariant)"
           if study["high"]["summary"]["mse_ratio"] == study["control"]["summary"]["mse_ratio"] else
           f"{worst_to_cal('high', 'mse_ratio')} at {ratios['high']:.3g}x, {worst_to_cal('control', 'mse_ratio')} "
           f"at {ratios['control']:.3g}x")
        + ". Calibration 'helps' at >= "
        f"{100 * CALIBRATION_GAIN:.0f} % of the seed-mean KL",
        agrees, cmd, {"kl_gain_high": gain("high", "kl"), "kl_gain_control": gain("control", "kl")})]
    mse, kl = study["control"]["summary"]["mse_ratio"], study["control"]["summary"]["kl"]
    checks = {"key MSE": bool(mse["calibrated"] < mse["seed_worst"] and mse["calibrated"] <= mse["seed_mean"]),
              "softmax KL": bool(kl["calibrated"] < kl["seed_worst"] and kl["calibrated"] <= kl["seed_mean"])}
    measured = (f"held-out key MSE/D {worst_to_cal('control', 'mse_ratio')} calibrated; softmax KL "
                f"{worst_to_cal('control', 'kl')} nats")
    res = None if ppl_dir is None else _ppl_results(ppl_dir)
    repaired_ppl = None if res is None else calibrated_perplexity(res)
    if repaired_ppl is not None:
        checks["perplexity"], text = repaired_ppl
        measured += "; " + text
    held = [name for name, ok in checks.items() if ok]
    agrees = "yes" if len(held) == len(checks) else ("partly" if held else "no")
    rows.append(Row(
        "sensitivity", "Algorithm 1 (C = 200, MSE objective) repairs a bad sign pattern, judged held-out (b = 3, "
        f"layer 0 with a common key component; calibrated on the first {tokens // 2} tokens, measured on the rest"
        + ("; and on perplexity" if "perplexity" in checks else "") + ")",
        "worst-case PPL repaired (Table II)",
        measured + ". Repaired (calibrated below the seed mean and the worst seed) on "
        + (", ".join(held) or "none of " + ", ".join(checks))
        + ("" if len(held) in (0, len(checks)) else "; not on " + ", ".join(n for n in checks if n not in held)),
        agrees, cmd, {"mse": mse, "kl": kl, "checks": checks}))
    return rows


def section_sensitivity(sens_dir: Path, ppl_dir: Path, extra: dict) -> list[Row]:
    """Sign-sensitivity and perplexity figures of the calibrate study, read from its JSON (never invented)."""
    rows = []
    studies = {}
    for path in sorted(sens_dir.glob("sensitivity_*.json")):
        data = json.loads(path.read_text())
        studies[data.get("trace", path.stem.removeprefix("sensitivity_"))] = data
    cmd = f"scripts/sensitivity.py --out {rel(sens_dir)}"
    see = " (docs/sensitivity.md discusses them)" if (ROOT / "docs" / "sensitivity.md").exists() else ""
    if not studies:
        rows.append(Row("sensitivity", "Sign-seed sensitivity and Algorithm 1 calibration", "section 3 of the paper",
                        f"not available: no {rel(sens_dir)}/sensitivity_*.json when this ran (run scripts/sensitivity.py)",
                        "n/a", cmd, {}))
    lines = []
    for name, data in studies.items():
        for bits in sorted(data.get("summary", {}), key=int):
            st = _sens_stats(data, bits)
            lines.append(f"| {name} | {st['ratio']:.3g} | {bits} | {len(data.get('seeds', []))} | {st['mse_mean']:.3f} | "
                         f"{st['mse_worst']:.3f} | {st['mse_cal_worst']:.3f} | {st['mse_spread']:.3f} | "
                         f"{st['score_mean']:.4f} -> {st['score_cal']:.4f} | {st['kl_mean']:.4f} -> {st['kl_cal']:.4f} |")
    if lines:
        extra["sensitivity"] = (
            "Key MSE in units of the codebook's distortion D_b (seed mean, worst (seed, layer), worst layer with the "
            "calibrated signs, largest spread over seeds within one layer); score relative RMSE and softmax KL (nats), "
            "seed mean -> calibrated mean. Read from " + str(cmd.split("--out ")[-1]) + "/sensitivity_*.json" + see + ".\n\n"
            "| trace | layer norm ratio (max/min) | bits | seeds | MSE/D mean | MSE/D worst | MSE/D calibrated worst | "
            "seed spread | score rel. RMSE | attn KL |\n|---|---|---|---|---|---|---|---|---|---|\n" + "\n".join(lines))
    rows += norm_ratio_rows(studies, ppl_dir, cmd)
    ppl_file = ppl_dir / "ppl.json"
    if not ppl_file.exists():
        rows.append(Row("sensitivity", "Table I / II: PPL increase over full precision, random seeds and after Algorithm 1",
                        "e.g. LLaMA-3.1-8B 3-bit +0.02; Qwen2.5-3B worst 51.0 -> 0.58",
                        f"not available: {ppl_file.name} absent from {rel(ppl_dir)} when this ran (run scripts/perplexity.py)",
                        "n/a", f"scripts/perplexity.py --out {rel(ppl_dir)}", {}))
        return rows
    res = json.loads(ppl_file.read_text())
    ppl = res["perplexity"]
    base = ppl["fp32"]
    table = []
    for bits in res["bits"]:
        inc = np.array([ppl[f"b{bits}/seed{s}"] - base for s in res["seeds"]])
        cal = ppl.get(f"b{bits}/calibrated")
        cal_txt = f"{cal - base:+.3f}" if cal is not None else "absent"
        table.append(f"{bits}-bit {inc.mean():+.3f} ± {inc.std(ddof=1) if inc.size > 1 else 0.0:.3f} (worst {inc.max():+.3f}; "
                     f"calibrated {cal_txt})")
    rows.append(Row(
        "sensitivity", f"Table I / II on our model (SmolLM2-135M, FP32-cache PPL {base:.3f}; {len(res['seeds'])} seeds)",
        "LLaMA-3.1-8B: 2-bit +0.10, 3-bit +0.02, 4-bit +0.00; Qwen2.5-3B worst 58.4 / 51.0 / 2.98 -> 0.82 / 0.58 / 0.25",
        "; ".join(table), "n/a (other model)", f"scripts/perplexity.py --out {rel(ppl_dir)}", {"ppl": ppl}))
    return rows


# ------------------------------------------------------------------------------------------------
# Driver and rendering
# ------------------------------------------------------------------------------------------------
SENSITIVITY_DIR = ROOT / "docs" / "data" / "sensitivity"
"""Versioned output of scripts/sensitivity.py."""
PPL_DIR = ROOT / "docs" / "data" / "ppl"
"""Versioned output of scripts/perplexity.py."""


def measure(quick: bool = False, img_dir: Optional[Path] = None, sens_dir: Path = SENSITIVITY_DIR,
            ppl_dir: Path = PPL_DIR, progress: bool = False) -> dict:
    """Run every section; returns {'rows': [Row], 'extra': {...}, 'shapes': ..., 'seconds': {...}}."""
    shapes = QUICK if quick else FULL
    extra: dict = {}
    seconds: dict = {}
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=7, desc="reproduce_paper", unit="section", file=sys.stderr)

    def tick(label: str) -> None:
        if bar is not None:
            bar.set_postfix_str(label)

    sections = [
        ("codebook", lambda: section_codebook(shapes, extra)),
        ("memory", lambda: section_memory(shapes, extra)),
        ("paper point", lambda: section_paper_point(shapes, extra, tick)),
        ("reduction", lambda: section_reduction(shapes, extra, None if img_dir is None else img_dir / "validation_reduction.png", tick)),
        ("consequences", lambda: section_consequences(shapes, extra, tick)),
        ("real traces", lambda: section_real_traces(shapes, extra, tick)),
    ]
    rows: list[Row] = []
    for name, run in sections:
        tick(name)
        started = time.perf_counter()
        rows += run()
        seconds[name] = time.perf_counter() - started
        if bar is not None:
            bar.update(1)
    rows += section_sensitivity(sens_dir, ppl_dir, extra)
    started = time.perf_counter()
    rows += heldout_rows(shapes, extra, ppl_dir)
    seconds["held-out calibration"] = time.perf_counter() - started
    started = time.perf_counter()
    tick("design points")
    rows += section_design_points(shapes, extra, tick)
    seconds["design points"] = time.perf_counter() - started
    if bar is not None:
        bar.update(1)
    if bar is not None:
        bar.close()
    return {"rows": rows, "extra": extra, "shapes": shapes, "seconds": seconds, "quick": quick}


def md_cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def render(result: dict) -> str:
    rows, extra, shapes = result["rows"], result["extra"], result["shapes"]
    mode = "--quick (smaller shapes)" if result["quick"] else "full"
    out = [
        "# Validation: the paper's claims against what axelsim measures",
        "",
        f"Generated by `{SCRIPT}` ({mode}) on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
        f"do not edit by hand (commentary: docs/validation_notes.md, included below). Regenerate with "
        f"`.venv/bin/python {SCRIPT}` (about 2 minutes on 2 cores once the numba cache is warm: the real traces and the executed count of row 28 take most of it).",
        "",
        f"The claim column restates /work/shared/PAPER.md; every figure in the measured column comes from this run: "
        f"the cycle model's counters (synthetic d = 128 trace, 1 layer, 1 KV head, 1 query head, one query at "
        f"position T - 1, T = {shapes.tokens}, `macros/axelram_paper.yaml`), the cost model fed with those counted "
        f"actions and simulated times, the golden model, the float64 references, and the calibrate study's JSON.",
        "'agrees?': yes / no / partly (the figure holds with a qualification stated in the row) / n/a (the paper gives "
        "no figure, or a different model).",
        "",
        "| # | claim | paper | axelsim measured | agrees? | command |",
        "|---|---|---|---|---|---|",
    ]
    for i, row in enumerate(rows, 1):
        out.append(f"| {i} | {md_cell(row.claim)} | {md_cell(row.paper)} | {md_cell(row.measured)} | {row.agrees} | "
                   f"`{md_cell(row.command)}` |")
    out += ["", "## Where axelsim disagrees with the paper, and why", ""]
    out += disagreements(rows, extra, shapes)
    out += ["", "## Multiplication reduction over T and b", "",
            "![reduction](img/validation_reduction.png)", "",
            "Points: the read-path multiplication counter of the cycle model (table build + one norm multiplication per "
            "key) against T d for a conventional dot product; lines: the closed form d T / (d 2^b + T).", ""]
    if "energy" in extra:
        out += ["## Energy and area (paper macro and the two baselines)", "",
                f"Per query: the preloaded run (one query at T = {shapes.tokens}); per stored token: the full run minus "
                "the preloaded run, over T tokens (key and value of one KV head of one layer). Dynamic energy is the "
                "counted actions priced by the cost model; leakage is the whole macro's leakage power over the "
                "simulated time (1 GHz clock; the macro is sized for the 8B shape, 100 MiB of index SRAM, whatever "
                "the trace).", "", extra["energy"], ""]
    if "value" in extra:
        out += ["## Value path", "", extra["value"], ""]
    if "codebook" in extra:
        out += ["## Codebook", "", extra["codebook"], ""]
    if "sensitivity" in extra:
        out += ["## Sign sensitivity (from the calibrate study's JSON)", "", extra["sensitivity"], ""]
    if NOTES.exists():
        out += ["## Commentary (docs/validation_notes.md)", "", NOTES.read_text().strip(), ""]
    if CHIP_TABLE.exists():  # generated by scripts/chip_table.py (minutes: not rerun here)
        out += [CHIP_TABLE.read_text().strip(), ""]
    secs = ", ".join(f"{k} {v:.1f} s" for k, v in result["seconds"].items())
    out += ["## Run", "", f"Wall time per section: {secs}.", ""]
    return "\n".join(out)


def disagreements(rows: list[Row], extra: dict, shapes: Shapes) -> list[str]:
    """Plain statements, each with the measured figures of this run."""
    lines = []
    for r in rows:
        if r.claim.startswith("Write path is multiplier-free"):
            v = r.values
            lines.append(
                f"- **'Zero multipliers' on the write path is refuted** (as modelled): the norm extractor squares the d = 128 "
                f"coordinates and takes a square root, and the divider-free fold multiplies the 2^b - 1 = 7 boundaries by "
                f"the norm: {v['write_mults_per_vector']:g} multiplications (128 + 7 by the contract) and "
                f"{v['sqrt_per_vector']:g} square root counted per vector, {v['write_multipliers']} multipliers in the "
                f"design (128 squarers and 1 threshold multiplier). The FWHT itself is multiplier-free, as claimed; the "
                f"normalisation is not (dividing by the norm instead would need a divider).")
        if r.claim.startswith("FWHT rotator"):
            lines.append(
                f"- **448 add/sub counts butterflies**: one butterfly is an add and a subtract, so the rotator performs "
                f"{r.values['rotator_addsub_per_vector']:g} add/sub operations per vector in {r.values['butterflies_per_vector']:g} "
                f"butterflies (the write path also adds 127 in the norm unit's tree).")
        if r.claim.startswith("KV cache of an 8B"):
            lines.append(
                f"- **'About 100 MB' is 100 MiB**: {r.values['kv_storage']:,.0f} bytes = {r.values['kv_storage'] / 2**20:g} MiB "
                f"= {r.values['kv_storage'] / 1e6:.4g} MB; the '512 MB' FP16 figure is likewise 512 MiB = "
                f"{r.values['kv_storage_fp16'] / 1e6:.4g} MB. The ratio (5.12x) is unaffected.")
        if r.claim.startswith("FP16 codebook ROM"):
            v = r.values
            lines.append(
                f"- **The FP16 codebook ROM is not free of error**: rounding the boundaries to FP16 moves "
                f"{100 * v['moved_fraction']:.3g} % of key coordinates into another cell, and the scores differ from the "
                f"paper's float64 path by {100 * v['rel_rmse_vs_exact']:.3g} % relative RMSE, against "
                f"{100 * v['rel_rmse_vs_fp16_codebook']:.3g} % when the reference uses the same FP16 codebook. Small, but "
                f"a property of the 30-byte ROM the paper does not mention.")
        if r.claim.startswith("Energy per query") and "45 nm" in r.claim:
            a = r.values["axelram"]
            f16 = r.values["fp16"]
            lines.append(
                f"- **Energy is dominated by SRAM leakage, not by multiplications** (45 nm, T = {shapes.tokens}): the largest "
                f"contribution to AXELRAM's energy per query is {a['dominant_query']} ({100 * a['dominant_share']:.0f} %); "
                f"leakage is {100 * a['query_leakage_pj'] / a['query_pj']:.0f} % of it. The dynamic energy per query falls "
                f"from {fmt_pj(f16['query_dynamic_pj'])} (FP16 baseline) to {fmt_pj(a['query_dynamic_pj'])} "
                f"({f16['query_dynamic_pj'] / a['query_dynamic_pj']:.3g}x), far less than the multiplication ratio, because "
                f"table reads, the adder tree and the value path's T d bin additions remain; the total falls "
                f"{f16['query_pj'] / a['query_pj']:.3g}x (a smaller array leaks less). The '102.4x' is a count of "
                f"multiplications, not of energy or time.")
        if r.claim.startswith("Energy per stored token") and "45 nm" in r.claim:
            a, f16 = by_values(rows, 45)
            if a and f16 and a["token_pj"] > f16["token_pj"]:
                lines.append(
                    f"- **Storing a token costs more energy in AXELRAM than in the FP16 macro** (45 nm): "
                    f"{fmt_pj(a['token_pj'])} against {fmt_pj(f16['token_pj'])} per token (K and V of one head; dynamic "
                    f"{fmt_pj(a['token_dynamic_pj'])} against {fmt_pj(f16['token_dynamic_pj'])}): the norm unit, rotator "
                    f"and quantizer work on every vector, and the write stream takes longer "
                    f"({by_cycles(rows):.3g} cycles per token here: the paper macro's single threshold multiplier gives the "
                    f"norm unit an initiation interval of 2^b - 1 cycles per vector, docs/cycle_model.md), so the macro "
                    f"leaks longer. The saving is on the read side and in capacity.")
        if r.claim.startswith("Layer norm ratio > 5x") and r.agrees == "no":
            lines.append(
                f"- **'> 5x calls for calibration' is not supported here**: {r.measured}. The relative key error is "
                f"scale-invariant, so a high-norm layer is not quantized worse; its larger logits make the same relative "
                f"error cost more in the softmax, which no sign vector changes (docs/sensitivity.md).")
        if r.claim.startswith("Cycles per query"):
            lines.append(
                f"- **Time per query is set by T, not by multiplications**: the paper macro reads one key per cycle, so a "
                f"query costs about T cycles ({fmt_int(r.values['query_cycles'])} cycles at T = {shapes.tokens}, against "
                f"{fmt_int(r.values['fp16_query_cycles'])} for the FP16 baseline with a full-width dot product). The gain "
                f"is in storage and energy, not latency.")
    lines.append(
        "- **Counting conventions**: the '5,120 vs 524,288' comparison counts multiplications only; the AXELRAM read path "
        "still performs (d - 1) T additions and d T table reads, as many as the conventional dot product's additions.")
    return lines


def by_values(rows: list[Row], node: int) -> tuple[Optional[dict], Optional[dict]]:
    """The AXELRAM and FP16 energy figures of the 'Energy per query' row at `node` nm."""
    for r in rows:
        if r.claim.startswith("Energy per query") and f"{node} nm" in r.claim:
            return r.values.get("axelram"), r.values.get("fp16")
    return None, None


def by_cycles(rows: list[Row]) -> float:
    """Write cycles per token of the 'Cycles per query' row."""
    return next(r.values["write_cycles_per_token"] for r in rows if r.claim.startswith("Cycles per query"))


def to_json(result: dict) -> dict:
    return {"quick": result["quick"], "rows": [r.__dict__ for r in result["rows"]],
            "seconds": result["seconds"]}


def main(argv: Optional[list[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "validation.md", help="Markdown output (default docs/validation.md)")
    p.add_argument("--quick", action="store_true", help="smaller shapes (T = 256, fewer sweep points and real-trace queries)")
    p.add_argument("--img-dir", type=Path, default=None, help="folder of validation_reduction.png (default: docs/img beside --out)")
    p.add_argument("--json", type=Path, default=None, help="also write the measured rows as JSON")
    p.add_argument("--sensitivity-dir", type=Path, default=SENSITIVITY_DIR)
    p.add_argument("--ppl-dir", type=Path, default=PPL_DIR)
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    args = p.parse_args(argv)
    img_dir = args.img_dir or args.out.parent / "img"
    result = measure(args.quick, img_dir, args.sensitivity_dir, args.ppl_dir, progress=not args.no_progress)
    text = render(result)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_name(args.out.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(args.out)
    if args.json is not None:
        args.json.write_text(json.dumps(to_json(result), indent=1, default=str))
    print(f"wrote {args.out} ({len(result['rows'])} rows, {sum(r.agrees == 'no' for r in result['rows'])} disagreements)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
