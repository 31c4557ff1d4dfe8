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


@numba.njit(cache=True, nogil=True)
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


@numba.njit(cache=True, nogil=True)
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


@numba.njit(cache=True, nogil=True)
def sum_weights(e, totals, soft):
    """E = rnd_S(E + e_t) for t in order, per head (e [h, n]; totals [h] updated in place)."""
    for a in range(e.shape[0]):
        tot = totals[a]
        for t in range(e.shape[1]):
            tot = rnd_fast(tot + e[a, t], soft)
        totals[a] = tot


@numba.njit(cache=True, nogil=True)
def scale_weights(e, norms, w, value, wide):
    """dequant_rotated: w_t = rnd_V(e_t norm_t) (e, w [h, n], norms [n])."""
    for a in range(e.shape[0]):
        for t in range(e.shape[1]):
            w[a, t] = mul_fast(e[a, t], norms[t], value, wide)


@numba.njit(cache=True, nogil=True)
def _lanes_in(accs, i0, s):
    """s[a, j] = accs[a, i0 + j]: a block of accumulator lanes into a thread's buffer. (Explicit
    loops: numba compiles a slice copy here in seconds, these in a fraction of one.)"""
    for a in range(s.shape[0]):
        for j in range(s.shape[1]):
            s[a, j] = accs[a, i0 + j]


@numba.njit(cache=True, nogil=True)
def _lanes_out(s, accs, i0):
    """accs[a, i0 + j] = s[a, j]: a thread's buffer back into its block of accumulator lanes."""
    for a in range(s.shape[0]):
        for j in range(s.shape[1]):
            accs[a, i0 + j] = s[a, j]


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
        _lanes_in(accs, i0, s)
        for t in range(n):
            row = vals[t, i0:i0 + bw]
            for a in range(h):
                scale_vec(w[a, t], row, p, bw, value, wide)
                sa = s[a]
                for j in range(bw):
                    sa[j] += p[j]
                round_vec(sa, bw, value)
        _lanes_out(s, accs, i0)


def _accumulate_fp32(w, vals, accs):
    """`_accumulate` for an fp32 value format whose weights and vectors are FP16 or FP32 values,
    in float32 lanes: a float32 product of two float32 values is the exact product (at most 48
    bits) rounded once to FP32, and a float32 add of two FP32 values is the exact sum rounded
    once (IEEE 754 round-half-even, gradual underflow; numba emits no fused multiply-add without
    fastmath), so every lane holds what `_accumulate`'s rnd_fp32 steps give, bit for bit, at
    twice the vector width. w [h, n], vals [n, d], accs [h, d] (updated in place): float32."""
    h, n = w.shape
    d = vals.shape[1]
    for blk in prange(-(-d // LANE_BLOCK)):
        i0 = blk * LANE_BLOCK
        bw = min(d, i0 + LANE_BLOCK) - i0
        s = np.empty((h, bw), dtype=np.float32)  # lane (a, i0 + j)
        _lanes_in(accs, i0, s)
        for t in range(n):
            for a in range(h):
                wa = w[a, t]
                for j in range(bw):
                    s[a, j] += wa * vals[t, i0 + j]
        _lanes_out(s, accs, i0)


# ---- KIVI write path: quantizer -------------------------------------------------------------
def _kivi_quantize(x, group_axis, group, levels, rot, f16, codes, scale, zero):
    """Asymmetric min/max quantization of x [H, n, d] (FP16 values, any float dtype; H heads) in
    groups of `group` along axis `group_axis` (0: tokens, per channel: KIVI's keys; 1: channels,
    per token: values).

    Per group: zero = min (an FP16 value), scale = rnd16(rnd_rot(rnd_rot(max - min) x
    rnd_rot(1/(L-1)))); inv = rnd_rot(1/scale) (0 when scale is 0); per element
    code = clamp(rint(rnd_rot(rnd_rot(x - zero) x inv)), 0, L-1). codes [H, n, d]; scale/zero
    [H, n / group, d] for axis 0, [H, n, d / group] for axis 1 (any of them may be views).
    A thread takes one block of rows (a token group for keys, one token for values) and runs each
    step over the block's d channels as one vector loop (min/max: the first of equal values kept,
    in group order, as a scan would)."""
    heads, n, d = x.shape
    step = rnd_fast(1.0 / (levels - 1), rot)
    rows = group if group_axis == 0 else 1
    width = 1 if group_axis == 0 else group  # channels of one group within a row
    ng = d // width
    blocks = n // rows
    per_item = max(1, KIVI_ROWS // rows)  # groups of rows a thread takes (buffers reused)
    items = -(-blocks // per_item)
    for item in prange(heads * items):
        a, g0 = item // items, (item % items) * per_item
        col_lo, col_hi, y = np.empty(d), np.empty(d), np.empty(d)
        lo_c, inv_c = np.empty(d), np.empty(d)  # per channel
        s, lo, inv = np.empty(ng), np.empty(ng), np.empty(ng)
        for g in range(g0, min(blocks, g0 + per_item)):
            col_lo[:] = np.inf  # per channel over the group's rows
            col_hi[:] = -np.inf
            for k in range(rows):
                for i in range(d):
                    v = np.float64(x[a, g * rows + k, i])
                    col_lo[i] = v if v < col_lo[i] else col_lo[i]
                    col_hi[i] = v if v > col_hi[i] else col_hi[i]
            for j in range(ng):
                glo, ghi = np.inf, -np.inf
                for c in range(j * width, (j + 1) * width):
                    if col_lo[c] < glo:
                        glo = col_lo[c]
                    if col_hi[c] > ghi:
                        ghi = col_hi[c]
                lo[j] = glo
                s[j] = ghi - glo
            round_vec(s, ng, rot)
            s *= step
            round_vec(s, ng, rot)
            round_vec(s, ng, f16)
            for j in range(ng):
                scale[a, g, j] = s[j]
                zero[a, g, j] = lo[j]
                inv[j] = 1.0 / s[j] if s[j] > 0.0 else 0.0
            round_vec(inv, ng, rot)  # rnd(0) = 0: a group of scale 0 keeps inv 0
            for j in range(ng):
                for c in range(j * width, (j + 1) * width):
                    lo_c[c], inv_c[c] = lo[j], inv[j]
            for k in range(rows):
                t = g * rows + k
                for i in range(d):
                    y[i] = np.float64(x[a, t, i]) - lo_c[i]
                round_vec(y, d, rot)
                y *= inv_c
                round_vec(y, d, rot)
                for i in range(d):
                    codes[a, t, i] = np.uint8(min(max(np.rint(y[i]), 0.0), levels - 1.0))


KIVI_ROWS = 32
"""Rows of x a quantizer thread takes at least (one key group, or 32 value rows)."""


# work of a call (jit.by_work): element operations, items x d (x heads)
dot_scores = jit.by_work(_dot_scores, lambda a: a[1].shape[0] * a[1].shape[1] * a[0].shape[0])
rotated_scores = jit.by_work(_rotated_scores, lambda a: a[1].shape[0] * a[1].shape[1] * a[0].shape[0])
inverse_rotate = jit.by_work(_inverse_rotate, lambda a: a[0].shape[0] * a[0].shape[1])
kivi_dequantize = jit.by_work(_kivi_dequantize, lambda a: a[8].shape[0] * a[8].shape[1])
accumulate = jit.by_work(_accumulate, lambda a: a[0].shape[0] * a[0].shape[1] * a[1].shape[1])
accumulate_fp32 = jit.by_work(_accumulate_fp32, lambda a: a[0].shape[0] * a[0].shape[1] * a[1].shape[1])
kivi_quantize = jit.by_work(_kivi_quantize, lambda a: a[0].shape[0] * a[0].shape[1] * a[0].shape[2])


def _fp16_rows(raw, out, inp, f16):
    """FP16 storage of written vectors: out = rnd16(rnd_input(raw)); raw [h, n, d] (float32 or
    float64 values, rounded as float64), out float32 [h, n, d] (every FP16 value is a float32);
    either may be a strided view."""
    h, n, d = raw.shape
    blocks = -(-n // ROW_BLOCK)
    for j in prange(h * blocks):
        a = j // blocks
        t0 = (j - a * blocks) * ROW_BLOCK
        rows = min(n, t0 + ROW_BLOCK) - t0
        buf = np.empty(rows * d)  # the block's rows, one contiguous vector
        for t in range(rows):
            for i in range(d):
                buf[t * d + i] = raw[a, t0 + t, i]
        round_vec(buf, rows * d, inp)
        round_vec(buf, rows * d, f16)
        for t in range(rows):
            for i in range(d):
                out[a, t0 + t, i] = buf[t * d + i]


ROW_BLOCK = 64
"""Rows one thread converts together (one buffer, rounded as one vector loop)."""


fp16_rows = jit.by_work(_fp16_rows, lambda a: a[0].shape[0] * a[0].shape[1] * a[0].shape[2])
