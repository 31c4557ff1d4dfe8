"""Timing of a stream of items (keys, vectors, heads) through a chain of pipelined stages.

Every stage s has a latency L_s and an initiation interval II_s (cycles). Item i enters stage
s at start_s(i) = max(done_{s-1}(i), start_s(i-1) + II_s, free_s) (free_s: when the unit
instance accepts its first item of this stream, i.e. when the previous stream released it),
and leaves at done_s(i) = start_s(i) + L_s. A stage bound to SRAM banks additionally waits for
a free port of the item's bank in that very cycle (see sram.BankCalendar).

Two implementations of the same recurrence:
- `run_burst`: closed form start_s(i) = i*II_s + max(free_s, cummax_j(ready_j - j*II_s)),
  vectorised; bank stages go through a compiled loop over the calendar.
- `run_keys`: a discrete-event model, each item an event at every unit it passes (the `key`
  fidelity mode), one process per unit consuming a queue; two engines of the same processes:
  a compiled event loop (`_des`, the default) and simpy (one simpy process per unit; used for
  calendars the compiled loop does not take, and by the tests as a third implementation).
All return per-item start times of every stage; tests prove they agree.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from heapq import heappush as push
from typing import Callable, Optional

import numba
import numpy as np
import simpy
from simpy.events import NORMAL

from axelsim.hw.sram import BankCalendar, _reserve_one
from axelsim.hw.value_unit import BinHazard, _hazard_issue


@dataclass
class Stage:
    """One pipeline stage of a stream: the unit instance that runs it and its timing (cycles).

    `bank_ids` (int64 [n]) and `calendar` make it an SRAM access stage; `work` is the stage's
    datapath for a range of items; key mode calls `item(i)` (or `work` on one item) per item.
    """

    unit: str
    latency: int
    ii: int
    free_at: int = 0
    instance: int = 0
    bank_ids: Optional[np.ndarray] = None
    calendar: Optional[object] = None
    work: Optional[Callable[[slice], None]] = None
    item: Optional[Callable[[int, int], None]] = None
    """Key mode: the stage's datapath for items [lo, hi), called as item(i, i + 1) (cheaper per
    item than `work(slice(i, i + 1))`)."""
    latencies: Optional[np.ndarray] = None
    """Per-item latency (int64 [n]) where items differ (an SRAM stage whose spilled rows come
    from off-chip memory); None: `latency` for every item."""
    iis: Optional[np.ndarray] = None
    """Per-item initiation interval (int64 [n]: item i holds the stage for iis[i] cycles, e.g.
    the QJL projector: a key's m / R cycles, a value's bypass 1); None: `ii` for every item.
    Burst timing only (run_burst), on stages without a bank calendar."""


@dataclass
class StreamTiming:
    """Per-stage start cycles [n_stages, n] and done = start + latency of the last stage."""

    start: np.ndarray
    done: np.ndarray
    stall_bank: np.ndarray
    """Cycles each stage waited for a bank port, summed over items [n_stages]."""
    stall_busy: np.ndarray
    """Cycles each stage's first item waited for the unit instance to be released [n_stages]."""


def _closed_form(ready: np.ndarray, ii: int, free_at: int, iis: Optional[np.ndarray] = None) -> np.ndarray:
    """start(i) = c(i) + max(free_at, max_{j <= i} ready(j) - c(j)), c(i) = sum_{j < i} II(j)."""
    if iis is None:
        steps = np.arange(ready.size, dtype=np.int64) * ii
    else:
        steps = np.concatenate(([0], np.cumsum(iis[:-1], dtype=np.int64))) if ready.size else np.zeros(0, np.int64)
    return steps + np.maximum(free_at, np.maximum.accumulate(ready - steps))


def run_burst(ready: np.ndarray, stages: list[Stage]) -> StreamTiming:
    """All items of a stream at once; ready [n] = cycle each item is available to stage 0."""
    n = ready.size
    starts = np.empty((len(stages), n), dtype=np.int64)
    stall_bank = np.zeros(len(stages), dtype=np.int64)
    stall_busy = np.zeros(len(stages), dtype=np.int64)
    arrive = ready.astype(np.int64)
    for s, stage in enumerate(stages):
        if n:
            stall_busy[s] = max(0, stage.free_at - int(arrive[0]))
        if stage.bank_ids is None:
            start = _closed_form(arrive, stage.ii, stage.free_at, stage.iis)
        else:
            start, waited = stage.calendar.reserve_run(arrive, stage.ii, stage.free_at, stage.bank_ids)
            stall_bank[s] = waited
        starts[s] = start
        arrive = start + (stage.latency if stage.latencies is None else stage.latencies)
    return StreamTiming(starts, arrive, stall_bank, stall_busy)


class _Wake(simpy.events.Event):
    """A unit process's one reusable event: each wait (a timeout until an item may enter, or a
    park until the unit before hands on an item) re-arms it and schedules it for the cycle
    the process resumes at: the same heap entry simpy's Timeout makes, without a new event
    object per wait. A process waits on one event at a time, and each arming is scheduled once."""

    __slots__ = ()

    def __init__(self, env: simpy.Environment):
        self.env = env
        self.callbacks = None
        self._ok = True
        self._value = None

    def arm(self) -> "_Wake":
        self.callbacks = []
        return self


def unit_groups(stages: list[Stage]) -> list[list[int]]:
    """Consecutive stages run by the same unit (e.g. the lookup pipeline's adder tree and norm
    multiplier) form one group, one simpy process; an SRAM stage always starts a group."""
    groups: list[list[int]] = []
    for s, stage in enumerate(stages):
        if groups and stage.unit == stages[s - 1].unit and stage.calendar is None:
            groups[-1].append(s)
        else:
            groups.append([s])
    return groups


def run_keys(ready: np.ndarray, stages: list[Stage], events: Optional[list] = None,
             engine: str = "compiled") -> StreamTiming:
    """The stream as a discrete-event model: one process per unit (consecutive stages of one
    unit: `unit_groups`), each item an event at every unit, at the cycle it enters that unit.

    engine "compiled": the event loop `_des` (numba) runs the processes; each stage's datapath
    then runs over the stream's items in item order (`item(0, n)`, else `work`), since no
    datapath result depends on a cycle. It takes at most one bank calendar stage, one bin
    hazard stage and one stage with per-item latencies (every stream of the controller); any
    other stream, and engine "simpy", runs `_run_keys_simpy` (simpy processes, each item's
    datapath called as the item passes). Same processes, same schedule (tests check both
    against `run_burst`).

    `events`, if given, receives (unit group, item, simulated cycle) for every item entering
    every unit (tests check that the clock is the item's start there).
    """
    if any(stage.iis is not None for stage in stages):
        raise ValueError("per-item initiation intervals are timed by run_burst only")
    if engine == "compiled":
        timing = _run_keys_compiled(ready, stages, events)
        if timing is not None:
            return timing
    elif engine != "simpy":
        raise ValueError(f"run_keys: engine must be 'compiled' or 'simpy', got {engine!r}")
    return _run_keys_simpy(ready, stages, events)


def _run_keys_simpy(ready: np.ndarray, stages: list[Stage], events: Optional[list] = None) -> StreamTiming:
    """run_keys on simpy: one simpy process per unit, each item an
    event at every unit, at the cycle it enters that unit.

    A unit's process takes its items in order from a plain deque (filled by the unit before
    it, with each item's arrival cycle), waits with a single timeout until the item may enter
    (arrival, the stage's II, a free bank port), then passes it through the unit's stages in
    that same resumption: each later stage of the unit starts at max(done of the stage
    before, its last start + II), the same recurrence. It runs each stage's datapath for the
    item and hands the item on. A process finding its deque empty parks on its `_Wake` event,
    which the unit before it schedules for the handed-on item's arrival cycle, so an idle unit
    resumes once per item, at that item's cycle. Each wait is one entry in simpy's event heap
    (a reused event per process rather than a new Timeout).

    `events`, if given, receives (unit group, item, simulated cycle) for every item entering
    every unit (tests check that the clock is the item's start there).
    """
    n = ready.size
    n_stages = len(stages)
    stall_bank = np.zeros(n_stages, dtype=np.int64)
    if n == 0:
        return _empty_timing(n_stages)
    groups = unit_groups(stages)
    env = simpy.Environment(initial_time=int(min(ready.min(), min(st.free_at for st in stages))))
    inboxes = [deque() for _ in range(len(groups) + 1)]
    inboxes[0].extend(ready.tolist())
    parked: list = [None] * (len(groups) + 1)
    rows: list[list[int]] = [[] for _ in range(n_stages)]
    done: list[int] = []

    queue, eids = env._queue, env._eid  # simpy's event heap: (cycle, priority, id, event)
    wakes = [_Wake(env) for _ in range(len(groups) + 1)]

    def unit_process(g: int, members: list[int]):
        head = stages[members[0]]
        wake = wakes[g]
        inbox = inboxes[g]
        take, hand_on = inbox.popleft, inboxes[g + 1].append
        last_unit = g + 1 == len(groups)
        reserve = head.calendar.reserve_one if head.calendar is not None else None
        banks = head.bank_ids.tolist() if reserve is not None else None
        head_latency, head_ii, record = head.latency, head.ii, rows[members[0]].append
        per_item = head.latencies.tolist() if head.latencies is not None else None
        head_next = head.free_at
        # the unit's later stages, each [latency, ii, next accept, record start]
        tail = [[stages[s].latency, stages[s].ii, stages[s].free_at, rows[s].append] for s in members[1:]]
        works = tuple(w for w in (_item_work(stages[s]) for s in members) if w is not None)
        finish = done.append
        now = env.now  # this process's own copy of the clock (it only runs at its events)
        waited = 0
        for i in range(n):
            if not inbox:
                parked[g] = wake.arm()  # the unit before schedules it for the item's arrival
                yield wake
                now = inbox[0]  # woken at the cycle the handed-on item arrives
            start = take()
            if start < head_next:
                start = head_next
            if reserve is not None:
                slot = reserve(banks[i], start)
                waited += slot - start
                start = slot
            if start != now:
                push(queue, (start, NORMAL, next(eids), wake.arm()))  # simpy's Timeout, reused
                yield wake
                now = start
            if events is not None:
                events.append((g, i, env.now))
            record(start)
            head_next = start + head_ii
            t = start + (head_latency if per_item is None else per_item[i])
            for st in tail:
                if t < st[2]:
                    t = st[2]
                st[3](t)
                st[2] = t + st[1]
                t += st[0]
            for w in works:
                w(i, i + 1)
            if last_unit:
                finish(t)
            else:
                hand_on(t)
                event = parked[g + 1]
                if event is not None:
                    parked[g + 1] = None
                    push(queue, (t, NORMAL, next(eids), event))  # for the item's arrival cycle
        stall_bank[members[0]] = waited

    for g, members in enumerate(groups):
        env.process(unit_process(g, members))
    env.run()
    starts = np.array(rows, dtype=np.int64)
    return StreamTiming(starts, np.array(done, dtype=np.int64), stall_bank, _first_item_waits(ready, stages, starts))


def _first_item_waits(ready: np.ndarray, stages: list[Stage], starts: np.ndarray) -> np.ndarray:
    """Per stage: cycles its first item waited for the unit's release (free_at - its arrival)."""
    stall_busy = np.zeros(len(stages), dtype=np.int64)
    arrive0 = int(ready[0])
    for s, stage in enumerate(stages):
        stall_busy[s] = max(0, stage.free_at - arrive0)
        arrive0 = int(starts[s, 0]) + (stage.latency if stage.latencies is None else int(stage.latencies[0]))
    return stall_busy


def _empty_timing(n_stages: int) -> StreamTiming:
    zeros = np.zeros(n_stages, dtype=np.int64)
    return StreamTiming(np.empty((n_stages, 0), dtype=np.int64), np.empty(0, dtype=np.int64), zeros, zeros.copy())


def _item_work(stage: Stage) -> Optional[Callable[[int, int], None]]:
    """The stage's datapath for items [lo, hi): its `item` kernel, else `work` on a slice."""
    if stage.item is not None:
        return stage.item
    work = stage.work
    if work is None:
        return None
    return lambda lo, hi: work(slice(lo, hi))


# the compiled engine: a process's state between its events
_TOP, _PARKED, _ISSUE, _TIMED, _EXEC, _FINISHED = 0, 1, 2, 3, 4, 5
# st[] slots: event sequence number, events logged, calendar horizon, calendar base, the group
# being stepped (-1: none), groups not yet started, the cycle a return asks about
_SEQ, _LOGGED, _HORIZON, _BASE, _CURRENT, _INIT, _NEED = range(7)
_GROW, _BELOW_BASE = 1, 2
"""_des return codes besides 0 (done): the ring must cover cycle st[_NEED] (grow it and call
again: every process resumes where it stopped); a request below the released horizon."""


@numba.njit(cache=True, nogil=True)
def _des(lat, ii, item_lat, lat_stage, gfirst, head_kind, cal, ports, busy, hold_max, bank_ids,
         hz_idx, hz_lat, hz_bins, hz_sum, hz_ids, st, state, item, now, head_next, accept, avail, arrive,
         parked, pending, pend_t, pend_seq, starts, done, waited, log):
    """Discrete-event loop of one stream's unit processes (run_keys, engine "compiled").

    Group g (a unit, stages gfirst[g] .. gfirst[g+1]-1) takes its items in order from its
    inbox (arrive[g, :avail[g]], arrival cycles; group 0's is the stream's ready cycles). Per
    item it parks while the inbox is empty (woken by the group before, at the handed-on item's
    arrival cycle), computes the head stage's issue cycle max(arrival, last issue + II, the
    bank port or bin hazard of head_kind 1 or 2), waits until that cycle if it is not now,
    then runs the item through its stages (each later one at max(done before, last start +
    II)), logs (g, item, cycle) and hands it on. Each process has at most one pending event
    (a wait or a wake-up); the earliest (cycle, then sequence number) runs next, as in simpy's
    heap. All state lives in the arrays, so a call returning _GROW resumes where it stopped."""
    groups = head_kind.size
    n = starts.shape[1]
    mask = cal.shape[1] - 1
    while True:
        g = st[_CURRENT]
        if g < 0:
            if st[_INIT] < groups:
                g = st[_INIT]
                st[_INIT] += 1
            else:
                for h in range(groups):
                    if pending[h] and (g < 0 or pend_t[h] < pend_t[g]
                                       or (pend_t[h] == pend_t[g] and pend_seq[h] < pend_seq[g])):
                        g = h
                if g < 0:
                    return 0
                pending[g] = False
                if state[g] == _PARKED:
                    now[g] = arrive[g, item[g]]
                    state[g] = _ISSUE
                else:
                    now[g] = pend_t[g]
                    state[g] = _EXEC
            st[_CURRENT] = g
        head = gfirst[g]
        while True:
            k = state[g]
            i = item[g]
            if k == _TOP:
                if i == n:
                    state[g] = _FINISHED
                    break
                if avail[g] == i:
                    state[g] = _PARKED
                    parked[g] = True
                    break
                state[g] = _ISSUE
            elif k == _ISSUE:
                start = arrive[g, i]
                if start < head_next[g]:
                    start = head_next[g]
                if head_kind[g] == 1:
                    if start < st[_BASE]:
                        st[_NEED] = start
                        return _BELOW_BASE
                    top = start if start > st[_HORIZON] else st[_HORIZON]
                    if top + hold_max + 2 - st[_BASE] > mask:
                        st[_NEED] = top + hold_max + 2
                        return _GROW
                    bank = bank_ids[i]
                    slot = _reserve_one(cal, mask, ports, bank, start, busy[bank])
                    if slot + busy[bank] > st[_HORIZON]:
                        st[_HORIZON] = slot + busy[bank]
                    waited[g] += slot - start
                    start = slot
                elif head_kind[g] == 2:
                    slot = _hazard_issue(hz_ids[i], start, hz_idx, hz_lat, hz_bins, hz_sum)
                    waited[g] += slot - start
                    start = slot
                starts[head, i] = start
                if start != now[g]:
                    pending[g] = True
                    pend_t[g] = start
                    pend_seq[g] = st[_SEQ]
                    st[_SEQ] += 1
                    state[g] = _TIMED
                    break
                state[g] = _EXEC
            elif k == _EXEC:
                start = starts[head, i]
                now[g] = start
                log[st[_LOGGED], 0] = g
                log[st[_LOGGED], 1] = i
                log[st[_LOGGED], 2] = start
                st[_LOGGED] += 1
                head_next[g] = start + ii[head]
                t = start + (item_lat[i] if head == lat_stage else lat[head])
                for s in range(head + 1, gfirst[g + 1]):
                    if t < accept[s]:
                        t = accept[s]
                    starts[s, i] = t
                    accept[s] = t + ii[s]
                    t += item_lat[i] if s == lat_stage else lat[s]
                if g + 1 == groups:
                    done[i] = t
                else:
                    arrive[g + 1, avail[g + 1]] = t
                    avail[g + 1] += 1
                    if parked[g + 1]:
                        parked[g + 1] = False
                        pending[g + 1] = True
                        pend_t[g + 1] = t
                        pend_seq[g + 1] = st[_SEQ]
                        st[_SEQ] += 1
                item[g] = i + 1
                state[g] = _TOP
            else:
                break
        st[_CURRENT] = -1


_NO_BANKS = (np.zeros((1, 1), dtype=np.uint8), np.zeros(1, dtype=np.int64))
_NO_HAZARD = (np.zeros((1, 1), dtype=np.uint8), np.zeros((1, 1, 1), dtype=np.int64), np.zeros(1, dtype=np.int64))


def _run_keys_compiled(ready: np.ndarray, stages: list[Stage], events: Optional[list]) -> Optional[StreamTiming]:
    """run_keys on the compiled event loop; None when the stream has calendars it does not take."""
    n, n_stages = ready.size, len(stages)
    groups = unit_groups(stages)
    heads = [stages[g[0]] for g in groups]
    kinds = np.array([1 if isinstance(h.calendar, BankCalendar) else 2 if isinstance(h.calendar, BinHazard) else 0
                      for h in heads], dtype=np.int64)
    timed = [s for s, stage in enumerate(stages) if stage.latencies is not None]
    known = sum(stage.calendar is not None for stage in stages) == np.count_nonzero(kinds)
    if not known or np.count_nonzero(kinds == 1) > 1 or np.count_nonzero(kinds == 2) > 1 or len(timed) > 1:
        return None
    if n == 0:
        return _empty_timing(n_stages)
    banks = [h for h, k in zip(heads, kinds) if k == 1]
    hazards = [h for h, k in zip(heads, kinds) if k == 2]
    gfirst = np.array([g[0] for g in groups] + [n_stages], dtype=np.int64)
    lat = np.array([s.latency for s in stages], dtype=np.int64)
    ii = np.array([s.ii for s in stages], dtype=np.int64)
    lat_stage = timed[0] if timed else -1
    item_lat = np.ascontiguousarray(stages[lat_stage].latencies, dtype=np.int64) if timed else _NO_BANKS[1]
    cal = banks[0].calendar if banks else None
    bank_ids = np.ascontiguousarray(banks[0].bank_ids, dtype=np.int64) if banks else _NO_BANKS[1]
    if hazards:
        hz = hazards[0].calendar
        hz_arrays = (hz.idx, hz.last_bins, hz.last_sum)
        hz_ids, hz_lat = np.ascontiguousarray(hazards[0].bank_ids, dtype=np.int64), hz.latency
    else:
        hz_arrays, hz_ids, hz_lat = _NO_HAZARD, _NO_BANKS[1], 0
    n_groups = len(groups)
    clock = int(min(ready.min(), min(s.free_at for s in stages)))
    st = np.array([0, 0, cal.horizon_used if cal is not None else 0, cal.base if cal is not None else 0, -1, 0, 0], dtype=np.int64)
    state = np.zeros(n_groups, dtype=np.int64)
    item = np.zeros(n_groups, dtype=np.int64)
    now = np.full(n_groups, clock, dtype=np.int64)
    head_next = np.array([h.free_at for h in heads], dtype=np.int64)
    accept = np.array([s.free_at for s in stages], dtype=np.int64)
    avail = np.zeros(n_groups, dtype=np.int64)
    avail[0] = n
    arrive = np.empty((n_groups, n), dtype=np.int64)
    arrive[0] = ready
    parked = np.zeros(n_groups, dtype=np.bool_)
    pending = np.zeros(n_groups, dtype=np.bool_)
    pend_t = np.zeros(n_groups, dtype=np.int64)
    pend_seq = np.zeros(n_groups, dtype=np.int64)
    starts = np.empty((n_stages, n), dtype=np.int64)
    done = np.empty(n, dtype=np.int64)
    waited = np.zeros(n_groups, dtype=np.int64)
    log = np.empty((n_groups * n, 3), dtype=np.int64)
    while True:
        ring = cal.cal if cal is not None else _NO_BANKS[0]
        code = _des(lat, ii, item_lat, lat_stage, gfirst, kinds, ring, cal.ports if cal is not None else 1,
                    cal.busy if cal is not None else _NO_BANKS[1], cal.hold_max if cal is not None else 0, bank_ids,
                    hz_arrays[0], hz_lat, hz_arrays[1], hz_arrays[2], hz_ids, st, state, item, now, head_next,
                    accept, avail, arrive, parked, pending, pend_t, pend_seq, starts, done, waited, log)
        if code == _GROW:
            cal._ensure(int(st[_NEED]))
        elif code == _BELOW_BASE:
            cal._check(int(st[_NEED]))
        else:
            break
    if cal is not None:
        cal.horizon_used = int(st[_HORIZON])
    stall_bank = np.zeros(n_stages, dtype=np.int64)
    stall_bank[gfirst[:-1]] = waited
    if events is not None:
        events.extend(map(tuple, log.tolist()))
    for stage in stages:
        work = _item_work(stage)
        if work is not None:
            work(0, n)
    return StreamTiming(starts, done, stall_bank, _first_item_waits(ready, stages, starts))
