"""The baselines' datapaths as compiled kernels (numba), built of the cycle model's own
arithmetic (axelsim.hw.kernels' `rnd`, `mul`, pairwise tree and FWHT, through
axelsim.hw.fast_round: the same results bit for bit, branch-free for FP16/FP32), never of
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
from axelsim.hw.fast_round import fwht_cols, mul_fast, rnd_fast, round_vec, scale_vec, tree_cols
from axelsim.hw.kernels import mul


# ---- read path: one score per (head, key) ----------------------------------------------------
KEY_BLOCK = 16
"""Keys (or rows) one thread handles together, transposed so that each element of a key is a
contiguous row of KEY_BLOCK lanes: the products, every adder-tree stage, the FWHT butterflies
and their roundings then run as vector loops (the arithmetic of each key is unchanged)."""


@numba.njit(cache=True)
def _leaf_products(qa, kt, buf, d, code, wide):
    """buf (i, b) = rnd(qa_i kt(i, b)) for d rows of KEY_BLOCK lanes (kernels.mul per element)."""
    for i in range(d):
        row = i * KEY_BLOCK
        if wide:
            for b in range(KEY_BLOCK):
                buf[row + b] = mul(qa[i], kt[row + b], code, True)
        else:
            for b in range(KEY_BLOCK):
                buf[row + b] = qa[i] * kt[row + b]
    if not wide:
        round_vec(buf, d * KEY_BLOCK, code)


@numba.njit(cache=True)
def _block_of(rows, t0, nb, table=None):
    """Rows t0..t0+nb-1 of rows [n, d] transposed: element i of row t0 + b at i * KEY_BLOCK + b
    (lanes past nb 0); with a table, the rows are indices and the block holds table[index]."""
    d = rows.shape[1]
    kt = np.zeros(d * KEY_BLOCK)
    for b in range(nb):
        for i in range(d):
            kt[i * KEY_BLOCK + b] = rows[t0 + b, i] if table is None else table[rows[t0 + b, i]]
    return kt


def _dot_scores(q, keys, scores, acc, score, wide):
    """FP16 / inverse-rotated keys: p_i = rnd_acc(q_i k_i), pairwise tree, rnd_score.

    q [h, d] (input format), keys [n, d], scores [h, n]; `wide` when q_i k_i may exceed 53 bits."""
    n, d = keys.shape
    for blk in prange(-(-n // KEY_BLOCK)):
        t0 = blk * KEY_BLOCK
        nb = min(n, t0 + KEY_BLOCK) - t0
        kt = _block_of(keys, t0, nb)
        buf = np.empty(d * KEY_BLOCK)
        tmp = np.empty(d * KEY_BLOCK)
        for a in range(q.shape[0]):
            _leaf_products(q[a], kt, buf, d, acc, wide)
            sums = tree_cols(buf, tmp, d, KEY_BLOCK, acc)
            for b in range(nb):
                scores[a, t0 + b] = rnd_fast(sums[b], score)


def _rotated_scores(r, idx, norms, cents, scores, acc, score, wide_leaf, wide_norm):
    """dequant_rotated: p_i = rnd_acc(r_i c[idx_i]) with c the scaled centroid ROM, pairwise
    tree, score = rnd_score(sum x norm). r [h, d] rotated queries, idx [n, d], norms [n]."""
    n, d = idx.shape
    for blk in prange(-(-n // KEY_BLOCK)):
        t0 = blk * KEY_BLOCK
        nb = min(n, t0 + KEY_BLOCK) - t0
        kt = _block_of(idx, t0, nb, cents)
        buf = np.empty(d * KEY_BLOCK)
        tmp = np.empty(d * KEY_BLOCK)
        for a in range(r.shape[0]):
            _leaf_products(r[a], kt, buf, d, acc, wide_leaf)
            sums = tree_cols(buf, tmp, d, KEY_BLOCK, acc)
            for b in range(nb):
                scores[a, t0 + b] = mul_fast(sums[b], norms[t0 + b], score, wide_norm)


def _inverse_rotate(idx, norms, cents, signs, out, rot, log2d):
    """dequant_inverse_rotate: c_i = rnd_rot(gamma[idx_i] norm) (FP16 x FP16, exact in float64),
    u = FWHT(c) in the rotator format, out = s * u * 2^-log2 d (exact). idx [n, d] -> out [n, d]."""
    n, d = idx.shape
    scale = 2.0 ** -log2d
    for blk in prange(-(-n // KEY_BLOCK)):
        t0 = blk * KEY_BLOCK
        nb = min(n, t0 + KEY_BLOCK) - t0
        u = np.zeros((d, KEY_BLOCK))  # row t0 + b in lane b
        for b in range(nb):
            for i in range(d):
                u[i, b] = cents[idx[t0 + b, i]] * norms[t0 + b]
        round_vec(u.reshape(d * KEY_BLOCK), d * KEY_BLOCK, rot)
        fwht_cols(u, rot)
        for b in range(nb):
            for i in range(d):
                out[t0 + b, i] = u[i, b] * signs[i] * scale


def _kivi_dequantize(codes, scale, zero, window16, n_quant, group, group_axis, f16, out):
    """KIVI rows as the dequantizer delivers them: token t < n_quant from its codes,
    x = rnd16(rnd16(code x scale) + zero) with the FP16 scale and zero of its group (keys,
    group_axis 0: (t // group, channel), scale/zero [T / group, d]; values, group_axis 1:
    (t, channel // group), scale/zero [T, d / group]); later tokens (the recent window) are
    their FP16 rows. codes [T, d] uint8, window16 [T, d] float32; out [n, d]."""
    n, d = out.shape
    for t in prange(n):
        if t < n_quant:
            row = out[t]
            if group_axis == 0:
                for i in range(d):
                    row[i] = codes[t, i] * scale[t // group, i]
                round_vec(row, d, f16)
                for i in range(d):
                    row[i] += zero[t // group, i]
            else:
                for i in range(d):
                    row[i] = codes[t, i] * scale[t, i // group]
                round_vec(row, d, f16)
                for i in range(d):
                    row[i] += zero[t, i // group]
            round_vec(row, d, f16)
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
            tot = rnd_fast(tot + e[a, t], soft)
        totals[a] = tot


@numba.njit(cache=True)
def scale_weights(e, norms, w, value, wide):
    """dequant_rotated: w_t = rnd_V(e_t norm_t) (e, w [h, n], norms [n])."""
    for a in range(e.shape[0]):
        for t in range(e.shape[1]):
            w[a, t] = mul_fast(e[a, t], norms[t], value, wide)


def _accumulate(w, vals, accs, value, wide):
    """acc_i = rnd_V(acc_i + rnd_V(w_t v_t,i)) for t in order: w [h, n] weights (softmax e_t,
    or dequant_rotated's rnd_V(e_t norm_t) with v the centroids gamma[idx]), vals [n, d], accs
    [h, d] updated in place; `wide` when w x v may exceed 53 bits."""
    h, n = w.shape
    d = vals.shape[1]
    for blk in prange(-(-d // LANE_BLOCK)):
        i0 = blk * LANE_BLOCK
        bw = min(d, i0 + LANE_BLOCK) - i0
        s = np.empty((h, bw))  # lane (a, i0 + j)
        p = np.empty(bw)
        for a in range(h):
            for j in range(bw):
                s[a, j] = accs[a, i0 + j]
        for t in range(n):
            row = vals[t, i0:i0 + bw]
            for a in range(h):
                scale_vec(w[a, t], row, p, bw, value, wide)
                sa = s[a]
                for j in range(bw):
                    sa[j] += p[j]
                round_vec(sa, bw, value)
        for a in range(h):
            for j in range(bw):
                accs[a, i0 + j] = s[a, j]


# ---- KIVI write path: quantizer -------------------------------------------------------------
def _kivi_quantize(x, group_axis, group, levels, rot, f16, codes, scale, zero):
    """Asymmetric min/max quantization of x [n, d] (FP16 values) in groups of `group` along
    axis `group_axis` (0: tokens, per channel: KIVI's keys; 1: channels, per token: values).

    Per group: zero = min (an FP16 value), scale = rnd16(rnd_rot(rnd_rot(max - min) x
    rnd_rot(1/(L-1)))); inv = rnd_rot(1/scale) (0 when scale is 0); per element
    code = clamp(rint(rnd_rot(rnd_rot(x - zero) x inv)), 0, L-1). scale/zero [groups, d] for
    axis 0, [n, groups] for axis 1."""
    n, d = x.shape
    step = rnd_fast(1.0 / (levels - 1), rot)
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
        s = rnd_fast(rnd_fast(rnd_fast(hi - lo, rot) * step, rot), f16)
        inv = rnd_fast(1.0 / s, rot) if s > 0.0 else 0.0
        scale[g, c] = s
        zero[g, c] = lo
        for k in range(group):
            t, i = (g * group + k, c) if group_axis == 0 else (g, c * group + k)
            y = np.rint(rnd_fast(rnd_fast(x[t, i] - lo, rot) * inv, rot))
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
        buf = np.empty(d)
        for i in range(d):
            buf[i] = raw[a, t, i]
        round_vec(buf, d, inp)
        round_vec(buf, d, f16)
        for i in range(d):
            out[a, t, i] = buf[i]


fp16_rows = jit.by_work(_fp16_rows, lambda a: a[0].shape[0] * a[0].shape[1] * a[0].shape[2])
