"""The chip table of docs/validation.md (axelsim/chip/table.py): writes docs/validation_chip.md,
which scripts/reproduce_paper.py includes in docs/validation.md."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from axelsim.chip import table  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "validation_chip.md")
    p.add_argument("--models", nargs="+", default=list(table.MODELS))
    p.add_argument("--contexts", nargs="+", type=int, default=list(table.CONTEXTS))
    p.add_argument("--batches", nargs="+", type=int, default=list(table.BATCHES))
    p.add_argument("--splits", nargs="*", type=int, default=[1, 2, 4, 8, 16])
    args = p.parse_args(argv)
    planned = len(args.models) * len(args.contexts) * len(args.batches) + len(args.splits)

    def write(rows, match):
        tmp = args.out.with_name(args.out.name + ".tmp")
        tmp.write_text(table.render(rows, match, "python scripts/chip_table.py", planned))
        tmp.replace(args.out)

    rows, match = table.build(args.models, args.contexts, args.batches, args.splits,
                              progress=lambda line: print(line, file=sys.stderr, flush=True), on_row=write)
    write(rows, match)
    print(f"wrote {args.out} ({len(rows)} rows)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
