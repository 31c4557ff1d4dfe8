"""The golden model: the write, read and value datapaths of docs/architecture.md, vectorised.

Every function takes a `NumericsSpec` (the numeric part of a MacroConfig plus the sign ROM)
and returns its results with the operations it executed, as action dicts in the vocabulary
of docs/interfaces.md (`mul.fp16`, `add.fp32`, `cmp.fp32`, `sqrt.fp32`, `div.fp32`,
`exp.fp32`, plus memory accesses named `<unit>.<read|write>` and `rotator.butterfly`).
Scores and outputs are float64 arrays holding values exactly representable in their
formats; positions beyond a query's causal range hold NaN.
"""

from __future__ import annotations

import math
from collections import Counter
import dataclasses
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from axelsim import jit
from axelsim.config.formats import FP16, NumberFormat
from axelsim.config.macro import FormatsConfig, MacroConfig
from axelsim.errors import ConfigError, NumericsError, TraceError
from axelsim.numerics import kernels as K
from axelsim.numerics.codebook import Codebook, lloyd_max_codebook
from axelsim.numerics.fp import FP16_MAX, float32_holds, format_code, max_finite, round_to
from axelsim.numerics.hadamard import SignRom

FORMAT_FIELDS = ("input", "rotator", "table", "accumulator", "score", "softmax", "value")
LOG2E = 1.4426950408889634
EXP_DEGREE = 6


@dataclass(frozen=True)
class NumericsSpec:
    """What the datapaths need: head size, bits, number formats, codebook ROM and sign ROM.

    `value_signs`: a second sign ROM for the values (the paper's code rotates keys and values
    with separate vectors; queries use the key vectors); None means the values share `signs`.
    `ties`: the comparator tie rule, "upper" (y >= t) or "lower" (y > t).
    `sum_partials`, `bin_partials`: the value path's interleaved partial accumulators (key t of
    a job adds into partial t mod P) of the running sum E and of every bin, merged left to
    right, partial 0 first (value_path.partial_accumulators and bin_hazard).
    """

    dim: int
    bits: int
    formats: dict[str, NumberFormat]
    codebook: Codebook
    signs: SignRom
    value_signs: Optional[SignRom] = None
    ties: str = "upper"
    sum_partials: int = 1
    bin_partials: int = 1

    @classmethod
    def from_macro(cls, macro: MacroConfig, signs: SignRom) -> "NumericsSpec":
        """The numeric view of a macro; ConfigError if the sign ROM has another head size."""
        vp = macro.value_path
        return cls.build(macro.head_dim, macro.bits, signs, macro.formats, ties=macro.write_path.ties,
                         sum_partials=vp.sum_partials(), bin_partials=vp.bin_partials(),
                         value_signs=getattr(signs, "values", None))

    @classmethod
    def build(cls, dim: int, bits: int, signs: SignRom, formats: Optional[FormatsConfig] = None,
              value_signs: Optional[SignRom] = None, ties: str = "upper", sum_partials: int = 1,
              bin_partials: int = 1) -> "NumericsSpec":
        """A spec without a whole macro (formats default to the schema's defaults)."""
        for rom in (signs, value_signs):
            if rom is not None and rom.dim != dim:
                raise ConfigError(rom.source, "dim", f"expected sign vectors of length {dim}, got {rom.dim}")
        if ties not in ("upper", "lower"):
            raise ConfigError("numerics", "ties", f"expected 'upper' or 'lower', got {ties!r}")
        fmts = formats if formats is not None else FormatsConfig()
        parsed = {name: fmts.get(name) for name in FORMAT_FIELDS}
        if not (isinstance(sum_partials, int) and isinstance(bin_partials, int) and sum_partials >= 1
                and bin_partials >= 1):
            raise ConfigError("numerics", "partials", f"expected counts >= 1, got {sum_partials!r}, {bin_partials!r}")
        return cls(dim, bits, parsed, lloyd_max_codebook(dim, bits), signs, value_signs, ties, sum_partials,
                   bin_partials)

    def with_bits(self, bits: int) -> "NumericsSpec":
        """The same spec with another bit-width (its own Lloyd-Max codebook ROM)."""
        return dataclasses.replace(self, bits=bits, codebook=lloyd_max_codebook(self.dim, bits))

    def rom_for(self, tensor: str) -> SignRom:
        """The sign ROM that rotates `tensor` ('k', 'q' or 'v')."""
        return self.value_signs if tensor == "v" and self.value_signs is not None else self.signs

    @property
    def levels(self) -> int:
        return 1 << self.bits

    def code(self, where: str):
        """The kernel FormatCode of one format field."""
        return format_code(self.formats[where])

    def fmt_name(self, where: str) -> str:
        return self.formats[where].name


@dataclass(frozen=True)
class WriteResult:
    """Output of the write path for N vectors."""

    indices: np.ndarray
    """uint8 [N, d] level indices."""
    norms: np.ndarray
    """float16 [N] stored norms (saturated at 65504)."""
    norm_saturations: int
    """Vectors whose norm exceeded the FP16 range and was saturated."""
    actions: dict[str, int]


@dataclass(frozen=True)
class GoldenLayer:
    """One layer of a trace through the golden model (shapes: Hkv KV heads, Hq query heads)."""

    k_indices: np.ndarray
    k_norms: np.ndarray
    v_indices: Optional[np.ndarray]
    v_norms: Optional[np.ndarray]
    scores: np.ndarray
    """float64 [Hq, Nq, T]: raw q.k_hat in the score format, NaN beyond each query's position."""
    outputs: Optional[np.ndarray]
    """float64 [Hq, Nq, d] attention outputs in the value format (None without values)."""
    norm_saturations: int
    actions: dict[str, dict[str, int]] = field(default_factory=dict)
    """Per path: 'write_path', 'read_path', 'value_path'."""


def _actions(pairs: list[tuple[str, int]]) -> dict[str, int]:
    """Sum (key, count) pairs into an action dict (two formats may share a key)."""
    total: Counter = Counter()
    for key, count in pairs:
        total[key] += int(count)
    return dict(total)


def check_vectors(x: np.ndarray, dim: int, tensor: str, source: str = "input", lead_dims: int = 1) -> np.ndarray:
    """float64 copy of x after checking its shape [..., dim] and that every value is finite."""
    arr = np.asarray(x)
    if arr.ndim != lead_dims + 1 or arr.shape[-1] != dim:
        raise NumericsError(source, tensor, f"expected {lead_dims + 1} axes ending in head_dim {dim}, got shape {arr.shape}")
    arr = arr.astype(np.float64)
    bad = ~np.isfinite(arr)
    if bad.any():
        where = tuple(int(i) for i in np.argwhere(bad)[0])
        raise NumericsError(source, tensor, f"expected finite values, found {arr[where]} at index {list(where)}")
    return arr


def check_input_range(fmt: NumberFormat, x: np.ndarray, tensor: str, source: str) -> None:
    """NumericsError naming `tensor` when x holds a value beyond the float input format's range
    (a fixed-point input saturates instead). x must be finite (check_vectors)."""
    limit = max_finite(fmt)
    if fmt.kind != "fixed" and np.abs(x).max(initial=0.0) > limit:
        where = tuple(int(i) for i in np.argwhere(np.abs(x) > limit)[0])
        raise NumericsError(source, tensor, f"expected |values| <= {limit} (the {fmt.name} input format), found {x[where]} at index {list(where)}")


def _to_input(spec: NumericsSpec, x: np.ndarray, tensor: str, source: str) -> np.ndarray:
    """rnd_input(x); values outside the input format's range are bad input."""
    check_input_range(spec.formats["input"], x, tensor, source)
    return round_to(x, spec.formats["input"])


def _check_shape(x: np.ndarray, dim: int, tensor: str, source: str, lead_dims: int) -> np.ndarray:
    """x as an array (no copy) after checking its shape [..., dim] with lead_dims leading axes."""
    arr = np.asarray(x)
    if arr.ndim != lead_dims + 1 or arr.shape[-1] != dim:
        raise NumericsError(source, tensor, f"expected {lead_dims + 1} axes ending in head_dim {dim}, got shape {arr.shape}")
    return arr


WRITE_KERNELS = ("auto", "generic", "fp32")
"""`write_vectors(kernel=...)`: auto picks fp32 when `fp32_write_applies`, else generic."""


FP32_WRITE_MIN_WORK = jit.PARALLEL_MIN_WORK
"""`kernel="auto"` uses the fp32 kernel from this many input elements (vectors x d): below it
the generic kernel takes milliseconds too, and its helpers are the read path's, so a small run
(the first run after an install) does not spend about 3 s compiling the fp32 kernel."""


def fp32_write_applies(spec: NumericsSpec) -> bool:
    """True when the specialised write kernel computes this spec: fp32 rotator, fp16/fp32 input."""
    return spec.formats["rotator"].kind == "fp32" and spec.formats["input"].kind in ("fp16", "fp32")


def write_vectors(
    spec: NumericsSpec, x: np.ndarray, layer: int, tensor_name: str = "x", source: str = "input", kernel: str = "auto",
    kind: str = "k",
) -> WriteResult:
    """Write path for x [N, d] (float16/32/64): indices, FP16 norms, saturations, actions.

    `kernel` selects the implementation (same results bit for bit): "fp32" the specialised
    kernel (fp32 rotator, input checked and rounded inside the kernel, no copy of float16/32
    input), "generic" the kernel that rounds every operation to any format, "auto" the first
    when it applies. `kind` 'k' or 'v' picks the sign ROM (`NumericsSpec.rom_for`).
    """
    arr = _check_shape(x, spec.dim, tensor_name, source, 1)
    return _write(spec, arr, layer, tensor_name, source, kernel, kind)


def _write(spec: NumericsSpec, arr: np.ndarray, layer: int, tensor: str, source: str, kernel: str,
           kind: str = "k") -> WriteResult:
    """The write path over arr [..., d] (shape already checked); NaN/Inf errors name the index in
    arr's shape, range errors the [vector, coordinate] index, as check_vectors / _to_input do."""
    if kernel not in WRITE_KERNELS:
        raise ValueError(f"kernel must be one of {WRITE_KERNELS}, got {kernel!r}")
    fast = fp32_write_applies(spec)
    if kernel == "fp32" and not fast:
        raise ValueError("the fp32 write kernel needs an fp32 rotator and an fp16 or fp32 input format")
    signs = spec.rom_for(kind).vector(layer)
    if kernel == "auto" and arr.size < FP32_WRITE_MIN_WORK:
        kernel = "generic"
    if kernel == "generic" or not fast:
        return _write_generic(spec, arr, signs, tensor, source)
    return _write_fp32(spec, arr, signs, tensor, source)


def _write_actions(spec: NumericsSpec, tot: np.ndarray) -> dict[str, int]:
    rot = spec.fmt_name("rotator")
    return _actions([
        (f"mul.{rot}", tot[K.W_MUL_ROT]), (f"add.{rot}", tot[K.W_ADD_ROT]),
        (f"sqrt.{rot}", tot[K.W_SQRT_ROT]), (f"cmp.{rot}", tot[K.W_CMP_ROT]),
        ("rotator.butterfly", tot[K.W_BUTTERFLY]), ("index_sram.write", tot[K.W_ROWS]),
    ])


def _write_generic(spec: NumericsSpec, arr: np.ndarray, sign_vec: np.ndarray, tensor: str, source: str) -> WriteResult:
    """Any formats: float64 copy, checks and input rounding in numpy, then `K.write_kernel`."""
    checked = check_vectors(arr, spec.dim, tensor, source, lead_dims=arr.ndim - 1)
    xin = _to_input(spec, checked.reshape(-1, spec.dim), tensor, source)
    n_vec = xin.shape[0]
    indices = np.empty((n_vec, spec.dim), dtype=np.uint8)
    norms_rot = np.empty(n_vec)
    ops = np.zeros((n_vec, K.W_COUNTERS), dtype=np.int64)
    signs = sign_vec.astype(np.float64)
    K.write_kernel(xin, signs, spec.codebook.rom_boundaries, spec.code("rotator"), spec.ties == "upper",
                   indices, norms_rot, ops)
    stored = round_to(norms_rot, FP16)
    saturated = ~(stored <= FP16_MAX)
    stored[saturated] = FP16_MAX
    return WriteResult(indices, stored.astype(np.float16), int(saturated.sum()), _write_actions(spec, ops.sum(axis=0)))


def _write_fp32(spec: NumericsSpec, arr: np.ndarray, sign_vec: np.ndarray, tensor: str, source: str) -> WriteResult:
    """fp32 rotator: one pass of `K.write_kernel_fp32` over the raw input (no float64 copy)."""
    flat = arr.reshape(-1, spec.dim)
    if flat.dtype == np.float16:
        raw = np.ascontiguousarray(flat).view(np.uint16)
    elif flat.dtype in (np.float32, np.float64):
        raw = np.ascontiguousarray(flat)
    else:
        raw = np.ascontiguousarray(flat, dtype=np.float64)
    n_vec = raw.shape[0]
    in_fmt = spec.formats["input"]
    indices = np.empty((n_vec, spec.dim), dtype=np.uint8)
    stored = np.empty(n_vec, dtype=np.float32)
    flags = np.zeros(n_vec, dtype=np.uint8)
    ops = np.zeros(((n_vec + K.WRITE_BLOCK - 1) // K.WRITE_BLOCK, K.W_COUNTERS), dtype=np.int64)
    signs = sign_vec.astype(np.float32)
    bounds = spec.codebook.rom_boundaries.astype(np.float32)  # FP16 ROM values: exact
    K.write_kernel_fp32(
        raw, in_fmt.kind == "fp16", max_finite(in_fmt), signs, bounds, spec.ties == "upper", K.WRITE_BLOCK,
        indices, stored, flags, ops,
    )
    if n_vec and (flags & (K.WF_NONFINITE | K.WF_RANGE)).any():
        _raise_bad_input(spec, arr, flat, flags, tensor, source)
    saturations = int(np.count_nonzero(flags & K.WF_SATURATED))
    return WriteResult(indices, stored.astype(np.float16), saturations, _write_actions(spec, ops.sum(axis=0)))


def _raise_bad_input(spec: NumericsSpec, arr: np.ndarray, flat: np.ndarray, flags: np.ndarray, tensor: str, source: str):
    """The NumericsError of check_vectors / _to_input for the first vector the kernel flagged:
    NaN/Inf anywhere first (index in arr's shape), else |x| beyond the input format's range."""
    d = spec.dim
    nonfinite = np.flatnonzero(flags & K.WF_NONFINITE)
    if nonfinite.size:
        v = int(nonfinite[0])
        row = flat[v].astype(np.float64)
        i = int(np.flatnonzero(~np.isfinite(row))[0])
        where = [int(k) for k in np.unravel_index(v * d + i, arr.shape)]
        raise NumericsError(source, tensor, f"expected finite values, found {row[i]} at index {where}")
    v = int(np.flatnonzero(flags & K.WF_RANGE)[0])
    row = flat[v].astype(np.float64)
    limit = max_finite(spec.formats["input"])
    i = int(np.flatnonzero(np.abs(row) > limit)[0])
    raise NumericsError(source, tensor, f"expected |values| <= {limit} (the {spec.fmt_name('input')} input format), found {row[i]} at index {[v, i]}")


def pack_indices(indices: np.ndarray, bits: int) -> np.ndarray:
    """uint8 [N, d] -> uint8 [N, d*bits/8]: index i at bits [i*b, (i+1)*b), LSB first."""
    idx = np.asarray(indices, dtype=np.uint8)
    planes = (idx[..., None] >> np.arange(bits, dtype=np.uint8)) & 1
    return np.packbits(planes.reshape(idx.shape[:-1] + (-1,)), axis=-1, bitorder="little")


def unpack_indices(rows: np.ndarray, bits: int, dim: int) -> np.ndarray:
    """Inverse of pack_indices: uint8 [N, d*bits/8] -> uint8 [N, d]."""
    flat = np.unpackbits(np.asarray(rows, dtype=np.uint8), axis=-1, bitorder="little", count=dim * bits)
    planes = flat.reshape(flat.shape[:-1] + (dim, bits)).astype(np.uint8)
    return (planes << np.arange(bits, dtype=np.uint8)).sum(axis=-1, dtype=np.uint8)


def pack_rows(indices: np.ndarray, norms: np.ndarray, bits: int) -> np.ndarray:
    """Whole SRAM rows: d*b index bits then the 16 FP16 norm bits (little-endian): [N, (d*b+16)/8]."""
    norm_bytes = np.asarray(norms, dtype="<f2").view(np.uint8).reshape(-1, 2)
    return np.concatenate([pack_indices(indices, bits), norm_bytes], axis=-1)


def unpack_rows(rows: np.ndarray, bits: int, dim: int) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of pack_rows: (indices uint8 [N, d], norms float16 [N])."""
    body = dim * bits // 8
    norms = np.ascontiguousarray(rows[:, body:body + 2]).view("<f2").reshape(-1).astype(np.float16)
    return unpack_indices(rows[:, :body], bits, dim), norms


def _job_keys(q_positions: Optional[np.ndarray], n_q: int, n_tok: int, causal: bool, source: str) -> np.ndarray:
    """Keys served per query: position + 1 when causal, else all T."""
    if not causal or q_positions is None:
        return np.full(n_q, n_tok, dtype=np.int64)
    pos = np.asarray(q_positions, dtype=np.int64)
    if pos.shape != (n_q,) or (pos < 0).any() or (pos >= n_tok).any():
        raise TraceError(source, "q_positions", f"expected {n_q} positions in 0..{n_tok - 1}, got {pos.tolist()[:8]}")
    return pos + 1


def _table_dtype(spec: NumericsSpec) -> type:
    fast = float32_holds(spec.formats["table"]) and float32_holds(spec.formats["accumulator"])
    return np.float32 if fast else np.float64


def _leaves_need_rounding(spec: NumericsSpec) -> bool:
    table, acc = spec.formats["table"], spec.formats["accumulator"]
    return not (table == acc or (table.kind == "fp16" and acc.kind == "fp32"))


def read_scores_gqa(
    spec: NumericsSpec,
    q: np.ndarray,
    indices: np.ndarray,
    norms: np.ndarray,
    layer: int,
    q_positions: Optional[np.ndarray] = None,
    causal: bool = True,
    source: str = "input",
    tensor_name: str = "q",
) -> tuple[np.ndarray, dict[str, int]]:
    """Read path for q [Hq, Nq, d] against keys indices [Hkv, T, d], norms [Hkv, T].

    Query head h reads KV head h // (Hq / Hkv); query n sees keys 0..q_positions[n] when
    causal (all T otherwise). Returns (scores float64 [Hq, Nq, T], NaN beyond, actions).
    """
    qf = check_vectors(q, spec.dim, tensor_name, source, lead_dims=2)
    idx = np.ascontiguousarray(indices, dtype=np.uint8)
    n_kv, n_tok = idx.shape[0], idx.shape[1]
    n_h, n_q = qf.shape[0], qf.shape[1]
    if idx.ndim != 3 or idx.shape[2] != spec.dim or np.shape(norms) != (n_kv, n_tok):
        raise NumericsError(source, "indices", f"expected indices [Hkv, T, {spec.dim}] and norms [Hkv, T], got {idx.shape} and {np.shape(norms)}")
    if n_kv == 0 or n_h % n_kv:
        raise NumericsError(source, tensor_name, f"expected a multiple of {n_kv} query heads, got {n_h}")
    keys = _job_keys(q_positions, n_q, n_tok, causal, source)
    job_kv = np.repeat(np.arange(n_h) // (n_h // n_kv), n_q).astype(np.int64)
    job_keys = np.tile(keys, n_h)
    qin = _to_input(spec, qf, tensor_name, source).reshape(n_h * n_q, spec.dim)
    group = n_h // n_kv  # query heads per KV head; job (h, n) is h * n_q + n
    groups = ((np.arange(n_kv)[:, None, None] * group + np.arange(group)[None, None, :]) * n_q
              + np.arange(n_q)[None, :, None]).reshape(n_kv * n_q, group)
    scores, ops = _read_jobs(spec, qin, idx, np.asarray(norms, dtype=np.float64), groups, job_kv, job_keys, layer)
    return scores.reshape(n_h, n_q, n_tok), _read_actions(spec, ops.sum(axis=0))


def _read_jobs(spec, qin, idx, norms, groups, job_kv, job_keys, layer):
    """Both phases of the read path for input-rounded query rows qin [M, d]; groups [n, G] the
    jobs that share a KV head and a key count (see `K.lookup_kernel`)."""
    n_jobs, n_tok = qin.shape[0], idx.shape[1]
    ops = np.zeros((n_jobs, K.R_COUNTERS), dtype=np.int64)
    tables = np.empty((n_jobs, spec.dim, spec.levels))
    signs = spec.signs.vector(layer).astype(np.float64)
    K.table_kernel(qin, signs, spec.codebook.rom_centroids, 1.0 / spec.dim, spec.code("rotator"), spec.code("table"), tables, ops)
    scores = np.full((n_jobs, n_tok), np.nan)
    K.lookup_kernel(
        tables.astype(_table_dtype(spec)), idx, norms, groups.astype(np.int64), job_kv, job_keys,
        spec.code("accumulator"), spec.code("score"), _leaves_need_rounding(spec), scores, ops,
    )
    return scores, ops


def _read_actions(spec: NumericsSpec, tot: np.ndarray) -> dict[str, int]:
    rot, tab, acc, sc = (spec.fmt_name(w) for w in ("rotator", "table", "accumulator", "score"))
    return _actions([
        (f"add.{rot}", tot[K.R_ADD_ROT]), ("rotator.butterfly", tot[K.R_BUTTERFLY]),
        (f"mul.{tab}", tot[K.R_MUL_TABLE]), ("table_sram.write", tot[K.R_TABLE_WRITE]),
        ("index_sram.read", tot[K.R_ROWS]), ("table_sram.read", tot[K.R_LOOKUPS]),
        (f"add.{acc}", tot[K.R_ADD_ACC]), (f"mul.{sc}", tot[K.R_MUL_SCORE]),
    ])


def read_scores(spec: NumericsSpec, q: np.ndarray, indices: np.ndarray, norms: np.ndarray, layer: int) -> tuple[np.ndarray, dict[str, int]]:
    """Read path of q [Hq, d] against all T keys of one head (indices [T, d], norms [T]): [Hq, T]."""
    qf = np.asarray(q)
    scores, actions = read_scores_gqa(spec, qf[None], np.asarray(indices)[None], np.asarray(norms)[None], layer, causal=False)
    return scores[0], actions


def exp_constants(fmt: NumberFormat) -> tuple[float, np.ndarray]:
    """The exp unit's constants in format fmt: rnd(log2 e) and c_n = rnd(ln2**n / n!), n = 0..6."""
    coeffs = np.array([math.log(2.0) ** n / math.factorial(n) for n in range(EXP_DEGREE + 1)])
    return float(round_to(LOG2E, fmt)), round_to(coeffs, fmt)


def attend(
    spec: NumericsSpec,
    scores: np.ndarray,
    v_indices: np.ndarray,
    v_norms: np.ndarray,
    layer: int,
    q_positions: Optional[np.ndarray] = None,
    source: str = "input",
) -> tuple[np.ndarray, dict[str, int]]:
    """Value path: softmax of scores [Hq, Nq, T] over keys 0..q_positions[n] (all T if None),
    rotated-domain bins over values v_indices [Hkv, T, d], v_norms [Hkv, T]; returns
    (outputs float64 [Hq, Nq, d] in the value format, actions)."""
    sc = np.asarray(scores, dtype=np.float64)
    idx = np.ascontiguousarray(v_indices, dtype=np.uint8)
    n_h, n_q, n_tok = sc.shape
    n_kv = idx.shape[0]
    if idx.shape[1:] != (n_tok, spec.dim) or np.shape(v_norms) != (n_kv, n_tok) or n_h % n_kv:
        raise NumericsError(source, "v_indices", f"expected [Hkv, {n_tok}, {spec.dim}] with Hkv dividing {n_h}, got {idx.shape}")
    keys = _job_keys(q_positions, n_q, n_tok, q_positions is not None, source)
    job_kv = np.repeat(np.arange(n_h) // (n_h // n_kv), n_q).astype(np.int64)
    job_keys = np.tile(keys, n_h)
    sm, val = spec.formats["softmax"], spec.formats["value"]
    log2e, coeffs = exp_constants(sm)
    sigma = float(round_to(1.0 / math.sqrt(spec.dim), sm))
    out = np.empty((n_h * n_q, spec.dim))
    ops = np.zeros((n_h * n_q, K.V_COUNTERS), dtype=np.int64)
    K.value_kernel(
        np.ascontiguousarray(sc.reshape(n_h * n_q, n_tok)), idx, np.asarray(v_norms, dtype=np.float64),
        job_kv, job_keys, spec.rom_for("v").vector(layer).astype(np.float64), spec.codebook.rom_centroids,
        format_code(sm), format_code(val), sigma, log2e, coeffs, spec.sum_partials, spec.bin_partials, out, ops,
    )
    tot = ops.sum(axis=0)
    s, v = sm.name, val.name
    actions = _actions([
        (f"mul.{s}", tot[K.V_MUL_S]), (f"cmp.{s}", tot[K.V_CMP_S]), (f"add.{s}", tot[K.V_ADD_S]),
        (f"exp.{s}", tot[K.V_EXP_S]), ("index_sram.read", tot[K.V_ROWS]), (f"mul.{v}", tot[K.V_MUL_V]),
        (f"add.{v}", tot[K.V_ADD_V]), (f"div.{v}", tot[K.V_DIV_V]), ("rotator.butterfly", tot[K.V_BUTTERFLY]),
    ])
    return out.reshape(n_h, n_q, spec.dim), actions


def write_heads(spec: NumericsSpec, x: np.ndarray, layer: int, tensor: str, source: str, kind: str = "k") -> WriteResult:
    """write_vectors over [H, T, d]: indices [H, T, d], norms [H, T]; `kind` as in write_vectors."""
    arr = _check_shape(x, spec.dim, tensor, source, 2)
    flat = _write(spec, arr, layer, tensor, source, "auto", kind)
    shape = arr.shape[:2]
    return WriteResult(flat.indices.reshape(shape + (spec.dim,)), flat.norms.reshape(shape), flat.norm_saturations, flat.actions)


def golden_layer(
    spec: NumericsSpec,
    k: np.ndarray,
    v: Optional[np.ndarray],
    q: np.ndarray,
    q_positions: np.ndarray,
    layer: int,
    source: str = "trace",
) -> GoldenLayer:
    """One layer: write every key (and value), serve each query causally against keys 0..p.

    k, v float [Hkv, T, d]; q float [Hq, Nq, d]; q_positions int [Nq]. Tensors are named
    `layers.<layer>.k|v|q` in errors.
    """
    wk = write_heads(spec, k, layer, f"layers.{layer}.k", source)
    scores, read_actions = read_scores_gqa(
        spec, q, wk.indices, wk.norms, layer, q_positions, True, source, f"layers.{layer}.q"
    )
    actions = {"write_path": dict(wk.actions), "read_path": read_actions, "value_path": {}}
    if v is None:
        return GoldenLayer(wk.indices, wk.norms, None, None, scores, None, wk.norm_saturations, actions)
    wv = write_heads(spec, v, layer, f"layers.{layer}.v", source, "v")
    actions["write_path"] = _actions(list(wk.actions.items()) + list(wv.actions.items()))
    outputs, value_actions = attend(spec, scores, wv.indices, wv.norms, layer, q_positions, source)
    actions["value_path"] = value_actions
    return GoldenLayer(
        wk.indices, wk.norms, wv.indices, wv.norms, scores, outputs,
        wk.norm_saturations + wv.norm_saturations, actions,
    )
