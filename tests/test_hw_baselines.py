"""Baselines: counted multiplications against T*d, results against float64, modes agree."""

import numpy as np
import pytest

from axelsim.hw.baselines import simulate_baseline
from axelsim.hw.macro import simulate
from test_hw_helpers import random_trace, signs_for, small_macro


@pytest.mark.parametrize("kind, per_key", [("fp16", 1), ("dequant", 2)])
def test_read_multiplications_count_t_times_d(kind, per_key):
    macro = small_macro(16, 3)
    trace = random_trace(2, tokens=8, values=False)
    result = simulate_baseline(kind, macro, trace, signs_for(1, 16), prefill="preloaded")
    assert result.ops["multiplications"]["read_path"] == per_key * 8 * 16


def test_fp16_scores_and_outputs_near_float64():
    macro = small_macro(16, 3)
    trace = random_trace(3, tokens=8)
    result = simulate_baseline("fp16", macro, trace, prefill="preloaded")
    k, v, q = (np.asarray(trace.k(0), float)[0], np.asarray(trace.v(0), float)[0], np.asarray(trace.q(0), float)[0, 0])
    exact = k @ q
    assert np.allclose(result.scores[0][0, 0], exact, rtol=1e-2, atol=2e-2)
    w = np.exp((exact - exact.max()) / 4.0)
    assert np.allclose(result.outputs[0][0, 0], (w / w.sum()) @ v, atol=2e-2)


def test_dequant_scores_track_axelram_and_modes_agree():
    macro = small_macro(16, 3)
    trace = random_trace(4, kv_heads=2, q_heads=4, tokens=6, q_positions=[2, 5])
    signs = signs_for(1, 16)
    burst = simulate_baseline("dequant", macro, trace, signs)
    key = simulate_baseline("dequant", macro, trace, signs, fidelity="key")
    assert burst.cycles == key.cycles and burst.actions == key.actions
    assert np.array_equal(burst.scores[0], key.scores[0], equal_nan=True)
    axel = simulate(macro, signs, trace)
    assert np.allclose(burst.scores[0], axel.scores[0], rtol=2e-2, atol=5e-2, equal_nan=True)
