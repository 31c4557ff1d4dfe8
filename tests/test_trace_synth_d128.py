"""The shipped d = 128 synthetic trace: labelled synthetic, the real trace's per-layer statistics,
reproducible from its script, and the documented commands that need it work."""

from pathlib import Path

import numpy as np

from axelsim.trace import load_trace
from axelsim.trace.synth import synth_like
from cli_helpers import run_main

ROOT = Path(__file__).resolve().parents[1]
REAL = ROOT / "traces" / "smollm2_austen_full.safetensors"
SYNTH = ROOT / "traces" / "synth_d128_smollm2stats.safetensors"
LAYERS = [0, 10, 20, 29]


def test_shipped_synthetic_trace_is_labelled_small_and_reproducible():
    shipped = load_trace(SYNTH)
    assert shipped.head_dim == 128 and shipped.layer_indices == LAYERS
    assert shipped.model.startswith("synthetic:") and shipped.meta["synthetic"] == "true"
    real = load_trace(REAL)
    assert real.digest() in shipped.meta["statistics_of"]
    assert SYNTH.stat().st_size < 4_000_000
    assert "synthetic" in (ROOT / "traces" / "README.md").read_text().lower()
    again = synth_like(real, head_dim=128, layers=LAYERS, seed=0)
    for layer in LAYERS:
        for get in ("k", "v", "q"):
            assert np.array_equal(getattr(again, get)(layer), getattr(shipped, get)(layer))


def test_per_layer_norms_and_channel_variances_follow_the_real_trace():
    real, synth = load_trace(REAL), load_trace(SYNTH)
    for layer in LAYERS:
        for get in ("k", "v", "q"):
            r, s = getattr(real, get)(layer).astype(np.float64), getattr(synth, get)(layer).astype(np.float64)
            r_norm, s_norm = np.linalg.norm(r, axis=-1).mean(), np.linalg.norm(s, axis=-1).mean()
            assert abs(s_norm / r_norm - 1) < 0.1, (layer, get, s_norm, r_norm)
        # channel c of d = 128 has real channel c // 2's variance, halved (norm kept)
        r_var = real.k(layer).astype(np.float64).var(axis=1)
        s_var = synth.k(layer).astype(np.float64).var(axis=1)
        expected = r_var[:, np.arange(128) // 2] / 2
        assert np.corrcoef(np.log(s_var.ravel() + 1e-9), np.log(expected.ravel() + 1e-9))[0, 1] > 0.95


def test_synth_like_refuses_an_unrelated_head_size():
    status = None
    try:
        synth_like(load_trace(REAL), head_dim=96)
    except Exception as error:  # TraceError, one line naming head_dim
        status = str(error)
    assert status is not None and "head_dim" in status and "\n" not in status


def test_paper_macro_runs_on_the_shipped_d128_trace():
    status, out, err = run_main(["run", ROOT / "macros" / "axelram_paper.yaml", "--trace", SYNTH,
                                 "--layers", "0", "--heads", "0", "--queries", "2", "--quiet"])
    assert status == 0, err
    assert "bit_exact YES" in out and "d=128" in out


def test_compare_example_of_the_help_runs(tmp_path):
    """`compare macros/axelram_b*.yaml macros/axelram_paper.yaml --trace <d=128 trace>` (its --help):
    head_dim auto macros bind to the trace; a small selection keeps it fast."""
    macros = sorted((ROOT / "macros").glob("axelram_b*.yaml")) + [ROOT / "macros" / "axelram_paper.yaml"]
    status, out, err = run_main(["compare", *macros, "--trace", SYNTH, "--layers", "0", "--heads", "0",
                                 "--queries", "2", "--quiet"])
    assert status == 0, err
    assert all(name in out for name in ("axelram_b2", "axelram_b4", "axelram_paper"))
    status, out, _ = run_main(["compare", "--help"])
    assert "macros/axelram_b*.yaml macros/axelram_paper.yaml --trace traces/synth_d128_smollm2stats.safetensors" in out
