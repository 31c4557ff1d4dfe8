"""run, compare and sweep end to end on the shipped macro and real trace (small selections).

Each subprocess costs a few seconds (interpreter, numba); there are three of them. Determinism is
checked in-process: the same inputs give a byte-identical report apart from `run_info`.
"""

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from axelsim import api, io

ROOT = Path(__file__).resolve().parents[1]
MACRO = ROOT / "macros" / "axelram_d64.yaml"
TRACE = ROOT / "traces" / "smollm2_austen_full.safetensors"
SMALL = ["--layers", "0", "--queries", "2", "--quiet"]


def axelsim(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "axelsim", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=300)


def test_run_writes_report_plots_and_waveform(tmp_path):
    report_path, plots, wave = tmp_path / "r" / "report.json", tmp_path / "plots", tmp_path / "wave.vcd"
    done = axelsim("run", MACRO, "--trace", TRACE, *SMALL, "--bit-study", "2,3",
                   "--json", report_path, "--plots", plots, "--waveform", wave)
    assert done.returncode == 0, done.stderr
    for word in ("cycles", "energy", "area", "mults/query", "bit_exact YES", "baseline     fp16"):
        assert word in done.stdout
    report = json.loads(report_path.read_text())
    assert report["numerics"]["bit_exact"] is True
    assert report["trace"]["layer_indices"] == [0] and report["trace"]["queries"] == 2
    assert report["cycles"]["total"] > 0 and report["energy_pj"]["total"] > 0
    assert report["ops"]["multiplications"]["total"] > 0
    assert set(report["baselines"]) == {"fp16", "dequant_rotated", "kivi", "dequant_inverse_rotate"}
    assert all(section["numerics"]["bit_exact"] for section in report["baselines"].values())
    assert set(report["numerics_by_bits"]) == {"2", "3"}
    assert report["numerics_by_bits"]["2"]["score_rel_rmse"] > report["numerics_by_bits"]["3"]["score_rel_rmse"]
    names = sorted(p.name for p in plots.iterdir())
    assert names == sorted(f"{s}.{e}" for s in ("energy_area", "cycles", "timeline", "error_vs_bits") for e in ("png", "svg"))
    assert all((plots / name).stat().st_size > 5000 for name in names)
    assert wave.read_text().startswith("$") and wave.stat().st_size > 100


def test_bad_input_is_one_line_status_2_and_writes_nothing(tmp_path):
    other = tmp_path / "d32.safetensors"
    api.synth_trace({"head_dim": 32, "layers": 1, "tokens": 16, "queries": 2}, out=other)
    out = tmp_path / "report.json"
    done = axelsim("run", MACRO, "--trace", other, "--json", out, "--quiet")
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "head_dim" in done.stderr and "Traceback" not in done.stderr
    assert not out.exists()


def _strip_run_info(report):
    return io.to_json_text({key: value for key, value in report.items() if key != "run_info"})


def test_same_inputs_give_a_byte_identical_report():
    first = api.simulate(MACRO, TRACE, layers=[1], queries=2)
    second = api.simulate(MACRO, TRACE, layers=[1], queries=2)
    assert _strip_run_info(first) == _strip_run_info(second)
    assert set(first["run_info"]) >= {"wall_s", "host"}


def test_key_and_burst_fidelity_give_the_same_report(tmp_path):
    burst = api.simulate(MACRO, TRACE, layers=[2], kv_heads=[0], queries=2, baselines=False)
    key = api.simulate(MACRO, TRACE, layers=[2], kv_heads=[0], queries=2, baselines=False, fidelity="key")
    for section in ("cycles", "ops", "energy_pj", "numerics", "multiplications_per_query"):
        assert burst[section] == key[section], section


def test_compare_and_sweep_end_to_end(tmp_path):
    variant = yaml.safe_load(MACRO.read_text())
    variant.update(name="d64_two_pipes", technology={"file": str(MACRO.parent / "tech" / "reference.yaml")})
    variant["read_path"]["pipelines"] = 2
    variant_path = tmp_path / "two.yaml"
    variant_path.write_text(yaml.safe_dump(variant))
    out = tmp_path / "cmp.json"
    done = axelsim("compare", MACRO, variant_path, "--trace", TRACE, *SMALL, "--json", out, "--plots", tmp_path / "cmp")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert [line.split()[0] for line in lines[2:6]] == ["axelram_d64", "d64_two_pipes", "baseline", "baseline"]
    result = json.loads(out.read_text())
    assert list(result["designs"]) == ["axelram_d64", "d64_two_pipes"]
    assert (tmp_path / "cmp" / "compare.png").stat().st_size > 5000

    spec = {"name": "tiny", "base": str(MACRO), "traces": [str(TRACE)], "layers": [0], "queries": 2,
            "grid": {"read_path.pipelines": [1, 2]}}
    spec_path = tmp_path / "sweep.yaml"
    spec_path.write_text(yaml.safe_dump(spec))
    done = axelsim("sweep", spec_path, "--out", tmp_path / "sweep", "--quiet")
    assert done.returncode == 0, done.stderr
    rows = list(csv.DictReader((tmp_path / "sweep" / "points.csv").open()))
    assert [row["set.read_path.pipelines"] for row in rows] == ["1", "2"]
    assert [row["is_reference"] for row in rows] == ["True", "False"]
    assert all(row["status"] == "ok" and row["bit_exact"] == "True" for row in rows)
    assert (tmp_path / "sweep" / "pareto_energy_area.png").stat().st_size > 5000
    again = axelsim("sweep", spec_path, "--out", tmp_path / "sweep", "--quiet", "--no-plots")
    assert again.returncode == 0 and "0 evaluated now, 2 already done" in again.stdout


@pytest.mark.parametrize("where", ["grid: read_path.pipelinez", "queries"])
def test_bad_sweep_is_one_line_status_2(tmp_path, where):
    spec = {"base": str(MACRO), "traces": [str(TRACE)], "queries": 2, "grid": {"read_path.pipelines": [1]}}
    if where == "queries":
        spec["queries"] = 0
    else:
        spec["grid"] = {"read_path.pipelinez": [1]}
    spec_path = tmp_path / "sweep.yaml"
    spec_path.write_text(yaml.safe_dump(spec))
    from axelsim import cli

    assert cli.main(["sweep", str(spec_path), "--out", str(tmp_path / "o"), "--quiet"]) == 2
    assert not (tmp_path / "o").exists()
