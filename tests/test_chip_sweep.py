"""Chip sweeps: the Pareto fronts on a hand set; a tiny chip sweep end to end (resumable, reference marked
only when it is a point of the sweep); bad chip-sweep YAML."""

from __future__ import annotations

import csv

import pytest
import yaml

from axelsim import api
from axelsim.sweep_chip import pareto_rows
from tests.cli_helpers import run_main
from tests.test_chip import _chip, _model


def _row(name, mj, tps, mm2):
    return {"point_id": name, "status": "ok", "mj_per_token": mj, "tokens_per_s": tps, "area_mm2": mm2}


def test_pareto_fronts_on_a_hand_set():
    rows = [_row("a", 1.0, 100.0, 10.0), _row("b", 2.0, 200.0, 5.0), _row("c", 2.0, 150.0, 6.0),
            _row("d", 3.0, 150.0, 20.0), _row("e", 0.5, 50.0, 20.0), _row("f", 1.0, 100.0, 10.0),
            {"point_id": "x", "status": "error", "mj_per_token": None, "tokens_per_s": None, "area_mm2": None}]
    # tokens/s is maximised: c and d are beaten by b; f equals a (kept once)
    assert [r["point_id"] for r in pareto_rows(rows, "tokens_per_s", True)] == ["e", "a", "b"]
    # area is minimised: c (6 mm2 at 2 mJ) is beaten by b (5 mm2 at 2 mJ), d by a
    assert [r["point_id"] for r in pareto_rows(rows, "area_mm2", False)] == ["e", "a", "b"]
    rows.append(_row("g", 0.5, 40.0, 1.0))  # as cheap as e, smaller, slower
    assert [r["point_id"] for r in pareto_rows(rows, "area_mm2", False)] == ["g"]
    assert [r["point_id"] for r in pareto_rows(rows, "tokens_per_s", True)] == ["e", "a", "b"]


def _sweep(tmp_path, chip, model, **keys):
    doc = {"name": "tiny", "chip": str(chip), "model": model, "context": 100, **keys}
    path = tmp_path / f"sweep_{len(list(tmp_path.glob('sweep_*')))}.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def test_tiny_chip_sweep_end_to_end(tmp_path):
    chip = _chip(tmp_path, rows=16, mapping={"kind": "token_split", "split": "auto"})
    model = _model(tmp_path, layers=1, q=2, kv=1, d=64)
    spec = _sweep(tmp_path, chip, model, grid={"mapping.split": [1, 2], "batch": [1, 2]},
                  points=[{"instances": 3, "macro.clock_hz": 5.0e8, "macro.technology.node_nm": 28,
                           "macro.sram.tile_bytes": 4096}],
                  reference={"mapping.split": 1})  # split auto resolves to 1 at T = 100: the reference is in the grid
    out = tmp_path / "out"
    status, stdout, stderr = run_main(["sweep", spec, "--out", out, "--quiet"])
    assert status == 0, stderr
    assert "5 chip points (5 evaluated now" in stdout and "Pareto front: energy per token against decode tokens/s" in stdout
    rows = list(csv.DictReader((out / "points.csv").open()))
    assert len(rows) == 5 and all(r["status"] == "ok" for r in rows), rows
    extra = rows[-1]  # instances, clock, node and tile size of the instances' macro
    assert extra["instances"] == "3" and extra["set.macro.technology.node_nm"] == "28"
    per_instance = [float(r["area_mm2"]) / int(r["instances"]) for r in (extra, rows[0])]
    assert per_instance[0] < per_instance[1]  # 28 nm instances are smaller
    rows = rows[:4]
    marked = [r for r in rows if r["is_reference"] == "True"]
    assert [(r["set.mapping.split"], r["set.batch"]) for r in marked] == [("1", "1")]  # the reference's workload: batch 1
    point = next(r for r in rows if r["set.mapping.split"] == "2" and r["set.batch"] == "2")
    report = api.chip(chip, model=model, context=100, batch=2, overrides={"mapping.split": 2}, baselines=False)
    assert float(point["mj_per_token"]) == pytest.approx(report["decode"]["energy_j_per_token"] * 1e3)
    assert float(point["tokens_per_s"]) == pytest.approx(report["decode"]["tokens_per_s"])
    assert float(point["area_mm2"]) == pytest.approx(report["area_mm2"]["total"])
    for stem in ("chip_pareto_energy_throughput", "chip_pareto_energy_area"):
        assert (out / f"{stem}.png").stat().st_size > 0
    status, stdout, _ = run_main(["sweep", spec, "--out", out, "--quiet", "--no-plots"])
    assert status == 0 and "(0 evaluated now, 5 already done)" in stdout
    # a reference outside the sweep is not added and not marked
    other = _sweep(tmp_path, chip, model, grid={"mapping.split": [2]}, reference={"mapping.split": 3})
    status, stdout, _ = run_main(["sweep", other, "--out", tmp_path / "out2", "--quiet", "--no-plots"])
    rows = list(csv.DictReader((tmp_path / "out2" / "points.csv").open()))
    assert status == 0 and len(rows) == 1 and rows[0]["is_reference"] == "False"


@pytest.mark.parametrize("keys, where", [
    ({"grid": {"mapping.split": [0]}}, "mapping.split"),
    ({"grid": {"macro.bogus": [1]}}, "bogus"),
    ({"grid": {"batch": [0]}}, "batch"),
    ({"contexts": 5}, "contexts"),
])
def test_bad_chip_sweep_yaml_one_line_exit_2(tmp_path, keys, where):
    chip = _chip(tmp_path, rows=16, mapping={"kind": "token_split"})
    spec = _sweep(tmp_path, chip, _model(tmp_path, layers=1, q=2, kv=1, d=64), **keys)
    status, stdout, stderr = run_main(["sweep", spec, "--out", tmp_path / "o", "--quiet"])
    assert status == 2 and where in stderr and len(stderr.strip().splitlines()) == 1, stderr
    assert not (tmp_path / "o" / "points.csv").exists()
