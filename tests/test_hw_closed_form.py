"""One query through the shipped paper macro with its derived (technology) timing: total cycles
equal the closed form fill + steady state + drain of docs/cycle_model.md, with the derived
SRAM read latency, exp latency and bin adder latency; key mode equals burst mode."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from axelsim.config import LoadedMacro, load_macro
from axelsim.cost import CostModel
from axelsim.hw.macro import simulate
from test_hw_helpers import random_trace, signs_for

ROOT = Path(__file__).resolve().parents[1]


def _paper_at(clock_hz: float) -> LoadedMacro:
    paper = load_macro(ROOT / "macros" / "axelram_paper.yaml")
    return LoadedMacro(paper.config.model_copy(update={"clock_hz": clock_hz}), paper.path, None, paper.tech_path)


@pytest.mark.parametrize("clock_hz", [1e9, 4e9])
def test_one_query_is_fill_plus_steady_state_plus_drain(clock_hz):
    loaded = _paper_at(clock_hz)
    macro = loaded.config
    t = CostModel.from_macro(loaded).timing()
    assert all(t.source[k] == "derived" for k in ("read_latency_cycles", "exp_latency_cycles",
                                                  "bin_adder_latency_cycles", "bank_ii_cycles"))
    R, E, A = t.read_latency_cycles, t.exp_latency_cycles, t.bin_adder_latency_cycles
    assert R >= 2 and E == 8 * t.softmax_add_cycles + 7 * t.softmax_mul_cycles + 1 >= 16  # not 1-cycle ideal
    assert t.bank_ii_cycles <= macro.sram.banks  # token-interleaved keys never wait for a bank
    n, d, L = 64, 128, 8
    log2d = 7
    # the paper macro's lanes (d = 128, b = 3): rotator log2 d, table d L / 128, one key per cycle
    precompute = log2d + d * L // 128
    score_fill = R + 1 + log2d + 1 + 1  # index read, table lookup, adder tree, norm multiply, scale
    value_ii = max(1, A)  # one running-sum accumulator (P = 1): each key waits A on E
    value_fill = R + E + 1 + A  # index read, exp, weight multiply + bin read-modify-write
    drain = d * L // 128 + log2d + (4 + d // 128)  # centroids, inverse FWHT, output scale
    expect = precompute + (score_fill + (n - 1)) + (value_fill + (n - 1) * value_ii) + drain
    trace = random_trace(11, tokens=n, d=d)
    signs = signs_for(1, d)
    burst = simulate(macro, signs, trace, prefill="preloaded", timing=t)
    assert burst.cycles["total"] == expect
    assert burst.cycles["precompute"] == precompute and burst.cycles["read"] == score_fill + n - 1
    stalls = burst.unit_stats["value_unit"]["stall_causes"].get("bin_hazard", 0)
    assert stalls == (n - 1) * (value_ii - 1)
    if clock_hz > 3.9e9:
        assert A == 2 and stalls == n - 1  # the hazard shows at 4 GHz
    key = simulate(macro, signs, trace, prefill="preloaded", fidelity="key", timing=t)
    assert key.cycles == burst.cycles and key.ops == burst.ops
    assert {u: s["stall_causes"] for u, s in key.unit_stats.items()} == \
        {u: s["stall_causes"] for u, s in burst.unit_stats.items()}
    for layer in burst.outputs:
        assert (key.outputs[layer] == burst.outputs[layer]).all()
    assert math.isclose(burst.time_s, expect / clock_hz)


@pytest.mark.parametrize("clock_hz,lanes", [(1e9, 32), (4e9, 64)])
def test_bins_on_fewer_lanes_than_coordinates(clock_hz, lanes):
    # bin_lanes < d: each key's d bin updates take C = d / lanes lane groups after the weight
    # register, so the bins stage holds a key C cycles (II) and its last sum is back 1 + (C - 1) + A
    # cycles after entry (the RTL twin's Bins: 1 + C at A = 1)
    loaded = _paper_at(clock_hz)
    value = loaded.config.value_path.model_copy(update={"bin_lanes": lanes})
    macro = loaded.config.model_copy(update={"value_path": value})
    t = CostModel.from_macro(LoadedMacro(macro, loaded.path, None, loaded.tech_path)).timing()
    R, E, A = t.read_latency_cycles, t.exp_latency_cycles, t.bin_adder_latency_cycles
    n, d, L, log2d = 48, 128, 8, 7
    C = d // lanes
    assert C >= A  # the lanes, not the adder, set the pace: no key waits on a bin
    precompute = log2d + d * L // 128
    score_fill = R + 1 + log2d + 1 + 1
    value_fill = R + E + 1 + (C - 1) + A  # index read, exp, weight register, lane groups, adder
    drain = d * L // 128 + log2d + (4 + d // 128)
    expect = precompute + (score_fill + (n - 1)) + (value_fill + (n - 1) * C) + drain
    trace = random_trace(12, tokens=n, d=d)
    signs = signs_for(1, d)
    burst = simulate(macro, signs, trace, prefill="preloaded", timing=t)
    assert burst.cycles["total"] == expect
    assert "bin_hazard" not in burst.unit_stats["value_unit"]["stall_causes"]
    key = simulate(macro, signs, trace, prefill="preloaded", fidelity="key", timing=t)
    assert key.cycles == burst.cycles and key.ops == burst.ops
    for layer in burst.outputs:
        assert (key.outputs[layer] == burst.outputs[layer]).all()


def _decode_point(loaded: LoadedMacro, n: int):
    from axelsim import api
    from axelsim.trace import SynthSpec, synth_trace

    trace = synth_trace(SynthSpec(layers=1, kv_heads=1, q_heads=1, head_dim=128, tokens=n, query_positions=[n - 1],
                                  seed=1))
    t = CostModel.from_macro(loaded).timing()
    signs = api.sign_rom(loaded, trace)
    written = simulate(loaded.config, signs, trace, prefill="simulate", timing=t)
    preloaded = simulate(loaded.config, signs, trace, prefill="preloaded", timing=t)
    return written.cycles["total"] - preloaded.cycles["total"], written.decode_cycles[0], t


def test_write_port_rate_and_the_decode_step_backlog_of_the_balanced_macro():
    # Writes of n tokens back to back, then one query at n - 1. Per token the write units take
    # 2 x unit II; the index SRAM's write port takes bank_ii + 1: K and V of a token share a bank
    # (token-interleaved map), V waits bank_ii cycles for K and the port issues in order. The
    # slower of the two sets the write rate. The decode step runs from the last token entering
    # the norm unit to its query's end: the query adds 2 cycles per key (score + value stream),
    # and when the port is the slower one the last token also waits behind the backlog of the
    # earlier tokens' rows, (port - units) cycles per earlier token.
    from axelsim.hw import norm_unit, quantizer, rotator
    from axelsim.hw.sram import AddressMap

    for name, units_per_token, port_per_token in (("paper", 14, 3), ("balanced", 2, 3)):
        loaded = load_macro(ROOT / "macros" / f"axelram_{name}.yaml")
        m = loaded.config
        unit_ii = max(norm_unit.norm_timing(m)[1], rotator.rotator_timing(m)[1], quantizer.quantizer_timing(m)[1])
        assert 2 * unit_ii == units_per_token
        amap = AddressMap(m, 1, 1, 64, "test")
        assert (amap.locate(0, 0, np.arange(64), 0)[0] == amap.locate(0, 0, np.arange(64), 1)[0]).all()
        (w32, step32, t), (w64, step64, _) = _decode_point(loaded, 32), _decode_point(loaded, 64)
        assert t.bank_ii_cycles + 1 == port_per_token
        rate = max(units_per_token, port_per_token)
        assert w64 - w32 == 32 * rate
        backlog = rate - units_per_token
        assert step64 - step32 == 32 * (2 + backlog)
