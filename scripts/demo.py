"""`make demo`: the paper's macro shape (SmolLM2, d = 64) on the shipped real trace.

Runs exactly `axelsim run macros/axelram_d64.yaml --trace traces/smollm2_austen_full.safetensors
--json out/demo/report.json --plots out/demo` from the repository root: prints the summary table,
writes the full report and the plots (energy/area breakdown, cycles and utilisation, score error
against bit-width). Exits with the command's status.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from axelsim import cli

ROOT = Path(__file__).resolve().parents[1]
OUT = Path("out") / "demo"


def main() -> int:
    os.chdir(ROOT)
    status = cli.main([
        "run", "macros/axelram_d64.yaml",
        "--trace", "traces/smollm2_austen_full.safetensors",
        "--json", str(OUT / "report.json"),
        "--plots", str(OUT),
    ])
    if status == 0:
        print(f"demo done: open {OUT / 'energy_area.png'}, {OUT / 'cycles.png'} and {OUT / 'error_vs_bits.png'}")
    return status


if __name__ == "__main__":
    sys.exit(main())
