"""KV vectors as the macro stores them: the golden write path, then the dequantized vector.

`macro_kv_transform` is the KV transform of the perplexity harness: every key and value goes
through `golden.write_heads` (FP16 input rounding, norm extractor, FWHT rotator and the folded
thresholds of docs/architecture.md, FP16 norms) and comes back as the vector the stored indices
and norm stand for, x_hat = ñ · R^T γ̃[idx] / sqrt(d) = ñ · s ⊙ H γ̃[idx] / d, with the FP16
ROM centroids γ̃. Attention is then computed on x_hat by the model (quantize-dequantize, QDQ):
by the asymmetric identity <q, x_hat> is exactly what the table lookup computes before the
table, adder-tree and softmax roundings, which `compare_macro_and_qdq` measures on a trace.
"""

from __future__ import annotations

import math
from typing import Optional

import numpy as np

from axelsim.numerics.golden import NumericsSpec, golden_layer, write_heads
from axelsim.numerics.hadamard import SignRom, inverse_rotate_f64
from axelsim.numerics.metrics import output_rel_rmse, score_rel_rmse
from axelsim.numerics.reference import attention_f64


def macro_spec(dim: int, bits: int, signs: SignRom, value_signs: Optional[SignRom] = None,
               ties: str = "upper") -> NumericsSpec:
    """The numerics of the paper's macro (its default number formats) at head size `dim`, `bits`;
    `value_signs` and `ties` as in `NumericsSpec.build` (the paper's protocol: separate value
    vectors, ties to the lower level)."""
    return NumericsSpec.build(dim, bits, signs, value_signs=value_signs, ties=ties)


def dequantize(spec: NumericsSpec, indices: np.ndarray, norms: np.ndarray, layer: int, kind: str = "k") -> np.ndarray:
    """x_hat float64 [..., d] from indices [..., d] and stored norms [...] (float64 arithmetic)."""
    levels = spec.codebook.rom_centroids[np.asarray(indices, dtype=np.intp)] / math.sqrt(spec.dim)
    signs = spec.rom_for(kind).vector(layer)
    return np.asarray(norms, dtype=np.float64)[..., None] * inverse_rotate_f64(levels, signs)


def stored_vectors(spec: NumericsSpec, x: np.ndarray, layer: int, tensor: str = "x", kind: str = "k") -> np.ndarray:
    """x [H, T, d] through the macro's write path and back: x_hat float64 [H, T, d]; `kind`
    'k' or 'v' picks the sign ROM."""
    written = write_heads(spec, x, layer, tensor, "perplexity", kind)
    return dequantize(spec, written.indices, written.norms, layer, kind)


def macro_kv_transform(spec: NumericsSpec):
    """A KV transform (layer, k, v) -> (k_hat, v_hat), float32 [H, T, d], for `MacroKvCache`."""

    def transform(layer: int, k: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        k_hat = stored_vectors(spec, k, layer, f"layers.{layer}.k")
        v_hat = stored_vectors(spec, v, layer, f"layers.{layer}.v", "v")
        return k_hat.astype(np.float32), v_hat.astype(np.float32)

    return transform


def compare_macro_and_qdq(spec: NumericsSpec, trace, layer: int) -> dict[str, float]:
    """How far the macro's attention (golden read and value paths: FP16 table and adder tree,
    the exp unit) is from the QDQ attention the perplexity harness uses, on one layer of a trace.

    QDQ: float64 attention over the stored vectors (`stored_vectors`). Returns the relative RMS
    differences of scores and outputs (macro vs QDQ) and, for scale, the relative RMS error of
    the QDQ scores and outputs against exact float64 attention (the quantization error itself).
    """
    k, v, q, pos = trace.k(layer), trace.v(layer), trace.q(layer), trace.q_positions
    gold = golden_layer(spec, k, v, q, pos, layer)
    qdq = attention_f64(stored_vectors(spec, k, layer), stored_vectors(spec, v, layer, kind="v"), q, pos)
    exact = attention_f64(k, v, q, pos)
    return {
        "score_rel_rms_macro_vs_qdq": score_rel_rmse(gold.scores, qdq.scores),
        "output_rel_rms_macro_vs_qdq": output_rel_rmse(gold.outputs, qdq.outputs),
        "score_rel_rms_qdq_vs_exact": score_rel_rmse(qdq.scores, exact.scores),
        "output_rel_rms_qdq_vs_exact": output_rel_rmse(qdq.outputs, exact.outputs),
    }


def fp16_kv_transform(layer: int, k: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The FP16 KV cache: keys and values rounded to binary16 (the model attends in FP32)."""
    return k.astype(np.float16).astype(np.float32), v.astype(np.float16).astype(np.float32)
