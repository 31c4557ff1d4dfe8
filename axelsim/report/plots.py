"""Plots of reports and sweeps (matplotlib, Agg canvas, PNG and SVG side by side).

No pyplot: each figure is a `matplotlib.figure.Figure` drawn on its own Agg canvas, so plotting
holds no global state and is safe in worker threads. Every file is written atomically.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Iterable

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from axelsim import io
from axelsim.report.figures import PHASES, headline, lookup
from axelsim.report.tables import scaled

FORMATS = ("png", "svg")
REFERENCE_LABEL = "reference point (the sweep's base macro)"
_SCALES = {"energy_pj_per_query": (1e-3, "energy per query (nJ)"), "area_um2_total": (1e-6, "area (mm²)"),
           "time_s": (1e6, "latency of the run (µs)")}


def save_figure(figure: Figure, out_dir: str | Path, stem: str) -> list[Path]:
    """Write a figure as OUT/stem.png and OUT/stem.svg (atomically); returns the paths."""
    return _save(figure, Path(out_dir), stem)


def run_figures(report: dict[str, Any]) -> dict[str, Figure]:
    """The figures of one run by file stem (what `plot_run` writes), for a notebook."""
    figures = {"energy_area": breakdown_figure(report), "cycles": cycles_figure(report)}
    if lookup(report, ("timeline", "units")):
        figures["timeline"] = timeline_figure(report)
    if report.get("numerics_by_bits"):
        figures["error_vs_bits"] = error_vs_bits_figure(report["numerics_by_bits"])
    return figures


def _save(figure: Figure, out_dir: Path, stem: str) -> list[Path]:
    """Write `figure` as OUT/stem.png and OUT/stem.svg (atomically); returns the paths."""
    FigureCanvasAgg(figure)
    paths = []
    for extension in FORMATS:
        paths.append(io.write_figure(figure, out_dir / f"{stem}.{extension}", dpi=120, bbox_inches="tight"))
    return paths


def _component_totals(section: dict[str, Any] | None) -> dict[str, float]:
    """{component: number} from a by-component breakdown whose entries are numbers or dicts with 'total'."""
    totals: dict[str, float] = {}
    for name, value in (section or {}).items():
        number = value.get("total") if isinstance(value, dict) else value
        if isinstance(number, (int, float)) and number > 0:
            totals[name] = float(number)
    return dict(sorted(totals.items(), key=lambda item: (item[1], item[0])))


# --------------------------------------------------------------------------- one run


def plot_run(report: dict[str, Any], out_dir: str | Path) -> list[Path]:
    """All plots of one run: energy and area by component, cycles by phase and utilisation,
    and score error against bit-width when the report holds a bit-width study."""
    out_dir = Path(out_dir)
    return [path for stem, figure in run_figures(report).items() for path in _save(figure, out_dir, stem)]


def plot_breakdown(report: dict[str, Any], out_dir: Path) -> list[Path]:
    return _save(breakdown_figure(report), out_dir, "energy_area")


def breakdown_figure(report: dict[str, Any]) -> Figure:
    """Energy (dynamic and leakage side by side, pJ) and area (µm²) by component, log scale
    (the index SRAM dominates both; the logic units would be invisible on a linear axis)."""
    energy = lookup(report, ("energy_pj", "by_component")) or {}
    area = _component_totals(lookup(report, ("area_um2", "by_component")))
    figure = Figure(figsize=(12, 0.35 * max(len(energy), len(area), 4) + 2), layout="constrained")
    left, right = figure.subplots(1, 2)
    names = sorted(energy, key=lambda name: (_energy_total(energy[name]), name))
    rows = np.arange(len(names))
    for offset, key, color in ((-0.2, "dynamic_total", "tab:blue"), (0.2, "leakage", "tab:orange")):
        values = [float(energy[name].get(key, 0.0)) for name in names]
        left.barh(rows + offset, [v if v > 0 else np.nan for v in values], height=0.4, color=color,
                  label=key.replace("_total", ""))
    left.set_yticks(rows, names)
    left.set_xscale("log")
    left.set_xlabel("energy (pJ, log scale)")
    left.set_title(f"energy by component, total {_energy_total_text(report)}")
    left.legend(loc="lower right")
    right.barh(list(area), list(area.values()), color="tab:green")
    right.set_xscale("log")
    right.set_xlabel("area (µm², log scale)")
    total_area = lookup(report, ("area_um2", "total"))
    right.set_title(f"area by component, total {scaled(total_area, 'um2')}" if total_area else "area by component")
    figure.suptitle(_title(report))
    return figure


def _energy_total(entry: dict[str, Any]) -> float:
    return float(entry.get("dynamic_total", 0.0)) + float(entry.get("leakage", 0.0))


def _energy_total_text(report: dict[str, Any]) -> str:
    total = lookup(report, ("energy_pj", "total"))
    return scaled(total, "pJ") if isinstance(total, (int, float)) else "n/a"


def plot_cycles(report: dict[str, Any], out_dir: Path) -> list[Path]:
    return _save(cycles_figure(report), out_dir, "cycles")


def cycles_figure(report: dict[str, Any]) -> Figure:
    """Cycles by phase (each cycle once, by priority, plus idle: the bars add up to the total;
    beside them the cycles each phase was in flight, which overlap) and each unit's utilisation."""
    cycles = report.get("cycles") or {}
    active = report.get("phase_active_cycles") or {}
    utilisation = report.get("utilisation") or {}
    figure = Figure(figsize=(11, 4.5), layout="constrained")
    left, right = figure.subplots(1, 2)
    phases = [phase for phase in (*PHASES, "idle") if phase in cycles]
    rows = np.arange(len(phases))
    left.bar(rows - 0.2, [cycles[phase] or math.nan for phase in phases], width=0.4, color="tab:purple",
             label="attributed (sum = total)")
    if active:
        left.bar(rows + 0.2, [active.get(phase) or math.nan for phase in phases], width=0.4, color="tab:olive",
                 label="in flight (overlapping)")
    left.set_xticks(rows, phases)
    left.set_yscale("log")
    left.set_ylabel("cycles (log scale)")
    left.legend(loc="upper left", fontsize=8)
    left.set_title(f"cycles by phase, total {cycles.get('total', 0):,}\n"
                   f"{cycles.get('stall', 0):,} cycles with an item waiting", fontsize=10)
    units = sorted(utilisation, key=lambda name: (utilisation[name], name))
    right.barh(units, [utilisation[name] for name in units], color="tab:cyan")
    right.set_xlim(0, 1.05)
    right.set_xlabel("utilisation (busiest stage's occupied cycles / total cycles)")
    right.set_title("unit utilisation")
    figure.suptitle(_title(report))
    return figure


def timeline_figure(report: dict[str, Any]) -> Figure:
    """A unit-by-unit timeline (Gantt chart): per unit, the shade of each time bin is the
    fraction of it a stream was inside the unit (report['timeline'])."""
    timeline = report.get("timeline") or {}
    units = sorted((timeline.get("units") or {}).items())
    figure = Figure(figsize=(11, 0.4 * max(len(units), 3) + 1.8), layout="constrained")
    axis = figure.subplots()
    width = timeline.get("bin_cycles", 1)
    clock = report.get("clock_hz") or 1.0
    for row, (unit, shares) in enumerate(units):
        for index, share in enumerate(shares):
            if share > 0:
                axis.broken_barh([(index * width / clock * 1e6, width / clock * 1e6)], (row - 0.4, 0.8),
                                 color="tab:blue", alpha=min(1.0, 0.15 + 0.85 * share), linewidth=0)
    axis.set_yticks(range(len(units)), [unit for unit, _ in units])
    axis.set_xlabel(f"time (µs; one bin = {width:,} cycles)")
    axis.set_ylim(-0.6, len(units) - 0.4)
    axis.set_title("unit timeline: shade = fraction of the bin with a stream in the unit")
    figure.suptitle(_title(report))
    return figure


def plot_timeline(report: dict[str, Any], out_dir: Path) -> list[Path]:
    return _save(timeline_figure(report), out_dir, "timeline")


def plot_error_vs_bits(study: dict[str, dict[str, Any]], out_dir: Path) -> list[Path]:
    return _save(error_vs_bits_figure(study), out_dir, "error_vs_bits")


def error_vs_bits_figure(study: dict[str, dict[str, Any]]) -> Figure:
    """Score and output relative RMSE (log scale) and top-1 agreement against the bit-width.

    `study` maps bit-width (as a string or int) to a numerics section (docs/report.md).
    """
    bits = sorted(study, key=int)
    xs = [int(b) for b in bits]
    figure = Figure(figsize=(7, 5), layout="constrained")
    axis = figure.subplots()
    for key, marker in (("score_rel_rmse", "o"), ("output_rel_rmse", "s")):
        ys = [study[b].get(key) for b in bits]
        if any(isinstance(y, (int, float)) and y > 0 for y in ys):
            axis.plot(xs, [y if y else math.nan for y in ys], marker=marker, label=key)
    axis.set_yscale("log")
    axis.set_xticks(xs)
    axis.set_xlabel("bits per coordinate")
    axis.set_ylabel("relative RMSE against float64 attention")
    axis.grid(True, which="both", alpha=0.3)
    twin = axis.twinx()
    top1 = [study[b].get("top1_agreement") for b in bits]
    if all(isinstance(y, (int, float)) for y in top1):
        twin.plot(xs, top1, color="tab:red", linestyle="--", marker="^", label="top1_agreement")
        twin.set_ylim(0, 1.02)
        twin.set_ylabel("top-1 agreement (fraction)")
    handles = axis.get_legend_handles_labels()
    extra = twin.get_legend_handles_labels()
    axis.legend(handles[0] + extra[0], handles[1] + extra[1], loc="upper center", bbox_to_anchor=(0.5, -0.15), ncol=3)
    axis.set_title("score error against bit-width")
    return figure


def _title(report: dict[str, Any]) -> str:
    """'NAME (d=64, b=3, 45 nm, 1 GHz, SRAM 36 MiB, trace 54 KiB = 0.1%) on TRACE'."""
    macro = report.get("macro") or {}
    trace = report.get("trace") or {}
    parts = [f"d={macro.get('head_dim', '?')}", f"b={macro.get('bits', '?')}"]
    node = lookup(macro, ("technology", "node_nm"))
    if node is not None:
        parts.append(f"{node} nm")
    if isinstance(macro.get("clock_hz"), (int, float)):
        parts.append(scaled(macro["clock_hz"], "Hz"))
    sram = report.get("sram_tiles")
    if sram:
        parts.append(f"SRAM {scaled(sram['capacity_bits'] / 8, 'bytes')}, trace {scaled(sram['occupied_bits'] / 8, 'bytes')}"
                     f" = {100 * sram['occupancy']:.1f}%")
    return f"{macro.get('name', '?')} ({', '.join(parts)}) on {trace.get('name', '?')}"


# --------------------------------------------------------------------------- compare


def plot_compare(reports: dict[str, dict[str, Any]], out_dir: str | Path) -> list[Path]:
    return _save(compare_figure(reports), Path(out_dir), "compare")


def compare_figure(reports: dict[str, dict[str, Any]]) -> Figure:
    """Energy per query, area and memory of several designs side by side (baselines, named
    'baseline ...', in grey)."""
    names = list(reports)
    rows = [headline(reports[name]) for name in names]
    panels = (("energy_pj_per_query", "energy per query (nJ)", 1e-3), ("area_um2_total", "area (mm²)", 1e-6),
              ("memory_bytes_total", "KV + ROM + table memory (KiB)", 1 / 1024))
    figure = Figure(figsize=(12, 0.5 * len(names) + 2.5), layout="constrained")
    axes = figure.subplots(1, len(panels))
    colours = ["tab:gray" if name.startswith("baseline") else "tab:blue" for name in names]
    for axis, (key, label, scale) in zip(axes, panels):
        values = [row[key] * scale if isinstance(row[key], (int, float)) else 0.0 for row in rows]
        axis.barh(names, values, color=colours)  # linear from zero: bar lengths compare as ratios
        axis.set_xlabel(label)
        axis.invert_yaxis()
    for axis in axes[1:]:
        axis.set_yticklabels([])
    figure.suptitle("designs side by side")
    return figure


# --------------------------------------------------------------------------- sweeps


def pareto_front(points: Iterable[tuple[float, float]]) -> list[tuple[float, float]]:
    """The points no other point beats on both coordinates (both minimised), sorted by x."""
    front: list[tuple[float, float]] = []
    for x, y in sorted(set(points)):
        if not front or y < front[-1][1]:
            front.append((x, y))
    return front


def plot_sweep(rows: list[dict[str, Any]], out_dir: str | Path) -> list[Path]:
    """Pareto fronts of energy per query against area, score error and latency (points
    labelled by id on the latency plot), the sweep's reference point ringed when it is in the
    sweep; rejected points are counted in each title. Error against bit-width if bits vary."""
    out_dir = Path(out_dir)
    good = [row for row in rows if row.get("status") == "ok"]
    rejected = len(rows) - len(good)
    paths = []
    for y_key, y_label, stem in (
        ("area_um2_total", None, "pareto_energy_area"),
        ("score_rel_rmse", "score relative RMSE", "pareto_energy_accuracy"),
        ("time_s", None, "pareto_energy_latency"),
    ):
        paths += _pareto_plot(good, "energy_pj_per_query", y_key, y_label, out_dir, stem, rejected,
                              labels=stem == "pareto_energy_latency")
    if "set.bits" in (good[0] if good else {}):
        study = {}
        for row in good:
            if row.get("set.bits") is not None and row["set.bits"] not in study:
                study[row["set.bits"]] = {key: row.get(key) for key in ("score_rel_rmse", "output_rel_rmse", "top1_agreement")}
        if len(study) > 1:
            paths += plot_error_vs_bits(study, out_dir)
    return paths


def _colour_key(rows: list[dict[str, Any]]) -> str | None:
    """The swept setting with the most distinct values (at most 8) among `rows`, to colour by;
    the first such column on a tie."""
    counts = {key: len({str(row.get(key)) for row in rows}) for key in (rows[0] if rows else {}) if key.startswith("set.")}
    usable = [key for key, count in counts.items() if 1 < count <= 8]
    return max(usable, key=lambda key: counts[key]) if usable else None  # the first of equals


def _pareto_plot(rows, x_key, y_key, y_label, out_dir: Path, stem: str, rejected: int = 0,
                 labels: bool = False) -> list[Path]:
    usable = [row for row in rows if isinstance(row.get(x_key), (int, float)) and isinstance(row.get(y_key), (int, float))]
    x_scale, x_label = _SCALES.get(x_key, (1.0, x_key))
    y_scale, default_label = _SCALES.get(y_key, (1.0, y_key))
    y_label = y_label or default_label
    figure = Figure(figsize=(7, 5))
    axis = figure.subplots()
    xy = [(float(row[x_key]) * x_scale, float(row[y_key]) * y_scale) for row in usable]
    markers = "os^Dvp*h"
    if xy:
        colour_key = _colour_key(usable)
        bit_values = sorted({row.get("set.bits") for row in usable if row.get("set.bits") is not None})
        groups = sorted({str(row.get(colour_key)) for row in usable}) if colour_key else [None]
        for index, group in enumerate(groups):
            members = [row for row in usable if colour_key is None or str(row.get(colour_key)) == group]
            for bits in bit_values or [None]:
                chosen = [row for row in members if bits is None or row.get("set.bits") == bits]
                if not chosen:
                    continue
                label = "design points" if group is None else f"{colour_key[4:]} = {group}"
                if bits is not None and colour_key != "set.bits":
                    label += f", bits = {bits}"
                marker = markers[bit_values.index(bits) % len(markers)] if bits is not None else "o"
                axis.scatter([row[x_key] * x_scale for row in chosen], [row[y_key] * y_scale for row in chosen], s=26,
                             marker=marker, color=f"C{(index + 2) % 10}", label=label, zorder=3)
        front = pareto_front(xy)
        axis.step([p[0] for p in front], [p[1] for p in front], where="post", color="tab:blue", label="Pareto front")
        if labels:
            for row, (x, y) in zip(usable, xy):
                axis.annotate(str(row.get("point_id", ""))[:6], (x, y), fontsize=7, xytext=(3, 3),
                              textcoords="offset points")
    for row in usable:
        if row.get("is_reference"):
            # a ring, drawn over the point without hiding it
            axis.scatter([row[x_key] * x_scale], [row[y_key] * y_scale], marker="o", s=220, facecolors="none",
                         edgecolors="tab:red", linewidths=2, zorder=5, label=REFERENCE_LABEL)
            break
    axis.set_xlabel(x_label)
    axis.set_ylabel(y_label)
    axis.ticklabel_format(useOffset=False, style="plain", axis="x")
    if xy and min(p[1] for p in xy) > 0 and max(p[1] for p in xy) / min(p[1] for p in xy) > 20:
        axis.set_yscale("log")
    else:
        axis.ticklabel_format(useOffset=False, style="plain", axis="y")
    axis.grid(True, alpha=0.3)
    axis.legend(loc="best", fontsize=8)
    axis.set_title(f"{x_label} against {y_label}: {len(xy)} points"
                   + (f", {rejected} rejected by the macro (not drawn)" if rejected else ""), fontsize=10)
    return _save(figure, out_dir, stem)
