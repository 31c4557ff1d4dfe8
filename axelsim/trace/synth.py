"""Synthetic KV-cache traces with a chosen shape and chosen statistics, seeded.

Every layer L draws from its own generator, `PCG64(SeedSequence([seed, L]))`, so a trace is
reproducible bit for bit and layer L does not depend on how many layers are asked for.

The model of one layer (all vectors per head, coordinates in the key's units):
- keys      k = key_scale * (g + bias) with g ~ N(0, 1)^d; `outlier_channels` coordinates per
            KV head (chosen at random) have g multiplied by `outlier_scale`; bias = key_bias * b
            with b ~ N(0, 1)^d fixed per (layer, KV head): a constant component as in models
            with a key bias.
- sinks     the first `sinks` keys get m*u added (u a random unit vector per KV head) and every
            query of the group gets m*u too, m = sqrt(sink_logit * sqrt(d)): a sink's logit
            q.k/sqrt(d) exceeds an ordinary key's by about `sink_logit`.
- layer 0   keys scaled by `norm_ratio` (as Qwen2.5's layer 0): the layer max/min ratio of the
            mean key norm is `norm_ratio` in expectation.
- values    value_scale * N(0, 1)^d; queries query_scale * N(0, 1)^d (+ the sink term).
"""

from __future__ import annotations

from typing import Literal, Optional

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from axelsim.errors import TraceError
from axelsim.trace.format import Trace, evenly_spaced_positions


class SynthSpec(BaseModel):
    """Shape and statistics of a synthetic trace; validated on construction."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    layers: int = Field(4, ge=1, le=1024, description="number of layers (numbered 0..layers-1)")
    kv_heads: int = Field(2, ge=1, description="KV heads per layer")
    q_heads: int = Field(4, ge=1, description="query heads per layer, a multiple of kv_heads")
    head_dim: int = Field(64, ge=1, description="d, coordinates per head vector")
    tokens: int = Field(256, ge=1, description="T, token positions (keys and values per head)")
    queries: int = Field(16, ge=1, description="queries per head, spread evenly up to position T-1")
    query_positions: Optional[list[int]] = Field(
        None, description="explicit ascending query positions in 0..T-1 (overrides `queries`)")
    seed: int = Field(0, ge=0, description="seed of every random draw")
    key_scale: float = Field(1.0, gt=0, description="per-coordinate std of ordinary keys")
    value_scale: float = Field(1.0, gt=0, description="per-coordinate std of values")
    query_scale: float = Field(1.0, gt=0, description="per-coordinate std of queries")
    norm_ratio: float = Field(1.0, ge=1.0, description="mean key norm of layer 0 over the others")
    outlier_channels: int = Field(0, ge=0, description="outlier coordinates per KV head (keys)")
    outlier_scale: float = Field(8.0, gt=0, description="std multiplier of the outlier coordinates")
    key_bias: float = Field(0.0, ge=0, description="rms per coordinate of a constant key component")
    sinks: int = Field(0, ge=0, description="leading tokens that act as attention sinks")
    sink_logit: float = Field(6.0, ge=0, description="logit advantage of a sink key (q.k/sqrt(d))")
    dtype: Literal["float16", "float32"] = Field("float16", description="stored precision")
    values: bool = Field(True, description="store values as well as keys")

    @model_validator(mode="after")
    def _consistent(self) -> "SynthSpec":
        if self.q_heads % self.kv_heads:
            raise ValueError(f"q_heads={self.q_heads} must be a multiple of kv_heads={self.kv_heads}")
        if self.outlier_channels > self.head_dim:
            raise ValueError(f"outlier_channels={self.outlier_channels} exceeds head_dim={self.head_dim}")
        if self.sinks > self.tokens:
            raise ValueError(f"sinks={self.sinks} exceeds tokens={self.tokens}")
        if self.query_positions is None and self.queries > self.tokens:
            raise ValueError(f"queries={self.queries} exceeds tokens={self.tokens}")
        if self.query_positions is not None:
            pos = np.asarray(self.query_positions)
            if pos.size == 0 or np.any(np.diff(pos) <= 0) or pos[0] < 0 or pos[-1] >= self.tokens:
                raise ValueError(f"query_positions must be strictly ascending in 0..{self.tokens - 1}")
        return self

    @classmethod
    def from_options(cls, source: str = "trace synth", **options) -> "SynthSpec":
        """Build from CLI options (None means default); a bad option raises TraceError."""
        given = {key: value for key, value in options.items() if value is not None}
        try:
            return cls(**given)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(part) for part in first["loc"]) or "options"
            raise TraceError(source, where, first["msg"].removeprefix("Value error, ")) from None

    def positions(self) -> np.ndarray:
        """The query positions, int64 ascending."""
        if self.query_positions is not None:
            return np.asarray(self.query_positions, dtype=np.int64)
        return evenly_spaced_positions(self.tokens, self.queries)


def synth_trace(spec: SynthSpec) -> Trace:
    """A synthetic in-memory trace following `spec` (see the module docstring)."""
    positions = spec.positions()
    k, v, q = {}, {}, {}
    for layer in range(spec.layers):
        k[layer], v[layer], q[layer] = _synth_layer(spec, layer, len(positions))
    return Trace.from_arrays(
        k, v if spec.values else None, q, positions, model="synthetic",
        source="synth " + spec.model_dump_json(), dtype=spec.dtype,
        extra_meta={"model_layers": str(spec.layers), "seed": str(spec.seed)})


def _synth_layer(spec: SynthSpec, layer: int, n_queries: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Keys, values [kv_heads, T, d] and queries [q_heads, Nq, d] of one layer, float64."""
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([spec.seed, layer])))
    kv, d, T = spec.kv_heads, spec.head_dim, spec.tokens
    group = spec.q_heads // kv
    keys = rng.standard_normal((kv, T, d))
    for head in range(kv):
        channels = rng.choice(d, size=spec.outlier_channels, replace=False)
        keys[head][:, channels] *= spec.outlier_scale
    keys += spec.key_bias * rng.standard_normal((kv, 1, d))
    keys *= spec.key_scale
    queries = spec.query_scale * rng.standard_normal((spec.q_heads, n_queries, d))
    values = spec.value_scale * rng.standard_normal((kv, T, d))
    direction = rng.standard_normal((kv, d))
    direction /= np.linalg.norm(direction, axis=-1, keepdims=True)
    if spec.sinks:
        sink = np.sqrt(spec.sink_logit * np.sqrt(d)) * direction
        keys[:, : spec.sinks] += sink[:, None, :]
        queries += np.repeat(sink, group, axis=0)[:, None, :]
    if layer == 0:
        keys *= spec.norm_ratio
    return keys, values, queries


def synth_like(real: Trace, *, head_dim: int, layers: Optional[list[int]] = None, seed: int = 0,
               dtype: str = "float16") -> Trace:
    """A synthetic trace of head size `head_dim` with the per-layer statistics of a real trace.

    For every selected layer and head of `real` (d0 coordinates), the per-channel mean and
    standard deviation of its keys, values and queries over positions are measured; channel c of
    the synthetic head (d = head_dim, a multiple or divisor of d0) takes the statistics of real
    channel c * d0 // d, and every vector is scaled by sqrt(d0 / d) so the mean norm of keys,
    values and queries per layer and head stays the real trace's. Token 0's key (the attention
    sink of the later layers) is the real one, resampled the same way. Draws: layer L uses
    `PCG64(SeedSequence([seed, L]))`. Same shape otherwise: heads, tokens, query positions.
    The metadata names the trace as synthetic and the real trace it copies.
    """
    chosen = list(real.layer_indices) if layers is None else list(layers)
    d0 = real.head_dim
    if not (head_dim % d0 == 0 or d0 % head_dim == 0):
        raise TraceError("synth_like", "head_dim", f"a multiple or divisor of the real head_dim {d0}, got {head_dim}")
    channel = np.arange(head_dim) * d0 // head_dim
    scale = np.sqrt(d0 / head_dim)
    k, v, q = {}, {}, {}
    for layer in chosen:
        rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, layer])))
        keys = np.asarray(real.k(layer), dtype=np.float64)
        k[layer] = _resample(rng, keys, channel, scale)
        k[layer][:, 0] = scale * keys[:, 0][:, channel]
        if real.has_values:
            v[layer] = _resample(rng, np.asarray(real.v(layer), dtype=np.float64), channel, scale)
        q[layer] = _resample(rng, np.asarray(real.q(layer), dtype=np.float64), channel, scale)
    meta = {"model_layers": str(real.model_layers or max(chosen) + 1), "seed": str(seed),
            "synthetic": "true", "statistics_of": f"{real.name} ({real.model}), sha256 {real.digest()}"}
    return Trace.from_arrays(k, v if real.has_values else None, q, real.q_positions,
                             model=f"synthetic: per-channel Gaussian with the statistics of {real.model}",
                             source=f"synth_like(head_dim={head_dim}, layers={chosen}, seed={seed}) of {real.name}",
                             dtype=dtype, extra_meta=meta)


def _resample(rng: np.random.Generator, real: np.ndarray, channel: np.ndarray, scale: float) -> np.ndarray:
    """Gaussian draws [heads, n, d] with the per-(head, channel) mean and std of `real`, channels
    mapped by `channel`, times `scale`."""
    mean = real.mean(axis=1)[:, channel]
    std = real.std(axis=1)[:, channel]
    draws = rng.standard_normal((real.shape[0], real.shape[1], channel.size))
    return scale * (mean[:, None, :] + std[:, None, :] * draws)
