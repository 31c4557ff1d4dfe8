"""Off-chip spill (sram.overflow: spill): spilled rows are priced per bit as DRAM accesses.

Regression test for H2: the controller counts `offchip` reads and writes for rows past
sram.rows_per_bank; the cost model used to have no price for them (UnpricedActionError).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from axelsim import api
from axelsim.config import load_macro
from axelsim.cost import CostModel, Technology
from axelsim.errors import ConfigError
from axelsim.trace import SynthSpec, save_trace, synth_trace

ROOT = Path(__file__).resolve().parents[1]
TECH = ROOT / "macros" / "tech" / "reference.yaml"
DRAM_PJ_PER_BIT = 1300 / 64  # Horowitz ISSCC 2014: 1.3 nJ per 64-bit DRAM access (low end)


@pytest.fixture(scope="module")
def spill_files(tmp_path_factory):
    root = tmp_path_factory.mktemp("spill")
    data = yaml.safe_load((ROOT / "macros" / "axelram_d64.yaml").read_text())
    data["technology"] = {"file": str(TECH)}
    data["sram"].update(banks=2, rows_per_bank=8, overflow="spill")  # 16 rows; the trace writes 48
    (root / "spill.yaml").write_text(yaml.safe_dump(data))
    spec = SynthSpec(layers=1, kv_heads=1, q_heads=2, head_dim=64, tokens=24, queries=3, seed=3)
    save_trace(synth_trace(spec), root / "t.safetensors")
    return root


def test_reference_table_prices_offchip_bits():
    assert Technology.load(TECH, 45).offchip_pj_per_bit() == pytest.approx(DRAM_PJ_PER_BIT)
    assert Technology.load(TECH, 7).offchip_pj_per_bit() == pytest.approx(DRAM_PJ_PER_BIT)  # not node-scaled


def test_offchip_actions_cost_rows_times_row_bits_times_pj_per_bit(spill_files):
    loaded = load_macro(spill_files / "spill.yaml")
    model = CostModel.from_macro(loaded)
    energy = model.energy_pj({"offchip": {"read": 5, "write": 3}}, 0.0, 1)
    row_bits = loaded.config.row_bits
    assert row_bits == 64 * 3 + 16
    assert energy["dynamic"]["offchip"]["read"] == pytest.approx(5 * row_bits * DRAM_PJ_PER_BIT)
    assert energy["dynamic"]["offchip"]["write"] == pytest.approx(3 * row_bits * DRAM_PJ_PER_BIT)
    assert "offchip" not in model.area_um2(1) and "offchip" not in model.leakage_w(1)


def test_spill_run_charges_the_spilled_rows(spill_files):
    loaded = load_macro(spill_files / "spill.yaml")
    report = api.simulate(loaded, spill_files / "t.safetensors", baselines=False)
    offchip = report["energy_pj"]["by_component"]["offchip"]
    row_pj = loaded.config.row_bits * DRAM_PJ_PER_BIT
    spilled_writes = 2 * 24 - 2 * 8  # K and V of 24 tokens, 2 banks x 8 rows on the macro
    assert offchip["dynamic"]["write"] == pytest.approx(spilled_writes * row_pj)
    reads = offchip["dynamic"]["read"] / row_pj
    assert reads >= 1 and reads == pytest.approx(round(reads))  # whole spilled rows
    assert offchip["leakage"] == 0
    assert "offchip" not in report["area_um2"]["by_component"]
    assert report["numerics"]["bit_exact"] is True


def test_table_without_offchip_section_is_a_config_error_naming_it(tmp_path):
    table = yaml.safe_load(TECH.read_text())
    del table["offchip"]
    (tmp_path / "t.yaml").write_text(yaml.safe_dump(table))
    (tmp_path / table["sram"]["csv"]).write_bytes((TECH.parent / table["sram"]["csv"]).read_bytes())
    tech = Technology.load(tmp_path / "t.yaml", 45)
    with pytest.raises(ConfigError) as info:
        tech.offchip_pj_per_bit()
    assert info.value.source == str(tmp_path / "t.yaml") and info.value.where == "offchip"
