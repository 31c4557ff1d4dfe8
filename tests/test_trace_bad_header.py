"""Hostile safetensors headers and paths: one TraceError line naming the file, never a traceback.

Regression tests for the fuzzing findings T1-T6 (axelsim/trace/format.py): non-integer and
huge shapes, deep JSON nesting, control characters in names, unreadable or over-long paths.
"""

from __future__ import annotations

import json
import struct

import pytest

from axelsim.errors import TraceError
from axelsim.trace.format import load_trace

META = {"format": "axelsim-kv-trace", "version": "1", "model": "m", "source": "s", "n_layers": "1",
        "kv_heads": "1", "q_heads": "1", "head_dim": "8", "tokens": "2", "dtype": "float32"}


def _file(tmp_path, header: dict | bytes, body: bytes = b"\0" * 8):
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    path = tmp_path / "t.safetensors"
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + body)
    return path


def _error(path) -> TraceError:
    with pytest.raises(TraceError) as info:
        load_trace(path)
    line = info.value.line()
    assert line.startswith(f"{path}: ") and "\n" not in line and "\r" not in line, repr(line)
    return info.value


def _positions(**entry) -> dict:
    return {"__metadata__": META, "q_positions": {"dtype": "I64", "shape": [1], "data_offsets": [0, 8], **entry}}


# ---- T1: shapes and offsets that are not non-negative integers ---------------------------------
@pytest.mark.parametrize("literal", [b"Infinity", b"-Infinity", b"NaN", b"1.0", b"true", b"-1", b'"1"', b"null"])
def test_shape_entry_that_is_not_a_count_is_a_trace_error(tmp_path, literal):
    raw = b'{"__metadata__": %s, "q_positions": {"dtype": "I64", "shape": [%s], "data_offsets": [0, 8]}}'
    err = _error(_file(tmp_path, raw % (json.dumps(META).encode(), literal)))
    assert err.where == "q_positions" and "non-negative integers" in err.expected


@pytest.mark.parametrize("shape", ["1", {"a": 1}, [1, 1, 1, 1], None])
def test_shape_that_is_not_a_short_list_is_a_trace_error(tmp_path, shape):
    err = _error(_file(tmp_path, _positions(shape=shape)))
    assert err.where == "q_positions" and "at most 3" in err.expected


@pytest.mark.parametrize("offsets", [[8, 0], [0, 8.0], [0], [0, 8, 16], [-8, 0], "0,8", [0, float("inf")]])
def test_bad_data_offsets_are_a_trace_error(tmp_path, offsets):
    header = json.dumps(_positions(data_offsets=offsets)).encode()  # json writes inf as Infinity
    err = _error(_file(tmp_path, header))
    assert err.where == "q_positions" and "data_offsets" in err.expected


@pytest.mark.parametrize("entry", [5, [1], "x", {"dtype": "I64"}])
def test_entry_that_is_not_a_tensor_description_is_a_trace_error(tmp_path, entry):
    err = _error(_file(tmp_path, {"__metadata__": META, "q_positions": entry}))
    assert err.where == "q_positions" and "dtype, shape and data_offsets" in err.expected


# ---- T2, T3: huge shapes ---------------------------------------------------------------------
@pytest.mark.parametrize("shape, offsets", [([2**32, 2**32], [0, 0]), ([2**70], [0, 8]), ([2**62, 4], [0, 0]),
                                            ([0, 2**70], [0, 0]), ([0, 2**62], [0, 0])])
def test_huge_shape_is_a_trace_error(tmp_path, shape, offsets):
    err = _error(_file(tmp_path, _positions(shape=shape, data_offsets=offsets)))
    assert err.where == "q_positions"


# ---- T4: header JSON -------------------------------------------------------------------------
@pytest.mark.parametrize("raw", [b"[" * 200000 + b"]" * 200000, b'{"a": ' + b"[" * 100000 + b"]" * 100000 + b"}"])
def test_deeply_nested_header_is_a_trace_error(tmp_path, raw):
    err = _error(_file(tmp_path, raw, b""))
    assert err.where == "header" and "nested too deeply" in err.expected


def test_header_with_a_5000_digit_number_is_a_trace_error(tmp_path):
    err = _error(_file(tmp_path, b'{"a": ' + b"9" * 5000 + b"}", b""))
    assert err.where == "header"


# ---- T5: control characters in names and dtypes ----------------------------------------------
def test_tensor_name_with_a_newline_is_escaped(tmp_path):
    entry = {"dtype": "I64", "shape": [1], "data_offsets": [0, 8]}
    err = _error(_file(tmp_path, {"__metadata__": META, "a\nb\x00": entry}))
    assert err.where == "a\\nb\\x00"


def test_dtype_with_a_newline_is_escaped(tmp_path):
    err = _error(_file(tmp_path, _positions(dtype="I\n64")))
    assert err.where == "q_positions" and "'I\\n64'" in err.expected


# ---- T6: paths the operating system refuses ---------------------------------------------------
def test_overlong_trace_path_is_a_trace_error(tmp_path):
    path = tmp_path / ("a" * 5000)
    with pytest.raises(TraceError) as info:
        load_trace(path)
    assert info.value.where == "file" and "too long" in info.value.expected
    assert "\n" not in info.value.line() and str(path) in info.value.line()


def test_path_through_a_regular_file_is_a_trace_error(tmp_path):
    (tmp_path / "f").write_text("x")
    err = _error(tmp_path / "f" / "t.safetensors")
    assert err.where == "file"


def test_path_with_a_newline_is_named_escaped(tmp_path):
    path = tmp_path / "a\nb.safetensors"
    with pytest.raises(TraceError) as info:
        load_trace(path)
    assert info.value.source == str(path).replace("\n", "\\n") and "\n" not in info.value.line()
