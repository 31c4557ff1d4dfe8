"""Tables and plots of the perplexity study (the paper's Tables I and II for one model)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from axelsim.io import write_figure


def _increases(results: dict, bits: int) -> np.ndarray:
    """PPL increase over the FP32 cache of every seed at `bits`."""
    ppl = results["perplexity"]
    return np.array([ppl[f"b{bits}/seed{s}"] - ppl["fp32"] for s in results["seeds"]])


def perplexity_tables(results: dict) -> str:
    """Markdown: Table I (increase over FP32, mean ± std over seeds, worst) and Table II
    (worst seed → calibrated signs)."""
    ppl = results["perplexity"]
    n = len(results["seeds"])
    lines = [f"FP32 KV cache: PPL {ppl['fp32']:.3f} ({results['windows']['scored_tokens']} scored tokens)", "",
             f"Table I: PPL increase over FP32, mean ± std over {n} sign seeds (worst)", "",
             "| bits | mean ± std | worst | best |", "|---|---|---|---|"]
    for bits in results["bits"]:
        inc = _increases(results, bits)
        lines.append(f"| {bits} | {inc.mean():+.3f} ± {inc.std(ddof=1) if n > 1 else 0.0:.3f} | "
                     f"{inc.max():+.3f} | {inc.min():+.3f} |")
    if all(f"b{bits}/calibrated" in ppl for bits in results["bits"]):
        lines += ["", "Table II: worst-case PPL increase, random seeds → calibrated signs (Algorithm 1)", "",
                  "| bits | worst seed | calibrated | calibrated vs seed mean |", "|---|---|---|---|"]
        for bits in results["bits"]:
            inc = _increases(results, bits)
            cal = ppl[f"b{bits}/calibrated"] - ppl["fp32"]
            lines.append(f"| {bits} | {inc.max():+.3f} | {cal:+.3f} | {cal - inc.mean():+.3f} |")
    if "fp16" in ppl:
        lines += ["", f"FP16 KV cache: PPL {ppl['fp16']:.3f} ({ppl['fp16'] - ppl['fp32']:+.3f} over FP32)"]
    if any(f"b{bits}/qjl" in ppl for bits in results["bits"]):
        lines += ["", f"QJL ablation (seed {results['seeds'][0]}): b bits per key coordinate as (b−1)-bit MSE "
                  "+ a d-bit sign sketch, against b-bit and (b−1)-bit MSE keys", "",
                  "| b | QJL | b-bit MSE (same seed) | (b−1)-bit MSE (same seed) |", "|---|---|---|---|"]
        first = results["seeds"][0]
        for bits in results["bits"]:
            if f"b{bits}/qjl" not in ppl:
                continue
            lower = ppl.get(f"b{bits - 1}/seed{first}")
            lower_text = "n/a" if lower is None else f"{lower:.3f}"
            lines.append(f"| {bits} | {ppl[f'b{bits}/qjl']:.3f} | {ppl[f'b{bits}/seed{first}']:.3f} | {lower_text} |")
    return "\n".join(lines) + "\n"


def perplexity_plot(results: dict, path: str | Path) -> Path:
    """Per bit-width: each seed's PPL increase (dots) and the calibrated signs (a bar)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    bits_list = results["bits"]
    fig, axes = plt.subplots(1, len(bits_list), figsize=(4 * len(bits_list), 3.4), squeeze=False)
    ppl = results["perplexity"]
    for ax, bits in zip(axes[0], bits_list):
        inc = _increases(results, bits)
        ax.scatter(results["seeds"], inc, color="tab:blue", label="random seed")
        if f"b{bits}/calibrated" in ppl:
            ax.axhline(ppl[f"b{bits}/calibrated"] - ppl["fp32"], color="tab:red", label="calibrated")
        ax.axhline(inc.mean(), color="tab:blue", linestyle=":", label="seed mean")
        ax.set_title(f"b = {bits}")
        ax.set_xticks(results["seeds"])
        ax.set_xlabel("sign seed")
        ax.set_ylabel("PPL increase over FP32 cache")
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.suptitle(f"SmolLM2-135M, FP32-cache PPL {ppl['fp32']:.2f}")
    fig.tight_layout()
    write_figure(fig, path, dpi=110)
    plt.close(fig)
    return Path(path)
