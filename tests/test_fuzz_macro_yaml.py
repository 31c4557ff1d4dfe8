"""Fuzz load_macro: every macro YAML ends in a valid MacroConfig or one ConfigError line.

Inputs: shipped macros with random edits (wrong types, booleans for integers, lists for
mappings, huge numbers, NaN and infinities, unknown keys, deep nesting), YAML-ish garbage,
arbitrary text, arbitrary bytes, truncations. Bounded by AXELSIM_FUZZ_EXAMPLES (`make fuzz`).
"""

from __future__ import annotations

import itertools
import math
from typing import get_args

import pytest
import yaml
from hypothesis import example, given
from hypothesis import strategies as st
from pydantic import BaseModel

from axelsim.config import MacroConfig, dump_macro, load_macro, macro_from_dict
from axelsim.config.macro import check_parallelism
from axelsim.errors import ConfigError
from fuzz_helpers import (KnownFault, fuzz_settings, macro_workdir, mutated_macro, outcome, yaml_garbage,
                          yaml_values)

_counter = itertools.count()


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return macro_workdir(tmp_path_factory.mktemp("fuzz_macro"))


def _write(workdir, data: bytes):
    path = workdir / f"m{next(_counter)}.yaml"
    path.write_bytes(data)
    return path


def _int_fields(model: BaseModel):
    """(dotted key, value) of every integer-typed field of a config, sections included."""
    for name, field in type(model).model_fields.items():
        value = getattr(model, name)
        if isinstance(value, BaseModel):
            for key, inner in _int_fields(value):
                yield f"{name}.{key}", inner
        elif field.annotation is int or int in get_args(field.annotation):
            yield name, value


def check_valid_config(config: MacroConfig) -> None:
    """What a loaded macro must satisfy (SPEC 'Bad input' rules, docs/config.md), checked independently."""
    d, b = config.head_dim, config.bits
    assert type(d) is int and d & (d - 1) == 0 and 8 <= d <= 1024
    assert type(b) is int and 1 <= b <= 8
    assert isinstance(config.clock_hz, float | int) and math.isfinite(config.clock_hz) and config.clock_hz > 0
    for key, value in _int_fields(config):
        assert value is None or type(value) is int, f"{key} = {value!r} accepted as an integer"
    check_parallelism(config)
    again = macro_from_dict(yaml.safe_load(dump_macro(config)), "roundtrip")
    assert again == config


def _load(workdir, data: bytes):
    path = _write(workdir, data)
    result = outcome(lambda: load_macro(path), names=(str(path),))
    if not isinstance(result, (ConfigError, KnownFault)):
        check_valid_config(result.config)
    return result


def test_fuzz_shipped_macros_load(workdir):
    for name in ("axelram_paper", "axelram_d64", "axelram_b2", "axelram_b4"):
        from fuzz_helpers import macro_dict

        result = _load(workdir, yaml.safe_dump(macro_dict(name)).encode())
        assert not isinstance(result, (ConfigError, KnownFault)), result


@fuzz_settings()
@given(data=mutated_macro())
@example(data={"head_dim": True})
@example(data={"bits": 3.0})
@example(data={"head_dim": 96})
@example(data={"sram": [1, 2]})
@example(data={"sram": {"banks": {"x": 1}}})
@example(data={"clock_hz": float("nan")})
@example(data={"clock_hz": 2**64})
@example(data={"read_path": {"pipelines": 10**30}})
@example(data={"read_path": {"pipelines": 3}})
@example(data={"formats": {"table": "fixed99.1"}})
@example(data={"signs": {"seed": None}})
@example(data={"signs": {"file": "nope.yaml", "seed": 1}})
@example(data={"value_path": {"enabled": False, "bin_lanes": 3}})
def test_fuzz_mutated_macro(workdir, data):
    _load(workdir, yaml.safe_dump(data, allow_unicode=True).encode())


@fuzz_settings()
@given(value=yaml_values)
def test_fuzz_any_yaml_document(workdir, value):
    """A document of any shape: scalar, list, nested mapping (non-mappings must be refused)."""
    result = _load(workdir, yaml.safe_dump(value, allow_unicode=True).encode())
    if not isinstance(value, dict):
        assert isinstance(result, (ConfigError, KnownFault)), result


@fuzz_settings()
@given(text=yaml_garbage)
@example(text="")
@example(text="   \n# only a comment\n")
@example(text="head_dim: 128\nhead_dim: 64\n")
@example(text="[1, 2")
@example(text="a: *b\n")
@example(text="head_dim: !!binary aGVsbG8=\n")
@example(text="head_dim: 0x80\n")
@example(text="%YAML 1.1\n---\nbits: 3\n---\nbits: 4\n")
def test_fuzz_yaml_garbage(workdir, text):
    _load(workdir, text.encode("utf-8", "surrogatepass"))


@fuzz_settings()
@given(blob=st.binary(max_size=300))
@example(blob=b"")
@example(blob=b"\xff\xfe\x00\x00")
@example(blob=b"\xef\xbb\xbfbits: 3\n")
@example(blob="bits: 3\n".encode("utf-16"))
def test_fuzz_binary_bytes(workdir, blob):
    _load(workdir, blob)


@fuzz_settings()
@given(data=mutated_macro(), cut=st.floats(0, 1), flips=st.lists(st.tuples(st.floats(0, 1), st.integers(0, 7)),
                                                                  max_size=3))
def test_fuzz_truncated_or_flipped_macro(workdir, data, cut, flips):
    raw = bytearray(yaml.safe_dump(data).encode())
    raw = raw[: int(len(raw) * cut)]
    for where, bit in flips:
        if raw:
            raw[min(int(where * len(raw)), len(raw) - 1)] ^= 1 << bit
    _load(workdir, bytes(raw))


@fuzz_settings()
@given(overrides=st.dictionaries(
    st.one_of(st.sampled_from(["head_dim", "bits", "read_path.pipelines", "sram.banks", "formats.table",
                               "sram.banks.x", "a..b", ".", "", "write_path", "signs.seed"]),
              st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\n\r"), max_size=10)),
    yaml_values, max_size=3))
def test_fuzz_dotted_overrides(workdir, overrides):
    """Sweep-style overrides go through the same validation and errors."""
    from fuzz_helpers import macro_dict

    path = _write(workdir, yaml.safe_dump(macro_dict("axelram_d64")).encode())
    result = outcome(lambda: load_macro(path, overrides), names=(str(path),))
    if not isinstance(result, (ConfigError, KnownFault)):
        check_valid_config(result.config)


def test_fuzz_missing_and_directory_paths(workdir):
    for path in (workdir / "absent.yaml", workdir, workdir / "tech" / "absent" / "x.yaml"):
        result = outcome(lambda: load_macro(path), names=(str(path),))
        assert isinstance(result, ConfigError)
