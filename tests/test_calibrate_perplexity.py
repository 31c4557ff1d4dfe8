"""The perplexity harness: window plan, the macro KV transform, the transforming cache."""

from __future__ import annotations

import numpy as np
import pytest

from axelsim.calibrate.kvquant import compare_macro_and_qdq, macro_kv_transform, macro_spec, stored_vectors
from axelsim.calibrate.perplexity import decode_nll, perplexities, plan_windows, prefix_states
from axelsim.errors import ConfigError
from axelsim.numerics.codebook import lloyd_max_codebook
from axelsim.numerics.hadamard import SignRom
from axelsim.numerics.reference import quantize_dequantize_f64
from axelsim.trace import SynthSpec, synth_trace

DIM = 32


def test_windows_tile_the_scored_tokens():
    plan = plan_windows(n_tokens=100, prefix=20, decode=10, windows=7)
    assert plan.starts == tuple(range(0, 70, 10))
    assert plan.scored_tokens == 70
    assert plan.starts[-1] + plan.window_tokens <= 100
    with pytest.raises(ConfigError):
        plan_windows(n_tokens=100, prefix=20, decode=10, windows=8)


def test_stored_vectors_follow_the_reference_quantizer():
    rng = np.random.default_rng(0)
    x = 3.0 * rng.standard_normal((2, 200, DIM))
    spec = macro_spec(DIM, 3, SignRom.from_seed(4, 2, DIM))
    x_hat = stored_vectors(spec, x, layer=1)
    reference = quantize_dequantize_f64(x, spec.signs.vector(1), lloyd_max_codebook(DIM, 3))
    # FP16 input, norms and ROM centroids move a reconstruction by about 1e-3 relative; a
    # coordinate on a boundary may flip one level (about 0.1 relative) in a few vectors
    rel = np.linalg.norm(x_hat - reference, axis=-1) / np.linalg.norm(x, axis=-1)
    assert np.mean(rel < 5e-3) > 0.9
    err = np.sum((x_hat - x) ** 2, axis=-1) / np.sum(x**2, axis=-1)
    assert abs(np.mean(err) / spec.codebook.distortion - 1.0) < 0.15


def test_macro_attention_is_close_to_qdq():
    trace = synth_trace(SynthSpec(layers=1, kv_heads=1, q_heads=2, head_dim=DIM, tokens=64, queries=4))
    spec = macro_spec(DIM, 3, SignRom.from_seed(1, 1, DIM))
    diff = compare_macro_and_qdq(spec, trace, 0)
    assert diff["score_rel_rms_macro_vs_qdq"] < 0.05 * diff["score_rel_rms_qdq_vs_exact"]
    assert diff["output_rel_rms_macro_vs_qdq"] < 0.05 * diff["output_rel_rms_qdq_vs_exact"]


@pytest.fixture(scope="module")
def tiny_model():
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    config = transformers.LlamaConfig(
        vocab_size=50, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, head_dim=DIM, max_position_embeddings=128)
    return transformers.LlamaForCausalLM(config).eval()


def test_cache_path_reproduces_the_full_forward(tiny_model):
    import torch

    ids = np.random.default_rng(1).integers(0, 50, size=41)
    with torch.no_grad():
        logits = tiny_model(input_ids=torch.from_numpy(ids[None, :-1])).logits[0, 24:].double()
    full = -torch.log_softmax(logits, -1)[torch.arange(16), torch.from_numpy(ids[25:])].sum()
    states = prefix_states(tiny_model, ids[:24])
    assert len(states) == 2 and states[0][0].shape == (2, 24, DIM)
    nll = decode_nll(tiny_model, states, ids[24:40], ids[25:41], transform=None)
    assert nll == pytest.approx(float(full), rel=1e-5)


def test_quantized_cache_transforms_prefix_and_decoded_states(tiny_model):
    tokens = np.random.default_rng(2).integers(0, 50, size=60)
    plan = plan_windows(len(tokens), prefix=24, decode=8, windows=3)
    calls = []

    def counting(layer, k, v):
        calls.append((layer, k.shape))
        return k, v

    transforms = {
        "fp32": None,
        "identity": counting,
        "b4": macro_kv_transform(macro_spec(DIM, 4, SignRom.from_seed(1, 2, DIM))),
    }
    ppl = perplexities(tiny_model, tokens, plan, transforms)
    assert ppl["identity"] == pytest.approx(ppl["fp32"], rel=1e-6)
    # per window and layer: the prefix enters the cache, then the decoded tokens
    assert sorted({shape[1] for _, shape in calls}) == [8, 24]
    assert len(calls) == 3 * 2 * 2
    assert ppl["b4"] != ppl["fp32"]


def test_prefix_only_leaves_decoded_states_exact(tiny_model):
    tokens = np.random.default_rng(3).integers(0, 50, size=42)
    plan = plan_windows(len(tokens), prefix=24, decode=8, windows=2)
    calls = []

    def counting(layer, k, v):
        calls.append(k.shape[1])
        return k, v

    perplexities(tiny_model, tokens, plan, {"identity": counting}, prefix_only=True)
    assert calls == [24] * (2 * 2)  # windows x layers, prefix only


def test_exact_attention_swap_reproduces_the_model(tiny_model):
    """The attention interface plumbing (layouts, GQA, causal positions after a cache): float64
    attention through `AttentionSwap` gives the model's own NLL."""
    from axelsim.calibrate.macro_attention import exact_backend, register
    from axelsim.calibrate.perplexity import AttentionSwap

    ids = np.random.default_rng(4).integers(0, 50, size=41)
    states = prefix_states(tiny_model, ids[:24])
    want = decode_nll(tiny_model, states, ids[24:40], ids[25:41], transform=None)
    got = decode_nll(tiny_model, states, ids[24:40], ids[25:41], AttentionSwap(register("test_exact", exact_backend())))
    assert got == pytest.approx(want, rel=1e-6)
    assert tiny_model.config._attn_implementation != "test_exact"  # restored


BACKENDS = ("macro", "fp16", "kivi")


@pytest.mark.parametrize("kind", BACKENDS)
def test_bitexact_attention_equals_golden_on_a_captured_trace(kind):
    """The harness's attention function, fed a shipped SmolLM2 capture one query at a time
    (keys 0..p in the cache), returns the golden model's outputs bit for bit: the AXELRAM
    macro's (`golden_layer`) and the FP16 and KIVI baselines' (`baseline_layer`)."""
    torch = pytest.importorskip("torch")
    from pathlib import Path
    from types import SimpleNamespace

    from axelsim.calibrate.macro_attention import attention_function, baseline_backend, macro_backend
    from axelsim.numerics.baselines import KiviSpec, baseline_layer
    from axelsim.numerics.golden import golden_layer
    from axelsim.trace import load_trace

    trace = load_trace(Path(__file__).parents[1] / "traces" / "smollm2_austen_full.safetensors")
    trace = trace.with_selection(layers=[3], queries=[0, 5, 15])
    spec = macro_spec(trace.head_dim, 3, SignRom.from_seed(2, 4, trace.head_dim))
    k, v, q, pos = trace.k(3), trace.v(3), trace.q(3), trace.q_positions
    kivi = KiviSpec(2, 32, 64, 32)  # a window shorter than the trace: quantized groups are read
    if kind == "macro":
        gold, backend = golden_layer(spec, k, v, q, pos, 3).outputs, macro_backend(spec)
    else:
        gold, backend = baseline_layer(kind, spec, kivi, k, v, q, pos, 3).outputs, baseline_backend(kind, spec, kivi)
    attend = attention_function(backend)
    module = SimpleNamespace(layer_idx=3)
    for i, p in enumerate(pos):
        out, _ = attend(module, torch.from_numpy(np.ascontiguousarray(q[None, :, i:i + 1])),
                        torch.from_numpy(np.ascontiguousarray(k[None, :, :p + 1])),
                        torch.from_numpy(np.ascontiguousarray(v[None, :, :p + 1])), None, 0.125)
        assert np.array_equal(out[0, 0].numpy().astype(np.float64), gold[:, i])
    if kind == "kivi":
        assert pos.max() + 1 > kivi.window  # the quantized part was exercised


def test_checkpoints_cover_whole_windows_and_prefix_only_by_name(tiny_model):
    """on_window reports the perplexity of the windows done so far (the last equals the result);
    prefix_only given as names applies to those configurations only; CPU time per configuration."""
    tokens = np.random.default_rng(5).integers(0, 50, size=60)
    plan = plan_windows(len(tokens), prefix=24, decode=8, windows=3)
    calls = {"a": [], "b": []}

    def counting(name):
        def transform(layer, k, v):
            calls[name].append(k.shape[1])
            return k, v
        return transform

    seen, cpu = [], {}
    ppl = perplexities(tiny_model, tokens, plan, {"a": counting("a"), "b": counting("b")}, prefix_only={"b"},
                       on_window=lambda done, p: seen.append((done, p)), cpu_seconds=cpu)
    assert [d for d, _ in seen] == [1, 2, 3]
    assert seen[-1][1] == ppl
    first = perplexities(tiny_model, tokens, plan_windows(len(tokens), 24, 8, 1), {"a": None})
    assert seen[0][1]["a"] == pytest.approx(first["a"], rel=1e-9)
    assert sorted(set(calls["a"])) == [8, 24] and set(calls["b"]) == {24}
    assert set(cpu) == {"a", "b"} and all(t > 0 for t in cpu.values())


def _fake_results() -> dict:
    seeds = [1, 2, 3, 4]
    ppl = {"fp32": 10.0, "fp16": 10.0, "fp16_baseline": 10.01}
    for i, s in enumerate(seeds):
        ppl[f"b3/seed{s}"] = 12.0 + i  # increases 2, 3, 4, 5
        ppl[f"paper-qdq:b3/seed{s}"] = 11.0 + i  # one PPL lower, paired
    ppl["b3/calibrated"] = 13.5  # 3.5: between the 2nd and 3rd seed
    ppl["b3/kivi"] = 11.0
    results = {"perplexity": ppl, "bits": [3], "seeds": seeds, "protocol": "axelsim", "mode": "bitexact",
               "windows": {"count": 2, "prefix": 8, "decode": 4, "scored_tokens": 8},
               "families": {"": {"protocol": "axelsim", "mode": "bitexact", "ties": "upper", "quantized": "all"},
                            "paper-qdq:": {"protocol": "paper", "mode": "qdq", "ties": "lower",
                                           "quantized": "prefix only"}},
               "kivi": {"group_size": 32, "window": 32}}
    return results


def test_comparison_table_computes_its_findings():
    from axelsim.calibrate.report import comparison_table

    text = comparison_table(_fake_results())
    std = np.std([2, 3, 4, 5], ddof=1)
    assert f"+3.500 ± {std:.3f}" in text
    assert "calibrated signs +3.500, 3rd best of 5, inside the seed range" in text
    assert "KIVI +1.000 against the AXELRAM seed mean +3.500 (better)" in text
    assert f"= -1.000 PPL (paired over 4 seeds; {1 / std:.2f}× the" in text and "inside the seed spread" in text
    assert "-1.000 ± 0.000 (1.000)" in text
    assert "FP16 baseline macro" in text and "+0.010" in text


def test_render_rewrites_the_tables_of_a_run(tmp_path, capsys):
    import importlib.util
    import json
    from pathlib import Path

    path = Path(__file__).parents[1] / "scripts" / "perplexity.py"
    spec = importlib.util.spec_from_file_location("perplexity_script", path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    (tmp_path / "ppl.json").write_text(json.dumps(_fake_results()))
    assert script.main(["--render", str(tmp_path)]) == 0
    assert "3rd best of 5" in (tmp_path / "ppl_tables.md").read_text()
    assert (tmp_path / "ppl_seeds.png").stat().st_size > 0
    assert script.main(["--render", str(tmp_path / "absent")]) == 2
    assert "ppl.json: cannot read the results" in capsys.readouterr().err
