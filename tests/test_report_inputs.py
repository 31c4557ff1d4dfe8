"""Errors name the user's files (H1 macro file on SRAM overflow, N2 trace file on an fp16 range
error) and the relative error metrics of an all-zero reference are defined (N1)."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import yaml

from axelsim import api
from axelsim.errors import UserError
from axelsim.io import to_json_text
from axelsim.numerics.metrics import output_rel_rmse, score_rel_rmse
from axelsim.trace.format import Trace, save_trace

ROOT = Path(__file__).resolve().parents[1]
MACRO = ROOT / "macros" / "axelram_d64.yaml"


def _save(path: Path, k: np.ndarray, v: np.ndarray, q: np.ndarray, positions) -> Path:
    save_trace(Trace.from_arrays({0: k}, {0: v}, {0: q}, positions, dtype="float32"), path)
    return path


@pytest.fixture(scope="module")
def small_sram_macro(tmp_path_factory) -> Path:
    data = yaml.safe_load(MACRO.read_text())
    data["technology"] = {"file": str(ROOT / "macros" / "tech" / "reference.yaml")}
    data["sram"].update(banks=2, rows_per_bank=8, overflow="reject")
    path = tmp_path_factory.mktemp("h1") / "tiny_sram.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize("baselines", [False, True], ids=["macro", "with_baselines"])
def test_sram_overflow_names_the_macro_file(small_sram_macro, tmp_path, baselines):
    rng = np.random.default_rng(0)
    trace = _save(tmp_path / "t.safetensors", rng.standard_normal((1, 24, 64)), rng.standard_normal((1, 24, 64)),
                  rng.standard_normal((1, 1, 64)), [23])
    with pytest.raises(UserError) as caught:
        api.simulate(small_sram_macro, trace, baselines=baselines)
    line = caught.value.line()
    assert line.startswith(f"{small_sram_macro}: sram.rows_per_bank") and "\n" not in line


def test_baseline_overflow_names_the_macro_file(small_sram_macro, tmp_path):
    from axelsim.hw.baselines import simulate_baseline

    loaded = api.load_macro(small_sram_macro)
    rng = np.random.default_rng(1)
    trace = Trace.from_arrays({0: rng.standard_normal((1, 24, 64))}, {0: rng.standard_normal((1, 24, 64))},
                              {0: rng.standard_normal((1, 1, 64))}, [23])
    with pytest.raises(UserError) as caught:
        simulate_baseline("fp16", loaded.config, trace, source=str(small_sram_macro))
    assert caught.value.source == str(small_sram_macro)


def test_value_beyond_fp16_range_names_the_trace_file(tmp_path):
    rng = np.random.default_rng(2)
    k = rng.standard_normal((1, 3, 64))
    k[0, 2, 5] = 1.0e5
    trace = _save(tmp_path / "big.safetensors", k, rng.standard_normal((1, 3, 64)), rng.standard_normal((1, 1, 64)),
                  [2])
    with pytest.raises(UserError) as caught:
        api.simulate(MACRO, trace, baselines=False)
    line = caught.value.line()
    assert line.startswith(f"{trace}: ") and "layers.0.k" in line


# ----------------------------------------------------------------------------------------- N1
def test_relative_errors_of_an_exact_all_zero_reference_are_zero():
    ref = np.zeros((2, 3, 4))
    ref[:, :, 3] = np.nan  # keys outside the causal range
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert score_rel_rmse(np.zeros((2, 3, 4)), ref) == 0.0
        assert output_rel_rmse(np.zeros((2, 5)), np.zeros((2, 5))) == 0.0


def test_relative_errors_of_an_all_zero_reference_are_the_plain_rms():
    sim = np.array([[3.0, 4.0]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert score_rel_rmse(sim, np.zeros((1, 2))) == pytest.approx(np.sqrt(12.5))
        assert output_rel_rmse(sim, np.zeros((1, 2))) == pytest.approx(np.sqrt(12.5))


def test_relative_errors_of_a_non_zero_reference_are_unchanged():
    ref, sim = np.array([[1.0, -2.0, 2.0]]), np.array([[1.5, -2.0, 2.0]])
    expected = np.sqrt(0.25 / 3) / np.sqrt(9.0 / 3)
    assert score_rel_rmse(sim, ref) == pytest.approx(expected)
    assert output_rel_rmse(sim, ref) == pytest.approx(expected)


def test_all_zero_layer_report_reads_zero_errors(tmp_path):
    zeros = np.zeros((1, 4, 64))
    trace = _save(tmp_path / "zero.safetensors", zeros, zeros, np.zeros((1, 2, 64)), [1, 3])
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        report = api.simulate(MACRO, trace, baselines=False)
    written = json.loads(to_json_text(report))
    for section in (written["numerics"], written["layers"]["0"]["numerics"]):
        assert section["score_rel_rmse"] == 0.0 and section["output_rel_rmse"] == 0.0
