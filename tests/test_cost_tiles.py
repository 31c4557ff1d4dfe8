"""SRAM tiles and their timing, power states, energy sources, nodes, technology-table validation."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pytest
import yaml

from axelsim.config import LoadedMacro, load_macro
from axelsim.cost import CostModel, Technology
from axelsim.cost.tiles import leakage_by_state, tile_geometry
from axelsim.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
TECH = ROOT / "macros" / "tech" / "reference.yaml"
PAPER = ROOT / "macros" / "axelram_paper.yaml"


@pytest.fixture(scope="module")
def paper():
    return load_macro(PAPER)


def with_keys(loaded: LoadedMacro, section: str = "sram", **keys) -> LoadedMacro:
    cfg = loaded.config
    part = getattr(cfg, section).model_copy(update=keys)
    top = {k: v for k, v in keys.items() if section == "" and k in type(cfg).model_fields}
    config = cfg.model_copy(update={section: part} if section else top)
    return LoadedMacro(config, loaded.path, loaded.signs_path, loaded.tech_path)


def cacti_rows(node: str, cells: str, ports: str):
    with open(ROOT / "macros" / "tech" / "cacti_sram.csv") as handle:
        return [r for r in csv.DictReader(handle) if r["node_nm"] == node and r["cell_type"] == cells and r["ports"] == ports]


@pytest.mark.parametrize("cells", ["itrs-lop", "itrs-hp"])
def test_timing_fit_errors_are_recomputed_from_the_csv(cells):
    tech = Technology.load(TECH, 45, sram_cells=cells)
    for ports in ("1rw", "1r1w"):
        rows = cacti_rows("45", cells, ports)
        for quantity, fit in tech.timing_fits[ports].items():
            rel = np.array([fit(float(r["capacity_bytes"]), float(r["width_bits"])) / float(r[quantity]) - 1
                            for r in rows])
            assert fit.n_points == len(rows) == 43
            assert math.sqrt(np.mean(rel**2)) == pytest.approx(fit.rms_rel_error)
            assert np.abs(rel).max() == pytest.approx(fit.max_rel_error)
    # the access-time trend is a clean power law; cycle time scatters (cacti_sram.md, suspect 2)
    assert tech.timing_fits["1r1w"]["access_time_ns"].rms_rel_error < 0.15


def test_the_paper_macro_tiles_and_timing_by_hand(paper):
    cost = CostModel.from_macro(paper)
    tech = cost.tech
    geo = cost.geometry(cost.row_store()[1])
    # auto tile: largest power of two with fitted 1r1w access at 400 bits <= 1 ns at 1 GHz
    access = {cap: tech.sram_timing_ns(cap, 400, 2)[0] for cap in (2**k for k in range(10, 21))}
    expected = max(cap for cap, ns in access.items() if ns <= 1.0)
    assert geo.tile_bytes == expected and geo.tile_width_bits == 400 and geo.slices == 1
    assert geo.words_per_tile == expected * 8 // 400 and geo.row_tiles == -(-512 // geo.words_per_tile)
    t = cost.timing()
    wire_ns = math.sqrt(cost.macro_area_um2) * 1e-3 * 0.041
    assert t.wire_ns == pytest.approx(wire_ns)
    assert t.read_latency_cycles == math.ceil(access[expected] + 2 * wire_ns)
    assert t.write_latency_cycles == math.ceil(access[expected] + wire_ns)
    assert t.bank_ii_cycles == math.ceil(tech.sram_timing_ns(expected, 400, 2)[1])
    assert set(t.source.values()) == {"derived"}


def test_explicit_keys_override_and_say_so(paper):
    loaded = with_keys(paper, access_ns=3.0, bank_ii_cycles=5)
    t = CostModel.from_macro(loaded).timing()
    assert t.access_ns == 3.0 and t.bank_ii_cycles == 5
    assert t.source["access_ns"] == "overridden" and t.source["bank_ii_cycles"] == "overridden"
    assert t.source["cycle_ns"] == "derived"
    assert t.read_latency_cycles == math.ceil(3.0 + 2 * t.wire_ns)


def test_latency_cycles_are_monotone_in_tile_size_and_clock(paper):
    last = None
    for tile in (2**k for k in range(11, 21)):
        t = CostModel.from_macro(with_keys(paper, tile_bytes=tile)).timing()
        now = (t.read_latency_cycles, t.write_latency_cycles)
        assert last is None or now >= last  # tuples: both non-decreasing here
        assert last is None or (now[0] >= last[0] and now[1] >= last[1])
        last = now
    last = None
    for clock in (0.25e9, 0.5e9, 1e9, 2e9, 4e9):
        cfg = paper.config.model_copy(update={"clock_hz": clock, "sram": paper.config.sram.model_copy(update={"tile_bytes": 65536})})
        t = CostModel.from_macro(LoadedMacro(cfg, paper.path, None, paper.tech_path)).timing()
        now = (t.read_latency_cycles, t.write_latency_cycles, t.bank_ii_cycles)
        assert last is None or all(a >= b for a, b in zip(now, last))
        last = now
    assert last[0] > 1  # at 4 GHz a 64 KB tile takes several cycles


def test_tile_outside_the_sweep_is_a_config_error(paper):
    with pytest.raises(ConfigError) as info:
        CostModel.from_macro(with_keys(paper, tile_bytes=512)).timing()
    assert info.value.where == "sram.tile_bytes"


def test_gated_empty_tiles_leak_nothing(paper):
    cost = CostModel.from_macro(paper)
    geo = cost.geometry(cost.row_store()[1])
    tile_w = cost.tech.sram_tile(geo.tile_bytes, geo.tile_width_bits, geo.ports).leakage_w
    empty = leakage_by_state(paper.config, cost.tech, geo, rows_used=0, time_s=1e-3, busy_cycles=0)
    assert empty["active"] == 0 and empty["idle"] == 0 and empty["tiles_holding_data"] == 0
    one = leakage_by_state(paper.config, cost.tech, geo, rows_used=1, time_s=1e-3, busy_cycles=0)
    assert one["tiles_holding_data"] == geo.banks * geo.slices
    assert one["active"] == pytest.approx(geo.banks * geo.slices * tile_w * 1e-3 * 1e12)
    ungated = with_keys(paper, section="power", gating="none")
    allon = leakage_by_state(ungated.config, cost.tech, geo, rows_used=0, time_s=1e-3, busy_cycles=0)
    assert allon["active"] == pytest.approx(geo.tiles * tile_w * 1e-3 * 1e12)


def test_idle_tiles_retain_at_the_cited_fraction(paper):
    cost = CostModel.from_macro(paper)
    geo = cost.geometry(cost.row_store()[1])
    tile_w = cost.tech.sram_tile(geo.tile_bytes, geo.tile_width_bits, geo.ports).leakage_w
    idle = with_keys(paper, section="power", gating="idle_tiles")
    clock, time_s, busy = paper.config.clock_hz, 1e-4, 20_000
    split = leakage_by_state(idle.config, cost.tech, geo, rows_used=512, time_s=time_s, busy_cycles=busy)
    holding = geo.tiles
    active_s = busy * geo.slices / clock
    assert cost.tech.retention_fraction == 0.25
    assert split["active"] == pytest.approx(tile_w * active_s * 1e12)
    assert split["idle"] == pytest.approx(tile_w * 0.25 * (holding * time_s - active_s) * 1e12)


def test_energy_sources_and_cells(paper):
    lop = CostModel.from_macro(paper)
    hp = CostModel.from_macro(with_keys(paper, section="technology", sram_cells="itrs-hp"))
    horo = CostModel.from_macro(with_keys(paper, section="technology", sram_energy="horowitz"))
    units = lop.units(1)
    e = {name: m.action_pj("index_sram", "read", units) for name, m in (("lop", lop), ("hp", hp), ("horo", horo))}
    assert e["hp"] > e["lop"]
    # Horowitz: 64-bit reads 10 pJ at 8 KB, 20 pJ at 32 KB: log-log in capacity, x 400/64 in width
    tile = lop.geometry(lop.row_store()[1]).tile_bytes
    t = math.log(tile / 8192) / math.log(32768 / 8192)
    horowitz = 10 * 2**t * 400 / 64
    wire = e["lop"] - lop.tech.sram_tile(tile, 400, 2).read_pj
    assert e["horo"] == pytest.approx(horowitz + wire)
    assert hp.timing().access_ns < lop.timing().access_ns  # hp cells are faster


@pytest.mark.parametrize("node", [28, 16])
def test_new_nodes_sit_between_their_neighbours(node):
    lo, mid, hi = (Technology.load(TECH, n) for n in ({28: 22, 16: 7}[node], node, {28: 32, 16: 22}[node]))
    assert lo.energy_scale(45) < mid.energy_scale(45) < hi.energy_scale(45)
    assert lo.area_scale(45) < mid.area_scale(45) < hi.area_scale(45)


def test_16nm_is_the_tabulated_stillmaker_point():
    tech = Technology.load(TECH, 16)
    e45 = 1.103 - 0.362 + 0.2767
    assert tech.area_scale(45) == pytest.approx(0.19)
    assert tech.energy_scale(45) == pytest.approx((0.2958 * 0.64 - 0.1241 * 0.8 + 0.03024) / e45)


def test_5nm_is_outside_the_cited_source():
    with pytest.raises(ConfigError) as info:
        Technology.load(TECH, 5)
    assert info.value.where == "scaling.nodes" and "7..65" in info.value.expected


def _table_with(tmp_path, edit) -> Path:
    table = yaml.safe_load(TECH.read_text())
    edit(table)
    path = tmp_path / "t.yaml"
    path.write_text(yaml.safe_dump(table))
    (tmp_path / "cacti_sram.csv").write_bytes((TECH.parent / "cacti_sram.csv").read_bytes())
    return path


BAD_TABLES = [
    ("arithmetic.fp32_add.energy_pj", lambda t: t["arithmetic"]["fp32_add"].update(energy_pj=float("nan"))),
    ("arithmetic.fp16_mul.energy_pj", lambda t: t["arithmetic"]["fp16_mul"].update(energy_pj=-1.1)),
    ("aladdin.register_1b.area_um2", lambda t: t["aladdin"]["register_1b"].update(area_um2=0)),
    ("scaling.nodes[1].node_nm", lambda t: t["scaling"]["nodes"][1].update(node_nm=65)),
    ("arithmetic.int_add", lambda t: t["arithmetic"].update(int_add=[{"width_bits": 8, "energy_pj": 0.03, "area_um2": 36},
                                                                     {"width_bits": 8, "energy_pj": 0.05, "area_um2": 67}])),
    ("scaling.nodes[0].energy_poly", lambda t: t["scaling"]["nodes"][0].update(energy_poly=[1, "x", 2])),
    ("iterative.seed_bits", lambda t: t["iterative"].update(seed_bits="eight")),
    ("wire.delay_ps_per_mm", lambda t: t["wire"].update(delay_ps_per_mm=float("inf"))),
    ("power.retention_leakage_fraction", lambda t: t["power"].update(retention_leakage_fraction=1.5)),
    ("sram.horowitz.points[0].read_energy_pj", lambda t: t["sram"]["horowitz"]["points"][0].update(read_energy_pj=0)),
    ("scaling.nodes", lambda t: t["scaling"].update(nodes=[])),
    ("wire", lambda t: t.pop("wire")),
]


@pytest.mark.parametrize("where,edit", BAD_TABLES, ids=[w for w, _ in BAD_TABLES])
def test_bad_technology_entries_are_one_config_error(tmp_path, where, edit):
    with pytest.raises(ConfigError) as info:
        Technology.load(_table_with(tmp_path, edit), 45)
    assert info.value.where == where


@pytest.mark.parametrize("cell,value", [("read_energy_pj", "nan"), ("leakage_mw", "-3"), ("area_mm2", "0"),
                                        ("access_time_ns", "abc")])
def test_bad_cacti_csv_cells_name_the_line(tmp_path, cell, value):
    path = _table_with(tmp_path, lambda t: None)
    rows = list(csv.DictReader(open(tmp_path / "cacti_sram.csv")))
    rows[5][cell] = value
    with open(tmp_path / "cacti_sram.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    with pytest.raises(ConfigError) as info:
        Technology.load(path, 45)
    assert info.value.where == "sram.csv" and "line 7" in info.value.expected and cell in info.value.expected


def test_duplicate_cacti_row_is_refused(tmp_path):
    path = _table_with(tmp_path, lambda t: None)
    lines = (tmp_path / "cacti_sram.csv").read_text().splitlines()
    (tmp_path / "cacti_sram.csv").write_text("\n".join(lines + [lines[3]]) + "\n")
    with pytest.raises(ConfigError) as info:
        Technology.load(path, 45)
    assert "repeats" in info.value.expected


def test_bad_table_through_the_cli_exits_2_with_one_line(tmp_path):
    from cli_helpers import run_main

    path = _table_with(tmp_path, lambda t: t["arithmetic"]["fp32_add"].update(energy_pj=-0.9))
    macro = yaml.safe_load((ROOT / "macros" / "axelram_d64.yaml").read_text())
    macro["technology"] = {"file": str(path)}
    (tmp_path / "m.yaml").write_text(yaml.safe_dump(macro))
    code, out, err = run_main(["run", str(tmp_path / "m.yaml"), "--trace", str(ROOT / "traces" / "smollm2_austen_full.safetensors"),
                               "--layers", "0", "--queries", "1"])
    assert code == 2 and len(err.strip().splitlines()) == 1 and "arithmetic.fp32_add.energy_pj" in err
