"""Separate key and value sign ROMs in the cycle model (signs.rule: paper): the cycle model and the
rotating baselines bit-exact against their golden references with the value ROM, which a golden
run with the key ROM for values would not match; the ROM's size is its closed form."""

from dataclasses import replace

import numpy as np
import pytest

from axelsim.errors import ConfigError
from axelsim.hw.baselines import simulate_baseline
from axelsim.hw.macro import simulate
from axelsim.numerics.hadamard import paper_sign_roms
from axelsim.report.numerics import baseline_numerics, compare_numerics
from test_hw_helpers import random_trace, small_macro

D = 16


@pytest.fixture(scope="module")
def case():
    macro = small_macro(D, 3, signs={"rule": "paper", "seed": 42})
    trace = random_trace(9, layers=2, kv_heads=2, q_heads=4, tokens=20, q_positions=[6, 19])
    keys, values = paper_sign_roms(42, 2, D)
    return macro, trace, replace(keys, values=values), keys


def test_value_rom_differs_from_key_rom(case):
    _, _, rom, keys = case
    assert all(not np.array_equal(rom.values.vector(L), keys.vector(L)) for L in (0, 1))


@pytest.mark.parametrize("fidelity, prefill", [("burst", "simulate"), ("key", "simulate"), ("burst", "preloaded")])
def test_cycle_model_bit_exact_with_separate_value_rom(case, fidelity, prefill):
    macro, trace, rom, keys = case
    res = simulate(macro, rom, trace, fidelity=fidelity, prefill=prefill)
    assert compare_numerics(macro, rom, trace, res.scores, res.outputs)["bit_exact"]
    # the values really went through the value ROM: the key ROM's golden outputs differ
    shared = compare_numerics(macro, keys, trace, res.scores, res.outputs)
    assert shared["bit_exact_scores"] and not shared["bit_exact_outputs"]


@pytest.mark.parametrize("kind", ["dequant_rotated", "dequant_inverse_rotate"])
def test_rotating_baselines_bit_exact_with_separate_value_rom(case, kind):
    macro, trace, rom, keys = case
    res = simulate_baseline(kind, macro, trace, rom)
    assert baseline_numerics(kind, macro, rom, trace, res.scores, res.outputs)["bit_exact"]
    assert not baseline_numerics(kind, macro, keys, trace, res.scores, res.outputs)["bit_exact_outputs"]


def test_sign_rom_holds_two_vectors_per_layer(case):
    from axelsim.cost.model import axelram_units, baseline_memory_bytes

    macro, _, _, _ = case
    layers = 5
    assert axelram_units(macro, layers)["sign_rom"].memory.words == 2 * layers
    assert baseline_memory_bytes("dequant_rotated", macro, layers, 2, 8)["sign_rom"] == 2 * layers * D / 8
    single = small_macro(D, 3)
    assert axelram_units(single, layers)["sign_rom"].memory.words == layers


def test_paper_rule_with_a_signs_file_is_refused():
    with pytest.raises((ConfigError, ValueError), match="rule"):
        small_macro(D, 3, signs={"rule": "paper", "file": "s.yaml"})
