"""Synthetic traces: shape, reproducibility and that each requested statistic is really there."""

from __future__ import annotations

import numpy as np
import pytest

from axelsim.errors import TraceError
from axelsim.trace import SynthSpec, synth_trace, trace_info


def test_shape_and_positions():
    spec = SynthSpec(layers=3, kv_heads=2, q_heads=6, head_dim=16, tokens=40, queries=5)
    trace = synth_trace(spec)
    assert (trace.n_layers, trace.kv_heads, trace.q_heads, trace.head_dim, trace.tokens) == (3, 2, 6, 16, 40)
    assert trace.k(2).shape == (2, 40, 16) and trace.q(0).shape == (6, 5, 16)
    positions = trace.q_positions
    assert len(positions) == 5 and positions[-1] == 39 and np.all(np.diff(positions) > 0)
    explicit = synth_trace(spec.model_copy(update={"query_positions": [0, 7, 9]}))
    assert explicit.q_positions.tolist() == [0, 7, 9]


def test_seeded_and_reproducible():
    spec = SynthSpec(layers=2, tokens=32, head_dim=16, sinks=1, outlier_channels=2, key_bias=0.5)
    assert synth_trace(spec).digest() == synth_trace(spec).digest()
    other = synth_trace(spec.model_copy(update={"seed": 1}))
    assert not np.array_equal(other.k(0), synth_trace(spec).k(0))


def test_layer_does_not_depend_on_layer_count():
    short = synth_trace(SynthSpec(layers=2, tokens=16, head_dim=8))
    long = synth_trace(SynthSpec(layers=5, tokens=16, head_dim=8))
    for layer in (0, 1):
        np.testing.assert_array_equal(short.k(layer), long.k(layer))
        np.testing.assert_array_equal(short.q(layer), long.q(layer))


def test_norm_ratio_is_measured_back():
    trace = synth_trace(SynthSpec(layers=4, tokens=256, head_dim=64, norm_ratio=6.0))
    assert trace_info(trace)["key_norm_layer_max_min_ratio"] == pytest.approx(6.0, rel=0.05)
    plain = synth_trace(SynthSpec(layers=4, tokens=256, head_dim=64))
    assert trace_info(plain)["key_norm_layer_max_min_ratio"] < 1.1


def test_outlier_channels_have_the_largest_variance():
    spec = SynthSpec(layers=1, kv_heads=2, q_heads=2, tokens=512, head_dim=32,
                     outlier_channels=3, outlier_scale=10.0, dtype="float32")
    keys = synth_trace(spec).k(0)
    for head in range(2):
        var = keys[head].var(axis=0)
        top = np.sort(var)[::-1]
        assert top[2] / top[3] > 20  # three channels near 100x, the rest near 1x
        assert np.median(top[:3]) == pytest.approx(100.0, rel=0.3)


def test_key_bias_is_a_constant_component():
    spec = SynthSpec(layers=1, kv_heads=1, q_heads=1, tokens=2000, head_dim=64, key_bias=2.0,
                     dtype="float32")
    keys = synth_trace(spec).k(0)[0]
    mean = keys.mean(axis=0)
    # rms per coordinate of the constant part is about key_bias; noise of the mean ~ 1/sqrt(T)
    assert np.sqrt(np.mean(mean ** 2)) == pytest.approx(2.0, rel=0.3)
    centred = keys - mean
    assert centred.std() == pytest.approx(1.0, rel=0.05)


def test_sinks_take_most_attention():
    spec = SynthSpec(layers=2, kv_heads=2, q_heads=4, tokens=256, head_dim=64, sinks=1,
                     sink_logit=12.0)
    trace = synth_trace(spec)
    last = len(trace.q_positions) - 1
    for layer in trace.layer_indices:
        k, q = trace.k(layer), trace.q(layer)
        for head in range(trace.q_heads):
            scores = k[head // 2] @ q[head, last] / np.sqrt(64)
            p = np.exp(scores - scores.max())
            assert p[0] / p.sum() > 0.5
    no_sink = synth_trace(spec.model_copy(update={"sinks": 0}))
    k, q = no_sink.k(0), no_sink.q(0)
    scores = k[0] @ q[0, last] / 8.0
    p = np.exp(scores - scores.max())
    assert p[0] / p.sum() < 0.2


def test_without_values():
    trace = synth_trace(SynthSpec(layers=1, tokens=8, head_dim=8, queries=2, values=False))
    assert not trace.has_values
    assert "layers.0.v" not in trace.tensor_names()


@pytest.mark.parametrize("options, where", [
    ({"q_heads": 3, "kv_heads": 2}, ""), ({"head_dim": 0}, "head_dim"),
    ({"tokens": 4, "queries": 9}, ""), ({"norm_ratio": 0.5}, "norm_ratio"),
    ({"bogus": 1}, "bogus"), ({"query_positions": [3, 2]}, ""), ({"dtype": "int8"}, "dtype"),
])
def test_bad_options_raise_trace_error(options, where):
    with pytest.raises(TraceError) as info:
        SynthSpec.from_options(**options)
    assert info.value.source == "trace synth"
    assert info.value.where == (where or "options")


def test_from_options_ignores_none():
    assert SynthSpec.from_options(layers=None, tokens=64) == SynthSpec(tokens=64)
