"""The paper's QJL ablation, measured with the real estimator (numerics/qjl.py, golden model).

Per b: b-bit MSE keys, (b−1)-bit MSE keys and QJL keys ((b−1)-bit MSE + an m-bit sketch), all
with b-bit values, on the same trace and signs: score relative RMSE and softmax KL against
exact attention (layer means), and the dynamic energy of the counted golden actions priced
with the macro's technology table (arithmetic per action; index-SRAM rows and table entries
per access at the CACTI-fitted price of arrays with the row widths). Area: the extra storage
only (sketch ROM m·d FP16, the m + 16 extra bits of every index-SRAM row).

`cycle_ablation` measures the same ablation with the cycle model (hw/qjl.py: the projection
units, sign-bit rows and their timing) and the cost model's whole inventory: bit-exactness,
errors, energy per query, area and cycles of macro variants. Energies in pJ, areas in um^2.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from axelsim.config.formats import parse_format
from axelsim.config.load import LoadedMacro
from axelsim.cost.technology import Technology
from axelsim.numerics.golden import NumericsSpec, golden_layer
from axelsim.numerics.hadamard import SignRom
from axelsim.numerics.metrics import attn_kl, score_rel_rmse
from axelsim.numerics.qjl import QjlSpec, qjl_layer
from axelsim.numerics.reference import attention_f64

ARITHMETIC = ("add", "mul", "cmp", "sqrt", "div", "exp")


def _price_actions(tech: Technology, actions: dict, rows_pj: float, entry_pj: float) -> float:
    total = 0.0
    for key, count in actions.items():
        unit, _, what = key.partition(".")
        if unit in ARITHMETIC:
            total += tech.operation(unit, parse_format(what)).energy_pj * count
        elif unit == "index_sram":
            total += rows_pj * count
        elif unit == "table_sram" and what == "read":
            total += entry_pj * count
    return total


def qjl_ablation(loaded: LoadedMacro, trace, bits_list: Sequence[int] = (2, 3, 4), seed: int = 1,
                 sketch_bits: int | None = None) -> dict:
    """{b: {config: {score_rel_rmse, attn_kl, energy_pj_per_key_read, energy_pj_per_key_write,
    key_row_bits}}, plus area deltas} over the layers of `trace` (configs 'mse_b', 'mse_b-1', 'qjl')."""
    cfg = loaded.config
    tech = Technology.load(loaded.tech_path, cfg.technology.node_nm)
    d = trace.head_dim
    m = sketch_bits or d
    rom = SignRom.from_seed(seed, max(trace.layer_indices) + 1, d)
    rows = cfg.sram.banks * cfg.sram.rows_per_bank
    out: dict = {"sketch_bits": m, "head_dim": d, "trace": trace.name, "node_nm": cfg.technology.node_nm}
    for bits in bits_list:
        spec = NumericsSpec.build(d, bits, rom, cfg.formats)
        qs = QjlSpec.build(spec, m)
        configs = {"mse_b": (spec, None), "mse_b-1": (spec.with_bits(bits - 1), None), "qjl": (spec, qs)}
        res = {}
        for name, (sp, q) in configs.items():
            row_bits = q.key_row_bits if q is not None else sp.dim * sp.bits + 16
            row_pj = tech.sram_array(rows * row_bits, row_bits, 2).read_pj
            entries = d * (1 << sp.bits) + (m if q is not None else 0)
            entry_pj = tech.sram_array(entries * 16, 16, 2).read_pj
            scores, kls, e_read, e_write, keys_read, keys_written = [], [], 0.0, 0.0, 0, 0
            for layer in trace.layer_indices:
                k, v, qv, pos = trace.k(layer), trace.v(layer), trace.q(layer), trace.q_positions
                exact = attention_f64(k, v, qv, pos)
                if q is not None:
                    gold = qjl_layer(q, k, None, qv, pos, layer)
                else:
                    gold = golden_layer(sp, k, None, qv, pos, layer)
                scores.append(score_rel_rmse(gold.scores, exact.scores))
                kls.append(attn_kl(gold.scores, exact.scores, d))
                e_read += _price_actions(tech, gold.actions["read_path"], row_pj, entry_pj)
                e_write += _price_actions(tech, gold.actions["write_path"], row_pj, entry_pj)
                keys_read += int(np.count_nonzero(~np.isnan(gold.scores)))
                keys_written += k.shape[0] * k.shape[1]
            res[name] = {"key_bits": sp.bits, "score_rel_rmse": float(np.mean(scores)), "attn_kl": float(np.mean(kls)),
                         "energy_pj_per_key_read": e_read / keys_read, "energy_pj_per_key_write": e_write / keys_written,
                         "key_row_bits": row_bits}
        base_bits = res["mse_b"]["key_row_bits"]
        res["area_um2_extra_storage_qjl_vs_mse_b"] = (
            tech.sram_array(rows * res["qjl"]["key_row_bits"], res["qjl"]["key_row_bits"], 2).area_um2
            - tech.sram_array(rows * base_bits, base_bits, 2).area_um2
            + tech.sram_array(m * d * 16, 16, 1).area_um2)
        out[bits] = res
    return out


CYCLE_CONFIGS = ("mse_b", "mse_b-1", "qjl")


def _variant(macro_path, bits: int, name: str, head_dim: int):
    """The macro at `macro_path` as ablation config `name` at total bit-width `bits`: b-bit MSE
    keys, (b-1)-bit MSE keys, or QJL keys ((b-1)-bit MSE + the sketch); lane counts the file
    leaves `auto` are derived for the variant's bits."""
    from axelsim.config.load import load_macro

    key_bits = {"mse_b": bits, "mse_b-1": bits - 1, "qjl": bits}[name]
    return load_macro(macro_path, {"bits": key_bits, "residual": "qjl" if name == "qjl" else "none"}, head_dim)


def _cycle_run(loaded, trace, prefill: str) -> dict:
    """One cycle-model run of `loaded` on `trace`: its numerics against the golden model and
    float64 attention, energy (pJ) and area (um^2) priced by the cost model."""
    from axelsim import api
    from axelsim.cost import CostModel
    from axelsim.hw.macro import simulate
    from axelsim.report.assemble import area_section, energy_section
    from axelsim.report.numerics import compare_numerics

    signs = api.sign_rom(loaded, trace)
    result = simulate(loaded.config, signs, trace, prefill=prefill, source=str(loaded.path),
                      timing=api.sram_timing(loaded))
    cost = CostModel.from_macro(loaded)
    return {"result": result, "numerics": compare_numerics(loaded.config, signs, trace, result.scores, result.outputs),
            "energy": energy_section(cost, result, trace), "area": area_section(cost, trace.n_layers)}


def cycle_ablation(macro_path, trace, bits_list: Sequence[int] = (2, 3, 4)) -> dict:
    """The QJL ablation measured with the cycle model (hw/, bit-exact against the golden model):
    per b and config ('mse_b', 'mse_b-1', 'qjl'; variants of the macro file, `_variant`) the
    cycle model's score relative RMSE, softmax KL (nats), top-1 agreement and output relative
    RMSE against float64 attention (pooled over layers, heads and queries), bit_exact against
    the golden model, energy per query vector (pJ) with the keys preloaded (the query's own
    work and the leakage over its time) and with the prefill simulated (every write counted),
    the write path's dynamic energy per stored vector (pJ), area (um^2, total and the QJL units
    and index SRAM), index SRAM row bits, the cycles per query position with the cache preloaded
    (total cycles of the queries of every layer and head over the positions served) and the cycles with a write
    stream in flight per token position written (the simulated prefill: the write path's
    rate). The 'mse_b-1' variant is the whole macro at b-1 bits (values too: the cycle model
    has one bit-width for keys and values), so its output error, energy and area include its
    cheaper values; the QJL variant keeps b-bit values, like 'mse_b'."""
    out: dict = {"trace": trace.name, "head_dim": trace.head_dim, "tokens": trace.tokens, "layers": trace.n_layers,
                 "kv_heads": trace.kv_heads, "q_heads": trace.q_heads, "queries": trace.n_queries}
    written = int(np.max(trace.q_positions)) + 1  # positions the simulated prefill writes
    positions = np.unique(trace.q_positions).size
    vectors = trace.n_layers * trace.kv_heads * written * (2 if trace.has_values else 1)
    for bits in bits_list:
        res = {}
        for name in CYCLE_CONFIGS:
            loaded = _variant(macro_path, bits, name, trace.head_dim)
            pre, full = _cycle_run(loaded, trace, "preloaded"), _cycle_run(loaded, trace, "simulate")
            n, area = pre["numerics"], pre["area"]["by_component"]
            res[name] = {
                "key_bits": loaded.config.key_bits, "row_bits": loaded.config.row_bits,
                "key_row_bits": loaded.config.key_row_bits, "sketch_bits": loaded.config.sketch_bits if name == "qjl" else 0,
                "bit_exact": bool(n["bit_exact"] and full["numerics"]["bit_exact"]),
                "prefill_independent": same_bits_runs(pre, full),
                **{k: n[k] for k in ("score_rel_rmse", "attn_kl", "top1_agreement", "output_rel_rmse")},
                "energy_pj_per_query": pre["energy"]["per_query"],
                "energy_pj_per_query_with_prefill": full["energy"]["per_query"],
                "write_dynamic_pj_per_vector": (full["energy"]["dynamic_total"] - pre["energy"]["dynamic_total"]) / vectors,
                "area_um2": pre["area"]["total"], "area_um2_index_sram": area["index_sram"],
                "area_um2_qjl_units": sum(area.get(u, 0.0) for u in ("qjl_residual", "qjl_projector", "sketch_rom",
                                                                        "qjl_accumulator")),
                "cycles_per_position": pre["result"].cycles["total"] / positions,
                "write_cycles_per_token": full["result"].phase_active["write"] / written,
            }
        out[bits] = res
    return out


def same_bits_runs(a: dict, b: dict) -> bool:
    """The preloaded and the simulated-prefill run produced the same scores (the write path's
    timing never changes a value)."""
    from axelsim.report.numerics import same_bits

    ra, rb = a["result"], b["result"]
    return all(same_bits(ra.scores[L], rb.scores[L]) for L in ra.scores)


def cycle_table(result: dict) -> str:
    """Markdown table of `cycle_ablation`."""
    lines = ["| b | keys | row bits | bit-exact | score rel. RMSE | attn KL (nats) | top-1 | output rel. RMSE | "
             "energy/query (nJ) | with prefill (nJ) | write pJ/vector | area (mm²) | QJL units (mm²) | cycles/position | "
             "write cycles/token |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for bits in (b for b in result if isinstance(b, int)):
        for name in CYCLE_CONFIGS:
            r = result[bits][name]
            label = (f"QJL: {bits - 1}-bit MSE + {r['sketch_bits']}-bit sketch" if name == "qjl"
                     else f"{r['key_bits']}-bit MSE")
            lines.append(
                f"| {bits} | {label} | {r['row_bits']} | {'yes' if r['bit_exact'] else 'NO'} | {r['score_rel_rmse']:.4f} | "
                f"{r['attn_kl']:.4f} | {r['top1_agreement']:.3f} | {r['output_rel_rmse']:.4f} | "
                f"{r['energy_pj_per_query'] / 1e3:.1f} | {r['energy_pj_per_query_with_prefill'] / 1e3:.1f} | "
                f"{r['write_dynamic_pj_per_vector']:.1f} | {r['area_um2'] / 1e6:.3f} | {r['area_um2_qjl_units'] / 1e6:.3f} | "
                f"{r['cycles_per_position']:,.0f} | {r['write_cycles_per_token']:,.0f} |")
    return "\n".join(lines) + "\n"


def ablation_table(result: dict) -> str:
    """Markdown table of `qjl_ablation`."""
    lines = [f"| b | keys | bits per key row | score rel. RMSE | attn KL (nats) | read pJ/key | write pJ/key |",
             "|---|---|---|---|---|---|---|"]
    for bits in (b for b in result if isinstance(b, int)):
        for name, label in (("mse_b", f"{bits}-bit MSE"), ("mse_b-1", f"{bits - 1}-bit MSE"),
                            ("qjl", f"QJL: {bits - 1}-bit MSE + {result['sketch_bits']}-bit sketch")):
            r = result[bits][name]
            lines.append(f"| {bits} | {label} | {r['key_row_bits']} | {r['score_rel_rmse']:.4f} | {r['attn_kl']:.4f} | "
                         f"{r['energy_pj_per_key_read']:.2f} | {r['energy_pj_per_key_write']:.2f} |")
    return "\n".join(lines) + "\n"
