"""Timing of a stream of items (keys, vectors, heads) through a chain of pipelined stages.

Every stage s has a latency L_s and an initiation interval II_s (cycles). Item i enters stage
s at start_s(i) = max(done_{s-1}(i), start_s(i-1) + II_s, free_s) (free_s: when the unit
instance accepts its first item of this stream, i.e. when the previous stream released it),
and leaves at done_s(i) = start_s(i) + L_s. A stage bound to SRAM banks additionally waits for
a free port of the item's bank in that very cycle (see sram.BankCalendar).

Two implementations of the same recurrence:
- `run_burst`: closed form start_s(i) = i*II_s + max(free_s, cummax_j(ready_j - j*II_s)),
  vectorised; bank stages go through a compiled loop over the calendar.
- `run_keys`: one simpy process per stage consuming a queue, each item an event through every
  stage (the `key` fidelity mode).
Both return per-item start times of every stage; tests prove they agree.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np
import simpy


@dataclass
class Stage:
    """One pipeline stage of a stream: the unit instance that runs it and its timing (cycles).

    `bank_ids` (int64 [n]) and `calendar` make it an SRAM access stage; `work` is the stage's
    datapath for a range of items, called per item (key mode) by `run_keys`.
    """

    unit: str
    latency: int
    ii: int
    free_at: int = 0
    instance: int = 0
    bank_ids: Optional[np.ndarray] = None
    calendar: Optional[object] = None
    work: Optional[Callable[[slice], None]] = None


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
        arrive = start + stage.latency
    return StreamTiming(starts, arrive, stall_bank, stall_busy)


def run_keys(ready: np.ndarray, stages: list[Stage]) -> StreamTiming:
    """The same stream as a discrete-event model: one simpy process per stage, one event per
    item per stage.

    Stage s's process takes its items in order from a plain deque (filled by stage s - 1 as
    each item starts there, with its arrival cycle), waits with a single timeout until the
    item may start (arrival, the stage's II, a free bank port), runs the stage's work for that
    item and hands it on. A process finding its deque empty parks on an event that the stage
    before it triggers when it hands the next item over.
    """
    n = ready.size
    n_stages = len(stages)
    starts = np.empty((n_stages, n), dtype=np.int64)
    stall_bank = np.zeros(n_stages, dtype=np.int64)
    stall_busy = np.zeros(n_stages, dtype=np.int64)
    if n == 0:
        return StreamTiming(starts, np.empty(0, dtype=np.int64), stall_bank, stall_busy)
    env = simpy.Environment(initial_time=int(min(ready.min(), min(st.free_at for st in stages))))
    inboxes = [deque() for _ in range(n_stages + 1)]
    inboxes[0].extend(int(r) for r in ready)
    parked: list = [None] * (n_stages + 1)
    done = np.empty(n, dtype=np.int64)

    def stage_process(s: int, stage: Stage):
        next_accept = stage.free_at
        inbox, outbox = inboxes[s], inboxes[s + 1]
        work, calendar, bank_ids = stage.work, stage.calendar, stage.bank_ids
        latency, ii = stage.latency, stage.ii
        row = starts[s]
        waited = 0
        for i in range(n):
            while not inbox:
                parked[s] = env.event()
                yield parked[s]
            arrival = inbox.popleft()
            if i == 0:
                stall_busy[s] = max(0, stage.free_at - arrival)
            start = arrival if arrival > next_accept else next_accept
            if calendar is not None:
                slot = calendar.reserve_one(int(bank_ids[i]), start)
                waited += slot - start
                start = slot
            yield env.timeout(start - env.now)
            row[i] = start
            next_accept = start + ii
            if work is not None:
                work(slice(i, i + 1))
            if s + 1 < n_stages:
                outbox.append(start + latency)
                wake = parked[s + 1]
                if wake is not None:
                    parked[s + 1] = None
                    wake.succeed()
            else:
                done[i] = start + latency
        stall_bank[s] = waited

    for s, stage in enumerate(stages):
        env.process(stage_process(s, stage))
    env.run()
    return StreamTiming(starts, done, stall_bank, stall_busy)
