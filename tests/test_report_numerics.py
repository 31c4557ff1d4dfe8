"""The numerics section: bit_exact really compares bits, metrics come from the float64 reference."""

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from axelsim.config import load_macro
from axelsim.numerics.golden import NumericsSpec, golden_layer
from axelsim.numerics.hadamard import SignRom
from axelsim.report.numerics import bit_width_study, bits_digest, compare_numerics, same_bits
from axelsim.trace import SynthSpec, synth_trace

MACRO = Path(__file__).resolve().parents[1] / "macros" / "axelram_d64.yaml"


@pytest.fixture(scope="module")
def setup():
    config = load_macro(MACRO).config
    trace = synth_trace(SynthSpec(layers=2, kv_heads=1, q_heads=3, head_dim=64, tokens=48, queries=3))
    signs = SignRom.from_seed(0, 2, 64)
    spec = NumericsSpec.from_macro(config, signs)
    golden = {L: golden_layer(spec, trace.k(L), trace.v(L), trace.q(L), trace.q_positions, L) for L in trace.layer_indices}
    return config, trace, signs, golden


def test_same_bits_is_strict():
    a = np.array([1.0, np.nan, 0.0, -2.5])
    assert same_bits(a, a.copy())
    assert not same_bits(a, np.array([1.0, np.nan, -0.0, -2.5]))  # the sign of zero is a bit
    assert not same_bits(a, np.array([np.nextafter(1.0, 2.0), np.nan, 0.0, -2.5]))  # one ulp
    assert not same_bits(a, np.array([1.0, 3.0, 0.0, -2.5]))  # NaN moved
    assert not same_bits(a, a[:3]) and same_bits(None, None) and not same_bits(a, None)
    quiet_other = np.array([0x7FF8000000000123], dtype=np.uint64).view(np.float64)[0]
    assert same_bits(a, np.array([1.0, quiet_other, 0.0, -2.5]))  # a NaN is a NaN, whatever its payload
    assert not same_bits(np.array([np.nan, 1.0]), np.array([1.0, np.nan]))  # NaN on either side only


_SPECIAL_BITS = [0, 1 << 63, 0x7FF8000000000000, 0x7FF8000000000123, 0xFFF0000000000001, 0x7FF0000000000000,
                 0x3FF0000000000000, 0x3FF0000000000001, 1]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(_SPECIAL_BITS), min_size=0, max_size=6), st.lists(st.sampled_from(_SPECIAL_BITS),
       min_size=0, max_size=6), st.booleans(), st.booleans())
def test_equal_digests_exactly_when_same_bits(a_bits, b_bits, a_float32, b_as_column):
    """bits_digest is the verdict of same_bits without the other array: NaN payloads and signs
    alike, the sign of zero, one ulp, shapes and float32 input (widened exactly) as same_bits
    decides them."""
    a = np.array(a_bits, dtype=np.uint64).view(np.float64)
    b = np.array(b_bits, dtype=np.uint64).view(np.float64)
    if a_float32:
        with np.errstate(invalid="ignore", over="ignore", under="ignore"):
            a = a.astype(np.float32)
    if b_as_column:
        b = b.reshape(-1, 1)
    for x, y in ((a, b), (a, a.astype(np.float64)), (b, b.copy()), (a, None), (None, None)):
        assert (bits_digest(x) == bits_digest(y)) == same_bits(x, y)


def test_golden_against_itself_is_bit_exact(setup):
    config, trace, signs, golden = setup
    section = compare_numerics(config, signs, trace, {L: g.scores for L, g in golden.items()},
                               {L: g.outputs for L, g in golden.items()})
    assert section["bit_exact"] and set(section["layers"]) == {"0", "1"}
    assert 0 < section["score_rel_rmse"] < 0.5 and 0 < section["output_rel_rmse"] < 0.5
    assert 0 <= section["top1_agreement"] <= 1 and section["attn_kl"] >= 0


def test_one_changed_score_breaks_bit_exact_in_that_layer(setup):
    config, trace, signs, golden = setup
    scores = {L: g.scores.copy() for L, g in golden.items()}
    finite = np.flatnonzero(~np.isnan(scores[1]))
    scores[1].flat[finite[0]] = np.nextafter(scores[1].flat[finite[0]], np.inf)
    section = compare_numerics(config, signs, trace, scores, {L: g.outputs for L, g in golden.items()})
    assert not section["bit_exact"] and not section["bit_exact_scores"] and section["bit_exact_outputs"]
    assert section["layers"]["0"]["bit_exact"] and not section["layers"]["1"]["bit_exact"]


def test_error_falls_with_bit_width(setup):
    config, trace, signs, _ = setup
    study = bit_width_study(config, signs, trace, (2, 3, 4))
    errors = [study[b]["score_rel_rmse"] for b in ("2", "3", "4")]
    assert errors[0] > errors[1] > errors[2] > 0


def test_shared_references_are_filled_then_reused(setup):
    config, trace, signs, golden = setup
    scores, outputs = {L: g.scores for L, g in golden.items()}, {L: g.outputs for L, g in golden.items()}
    references: dict = {}
    alone = compare_numerics(config, signs, trace, scores, outputs)
    shared = compare_numerics(config, signs, trace, scores, outputs, references)
    assert shared == alone and set(references) == {(0, True), (1, True)}
    exact = references[(1, True)]
    references[(1, True)] = dataclasses.replace(exact, scores=exact.scores * 2.0)  # a stored entry is what is read
    assert compare_numerics(config, signs, trace, scores, outputs, references)["layers"]["1"] != alone["layers"]["1"]
