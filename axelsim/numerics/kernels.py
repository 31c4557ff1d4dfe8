"""Numba kernels of the golden datapaths (docs/architecture.md, the arithmetic contract).

Each kernel runs over whole arrays (prange over vectors or queries) and counts the
operations it executes in an `ops` array, one row per work item, one column per counter
(the W_*, R_*, V_* indices below); the drivers in golden.py sum the rows into action dicts.
Formats arrive as FormatCode tuples (see fp.py); values are float64 except the read
path's lookup buffers, which are float32 when the table and accumulator formats are
floating (every fp16/fp32 value is a float32 and float32 sums round correctly to both).
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

from axelsim.numerics.fp import FP16_KIND, add_round, mul_round, rnd, rnd_same, round_fp16_same

# write-path counters
W_MUL_ROT, W_ADD_ROT, W_SQRT_ROT, W_CMP_ROT, W_BUTTERFLY, W_ROWS = range(6)
W_COUNTERS = 6
# read-path counters
R_ADD_ROT, R_BUTTERFLY, R_MUL_TABLE, R_TABLE_WRITE, R_ROWS, R_LOOKUPS, R_ADD_ACC, R_MUL_SCORE = range(8)
R_COUNTERS = 8
# value-path counters
V_MUL_S, V_CMP_S, V_ADD_S, V_EXP_S, V_ROWS, V_MUL_V, V_ADD_V, V_DIV_V, V_BUTTERFLY = range(9)
V_COUNTERS = 9

KEY_BLOCK = 64
"""Keys per lookup block: the adder tree runs stage by stage across a [d, KEY_BLOCK] buffer."""


@nb.njit(cache=True)
def fwht_rounded(u: np.ndarray, code) -> int:
    """Unnormalised FWHT of u in place, every add/subtract rounded to `code`; returns butterflies."""
    d = u.size
    h = 1
    butterflies = 0
    while h < d:
        for j0 in range(0, d, 2 * h):
            for k in range(h):
                a = u[j0 + k]
                c = u[j0 + k + h]
                u[j0 + k] = add_round(a, c, code)
                u[j0 + k + h] = add_round(a, -c, code)
        butterflies += d // 2
        h *= 2
    return butterflies


@nb.njit(cache=True)
def tree_sum_rounded(buf: np.ndarray, code) -> tuple[float, int]:
    """Pairwise adder tree over buf (destroyed), stage by stage: (sum, additions)."""
    n = buf.size
    adds = 0
    while n > 1:
        half = n // 2
        for m in range(half):
            buf[m] = rnd(buf[2 * m] + buf[2 * m + 1], code)
        adds += half
        n = half
    return buf[0], adds


@nb.njit(cache=True, parallel=True)
def write_kernel(x, signs, rom_boundaries, rot, indices, norms, ops):
    """Write path for x float64 [N, d] (input-rounded): indices uint8 [N, d], norms (rotator fmt)."""
    n_vec, d = x.shape
    n_thr = rom_boundaries.size
    for v in nb.prange(n_vec):
        sq = np.empty(d)
        for i in range(d):
            sq[i] = rnd(x[v, i] * x[v, i], rot)
        total, adds = tree_sum_rounded(sq, rot)
        n = rnd(math.sqrt(total), rot)
        u = np.empty(d)
        for i in range(d):
            u[i] = x[v, i] * signs[i]
        butterflies = fwht_rounded(u, rot)
        thr = np.empty(n_thr)
        for j in range(n_thr):
            thr[j] = rnd(rom_boundaries[j] * n, rot)
        for i in range(d):
            count = 0
            for j in range(n_thr):
                if u[i] >= thr[j]:
                    count += 1
            indices[v, i] = count
        norms[v] = n
        ops[v, W_MUL_ROT] += d + n_thr
        ops[v, W_ADD_ROT] += adds + 2 * butterflies
        ops[v, W_SQRT_ROT] += 1
        ops[v, W_CMP_ROT] += d * n_thr
        ops[v, W_BUTTERFLY] += butterflies
        ops[v, W_ROWS] += 1


@nb.njit(cache=True, parallel=True)
def table_kernel(q, signs, rom_centroids, inv_dim, rot, tab, tables, ops):
    """Phase 1 per query row of q float64 [M, d]: tables [M, d, L] = rnd_tab(r_i * c_j / d)."""
    n_q, d = q.shape
    levels = rom_centroids.size
    for m in nb.prange(n_q):
        u = np.empty(d)
        for i in range(d):
            u[i] = q[m, i] * signs[i]
        butterflies = fwht_rounded(u, rot)
        for i in range(d):
            for j in range(levels):
                tables[m, i, j] = rnd(u[i] * rom_centroids[j] * inv_dim, tab)
        ops[m, R_ADD_ROT] += 2 * butterflies
        ops[m, R_BUTTERFLY] += butterflies
        ops[m, R_MUL_TABLE] += d * levels
        ops[m, R_TABLE_WRITE] += d * levels


@nb.njit(cache=True, inline="always")
def _tree_stage(buf: np.ndarray, half: int, width: int, code) -> None:
    """One adder-tree stage across a block: buf[k, :] = rnd(buf[2k, :] + buf[2k+1, :]).

    The format branch sits outside the loops and rows are contiguous, so LLVM vectorises.
    """
    if code[0] == FP16_KIND:
        for k in range(half):
            a, b, out = buf[2 * k], buf[2 * k + 1], buf[k]
            for t in range(width):
                out[t] = round_fp16_same(a[t] + b[t])
    else:
        for k in range(half):
            a, b, out = buf[2 * k], buf[2 * k + 1], buf[k]
            for t in range(width):
                out[t] = rnd_same(a[t] + b[t], code)


PAIR_TABLE_MAX_LEVELS = 8
"""Up to this many levels the lookup kernel folds the tree's first stage into a pair table."""


@nb.njit(cache=True, inline="always")
def _pair_table(table: np.ndarray, d: int, levels: int, acc, round_leaves: bool) -> np.ndarray:
    """Q[m][a][b] = rnd_acc(leaf(P[2m][a]) + leaf(P[2m+1][b])): the adder tree's first stage for
    every pair of levels, so a key needs d/2 lookups and the tree starts at stage 2. Each entry
    is exactly the stage-1 sum the circuit forms for those two indices (same operands, same
    rounding), so the scores are unchanged."""
    pairs = np.empty(d // 2 * levels * levels, dtype=table.dtype)
    for m in range(d // 2):
        for a in range(levels):
            left = table[2 * m * levels + a]
            if round_leaves:
                left = rnd_same(left, acc)
            for b in range(levels):
                right = table[(2 * m + 1) * levels + b]
                if round_leaves:
                    right = rnd_same(right, acc)
                pairs[(m * levels + a) * levels + b] = rnd_same(left + right, acc)
    return pairs


@nb.njit(cache=True, parallel=True)
def lookup_kernel(tables, indices, norms, job_kv, job_keys, acc, score, round_leaves, scores, ops):
    """Phase 2: scores[m, t] = rnd_score(tree_acc(P_m[i][idx[kv, t, i]]) * norm[kv, t]).

    tables [M, d, L] (float32 or float64 holding table-format values), indices uint8
    [Hkv, T, d], norms float64 [Hkv, T]; job m reads KV head job_kv[m], keys 0..job_keys[m]-1.
    For L <= PAIR_TABLE_MAX_LEVELS the first tree stage comes from a pair table (see
    `_pair_table`); each pair lookup is counted as the circuit's two table reads and one add.
    """
    n_jobs, d, levels = tables.shape
    paired = levels <= PAIR_TABLE_MAX_LEVELS
    width = d // 2 if paired else d
    for m in nb.prange(n_jobs):
        kv = job_kv[m]
        n_keys = job_keys[m]
        table = tables[m].reshape(d * levels)
        pairs = _pair_table(table, d, levels, acc, round_leaves) if paired else table
        buf = np.empty((width, KEY_BLOCK), dtype=tables.dtype)
        lookups = 0
        adds = 0
        for t0 in range(0, n_keys, KEY_BLOCK):
            nb_keys = min(KEY_BLOCK, n_keys - t0)
            if paired:
                for t in range(nb_keys):
                    row = indices[kv, t0 + t]
                    for i in range(width):
                        buf[i, t] = pairs[(i * levels + row[2 * i]) * levels + row[2 * i + 1]]
                lookups += nb_keys * 2 * width
                adds += nb_keys * width
            else:
                for t in range(nb_keys):
                    row = indices[kv, t0 + t]
                    for i in range(d):
                        buf[i, t] = table[i * levels + row[i]]
                lookups += nb_keys * d
                if round_leaves:
                    for i in range(d):
                        for t in range(nb_keys):
                            buf[i, t] = rnd_same(buf[i, t], acc)
            n = width
            while n > 1:
                half = n // 2
                _tree_stage(buf, half, nb_keys, acc)
                adds += half * nb_keys
                n = half
            for t in range(nb_keys):
                scores[m, t0 + t] = rnd(np.float64(buf[0, t]) * norms[kv, t0 + t], score)
        ops[m, R_ROWS] += n_keys
        ops[m, R_LOOKUPS] += lookups
        ops[m, R_ADD_ACC] += adds
        ops[m, R_MUL_SCORE] += n_keys


@nb.njit(cache=True)
def exp_unit(x: float, code, log2e: float, coeffs: np.ndarray) -> float:
    """The contract's exp unit: range reduction to 2^k * 2^f and a degree-6 Horner polynomial."""
    if x != x:
        return x
    if x == -math.inf:
        return 0.0
    y = rnd(x * log2e, code)
    k = np.rint(y)
    f = rnd(y - k, code)
    p = 0.0
    for n in range(coeffs.size - 1, -1, -1):
        p = rnd(rnd(p * f, code) + coeffs[n], code)
    k = min(max(k, -2000.0), 2000.0)  # beyond this 2^k * p is 0 (or inf) in every format
    return rnd(math.ldexp(p, int(k)), code)


@nb.njit(cache=True, parallel=True)
def value_kernel(
    scores, indices, norms, job_kv, job_keys, signs, rom_centroids, sm, val, sigma, log2e, coeffs, out, ops
):
    """Value path per job m: softmax over scores[m, :job_keys[m]] and rotated-domain bins.

    scores float64 [M, T] (score-format values), indices uint8 [Hkv, T, d], norms float64
    [Hkv, T]; out [M, d] the attention output in the value format.
    """
    n_jobs, n_tok = scores.shape
    d = indices.shape[2]
    levels = rom_centroids.size
    for m in nb.prange(n_jobs):
        kv = job_kv[m]
        n_keys = job_keys[m]
        z = np.empty(n_keys)
        for t in range(n_keys):
            z[t] = mul_round(scores[m, t], sigma, sm)
        top = z[0]
        for t in range(1, n_keys):
            if z[t] > top:
                top = z[t]
        bins = np.zeros((d, levels))
        total = 0.0
        for t in range(n_keys):
            e = exp_unit(rnd(z[t] - top, sm), sm, log2e, coeffs)
            total = rnd(total + e, sm)
            w = rnd(e * norms[kv, t], val)
            row = indices[kv, t]
            for i in range(d):
                bins[i, row[i]] = rnd(bins[i, row[i]] + w, val)
        o = np.empty(d)
        for i in range(d):
            acc = rnd(bins[i, 0] * rom_centroids[0], val)
            for j in range(1, levels):
                acc = rnd(acc + rnd(bins[i, j] * rom_centroids[j], val), val)
            o[i] = acc
        butterflies = fwht_rounded(o, val)
        gain = rnd(1.0 / rnd(total * d, val), val)
        for i in range(d):
            out[m, i] = rnd(signs[i] * o[i] * gain, val)
        ops[m, V_MUL_S] += n_keys
        ops[m, V_CMP_S] += n_keys - 1
        ops[m, V_ADD_S] += 2 * n_keys
        ops[m, V_EXP_S] += n_keys
        ops[m, V_ROWS] += n_keys
        ops[m, V_MUL_V] += n_keys + d * levels + 1 + d
        ops[m, V_ADD_V] += n_keys * d + d * (levels - 1) + 2 * butterflies
        ops[m, V_DIV_V] += 1
        ops[m, V_BUTTERFLY] += butterflies
