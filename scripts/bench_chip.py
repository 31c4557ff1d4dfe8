"""Benchmark row of the chip (issue 13): the 8B shape's decode step at T = 4096, whole process,
beside a numpy float reference of the same step (all 32 layers x 32 query heads over 8 KV heads)."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from bench_process import ROOT, axelsim, run_process
from bench_rows import Row, Target

NUMPY_STEP = """
import numpy as np
rng = np.random.default_rng(0)
for layer in range(32):
    k = rng.standard_normal((8, 4096, 128), dtype=np.float32)
    v = rng.standard_normal((8, 4096, 128), dtype=np.float32)
    q = rng.standard_normal((32, 128), dtype=np.float32).astype(np.float64)
    kk = np.repeat(k, 4, axis=0).astype(np.float64)
    s = np.einsum('hd,htd->ht', q, kk) / np.sqrt(128)
    p = np.exp(s - s.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    out = np.einsum('ht,htd->hd', p, np.repeat(v, 4, axis=0).astype(np.float64))
"""


def bench_chip_decode() -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        ours = run_process(axelsim("chip", str(ROOT / "chips" / "axelram_8b.yaml"), "--model", "Llama-3.1-8B",
                                   "--context", "4096", "--json", str(Path(tmp) / "chip.json")))
    ref = run_process([sys.executable, "-c", NUMPY_STEP])
    return {"seconds": ours["wall_s"], "cpu_s": ours["cpu_s"], "peak_rss_mib": ours["peak_rss_mib"],
            "numpy_seconds": ref["wall_s"], "ratio_over_numpy": ours["wall_s"] / ref["wall_s"],
            "succeeded": ours["returncode"] == 0 and ref["returncode"] == 0,
            "command": "axelsim chip chips/axelram_8b.yaml --model Llama-3.1-8B --context 4096 --json OUT "
                       "(AXELRAM, FP16 and dequant_rotated chips, H200 row); numpy: float64 attention of the same step"}


ROWS = [Row("chip_8b_decode", bench_chip_decode,
            "whole `axelsim chip` of Llama-3.1-8B's decode step at T = 4096 (AXELRAM, FP16 and dequant_rotated chips) vs a numpy "
            "float reference of that step",
            targets=(Target("seconds", "<=", 60.0, "8B decode step simulated in at most 60 s (issue 13)"),
                     Target("succeeded", "is", True, "both processes succeed")),
            show=("seconds", "numpy_seconds", "ratio_over_numpy", "peak_rss_mib"))]
