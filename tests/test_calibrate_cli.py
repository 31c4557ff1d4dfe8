"""`axelsim calibrate-signs --include-values --per-head` and `axelsim sensitivity` end to end (issue 7)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cli_helpers import run_main, stderr_lines
from axelsim import api
from axelsim.numerics.hadamard import SignRom


def _main(argv) -> tuple[int, str, str]:
    return run_main(argv)


@pytest.fixture(scope="module")
def trace(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("cal") / "tiny.safetensors"
    api.synth_trace({"layers": 2, "kv_heads": 2, "q_heads": 4, "head_dim": 16, "tokens": 32, "queries": 4,
                     "norm_ratio": 4.0}, out=path)
    return path


def test_calibrate_signs_include_values_and_per_head(trace, tmp_path):
    signs, table = tmp_path / "signs.yaml", tmp_path / "cal.json"
    status, out, err = _main(["calibrate-signs", trace, "--bits", "3", "--candidates", "6", "--include-values",
                              "--per-head", "--quiet", "--out", signs, "--json", table])
    assert status == 0, err
    assert stderr_lines(err) == []
    assert "per-head ROM" in out and f"signs        {signs}" in out
    result = json.loads(table.read_text())
    assert result["include_values"] is True
    assert all(entry["value_mse_after"] is not None for entry in result["layers"])
    assert {(entry["layer"], entry["head"]) for entry in result["heads"]} == {(0, 0), (0, 1), (1, 0), (1, 1)}
    rom = SignRom.from_file(signs)
    assert rom.dim == 16 and rom.n_layers == 2


def test_calibrate_signs_defaults_score_keys_only(trace, tmp_path):
    table = tmp_path / "cal.json"
    status, out, _ = _main(["calibrate-signs", trace, "--bits", "3", "--candidates", "4", "--quiet",
                            "--json", table])
    result = json.loads(table.read_text())
    assert status == 0 and "per-head ROM" not in out
    assert result["include_values"] is False and result["heads"] == []
    assert all(entry["value_mse_after"] is None for entry in result["layers"])


def test_include_values_of_a_key_only_trace_names_the_file(tmp_path):
    from axelsim.trace import load_trace, save_trace

    full = tmp_path / "full.safetensors"
    api.synth_trace({"layers": 1, "kv_heads": 1, "q_heads": 1, "head_dim": 16, "tokens": 8, "queries": 1}, out=full)
    keys_only = tmp_path / "keys.safetensors"
    loaded = load_trace(full)
    from axelsim.trace.format import Trace

    k = {0: loaded.k(0)}
    q = {0: loaded.q(0)}
    save_trace(Trace.from_arrays(k, None, q, loaded.q_positions), keys_only)
    status, _, err = _main(["calibrate-signs", keys_only, "--bits", "3", "--include-values", "--quiet"])
    assert status == 2 and err.count("\n") == 1 and str(keys_only) in err and "--include-values" in err


def test_sensitivity_end_to_end(trace, tmp_path):
    out = tmp_path / "sens"
    status, text, err = _main(["sensitivity", trace, "--seeds", "1..3", "--bits", "2,3", "--candidates", "5",
                               "--quiet", "--out", out])
    assert status == 0, err
    assert stderr_lines(err) == []
    assert sorted(p.name for p in out.iterdir()) == ["sensitivity_tiny.csv", "sensitivity_tiny.json", "sensitivity_tiny.png"]
    result = json.loads((out / "sensitivity_tiny.json").read_text())
    assert result["seeds"] == [1, 2, 3] and result["bits"] == [2, 3] and result["candidates"] == 5
    assert {r["signs"] for r in result["records"]} == {"seed 1", "seed 2", "seed 3", "calibrated"}
    assert set(result["summary"]) == {"2", "3"}
    assert (out / "sensitivity_tiny.png").stat().st_size > 5000
    assert "key MSE / D_b" in text and "softmax KL" in text and str(out / "sensitivity_tiny.json") in text
    assert [line.split()[0] for line in text.splitlines()[2:12]] == ["2"] * 5 + ["3"] * 5


def test_sensitivity_without_calibration(trace, tmp_path):
    status, _, err = _main(["sensitivity", trace, "--seeds", "4", "--bits", "3", "--candidates", "0", "--quiet",
                            "--out", tmp_path])
    result = json.loads((tmp_path / "sensitivity_tiny.json").read_text())
    assert status == 0, err
    assert {r["signs"] for r in result["records"]} == {"seed 4"}


@pytest.mark.parametrize("argv, named", [
    (["--bits", "9"], "--bits"), (["--bits", "0"], "--bits"), (["--candidates", "-1"], "--candidates"),
    (["--seeds", "x"], "--seeds"),
])
def test_sensitivity_bad_options_are_one_line_and_write_nothing(trace, tmp_path, argv, named):
    out = tmp_path / "sens"
    status, _, err = _main(["sensitivity", trace, "--quiet", "--out", out, *argv])
    assert status == 2 and err.count("\n") == 1 and named in err and "Traceback" not in err
    assert not out.exists()


def test_sensitivity_missing_trace_is_one_line(tmp_path):
    status, _, err = _main(["sensitivity", tmp_path / "none.safetensors", "--quiet", "--out", tmp_path / "o"])
    assert status == 2 and err.count("\n") == 1 and "none.safetensors" in err


def test_sensitivity_help_has_examples():
    status, out, _ = _main(["sensitivity", "--help"])
    assert status == 0 and "examples:" in out and "--seeds" in out and "--candidates" in out


def test_sensitivity_as_a_command(trace, tmp_path):
    env = {key: value for key, value in os.environ.items() if key != api.PROGRESS_ENV}
    done = subprocess.run([sys.executable, "-m", "axelsim", "sensitivity", str(trace), "--seeds", "1", "--bits", "3",
                           "--candidates", "2", "--out", str(tmp_path)], capture_output=True, text=True, env=env,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    assert stderr_lines(done.stderr) == []  # stderr is not a terminal: no bar
    assert (tmp_path / "sensitivity_tiny.json").exists()
