"""The chip's power states: gated instances and empty tiles leak nothing; idle tiles leak at retention."""

from __future__ import annotations

import pytest

from axelsim import api
from axelsim.chip.instance import ShareResult
from axelsim.chip.models import load_model
from axelsim.chip.plan import make_plan
from axelsim.chip.power import leakage_by_state
from axelsim.config.chip import load_chip
from axelsim.cost import tiles
from axelsim.cost.model import CostModel
from tests.test_chip import _chip, _model

ROWS = 1024
"""Rows per bank of the test instance: two tiles of 630 rows per bank (d = 64, 16 KiB tiles)."""


def _tile_w(cost: CostModel) -> float:
    _, memory = cost.row_store(1)
    return tiles.tile_price(cost.config, cost.tech, cost.geometry(memory)).leakage_w


def test_gated_instances_and_empty_tiles_leak_nothing(tmp_path):
    model = _model(tmp_path, layers=1, q=2, kv=2, d=64)  # two shares, on three instances: one holds nothing
    reports = {gating: api.chip(_chip(tmp_path, rows=ROWS, mapping={"kind": "head_parallel"}, instances=3,
                                      power_gating=gating), model=model, context=100, baselines=False)
               for gating in ("none", "unused_instances", "empty_tiles")}
    t = reports["none"]["decode"]["latency_s"]
    assert {r["decode"]["latency_s"] for r in reports.values()} == {t}  # power states do not change timing
    instance_w = reports["none"]["instance"]["leakage_w"]
    cost = CostModel.from_macro(load_chip(_chip(tmp_path, rows=ROWS, power_gating="empty_tiles")).macro)
    tile_w = _tile_w(cost)
    leak = {g: r["decode"]["energy_j_per_token_by_component"]["macro_leakage"] for g, r in reports.items()}
    assert leak["none"] == pytest.approx(3 * instance_w * t)
    assert leak["unused_instances"] == pytest.approx(2 * instance_w * t)
    # 100 tokens: 2 x ceil(100 / 16) = 14 rows per bank, in the first of each bank's two tiles
    assert leak["empty_tiles"] == pytest.approx(2 * (instance_w - 16 * tile_w) * t)
    power = reports["empty_tiles"]["power"]
    assert power["instances_gated"] == 1 and power["tiles_total"] == 3 * 32
    assert power["tiles_powered"] == 2 * 16 and power["tiles_off"] == 32 + 2 * 16
    assert reports["none"]["power"]["tiles_off"] == 0 and reports["none"]["power"]["instances_gated"] == 0
    for report in reports.values():
        states = report["decode"]["energy_j_per_token_by_state"]
        assert states["leakage_off"] == 0.0 and states["leakage_idle"] == 0.0
        assert sum(states.values()) == pytest.approx(report["decode"]["energy_j_per_token"])


def test_idle_tiles_leak_at_retention_hand_case(tmp_path):
    chip = load_chip(_chip(tmp_path, rows=ROWS, mapping={"kind": "head_parallel"}, power_gating="idle_tiles"))
    shape = load_model(_model(tmp_path, layers=1, q=2, kv=1, d=64))
    plan = make_plan(chip.config, chip.macro.config, shape, 100, 1, "test")
    assert len(plan.shares) == 1
    reads, writes, bank_ii, t = 400, 2, 3, 10e-6
    results = {0: ShareResult(0, {"index_sram": {"read": reads}}, 0, {"index_sram": {"write": writes}}, 0, {},
                              None, None)}
    cost = CostModel.from_macro(chip.macro)
    tile_w, logic_w = _tile_w(cost), cost.leakage_w(1)["total"] - cost.leakage_w(1)["index_sram"]
    split = leakage_by_state(cost, plan, results, "idle_tiles", t, bank_ii, "decode")
    holding = 16  # one tile per bank holds the 14 rows
    active_tile_s = (reads + writes) * bank_ii / 1e9  # one slice: one tile per access, bank_ii cycles at 1 GHz
    idle_tile_s = holding * t - active_tile_s
    assert split["pj"]["active"] * 1e-12 == pytest.approx(logic_w * t + tile_w * active_tile_s)
    assert split["pj"]["idle"] * 1e-12 == pytest.approx(tile_w * 0.25 * idle_tile_s)
    assert split["pj"]["off"] == 0.0 and split["tiles_off"] == 16
    # the same instance with every tile active all the time (empty_tiles): retention saves 0.75 of the idle tile-s
    chip_e = load_chip(_chip(tmp_path, rows=ROWS, mapping={"kind": "head_parallel"}, power_gating="empty_tiles"))
    empty = leakage_by_state(CostModel.from_macro(chip_e.macro), plan, results, "empty_tiles", t, bank_ii, "decode")
    saved = (empty["pj"]["active"] - split["pj"]["active"] - split["pj"]["idle"]) * 1e-12
    assert saved == pytest.approx(tile_w * 0.75 * idle_tile_s)


def test_idle_tiles_chip_report_splits_energy_by_state(tmp_path):
    model = _model(tmp_path, layers=2, q=2, kv=1, d=64)
    reports = {g: api.chip(_chip(tmp_path, rows=16, mapping={"kind": "head_parallel"}, power_gating=g), model=model,
                           context=100, baselines=False) for g in ("empty_tiles", "idle_tiles")}
    idle = reports["idle_tiles"]["decode"]
    assert idle["energy_j_per_token_by_state"]["leakage_idle"] > 0
    assert idle["energy_j_per_token"] < reports["empty_tiles"]["decode"]["energy_j_per_token"]
    assert sum(idle["energy_j_per_token_by_state"].values()) == pytest.approx(idle["energy_j_per_token"])
    assert reports["idle_tiles"]["power"]["macro_power_gating"] == "idle_tiles"


def test_macro_override_contradicting_the_chip_policy_is_refused(tmp_path):
    from axelsim.errors import ConfigError

    path = _chip(tmp_path, rows=16, power_gating="none")
    text = path.read_text().replace("sram.rows_per_bank: 16", "sram.rows_per_bank: 16\n    power.gating: idle_tiles")
    path.write_text(text)
    with pytest.raises(ConfigError, match="power.gating"):
        load_chip(path)
