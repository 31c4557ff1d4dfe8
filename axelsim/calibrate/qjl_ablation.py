"""The paper's QJL ablation, measured with the real estimator (numerics/qjl.py, golden model).

Per b: b-bit MSE keys, (b−1)-bit MSE keys and QJL keys ((b−1)-bit MSE + an m-bit sketch), all
with b-bit values, on the same trace and signs: score relative RMSE and softmax KL against
exact attention (layer means), and the dynamic energy of the counted golden actions priced
with the macro's technology table (arithmetic per action; index-SRAM rows and table entries
per access at the CACTI-fitted price of arrays with the row widths). Area: the extra storage
only (sketch ROM m·d FP16, the m + 16 extra bits of every index-SRAM row); the projection
multipliers the sketch needs are not sized (the cycle model does not implement QJL).
Energies in pJ, areas in um^2.
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
