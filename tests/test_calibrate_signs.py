"""Algorithm 1: the candidate search, the selection guarantees and the signs-file round trip."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from axelsim.calibrate.calibration import calibrate_signs
from axelsim.calibrate.candidates import candidate_signs
from axelsim.calibrate.search import candidate_mse, unit_rows
from axelsim.errors import ConfigError, TraceError
from axelsim.numerics.codebook import lloyd_max_codebook
from axelsim.numerics.hadamard import SignRom, inverse_rotate_f64, sign_vector
from axelsim.numerics.reference import qdq_mse_per_candidate
from axelsim.trace import SynthSpec, Trace, synth_trace

DIM = 64


def _planted_trace(layers: int = 2, tokens: int = 96) -> Trace:
    """Keys that the default (seed 0) rotation maps onto near-one-hot vectors: a bad pattern."""
    rng = np.random.default_rng(7)
    k, q = {}, {}
    for layer in range(layers):
        spikes = np.zeros((2, tokens, DIM))
        channels = rng.integers(0, DIM, size=(2, tokens))
        np.put_along_axis(spikes, channels[..., None], 5.0, axis=-1)
        spikes += 0.05 * rng.standard_normal(spikes.shape)
        k[layer] = inverse_rotate_f64(spikes, sign_vector(0, layer, DIM))
        q[layer] = rng.standard_normal((2, 4, DIM))
    return Trace.from_arrays(k, None, q, [10, 40, 70, 95], dtype="float32")


@pytest.fixture(scope="module")
def outlier_trace() -> Trace:
    spec = SynthSpec(layers=3, kv_heads=2, q_heads=2, head_dim=DIM, tokens=128, queries=4,
                     outlier_channels=2, outlier_scale=10.0, key_bias=1.0, seed=3)
    return synth_trace(spec)


def test_candidate_mse_matches_numpy_reference():
    rng = np.random.default_rng(1)
    units = unit_rows(rng.standard_normal((50, DIM)) + 3.0 * (rng.random(DIM) > 0.9))
    signs = candidate_signs(layer=4, dim=DIM, count=6)
    for bits in (2, 3, 4):
        book = lloyd_max_codebook(DIM, bits)
        fast = candidate_mse(units, signs, book.centroids, book.boundaries)
        # the reference kernel reports per coordinate of a unit vector: ours is per vector
        oracle = qdq_mse_per_candidate(units, signs, book) * DIM
        np.testing.assert_allclose(fast, oracle, rtol=1e-9)


def test_gaussian_vectors_meet_the_codebook_distortion():
    rng = np.random.default_rng(2)
    units = unit_rows(rng.standard_normal((2000, DIM)))
    book = lloyd_max_codebook(DIM, 3)
    mse = candidate_mse(units, candidate_signs(0, DIM, 4), book.centroids, book.boundaries)
    # unit vectors of d = 64 have slightly lighter tails than N(0, 1/d): a little below D_3
    assert np.all(np.abs(mse / book.distortion - 1.0) < 0.06)


def test_zero_rows_carry_no_direction():
    rows = np.zeros((3, DIM))
    rows[1, 5] = 2.0
    units = unit_rows(rows)
    assert units.shape == (1, DIM) and units[0, 5] == 1.0


def test_candidate_zero_is_the_macro_seed_vector():
    signs = candidate_signs(layer=3, dim=DIM, count=12, seed=0, macro_seed=5)
    np.testing.assert_array_equal(signs[0], sign_vector(5, 3, DIM))
    np.testing.assert_array_equal(signs[7], sign_vector(7, 3, DIM))
    other = candidate_signs(layer=3, dim=DIM, count=12, seed=1)
    np.testing.assert_array_equal(other[1], sign_vector(13, 3, DIM))


@pytest.mark.parametrize("bits", [2, 3, 4])
def test_calibration_is_never_worse_than_the_default(outlier_trace, bits):
    result = calibrate_signs(outlier_trace, bits=bits, candidates=24, include_values=True)
    for sel in result.layers:
        assert sel.objective_after <= sel.objective_before
        default = sign_vector(0, sel.layer, DIM)
        rows = unit_rows(np.concatenate([outlier_trace.k(sel.layer), outlier_trace.v(sel.layer)], 1))
        assert sel.vectors == len(rows)
        np.testing.assert_array_equal(result.rom.vector(sel.layer), sel.signs)
        if sel.chosen == 0:
            np.testing.assert_array_equal(sel.signs, default)


def test_planted_bad_pattern_is_repaired():
    trace = _planted_trace()
    result = calibrate_signs(trace, bits=3, candidates=16, per_head=True)
    for sel in result.layers + result.heads:
        assert sel.key_mse_before > 8 * result.distortion  # one-hot after rotation: far off
        assert sel.chosen != 0
        assert sel.key_mse_after < 3 * result.distortion
    text = result.table()
    assert len(text.splitlines()) == 2 + len(result.layers) + 1


def test_signs_file_round_trips_into_the_macro_rom(tmp_path, outlier_trace):
    result = calibrate_signs(outlier_trace, bits=2, candidates=8)
    path = result.save(tmp_path / "signs.yaml")
    rom = SignRom.from_file(path)
    np.testing.assert_array_equal(rom.vectors, result.rom.vectors)
    for sel in result.layers:
        np.testing.assert_array_equal(rom.vector(sel.layer), sel.signs)
    assert "calibrate-signs" in rom.provenance


def test_layers_missing_from_the_trace_keep_the_default(outlier_trace):
    result = calibrate_signs(outlier_trace.with_selection(layers=[1]), bits=3, candidates=4)
    assert result.rom.n_layers == 3
    for layer in (0, 2):
        np.testing.assert_array_equal(result.rom.vector(layer), sign_vector(0, layer, DIM))


def test_bad_settings_are_user_errors(outlier_trace):
    with pytest.raises(ConfigError):
        calibrate_signs(outlier_trace, bits=0)
    with pytest.raises(ConfigError):
        calibrate_signs(outlier_trace, bits=3, candidates=0)
    keys_only = _planted_trace(layers=1)
    with pytest.raises(TraceError):
        calibrate_signs(keys_only, bits=3, candidates=2, include_values=True)


def test_macro_yaml_loads_the_calibrated_signs(tmp_path, outlier_trace):
    import yaml

    from axelsim.api import sign_rom
    from axelsim.config.load import load_macro

    macros = Path(__file__).resolve().parents[1] / "macros"
    result = calibrate_signs(outlier_trace, bits=3, candidates=8)
    result.save(tmp_path / "signs.yaml")
    macro = yaml.safe_load((macros / "axelram_d64.yaml").read_text())
    macro["signs"] = {"file": "signs.yaml"}
    macro["technology"] = {**macro.get("technology", {}), "file": str(macros / "tech" / "reference.yaml")}
    (tmp_path / "macro.yaml").write_text(yaml.safe_dump(macro))
    rom = sign_rom(load_macro(tmp_path / "macro.yaml"), outlier_trace)
    np.testing.assert_array_equal(rom.vectors, result.rom.vectors)


def test_paper_rule_keys_only_subset():
    """The paper's calibration: its candidate seeds under its sign rule, keys only, a sampled
    subset of at most max_vectors keys per layer; layers absent from the trace keep base_rom."""
    from axelsim.calibrate.candidates import paper_candidate_seeds
    from axelsim.numerics.hadamard import paper_sign_roms, paper_sign_vector
    from axelsim.trace import SynthSpec, synth_trace

    trace = synth_trace(SynthSpec(layers=2, kv_heads=2, q_heads=2, head_dim=16, tokens=64, queries=2))
    trace = trace.with_selection(layers=[1])
    k_rom, _ = paper_sign_roms(42, 2, 16)
    result = calibrate_signs(trace, 3, candidates=8, rule="paper", max_vectors=50, base_rom=k_rom)
    (sel,) = result.layers
    assert sel.vectors == 50 and sel.value_mse_before is None
    assert sel.chosen_seed == paper_candidate_seeds(1, 8)[sel.chosen]
    assert np.array_equal(result.rom.vector(1), paper_sign_vector(sel.chosen_seed, 16))
    assert np.array_equal(result.rom.vector(0), k_rom.vector(0))
    with pytest.raises(ConfigError, match="max_vectors"):
        calibrate_signs(trace, 3, candidates=4, max_vectors=0)


def test_include_values_table_labels_its_columns(outlier_trace):
    """keys+values: the MSE columns are the k+v objective, keys and values over the Gaussian ideal
    each in their own column (the old table printed the k+v objective beside a keys-only ratio)."""
    result = calibrate_signs(outlier_trace, bits=2, candidates=8, include_values=True)
    lines = result.table().splitlines()
    header, rows = lines[1], lines[2:-1]
    assert "k+v mse before" in header and "k x ideal" in header and "v x ideal" in header
    assert "key + value MSE" in lines[0]
    for line, sel in zip(rows, result.layers):
        fields = line.split()
        assert len(fields) == len(header.replace(" mse ", "_mse_").replace(" x ", "_x_").replace("gain %", "gain").split())
        assert float(fields[2]) == pytest.approx(sel.key_mse_before + sel.value_mse_before, abs=1e-5)
        assert fields[5].startswith(f"{sel.value_mse_before / result.distortion:.3f}")
    keys_only = calibrate_signs(outlier_trace, bits=2, candidates=8).table().splitlines()[1]
    assert "k mse before" in keys_only and "v x ideal" not in keys_only
