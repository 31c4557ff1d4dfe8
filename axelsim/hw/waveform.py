"""Unit activity over time: VCD (GTKWave) or Chrome trace JSON (Perfetto), chosen by suffix.

Needs a result simulated with record_waveform=True. One signal per unit instance: 1 while it
works on a stream, 0 otherwise (VCD); one complete event per stream activity (JSON, 1 cycle =
1 microsecond of trace time). Written atomically (temp file + os.replace).
"""

from __future__ import annotations

import json
from pathlib import Path

from axelsim.errors import ConfigError
from axelsim.io import atomic_path


def _signals(activity) -> dict:
    names = sorted({(a.unit, a.instance) for a in activity})
    return {key: f"s{i}" for i, key in enumerate(names)}


def vcd_text(activity, clock_hz: float) -> str:
    """The VCD text of a list of units.Activity (timescale 1 cycle = 1 tick)."""
    ids = _signals(activity)
    lines = ["$date axelsim $end", f"$comment clock {clock_hz:g} Hz, 1 tick = 1 cycle $end",
             "$timescale 1 ns $end", "$scope module macro $end"]
    lines += [f"$var wire 1 {ident} {unit}_{inst} $end" for (unit, inst), ident in ids.items()]
    lines += ["$upscope $end", "$enddefinitions $end"]
    changes: dict[int, dict[str, int]] = {}
    level: dict[str, int] = {}
    edges = []
    for a in activity:
        edges.append((a.start, 1, ids[(a.unit, a.instance)]))
        edges.append((a.end, -1, ids[(a.unit, a.instance)]))
    for time, delta, ident in sorted(edges):
        level[ident] = level.get(ident, 0) + delta
        changes.setdefault(time, {})[ident] = 1 if level[ident] > 0 else 0
    lines += ["#0"] + [f"0{ident}" for ident in ids.values()]
    for time in sorted(changes):
        lines.append(f"#{time}")
        lines += [f"{value}{ident}" for ident, value in changes[time].items()]
    return "\n".join(lines) + "\n"


def chrome_trace(activity) -> dict:
    """Chrome trace-event JSON: one 'X' event per activity, one thread per unit instance."""
    ids = _signals(activity)
    tids = {key: i for i, key in enumerate(ids)}
    events = [{"name": "thread_name", "ph": "M", "pid": 0, "tid": tids[(unit, inst)],
               "args": {"name": f"{unit}[{inst}]"}} for unit, inst in ids]
    events += [{"name": a.label, "ph": "X", "pid": 0, "tid": tids[(a.unit, a.instance)],
                "ts": a.start, "dur": a.end - a.start, "cat": a.unit} for a in activity]
    return {"traceEvents": events, "displayTimeUnit": "ns", "otherData": {"time_unit": "1 us = 1 cycle"}}


def write_waveform(result, path) -> Path:
    """Write result.waveform to path: '.vcd' -> VCD, '.json' -> Chrome trace; atomic."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".vcd", ".json"):
        raise ConfigError(str(path), "--waveform", "a file name ending in .vcd or .json")
    clock = getattr(result, "clock_hz", 1.0e9)
    text = vcd_text(result.waveform, clock) if suffix == ".vcd" else json.dumps(chrome_trace(result.waveform))
    with atomic_path(path) as temp:  # created 0644 like every other output (mkstemp alone gives 0600)
        temp.write_text(text)
    return path
