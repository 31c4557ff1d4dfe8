"""Timing of a stream of items (keys, vectors, heads) through a chain of pipelined stages.

Every stage s has a latency L_s and an initiation interval II_s (cycles). Item i enters stage
s at start_s(i) = max(done_{s-1}(i), start_s(i-1) + II_s, free_s) (free_s: when the unit
instance accepts its first item of this stream, i.e. when the previous stream released it),
and leaves at done_s(i) = start_s(i) + L_s. A stage bound to SRAM banks additionally waits for
a free port of the item's bank in that very cycle (see sram.BankCalendar).

Two implementations of the same recurrence:
- `run_burst`: closed form start_s(i) = i*II_s + max(free_s, cummax_j(ready_j - j*II_s)),
  vectorised; bank stages go through a compiled loop over the calendar.
- `run_keys`: one simpy process per unit consuming a queue, each item an event at every unit
  it passes (the `key` fidelity mode).
Both return per-item start times of every stage; tests prove they agree.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from heapq import heappush as push
from typing import Callable, Optional

import numpy as np
import simpy
from simpy.events import NORMAL


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


@dataclass
class StreamTiming:
    """Per-stage start cycles [n_stages, n] and done = start + latency of the last stage."""

    start: np.ndarray
    done: np.ndarray
    stall_bank: np.ndarray
    """Cycles each stage waited for a bank port, summed over items [n_stages]."""
    stall_busy: np.ndarray
    """Cycles each stage's first item waited for the unit instance to be released [n_stages]."""


def _closed_form(ready: np.ndarray, ii: int, free_at: int) -> np.ndarray:
    steps = np.arange(ready.size, dtype=np.int64) * ii
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
            start = _closed_form(arrive, stage.ii, stage.free_at)
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


def run_keys(ready: np.ndarray, stages: list[Stage], events: Optional[list] = None) -> StreamTiming:
    """The same stream as a discrete-event model: one simpy process per unit, each item an
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
    stall_busy = np.zeros(n_stages, dtype=np.int64)
    if n == 0:
        return StreamTiming(np.empty((n_stages, 0), dtype=np.int64), np.empty(0, dtype=np.int64),
                            stall_bank, stall_busy)
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
    # a stage's first item waited for the unit's release: free_at - its arrival there
    arrive0 = int(ready[0])
    for s, stage in enumerate(stages):
        stall_busy[s] = max(0, stage.free_at - arrive0)
        arrive0 = int(starts[s, 0]) + (stage.latency if stage.latencies is None else int(stage.latencies[0]))
    return StreamTiming(starts, np.array(done, dtype=np.int64), stall_bank, stall_busy)


def _item_work(stage: Stage) -> Optional[Callable[[int, int], None]]:
    """The stage's datapath for items [lo, hi): its `item` kernel, else `work` on a slice."""
    if stage.item is not None:
        return stage.item
    work = stage.work
    if work is None:
        return None
    return lambda lo, hi: work(slice(lo, hi))
