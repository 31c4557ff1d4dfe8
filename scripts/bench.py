"""Speed benchmarks. One function per benchmark, each returning a dict of figures with units
in the key names; `main` runs them all, writes JSON and prints a table with ratios.

    .venv/bin/python scripts/bench.py --out out/bench [--numpy-layers 2]

Workload (numerics): one decode step of an 8B-class model: 32 layers, 8 KV heads, 32 query
heads, d = 128, b = 3, T = 4096 keys, one query per head: 32*32*4096*128 = 537 M lookups
(golden read path and golden value path, each against a straightforward numpy version of the
same arithmetic, checked bit for bit); the golden write path over the whole 4096-token prefill
(32*8*4096 keys and as many values = 2 M vectors) against the numpy write path and the numpy
float quantize-dequantize; the index bytes' plain copy. The cycle-model rows come from
bench_cycle.py.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

# numba's OpenMP workers spin while waiting by default; on a shared 2-core machine every parallel
# kernel launch then costs milliseconds. Passive waiting, unless the caller set it (before numba).
os.environ.setdefault("OMP_WAIT_POLICY", "passive")

import numba  # noqa: E402
import numpy as np  # noqa: E402

import bench_cycle
from axelsim.config.macro import MacroConfig
from axelsim.numerics.golden import NumericsSpec, attend, exp_constants, read_scores_gqa, write_vectors
from axelsim.numerics.hadamard import SignRom


@dataclass(frozen=True)
class DecodeWorkload:
    """Random key indices/norms and queries shaped like one decode step of an 8B model."""

    spec: NumericsSpec
    indices: np.ndarray  # uint8 [layers, kv_heads, T, d]
    norms: np.ndarray  # float16 [layers, kv_heads, T]
    queries: np.ndarray  # float32 [layers, q_heads, 1, d]

    @property
    def lookups(self) -> int:
        layers, _, n_tok, dim = self.indices.shape
        return layers * self.queries.shape[1] * n_tok * dim


def make_decode_workload(layers=32, kv_heads=8, q_heads=32, dim=128, bits=3, tokens=4096, seed=0) -> DecodeWorkload:
    rng = np.random.default_rng(seed)
    spec = NumericsSpec.from_macro(MacroConfig(head_dim=dim, bits=bits), SignRom.from_seed(seed, layers, dim))
    indices = rng.integers(0, 1 << bits, (layers, kv_heads, tokens, dim), dtype=np.uint8)
    norms = rng.uniform(5.0, 40.0, (layers, kv_heads, tokens)).astype(np.float16)
    queries = rng.standard_normal((layers, q_heads, 1, dim)).astype(np.float32)
    return DecodeWorkload(spec, indices, norms, queries)


def best_seconds(fn: Callable[[], object], repeats: int) -> float:
    """Best wall time of `repeats` calls, in seconds."""
    return best_wall_and_cpu(fn, repeats)[0]


def best_wall_and_cpu(fn: Callable[[], object], repeats: int) -> tuple[float, float]:
    """(best wall seconds, CPU seconds of all threads in that same call) over `repeats` calls.

    CPU time is the load-robust figure on a shared machine: other processes inflate wall time.
    """
    best = (math.inf, math.inf)
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        fn()
        sample = (time.perf_counter() - wall, time.process_time() - cpu)
        best = min(best, sample)
    return best


def golden_decode_step(work: DecodeWorkload, layers: range) -> list[np.ndarray]:
    """The golden read path (numba kernels) over the given layers: scores per layer."""
    return [
        read_scores_gqa(work.spec, work.queries[layer], work.indices[layer], work.norms[layer], layer, causal=False)[0]
        for layer in layers
    ]


def _numpy_fwht_f32(u: np.ndarray) -> np.ndarray:
    d, h = u.shape[-1], 1
    u = u.copy()
    while h < d:
        blocks = u.reshape(u.shape[:-1] + (d // (2 * h), 2, h))
        a, c = blocks[..., 0, :].copy(), blocks[..., 1, :].copy()
        blocks[..., 0, :], blocks[..., 1, :] = a + c, a - c
        h *= 2
    return u


def numpy_decode_layer(work: DecodeWorkload, layer: int) -> np.ndarray:
    """Straightforward numpy version of the same arithmetic (default formats: fp16 input, fp32
    rotator, fp16 table and adder tree, fp32 score), one KV group at a time."""
    spec = work.spec
    d = spec.dim
    q = work.queries[layer][:, 0].astype(np.float16).astype(np.float32) * spec.signs.vector(layer)
    r = _numpy_fwht_f32(q).astype(np.float64)
    tables = (r[:, :, None] * spec.codebook.rom_centroids[None, None, :] / d).astype(np.float16)
    n_kv = work.indices.shape[1]
    group = tables.shape[0] // n_kv
    out = []
    for kv in range(n_kv):
        idx = work.indices[layer, kv]
        leaves = tables[kv * group:(kv + 1) * group][:, np.arange(d)[None, :], idx]  # [G, T, d] fp16
        while leaves.shape[-1] > 1:
            leaves = leaves[..., 0::2] + leaves[..., 1::2]
        out.append((leaves[..., 0].astype(np.float64) * work.norms[layer, kv].astype(np.float64)).astype(np.float32))
    return np.concatenate(out)[:, None, :].astype(np.float64)


def bench_golden_read(work: DecodeWorkload, repeats: int = 3) -> dict:
    """Golden read path, whole decode step (all layers, all heads), numba kernels on all cores."""
    layers = range(work.indices.shape[0])
    golden_decode_step(work, range(1))  # compile / load the kernel cache
    seconds, cpu = best_wall_and_cpu(lambda: golden_decode_step(work, layers), repeats)
    return {"seconds_per_decode_step": seconds, "cpu_seconds_per_decode_step": cpu, "lookups": work.lookups,
            "ns_per_lookup": seconds / work.lookups * 1e9, "layers_measured": len(layers),
            "threads": numba.get_num_threads()}


def bench_numpy_read(work: DecodeWorkload, layers_measured: int = 2) -> dict:
    """The numpy version on `layers_measured` layers, scaled to the whole step; also checks
    that it agrees bit for bit with the golden kernels on those layers."""
    layers = range(layers_measured)
    start, cpu = time.perf_counter(), time.process_time()
    numpy_scores = [numpy_decode_layer(work, layer) for layer in layers]
    scale = work.indices.shape[0] / layers_measured
    seconds = (time.perf_counter() - start) * scale
    cpu_seconds = (time.process_time() - cpu) * scale
    golden = golden_decode_step(work, layers)
    bit_exact = all(np.array_equal(a.view(np.uint64), b.view(np.uint64)) for a, b in zip(golden, numpy_scores))
    return {"seconds_per_decode_step": seconds, "cpu_seconds_per_decode_step": cpu_seconds, "lookups": work.lookups,
            "ns_per_lookup": seconds / work.lookups * 1e9, "layers_measured": layers_measured,
            "extrapolated": layers_measured != work.indices.shape[0], "bit_exact_with_golden": bit_exact}


def bench_copy_floor(work: DecodeWorkload, repeats: int = 5) -> dict:
    """Memory-bandwidth floor: one plain copy of the same index bytes the kernel reads."""
    dst = np.empty_like(work.indices)
    seconds = best_seconds(lambda: np.copyto(dst, work.indices), repeats)
    return {"seconds_per_decode_step": seconds, "bytes": int(work.indices.nbytes),
            "gbytes_per_s": work.indices.nbytes / seconds / 1e9}


# ---- write path: the whole 4096-token prefill of the 8B shape (2 M vectors, keys and values) ---
PREFILL_LAYERS, PREFILL_TOKENS, KV_HEADS = 32, 4096, 8


def prefill_layer_vectors(layer: int, tokens: int = PREFILL_TOKENS, dim: int = 128) -> np.ndarray:
    """float32 [2 * kv_heads * tokens, d]: one layer's keys and values (random, N(0, 1))."""
    return np.random.default_rng(layer).standard_normal((2 * KV_HEADS * tokens, dim), dtype=np.float32)


def numpy_write_layer(spec: NumericsSpec, x: np.ndarray, layer: int) -> tuple[np.ndarray, np.ndarray]:
    """Straightforward numpy version of the write path's arithmetic (default formats: fp16 input,
    fp32 rotator): fp16 input, squares and a pairwise sum in fp32, sqrt, sign flip, the FWHT
    stage by stage in fp32, thresholds t_j = rnd(b_j * norm), then the 2^b - 1 comparators per
    coordinate. Returns (indices uint8 [N, d], FP16 norms)."""
    x32 = x.astype(np.float16).astype(np.float32)
    sq = x32 * x32
    while sq.shape[1] > 1:
        sq = sq[:, 0::2] + sq[:, 1::2]
    norm = np.sqrt(sq[:, 0])
    u = _numpy_fwht_f32(x32 * spec.signs.vector(layer).astype(np.float32))
    thr = spec.codebook.rom_boundaries.astype(np.float32)[None, :] * norm[:, None]
    idx = np.zeros(u.shape, dtype=np.uint8)
    for j in range(thr.shape[1]):
        idx += u >= thr[:, j:j + 1]
    stored = np.minimum(norm, np.float32(65504.0)).astype(np.float16)
    return idx, stored


def numpy_qdq_write_layer(x: np.ndarray, rot: np.ndarray, bounds: np.ndarray, cents: np.ndarray) -> np.ndarray:
    """The numpy float quantize-dequantize of the same vectors: norm, rotation as a matrix
    product, boundary search, centroid times norm, inverse rotation (float32)."""
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    idx = np.searchsorted(bounds, (x / np.maximum(norm, 1e-30)) @ rot.T)
    return (cents[idx] * norm) @ rot


def _float_rotation(dim: int, layer_signs: np.ndarray) -> np.ndarray:
    h = np.array([[1.0]], dtype=np.float32)
    while h.shape[0] < dim:
        h = np.block([[h, h], [h, -h]])
    return (h * layer_signs[None, :] / np.sqrt(dim)).astype(np.float32)  # R = H diag(s) / sqrt(d)


def bench_write_path(spec: NumericsSpec, numpy_layers: int = 2, repeats: int = 2) -> dict:
    """Golden write path over the whole prefill (32 layers x 8 KV heads x 4096 tokens x K and V =
    2,097,152 vectors; one layer's 65,536 vectors at a time, as the trace holds them), against
    the straightforward numpy write path (bit-exactness checked on its layers) and the numpy
    float quantize-dequantize, both on `numpy_layers` layers scaled to 32."""
    data = [prefill_layer_vectors(L) for L in range(2)]  # two distinct layers' data, reused
    per_layer = data[0].shape[0]
    vectors = PREFILL_LAYERS * per_layer
    write_vectors(spec, data[0][:64], 0)  # load the compiled kernel
    seconds, cpu = best_wall_and_cpu(lambda: [write_vectors(spec, data[L % 2], L) for L in range(PREFILL_LAYERS)],
                                     repeats)
    start = time.perf_counter()
    ours = [numpy_write_layer(spec, data[L % 2], L) for L in range(numpy_layers)]
    numpy_s = (time.perf_counter() - start) * PREFILL_LAYERS / numpy_layers
    exact = True
    for L, (idx, norms) in enumerate(ours):
        gold = write_vectors(spec, data[L % 2], L)
        exact &= np.array_equal(gold.indices, idx) and np.array_equal(gold.norms.view(np.uint16), norms.view(np.uint16))
    cb = spec.codebook
    bounds = (np.asarray(cb.boundaries) / np.sqrt(spec.dim)).astype(np.float32)
    cents = (np.asarray(cb.centroids) / np.sqrt(spec.dim)).astype(np.float32)
    start = time.perf_counter()
    for L in range(numpy_layers):
        numpy_qdq_write_layer(data[L % 2], _float_rotation(spec.dim, spec.signs.vector(L).astype(np.float32)),
                              bounds, cents)
    qdq_s = (time.perf_counter() - start) * PREFILL_LAYERS / numpy_layers
    return {"seconds_whole_prefill": seconds, "cpu_seconds_whole_prefill": cpu, "vectors": vectors,
            "vectors_per_s": vectors / seconds, "numpy_seconds_whole_prefill": numpy_s,
            "numpy_vectors_per_s": vectors / numpy_s, "numpy_over_golden": numpy_s / seconds,
            "numpy_bit_exact_with_golden": bool(exact), "numpy_float_qdq_seconds_whole_prefill": qdq_s,
            "numpy_float_qdq_vectors_per_s": vectors / qdq_s, "qdq_over_golden": qdq_s / seconds,
            "numpy_layers_measured": numpy_layers, "threads": numba.get_num_threads()}


# ---- value path: softmax and rotated-domain bins of one decode step ---------------------------
def value_inputs(work: DecodeWorkload, layer: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Scores [q_heads, 1, T] (the golden read path's, scaled like real scores), value indices
    [kv_heads, T, d] and FP16 value norms [kv_heads, T] of one layer (random, seeded)."""
    rng = np.random.default_rng(1000 + layer)
    scores = golden_decode_step(work, range(layer, layer + 1))[0]
    shape = work.indices.shape[1:]
    v_idx = rng.integers(0, 1 << work.spec.bits, shape, dtype=np.uint8)
    v_norms = rng.uniform(5.0, 40.0, shape[:2]).astype(np.float16)
    return scores, v_idx, v_norms


def numpy_value_layer(spec: NumericsSpec, scores: np.ndarray, v_idx: np.ndarray, v_norms: np.ndarray,
                      layer: int) -> np.ndarray:
    """Straightforward numpy version of the value path's arithmetic (fp32 softmax and value
    formats): z = score * sigma, the running max, the exp unit (range reduction and the
    degree-6 Horner polynomial, every step rounded to fp32), the running sum E and the bins
    B[i][idx] accumulated key by key (sequential fp32 sums: cumulative sums, adding 0.0 for
    keys in other bins), centroids, inverse FWHT, 1/(E d) and the signs. Outputs [Hq, 1, d]."""
    f32 = np.float32
    d, levels = spec.dim, spec.levels
    log2e, coeffs = exp_constants(spec.formats["softmax"])
    log2e, coeffs = f32(log2e), coeffs.astype(f32)
    sigma = f32(1.0 / np.sqrt(d))
    cents = spec.codebook.rom_centroids.astype(f32)
    signs = spec.signs.vector(layer).astype(f32)
    n_h, n_kv = scores.shape[0], v_idx.shape[0]
    group = n_h // n_kv
    out = np.empty((n_h, 1, d))
    for h in range(n_h):
        kv = h // group
        z = scores[h, 0].astype(f32) * sigma
        y = (z - z.max()) * log2e
        k = np.rint(y)
        frac = y - k
        p = np.zeros_like(frac)
        for c in coeffs[::-1]:
            p = p * frac + c
        e = np.ldexp(p, np.clip(k, -2000, 2000).astype(np.int32))
        total = np.cumsum(e, dtype=f32)[-1]
        w = e * v_norms[kv].astype(f32)
        idx = v_idx[kv]
        bins = np.stack([np.cumsum(np.where(idx == j, w[:, None], f32(0.0)), axis=0, dtype=f32)[-1]
                         for j in range(levels)], axis=1)  # [d, L]
        o = bins[:, 0] * cents[0]
        for j in range(1, levels):
            o = o + bins[:, j] * cents[j]
        o = _numpy_fwht_f32(o)
        gain = f32(1.0) / (total * f32(d))
        out[h, 0] = signs * o * gain
    return out


def bench_value_path(work: DecodeWorkload, numpy_layers: int = 2, repeats: int = 2) -> dict:
    """Golden value path (numerics.golden.attend) over a whole decode step (32 layers x 32 query
    heads x T = 4096 keys x d bin updates = 537 M lookups), against the straightforward numpy
    value path on `numpy_layers` layers (scaled; bit-exactness checked there)."""
    spec = work.spec
    layers = work.indices.shape[0]
    inputs = [value_inputs(work, L) for L in range(2)]  # two layers' inputs, reused
    attend(spec, inputs[0][0][:, :, :64], inputs[0][1][:, :64], inputs[0][2][:, :64], 0)  # load the kernel
    seconds, cpu = best_wall_and_cpu(lambda: [attend(spec, *inputs[L % 2], L) for L in range(layers)], repeats)
    start = time.perf_counter()
    ours = [numpy_value_layer(spec, *inputs[L % 2], L) for L in range(numpy_layers)]
    numpy_s = (time.perf_counter() - start) * layers / numpy_layers
    gold = [attend(spec, *inputs[L % 2], L)[0] for L in range(numpy_layers)]
    exact = all(np.array_equal(a, b) for a, b in zip(gold, ours))
    rel = max(float(np.abs(a - b).max() / np.abs(a).max()) for a, b in zip(gold, ours))
    lookups = work.lookups
    return {"seconds_per_decode_step": seconds, "cpu_seconds_per_decode_step": cpu, "lookups": lookups,
            "lookups_per_s": lookups / seconds, "ns_per_lookup": seconds / lookups * 1e9,
            "numpy_seconds_per_decode_step": numpy_s, "numpy_lookups_per_s": lookups / numpy_s,
            "numpy_over_golden": numpy_s / seconds, "numpy_bit_exact_with_golden": bool(exact),
            "numpy_max_rel_diff": rel, "numpy_layers_measured": numpy_layers}


def run_all(numpy_layers: int) -> dict:
    work = make_decode_workload()
    results = {
        "golden_read_8b_decode": bench_golden_read(work),
        "numpy_read_8b_decode": bench_numpy_read(work, numpy_layers),
        "copy_index_bytes": bench_copy_floor(work),
        "golden_write_8b_prefill": bench_write_path(work.spec, numpy_layers),
        "golden_value_8b_decode": bench_value_path(work, numpy_layers),
    }
    golden = results["golden_read_8b_decode"]["seconds_per_decode_step"]
    results["machine"] = {"cpus": os.cpu_count(), "load_average_1min": os.getloadavg()[0]}
    results["ratios"] = {
        "numpy_over_golden": results["numpy_read_8b_decode"]["seconds_per_decode_step"] / golden,
        "golden_over_copy": golden / results["copy_index_bytes"]["seconds_per_decode_step"],
        "numpy_over_golden_cpu_time": results["numpy_read_8b_decode"]["cpu_seconds_per_decode_step"]
        / results["golden_read_8b_decode"]["cpu_seconds_per_decode_step"],
    }
    results["ratios"]["write_numpy_over_golden"] = results["golden_write_8b_prefill"]["numpy_over_golden"]
    results["ratios"]["write_qdq_over_golden"] = results["golden_write_8b_prefill"]["qdq_over_golden"]
    results["ratios"]["value_numpy_over_golden"] = results["golden_value_8b_decode"]["numpy_over_golden"]
    results["targets"] = {"numpy_over_golden_min": 10.0, "golden_over_copy_max": 20.0, "golden_seconds_max": 2.0,
                          "write_numpy_over_golden_min": 5.0}
    results.update(bench_cycle.run_all(Path("docs/img/bench_scaling.png")))
    if results["ratios"]["write_numpy_over_golden"] < results["targets"]["write_numpy_over_golden_min"]:
        results["cycle_short_of_targets"].insert(0, "golden write path of the 4096-token prefill less than 5x faster than numpy")
    if not (results["golden_write_8b_prefill"]["numpy_bit_exact_with_golden"]
            and results["golden_value_8b_decode"]["numpy_bit_exact_with_golden"]
            and results["numpy_read_8b_decode"]["bit_exact_with_golden"]):
        results["cycle_short_of_targets"].append("a numpy reference no longer equals the golden model bit for bit")
    return results


def print_table(results: dict) -> None:
    print(f"{'benchmark':<28}{'s/decode step':>15}{'ns/lookup':>12}  notes")
    for name, row in results.items():
        if (name in ("ratios", "targets", "machine", "golden_value_8b_decode") or "seconds_per_decode_step" not in row
                or name.startswith("cycle_")):
            continue
        notes = ", ".join(f"{k}={v}" for k, v in row.items() if k not in ("seconds_per_decode_step", "ns_per_lookup", "lookups"))
        ns = f"{row['ns_per_lookup']:.3f}" if "ns_per_lookup" in row else "-"
        print(f"{name:<28}{row['seconds_per_decode_step']:>15.4f}{ns:>12}  {notes}")
    for name in ("golden_write_8b_prefill", "golden_value_8b_decode"):
        row = results[name]
        print(f"{name}: " + ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()))
    for name, value in results["ratios"].items():
        print(f"ratio {name:<22}{value:>15.2f}")
    print(f"machine: {results['machine']}")
    bench_cycle.print_rows(results)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("out/bench"))
    parser.add_argument("--numpy-layers", type=int, default=2, help="layers the slow numpy version runs (scaled to 32)")
    args = parser.parse_args()
    results = run_all(args.numpy_layers)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "bench.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(results, indent=2))
    tmp.replace(path)
    print_table(results)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
