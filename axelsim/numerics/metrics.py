"""Error metrics of a simulated attention against a float64 reference.

Scores are raw dot products q.k (no 1/sqrt(d)), shaped [..., T] with NaN at keys outside a
query's causal range; the valid (causal) keys are those where the reference is not NaN.
Every "query" below is one (query head, query position) row.

Relative RMS errors (score_rel_rmse, output_rel_rmse) divide the RMS of the error by the RMS
of the reference. When the reference is all zero (a layer of zero keys or queries) there is
nothing to be relative to; the rule is then: the divisor is 1, so the metric is the plain RMS
error in the quantity's own unit (raw q.k for scores, activation units for outputs). An exact
result therefore always reads 0.0 (never 0/0 = NaN), and a non-zero error against an all-zero
reference reads as its absolute size rather than infinity.
"""

from __future__ import annotations

import numpy as np

from axelsim.numerics.reference import log_softmax_rows


def _valid(sim: np.ndarray, ref: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    sim64, ref64 = np.asarray(sim, dtype=np.float64), np.asarray(ref, dtype=np.float64)
    if sim64.shape != ref64.shape:
        raise ValueError(f"shape mismatch: {sim64.shape} vs {ref64.shape}")
    mask = ~np.isnan(ref64)
    return sim64[mask], ref64[mask]


def _relative_rmse(s: np.ndarray, r: np.ndarray) -> float:
    """sqrt(mean (s - r)^2) / sqrt(mean r^2); the divisor is 1 when r is all zero (see the module
    docstring), so an exact result is 0.0; 0.0 for no elements at all."""
    if s.size == 0:
        return 0.0
    error = float(np.sqrt(np.mean((s - r) ** 2)))
    scale = float(np.sqrt(np.mean(r**2)))
    return error / scale if scale > 0.0 else error


def score_rel_rmse(sim: np.ndarray, ref: np.ndarray) -> float:
    """sqrt(mean (sim - ref)^2) / sqrt(mean ref^2) over all valid (query, key) scores; unitless.

    All-zero reference scores: the plain RMS error in score units (0.0 when sim == ref)."""
    s, r = _valid(sim, ref)
    return _relative_rmse(s, r)


def score_max_abs_err(sim: np.ndarray, ref: np.ndarray) -> float:
    """max |sim - ref| over all valid scores, in score units (raw q.k)."""
    s, r = _valid(sim, ref)
    return float(np.max(np.abs(s - r)))


def attn_kl(sim: np.ndarray, ref: np.ndarray, dim: int) -> float:
    """Mean over queries of KL(p_ref || p_sim) in nats, p = softmax(scores / sqrt(dim)) over the
    causal keys, both softmaxes in float64 from the given scores."""
    log_ref = log_softmax_rows(ref, dim)
    log_sim = log_softmax_rows(np.where(np.isnan(ref), np.nan, sim), dim)
    p_ref = np.exp(log_ref)
    # From the log-softmaxes: a simulated probability that underflows to 0 keeps its finite log,
    # so a large but finite error gives a large finite KL, not inf.
    with np.errstate(invalid="ignore"):
        terms = np.where(p_ref > 0.0, p_ref * (log_ref - log_sim), 0.0)
    return float(np.mean(terms.sum(axis=-1)))


def top1_agreement(sim: np.ndarray, ref: np.ndarray) -> float:
    """Fraction of queries whose highest-scoring causal key is the same in sim and ref (first
    index on ties); in [0, 1]."""
    ref64 = np.asarray(ref, dtype=np.float64)
    mask = np.isnan(ref64)
    top_ref = np.argmax(np.where(mask, -np.inf, ref64), axis=-1)
    top_sim = np.argmax(np.where(mask, -np.inf, np.asarray(sim, dtype=np.float64)), axis=-1)
    return float(np.mean(top_ref == top_sim))


def output_rel_rmse(sim: np.ndarray, ref: np.ndarray) -> float:
    """sqrt(mean (o_sim - o_ref)^2) / sqrt(mean o_ref^2) over all queries and coordinates; unitless.

    All-zero reference outputs: the plain RMS error in activation units (0.0 when sim == ref)."""
    s, r = np.asarray(sim, dtype=np.float64), np.asarray(ref, dtype=np.float64)
    if s.shape != r.shape:
        raise ValueError(f"shape mismatch: {s.shape} vs {r.shape}")
    return _relative_rmse(s, r)


def attention_metrics(sim_scores, ref_scores, dim: int, sim_out=None, ref_out=None) -> dict[str, float]:
    """The five metrics as a dict (output_rel_rmse only when both outputs are given)."""
    result = {
        "score_rel_rmse": score_rel_rmse(sim_scores, ref_scores),
        "score_max_abs_err": score_max_abs_err(sim_scores, ref_scores),
        "attn_kl": attn_kl(sim_scores, ref_scores, dim),
        "top1_agreement": top1_agreement(sim_scores, ref_scores),
    }
    if sim_out is not None and ref_out is not None:
        result["output_rel_rmse"] = output_rel_rmse(sim_out, ref_out)
    return result
