"""The cycle model's own edge cases, each checked against a hand result and against the golden
model: the comparator tie rule, zero vectors, all-equal keys and values, saturated norms.
A mutation of the comparator (>= to >) or of a rounding rule in hw/kernels.py fails these."""

from __future__ import annotations

import numpy as np
import pytest

from axelsim.cost.tiles import SramTiming
from axelsim.hw import kernels
from axelsim.hw.macro import simulate
from axelsim.numerics.codebook import lloyd_max_codebook
from axelsim.numerics.golden import NumericsSpec, golden_layer
from axelsim.trace.format import Trace
from test_hw_helpers import signs_for, small_macro

D, BITS = 16, 3


def _golden(macro, signs, trace):
    spec = NumericsSpec.from_macro(macro, signs)
    return golden_layer(spec, trace.k(0), trace.v(0), trace.q(0), trace.q_positions, 0)


def _same(a, b):
    return np.array_equal(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64), equal_nan=True)


def _trace(keys: np.ndarray, values: np.ndarray, seed: int = 0) -> Trace:
    """One layer, one KV head, one query at the last position."""
    rng = np.random.default_rng(seed)
    q = rng.standard_normal((1, 1, keys.shape[-1]))
    return Trace.from_arrays({0: keys[None]}, {0: values[None]}, {0: q}, [keys.shape[0] - 1])


@pytest.mark.parametrize("upper", [True, False])
def test_quantizer_kernel_tie_rule_by_hand(upper):
    y = np.array([[0.0, 1.0, -1.0, 0.5, -0.5, 0.25]])
    thr = np.array([[-0.5, 0.0, 0.5]])
    idx = np.empty((1, 6), dtype=np.uint8)
    kernels.SERIAL.quantize_stage(y, thr, idx, upper, 0, 1)
    # values on a threshold take the upper level (y >= t) or the lower one (y > t)
    expect = [2, 3, 0, 3, 1, 2] if upper else [1, 3, 0, 2, 0, 2]
    assert idx[0].tolist() == expect


def _two_hot_keys(n: int) -> np.ndarray:
    """Keys c (e_a + e_b): half the coordinates of FWHT(s * x) are exactly 0, the middle
    threshold (boundary 0 x norm) is exactly 0: every such coordinate is a tie."""
    rng = np.random.default_rng(5)
    keys = np.zeros((n, D))
    for t in range(n):
        a, b = rng.choice(D, 2, replace=False)
        keys[t, a] = keys[t, b] = float(t + 1)
    return keys


@pytest.mark.parametrize("prefill", ["simulate", "preloaded"])
def test_ties_follow_the_rule_in_both_write_paths(prefill):
    assert lloyd_max_codebook(D, BITS).rom_boundaries[(1 << BITS) // 2 - 1] == 0.0
    n = 6
    rng = np.random.default_rng(6)
    trace = _trace(_two_hot_keys(n), rng.standard_normal((n, D)))
    signs = signs_for(1, D)
    scores = {}
    for ties in ("upper", "lower"):
        macro = small_macro(D, BITS, write_path=dict(ties=ties))
        result = simulate(macro, signs, trace, prefill=prefill, timing=SramTiming.ideal(macro))
        gold = _golden(macro, signs, trace)
        assert _same(gold.scores, result.scores[0]) and _same(gold.outputs, result.outputs[0])
        # the golden write path stores the hand-expected level on every tie
        y0 = (gold.k_indices[0] == (1 << BITS) // 2) | (gold.k_indices[0] == (1 << BITS) // 2 - 1)
        assert y0.sum() >= n * D // 2
        scores[ties] = result.scores[0]
    # the rule changes the stored levels, so the scores
    assert not _same(scores["upper"], scores["lower"])


@pytest.mark.parametrize("prefill", ["simulate", "preloaded"])
def test_zero_vector_scores_zero_and_weighs_nothing(prefill):
    rng = np.random.default_rng(7)
    keys, values = rng.standard_normal((5, D)), rng.standard_normal((5, D))
    keys[2] = 0.0
    values[3] = 0.0
    trace = _trace(keys, values)
    signs = signs_for(1, D)
    macro = small_macro(D, BITS)
    result = simulate(macro, signs, trace, prefill=prefill, timing=SramTiming.ideal(macro))
    assert result.scores[0][0, 0, 2] == 0.0  # norm 0: the score is 0 whatever the levels
    gold = _golden(macro, signs, trace)
    assert _same(gold.scores, result.scores[0]) and _same(gold.outputs, result.outputs[0])
    # the zero vector's every coordinate ties with every threshold (all are 0): upper rule -> top level
    assert gold.k_indices[0, 2].tolist() == [(1 << BITS) - 1] * D and gold.k_norms[0, 2] == 0.0


def test_all_equal_keys_and_values():
    # every key equal: equal scores, e_t = exp(0) = 1, E = T exactly; every value equal: the
    # output is the stored value's reconstruction ||v|| R^T c[idx] (to the value format's rounding)
    n = 8
    rng = np.random.default_rng(8)
    key, value = rng.standard_normal(D), rng.standard_normal(D)
    trace = _trace(np.tile(key, (n, 1)), np.tile(value, (n, 1)))
    signs = signs_for(1, D)
    macro = small_macro(D, BITS)
    result = simulate(macro, signs, trace, prefill="preloaded", timing=SramTiming.ideal(macro))
    sc = result.scores[0][0, 0]
    assert np.all(sc == sc[0])
    gold = _golden(macro, signs, trace)
    assert _same(gold.outputs, result.outputs[0])
    hadamard = np.array([[1.0]])
    while hadamard.shape[0] < D:
        hadamard = np.block([[hadamard, hadamard], [hadamard, -hadamard]])
    centroids = lloyd_max_codebook(D, BITS).rom_centroids[gold.v_indices[0, 0]]
    recon = float(gold.v_norms[0, 0]) * signs.vector(0) * (hadamard @ centroids) / D
    assert np.allclose(result.outputs[0][0, 0], recon, rtol=1e-6, atol=0)
    # every key hits the same bins: with A = 3 at II = 1 each key after the first waits 2 cycles
    # (the running sum keeps 3 partials, so only the bins stall): 2 (n - 1) by hand
    hz = small_macro(D, BITS, value_path=dict(bin_adder_latency=3, partial_accumulators=3))
    stalled = simulate(hz, signs, trace, prefill="preloaded", timing=SramTiming.ideal(hz))
    assert stalled.unit_stats["value_unit"]["stall_causes"]["bin_hazard"] == 2 * (n - 1)
    assert _same(_golden(hz, signs, trace).outputs, stalled.outputs[0])


@pytest.mark.parametrize("prefill", ["simulate", "preloaded"])
def test_saturated_norms_are_counted_and_stored_at_fp16_max(prefill):
    rng = np.random.default_rng(9)
    keys, values = rng.standard_normal((4, D)), rng.standard_normal((4, D))
    keys[1] *= 1e5  # ||k|| ~ 4e5 > 65504
    values[2] *= 1e5
    trace = _trace(keys, values)
    signs = signs_for(1, D)
    macro = small_macro(D, BITS, formats=dict(input="fp32"))
    result = simulate(macro, signs, trace, prefill=prefill, timing=SramTiming.ideal(macro))
    gold = _golden(macro, signs, trace)
    assert _same(gold.scores, result.scores[0]) and _same(gold.outputs, result.outputs[0])
    assert gold.k_norms[0, 1] == 65504.0 and gold.v_norms[0, 2] == 65504.0 and gold.norm_saturations == 2
    if prefill == "simulate":  # preloaded writes are untimed and uncounted
        assert result.ops["norm_saturations"]["write_path"] == 2
