"""`auto` lane counts, `head_dim: auto`, `base:` inheritance and built-in technology tables.

Oracles: the balanced rule's closed form (one vector / one key per cycle: every per-vector unit's
II is 1, from the hw timing functions), file round trips, and error lines naming file and key.
"""

import shutil
from configparser import ConfigParser
from fnmatch import fnmatch
from pathlib import Path

import pytest
import yaml

from axelsim.config import MacroConfig, bind_head_dim, load_macro, macro_from_dict
from axelsim.config.load import builtin_data
from axelsim.config.macro import LANE_KEYS
from axelsim.errors import ConfigError
from axelsim.hw import lookup, norm_unit, quantizer, rotator, table, value_unit

ROOT = Path(__file__).resolve().parents[1]
MACROS = ROOT / "macros"


def _write(path: Path, data) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data) if not isinstance(data, str) else data)
    return path


@pytest.mark.parametrize("d, bits", [(8, 1), (64, 3), (128, 4), (256, 2), (1024, 8)])
def test_auto_lanes_are_balanced(d, bits):
    config = macro_from_dict({"head_dim": d, "bits": bits})
    wp, rp, vp = config.write_path, config.read_path, config.value_path
    assert (wp.norm_squarers, wp.comparators, wp.threshold_multipliers) == (d, d * (2**bits - 1), 2**bits - 1)
    assert wp.fwht_butterflies == vp.inverse_fwht_butterflies == d // 2 * (d.bit_length() - 1)
    # one vector per cycle through the write path, one key per cycle through read and value paths
    assert norm_unit.norm_timing(config)[1] == rotator.rotator_timing(config)[1] == 1
    assert quantizer.quantizer_timing(config)[1] == 1
    assert [ii for _, _, ii in lookup.lookup_stage_timing(config, 1)] == [1, 1, 1]
    assert [ii for _, _, ii in value_unit.stream_timing(config, 1)] == [1, 1]
    assert table.table_timing(config)[1] == 2**bits  # the table of d * 2^b entries, d products a cycle


def test_bits_alone_is_a_valid_macro_and_auto_equals_absent():
    alone = MacroConfig(bits=4)
    spelled = macro_from_dict({"bits": 4, **{k.split(".")[0]: {} for k in LANE_KEYS},
                               "write_path": {"comparators": "auto", "norm_squarers": "auto"},
                               "value_path": {"bin_lanes": "auto"}})
    assert alone == spelled
    assert alone.write_path.comparators == 128 * 15


def test_given_lanes_are_kept_and_norm_multipliers_follow_pipelines():
    config = macro_from_dict({"head_dim": 64, "read_path": {"pipelines": 4, "lookups_per_cycle": 16}})
    assert config.read_path.lookups_per_cycle == 16 and config.read_path.norm_multipliers == 4


def test_auto_in_a_bad_place_is_one_error_line():
    with pytest.raises(ConfigError) as caught:
        macro_from_dict({"read_path": {"pipelines": "auto"}}, "m.yaml")
    assert "m.yaml: read_path.pipelines: expected" in str(caught.value)


def test_head_dim_auto_binds_to_the_trace():
    loaded = load_macro(MACROS / "axelram_b2.yaml")
    assert loaded.head_dim_auto and loaded.config.head_dim == 128
    bound = bind_head_dim(loaded, 64)
    assert bound.config.head_dim == 64 and bound.config.write_path.comparators == 64 * 3
    assert bound.derived["head_dim"] == 64 and bound.derived["write_path.comparators"] == 192
    assert bind_head_dim(load_macro(MACROS / "axelram_d64.yaml"), 128).config.head_dim == 64  # fixed d stays
    assert load_macro(MACROS / "axelram_b4.yaml", head_dim=256).config.write_path.comparators == 256 * 15


def test_macro_copied_anywhere_uses_the_builtin_technology(tmp_path):
    copy = tmp_path / "elsewhere" / "mine.yaml"
    copy.parent.mkdir()
    shutil.copy(MACROS / "axelram_paper.yaml", copy)  # says technology.file: tech/reference.yaml
    loaded = load_macro(copy)
    assert loaded.tech_builtin
    assert loaded.tech_path.read_bytes() == (MACROS / "tech" / "reference.yaml").read_bytes()
    # a table next to the macro still wins
    (copy.parent / "tech").mkdir()
    shutil.copy(MACROS / "tech" / "reference.yaml", copy.parent / "tech" / "reference.yaml")
    assert not load_macro(copy).tech_builtin


def test_missing_technology_file_names_both_places(tmp_path):
    path = _write(tmp_path / "m.yaml", {"technology": {"file": "tech/none.yaml"}})
    with pytest.raises(ConfigError) as caught:
        load_macro(path)
    text = str(caught.value)
    assert text.startswith(f"{path}: technology.file: expected an existing technology table file")
    assert "built-in" in text and "\n" not in text


def test_package_data_ships_every_builtin_table():
    parser = ConfigParser()
    parser.read(ROOT / "setup.cfg")
    globs = [g.strip() for g in parser["options.package_data"]["axelsim"].split(",")]
    shipped = sorted(p.name for p in (MACROS / "tech").iterdir() if p.is_file())
    assert shipped and all(any(fnmatch(f"tech/{name}", g) for g in globs) for name in shipped)
    assert (builtin_data() / "tech").resolve() == (MACROS / "tech").resolve()


def test_base_inherits_overrides_and_rebases_file_names(tmp_path):
    shared = tmp_path / "shared"
    shutil.copytree(MACROS / "tech", shared / "tables")
    _write(shared / "base.yaml", {"name": "base", "head_dim": 64, "bits": 3, "sram": {"banks": 8, "rows_per_bank": 512},
                                  "technology": {"file": "tables/reference.yaml", "node_nm": 22}})
    child = _write(tmp_path / "designs" / "child.yaml", {"base": "../shared/base.yaml", "bits": 2,
                                                         "sram": {"banks": 4}})
    loaded = load_macro(child)
    config = loaded.config
    assert (config.name, config.head_dim, config.bits) == ("base", 64, 2)
    assert (config.sram.banks, config.sram.rows_per_bank, config.technology.node_nm) == (4, 512, 22)
    assert config.write_path.comparators == 64 * 3  # derived for the child's bits, not copied from the base
    assert loaded.tech_path.resolve() == (shared / "tables" / "reference.yaml").resolve() and not loaded.tech_builtin


def test_base_cycle_depth_and_missing_file_are_errors(tmp_path):
    a = _write(tmp_path / "a.yaml", {"base": "b.yaml"})
    _write(tmp_path / "b.yaml", {"base": "a.yaml"})
    with pytest.raises(ConfigError, match=r"b\.yaml: base: expected a chain of base files without a cycle"):
        load_macro(a)
    for index in range(12):
        _write(tmp_path / f"c{index}.yaml", {"base": f"c{index + 1}.yaml"} if index < 11 else {"bits": 2})
    with pytest.raises(ConfigError, match="base: expected a chain of at most 8 base files"):
        load_macro(tmp_path / "c0.yaml")
    assert load_macro(tmp_path / "c4.yaml").config.bits == 2  # a chain of 7 bases is fine
    lost = _write(tmp_path / "lost.yaml", {"base": "nowhere.yaml"})
    with pytest.raises(ConfigError, match=r"lost\.yaml: base: expected an existing base macro YAML file"):
        load_macro(lost)
    bad = _write(tmp_path / "bad.yaml", {"base": 3})
    with pytest.raises(ConfigError, match=r"bad\.yaml: base: expected a macro YAML file name"):
        load_macro(bad)
