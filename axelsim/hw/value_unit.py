"""Value unit: softmax (scale, max, exp, running sum), rotated-domain bins, centroid multiply,
inverse FWHT and the output scaling, exactly as docs/architecture.md specifies.

Timing (cycles), G = query heads served per key (GQA shared read), per key:
  scale+max (in the score stream's tail): latency 1, II = G;
  exp: latency EXP_LATENCY, II = ceil(G / exp_units);
  weight + bins: latency 2, II = ceil(G d / bin_lanes);
per query head (finalisation): centroids II = latency = ceil(d L / centroid_multipliers);
inverse FWHT as the rotator with `inverse_fwht_butterflies`; output scaling latency
DIV_LATENCY + ceil(d / centroid_multipliers), II = ceil(d / centroid_multipliers).
"""

from __future__ import annotations

import numpy as np

from axelsim.config.formats import FP16, NumberFormat
from axelsim.config.macro import MacroConfig
from axelsim.hw import arith
from axelsim.hw.datapath import fwht
from axelsim.hw.rotator import fwht_timing

EXP_LATENCY = 4
DIV_LATENCY = 4


def stream_timing(macro: MacroConfig, heads: int) -> list[tuple[str, int, int]]:
    """[(stage, latency, II)] of the per-key value stream after the index read."""
    vp = macro.value_path
    return [("exp", EXP_LATENCY, -(-heads // vp.exp_units)),
            ("bins", 2, -(-heads * macro.head_dim // vp.bin_lanes))]


def finalize_timing(macro: MacroConfig) -> list[tuple[str, int, int]]:
    """[(stage, latency, II)] of the per-head finalisation."""
    vp, d = macro.value_path, macro.head_dim
    centroid = -(-d * macro.levels // vp.centroid_multipliers)
    inv_lat, inv_ii = fwht_timing(d, vp.inverse_fwht_butterflies)
    scale = -(-d // vp.centroid_multipliers)
    return [("centroids", centroid, centroid), ("inverse_fwht", inv_lat, inv_ii),
            ("output_scale", DIV_LATENCY + scale, scale)]


class Softmax:
    """Scale, max and exp in format S; sigma = rnd_S(1/sqrt(d))."""

    def __init__(self, fmt: NumberFormat, dim: int):
        self.fmt = fmt
        self.sigma = float(arith.rnd(fmt, 1.0 / np.sqrt(dim)))
        self.exp = arith.ExpUnit(fmt)

    def scale(self, score: np.ndarray, score_fmt: NumberFormat) -> np.ndarray:
        """z_t = rnd_S(score_t * sigma)."""
        return arith.mul(self.fmt, score, score_fmt, self.sigma, self.fmt)

    def exps(self, z: np.ndarray, m: np.ndarray) -> np.ndarray:
        """e_t = exp_S(rnd_S(z_t - m)); z [..., n], m [..., 1]."""
        return self.exp(arith.sub(self.fmt, z, m))


def weights(value_fmt: NumberFormat, soft_fmt: NumberFormat, e: np.ndarray, norms: np.ndarray) -> np.ndarray:
    """w_t = rnd_V(e_t * norm_v_t); e [h, n], norms [n]."""
    return arith.mul(value_fmt, e, soft_fmt, norms[None, :], FP16)


def finalize(value_fmt: NumberFormat, soft_fmt: NumberFormat, bins: np.ndarray, total: np.ndarray,
             centroids_rom: np.ndarray, signs: np.ndarray) -> np.ndarray:
    """Outputs [h, d] from bins [h, d, L] and running sums E [h]."""
    v = value_fmt
    acc = arith.mul(v, bins[..., 0], v, centroids_rom[0], FP16)
    for j in range(1, bins.shape[-1]):
        acc = arith.add(v, acc, arith.mul(v, bins[..., j], v, centroids_rom[j], FP16))
    u = fwht(v, acc)
    d = bins.shape[1]
    scaled_sum = arith.rnd(v, total * d)  # E * d, d a power of two: exact product, one rounding
    g = arith.div_one_by(v, scaled_sum)
    return arith.mul(v, u * signs[None, :], v, g[:, None], v)
