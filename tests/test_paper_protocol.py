"""The paper's protocol: its sign rule (against vectors stored from torch), separate key and
value sign ROMs, and the lower-level tie rule in the golden model and the cycle model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from axelsim.hw.macro import simulate
from axelsim.numerics.golden import NumericsSpec, golden_layer, write_vectors
from axelsim.numerics.hadamard import SignRom, paper_seed, paper_sign_roms, paper_sign_vector
from axelsim.trace.format import Trace
from test_hw_helpers import signs_for, small_macro

STORED = Path(__file__).parent / "data" / "paper_signs.yaml"


def _stored():
    data = yaml.safe_load(STORED.read_text())
    for seed, dims in data["seeds"].items():
        for dim, kinds in dims.items():
            for kind, rows in kinds.items():
                yield int(seed), int(dim), kind, np.array([[1 if c == "+" else -1 for c in row] for row in rows])


def test_paper_signs_equal_the_stored_vectors():
    """Three seeds, d = 64 and 128, keys and values of every stored layer (computed once with torch)."""
    seen = 0
    for seed, dim, kind, want in _stored():
        k_rom, v_rom = paper_sign_roms(seed, want.shape[0], dim)
        assert np.array_equal((k_rom if kind == "k" else v_rom).vectors, want)
        seen += 1
    assert seen == 12


def test_paper_signs_equal_torch_when_installed():
    torch = pytest.importorskip("torch")
    for seed in (42, 3, 99999):
        for layer in (0, 17):
            for kind in ("k", "v"):
                g = torch.Generator(device="cpu")
                g.manual_seed(paper_seed(seed, layer, kind))
                want = (torch.randint(0, 2, (128,), generator=g) * 2 - 1).numpy()
                assert np.array_equal(paper_sign_vector(paper_seed(seed, layer, kind), 128), want)


def test_paper_seed_rule_and_rom_size():
    assert paper_seed(42, 3, "k") == 3042 and paper_seed(42, 3, "v") == 503042
    k_rom, v_rom = paper_sign_roms(42, 4, 128)
    assert k_rom.rom_bytes + v_rom.rom_bytes == 4 * 32  # 32 bytes of sign ROM per layer at d = 128
    assert not np.array_equal(k_rom.vectors, v_rom.vectors)


def _tie_vectors(d: int, n: int, rng) -> np.ndarray:
    """x = c * (s ⊙ H e_0): y = H(s ⊙ x) = c d e_0, so y_i = 0 for i >= 1, exactly on the middle
    threshold (beta = 0) for an even number of levels; plus a zero vector and random vectors."""
    col = np.ones(d)
    x = rng.standard_normal((n, d))
    x[: n // 2] = rng.uniform(0.5, 2.0, (n // 2, 1)) * col
    x[0] = 0.0
    return x


@pytest.mark.parametrize("bits", [2, 3])
def test_tie_rule_in_golden(bits):
    d = 16
    signs = SignRom.from_vectors(np.ones((1, d)), "all +1")
    x = _tie_vectors(d, 6, np.random.default_rng(0))
    levels = 1 << bits
    up = write_vectors(NumericsSpec.build(d, bits, signs), x, 0)
    low = write_vectors(NumericsSpec.build(d, bits, signs, ties="lower"), x, 0)
    assert np.all(up.indices[1:3, 1:] == levels // 2) and np.all(low.indices[1:3, 1:] == levels // 2 - 1)
    assert np.all(up.indices[0] == levels - 1) and np.all(low.indices[0] == 0)  # zero vector: stores 0 either way
    assert np.array_equal(up.indices[3:], low.indices[3:])  # no ties among random vectors
    for kernel in ("generic", "fp32"):
        assert np.array_equal(write_vectors(NumericsSpec.build(d, bits, signs, ties="lower"), x, 0,
                                            kernel=kernel).indices, low.indices)


@pytest.mark.parametrize("prefill", ["simulate", "preloaded"])
def test_tie_rule_and_value_signs_cycle_model_equals_golden(prefill):
    """A macro with write_path.ties = lower: the cycle model's scores and outputs equal the golden
    model's bit for bit on a trace full of ties (both write paths: streamed and preloaded)."""
    d, bits = 16, 3
    rng = np.random.default_rng(4)
    k = {0: _tie_vectors(d, 12, rng)[None]}
    v = {0: rng.standard_normal((1, 12, d))}
    q = {0: rng.standard_normal((2, 3, d))}
    trace = Trace.from_arrays(k, v, q, [3, 7, 11])
    macro = small_macro(d, bits, write_path={"ties": "lower"})
    signs = SignRom.from_vectors(np.ones((1, d)), "all +1")
    result = simulate(macro, signs, trace, prefill=prefill)
    gold = golden_layer(NumericsSpec.from_macro(macro, signs), trace.k(0), trace.v(0), trace.q(0), trace.q_positions, 0)
    assert np.array_equal(gold.scores, result.scores[0], equal_nan=True)
    assert np.array_equal(gold.outputs, result.outputs[0])
    upper = golden_layer(NumericsSpec.from_macro(small_macro(d, bits), signs), trace.k(0), trace.v(0),
                         trace.q(0), trace.q_positions, 0)
    assert not np.array_equal(upper.k_indices, gold.k_indices)


def test_separate_value_signs_rotate_values_only():
    """With a value ROM, keys (and the query rotation) use the key ROM and values the value ROM:
    the same as two single-ROM specs, one per tensor."""
    d = 16
    rng = np.random.default_rng(2)
    k, v, q = rng.standard_normal((1, 20, d)), rng.standard_normal((1, 20, d)), rng.standard_normal((1, 2, d))
    pos = np.array([9, 19])
    k_rom, v_rom = paper_sign_roms(42, 1, d)
    both = golden_layer(NumericsSpec.build(d, 3, k_rom, value_signs=v_rom), k, v, q, pos, 0)
    only_k = golden_layer(NumericsSpec.build(d, 3, k_rom), k, v, q, pos, 0)
    only_v = golden_layer(NumericsSpec.build(d, 3, v_rom), k, v, q, pos, 0)
    assert np.array_equal(both.k_indices, only_k.k_indices) and np.array_equal(both.scores, only_k.scores, equal_nan=True)
    assert np.array_equal(both.v_indices, only_v.v_indices)
    assert not np.array_equal(both.outputs, only_k.outputs)
