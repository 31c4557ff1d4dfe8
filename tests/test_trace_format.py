"""Trace file format: round trips, views, and every malformed-file case naming file and tensor."""

from __future__ import annotations

import json
import mmap

import numpy as np
import pytest
from safetensors import safe_open
from safetensors.numpy import save_file

from axelsim.errors import TraceError
from axelsim.trace import SynthSpec, Trace, load_trace, save_trace, synth_trace
from axelsim.trace.format import all_finite, evenly_spaced

SMALL = SynthSpec(layers=2, kv_heads=2, q_heads=4, head_dim=8, tokens=12, queries=3, seed=5)


@pytest.fixture()
def small() -> Trace:
    return synth_trace(SMALL)


@pytest.fixture()
def small_file(small, tmp_path):
    return save_trace(small, tmp_path / "small.safetensors")


def _raw(trace: Trace) -> tuple[dict, dict]:
    """The tensors and metadata of a trace as plain dicts, for making broken files."""
    return trace.tensors(), dict(trace.meta)


def _write(path, tensors, meta):
    save_file(tensors, str(path), metadata=meta)
    return path


def _expect_error(path, where: str) -> TraceError:
    with pytest.raises(TraceError) as info:
        load_trace(path)
    assert info.value.source == str(path)
    assert info.value.where == where
    assert str(path) in info.value.line() and where in info.value.line()
    return info.value


# ---- round trips ------------------------------------------------------------------------------
def test_save_load_round_trip_is_exact(small, small_file):
    loaded = load_trace(small_file)
    assert loaded.meta == small.meta
    assert loaded.digest() == small.digest()
    for layer in small.layer_indices:
        np.testing.assert_array_equal(loaded.k(layer), small.k(layer))
        np.testing.assert_array_equal(loaded.v(layer), small.v(layer))
        np.testing.assert_array_equal(loaded.q(layer), small.q(layer))
    np.testing.assert_array_equal(loaded.q_positions, small.q_positions)


def test_file_is_standard_safetensors(small, small_file):
    with safe_open(str(small_file), framework="np") as fh:
        assert fh.metadata() == small.meta
        np.testing.assert_array_equal(fh.get_tensor("layers.1.k").astype(np.float32), small.k(1))
        assert fh.get_tensor("q_positions").dtype == np.int64


def test_tensors_are_memory_mapped(small_file):
    loaded = load_trace(small_file)
    arr = loaded._arrays["layers.0.k"]
    assert not arr.flags.owndata and not arr.flags.writeable  # a read-only view, not a copy
    while isinstance(arr, np.ndarray):
        arr = arr.base
    assert isinstance(arr.obj if isinstance(arr, memoryview) else arr, mmap.mmap)


def test_digest_stable_and_sensitive(small, small_file, tmp_path):
    again = save_trace(load_trace(small_file), tmp_path / "again.safetensors")
    assert load_trace(again).digest() == load_trace(small_file).digest() == small.digest()
    k, v, q = ({L: getattr(small, kind)(L) for L in small.layer_indices} for kind in "kvq")
    k[1][0, 3, 2] += 1.0
    changed = Trace.from_arrays(k, v, q, small.q_positions, dtype="float16")
    assert changed.digest() != small.digest()


def test_from_arrays_float32_keeps_values_exactly():
    rng = np.random.default_rng(0)
    k = {3: rng.standard_normal((1, 5, 4))}
    q = {3: rng.standard_normal((2, 2, 4))}
    trace = Trace.from_arrays(k, None, q, [2, 4], model="m")
    assert trace.layer_indices == [3] and not trace.has_values
    np.testing.assert_array_equal(trace.k(3), k[3].astype(np.float32))
    with pytest.raises(KeyError):
        trace.v(3)


def test_from_arrays_rejects_fp16_overflow():
    k = {0: np.full((1, 2, 4), 1e6)}
    with pytest.raises(TraceError) as info:
        Trace.from_arrays(k, None, {0: np.ones((1, 1, 4))}, [1], dtype="float16")
    assert info.value.where == "layers.0.k"


# ---- views ------------------------------------------------------------------------------------
def test_selection_maps_query_heads_to_their_kv_head(small):
    view = small.with_selection(layers=[1], kv_heads=[1])
    assert (view.kv_heads, view.q_heads, view.layer_indices) == (1, 2, [1])
    np.testing.assert_array_equal(view.k(1), small.k(1)[1:2])
    np.testing.assert_array_equal(view.q(1), small.q(1)[2:4])
    with pytest.raises(KeyError):
        view.k(0)


def test_selection_of_queries_and_tokens(small):
    positions = small.q_positions
    last = small.with_selection(queries=1)
    assert last.q_positions.tolist() == [positions[-1]]
    cut = small.with_selection(tokens=int(positions[1]) + 1)
    assert cut.tokens == positions[1] + 1
    assert cut.q_positions.tolist() == positions[:2].tolist()
    np.testing.assert_array_equal(cut.k(0), small.k(0)[:, : cut.tokens])
    np.testing.assert_array_equal(cut.q(0), small.q(0)[:, :2])


def test_saved_view_round_trips(small, tmp_path):
    view = small.with_selection(layers=[0], kv_heads=[0], queries=[0, 2])
    loaded = load_trace(save_trace(view, tmp_path / "view.safetensors"))
    assert loaded.digest() == view.digest()
    assert loaded.meta["kv_heads"] == "1" and loaded.meta["n_layers"] == "1"


@pytest.mark.parametrize("kwargs, where", [
    ({"layers": [7]}, "layers"), ({"kv_heads": [2]}, "kv_heads"), ({"queries": [5]}, "queries"),
    ({"queries": 0}, "queries"), ({"tokens": 0}, "tokens"), ({"tokens": 1}, "tokens"),
])
def test_bad_selection(small, kwargs, where):
    with pytest.raises(TraceError) as info:
        small.with_selection(**kwargs)
    assert info.value.where == where


def test_evenly_spaced_keeps_last_and_is_unique():
    for count in range(1, 30):
        for n in range(1, 35):
            picks = evenly_spaced(count, n)
            assert picks[-1] == count - 1 and len(picks) == min(n, count)
            assert np.all(np.diff(picks) > 0) and picks[0] >= 0


# ---- malformed files ------------------------------------------------------------------------
def test_missing_file(tmp_path):
    _expect_error(tmp_path / "nope.safetensors", "file")


def test_not_safetensors(tmp_path):
    path = tmp_path / "text.safetensors"
    path.write_text("hello, this is not a trace at all\n" * 10)
    _expect_error(path, "header")


def test_empty_and_garbage_header(tmp_path):
    empty = tmp_path / "empty.safetensors"
    empty.write_bytes(b"")
    _expect_error(empty, "header")
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes((16).to_bytes(8, "little") + b"{not json here!}" + b"\0" * 8)
    _expect_error(garbage, "header")


def test_truncated_file(small_file):
    data = small_file.read_bytes()
    small_file.write_bytes(data[:-10])
    header = _header(data)
    last = max(header, key=lambda name: header[name]["data_offsets"][1])
    err = _expect_error(small_file, last)
    assert "truncated" in err.expected


def _header(data: bytes) -> dict:
    """The JSON header of safetensors bytes, without the metadata."""
    n = int.from_bytes(data[:8], "little")
    header = json.loads(data[8:8 + n])
    header.pop("__metadata__", None)
    return header


def _with_header(data: bytes, header: dict) -> bytes:
    """Safetensors bytes with a new header of the same length (padded with spaces)."""
    n = int.from_bytes(data[:8], "little")
    text = json.dumps(header, separators=(",", ":")).encode()
    assert len(text) <= n
    return data[:8] + text.ljust(n) + data[8 + n:]


@pytest.mark.parametrize("name", ["layers.1.v", "layers.0.q", "layers.1.k"])
def test_missing_tensor(small, tmp_path, name):
    tensors, meta = _raw(small)
    del tensors[name]
    _expect_error(_write(tmp_path / "t.safetensors", tensors, meta), name)


def test_missing_q_positions(small, tmp_path):
    tensors, meta = _raw(small)
    del tensors["q_positions"]
    _expect_error(_write(tmp_path / "t.safetensors", tensors, meta), "q_positions")


def test_wrong_shape(small, tmp_path):
    tensors, meta = _raw(small)
    tensors["layers.1.k"] = tensors["layers.1.k"][:, :-1].copy()
    _expect_error(_write(tmp_path / "t.safetensors", tensors, meta), "layers.1.k")


def test_wrong_dtype(small, tmp_path):
    tensors, meta = _raw(small)
    tensors["layers.0.v"] = tensors["layers.0.v"].astype(np.float32)
    _expect_error(_write(tmp_path / "t.safetensors", tensors, meta), "layers.0.v")


def test_unsupported_dtype(small_file):
    data = small_file.read_bytes()
    n = int.from_bytes(data[:8], "little")
    header = json.loads(data[8:8 + n])
    header["layers.0.k"]["dtype"] = "BF16"
    small_file.write_bytes(_with_header(data, header))
    err = _expect_error(small_file, "layers.0.k")
    assert "BF16" in err.expected


def test_offsets_disagreeing_with_shape(small_file):
    data = small_file.read_bytes()
    n = int.from_bytes(data[:8], "little")
    header = json.loads(data[8:8 + n])
    header["layers.1.q"]["shape"][1] += 1
    small_file.write_bytes(_with_header(data, header))
    _expect_error(small_file, "layers.1.q")


@pytest.mark.parametrize("name, value", [("layers.1.k", np.nan), ("layers.0.q", np.inf),
                                         ("layers.0.v", -np.inf)])
def test_nan_or_inf(small, tmp_path, name, value):
    tensors, meta = _raw(small)
    tensors[name] = tensors[name].copy()
    tensors[name][0, 1, 2] = value
    err = _expect_error(_write(tmp_path / "t.safetensors", tensors, meta), name)
    assert "NaN or Inf" in err.expected


@pytest.mark.parametrize("key, value", [("format", "something-else"), ("version", "9"),
                                        ("dtype", "bfloat16"), ("head_dim", "eight"),
                                        ("kv_heads", "3"), ("n_layers", "5"), ("tokens", "-1")])
def test_bad_metadata(small, tmp_path, key, value):
    tensors, meta = _raw(small)
    meta[key] = value
    where = "metadata.q_heads" if key == "kv_heads" else f"metadata.{key}"
    _expect_error(_write(tmp_path / "t.safetensors", tensors, meta), where)


def test_metadata_disagreeing_with_shapes(small, tmp_path):
    tensors, meta = _raw(small)
    meta["tokens"] = "13"
    _expect_error(_write(tmp_path / "t.safetensors", tensors, meta), "layers.0.k")
    meta["tokens"], meta["head_dim"] = "12", "16"
    _expect_error(_write(tmp_path / "t.safetensors", tensors, meta), "layers.0.k")


def test_missing_metadata(small, tmp_path):
    tensors, meta = _raw(small)
    _expect_error(_write(tmp_path / "none.safetensors", tensors, None), "metadata")
    del meta["model"]
    _expect_error(_write(tmp_path / "t.safetensors", tensors, meta), "metadata.model")


def test_layer_beyond_model_depth(small, tmp_path):
    tensors, meta = _raw(small)
    meta["model_layers"] = "1"
    _expect_error(_write(tmp_path / "t.safetensors", tensors, meta), "layers.1.k")


def test_unknown_tensor(small, tmp_path):
    tensors, meta = _raw(small)
    tensors["extra"] = np.zeros(3, dtype=np.float16)
    _expect_error(_write(tmp_path / "t.safetensors", tensors, meta), "extra")


@pytest.mark.parametrize("positions", [[5, 3, 11], [3, 3, 11], [3, 5, 12], [-1, 3, 5]])
def test_bad_q_positions(small, tmp_path, positions):
    tensors, meta = _raw(small)
    tensors["q_positions"] = np.asarray(positions, dtype=np.int64)
    _expect_error(_write(tmp_path / "t.safetensors", tensors, meta), "q_positions")


def test_q_positions_wrong_dtype(small, tmp_path):
    tensors, meta = _raw(small)
    tensors["q_positions"] = tensors["q_positions"].astype(np.int32)
    _expect_error(_write(tmp_path / "t.safetensors", tensors, meta), "q_positions")


def test_all_finite_on_every_float16_bit_pattern():
    """The float16 exponent-bit check agrees with np.isfinite on all 65,536 patterns, alone and
    within a finite array; float32 keeps np.isfinite."""
    every = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16).view(np.float16)
    finite = np.isfinite(every)
    ones = np.ones(7, dtype=np.float16)
    for i in range(every.size):
        arr = ones.copy()
        arr[3] = every[i]
        assert all_finite(arr) == bool(finite[i])
    assert all_finite(every[finite]) and not all_finite(every)
    assert not all_finite(np.array([1.0, np.inf], dtype=np.float32))


def test_stored_tensors_are_the_float32_accessors_in_the_stored_dtype():
    """Trace.stored gives k/v/q in the stored precision: float32 of it equals k/v/q exactly."""
    rng = np.random.default_rng(3)
    k = {0: rng.standard_normal((2, 6, 4)), 1: rng.standard_normal((2, 6, 4))}
    v = {L: rng.standard_normal((2, 6, 4)) for L in k}
    q = {L: rng.standard_normal((4, 2, 4)) for L in k}
    trace = Trace.from_arrays(k, v, q, [2, 5], dtype="float16").with_selection(kv_heads=[1], queries=[1])
    for L in (0, 1):
        for kind, full in (("k", trace.k(L)), ("v", trace.v(L)), ("q", trace.q(L))):
            got = trace.stored(L, kind)
            assert got.dtype == np.float16 and np.array_equal(got.astype(np.float32), full)
    with pytest.raises(KeyError):
        trace.stored(0, "x")


@pytest.mark.parametrize("dtype", ["float16", "float32"])
def test_stored_without_copy_is_the_files_read_only_array_when_the_selection_is_one_block(tmp_path, dtype):
    """stored(copy=False) of a file trace: the mapped array itself (read only, no copy) when the
    heads, queries and tokens are one block each, a copy for scattered heads; the same values as
    stored() and k/v/q either way, and stored() never hands out the file's memory."""
    rng = np.random.default_rng(5)
    k = {0: rng.standard_normal((3, 6, 4))}
    v = {0: rng.standard_normal((3, 6, 4))}
    q = {0: rng.standard_normal((6, 2, 4))}
    path = tmp_path / "t.safetensors"
    save_trace(Trace.from_arrays(k, v, q, [2, 5], dtype=dtype), path)
    full = load_trace(path)
    for trace, shared in ((full, True), (full.with_selection(kv_heads=[1, 2], tokens=4), True),
                          (full.with_selection(kv_heads=[0, 2]), False)):
        for kind, widened in (("k", trace.k(0)), ("v", trace.v(0))):
            view, copy = trace.stored(0, kind, copy=False), trace.stored(0, kind)
            mapped = full._arrays[f"layers.0.{kind}"]
            assert np.may_share_memory(view, mapped) == shared
            assert not view.flags.writeable or not shared
            assert not np.may_share_memory(copy, mapped) and not np.may_share_memory(widened, mapped)
            assert np.array_equal(view, copy) and np.array_equal(view.astype(np.float32), widened)
            assert widened.flags.writeable and widened.dtype == np.float32
