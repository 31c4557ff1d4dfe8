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

import contextlib
import csv
import ctypes
import hashlib
import io as _stringio
import itertools
import json
import math
import os
import signal
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from tqdm import tqdm

from axelsim import io
from axelsim.config.limits import MAX_SWEEP_POINTS
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
    """Also simulate the four conventional baselines at every point (slower)."""
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
        return check_axes(grid)


def check_axes(grid: dict[str, list[Any]]) -> dict[str, list[Any]]:
    """ValueError unless every grid axis has values, all plain or all override sets (mappings)."""
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


def read_spec(path: str | Path, spec_type: type[BaseModel] = SweepSpec) -> Any:
    """Read and validate a sweep YAML (as `spec_type`: SweepSpec, or the chip sweep's spec);
    ConfigError naming the file and key path on any flaw.

    The YAML is read by the macro files' reader (axelsim.config.load.read_yaml_mapping): no
    anchors or aliases, no non-scalar or duplicate keys, bounded nesting, and any failure of
    the parser or of a tagged value is one ConfigError line with its line and column.
    """
    from axelsim.config.load import read_yaml_mapping

    path = Path(path)
    source = one_line(path)
    data = read_yaml_mapping(path, "sweep YAML")
    try:
        return spec_type.model_validate(data)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise ConfigError(source, one_line(where), one_line(_expectation(first, spec_type))) from None


def _expectation(detail: dict[str, Any], spec_type: type[BaseModel] = SweepSpec) -> str:
    if detail["type"] == "extra_forbidden":
        return "unknown key (expected one of: " + ", ".join(spec_type.model_fields) + ")"
    if detail["type"] == "missing":
        return "required key is missing"
    return detail["msg"].removeprefix("Value error, ")


def grid_size(spec: SweepSpec) -> int:
    """How many override sets the spec names: the product of the grid's axis lengths (1 for no
    grid, counted without expanding it) plus the explicit points."""
    size = math.prod(len(values) for values in spec.grid.values()) if spec.grid else 0
    return size + len(spec.points) or 1


def variants(spec: SweepSpec) -> Iterator[dict[str, Any]]:
    """The override sets of a spec, lazily: the grid's combinations (last axis fastest), then `points`.

    A grid axis whose values are all mappings is a linked axis: each value is a set of dotted
    overrides applied together (e.g. bits with the comparator count that goes with them), and
    the axis name is only a label. Duplicates are kept; identical resolved points collapse later.
    """
    if spec.grid:
        axes = list(spec.grid.items())
        for values in itertools.product(*(axis_values for _, axis_values in axes)):
            overrides: dict[str, Any] = {}
            for (name, axis_values), value in zip(axes, values):
                overrides.update(value if _linked(axis_values) else {name: value})
            yield overrides
    yield from (dict(point) for point in spec.points)
    if not spec.grid and not spec.points:
        yield {}


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
    max_points: int = MAX_SWEEP_POINTS,
) -> SweepPlan:
    """Validate a sweep YAML and expand it into points (every variant × every trace).

    `resolve(base, overrides, where)` returns the resolved macro as a plain dict and raises
    ConfigError naming `where` on a bad key or value; `digest(trace_path)` returns the trace
    digest (raising TraceError on a bad trace). Both default to the real loaders; tests may pass
    light ones. The checks run cheapest first, so a bad or huge grid fails before any work:
    every grid key against the macro schema (an unknown one is named with a suggestion); the
    size (variants × traces, counted, never expanded) against `max_points`; the traces; then
    every variant, expanded one at a time and resolved (a bad value is named there).
    """
    path = Path(path)
    spec = read_spec(path)
    resolve = resolve or resolve_macro
    digest = digest or trace_digest
    source = one_line(path)
    total = grid_size(spec) * len(spec.traces)
    base = _relative(path, spec.base)
    for name, values in spec.grid.items():  # keys first: one resolve per unknown key names it
        for key, value in (values[0].items() if _linked(values) else [(name, values[0])]):
            if not _known_key(str(key)):
                resolve(base, {key: value}, f"{source}: grid.{one_line(name)}")
    if total > max_points:
        raise ConfigError(source, "grid", f"expected at most {max_points:,} points, the sweep has {total:,} points "
                          f"({grid_size(spec):,} variants x {len(spec.traces)} traces); "
                          "narrow the grid or raise the limit with --max-points")
    traces = [_relative(path, name) for name in spec.traces]
    digests = {trace: digest(trace) for trace in traces}
    selection = {
        "layers": spec.layers,
        "kv_heads": spec.kv_heads,
        "queries": spec.queries,
        "fidelity": spec.fidelity,
        "baselines": spec.baselines,
    }
    reference = resolve(base, dict(spec.reference), f"{source}: reference")
    labels = _where_labels(spec, path)
    resolved = [(overrides, resolve(base, overrides, labels(index))) for index, overrides in enumerate(variants(spec))]
    resolved.append((dict(spec.reference), reference))
    points: list[Point] = []
    seen: set[str] = set()
    for trace in traces:
        for overrides, macro in resolved:
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
    for overrides, _ in resolved:
        axes.extend(key for key in overrides if key not in axes)
    return SweepPlan(spec=spec, path=path, points=points, axes=axes)


def _known_key(dotted: str) -> bool:
    """True when a dotted key names a field of the macro schema (a section's field or a top key)."""
    from pydantic import BaseModel

    from axelsim.config.macro import MacroConfig

    model: Any = MacroConfig
    for part in dotted.split("."):
        if not (isinstance(model, type) and issubclass(model, BaseModel)) or part not in model.model_fields:
            return False
        model = model.model_fields[part].annotation
    return True


def _where_labels(spec: SweepSpec, path: Path) -> Callable[[int], str]:
    """Where variant `index` of `variants(spec)` comes from, for error messages."""
    in_grid = grid_size(spec) - len(spec.points) if spec.grid else 0
    name = one_line(path)

    def label(index: int) -> str:
        if index < in_grid:
            return f"{name}: grid"
        if index < in_grid + len(spec.points):
            return f"{name}: points.{index - in_grid}"
        return name

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
        workers=1,  # the sweep shares its points out over the cores; each point runs in one process
    )


def _evaluate_safely(evaluate: Callable[[Point], dict[str, Any]], point: Point) -> dict[str, Any]:
    """A point's result record; a point that fails for any reason (a design the macro rejects,
    a fault while simulating it) is an error record, and the sweep goes on."""
    try:
        report = evaluate(point)
    except UserError as error:
        return _error_record(point, error.line())
    except Exception as error:  # noqa: BLE001 - one point's fault (MemoryError, a bug) is its row, not the sweep's end
        return _error_record(point, f"internal error: {type(error).__name__}: {' '.join(str(error).split())[:300]}")
    return {"point": point.describe(), "status": "ok", "error": None, "report": report}


def _error_record(point: Point, line: str) -> dict[str, Any]:
    return {"point": point.describe(), "status": "error", "error": line, "report": None}


def result_path(out_dir: Path, point: Point) -> Path:
    return out_dir / POINTS_FOLDER / f"{point.point_id}.json"


def _finished(out_dir: Path, point: Point) -> bool:
    """True when the point's result file holds a complete record of this point (written
    atomically); anything else there (a partial copy, a file of another schema) is redone."""
    return _read_record(result_path(out_dir, point), point) is not None


def _read_record(path: Path, point: Point) -> Optional[dict[str, Any]]:
    """The result record of `point` in `path`, or None if the file is absent, not a regular
    file, too large, not JSON, or not a record of this point (see `_error_record`)."""
    try:
        record = json.loads(io.read_regular(path, MAX_RECORD_BYTES).decode("utf-8"))
    except (OSError, ValueError):  # missing, a FIFO, too large, not UTF-8, not JSON
        return None
    if not (isinstance(record, dict) and isinstance(record.get("point"), dict)
            and record["point"].get("id") == point.point_id and record.get("status") in ("ok", "error")):
        return None
    report = record.get("report")
    if (record["status"] == "ok") != isinstance(report, dict) or not isinstance(record.get("error"), (str, type(None))):
        return None
    return record


MAX_RECORD_BYTES = 64 << 20
"""Largest point result file read back (a report is tens of kB)."""


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
    out_dir = Path(out_dir)
    evaluated, skipped = evaluate_points(plan.points, out_dir, plan.spec.name, evaluate, workers=workers,
                                         scheduler=scheduler, progress=progress)
    rows = collect_rows(plan, out_dir)
    csv_path = io.write_text(out_dir / CSV_NAME, rows_to_csv(rows, plan.axes))
    drawn: list[Path] = []
    if plots:
        from axelsim.report.plots import plot_sweep

        drawn = plot_sweep(rows, out_dir)
    return SweepOutcome(out_dir=out_dir, evaluated=evaluated, skipped=skipped, rows=rows,
                        csv_path=csv_path, plots=drawn)


def evaluate_points(points: list, out_dir: Path, name: str, evaluate: Callable[[Any], dict[str, Any]], *,
                    workers: int = 1, scheduler: Any = None, progress: bool = True) -> tuple[int, int]:
    """Evaluate every point not yet finished in `out_dir`/points (each result written at once,
    atomically); (evaluated, skipped). A point has `point_id` and `describe()` (Point, or the
    chip sweep's ChipPoint)."""
    from axelsim.api import tqdm_options

    folder = out_dir / POINTS_FOLDER
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise io.output_error(folder, error) from None
    todo = [point for point in points if not _finished(out_dir, point)]
    skipped = len(points) - len(todo)
    bar = tqdm(total=len(points), initial=skipped, desc=f"sweep {name}", unit="point", **tqdm_options(progress))
    try:
        for point, record in _execute(todo, evaluate, workers, scheduler):
            io.write_json(result_path(out_dir, point), record)
            bar.update(1)
    finally:
        bar.close()
    return len(todo), skipped


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
        from axelsim.workers import worker_context

        with ProcessPoolExecutor(max_workers=workers, mp_context=worker_context(), initializer=die_with_parent,
                                 initargs=(os.getpid(),)) as pool:
            futures = {pool.submit(_evaluate_safely, evaluate, point): point for point in todo}
            try:
                for future in as_completed(futures):
                    try:
                        record = future.result()
                    except Exception as error:  # noqa: BLE001 - a worker died (killed, out of memory): its point's row
                        record = _error_record(futures[future], f"internal error: worker failed: {type(error).__name__}: "
                                               f"{' '.join(str(error).split())[:300]}")
                    yield futures[future], record
            finally:
                for future in futures:
                    future.cancel()


PARENT_POLL_S = 0.5
"""How often a worker checks that the sweep's main process is still alive (seconds)."""


def die_with_parent(parent_pid: int) -> None:
    """Make this worker process end when the sweep's main process `parent_pid` ends, however
    it ends (SIGKILL included), so no worker outlives a killed sweep by more than a second.

    Two mechanisms: on Linux, prctl(PR_SET_PDEATHSIG, SIGKILL) kills the worker the moment its
    parent (the forkserver, which itself exits when the main process's pipe closes) dies; and
    everywhere, a daemon thread exits the process once the main process is gone or the worker
    was re-parented.
    """
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    first_parent = os.getppid()

    def watch() -> None:
        while True:
            time.sleep(PARENT_POLL_S)
            if os.getppid() != first_parent or not _alive(parent_pid):
                os._exit(1)

    threading.Thread(target=watch, name="axelsim-parent-watch", daemon=True).start()


_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else (cannot be ours, but not gone)
        return True
    return True


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


def read_record(path: Path, point: Any) -> dict[str, Any]:
    """The result record of a finished point (an error record when the file is not one)."""
    return _read_record(path, point) or _error_record(
        point, f"{one_line(path)}: expected a result record of point {point.point_id} (rerun the sweep to redo it)")


def collect_rows(plan: SweepPlan, out_dir: Path) -> list[dict[str, Any]]:
    """One row per finished point, in plan order: identity, overrides, status, headline figures."""
    rows = []
    for point in plan.points:
        path = result_path(out_dir, point)
        if not path.exists():
            continue
        record = read_record(path, point)
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
        writer.writerow({key: cell(row.get(key)) for key in columns})
    return buffer.getvalue()


def cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True)
    return str(value)
