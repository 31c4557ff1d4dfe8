"""The chip report as a text summary and as plots."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def _design_rows(report: dict[str, Any]) -> list[tuple[str, dict]]:
    rows = [("axelram", report)]
    rows += [(kind, section) for kind, section in report.get("baselines", {}).items() if kind != "gpu_h200"]
    return rows


def format_chip(report: dict[str, Any]) -> str:
    """A one-screen summary: workload, mapping, and decode/prefill figures per design."""
    w, m = report["workload"], report["mapping"]
    lines = [
        f"chip     {report['chip']['name']} ({report['chip']['file']}): {report['instances']} instances "
        f"({'auto' if report['instances_auto'] else 'given'}; {report['instances_needed_to_hold_kv']} hold the KV cache)",
        f"workload {w['name']}: {w['layers']} layers, {w['q_heads']}/{w['kv_heads']} heads, d={w['head_dim']}, "
        f"T={w['context_tokens']}, batch {w['batch']}; data: {w['data']}",
        f"mapping  {m['kind']}, split {m['split']}, {m['shares']} shares, {m['shares_per_instance']} per instance, "
        f"{m['streamed_shares']} streamed from off-chip; {m['schedule']}; KV capacity {report['kv_capacity_tokens']} tokens",
        "",
        f"{'design':<16}{'instances':>10}{'latency us':>12}{'tokens/s':>12}{'mJ/token':>11}{'area mm2':>11}"
        f"{'prefill tok/s':>15}{'prefill uJ/tok':>16}",
    ]
    for name, section in _design_rows(report):
        d, p = section["decode"], section["prefill"]
        lines.append(f"{name:<16}{section['instances']:>10}{d['latency_s'] * 1e6:>12.1f}{d['tokens_per_s']:>12.0f}"
                     f"{d['energy_j_per_token'] * 1e3:>11.4f}{section['area_mm2']['total']:>11.1f}"
                     f"{p['tokens_per_s']:>15.0f}{p['energy_j_per_token'] * 1e6:>16.3f}")
    gpu = report.get("baselines", {}).get("gpu_h200")
    if gpu:
        lines.append(f"{'gpu_h200':<16}{'':>10}{gpu['latency_s'] * 1e6:>12.1f}{gpu['tokens_per_s']:>12.0f}"
                     f"{gpu['energy_j_per_token'] * 1e3:>11.4f}{'':>11}   (measured; board power, idle included)")
    parts = report["decode"]["energy_j_per_token_by_component"]
    total = sum(parts.values()) or 1.0
    lines.append("")
    lines.append("axelram energy/token: " + ", ".join(f"{k} {v / total:.0%}" for k, v in parts.items()))
    states, power = report["decode"]["energy_j_per_token_by_state"], report["power"]
    lines.append(f"power    {power['gating']}: " + ", ".join(f"{k} {v * 1e3:.4g} mJ" for k, v in states.items())
                 + f" per token; {power['instances_gated']} instances gated, {power['tiles_off']} of "
                 f"{power['tiles_total']} tiles off")
    if "numerics" in report:
        n = report["numerics"]
        lines.append(f"numerics bit_exact {'YES' if n['bit_exact'] else 'NO'} (split {n['split']}, merged); "
                     f"score rel RMSE {n['score_rel_rmse']:.3g}, output rel RMSE {n.get('output_rel_rmse', float('nan')):.3g}, "
                     f"KL {n['attn_kl']:.3g}")
    for note in report.get("notes", []):
        lines.append(f"note     {note}")
    return "\n".join(lines)


def plot_chip(report: dict[str, Any], folder: str | Path) -> list[Path]:
    """Energy per token by component and decode latency per design (PNG and SVG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from axelsim.io import write_figure

    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    rows = _design_rows(report)
    gpu = report.get("baselines", {}).get("gpu_h200")
    fig, (ax_e, ax_t) = plt.subplots(1, 2, figsize=(10, 4))
    components = list(report["decode"]["energy_j_per_token_by_component"])
    bottom = [0.0] * len(rows)
    for comp in components:
        values = [section["decode"]["energy_j_per_token_by_component"].get(comp, 0.0) * 1e3 for _, section in rows]
        ax_e.bar([name for name, _ in rows], values, bottom=bottom, label=comp)
        bottom = [b + v for b, v in zip(bottom, values)]
    if gpu:
        ax_e.bar(["gpu_h200"], [gpu["energy_j_per_token"] * 1e3], color="grey", label="H200 board (measured)")
    ax_e.set_ylabel("energy per token (mJ)")
    ax_e.legend(fontsize=7)
    names = [name for name, _ in rows] + (["gpu_h200"] if gpu else [])
    latencies = [section["decode"]["latency_s"] * 1e6 for _, section in rows] + ([gpu["latency_s"] * 1e6] if gpu else [])
    ax_t.bar(names, latencies, color=["C0"] * len(rows) + (["grey"] if gpu else []))
    ax_t.set_ylabel("decode step latency (us)")
    w = report["workload"]
    fig.suptitle(f"{w['name']} T={w['context_tokens']} batch {w['batch']}: {report['chip']['name']}")
    fig.tight_layout()
    paths = []
    for suffix in (".png", ".svg"):
        path = out / f"chip{suffix}"
        write_figure(fig, path)
        paths.append(path)
    plt.close(fig)
    return paths
