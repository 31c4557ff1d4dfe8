"""The fixed Lloyd-Max codebook: golden values, optimality by independent quadrature, ROM."""

import json
import math

import numpy as np
import pytest

from axelsim.errors import ConfigError
from axelsim.numerics.codebook import lloyd_max_codebook


_NODES, _WEIGHTS = np.polynomial.legendre.leggauss(200)


def _cell_stats_by_quadrature(lo: float, hi: float) -> tuple[float, float, float]:
    """(P, E[X; cell], E[X^2; cell]) for N(0,1) by 200-point Gauss-Legendre (tails cut at +-12)."""
    lo, hi = max(lo, -12.0), min(hi, 12.0)
    x = 0.5 * (hi - lo) * _NODES + 0.5 * (hi + lo)
    w = 0.5 * (hi - lo) * _WEIGHTS * np.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)
    return float(w.sum()), float((w * x).sum()), float((w * x * x).sum())


def _edges(cb):
    return np.concatenate([[-np.inf], cb.boundaries]), np.concatenate([cb.boundaries, [np.inf]])


def test_three_bit_golden_values():
    cb = lloyd_max_codebook(128, 3)
    np.testing.assert_allclose(cb.centroids, [-2.1519, -1.3439, -0.7560, -0.2451, 0.2451, 0.7560, 1.3439, 2.1519], atol=1e-4)
    np.testing.assert_allclose(cb.boundaries, [-1.7479, -1.0500, -0.5005, 0.0, 0.5005, 1.0500, 1.7479], atol=1e-4)
    assert abs(cb.distortion - 0.03455) < 1e-5
    assert cb.rom_bytes == 30 and len(cb.rom_image()) == 30


def test_one_bit_closed_form():
    cb = lloyd_max_codebook(64, 1)
    c = math.sqrt(2 / math.pi)
    np.testing.assert_allclose(cb.centroids, [-c, c], rtol=0, atol=1e-14)
    assert abs(cb.distortion - (1 - 2 / math.pi)) < 1e-14


@pytest.mark.parametrize("bits", range(1, 9))
def test_optimality_conditions_hold_by_independent_quadrature(bits):
    cb = lloyd_max_codebook(128, bits)
    lo, hi = _edges(cb)
    stats = np.array([_cell_stats_by_quadrature(a, b) for a, b in zip(lo, hi)])
    mass, first, second = stats.T
    centroid_residual = np.max(np.abs(cb.centroids - first / mass))
    midpoint_residual = np.max(np.abs(cb.boundaries - 0.5 * (cb.centroids[:-1] + cb.centroids[1:])))
    assert centroid_residual < 1e-11 and midpoint_residual < 1e-11
    assert cb.centroid_residual < 1e-11 and cb.midpoint_residual < 1e-11
    distortion = np.sum(second - 2 * cb.centroids * first + cb.centroids**2 * mass)
    assert abs(distortion - cb.distortion) < 1e-12
    assert np.all(np.diff(cb.centroids) > 0) and np.array_equal(cb.centroids, -cb.centroids[::-1])


@pytest.mark.parametrize("bits", [1, 2, 4, 8])
def test_rom_image_is_the_fp16_values_centroids_then_boundaries(bits):
    cb = lloyd_max_codebook(256, bits)
    levels = 1 << bits
    image = cb.rom_image()
    assert len(image) == cb.rom_bytes == 2 * (2 * levels - 1)
    decoded = np.frombuffer(image, dtype="<f2").astype(np.float64)
    np.testing.assert_array_equal(decoded[:levels], cb.centroids.astype(np.float16))
    np.testing.assert_array_equal(decoded[levels:], cb.boundaries.astype(np.float16))
    assert np.max(np.abs(cb.rom_centroids - cb.centroids) / np.abs(cb.centroids)) <= 2.0**-11


def test_codebook_is_shared_across_dims_and_dict_is_json():
    a, b = lloyd_max_codebook(8, 3), lloyd_max_codebook(1024, 3)
    assert a.rom_image() == b.rom_image()
    info = json.loads(json.dumps(b.to_dict()))
    assert info["rom_bytes"] == 30 and info["distortion_per_coord_unit_vector"] == pytest.approx(0.03455 / 1024, rel=1e-3)
    np.testing.assert_allclose(info["centroids_scaled"], np.array(info["centroids_n01"]) / 32, rtol=1e-15)


@pytest.mark.parametrize("dim, bits, key", [(100, 3, "dim"), (4, 3, "dim"), (2048, 3, "dim"), (128, 0, "bits"), (128, 9, "bits")])
def test_bad_dim_or_bits_raise_config_error(dim, bits, key):
    with pytest.raises(ConfigError) as err:
        lloyd_max_codebook(dim, bits)
    assert err.value.where == key and "expected" in err.value.expected
