"""The numpy float reference process of the whole-process benchmarks (scripts/bench_process.py).

    python scripts/numpy_reference.py TRACE.safetensors [--bits 3]

What a user would write in plain numpy for the same question `axelsim run` answers on the same
file: quantize-dequantize every key and value (norm, random-sign Hadamard rotation as a matrix
product, Lloyd-Max boundary search, centroid times norm, inverse rotation), then every query's
scores against the keys up to its position, softmax and outputs, in float32. It reads the file
with safetensors and imports nothing of axelsim, so its time is the reference's own. Prints one
line: queries served and wall seconds.
"""

from __future__ import annotations

import argparse
import json
import math
import time

import numpy as np
from safetensors import safe_open


def lloyd_max_gaussian(bits: int, iterations: int = 200) -> tuple[np.ndarray, np.ndarray]:
    """Centroids [2^b] and boundaries [2^b - 1] of the Lloyd-Max quantizer of N(0, 1)."""
    levels = 1 << bits
    cents = np.linspace(-2.0, 2.0, levels)
    pdf = lambda x: np.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi)  # noqa: E731
    cdf = np.vectorize(lambda x: 0.5 * (1.0 + math.erf(x / math.sqrt(2.0))))
    for _ in range(iterations):
        bounds = 0.5 * (cents[1:] + cents[:-1])
        edges = np.concatenate([[-np.inf], bounds, [np.inf]])
        mass = cdf(edges[1:]) - cdf(edges[:-1])
        cents = (pdf(edges[:-1]) - pdf(edges[1:])) / mass
    return cents, 0.5 * (cents[1:] + cents[:-1])


def rotation(dim: int, seed: int = 0) -> np.ndarray:
    """R = H diag(s) / sqrt(d), float32 (a random-sign normalised Hadamard matrix)."""
    h = np.array([[1.0]], dtype=np.float32)
    while h.shape[0] < dim:
        h = np.block([[h, h], [h, -h]])
    signs = np.where(np.random.default_rng(seed).integers(0, 2, dim) == 1, -1.0, 1.0).astype(np.float32)
    return (h * signs[None, :] / np.float32(math.sqrt(dim))).astype(np.float32)


def qdq(x: np.ndarray, rot: np.ndarray, bounds: np.ndarray, cents: np.ndarray) -> np.ndarray:
    """Quantize-dequantize vectors x [..., d] (float32)."""
    flat = x.reshape(-1, x.shape[-1]).astype(np.float32)
    norm = np.linalg.norm(flat, axis=1, keepdims=True)
    idx = np.searchsorted(bounds, (flat / np.maximum(norm, 1e-30)) @ rot.T)
    return ((cents[idx] * norm) @ rot).reshape(x.shape)


def run(path: str, bits: int) -> int:
    """Serve every query of the trace file; returns the number of (query head, position) served."""
    served = 0
    with safe_open(path, framework="numpy") as f:
        meta = f.metadata() or {}
        d = int(meta["head_dim"])
        rot = rotation(d)
        cents, bounds = lloyd_max_gaussian(bits)
        cents = (cents / math.sqrt(d)).astype(np.float32)
        bounds = (bounds / math.sqrt(d)).astype(np.float32)
        positions = f.get_tensor("q_positions")
        layers = sorted({int(name.split(".")[1]) for name in f.keys() if name.startswith("layers.")})
        for layer in layers:
            keys = qdq(f.get_tensor(f"layers.{layer}.k"), rot, bounds, cents)
            vals = qdq(f.get_tensor(f"layers.{layer}.v"), rot, bounds, cents)
            q = f.get_tensor(f"layers.{layer}.q").astype(np.float32)  # [Hq, Nq, d]
            group = q.shape[0] // keys.shape[0]
            for kv in range(keys.shape[0]):
                for n, p in enumerate(positions):
                    s = q[kv * group:(kv + 1) * group, n] @ keys[kv, :p + 1].T / np.float32(math.sqrt(d))
                    w = np.exp(s - s.max(axis=1, keepdims=True))
                    w /= w.sum(axis=1, keepdims=True)
                    _ = w @ vals[kv, :p + 1]
                    served += group
    return served


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("trace", help="trace file (safetensors, docs/trace_format.md)")
    parser.add_argument("--bits", type=int, default=3, help="index bits per coordinate (default 3)")
    args = parser.parse_args()
    start = time.perf_counter()
    served = run(args.trace, args.bits)
    print(json.dumps({"query_heads_served": served, "seconds": time.perf_counter() - start}))


if __name__ == "__main__":
    main()
