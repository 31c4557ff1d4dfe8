"""Golden references of the baseline macros (docs/cycle_model.md, "Baselines").

The independent side of each baseline's `bit_exact`: built of the golden model's arithmetic
(axelsim.numerics.fp: `rnd`, `mul_round`, `round_to`; the golden FWHT, adder tree and exp unit
of axelsim.numerics.kernels; AXELRAM's rows from the golden write path), never of the cycle
model's (axelsim.hw). KIVI's quantizer is vectorised numpy over whole layers; the per-job
dot products and the value accumulations are numba kernels over jobs (a job = one query
head at one query position).

`baseline_layer(kind, ...)` returns scores [Hq, Nq, T] (NaN beyond each query's position)
and outputs [Hq, Nq, d] (None without values) for one layer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import numba as nb
import numpy as np

from axelsim.config.formats import FP16, NumberFormat
from axelsim.numerics.fp import format_code, mul_round, rnd, round_to
from axelsim.numerics.golden import NumericsSpec, _job_keys, _to_input, check_vectors, exp_constants, write_heads
from axelsim.numerics.kernels import exp_unit, fwht_rounded, tree_sum_rounded

KINDS = ("fp16", "dequant_rotated", "kivi", "dequant_inverse_rotate")


@dataclass(frozen=True)
class KiviSpec:
    """KIVI's options: bits, group size G (tokens per key group, channels per value group),
    FP16 window W (recent tokens kept unquantized)."""

    bits: int = 2
    group_size: int = 32
    window: int = 128
    channel_group: int = 32
    """Channels per value group (min(group_size, d))."""


@dataclass(frozen=True)
class BaselineLayer:
    scores: np.ndarray
    outputs: Optional[np.ndarray]


def fp16_rows(spec: NumericsSpec, x: np.ndarray, tensor: str, source: str) -> np.ndarray:
    """FP16 storage of vectors: rnd_fp16(rnd_input(x))."""
    return round_to(_to_input(spec, check_vectors(x, spec.dim, tensor, source, lead_dims=2), tensor, source), FP16)


# ---- KIVI -----------------------------------------------------------------------------------
def kivi_quantize(x16: np.ndarray, axis: int, kivi: KiviSpec, rot: NumberFormat) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Asymmetric min/max codes of FP16 values x16 [..., n, d] in groups of G along `axis`
    (-2: tokens, per channel; -1: channel_group channels, per token). Returns (codes, scale, zero) with
    scale and zero broadcast back to x16's shape (FP16 values)."""
    top = (1 << kivi.bits) - 1
    G = kivi.group_size if axis == -2 else kivi.channel_group
    shape = x16.shape
    if axis == -2:
        grouped = x16.reshape(shape[:-2] + (shape[-2] // G, G, shape[-1]))
        red = -2
    else:
        grouped = x16.reshape(shape[:-1] + (shape[-1] // G, G))
        red = -1
    lo = grouped.min(axis=red, keepdims=True)
    hi = grouped.max(axis=red, keepdims=True)
    step = round_to(1.0 / top, rot)
    scale = round_to(round_to(round_to(hi - lo, rot) * step, rot), FP16)
    with np.errstate(divide="ignore"):
        inv = np.where(scale > 0.0, round_to(1.0 / np.where(scale > 0.0, scale, 1.0), rot), 0.0)
    t = round_to(round_to(grouped - lo, rot) * inv, rot)
    codes = np.clip(np.rint(t), 0, top)
    full = lambda a: np.broadcast_to(a, grouped.shape).reshape(shape)  # noqa: E731
    return codes.reshape(shape).astype(np.uint8), full(scale), full(lo)


def kivi_dequantize(codes: np.ndarray, scale: np.ndarray, zero: np.ndarray) -> np.ndarray:
    """rnd16(rnd16(code x scale) + zero)."""
    return round_to(round_to(codes.astype(np.float64) * scale, FP16) + zero, FP16)


def kivi_vectors(x16: np.ndarray, axis: int, kivi: KiviSpec, rot: NumberFormat) -> np.ndarray:
    """Every token's dequantized vector as KIVI reads it once quantized ([Hkv, T, d]); key
    tokens past the last whole window stay their FP16 rows (they are never quantized)."""
    out = np.array(x16, dtype=np.float64)
    n = x16.shape[-2] if axis == -1 else (x16.shape[-2] // kivi.window) * kivi.window
    if n:
        out[..., :n, :] = kivi_dequantize(*kivi_quantize(np.ascontiguousarray(x16[..., :n, :]), axis, kivi, rot))
    return out


# ---- read and value paths per job -----------------------------------------------------------
@nb.njit(cache=True, parallel=True)
def _dot_jobs(qin, quant, window, job_kv, job_keys, job_split, acc, score, out):
    """scores[m, t] = rnd_score(tree_acc(mul_round(q_i, k_i))) with k from `quant` below the job's
    split and from `window` from it on; qin [M, d], quant/window [Hkv, T, d]."""
    n_jobs, d = qin.shape
    for m in nb.prange(n_jobs):
        kv = job_kv[m]
        buf = np.empty(d)
        for t in range(job_keys[m]):
            src = quant if t < job_split[m] else window
            for i in range(d):
                buf[i] = mul_round(qin[m, i], src[kv, t, i], acc)
            s, _ = tree_sum_rounded(buf, acc)
            out[m, t] = rnd(s, score)


@nb.njit(cache=True, parallel=True)
def _rotated_jobs(qin, signs, rom_centroids, inv_dim, idx, norms, job_kv, job_keys, rot, acc, score, out):
    """dequant_rotated: r = FWHT(s q) once per job; per key rnd_score(tree(rnd_acc(r_i c_idx / d)) x norm)."""
    n_jobs, d = qin.shape
    for m in nb.prange(n_jobs):
        kv = job_kv[m]
        r = np.empty(d)
        for i in range(d):
            r[i] = qin[m, i] * signs[i]
        fwht_rounded(r, rot)
        buf = np.empty(d)
        for t in range(job_keys[m]):
            for i in range(d):
                buf[i] = mul_round(r[i], rom_centroids[idx[kv, t, i]] * inv_dim, acc)
            s, _ = tree_sum_rounded(buf, acc)
            out[m, t] = mul_round(s, norms[kv, t], score)


@nb.njit(cache=True, parallel=True)
def _inverse_rotated(idx, norms, rom_centroids, signs, inv_dim, rot, out):
    """dequant_inverse_rotate's vectors: s * FWHT(rnd_rot(c_idx x norm)) / d, idx [N, d]."""
    n, d = idx.shape
    for v in nb.prange(n):
        u = np.empty(d)
        for i in range(d):
            u[i] = rnd(rom_centroids[idx[v, i]] * norms[v], rot)
        fwht_rounded(u, rot)
        for i in range(d):
            out[v, i] = signs[i] * u[i] * inv_dim


@nb.njit(cache=True)
def _softmax_weights(scores_row, n_keys, sm, sigma, log2e, coeffs, e):
    """e_t = exp_S(rnd_S(z_t - max z)), z_t = rnd_S(score_t sigma); returns the running sum E."""
    top = -math.inf
    for t in range(n_keys):
        e[t] = mul_round(scores_row[t], sigma, sm)
        if e[t] > top:
            top = e[t]
    total = 0.0
    for t in range(n_keys):
        e[t] = exp_unit(rnd(e[t] - top, sm), sm, log2e, coeffs)
        total = rnd(total + e[t], sm)
    return total


@nb.njit(cache=True, parallel=True)
def _value_jobs(scores, quant, window, job_kv, job_keys, job_split, sm, val, sigma, log2e, coeffs, out):
    """out = rnd_V(acc x rnd_V(1/E)), acc_i = sum_t rnd_V(e_t v_t,i) accumulated in token order."""
    n_jobs, d = out.shape
    for m in nb.prange(n_jobs):
        kv = job_kv[m]
        n_keys = job_keys[m]
        e = np.empty(n_keys)
        total = _softmax_weights(scores[m], n_keys, sm, sigma, log2e, coeffs, e)
        acc = np.zeros(d)
        for t in range(n_keys):
            src = quant if t < job_split[m] else window
            for i in range(d):
                acc[i] = rnd(acc[i] + mul_round(e[t], src[kv, t, i], val), val)
        gain = rnd(1.0 / total, val)
        for i in range(d):
            out[m, i] = mul_round(acc[i], gain, val)


@nb.njit(cache=True, parallel=True)
def _rotated_value_jobs(scores, idx, norms, rom_centroids, signs, job_kv, job_keys, sm, val, sigma, log2e, coeffs, out):
    """dequant_rotated values: acc_i = sum_t rnd_V(rnd_V(e_t norm_t) c_idx) in the rotated domain,
    then out = rnd_V(s FWHT(acc) x rnd_V(1 / rnd_V(E d)))."""
    n_jobs, d = out.shape
    for m in nb.prange(n_jobs):
        kv = job_kv[m]
        n_keys = job_keys[m]
        e = np.empty(n_keys)
        total = _softmax_weights(scores[m], n_keys, sm, sigma, log2e, coeffs, e)
        acc = np.zeros(d)
        for t in range(n_keys):
            w = mul_round(e[t], norms[kv, t], val)
            for i in range(d):
                acc[i] = rnd(acc[i] + mul_round(w, rom_centroids[idx[kv, t, i]], val), val)
        fwht_rounded(acc, val)
        gain = rnd(1.0 / rnd(total * d, val), val)
        for i in range(d):
            out[m, i] = mul_round(signs[i] * acc[i], gain, val)


# ---- one layer -------------------------------------------------------------------------------
def baseline_layer(kind: str, spec: NumericsSpec, kivi: KiviSpec, k: np.ndarray, v: Optional[np.ndarray],
                   q: np.ndarray, q_positions: np.ndarray, layer: int, source: str = "trace") -> BaselineLayer:
    """Baseline `kind` on one layer: k, v float [Hkv, T, d], q [Hq, Nq, d]; causal jobs."""
    if kind not in KINDS:
        raise ValueError(f"unknown baseline kind {kind!r}; expected one of {KINDS}")
    n_kv, n_tok = k.shape[0], k.shape[1]
    qf = check_vectors(q, spec.dim, f"layers.{layer}.q", source, lead_dims=2)
    n_h, n_q = qf.shape[0], qf.shape[1]
    keys = _job_keys(q_positions, n_q, n_tok, True, source)
    job_kv = np.repeat(np.arange(n_h) // (n_h // n_kv), n_q).astype(np.int64)
    job_keys = np.tile(keys, n_h).astype(np.int64)
    qin = _to_input(spec, qf, f"layers.{layer}.q", source).reshape(n_h * n_q, spec.dim)
    acc, sc = spec.code("accumulator"), spec.code("score")
    scores = np.full((n_h * n_q, n_tok), np.nan)
    rot = spec.formats["rotator"]
    signs = spec.signs.vector(layer).astype(np.float64)
    value_signs = spec.rom_for("v").vector(layer).astype(np.float64)
    cents = np.asarray(spec.codebook.rom_centroids, dtype=np.float64)

    def rows(x, tensor, kv):
        if kind in ("fp16", "kivi"):
            return fp16_rows(spec, x, tensor, source)
        w = write_heads(spec, x, layer, tensor, source, kv)
        return w.indices, w.norms.astype(np.float64)

    kr = rows(k, f"layers.{layer}.k", "k")
    split = np.zeros(job_keys.size, dtype=np.int64)
    if kind == "dequant_rotated":
        idx, norms = kr
        _rotated_jobs(qin, signs, cents, 1.0 / spec.dim, idx, norms, job_kv, job_keys, format_code(rot), acc, sc, scores)
    else:
        if kind == "fp16":
            quant = window = kr
        elif kind == "kivi":
            window = kr
            quant = kivi_vectors(kr, -2, kivi, rot)
            split = (job_keys // kivi.window) * kivi.window
        else:
            quant = window = _inverse_vectors(spec, kr, signs, cents)
        _dot_jobs(qin, quant, window, job_kv, job_keys, split, acc, sc, scores)
    out_scores = scores.reshape(n_h, n_q, n_tok)
    if v is None:
        return BaselineLayer(out_scores, None)
    vr = rows(v, f"layers.{layer}.v", "v")
    sm, val = spec.formats["softmax"], spec.formats["value"]
    log2e, coeffs = exp_constants(sm)
    sigma = float(round_to(1.0 / math.sqrt(spec.dim), sm))
    out = np.empty((n_h * n_q, spec.dim))
    args = (format_code(sm), format_code(val), sigma, log2e, np.asarray(coeffs, dtype=np.float64))
    if kind == "dequant_rotated":
        idx, norms = vr
        _rotated_value_jobs(scores, idx, norms, cents, value_signs, job_kv, job_keys, *args, out)
    else:
        if kind == "fp16":
            quant = window = vr
            split = np.zeros(job_keys.size, dtype=np.int64)
        elif kind == "kivi":
            window = vr
            quant = kivi_vectors(vr, -1, kivi, rot)
            split = np.maximum(job_keys - kivi.window, 0)
        else:
            quant = window = _inverse_vectors(spec, vr, value_signs, cents)
            split = np.zeros(job_keys.size, dtype=np.int64)
        _value_jobs(scores, quant, window, job_kv, job_keys, split, *args, out)
    return BaselineLayer(out_scores, out.reshape(n_h, n_q, spec.dim))


def _inverse_vectors(spec: NumericsSpec, rows, signs: np.ndarray, cents: np.ndarray) -> np.ndarray:
    idx, norms = rows
    flat = np.empty((idx.shape[0] * idx.shape[1], spec.dim))
    _inverse_rotated(idx.reshape(-1, spec.dim), norms.reshape(-1), cents, signs, 1.0 / spec.dim,
                     spec.code("rotator"), flat)
    return flat.reshape(idx.shape[0], idx.shape[1], spec.dim)
