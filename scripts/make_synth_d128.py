"""Write traces/synth_d128_smollm2stats.safetensors: a d = 128 synthetic trace for the d = 128
macros (the paper's among them), with the per-layer, per-channel statistics of the shipped real
trace (axelsim.trace.synth.synth_like; see traces/README.md). Deterministic: rerunning writes
the same file (same digest)."""

from __future__ import annotations

import sys
from pathlib import Path

from axelsim.trace import load_trace, save_trace
from axelsim.trace.synth import synth_like

ROOT = Path(__file__).resolve().parents[1]
REAL = ROOT / "traces" / "smollm2_austen_full.safetensors"
OUT = ROOT / "traces" / "synth_d128_smollm2stats.safetensors"
LAYERS = [0, 10, 20, 29]  # first, last and two between: 4 x 3 KV heads x 256 tokens x (K, V) = 6144 vectors


def main() -> int:
    trace = synth_like(load_trace(REAL), head_dim=128, layers=LAYERS, seed=0)
    save_trace(trace, OUT)
    written = load_trace(OUT)
    print(f"{OUT.relative_to(ROOT)}: {OUT.stat().st_size} bytes, sha256 {written.digest()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
