"""Leakage of the chip's instances by power state (the chip's `power_gating`, docs/chip.md).

Each instance leaks as the macro's cost model prices one macro over the phase's time
(axelsim.cost.model.CostModel.energy_pj: row-store tiles active, in retention or gated by the
macro's power.gating; logic and small memories always active), given
- the rows each bank of the instance holds: its resident token ranges (pinned shares, plus one
  slot of the longest streamed share when it streams), K and V rows interleaved over the banks
  as the macro stores one range (rows_per_token x ceil(tokens / banks) rows per bank);
- the bank-busy cycles of the phase: the row-store reads and writes of its shares (service, the
  new token's write, rows streamed in) x the bank's initiation interval, as `axelsim run` does.
An instance holding no share is gated whole unless `power_gating: none`.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from axelsim.chip.plan import Plan, rows_per_token
from axelsim.cost.model import CostModel

STATES = ("active", "idle", "off")


def _accesses(actions: dict, store: str) -> int:
    counts = actions.get(store, {})
    return int(counts.get("read", 0) + counts.get("write", 0))


def instance_load(plan: Plan, results: dict, store: str, banks: int, per_token: int,
                  phase: str) -> dict[int, tuple[int, int]]:
    """{instance: (rows per bank held, row-store accesses in the phase)} of the instances holding data.

    phase 'decode': service, the newest range's write and the streamed rows written; 'prefill':
    every share's write of its range."""
    pinned: dict[int, int] = defaultdict(int)
    streamed_slot: dict[int, int] = defaultdict(int)
    accesses: dict[int, int] = defaultdict(int)
    for share in plan.shares:
        rows = per_token * -(-share.tokens // banks)
        if share.streamed:
            streamed_slot[share.instance] = max(streamed_slot[share.instance], rows)
        else:
            pinned[share.instance] += rows
        result = results[share.index]
        if phase == "prefill":
            accesses[share.instance] += _accesses(result.prefill_actions, store)
            continue
        accesses[share.instance] += _accesses(result.service_actions, store)
        if share.hi == plan.context:
            accesses[share.instance] += _accesses(result.write_actions, store)
        if share.streamed:
            accesses[share.instance] += share.tokens * per_token
    return {inst: (pinned[inst] + streamed_slot[inst], accesses[inst]) for inst in accesses}


def leakage_by_state(cost: CostModel, plan: Plan, results: dict, gating: str, time_s: float, bank_ii: int,
                     phase: str) -> dict[str, Any]:
    """Leakage (pJ) of all instances over `time_s` by state, and the tile and instance counts behind it."""
    store, memory = cost.row_store(1)
    geo = cost.geometry(memory)
    load = instance_load(plan, results, store, geo.banks, rows_per_token(cost.config), phase)
    totals = dict.fromkeys(STATES, 0.0)
    tiles_holding = 0
    seen: dict[tuple[int, int], dict] = {}
    for rows, accesses in load.values():
        key = (min(rows, memory.words), accesses * bank_ii)
        if key not in seen:
            seen[key] = cost.energy_pj({}, time_s, 1, rows_used=key[0], busy_cycles=key[1])
        energy = seen[key]
        for state in STATES:
            totals[state] += energy["leakage_by_state"][state]
        tiles_holding += energy["tiles"].get("tiles_holding_data", geo.tiles)
    gated = plan.instances - len(load)
    if gating == "none" and gated:  # instances holding nothing leak whole, all tiles active
        idle = cost.energy_pj({}, time_s, 1, rows_used=memory.words, busy_cycles=0)
        totals["active"] += idle["leakage_by_state"]["active"] * gated
        tiles_holding += geo.tiles * gated
        gated = 0
    return {"pj": totals, "instances_gated": gated, "tiles_total": geo.tiles * plan.instances,
            "tiles_powered": tiles_holding, "tiles_off": geo.tiles * plan.instances - tiles_holding}
