"""The baselines' datapaths as compiled kernels (numba), built of the cycle model's own
arithmetic (axelsim.hw.kernels: `rnd`, `mul`, the pairwise tree and the FWHT), never of
axelsim.numerics: the golden references (axelsim.numerics.baselines) are the independent side.

Every kernel works on a whole stream (keys of one job, values of one job, vectors written):
keys in parallel where the keys are independent, tokens in order where an accumulation runs
over them. Arrays are float64 holding exact values of their formats; `code`s are
`kernels.fmt_code` tuples. Units: none (values).
"""

from __future__ import annotations

import numba
import numpy as np
from numba import prange

from axelsim import jit
from axelsim.hw.kernels import _fwht, _tree, mul, rnd


# ---- read path: one score per (head, key) ----------------------------------------------------
def _dot_scores(q, keys, scores, acc, score, wide):
    """FP16 / inverse-rotated keys: p_i = rnd_acc(q_i k_i), pairwise tree, rnd_score.

    q [h, d] (input format), keys [n, d], scores [h, n]; `wide` when q_i k_i may exceed 53 bits."""
    n, d = keys.shape
    for t in prange(n):
        buf = np.empty(d)
        for a in range(q.shape[0]):
            for i in range(d):
                buf[i] = mul(q[a, i], keys[t, i], acc, wide)
            scores[a, t] = rnd(_tree(buf, d, acc), score)


def _rotated_scores(r, idx, norms, cents, scores, acc, score, wide_leaf, wide_norm):
    """dequant_rotated: p_i = rnd_acc(r_i c[idx_i]) with c the scaled centroid ROM, pairwise
    tree, score = rnd_score(sum x norm). r [h, d] rotated queries, idx [n, d], norms [n]."""
    n, d = idx.shape
    for t in prange(n):
        buf = np.empty(d)
        for a in range(r.shape[0]):
            for i in range(d):
                buf[i] = mul(r[a, i], cents[idx[t, i]], acc, wide_leaf)
            scores[a, t] = mul(_tree(buf, d, acc), norms[t], score, wide_norm)


def _inverse_rotate(idx, norms, cents, signs, out, rot, log2d):
    """dequant_inverse_rotate: c_i = rnd_rot(gamma[idx_i] norm) (FP16 x FP16, exact in float64),
    u = FWHT(c) in the rotator format, out = s * u * 2^-log2 d (exact). idx [n, d] -> out [n, d]."""
    n, d = idx.shape
    scale = 2.0 ** -log2d
    for t in prange(n):
        u = np.empty(d)
        for i in range(d):
            u[i] = rnd(cents[idx[t, i]] * norms[t], rot)
        _fwht(u, rot, False)
        for i in range(d):
            out[t, i] = u[i] * signs[i] * scale


def _kivi_dequantize(codes, scale, zero, window16, n_quant, group, group_axis, f16, out):
    """KIVI rows as the dequantizer delivers them: token t < n_quant from its codes,
    x = rnd16(rnd16(code x scale) + zero) with the FP16 scale and zero of its group (keys,
    group_axis 0: (t // group, channel), scale/zero [T / group, d]; values, group_axis 1:
    (t, channel // group), scale/zero [T, d / group]); later tokens (the recent window) are
    their FP16 rows. codes [T, d] uint8, window16 [T, d] float32; out [n, d]."""
    n, d = out.shape
    for t in prange(n):
        if t < n_quant:
            for i in range(d):
                gt, gi = (t // group, i) if group_axis == 0 else (t, i // group)
                out[t, i] = rnd(rnd(codes[t, i] * scale[gt, gi], f16) + zero[gt, gi], f16)
        else:
            for i in range(d):
                out[t, i] = window16[t, i]


# ---- value path: tokens in order, blocks of coordinates in parallel -------------------------
LANE_BLOCK = 64
"""Coordinates one thread accumulates together: a token's row segment is read once for every
head of the job (contiguous in memory), each lane keeps its own token order (32: about 1.5x
slower per element than 64 or 128, measured on this machine)."""


@numba.njit(cache=True)
def sum_weights(e, totals, soft):
    """E = rnd_S(E + e_t) for t in order, per head (e [h, n]; totals [h] updated in place)."""
    for a in range(e.shape[0]):
        tot = totals[a]
        for t in range(e.shape[1]):
            tot = rnd(tot + e[a, t], soft)
        totals[a] = tot


@numba.njit(cache=True)
def scale_weights(e, norms, w, value, wide):
    """dequant_rotated: w_t = rnd_V(e_t norm_t) (e, w [h, n], norms [n])."""
    for a in range(e.shape[0]):
        for t in range(e.shape[1]):
            w[a, t] = mul(e[a, t], norms[t], value, wide)


def _accumulate(w, vals, accs, value, wide):
    """acc_i = rnd_V(acc_i + rnd_V(w_t v_t,i)) for t in order: w [h, n] weights (softmax e_t,
    or dequant_rotated's rnd_V(e_t norm_t) with v the centroids gamma[idx]), vals [n, d], accs
    [h, d] updated in place; `wide` when w x v may exceed 53 bits."""
    h, n = w.shape
    d = vals.shape[1]
    for blk in prange(-(-d // LANE_BLOCK)):
        i0 = blk * LANE_BLOCK
        bw = min(d, i0 + LANE_BLOCK) - i0
        s = np.empty(h * bw)  # lane (a, i0 + j) at a * bw + j
        for a in range(h):
            for j in range(bw):
                s[a * bw + j] = accs[a, i0 + j]
        for t in range(n):
            for a in range(h):
                wt = w[a, t]
                for j in range(bw):
                    s[a * bw + j] = rnd(s[a * bw + j] + mul(wt, vals[t, i0 + j], value, wide), value)
        for a in range(h):
            for j in range(bw):
                accs[a, i0 + j] = s[a * bw + j]


# ---- KIVI write path: quantizer -------------------------------------------------------------
def _kivi_quantize(x, group_axis, group, levels, rot, f16, codes, scale, zero):
    """Asymmetric min/max quantization of x [n, d] (FP16 values) in groups of `group` along
    axis `group_axis` (0: tokens, per channel: KIVI's keys; 1: channels, per token: values).

    Per group: zero = min (an FP16 value), scale = rnd16(rnd_rot(rnd_rot(max - min) x
    rnd_rot(1/(L-1)))); inv = rnd_rot(1/scale) (0 when scale is 0); per element
    code = clamp(rint(rnd_rot(rnd_rot(x - zero) x inv)), 0, L-1). scale/zero [groups, d] for
    axis 0, [n, groups] for axis 1."""
    n, d = x.shape
    step = rnd(1.0 / (levels - 1), rot)
    groups = (n // group) * d if group_axis == 0 else n * (d // group)
    for gi in prange(groups):
        if group_axis == 0:
            g, c = gi // d, gi % d
        else:
            g, c = gi // (d // group), gi % (d // group)
        lo = np.inf
        hi = -np.inf
        for k in range(group):
            v = x[g * group + k, c] if group_axis == 0 else x[g, c * group + k]
            if v < lo:
                lo = v
            if v > hi:
                hi = v
        s = rnd(rnd(rnd(hi - lo, rot) * step, rot), f16)
        inv = rnd(1.0 / s, rot) if s > 0.0 else 0.0
        scale[g, c] = s
        zero[g, c] = lo
        for k in range(group):
            t, i = (g * group + k, c) if group_axis == 0 else (g, c * group + k)
            y = np.rint(rnd(rnd(x[t, i] - lo, rot) * inv, rot))
            if y < 0.0:
                y = 0.0
            elif y > levels - 1:
                y = float(levels - 1)
            codes[t, i] = np.uint8(y)


# work of a call (jit.by_work): element operations, items x d (x heads)
dot_scores = jit.by_work(_dot_scores, lambda a: a[1].shape[0] * a[1].shape[1] * a[0].shape[0])
rotated_scores = jit.by_work(_rotated_scores, lambda a: a[1].shape[0] * a[1].shape[1] * a[0].shape[0])
inverse_rotate = jit.by_work(_inverse_rotate, lambda a: a[0].shape[0] * a[0].shape[1])
kivi_dequantize = jit.by_work(_kivi_dequantize, lambda a: a[8].shape[0] * a[8].shape[1])
accumulate = jit.by_work(_accumulate, lambda a: a[0].shape[0] * a[0].shape[1] * a[1].shape[1])
kivi_quantize = jit.by_work(_kivi_quantize, lambda a: a[0].shape[0] * a[0].shape[1])


def _fp16_rows(raw, out, inp, f16):
    """FP16 storage of written vectors: out = rnd16(rnd_input(raw)); raw [h, n, d] (float32 or
    float64 values, rounded as float64), out float32 [h, n, d] (every FP16 value is a float32);
    either may be a strided view."""
    h, n, d = raw.shape
    for j in prange(h * n):
        a = j // n
        t = j - a * n
        for i in range(d):
            out[a, t, i] = rnd(rnd(np.float64(raw[a, t, i]), inp), f16)


fp16_rows = jit.by_work(_fp16_rows, lambda a: a[0].shape[0] * a[0].shape[1] * a[0].shape[2])
