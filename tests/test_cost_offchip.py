"""Off-chip spill (sram.overflow: spill): spilled rows go through the off-chip memory model
(HBM3 by default, HBM2 as an option: energy per bit, bandwidth, latency) in energy and in cycles,
checked against hand-computed costs."""

from __future__ import annotations

import math
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
DRAM_PJ_PER_BIT = 3.97  # O'Connor et al., MICRO 2017: HBM2 (kept as HBM3's upper bound)
# Row-miss latency tRCD + CL. HBM3: Ramulator 2.0's HBM3_6400Mbps preset (tCK 625 ps, nRCDRD 31,
# nCL 20); HBM2: 14 + 14 ns (typical speed bin).
HBM3_LATENCY_NS = (31 + 20) * 625e-3
HBM2_LATENCY_NS = 14.0 + 14.0


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


def test_spilled_rows_take_the_offchip_latency_and_channel_time(spill_files):
    """One query over 24 keys, 16 on the macro (2 banks x 8 rows) and 8 spilled: by hand, the
    off-chip read latency (HBM3, the default) is ceil((31.875 ns + 2 x H-tree) x 1 GHz) and the
    channel holds each 208-bit row 26 B / 819.2 GB/s = 0.03 ns -> 1 cycle; a run with spilled reads is longer than the same
    run with every row on the macro by at least the latency difference."""
    from axelsim.hw.macro import simulate
    from axelsim.trace import load_trace

    loaded = load_macro(spill_files / "spill.yaml")
    cost = CostModel.from_macro(loaded)
    timing = cost.timing(spills=True)
    wire_ns = cost.wire_mm() * 0.041
    assert timing.offchip_latency_cycles == math.ceil(HBM3_LATENCY_NS + 2 * wire_ns)
    assert 2 * wire_ns < 1.125 and timing.offchip_latency_cycles == 33  # 31.875 ns + a sub-ns H-tree, at 1 GHz
    assert timing.offchip_ii_cycles == 1 and timing.source["offchip"] == "derived"
    trace = load_trace(spill_files / "t.safetensors").with_selection(queries=1)
    signs = api.sign_rom(loaded, trace)
    spilled = simulate(loaded.config, signs, trace, timing=timing, prefill="preloaded")
    on_chip_cfg = loaded.config.model_copy(update={"sram": loaded.config.sram.model_copy(update={"rows_per_bank": 64})})
    on_chip = simulate(on_chip_cfg, signs, trace, timing=timing, prefill="preloaded")
    assert spilled.actions["offchip"]["read"] > 0 and "offchip" not in on_chip.actions
    extra = timing.offchip_latency_cycles - timing.read_latency_cycles
    assert spilled.cycles["total"] >= on_chip.cycles["total"] + extra
    # energy of the spilled reads, by hand: rows x 208 bits x 3.97 pJ/bit
    energy = cost.energy_pj(spilled.actions, spilled.time_s, 1)
    assert energy["dynamic"]["offchip"]["read"] == pytest.approx(spilled.actions["offchip"]["read"] * 208 * DRAM_PJ_PER_BIT)


def test_table_without_offchip_section_is_a_config_error_naming_it(tmp_path):
    table = yaml.safe_load(TECH.read_text())
    del table["offchip"]
    (tmp_path / "t.yaml").write_text(yaml.safe_dump(table))
    (tmp_path / table["sram"]["csv"]).write_bytes((TECH.parent / table["sram"]["csv"]).read_bytes())
    tech = Technology.load(tmp_path / "t.yaml", 45)
    with pytest.raises(ConfigError) as info:
        tech.offchip_pj_per_bit()
    assert info.value.source == str(tmp_path / "t.yaml") and info.value.where == "offchip"


def test_hbm3_is_the_default_and_hbm2_an_option_by_hand(spill_files):
    import math

    from axelsim.config import LoadedMacro

    loaded = load_macro(spill_files / "spill.yaml")
    assert loaded.config.sram.offchip_memory == "hbm3"
    tech = Technology.for_macro(loaded)
    # JESD238: 1024 pins x 6.4 Gb/s; JESD235: 1024 x 2 Gb/s (GB/s = Gb/s / 8)
    assert tech.offchip_memory("hbm3").bandwidth_gb_per_s == pytest.approx(1024 * 6.4 / 8)
    assert tech.offchip_memory("hbm2").bandwidth_gb_per_s == pytest.approx(1024 * 2 / 8)
    row_bytes = loaded.config.row_bits / 8  # 26 bytes at d = 64, b = 3
    # at 10 GHz a row holds the channel 26 B / 819.2 GB/s = 0.32 cycles (HBM3: 1), 26 / 256 = 1.02 (HBM2: 2)
    for kind, name, bw, ii, lat in (("hbm3", "HBM3", 819.2, 1, HBM3_LATENCY_NS), ("hbm2", "HBM2", 256.0, 2, HBM2_LATENCY_NS)):
        sram = loaded.config.sram.model_copy(update={"offchip_memory": kind})
        cfg = loaded.config.model_copy(update={"clock_hz": 1e10, "sram": sram})
        t = CostModel.from_macro(LoadedMacro(cfg, loaded.path, loaded.signs_path, loaded.tech_path)).timing(spills=True)
        assert t.offchip_ii_cycles == ii == math.ceil(row_bytes / bw * 10)
        assert tech.offchip_memory(kind).latency_ns == pytest.approx(lat)
        assert t.offchip_latency_cycles == math.ceil((lat + 2 * t.wire_ns) * 10 - 1e-9)
        assert t.offchip_memory == name and t.as_report()["offchip_memory"] == name
