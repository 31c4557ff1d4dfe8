"""The sensitivity study: records, summaries, the norm ratio, files and the planted failure."""

from __future__ import annotations

import json

import numpy as np
import pytest

from axelsim.calibrate.sensitivity import (layer_key_norms, metric_table, norm_heterogeneity,
                                           run_sensitivity, summary_markdown)
from axelsim.numerics.hadamard import inverse_rotate_f64, sign_vector
from axelsim.trace import SynthSpec, Trace, synth_trace

DIM = 32
SHAPE = {"layers": 2, "kv_heads": 1, "q_heads": 2, "head_dim": DIM, "tokens": 48, "queries": 4,
         "dtype": "float32"}


@pytest.fixture(scope="module")
def gaussian_study(tmp_path_factory):
    out = tmp_path_factory.mktemp("sens")
    trace = synth_trace(SynthSpec(**SHAPE, norm_ratio=6.0))
    return run_sensitivity(trace, seeds=[1, 2], bits_list=(2, 4), out_dir=out, candidates=6), out


def test_records_cover_every_bits_rom_and_layer(gaussian_study):
    result, _ = gaussian_study
    assert len(result["records"]) == 2 * (2 + 1) * 2  # bits x (seeds + calibrated) x layers
    layers, table, calibrated = metric_table(result, 2, "key_mse_ratio")
    assert layers == [0, 1] and table.shape == (2, 2) and calibrated.shape == (2,)
    # Gaussian keys: the stored keys' error is the codebook's distortion (d = 32: a bit below)
    assert np.all((table > 0.8) & (table < 1.1))
    # 4 bits err less than 2 bits in every metric that measures an error
    for metric in ("score_rel_rmse", "attn_kl", "output_rel_rmse"):
        assert np.all(metric_table(result, 4, metric)[1] < metric_table(result, 2, metric)[1])


def test_norm_ratio_is_measured(gaussian_study):
    result, _ = gaussian_study
    assert 5.0 < result["norm_heterogeneity"] < 7.0
    assert norm_heterogeneity({0: 2.0, 1: 8.0}) == 4.0


def test_files_and_summary(gaussian_study):
    result, out = gaussian_study
    saved = json.loads((out / "sensitivity_synthetic.json").read_text())
    assert saved["summary"] == json.loads(json.dumps(result["summary"]))
    assert (out / "sensitivity_synthetic.png").stat().st_size > 10_000
    table = summary_markdown([result])
    assert len(table.strip().splitlines()) == 2 + 2


def test_planted_failure_of_one_seed_is_seen_and_repaired():
    """Keys that seed 1's rotation maps onto one-hot vectors: seed 1 fails, calibration repairs."""
    rng = np.random.default_rng(5)
    spikes = np.zeros((1, 64, DIM))
    np.put_along_axis(spikes, rng.integers(0, DIM, size=(1, 64, 1)), 4.0, axis=-1)
    keys = inverse_rotate_f64(spikes + 0.02 * rng.standard_normal(spikes.shape), sign_vector(1, 0, DIM))
    trace = Trace.from_arrays({0: keys}, None, {0: rng.standard_normal((2, 4, DIM))}, [8, 20, 40, 63])
    assert layer_key_norms(trace)[0] == pytest.approx(4.0, rel=0.05)
    result = run_sensitivity(trace, seeds=[1, 2, 3], bits_list=(3,), candidates=12)
    _, table, calibrated = metric_table(result, 3, "key_mse_ratio")
    assert table[0, 0] > 5.0 and np.all(table[1:, 0] < 2.0)
    assert calibrated[0] < 2.0


def test_json_units_cover_every_record_key_and_the_csv_uses_the_same_names(gaussian_study):
    import csv

    result, out = gaussian_study
    saved = json.loads((out / "sensitivity_synthetic.json").read_text())
    units = saved["units"]
    covered = {name.strip().split(".")[-1] for pattern in units for name in pattern.split(",")}
    assert set(saved["records"][0]) <= covered
    assert "nats" in units["records.*.attn_kl"]
    with open(out / "sensitivity_synthetic.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == list(saved["records"][0]) and len(rows) == len(saved["records"])
    assert float(rows[0]["attn_kl"]) == pytest.approx(saved["records"][0]["attn_kl"])
