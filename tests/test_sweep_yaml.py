"""Hostile sweep YAML (S1-S3) and technology tables: one ConfigError line naming the file, fast.

Both readers use the macro files' reader (axelsim.config.load.parse_yaml_mapping).
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from axelsim.cost.technology import Technology
from axelsim.errors import ConfigError
from axelsim.sweep import plan_sweep, read_spec

ROOT = Path(__file__).resolve().parents[1]
TECH = ROOT / "macros" / "tech" / "reference.yaml"

HOSTILE = {
    "bare tag": "!!float\n",
    "bad int tag": "a: !!int x\n",
    "bad float tag": "a: !!float 1:2:x\n",
    "deep nesting": "a: " + "[" * 5000 + "]" * 5000 + "\n",
    "alias": "name: &n x\nbase: *n\n",
    "recursive alias": "a: &a [*a]\n",
    "billion laughs": "\n".join(["a0: &a0 [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]"]
                                + [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]) + "\n",
    "list key": "? [a]\n: 1\n",
    "mapping key": "{{a: 1}: 2}\n",
    "duplicate key": "name: a\nname: b\n",
    "control character": "name: \x07\n",
    "empty": "",
    "top-level list": "- 1\n",
    "huge integer": "queries: " + "9" * 5000 + "\n",
}


def _one_line(error: ConfigError, path: Path) -> str:
    line = error.line()
    assert "\n" not in line and "\r" not in line and line.startswith(str(path))
    return line


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_sweep_yaml_is_one_config_error_line(tmp_path, name):
    path = tmp_path / "s.yaml"
    path.write_text(HOSTILE[name])
    started = time.perf_counter()
    with pytest.raises(ConfigError) as caught:
        plan_sweep(path)
    assert time.perf_counter() - started < 2.0
    _one_line(caught.value, path)


@pytest.mark.parametrize("key", ["a\nb", "a\rb", "a\tb\x00"])
def test_key_with_control_characters_is_escaped(tmp_path, key):
    escaped = key.encode("unicode_escape").decode("ascii")
    path = tmp_path / "s.yaml"
    path.write_text(f'name: x\nbase: m.yaml\ntraces: [t.safetensors]\ngrid:\n  "{escaped}": 5\n')
    with pytest.raises(ConfigError) as caught:
        read_spec(path)
    assert escaped in _one_line(caught.value, path)


def test_bad_tag_names_line_and_column(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("name: x\nqueries: !!int many\n")
    with pytest.raises(ConfigError) as caught:
        read_spec(path)
    assert "line 2" in _one_line(caught.value, path)


def test_unknown_sweep_key_still_lists_the_known_ones(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("base: m.yaml\ntraces: [t.safetensors]\ngird: {}\n")
    with pytest.raises(ConfigError) as caught:
        read_spec(path)
    assert caught.value.where == "gird" and "grid" in caught.value.expected


def test_shipped_sweep_still_reads():
    spec = read_spec(ROOT / "sweeps" / "d64_bits_pipelines.yaml")
    assert spec.grid["read_path.pipelines"] == [1, 2, 4] and len(spec.grid["quantizer"]) == 3


# ------------------------------------------------------------------------------ technology table
def _tech_copy(tmp_path: Path, text: str) -> Path:
    (tmp_path / "cacti_sram.csv").write_bytes((TECH.parent / "cacti_sram.csv").read_bytes())
    path = tmp_path / "tech.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("name", ["bare tag", "bad int tag", "deep nesting", "billion laughs", "list key",
                                  "control character", "empty", "top-level list"])
def test_hostile_technology_table_is_one_config_error_line(tmp_path, name):
    path = _tech_copy(tmp_path, HOSTILE[name])
    started = time.perf_counter()
    with pytest.raises(ConfigError) as caught:
        Technology.load(path, 28)
    assert time.perf_counter() - started < 2.0
    _one_line(caught.value, path)


def test_technology_csv_entry_that_is_not_a_name(tmp_path):
    text = TECH.read_text().replace("csv: cacti_sram.csv", "csv: [cacti_sram.csv]")
    assert text != TECH.read_text()
    path = _tech_copy(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        Technology.load(path, 28)
    assert caught.value.where == "sram.csv"


def test_shipped_technology_table_loads_unchanged():
    tech = Technology.load(TECH, 28)
    assert tech.node_nm == 28 and tech.offchip_pj_per_bit() > 0
