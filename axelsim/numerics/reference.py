"""float64 references: exact attention, and the paper's-code quantize-dequantize path.

The paper's-code path per vector x: n = ||x||, u = x / n, y = R u with R = H diag(s)/sqrt(d),
idx_i = #{j : y_i >= beta_j / sqrt(d)} (ties take the upper level, as in the macro),
y_hat = gamma[idx] / sqrt(d), x_hat = n * R^T y_hat. A zero vector dequantizes to zero.
Everything is float64 with the exact (unrounded) N(0, 1) codebook.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import numba as nb
import numpy as np

from axelsim.numerics.codebook import Codebook
from axelsim.numerics.hadamard import inverse_rotate_f64, rotate_f64


@dataclass(frozen=True)
class Attention:
    """float64 attention of one layer: scores [Hq, Nq, T] (raw q.k, NaN beyond each query's
    position), probs [Hq, Nq, T] (softmax of scores / sqrt(d), 0 beyond) and outputs
    [Hq, Nq, d] (None without values)."""

    scores: np.ndarray
    probs: np.ndarray
    outputs: Optional[np.ndarray]


def _causal_mask(q_positions: Optional[np.ndarray], n_q: int, n_tok: int) -> np.ndarray:
    """[Nq, T] True where key t is visible to query n (t <= position, or all if None)."""
    if q_positions is None:
        return np.ones((n_q, n_tok), dtype=bool)
    return np.arange(n_tok)[None, :] <= np.asarray(q_positions)[:, None]


def softmax_rows(scores: np.ndarray, dim: int) -> np.ndarray:
    """float64 softmax of scores / sqrt(dim) over the last axis; NaN entries are masked out (p = 0).

    Infinite scores (an overflowed datapath) take their limit: -inf gets p = 0, and a row holding
    +inf shares its mass equally among its +inf entries. A row with no valid entry is all NaN.
    """
    z = np.asarray(scores, dtype=np.float64) / math.sqrt(dim)
    valid = ~np.isnan(z)
    top = np.max(np.where(valid, z, -np.inf), axis=-1, keepdims=True)
    infinite_top = np.isposinf(top)
    with np.errstate(invalid="ignore"):
        shifted = np.where(infinite_top, np.where(z == np.inf, 0.0, -np.inf), z - top)
    e = np.where(valid, np.exp(shifted), 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return e / e.sum(axis=-1, keepdims=True)


def log_softmax_rows(scores: np.ndarray, dim: int) -> np.ndarray:
    """float64 log of softmax_rows(scores, dim), computed as z - top - log(sum exp(z - top)), so an
    entry whose probability underflows to 0 still has its finite log. Masked (NaN) entries and
    the limits of infinite scores give -inf."""
    z = np.asarray(scores, dtype=np.float64) / math.sqrt(dim)
    valid = ~np.isnan(z)
    top = np.max(np.where(valid, z, -np.inf), axis=-1, keepdims=True)
    if not np.isfinite(top).all():  # an overflowed row: its limit has exact zeros, no finite logs
        with np.errstate(divide="ignore"):
            return np.log(softmax_rows(scores, dim))
    shifted = np.where(valid, z - top, -np.inf)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def attention_f64(k: np.ndarray, v: Optional[np.ndarray], q: np.ndarray, q_positions: Optional[np.ndarray]) -> Attention:
    """Exact attention: k, v [Hkv, T, d], q [Hq, Nq, d]; query head h uses KV head h // (Hq/Hkv)."""
    k64 = np.asarray(k, dtype=np.float64)
    q64 = np.asarray(q, dtype=np.float64)
    n_kv, n_tok, dim = k64.shape
    n_h, n_q = q64.shape[:2]
    group = n_h // n_kv
    # query heads as [KV head, group, ...]: each KV head is read in place, never repeated per
    # query head (the same products and sums, in the same order, as against repeated keys)
    scores = np.einsum("kgnd,ktd->kgnt", q64.reshape(n_kv, group, n_q, dim), k64).reshape(n_h, n_q, n_tok)
    scores = np.where(_causal_mask(q_positions, n_q, n_tok)[None], scores, np.nan)
    probs = softmax_rows(scores, dim)
    outputs = None
    if v is not None:
        v64 = np.asarray(v, dtype=np.float64)
        outputs = np.einsum("kgnt,ktd->kgnd", probs.reshape(n_kv, group, n_q, n_tok), v64).reshape(n_h, n_q, dim)
    return Attention(scores, probs, outputs)


def quantize_f64(x: np.ndarray, signs: np.ndarray, codebook: Codebook) -> tuple[np.ndarray, np.ndarray]:
    """The paper's-code quantizer for x [..., d]: (indices uint8 [..., d], norms float64 [...])."""
    x64 = np.asarray(x, dtype=np.float64)
    norms = np.linalg.norm(x64, axis=-1)
    safe = np.where(norms > 0.0, norms, 1.0)
    y = rotate_f64(x64 / safe[..., None], signs)
    bounds = codebook.boundaries / math.sqrt(codebook.dim)
    indices = np.searchsorted(bounds, y, side="right").astype(np.uint8)
    return indices, norms


def dequantize_f64(indices: np.ndarray, norms: np.ndarray, signs: np.ndarray, codebook: Codebook) -> np.ndarray:
    """x_hat = norm * R^T (gamma[idx] / sqrt(d)) over the last axis, float64."""
    y_hat = codebook.centroids[np.asarray(indices)] / math.sqrt(codebook.dim)
    return inverse_rotate_f64(y_hat, signs) * np.asarray(norms, dtype=np.float64)[..., None]


def quantize_dequantize_f64(x: np.ndarray, signs: np.ndarray, codebook: Codebook) -> np.ndarray:
    """The paper's-code reconstruction x_hat of x [..., d] (zero vectors give zero), float64."""
    indices, norms = quantize_f64(x, signs, codebook)
    return dequantize_f64(indices, norms, signs, codebook)


def qdq_attention_f64(
    k: np.ndarray, v: Optional[np.ndarray], q: np.ndarray, q_positions: Optional[np.ndarray],
    signs: np.ndarray, codebook: Codebook,
) -> Attention:
    """Attention over the paper's-code reconstructions k_hat, v_hat (the query is exact)."""
    k_hat = quantize_dequantize_f64(k, signs, codebook)
    v_hat = None if v is None else quantize_dequantize_f64(v, signs, codebook)
    return attention_f64(k_hat, v_hat, q, q_positions)


def lut_scores_f64(q: np.ndarray, indices: np.ndarray, norms: np.ndarray, signs: np.ndarray, codebook: Codebook) -> np.ndarray:
    """The asymmetric identity in float64: sum_i (R q)_i gamma[idx_i]/sqrt(d) * norm, [M, T].

    q [M, d]; indices [T, d]; norms [T]. Equals q . k_hat of `dequantize_f64` up to rounding.
    """
    r = rotate_f64(q, signs)
    c = codebook.centroids / math.sqrt(codebook.dim)
    table = r[:, :, None] * c[None, None, :]  # [M, d, L]
    dim = r.shape[1]
    looked_up = table[:, np.arange(dim)[None, :], np.asarray(indices)]  # [M, T, d]
    return looked_up.sum(axis=-1) * np.asarray(norms, dtype=np.float64)[None, :]


@nb.njit(cache=True, nogil=True)
def fwht_f64_inplace(u: np.ndarray) -> None:
    """Unnormalised FWHT of one float64 vector in place (exact butterflies, no rounding);
    shared by the reference quantizer and the calibration search kernels."""
    d = u.size
    h = 1
    while h < d:
        for j0 in range(0, d, 2 * h):
            for k in range(h):
                a = u[j0 + k]
                c = u[j0 + k + h]
                u[j0 + k] = a + c
                u[j0 + k + h] = a - c
        h *= 2


@nb.njit(cache=True, parallel=True, nogil=True)
def _candidate_mse(units: np.ndarray, signs: np.ndarray, bounds: np.ndarray, cents: np.ndarray, out: np.ndarray) -> None:
    n_vec, d = units.shape
    scale = 1.0 / math.sqrt(d)
    for c in nb.prange(signs.shape[0]):
        u = np.empty(d)
        err = 0.0
        for v in range(n_vec):
            for i in range(d):
                u[i] = units[v, i] * signs[c, i]
            fwht_f64_inplace(u)
            for i in range(d):
                y = u[i] * scale
                j = np.searchsorted(bounds, y, side="right")
                diff = y - cents[j]
                err += diff * diff
        out[c] = err / (n_vec * d)


def qdq_mse_per_candidate(x: np.ndarray, signs: np.ndarray, codebook: Codebook) -> np.ndarray:
    """Algorithm 1's objective: for each candidate sign vector signs [C, d] (+-1), the mean
    squared quantize-dequantize error per coordinate of the normalised rows of x [N, d]
    (zero rows skipped), float64 [C]. The rotation is orthogonal, so the error is measured in
    the rotated domain (no inverse rotation needed); units: squared unit-vector coordinates.
    """
    x64 = np.asarray(x, dtype=np.float64)
    norms = np.linalg.norm(x64, axis=-1)
    units = np.ascontiguousarray(x64[norms > 0.0] / norms[norms > 0.0, None])
    sg = np.ascontiguousarray(np.atleast_2d(signs), dtype=np.float64)
    scale = 1.0 / math.sqrt(codebook.dim)
    out = np.empty(sg.shape[0])
    if units.shape[0] == 0:
        out[:] = 0.0
        return out
    _candidate_mse(units, sg, codebook.boundaries * scale, codebook.centroids * scale, out)
    return out
