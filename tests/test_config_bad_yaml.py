"""Hostile macro YAML: every malformed file is one ConfigError line naming the file, quickly.

Regression tests for the fuzzing findings M1-M7 (docs in axelsim/config/load.py): unhashable
keys, deep nesting, anchors and aliases, huge integers, over-long file names, control characters
in keys and text, and explicit tags whose constructors fail.
"""

from __future__ import annotations

import time

import pytest

from axelsim.config import load_macro, macro_from_dict
from axelsim.config.load import MAX_DEPTH, one_line
from axelsim.errors import ConfigError


@pytest.fixture()
def macro_dir(tmp_path):
    (tmp_path / "tech").mkdir()
    (tmp_path / "tech" / "reference.yaml").write_text("name: stub\n")
    return tmp_path


def error_of(macro_dir, text: str | bytes) -> ConfigError:
    path = macro_dir / "m.yaml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    with pytest.raises(ConfigError) as info:
        load_macro(path)
    line = info.value.line()
    assert line.startswith(f"{path}: "), line
    assert "\n" not in line and "\r" not in line, repr(line)
    return info.value


# ---- M1: keys that are collections ----------------------------------------------------------
@pytest.mark.parametrize("text", ["? [a]\n: 1\n", "{[1]: 2}\n", "? {a: 1}\n: 1\n", "sram:\n  ? [x]\n  : 1\n"])
def test_collection_as_a_key_is_a_config_error(macro_dir, text):
    err = error_of(macro_dir, text)
    assert err.where.startswith("line ") and "key name" in err.expected


# ---- M2, M3: nesting, anchors and aliases ------------------------------------------------------
def test_deep_nesting_is_refused_with_its_line(macro_dir):
    err = error_of(macro_dir, "a: " + "[" * 5000 + "]" * 5000 + "\n")
    assert err.where.startswith("line 1,") and f"deeper than {MAX_DEPTH}" in err.expected


def test_nesting_within_the_bound_reaches_the_schema(macro_dir):
    depth = MAX_DEPTH - 1  # the top-level mapping is one level
    err = error_of(macro_dir, "a: " + "[" * (depth - 1) + "]" * (depth - 1) + "\n")
    assert err.where == "a" and "unknown key" in err.expected


@pytest.mark.parametrize("text", ["a: &a [*a]\n", "a: &x 1\nb: *x\n", "head_dim: &d 64\n",
                                  "sram: &s {banks: 2}\n"])
def test_anchors_and_aliases_are_refused(macro_dir, text):
    err = error_of(macro_dir, text)
    assert "anchors and aliases" in err.expected and err.where.startswith("line 1,")


def test_alias_blowup_is_refused_at_once(macro_dir):
    lines = ["a0: &a0 [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 8)]
    started = time.monotonic()
    err = error_of(macro_dir, "\n".join(lines) + "\n")
    assert time.monotonic() - started < 1.0
    assert "anchors and aliases" in err.expected


def test_shared_and_self_referencing_dicts_are_checked_in_linear_time():
    """macro_from_dict (sweeps pass it trees built by yaml.safe_load, aliases allowed there)."""
    loop: list = []
    loop.append(loop)
    with pytest.raises(ConfigError) as info:
        macro_from_dict({"a": loop}, "sweep.yaml")
    assert info.value.where == "a"
    shared: list = [1.0] * 10
    for _ in range(8):
        shared = [shared] * 10  # 10^9 leaves if walked as a tree
    started = time.monotonic()
    with pytest.raises(ConfigError) as info:
        macro_from_dict({"a": shared, "b": float("nan")}, "sweep.yaml")
    assert time.monotonic() - started < 1.0
    assert info.value.where == "b" and "finite" in info.value.expected


def test_first_non_finite_value_in_document_order_is_named():
    with pytest.raises(ConfigError) as info:
        macro_from_dict({"sram": {"banks": float("inf")}, "clock_hz": float("nan")}, "m.yaml")
    assert info.value.where == "sram.banks"


# ---- M4, M7: values whose constructor fails ---------------------------------------------------
@pytest.mark.parametrize(
    "text, fragment",
    [
        ("head_dim: " + "9" * 5000 + "\n", "int"),
        ("!!float\n", "float"), ("!!int\n", "int"), ("a: !!int ''\n", "int"), ("a: !!int x\n", "int"),
        ("a: !!float 1:2:x\n", "float"), ("a: !!timestamp 2001-13-45\n", "timestamp"),
        ("a: !!timestamp x\n", "timestamp"), ("a: !!bool x\n", "bool"), ("a: !!map [1]\n", "map"),
    ],
)
def test_value_whose_constructor_fails_is_a_config_error_with_its_line(macro_dir, text, fragment):
    err = error_of(macro_dir, text)
    assert err.where.startswith("line 1,") and fragment in err.expected
    assert len(err.line()) < 400, "the offending text is quoted, not dumped"


def test_good_explicit_tag_still_reaches_the_schema(macro_dir):
    err = error_of(macro_dir, "head_dim: !!float 64\n")
    assert err.where == "head_dim" and "integer" in err.expected


# ---- M5: over-long referenced file names ------------------------------------------------------
@pytest.mark.parametrize("key, what", [("technology", "technology table"), ("signs", "signs")])
def test_overlong_referenced_file_name_is_a_config_error(macro_dir, key, what):
    err = error_of(macro_dir, f"{key}:\n  file: {'a' * 5000}\n")
    assert err.where == f"{key}.file" and f"an existing {what} file" in err.expected
    assert "too long" in err.expected and len(err.line()) < 400


# ---- M6: one line whatever the input holds ----------------------------------------------------
def test_key_with_a_newline_is_escaped(macro_dir):
    err = error_of(macro_dir, 'sram:\n  "x\\ny": 1\n')
    assert err.where == "sram.x\\ny" and "unknown key 'x\\ny'" in err.expected


def test_nul_character_names_line_and_column(macro_dir):
    err = error_of(macro_dir, "bits: 3\nhead_dim: 128\x00\n")
    assert err.where == "line 2, column 14" and "special characters" in err.expected


def test_value_with_control_characters_is_escaped(macro_dir):
    err = error_of(macro_dir, 'formats:\n  score: "fp\\r\\t16\\u2028"\n')
    assert err.where == "formats.score" and "fp\\r\\t16\\u2028" in err.expected


def test_one_line_escapes_only_what_is_not_printable():
    assert one_line("a\nb\x00c\td\u2028é ü") == "a\\nb\\x00c\\td\\u2028é ü"
