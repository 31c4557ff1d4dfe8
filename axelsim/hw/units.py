"""Common bookkeeping of the units: counted actions, busy and stall cycles, activity intervals.

One `Ledger` per simulation (no global state). Each stage books, once per stream, the
operations of the items it processed: its unit's operations per item (a structural figure: the
datapaths never skip work) times the items, plus the data-dependent counts read from the
datapath (saturated norms, spilled rows). docs/cycle_model.md ("Operation counts") lists them;
tests/test_ops_counted.py checks them against numerics/opcount.py, a datapath that counts each
operation as it executes. The report's `ops` kinds are sums of these counters.
"""

from __future__ import annotations

from array import array
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np

PATHS = ("write_path", "read_path", "value_path")


@dataclass
class Activity:
    """One interval [start, end) cycles during which a unit instance worked on a job."""

    unit: str
    instance: int
    start: int
    end: int
    label: str


@dataclass
class Ledger:
    """Counters of one simulation run.

    counts[(layer, path, unit, action)] = n; events[(layer, path, kind)] = n for ops kinds that
    are not arithmetic actions (butterflies, norm_saturations); busy[unit] and stalls[unit][cause]
    in cycles (summed over stages and streams); stage_busy[(unit, stage key)] the cycles a stage
    instance was occupied issuing items; waits[(unit, cause)] the wait windows [start, end) of
    items held back at a unit (so overlapping waits are counted once); spans[unit] the flat
    start, end pairs of each stream's stay in a unit (the timeline); activity intervals only
    when `record` is set (waveforms).
    """

    record: bool = False
    counts: dict = field(default_factory=lambda: defaultdict(int))
    events: dict = field(default_factory=lambda: defaultdict(int))
    busy: dict = field(default_factory=lambda: defaultdict(int))
    stalls: dict = field(default_factory=lambda: defaultdict(lambda: defaultdict(int)))
    activity: list = field(default_factory=list)
    instances: dict = field(default_factory=dict)
    stage_busy: dict = field(default_factory=lambda: defaultdict(int))
    waits: dict = field(default_factory=lambda: defaultdict(list))
    spans: dict = field(default_factory=lambda: defaultdict(lambda: array("q")))

    def count(self, unit: str, action: str, n: int, layer: int, path: str) -> None:
        """Add n actions (e.g. 'mul.fp16', 'read') performed by `unit` for `layer` on `path`."""
        if n:
            self.counts[(layer, path, unit, action)] += int(n)

    def event(self, kind: str, n: int, layer: int, path: str) -> None:
        """Add n occurrences of a non-action ops kind (butterflies, norm_saturations, ...)."""
        if n:
            self.events[(layer, path, kind)] += int(n)

    def add_busy(self, unit: str, cycles: int, stage: tuple = ()) -> None:
        self.busy[unit] += int(cycles)
        self.stage_busy[(unit, stage)] += int(cycles)

    def add_waits(self, unit: str, cause: str, starts: np.ndarray, ends: np.ndarray) -> None:
        """Items held back at `unit` for `cause` over cycles [starts[i], ends[i])."""
        if len(starts):
            self.waits[(unit, cause)].append((np.asarray(starts, dtype=np.int64), np.asarray(ends, dtype=np.int64)))

    def add_span(self, unit: str, start: int, end: int) -> None:
        if end > start:
            self.spans[unit].extend((int(start), int(end)))

    def add_spans(self, unit: str, starts: np.ndarray, ends: np.ndarray) -> None:
        """add_span for many streams at once (starts[i], ends[i])."""
        keep = ends > starts
        pairs = np.stack([starts[keep], ends[keep]], axis=1).astype(np.int64)
        self.spans[unit].frombytes(pairs.tobytes())

    def add_stall(self, unit: str, cause: str, cycles: int) -> None:
        if cycles > 0:
            self.stalls[unit][cause] += int(cycles)

    def add_activity(self, unit: str, instance: int, start: int, end: int, label: str) -> None:
        if self.record and end > start:
            self.activity.append(Activity(unit, instance, int(start), int(end), label))


def merged_spans(starts: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The disjoint sorted union of the intervals [starts[i], ends[i]), as (starts, ends)."""
    keep = ends > starts
    starts, ends = starts[keep], ends[keep]
    if not starts.size:
        return starts, ends
    order = np.argsort(starts, kind="stable")
    starts, reach = starts[order], np.maximum.accumulate(ends[order])
    # an interval opens a new run when it starts after every earlier one has ended
    opens = np.concatenate(([True], starts[1:] > reach[:-1]))
    closes = np.concatenate((opens[1:], [True]))
    return starts[opens], reach[closes]


def union_cycles(starts: np.ndarray, ends: np.ndarray) -> int:
    """Cycles covered by at least one of the intervals [starts[i], ends[i])."""
    a, b = merged_spans(starts, ends)
    return int((b - a).sum())


def covered_before(a: np.ndarray, b: np.ndarray, x: np.ndarray) -> np.ndarray:
    """For disjoint sorted spans (a, b): the covered cycles in [0, x) for each x."""
    prefix = np.concatenate(([0], np.cumsum(b - a)))
    k = np.searchsorted(a, x, side="right") - 1
    inside = np.where(k >= 0, np.clip(x - a[np.maximum(k, 0)], 0, (b - a)[np.maximum(k, 0)]), 0)
    return np.where(k >= 0, prefix[np.maximum(k, 0)], 0) + inside
