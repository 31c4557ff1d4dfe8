"""QJL residual keys (Zandieh et al., QJL, 2024; TurboQuant's inner-product quantizer): golden model.

A key is stored as a (b-1)-bit MSE code (the macro's write path with the (b-1)-bit Lloyd-Max
ROM) plus a 1-bit Johnson-Lindenstrauss sketch of its residual, so that the score estimate is
unbiased; values keep the b-bit MSE code (as the paper's code does). Arithmetic, in the
notation of docs/architecture.md (rotator format `rot`, unnormalised FWHT y = H(s ⊙ x), stored
norm ñ, FP16 centroid ROM γ̃ of b-1 bits, S the sketch ROM, m x d FP16 values of N(0, 1) draws):

Write path, per key (after the MSE write path, which gives y, idx and ñ):
  1. residual ρ_i = rnd_rot(y_i − rnd_rot(ñ · γ̃[idx_i]))            (d mul, d add)
  2. ‖ρ‖: squares, pairwise adder tree, sqrt in rot, stored rnd_fp16 (saturating) as ρ̃
                                                                    (d mul, d−1 add, 1 sqrt)
  3. sketch p_j = tree_rot(rnd_rot(S_ji · ρ_i)), sign bit σ_j = [p_j < 0] (0 is +)
                                                                    (m·d mul, m·(d−1) add)
  The row grows by m sign bits and the 16-bit ρ̃: (b−1)·d + 16 + m + 16 bits.
Read path, per query (phase 1, beside the table):
  4. r = FWHT(s ⊙ q) (the table's rotation, shared), u_j = tree_rot(rnd_rot(S_ji · r_i)),
     w_j = rnd_table(u_j · c · 2^−log2 d), c = rnd_fp32(sqrt(π/2) / m)  (m·d + m mul, m·(d−1) add)
Per key (phase 2):
  5. a = tree_acc(leaves ±w_j, the sign from σ_j: an exact negation), m − 1 adds;
     score = rnd_score(rnd_score(a_mse · ñ) + rnd_score(a · ρ̃))   (1 more mul, 1 add)
By <q, k> = <Hsq, Hsk>/d, the MSE tree gives ñ·<r, γ̃[idx]>/d and
E_S[‖ρ‖ · (sqrt(π/2)/m) Σ_j sign(Sρ)_j (Sr)_j] = <r, ρ> (QJL's identity for Gaussian rows),
so E_S[score] = <r, y>/d = <q, k> up to the roundings: the estimator is unbiased.

The sketch ROM: `sketch_matrix(seed, m, d)` = rnd_fp16 of
Generator(PCG64(SeedSequence([seed, 0x514A4C]))).standard_normal((m, d)); one matrix per
macro (m·d·2 bytes: 32 KiB for m = d = 128).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import numba as nb
import numpy as np

from axelsim.config.formats import FP16, FP32
from axelsim.errors import ConfigError, NumericsError
from axelsim.numerics import golden as G
from axelsim.numerics.fp import FP16_MAX, rnd, round_to
from axelsim.numerics.hadamard import fwht_f64
from axelsim.numerics.kernels import fwht_rounded, tree_sum_rounded

SKETCH_STREAM = 0x514A4C
"""Second word of the sketch ROM's SeedSequence ('QJL'), so it never collides with a sign vector."""


def sketch_matrix(seed: int, m: int, dim: int) -> np.ndarray:
    """The sketch ROM: float64 [m, dim] of FP16 values of N(0, 1) draws (see the module docstring)."""
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([int(seed), SKETCH_STREAM])))
    return round_to(rng.standard_normal((m, dim)), FP16)


@dataclass(frozen=True)
class QjlSpec:
    """A QJL macro's numerics: `keys` the (b−1)-bit MSE spec, `values` the b-bit one, the sketch."""

    keys: G.NumericsSpec
    values: G.NumericsSpec
    sketch: np.ndarray
    """float64 [m, d] FP16 sketch ROM values."""
    scale: float
    """c = rnd_fp32(sqrt(pi/2) / m)."""

    @classmethod
    def build(cls, spec: G.NumericsSpec, sketch_bits: int, sketch_seed: int = 0) -> "QjlSpec":
        """From the macro's b-bit spec: keys get b−1 bits and an m-bit sketch, values keep b bits."""
        if spec.bits < 2:
            raise ConfigError("residual", "bits", f"expected b >= 2 with a QJL residual (b-1 MSE bits), got {spec.bits}")
        m = int(sketch_bits)
        if not (m >= 2 and m & (m - 1) == 0 and m <= 4096):
            raise ConfigError("residual", "sketch_bits", f"expected a power of two from 2 to 4096, got {sketch_bits}")
        scale = float(round_to(math.sqrt(math.pi / 2.0) / m, FP32))
        return cls(spec.with_bits(spec.bits - 1), spec, sketch_matrix(sketch_seed, m, spec.dim), scale)

    @property
    def sketch_bits(self) -> int:
        return int(self.sketch.shape[0])

    @property
    def dim(self) -> int:
        return self.keys.dim

    @property
    def key_row_bits(self) -> int:
        """Bits of one stored key: (b−1)·d indices, the FP16 norm, m sign bits, the FP16 ρ̃."""
        return self.keys.dim * self.keys.bits + 16 + self.sketch_bits + 16


@dataclass(frozen=True)
class QjlKeys:
    """Keys [Hkv, T] as a QJL macro stores them."""

    indices: np.ndarray
    """uint8 [Hkv, T, d] (b−1)-bit level indices."""
    norms: np.ndarray
    """float16 [Hkv, T] stored norms ñ."""
    sketch_signs: np.ndarray
    """uint8 [Hkv, T, m]: 1 where the sketch coordinate is negative."""
    residual_norms: np.ndarray
    """float16 [Hkv, T] stored residual norms ρ̃ (saturated at 65504)."""
    actions: dict


@nb.njit(cache=True, nogil=True)
def _project(sketch, j, vec, prod, rot):
    """tree_rot(rnd_rot(S_ji · vec_i)): (row j of the sketch times vec, additions)."""
    for i in range(vec.size):
        prod[i] = rnd(sketch[j, i] * vec[i], rot)
    return tree_sum_rounded(prod, rot)


@nb.njit(cache=True, nogil=True)
def _rotate(x, signs, rot):
    """FWHT(s ⊙ x), unnormalised, in the rotator format: the write path's y, or the query's r."""
    u = np.empty(x.size)
    for i in range(x.size):
        u[i] = x[i] * signs[i]
    fwht_rounded(u, rot)
    return u


@nb.njit(cache=True, parallel=True, nogil=True)
def residual_kernel(x, signs, rom_centroids, stored, idx, sketch, rot, sign_bits, rnorms, ops):
    """Steps 1-3 per vector of x float64 [N, d] (input-rounded): sign_bits uint8 [N, m],
    rnorms [N] (rotator format); ops [N, 6] = mul, add, sqrt, sketch mul, sketch add, rows."""
    n_vec, d = x.shape
    m = sketch.shape[0]
    for v in nb.prange(n_vec):
        u = _rotate(x[v], signs, rot)  # y: the write path's rotator output, not recomputed in hardware
        rho = np.empty(d)
        sq = np.empty(d)
        for i in range(d):
            rho[i] = rnd(u[i] - rnd(stored[v] * rom_centroids[idx[v, i]], rot), rot)
            sq[i] = rnd(rho[i] * rho[i], rot)
        total, adds = tree_sum_rounded(sq, rot)
        rnorms[v] = rnd(math.sqrt(total), rot)
        prod = np.empty(d)
        sk_adds = 0
        for j in range(m):
            p, a = _project(sketch, j, rho, prod, rot)
            sk_adds += a
            sign_bits[v, j] = 1 if p < 0.0 else 0
        ops[v, 0] += 2 * d
        ops[v, 1] += d + adds
        ops[v, 2] += 1
        ops[v, 3] += m * d
        ops[v, 4] += sk_adds
        ops[v, 5] += 1


@nb.njit(cache=True, parallel=True, nogil=True)
def query_sketch_kernel(q, signs, sketch, scale, inv_dim, rot, tab, w, ops):
    """Step 4 per query row of q float64 [M, d] (input-rounded): w [M, m] in the table format;
    ops [M, 3] = rotator mul, rotator add, table mul."""
    n_q, d = q.shape
    m = sketch.shape[0]
    for k in nb.prange(n_q):
        u = _rotate(q[k], signs, rot)  # the table generator's rotation, shared (counted there)
        prod = np.empty(d)
        adds = 0
        for j in range(m):
            s, a = _project(sketch, j, u, prod, rot)
            adds += a
            w[k, j] = rnd(s * scale * inv_dim, tab)
        ops[k, 0] += m * d
        ops[k, 1] += adds
        ops[k, 2] += m


@nb.njit(cache=True, parallel=True, nogil=True)
def qjl_score_kernel(w, sign_bits, rnorms, mse_scores, job_kv, job_keys, acc, score, out, ops):
    """Step 5: out[k, t] = rnd_score(mse_scores[k, t] + rnd_score(tree_acc(±w[k]) · ρ̃[kv, t]));
    ops [M, 4] = acc adds, score muls, score adds, sketch-table reads."""
    n_jobs, m = w.shape
    for k in nb.prange(n_jobs):
        kv = job_kv[k]
        leaves = np.empty(m)
        for t in range(job_keys[k]):
            bits = sign_bits[kv, t]
            for j in range(m):
                leaves[j] = -w[k, j] if bits[j] else w[k, j]
            a, adds = tree_sum_rounded(leaves, acc)
            out[k, t] = rnd(mse_scores[k, t] + rnd(a * rnorms[kv, t], score), score)
            ops[k, 0] += adds
        ops[k, 1] += job_keys[k]
        ops[k, 2] += job_keys[k]
        ops[k, 3] += job_keys[k] * m


def _stored_fp16(values: np.ndarray) -> np.ndarray:
    stored = round_to(values, FP16)
    stored[~(stored <= FP16_MAX)] = FP16_MAX
    return stored


def write_keys(qs: QjlSpec, k: np.ndarray, layer: int, tensor: str = "k", source: str = "input") -> QjlKeys:
    """Keys [Hkv, T, d] through the (b−1)-bit write path and the residual sketch."""
    spec = qs.keys
    mse = G.write_heads(spec, k, layer, tensor, source)
    shape = mse.indices.shape[:2]
    x = G._to_input(spec, G.check_vectors(k, spec.dim, tensor, source, 2), tensor, source).reshape(-1, spec.dim)
    n_vec, m = x.shape[0], qs.sketch_bits
    bits = np.empty((n_vec, m), dtype=np.uint8)
    rnorms = np.empty(n_vec)
    ops = np.zeros((n_vec, 6), dtype=np.int64)
    residual_kernel(x, spec.signs.vector(layer).astype(np.float64), spec.codebook.rom_centroids,
                    mse.norms.reshape(-1).astype(np.float64), mse.indices.reshape(-1, spec.dim), qs.sketch,
                    spec.code("rotator"), bits, rnorms, ops)
    tot = ops.sum(axis=0)
    rot = spec.fmt_name("rotator")
    actions = G._actions(list(mse.actions.items()) + [
        (f"mul.{rot}", tot[0] + tot[3]), (f"add.{rot}", tot[1] + tot[4]), (f"sqrt.{rot}", tot[2]),
    ])
    return QjlKeys(mse.indices, mse.norms, bits.reshape(shape + (m,)),
                   _stored_fp16(rnorms).astype(np.float16).reshape(shape), actions)


def read_scores(qs: QjlSpec, q: np.ndarray, keys: QjlKeys, layer: int, q_positions: Optional[np.ndarray] = None,
                causal: bool = True, source: str = "input", tensor: str = "q") -> tuple[np.ndarray, dict]:
    """QJL scores of q [Hq, Nq, d] against stored keys: float64 [Hq, Nq, T] (NaN beyond), actions."""
    spec = qs.keys
    mse_scores, actions = G.read_scores_gqa(spec, q, keys.indices, keys.norms, layer, q_positions, causal,
                                            source, tensor)
    n_h, n_q, n_tok = mse_scores.shape
    n_kv = keys.indices.shape[0]
    qin = G._to_input(spec, G.check_vectors(q, spec.dim, tensor, source, 2), tensor, source).reshape(-1, spec.dim)
    m = qs.sketch_bits
    w = np.empty((n_h * n_q, m))
    qops = np.zeros((n_h * n_q, 3), dtype=np.int64)
    query_sketch_kernel(qin, spec.signs.vector(layer).astype(np.float64), qs.sketch, qs.scale, 1.0 / spec.dim,
                        spec.code("rotator"), spec.code("table"), w, qops)
    keys_per_job = np.tile(G._job_keys(q_positions, n_q, n_tok, causal, source), n_h)
    job_kv = np.repeat(np.arange(n_h) // (n_h // n_kv), n_q).astype(np.int64)
    out = np.full((n_h * n_q, n_tok), np.nan)
    sops = np.zeros((n_h * n_q, 4), dtype=np.int64)
    qjl_score_kernel(w, keys.sketch_signs, keys.residual_norms.astype(np.float64),
                     np.ascontiguousarray(mse_scores.reshape(n_h * n_q, n_tok)), job_kv, keys_per_job,
                     spec.code("accumulator"), spec.code("score"), out, sops)
    qt, st = qops.sum(axis=0), sops.sum(axis=0)
    rot, tab, acc, sc = (spec.fmt_name(f) for f in ("rotator", "table", "accumulator", "score"))
    actions = G._actions(list(actions.items()) + [
        (f"mul.{rot}", qt[0]), (f"add.{rot}", qt[1]), (f"mul.{tab}", qt[2]), ("table_sram.write", qt[2]),
        (f"add.{acc}", st[0]), (f"mul.{sc}", st[1]), (f"add.{sc}", st[2]), ("table_sram.read", st[3]),
    ])
    return out.reshape(n_h, n_q, n_tok), actions


def qjl_layer(qs: QjlSpec, k: np.ndarray, v: Optional[np.ndarray], q: np.ndarray, q_positions: np.ndarray,
              layer: int, source: str = "trace") -> G.GoldenLayer:
    """One layer through a QJL macro: QJL keys, b-bit values, the value path on the QJL scores."""
    keys = write_keys(qs, k, layer, f"layers.{layer}.k", source)
    scores, read_actions = read_scores(qs, q, keys, layer, q_positions, True, source, f"layers.{layer}.q")
    actions = {"write_path": dict(keys.actions), "read_path": read_actions, "value_path": {}}
    if v is None:
        return G.GoldenLayer(keys.indices, keys.norms, None, None, scores, None, 0, actions)
    wv = G.write_heads(qs.values, v, layer, f"layers.{layer}.v", source, "v")
    actions["write_path"] = G._actions(list(keys.actions.items()) + list(wv.actions.items()))
    outputs, actions["value_path"] = G.attend(qs.values, scores, wv.indices, wv.norms, layer, q_positions, source)
    return G.GoldenLayer(keys.indices, keys.norms, wv.indices, wv.norms, scores, outputs, wv.norm_saturations, actions)


def estimate_f64(qs: QjlSpec, q: np.ndarray, k: np.ndarray, layer: int,
                 sketches: Optional[np.ndarray] = None) -> np.ndarray:
    """The float64 QJL estimate of <q_n, k_n> for rows q, k [N, d] (no roundings after the MSE
    code): ñ<r, γ̃[idx]>/d + ‖ρ‖ · sqrt(π/2)/(m d) · Σ_j sign(Sρ)_j (S r)_j, with the residual
    ρ = y − ñ γ̃[idx] in float64. `sketches` [C, m, d] evaluates C sketch ROMs at once (default:
    the spec's own): returns [C, N] (or [N]). The oracle of the unbiasedness test."""
    spec = qs.keys
    if q.shape != k.shape or q.ndim != 2:
        raise NumericsError("qjl", "q", f"expected q and k of one shape [N, d], got {q.shape} and {k.shape}")
    stack = qs.sketch[None] if sketches is None else np.asarray(sketches, dtype=np.float64)
    wk = G.write_vectors(spec, k, layer)
    s = spec.signs.vector(layer).astype(np.float64)
    root = math.sqrt(spec.dim)  # fwht_f64 is normalised: times sqrt(d) is the unnormalised H
    y = fwht_f64(round_to(np.asarray(k, dtype=np.float64), spec.formats["input"]) * s) * root
    r = fwht_f64(round_to(np.asarray(q, dtype=np.float64), spec.formats["input"]) * s) * root
    recon = wk.norms.astype(np.float64)[:, None] * spec.codebook.rom_centroids[wk.indices]
    rho = y - recon
    m = stack.shape[1]
    sr = np.einsum("cjd,nd->cnj", stack, r)
    sign = np.where(np.einsum("cjd,nd->cnj", stack, rho) < 0.0, -1.0, 1.0)
    est = np.linalg.norm(rho, axis=1) * math.sqrt(math.pi / 2.0) / m * np.sum(sign * sr, axis=2)
    out = (np.sum(r * recon, axis=1) + est) / spec.dim
    return out[0] if sketches is None else out
