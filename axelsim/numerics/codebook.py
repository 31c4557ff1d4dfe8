"""The fixed Lloyd-Max codebook of the rotated coordinates and its FP16 ROM image.

The quantizer is solved for N(0, 1) in float64 (centroid and midpoint conditions met to
< 1e-11); the N(0, 1/d) codebook of the paper is the same values divided by sqrt(d). The ROM
holds the N(0, 1) values rounded to FP16 (the 1/sqrt(d) scale is folded away by the
datapath, docs/architecture.md), so one image per bit-width serves every head size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from statistics import NormalDist

import numpy as np

from axelsim.errors import ConfigError

_SQRT2 = math.sqrt(2.0)
_MAX_NEWTON_STEPS = 60


@dataclass(frozen=True)
class Codebook:
    """Lloyd-Max quantizer of N(0, 1) with 2**bits levels, for head size `dim`.

    centroids [L] and boundaries [L-1] are float64 in N(0, 1) units (divide by sqrt(dim) for
    the N(0, 1/d) coordinates of a rotated unit vector). rom_centroids / rom_boundaries are
    the FP16 ROM values (as float64). distortion is the MSE per coordinate in N(0, 1) units
    (per coordinate of a unit vector: distortion / dim). The residuals are the largest
    violations of the optimality conditions, in N(0, 1) units.
    """

    dim: int
    bits: int
    centroids: np.ndarray
    boundaries: np.ndarray
    rom_centroids: np.ndarray
    rom_boundaries: np.ndarray
    distortion: float
    centroid_residual: float
    midpoint_residual: float

    @property
    def levels(self) -> int:
        return 1 << self.bits

    @property
    def rom_bytes(self) -> int:
        """Size of the ROM image: 2 bytes per FP16 value, 2*(2L - 1) bytes (30 for b = 3)."""
        return 2 * (self.rom_centroids.size + self.rom_boundaries.size)

    def rom_image(self) -> bytes:
        """The ROM contents: the L centroids then the L-1 boundaries, FP16 little-endian."""
        values = np.concatenate([self.rom_centroids, self.rom_boundaries]).astype("<f2")
        return values.tobytes()

    def to_dict(self) -> dict:
        """A JSON-ready summary (used by `axelsim codebook --json`)."""
        scale = 1.0 / math.sqrt(self.dim)
        return {
            "dim": self.dim,
            "bits": self.bits,
            "levels": self.levels,
            "centroids_n01": self.centroids.tolist(),
            "boundaries_n01": self.boundaries.tolist(),
            "centroids_scaled": (self.centroids * scale).tolist(),
            "boundaries_scaled": (self.boundaries * scale).tolist(),
            "distortion_per_coord_n01": self.distortion,
            "distortion_per_coord_unit_vector": self.distortion / self.dim,
            "centroid_residual_n01": self.centroid_residual,
            "midpoint_residual_n01": self.midpoint_residual,
            "rom_centroids_fp16": self.rom_centroids.tolist(),
            "rom_boundaries_fp16": self.rom_boundaries.tolist(),
            "rom_image_hex": self.rom_image().hex(),
            "rom_bytes": self.rom_bytes,
        }


def _pdf(x: np.ndarray) -> np.ndarray:
    return np.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi)


def _finite_or_zero(x: np.ndarray) -> np.ndarray:
    """x with the infinite cell edges replaced by 0 (their pdf terms vanish)."""
    return np.where(np.isfinite(x), x, 0.0)


def _tail(x: np.ndarray) -> np.ndarray:
    """P(X > x) for X ~ N(0, 1), accurate in both tails."""
    return np.array([0.5 * math.erfc(v / _SQRT2) for v in x.tolist()])


def _cell_moments(centroids: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Cell edges (lo, hi), probability mass D and first moment N = E[X; cell] per cell.

    Masses are differences of upper-tail probabilities taken on the side of zero where they
    do not cancel, so the tail cells of b = 8 keep full relative precision.
    """
    mids = 0.5 * (centroids[:-1] + centroids[1:])
    lo = np.concatenate([[-np.inf], mids])
    hi = np.concatenate([mids, [np.inf]])
    upper = lo >= 0.0
    mass_pos = _tail(lo) - _tail(hi)
    mass_neg = _tail(-hi) - _tail(-lo)
    mass = np.where(upper, mass_pos, mass_neg)
    straddle = (lo < 0.0) & (hi > 0.0)
    mass = np.where(straddle, 1.0 - _tail(hi) - _tail(-lo), mass)
    first = _pdf(lo) - _pdf(hi)
    return lo, hi, mass, first


def _newton_step(centroids: np.ndarray) -> tuple[np.ndarray, float]:
    """One Newton step on F(g) = g - E[X | cell(g)]; returns the step and max |F|."""
    lo, hi, mass, first = _cell_moments(centroids)
    cond_mean = first / mass
    residual = centroids - cond_mean
    # d(cond_mean_j)/d(lo_j) = pdf(lo)(m_j - lo)/D_j ; d/d(hi_j) = pdf(hi)(hi - m_j)/D_j
    lo_f, hi_f = _finite_or_zero(lo), _finite_or_zero(hi)
    d_lo = np.where(np.isfinite(lo), _pdf(lo_f) * (cond_mean - lo_f) / mass, 0.0)
    d_hi = np.where(np.isfinite(hi), _pdf(hi_f) * (hi_f - cond_mean) / mass, 0.0)
    # The Jacobian I - d(cond_mean)/dg is tridiagonal: lo_j = (g_{j-1} + g_j)/2, hi_j = (g_j + g_{j+1})/2.
    diag = 1.0 - 0.5 * d_lo - 0.5 * d_hi
    sub = -0.5 * d_lo[1:]
    sup = -0.5 * d_hi[:-1]
    return _solve_tridiagonal(sub, diag, sup, residual), float(np.max(np.abs(residual)))


def _solve_tridiagonal(sub: np.ndarray, diag: np.ndarray, sup: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    """Thomas algorithm (no BLAS: its threads spin badly on a shared 2-core machine)."""
    n = diag.size
    c = np.zeros(n)
    r = np.zeros(n)
    pivot = diag[0]
    c[0] = sup[0] / pivot if n > 1 else 0.0
    r[0] = rhs[0] / pivot
    for i in range(1, n):
        pivot = diag[i] - sub[i - 1] * c[i - 1]
        c[i] = sup[i] / pivot if i < n - 1 else 0.0
        r[i] = (rhs[i] - sub[i - 1] * r[i - 1]) / pivot
    for i in range(n - 2, -1, -1):
        r[i] -= c[i] * r[i + 1]
    return r


def _solve_n01(levels: int) -> np.ndarray:
    """Lloyd-Max centroids of N(0, 1): damped Newton from the companding start.

    The start is the high-resolution optimum (point density proportional to pdf**(1/3),
    i.e. quantiles of N(0, 3)); Newton then meets the centroid condition to rounding error.
    """
    normal = NormalDist()
    start = [math.sqrt(3.0) * normal.inv_cdf((j + 0.5) / levels) for j in range(levels)]
    g = np.array(start)
    for _ in range(_MAX_NEWTON_STEPS):
        step, worst = _newton_step(g)
        if worst < 1e-14:
            break
        scale = 1.0
        while scale > 1e-3:
            trial = g - scale * step
            if np.all(np.diff(trial) > 0) and _newton_step(trial)[1] < worst:
                break
            scale *= 0.5
        g = g - scale * step
        g = 0.5 * (g - g[::-1])  # the optimum is symmetric; keep it exactly so
    return g


def _distortion(centroids: np.ndarray) -> float:
    """E[(X - Q(X))^2] summed cell by cell: second moment - 2 g N + g^2 D."""
    lo, hi, mass, first = _cell_moments(centroids)
    lo_t = _finite_or_zero(lo) * _pdf(_finite_or_zero(lo))
    hi_t = _finite_or_zero(hi) * _pdf(_finite_or_zero(hi))
    second = mass + lo_t - hi_t
    return float(np.sum(second - 2.0 * centroids * first + centroids**2 * mass))


def check_dim_bits(dim: int, bits: int, source: str = "codebook") -> None:
    """Raise ConfigError unless dim is a power of two in 8..1024 and bits in 1..8."""
    if not (isinstance(dim, int) and 8 <= dim <= 1024 and dim & (dim - 1) == 0):
        raise ConfigError(source, "dim", f"expected a power of two from 8 to 1024, got {dim!r}")
    if not (isinstance(bits, int) and 1 <= bits <= 8):
        raise ConfigError(source, "bits", f"expected a bit-width from 1 to 8, got {bits!r}")


@lru_cache(maxsize=None)
def _solved(bits: int) -> tuple[np.ndarray, np.ndarray, float, float, float]:
    centroids = _solve_n01(1 << bits)
    boundaries = 0.5 * (centroids[:-1] + centroids[1:])
    _, _, mass, first = _cell_moments(centroids)
    centroid_residual = float(np.max(np.abs(centroids - first / mass)))
    midpoint_residual = float(np.max(np.abs(boundaries - 0.5 * (centroids[:-1] + centroids[1:]))))
    return centroids, boundaries, _distortion(centroids), centroid_residual, midpoint_residual


@lru_cache(maxsize=None)
def lloyd_max_codebook(dim: int, bits: int) -> Codebook:
    """The fixed codebook for head size `dim` (power of two, 8..1024) and `bits` (1..8)."""
    check_dim_bits(dim, bits)
    centroids, boundaries, distortion, c_res, m_res = _solved(bits)
    for arr in (centroids, boundaries):
        arr.setflags(write=False)
    rom_c = centroids.astype(np.float16).astype(np.float64)
    rom_b = boundaries.astype(np.float16).astype(np.float64)
    for arr in (rom_c, rom_b):
        arr.setflags(write=False)
    return Codebook(dim, bits, centroids, boundaries, rom_c, rom_b, distortion, c_res, m_res)
