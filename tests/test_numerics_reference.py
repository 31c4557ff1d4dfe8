"""float64 references and the five metrics."""

import math

import numpy as np
import pytest

from axelsim.numerics.codebook import lloyd_max_codebook
from axelsim.numerics.hadamard import sign_vector
from axelsim.numerics.metrics import (
    attention_metrics, attn_kl, output_rel_rmse, score_max_abs_err, score_rel_rmse, top1_agreement,
)
from axelsim.numerics.reference import (
    attention_f64, qdq_mse_per_candidate, quantize_dequantize_f64, quantize_f64,
)


def test_exact_attention_small_case_by_hand():
    k = np.array([[[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]])
    v = np.array([[[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]])
    q = np.array([[[2.0, 0.0], [0.0, 0.0]]])
    att = attention_f64(k, v, q, np.array([1, 2]))
    assert np.array_equal(att.scores[0, 0, :2], [2.0, 0.0]) and np.isnan(att.scores[0, 0, 2])
    w = np.exp(np.array([2.0, 0.0]) / math.sqrt(2))
    p = w / w.sum()
    np.testing.assert_allclose(att.outputs[0, 0], p[0] * np.array([1.0, 2.0]) + p[1] * np.array([3.0, 4.0]), rtol=1e-15)
    np.testing.assert_allclose(att.outputs[0, 1], [3.0, 4.0], rtol=1e-15)  # q = 0: uniform over 3 keys


@pytest.mark.parametrize("kv_heads,group,n_q,tokens,dim", [(1, 1, 3, 17, 8), (2, 4, 5, 33, 16), (3, 2, 1, 64, 128)])
def test_exact_attention_equals_keys_repeated_per_query_head(kv_heads, group, n_q, tokens, dim):
    """GQA read in place (no repeated keys/values) is bit-identical to the textbook form that
    repeats each KV head for its query heads, scores and outputs, masked positions included."""
    rng = np.random.default_rng(kv_heads * 100 + group)
    k = rng.standard_normal((kv_heads, tokens, dim)).astype(np.float32)
    v = rng.standard_normal((kv_heads, tokens, dim)).astype(np.float32)
    q = rng.standard_normal((kv_heads * group, n_q, dim)).astype(np.float32)
    positions = np.sort(rng.choice(tokens, n_q, replace=False))
    att = attention_f64(k, v, q, positions)
    kk = np.repeat(k.astype(np.float64), group, axis=0)
    vv = np.repeat(v.astype(np.float64), group, axis=0)
    scores = np.einsum("hnd,htd->hnt", q.astype(np.float64), kk)
    scores = np.where(np.arange(tokens)[None, None, :] <= positions[None, :, None], scores, np.nan)
    assert np.array_equal(att.scores, scores, equal_nan=True)
    assert np.array_equal(att.outputs, np.einsum("hnt,htd->hnd", att.probs, vv))


def test_quantize_dequantize_error_matches_the_codebook_distortion():
    dim, bits = 128, 3
    cb = lloyd_max_codebook(dim, bits)
    x = np.random.default_rng(0).standard_normal((4000, dim))
    s = sign_vector(0, 0, dim)
    units = x / np.linalg.norm(x, axis=1, keepdims=True)
    x_hat = quantize_dequantize_f64(x, s, cb) / np.linalg.norm(x, axis=1, keepdims=True)
    mse = np.mean((units - x_hat) ** 2)
    assert mse == pytest.approx(cb.distortion / dim, rel=0.05)
    assert np.all(quantize_dequantize_f64(np.zeros((2, dim)), s, cb) == 0.0)
    idx, _ = quantize_f64(np.zeros((1, dim)), s, cb)
    assert np.all(idx == 4)  # a zero coordinate sits on the 0 boundary and takes the upper level


def test_candidate_mse_equals_the_quantize_dequantize_path():
    dim = 64
    cb = lloyd_max_codebook(dim, 2)
    x = np.random.default_rng(1).standard_normal((300, dim)) * np.linspace(0.1, 5, dim)
    x[7] = 0.0  # zero rows are skipped
    signs = np.stack([sign_vector(3, c, dim) for c in range(5)])
    got = qdq_mse_per_candidate(x, signs, cb)
    live = x[np.linalg.norm(x, axis=1) > 0]
    units = live / np.linalg.norm(live, axis=1, keepdims=True)
    for c in range(5):
        expected = np.mean((units - quantize_dequantize_f64(units, signs[c], cb)) ** 2)
        assert got[c] == pytest.approx(expected, rel=1e-10)


def test_metrics_on_identical_and_known_inputs():
    ref = np.array([[[1.0, 2.0, np.nan], [3.0, 1.0, 0.0]]])
    assert score_rel_rmse(ref, ref) == 0.0 and score_max_abs_err(ref, ref) == 0.0
    assert attn_kl(ref, ref, 4) == 0.0 and top1_agreement(ref, ref) == 1.0
    sim = ref + np.array([[[0.0, 0.0, 5.0], [0.0, 4.0, 0.0]]])  # beyond-causal entry ignored
    assert score_max_abs_err(sim, ref) == 4.0
    assert score_rel_rmse(sim, ref) == pytest.approx(math.sqrt(16 / 5) / math.sqrt(15 / 5))
    assert top1_agreement(sim, ref) == 0.5
    # KL of query 2 by hand: scores / sqrt(4)
    p = np.exp(np.array([3.0, 1.0, 0.0]) / 2)
    p /= p.sum()
    r = np.exp(np.array([3.0, 5.0, 0.0]) / 2)
    r /= r.sum()
    assert attn_kl(sim, ref, 4) == pytest.approx(np.sum(p * np.log(p / r)) / 2, rel=1e-12)
    out = np.ones((1, 2, 3))
    assert output_rel_rmse(out * 1.1, out) == pytest.approx(0.1)
    assert set(attention_metrics(sim, ref, 4, out, out)) == {
        "score_rel_rmse", "score_max_abs_err", "attn_kl", "top1_agreement", "output_rel_rmse"}
