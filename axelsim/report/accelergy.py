"""Accelergy-style export of one run: ERT (energy per action per component), ART (area per
component) and the action counts, in Accelergy's YAML layout (version 0.3, docs/report.md).

Every figure comes from the run's own cost model (axelsim.cost.CostModel), in Accelergy's units:
energy in pJ per action, area in µm². The ERT lists, for each component of the macro, every
action it can perform (its arithmetic resources, a memory's `read`, and `write` where written) priced
once, and `idle`: the component's leakage energy per clock cycle of this run (for the tiled row
store this depends on the run's occupancy and `power.gating`: tiles holding data leak at active
power, idle ones at retention, gated ones not at all). With the action counts of the run, ERT
energy x count summed over a component's actions is the report's `energy_pj.by_component.<c>.total`;
ART's areas sum to `area_um2.total`.

Action names are the cost model's with `.` replaced by `_` (`mul.fp32` -> `mul_fp32`), since
Accelergy reads dots in names as hierarchy; components are named `<macro name>.<component>`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import yaml

from axelsim import io
from axelsim.cost.model import CostModel, UnpricedActionError

ACCELERGY_VERSION = 0.3
"""The Accelergy output format version whose layout the files follow (ERT/ART `tables`)."""
IDLE = "idle"
FILES = ("ERT.yaml", "ART.yaml", "action_counts.yaml")


def energy_per_action(cost: CostModel, n_layers: int, counted: Mapping[str, Mapping[str, int]]) -> dict[str, dict[str, float]]:
    """{component: {action: pJ per action}}: every arithmetic resource of every unit, a memory's
    `read`, and every action the run counted (a memory's `write`: not listed for a ROM nobody
    writes; components outside the inventory: spilled rows, `offchip`)."""
    units = cost.units(n_layers)
    table: dict[str, dict[str, float]] = {}
    for name in sorted(set(units) | set(counted)):
        unit = units.get(name)
        actions = set(counted.get(name, {}))
        if unit is not None:
            actions |= set(unit.resources) | ({"read"} if unit.memory is not None else set())
        priced = {}
        for action in sorted(actions):
            try:
                priced[action] = cost.action_pj(name, action, units)
            except UnpricedActionError:
                if action in counted.get(name, {}):
                    raise  # a counted action without a price is an internal fault, never free
        table[name] = priced
    return table


def _action_name(action: str) -> str:
    return action.replace(".", "_")


def accelergy_tables(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The three documents ({file name: YAML mapping}) of a run report holding `actions` and
    `energy_per_action_pj` (axelsim.report.assemble.build_report)."""
    prefix = report["macro"]["name"]
    cycles = report["cycles"]["total"]
    energy = report["energy_pj"]["by_component"]
    ert, counts = [], []
    for component, per_action in report["energy_per_action_pj"].items():
        leakage = energy.get(component, {}).get("leakage", 0.0)
        actions = [{"name": _action_name(a), "arguments": None, "energy": pj} for a, pj in per_action.items()]
        actions.append({"name": IDLE, "arguments": None, "energy": leakage / cycles if cycles else 0.0})
        ert.append({"name": f"{prefix}.{component}", "actions": actions})
        counted = report["actions"].get(component, {})
        counts.append({"name": f"{prefix}.{component}",
                       "action_counts": [{"name": _action_name(a), "counts": int(n)} for a, n in sorted(counted.items())]
                       + [{"name": IDLE, "counts": int(cycles)}]})
    art = [{"name": f"{prefix}.{component}", "area": area}
           for component, area in report["area_um2"]["by_component"].items()]
    return {
        "ERT.yaml": {"ERT": {"version": ACCELERGY_VERSION, "tables": ert}},
        "ART.yaml": {"ART": {"version": ACCELERGY_VERSION, "tables": art}},
        "action_counts.yaml": {"action_counts": {"version": ACCELERGY_VERSION, "local": counts}},
    }


def write_accelergy(report: dict[str, Any], out_dir: str | Path) -> list[Path]:
    """Write ERT.yaml, ART.yaml and action_counts.yaml into `out_dir` (atomically); their paths."""
    out = Path(out_dir)
    return [io.write_text(out / name, yaml.safe_dump(document, sort_keys=False))
            for name, document in accelergy_tables(report).items()]
