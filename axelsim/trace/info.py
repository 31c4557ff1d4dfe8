"""`axelsim trace info`: shape, model and per-layer norm statistics of a trace.

The layer max/min ratio of the mean key norm is the paper's predictor of sign-pattern
sensitivity (< 2 is safe with random signs, > 5 calls for calibration; PAPER.md section 3).
"""

from __future__ import annotations

import numpy as np

from axelsim.trace.format import Trace

NORM_UNITS = "activation units (L2 norm of one head vector, as the model computes it)"


def _norm_stats(vectors: np.ndarray, prefix: str) -> dict[str, float]:
    """Mean and max L2 norm over heads and positions of float32 [heads, n, d] vectors."""
    norms = np.linalg.norm(vectors.astype(np.float64), axis=-1)
    return {f"{prefix}_l2_norm_mean": float(norms.mean()), f"{prefix}_l2_norm_max": float(norms.max())}


def _ratio(values: list[float]) -> float:
    """max/min of positive numbers; inf when the smallest is zero."""
    low = min(values)
    return float(max(values) / low) if low > 0 else float("inf")


def trace_info(trace: Trace) -> dict:
    """Shape, provenance and per-layer key/value/query norm statistics, as a JSON-ready dict.

    Reads one layer at a time. Norm figures are in the model's activation units (see
    `units`); `*_ratio` figures are dimensionless.
    """
    layers = []
    for layer in trace.layer_indices:
        row = {"layer": layer}
        row.update(_norm_stats(trace.k(layer), "key"))
        if trace.has_values:
            row.update(_norm_stats(trace.v(layer), "value"))
        row.update(_norm_stats(trace.q(layer), "query"))
        layers.append(row)
    positions = trace.q_positions
    info = {
        "name": trace.name,
        "path": str(trace.path) if trace.path is not None else None,
        "model": trace.model,
        "source": trace.meta["source"],
        "dtype": trace.dtype,
        "digest_sha256": trace.digest(),
        "file_bytes": trace.path.stat().st_size if trace.path is not None else None,
        "n_layers": trace.n_layers,
        "model_layers": trace.model_layers,
        "layer_indices": trace.layer_indices,
        "kv_heads": trace.kv_heads,
        "q_heads": trace.q_heads,
        "head_dim": trace.head_dim,
        "tokens": trace.tokens,
        "queries": trace.n_queries,
        "q_position_first": int(positions[0]),
        "q_position_last": int(positions[-1]),
        "key_norm_layer_max_min_ratio": _ratio([row["key_l2_norm_mean"] for row in layers]),
        "layers": layers,
        "units": {"*_l2_norm_*": NORM_UNITS, "*_ratio": "dimensionless", "file_bytes": "bytes"},
    }
    if trace.has_values:
        info["value_norm_layer_max_min_ratio"] = _ratio([row["value_l2_norm_mean"] for row in layers])
    return info


def format_trace_info(info: dict) -> str:
    """A human-readable summary of `trace_info` output: header lines and a per-layer table."""
    has_values = "value_norm_layer_max_min_ratio" in info
    model_layers = info.get("model_layers")
    depth = f" of {model_layers}" if model_layers and model_layers != info["n_layers"] else ""
    lines = [
        f"trace     {info['name']}" + (f"  ({info['file_bytes']} bytes)" if info.get("file_bytes") else ""),
        f"model     {info['model']}",
        f"source    {info['source']}",
        f"shape     {info['n_layers']} layers{depth} x {info['kv_heads']} kv heads "
        f"({info['q_heads']} q heads) x {info['tokens']} tokens x d={info['head_dim']}, {info['dtype']}",
        f"queries   {info['queries']} at positions {info['q_position_first']}..{info['q_position_last']}",
        f"sha256    {info['digest_sha256']}",
        f"key norm layer max/min ratio   {info['key_norm_layer_max_min_ratio']:.3f}",
    ]
    if has_values:
        lines.append(f"value norm layer max/min ratio {info['value_norm_layer_max_min_ratio']:.3f}")
    header = f"{'layer':>5} {'|k| mean':>10} {'|k| max':>10}"
    if has_values:
        header += f" {'|v| mean':>10} {'|v| max':>10}"
    header += f" {'|q| mean':>10} {'|q| max':>10}"
    lines += ["", header]
    for row in info["layers"]:
        line = f"{row['layer']:>5} {row['key_l2_norm_mean']:>10.3f} {row['key_l2_norm_max']:>10.3f}"
        if has_values:
            line += f" {row['value_l2_norm_mean']:>10.3f} {row['value_l2_norm_max']:>10.3f}"
        line += f" {row['query_l2_norm_mean']:>10.3f} {row['query_l2_norm_max']:>10.3f}"
        lines.append(line)
    lines.append(f"(norms in {NORM_UNITS})")
    return "\n".join(lines)
