"""Calibration judged on held-out data, and the traces of the norm-ratio question.

`heldout_study`: Algorithm 1 chooses a layer's signs on the first half of its tokens; random
seeds and the chosen signs are then measured on the second half (keys and queries the
selection never saw): key MSE / D_b of the unit keys (float64 quantizer) and, through the
golden model, the softmax KL against exact attention.

`norm_direction_traces`: two synthetic traces whose layer 0 differs from the others in its
direction distribution (a common key component per head, `key_bias`), one with layer 0's keys
also at `norm_ratio` times the norm of the other layers, one without: the norm ratio is then
the only difference between them (a rescale alone cannot change a scale-invariant error).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from axelsim.calibrate.calibration import calibrate_signs
from axelsim.calibrate.search import candidate_mse, unit_rows
from axelsim.numerics.codebook import lloyd_max_codebook
from axelsim.numerics.golden import NumericsSpec, golden_layer
from axelsim.numerics.hadamard import SignRom, sign_vector
from axelsim.numerics.metrics import attn_kl
from axelsim.numerics.reference import attention_f64
from axelsim.trace import SynthSpec, synth_trace
from axelsim.trace.format import Trace


def split_tokens(trace: Trace, layer: int) -> tuple[Trace, Trace]:
    """(first half, second half) of one layer's tokens; each half keeps its own queries,
    positions re-based to the half."""
    half = trace.tokens // 2
    pos = np.asarray(trace.q_positions)
    parts = []
    for lo, hi in ((0, half), (half, trace.tokens)):
        sel = np.flatnonzero((pos >= lo) & (pos < hi))
        k, v, q = trace.k(layer)[:, lo:hi], trace.v(layer)[:, lo:hi], trace.q(layer)[:, sel]
        parts.append(Trace.from_arrays({layer: k}, {layer: v}, {layer: q}, pos[sel] - lo,
                                       model=trace.model, source=f"{trace.name} tokens {lo}..{hi - 1}"))
    return parts[0], parts[1]


def heldout_study(trace: Trace, layer: int, bits: int, seeds: Sequence[int], candidates: int = 200) -> dict:
    """Seeds vs Algorithm 1 (keys + values, chosen on the first half) on the second half.

    Returns key MSE / D_b and KL (nats) per seed and for the calibrated signs, with the seed
    mean and worst."""
    calib, held = split_tokens(trace, layer)
    chosen = calibrate_signs(calib, bits, candidates, include_values=True).rom.vector(layer)
    codebook = lloyd_max_codebook(trace.head_dim, bits)
    units = unit_rows(held.k(layer))
    exact = attention_f64(held.k(layer), held.v(layer), held.q(layer), held.q_positions)
    vectors = {f"seed {s}": sign_vector(s, layer, trace.head_dim) for s in seeds}
    vectors["calibrated"] = chosen
    out = {}
    for name, vec in vectors.items():
        mse = float(candidate_mse(units, vec[None], codebook.centroids, codebook.boundaries)[0]) / codebook.distortion
        rom = SignRom.from_vectors(np.tile(vec, (layer + 1, 1)), name)
        gold = golden_layer(NumericsSpec.build(trace.head_dim, bits, rom), held.k(layer), held.v(layer),
                            held.q(layer), held.q_positions, layer)
        out[name] = {"mse_ratio": mse, "kl": attn_kl(gold.scores, exact.scores, trace.head_dim)}
    seed_rows = [out[f"seed {s}"] for s in seeds]
    summary = {}
    for metric in ("mse_ratio", "kl"):
        values = np.array([r[metric] for r in seed_rows])
        summary[metric] = {"seed_mean": float(values.mean()), "seed_worst": float(values.max()),
                           "calibrated": out["calibrated"][metric]}
    return {"layer": layer, "bits": bits, "calibration_tokens": calib.tokens, "heldout_tokens": held.tokens,
            "per_config": out, "summary": summary}


def norm_direction_traces(norm_ratio: float = 8.0, key_bias: float = 3.0, layers: int = 3, tokens: int = 512,
                          dim: int = 128, seed: int = 11) -> tuple[Trace, Trace]:
    """(layer 0 with a different direction distribution AND norm_ratio x the norm, the same
    without the norm ratio); layers 1.. are Gaussian. See the module docstring."""
    if layers < 2:
        raise ValueError(f"expected at least 2 layers (layer 0 against the others), got {layers}")
    base = dict(layers=layers, kv_heads=2, q_heads=4, head_dim=dim, tokens=tokens, queries=32, seed=seed)
    plain = synth_trace(SynthSpec(**base))
    biased = synth_trace(SynthSpec(**base, key_bias=key_bias))
    traces = []
    for scale in (norm_ratio, 1.0):
        # layer 0: the biased keys, rescaled so their mean norm is `scale` x the plain layers'
        k0 = biased.k(0).astype(np.float64)
        target = scale * np.linalg.norm(plain.k(1), axis=-1).mean()
        k0 = k0 * (target / np.linalg.norm(k0, axis=-1).mean())
        k = {0: k0, **{L: plain.k(L) for L in range(1, layers)}}
        v = {L: plain.v(L) for L in range(layers)}
        q = {L: plain.q(L) for L in range(layers)}
        traces.append(Trace.from_arrays(k, v, q, plain.q_positions, model="synthetic",
                                        source=f"synth layer 0 key_bias {key_bias}, norm x{scale}"))
    return traces[0], traces[1]


def norm_ratio(trace: Trace) -> float:
    """Max over layers of the mean key norm divided by the min (the paper's heterogeneity ratio)."""
    means = [float(np.linalg.norm(trace.k(L).astype(np.float64), axis=-1).mean()) for L in trace.layer_indices]
    return max(means) / min(means)
