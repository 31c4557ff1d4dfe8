"""Helpers the sweep worker tests run inside worker processes (importable by module name)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from axelsim.sweep import Point, SweepPlan, SweepSpec, run_sweep


def slow_evaluate(point: Point) -> dict:
    """A point that takes a minute: long enough to be killed mid-sweep."""
    time.sleep(60)
    return {}


def main(out: str) -> None:
    """A sweep of 4 slow points on 2 workers (the parent of the orphan test kills it)."""
    spec = SweepSpec(name="slow", base="m.yaml", traces=["t.safetensors"])
    points = [Point(point_id=f"p{i}", base=Path("m.yaml"), overrides={}, trace=Path("t.safetensors"),
                    trace_digest="0", layers=None, kv_heads=None, queries=None, fidelity="burst") for i in range(4)]
    plan = SweepPlan(spec=spec, path=Path("s.yaml"), points=points)
    run_sweep(plan, out, workers=2, evaluate=slow_evaluate, progress=False, plots=False)


if __name__ == "__main__":
    main(sys.argv[1])
