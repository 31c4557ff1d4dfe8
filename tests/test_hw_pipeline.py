"""The stream engines (pipeline.run_keys, one process per unit, on its compiled event loop and
on simpy; pipeline.run_burst, closed form) against each other on random chains of stages:
several stages per unit, bank ports already taken by an older stream, per-item SRAM latencies,
bin hazards, units released late; and each item's work called once per stage, in item order,
in key mode."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from axelsim.hw.pipeline import Stage, run_burst, run_keys, unit_groups
from axelsim.hw.sram import BankCalendar
from axelsim.hw.value_unit import BinHazard

stage_st = st.tuples(st.sampled_from(["a", "b", "c"]), st.integers(0, 4), st.integers(1, 4), st.integers(0, 30))


def _stages(spec, calendar, bank_ids, bank_stage, calls=None, latencies=None, hazard=None, hazard_stage=-1):
    stages = []
    for s, (unit, latency, ii, free_at) in enumerate(spec):
        stage = Stage(unit, latency, ii, free_at)
        if s == bank_stage:
            stage.unit, stage.bank_ids, stage.calendar = "sram", bank_ids, calendar
            stage.latencies = latencies
        elif s == hazard_stage:
            stage.unit, stage.bank_ids, stage.calendar = "bins", np.arange(bank_ids.size), hazard
        if calls is not None:
            stage.item = lambda lo, hi, s=s: calls.append((s, lo, hi))
        stages.append(stage)
    return stages


def _calendar(banks, taken):
    cal = BankCalendar(banks, 1, window=64)
    for bank, cycle in taken:
        cal.reserve_one(bank, cycle)
    return cal


def _hazard(n, seed, latency, partials):
    idx = np.random.default_rng(seed + 1).integers(0, 2, (n, 2))
    return BinHazard(idx, 2, latency, partials, partials)


@settings(max_examples=60, deadline=None)
@given(spec=st.lists(stage_st, min_size=1, max_size=6), n=st.integers(1, 12), banks=st.integers(1, 3),
       bank_stage=st.integers(-1, 5), taken=st.lists(st.tuples(st.integers(0, 2), st.integers(0, 40)), max_size=8),
       ready=st.lists(st.integers(0, 20), min_size=12, max_size=12), seed=st.integers(0, 100),
       spilled=st.booleans(), hazard_stage=st.integers(-1, 5), hazard_latency=st.integers(1, 4),
       partials=st.integers(1, 2))
def test_key_engines_equal_closed_form(spec, n, banks, bank_stage, taken, ready, seed, spilled, hazard_stage,
                                       hazard_latency, partials):
    taken = [(b % banks, c) for b, c in taken]
    rng = np.random.default_rng(seed)
    bank_ids = rng.integers(0, banks, n)
    latencies = rng.integers(0, 6, n) if spilled else None
    ready = np.sort(np.asarray(ready[:n], dtype=np.int64))

    def chain(calls=None):
        return _stages(spec, _calendar(banks, taken), bank_ids, bank_stage, calls, latencies,
                       _hazard(n, seed, hazard_latency, partials), hazard_stage)

    burst = run_burst(ready, chain())
    for engine in ("compiled", "simpy"):
        calls: list = []
        key_stages = chain(calls)
        events: list = []
        key = run_keys(ready, key_stages, events, engine=engine)
        assert np.array_equal(burst.start, key.start)
        assert np.array_equal(burst.done, key.done)
        assert np.array_equal(burst.stall_bank, key.stall_bank)
        assert np.array_equal(burst.stall_busy, key.stall_busy)
        # every stage's work once per item, items in order at each stage (simpy: one call per
        # item as it passes; compiled: ranges after the schedule)
        for s in range(len(spec)):
            covered = [i for st_, lo, hi in calls if st_ == s for i in range(lo, hi)]
            assert covered == list(range(n))
        if engine == "simpy":
            assert all(hi == lo + 1 for _, lo, hi in calls)
        # one process per unit: consecutive stages of one unit share a group; each item enters each
        # unit as an event at its start cycle there (the simulated clock), items in order
        groups = unit_groups(key_stages)
        assert sorted(events) == sorted((g, i, int(key.start[members[0], i])) for g, members in enumerate(groups)
                                        for i in range(n))
        for g in range(len(groups)):
            assert [i for gg, i, _ in events if gg == g] == list(range(n))
        # events run in simulated time order
        assert [c for _, _, c in events] == sorted(c for _, _, c in events)
        assert sum(len(g) for g in groups) == len(spec)
        assert all(key_stages[g[0]].unit != key_stages[h[0]].unit or key_stages[h[0]].calendar is not None
                   for g, h in zip(groups, groups[1:]))


def test_compiled_engine_grows_the_ring():
    """A stream reaching past the calendar's ring grows it mid-run and resumes: same schedule."""
    n = 300
    bank_ids = np.zeros(n, dtype=np.int64)
    ready = np.zeros(n, dtype=np.int64)
    spec = [("sram", 3, 1, 0), ("a", 2, 2, 0)]
    burst = run_burst(ready, _stages(spec, BankCalendar(1, 1, window=16, busy=[2]), bank_ids, 0))
    cal = BankCalendar(1, 1, window=16, busy=[2])
    key = run_keys(ready, _stages(spec, cal, bank_ids, 0))
    assert cal.window > 16
    assert np.array_equal(burst.start, key.start) and np.array_equal(burst.stall_bank, key.stall_bank)


def test_unknown_engine_refused():
    with pytest.raises(ValueError, match="engine"):
        run_keys(np.zeros(1, dtype=np.int64), [Stage("a", 1, 1)], engine="fast")
