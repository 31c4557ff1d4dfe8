"""The KV-cache trace file: read (memory-mapped), validate, write (atomically).

A trace is one safetensors file (see docs/trace_format.md):
  `layers.<L>.k`, `layers.<L>.v`  [kv_heads, T, head_dim]  keys after RoPE, values
  `layers.<L>.q`                  [q_heads, Nq, head_dim]  queries after RoPE
  `q_positions`                   [Nq] int64               token position of each query
plus string metadata (`format`, `version`, `model`, `source`, `n_layers`, `kv_heads`,
`q_heads`, `head_dim`, `tokens`, `dtype`; optionally `model_layers`).

Reading parses the safetensors header itself and maps every tensor with `numpy.memmap`, so a
large trace is never loaded whole; accessors copy out one layer at a time as float32. Every
defect of a file raises `TraceError(file, tensor or metadata key, expectation)`.
"""

from __future__ import annotations

import hashlib
import json
import math
import mmap
import os
import re
import struct
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np
from safetensors.numpy import save_file

from axelsim.errors import TraceError
from axelsim.config.limits import MAX_HEADS, MAX_MODEL_LAYERS, MAX_TOKENS
from axelsim.io import NotRegularFile, atomic_path, open_regular

FORMAT_NAME = "axelsim-kv-trace"
FORMAT_VERSION = "1"
FLOAT_DTYPES = {"float16": np.dtype(np.float16), "float32": np.dtype(np.float32)}
REQUIRED_META = (
    "format", "version", "model", "source", "n_layers", "kv_heads", "q_heads", "head_dim",
    "tokens", "dtype",
)
_INT_META = ("n_layers", "kv_heads", "q_heads", "head_dim", "tokens")
_META_BOUNDS = {"n_layers": MAX_MODEL_LAYERS, "kv_heads": MAX_HEADS, "q_heads": MAX_HEADS, "head_dim": 1 << 16,
                "tokens": MAX_TOKENS}
"""Upper bounds of the metadata counts (axelsim.config.limits); head_dim: any the file may hold."""
_SAFETENSORS_DTYPES = {
    "F16": np.dtype(np.float16), "F32": np.dtype(np.float32), "F64": np.dtype(np.float64),
    "I8": np.dtype(np.int8), "I16": np.dtype(np.int16), "I32": np.dtype(np.int32),
    "I64": np.dtype(np.int64), "U8": np.dtype(np.uint8), "BOOL": np.dtype(np.bool_),
}
_MAX_HEADER_BYTES = 100_000_000  # the safetensors library's own cap
_MAX_NDIM = 3  # trace tensors are [heads, positions, head_dim] or [Nq]
_TENSOR_NAME = re.compile(r"^layers\.(0|[1-9][0-9]{0,8})\.(k|v|q)$")  # no leading zeros, < 10^9
_FINITE_CHUNK = 1 << 22  # elements per isfinite call: bounds the memory of the check


def _printable(text: object) -> str:
    """`text` with every non-printable character (newline, NUL, ...) escaped as in repr():
    names read from a file go into one-line errors."""
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in str(text))


def _is_count(value: object) -> bool:
    """A non-negative JSON integer (not a bool, not a float such as 1.0 or Infinity)."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _as_slice(index: np.ndarray) -> "slice | np.ndarray":
    """An ascending run of consecutive indices as the equal slice (indexing with it gives a view),
    any other index array unchanged (indexing with it copies)."""
    if index.size and int(index[-1]) - int(index[0]) == index.size - 1 and bool(np.all(np.diff(index) == 1)):
        return slice(int(index[0]), int(index[-1]) + 1)
    return index


def _float32(x: np.ndarray) -> np.ndarray:
    """x as a new float32 array: float16 through the compiled widening (axelsim.trace.widen,
    imported on first use, so that reading a trace's header or metadata never loads numba)."""
    from axelsim.trace.widen import as_float32

    return as_float32(x)


class Trace:
    """A KV-cache trace, or a selection (view) of one; immutable.

    Build one with `load_trace` or `Trace.from_arrays`; narrow it with `with_selection`.
    Vectors are in the model's activation units; `k`, `v`, `q` return float32 copies.
    """

    def __init__(self, arrays: Mapping[str, np.ndarray], meta: Mapping[str, str],
                 path: Path | None, selection: "_Selection | None" = None):
        """Private: use `load_trace` or `Trace.from_arrays` (they validate first)."""
        self._arrays = dict(arrays)
        self._base_meta = dict(meta)
        self.path = path
        self._sel = selection or _Selection.full(self._arrays, meta)
        self.meta = self._sel.view_meta(self._base_meta)

    # ---- construction -------------------------------------------------------------------
    @classmethod
    def from_arrays(cls, k: Mapping[int, np.ndarray], v: Mapping[int, np.ndarray] | None,
                    q: Mapping[int, np.ndarray], q_positions: Sequence[int],
                    model: str = "synthetic", source: str = "in-memory arrays",
                    dtype: str = "float32", extra_meta: Mapping[str, str] | None = None) -> "Trace":
        """An in-memory trace from per-layer arrays, validated exactly like a file.

        k, v: {layer: [kv_heads, T, d]}; q: {layer: [q_heads, Nq, d]}; q_positions: [Nq];
        dtype: the stored precision, "float16" or "float32" (values are rounded to it).
        """
        if dtype not in FLOAT_DTYPES:
            raise TraceError(source, "metadata.dtype", f"one of {sorted(FLOAT_DTYPES)}, got {dtype!r}")
        store = FLOAT_DTYPES[dtype]
        arrays: dict[str, np.ndarray] = {}
        for kind, per_layer in (("k", k), ("v", v or {}), ("q", q)):
            for layer, arr in per_layer.items():
                with np.errstate(over="ignore"):
                    arrays[f"layers.{int(layer)}.{kind}"] = np.ascontiguousarray(arr, dtype=store)
        arrays["q_positions"] = np.ascontiguousarray(q_positions, dtype=np.int64)
        if not k or not q:
            raise TraceError(source, "layers.<L>.k", "at least one layer of keys and of queries")
        first_k, first_q = arrays[f"layers.{min(k)}.k"], arrays[f"layers.{min(q)}.q"]
        if first_k.ndim != 3 or first_q.ndim != 3:
            raise TraceError(source, f"layers.{min(k)}.k", "keys [kv_heads, T, d] and queries [q_heads, Nq, d]")
        meta = {
            "format": FORMAT_NAME, "version": FORMAT_VERSION, "model": str(model),
            "source": str(source), "n_layers": str(len(k)), "kv_heads": str(first_k.shape[0]),
            "q_heads": str(first_q.shape[0]), "head_dim": str(first_k.shape[2]),
            "tokens": str(first_k.shape[1]), "dtype": dtype,
        }
        meta.update({str(key): str(val) for key, val in (extra_meta or {}).items()})
        validate_arrays(source, meta, arrays)
        return cls(arrays, meta, None)

    # ---- shape --------------------------------------------------------------------------
    @property
    def model(self) -> str:
        return self.meta["model"]

    @property
    def n_layers(self) -> int:
        """Number of layers held (not the depth of the model; see `model_layers`)."""
        return len(self._sel.layers)

    @property
    def model_layers(self) -> int | None:
        """Depth of the source model when the metadata records it."""
        value = self.meta.get("model_layers")
        return int(value) if value is not None else None

    @property
    def layer_indices(self) -> list[int]:
        return list(self._sel.layers)

    @property
    def kv_heads(self) -> int:
        return len(self._sel.kv_heads)

    @property
    def q_heads(self) -> int:
        return len(self._sel.q_heads)

    @property
    def head_dim(self) -> int:
        return int(self.meta["head_dim"])

    @property
    def tokens(self) -> int:
        return self._sel.tokens

    @property
    def q_positions(self) -> np.ndarray:
        """Token position of each query, int64 [Nq], strictly ascending."""
        return self._arrays["q_positions"][self._sel.queries].copy()

    @property
    def n_queries(self) -> int:
        return len(self._sel.queries)

    @property
    def dtype(self) -> str:
        """Stored precision: "float16" or "float32"."""
        return self.meta["dtype"]

    @property
    def has_values(self) -> bool:
        return f"layers.{self._sel.layers[0]}.v" in self._arrays

    @property
    def name(self) -> str:
        """The file stem, or the model name for an in-memory trace."""
        return self.path.stem if self.path is not None else self.model

    # ---- data ---------------------------------------------------------------------------
    def k(self, layer: int) -> np.ndarray:
        """Keys after RoPE of `layer`: float32 [kv_heads, T, head_dim] (a new array)."""
        return _float32(self._selected(layer, "k"))

    def v(self, layer: int) -> np.ndarray:
        """Values of `layer`: float32 [kv_heads, T, head_dim] (a new array)."""
        if not self.has_values:
            raise KeyError(f"trace {self.name} holds no values")
        return _float32(self._selected(layer, "v"))

    def q(self, layer: int) -> np.ndarray:
        """Queries after RoPE of `layer`: float32 [q_heads, Nq, head_dim] (a new array)."""
        return _float32(self._selected(layer, "q"))

    def stored(self, layer: int, kind: str, copy: bool = True) -> np.ndarray:
        """Tensor `kind` ("k", "v" or "q") of `layer` in its stored dtype (float16 or float32):
        the same values as `k`/`v`/`q` (their float32 conversion is exact) at half the memory and
        without the conversion, for a reader that converts batches itself. A copy; with
        `copy=False`, for a reader that only reads, a view of the trace's own array (the file's
        mapping, read only; an in-memory trace's array) where the view's heads and queries are
        each one run of consecutive indices (else a copy), so a replay does not hold a second
        copy of the trace."""
        if kind not in ("k", "v", "q"):
            raise KeyError(f"tensor kind {kind!r} is not one of k, v, q")
        if kind == "v" and not self.has_values:
            raise KeyError(f"trace {self.name} holds no values")
        return self._stored(layer, kind) if copy else self._selected(layer, kind)

    def _stored(self, layer: int, kind: str) -> np.ndarray:
        """One tensor of the view in its stored dtype (a copy, never the mapped file)."""
        chosen = self._selected(layer, kind)
        return chosen.copy() if np.may_share_memory(chosen, self._arrays[f"layers.{layer}.{kind}"]) else chosen

    def _selected(self, layer: int, kind: str) -> np.ndarray:
        """One tensor of the view in its stored dtype: a view of the underlying array where the
        selected heads (and queries) are one run of consecutive indices (basic slicing), else a
        copy (fancy indexing). Never written through (a file's mapped arrays are read only)."""
        if layer not in self._sel.layers:
            raise KeyError(f"layer {layer} is not in trace {self.name} (layers {self.layer_indices})")
        full = self._arrays[f"layers.{layer}.{kind}"]
        if kind == "q":
            return full[_as_slice(self._sel.q_heads)][:, _as_slice(self._sel.queries)]
        return full[_as_slice(self._sel.kv_heads)][:, : self._sel.tokens]

    def tensors(self) -> dict[str, np.ndarray]:
        """Every tensor of the view in its stored dtype, named as in the file (copies)."""
        out = {}
        for layer in self._sel.layers:
            for kind in ("k", "v", "q") if self.has_values else ("k", "q"):
                out[f"layers.{layer}.{kind}"] = np.ascontiguousarray(self._stored(layer, kind))
        out["q_positions"] = self.q_positions
        return out

    def digest(self) -> str:
        """sha256 hex of the view's tensors (name, dtype, shape, bytes) and metadata."""
        h = hashlib.sha256()
        for name in sorted(self.tensor_names()):
            if name == "q_positions":
                arr = self.q_positions
            else:
                _, layer, kind = name.split(".")
                arr = np.ascontiguousarray(self._stored(int(layer), kind))
            h.update(f"{name}|{arr.dtype.str}|{arr.shape}|".encode())
            h.update(arr.tobytes())
        h.update(json.dumps(self.meta, sort_keys=True).encode())
        return h.hexdigest()

    def tensor_names(self) -> list[str]:
        kinds = ("k", "v", "q") if self.has_values else ("k", "q")
        return [f"layers.{L}.{kind}" for L in self._sel.layers for kind in kinds] + ["q_positions"]

    # ---- views --------------------------------------------------------------------------
    def with_selection(self, layers: Iterable[int] | None = None,
                       kv_heads: Iterable[int] | None = None,
                       queries: int | Iterable[int] | None = None,
                       tokens: int | None = None) -> "Trace":
        """A view of some layers, KV heads (with their query heads), queries and tokens.

        layers: layer numbers held by this trace; kv_heads: indices into this view's KV heads
        (query head h goes with KV head h // group); queries: an int N (N queries evenly
        spread, the last one kept) or indices into this view's queries; tokens: keep the first
        `tokens` positions and the queries among them. Raises TraceError on a bad selection.
        """
        sel = self._sel.narrow(self.name, self._arrays["q_positions"], layers, kv_heads, queries, tokens)
        return Trace(self._arrays, self._base_meta, self.path, sel)

    def __repr__(self) -> str:
        return (f"Trace({self.name!r}, layers={self.n_layers}, kv_heads={self.kv_heads}, "
                f"q_heads={self.q_heads}, head_dim={self.head_dim}, tokens={self.tokens}, "
                f"queries={self.n_queries}, dtype={self.dtype})")


class _Selection:
    """Which layers, heads, queries and tokens of the underlying arrays a Trace shows."""

    def __init__(self, layers: tuple[int, ...], kv_heads: np.ndarray, q_heads: np.ndarray,
                 queries: np.ndarray, tokens: int):
        self.layers = layers
        self.kv_heads = kv_heads
        self.q_heads = q_heads
        self.queries = queries
        self.tokens = tokens

    @classmethod
    def full(cls, arrays: Mapping[str, np.ndarray], meta: Mapping[str, str]) -> "_Selection":
        layers = tuple(sorted({int(m.group(1)) for m in map(_TENSOR_NAME.match, arrays) if m}))
        return cls(layers, np.arange(int(meta["kv_heads"])), np.arange(int(meta["q_heads"])),
                   np.arange(len(arrays["q_positions"])), int(meta["tokens"]))

    def view_meta(self, base: Mapping[str, str]) -> dict[str, str]:
        meta = dict(base)
        meta.update(n_layers=str(len(self.layers)), kv_heads=str(len(self.kv_heads)),
                    q_heads=str(len(self.q_heads)), tokens=str(self.tokens))
        return meta

    def narrow(self, source: str, all_positions: np.ndarray, layers, kv_heads, queries,
               tokens) -> "_Selection":
        new_layers = self.layers
        if layers is not None:
            new_layers = tuple(sorted({int(x) for x in layers}))
            absent = sorted(set(new_layers) - set(self.layers))
            if not new_layers or absent:
                raise TraceError(source, "layers", f"layer numbers the trace holds (--layers {_ranges(self.layers)}), "
                                 f"got {_ranges(absent) if absent else 'none'}")
        kv, qh = self.kv_heads, self.q_heads
        if kv_heads is not None:
            picks = _indices(source, "kv_heads", "KV head", "--heads", kv_heads, len(kv))
            group = len(qh) // len(kv)
            qh = qh[(picks[:, None] * group + np.arange(group)).reshape(-1)]
            kv = kv[picks]
        new_tokens = self.tokens
        if tokens is not None:
            if not 1 <= int(tokens) <= self.tokens:
                raise TraceError(source, "tokens", f"1..{self.tokens}, got {tokens}")
            new_tokens = int(tokens)
        kept = self.queries[all_positions[self.queries] < new_tokens]
        if queries is not None:
            if isinstance(queries, (int, np.integer)):
                if not 1 <= queries <= len(kept):
                    raise TraceError(source, "queries", f"a number of queries from 1 to {len(kept)} (--queries; "
                                     f"the queries the trace holds{' in the tokens kept' if tokens else ''}), "
                                     f"got {int(queries)}")
                picks = evenly_spaced(len(kept), int(queries))
            else:
                picks = _indices(source, "queries", "query", "queries", queries, len(kept))
            kept = kept[picks]
        if len(kept) == 0:
            raise TraceError(source, "tokens", f"a range holding at least one query (first at {all_positions[0]})")
        return _Selection(new_layers, kv, qh, kept, new_tokens)


def _indices(source: str, where: str, what: str, option: str, picks: Iterable[int], count: int) -> np.ndarray:
    """Sorted unique indices in 0..count-1, or TraceError in plain numbers ('KV head numbers in 0..2')."""
    wanted = sorted({int(x) for x in picks})
    bad = [x for x in wanted if not 0 <= x < count]
    if not wanted or bad:
        raise TraceError(source, where, f"{what} numbers in 0..{count - 1} ({option}; the trace holds {count}), "
                         f"got {_ranges(bad) if bad else 'none'}")
    return np.asarray(wanted, dtype=np.int64)


def _ranges(numbers: Iterable[int], limit: int = 8) -> str:
    """Ascending integers as short text: '0-29', '0, 3, 5-7', at most `limit` runs then '...'."""
    runs: list[list[int]] = []
    for x in numbers:
        if runs and x == runs[-1][1] + 1:
            runs[-1][1] = x
        else:
            runs.append([x, x])
    text = ", ".join(f"{a}" if a == b else f"{a}-{b}" for a, b in runs[:limit])
    return text + (f", ... ({len(runs) - limit} more runs)" if len(runs) > limit else "")


def evenly_spaced(count: int, n: int) -> np.ndarray:
    """Indices of min(n, count) items spread evenly over 0..count-1, always ending at count-1."""
    n = min(n, count)
    return np.unique(np.round(np.linspace(count - 1, 0, n)[::-1]).astype(np.int64)) if n else np.arange(0)


def evenly_spaced_positions(tokens: int, n: int) -> np.ndarray:
    """min(n, tokens) query positions tokens*i//n - 1 for i = 1..n: ascending int64, the last T-1.

    Queries are tokens/n apart, so their context lengths spread evenly up to the whole trace.
    """
    n = min(n, tokens)
    return (tokens * np.arange(1, n + 1, dtype=np.int64)) // n - 1


# ---- validation -----------------------------------------------------------------------------
def validate_arrays(source: str, meta: Mapping[str, str], arrays: Mapping[str, np.ndarray]) -> None:
    """Check metadata, tensor names, shapes, dtypes, positions and finiteness; TraceError if not."""
    dims = _validate_meta(source, meta)
    layers, has_values = _validate_names(source, arrays)
    if layers[-1] >= MAX_MODEL_LAYERS:
        raise TraceError(source, f"layers.{layers[-1]}.k", f"a layer number below {MAX_MODEL_LAYERS} "
                         "(axelsim.config.limits.MAX_MODEL_LAYERS)")
    if dims["n_layers"] != len(layers):
        raise TraceError(source, "metadata.n_layers", f"{len(layers)} (the layers present), got {dims['n_layers']}")
    model_layers = meta.get("model_layers")
    if model_layers is not None:
        depth = _positive_int(source, "model_layers", model_layers, MAX_MODEL_LAYERS)
        if layers[-1] >= depth:
            raise TraceError(source, f"layers.{layers[-1]}.k", f"a layer number below model_layers={depth}")
    positions = _validate_positions(source, arrays.get("q_positions"), dims["tokens"])
    store = FLOAT_DTYPES[meta["dtype"]]
    kv_shape = (dims["kv_heads"], dims["tokens"], dims["head_dim"])
    q_shape = (dims["q_heads"], len(positions), dims["head_dim"])
    kinds = ("k", "v", "q") if has_values else ("k", "q")
    names = [f"layers.{L}.{kind}" for L in layers for kind in kinds]
    for name in names:
        if name not in arrays:
            raise TraceError(source, name, "tensor present (every layer needs k and q, and v if any layer has v)")
        want = q_shape if name.endswith(".q") else kv_shape
        arr = arrays[name]
        if tuple(arr.shape) != want:
            raise TraceError(source, name, f"shape {list(want)} from the metadata, got {list(arr.shape)}")
        if arr.dtype != store:
            raise TraceError(source, name, f"dtype {meta['dtype']} (metadata.dtype), got {arr.dtype}")
    for name in names:
        if not all_finite(arrays[name]):
            raise TraceError(source, name, "finite numbers (found NaN or Inf)")


def _validate_meta(source: str, meta: Mapping[str, str]) -> dict[str, int]:
    for key in REQUIRED_META:
        if key not in meta:
            raise TraceError(source, f"metadata.{key}", "present (see docs/trace_format.md)")
    if meta["format"] != FORMAT_NAME:
        raise TraceError(source, "metadata.format", f"{FORMAT_NAME!r}, got {meta['format']!r}")
    if meta["version"] != FORMAT_VERSION:
        raise TraceError(source, "metadata.version", f"{FORMAT_VERSION!r}, got {meta['version']!r}")
    if meta["dtype"] not in FLOAT_DTYPES:
        raise TraceError(source, "metadata.dtype", f"one of {sorted(FLOAT_DTYPES)}, got {meta['dtype']!r}")
    dims = {key: _positive_int(source, key, meta[key], _META_BOUNDS[key]) for key in _INT_META}
    if dims["q_heads"] % dims["kv_heads"]:
        raise TraceError(source, "metadata.q_heads",
                         f"a multiple of kv_heads={dims['kv_heads']}, got {dims['q_heads']}")
    return dims


def _positive_int(source: str, key: str, text: str, bound: int) -> int:
    """A metadata count: a decimal integer from 1 to `bound`; TraceError naming the key if not."""
    digits = str(text).strip()
    value = int(digits) if digits.isdecimal() and len(digits) <= 12 else 0
    if not 1 <= value <= bound or str(value) != digits:
        raise TraceError(source, f"metadata.{key}", f"an integer from 1 to {bound}, got {_printable(repr(text))[:60]}")
    return value


def _validate_names(source: str, arrays: Mapping[str, np.ndarray]) -> tuple[list[int], bool]:
    """Layer numbers present (ascending) and whether values are stored."""
    kinds: dict[int, set[str]] = {}
    for name in arrays:
        match = _TENSOR_NAME.match(name)
        if match:
            kinds.setdefault(int(match.group(1)), set()).add(match.group(2))
        elif name != "q_positions":
            raise TraceError(source, _printable(name), "only tensors layers.<L>.k|v|q and q_positions")
    if not kinds:
        raise TraceError(source, "layers.<L>.k", "at least one layer of keys and queries")
    has_values = any("v" in found for found in kinds.values())
    return sorted(kinds), has_values


def _validate_positions(source: str, positions: np.ndarray | None, tokens: int) -> np.ndarray:
    if positions is None:
        raise TraceError(source, "q_positions", "tensor present (int64 [Nq])")
    if positions.dtype != np.int64 or positions.ndim != 1 or positions.size == 0:
        raise TraceError(source, "q_positions",
                         f"int64 [Nq] with Nq >= 1, got {positions.dtype} {list(positions.shape)}")
    pos = np.asarray(positions)
    if np.any(np.diff(pos) <= 0):
        raise TraceError(source, "q_positions", "strictly ascending positions")
    if pos[0] < 0 or pos[-1] >= tokens:
        raise TraceError(source, "q_positions", f"positions in 0..{tokens - 1} (tokens), got {pos[0]}..{pos[-1]}")
    return pos


def all_finite(arr: np.ndarray) -> bool:
    """True when no element is NaN or Inf; vectorised, in bounded chunks for mapped files."""
    flat = arr.reshape(-1)
    if flat.dtype == np.float16:  # binary16 is NaN or Inf exactly when its 5 exponent bits are all ones
        bits = flat.view(np.uint16)
        return all(not np.any((bits[i:i + _FINITE_CHUNK] & 0x7C00) == 0x7C00)
                   for i in range(0, bits.size, _FINITE_CHUNK))
    return all(bool(np.isfinite(flat[i:i + _FINITE_CHUNK]).all())
               for i in range(0, flat.size, _FINITE_CHUNK))


# ---- file I/O -------------------------------------------------------------------------------
def load_trace(path: str | os.PathLike) -> Trace:
    """Open and validate a trace file; tensors stay memory-mapped. Raises TraceError.

    The file is mapped once (one descriptor per trace, however many tensors it holds) and
    every tensor is a read-only view into that one mapping.
    """
    path = Path(path)
    source = _printable(path)
    meta, entries, data_start, file_size, mapping = _read_header(path)
    arrays = {name: _map_tensor(source, name, entry, data_start, file_size, mapping)
              for name, entry in entries.items()}
    _check_layout(source, entries, file_size - data_start)
    validate_arrays(source, meta, arrays)
    return Trace(arrays, meta, path)


def _read_header(path: Path) -> tuple[dict[str, str], dict[str, dict], int, int, mmap.mmap | None]:
    """Metadata, tensor entries, offset of the data section, file size and the file's mapping
    (None when the data section is empty), or TraceError. Only a regular file is opened."""
    source = _printable(path)
    try:
        with open_regular(path) as fh:
            size = os.fstat(fh.fileno()).st_size
            head = fh.read(8)
            if len(head) < 8:
                raise TraceError(source, "header", "a safetensors file (8-byte header length); file too short")
            (n,) = struct.unpack("<Q", head)
            if n > min(size - 8, _MAX_HEADER_BYTES):
                raise TraceError(source, "header", f"a safetensors header of {n} bytes within a {size}-byte file "
                                 f"and at most {_MAX_HEADER_BYTES} (not a safetensors file, or truncated)")
            raw = fh.read(n)
            mapping = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) if size > 8 + n else None
    except FileNotFoundError:
        raise TraceError(source, "file", "an existing trace file (safetensors)") from None
    except NotRegularFile as exc:
        raise TraceError(source, "file", f"a trace file (safetensors): {exc.strerror}") from None
    except (OSError, ValueError) as exc:  # a name longer than NAME_MAX, no permission, an I/O error, ...
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
        raise TraceError(source, "file", f"a readable trace file ({reason})") from None
    if len(raw) != n:
        raise TraceError(source, "header", f"a {n}-byte header, the file ends after {len(raw)} (truncated)")
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):  # JSONDecodeError, a number over 4300 digits
        raise TraceError(source, "header", "a safetensors JSON header (not a safetensors file)") from None
    except RecursionError:
        raise TraceError(source, "header", "a safetensors JSON header (nested too deeply)") from None
    if not isinstance(header, dict):
        raise TraceError(source, "header", "a JSON object of tensors")
    meta = header.pop("__metadata__", None)
    if not isinstance(meta, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in meta.items()):
        raise TraceError(source, "metadata", f"string-to-string metadata with format={FORMAT_NAME!r}")
    return meta, header, 8 + n, size, mapping


def _check_layout(source: str, entries: Mapping[str, object], data_bytes: int) -> None:
    """The safetensors layout rule: the tensors' byte ranges tile the data section exactly,
    with no overlap, no gap and no trailing bytes (as the safetensors library requires).

    Entries with malformed offsets are left to `_map_tensor`, which names them.
    """
    spans = []
    for name, entry in entries.items():
        offsets = entry.get("data_offsets") if isinstance(entry, dict) else None
        if isinstance(offsets, list) and len(offsets) == 2 and all(_is_count(x) for x in offsets) \
                and offsets[0] <= offsets[1]:
            spans.append((offsets[0], offsets[1], name))
        else:
            return
    end = 0
    for begin, stop, name in sorted(spans):
        if begin != end:
            problem = "overlaps the previous tensor" if begin < end else f"leaves a gap of {begin - end} bytes"
            raise TraceError(source, _printable(name), f"data_offsets starting at byte {end}, right after the "
                             f"previous tensor (got {begin}: {problem})")
        end = stop
    if end != data_bytes:
        raise TraceError(source, "data", f"the tensors to fill the data section exactly: they end at byte {end}, "
                         f"the file holds {data_bytes} bytes of data ({data_bytes - end} trailing)")


def _map_tensor(source: str, name: str, entry: object, data_start: int, file_size: int,
                mapping: mmap.mmap | None) -> np.ndarray:
    """A read-only view of one tensor in the file's mapping, after checking its dtype, shape and
    byte range.

    Every shape entry and offset must be a non-negative JSON integer before any arithmetic;
    sizes are exact Python integers compared with the file size (a huge shape cannot wrap).
    """
    where = _printable(name)
    if not isinstance(entry, dict) or not {"dtype", "shape", "data_offsets"} <= set(entry):
        raise TraceError(source, where, "a header entry with dtype, shape and data_offsets")
    dtype_name, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
    dtype = _SAFETENSORS_DTYPES.get(dtype_name) if isinstance(dtype_name, str) else None
    if dtype is None:
        raise TraceError(source, where, f"dtype F16 or F32 (I64 for q_positions), got {_printable(repr(dtype_name))[:80]}")
    if not (isinstance(shape, list) and len(shape) <= _MAX_NDIM and all(_is_count(x) for x in shape)):
        raise TraceError(source, where, f"a shape of at most {_MAX_NDIM} non-negative integers, "
                         f"got {_printable(repr(shape))[:80]}")
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(_is_count(x) for x in offsets)
            and offsets[0] <= offsets[1]):
        raise TraceError(source, where, f"data_offsets [begin, end] with 0 <= begin <= end, "
                         f"got {_printable(repr(offsets))[:80]}")
    begin, end = offsets
    count = math.prod(shape)  # exact: a huge shape must not wrap around
    if end - begin != count * dtype.itemsize:
        raise TraceError(source, where, f"data_offsets spanning {count * dtype.itemsize} bytes for shape {shape}, "
                         f"got {end - begin}")
    if data_start + end > file_size:
        raise TraceError(source, where, f"{end - begin} bytes at offset {data_start + begin}, "
                         f"but the file ends at {file_size} (truncated)")
    if count == 0:
        try:
            return np.zeros(shape, dtype=dtype)
        except ValueError:  # e.g. [0, 2**70]: empty, but beyond numpy's dimension limit
            raise TraceError(source, where, f"a shape numpy can hold, got {_printable(repr(shape))[:80]}") from None
    return np.frombuffer(mapping, dtype=dtype, count=count, offset=data_start + begin).reshape(shape)


def save_trace(trace: Trace, path: str | os.PathLike) -> Path:
    """Write `trace` (or a view of one) to `path` atomically: a temporary name, then rename."""
    with atomic_path(path) as temp:
        save_file(trace.tensors(), str(temp), metadata=dict(trace.meta))
        os.chmod(temp, 0o644)  # safetensors recreates the file with its own (private) mode
    return Path(path)
