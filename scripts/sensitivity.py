"""Sign-pattern sensitivity study on the shipped SmolLM2 traces and on synthetic traces built
to break the N(0, 1/d) assumption (outlier channels, a key bias, layer-norm heterogeneity).

Run (a few minutes on 2 cores):
    .venv/bin/python scripts/sensitivity.py --out docs/data/sensitivity --plots docs/img

Writes per trace sensitivity_<trace>.json (into --out) and sensitivity_<trace>.png (into
--plots), and prints, and writes to --out/summary.md, one Markdown table over all traces.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tqdm import tqdm

from axelsim.calibrate.sensitivity import run_sensitivity, summary_markdown
from axelsim.errors import UserError
from axelsim.io import write_text
from axelsim.trace import SynthSpec, load_trace, synth_trace

SHIPPED = ("traces/smollm2_austen_full.safetensors", "traces/smollm2_austen_long.safetensors")

# d = 128 (the paper's head size), 8 layers: a control and one departure from N(0, 1/d) each
SYNTHETIC = {
    "synth_gaussian": {},
    "synth_outliers": {"outlier_channels": 4, "outlier_scale": 10.0},
    "synth_keybias": {"key_bias": 3.0},
    "synth_normratio8": {"norm_ratio": 8.0},
}
SYNTH_SHAPE = {"layers": 8, "kv_heads": 2, "q_heads": 4, "head_dim": 128, "tokens": 512,
               "queries": 32, "dtype": "float32", "seed": 11}


def synthetic_traces() -> dict[str, object]:
    """The synthetic traces of the study, by name."""
    return {name: synth_trace(SynthSpec(**SYNTH_SHAPE, **extra)) for name, extra in SYNTHETIC.items()}


class _Named:
    """A trace under another name (synthetic traces are all called 'synthetic')."""

    def __init__(self, trace, name: str):
        self._trace, self.name = trace, name

    def __getattr__(self, item):
        return getattr(self._trace, item)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--traces", nargs="*", default=list(SHIPPED), help="real traces to study")
    p.add_argument("--no-synthetic", action="store_true")
    p.add_argument("--seeds", type=int, nargs="+", default=list(range(1, 11)))
    p.add_argument("--bits", type=int, nargs="+", default=[2, 3, 4])
    p.add_argument("--candidates", type=int, default=200)
    p.add_argument("--out", type=Path, default=Path("docs/data/sensitivity"))
    p.add_argument("--plots", type=Path, default=None, help="folder of the plots (default --out)")
    args = p.parse_args(argv)
    try:
        traces = [load_trace(path) for path in args.traces]
        if not args.no_synthetic:
            traces += [_Named(t, name) for name, t in synthetic_traces().items()]
        results = []
        for trace in traces:
            results.append(run_sensitivity(
                trace, args.seeds, args.bits, args.out, candidates=args.candidates, plot_dir=args.plots,
                progress=lambda jobs, name=trace.name: tqdm(jobs, desc=name, unit="rom")))
    except UserError as exc:
        print(exc.line(), file=sys.stderr)
        return 2
    table = summary_markdown(results)
    write_text(args.out / "summary.md", table)
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
