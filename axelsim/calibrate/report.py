"""Tables and plots of the perplexity study (the paper's Tables I and II for one model)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from axelsim.io import write_figure


def _increases(results: dict, bits: int, family: str = "") -> np.ndarray:
    """PPL increase over the FP32 cache of every seed at `bits` (configuration names `family`b../seed..)."""
    ppl = results["perplexity"]
    return np.array([ppl[f"{family}b{bits}/seed{s}"] - ppl["fp32"] for s in results["seeds"]])


def _spread(inc: np.ndarray) -> str:
    return f"{inc.mean():+.3f} ± {inc.std(ddof=1) if inc.size > 1 else 0.0:.3f}"


def _rank(value: float, seeds: np.ndarray) -> str:
    """Where `value` falls among the seeds: 'k-th best of n + 1' and inside/outside their range."""
    k = int(np.sum(seeds < value)) + 1
    inside = seeds.min() <= value <= seeds.max()
    return f"{k}{'st' if k == 1 else 'nd' if k == 2 else 'rd' if k == 3 else 'th'} best of {seeds.size + 1}, " + (
        "inside the seed range" if inside else "outside the seed range")


def comparison_table(results: dict) -> str:
    """Markdown: every family of the run side by side per b (PPL increase over the FP32 cache of
    the same windows), and the findings computed from it (paired differences against the main
    family, calibrated signs' rank among the seeds, QJL and KIVI against the b-bit seeds)."""
    ppl, fp32, bits_list = results["perplexity"], results["perplexity"]["fp32"], results["bits"]
    families = {k: v for k, v in results.get("families", {}).items() if k}
    main = results.get("families", {}).get("", {"protocol": results["protocol"], "mode": results["mode"]})
    extras = [(name, f"{name}b{{b}}/{{what}}") for name in ("qjl", "kivi") if any(f"b{b}/{name}" in ppl for b in bits_list)]
    head = [f"{main['protocol']} {main['mode']}: seeds mean ± std", "worst", "calibrated"]
    head += ["QJL (b−1 MSE bits + d-bit sketch, first seed)" if n == "qjl" else "KIVI (b-bit)" for n, _ in extras]
    for fam, info in families.items():
        head += [f"{info['protocol']} {info['mode']} ({info['quantized']}, ties {info['ties']}): seeds mean ± std",
                 "calibrated", f"{info['protocol']} {info['mode']} − {main['protocol']} {main['mode']}: paired mean ± std (max |Δ|)"]
    lines = [f"PPL increase over the FP32 cache (PPL {fp32:.3f}), {results['windows']['count']} windows of "
             f"{results['windows']['prefix']} + {results['windows']['decode']} tokens "
             f"({results['windows']['scored_tokens']} scored tokens), {len(results['seeds'])} sign seeds", "",
             "| b | " + " | ".join(head) + " |", "|" + "---|" * (len(head) + 1)]
    findings = []
    for b in bits_list:
        inc = _increases(results, b)
        cal = ppl.get(f"b{b}/calibrated")
        row = [_spread(inc), f"{inc.max():+.3f}", "n/a" if cal is None else f"{cal - fp32:+.3f}"]
        if cal is not None:
            findings.append(f"b = {b}, {main['protocol']} {main['mode']}: calibrated signs {cal - fp32:+.3f}, "
                            f"{_rank(cal - fp32, inc)}.")
        for name, _ in extras:
            value = ppl.get(f"b{b}/{name}")
            row.append("n/a" if value is None else f"{value - fp32:+.3f}")
            if value is not None:
                first = ppl[f"b{b}/seed{results['seeds'][0]}"]
                lower = ppl.get(f"b{b - 1}/seed{results['seeds'][0]}")
                what = (f"QJL {value - fp32:+.3f} against {first - fp32:+.3f} for {b}-bit MSE keys"
                        + ("" if lower is None else f" and {lower - fp32:+.3f} for {b - 1}-bit") + " (same seed)"
                        if name == "qjl" else
                        f"KIVI {value - fp32:+.3f} against the AXELRAM seed mean {inc.mean():+.3f} "
                        f"({'better' if value - fp32 < inc.min() else 'worse' if value - fp32 > inc.max() else 'inside the seed range'})")
                findings.append(f"b = {b}: {what}.")
        for fam, info in families.items():
            other = _increases(results, b, fam)
            ocal = ppl.get(f"{fam}b{b}/calibrated")
            diff = other - inc
            row += [_spread(other), "n/a" if ocal is None else f"{ocal - fp32:+.3f}",
                    f"{_spread(diff)} ({np.abs(diff).max():.3f})"]
            std = inc.std(ddof=1) if inc.size > 1 else 0.0
            findings.append(
                f"b = {b}: {info['protocol']} {info['mode']} − {main['protocol']} {main['mode']} = {diff.mean():+.3f} PPL "
                f"(paired over {diff.size} seeds; {abs(diff.mean()) / std if std else float('inf'):.2f}× the "
                f"{main['protocol']} {main['mode']} seed std {std:.3f}: "
                f"{'inside' if abs(diff.mean()) <= std else 'outside'} the seed spread)"
                + ("" if ocal is None else f"; its calibrated signs {_rank(ocal - fp32, other)}") + ".")
        lines.append(f"| {b} | " + " | ".join(row) + " |")
    if "fp16" in ppl:
        lines += ["", f"FP16 KV cache (model attention over FP16-rounded K/V): {ppl['fp16'] - fp32:+.3f}"]
    if "fp16_baseline" in ppl:
        lines += [f"FP16 baseline macro (its exact arithmetic: FP16 rows, accumulator-format dot products, exp unit, "
                  f"FP16 value accumulation): {ppl['fp16_baseline'] - fp32:+.3f}"]
    if results.get("kivi"):
        g = results["kivi"]["group_size"]
        lines += [f"KIVI: per-channel key groups and per-token value groups of {g}, FP16 scale and zero point "
                  f"(b + {32 / g:g} bits per quantized element), the last {results['kivi']['window']} tokens in FP16."]
    return "\n".join(lines + ["", "Findings (computed from the table):", ""] + [f"- {f}" for f in findings]) + "\n"


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
    if results.get("families") and (len(results["families"]) > 1 or any(k in ppl for k in ("fp16_baseline",))):
        lines += ["", comparison_table(results)]
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
