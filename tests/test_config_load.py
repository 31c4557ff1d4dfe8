"""Macro YAML loading: every shipped file, round trips, overrides and each error path."""

from pathlib import Path

import pytest
import yaml

from axelsim.config import apply_overrides, dump_macro, load_macro, macro_from_dict
from axelsim.config.macro import MacroConfig
from axelsim.errors import ConfigError

MACROS = Path(__file__).resolve().parents[1] / "macros"
SHIPPED = sorted(MACROS.glob("*.yaml"))
NAMES = {
    "axelram_paper", "axelram_b2", "axelram_b4", "axelram_d64", "axelram_d256",
    "axelram_fp32acc", "axelram_gqa_shared", "axelram_multibank", "axelram_balanced", "axelram_8b_monolith",
    "axelram_qjl",
}


def test_all_named_macros_ship():
    assert {p.stem for p in SHIPPED} == NAMES


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_shipped_macro_loads_and_round_trips(path):
    loaded = load_macro(path)
    assert loaded.config.name == path.stem
    assert loaded.tech_path.is_file() and loaded.signs_path is None
    assert path.read_text().lstrip().startswith("#"), "each shipped macro says what it is for"
    again = macro_from_dict(yaml.safe_load(dump_macro(loaded.config)), "dump")
    assert again == loaded.config


def test_paper_macro_equals_schema_defaults_except_names():
    paper = load_macro(MACROS / "axelram_paper.yaml").config
    default = MacroConfig()
    # the paper forms the 7 scaled thresholds on one multiplier; the balanced default has 2^b - 1
    assert (paper.write_path.threshold_multipliers, default.write_path.threshold_multipliers) == (1, 7)
    paper_write = paper.write_path.model_copy(update={"threshold_multipliers": 7})
    assert paper.model_copy(update={"name": default.name, "description": "", "write_path": paper_write}) == default


def test_d64_is_smollm2_shaped():
    c = load_macro(MACROS / "axelram_d64.yaml").config
    assert (c.head_dim, c.write_path.fwht_butterflies, c.write_path.comparators, c.read_path.lookups_per_cycle) == (64, 192, 448, 64)
    assert c.row_bits == 64 * 3 + 16


def test_variants_differ_where_they_say():
    b2, b4 = (load_macro(MACROS / f"axelram_{n}.yaml").config for n in ("b2", "b4"))
    assert (b2.write_path.comparators, b2.row_bits) == (128 * 3, 272)
    assert (b4.write_path.comparators, b4.row_bits) == (128 * 15, 528)
    assert load_macro(MACROS / "axelram_gqa_shared.yaml").config.read_path.gqa_shared_read
    assert load_macro(MACROS / "axelram_fp32acc.yaml").config.formats.accumulator == "fp32"
    multi = load_macro(MACROS / "axelram_multibank.yaml").config
    assert multi.sram.banks > 16 and multi.read_path.pipelines > 1


def write(tmp_path, text, name="m.yaml"):
    path = tmp_path / name
    path.write_text(text)
    (tmp_path / "tech").mkdir(exist_ok=True)
    (tmp_path / "tech" / "reference.yaml").write_text("name: stub\n")
    return path


def error_of(path, **kw) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_macro(path, **kw)
    return info.value


@pytest.mark.parametrize(
    "text, where, fragment",
    [
        ("head_dim: 96\n", "head_dim", "power of two"),
        ("bits: 9\n", "bits", "from 1 to 8"),
        ("bits: 0\n", "bits", "from 1 to 8"),
        ("head_dim: '128'\n", "head_dim", "an integer"),
        ("read_path:\n  pipelines: 3\n", "read_path.pipelines", "divisor of sram.banks"),
        ("read_path:\n  lookups_per_cycle: 48\n", "read_path.lookups_per_cycle", "divisor of head_dim"),
        ("write_path:\n  fwht_butterflies: 100\n", "write_path.fwht_butterflies", "log2(d)"),
        ("write_path:\n  comparators: 900\n", "write_path.comparators", "(2^b - 1) * m"),
        ("read_path:\n  adder_tree_stages_per_cycle: 8\n", "read_path.adder_tree_stages_per_cycle", "at most"),
        ("sram:\n  row_bits: 399\n", "sram.row_bits", "at least"),
        ("sram:\n  banks: 0\n", "sram.banks", ">= 1"),
        ("sram:\n  mapping: diagonal\n", "sram.mapping", "token_interleaved"),
        ("clock_hz: .inf\n", "clock_hz", "finite"),
        ("clock_hz: .nan\n", "clock_hz", "finite"),
        ("formats:\n  table: fp8\n", "formats.table", "fixed<W>.<F>"),
        ("signs:\n  seed: 1\n  file: s.yaml\n", "signs", "not both"),
        ("sram: 4\n", "sram", "a mapping"),
        ("read_path:\n  gqa_shared_read: 1\n", "read_path.gqa_shared_read", "true or false"),
    ],
)
def test_bad_values_name_the_key(tmp_path, text, where, fragment):
    err = error_of(write(tmp_path, text))
    assert (err.source, err.where) == (str(tmp_path / "m.yaml"), where)
    assert fragment in err.expected and err.expected.startswith("expected ")
    assert "\n" not in err.line() and "pydantic" not in err.line()


def test_unknown_key_suggests_nearest(tmp_path):
    err = error_of(write(tmp_path, "read_path:\n  pipeline: 2\n"))
    assert err.where == "read_path.pipeline" and "did you mean 'pipelines'" in err.expected
    top = error_of(write(tmp_path, "head_dims: 64\n"))
    assert top.where == "head_dims" and "'head_dim'" in top.expected


@pytest.mark.parametrize(
    "text, fragment",
    [("", "empty file"), ("# only a comment\n", "empty file"), ("- 1\n- 2\n", "top level"), ("42\n", "top level")],
)
def test_file_shape_errors(tmp_path, text, fragment):
    assert fragment in error_of(write(tmp_path, text)).expected


def test_yaml_syntax_error_gives_line(tmp_path):
    err = error_of(write(tmp_path, "bits: 3\nsram:\n  banks: [1, 2\n"))
    assert err.where.startswith("line ") and "valid YAML" in err.expected


def test_duplicate_key_is_rejected_with_line(tmp_path):
    err = error_of(write(tmp_path, "bits: 3\nbits: 4\n"))
    assert err.where == "line 2, column 1" and "duplicate key 'bits'" in err.expected


def test_exponent_without_dot_is_a_float(tmp_path):
    assert load_macro(write(tmp_path, "clock_hz: 2e9\n")).config.clock_hz == 2.0e9


def test_missing_macro_technology_and_signs_files(tmp_path):
    assert "existing macro" in error_of(tmp_path / "nope.yaml").expected
    err = error_of(write(tmp_path, "technology:\n  file: tech/none.yaml\n"))
    assert err.where == "technology.file" and "does not exist" in err.expected
    err = error_of(write(tmp_path, "signs:\n  file: signs.yaml\n"))
    assert err.where == "signs.file" and "does not exist" in err.expected


def test_signs_file_is_resolved_next_to_the_macro(tmp_path):
    path = write(tmp_path, "signs:\n  file: signs.yaml\n")
    (tmp_path / "signs.yaml").write_text("layers: {}\n")
    loaded = load_macro(path)
    assert loaded.signs_path == tmp_path / "signs.yaml" and loaded.config.signs.seed is None
    assert macro_from_dict(yaml.safe_load(dump_macro(loaded.config))) == loaded.config


def test_overrides_validate_and_name_the_key():
    base = {"head_dim": 128}
    config = apply_overrides(base, {"read_path.pipelines": 2, "read_path.norm_multipliers": 2})
    assert config.read_path.pipelines == 2 and base == {"head_dim": 128}
    with pytest.raises(ConfigError) as info:
        apply_overrides(base, {"read_path.pipelines": 5}, source="sweep.yaml")
    assert (info.value.source, info.value.where) == ("sweep.yaml", "read_path.pipelines")
    with pytest.raises(ConfigError) as info:
        apply_overrides(base, {"read_path.pipelnes": 2})
    assert "did you mean 'pipelines'" in info.value.expected
    with pytest.raises(ConfigError) as info:
        apply_overrides(base, {"head_dim.x": 2})
    assert info.value.where == "head_dim.x"


def test_load_with_overrides():
    loaded = load_macro(MACROS / "axelram_paper.yaml", overrides={"bits": 2, "write_path.comparators": 384})
    assert (loaded.config.bits, loaded.config.row_bits, loaded.config.write_path.comparators) == (2, 272, 384)


def test_disabled_value_path_lanes_are_not_checked():
    assert not macro_from_dict({"head_dim": 8, "write_path": {"norm_squarers": 8, "fwht_butterflies": 12, "comparators": 56},
                                "read_path": {"table_multipliers": 8, "lookups_per_cycle": 8},
                                "value_path": {"enabled": False}}).value_path.enabled
    with pytest.raises(ConfigError) as info:
        macro_from_dict({"value_path": {"bin_lanes": 3}})
    assert info.value.where == "value_path.bin_lanes"


def test_qjl_macro_rows_follow_the_trace_head_size():
    for d, key_row in ((128, 416), (64, 224)):
        c = load_macro(MACROS / "axelram_qjl.yaml", head_dim=d).config
        assert (c.residual, c.key_bits, c.sketch_bits, c.row_bits) == ("qjl", 2, d, key_row)
