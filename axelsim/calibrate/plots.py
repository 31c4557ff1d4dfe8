"""Plots of the sensitivity study: the spread over sign seeds, per layer, per bit-width."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from axelsim.calibrate.sensitivity import metric_table
from axelsim.io import atomic_path

_ROWS = (
    ("key_mse_ratio", "key MSE / Gaussian D_b"),
    ("score_rel_rmse", "score rel. RMSE"),
    ("attn_kl", "softmax KL (nats)"),
)


def sensitivity_plot(result: dict, path: str | Path) -> Path:
    """Rows: key MSE ratio, score error, softmax KL; columns: bit-widths. Per layer a bar from
    the best to the worst seed, a dot at the seed median and a red cross for the calibrated
    signs; the mean key norm per layer on a right axis of the first row."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    bits_list = result["bits"]
    fig, axes = plt.subplots(len(_ROWS), len(bits_list), figsize=(4.2 * len(bits_list), 8.5),
                             squeeze=False, sharex=True)
    for col, bits in enumerate(bits_list):
        for row, (metric, label) in enumerate(_ROWS):
            ax = axes[row][col]
            layers, table, calibrated = metric_table(result, bits, metric)
            x = np.arange(len(layers))
            ax.vlines(x, np.nanmin(table, 0), np.nanmax(table, 0), color="tab:blue", alpha=0.6,
                      linewidth=3, label=f"{len(result['seeds'])} seeds: min-max")
            ax.plot(x, np.nanmedian(table, 0), "o", color="tab:blue", markersize=3, label="seed median")
            if calibrated is not None:
                ax.plot(x, calibrated, "x", color="tab:red", markersize=5, label="calibrated")
            if metric == "key_mse_ratio":
                ax.axhline(1.0, color="grey", linestyle=":", linewidth=1)
                ax.set_title(f"b = {bits}")
                norms = ax.twinx()
                norms.plot(x, [result["key_norm_mean"][layer] for layer in layers], color="tab:green",
                           linewidth=1, alpha=0.6)
                norms.set_ylabel("mean key norm", color="tab:green", fontsize=8)
            if metric == "attn_kl":
                ax.set_yscale("log")
                ax.set_xlabel("layer")
                ax.set_xticks(x[:: max(1, len(x) // 8)], [str(layers[i]) for i in x[:: max(1, len(x) // 8)]])
            if col == 0:
                ax.set_ylabel(label)
            ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7, loc="upper left")
    fig.suptitle(f"{result['trace']}: sign-seed spread per layer "
                 f"(key norm max/min {result['norm_heterogeneity']:.2f})")
    fig.tight_layout()
    with atomic_path(path) as temp:
        fig.savefig(temp, dpi=100)
    plt.close(fig)
    return Path(path)
