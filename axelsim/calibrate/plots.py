"""Plots of the sensitivity study: the spread over sign seeds, per layer, per bit-width."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from axelsim.calibrate.sensitivity import metric_table
from axelsim.io import write_figure

_ROWS = (
    ("key_mse_ratio", "key MSE / Gaussian D_b"),
    ("score_rel_rmse", "score rel. RMSE"),
    ("attn_kl", "softmax KL (nats)"),
)


_TITLE_PT = 11


def title_chars(width_in: float, points: float) -> int:
    """How many characters of a `points`-size title fit across `width_in` inches (a character
    is taken as 0.6 em wide, a margin of 0.3 inch is kept)."""
    return max(20, int((width_in - 0.3) * 72 / (0.6 * points)))


def sensitivity_plot(result: dict, path: str | Path) -> Path:
    """Draw `sensitivity_figure(result)` into `path` (PNG, atomically); returns the path."""
    write_figure(sensitivity_figure(result), path, dpi=100)
    return Path(path)


def sensitivity_figure(result: dict) -> Figure:
    """Rows: key MSE ratio, score error, softmax KL; columns: bit-widths. Per layer a bar from
    the best to the worst seed, a dot at the seed median and a red cross for the calibrated
    signs; the mean key norm per layer on a right axis of the first row."""
    bits_list = result["bits"]
    width_in = 4.2 * len(bits_list)
    fig = Figure(figsize=(width_in, 8.5))
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(_ROWS), len(bits_list), squeeze=False, sharex=True)
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
    title = (f"{result['trace']}: sign-seed spread per layer "
             f"(key norm max/min {result['norm_heterogeneity']:.2f})")
    # A long trace path is wrapped to the figure's width instead of running off both edges.
    fig.suptitle(textwrap.fill(title, width=title_chars(width_in, _TITLE_PT)), fontsize=_TITLE_PT)
    fig.tight_layout()
    return fig
