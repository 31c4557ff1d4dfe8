"""Golden references of the baseline macros (docs/cycle_model.md, "Baselines").

The independent side of each baseline's `bit_exact`: the golden model's arithmetic
(float64 operations, each rounded once to its format, as axelsim.numerics.fp defines it) as
vectorised numpy (axelsim.numerics.nparith, whose FP16 rounding is the golden model's compiled
one), never the cycle model's (axelsim.hw). AXELRAM's rows come from the golden write path.
Dot products run over blocks of (job, key, coordinate); softmax sums and value accumulations
run in token order over every job's lanes at once (a job = one query head at one query
position).

`baseline_layer(kind, ...)` returns scores [Hq, Nq, T] (NaN beyond each query's position)
and outputs [Hq, Nq, d] (None without values) for one layer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import numpy as np

from axelsim.config.formats import FP16, NumberFormat
from axelsim.config.macro import BASELINE_KINDS
from axelsim.numerics import nparith as ar
from axelsim.numerics.golden import NumericsSpec, _job_keys, _to_input, check_vectors, exp_constants, write_heads
from axelsim.numerics.kernels import token_sums_fp32



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
    return ar.rnd(_to_input(spec, check_vectors(x, spec.dim, tensor, source, lead_dims=2), tensor, source), FP16)


# ---- KIVI -----------------------------------------------------------------------------------
def kivi_quantize(x16: np.ndarray, axis: int, kivi: KiviSpec, rot: NumberFormat) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Asymmetric min/max codes of FP16 values x16 [..., n, d] in groups of G along `axis`
    (-2: tokens, per channel; -1: channel_group channels, per token). Returns (codes, scale, zero)
    in the grouped shape (codes [..., groups, G, d] or [..., n, groups, G]; scale and zero FP16
    values with the group axis of size 1, so they broadcast against codes without a copy)."""
    top = (1 << kivi.bits) - 1
    G = kivi.group_size if axis == -2 else kivi.channel_group
    shape = x16.shape
    if rot.kind == "fp32":  # FP16 values are exact in float32: every step below runs natively (nparith)
        x16 = np.asarray(x16, dtype=np.float32)
    if axis == -2:
        grouped = x16.reshape(shape[:-2] + (shape[-2] // G, G, shape[-1]))
        red = -2
    else:
        grouped = x16.reshape(shape[:-1] + (shape[-1] // G, G))
        red = -1
    lo = grouped.min(axis=red, keepdims=True)
    hi = grouped.max(axis=red, keepdims=True)
    step = np.asarray(ar.rnd(1.0 / top, rot), dtype=x16.dtype)  # a rot value: float32 lanes stay float32
    scale = ar.rnd(ar.rnd(ar.rnd(hi - lo, rot) * step, rot), FP16)
    inv = np.where(scale > 0.0, ar.rnd(1.0 / np.where(scale > 0.0, scale, 1.0).astype(np.float64), rot), 0.0)
    inv = inv.astype(scale.dtype)  # exact: rot values (float32 for an fp32 rotator)
    t = np.array(ar.rnd(ar.rnd(grouped - lo, rot) * inv, rot))  # an array of its own: rounded in place
    np.rint(t, out=t)
    np.minimum(t, top, out=t)  # clip to 0..top (NaN stays NaN, as np.clip leaves it)
    np.maximum(t, 0, out=t)
    return t.astype(np.uint8), scale, lo


def kivi_dequantize(codes: np.ndarray, scale: np.ndarray, zero: np.ndarray) -> np.ndarray:
    """rnd16(rnd16(code x scale) + zero) (scale and zero broadcast against codes). Scale and zero
    as float32 (FP16 values) run in float32 lanes: a code below 256 times an FP16 scale is exact
    in float32, and the add of two FP16 values rounds correctly through float32 (nparith,
    Figueroa 1995)."""
    if scale.dtype == np.float32 and zero.dtype == np.float32 and int(codes.max(initial=0)) < 256:
        return ar.round_fp16(ar.round_fp16(codes.astype(np.float32) * scale) + zero)
    return ar.rnd(ar.rnd(codes.astype(np.float64) * scale, FP16) + zero, FP16)


def kivi_vectors(x16: np.ndarray, axis: int, kivi: KiviSpec, rot: NumberFormat) -> np.ndarray:
    """Every token's dequantized vector as KIVI reads it once quantized ([Hkv, T, d]); key
    tokens past the last whole window stay their FP16 rows (they are never quantized)."""
    n = x16.shape[-2] if axis == -1 else (x16.shape[-2] // kivi.window) * kivi.window
    out = np.empty(x16.shape, dtype=np.float64)
    out[..., n:, :] = x16[..., n:, :]
    if n:
        part = x16[..., :n, :]
        codes, scale, zero = kivi_quantize(np.ascontiguousarray(part), axis, kivi, rot)
        out[..., :n, :] = kivi_dequantize(codes, scale, zero).reshape(part.shape)
    return out


# ---- read and value paths per job, vectorised -----------------------------------------------
BLOCK_ELEMENTS = 1 << 21
"""Products held at once by the vectorised dot products (16 MiB of float64)."""


@dataclass(frozen=True)
class _Jobs:
    """A layer's jobs (one query head at one query position): KV head and causal key count."""

    kv: np.ndarray
    keys: np.ndarray

    def groups(self):
        """(KV head, indices of its jobs, most keys of them) per KV head."""
        for kv in np.unique(self.kv):
            jobs = np.flatnonzero(self.kv == kv)
            yield int(kv), jobs, int(self.keys[jobs].max())

    def mask(self, out: np.ndarray) -> np.ndarray:
        """NaN beyond each job's keys (out [M, T])."""
        out[np.arange(out.shape[1])[None, :] >= self.keys[:, None]] = np.nan
        return out


def _blocks(n_jobs: int, n_keys: int, d: int):
    step = max(1, BLOCK_ELEMENTS // max(1, n_jobs * d))
    for t0 in range(0, n_keys, step):
        yield t0, min(n_keys, t0 + step)


def _dot_scores(spec: NumericsSpec, qin, quant, window, jobs: _Jobs, split, key_fmt: NumberFormat) -> np.ndarray:
    """scores[m, t] = rnd_score(tree_acc(rnd_acc(q_i k_i))), k from `quant` below the job's split
    and from `window` from it on; qin [M, d], quant/window [Hkv, T, d]."""
    f = spec.formats
    acc, is_wide = f["accumulator"], ar.wide(f["input"], key_fmt)
    fp16_operands = f["input"].kind == "fp16" and key_fmt.kind == "fp16"
    if acc.kind == "fp16" and fp16_operands:  # FP16 values: exact in float32 (nparith.mul16)
        qin = np.asarray(qin, dtype=np.float32)
        same = quant is window
        quant = np.asarray(quant, dtype=np.float32)
        window = quant if same else np.asarray(window, dtype=np.float32)
    out = np.full((qin.shape[0], quant.shape[1]), np.nan)
    for kv, js, n in jobs.groups():
        for t0, t1 in _blocks(js.size, n, spec.dim):
            keys = window[kv, None, t0:t1]
            if quant is not window and t0 < split[js].max():
                below = (np.arange(t0, t1)[None, :] < split[js, None])[..., None]
                keys = quant[kv, None, t0:t1] if t1 <= split[js].min() else np.where(below, quant[kv, None, t0:t1], keys)
            out[js, t0:t1] = ar.rnd(_tree(_products(qin[js, None, :], keys, acc, is_wide, fp16_operands), acc), f["score"])
    return jobs.mask(out)


def _products(a, b, acc: NumberFormat, is_wide: bool, fp16_operands: bool) -> np.ndarray:
    """rnd_acc(a x b); for an FP16 accumulator as float32 lanes (FP16 values, exact), natively
    (nparith.mul16) when both operands are FP16 values."""
    if acc.kind != "fp16":
        return ar.mul(a, b, acc, is_wide)
    if fp16_operands:
        return ar.mul16(a, b)
    return ar.mul(a, b, acc, is_wide).astype(np.float32)


def _tree(x: np.ndarray, acc: NumberFormat) -> np.ndarray:
    """The adder tree in `acc`: float32 lanes of FP16 values go through nparith.tree_sum16."""
    return ar.tree_sum16(x) if acc.kind == "fp16" else ar.tree_sum(x, acc)


def _rotated_scores(spec: NumericsSpec, qin, signs, cents, idx, norms, jobs: _Jobs, n_tok: int) -> np.ndarray:
    """dequant_rotated: r = FWHT(s q) once per job; per key
    rnd_score(tree(rnd_acc(r_i c_idx / d)) x norm)."""
    f = spec.formats
    rot, acc = f["rotator"], f["accumulator"]
    r = ar.fwht(qin * signs, rot, fine_input=True)
    leaf_wide, norm_wide = ar.wide(rot, FP16), ar.wide(acc, rot)
    out = np.full((qin.shape[0], n_tok), np.nan)
    for kv, js, n in jobs.groups():
        for t0, t1 in _blocks(js.size, n, spec.dim):
            leaf = cents[idx[kv, t0:t1]] / spec.dim  # exact: d is a power of two
            s = _tree(_products(r[js, None, :], leaf[None], acc, leaf_wide, False), acc)
            out[js, t0:t1] = ar.mul(s, norms[kv, None, t0:t1], f["score"], norm_wide)
    return jobs.mask(out)


def _inverse_vectors(spec: NumericsSpec, rows, signs: np.ndarray, cents: np.ndarray) -> np.ndarray:
    """dequant_inverse_rotate's vectors: s * FWHT(rnd_rot(c_idx x norm)) / d, [Hkv, T, d]."""
    idx, norms = rows
    rot = spec.formats["rotator"]
    scaled = cents[idx] * norms[..., None]
    # an fp32 rotator's fwht takes float32: one conversion is rnd_fp32 (rnd's float64 round trip skipped)
    scaled = scaled.astype(np.float32) if rot.kind == "fp32" else ar.rnd(scaled, rot)
    return (signs / spec.dim) * ar.fwht(scaled, rot)  # s x / d in one exact product (d: a power of two)


def _softmax_weights(spec: NumericsSpec, scores: np.ndarray, jobs: _Jobs) -> tuple[np.ndarray, np.ndarray]:
    """e [M, T] (0 beyond each job's keys) and the running sums E [M]: z_t = rnd_S(score_t
    sigma), e_t = exp_S(rnd_S(z_t - max z)), E = rnd_S(E + e_t) in token order."""
    f = spec.formats
    sm = f["softmax"]
    log2e, coeffs = exp_constants(sm)
    sigma = float(ar.rnd(1.0 / math.sqrt(spec.dim), sm))
    valid = np.arange(scores.shape[1])[None, :] < jobs.keys[:, None]
    z = np.where(valid, ar.mul(scores, sigma, sm, ar.wide(f["score"], sm)), np.nan)
    top = np.fmax.reduce(z, axis=1, initial=-np.inf)  # NaN never wins, as in the datapath's compare
    e = np.where(valid, ar.exp_unit(ar.rnd(z - top[:, None], sm), sm, log2e, np.asarray(coeffs)), 0.0)
    return e, running_sum(e, int(jobs.keys.max(initial=0)), sm)


NATIVE_LANES = {"fp16": np.float16, "fp32": np.float32}
"""numpy dtypes whose + rounds exactly as rnd_F(a + b) of two F values (numpy's float16 adds in
float32, then rounds: innocuous, 24 >= 2 x 11 + 2 bits)."""


def running_sum(e: np.ndarray, n_tokens: int, fmt: NumberFormat) -> np.ndarray:
    """E = rnd_F(E + e_t) over tokens t < n_tokens in token order, per row of e [M, T] (F values;
    adding a 0 beyond a row's keys leaves E as it is), float64 [M]. FP16 and FP32 add in their
    numpy dtype (one add per token), other formats through `nparith.add`."""
    lane = NATIVE_LANES.get(fmt.kind)
    if lane is None:
        e_l = np.asfortranarray(e, dtype=np.float64)  # a token's column contiguous
        total = np.zeros(e.shape[0])
        for t in range(n_tokens):
            total = ar.add(total, e_l[:, t], fmt)
        return total
    e_l = np.asfortranarray(e, dtype=lane)  # exact: e holds F values
    total = np.zeros(e.shape[0], dtype=lane)
    with ar.quiet():
        for t in range(n_tokens):
            np.add(total, e_l[:, t], out=total)
    return total.astype(np.float64)


def _lane_type(spec: NumericsSpec, *arrays: np.ndarray):
    """float32 when the value format is fp32 and every operand is exactly a float32 (native
    float32 arithmetic then rounds as rnd_fp32 does), else float64."""
    if spec.formats["value"].kind != "fp32" or spec.formats["softmax"].kind not in ("fp16", "fp32"):
        return np.float64
    with np.errstate(over="ignore"):
        exact = all(np.array_equal(a.astype(np.float32), a) for a in arrays)
    return np.float32 if exact else np.float64


def _accumulate(spec: NumericsSpec, e: np.ndarray, jobs: _Jobs, weight, row, is_wide: bool) -> np.ndarray:
    """acc_i = rnd_V(acc_i + rnd_V(w_t x_t,i)) in token order per job, where w_t = weight(active,
    t) [k] and x_t = row(active, t) [k, d] for the k jobs with more than t keys; jobs are
    visited longest first, so those are a prefix. The straightforward route, one token at a time
    (any lane type); `_accumulate_native` is the float32 lanes' fast one."""
    val = spec.formats["value"]
    order = np.argsort(-jobs.keys, kind="stable")
    keys = jobs.keys[order]
    acc = None
    for t in range(int(keys.max(initial=0))):
        k = int(np.searchsorted(-keys, -t, side="left"))  # jobs with keys > t
        act = order[:k]
        p = ar.mul(weight(act, t)[:, None], row(act, t), val, is_wide)
        acc = np.zeros((order.size, spec.dim), dtype=p.dtype) if acc is None else acc
        acc[:k] = ar.add(acc[:k], p, val)
    out = np.zeros((order.size, spec.dim)) if acc is None else acc.astype(np.float64)
    result = np.empty_like(out)
    result[order] = out
    return result


def _accumulate_native(w: np.ndarray, jobs: _Jobs, quant: np.ndarray, window: Optional[np.ndarray] = None,
                       split: Optional[np.ndarray] = None) -> np.ndarray:
    """`_accumulate` for float32 lanes (value format fp32, every operand a float32 value, products
    not wide: see `_lane_type`), where native float32 x and + round as rnd_fp32 does: the golden
    model's compiled token sums (numerics.kernels.token_sums_fp32), each job's sum read at its own
    last key (never carried past it: adding a later 0.0 would turn a -0.0 to +0.0). w [M, T]
    weights; the vectors of job j at token t are quant[kv_j, t] below split[j] and window[kv_j, t]
    from it on (quant alone without a window), [Hkv, T, d], all exact in float32. Returns acc
    [M, d] float64."""
    quant = np.ascontiguousarray(quant, dtype=np.float32)
    window = quant if window is None else np.ascontiguousarray(window, dtype=np.float32)
    split = np.zeros(jobs.keys.size, dtype=np.int64) if split is None else np.asarray(split, dtype=np.int64)
    out = np.empty((jobs.keys.size, quant.shape[2]), dtype=np.float32)
    token_sums_fp32(np.ascontiguousarray(w, dtype=np.float32), quant, window, jobs.kv.astype(np.int64),
                    jobs.keys.astype(np.int64), split, out)
    return out.astype(np.float64)


def _values(spec: NumericsSpec, e, total, quant, window, jobs: _Jobs, split, vec_fmt: NumberFormat) -> np.ndarray:
    """out = rnd_V(acc x rnd_V(1/E)), acc_i = sum_t rnd_V(e_t v_t,i) accumulated in token order,
    v from `quant` below the job's split and from `window` from it on."""
    f = spec.formats
    val = f["value"]
    lane = _lane_type(spec, e, quant, window)
    is_wide = ar.wide(f["softmax"], vec_fmt)
    if lane == np.float32 and not is_wide:
        acc = _accumulate_native(e, jobs, quant, None if quant is window else window, split)
    else:
        qt = np.ascontiguousarray(quant.transpose(1, 0, 2), dtype=lane)  # [T, Hkv, d]
        wt = qt if quant is window else np.ascontiguousarray(window.transpose(1, 0, 2), dtype=lane)
        e_l = e.astype(lane)
        lo, hi = int(split.min(initial=0)), int(split.max(initial=0))

        def row(act, t):
            kv = jobs.kv[act]
            if wt is qt or t < lo:
                return qt[t][kv]
            if t >= hi:
                return wt[t][kv]
            return np.where((t < split[act])[:, None], qt[t][kv], wt[t][kv])

        acc = _accumulate(spec, e, jobs, lambda act, t: e_l[act, t], row, is_wide)
    gain = ar.rnd(1.0 / total, val)
    return ar.mul(acc, gain[:, None], val, ar.wide(val, val))


def _rotated_values(spec: NumericsSpec, e, total, idx, norms, cents, signs, jobs: _Jobs) -> np.ndarray:
    """dequant_rotated values: acc_i = sum_t rnd_V(rnd_V(e_t norm_t) c_idx) in the rotated domain,
    then out = rnd_V(s FWHT(acc) x rnd_V(1 / rnd_V(E d)))."""
    f = spec.formats
    val = f["value"]
    w = ar.mul(e, norms[jobs.kv], val, ar.wide(f["softmax"], f["rotator"]))
    lane = _lane_type(spec, w, cents)
    w_l, c_l = w.astype(lane), cents.astype(lane)
    if lane == np.float32 and not ar.wide(val, FP16):
        acc = _accumulate_native(w_l, jobs, c_l[idx])
    else:
        ct = np.ascontiguousarray(c_l[idx].transpose(1, 0, 2))  # [T, Hkv, d]
        acc = _accumulate(spec, e, jobs, lambda act, t: w_l[act, t], lambda act, t: ct[t][jobs.kv[act]],
                          ar.wide(val, FP16))
    acc = ar.fwht(acc, val)
    gain = ar.rnd(1.0 / ar.rnd(total * spec.dim, val), val)
    return ar.mul(signs * acc, gain[:, None], val, ar.wide(val, val))


# ---- one layer -------------------------------------------------------------------------------
def baseline_layer(kind: str, spec: NumericsSpec, kivi: KiviSpec, k: np.ndarray, v: Optional[np.ndarray],
                   q: np.ndarray, q_positions: np.ndarray, layer: int, source: str = "trace") -> BaselineLayer:
    """Baseline `kind` on one layer: k, v float [Hkv, T, d], q [Hq, Nq, d]; causal jobs."""
    if kind not in BASELINE_KINDS:
        raise ValueError(f"unknown baseline kind {kind!r}; expected one of {BASELINE_KINDS}")
    with ar.quiet():  # roundings to infinity are results, not warnings
        return _baseline_layer(kind, spec, kivi, k, v, q, q_positions, layer, source)


def _baseline_layer(kind, spec, kivi, k, v, q, q_positions, layer, source) -> BaselineLayer:
    n_kv, n_tok = k.shape[0], k.shape[1]
    qf = check_vectors(q, spec.dim, f"layers.{layer}.q", source, lead_dims=2)
    n_h, n_q = qf.shape[0], qf.shape[1]
    keys = _job_keys(q_positions, n_q, n_tok, True, source)
    jobs = _Jobs(np.repeat(np.arange(n_h) // (n_h // n_kv), n_q).astype(np.int64), np.tile(keys, n_h).astype(np.int64))
    qin = _to_input(spec, qf, f"layers.{layer}.q", source).reshape(n_h * n_q, spec.dim)
    rot = spec.formats["rotator"]
    signs = spec.signs.vector(layer).astype(np.float64)
    value_signs = spec.rom_for("v").vector(layer).astype(np.float64)
    cents = np.asarray(spec.codebook.rom_centroids, dtype=np.float64)

    def rows(x, tensor, kv):
        if kind in ("fp16", "kivi"):
            return fp16_rows(spec, x, tensor, source)
        w = write_heads(spec, x, layer, tensor, source, kv)
        return w.indices, w.norms.astype(np.float64)

    def sources(r, axis, split_of, vec_signs):
        """(quantized vectors, window vectors, per-job split, their format) of a kind's rows."""
        if kind == "fp16":
            return r, r, np.zeros_like(jobs.keys), FP16
        if kind == "kivi":
            return kivi_vectors(r, axis, kivi, rot), r, split_of(jobs.keys), FP16
        x = _inverse_vectors(spec, r, vec_signs, cents)
        return x, x, np.zeros_like(jobs.keys), rot

    kr = rows(k, f"layers.{layer}.k", "k")
    if kind == "dequant_rotated":
        scores = _rotated_scores(spec, qin, signs, cents, kr[0], kr[1], jobs, n_tok)
    else:
        quant, window, split, fmt = sources(kr, -2, lambda n: (n // kivi.window) * kivi.window, signs)
        scores = _dot_scores(spec, qin, quant, window, jobs, split, fmt)
    out_scores = scores.reshape(n_h, n_q, n_tok)
    if v is None:
        return BaselineLayer(out_scores, None)
    vr = rows(v, f"layers.{layer}.v", "v")
    e, total = _softmax_weights(spec, scores, jobs)
    if kind == "dequant_rotated":
        out = _rotated_values(spec, e, total, vr[0], vr[1], cents, value_signs, jobs)
    else:
        quant, window, split, fmt = sources(vr, -1, lambda n: np.maximum(n - kivi.window, 0), value_signs)
        out = _values(spec, e, total, quant, window, jobs, split, fmt)
    return BaselineLayer(out_scores, out.reshape(n_h, n_q, spec.dim))
