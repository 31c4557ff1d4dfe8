"""Algorithm 1 (PAPER.md section 3): gradient-free selection of the sign ROM, per layer.

Per layer: normalise the calibration vectors (the keys of every KV head, and optionally the
values: the layer's one sign vector serves both), score every candidate sign vector (see
`axelsim.calibrate.candidates`) by the mean squared quantization error of the unit vectors
with the fixed float64 Lloyd-Max codebook, keep the lowest. Ties keep the lower candidate
index, so the macro's default vector (candidate 0) is kept unless another is strictly better.

The sign ROM holds one vector per layer (docs/architecture.md). `per_head=True` also selects a
vector per (layer, KV head) and reports what a per-head ROM would gain; the saved ROM stays
the per-layer choice, which is what a macro can load.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Optional

import numpy as np

from axelsim.calibrate.candidates import candidate_seeds, candidate_signs, paper_candidate_seeds, paper_candidate_signs
from axelsim.calibrate.search import candidate_mse, unit_rows
from axelsim.errors import ConfigError, TraceError
from axelsim.io import atomic_path
from axelsim.numerics.codebook import check_dim_bits, lloyd_max_codebook
from axelsim.numerics.hadamard import SignRom, sign_vector

Progress = Callable[[Iterable], Iterable]
"""Wraps an iterable to show progress (e.g. `tqdm.tqdm`); None runs silently."""


@dataclass(frozen=True)
class Selection:
    """The outcome for one layer (head None: all KV heads together) or one (layer, head).

    MSEs are mean squared errors of unit vectors (dimensionless; compare with the codebook's
    distortion, about 0.03455 for b = 3): `before` under candidate 0 (the macro's default
    vector), `after` under the chosen candidate. `value_*` are None unless values were used;
    the objective minimised is key MSE + value MSE.
    """

    layer: int
    head: Optional[int]
    chosen: int
    chosen_seed: int
    key_mse_before: float
    key_mse_after: float
    value_mse_before: Optional[float]
    value_mse_after: Optional[float]
    vectors: int
    seconds: float
    signs: np.ndarray = field(repr=False)

    @property
    def objective_before(self) -> float:
        return self.key_mse_before + (self.value_mse_before or 0.0)

    @property
    def objective_after(self) -> float:
        return self.key_mse_after + (self.value_mse_after or 0.0)

    def to_dict(self) -> dict:
        return {
            "layer": self.layer, "head": self.head, "chosen_candidate": self.chosen,
            "chosen_seed": self.chosen_seed, "key_mse_before": self.key_mse_before,
            "key_mse_after": self.key_mse_after, "value_mse_before": self.value_mse_before,
            "value_mse_after": self.value_mse_after, "vectors": self.vectors,
            "seconds": self.seconds,
        }


@dataclass(frozen=True)
class CalibrationResult:
    """Per-layer selections, the resulting sign ROM and the settings that produced them."""

    trace_name: str
    bits: int
    candidates: int
    seed: int
    macro_seed: int
    include_values: bool
    layers: tuple[Selection, ...]
    heads: tuple[Selection, ...]
    rom: SignRom
    distortion: float
    seconds: float

    def save(self, path: str | Path) -> Path:
        """Write the sign ROM as a signs YAML (`SignRom.to_file`), atomically; returns the path."""
        with atomic_path(path) as temp:
            self.rom.to_file(temp)
        return Path(path)

    def to_dict(self) -> dict:
        """JSON-ready summary: settings, per-layer (and per-head) MSEs, seconds."""
        return {
            "trace": self.trace_name, "bits": self.bits, "candidates": self.candidates,
            "seed": self.seed, "macro_seed": self.macro_seed,
            "include_values": self.include_values,
            "gaussian_distortion": self.distortion, "seconds": self.seconds,
            "layers": [s.to_dict() for s in self.layers],
            "heads": [s.to_dict() for s in self.heads],
        }

    def table(self) -> str:
        """A text table: one line per layer with the objective before/after (key MSE, or key +
        value MSE with include_values: the header says which), each kind's MSE over the Gaussian
        ideal (before>after; keys and values in their own columns), the gain and the time."""
        lines = [f"calibrate-signs {self.trace_name}: b={self.bits}, {self.candidates} candidates, "
                 f"Gaussian distortion {self.distortion:.5f}, objective: "
                 f"{'key + value MSE' if self.include_values else 'key MSE'}"]
        kind = "k+v" if self.include_values else "k"
        header = (f"{'layer':>5} {'chosen':>6} {kind + ' mse before':>15} {kind + ' mse after':>14} "
                  f"{'k x ideal':>13}")
        if self.include_values:
            header += f" {'v x ideal':>13}"
        lines.append(header + f" {'gain %':>7} {'s':>6}")
        for s in self.layers:
            gain = 100.0 * (1.0 - s.objective_after / s.objective_before) if s.objective_before else 0.0
            row = (f"{s.layer:>5} {s.chosen:>6} {s.objective_before:>15.5f} {s.objective_after:>14.5f} "
                   f"{self._ideal(s.key_mse_before, s.key_mse_after)}")
            if self.include_values:
                row += f" {self._ideal(s.value_mse_before, s.value_mse_after)}"
            lines.append(row + f" {gain:>7.2f} {s.seconds:>6.2f}")
        lines.append(f"total {self.seconds:.2f} s")
        return "\n".join(lines)

    def _ideal(self, before: float, after: float) -> str:
        """'before>after' as multiples of the Gaussian distortion, 13 characters."""
        return f"{before / self.distortion:>6.3f}>{after / self.distortion:<6.3f}"


def _select(layer: int, head: Optional[int], keys: np.ndarray, values: Optional[np.ndarray],
            signs: np.ndarray, seeds: list[int], codebook) -> Selection:
    """Score all candidates on these vectors and keep the best (lowest index on ties)."""
    start = time.perf_counter()
    key_units = unit_rows(keys)
    key_mse = candidate_mse(key_units, signs, codebook.centroids, codebook.boundaries)
    value_mse, n_vectors = None, len(key_units)
    objective = key_mse
    if values is not None:
        value_units = unit_rows(values)
        value_mse = candidate_mse(value_units, signs, codebook.centroids, codebook.boundaries)
        objective = key_mse + value_mse
        n_vectors += len(value_units)
    best = int(np.argmin(objective))
    return Selection(
        layer=layer, head=head, chosen=best, chosen_seed=seeds[best],
        key_mse_before=float(key_mse[0]), key_mse_after=float(key_mse[best]),
        value_mse_before=None if value_mse is None else float(value_mse[0]),
        value_mse_after=None if value_mse is None else float(value_mse[best]),
        vectors=n_vectors, seconds=time.perf_counter() - start, signs=signs[best].copy())


def _subset(keys: np.ndarray, max_vectors: int, seed: int, layer: int) -> np.ndarray:
    """At most max_vectors rows of keys [H, T, d] (all heads pooled), sampled without replacement."""
    rows = np.asarray(keys).reshape(-1, np.shape(keys)[-1])
    if len(rows) <= max_vectors:
        return rows
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([int(seed), int(layer)])))
    return rows[np.sort(rng.choice(len(rows), size=max_vectors, replace=False))]


def calibrate_signs(trace, bits: int, candidates: int = 200, seed: int = 0, per_head: bool = False,
                    include_values: bool = False, progress: Optional[Progress] = None,
                    macro_seed: int = 0, rule: str = "axelsim", max_vectors: Optional[int] = None,
                    base_rom: Optional[SignRom] = None) -> CalibrationResult:
    """Algorithm 1 on every layer of `trace` (an `axelsim.trace.Trace`).

    bits: codebook bit-width (1..8); candidates: C >= 1 sign vectors per layer (candidate 0 is
    `sign_vector(macro_seed, layer, d)`); seed: calibration seed (see candidates.py);
    per_head: also select per (layer, KV head); include_values: score keys + values.
    The ROM covers layers 0..n-1 of the model (n from the trace's `model_layers`, else the
    highest layer + 1); a layer absent from the trace keeps its candidate-0 vector.
    rule "paper": the candidates of the paper's eval/sign_optimization.py (seeds
    (42 + 1000·layer)·10000 + c under `paper_sign_vector`; candidate 0 is not the default
    vector there, so the result can be worse than the default). max_vectors: score a random
    subset of at most this many key vectors per layer (the paper: 2,000), drawn without
    replacement by Generator(PCG64(SeedSequence([seed, layer]))) (the paper draws with
    torch.randperm: another subset). base_rom: the vectors of layers the trace does not hold
    (default: the seed rule of macro_seed).
    Raises ConfigError on bad settings, TraceError when values are asked of a key-only trace.
    """
    source = f"calibrate-signs {trace.name}"
    dim = trace.head_dim
    check_dim_bits(dim, bits, source)
    if not (isinstance(candidates, int) and candidates >= 1):
        raise ConfigError(source, "candidates", f"expected an integer >= 1, got {candidates!r}")
    if not (isinstance(seed, int) and seed >= 0):
        raise ConfigError(source, "seed", f"expected an integer >= 0, got {seed!r}")
    if include_values and not trace.has_values:
        raise TraceError(source, "layers.<L>.v", "values for --include-values (the trace holds keys only)")
    if rule not in ("axelsim", "paper"):
        raise ConfigError(source, "rule", f"expected 'axelsim' or 'paper', got {rule!r}")
    if max_vectors is not None and not (isinstance(max_vectors, int) and max_vectors >= 1):
        raise ConfigError(source, "max_vectors", f"expected an integer >= 1, got {max_vectors!r}")
    if max_vectors is not None and per_head:
        raise ConfigError(source, "max_vectors", "a per-layer subset; not with per_head")
    codebook = lloyd_max_codebook(dim, bits)
    start = time.perf_counter()
    layers, heads = [], []
    indices = trace.layer_indices
    for layer in (progress(indices) if progress else indices):
        if rule == "paper":
            seeds, signs = paper_candidate_seeds(layer, candidates), paper_candidate_signs(layer, dim, candidates)
        else:
            seeds = candidate_seeds(candidates, seed, macro_seed)
            signs = candidate_signs(layer, dim, candidates, seed, macro_seed)
        keys = trace.k(layer)
        if max_vectors is not None:
            keys = _subset(keys, max_vectors, seed, layer)
        values = trace.v(layer) if include_values else None
        layers.append(_select(layer, None, keys, values, signs, seeds, codebook))
        if per_head:
            for head in range(keys.shape[0]):
                heads.append(_select(layer, head, keys[head], None if values is None else values[head],
                                     signs, seeds, codebook))
    n_layers = max(trace.model_layers or 0, max(indices) + 1)
    if base_rom is not None:
        vectors = np.array(base_rom.vectors[:n_layers], dtype=np.int8)
    else:
        vectors = np.stack([sign_vector(macro_seed, layer, dim) for layer in range(n_layers)])
    for s in layers:
        vectors[s.layer] = s.signs
    kinds = "keys+values" if include_values else "keys"
    provenance = (f"axelsim calibrate-signs: trace {trace.name} ({trace.digest()[:16]}), b={bits}, "
                  f"{candidates} candidates ({rule} rule), seed {seed}, macro seed {macro_seed}, {kinds}"
                  + (f", at most {max_vectors} keys per layer" if max_vectors else ""))
    return CalibrationResult(
        trace_name=trace.name, bits=bits, candidates=candidates, seed=seed, macro_seed=macro_seed,
        include_values=include_values, layers=tuple(layers), heads=tuple(heads),
        rom=SignRom.from_vectors(vectors, provenance), distortion=codebook.distortion,
        seconds=time.perf_counter() - start)
