"""The sweep engine on its own: planning, resume, executors, CSV and plots.

The macro resolver, the trace digest and the point evaluation are passed in explicitly (light
stand-ins defined here), so these tests exercise the engine and not the simulator.
"""

import hashlib

import pytest
import yaml

from axelsim import sweep
from axelsim.errors import ConfigError, UserError

BASE = {"bits": 3, "read_path.pipelines": 1, "head_dim": 64}


def fake_resolve(base, overrides, where):
    unknown = [key for key in overrides if key not in BASE]
    if unknown:
        raise ConfigError(where, unknown[0], "unknown macro key")
    return {**BASE, **overrides}


def fake_digest(path):
    return hashlib.sha256(path.name.encode()).hexdigest()


def fake_evaluate(point):
    """A deterministic stand-in report: more bits cost energy and win accuracy."""
    macro = {**BASE, **point.overrides}
    if macro["read_path.pipelines"] == 3:
        raise UserError(str(point.base), "read_path.pipelines", "3 pipelines do not fit the table SRAM")
    bits, pipes = macro["bits"], macro["read_path.pipelines"]
    return {
        "macro": {"name": "fake", "head_dim": 64, "bits": bits},
        "cycles": {"total": 1000 // pipes + 10 * bits},
        "time_s": (1000 // pipes + 10 * bits) * 1e-9,
        "energy_pj": {"total": 100.0 * bits + 5 * pipes, "per_query": 10.0 * bits + pipes, "per_token": 1.0},
        "area_um2": {"total": 1000.0 * pipes + 10 * bits},
        "numerics": {"bit_exact": True, "score_rel_rmse": 0.5 ** bits, "output_rel_rmse": 0.4 ** bits,
                     "top1_agreement": 1 - 0.5 ** bits},
        "trace": {"name": point.trace.name},
    }


class Interrupting:
    """Evaluates `allowed` points, then raises as a Ctrl-C would in the middle of a sweep."""

    def __init__(self, allowed):
        self.allowed = allowed
        self.calls = 0

    def __call__(self, point):
        if self.calls >= self.allowed:
            raise KeyboardInterrupt
        self.calls += 1
        return fake_evaluate(point)


def write_sweep(folder, **changes):
    spec = {
        "name": "demo",
        "base": "macro.yaml",
        "traces": ["a.safetensors", "b.safetensors"],
        "grid": {"bits": [2, 3, 4], "read_path.pipelines": [1, 2, 3]},
        "points": [{"bits": 3}],
        "reference": {"bits": 3},
    }
    spec.update(changes)
    path = folder / "sweep.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def plan(path):
    return sweep.plan_sweep(path, resolve=fake_resolve, digest=fake_digest)


def test_plan_expands_grid_per_trace_and_collapses_identical_points(tmp_path):
    result = plan(write_sweep(tmp_path))
    # 9 grid combinations per trace; {"bits": 3} and the reference resolve to a grid point.
    assert len(result.points) == 18
    assert len({p.point_id for p in result.points}) == 18
    assert result.axes == ["bits", "read_path.pipelines"]
    references = [p for p in result.points if p.is_reference]
    assert [(p.trace.name, p.overrides) for p in references] == [
        ("a.safetensors", {"bits": 3, "read_path.pipelines": 1}),
        ("b.safetensors", {"bits": 3, "read_path.pipelines": 1}),
    ]


def test_linked_axis_applies_its_override_sets_together(tmp_path):
    grid = {"read_path.pipelines": [1, 2], "width": [{"bits": 2, "head_dim": 32}, {"bits": 4, "head_dim": 128}]}
    result = plan(write_sweep(tmp_path, traces=["a.safetensors"], grid=grid, points=[]))
    assert [p.overrides for p in result.points][:4] == [
        {"read_path.pipelines": 1, "bits": 2, "head_dim": 32},
        {"read_path.pipelines": 1, "bits": 4, "head_dim": 128},
        {"read_path.pipelines": 2, "bits": 2, "head_dim": 32},
        {"read_path.pipelines": 2, "bits": 4, "head_dim": 128},
    ]
    assert result.axes == ["read_path.pipelines", "bits", "head_dim"]


def test_point_identity_depends_on_macro_trace_and_selection():
    macro = {"bits": 3}
    selection = {"layers": None, "queries": 4}
    base = sweep.point_id(macro, "d1", selection)
    assert base == sweep.point_id({"bits": 3}, "d1", dict(selection))
    assert base != sweep.point_id({"bits": 4}, "d1", selection)
    assert base != sweep.point_id(macro, "d2", selection)
    assert base != sweep.point_id(macro, "d1", {"layers": None, "queries": 5})


@pytest.mark.parametrize(
    "changes, where",
    [
        ({"gird": {"bits": [2]}}, "gird"),
        ({"grid": {"bits": []}}, "grid"),
        ({"grid": {"w": [{"bits": 2}, 3]}}, "grid"),
        ({"traces": []}, "traces"),
        ({"queries": 0}, "queries"),
        ({"fidelity": "cycle"}, "fidelity"),
        ({"grid": {"read_path.pipelinez": [1]}}, "read_path.pipelinez"),
        ({"points": [{"bitz": 3}]}, "points.0: bitz"),
    ],
)
def test_bad_sweep_yaml_names_file_and_key(tmp_path, changes, where):
    path = write_sweep(tmp_path, **changes)
    with pytest.raises(ConfigError) as caught:
        plan(path)
    line = caught.value.line()
    assert line.startswith(str(path)) and where in line and "\n" not in line


def test_missing_base_key_and_bad_yaml_are_config_errors(tmp_path):
    path = tmp_path / "sweep.yaml"
    path.write_text("traces: [a]\n")
    with pytest.raises(ConfigError, match="base: required key is missing"):
        plan(path)
    path.write_text("base: [unclosed\n")
    with pytest.raises(ConfigError, match="expected valid YAML"):
        plan(path)


def test_interrupted_sweep_resumes_to_the_same_csv(tmp_path):
    spec_path = write_sweep(tmp_path)
    whole = sweep.run_sweep(plan(spec_path), tmp_path / "whole", evaluate=fake_evaluate, progress=False, plots=False)
    assert whole.evaluated == 18 and whole.skipped == 0

    interrupting = Interrupting(allowed=7)
    with pytest.raises(KeyboardInterrupt):
        sweep.run_sweep(plan(spec_path), tmp_path / "resumed", evaluate=interrupting, progress=False, plots=False)
    assert len(list((tmp_path / "resumed" / "points").glob("*.json"))) == 7
    assert not [p for p in (tmp_path / "resumed" / "points").iterdir() if p.suffix != ".json"]

    counting = Interrupting(allowed=100)
    resumed = sweep.run_sweep(plan(spec_path), tmp_path / "resumed", evaluate=counting, progress=False, plots=False)
    assert (resumed.evaluated, resumed.skipped, counting.calls) == (11, 7, 11)
    assert resumed.csv_path.read_bytes() == whole.csv_path.read_bytes()


def test_csv_rows_hold_overrides_figures_and_rejections(tmp_path):
    outcome = sweep.run_sweep(plan(write_sweep(tmp_path)), tmp_path / "out", evaluate=fake_evaluate,
                              progress=False, plots=False)
    lines = outcome.csv_path.read_text().splitlines()
    header = lines[0].split(",")
    assert header[:6] == ["point_id", "trace", "is_reference", "status", "set.bits", "set.read_path.pipelines"]
    assert len(lines) == 19
    rejected = [row for row in outcome.rows if row["status"] == "error"]
    assert len(rejected) == 6  # pipelines = 3, for 3 bit-widths and 2 traces
    assert all("3 pipelines do not fit" in row["error"] and row["energy_pj_per_query"] is None for row in rejected)
    ok = next(row for row in outcome.rows if row["set.bits"] == 4 and row["set.read_path.pipelines"] == 2)
    assert ok["energy_pj_per_query"] == 42.0 and ok["score_rel_rmse"] == 0.0625 and ok["bit_exact"] is True


def test_process_pool_gives_the_same_csv_as_in_process(tmp_path):
    spec_path = write_sweep(tmp_path, traces=["a.safetensors"])
    inline = sweep.run_sweep(plan(spec_path), tmp_path / "inline", evaluate=fake_evaluate, progress=False, plots=False)
    pooled = sweep.run_sweep(plan(spec_path), tmp_path / "pool", workers=2, evaluate=fake_evaluate,
                             progress=False, plots=False)
    assert pooled.evaluated == 9
    assert pooled.csv_path.read_bytes() == inline.csv_path.read_bytes()


def test_dask_local_cluster_gives_the_same_csv(tmp_path):
    distributed = pytest.importorskip("distributed")
    spec_path = write_sweep(tmp_path, traces=["a.safetensors"], grid={"bits": [2, 3], "read_path.pipelines": [1, 3]})
    inline = sweep.run_sweep(plan(spec_path), tmp_path / "inline", evaluate=fake_evaluate, progress=False, plots=False)
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as cluster:
        dask = sweep.run_sweep(plan(spec_path), tmp_path / "dask", scheduler=cluster.scheduler_address,
                               evaluate=fake_evaluate, progress=False, plots=False)
    assert dask.evaluated == 4
    assert dask.csv_path.read_bytes() == inline.csv_path.read_bytes()


def test_unreachable_scheduler_is_a_user_error(tmp_path, monkeypatch):
    pytest.importorskip("distributed")
    monkeypatch.setattr(sweep, "SCHEDULER_TIMEOUT", "1s")
    spec_path = write_sweep(tmp_path, traces=["a.safetensors"], grid={"bits": [2]}, points=[], reference={"bits": 2})
    with pytest.raises(ConfigError, match="--scheduler"):
        sweep.run_sweep(plan(spec_path), tmp_path / "x", scheduler="tcp://127.0.0.1:9", evaluate=fake_evaluate,
                        progress=False, plots=False)


def test_sweep_plots_are_written_and_not_empty(tmp_path):
    outcome = sweep.run_sweep(plan(write_sweep(tmp_path)), tmp_path / "out", evaluate=fake_evaluate, progress=False)
    names = sorted(path.name for path in outcome.plots)
    assert names == sorted(f"{stem}.{ext}" for stem in ("pareto_energy_area", "pareto_energy_accuracy", "pareto_energy_latency",
                                                                   "error_vs_bits")
                           for ext in ("png", "svg"))
    for path in outcome.plots:
        assert path.stat().st_size > 5000
    assert "reference point" in (tmp_path / "out" / "pareto_energy_area.svg").read_text()


def test_pareto_front_keeps_only_undominated_points():
    points = [(1.0, 5.0), (2.0, 3.0), (3.0, 4.0), (4.0, 1.0), (2.0, 3.0), (5.0, 1.0)]
    assert sweep_front(points) == [(1.0, 5.0), (2.0, 3.0), (4.0, 1.0)]


def sweep_front(points):
    from axelsim.report.plots import pareto_front

    return pareto_front(points)



def run_parallel_kernel():
    """Run one numba prange kernel (numba's OpenMP threads start on first use)."""
    import numpy as np

    from axelsim.numerics.codebook import lloyd_max_codebook
    from axelsim.numerics.reference import qdq_mse_per_candidate

    rng = np.random.default_rng(0)
    signs = np.where(rng.random((4, 64)) < 0.5, -1, 1).astype(np.int8)
    return qdq_mse_per_candidate(rng.standard_normal((32, 64)), signs, lloyd_max_codebook(64, 3))


def kernel_evaluate(point):
    run_parallel_kernel()
    return fake_evaluate(point)


def test_process_pool_works_after_parallel_kernels_ran_in_this_process(tmp_path):
    # A forked child of a process whose OpenMP threads run aborts when it runs a parallel
    # kernel itself ("fork() called from a process already using GNU OpenMP").
    spec_path = write_sweep(tmp_path, traces=["a.safetensors"])
    inline = sweep.run_sweep(plan(spec_path), tmp_path / "inline", evaluate=kernel_evaluate, progress=False, plots=False)
    pooled = sweep.run_sweep(plan(spec_path), tmp_path / "pool", workers=2, evaluate=kernel_evaluate,
                             progress=False, plots=False)
    assert pooled.evaluated == 9
    assert pooled.csv_path.read_bytes() == inline.csv_path.read_bytes()
