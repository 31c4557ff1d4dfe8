"""The two stream engines (pipeline.run_keys, one simpy process per unit; pipeline.run_burst,
closed form) against each other on random chains of stages: several stages per unit, bank
ports already taken by an older stream, units released late; and each item's work called
once per stage, in item order, in key mode."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings, strategies as st

from axelsim.hw.pipeline import Stage, run_burst, run_keys, unit_groups
from axelsim.hw.sram import BankCalendar

stage_st = st.tuples(st.sampled_from(["a", "b", "c"]), st.integers(0, 4), st.integers(1, 4), st.integers(0, 30))


def _stages(spec, calendar, bank_ids, bank_stage, calls=None):
    stages = []
    for s, (unit, latency, ii, free_at) in enumerate(spec):
        stage = Stage(unit, latency, ii, free_at)
        if s == bank_stage:
            stage.unit, stage.bank_ids, stage.calendar = "sram", bank_ids, calendar
        if calls is not None:
            stage.item = lambda lo, hi, s=s: calls.append((s, lo, hi))
        stages.append(stage)
    return stages


def _calendar(banks, taken):
    cal = BankCalendar(banks, 1, window=64)
    for bank, cycle in taken:
        cal.reserve_one(bank, cycle)
    return cal


@settings(max_examples=60, deadline=None)
@given(spec=st.lists(stage_st, min_size=1, max_size=6), n=st.integers(1, 12), banks=st.integers(1, 3),
       bank_stage=st.integers(-1, 5), taken=st.lists(st.tuples(st.integers(0, 2), st.integers(0, 40)), max_size=8),
       ready=st.lists(st.integers(0, 20), min_size=12, max_size=12), seed=st.integers(0, 100))
def test_key_engine_equals_closed_form(spec, n, banks, bank_stage, taken, ready, seed):
    taken = [(b % banks, c) for b, c in taken]
    bank_ids = np.random.default_rng(seed).integers(0, banks, n)
    ready = np.sort(np.asarray(ready[:n], dtype=np.int64))
    burst = run_burst(ready, _stages(spec, _calendar(banks, taken), bank_ids, bank_stage))
    calls: list = []
    key_stages = _stages(spec, _calendar(banks, taken), bank_ids, bank_stage, calls)
    events: list = []
    key = run_keys(ready, key_stages, events)
    assert np.array_equal(burst.start, key.start)
    assert np.array_equal(burst.done, key.done)
    assert np.array_equal(burst.stall_bank, key.stall_bank)
    assert np.array_equal(burst.stall_busy, key.stall_busy)
    # every stage's work once per item, items in order at each stage
    for s in range(len(spec)):
        assert [lo for st_, lo, hi in calls if st_ == s] == list(range(n))
    assert all(hi == lo + 1 for _, lo, hi in calls)
    # one process per unit: consecutive stages of one unit share a group; each item enters each
    # unit as an event at its start cycle there (the simulated clock), items in order
    groups = unit_groups(key_stages)
    assert sorted(events) == sorted((g, i, int(key.start[members[0], i])) for g, members in enumerate(groups)
                                    for i in range(n))
    for g in range(len(groups)):
        assert [i for gg, i, _ in events if gg == g] == list(range(n))
    assert sum(len(g) for g in groups) == len(spec)
    assert all(key_stages[g[0]].unit != key_stages[h[0]].unit or key_stages[h[0]].calendar is not None
               for g, h in zip(groups, groups[1:]))
