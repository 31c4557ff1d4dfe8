"""Report sections in worker processes (axelsim.workers): the same report as one process, errors
that arrive whole, and the default plan."""

from __future__ import annotations

import json
import os
import pickle
import time
from pathlib import Path

import numba
import numpy as np
import pytest

from axelsim import api
from axelsim.errors import ConfigError, NumericsError, TraceError, UserError
from axelsim.io import OutputError
from axelsim.trace.format import Trace, load_trace
from fuzz_helpers import assert_bad_input, run_cli
from axelsim.workers import WORKERS_MIN_ELEMENTS, plan_workers, section_pool, stored_elements

ROOT = Path(__file__).resolve().parents[1]
TRACE = ROOT / "traces" / "synth_d128_smollm2stats.safetensors"
MACROS = [ROOT / "macros" / name for name in ("axelram_paper.yaml", "axelram_b2.yaml")]
SELECTION = {"layers": [0], "kv_heads": [0], "queries": 2}


def without_run_info(value):
    """The report with every run_info section and run_info unit removed (what may differ)."""
    if isinstance(value, dict):
        return {k: without_run_info(v) for k, v in value.items() if k != "run_info" and not k.startswith("run_info.")}
    if isinstance(value, list):
        return [without_run_info(v) for v in value]
    return value


def as_json(report) -> str:
    return json.dumps(without_run_info(report), sort_keys=True, default=str)


def test_run_in_workers_equals_one_process():
    serial = api.simulate(MACROS[0], TRACE, workers=1, **SELECTION)
    spread = api.simulate(MACROS[0], TRACE, workers=3, **SELECTION)
    assert serial["run_info"]["workers"] == 0
    assert spread["run_info"]["workers"] == 2
    assert len(spread["run_info"]["worker_peak_rss_mib"]) == api.SECTIONS_PER_BASELINE * len(api.BASELINE_KINDS)
    assert set(spread["baselines"]) == set(api.BASELINE_KINDS)
    assert all(section["numerics"]["bit_exact"] for section in spread["baselines"].values())
    assert as_json(serial) == as_json(spread)


def test_compare_in_workers_equals_one_process():
    serial = api.compare(MACROS, TRACE, workers=1, **SELECTION)
    spread = api.compare(MACROS, TRACE, workers=2, **SELECTION)
    assert all(report["run_info"]["workers"] == 1 for report in spread["designs"].values())
    assert list(serial["designs"]) == list(spread["designs"])
    assert as_json(serial) == as_json(spread)


def test_a_workers_baseline_is_finished_against_the_runs_references(monkeypatch):
    """A worker returns a baseline's section with its bit_exact keys only; the main process adds
    the error metrics against the float64 attention the run computed once, reading no tensor."""
    view = api.select(load_trace(TRACE), **SELECTION)
    loaded = api._as_macro(MACROS[0], view)
    signs = api.sign_rom(loaded, view)
    run = api.run_baseline("kivi", loaded, signs, view, "burst")
    assert list(run.section["numerics"]) == ["bit_exact", "bit_exact_scores", "bit_exact_outputs"]
    references: dict = {}
    whole = api.finish_baseline(run, loaded, view, references)
    assert whole == api.simulate_baseline("kivi", loaded, signs, view, "burst")
    assert list(whole["numerics"])[3:] == ["score_rel_rmse", "score_max_abs_err", "attn_kl", "top1_agreement",
                                          "output_rel_rmse", "overflows"]

    def unread(*_args):
        raise AssertionError("a tensor was read for a reference the run already holds")

    for tensor in ("k", "v", "q"):
        monkeypatch.setattr(Trace, tensor, unread)
    assert api.finish_baseline(run, loaded, view, references) == whole


def test_a_baselines_two_sections_give_its_bit_exact_verdict():
    """A baseline's cycle model and golden reference computed apart (two worker sections): the
    verdict is the one of comparing the arrays (same_bits against numerics.baselines.baseline_layer,
    computed here), with_exactness changes nothing but the numerics, and one flipped bit of one
    score, or one output, is caught."""
    import dataclasses

    from axelsim.config.macro import kivi_channel_group
    from axelsim.numerics.baselines import KiviSpec, baseline_layer
    from axelsim.numerics.golden import NumericsSpec
    from axelsim.report.numerics import baseline_golden_digests, same_bits

    view = api.select(load_trace(TRACE), **SELECTION)
    loaded = api._as_macro(MACROS[0], view)
    signs = api.sign_rom(loaded, view)
    cycle = api.run_cycle_model("dequant_rotated", loaded, signs, view, "burst")
    assert cycle.section["numerics"] == {}
    golden = baseline_golden_digests("dequant_rotated", loaded.config, signs, view)
    joined = api.with_exactness(cycle, golden)
    spec, kc = NumericsSpec.from_macro(loaded.config, signs), loaded.config.baselines.kivi
    kivi = KiviSpec(kc.bits, kc.group_size, kc.window, kivi_channel_group(kc, view.head_dim))
    for L in view.layer_indices:
        arrays = baseline_layer("dequant_rotated", spec, kivi, view.k(L), view.v(L), view.q(L), view.q_positions, L)
        assert same_bits(cycle.scores[L], arrays.scores) and same_bits(cycle.outputs[L], arrays.outputs)
    assert {k: v for k, v in joined.section.items() if k != "numerics"} == \
        {k: v for k, v in cycle.section.items() if k != "numerics"}
    assert joined.section["numerics"] == {"bit_exact": True, "bit_exact_scores": True, "bit_exact_outputs": True}
    layer = view.layer_indices[0]
    for field in ("scores", "outputs"):
        changed = {L: a.copy() for L, a in getattr(cycle, field).items()}
        flat = changed[layer].reshape(-1)
        flat[flat.size // 2] = np.nextafter(flat[flat.size // 2], np.inf)
        verdict = api.with_exactness(dataclasses.replace(cycle, **{field: changed}), golden).section["numerics"]
        assert verdict == {"bit_exact": False, "bit_exact_scores": field == "outputs",
                           "bit_exact_outputs": field == "scores"}


def test_cli_workers_flag(tmp_path):
    outs = []
    for workers in ("1", "2"):
        out = tmp_path / f"r{workers}.json"
        result = run_cli("run", str(MACROS[0]), "--trace", str(TRACE), "--layers", "0", "--heads", "0",
                         "--queries", "2", "--workers", workers, "--json", str(out), "--quiet")
        assert result.returncode == 0, result.stderr
        outs.append(json.loads(out.read_text()))
    assert as_json(outs[0]) == as_json(outs[1])
    assert_bad_input(run_cli("run", str(MACROS[0]), "--trace", str(TRACE), "--workers", "0"), "--workers")


@pytest.mark.parametrize("error", [ConfigError("m.yaml", "sram.banks", "a power of two"),
                                   TraceError("t.safetensors", "layers.0.k", "[kv_heads, T, d]"),
                                   NumericsError("t", "layers.3.q", "finite values"),
                                   OutputError("out.json", "", "a writable path", 13)])
def test_user_errors_pickle_whole(error):
    back = pickle.loads(pickle.dumps(error))
    assert type(back) is type(error) and back.line() == error.line() and str(back) == str(error)
    assert getattr(back, "errno", None) == getattr(error, "errno", None)


def _raise_config_error(where: str) -> None:
    raise ConfigError("macro.yaml", where, "a positive integer")


def _started(section, seconds: float = 120.0):
    """Wait until a worker has taken `section` (so `result` does not compute it in this process)."""
    deadline = time.monotonic() + seconds
    while section.future is None:
        assert time.monotonic() < deadline, "no worker took the section"
        time.sleep(0.01)
    return section


def test_worker_error_reaches_the_caller_as_raised():
    with section_pool(1) as pool:
        section = _started(pool.submit(_raise_config_error, "read_path.pipelines"))
        with pytest.raises(UserError) as caught:
            pool.result(section, timeout=120)
    assert type(caught.value) is ConfigError
    assert caught.value.line() == ConfigError("macro.yaml", "read_path.pipelines", "a positive integer").line()


def test_plan_workers():
    small = load_trace(TRACE)
    assert stored_elements(small) < WORKERS_MIN_ELEMENTS
    assert plan_workers(None, small, 4) == 0  # too small to pay for a worker's start
    assert plan_workers(1, small, 4) == 0
    assert plan_workers(2, small, 4) == 1  # processes in all: the main one and a worker
    assert plan_workers(3, small, 4) == 2 and plan_workers(8, small, 4) == 4
    assert plan_workers(2, small, 0) == 0
    d = 128
    tokens = WORKERS_MIN_ELEMENTS // (2 * d) + 1
    k = {0: np.zeros((1, tokens, d), np.float32)}
    in_memory = Trace.from_arrays(k, k, {0: np.zeros((1, 1, d), np.float32)}, [tokens - 1])
    assert stored_elements(in_memory) >= WORKERS_MIN_ELEMENTS
    assert plan_workers(None, in_memory, 4) == 0  # no file a worker could re-open
    assert plan_workers(2, in_memory, 4) == 0


@pytest.mark.parametrize("cores, sections, expected", [(1, 4, 0), (2, 4, 1), (4, 4, 3), (8, 4, 4)])
def test_default_plan_is_one_process_a_core(monkeypatch, cores, sections, expected):
    """A large run from a file uses one process per usable core, the main one among them."""
    import axelsim.workers as workers

    monkeypatch.setattr(workers, "usable_cores", lambda: cores)
    monkeypatch.setattr(workers, "stored_elements", lambda view: WORKERS_MIN_ELEMENTS)
    assert plan_workers(None, load_trace(TRACE), sections) == expected


def _twice_each(x, out):
    for i in numba.prange(x.size):
        out[i] = 2.0 * x[i]


def test_one_thread_runs_and_loads_only_the_serial_flavour():
    """A process whose numba kernels run on one thread (beside worker processes) calls the serial
    flavour of a by_work kernel whatever its work, so the parallel one is never compiled or loaded
    there; with more threads a large call takes the parallel one. Same results either way."""
    from axelsim import jit

    x = np.arange(8.0)
    threads = numba.get_num_threads()
    try:
        kernel = jit.by_work(_twice_each, lambda args: 10**9)
        numba.set_num_threads(1)
        single = np.empty_like(x)
        kernel(x, single)
        assert kernel.serial.signatures and not kernel.parallel.signatures
        if numba.config.NUMBA_NUM_THREADS > 1:
            numba.set_num_threads(2)
            spread = np.empty_like(x)
            kernel(x, spread)
            assert kernel.parallel.signatures and np.array_equal(single, spread)
    finally:
        numba.set_num_threads(threads)
    assert np.array_equal(single, 2.0 * x)


def _pid_when(path: str) -> int:
    """This process's id once `path` exists (at most 120 s)."""
    deadline = time.monotonic() + 120
    while not os.path.exists(path) and time.monotonic() < deadline:
        time.sleep(0.01)
    return os.getpid()


def test_sections_start_in_order_one_a_worker_and_the_main_process_takes_what_waits(tmp_path):
    """With one worker busy, a section submitted after it waits and the main process computes it
    when it asks for the result; the worker's section is computed there, one at a time."""
    gate = str(tmp_path / "open")
    with section_pool(1) as pool:
        busy = _started(pool.submit(_pid_when, gate))
        waiting = pool.submit(_pid_when, gate)
        third = pool.submit(os.getpid)
        assert waiting.future is None and third.future is None  # the one worker is not free
        Path(gate).touch()
        assert pool.result(waiting) == os.getpid()
        worker = pool.result(busy)
        assert worker != os.getpid()
        assert pool.result(third) in (worker, os.getpid())
        assert len(pool.peak_rss_mib) == 3
