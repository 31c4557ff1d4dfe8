"""Chip sweeps: a chip YAML, a workload and a grid of chip keys; one chip report per point, a
CSV, and Pareto fronts of energy per token against tokens/s and against area.

A chip sweep YAML (recognised by its `chip:` key; `axelsim sweep` runs both kinds):

    name: chip_8b_split_clock
    chip: ../chips/axelram_8b.yaml        # relative to the sweep file
    model: Llama-3.1-8B                   # a name in models/ or a config.json path
    context: 4096
    batch: 1
    grid:
      mapping.split: [1, 2, 4]            # chip keys (docs/chip.md)
      macro.clock_hz: [5.0e8, 1.0e9]      # macro.<key>: a key of the instances' macro
      batch: [1, 16]                      # workload keys: context, batch
    points:
      - {instances: 512, mapping.split: 8}
    reference: {}                         # the paper-style design: marked when a point equals it

Grid expansion, point identity (a hash of the resolved chip, its macro, the workload), the
executors and resumption are those of axelsim.sweep; each point is `axelsim chip` (api.chip).
The reference is not added to the sweep: it is marked on the plots only when a point of the
sweep resolves to the same design.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from pydantic import BaseModel, ConfigDict, Field, field_validator

from axelsim import io
from axelsim import sweep as sweeps
from axelsim.config.load import one_line
from axelsim.config.limits import MAX_SWEEP_POINTS
from axelsim.errors import ConfigError

WORKLOAD_KEYS = ("context", "batch")
FIGURES = {
    "mj_per_token": ("decode.energy_j_per_token", 1e3),
    "tokens_per_s": ("decode.tokens_per_s", 1.0),
    "latency_us": ("decode.latency_s", 1e6),
    "area_mm2": ("area_mm2.total", 1.0),
    "instances": ("instances", 1),
    "split": ("mapping.split", 1),
    "leakage_share": ("decode.leakage_share", 1.0),
    "prefill_tokens_per_s": ("prefill.tokens_per_s", 1.0),
    "fp16_mj_per_token": ("baselines.fp16.decode.energy_j_per_token", 1e3),
    "dequant_rotated_mj_per_token": ("baselines.dequant_rotated.decode.energy_j_per_token", 1e3),
}
"""CSV column -> (report key path, scale): the units the terminal prints (mJ, µs, mm²)."""
REFERENCE_LABEL = "paper-style design (the sweep's reference)"


class ChipSweepSpec(BaseModel):
    """The chip sweep YAML, validated strictly (unknown keys are errors)."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    name: str = "chip_sweep"
    chip: str
    """Chip YAML, relative to the sweep file."""
    model: str
    """A model name in models/ or a config.json path (relative to the sweep file)."""
    context: int = Field(ge=1)
    batch: int = Field(default=1, ge=1)
    baselines: bool = False
    """Also build the FP16 chip at every point (about 2x the time)."""
    grid: dict[str, list[Any]] = {}
    points: list[dict[str, Any]] = []
    reference: dict[str, Any] = {}
    """Overrides giving the paper-style design (empty: the chip file as given)."""

    @field_validator("grid")
    @classmethod
    def _non_empty_axes(cls, grid: dict[str, list[Any]]) -> dict[str, list[Any]]:
        return sweeps.check_axes(grid)


@dataclass(frozen=True)
class ChipPoint:
    """One chip design point and its workload."""

    point_id: str
    chip: Path
    overrides: dict[str, Any]
    """The point's override set as the sweep names it (chip, macro.* and workload keys)."""
    model: str
    context: int
    batch: int
    baselines: bool
    is_reference: bool = False

    def chip_overrides(self) -> dict[str, Any]:
        return {key: value for key, value in self.overrides.items() if key not in WORKLOAD_KEYS}

    def describe(self) -> dict[str, Any]:
        return {"id": self.point_id, "overrides": dict(self.overrides), "chip": self.chip.name, "model": self.model,
                "context": self.context, "batch": self.batch, "baselines": self.baselines,
                "is_reference": self.is_reference}


@dataclass
class ChipSweepPlan:
    spec: ChipSweepSpec
    path: Path
    points: list[ChipPoint]
    axes: list[str]


@dataclass
class ChipSweepOutcome:
    out_dir: Path
    evaluated: int
    skipped: int
    rows: list[dict[str, Any]]
    csv_path: Path
    plots: list[Path]


def is_chip_sweep(path: str | Path) -> bool:
    """True when the sweep YAML names a chip (`chip:`); it is read by the one YAML reader."""
    from axelsim.config.load import read_yaml_mapping

    return "chip" in read_yaml_mapping(Path(path), "sweep YAML")


def _workload(spec: ChipSweepSpec, overrides: dict[str, Any], where: str) -> tuple[int, int]:
    values = {"context": overrides.get("context", spec.context), "batch": overrides.get("batch", spec.batch)}
    for key, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(where, key, f"expected a positive integer, got {value!r}")
    return values["context"], values["batch"]


def resolve(chip: Path, model: str, spec: ChipSweepSpec, overrides: dict[str, Any], where: str) -> dict[str, Any]:
    """The resolved chip (instances and split as the plan resolves 'auto'), its macro and the
    workload of one override set, for the point's identity (ConfigError naming `where`)."""
    from axelsim.chip.models import load_model
    from axelsim.chip.plan import make_plan
    from axelsim.config.chip import load_chip

    context, batch = _workload(spec, overrides, where)
    shape = load_model(model)
    chip_overrides = {key: value for key, value in overrides.items() if key not in WORKLOAD_KEYS}
    try:
        loaded = load_chip(chip, chip_overrides, head_dim=shape.head_dim)
    except ConfigError as error:
        raise ConfigError(where, error.where, error.expected) from None
    plan = make_plan(loaded.config, loaded.macro.config, shape, context, batch, where)
    chip_dump = loaded.config.model_dump(mode="json")
    chip_dump["instances"], chip_dump["mapping"]["split"] = plan.instances, plan.split  # 'auto' resolved
    del chip_dump["macro"]  # its file and overrides, however spelt: the resolved macro below is the design
    resolved = {"chip": chip_dump, "macro": loaded.macro.config.model_dump(mode="json"),
                "shape": [shape.layers, shape.q_heads, shape.kv_heads, shape.head_dim],
                "context": context, "batch": batch, "baselines": spec.baselines}
    resolved["chip"].pop("name", None), resolved["chip"].pop("description", None)
    return resolved


def _identity(resolved: dict[str, Any]) -> str:
    text = json.dumps(resolved, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def plan_chip_sweep(path: str | Path, max_points: int = MAX_SWEEP_POINTS) -> ChipSweepPlan:
    """Validate a chip sweep YAML and expand it (the grid's size is checked before expanding)."""
    path = Path(path)
    spec = sweeps.read_spec(path, ChipSweepSpec)
    source = one_line(path)
    size = sweeps.grid_size(spec)
    if size > max_points:
        raise ConfigError(source, "grid", f"expected at most {max_points:,} points, the sweep has {size:,}; "
                          "narrow the grid or raise the limit with --max-points")
    chip = sweeps._relative(path, spec.chip)
    model = spec.model if not spec.model.endswith(".json") else str(sweeps._relative(path, spec.model))
    reference = _identity(resolve(chip, model, spec, dict(spec.reference), f"{source}: reference"))
    labels = sweeps._where_labels(spec, path)
    points: list[ChipPoint] = []
    seen: set[str] = set()
    for index, overrides in enumerate(sweeps.variants(spec)):
        resolved = resolve(chip, model, spec, overrides, labels(index))
        identity = _identity(resolved)
        if identity in seen:
            continue
        seen.add(identity)
        points.append(ChipPoint(identity, chip, overrides, model, resolved["context"], resolved["batch"],
                                spec.baselines, identity == reference))
    axes: list[str] = []
    for point in points:
        axes.extend(key for key in point.overrides if key not in axes)
    return ChipSweepPlan(spec, path, points, axes)


def evaluate_chip_point(point: ChipPoint) -> dict[str, Any]:
    """The chip report of the point (what `axelsim chip` computes)."""
    from axelsim.chip.models import load_model
    from axelsim.chip.simulate import Workload, simulate_chip
    from axelsim.config.chip import load_chip

    workload = Workload.from_model(load_model(point.model), point.context, point.batch)
    loaded = load_chip(point.chip, point.chip_overrides(), head_dim=workload.shape.head_dim)
    return simulate_chip(loaded, workload, baselines=point.baselines)


def _figure(report: dict[str, Any], dotted: str, scale: float) -> Optional[float]:
    node: Any = report
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node * scale if isinstance(node, (int, float)) else None


def collect_rows(plan: ChipSweepPlan, out_dir: Path) -> list[dict[str, Any]]:
    rows = []
    for point in plan.points:
        path = sweeps.result_path(out_dir, point)
        if not path.exists():
            continue
        record = sweeps.read_record(path, point)
        row: dict[str, Any] = {"point_id": point.point_id, "is_reference": point.is_reference, "status": record["status"]}
        row.update({f"set.{key}": point.overrides.get(key) for key in plan.axes})
        report = record["report"] or {}
        row.update({name: _figure(report, dotted, scale) for name, (dotted, scale) in FIGURES.items()})
        row["error"] = record["error"]
        rows.append(row)
    return rows


def rows_to_csv(rows: list[dict[str, Any]], axes: list[str]) -> str:
    import csv
    import io as _text

    columns = ["point_id", "is_reference", "status"] + [f"set.{key}" for key in axes] + list(FIGURES) + ["error"]
    buffer = _text.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({key: sweeps.cell(row.get(key)) for key in columns})
    return buffer.getvalue()


def pareto_rows(rows: list[dict[str, Any]], y_key: str, maximise_y: bool) -> list[dict[str, Any]]:
    """The ok rows no other row beats on both energy per token (lower) and `y_key` (higher when
    `maximise_y`, else lower), sorted by energy; equal points are kept once (the first)."""
    from axelsim.report.plots import pareto_front

    usable = [row for row in rows if row.get("status") == "ok"
              and isinstance(row.get("mj_per_token"), (int, float)) and isinstance(row.get(y_key), (int, float))]
    sign = -1.0 if maximise_y else 1.0
    front = set(pareto_front((row["mj_per_token"], sign * row[y_key]) for row in usable))
    chosen, taken = [], set()
    for row in sorted(usable, key=lambda r: (r["mj_per_token"], sign * r[y_key], r["point_id"])):
        xy = (row["mj_per_token"], sign * row[y_key])
        if xy in front and xy not in taken:
            taken.add(xy)
            chosen.append(row)
    return chosen


PLOTS = (("tokens_per_s", "decode tokens/s", True, "chip_pareto_energy_throughput"),
         ("area_mm2", "area (mm²)", False, "chip_pareto_energy_area"))


def _settings(row: dict[str, Any], short: bool = False) -> str:
    """The swept settings of a row ('split=4, clock_hz=1e+09' when short), or 'base'."""
    parts = []
    for key, value in row.items():
        if key.startswith("set.") and value is not None:
            name = key[4:].rsplit(".", 1)[-1] if short else key[4:]
            parts.append(f"{name}={value:g}" if short and isinstance(value, float) else f"{name}={value}")
    return ", ".join(parts) or "base"


def plot_chip_sweep(rows: list[dict[str, Any]], out_dir: Path) -> list[Path]:
    """Pareto fronts of energy per token (mJ) against tokens/s and against area (mm²), every point
    drawn, the front joined, the reference ringed only when it is a point of the sweep."""
    from matplotlib.figure import Figure

    from axelsim.report.plots import save_figure

    good = [row for row in rows if row.get("status") == "ok"]
    paths: list[Path] = []
    for y_key, y_label, maximise, stem in PLOTS:
        usable = [row for row in good if isinstance(row.get(y_key), (int, float))
                  and isinstance(row.get("mj_per_token"), (int, float))]
        figure = Figure(figsize=(7, 5))
        axis = figure.subplots()
        axis.scatter([r["mj_per_token"] for r in usable], [r[y_key] for r in usable], s=26, color="C2",
                     label="design points", zorder=3)
        front = pareto_rows(good, y_key, maximise)
        axis.plot([r["mj_per_token"] for r in front], [r[y_key] for r in front], color="tab:blue", marker="o",
                  label="Pareto front", zorder=4)
        for number, row in enumerate(front, 1):  # numbered; the settings listed under the axes
            axis.annotate(str(number), (row["mj_per_token"], row[y_key]), fontsize=8, xytext=(4, 4),
                          textcoords="offset points")
        listing = [f"{number}: {_settings(row, short=True)}" for number, row in enumerate(front[:8], 1)]
        if len(front) > 8:
            listing.append(f"... {len(front) - 8} more front points in points.csv")
        figure.text(0.01, 0.01, "Pareto front: " + "; ".join(listing), fontsize=7, wrap=True, va="bottom")
        figure.subplots_adjust(bottom=0.22)
        for row in usable:
            if row.get("is_reference"):
                axis.scatter([row["mj_per_token"]], [row[y_key]], marker="o", s=220, facecolors="none",
                             edgecolors="tab:red", linewidths=2, zorder=5, label=REFERENCE_LABEL)
        axis.set_xlabel("energy per token (mJ)")
        axis.set_ylabel(y_label)
        axis.ticklabel_format(useOffset=False, style="plain")
        axis.grid(True, alpha=0.3)
        axis.legend(loc="best", fontsize=8)
        rejected = len(rows) - len(good)
        axis.set_title(f"energy per token against {y_label}: {len(usable)} chips"
                       + (f", {rejected} rejected (not drawn)" if rejected else ""), fontsize=10)
        paths += save_figure(figure, out_dir, stem)
    return paths


def run_chip_sweep(plan: ChipSweepPlan, out_dir: str | Path, *, workers: int = 1, scheduler: Any = None,
                   progress: bool = True, plots: bool = True) -> ChipSweepOutcome:
    """Evaluate every unfinished point (resumable), then write points.csv and the Pareto plots."""
    out_dir = Path(out_dir)
    evaluated, skipped = sweeps.evaluate_points(plan.points, out_dir, plan.spec.name, evaluate_chip_point,
                                                workers=workers, scheduler=scheduler, progress=progress)
    rows = collect_rows(plan, out_dir)
    csv_path = io.write_text(out_dir / sweeps.CSV_NAME, rows_to_csv(rows, plan.axes))
    drawn = plot_chip_sweep(rows, out_dir) if plots else []
    return ChipSweepOutcome(out_dir, evaluated, skipped, rows, csv_path, drawn)


def format_chip_sweep(outcome: ChipSweepOutcome) -> str:
    """`axelsim sweep` of a chip sweep: counts, files, and the two Pareto fronts point by point."""
    ok = [row for row in outcome.rows if row["status"] == "ok"]
    failed = len(outcome.rows) - len(ok)
    lines = [f"sweep        {len(outcome.rows)} chip points ({outcome.evaluated} evaluated now, {outcome.skipped} "
             f"already done{f', {failed} rejected' if failed else ''})",
             f"csv          {outcome.csv_path}", f"reports      {outcome.out_dir / sweeps.POINTS_FOLDER}"]
    if outcome.plots:
        lines.append(f"plots        {len(outcome.plots)} files in {outcome.out_dir}")
    for y_key, y_label, maximise, _ in PLOTS:
        lines.append(f"Pareto front: energy per token against {y_label}")
        for row in pareto_rows(ok, y_key, maximise):
            settings = _settings(row)
            mark = "  (reference)" if row["is_reference"] else ""
            lines.append(f"  {row['mj_per_token']:.4f} mJ/token  {row['tokens_per_s']:,.0f} tokens/s  "
                         f"{row['area_mm2']:,.1f} mm2  {row['latency_us']:,.1f} us  point {row['point_id']} "
                         f"({settings}){mark}")
    return "\n".join(lines)
