"""Speed benchmarks: one row per benchmark (bench_rows.Row: a function returning figures with
units in the key names, each next to its reference measured in the same run, and the targets it
is held to). Rows come from this module (numerics), bench_process.py (whole CLI processes: cold
start, `axelsim run` against a numpy reference process) and bench_cycle.py (the cycle model).
`main` runs them, prints each row with its targets met or missed, and writes bench.json and
bench.md (a run-of-record section for docs/performance.md).

    .venv/bin/python scripts/bench.py --out out/bench [--only ROW,ROW] [--list] [--numpy-layers 2]

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
import resource
import subprocess
import sys
import time
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Callable

# numba's OpenMP workers spin while waiting by default; on a shared 2-core machine every parallel
# kernel launch then costs milliseconds. Passive waiting, unless the caller set it (before numba).
os.environ.setdefault("OMP_WAIT_POLICY", "passive")

import numba  # noqa: E402
import numpy as np  # noqa: E402

import bench_chip
import bench_cycle
import bench_process
from bench_rows import Row, Target, figure_text, headline
from axelsim.config.macro import MacroConfig
from axelsim.numerics.golden import NumericsSpec, attend, exp_constants, read_scores_gqa, write_vectors
from axelsim.numerics.hadamard import SignRom

ROOT = Path(__file__).resolve().parent.parent


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


@cache
def workload() -> DecodeWorkload:
    """The decode-step workload shared by the numerics rows (built once per bench run)."""
    return make_decode_workload()


NUMPY_LAYERS = 2
"""Layers the slow numpy versions run (scaled to 32); --numpy-layers sets it."""


def bench_read_row() -> dict:
    """Golden read path against the numpy version of the same arithmetic and the index bytes' copy."""
    work = workload()
    golden = bench_golden_read(work)
    numpy_row = bench_numpy_read(work, NUMPY_LAYERS)
    copy = bench_copy_floor(work)
    seconds = golden["seconds_per_decode_step"]
    return {**golden, "numpy_seconds_per_decode_step": numpy_row["seconds_per_decode_step"],
            "numpy_bit_exact_with_golden": numpy_row["bit_exact_with_golden"],
            "numpy_over_golden": numpy_row["seconds_per_decode_step"] / seconds,
            "numpy_over_golden_cpu_time": numpy_row["cpu_seconds_per_decode_step"] / golden["cpu_seconds_per_decode_step"],
            "copy_seconds": copy["seconds_per_decode_step"], "golden_over_copy": seconds / copy["seconds_per_decode_step"],
            "numpy_layers_measured": NUMPY_LAYERS}


ROWS = [
    Row("golden_read_8b_decode", bench_read_row,
        "golden read path, 8B decode step (32 layers, 8 KV / 32 query heads, d = 128, b = 3, T = 4096)",
        targets=(Target("seconds_per_decode_step", "<=", 2.0, "decode step within 2 s"),
                 Target("numpy_over_golden", ">=", 10.0, "at least 10x the numpy version"),
                 Target("golden_over_copy", "<=", 20.0, "within 20x a copy of the index bytes"),
                 Target("numpy_bit_exact_with_golden", "is", True, "numpy version bit-exact")),
        show=("seconds_per_decode_step", "ns_per_lookup", "numpy_over_golden", "golden_over_copy")),
    Row("golden_write_8b_prefill", lambda: bench_write_path(workload().spec, NUMPY_LAYERS),
        "golden write path, whole 4096-token prefill (2,097,152 vectors)",
        targets=(Target("numpy_over_golden", ">=", 5.0, "at least 5x the numpy write path"),
                 Target("numpy_bit_exact_with_golden", "is", True, "numpy version bit-exact")),
        show=("seconds_whole_prefill", "vectors_per_s", "numpy_over_golden", "qdq_over_golden")),
    Row("golden_value_8b_decode", lambda: bench_value_path(workload(), NUMPY_LAYERS),
        "golden value path, 8B decode step (537 M bin updates)",
        targets=(Target("numpy_bit_exact_with_golden", "is", True, "numpy version bit-exact"),),
        show=("seconds_per_decode_step", "lookups_per_s", "numpy_over_golden")),
]

MODULES = (bench_process, sys.modules[__name__], bench_cycle, bench_chip)
"""Where the rows come from, in table order (each module's ROWS)."""


def all_rows() -> list[Row]:
    return [row for module in MODULES for row in module.ROWS]


def git_commit() -> str:
    run = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    return run.stdout.strip() or "unknown"


def run_rows(rows: list[Row]) -> dict:
    """Run every row: its figures, each target met or missed, the load around it, wall seconds,
    and this process's peak resident memory after it (MiB)."""
    results = {"machine": {"cpus": os.cpu_count(), "load_average_1min_before": os.getloadavg()[0],
                           "numba_threads": numba.get_num_threads()},
               "started_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()), "commit": git_commit(), "rows": {}}
    missed = []
    for row in rows:
        load = os.getloadavg()[0]
        start = time.perf_counter()
        figures = row.run()
        checks = [t.check(figures) for t in row.targets]
        results["rows"][row.name] = {
            "what": row.what, "figures": figures, "targets": checks, "seconds": time.perf_counter() - start,
            "load_average_1min_before": load, "load_average_1min_after": os.getloadavg()[0],
            "bench_process_peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
        missed += [f"{row.name}: {c['text']} (measured {figure_text(c['measured'])})" for c in checks if not c["met"]]
        print(f"{row.name}: {headline(row, figures)}" + "".join(
            f"\n    {'met' if c['met'] else 'MISSED'}: {c['text']}" for c in checks), flush=True)
    results["machine"]["load_average_1min_after"] = os.getloadavg()[0]
    results["missed"] = missed
    return results


def markdown(results: dict, rows: list[Row]) -> str:
    """The run as a docs/performance.md section: one table row per benchmark, then the misses."""
    m = results["machine"]
    lines = [f"### Run of {results['started_utc']} UTC, commit {results['commit']} ({m['cpus']} cores, "
             f"1-min load {m['load_average_1min_before']:.2f} before, {m['load_average_1min_after']:.2f} after)", "",
             "| benchmark | figures (reference measured in the same run) | targets | load before/after |",
             "|---|---|---|---|"]
    for row in rows:
        rec = results["rows"].get(row.name)
        if rec is None:
            continue
        targets = "; ".join(f"{'met' if c['met'] else '**missed**'}: {c['text']}" for c in rec["targets"]) or "none set"
        lines.append(f"| {row.name}: {row.what} | {headline(row, rec['figures'])} | {targets} | "
                     f"{rec['load_average_1min_before']:.2f} / {rec['load_average_1min_after']:.2f} |")
    lines += ["", "Missed in this run: " + ("; ".join(results["missed"]) if results["missed"] else "none") + "."]
    return "\n".join(lines) + "\n"


def main() -> None:
    global NUMPY_LAYERS
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("out/bench"))
    parser.add_argument("--numpy-layers", type=int, default=2, help="layers the slow numpy version runs (scaled to 32)")
    parser.add_argument("--only", default="", help="comma-separated row names to run (default: all; see --list)")
    parser.add_argument("--list", action="store_true", help="print the row names and exit")
    args = parser.parse_args()
    NUMPY_LAYERS = args.numpy_layers
    rows = all_rows()
    if args.list:
        for row in rows:
            print(f"{row.name}: {row.what}")
        return
    if args.only:
        wanted = [name.strip() for name in args.only.split(",") if name.strip()]
        unknown = sorted(set(wanted) - {row.name for row in rows})
        if unknown:
            parser.error(f"unknown row(s) {', '.join(unknown)} (see --list)")
        rows = [row for row in rows if row.name in wanted]
    results = run_rows(rows)
    args.out.mkdir(parents=True, exist_ok=True)
    for name, text in (("bench.json", json.dumps(results, indent=2, default=str)), ("bench.md", markdown(results, rows))):
        tmp = args.out / (name + ".tmp")
        tmp.write_text(text)
        tmp.replace(args.out / name)
    print("MISSED: " + "; ".join(results["missed"]) if results["missed"] else "every target met")
    print(f"wrote {args.out / 'bench.json'} and {args.out / 'bench.md'}")


if __name__ == "__main__":
    main()
