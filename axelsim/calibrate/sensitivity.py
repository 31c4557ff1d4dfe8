"""The sign-pattern sensitivity study (PAPER.md section 3, measured rather than repeated).

For one trace, every bit-width b and every sign ROM (seeds of the seed rule, then the signs
Algorithm 1 selects on the same trace), every layer goes through the golden model (write,
read and value paths of docs/architecture.md) and is compared with exact float64 attention:

- key_mse: mean over keys of ||k - k_hat||^2 / ||k||^2, k_hat the vector the stored indices
  and FP16 norm stand for; key_mse_ratio = key_mse / D_b, the codebook's Gaussian distortion
  (1.0 when the rotated coordinates behave as N(0, 1/d));
- score_rel_rmse, attn_kl (nats), top1_agreement and output_rel_rmse of `numerics.metrics`;
- per layer, the mean key norm, and per trace the heterogeneity ratio max/min of those means
  (the paper's guideline: < 2 safe with random signs, > 5 calls for calibration).

The calibrated signs are chosen on the trace they are evaluated on (in-sample): the study asks
whether any sign pattern can repair a layer; the perplexity script measures held-out.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterable, Optional, Sequence

import numpy as np

from axelsim.calibrate.calibration import calibrate_signs
from axelsim.calibrate.kvquant import dequantize, macro_spec
from axelsim.io import write_json, write_text
from axelsim.numerics.golden import NumericsSpec, golden_layer
from axelsim.numerics.hadamard import SignRom
from axelsim.numerics.metrics import attention_metrics
from axelsim.numerics.reference import Attention, attention_f64

METRICS = ("key_mse_ratio", "score_rel_rmse", "attn_kl", "top1_agreement", "output_rel_rmse")
CALIBRATED = "calibrated"


def layer_key_norms(trace) -> dict[int, float]:
    """Mean L2 norm of the keys of each layer (all KV heads and tokens), in activation units."""
    return {layer: float(np.linalg.norm(trace.k(layer).astype(np.float64), axis=-1).mean())
            for layer in trace.layer_indices}


def norm_heterogeneity(norms: dict[int, float]) -> float:
    """max / min of the per-layer mean key norms (1.0 for a single layer)."""
    values = np.array(list(norms.values()))
    return float(values.max() / values.min())


def _relative_mse(x: np.ndarray, x_hat: np.ndarray) -> float:
    """Mean over non-zero rows of ||x - x_hat||^2 / ||x||^2."""
    x64 = x.astype(np.float64).reshape(-1, x.shape[-1])
    err = np.sum((x64 - x_hat.reshape(x64.shape)) ** 2, axis=-1)
    energy = np.sum(x64**2, axis=-1)
    keep = energy > 0.0
    return float(np.mean(err[keep] / energy[keep]))


def evaluate_layer(spec: NumericsSpec, trace, layer: int, exact: Attention) -> dict[str, float]:
    """The study's metrics of one layer under the sign ROM of `spec` (see the module docstring)."""
    k = trace.k(layer)
    v = trace.v(layer) if trace.has_values else None
    gold = golden_layer(spec, k, v, trace.q(layer), trace.q_positions, layer)
    key_mse = _relative_mse(k, dequantize(spec, gold.k_indices, gold.k_norms, layer))
    metrics = attention_metrics(gold.scores, exact.scores, spec.dim, gold.outputs, exact.outputs)
    metrics.pop("score_max_abs_err")
    return {"key_mse": key_mse, "key_mse_ratio": key_mse / spec.codebook.distortion, **metrics}


def _roms(trace, seeds: Sequence[int], bits: int, candidates: int) -> list[tuple[str, Optional[int], SignRom]]:
    """(label, seed or None, ROM) for every seed and for the calibrated signs."""
    n_layers = max(trace.layer_indices) + 1
    roms = [(f"seed {s}", int(s), SignRom.from_seed(int(s), n_layers, trace.head_dim)) for s in seeds]
    if candidates > 0:
        calibration = calibrate_signs(trace, bits, candidates, include_values=trace.has_values)
        roms.append((CALIBRATED, None, calibration.rom))
    return roms


SENSITIVITY_UNITS = {
    "records.*.bits": "bits per coordinate",
    "records.*.signs": "'seed <s>' or 'calibrated' (the sign ROM)",
    "records.*.seed": "sign-ROM seed (null for the calibrated signs)",
    "records.*.layer": "layer number",
    "records.*.key_mse": "dimensionless (mean over keys of ||k - k_hat||^2 / ||k||^2)",
    "records.*.key_mse_ratio": "dimensionless (key_mse / the codebook's Gaussian distortion D_b)",
    "records.*.score_rel_rmse, records.*.output_rel_rmse": "dimensionless (RMS error / RMS reference)",
    "records.*.attn_kl": "nats (mean over queries of KL(reference || golden) softmax)",
    "records.*.top1_agreement": "fraction of queries (0..1)",
    "summary.<bits>.<metric>.*": "the unit of <metric> above",
    "key_norm_mean.*": "activation units (mean L2 norm of the layer's keys)",
    "norm_heterogeneity": "ratio (max / min of key_norm_mean)",
}
"""The unit of every key of the sensitivity JSON (and of the CSV's columns, which are the records' keys)."""


def write_records_csv(records: Sequence[dict], path: str | Path) -> Path:
    """The records as CSV: one row each, the columns exactly the records' JSON keys (atomically)."""
    import csv
    import io as text_io

    buffer = text_io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(records[0]) if records else [], lineterminator="\n")
    writer.writeheader()
    writer.writerows(records)
    return write_text(path, buffer.getvalue())


def run_sensitivity(trace, seeds: Iterable[int] = range(1, 11), bits_list: Sequence[int] = (2, 3, 4),
                    out_dir: Optional[str | Path] = None,
                    progress: Optional[Callable[[Iterable], Iterable]] = None,
                    candidates: int = 200, plot_dir: Optional[str | Path] = None) -> dict:
    """The study on one trace; returns a JSON-ready dict and, with `out_dir`, writes
    `sensitivity_<trace>.json` there and `sensitivity_<trace>.png` into `plot_dir` (default
    `out_dir`).

    seeds: seed-rule seeds of the random sign ROMs; bits_list: bit-widths; candidates: C of
    Algorithm 1 for the calibrated row (0 skips calibration); progress wraps the
    (bit-width, sign ROM) iteration, e.g. tqdm.
    """
    seeds = [int(s) for s in seeds]
    exact = {layer: attention_f64(trace.k(layer), trace.v(layer) if trace.has_values else None,
                                  trace.q(layer), trace.q_positions) for layer in trace.layer_indices}
    norms = layer_key_norms(trace)
    records = []
    jobs = [(bits, label, seed, rom) for bits in bits_list
            for label, seed, rom in _roms(trace, seeds, bits, candidates)]
    for bits, label, seed, rom in (progress(jobs) if progress else jobs):
        spec = macro_spec(trace.head_dim, bits, rom)
        for layer in trace.layer_indices:
            records.append({"bits": bits, "signs": label, "seed": seed, "layer": layer,
                            **evaluate_layer(spec, trace, layer, exact[layer])})
    result = {
        "trace": trace.name, "model": trace.model, "digest": trace.digest(),
        "shape": {"layers": trace.n_layers, "kv_heads": trace.kv_heads, "q_heads": trace.q_heads,
                  "head_dim": trace.head_dim, "tokens": trace.tokens, "queries": trace.n_queries},
        "seeds": seeds, "bits": list(bits_list), "candidates": candidates,
        "key_norm_mean": norms, "norm_heterogeneity": norm_heterogeneity(norms),
        "records": records,
    }
    result["summary"] = summarize(result)
    result["units"] = dict(SENSITIVITY_UNITS)
    if out_dir is not None:
        from axelsim.calibrate.plots import sensitivity_plot

        out = Path(out_dir)
        write_json(out / f"sensitivity_{trace.name}.json", result)
        write_records_csv(records, out / f"sensitivity_{trace.name}.csv")
        plots = Path(plot_dir) if plot_dir is not None else out
        sensitivity_plot(result, plots / f"sensitivity_{trace.name}.png")
    return result


def metric_table(result: dict, bits: int, metric: str) -> tuple[list[int], np.ndarray, Optional[np.ndarray]]:
    """(layers, values [n_seeds, n_layers] over the random seeds, calibrated [n_layers] or None)."""
    layers = sorted({r["layer"] for r in result["records"]})
    column = {layer: i for i, layer in enumerate(layers)}
    seeds = result["seeds"]
    table = np.full((len(seeds), len(layers)), np.nan)
    calibrated = np.full(len(layers), np.nan)
    for r in result["records"]:
        if r["bits"] != bits:
            continue
        if r["signs"] == CALIBRATED:
            calibrated[column[r["layer"]]] = r.get(metric, np.nan)
        else:
            table[seeds.index(r["seed"]), column[r["layer"]]] = r.get(metric, np.nan)
    has_calibrated = not np.all(np.isnan(calibrated))
    return layers, table, calibrated if has_calibrated else None


def summarize(result: dict) -> dict:
    """Per bit-width: over layers, the seed mean, the worst seed and the calibrated value of
    each metric (worst = highest, or lowest for top-1 agreement), and the largest seed spread
    of the key MSE ratio (max - min over seeds in one layer)."""
    summary = {}
    for bits in result["bits"]:
        entry = {}
        for metric in METRICS:
            layers, table, calibrated = metric_table(result, bits, metric)
            if np.all(np.isnan(table)):
                continue
            worst = np.nanmin if metric == "top1_agreement" else np.nanmax
            entry[metric] = {
                "seed_mean": float(np.nanmean(table)),
                "worst_seed_layer": float(worst(table)),
                "calibrated_mean": None if calibrated is None else float(np.nanmean(calibrated)),
                "calibrated_worst_layer": None if calibrated is None else float(worst(calibrated)),
            }
        _, mse, _ = metric_table(result, bits, "key_mse_ratio")
        entry["key_mse_ratio"]["max_seed_spread"] = float(np.nanmax(np.nanmax(mse, 0) - np.nanmin(mse, 0)))
        summary[str(bits)] = entry
    return summary


def summary_markdown(results: Sequence[dict]) -> str:
    """One Markdown table over several traces: per trace and b, the key MSE ratio (seed mean,
    worst layer-seed, calibrated worst layer), its largest per-layer seed spread, the score
    error and the softmax KL (seed mean → calibrated mean), top-1 agreement."""
    lines = ["| trace | norm ratio | b | MSE/D mean | MSE/D worst | MSE/D calibrated worst | "
             "seed spread | score rel RMSE seeds → cal | KL seeds → cal (nats) | top-1 seeds → cal |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for res in results:
        for bits in res["bits"]:
            s = res["summary"][str(bits)]
            mse, score, kl, top1 = s["key_mse_ratio"], s["score_rel_rmse"], s["attn_kl"], s["top1_agreement"]

            def cal(entry, key="calibrated_mean", fmt="{:.4f}"):
                return "n/a" if entry[key] is None else fmt.format(entry[key])

            lines.append(
                f"| {res['trace']} | {res['norm_heterogeneity']:.2f} | {bits} | {mse['seed_mean']:.3f} | "
                f"{mse['worst_seed_layer']:.3f} | {cal(mse, 'calibrated_worst_layer', '{:.3f}')} | "
                f"{mse['max_seed_spread']:.3f} | {score['seed_mean']:.4f} → {cal(score)} | "
                f"{kl['seed_mean']:.4f} → {cal(kl)} | {top1['seed_mean']:.3f} → {cal(top1, fmt='{:.3f}')} |")
    return "\n".join(lines) + "\n"
