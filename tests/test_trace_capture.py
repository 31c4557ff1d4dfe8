"""Capture from a tiny randomly initialised Llama (built here, nothing downloaded).

The captured keys and values are checked against the model's own KV cache from a separate,
uncaptured run, and the captured queries by recomputing attention from the trace and comparing
with what the model feeds its output projection.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from axelsim.errors import TraceError  # noqa: E402
from axelsim.trace import load_trace  # noqa: E402
from axelsim.trace.capture import (  # noqa: E402
    CaptureMismatch, _check_against_cache, _Recorder, capture_to_file, capture_trace, load_model)

T = 24


def tiny_llama(attn: str = "sdpa"):
    torch.manual_seed(0)
    config = transformers.LlamaConfig(
        num_hidden_layers=2, hidden_size=64, num_attention_heads=4, num_key_value_heads=2,
        intermediate_size=128, vocab_size=97, max_position_embeddings=128)
    model = transformers.LlamaForCausalLM(config).eval()
    model.set_attn_implementation(attn)
    return model


@pytest.fixture(scope="module")
def ids():
    return torch.randint(0, 97, (T + 5,), generator=torch.Generator().manual_seed(1)).tolist()


def _reference_run(model, ids):
    """An uncaptured forward pass: the model's cache and the inputs of each o_proj."""
    o_inputs = {}
    hooks = [layer.self_attn.o_proj.register_forward_pre_hook(
        lambda mod, args, L=L: o_inputs.__setitem__(L, args[0][0].clone()))
        for L, layer in enumerate(model.model.layers)]
    try:
        with torch.no_grad():
            out = model(input_ids=torch.as_tensor([ids[:T]]), use_cache=True)
    finally:
        for hook in hooks:
            hook.remove()
    cache = out.get("cache") or out.get("past_key_values")
    return cache, o_inputs


def _attention_from_trace(trace, layer):
    """softmax(q.k/sqrt(d)) v, causal, per query and head, float64 [Nq, Hq*d]."""
    k, v, q = (x.astype(np.float64) for x in (trace.k(layer), trace.v(layer), trace.q(layer)))
    group = trace.q_heads // trace.kv_heads
    rows = []
    for n, pos in enumerate(trace.q_positions):
        heads = []
        for h in range(trace.q_heads):
            scores = k[h // group, : pos + 1] @ q[h, n] / np.sqrt(trace.head_dim)
            p = np.exp(scores - scores.max())
            heads.append((p / p.sum()) @ v[h // group, : pos + 1])
        rows.append(np.concatenate(heads))
    return np.array(rows)


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_capture_matches_model_cache_and_attention(attn, ids):
    model = tiny_llama(attn)
    trace = capture_trace(model, None, ids, T, query_positions=[0, 5, 17, T - 1], dtype="float32",
                          progress=False)
    assert model.config._attn_implementation == attn  # restored
    assert (trace.n_layers, trace.kv_heads, trace.q_heads, trace.head_dim, trace.tokens) == (2, 2, 4, 16, T)
    cache, o_inputs = _reference_run(model, ids)
    for layer in (0, 1):
        entry = cache.layers[layer]
        np.testing.assert_array_equal(trace.k(layer), entry.keys[0].numpy())
        np.testing.assert_array_equal(trace.v(layer), entry.values[0].numpy())
        expected = o_inputs[layer].numpy()[trace.q_positions]
        np.testing.assert_allclose(_attention_from_trace(trace, layer), expected, rtol=1e-4, atol=1e-6)


def test_float16_trace_is_the_rounded_float32_trace(ids):
    model = tiny_llama()
    full = capture_trace(model, None, ids, T, dtype="float32", progress=False)
    half = capture_trace(model, None, ids, T, layers=[1], query_positions=3, progress=False)
    assert half.dtype == "float16" and half.layer_indices == [1] and half.meta["model_layers"] == "2"
    assert half.q_positions.tolist() == [7, 15, 23]
    np.testing.assert_array_equal(half.k(1), full.k(1).astype(np.float16).astype(np.float32))
    np.testing.assert_array_equal(half.q(1), full.q(1)[:, half.q_positions].astype(np.float16).astype(np.float32))
    assert full.q_positions.tolist() == list(range(T))


@pytest.mark.parametrize("kwargs, where", [
    ({"tokens": T + 6}, "tokens"), ({"layers": [2]}, "layers"),
    ({"query_positions": [3, 3]}, "query_positions"), ({"query_positions": [T]}, "query_positions"),
    ({"dtype": "int8"}, "dtype"),
])
def test_bad_capture_requests(ids, kwargs, where):
    args = {"tokens": T, **kwargs}
    with pytest.raises(TraceError) as info:
        capture_trace(tiny_llama(), None, ids, progress=False, **args)
    assert info.value.where == where


def test_text_without_tokenizer_is_refused():
    with pytest.raises(TraceError) as info:
        capture_trace(tiny_llama(), None, "some text", 4, progress=False)
    assert info.value.where == "tokenizer"


def test_mismatch_with_cache_is_detected(ids):
    model = tiny_llama()
    recorder = _Recorder({0}, torch.arange(2))
    with torch.no_grad():
        out = model(input_ids=torch.as_tensor([ids[:T]]), use_cache=True)
    cache = out.get("cache") or out.get("past_key_values")
    recorder.k[0] = cache.layers[0].keys[0].clone()
    recorder.v[0] = cache.layers[0].values[0].clone()
    _check_against_cache(out, recorder, [0])
    recorder.v[0][0, 3, 1] += 1e-3
    with pytest.raises(CaptureMismatch):
        _check_against_cache(out, recorder, [0])


def test_capture_to_file_from_a_local_folder(tmp_path):
    from tokenizers import Tokenizer, models, pre_tokenizers

    words = "it is a truth universally acknowledged that single man in possession of good fortune".split()
    vocab = {word: i for i, word in enumerate(["[UNK]"] + words)}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = transformers.PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="[UNK]")
    folder = tmp_path / "tiny"
    tiny_llama().save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    text = tmp_path / "text.txt"
    text.write_text("xx " + " ".join(words * 3))
    trace = capture_to_file(folder, text, 20, tmp_path / "out.safetensors", text_offset=3,
                            queries=4, progress=False)
    assert trace.path == tmp_path / "out.safetensors" and trace.tokens == 20
    assert load_trace(trace.path).digest() == trace.digest()
    assert trace.model == "tiny" and "text.txt from character 3" in trace.meta["source"]
    model, _ = load_model(folder)
    reference = capture_trace(model, None, [vocab[w] for w in (words * 3)[:20]], 20,
                              query_positions=4, progress=False)
    np.testing.assert_array_equal(trace.k(0), reference.k(0))


def test_missing_model_or_text(tmp_path):
    with pytest.raises(TraceError) as info:
        load_model(tmp_path / "absent")
    assert info.value.where == "model" and str(tmp_path / "absent") in info.value.source
    with pytest.raises(TraceError) as info:
        load_model(tmp_path, gguf_file="model.gguf")
    assert info.value.where == "model"
    with pytest.raises(TraceError) as info:
        capture_to_file(tmp_path, tmp_path / "absent.txt", 4, tmp_path / "o.safetensors")
    assert info.value.where in ("model", "file")
