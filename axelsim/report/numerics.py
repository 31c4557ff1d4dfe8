"""The report's `numerics` section: the cycle model against the golden model and the float64 reference.

- `bit_exact`: every score and output of the cycle model equals the golden model's bit for bit
  (float64 bit patterns compared, NaN positions equal, -0.0 differs from +0.0).
- The five metrics of axelsim.numerics.metrics, of the cycle model's scores and outputs against
  float64 exact attention on the same trace selection, pooled over every layer, head and query,
  and per layer.
"""

from __future__ import annotations

import hashlib
from typing import Any, Iterator, Mapping, Optional, Sequence

import numpy as np

from axelsim.config import MacroConfig
from axelsim.config.macro import kivi_channel_group
from axelsim.numerics.codebook import check_dim_bits
from axelsim.numerics.golden import NumericsSpec, golden_layer
from axelsim.numerics.metrics import attention_metrics
from axelsim.numerics.qjl import QjlSpec, qjl_layer
from axelsim.numerics.reference import attention_f64

METRIC_KEYS = ("score_rel_rmse", "score_max_abs_err", "attn_kl", "top1_agreement", "output_rel_rmse")


def same_bits(a: Optional[np.ndarray], b: Optional[np.ndarray]) -> bool:
    """True when two float arrays are identical bit for bit (NaN where the other has NaN)."""
    if a is None or b is None:
        return a is None and b is None
    a64, b64 = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a64.shape != b64.shape:
        return False
    differ = a64.view(np.uint64) != b64.view(np.uint64)  # one pass when equal, NaN payloads included
    if not differ.any():
        return True
    return bool(np.all(np.isnan(a64[differ]) & np.isnan(b64[differ])))  # only NaNs of other payloads


def _metrics(scores: Sequence[np.ndarray], ref_scores: Sequence[np.ndarray], dim: int,
             outputs: Sequence[Optional[np.ndarray]], ref_outputs: Sequence[Optional[np.ndarray]]) -> dict[str, Any]:
    """The five metrics over the given layers pooled (query heads of all layers stacked)."""
    have_outputs = all(o is not None for o in outputs) and all(o is not None for o in ref_outputs)
    found = attention_metrics(
        np.concatenate(scores), np.concatenate(ref_scores), dim,
        np.concatenate(outputs) if have_outputs else None,
        np.concatenate(ref_outputs) if have_outputs else None,
    )
    counted = sum(overflows(a, b) for a, b in zip(scores, ref_scores))
    if have_outputs:
        counted += sum(overflows(a, b) for a, b in zip(outputs, ref_outputs))
    return {**{key: found.get(key) for key in METRIC_KEYS}, "overflows": counted}


def trace_source(trace) -> str:
    """What an error about the trace's numbers names: its file when it has one, else its name."""
    path = getattr(trace, "path", None)
    return str(path) if path is not None else str(trace.name)


def _layer_runs(spec: NumericsSpec, config: MacroConfig, trace,
                references: Optional[dict] = None) -> Iterator[tuple[int, Any, Any, bool]]:
    """(layer, golden result, float64 reference, has values) for every layer of the trace; the
    QJL golden model (numerics.qjl) for a `residual: qjl` macro. `references`: as in
    `float64_reference`."""
    qjl = QjlSpec.build(spec, config.sketch_bits, config.qjl.seed) if config.residual == "qjl" else None
    for layer in trace.layer_indices:
        k, q, v = _layer_tensors(config, trace, layer)
        if qjl is not None:
            golden = qjl_layer(qjl, k, v, q, trace.q_positions, layer, source=trace_source(trace))
        else:
            golden = golden_layer(spec, k, v, q, trace.q_positions, layer, source=trace_source(trace))
        yield layer, golden, float64_reference(references, layer, k, v, q, trace.q_positions), v is not None


def float64_reference(references: Optional[dict], layer: int, k, v, q, q_positions):
    """attention_f64 of one layer, taken from `references` {(layer, has values): result} when
    there and stored there when not (the float64 attention depends on the trace alone, so the
    macro and the baselines of one trace share it; one entry per layer, the size of the
    layer's scores and outputs); None: computed, not kept."""
    key = (layer, v is not None)
    found = None if references is None else references.get(key)
    if found is None:
        found = attention_f64(k, v, q, q_positions)
        if references is not None:
            references[key] = found
    return found


def float64_references(config: MacroConfig, trace, references: Optional[dict] = None) -> dict:
    """`references` (a new dict when None) holding the float64 attention of every layer of `trace`
    as `config` replays it (with values when the trace has them and the value path is on): what
    a compare computes once and hands to the workers of its later designs."""
    references = {} if references is None else references
    for layer in trace.layer_indices:
        layer_reference(references, config, trace, layer)
    return references


def layer_reference(references: Optional[dict], config: MacroConfig, trace, layer: int):
    """`float64_reference` of one layer as `config` replays it, the layer's tensors read only when
    `references` does not hold it yet."""
    has_values = trace.has_values and config.value_path.enabled
    found = None if references is None else references.get((layer, has_values))
    if found is not None:
        return found
    k, q, v = _layer_tensors(config, trace, layer)
    return float64_reference(references, layer, k, v, q, trace.q_positions)


def overflows(found: Optional[np.ndarray], exact: Optional[np.ndarray]) -> int:
    """How many scores or outputs the macro's arithmetic made inf or NaN where exact attention is
    finite. The datapath is modelled as IEEE hardware: a table entry or sum beyond its format's
    range becomes inf (and inf - inf NaN); the error metrics then read inf (null in JSON)."""
    if found is None or exact is None:
        return 0
    return int(np.count_nonzero(np.isfinite(exact) & ~np.isfinite(np.asarray(found, dtype=np.float64))))


def compare_numerics(config: MacroConfig, signs, trace, scores: Mapping[int, np.ndarray],
                     outputs: Mapping[int, Optional[np.ndarray]], references: Optional[dict] = None) -> dict[str, Any]:
    """The numerics section for the cycle model's `scores` and `outputs` (by layer number).

    Runs the golden model and the float64 reference on every layer of `trace`. Returns
    {'bit_exact', 'bit_exact_scores', 'bit_exact_outputs', five metrics, 'norm_saturations',
    'layers': {layer: {...the same per layer}}}. `references`: the float64 attention of each
    layer, reused when present and filled when not (`float64_reference`).
    """
    spec = NumericsSpec.from_macro(config, signs)
    per_layer: dict[str, Any] = {}
    pooled: dict[str, list] = {"scores": [], "ref_scores": [], "outputs": [], "ref_outputs": []}
    exact_scores = exact_outputs = True
    saturations = 0
    for layer, golden, reference, has_values in _layer_runs(spec, config, trace, references):
        sim_out = outputs.get(layer) if has_values else None
        layer_scores_exact = same_bits(scores[layer], golden.scores)
        layer_outputs_exact = same_bits(sim_out, golden.outputs)
        exact_scores &= layer_scores_exact
        exact_outputs &= layer_outputs_exact
        saturations += golden.norm_saturations
        ref_out = reference.outputs if has_values else None
        per_layer[str(layer)] = {
            "bit_exact": layer_scores_exact and layer_outputs_exact,
            **_metrics([scores[layer]], [reference.scores], config.head_dim, [sim_out], [ref_out]),
        }
        pooled["scores"].append(scores[layer])
        pooled["ref_scores"].append(reference.scores)
        pooled["outputs"].append(sim_out)
        pooled["ref_outputs"].append(ref_out)
    return {
        "bit_exact": exact_scores and exact_outputs,
        "bit_exact_scores": exact_scores,
        "bit_exact_outputs": exact_outputs,
        **_metrics(pooled["scores"], pooled["ref_scores"], config.head_dim, pooled["outputs"], pooled["ref_outputs"]),
        "norm_saturations": saturations,
        "layers": per_layer,
    }


def bit_width_study(config: MacroConfig, signs, trace, bits: Sequence[int]) -> dict[str, dict[str, Any]]:
    """Golden-model error metrics against float64 attention for each bit-width in `bits`.

    Everything else of the macro is kept; this is what the 'score error against bit-width'
    plot draws. Keys are the bit-widths as strings (JSON object keys).
    """
    study = {}
    for width in bits:
        check_dim_bits(config.head_dim, int(width), "bit study")
        spec = NumericsSpec.from_macro(config.model_copy(update={"bits": int(width)}), signs)
        gathered: dict[str, list] = {"scores": [], "ref_scores": [], "outputs": [], "ref_outputs": []}
        for _, golden, reference, has_values in _layer_runs(spec, config.without_residual(), trace):
            gathered["scores"].append(golden.scores)
            gathered["ref_scores"].append(reference.scores)
            gathered["outputs"].append(golden.outputs)
            gathered["ref_outputs"].append(reference.outputs if has_values else None)
        study[str(width)] = _metrics(gathered["scores"], gathered["ref_scores"], config.head_dim,
                                     gathered["outputs"], gathered["ref_outputs"])
    return study


def baseline_numerics(kind: str, config: MacroConfig, signs, trace, scores: Mapping[int, np.ndarray],
                      outputs: Mapping[int, Optional[np.ndarray]], references: Optional[dict] = None) -> dict[str, Any]:
    """A baseline's numerics: `bit_exact` (and its scores/outputs parts) against the baseline's
    own golden reference (baseline_exactness), and the five metrics against float64
    (baseline_metrics). `references`: the float64 attention of each layer, reused when present
    and filled when not (`float64_reference`)."""
    return {**baseline_exactness(kind, config, signs, trace, scores, outputs),
            **baseline_metrics(config, trace, scores, outputs, references)}


def bits_digest(a: Optional[np.ndarray]) -> Optional[str]:
    """sha256 (hex) of a float array's shape and float64 bits, every NaN as one NaN (None for
    None): two arrays have the same digest exactly when `same_bits` holds of them (but for a
    sha256 collision), so a process can check another's result without receiving it."""
    if a is None:
        return None
    a64 = np.asarray(a, dtype=np.float64)
    canonical = np.where(np.isnan(a64), np.nan, a64)
    return hashlib.sha256(f"{a64.shape}|".encode() + canonical.tobytes()).hexdigest()


def baseline_golden_digests(kind: str, config: MacroConfig, signs, trace) -> dict[int, tuple]:
    """{layer: (bits_digest of scores, of outputs)} of baseline `kind`'s own golden reference
    (axelsim.numerics.baselines) on every layer of the trace; outputs None when the layer has
    no values to replay."""
    from axelsim.numerics.baselines import KiviSpec, baseline_layer

    spec = NumericsSpec.from_macro(config, signs)
    kc = config.baselines.kivi
    kivi = KiviSpec(kc.bits, kc.group_size, kc.window, kivi_channel_group(kc, config.head_dim))
    digests = {}
    for layer in trace.layer_indices:
        k, q, v = _layer_tensors(config, trace, layer)
        golden = baseline_layer(kind, spec, kivi, k, v, q, trace.q_positions, layer, trace_source(trace))
        digests[layer] = (bits_digest(golden.scores), bits_digest(golden.outputs))
    return digests


def exactness_of(golden: Mapping[int, tuple], scores: Mapping[int, np.ndarray],
                 outputs: Mapping[int, Optional[np.ndarray]]) -> dict[str, bool]:
    """`bit_exact`, `bit_exact_scores` and `bit_exact_outputs` of a cycle model's scores and
    outputs (by layer number) against a golden reference's digests (`baseline_golden_digests`),
    layer by layer."""
    exact_scores = exact_outputs = True
    for layer, (score_digest, output_digest) in golden.items():
        exact_scores &= bits_digest(scores[layer]) == score_digest
        exact_outputs &= bits_digest(outputs.get(layer) if output_digest is not None else None) == output_digest
    return {"bit_exact": exact_scores and exact_outputs, "bit_exact_scores": exact_scores,
            "bit_exact_outputs": exact_outputs}


def baseline_exactness(kind: str, config: MacroConfig, signs, trace, scores: Mapping[int, np.ndarray],
                       outputs: Mapping[int, Optional[np.ndarray]]) -> dict[str, bool]:
    """`exactness_of` a baseline's cycle-model scores and outputs against its own golden
    reference, computed here."""
    return exactness_of(baseline_golden_digests(kind, config, signs, trace), scores, outputs)


def baseline_metrics(config: MacroConfig, trace, scores: Mapping[int, np.ndarray],
                     outputs: Mapping[int, Optional[np.ndarray]], references: Optional[dict] = None) -> dict[str, Any]:
    """The five metrics (and `overflows`) of a baseline's scores and outputs against float64
    attention, pooled over the trace's layers. `references` as in baseline_numerics: a run
    computes the float64 attention once for its macro and every baseline."""
    gathered: dict[str, list] = {"scores": [], "ref_scores": [], "outputs": [], "ref_outputs": []}
    has_values = trace.has_values and config.value_path.enabled
    for layer in trace.layer_indices:
        reference = layer_reference(references, config, trace, layer)
        gathered["scores"].append(scores[layer])
        gathered["ref_scores"].append(reference.scores)
        gathered["outputs"].append(outputs.get(layer) if has_values else None)
        gathered["ref_outputs"].append(reference.outputs)
    return _metrics(gathered["scores"], gathered["ref_scores"], config.head_dim,
                    gathered["outputs"], gathered["ref_outputs"])


def _layer_tensors(config: MacroConfig, trace, layer: int):
    """(keys, queries, values or None) of one layer as the macro replays them (no values when the
    trace has none or the macro's value path is off)."""
    v = trace.v(layer) if trace.has_values and config.value_path.enabled else None
    return trace.k(layer), trace.q(layer), v
