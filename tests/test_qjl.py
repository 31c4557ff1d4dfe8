"""QJL residual keys (axelsim.numerics.qjl): unbiasedness, an independent step-by-step
implementation bit for bit, counts against their closed form, and bad options."""

import dataclasses
import math

import numba
import numpy as np
import pytest

from axelsim.config.formats import FP16, FP32, parse_format
from axelsim.config.macro import FormatsConfig
from axelsim.errors import ConfigError
from axelsim.numerics import qjl
from axelsim.numerics.golden import NumericsSpec, write_vectors
from axelsim.numerics.hadamard import SignRom
from axelsim.numerics.fp import round_to


def _spec(d, bits, formats=None):
    return NumericsSpec.build(d, bits, SignRom.from_seed(3, 1, d), formats)


def _fp16_inputs(x):
    return np.asarray(x, dtype=np.float16).astype(np.float64)


def _with_sketch(qs, seed):
    return dataclasses.replace(qs, sketch=qjl.sketch_matrix(seed, qs.sketch_bits, qs.dim))


def test_estimator_is_unbiased_over_sketches():
    """Mean of the float64 estimator over 3,000 sketch ROMs is within 4.5 standard errors of the
    exact <q, k> (of the FP16-rounded inputs) for each of 4 pairs; without the sketch the MSE
    estimate's own bias is many standard errors away (so the test can fail)."""
    d, n_sketch = 16, 3000
    rng = np.random.default_rng(5)
    q, k = rng.standard_normal((4, d)), rng.standard_normal((4, d)) + 0.8  # a bias: MSE shrinks it
    exact = np.sum(_fp16_inputs(q) * _fp16_inputs(k), axis=1)
    spec = _spec(d, 2)  # 1-bit MSE + sketch: the largest residual
    base = qjl.QjlSpec.build(spec, d, 0)
    sketches = np.stack([qjl.sketch_matrix(s, d, d) for s in range(n_sketch)])
    est = qjl.estimate_f64(base, q, k, 0, sketches)
    se = est.std(axis=0) / math.sqrt(n_sketch)
    assert np.all(np.abs(est.mean(axis=0) - exact) <= 4.5 * se)
    # the MSE part alone (the same estimate minus its sketch term) is biased
    qs = qjl.QjlSpec.build(spec, d, 0)
    w = write_vectors(qs.keys, k, 0)
    s = qs.keys.signs.vector(0).astype(np.float64)
    from axelsim.numerics.hadamard import rotate_f64
    r = rotate_f64(_fp16_inputs(q), s) * math.sqrt(d)
    mse = np.sum(r * w.norms.astype(np.float64)[:, None] * qs.keys.codebook.rom_centroids[w.indices], axis=1) / d
    assert np.max(np.abs(mse - exact) / se) > 20


def test_golden_scores_are_unbiased_with_fp32_datapath():
    """The golden read path (fp32 table and accumulator) over 400 sketch ROMs: mean score within
    4.5 standard errors plus the roundings' bound (1e-5 relative) of the exact <q, k>."""
    d, n_sketch = 16, 400
    rng = np.random.default_rng(8)
    q, k = rng.standard_normal((1, 2, d)), rng.standard_normal((1, 3, d))
    exact = _fp16_inputs(q[0]) @ _fp16_inputs(k[0]).T
    spec = _spec(d, 3, FormatsConfig(table="fp32", accumulator="fp32"))
    got = []
    base = qjl.QjlSpec.build(spec, d, 0)
    for seed in range(n_sketch):
        qs = _with_sketch(base, seed)
        keys = qjl.write_keys(qs, k, 0)
        scores, _ = qjl.read_scores(qs, q, keys, 0, causal=False)
        got.append(scores[0])
    got = np.array(got)
    se = got.std(axis=0) / math.sqrt(n_sketch)
    assert np.all(np.abs(got.mean(axis=0) - exact) <= 4.5 * se + 1e-5 * np.abs(exact).max())


def _tree(values, fmt):
    buf = list(values)
    while len(buf) > 1:
        buf = [float(round_to(buf[2 * i] + buf[2 * i + 1], fmt)) for i in range(len(buf) // 2)]
    return buf[0]


def _fwht(u, fmt):
    u = list(u)
    h = 1
    while h < len(u):
        for j0 in range(0, len(u), 2 * h):
            for i in range(j0, j0 + h):
                a, c = u[i], u[i + h]
                u[i], u[i + h] = float(round_to(a + c, fmt)), float(round_to(a - c, fmt))
        h *= 2
    return u


def _scores_by_hand(qs, q, k):
    """Steps 1-5 of the module docstring in plain Python floats, one rounding per operation."""
    spec = qs.keys
    rot, tab, acc, sc = (spec.formats[f] for f in ("rotator", "table", "accumulator", "score"))
    d, m = spec.dim, qs.sketch_bits
    s = spec.signs.vector(0).astype(float)
    gam = spec.codebook.rom_centroids
    w_mse = write_vectors(spec, k, 0)  # the MSE write path (tested against its own oracles elsewhere)
    out = np.empty((q.shape[0], k.shape[0]))
    for a, qv in enumerate(_fp16_inputs(q)):
        r = _fwht(qv * s, rot)
        table = [[float(round_to(r[i] * gam[j] / d, tab)) for j in range(len(gam))] for i in range(d)]
        wq = []
        for j in range(m):
            u = _tree([float(round_to(qs.sketch[j, i] * r[i], rot)) for i in range(d)], rot)
            wq.append(float(round_to(u * qs.scale / d, tab)))
        for t, kv in enumerate(_fp16_inputs(k)):
            y = _fwht(kv * s, rot)
            nrm = float(w_mse.norms[t])
            idx = w_mse.indices[t]
            rho = [float(round_to(y[i] - float(round_to(nrm * gam[idx[i]], rot)), rot)) for i in range(d)]
            rn = float(round_to(math.sqrt(_tree([float(round_to(x * x, rot)) for x in rho], rot)), rot))
            rn = min(float(round_to(rn, FP16)), 65504.0)
            sign = [_tree([float(round_to(qs.sketch[j, i] * rho[i], rot)) for i in range(d)], rot) < 0 for j in range(m)]
            a_mse = _tree([float(round_to(table[i][idx[i]], acc)) for i in range(d)], acc)
            a_qjl = _tree([-wq[j] if sign[j] else wq[j] for j in range(m)], acc)
            s1 = float(round_to(a_mse * nrm, sc))
            out[a, t] = float(round_to(s1 + float(round_to(a_qjl * rn, sc)), sc))
    return out


@pytest.mark.parametrize("bits,m,formats", [(3, 16, None), (2, 8, FormatsConfig(rotator="fp16", input="fp16")),
                                            (4, 32, FormatsConfig(accumulator="fp32", score="fp16"))])
def test_golden_equals_step_by_step_implementation(bits, m, formats):
    """The numba QJL kernels equal an independent per-operation implementation bit for bit."""
    d = 16
    rng = np.random.default_rng(bits * 10 + m)
    q, k = rng.standard_normal((1, 3, d)) * 2, rng.standard_normal((1, 5, d)) * 3
    qs = qjl.QjlSpec.build(_spec(d, bits, formats), m, sketch_seed=bits)
    keys = qjl.write_keys(qs, k, 0)
    scores, _ = qjl.read_scores(qs, q, keys, 0, causal=False)
    assert np.array_equal(scores[0], _scores_by_hand(qs, q[0], k[0]))


def test_counts_equal_closed_form():
    """Write and read actions of one layer against the closed forms of the module docstring."""
    d, m, b, T, Hq, Nq = 32, 16, 3, 40, 2, 3
    rng = np.random.default_rng(1)
    k, q = rng.standard_normal((1, T, d)), rng.standard_normal((Hq, Nq, d))
    pos = np.array([9, 19, 39])
    qs = qjl.QjlSpec.build(_spec(d, b), m)
    keys = qjl.write_keys(qs, k, 0)
    L = 1 << (b - 1)
    log = 5
    w = keys.actions
    assert w["mul.fp32"] == T * (d + (L - 1)) + T * (2 * d + m * d)
    assert w["add.fp32"] == T * ((d - 1) + d * log) + T * (d + (d - 1) + m * (d - 1))
    assert w["sqrt.fp32"] == 2 * T
    _, r = qjl.read_scores(qs, q, keys, 0, pos)
    keys_read = Hq * int((pos + 1).sum())
    assert r["mul.fp16"] == Hq * Nq * (d * L + m)  # table entries + sketch entries
    assert r["table_sram.read"] == keys_read * (d + m)
    assert r["add.fp16"] == keys_read * ((d - 1) + (m - 1))
    assert r["add.fp32"] == Hq * Nq * (d * log + m * (d - 1)) + keys_read
    assert r["mul.fp32"] == Hq * Nq * m * d + 2 * keys_read


def test_row_bits_and_bad_options():
    qs = qjl.QjlSpec.build(_spec(128, 3), 128)
    assert qs.key_row_bits == 128 * 2 + 16 + 128 + 16
    assert qs.keys.bits == 2 and qs.values.bits == 3
    with pytest.raises(ConfigError, match="sketch_bits"):
        qjl.QjlSpec.build(_spec(16, 3), 12)
    with pytest.raises(ConfigError, match="b >= 2"):
        qjl.QjlSpec.build(_spec(16, 1), 16)
    a, b = qjl.sketch_matrix(1, 8, 16), qjl.sketch_matrix(1, 8, 16)
    assert np.array_equal(a, b) and np.array_equal(round_to(a, FP16), a)


def test_ablation_rows_and_prices():
    """The ablation's configurations on a tiny trace: row widths by closed form, QJL's counted
    read energy above the b-bit macro's (it adds the sketch table and tree), errors finite."""
    from pathlib import Path

    from axelsim import api
    from axelsim.calibrate.qjl_ablation import ablation_table, qjl_ablation
    from axelsim.trace import SynthSpec, synth_trace

    trace = synth_trace(SynthSpec(layers=1, kv_heads=1, q_heads=2, head_dim=16, tokens=32, queries=2))
    loaded = api.load_macro(Path(__file__).parents[1] / "macros" / "axelram_paper.yaml")
    res = qjl_ablation(loaded, trace, bits_list=(3,))
    r = res[3]
    assert r["qjl"]["key_row_bits"] == 2 * 16 + 16 + 16 + 16 and r["mse_b"]["key_row_bits"] == 3 * 16 + 16
    assert r["qjl"]["energy_pj_per_key_read"] > r["mse_b"]["energy_pj_per_key_read"] > 0
    assert r["area_um2_extra_storage_qjl_vs_mse_b"] > 0
    assert all(np.isfinite(r[c]["attn_kl"]) for c in ("mse_b", "mse_b-1", "qjl"))
    assert "QJL: 2-bit MSE + 16-bit sketch" in ablation_table(res)
