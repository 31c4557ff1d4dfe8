"""Cycle-model benchmarks (issue 8), run by scripts/bench.py. One function per benchmark, each
returning a dict (units in key names) that pairs the figure with its reference measured in the
same process: a numpy float quantize-dequantize computation of the same scores and outputs, a
numpy float write path, a naive simpy pipeline, one worker, or a plain copy of the same bytes.

Shape: the 8B decode (8 KV heads, 32 query heads, d = 128, b = 3) on the paper-shaped macros/axelram_8b_monolith.yaml (BENCH_MACRO).
Whole-model figures are measured on `layers` layers and scaled linearly to 32 (the scaling
benchmark measures that linearity); every such row says `extrapolated_from_layers`.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from axelsim import api
from axelsim.cost.model import CostModel
from axelsim.hw.macro import simulate as simulate_macro
from axelsim.numerics.codebook import lloyd_max_codebook
from axelsim.numerics.golden import NumericsSpec, golden_layer
from axelsim.trace.format import Trace
from bench_rows import Row, Target

# numba's OpenMP workers spin while waiting by default; on a shared, loaded 2-core machine that
# makes every parallel kernel launch cost milliseconds. Passive waiting, unless the caller set it.
os.environ.setdefault("OMP_WAIT_POLICY", "passive")

ROOT = Path(__file__).resolve().parent.parent
BENCH_MACRO = ROOT / "macros" / "axelram_8b_monolith.yaml"
"""The paper's macro with rows for a whole 8B KV cache (axelram_paper.yaml holds one KV head of
one layer at T = 4096, fewer rows than the benchmarks' traces); the rows a trace needs set the
simulator's work, the capacity does not."""
MODEL_LAYERS = 32
KV_HEADS, Q_HEADS, DIM = 8, 32, 128


def decode_trace(layers: int, tokens: int, seed: int = 0, kv_heads: int = KV_HEADS, q_heads: int = Q_HEADS) -> Trace:
    """Random float32 keys/values [kv_heads, T, d] per layer and one query per head at T - 1."""
    rng = np.random.default_rng(seed)
    shape = (kv_heads, tokens, DIM)
    k = {L: rng.standard_normal(shape, dtype=np.float32) for L in range(layers)}
    v = {L: rng.standard_normal(shape, dtype=np.float32) for L in range(layers)}
    q = {L: rng.standard_normal((q_heads, 1, DIM), dtype=np.float32) for L in range(layers)}
    return Trace.from_arrays(k, v, q, [tokens - 1])


def _bits_equal(a, b) -> bool:
    return np.array_equal(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64), equal_nan=True)


def _cycle_decode(loaded, trace: Trace, fidelity: str = "burst") -> dict:
    """One decode step: simulate (keys preloaded), the bit-exact check against the golden model,
    energy from the cost model. Wall seconds of each part."""
    signs = api.sign_rom(loaded, trace)
    start = time.perf_counter()
    result = simulate_macro(loaded.config, signs, trace, fidelity=fidelity, prefill="preloaded")
    simulated = time.perf_counter()
    spec = NumericsSpec.from_macro(loaded.config, signs)
    exact = True
    for L in trace.layer_indices:
        gold = golden_layer(spec, trace.k(L), trace.v(L), trace.q(L), trace.q_positions, L)
        exact &= _bits_equal(gold.scores, result.scores[L]) and _bits_equal(gold.outputs, result.outputs[L])
    checked = time.perf_counter()
    energy = CostModel.from_macro(loaded).energy_pj(result.actions, result.time_s, trace.n_layers)["total"]
    done = time.perf_counter()
    return {"result": result, "bit_exact": bool(exact), "energy_pj": float(energy),
            "seconds_simulate": simulated - start, "seconds_preload": result.preload_wall_s,
            "seconds_bit_exact_check": checked - simulated, "seconds_energy": done - checked}


def numpy_float_decode(trace: Trace) -> float:
    """The numpy float reference: quantize-dequantize keys and values (norm, rotation as a
    matrix product, boundary search, centroid times norm, inverse rotation), then scores,
    softmax and outputs in float32. Returns wall seconds."""
    cb = lloyd_max_codebook(DIM, 3)
    bounds = (np.asarray(cb.boundaries) / np.sqrt(DIM)).astype(np.float32)
    cents = (np.asarray(cb.centroids) / np.sqrt(DIM)).astype(np.float32)
    signs = np.where(np.random.default_rng(0).integers(0, 2, DIM) == 1, -1.0, 1.0).astype(np.float32)
    h = np.array([[1.0]], dtype=np.float32)
    while h.shape[0] < DIM:
        h = np.block([[h, h], [h, -h]])
    rot = (h * signs[None, :] / np.sqrt(DIM)).astype(np.float32)  # R = H diag(s) / sqrt(d)
    start = time.perf_counter()
    group = trace.q_heads // trace.kv_heads
    for L in trace.layer_indices:
        deq = []
        for x in (trace.k(L), trace.v(L)):
            flat = x.reshape(-1, DIM)
            norm = np.linalg.norm(flat, axis=1, keepdims=True)
            idx = np.searchsorted(bounds, (flat / np.maximum(norm, 1e-30)) @ rot.T)
            deq.append(((cents[idx] * norm) @ rot).reshape(x.shape))
        keys, vals = deq
        q = trace.q(L)[:, 0]
        for kv in range(trace.kv_heads):
            s = q[kv * group:(kv + 1) * group] @ keys[kv].T / np.sqrt(DIM)
            p = np.exp(s - s.max(axis=1, keepdims=True))
            p /= p.sum(axis=1, keepdims=True)
            _ = p @ vals[kv]
    return time.perf_counter() - start


def bench_burst_decode(layers: int = 2, tokens: int = 4096) -> dict:
    """Burst-mode decode step (8B shape) with cycles, energy and the bit-exact check, against
    the numpy float quantize-dequantize computation of the same scores and outputs."""
    loaded = api.load_macro(BENCH_MACRO)
    trace = decode_trace(layers, tokens)
    _cycle_decode(loaded, decode_trace(1, 64))  # load compiled kernels
    run = _cycle_decode(loaded, trace)
    numpy_s = numpy_float_decode(trace)
    scale = MODEL_LAYERS / layers
    total = run["seconds_simulate"] + run["seconds_bit_exact_check"] + run["seconds_energy"]
    decode_only = total - run["seconds_preload"]
    return {"seconds_per_decode_step": total * scale, "seconds_per_decode_step_excluding_preload": decode_only * scale,
            "seconds_preload": run["seconds_preload"] * scale, "seconds_bit_exact_check": run["seconds_bit_exact_check"] * scale,
            "numpy_float_qdq_seconds": numpy_s * scale, "ratio_over_numpy": total / numpy_s,
            "ratio_over_numpy_excluding_preload": decode_only / numpy_s,
            "cycles_measured_layers": run["result"].cycles["total"], "energy_pj_per_layer": run["energy_pj"] / layers,
            "bit_exact": run["bit_exact"], "tokens": tokens, "extrapolated_from_layers": layers,
            "trace_bytes": int(sum(trace.k(L).nbytes + trace.v(L).nbytes for L in trace.layer_indices))}


def bench_burst_prefill(layers: int = 1, tokens: int = 2048) -> dict:
    """Burst-mode replay of a prefill (every write timed, one query per head at the end): KV
    vectors per second of the timed writes (the time inside Machine.write_positions: datapath,
    counts and timing of every write stream), and of the whole run with its decode step,
    against a numpy float write path on the same vectors."""
    from axelsim.hw.controller import Machine

    loaded = api.load_macro(BENCH_MACRO)
    trace = decode_trace(layers, tokens)
    signs = api.sign_rom(loaded, trace)
    simulate_macro(loaded.config, signs, trace, prefill="simulate")  # compile or load the kernels of this size
    spent = [0.0, 0.0]
    plain = _seconds_of(Machine, "write_positions", spent)
    try:
        start = time.perf_counter()
        result = simulate_macro(loaded.config, signs, trace, prefill="simulate")
        seconds = time.perf_counter() - start
    finally:
        Machine.write_positions = plain
    vectors = 2 * layers * KV_HEADS * tokens
    cb = lloyd_max_codebook(DIM, 3)
    bounds = np.asarray(cb.boundaries, dtype=np.float32)
    h = np.array([[1.0]], dtype=np.float32)
    while h.shape[0] < DIM:
        h = np.block([[h, h], [h, -h]])
    start = time.perf_counter()
    for L in trace.layer_indices:
        for x in (trace.k(L), trace.v(L)):
            flat = x.reshape(-1, DIM).astype(np.float16).astype(np.float32)
            norm = np.linalg.norm(flat, axis=1, keepdims=True)
            np.searchsorted(bounds, (flat @ h.T) / (norm * np.sqrt(DIM)))
    numpy_s = time.perf_counter() - start
    return {"vectors_per_s": vectors / spent[0], "seconds_writes": spent[0],
            "vectors_per_cpu_s": vectors / spent[1],  # CPU seconds of every thread: less sensitive to load
            "whole_run_vectors_per_s": vectors / seconds, "seconds_whole_run": seconds,
            "numpy_float_write_vectors_per_s": vectors / numpy_s, "ratio_numpy_over_cycle_model": spent[0] / numpy_s,
            "vectors": vectors, "cycles": result.cycles["total"], "layers": layers, "tokens": tokens}


def _naive_simpy_keys_per_s(keys: int = 20_000, stages: int = 4) -> float:
    """Reference: one simpy process per key through `stages` Resource stages (1 cycle each)."""
    import simpy

    env = simpy.Environment()
    units = [simpy.Resource(env, capacity=1) for _ in range(stages)]

    def key(env):
        for unit in units:
            with unit.request() as req:
                yield req
                yield env.timeout(1)

    for _ in range(keys):
        env.process(key(env))
    start = time.perf_counter()
    env.run()
    return keys / (time.perf_counter() - start)


KEY_STAGES, KEY_UNIT_EVENTS = 8, 6
"""Per key in key mode: score stream index_sram read, table_sram lookup, adder tree, norm
multiplier, softmax scale; value stream index_sram read, exp, weights + bins (8 stages), in
4 + 2 units (index_sram, table_sram, lookup_pipeline, value_unit; index_sram, value_unit),
each unit one event per key (pipeline.run_keys)."""


def _seconds_of(cls, name: str, spent: list):
    """Wrap cls.name so that each call adds its wall seconds to spent[0] and its CPU seconds
    (every thread) to spent[1]; returns the plain function (put it back when done)."""
    plain = getattr(cls, name)

    def timed(self, *args, **kwargs):
        started, cpu_started = time.perf_counter(), time.process_time()
        try:
            return plain(self, *args, **kwargs)
        finally:
            spent[0] += time.perf_counter() - started
            spent[1] += time.process_time() - cpu_started

    setattr(cls, name, timed)
    return plain


def _key_mode_once(loaded, tokens: int, repeats: int = 2) -> dict:
    from axelsim.hw.controller import Machine

    trace = decode_trace(1, tokens, kv_heads=2, q_heads=8)
    signs = api.sign_rom(loaded, trace)
    timing = api.sram_timing(loaded)  # once per run, as api.simulate (`axelsim run`) derives it
    best, best_cpu, key = float("inf"), float("inf"), None
    for _ in range(repeats):
        preload = [0.0, 0.0]
        plain = _seconds_of(Machine, "preload", preload)
        try:
            start, cpu = time.perf_counter(), time.process_time()
            key = simulate_macro(loaded.config, signs, trace, fidelity="key", prefill="preloaded", timing=timing)
            best = min(best, time.perf_counter() - start - key.preload_wall_s)
            best_cpu = min(best_cpu, time.process_time() - cpu - preload[1])
        finally:
            Machine.preload = plain
    burst = simulate_macro(loaded.config, signs, trace, fidelity="burst", prefill="preloaded", timing=timing)
    same = (key.cycles == burst.cycles and key.ops == burst.ops
            and all(_bits_equal(key.scores[L], burst.scores[L]) and _bits_equal(key.outputs[L], burst.outputs[L])
                    for L in key.scores))
    keys = trace.q_heads * tokens  # one job per query head (paper macro: no GQA-shared reads)
    return {"keys_per_s": keys / best, "keys_per_cpu_s": keys / best_cpu, "seconds": best, "cpu_seconds": best_cpu,
            "keys": keys, "key_equals_burst": bool(same)}


def bench_key_mode(tokens=(4096, 1024)) -> dict:
    """Key mode (every key an event at every unit it passes), one layer, 2 KV heads x 4 query
    heads, one query per head, keys preloaded (preload excluded; the SRAM timing derived once
    beforehand, as `axelsim run` does, not by each simulate call): keys per second through the
    score stream and then the value stream (8 stages, 6 unit events per key), best of 2 runs.
    Reference: a naive simpy model (one process per key through 4 Resource stages)."""
    loaded = api.load_macro(BENCH_MACRO)
    simulate_macro(loaded.config, api.sign_rom(loaded, decode_trace(1, 8, kv_heads=2, q_heads=8)),
                   decode_trace(1, 8, kv_heads=2, q_heads=8), fidelity="key", prefill="preloaded")
    runs = {t: _key_mode_once(loaded, t) for t in tokens}
    main = runs[tokens[0]]
    out = {"tokens": tokens[0], "keys_per_s": main["keys_per_s"], "keys_per_cpu_s": main["keys_per_cpu_s"],
           "cpu_seconds": main["cpu_seconds"], "stage_passes_per_s": KEY_STAGES * main["keys_per_s"],
           "unit_events_per_s": KEY_UNIT_EVENTS * main["keys_per_s"], "seconds": main["seconds"], "keys": main["keys"]}
    for t in tokens[1:]:
        out[f"keys_per_s_t{t}"] = runs[t]["keys_per_s"]
    out["naive_simpy_keys_per_s"] = _naive_simpy_keys_per_s()
    out["key_equals_burst"] = all(r["key_equals_burst"] for r in runs.values())
    return out


SWEEP_YAML = """name: bench
base: {base}
traces: [{trace}]
layers: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15]
queries: 16
fidelity: burst
grid:
  read_path.pipelines: [1, 2]
  read_path.table_multipliers: [32, 64, 128, 256]
"""


def sweep_seconds(workers: int) -> float:
    """Wall seconds of the 8-point sweep (SmolLM2 trace, 16 layers, 16 queries, every write
    timed: about 2 s per point) on `workers`."""
    with tempfile.TemporaryDirectory() as tmp:
        spec = Path(tmp) / "sweep.yaml"
        spec.write_text(SWEEP_YAML.format(base=ROOT / "macros" / "axelram_d64.yaml",
                                          trace=ROOT / "traces" / "smollm2_austen_full.safetensors"))
        start = time.perf_counter()
        api.sweep(spec, Path(tmp) / "out", workers=workers, progress=False, plots=False)
        return time.perf_counter() - start


def bench_sweep(points: int = 8, repeats: int = 2) -> dict:
    """Sweep points per second on 1 worker (in-process) and 2 worker processes (the sweep's
    forkserver pool; worker start-up, imports and numba cache loads included). Each run in a
    fresh interpreter, so neither inherits the other's warm caches; best of `repeats` runs."""
    out = {"points": points}
    for workers in (1, 2):
        code = (f"import sys; sys.path.insert(0, {str(ROOT / 'scripts')!r}); import bench_cycle; "
                f"print(bench_cycle.sweep_seconds({workers}))")
        best = float("inf")
        for _ in range(repeats):  # best of `repeats`: other jobs on a shared machine only slow a run down
            run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
            best = min(best, float(run.stdout.strip().splitlines()[-1]))
        out[f"points_per_s_{workers}_workers"] = points / best
        out[f"seconds_{workers}_workers"] = best
    out["speedup_2_over_1"] = out["points_per_s_2_workers"] / out["points_per_s_1_workers"]
    out["load_average_1min_after"] = os.getloadavg()[0]
    return out


def bench_scaling(plot: Path, tokens=(512, 1024, 2048, 4096, 8192, 16384, 32768), layers=(1, 2, 4)) -> dict:
    """Burst decode wall time (simulate + bit-exact check, preload excluded) over T at one layer
    and over layers at T = 2048; draws `plot`."""
    loaded = api.load_macro(BENCH_MACRO)
    _cycle_decode(loaded, decode_trace(1, 64))
    over_t = {}
    for t in tokens:
        run = _cycle_decode(loaded, decode_trace(1, t))
        over_t[t] = run["seconds_simulate"] - run["seconds_preload"] + run["seconds_bit_exact_check"]
    over_layers = {}
    for n in layers:
        run = _cycle_decode(loaded, decode_trace(n, 2048))
        over_layers[n] = run["seconds_simulate"] - run["seconds_preload"] + run["seconds_bit_exact_check"]
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.5))
    a.plot(list(over_t), list(over_t.values()), "o-")
    a.set_xlabel("keys T (one layer, 8B shape)")
    a.set_ylabel("wall seconds per decode step")
    a.set_xscale("log", base=2)
    a.set_yscale("log")
    b.plot(list(over_layers), list(over_layers.values()), "o-")
    b.set_xlabel("layers (T = 2048)")
    b.set_ylabel("wall seconds")
    b.set_ylim(bottom=0)
    fig.suptitle("burst-mode decode step: simulate + bit-exact check")
    fig.tight_layout()
    plot.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(plot, dpi=110)
    plt.close(fig)
    t_lo, t_hi = tokens[2], tokens[-1]
    return {"seconds_over_tokens": {str(k): v for k, v in over_t.items()},
            "seconds_over_layers": {str(k): v for k, v in over_layers.items()},
            "time_ratio_over_token_ratio": (over_t[t_hi] / over_t[t_lo]) / (t_hi / t_lo),
            "time_ratio_over_layer_ratio": (over_layers[layers[-1]] / over_layers[layers[0]]) / (layers[-1] / layers[0]),
            "plot": str(plot)}


ROWS = [
    Row("cycle_burst_decode_8b", bench_burst_decode,
        "burst decode step, 8B shape, T = 4096, with cycles, energy and the bit-exact check (2 layers, scaled to 32)",
        targets=(Target("ratio_over_numpy", "<=", 3.0, "at most 3x the numpy float computation"),
                 Target("bit_exact", "is", True, "bit-exact with the golden model")),
        show=("seconds_per_decode_step", "seconds_preload", "numpy_float_qdq_seconds", "ratio_over_numpy")),
    Row("cycle_burst_prefill", bench_burst_prefill,
        "prefill replay, every write timed (burst, 1 layer, T = 2048, 32,768 vectors; the time of the timed "
        "writes, and of the whole run with its decode step), vs a numpy float write path",
        targets=(Target("vectors_per_s", ">=", 500_000.0, "timed writes at least 500,000 vectors/s (issue 18)"),),
        show=("vectors_per_s", "vectors_per_cpu_s", "whole_run_vectors_per_s", "numpy_float_write_vectors_per_s",
              "ratio_numpy_over_cycle_model")),
    Row("cycle_key_mode", bench_key_mode,
        "key mode, every key an event at every unit (1 layer, 2 KV x 4 query heads, keys preloaded)",
        targets=(Target("keys_per_s", ">=", 250_000.0, "at least 250,000 keys/s at T = 4096 (issue 18)"),
                 Target("key_equals_burst", "is", True, "key == burst (cycles, counts, results)")),
        show=("keys_per_s", "keys_per_cpu_s", "keys_per_s_t1024", "naive_simpy_keys_per_s")),
    Row("sweep", bench_sweep, "sweep of 8 points, 2 worker processes vs 1",
        targets=(Target("speedup_2_over_1", ">=", 1.7, "2 workers at least 1.7x one"),),
        show=("points_per_s_1_workers", "points_per_s_2_workers", "speedup_2_over_1")),
    Row("cycle_scaling", lambda: bench_scaling(ROOT / "docs" / "img" / "bench_scaling.png"),
        "burst decode time over T (1 layer) and over layers (T = 2048); draws docs/img/bench_scaling.png",
        show=("time_ratio_over_token_ratio", "time_ratio_over_layer_ratio")),
]
