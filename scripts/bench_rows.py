"""The benchmark table's rows and targets (scripts/bench.py runs them).

A row is one benchmark: a function returning a dict of figures (units in the key names), each
measured next to its reference in the same run, and the targets it is held to. To add a row,
write the function in a bench_*.py module and append a `Row` to that module's `ROWS` (a new
module also goes into bench.MODULES):

    ROWS = [Row("chip_8b_decode", bench_chip_decode, "chip: 8B decode step, T = 4096",
                targets=(Target("seconds", "<=", 60.0, "8B decode step in at most 60 s"),),
                show=("seconds", "ratio_over_numpy"))]

A target is met or missed from the row's own figures; a boolean figure that must hold (bit
exactness, key == burst) is a Target with op "is" and bound True.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass
from typing import Callable

_OPS = {"<=": operator.le, ">=": operator.ge, "is": lambda a, b: bool(a) is bool(b)}


@dataclass(frozen=True)
class Target:
    """figures[key] op bound, e.g. Target("ratio_over_reference", "<=", 2.0, "at most 2x numpy")."""

    key: str
    op: str
    bound: float | bool
    text: str

    def check(self, figures: dict) -> dict:
        """{text, key, measured, met}; a missing or non-numeric figure is a miss."""
        value = figures.get(self.key)
        met = value is not None and not isinstance(value, (dict, list, str)) and _OPS[self.op](value, self.bound)
        return {"text": self.text, "key": self.key, "op": self.op, "bound": self.bound, "measured": value,
                "met": bool(met)}


@dataclass(frozen=True)
class Row:
    """One benchmark: `run()` -> figures; `show`: the figures printed in the table (default all scalars)."""

    name: str
    run: Callable[[], dict]
    what: str
    targets: tuple[Target, ...] = ()
    show: tuple[str, ...] = ()


def headline(row: Row, figures: dict) -> str:
    """The row's shown figures as `key=value` text."""
    keys = row.show or tuple(k for k, v in figures.items() if isinstance(v, (int, float, bool)))
    return ", ".join(f"{k}={figure_text(figures.get(k))}" for k in keys)


def figure_text(value) -> str:
    """A figure as the tables print it: 4 significant digits, thousands separated."""
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, float):
        return f"{value:,.4g}" if abs(value) < 1e4 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)
