"""`trace info`: figures checked against an independent computation, and the text summary."""

from __future__ import annotations

import numpy as np
import pytest

from axelsim.trace import SynthSpec, format_trace_info, save_trace, synth_trace, trace_info


def test_norm_figures_match_direct_computation(tmp_path):
    trace = synth_trace(SynthSpec(layers=3, tokens=20, head_dim=8, queries=4, norm_ratio=4.0))
    path = save_trace(trace, tmp_path / "t.safetensors")
    from axelsim.trace import load_trace

    info = trace_info(load_trace(path))
    assert info["file_bytes"] == path.stat().st_size and info["digest_sha256"] == trace.digest()
    means = []
    for row, layer in zip(info["layers"], trace.layer_indices):
        k = trace.k(layer).astype(np.float64)
        norms = np.sqrt((k ** 2).sum(axis=-1))
        assert row["layer"] == layer
        assert row["key_l2_norm_mean"] == pytest.approx(norms.mean(), rel=1e-12)
        assert row["key_l2_norm_max"] == pytest.approx(norms.max(), rel=1e-12)
        v = trace.v(layer).astype(np.float64)
        assert row["value_l2_norm_max"] == pytest.approx(np.sqrt((v ** 2).sum(-1)).max(), rel=1e-12)
        means.append(norms.mean())
    assert info["key_norm_layer_max_min_ratio"] == pytest.approx(max(means) / min(means), rel=1e-12)
    assert (info["tokens"], info["queries"], info["q_position_last"]) == (20, 4, 19)


def test_summary_text_lists_every_layer():
    trace = synth_trace(SynthSpec(layers=2, tokens=16, head_dim=8, queries=2, values=False))
    info = trace_info(trace)
    assert "value_norm_layer_max_min_ratio" not in info and info["file_bytes"] is None
    text = format_trace_info(info)
    lines = text.splitlines()
    assert any(line.split()[:1] == ["0"] for line in lines)
    assert any(line.split()[:1] == ["1"] for line in lines)
    assert "|v|" not in text and "key norm layer max/min ratio" in text
    assert f"{info['layers'][1]['key_l2_norm_mean']:.3f}" in text
