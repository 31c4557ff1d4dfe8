"""Common bookkeeping of the units: counted actions, busy and stall cycles, activity intervals.

One `Ledger` per simulation (no global state). Units report what they do as they do it; the
report's `ops` kinds are derived from these counters, never from formulas.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

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
    in cycles; activity intervals only when `record` is set (waveforms).
    """

    record: bool = False
    counts: dict = field(default_factory=lambda: defaultdict(int))
    events: dict = field(default_factory=lambda: defaultdict(int))
    busy: dict = field(default_factory=lambda: defaultdict(int))
    stalls: dict = field(default_factory=lambda: defaultdict(lambda: defaultdict(int)))
    activity: list = field(default_factory=list)
    instances: dict = field(default_factory=dict)

    def count(self, unit: str, action: str, n: int, layer: int, path: str) -> None:
        """Add n actions (e.g. 'mul.fp16', 'read') performed by `unit` for `layer` on `path`."""
        if n:
            self.counts[(layer, path, unit, action)] += int(n)

    def event(self, kind: str, n: int, layer: int, path: str) -> None:
        """Add n occurrences of a non-action ops kind (butterflies, norm_saturations, ...)."""
        if n:
            self.events[(layer, path, kind)] += int(n)

    def add_busy(self, unit: str, cycles: int) -> None:
        self.busy[unit] += int(cycles)

    def add_stall(self, unit: str, cause: str, cycles: int) -> None:
        if cycles > 0:
            self.stalls[unit][cause] += int(cycles)

    def add_activity(self, unit: str, instance: int, start: int, end: int, label: str) -> None:
        if self.record and end > start:
            self.activity.append(Activity(unit, instance, int(start), int(end), label))
