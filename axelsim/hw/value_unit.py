"""Value unit: softmax (scale, max, exp, running sum), rotated-domain bins, centroid multiply,
inverse FWHT and the output scaling, exactly as docs/architecture.md specifies.

Timing (cycles), G = query heads served per key (GQA shared read), per key:
  scale+max (in the score stream's tail): latency 1, II = G;
  exp: latency `timing.exp_latency_cycles` (its pipelined chain, cost.tiles.EXP_STAGE_OPS),
  II = ceil(G / exp_units);
  weight + bins: the weight multiply (one register), then the G d bin read-modify-writes on
  `bin_lanes` adders over C = ceil(G d / bin_lanes) cycles, the last group written back A
  cycles after it issues (A = timing.bin_adder_latency_cycles): latency 1 + (C - 1) + A = C + A,
  II = C (the RTL twin's schedule, axelsim/rtl/value.py `Bins`: 1 + C at A = 1), and a key
  waits while a bin it updates (or its running-sum partial) is still in an earlier key's
  read-modify-write (`BinHazard`); a job's first key (it clears the bins: the pipeline holds one
  set) enters no earlier than the cycle after the previous job's last head entered the centroid
  stage, which takes the bins (`bins_released`, the RTL twin's interlock);
per query head (finalisation): with P > 1 partial accumulators the merge (P - 1 passes),
centroids II = latency = ceil(d L / centroid_multipliers); inverse FWHT as the rotator with
`inverse_fwht_butterflies`; output scaling latency DIV_LATENCY + ceil(d / centroid_multipliers),
II = ceil(d / centroid_multipliers).
"""

from __future__ import annotations

from typing import Optional

import numba
import numpy as np

from axelsim.config.formats import FP16, NumberFormat
from axelsim.config.macro import MacroConfig
from axelsim.cost.tiles import SramTiming, exp_latency_cycles
from axelsim.hw import arith
from axelsim.hw.datapath import fwht
from axelsim.hw.rotator import fwht_timing

EXP_LATENCY = exp_latency_cycles(1, 1)
"""The exp stage at one cycle per FP operation (the ideal timing; runs use the derived one)."""
DIV_LATENCY = 4


def bins_ii(macro: MacroConfig, heads: int) -> int:
    """Cycles between keys at the bins stage: G d bin updates over `bin_lanes` lanes."""
    return -(-heads * macro.head_dim // macro.value_path.bin_lanes)


def bins_latency(macro: MacroConfig, heads: int, adder_cycles: int) -> int:
    """Cycles from a key entering the weights + bins stage to its last bin written back: the
    weight register (1), the remaining C - 1 lane groups (C = bins_ii), the adder (A)."""
    return bins_ii(macro, heads) + adder_cycles


def stream_timing(macro: MacroConfig, heads: int, timing: Optional[SramTiming] = None) -> list[tuple[str, int, int]]:
    """[(stage, latency, II)] of the per-key value stream after the index read (timing None: ideal)."""
    vp = macro.value_path
    timing = timing or SramTiming.ideal(macro)
    return [("exp", timing.exp_latency_cycles, -(-heads // vp.exp_units)),
            ("bins", bins_latency(macro, heads, timing.bin_adder_latency_cycles), bins_ii(macro, heads))]


def bins_released(centroid_start: int) -> int:
    """The first cycle the next job's first key may enter the bins (it clears them), given the
    cycle this job's last query head entered the centroid stage, which takes the bins then:
    the cycle after (the RTL twin's interlock counts the centroid stage's grant, a register,
    axelsim/rtl/controller.py)."""
    return centroid_start + 1


def merge_timing(macro: MacroConfig, timing: SramTiming) -> tuple[int, int]:
    """(latency, II) of merging P partial accumulators of one head (P > 1): P - 1 passes over
    the d L bins (only E's P partials unless bin_hazard is partial) on the bin lanes, each pass
    c = ceil(items / bin_lanes) cycles; a pass starts once the previous one's first sum is back
    (A cycles), so passes are q = max(c, A) apart: II = (P - 1) q, latency (P - 2) q + c + A."""
    vp = macro.value_path
    passes = vp.partial_accumulators - 1
    items = 1 + (macro.head_dim * macro.levels if vp.bin_partials() > 1 else 0)
    c = -(-items // vp.bin_lanes)
    a = timing.bin_adder_latency_cycles
    q = max(c, a)
    return (passes - 1) * q + c + a, passes * q


def finalize_timing(macro: MacroConfig, timing: Optional[SramTiming] = None) -> list[tuple[str, int, int]]:
    """[(stage, latency, II)] of the per-head finalisation (timing None: ideal)."""
    vp, d = macro.value_path, macro.head_dim
    timing = timing or SramTiming.ideal(macro)
    centroid = -(-d * macro.levels // vp.centroid_multipliers)
    inv_lat, inv_ii = fwht_timing(d, vp.inverse_fwht_butterflies)
    scale = -(-d // vp.centroid_multipliers)
    merge = [("merge", *merge_timing(macro, timing))] if vp.partial_accumulators > 1 else []
    return merge + [("centroids", centroid, centroid), ("inverse_fwht", inv_lat, inv_ii),
                    ("output_scale", DIV_LATENCY + scale, scale)]


@numba.njit(cache=True, nogil=True)
def _hazard_issue(k, want, idx, latency, last_bins, last_sum):
    """Issue cycle of key k wanting `want`: no earlier than A cycles after the last issue of
    each bin it updates (its copy k mod P_b) and of its running-sum partial (k mod P_E)."""
    pb = k % last_bins.shape[0]
    ps = k % last_sum.shape[0]
    ready = last_sum[ps] + latency
    for i in range(idx.shape[1]):
        r = last_bins[pb, i, idx[k, i]] + latency
        if r > ready:
            ready = r
    slot = want if want >= ready else ready
    last_sum[ps] = slot
    for i in range(idx.shape[1]):
        last_bins[pb, i, idx[k, i]] = slot
    return slot


@numba.njit(cache=True, nogil=True)
def _hazard_run(arrive, ii, free_at, idx, latency, last_bins, last_sum, out):
    prev = free_at - ii
    waited = 0
    for k in range(arrive.size):
        want = max(arrive[k], prev + ii, free_at)
        slot = _hazard_issue(k, want, idx, latency, last_bins, last_sum)
        waited += slot - want
        out[k] = slot
        prev = slot
    return waited


class BinHazard:
    """Read-after-write hazards of one value stream's bin read-modify-writes, in the calendar
    interface of a bank stage (pipeline.Stage: `reserve_run` in burst mode, `reserve_one` per
    key in key mode; the stage's `bank_ids` are the key numbers).

    Key k updates bin (i, idx[k, i]) of copy k mod P_b for every coordinate i, and running-sum
    partial k mod P_E; it issues no earlier than `latency` cycles after the last key that
    updated any of them (the sum is written back `latency` cycles after issue). Coordinates
    spread over lanes keep one offset per coordinate in every key, so the offsets cancel.
    """

    def __init__(self, idx: np.ndarray, levels: int, latency: int, bin_partials: int, sum_partials: int):
        self.idx = np.ascontiguousarray(idx, dtype=np.uint8)
        self.latency = int(latency)
        never = np.iinfo(np.int64).min // 2
        self.last_bins = np.full((bin_partials, self.idx.shape[1], levels), never, dtype=np.int64)
        self.last_sum = np.full(sum_partials, never, dtype=np.int64)

    def reserve_run(self, arrive: np.ndarray, ii: int, free_at: int, ids: np.ndarray) -> tuple[np.ndarray, int]:
        out = np.empty(arrive.size, dtype=np.int64)
        waited = _hazard_run(arrive.astype(np.int64), int(ii), int(free_at), self.idx, self.latency,
                             self.last_bins, self.last_sum, out)
        return out, int(waited)

    def reserve_one(self, key: int, want: int) -> int:
        return int(_hazard_issue(int(key), int(want), self.idx, self.latency, self.last_bins, self.last_sum))


def hazards_possible(macro: MacroConfig, heads: int, timing: SramTiming) -> bool:
    """Whether any key can wait: a bin copy (or sum partial) is revisited sooner than A cycles."""
    vp = macro.value_path
    return min(vp.bin_partials(), vp.sum_partials()) * bins_ii(macro, heads) < timing.bin_adder_latency_cycles


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


def merge_partials(fmt: NumberFormat, parts: np.ndarray) -> np.ndarray:
    """Partial accumulators [h, P, ...] merged left to right: rnd(rnd(p0 + p1) + p2) ..."""
    acc = parts[:, 0]
    for p in range(1, parts.shape[1]):
        acc = arith.add(fmt, acc, parts[:, p])
    return acc


def finalize(value_fmt: NumberFormat, soft_fmt: NumberFormat, bin_parts: np.ndarray, sum_parts: np.ndarray,
             centroids_rom: np.ndarray, signs: np.ndarray) -> np.ndarray:
    """Outputs [h, d] from partial bins [h, P_b, d, L] and running-sum partials [h, P_E]."""
    v = value_fmt
    bins = merge_partials(v, bin_parts)
    total = merge_partials(soft_fmt, sum_parts)
    acc = arith.mul(v, bins[..., 0], v, centroids_rom[0], FP16)
    for j in range(1, bins.shape[-1]):
        acc = arith.add(v, acc, arith.mul(v, bins[..., j], v, centroids_rom[j], FP16))
    u = fwht(v, acc)
    d = bins.shape[1]
    scaled_sum = arith.rnd(v, total * d)  # E * d, d a power of two: exact product, one rounding
    g = arith.div_one_by(v, scaled_sum)
    return arith.mul(v, u * signs[None, :], v, g[:, None], v)
