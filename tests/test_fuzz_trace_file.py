"""Fuzz load_trace and Trace.from_arrays: every input is a valid Trace or one TraceError line.

Inputs: valid traces of random shapes and dtypes (round trip), truncation at random offsets,
random bit flips in the header and in the data, rewritten header entries (dtype, shape,
offsets, names), missing tensors, random metadata, NaN and Inf in the data, non-safetensors
bytes. A trace that loads must be fully usable (k, v, q, digest, selection) and finite.
"""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from axelsim.errors import TraceError
from axelsim.trace.format import REQUIRED_META, Trace, load_trace, save_trace
from fuzz_helpers import (KnownFault, fuzz_settings, outcome, safetensors_bytes, split_safetensors,
                          trace_arrays)

_counter = itertools.count()


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz_trace")


@st.composite
def trace_shapes(draw):
    """Small consistent trace shapes (what a valid capture looks like)."""
    kv = draw(st.integers(1, 3))
    group = draw(st.integers(1, 3))
    tokens = draw(st.integers(1, 12))
    n_q = draw(st.integers(1, tokens))
    positions = sorted(draw(st.sets(st.integers(0, tokens - 1), min_size=n_q, max_size=n_q)))
    layers = sorted(draw(st.sets(st.integers(0, 40), min_size=1, max_size=3)))
    return dict(layers=tuple(layers), kv_heads=kv, q_heads=kv * group, tokens=tokens,
                dim=draw(st.sampled_from([1, 2, 8, 16, 64])), positions=tuple(positions),
                values=draw(st.booleans()), seed=draw(st.integers(0, 2**16)),
                scale=draw(st.sampled_from([0.0, 1e-8, 1.0, 300.0, 7e4])))


def _build(shape, dtype="float32"):
    k, v, q, pos = trace_arrays(**shape)
    return Trace.from_arrays(k, v, q, pos, dtype=dtype)


def _file(workdir, shape, dtype) -> bytes:
    path = workdir / f"base{next(_counter)}.safetensors"
    save_trace(_build(shape, dtype), path)
    return path.read_bytes()


def check_usable(trace: Trace) -> None:
    """A trace that validated is usable end to end: every accessor works and gives finite data."""
    assert trace.q_positions.dtype == np.int64 and np.all(np.diff(trace.q_positions) > 0)
    assert 0 <= trace.q_positions[0] and trace.q_positions[-1] < trace.tokens
    for layer in trace.layer_indices:
        k, q = trace.k(layer), trace.q(layer)
        assert k.shape == (trace.kv_heads, trace.tokens, trace.head_dim) and np.isfinite(k).all()
        assert q.shape == (trace.q_heads, trace.n_queries, trace.head_dim) and np.isfinite(q).all()
        if trace.has_values:
            assert np.isfinite(trace.v(layer)).all()
    assert trace.q_heads % trace.kv_heads == 0
    assert len(trace.digest()) == 64
    trace.with_selection(layers=trace.layer_indices[:1], kv_heads=[0], queries=1)


def _load_bytes(workdir, data: bytes):
    path = workdir / f"t{next(_counter)}.safetensors"
    path.write_bytes(data)
    result = outcome(lambda: load_trace(path), names=(str(path),))
    if not isinstance(result, (TraceError, KnownFault)):
        check_usable(result)
    return result


@fuzz_settings()
@given(shape=trace_shapes(), dtype=st.sampled_from(["float16", "float32"]))
def test_fuzz_roundtrip_valid_traces(workdir, shape, dtype):
    built = outcome(lambda: _build(shape, dtype))
    if isinstance(built, TraceError):  # float16 overflow of the largest scale is refused, by name
        assert dtype == "float16" and shape["scale"] > 6e4
        return
    path = workdir / f"rt{next(_counter)}.safetensors"
    save_trace(built, path)
    loaded = load_trace(path)
    check_usable(loaded)
    assert loaded.digest() == built.digest()
    for layer in built.layer_indices:
        assert np.array_equal(loaded.k(layer), built.k(layer))
        assert np.array_equal(loaded.q(layer), built.q(layer))


@fuzz_settings()
@given(shape=trace_shapes(), dtype=st.sampled_from(["float16", "float32"]), cut=st.floats(0, 1))
def test_fuzz_truncated_trace(workdir, shape, dtype, cut):
    shape["scale"] = 1.0
    data = _file(workdir, shape, dtype)
    end = int(len(data) * cut)
    result = _load_bytes(workdir, data[:end])
    if end < len(data):
        assert isinstance(result, (TraceError, KnownFault)), f"a trace cut at {end}/{len(data)} bytes loaded"


@fuzz_settings()
@given(shape=trace_shapes(), dtype=st.sampled_from(["float16", "float32"]),
       flips=st.lists(st.tuples(st.sampled_from(["length", "header", "body"]), st.floats(0, 1), st.integers(0, 7)),
                      min_size=1, max_size=4))
def test_fuzz_bit_flips(workdir, shape, dtype, flips):
    shape["scale"] = 1.0
    raw = bytearray(_file(workdir, shape, dtype))
    (n,) = np.frombuffer(bytes(raw[:8]), dtype="<u8")
    spans = {"length": (0, 8), "header": (8, 8 + int(n)), "body": (8 + int(n), len(raw))}
    for part, where, bit in flips:
        low, high = spans[part]
        if high > low:
            raw[low + min(int(where * (high - low)), high - low - 1)] ^= 1 << bit
    _load_bytes(workdir, bytes(raw))


bad_numbers = st.sampled_from([np.nan, np.inf, -np.inf])


@fuzz_settings()
@given(shape=trace_shapes(), dtype=st.sampled_from(["float16", "float32"]),
       tensor=st.sampled_from(["k", "v", "q"]), spot=st.floats(0, 1), bad=bad_numbers)
def test_fuzz_nan_inf_anywhere(workdir, shape, dtype, tensor, spot, bad):
    """NaN or Inf in any one element of any tensor is refused, naming that tensor."""
    shape["scale"] = 1.0
    if tensor == "v":
        shape["values"] = True
    header, body = split_safetensors(_file(workdir, shape, dtype))
    name = f"layers.{shape['layers'][-1]}.{tensor}"
    begin, end = header[name]["data_offsets"]
    arr = np.frombuffer(body[begin:end], dtype=np.float16 if dtype == "float16" else np.float32).copy()
    arr[min(int(spot * arr.size), arr.size - 1)] = bad
    body = body[:begin] + arr.tobytes() + body[end:]
    result = _load_bytes(workdir, safetensors_bytes(header, body))
    assert isinstance(result, TraceError) and result.where == name, result


header_values = st.one_of(
    st.none(), st.booleans(), st.integers(-2**40, 2**40), st.sampled_from([2**31, 2**62, -1, 0]),
    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=8),
    st.sampled_from(["F16", "F32", "F64", "I64", "I8", "U8", "BOOL", "BF16", "F8_E4M3", "", "f32"]),
    st.lists(st.integers(-3, 2**20), max_size=4),
    st.dictionaries(st.text(max_size=4), st.integers(), max_size=2),
)


@fuzz_settings()
@given(shape=trace_shapes(), dtype=st.sampled_from(["float16", "float32"]), data=st.data())
def test_fuzz_header_entries(workdir, shape, dtype, data):
    """Rewrite, drop or rename header entries; random metadata values; extra tensors."""
    shape["scale"] = 1.0
    header, body = split_safetensors(_file(workdir, shape, dtype))
    for _ in range(data.draw(st.integers(1, 4))):
        names = sorted(header)
        name = data.draw(st.sampled_from(names))
        op = data.draw(st.sampled_from(["field", "field", "drop", "rename", "meta", "meta_drop", "entry", "add"]))
        if name == "__metadata__" or op.startswith("meta"):
            meta = header.setdefault("__metadata__", {})
            if not isinstance(meta, dict):
                continue
            key = data.draw(st.sampled_from(sorted(REQUIRED_META) + ["model_layers", "extra"]))
            if op == "meta_drop":
                meta.pop(key, None)
            else:
                meta[key] = data.draw(st.one_of(st.text(max_size=6), st.sampled_from(
                    ["0", "-1", "1", "2", "3", "64", "8", "1e3", "float64", "bfloat16", "2", "axelsim-kv-trace"]),
                    header_values))
        elif op == "field":
            field = data.draw(st.sampled_from(["dtype", "shape", "data_offsets"]))
            if isinstance(header[name], dict):
                header[name][field] = data.draw(header_values)
        elif op == "drop":
            header.pop(name)
        elif op == "rename":
            header[data.draw(st.sampled_from(["layers.0.k", "layers.0.v", "layers.99.q", "layers.x.k", "q_positions",
                                              "layers.-1.k", "layers.01.k", "k"]))] = header.pop(name)
        elif op == "entry":
            header[name] = data.draw(header_values)
        else:
            header[data.draw(st.text(max_size=10))] = {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}
    _load_bytes(workdir, safetensors_bytes(header, body))


@fuzz_settings()
@given(blob=st.binary(max_size=400), length=st.one_of(st.none(), st.integers(0, 2**64 - 1)))
@example(blob=b"", length=None)
@example(blob=b"{}", length=None)
@example(blob=b"[]", length=None)
@example(blob=b'{"__metadata__": {}}', length=None)
@example(blob=b"\x00" * 16, length=None)
@example(blob=b"{", length=2**64 - 1)
def test_fuzz_not_a_safetensors_file(workdir, blob, length):
    data = blob if length is None else length.to_bytes(8, "little") + blob
    _load_bytes(workdir, data)


@fuzz_settings()
@given(header=st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=6)),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=3)),
    max_leaves=15), body=st.binary(max_size=64))
def test_fuzz_random_json_header(workdir, header, body):
    _load_bytes(workdir, safetensors_bytes(json.dumps(header).encode(), body))


small_arrays = st.one_of(
    st.builds(lambda shape, fill: np.full(shape, fill),
              st.lists(st.integers(0, 3), min_size=0, max_size=4).map(tuple),
              st.sampled_from([0.0, 1.0, -2.5, 1e5, np.nan, np.inf, 7])),
    st.builds(lambda shape, dt: np.ones(shape, dtype=dt),
              st.lists(st.integers(1, 3), min_size=3, max_size=3).map(tuple),
              st.sampled_from([np.float16, np.float32, np.float64, np.int8, np.int64, np.bool_])),
)


@fuzz_settings()
@given(k=small_arrays, v=st.one_of(st.none(), small_arrays), q=small_arrays,
       positions=st.lists(st.integers(-2, 5), max_size=4), dtype=st.sampled_from(["float16", "float32"]),
       layer=st.integers(0, 3))
def test_fuzz_from_arrays(k, v, q, positions, dtype, layer):
    """In-memory traces (what synth and tests build) are validated exactly like files."""
    result = outcome(lambda: Trace.from_arrays({layer: k}, None if v is None else {layer: v}, {layer: q},
                                               np.asarray(positions, dtype=np.int64), dtype=dtype))
    if not isinstance(result, (TraceError, KnownFault)):
        check_usable(result)


def test_fuzz_missing_paths(workdir):
    for path in (workdir / "absent.safetensors", workdir, workdir / "absent" / "x.safetensors"):
        result = outcome(lambda: load_trace(path), names=(str(path),))
        assert isinstance(result, TraceError)
