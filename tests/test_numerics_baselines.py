"""The baselines' golden references (axelsim.numerics.baselines): each fast float32-lane route
bit for bit against the straightforward one it replaces (the token-order loop, the float64
route) on random and adversarial data: cancellations, mixed magnitudes, signed zeros, inf, NaN,
jobs of different lengths and KV heads, several blocks of tokens."""

from types import SimpleNamespace

import numpy as np
import pytest

from axelsim.config.formats import FP16, FP32
from axelsim.numerics import baselines as bl
from axelsim.numerics import nparith as ar
from test_numerics_fp import same_bits

pytestmark = pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning",
                                        "ignore:invalid value encountered:RuntimeWarning")

D, T, KV = 8, 37, 3


def _spec():
    """The parts of a NumericsSpec the value accumulation reads."""
    return SimpleNamespace(formats={"value": FP32, "softmax": FP32}, dim=D)


def _jobs(rng) -> bl._Jobs:
    """Jobs of every length 0..T (a zero-key job too) on shuffled KV heads."""
    keys = np.concatenate([[0, T, 1, T], rng.integers(0, T + 1, 8)])
    return bl._Jobs(rng.integers(0, KV, keys.size).astype(np.int64), keys.astype(np.int64))


def _adversarial(rng, shape, specials: bool) -> np.ndarray:
    """fp32 values of every magnitude, exact cancellations (x then -x), signed zeros, and
    with `specials` inf and NaN."""
    x = rng.standard_normal(shape) * 10.0 ** rng.integers(-30, 30, shape)
    x = np.where(rng.random(shape) < 0.15, -np.roll(x, 1, axis=-2), x)  # cancels its predecessor
    x = np.where(rng.random(shape) < 0.05, -0.0, x)
    x = np.where(rng.random(shape) < 0.05, 0.0, x)
    if specials:
        x = np.where(rng.random(shape) < 0.01, rng.choice([np.inf, -np.inf, np.nan], shape), x)
    return x.astype(np.float32)


@pytest.mark.parametrize("specials", [False, True])
def test_native_accumulation_equals_the_token_loop(specials):
    rng = np.random.default_rng(11 + specials)
    jobs = _jobs(rng)
    w = _adversarial(rng, (jobs.keys.size, T), specials)
    x = _adversarial(rng, (KV, T, D), specials)
    x[:, :3] = -0.0  # every job's first products -0.0 (w > 0 there): the +0.0 start must show
    w[:, :3] = np.abs(w[:, :3]) + np.float32(1.0)
    w[:, 3] = 0.0
    spec = _spec()
    loop = bl._accumulate(spec, None, jobs, lambda act, t: w[act, t], lambda act, t: x[jobs.kv[act], t], False)
    native = bl._accumulate_native(w, jobs, x)
    assert native.dtype == loop.dtype == np.float64
    assert np.array_equal(native.view(np.uint64), loop.view(np.uint64))  # NaN payloads and zero signs too
    assert np.all(native[jobs.keys == 0].view(np.uint64) == 0)  # +0.0 without keys


def test_native_values_equal_the_float64_route(monkeypatch):
    """_values with a per-job split between two vector sources (KIVI's window), float32 lanes,
    against the same function forced onto the float64 token loop (exact products of fp32 and FP16
    values, each rounded once to fp32)."""
    rng = np.random.default_rng(13)
    jobs = _jobs(rng)
    e = ar.rnd(np.abs(_adversarial(rng, (jobs.keys.size, T), False)).astype(np.float64), FP32)
    e[np.arange(T)[None, :] >= jobs.keys[:, None]] = 0.0
    total = np.abs(rng.standard_normal(jobs.keys.size)) + 0.5
    quant = ar.rnd(rng.standard_normal((KV, T, D)) * 10.0 ** rng.integers(-6, 4, (KV, T, D)), FP16)
    window = ar.rnd(rng.standard_normal((KV, T, D)), FP16)
    split = np.maximum(jobs.keys - 5, 0)
    spec = _spec()
    fast = bl._values(spec, e, total, quant, window, jobs, split, FP16)
    monkeypatch.setattr(bl, "_lane_type", lambda *args: np.float64)
    slow = bl._values(spec, e, total, quant, window, jobs, split, FP16)
    assert same_bits(fast, slow)


@pytest.mark.parametrize("fmt", [FP16, FP32])
def test_running_sum_in_native_lanes_equals_exact_rounding_token_by_token(fmt):
    """E = rnd_F(E + e_t) in token order against the numerics.fp kernel's correctly rounded add,
    one Python float at a time: rows that overflow FP16, that stay subnormal, that hold NaN and
    zeros past a row's keys."""
    from axelsim.numerics.fp import add_round, format_code, round_to

    rng = np.random.default_rng(5)
    e = round_to(rng.uniform(0.0, 1.0, (6, 300)) * np.array([[1], [1e-6], [1000], [1], [1], [2e-8]]), fmt)
    e[3, 17] = np.nan
    e[4, 200:] = 0.0
    code = format_code(fmt)
    expected = np.zeros(6)
    for r in range(6):
        for t in range(250):
            expected[r] = add_round(expected[r], float(e[r, t]), code)
    got = bl.running_sum(e, 250, fmt)
    assert same_bits(got, expected)
    assert np.isinf(got[2]) == (fmt == FP16) and np.isnan(got[3])
