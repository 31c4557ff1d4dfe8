"""Held-out calibration and the norm-and-direction traces (axelsim.calibrate.heldout)."""

import numpy as np

from axelsim.calibrate.heldout import heldout_study, norm_direction_traces, norm_ratio, split_tokens


def test_traces_differ_only_in_layer_zero_norm():
    high, control = norm_direction_traces(layers=2, tokens=64, dim=32)
    assert abs(norm_ratio(high) - 8.0) < 1e-3 and abs(norm_ratio(control) - 1.0) < 0.1
    k_high, k_control = high.k(0).astype(np.float64), control.k(0).astype(np.float64)
    unit = lambda x: x / np.linalg.norm(x, axis=-1, keepdims=True)
    assert np.allclose(unit(k_high), unit(k_control), atol=1e-3)  # same directions (float16 storage)
    # layer 0's keys share a direction per head (not Gaussian): mean cosine to the head mean well above 0
    mean_dir = unit(unit(k_control).mean(axis=1, keepdims=True))
    assert np.mean(np.sum(unit(k_control) * mean_dir, axis=-1)) > 0.5
    assert np.array_equal(high.k(1), control.k(1))


def test_split_and_study_use_disjoint_halves():
    high, _ = norm_direction_traces(layers=2, tokens=64, dim=32)
    first, second = split_tokens(high, 0)
    assert first.tokens == second.tokens == 32
    assert np.array_equal(second.k(0), high.k(0)[:, 32:])
    assert np.all(second.q_positions >= 0) and np.all(second.q_positions < 32)
    out = heldout_study(high, 0, 3, seeds=[1, 2, 3], candidates=8)
    assert out["calibration_tokens"] == 32 and out["heldout_tokens"] == 32
    assert set(out["per_config"]) == {"seed 1", "seed 2", "seed 3", "calibrated"}
    s = out["summary"]["mse_ratio"]
    assert s["seed_worst"] >= s["seed_mean"] > 0
