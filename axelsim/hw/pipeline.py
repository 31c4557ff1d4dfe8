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

from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np
import simpy


@dataclass
class Stage:
    """One pipeline stage of a stream: the unit instance that runs it and its timing (cycles).

    `bank_ids` (int64 [n]) and `calendar` make it an SRAM access stage; `work` is the stage's
    datapath for one item (key mode) — burst mode runs the stream's vectorised datapath instead.
    """

    unit: str
    latency: int
    ii: int
    free_at: int = 0
    instance: int = 0
    bank_ids: Optional[np.ndarray] = None
    calendar: Optional[object] = None
    work: Optional[Callable[[int], None]] = None


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
    """The same stream with one simpy process per stage and one event per item per stage.

    Each stage process takes (item, arrival cycle) from its queue in order, waits until the
    item may start, runs the stage's per-item work and hands (item, start + latency) on.
    """
    n = ready.size
    starts = np.empty((len(stages), n), dtype=np.int64)
    stall_bank = np.zeros(len(stages), dtype=np.int64)
    stall_busy = np.zeros(len(stages), dtype=np.int64)
    if n == 0:
        return StreamTiming(starts, np.empty(0, dtype=np.int64), stall_bank, stall_busy)
    env = simpy.Environment(initial_time=int(min(ready.min(), min(st.free_at for st in stages))))
    queues = [simpy.Store(env) for _ in range(len(stages) + 1)]
    for i in range(n):
        queues[0].put((i, int(ready[i])))

    def stage_process(s: int, stage: Stage):
        next_accept = stage.free_at
        inbox, outbox = queues[s], queues[s + 1]
        for _ in range(n):
            i, arrival = yield inbox.get()
            if i == 0:
                stall_busy[s] = max(0, stage.free_at - arrival)
            start = max(arrival, next_accept)
            if stage.bank_ids is not None:
                slot = stage.calendar.reserve_one(int(stage.bank_ids[i]), start)
                stall_bank[s] += slot - start
                start = slot
            if start > env.now:
                yield env.timeout(start - env.now)
            starts[s, i] = start
            next_accept = start + stage.ii
            if stage.work is not None:
                stage.work(i)
            outbox.put((i, start + stage.latency))

    for s, stage in enumerate(stages):
        env.process(stage_process(s, stage))
    env.run()
    done = np.array([arrival for _, arrival in queues[-1].items], dtype=np.int64)
    return StreamTiming(starts, done, stall_bank, stall_busy)
