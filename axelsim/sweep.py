"""Design-space sweeps: expand a sweep YAML into points, evaluate them, keep every result.

A sweep YAML names a base macro, one or more traces and the variants to try, as a grid
(Cartesian product over dotted macro keys) and/or an explicit list of override sets:

    name: pipelines_x_bits
    base: ../macros/axelram_d64.yaml      # relative to the sweep file
    traces: [../traces/smollm2_austen_full.safetensors]
    layers: [0, 1]                        # optional trace selection, as `axelsim run`
    queries: 8
    fidelity: burst
    grid:
      bits: [2, 3, 4]
      read_path.pipelines: [1, 2]
    points:
      - {bits: 3, read_path.table_multipliers: 64}
    reference: {bits: 3}                  # the paper's macro, marked on the plots

A point is one (resolved macro, trace, selection, fidelity). Its identity is the hash of the
resolved macro, the trace digest, the selection and the fidelity, so the same design is never
evaluated twice and a rerun after an interruption skips every point already written.
Each finished point is written at once, atomically, to `OUT/points/<id>.json`; at the end
`OUT/points.csv` holds one row per point (plan order) and the Pareto plots are drawn.

Executors: in-process (`workers=1`), local processes (`workers=N`,
concurrent.futures.ProcessPoolExecutor) or a Dask distributed cluster (`scheduler=ADDRESS`).
The point evaluation is a module-level function of one `Point`, so it pickles to any of them.
"""

from __future__ import annotations

import csv
import hashlib
import io as _stringio
import itertools
import json
import multiprocessing
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from tqdm import tqdm

from axelsim import io
from axelsim.config.load import one_line
from axelsim.errors import ConfigError, UserError
from axelsim.report.figures import HEADLINE_KEYS, headline

POINTS_FOLDER = "points"
CSV_NAME = "points.csv"
SCHEDULER_TIMEOUT = "10s"
"""How long to try reaching a Dask scheduler before giving up with a user error."""


class SweepSpec(BaseModel):
    """The sweep YAML, validated strictly (unknown keys are errors)."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    name: str = "sweep"
    base: str
    """Base macro YAML, relative to the sweep file."""
    traces: list[str] = Field(min_length=1)
    """Trace files, relative to the sweep file."""
    layers: Optional[list[int]] = None
    kv_heads: Optional[list[int]] = None
    queries: Optional[int] = Field(default=None, ge=1)
    fidelity: Literal["burst", "key"] = "burst"
    baselines: bool = False
    """Also simulate the two conventional baselines at every point (about 3x the time)."""
    grid: dict[str, list[Any]] = {}
    """Dotted macro key -> values, or label -> list of override sets (a linked axis);
    every combination of one value per axis is one variant."""
    points: list[dict[str, Any]] = []
    """Explicit override sets (dotted key -> value), each one more variant."""
    reference: dict[str, Any] = {}
    """Overrides giving the paper's macro (empty: the base itself); always evaluated, marked on plots."""

    @field_validator("grid")
    @classmethod
    def _non_empty_axes(cls, grid: dict[str, list[Any]]) -> dict[str, list[Any]]:
        for key, values in grid.items():
            if not values:
                raise ValueError(f"grid axis {key!r} has no values")
            if any(isinstance(value, dict) for value in values) and not _linked(values):
                raise ValueError(f"grid axis {key!r} mixes override sets (mappings) and plain values")
        return grid


@dataclass(frozen=True)
class Point:
    """One design point: everything a worker needs to evaluate it, and nothing else."""

    point_id: str
    base: Path
    overrides: dict[str, Any]
    trace: Path
    trace_digest: str
    layers: Optional[tuple[int, ...]]
    kv_heads: Optional[tuple[int, ...]]
    queries: Optional[int]
    fidelity: str
    baselines: bool = False
    is_reference: bool = False

    def describe(self) -> dict[str, Any]:
        """The point's identity as written into its result file."""
        return {
            "id": self.point_id,
            "overrides": dict(self.overrides),
            "trace": self.trace.name,
            "trace_digest_sha256": self.trace_digest,
            "layers": list(self.layers) if self.layers is not None else None,
            "kv_heads": list(self.kv_heads) if self.kv_heads is not None else None,
            "queries": self.queries,
            "fidelity": self.fidelity,
            "baselines": self.baselines,
            "is_reference": self.is_reference,
        }


@dataclass
class SweepPlan:
    """A validated sweep: its spec, its source file and its points in plan order."""

    spec: SweepSpec
    path: Path
    points: list[Point]
    axes: list[str] = field(default_factory=list)
    """The override keys, in order of first appearance (the CSV's parameter columns)."""


@dataclass
class SweepOutcome:
    """What a sweep run produced."""

    out_dir: Path
    evaluated: int
    """Points evaluated by this run."""
    skipped: int
    """Points found already finished (resumed)."""
    rows: list[dict[str, Any]]
    csv_path: Path
    plots: list[Path]


# --------------------------------------------------------------------------- planning


def read_spec(path: str | Path) -> SweepSpec:
    """Read and validate a sweep YAML; ConfigError naming the file and key path on any flaw.

    The YAML is read by the macro files' reader (axelsim.config.load.read_yaml_mapping): no
    anchors or aliases, no non-scalar or duplicate keys, bounded nesting, and any failure of
    the parser or of a tagged value is one ConfigError line with its line and column.
    """
    from axelsim.config.load import read_yaml_mapping

    path = Path(path)
    source = one_line(path)
    data = read_yaml_mapping(path, "sweep YAML")
    try:
        return SweepSpec.model_validate(data)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise ConfigError(source, one_line(where), one_line(_expectation(first))) from None


def _expectation(detail: dict[str, Any]) -> str:
    if detail["type"] == "extra_forbidden":
        return "unknown key (expected one of: " + ", ".join(SweepSpec.model_fields) + ")"
    if detail["type"] == "missing":
        return "required key is missing"
    return detail["msg"].removeprefix("Value error, ")


def variants(spec: SweepSpec) -> list[dict[str, Any]]:
    """The override sets of a spec: the grid's combinations (last axis fastest), then `points`.

    A grid axis whose values are all mappings is a linked axis: each value is a set of dotted
    overrides applied together (e.g. bits with the comparator count that goes with them), and
    the axis name is only a label. Duplicates are kept; identical resolved points collapse later.
    """
    result: list[dict[str, Any]] = []
    if spec.grid:
        axes = list(spec.grid.items())
        for values in itertools.product(*(axis_values for _, axis_values in axes)):
            overrides: dict[str, Any] = {}
            for (name, axis_values), value in zip(axes, values):
                overrides.update(value if _linked(axis_values) else {name: value})
            result.append(overrides)
    result.extend(dict(point) for point in spec.points)
    if not result:
        result.append({})
    return result


def _linked(values: list[Any]) -> bool:
    return all(isinstance(value, dict) for value in values)


def point_id(resolved_macro: dict[str, Any], trace_digest: str, selection: dict[str, Any]) -> str:
    """16 hex digits of sha256 over the resolved macro, the trace digest and the selection."""
    identity = {"macro": resolved_macro, "trace": trace_digest, "selection": selection}
    text = json.dumps(identity, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def plan_sweep(
    path: str | Path,
    resolve: Callable[[Path, dict[str, Any], str], dict[str, Any]] | None = None,
    digest: Callable[[Path], str] | None = None,
) -> SweepPlan:
    """Validate a sweep YAML and expand it into points (every variant × every trace).

    `resolve(base, overrides, where)` returns the resolved macro as a plain dict and raises
    ConfigError naming `where` on a bad key or value; `digest(trace_path)` returns the trace
    digest (raising TraceError on a bad trace). Both default to the real loaders; tests may pass
    light ones. Every variant is resolved here, so a bad grid value fails before any work.
    """
    path = Path(path)
    spec = read_spec(path)
    resolve = resolve or resolve_macro
    digest = digest or trace_digest
    base = _relative(path, spec.base)
    traces = [_relative(path, name) for name in spec.traces]
    digests = {trace: digest(trace) for trace in traces}
    selection = {
        "layers": spec.layers,
        "kv_heads": spec.kv_heads,
        "queries": spec.queries,
        "fidelity": spec.fidelity,
        "baselines": spec.baselines,
    }
    override_sets = variants(spec) + [dict(spec.reference)]
    labels = _where_labels(spec, path)
    resolved = [resolve(base, overrides, labels(index)) for index, overrides in enumerate(override_sets)]
    reference = resolved[-1]
    points: list[Point] = []
    seen: set[str] = set()
    for trace in traces:
        for overrides, macro in zip(override_sets, resolved):
            identity = point_id(macro, digests[trace], selection)
            if identity in seen:
                continue
            seen.add(identity)
            points.append(
                Point(
                    point_id=identity,
                    base=base,
                    overrides=overrides,
                    trace=trace,
                    trace_digest=digests[trace],
                    layers=tuple(spec.layers) if spec.layers is not None else None,
                    kv_heads=tuple(spec.kv_heads) if spec.kv_heads is not None else None,
                    queries=spec.queries,
                    fidelity=spec.fidelity,
                    baselines=spec.baselines,
                    is_reference=macro == reference,
                )
            )
    axes: list[str] = []
    for overrides in override_sets:
        axes.extend(key for key in overrides if key not in axes)
    return SweepPlan(spec=spec, path=path, points=points, axes=axes)


def _where_labels(spec: SweepSpec, path: Path) -> Callable[[int], str]:
    """Where variant `index` of `variants(spec) + [reference]` comes from, for error messages."""
    grid_size = len(variants(spec)) - len(spec.points)
    name = one_line(path)

    def label(index: int) -> str:
        if index < grid_size:
            return f"{name}: grid" if spec.grid else name
        if index < grid_size + len(spec.points):
            return f"{name}: points.{index - grid_size}"
        return f"{name}: reference"

    return label


def _relative(sweep_file: Path, name: str) -> Path:
    candidate = Path(name)
    return candidate if candidate.is_absolute() else sweep_file.parent / candidate


def resolve_macro(base: Path, overrides: dict[str, Any], where: str) -> dict[str, Any]:
    """The resolved macro of `base` with dotted-key `overrides`, as a plain dict for hashing.

    A flaw of the base file is reported against the base file; a flaw an override brings in is
    reported against `where` (the sweep file and the grid or points entry). The digests of the
    technology table and the signs file are part of the result, so editing either one makes
    every point new.
    """
    from axelsim.config import load_macro

    load_macro(base)
    try:
        loaded = load_macro(base, overrides)
    except ConfigError as error:
        raise ConfigError(where, error.where, error.expected) from None
    resolved = loaded.config.model_dump(mode="json")
    resolved["files_sha256"] = {
        "technology": _file_digest(loaded.tech_path),
        "signs": _file_digest(loaded.signs_path) if loaded.signs_path is not None else None,
    }
    return resolved


def _file_digest(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def trace_digest(path: Path) -> str:
    """The digest of a trace file (TraceError if it is missing or malformed)."""
    from axelsim.trace import load_trace

    return load_trace(path).digest()


# --------------------------------------------------------------------------- evaluation


def evaluate_point(point: Point) -> dict[str, Any]:
    """Simulate one point with the full pipeline (axelsim.api.simulate); returns its report."""
    from axelsim import api

    return api.simulate(
        api.load_macro(point.base, point.overrides),
        point.trace,
        layers=point.layers,
        kv_heads=point.kv_heads,
        queries=point.queries,
        fidelity=point.fidelity,
        baselines=point.baselines,
    )


def _evaluate_safely(evaluate: Callable[[Point], dict[str, Any]], point: Point) -> dict[str, Any]:
    """A point's result record; a design the macro rejects (a UserError) is a result, not a crash."""
    try:
        report = evaluate(point)
    except UserError as error:
        return {"point": point.describe(), "status": "error", "error": error.line(), "report": None}
    return {"point": point.describe(), "status": "ok", "error": None, "report": report}


def result_path(out_dir: Path, point: Point) -> Path:
    return out_dir / POINTS_FOLDER / f"{point.point_id}.json"


def _finished(out_dir: Path, point: Point) -> bool:
    """True when the point's result file exists and is a complete record (written atomically)."""
    path = result_path(out_dir, point)
    if not path.exists():
        return False
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return False
    return isinstance(record, dict) and record.get("point", {}).get("id") == point.point_id


def run_sweep(
    plan: SweepPlan,
    out_dir: str | Path,
    *,
    workers: int = 1,
    scheduler: str | None = None,
    evaluate: Callable[[Point], dict[str, Any]] = evaluate_point,
    progress: bool = True,
    plots: bool = True,
) -> SweepOutcome:
    """Evaluate every unfinished point of `plan`, then write the CSV and the plots.

    `workers=1` runs in this process; `workers>1` uses that many local processes; `scheduler`
    (an address such as tcp://host:8786, or a distributed.Client) sends points to a Dask cluster.
    Each result is written as soon as it arrives, so an interrupted sweep resumes where it stopped.
    """
    from axelsim.api import tqdm_options

    out_dir = Path(out_dir)
    folder = out_dir / POINTS_FOLDER
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise io.output_error(folder, error) from None
    todo = [point for point in plan.points if not _finished(out_dir, point)]
    skipped = len(plan.points) - len(todo)
    bar = tqdm(total=len(plan.points), initial=skipped, desc=f"sweep {plan.spec.name}", unit="point",
               **tqdm_options(progress))
    try:
        for point, record in _execute(todo, evaluate, workers, scheduler):
            io.write_json(result_path(out_dir, point), record)
            bar.update(1)
    finally:
        bar.close()
    rows = collect_rows(plan, out_dir)
    csv_path = io.write_text(out_dir / CSV_NAME, rows_to_csv(rows, plan.axes))
    drawn: list[Path] = []
    if plots:
        from axelsim.report.plots import plot_sweep

        drawn = plot_sweep(rows, out_dir)
    return SweepOutcome(out_dir=out_dir, evaluated=len(todo), skipped=skipped, rows=rows,
                        csv_path=csv_path, plots=drawn)


def _execute(
    todo: list[Point], evaluate: Callable[[Point], dict[str, Any]], workers: int, scheduler: Any
) -> Iterator[tuple[Point, dict[str, Any]]]:
    """Yield (point, record) as points finish, on the chosen executor."""
    if scheduler is not None:
        yield from _execute_dask(todo, evaluate, scheduler)
    elif workers <= 1 or len(todo) <= 1:
        for point in todo:
            yield point, _evaluate_safely(evaluate, point)
    else:
        # forkserver, not fork: forking a process whose numba kernels already started OpenMP
        # threads aborts the child ("fork() called from a process already using GNU OpenMP").
        context = multiprocessing.get_context("forkserver")
        with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
            futures = {pool.submit(_evaluate_safely, evaluate, point): point for point in todo}
            try:
                for future in as_completed(futures):
                    yield futures[future], future.result()
            finally:
                for future in futures:
                    future.cancel()


def _execute_dask(
    todo: list[Point], evaluate: Callable[[Point], dict[str, Any]], scheduler: Any
) -> Iterator[tuple[Point, dict[str, Any]]]:
    try:
        from distributed import Client, as_completed as dask_completed
    except ImportError:
        raise ConfigError("--scheduler", "", "Dask distributed is not installed (pip install 'axelsim[dist]')") from None
    own_client = not isinstance(scheduler, Client)
    if own_client:
        try:
            client = Client(scheduler, timeout=SCHEDULER_TIMEOUT)
        except (OSError, TimeoutError) as error:
            raise ConfigError("--scheduler", str(scheduler), f"cannot reach a Dask scheduler ({error})") from None
    else:
        client = scheduler
    try:
        futures = {client.submit(_evaluate_safely, evaluate, point, key=f"axelsim-{point.point_id}", pure=False): point
                   for point in todo}
        by_key = {future.key: point for future, point in futures.items()}
        for future in dask_completed(list(futures)):
            yield by_key[future.key], future.result()
    finally:
        if own_client:
            client.close()


# --------------------------------------------------------------------------- collection


def collect_rows(plan: SweepPlan, out_dir: Path) -> list[dict[str, Any]]:
    """One row per finished point, in plan order: identity, overrides, status, headline figures."""
    rows = []
    for point in plan.points:
        path = result_path(out_dir, point)
        if not path.exists():
            continue
        record = json.loads(path.read_text(encoding="utf-8"))
        row: dict[str, Any] = {
            "point_id": point.point_id,
            "trace": point.trace.name,
            "is_reference": point.is_reference,
            "status": record["status"],
        }
        row.update({f"set.{key}": point.overrides.get(key) for key in plan.axes})
        figures = headline(record["report"]) if record["report"] is not None else dict.fromkeys(HEADLINE_KEYS)
        row.update(figures)
        row["error"] = record["error"]
        rows.append(row)
    return rows


def rows_to_csv(rows: Iterable[dict[str, Any]], axes: list[str]) -> str:
    """CSV text of the rows; the columns are fixed by the axes, so equal rows give equal text."""
    columns = ["point_id", "trace", "is_reference", "status"]
    columns += [f"set.{key}" for key in axes] + list(HEADLINE_KEYS) + ["error"]
    buffer = _stringio.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({key: _cell(row.get(key)) for key in columns})
    return buffer.getvalue()


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True)
    return str(value)
