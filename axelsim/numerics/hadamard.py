"""The Hadamard rotation R = H diag(s) / sqrt(d): float64 FWHT reference, seed rule, sign ROM.

The sign ROM holds one vector s in {-1, +1}^d per layer (d bits per layer, 16 bytes for
d = 128), shared by the keys, values and queries of that layer.
"""

from __future__ import annotations


import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Optional

import numpy as np
import yaml

from axelsim.errors import ConfigError

SIGNS_FORMAT = "axelsim-signs"
SIGNS_VERSION = 1


def fwht_f64(x: np.ndarray) -> np.ndarray:
    """Normalised Walsh-Hadamard transform H x / sqrt(d) over the last axis, in float64.

    Stages h = 1, 2, ..., d/2 pair element j0+k with j0+k+h (the contract's order; the
    float64 result does not depend on it beyond rounding). H is symmetric and H H = d I, so
    this function is its own inverse.
    """
    y = np.array(x, dtype=np.float64, copy=True)
    d = y.shape[-1]
    if d < 1 or d & (d - 1):
        raise ValueError(f"FWHT length must be a power of two, got {d}")
    lead = y.shape[:-1]
    h = 1
    while h < d:
        blocks = y.reshape(lead + (d // (2 * h), 2, h))
        a = blocks[..., 0, :].copy()
        c = blocks[..., 1, :]
        blocks[..., 0, :] = a + c
        blocks[..., 1, :] = a - c
        h *= 2
    return y / math.sqrt(d)


def rotate_f64(x: np.ndarray, signs: np.ndarray) -> np.ndarray:
    """R x = H (s * x) / sqrt(d) over the last axis, float64."""
    return fwht_f64(np.asarray(x, dtype=np.float64) * signs)


def inverse_rotate_f64(y: np.ndarray, signs: np.ndarray) -> np.ndarray:
    """R^T y = s * (H y / sqrt(d)) over the last axis, float64."""
    return fwht_f64(y) * signs


def sign_vector(seed: int, layer: int, dim: int) -> np.ndarray:
    """The seed rule (docs/architecture.md): s = 1 - 2 * bits, int8 [dim] of +-1.

    bits = Generator(PCG64(SeedSequence([seed, layer]))).integers(0, 2, size=dim).
    """
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([int(seed), int(layer)])))
    bits = rng.integers(0, 2, size=dim)
    return (1 - 2 * bits).astype(np.int8)


PAPER_SEED = 42
"""The default seed of the paper's code (Axelidea/AXELRAM, eval/ppl_eval.py)."""
PAPER_VALUE_OFFSET = 500
"""The paper's value vectors use layer + 500 in the seed formula."""


def paper_seed(seed: int, layer: int, tensor: str) -> int:
    """The integer seed of one layer's key ('k') or value ('v') vector in the paper's code:
    seed + 1000 * layer for keys, seed + 1000 * (layer + 500) for values."""
    offset = PAPER_VALUE_OFFSET if tensor == "v" else 0
    return int(seed) + 1000 * (int(layer) + offset)


def paper_sign_vector(seed: int, dim: int) -> np.ndarray:
    """The paper's sign rule (make_sign_vector of Axelidea/AXELRAM), without torch, int8 [dim].

    The paper draws bits = torch.randint(0, 2, (dim,)) from a CPU torch.Generator seeded with
    manual_seed(seed), then s = 2 * bits - 1 (bit 1 means +1: the opposite of our seed rule).
    torch's CPU generator is MT19937 initialised by the reference init_genrand(seed mod 2^32),
    and randint over a range below 2^32 takes one 32-bit draw per element, modulo the range:
    bit i is the lowest bit of the i-th MT19937 output. numpy's legacy RandomState(seed) has
    the same initialisation and returns those outputs from randint(0, 2^32), so this function
    equals torch's vectors (tests/data/paper_signs.yaml holds them for three seeds, computed
    with torch 2.13; tests/test_paper_protocol.py also compares against torch when installed).
    """
    if not 0 <= int(seed) < 2**32:
        raise ConfigError("signs", "seed", f"expected a paper seed in 0..2^32-1, got {seed}")
    raw = np.random.RandomState(int(seed)).randint(0, 2**32, size=dim, dtype=np.uint64)
    return (2 * (raw & 1).astype(np.int8) - 1).astype(np.int8)


def paper_sign_roms(seed: int, n_layers: int, dim: int) -> tuple["SignRom", "SignRom"]:
    """The paper's protocol: (key ROM, value ROM), one vector each per layer (2 d bits per
    layer: 32 bytes at d = 128). Queries are rotated with the key vectors."""
    roms = []
    for tensor in ("k", "v"):
        vectors = np.stack([paper_sign_vector(paper_seed(seed, layer, tensor), dim) for layer in range(n_layers)])
        rom = SignRom.from_vectors(vectors, f"paper rule, seed {seed}, {tensor} vectors")
        roms.append(replace(rom, source=f"<paper seed {seed} {tensor}>"))
    return roms[0], roms[1]


def _encode(vector: np.ndarray) -> str:
    return "".join("+" if v > 0 else "-" for v in vector.tolist())


def _decode(entry, dim: int, source: str, where: str) -> np.ndarray:
    """A layer's signs from a '+-' string or a list of +-1; ConfigError if malformed."""
    expected = f"expected a string of {dim} '+'/'-' characters or a list of {dim} values +1/-1"
    if isinstance(entry, str):
        if len(entry) != dim or set(entry) - {"+", "-"}:
            raise ConfigError(source, where, f"{expected}, got {entry[:40]!r}")
        return np.array([1 if ch == "+" else -1 for ch in entry], dtype=np.int8)
    if isinstance(entry, list) and len(entry) == dim and all(
        type(v) is int and v in (1, -1) for v in entry
    ):
        return np.array(entry, dtype=np.int8)
    raise ConfigError(source, where, expected)


@dataclass(frozen=True)
class SignRom:
    """Per-layer sign vectors s in {-1, +1}^d for layers 0..n_layers-1, with provenance text.

    A ROM from a file or an array holds every row; a ROM from the seed rule derives a row when
    it is first asked for, so a trace holding only layer 900 costs one vector, not 901.
    """

    rows: dict
    """{layer: int8 [dim]} of the rows held so far (all of them unless `seed` is set)."""
    n_layers: int
    dim: int
    provenance: str
    source: str = "<signs>"
    seed: Optional[int] = None
    """The seed-rule seed of rows derived on demand (None: every row is in `rows`)."""
    values: Optional["SignRom"] = None
    """The value vectors when values have their own ROM (the paper's protocol: `paper_sign_roms`);
    None: these rows rotate keys, queries and values alike."""

    def for_values(self) -> "SignRom":
        """The ROM whose rows rotate the values."""
        return self.values if self.values is not None else self

    @property
    def vectors(self) -> np.ndarray:
        """Every row, int8 [n_layers, dim] (built in full: n_layers * dim bytes)."""
        return np.stack([self.vector(layer) for layer in range(self.n_layers)])

    @classmethod
    def from_seed(cls, seed: int, n_layers: int, dim: int) -> "SignRom":
        """Layers 0..n_layers-1 from the seed rule (each row derived when first used)."""
        return cls({}, int(n_layers), int(dim), f"seed {seed}", f"<seed {seed}>", int(seed))

    @classmethod
    def from_vectors(cls, vectors: np.ndarray, provenance: str) -> "SignRom":
        """From an explicit [n_layers, dim] array of +-1 (e.g. the output of calibration)."""
        arr = np.array(vectors, dtype=np.int8)
        if arr.ndim != 2 or not np.all(np.abs(arr) == 1):
            raise ValueError("sign vectors must be a [n_layers, dim] array of +-1")
        arr.setflags(write=False)
        return cls(dict(enumerate(arr)), arr.shape[0], arr.shape[1], provenance, "<array>")

    @classmethod
    def from_file(cls, path: str | Path) -> "SignRom":
        """Read a signs YAML (see `to_file`); ConfigError naming the file and key if malformed.

        The file goes through the macro files' hardened reader (a regular file of bounded
        size, UTF-8, no tags that fail, no aliases, bounded nesting and numbers), and its
        layer count is bounded by MAX_MODEL_LAYERS.
        """
        from axelsim.config.limits import MAX_MODEL_LAYERS
        from axelsim.config.load import one_line, read_yaml_mapping

        source = one_line(path)
        data = read_yaml_mapping(path, "signs")
        if data.get("format") != SIGNS_FORMAT:
            raise ConfigError(source, "format", f"expected {SIGNS_FORMAT!r}, got {one_line(repr(data.get('format')))[:60]}")
        dim, n_layers = data.get("dim"), data.get("n_layers")
        if not (type(dim) is int and 8 <= dim <= 1024 and dim & (dim - 1) == 0):
            raise ConfigError(source, "dim", f"expected a power of two from 8 to 1024, got {one_line(repr(dim))[:60]}")
        if not (type(n_layers) is int and 1 <= n_layers <= MAX_MODEL_LAYERS):
            raise ConfigError(source, "n_layers", f"expected an integer from 1 to {MAX_MODEL_LAYERS}, "
                              f"got {one_line(repr(n_layers))[:60]}")
        layers = data.get("layers")
        if not (isinstance(layers, dict) and all(type(key) is int for key in layers)
                and sorted(layers) == list(range(n_layers))):
            raise ConfigError(source, "layers", f"expected a mapping with keys 0..{n_layers - 1}")
        rows = {i: _decode(layers[i], dim, source, f"layers.{i}") for i in range(n_layers)}
        for row in rows.values():
            row.setflags(write=False)
        return cls(rows, n_layers, dim, one_line(data.get("provenance", "")), source)

    def to_file(self, path: str | Path) -> None:
        """Write the YAML: header (format, version, dim, n_layers, provenance), layers as '+-'."""
        data = {
            "format": SIGNS_FORMAT,
            "version": SIGNS_VERSION,
            "dim": self.dim,
            "n_layers": self.n_layers,
            "provenance": self.provenance,
            "layers": {i: _encode(self.vectors[i]) for i in range(self.n_layers)},
        }
        Path(path).write_text(yaml.safe_dump(data, sort_keys=False, width=4096))

    def vector(self, layer: int) -> np.ndarray:
        """The sign vector of one layer (int8 [dim], read-only); ConfigError if the ROM has no such layer."""
        if not 0 <= layer < self.n_layers:
            raise ConfigError(self.source, f"layers.{layer}", f"expected a layer in 0..{self.n_layers - 1}")
        row = self.rows.get(layer)
        if row is None:  # a seed-rule ROM: derive the row once
            row = sign_vector(self.seed, layer, self.dim)
            row.setflags(write=False)
            self.rows[layer] = row
        return row

    def image(self) -> bytes:
        """ROM image: d bits per layer, bit i of a layer at byte i//8, bit i%8; 1 means -1."""
        bits = (self.vectors < 0).astype(np.uint8)
        return np.packbits(bits, axis=1, bitorder="little").tobytes()

    @property
    def rom_bytes(self) -> int:
        return self.n_layers * self.dim // 8
