"""The paper's QJL ablation with the real estimator (axelsim.calibrate.qjl_ablation): the
golden model's table (qjl_ablation.*) and the cycle model's (qjl_cycle_ablation.*: b-bit,
(b-1)-bit and QJL variants of --cycle-macro, bit-exact, energy, area, cycles).

Run (about 15 s golden + a few minutes cycle model; --skip-cycle for the first only):
    .venv/bin/python scripts/qjl_ablation.py --out docs/data/qjl_ablation
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from axelsim import api
from axelsim.calibrate.qjl_ablation import ablation_table, cycle_ablation, cycle_table, qjl_ablation
from axelsim.errors import UserError
from axelsim.io import write_json, write_text

ROOT = Path(__file__).resolve().parents[1]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path("docs/data/qjl_ablation"))
    p.add_argument("--trace", type=Path, default=ROOT / "traces" / "synth_d128_smollm2stats.safetensors")
    p.add_argument("--macro", type=Path, default=ROOT / "macros" / "axelram_paper.yaml")
    p.add_argument("--cycle-macro", type=Path, default=ROOT / "macros" / "axelram_qjl.yaml")
    p.add_argument("--queries", type=int, default=8)
    p.add_argument("--skip-cycle", action="store_true", help="the golden-model table only")
    args = p.parse_args(argv)
    try:
        trace = api.load_trace(args.trace).with_selection(queries=args.queries)
        result = qjl_ablation(api.load_macro(args.macro), trace)
        cycle = None if args.skip_cycle else cycle_ablation(args.cycle_macro, trace)
    except UserError as exc:
        print(exc.line(), file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    write_json(args.out / "qjl_ablation.json", {str(k): v for k, v in result.items()})
    write_text(args.out / "qjl_ablation.md", ablation_table(result))
    print(ablation_table(result))
    if cycle is not None:
        write_json(args.out / "qjl_cycle_ablation.json", {str(k): v for k, v in cycle.items()})
        write_text(args.out / "qjl_cycle_ablation.md", cycle_table(cycle))
        print(cycle_table(cycle))
    return 0


if __name__ == "__main__":
    sys.exit(main())
