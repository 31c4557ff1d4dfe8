"""Accelergy export (issue 16): ERT (pJ per action per component), ART (um^2 per component) and
the action counts, from the run's own cost model, in Accelergy's YAML layout."""

from __future__ import annotations

import pytest
import yaml

from axelsim import api
from axelsim.report.accelergy import IDLE, accelergy_tables
from cli_helpers import run_main
from fuzz_helpers import MACROS, fixture_folder


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = fixture_folder(tmp_path_factory.mktemp("accelergy"), macro="axelram_b2", macro_name="m.yaml",
                          trace_name="t.safetensors", layers=(0, 1), kv_heads=1, q_heads=2, tokens=16, dim=16,
                          positions=(7, 15))
    return root, api.simulate(root / "m.yaml", root / "t.safetensors", progress=False)


def _by_name(tables: list[dict]) -> dict[str, dict]:
    return {table["name"]: table for table in tables}


def test_ert_energy_times_counted_actions_is_the_reports_energy_per_component(run):
    _, report = run
    docs = accelergy_tables(report)
    ert = _by_name(docs["ERT.yaml"]["ERT"]["tables"])
    counts = _by_name(docs["action_counts.yaml"]["action_counts"]["local"])
    prefix = report["macro"]["name"]
    by_component = report["energy_pj"]["by_component"]
    assert set(ert) == {f"{prefix}.{c}" for c in report["energy_per_action_pj"]} >= {f"{prefix}.{c}" for c in by_component}
    for component, section in by_component.items():
        name = f"{prefix}.{component}"
        energy = {a["name"]: a["energy"] for a in ert[name]["actions"]}
        total = sum(energy[c["name"]] * c["counts"] for c in counts[name]["action_counts"])
        assert total == pytest.approx(section["total"], rel=1e-9), component
        dynamic = sum(energy[c["name"]] * c["counts"] for c in counts[name]["action_counts"] if c["name"] != IDLE)
        assert dynamic == pytest.approx(section["dynamic_total"], rel=1e-9), component


def test_ert_prices_are_the_technology_tables(run):
    """At 45 nm (the table's own node) an fp32 multiply is Horowitz's 3.7 pJ, read from the table file."""
    _, report = run
    assert report["node_nm"] == 45
    table = yaml.safe_load((MACROS / "tech" / "reference.yaml").read_text())
    fp32_mul = table["arithmetic"]["fp32_mul"]["energy_pj"]
    ert = _by_name(accelergy_tables(report)["ERT.yaml"]["ERT"]["tables"])
    norm = {a["name"]: a["energy"] for a in ert[f"{report['macro']['name']}.norm_unit"]["actions"]}
    assert norm["mul_fp32"] == pytest.approx(fp32_mul, rel=1e-12)
    sram = {a["name"] for a in ert[f"{report['macro']['name']}.index_sram"]["actions"]}
    assert {"read", "write", IDLE} <= sram


def test_idle_energy_of_a_logic_unit_is_its_leakage_per_cycle(run):
    """Idle x cycles is the component's leakage; for logic (always powered) that is leakage power
    over the clock period, so it must not depend on the run's length."""
    _, report = run
    ert = _by_name(accelergy_tables(report)["ERT.yaml"]["ERT"]["tables"])
    name = f"{report['macro']['name']}.rotator"
    idle = next(a["energy"] for a in ert[name]["actions"] if a["name"] == IDLE)
    leakage_w = report["energy_pj"]["by_component"]["rotator"]["leakage"] / report["time_s"] / 1e12
    assert idle == pytest.approx(leakage_w / report["clock_hz"] * 1e12, rel=1e-9)


def test_art_sums_to_the_reports_area(run):
    _, report = run
    art = accelergy_tables(report)["ART.yaml"]["ART"]
    assert art["version"] == 0.3
    assert sum(t["area"] for t in art["tables"]) == pytest.approx(report["area_um2"]["total"], rel=1e-12)


def test_run_accelergy_writes_the_three_files(run, tmp_path):
    root, _ = run
    out = tmp_path / "acc"
    status, stdout, err = run_main(["run", root / "m.yaml", "--trace", root / "t.safetensors", "--quiet",
                                    "--accelergy", out])
    assert status == 0, err
    docs = {name: yaml.safe_load((out / name).read_text()) for name in ("ERT.yaml", "ART.yaml", "action_counts.yaml")}
    first = docs["ERT.yaml"]["ERT"]["tables"][0]
    assert set(first) == {"name", "actions"} and set(first["actions"][0]) == {"name", "arguments", "energy"}
    assert all("." not in action["name"] for table in docs["ERT.yaml"]["ERT"]["tables"] for action in table["actions"])
    assert "accelergy" in stdout


def test_run_accelergy_into_a_file_is_refused_before_the_run(run, tmp_path):
    root, _ = run
    blocker = tmp_path / "file"
    blocker.write_text("x")
    status, _, err = run_main(["run", root / "m.yaml", "--trace", root / "t.safetensors", "--quiet",
                               "--accelergy", blocker / "sub"])
    assert status == 2 and err.count("\n") == 1 and str(blocker) in err
