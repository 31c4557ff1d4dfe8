"""Cost model: primitive prices against the cited figures, scaling, inventory, energy, memory."""

import csv
import math
from pathlib import Path

import numpy as np
import pytest

from axelsim.config import LoadedMacro, load_macro, macro_from_dict
from axelsim.config.formats import FP16, FP32, NumberFormat
from axelsim.cost import CostModel, Technology, UnpricedActionError
from axelsim.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
TECH = ROOT / "macros" / "tech" / "reference.yaml"
PAPER = ROOT / "macros" / "axelram_paper.yaml"


def stillmaker(poly, vdd):
    a, b, c = poly
    return a * vdd * vdd + b * vdd + c


E45 = stillmaker((1.103, -0.362, 0.2767), 1.0)
E32 = stillmaker((0.9559, -0.7823, 0.471), 0.9)
E7 = stillmaker((0.1776, -0.09097, 0.02447), 0.7)
# 40 nm sits between 45 and 32 nm: log-log interpolation in node.
T40 = math.log(45 / 40) / math.log(45 / 32)
E40 = E45 * (E32 / E45) ** T40
A40 = 0.46**T40


@pytest.fixture(scope="module")
def tech45():
    return Technology.load(TECH, 45)


@pytest.fixture(scope="module")
def paper():
    return load_macro(PAPER)


def test_horowitz_points_are_reproduced_at_45nm(tech45):
    cases = [("add", FP16, 0.4, 1360), ("mul", FP16, 1.1, 1640), ("add", FP32, 0.9, 4184), ("mul", FP32, 3.7, 7700),
             ("add", NumberFormat("fixed", 8, 0), 0.03, 36), ("add", NumberFormat("fixed", 32, 16), 0.1, 137),
             ("mul", NumberFormat("fixed", 8, 4), 0.2, 282), ("mul", NumberFormat("fixed", 32, 0), 3.1, 3495)]
    for op, fmt, energy, area in cases:
        price = tech45.operation(op, fmt)
        assert price.energy_pj == pytest.approx(energy) and price.area_um2 == pytest.approx(area)


def test_fixed_width_between_points_is_log_log_interpolated(tech45):
    price = tech45.operation("add", NumberFormat("fixed", 12, 6))
    t = math.log(12 / 8) / math.log(16 / 8)
    assert price.energy_pj == pytest.approx(0.03 * (0.05 / 0.03) ** t)
    assert price.area_um2 == pytest.approx(36 * (67 / 36) ** t)


def test_comparator_is_aladdin_scaled_from_40nm(tech45):
    price = tech45.operation("cmp", FP16)
    assert price.energy_pj == pytest.approx(0.02947 * 0.5 * E45 / E40)
    assert price.area_um2 == pytest.approx(71 * 0.5 / A40)
    assert price.leakage_w == pytest.approx(2.51e-8 * 0.5 * E45 / E40)


def test_composite_units_are_their_adds_and_multiplies(tech45):
    assert tech45.operation("exp", FP32).energy_pj == pytest.approx(8 * 3.7 + 8 * 0.9 + 0.03)
    assert tech45.operation("div", FP32).energy_pj == pytest.approx(5 * 3.7 + 2 * 0.9)   # 2 Newton steps
    assert tech45.operation("sqrt", FP32).energy_pj == pytest.approx(7 * 3.7 + 2 * 0.9)
    assert tech45.operation("div", FP16).energy_pj == pytest.approx(3 * 1.1 + 1 * 0.4)   # 1 Newton step


def test_stated_scaling_factors():
    t7, t22 = Technology.load(TECH, 7), Technology.load(TECH, 22)
    assert t7.area_scale(45) == pytest.approx(0.059) and t7.energy_scale(45) == pytest.approx(E7 / E45)
    assert 0.21 < t22.area_scale(45) < 0.46 and E7 / E45 < t22.energy_scale(45) < E32 / E45


def test_scaling_is_monotone_in_node(paper):
    by_node = {}
    for node in (45, 22, 7):
        loaded = LoadedMacro(paper.config.model_copy(update={"technology": paper.config.technology.model_copy(update={"node_nm": node})}),
                             paper.path, None, paper.tech_path)
        model = CostModel.from_macro(loaded)
        by_node[node] = (model.area_um2(32), model.leakage_w(32),
                         model.energy_pj({"lookup_pipeline": {"add.fp16": 127}, "index_sram": {"read": 1}}, 0.0, 32)["total"])
    for big, small in ((45, 22), (22, 7)):
        assert all(by_node[small][0][k] < by_node[big][0][k] for k in by_node[big][0])
        assert by_node[small][1]["total"] < by_node[big][1]["total"]
        assert by_node[small][2] < by_node[big][2]


def small_model():
    config = macro_from_dict({
        "head_dim": 8, "bits": 2,
        "write_path": {"norm_squarers": 8, "fwht_butterflies": 12, "comparators": 24, "threshold_multipliers": 1},
        "read_path": {"table_multipliers": 8, "lookups_per_cycle": 8},
        "value_path": {"enabled": False},
        "sram": {"banks": 2, "rows_per_bank": 16},
    }, "small")
    return CostModel.from_macro(LoadedMacro(config, PAPER, None, TECH))


def test_small_inventory_by_hand():
    inv = small_model().inventory(n_layers=2)
    assert set(inv) == {"norm_unit", "rotator", "quantizer", "index_sram", "codebook_rom", "sign_rom",
                        "table_generator", "table_sram", "lookup_pipeline"}
    assert inv["rotator"] == {"add.fp32": 24, "register_bits": 8 * 32 * 3}
    assert inv["quantizer"] == {"cmp.fp32": 24, "mul.fp32": 1, "register_bits": 3 * 32 + 8 * 2}
    assert inv["lookup_pipeline"] == {"add.fp16": 7, "mul.fp32": 1, "register_bits": (4 + 2 + 1) * 16 + 32}
    assert inv["index_sram"]["memory_bits"] == 2 * 16 * (8 * 2 + 16)
    assert inv["sign_rom"]["memory_bits"] == 2 * 8 and inv["table_sram"]["memory_bits"] == 8 * 4 * 16


def test_small_lookup_pipeline_area_by_hand():
    area = small_model().area_um2(n_layers=2)
    registers = ((4 + 2 + 1) * 16 + 32) * 5.98 / A40
    assert area["lookup_pipeline"] == pytest.approx(7 * 1360 + 7700 + registers)
    assert area["total"] == pytest.approx(sum(v for k, v in area.items() if k != "total"))


def test_energy_charges_actions_and_leakage():
    model = small_model()
    leak = model.leakage_w(2)
    result = model.energy_pj({"lookup_pipeline": {"add.fp16": 70, "mul.fp32": 10}, "rotator": {"add.fp32": 24}}, 2e-6, 2)
    assert result["dynamic"]["lookup_pipeline"] == pytest.approx({"add.fp16": 28.0, "mul.fp32": 37.0})
    assert result["dynamic_by_component"]["rotator"] == pytest.approx(24 * 0.9)
    assert result["leakage"]["quantizer"] == pytest.approx(leak["quantizer"] * 2e-6 * 1e12)
    assert result["total"] == pytest.approx(result["dynamic_total"] + result["leakage_total"])
    assert result["leakage_total"] == pytest.approx(leak["total"] * 2e-6 * 1e12)


@pytest.mark.parametrize("actions", [
    {"rotator": {"read": 1}},            # no memory in the rotator
    {"lookup_pipeline": {"bogus.fp16": 1}},
    {"lookup_pipeline": {"add": 1}},
    {"value_unit": {"exp.fp32": 1}},     # value path disabled
    {"controller": {"add.fp16": 1}},
])
def test_unpriced_actions_raise(actions):
    with pytest.raises(UnpricedActionError):
        small_model().energy_pj(actions, 0.0, 2)


def test_memory_reads_are_priced_per_word():
    """A row access: one tile of the fitted kind (32-bit words, priced per bit at the 64-bit
    floor) plus the row's 32 bits over the H-tree (the macro's side, Weste & Harris 0.4 pJ/bit/mm
    at 65 nm scaled to 45 nm)."""
    model = small_model()
    geo = model.geometry(model.row_store()[1])
    fit = model.tech.sram_fits["1r1w"]
    wire = 32 * math.sqrt(model.macro_area_um2) * 1e-3 * 0.4 * E45 / stillmaker((3.755, -4.398, 1.975), 1.1)
    read = fit["read_energy_pj"](geo.tile_bytes, 64) * 32 / 64 + wire
    write = fit["write_energy_pj"](geo.tile_bytes, 64) * 32 / 64 + wire
    result = model.energy_pj({"index_sram": {"read": 3, "write": 2}}, 0.0, 2)
    assert result["dynamic"]["index_sram"] == pytest.approx({"read": 3 * read, "write": 2 * write})


def test_paper_memory_figures_exactly(paper):
    mem = CostModel.from_macro(paper).memory_bytes(n_layers=32, kv_heads=8, tokens=4096)
    assert mem["per_vector"] == 50 and mem["codebook_rom"] == 30 and mem["table"] == 2048
    assert CostModel.from_macro(paper).memory_bytes(1, 8, 4096)["sign_rom"] == 16
    assert mem["kv_storage"] == 100 * 2**20 and mem["kv_storage_fp16"] == 512 * 2**20
    assert mem["compression"] == pytest.approx(5.12)


def read_cacti(ports):
    with open(ROOT / "macros" / "tech" / "cacti_sram.csv") as handle:
        return [r for r in csv.DictReader(handle) if r["node_nm"] == "45" and r["cell_type"] == "itrs-lop" and r["ports"] == ports]


def test_cacti_fit_errors_are_what_the_fit_reports(tech45):
    for ports in ("1rw", "1r1w"):
        rows = read_cacti(ports)
        for quantity, fit in tech45.sram_fits[ports].items():
            rel = np.array([fit(float(r["capacity_bytes"]), float(r["width_bits"])) / float(r[quantity]) - 1 for r in rows])
            assert fit.n_points == len(rows) == 43
            assert np.sqrt(np.mean(rel**2)) == pytest.approx(fit.rms_rel_error)
            assert np.abs(rel).max() == pytest.approx(fit.max_rel_error)
        assert tech45.sram_fits[ports]["read_energy_pj"].rms_rel_error < 0.25


def test_sram_inside_the_sweep_is_the_fit_and_outside_is_tiled(tech45):
    fit = tech45.sram_fits["1rw"]
    inside = tech45.sram_array(65536 * 8, 128, 1)
    assert inside.read_pj == pytest.approx(fit["read_energy_pj"](65536, 128))
    assert inside.area_um2 == pytest.approx(fit["area_mm2"](65536, 128) * 1e6)
    one_mb, four_mb = tech45.sram_array(2**20 * 8, 256, 1), tech45.sram_array(4 * 2**20 * 8, 256, 1)
    assert four_mb.area_um2 == pytest.approx(4 * one_mb.area_um2) and four_mb.read_pj == pytest.approx(one_mb.read_pj)
    wide = tech45.sram_array(2**16 * 8 * 2, 1024, 1)   # two 512-bit slices read together
    assert wide.read_pj == pytest.approx(2 * fit["read_energy_pj"](65536, 512))


def test_baselines(paper):
    axel = CostModel.from_macro(paper)
    fp16 = CostModel.for_baseline("fp16", paper, axel.tech)
    deq = CostModel.for_baseline("dequant_inverse_rotate", paper, axel.tech)
    inv = fp16.inventory(32)
    assert inv["kv_sram"]["memory_word_bits"] == 128 * 16 and inv["dot_product"]["mul.fp16"] == 128
    assert deq.inventory(32)["inverse_rotator"] == {"add.fp32": 128 * 7, "register_bits": 128 * 32}
    assert fp16.area_um2(32)["total"] > axel.area_um2(32)["total"]
    with pytest.raises(UnpricedActionError):
        fp16.energy_pj({"table_sram": {"read": 1}}, 0.0, 32)
    with pytest.raises(ValueError):
        CostModel.for_baseline("int8", paper)


def test_bad_technology_file(tmp_path):
    bad = tmp_path / "t.yaml"
    bad.write_text("name: x\nscaling: {source: s}\n")
    with pytest.raises(ConfigError) as info:
        Technology.load(bad, 45)
    assert info.value.where == "arithmetic"
    bad.write_text("[1, 2\n")
    with pytest.raises(ConfigError):
        Technology.load(bad, 45)
