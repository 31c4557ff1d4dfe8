"""Regression tests for the defects the fuzzers found (ids as in tests/fuzz_helpers.KNOWN_FAULTS).

Fixed defects stay here as plain regression tests (marked `# fixed since`). Each open defect is a strict xfail: when its owner fixes it, the test passes, strict xfail turns
that into a failure, and whoever fixed it removes the mark here and the KNOWN_FAULTS entry in
tests/fuzz_helpers.py (so the fuzzers stop tolerating it).
"""

from __future__ import annotations

import json

import pytest

from axelsim.config import load_macro
from axelsim.errors import ConfigError, TraceError, UserError
from axelsim.trace.format import load_trace
from fuzz_helpers import check_user_error, macro_workdir, safetensors_bytes, time_limit

META = {"format": "axelsim-kv-trace", "version": "1", "model": "m", "source": "s", "n_layers": "1",
        "kv_heads": "1", "q_heads": "1", "head_dim": "8", "tokens": "2", "dtype": "float32"}


@pytest.fixture
def workdir(tmp_path):
    return macro_workdir(tmp_path)


def _macro_error(workdir, text: str | bytes, limit_s: float = 20) -> ConfigError:
    path = workdir / "m.yaml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    with time_limit(limit_s), pytest.raises(ConfigError) as caught:
        load_macro(path)
    check_user_error(caught.value, (str(path),))
    return caught.value


def _trace_error(tmp_path, header: dict | bytes, body: bytes = b"") -> TraceError:
    path = tmp_path / "t.safetensors"
    path.write_bytes(safetensors_bytes(header, body))
    with time_limit(20), pytest.raises(TraceError) as caught:
        load_trace(path)
    check_user_error(caught.value, (str(path),))
    return caught.value


# ---------------------------------------------------------------------- axelsim/config/load.py
# fixed since (found by fuzzing): M1: _construct_mapping tests `key in seen` before PyYAML's unhashable-key check -> TypeError
@pytest.mark.parametrize("text", ["? [a]\n: 1\n", "{[1]: 2}\n", "? {a: 1}\n: 1\n"], ids=["list", "flow", "dict"])
def test_unhashable_yaml_key_is_a_config_error(workdir, text):
    _macro_error(workdir, text)


# fixed since (found by fuzzing): M2: deep YAML nesting -> RecursionError in PyYAML (parse_yaml_mapping catches only YAMLError)
def test_deeply_nested_yaml_is_a_config_error(workdir):
    _macro_error(workdir, "a: " + "[" * 5000 + "]" * 5000 + "\n")


# fixed since (found by fuzzing): M2: a self-referencing alias -> RecursionError in _check_finite
def test_recursive_alias_is_a_config_error(workdir):
    _macro_error(workdir, "a: &a [*a]\n")


# fixed since (found by fuzzing): M3: shared aliases (billion laughs) make _check_finite walk 10^8 nodes (~45 s) before the unknown key is seen
def test_alias_blowup_is_refused_quickly(workdir):
    lines = ["a0: &a0 [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 8)]
    _macro_error(workdir, "\n".join(lines) + "\n", limit_s=1.5)


# fixed since (found by fuzzing): M4: an integer literal over 4300 digits -> ValueError from int() inside PyYAML
def test_integer_with_5000_digits_is_a_config_error(workdir):
    _macro_error(workdir, "head_dim: " + "9" * 5000 + "\n")


# fixed since (found by fuzzing): M5: technology.file longer than NAME_MAX -> OSError ENAMETOOLONG from Path.is_file in _existing_file
@pytest.mark.parametrize("key", ["technology", "signs"])
def test_overlong_referenced_file_name_is_a_config_error(workdir, key):
    _macro_error(workdir, f"{key}:\n  file: {'a' * 5000}\n")


# fixed since (found by fuzzing): M6: a key holding a newline is printed raw: the error is two lines
def test_error_naming_a_key_with_a_newline_is_one_line(workdir):
    _macro_error(workdir, 'sram:\n  "x\\ny": 1\n')


# fixed since (found by fuzzing): M6: a NUL character gives a PyYAML ReaderError whose text spans two lines
def test_nul_character_error_is_one_line(workdir):
    _macro_error(workdir, "head_dim: 128\x00\n")


# fixed since (found by fuzzing): M7: explicit tags with bad content escape PyYAML constructors as IndexError/ValueError/KeyError/...
@pytest.mark.parametrize("text", ["!!float\n", "a: !!int ''\n", "a: !!int x\n", "a: !!timestamp x\n",
                                  "a: !!timestamp 2001-13-45\n", "a: !!bool x\n", "a: !!map [1]\n"])
def test_bad_explicit_tag_is_a_config_error(workdir, text):
    _macro_error(workdir, text)


# ---------------------------------------------------------------------- axelsim/trace/format.py
def test_header_shape_that_overflows_int64_is_a_trace_error(tmp_path):
    """T2/T3 (fixed in e991328): a shape whose element count wraps int64 or exceeds it."""
    for shape in ([2**32, 2**32], [2**70], [2**62, 4]):
        error = _trace_error(tmp_path, {"__metadata__": META,
                                        "q_positions": {"dtype": "I64", "shape": shape, "data_offsets": [0, 0]}})
        assert error.where == "q_positions"


# fixed since (found by fuzzing): T1: shape [Infinity] (JSON allows it) -> OverflowError from int(inf) in _map_tensor
def test_infinite_shape_is_a_trace_error(tmp_path):
    raw = b'{"__metadata__": %s, "q_positions": {"dtype": "I64", "shape": [Infinity], "data_offsets": [0, 8]}}'
    _trace_error(tmp_path, raw % json.dumps(META).encode(), b"\0" * 8)


# fixed since (found by fuzzing): T4: a header JSON nested 200000 deep -> RecursionError from json.loads in _read_header
def test_deeply_nested_header_is_a_trace_error(tmp_path):
    _trace_error(tmp_path, b"[" * 200000 + b"]" * 200000)


# fixed since (found by fuzzing): T5: a tensor name or dtype with a newline is printed raw: the error is two lines
@pytest.mark.parametrize("entry", [{"a\nb": {"dtype": "I64", "shape": [1], "data_offsets": [0, 8]}},
                                   {"a": {"dtype": "I\n64", "shape": [1], "data_offsets": [0, 8]}}],
                         ids=["name", "dtype"])
def test_error_naming_a_tensor_with_a_newline_is_one_line(tmp_path, entry):
    _trace_error(tmp_path, {"__metadata__": META, **entry}, b"\0" * 8)


# fixed since (found by fuzzing): T6: a trace path longer than NAME_MAX -> OSError ENAMETOOLONG from Path.is_file in _read_header
def test_overlong_trace_path_is_a_trace_error(tmp_path):
    path = tmp_path / ("a" * 5000)
    with pytest.raises(UserError) as caught:
        load_trace(path)
    check_user_error(caught.value)


# ------------------------------------------------------------------------------ axelsim/sweep.py
@pytest.mark.parametrize("text", ["!!float\n", "a: !!int x\n", "a: !!float 1:2:x\n"])
def test_sweep_bad_explicit_tag_is_a_config_error(tmp_path, text):
    from axelsim.sweep import plan_sweep

    path = tmp_path / "s.yaml"
    path.write_text(text)
    with time_limit(20), pytest.raises(ConfigError) as caught:
        plan_sweep(path)
    check_user_error(caught.value, (str(path),))


def test_sweep_deeply_nested_yaml_is_a_config_error(tmp_path):
    from axelsim.sweep import plan_sweep

    path = tmp_path / "s.yaml"
    path.write_text("a: " + "[" * 5000 + "]" * 5000 + "\n")
    with time_limit(20), pytest.raises(ConfigError) as caught:
        plan_sweep(path)
    check_user_error(caught.value, (str(path),))


def test_sweep_error_naming_a_key_with_a_newline_is_one_line(tmp_path):
    from axelsim.sweep import plan_sweep

    path = tmp_path / "s.yaml"
    path.write_text('name: x\nbase: m.yaml\ntraces: [t.safetensors]\ngrid:\n  "a\\nb": 5\n')
    with time_limit(20), pytest.raises(ConfigError) as caught:
        plan_sweep(path)
    check_user_error(caught.value, (str(path),))
