"""The QJL residual datapaths of the cycle model (`residual: qjl`) as compiled kernels, built of
the cycle model's own arithmetic (axelsim.hw.kernels: `rnd`, `mul`, `sqrt_r`, the pairwise
tree, the FWHT, the FP16 bit patterns), never of axelsim.numerics: the golden model
(axelsim.numerics.qjl) is the independent side.

A QJL key row (little-endian bits): (b-1)·d index bits and the 16-bit FP16 norm (written by
kernels.write_burst with b-1 bits), then m sign bits σ_j (1: the sketch coordinate is
negative), then the 16-bit FP16 residual norm ρ̃. Arrays are float64 holding exact values of
their formats; `code`s are kernels.fmt_code tuples. Units: none (values).
"""

from __future__ import annotations

import numpy as np
from numba import prange

from axelsim import jit
from axelsim.hw.kernels import _FP16_MAX, _fp16_bits, _fp16_value, _fwht, _tree, mul, rnd, sqrt_r


def _residual_burst(raw, signs, cents, storage, flat, key_bits, sketch, inp, rot, f16, exact_first, wide_sq,
                    wide_proj):
    """The residual unit and the projector for written keys raw [n, d] whose MSE rows are
    already in storage[flat[v]]: y = FWHT(s ⊙ rnd_in(x)) (the rotator's output), the row's
    indices and norm ñ, ρ_i = rnd_rot(y_i − rnd_rot(ñ γ[idx_i])), ‖ρ‖ = sqrt_rot(tree(ρ_i²)),
    p_j = tree_rot(rnd_rot(S_ji ρ_i)), σ_j = [p_j < 0]; σ and the FP16 ‖ρ‖ (saturating at 65504)
    are packed after the MSE part of the row."""
    n, d = raw.shape
    m = sketch.shape[0]
    mask = (1 << key_bits) - 1
    off = d * key_bits + 16
    for v in prange(n):
        r = flat[v]
        u = np.empty(d)
        for i in range(d):
            u[i] = rnd(raw[v, i], inp) * signs[i]
        _fwht(u, rot, exact_first)
        w = np.int64(0)
        for k in range(16):
            p = d * key_bits + k
            w |= np.int64((storage[r, p >> 3] >> (p & 7)) & 1) << k
        stored = _fp16_value(w)
        rho = np.empty(d)
        buf = np.empty(d)
        for i in range(d):
            idx = 0
            for k in range(key_bits):
                p = i * key_bits + k
                idx |= ((storage[r, p >> 3] >> (p & 7)) & 1) << k
            rho[i] = rnd(u[i] - rnd(stored * cents[idx & mask], rot), rot)
            buf[i] = mul(rho[i], rho[i], rot, wide_sq)
        nv = sqrt_r(_tree(buf, d, rot), rot)
        rn = _FP16_MAX if nv > _FP16_MAX else rnd(nv, f16)
        for j in range(m):
            for i in range(d):
                buf[i] = mul(sketch[j, i], rho[i], rot, wide_proj)
            if _tree(buf, d, rot) < 0.0:
                p = off + j
                storage[r, p >> 3] |= np.uint8(1 << (p & 7))
        wb = _fp16_bits(rn)
        for k in range(16):
            if (wb >> k) & 1:
                p = off + m + k
                storage[r, p >> 3] |= np.uint8(1 << (p & 7))


def _unpack_sketch(storage, flat, off, bits, rnorms):
    """Sign bits uint8 [n, m] and FP16 residual norms [n] of rows storage[flat[t]] (bit offset off)."""
    n, m = bits.shape
    for t in prange(n):
        r = flat[t]
        for j in range(m):
            p = off + j
            bits[t, j] = (storage[r, p >> 3] >> (p & 7)) & 1
        w = np.int64(0)
        for k in range(16):
            p = off + m + k
            w |= np.int64((storage[r, p >> 3] >> (p & 7)) & 1) << k
        rnorms[t] = _fp16_value(w)


def _query_sketch(r, sketch, step, rot, tab, wide_proj, wide_step, w):
    """The projector on rotated queries r [h, d] (rotator format): u_j = tree_rot(rnd_rot(S_ji r_i)),
    w_j = rnd_table(u_j · step), step = c · 2^-log2 d (c = rnd_fp32(sqrt(π/2) / m)); w [h, m]."""
    h, d = r.shape
    m = sketch.shape[0]
    for lane in prange(h * m):
        a = lane // m
        j = lane - a * m
        buf = np.empty(d)
        for i in range(d):
            buf[i] = mul(sketch[j, i], r[a, i], rot, wide_proj)
        w[a, j] = mul(_tree(buf, d, rot), step, tab, wide_step)


def _qjl_scores(w, bits, rnorms, scores, acc, score, wide):
    """The QJL accumulator per key t and head a: leaves ±w[a, j] (− where σ_tj = 1: an exact
    negation), a = tree_acc(leaves), scores[a, t] = rnd_score(scores[a, t] + rnd_score(a ρ̃_t))
    (scores holds the MSE scores on entry)."""
    h, m = w.shape
    n = bits.shape[0]
    for t in prange(n):
        buf = np.empty(m)
        for a in range(h):
            for j in range(m):
                buf[j] = -w[a, j] if bits[t, j] else w[a, j]
            scores[a, t] = rnd(scores[a, t] + mul(_tree(buf, m, acc), rnorms[t], score, wide), score)


# work of a call (jit.by_work): element operations
residual_burst = jit.by_work(_residual_burst, lambda a: a[0].shape[0] * a[0].shape[1] * a[6].shape[0])
unpack_sketch = jit.by_work(_unpack_sketch, lambda a: a[3].shape[0] * a[3].shape[1])
query_sketch = jit.by_work(_query_sketch, lambda a: a[0].shape[0] * a[0].shape[1] * a[1].shape[0])
qjl_scores = jit.by_work(_qjl_scores, lambda a: a[0].shape[0] * a[0].shape[1] * a[1].shape[0])
