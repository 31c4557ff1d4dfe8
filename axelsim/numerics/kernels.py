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
import platform

import numba as nb
import numpy as np
from llvmlite import binding as llvm_binding
from llvmlite import ir
from numba import types
from numba.extending import intrinsic, overload

from axelsim import jit
from axelsim.numerics.fp import (
    FP16_KIND, FP16_MAX, add_round, mul_round, rnd, rnd_same, round_fp16_f32, round_fp16_f64, round_fp16_same,
)

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


@nb.njit(cache=True, nogil=True)
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


@nb.njit(cache=True, nogil=True)
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


@jit.parallel_by_work(lambda a: a[0].shape[0] * a[0].shape[1])
def write_kernel(x, signs, rom_boundaries, rot, upper_ties, indices, norms, ops):
    """Write path for x float64 [N, d] (input-rounded): indices uint8 [N, d], norms (rotator fmt).

    upper_ties: a value exactly on a threshold takes the upper level (y >= t), else the lower
    (y > t: the paper's code, nearest-centroid argmin keeping the first minimum)."""
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
                if u[i] > thr[j] or (upper_ties and u[i] == thr[j]):
                    count += 1
            indices[v, i] = count
        norms[v] = n
        ops[v, W_MUL_ROT] += d + n_thr
        ops[v, W_ADD_ROT] += adds + 2 * butterflies
        ops[v, W_SQRT_ROT] += 1
        ops[v, W_CMP_ROT] += d * n_thr
        ops[v, W_BUTTERFLY] += butterflies
        ops[v, W_ROWS] += 1


@jit.parallel_by_work(lambda a: a[0].shape[0] * a[0].shape[1] * a[2].size)
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


def _host_converts_fp16() -> bool:
    """The host CPU converts float32 <-> binary16 in hardware (x86 F16C, or arm64)."""
    if platform.machine().lower() in ("aarch64", "arm64"):
        return True
    try:
        return bool(llvm_binding.get_host_cpu_features().get("f16c", False))
    except RuntimeError:
        return False


NATIVE_FP16 = _host_converts_fp16()
"""The read kernel's adder tree rounds to fp16 with the CPU's conversion instructions."""


@intrinsic
def _fp16_round_native(typingctx, x):
    """float32 -> nearest binary16 (ties to even, overflow to inf) -> float32 as LLVM
    fptrunc/fpext: vcvtps2ph/vcvtph2ps with F16C, 8 lanes per instruction. Equal to
    round_fp16_f32 for every float32 but NaNs (whose payload the conversion may change)."""
    sig = types.float32(types.float32)

    def codegen(context, builder, signature, args):
        return builder.fpext(builder.fptrunc(args[0], ir.HalfType()), ir.FloatType())

    return sig, codegen


def round_fp16_fast(x):
    """Round `x` to fp16 keeping its float type (kernel-only): float32 by `_fp16_round_native`."""
    raise NotImplementedError("round_fp16_fast is only callable inside numba kernels")


@overload(round_fp16_fast, jit_options={"cache": True})
def _round_fp16_fast_overload(x):
    if isinstance(x, types.Float) and x.bitwidth == 32 and NATIVE_FP16:
        def impl32(x):
            r = _fp16_round_native(x)
            return r if x == x else x  # NaN passes through with its payload, as round_fp16_f32

        return impl32
    return lambda x: round_fp16_same(x)


@nb.njit(cache=True, nogil=True)
def round_fp16_into(x: np.ndarray, out: np.ndarray) -> None:
    """out[i] = x[i] rounded to the nearest binary16 value (ties to even, overflow to
    infinity, NaN kept), for 1-D float32 or float64 arrays of one type: `round_fp16_fast`
    element by element (float32: the CPU's conversion, 8 lanes per instruction). numerics.fp's
    `round_to` is the any-format form, through float64 and `rnd` (no F16C)."""
    for i in range(x.size):
        out[i] = round_fp16_fast(x[i])


@nb.njit(cache=True, nogil=True)
def token_sums_fp32(w, quant, window, job_kv, job_keys, split, out) -> None:
    """Each job's sum in token order in float32 lanes: out[j, i] = the sum over t < job_keys[j]
    of w[j, t] x v_t,i, from +0.0, every product and add native float32 (two float32 values
    multiply to at most 48 bits and add exactly in float64, so one float32 rounding of either is
    rnd_fp32 of the exact result, as numerics.fp defines it); v_t = quant[job_kv[j], t] for t
    below split[j], window[job_kv[j], t] from it on. w [M, T], quant and window [Hkv, T, d],
    out [M, d]: float32; job_kv, job_keys, split [M]: int64."""
    d = quant.shape[2]
    for j in range(w.shape[0]):
        h = job_kv[j]
        for i in range(d):
            out[j, i] = 0.0
        for t in range(job_keys[j]):
            src = quant if t < split[j] else window  # (a choice of array, not of row views: 0.3 s to compile, not 3 s)
            wt = w[j, t]
            for i in range(d):
                out[j, i] += wt * src[h, t, i]


@nb.njit(cache=True, nogil=True)
def _tree_stage(buf: np.ndarray, half: int, width: int, code) -> None:
    """One adder-tree stage across a block: buf[k, :] = rnd(buf[2k, :] + buf[2k+1, :]).

    The format branch sits outside the loops and rows are contiguous, so LLVM vectorises.
    """
    if code[0] == FP16_KIND:
        for k in range(half):
            a, b, out = buf[2 * k], buf[2 * k + 1], buf[k]
            for t in range(width):
                out[t] = round_fp16_fast(a[t] + b[t])
    else:
        for k in range(half):
            a, b, out = buf[2 * k], buf[2 * k + 1], buf[k]
            for t in range(width):
                out[t] = rnd_same(a[t] + b[t], code)


PAIR_TABLE_MAX_LEVELS = 8
"""Up to this many levels the lookup kernel folds the tree's first stage into a pair table."""


@nb.njit(cache=True, nogil=True)
def _pair_table(table: np.ndarray, d: int, levels: int, acc, round_leaves: bool, pairs: np.ndarray, j: int) -> None:
    """pairs[(m * L + a) * L + b, j] = rnd_acc(leaf(P[2m][a]) + leaf(P[2m+1][b])): the adder
    tree's first stage for every pair of levels, so a key needs d/2 lookups and the tree starts
    at stage 2. Each entry is exactly the stage-1 sum the circuit forms for those two indices
    (same operands, same rounding), so the scores are unchanged. (Element stores, not a column
    slice assignment: that one compiles numba's shape-error formatting, 3.5 s of a cold start.)"""
    for m in range(d // 2):
        for a in range(levels):
            left = table[2 * m * levels + a]
            if round_leaves:
                left = rnd_same(left, acc)
            for b in range(levels):
                right = table[(2 * m + 1) * levels + b]
                if round_leaves:
                    right = rnd_same(right, acc)
                pairs[(m * levels + a) * levels + b, j] = rnd_same(left + right, acc)


@jit.parallel_by_work(lambda a: int(a[5].sum()) * a[0].shape[1])
def lookup_kernel(tables, indices, norms, groups, job_kv, job_keys, acc, score, round_leaves, scores, ops):
    """Phase 2: scores[m, t] = rnd_score(tree_acc(P_m[i][idx[kv, t, i]]) * norm[kv, t]).

    tables [M, d, L] (float32 or float64 holding table-format values), indices uint8
    [Hkv, T, d], norms float64 [Hkv, T]; job m reads KV head job_kv[m], keys 0..job_keys[m]-1.
    groups [n_groups, G]: the jobs of a row share their KV head and key count (the query heads
    of a GQA group), so the kernel reads each key's indices once and looks them up in the G
    tables; each job's tree and rounding are its own (the lanes of a buffer row are
    G blocks of keys, one per job). For L <= PAIR_TABLE_MAX_LEVELS the first tree stage comes
    from a pair table (see `_pair_table`); each pair lookup is counted as the circuit's two
    table reads and one add.
    """
    _, d, levels = tables.shape
    n_groups, n_g = groups.shape
    paired = levels <= PAIR_TABLE_MAX_LEVELS
    width = d // 2 if paired else d
    n_entries = d // 2 * levels * levels if paired else d * levels
    for g in nb.prange(n_groups):
        kv = job_kv[groups[g, 0]]
        n_keys = job_keys[groups[g, 0]]
        pairs = np.empty((n_entries, n_g), dtype=tables.dtype)
        for j in range(n_g):
            table = tables[groups[g, j]].reshape(d * levels)
            if paired:
                _pair_table(table, d, levels, acc, round_leaves, pairs, j)
            else:
                for p in range(n_entries):
                    pairs[p, j] = table[p]
        buf = np.empty((width, n_g * KEY_BLOCK), dtype=tables.dtype)
        lookups = 0
        adds = 0
        for t0 in range(0, n_keys, KEY_BLOCK):
            nb_keys = min(KEY_BLOCK, n_keys - t0)
            lanes = n_g * nb_keys
            if paired and n_g == 4:  # the common GQA group: one 16-byte copy per pair index
                for t in range(nb_keys):
                    row = indices[kv, t0 + t]
                    for i in range(width):
                        p = (i * levels + row[2 * i]) * levels + row[2 * i + 1]
                        src = pairs[p]
                        dst = buf[i]
                        dst[4 * t] = src[0]
                        dst[4 * t + 1] = src[1]
                        dst[4 * t + 2] = src[2]
                        dst[4 * t + 3] = src[3]
                lookups += nb_keys * 2 * width
                adds += nb_keys * width
            elif paired:
                for t in range(nb_keys):
                    row = indices[kv, t0 + t]
                    for i in range(width):
                        p = (i * levels + row[2 * i]) * levels + row[2 * i + 1]
                        for j in range(n_g):
                            buf[i, t * n_g + j] = pairs[p, j]
                lookups += nb_keys * 2 * width
                adds += nb_keys * width
            else:
                for t in range(nb_keys):
                    row = indices[kv, t0 + t]
                    for i in range(d):
                        p = i * levels + row[i]
                        for j in range(n_g):
                            buf[i, t * n_g + j] = pairs[p, j]
                lookups += nb_keys * d
                if round_leaves:
                    for i in range(d):
                        for t in range(lanes):
                            buf[i, t] = rnd_same(buf[i, t], acc)
            n = width
            while n > 1:
                half = n // 2
                _tree_stage(buf, half, lanes, acc)
                adds += half * nb_keys
                n = half
            for j in range(n_g):
                m = groups[g, j]
                for t in range(nb_keys):
                    scores[m, t0 + t] = rnd(np.float64(buf[0, t * n_g + j]) * norms[kv, t0 + t], score)
        for j in range(n_g):
            m = groups[g, j]
            ops[m, R_ROWS] += n_keys
            ops[m, R_LOOKUPS] += lookups
            ops[m, R_ADD_ACC] += adds
            ops[m, R_MUL_SCORE] += n_keys


@nb.njit(cache=True, nogil=True)
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


@jit.parallel_by_work(lambda a: int(a[4].sum()) * a[1].shape[2])
def value_kernel(
    scores, indices, norms, job_kv, job_keys, signs, rom_centroids, sm, val, sigma, log2e, coeffs, sum_parts,
    bin_parts, out, ops
):
    """Value path per job m: softmax over scores[m, :job_keys[m]] and rotated-domain bins.

    scores float64 [M, T] (score-format values), indices uint8 [Hkv, T, d], norms float64
    [Hkv, T]; out [M, d] the attention output in the value format. Key t adds into partial
    t mod sum_parts of E and copy t mod bin_parts of its bins; the partials are merged left
    to right (partial 0 first) before the centroid multiply and the division.
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
        parts = np.zeros((bin_parts, d, levels))
        sums = np.zeros(sum_parts)
        for t in range(n_keys):
            e = exp_unit(rnd(z[t] - top, sm), sm, log2e, coeffs)
            sums[t % sum_parts] = rnd(sums[t % sum_parts] + e, sm)
            w = rnd(e * norms[kv, t], val)
            row = indices[kv, t]
            part = parts[t % bin_parts]
            for i in range(d):
                part[i, row[i]] = rnd(part[i, row[i]] + w, val)
        total = sums[0]
        for p in range(1, sum_parts):
            total = rnd(total + sums[p], sm)
        bins = parts[0].copy()
        for p in range(1, bin_parts):
            for i in range(d):
                for j in range(levels):
                    bins[i, j] = rnd(bins[i, j] + parts[p, i, j], val)
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
        ops[m, V_ADD_S] += 2 * n_keys + sum_parts - 1
        ops[m, V_EXP_S] += n_keys
        ops[m, V_ROWS] += n_keys
        ops[m, V_MUL_V] += n_keys + d * levels + 1 + d
        ops[m, V_ADD_V] += n_keys * d + d * (levels - 1) + 2 * butterflies + (bin_parts - 1) * d * levels
        ops[m, V_DIV_V] += 1
        ops[m, V_BUTTERFLY] += butterflies


# ---------------------------------------------------------------- write path, fp32 rotator
# With an fp32 rotator every write-path operation has float32 operands (fp16 or fp32 input
# values, fp32 intermediate results, FP16 ROM boundaries), and IEEE float32 arithmetic is
# exactly rnd_fp32 of the exact result (round to nearest even, overflow to inf; numba does
# not flush subnormals). So the squares, the adder tree, the FWHT and the thresholds run in
# native float32, bit for bit the generic kernel's results. The kernel also checks and rounds
# the input in the same pass, and stores the FP16 norm; it works on blocks of WRITE_BLOCK
# vectors held transposed ([d, WRITE_BLOCK], one vector per lane) so that every stage is a
# contiguous lane-wise loop that LLVM vectorises.
WRITE_BLOCK = 64
"""Vectors per block of the fp32 write kernel (one vector per lane of the stage loops)."""

WF_SATURATED, WF_RANGE, WF_NONFINITE = 1, 2, 4
"""Per-vector flags of `write_kernel_fp32`: norm saturated, input beyond range, NaN/Inf input."""

_F32_MAX = float(np.finfo(np.float32).max)
_F64_MAX = float(np.finfo(np.float64).max)


def load_input(x, in_fp16, limit):
    """(rnd_input(x) as float32, x is NaN/Inf, |x| > limit): kernel-only, dispatches on x's type."""
    raise NotImplementedError("load_input is only callable inside numba kernels")


@overload(load_input, jit_options={"cache": True})
def _load_input_overload(x, in_fp16, limit):
    if isinstance(x, types.Integer):  # binary16 bit pattern: every value is in range and on the grid

        def impl_f16(x, in_fp16, limit):
            h = np.uint32(x)
            sign = (h & np.uint32(0x8000)) << np.uint32(16)
            mag = (h & np.uint32(0x7FFF)) << np.uint32(13)
            val = np.uint32(mag).view(np.float32) * np.float32(2.0**112)  # exact, subnormals too
            out = np.uint32(np.float32(val).view(np.uint32) | sign).view(np.float32)
            return out, (h & np.uint32(0x7C00)) == np.uint32(0x7C00), False

        return impl_f16
    if isinstance(x, types.Float) and x.bitwidth == 32:

        def impl_f32(x, in_fp16, limit):
            ax = abs(x)
            out = round_fp16_f32(x) if in_fp16 else x
            return out, not (ax <= np.float32(_F32_MAX)), ax > np.float32(limit)

        return impl_f32

    def impl_f64(x, in_fp16, limit):
        ax = abs(x)
        out = np.float32(round_fp16_f64(x)) if in_fp16 else np.float32(x)
        return out, not (ax <= _F64_MAX), ax > limit

    return impl_f64


@jit.parallel_by_work(lambda a: a[0].shape[0] * a[0].shape[1])
def write_kernel_fp32(x, in_fp16, limit, signs, rom_boundaries, upper_ties, block, indices, stored, flags, ops):
    """Write path with an fp32 rotator for raw x [N, d] (float32, float64, or uint16 fp16 bits).

    Rounds x to the input format (fp16 when in_fp16, else fp32) and flags per vector NaN/Inf
    and |x| > limit (the caller raises; the outputs of a flagged vector are meaningless).
    upper_ties: the tie rule of `write_kernel`.
    indices uint8 [N, d]; stored float32 [N] the FP16 norm (saturated at 65504, flagged);
    signs and rom_boundaries float32; vectors go in blocks of `block` lanes (WRITE_BLOCK: a
    run-time value, so that LLVM vectorises the lane loops instead of unrolling them);
    ops [ceil(N / block), W_COUNTERS].
    """
    n_vec, d = x.shape
    n_thr = rom_boundaries.size
    B = block
    for blk in nb.prange((n_vec + B - 1) // B):
        v0 = blk * B
        nb_vec = min(B, n_vec - v0)
        raw = np.zeros((d, B), dtype=x.dtype)
        xin = np.empty((d, B), dtype=np.float32)
        sq = np.empty((d, B), dtype=np.float32)
        thr = np.empty((n_thr, B), dtype=np.float32)
        cnt = np.empty((d, B), dtype=np.uint8)
        norm = np.empty(B, dtype=np.float32)
        bad = np.zeros(B, dtype=np.uint8)
        over = np.zeros(B, dtype=np.uint8)
        # input: transpose the raw block (padding lanes stay 0), then check and round lane-wise
        for t in range(nb_vec):
            row = x[v0 + t]
            for i in range(d):
                raw[i, t] = row[i]
        for i in range(d):
            r = raw[i]
            a = xin[i]
            for t in range(B):
                val, nonfinite, beyond = load_input(r[t], in_fp16, limit)
                a[t] = val
                bad[t] |= np.uint8(1) if nonfinite else np.uint8(0)
                over[t] |= np.uint8(1) if beyond else np.uint8(0)
        for t in range(nb_vec):
            flags[v0 + t] = (WF_NONFINITE if bad[t] else 0) | (WF_RANGE if over[t] else 0)
        # norm extractor: squares, pairwise adder tree, square root
        for i in range(d):
            a = xin[i]
            s = sq[i]
            for t in range(B):
                s[t] = a[t] * a[t]
        n = d
        adds = 0
        while n > 1:
            half = n // 2
            for m in range(half):
                a, b, s = sq[2 * m], sq[2 * m + 1], sq[m]
                for t in range(B):
                    s[t] = a[t] + b[t]
            adds += half
            n = half
        for t in range(B):
            norm[t] = np.float32(math.sqrt(np.float64(sq[0, t])))
        # rotator: sign flip and the unnormalised FWHT, stage by stage
        for i in range(d):
            a = xin[i]
            sgn = signs[i]
            for t in range(B):
                a[t] = a[t] * sgn
        h = 1
        butterflies = 0
        while h < d:
            for j0 in range(0, d, 2 * h):
                for k in range(h):
                    a, c = xin[j0 + k], xin[j0 + k + h]
                    for t in range(B):
                        p = a[t]
                        q = c[t]
                        a[t] = p + q
                        c[t] = p - q
            butterflies += d // 2
            h *= 2
        # thresholds t_j = rnd(beta_j * n) and the comparators (tie rule: upper_ties)
        for j in range(n_thr):
            bj = rom_boundaries[j]
            tj = thr[j]
            for t in range(B):
                tj[t] = bj * norm[t]
        for i in range(d):
            u = xin[i]
            ci = cnt[i]
            for t in range(B):
                ci[t] = 0
            if upper_ties:
                for j in range(n_thr):
                    tj = thr[j]
                    for t in range(B):
                        ci[t] += np.uint8(1) if u[t] >= tj[t] else np.uint8(0)
            else:
                for j in range(n_thr):
                    tj = thr[j]
                    for t in range(B):
                        ci[t] += np.uint8(1) if u[t] > tj[t] else np.uint8(0)
        for t in range(nb_vec):
            out = indices[v0 + t]
            for i in range(d):
                out[i] = cnt[i, t]
            r = round_fp16_f32(norm[t])
            if not (r <= np.float32(FP16_MAX)):
                r = np.float32(FP16_MAX)
                flags[v0 + t] |= WF_SATURATED
            stored[v0 + t] = r
        ops[blk, W_MUL_ROT] += nb_vec * (d + n_thr)
        ops[blk, W_ADD_ROT] += nb_vec * (adds + 2 * butterflies)
        ops[blk, W_SQRT_ROT] += nb_vec
        ops[blk, W_CMP_ROT] += nb_vec * d * n_thr
        ops[blk, W_BUTTERFLY] += nb_vec * butterflies
        ops[blk, W_ROWS] += nb_vec
