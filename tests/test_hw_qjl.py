"""The QJL residual macro (`residual: qjl`) in the cycle model: bit-exact against the golden QJL
model (axelsim.numerics.qjl, separate code), a flipped stored sketch bit breaks it, counts
against closed forms, per-item initiation intervals against a plain recurrence, the cost
model's inventory, and bad options."""

from __future__ import annotations

import numpy as np
import pytest

from axelsim.config.load import macro_from_dict
from axelsim.cost.model import axelram_units, baseline_units
from axelsim.errors import ConfigError
from axelsim.hw import qjl as hq
from axelsim.hw.macro import simulate
from axelsim.hw.pipeline import Stage, run_burst
from axelsim.numerics.golden import NumericsSpec
from axelsim.numerics.qjl import QjlSpec, qjl_layer
from axelsim.report.numerics import same_bits
from test_hw_helpers import random_trace, signs_for, small_macro


def _qjl_macro(d=16, bits=3, m=16, rows=1, **sections):
    base = small_macro(d, bits, **sections)
    return base.model_copy(update={"residual": "qjl", "qjl": base.qjl.model_copy(
        update={"sketch_bits": m, "projection_rows_per_cycle": rows, "seed": 5})})


def _golden(macro, signs, trace, layer):
    qs = QjlSpec.build(NumericsSpec.from_macro(macro, signs), macro.qjl.sketch_bits, macro.qjl.seed)
    v = trace.v(layer) if trace.has_values else None
    return qjl_layer(qs, trace.k(layer), v, trace.q(layer), trace.q_positions, layer)


@pytest.mark.parametrize("d,bits,m,prefill", [(16, 3, 16, "simulate"), (32, 2, 8, "preloaded"),
                                              (16, 4, 32, "simulate")])
def test_bit_exact_against_golden_qjl(d, bits, m, prefill):
    """Scores and outputs of the cycle model equal the golden QJL model bit for bit (GQA,
    two layers, causal queries), and differ from the plain b-bit macro's."""
    macro = _qjl_macro(d, bits, m)
    trace = random_trace(7, layers=2, kv_heads=2, q_heads=4, tokens=11, d=d, q_positions=[0, 4, 10])
    signs = signs_for(2, d)
    result = simulate(macro, signs, trace, prefill=prefill)
    plain = simulate(macro.without_residual(), signs, trace, prefill=prefill)
    for layer in (0, 1):
        gold = _golden(macro, signs, trace, layer)
        assert same_bits(result.scores[layer], gold.scores)
        assert same_bits(result.outputs[layer], gold.outputs)
        assert not same_bits(result.scores[layer], plain.scores[layer])


def _corrupted(monkeypatch, seed, tokens, key, bit):
    """(cycle-model scores, golden scores) of layer 0 with stored bit `bit(machine)` of key `key`
    inverted before the first query is served."""
    macro = _qjl_macro(16, 3, 16)
    trace = random_trace(seed, tokens=tokens, d=16)
    signs = signs_for(1, 16)
    original = hq.QjlMachine.query_job

    def corrupt_then_serve(self, slot, layer, kv_head, *args, **kwargs):
        bank, row = self.amap.locate(slot, kv_head, key, 0)
        self.sram.flip_bit(int(bank), int(row), bit(self))
        return original(self, slot, layer, kv_head, *args, **kwargs)

    monkeypatch.setattr(hq.QjlMachine, "query_job", corrupt_then_serve)
    return simulate(macro, signs, trace).scores[0], _golden(macro, signs, trace, 0).scores


def test_flipped_sketch_bit_breaks_bit_exactness(monkeypatch):
    """Inverting one stored sign bit of key 2 changes that key's scores only."""
    found, gold = _corrupted(monkeypatch, 4, 6, 2, lambda mach: mach.sketch_offset + 3)
    assert not same_bits(found[..., 2], gold[..., 2])
    keep = [0, 1, 3, 4, 5]
    assert same_bits(found[..., keep], gold[..., keep])


def test_flipped_residual_norm_bit_breaks_bit_exactness(monkeypatch):
    """Inverting the top mantissa bit of key 1's stored residual norm changes that key's score."""
    found, gold = _corrupted(monkeypatch, 6, 5, 1, lambda mach: mach.sketch_offset + mach.macro.sketch_bits + 9)
    assert not same_bits(found[..., 1], gold[..., 1])
    assert same_bits(found[..., [0, 2, 3, 4]], gold[..., [0, 2, 3, 4]])


def test_counts_equal_closed_forms():
    """Projector, residual, accumulator and row traffic against the trace's shape: every key
    written is projected once (m d products), every query head served once, every scored key
    gets m - 1 accumulator adds."""
    d, m, bits = 16, 8, 3
    macro = _qjl_macro(d, bits, m)
    kv_heads, q_heads, tokens, positions = 2, 4, 9, [3, 8]
    trace = random_trace(2, kv_heads=kv_heads, q_heads=q_heads, tokens=tokens, d=d, q_positions=positions)
    res = simulate(macro, signs_for(1, d), trace)
    keys_written = kv_heads * (max(positions) + 1)
    queries = q_heads * len(positions)
    scored = q_heads * sum(p + 1 for p in positions)
    a = res.actions
    assert a["qjl_projector"]["mul.fp32"] == (keys_written + queries) * m * d
    assert a["qjl_projector"]["add.fp32"] == (keys_written + queries) * m * (d - 1)
    assert a["qjl_projector"]["mul.fp16"] == queries * m
    assert a["sketch_rom"]["read"] == (keys_written + queries) * m * d
    assert a["qjl_residual"] == {"mul.fp32": keys_written * 2 * d, "add.fp32": keys_written * (2 * d - 1),
                                 "sqrt.fp32": keys_written}
    assert a["qjl_accumulator"] == {"add.fp16": scored * (m - 1), "mul.fp32": scored, "add.fp32": scored}
    assert a["table_generator"]["mul.fp16"] == queries * d * (1 << (bits - 1))
    # the quantizer compares keys against 2^(b-1) - 1 thresholds, values against 2^b - 1
    assert a["quantizer"]["cmp.fp32"] == keys_written * d * ((1 << (bits - 1)) - 1) + keys_written * d * ((1 << bits) - 1)
    assert res.ops["sram_write_bits"]["total"] == 2 * keys_written * macro.row_bits
    assert macro.row_bits == (bits - 1) * d + 16 + m + 16


def test_per_item_intervals_follow_the_recurrence():
    """run_burst with per-item IIs equals start_i = max(arrive_i, start_{i-1} + II_{i-1}, free)."""
    rng = np.random.default_rng(1)
    ready = np.sort(rng.integers(0, 50, 40)).astype(np.int64)
    iis = rng.integers(1, 9, 40).astype(np.int64)
    timing = run_burst(ready, [Stage("u", 3, 1, free_at=7, iis=iis)])
    expect, prev = [], None
    for i in range(ready.size):
        s = max(ready[i], 7 if prev is None else prev + iis[i - 1])
        expect.append(s)
        prev = s
    assert timing.start[0].tolist() == expect


def test_write_stream_values_bypass_the_projector():
    """One position, one KV head: the key holds the projector m / R cycles, the value behind it one."""
    m, rows = 16, 2
    macro = _qjl_macro(16, 3, m, rows)
    trace = random_trace(3, tokens=1, d=16)
    res = simulate(macro, signs_for(1, 16), trace)
    stats = res.unit_stats["qjl_projector"]
    # busy: the key's m / R cycles (write), the value's 1, the query's m / R (precompute)
    assert stats["busy_cycles"] == m // rows + 1 + m // rows


def test_cost_inventory_and_baselines():
    """The QJL units are priced; the table holds 2^(b-1) levels; the baselines are the plain
    b-bit designs whatever the macro's residual."""
    macro = _qjl_macro(16, 3, 32, 2)
    units = axelram_units(macro, 1)
    assert units["sketch_rom"].memory.bits == 32 * 16 * 16
    assert units["index_sram"].memory.word_bits == 2 * 16 + 16 + 32 + 16
    assert units["table_sram"].memory.bits == 16 * 4 * 16
    assert units["qjl_projector"].resources["mul.fp32"] == 2 * 16
    assert units["qjl_accumulator"].resources["add.fp16"] == 31
    plain = macro.without_residual()
    assert plain.row_bits == 3 * 16 + 16
    for kind in ("fp16", "dequant_rotated", "kivi", "dequant_inverse_rotate"):
        assert baseline_units(kind, macro, 1) == baseline_units(kind, plain, 1)


@pytest.mark.parametrize("update,key", [
    ({"bits": 1}, "bits"),
    ({"qjl": {"sketch_bits": 24}}, "qjl.sketch_bits"),
    ({"qjl": {"sketch_bits": 16, "projection_rows_per_cycle": 3}}, "qjl.projection_rows_per_cycle"),
    ({"sram": {"row_bits": 400}}, "sram.row_bits"),
    ({"residual": "qjll"}, "residual"),
])
def test_bad_qjl_options_name_the_key(update, key):
    data = {"head_dim": 128, "bits": 3, "residual": "qjl", **update}
    with pytest.raises(ConfigError) as err:
        macro_from_dict(data, "m.yaml")
    line = err.value.line()
    assert key in line and "\n" not in line


def test_per_item_intervals_are_refused_in_key_mode():
    from axelsim.hw.pipeline import run_keys

    with pytest.raises(ValueError):
        run_keys(np.zeros(3, dtype=np.int64), [Stage("u", 1, 1, iis=np.ones(3, dtype=np.int64))])


def test_key_fidelity_is_refused_for_qjl_macros(tmp_path):
    """A QJL macro is timed by the closed form only; asking for key fidelity is one line, exit 2."""
    from axelsim.cli import main
    from fuzz_helpers import fixture_folder

    root = fixture_folder(tmp_path, macro="axelram_qjl", macro_name="m.yaml", trace_name="t.safetensors",
                          layers=(0,), tokens=12, dim=16, positions=(5, 11))
    code = main(["run", str(root / "m.yaml"), "--trace", str(root / "t.safetensors"), "--fidelity", "key",
                 "--quiet", "--json", str(tmp_path / "r.json")])
    assert code == 2 and not (tmp_path / "r.json").exists()


def test_cycle_ablation_on_a_tiny_trace(tmp_path):
    """The cycle-model ablation: every variant bit-exact and prefill-independent, row widths by
    closed form, QJL units priced only in the QJL variant, the b-bit code's score error below
    the (b-1)-bit one's, and the table lists the three rows."""
    from axelsim import api
    from axelsim.calibrate.qjl_ablation import cycle_ablation, cycle_table
    from fuzz_helpers import fixture_folder

    root = fixture_folder(tmp_path, macro="axelram_qjl", macro_name="m.yaml", trace_name="t.safetensors",
                          layers=(0,), tokens=12, dim=16, positions=(5, 11))
    trace = api.load_trace(root / "t.safetensors")
    res = cycle_ablation(root / "m.yaml", trace, bits_list=(3,))[3]
    assert all(r["bit_exact"] and r["prefill_independent"] for r in res.values())
    assert (res["mse_b"]["row_bits"], res["mse_b-1"]["row_bits"], res["qjl"]["row_bits"]) == (64, 48, 2 * 16 + 32 + 16)
    assert res["qjl"]["area_um2_qjl_units"] > 0 and res["mse_b"]["area_um2_qjl_units"] == 0
    assert res["mse_b"]["score_rel_rmse"] < res["mse_b-1"]["score_rel_rmse"]
    assert res["qjl"]["write_dynamic_pj_per_vector"] > res["mse_b"]["write_dynamic_pj_per_vector"]
    assert "QJL: 2-bit MSE + 16-bit sketch" in cycle_table({3: res})


def test_chip_and_rtl_refuse_qjl_keys(tmp_path):
    """The chip's golden split/merge and the RTL twin implement MSE keys only: one line naming the key."""
    from pathlib import Path

    from axelsim.config.chip import load_chip
    from axelsim.config.load import load_macro
    from axelsim.rtl.compare import resolved_macro

    root = Path(__file__).resolve().parents[1]
    with pytest.raises(ConfigError) as err:
        load_chip(root / "chips" / "axelram_d64.yaml", {"macro.residual": "qjl"})
    assert "macro.residual" in err.value.line()
    with pytest.raises(ConfigError) as err:
        resolved_macro(load_macro(root / "macros" / "rtl" / "axelram_d16.yaml", {"residual": "qjl"}))
    assert "residual" in err.value.line()


@pytest.mark.parametrize("formats", [
    {"table": "fp32", "accumulator": "fp32"},
    {"rotator": "fixed24.12"},
    {"input": "fixed16.8", "rotator": "fixed28.14", "table": "fixed20.12", "accumulator": "fixed24.14",
     "score": "fixed28.12"},
])
def test_bit_exact_with_other_formats(formats):
    """Fixed-point and wider formats: the cycle model's QJL datapath still equals the golden model."""
    from axelsim.config.macro import FormatsConfig

    macro = _qjl_macro(16, 3, 16).model_copy(update={"formats": FormatsConfig(**formats)})
    trace = random_trace(9, layers=1, kv_heads=2, q_heads=2, tokens=9, d=16, q_positions=[3, 8])
    signs = signs_for(1, 16)
    result = simulate(macro, signs, trace)
    gold = _golden(macro, signs, trace, 0)
    assert same_bits(result.scores[0], gold.scores) and same_bits(result.outputs[0], gold.outputs)


@pytest.mark.parametrize("sections", [
    {"read_path": {"gqa_shared_read": True}},
    {"read_path": {"pipelines": 2}},
    {"sram": {"rows_per_bank": 2, "overflow": "spill", "banks": 2}},
    {"value_path": {"bin_hazard": "partial", "partial_accumulators": 2}},
    {"signs": {"rule": "paper", "seed": 42}},
])
def test_bit_exact_across_macro_options(sections):
    """Shared GQA reads, two pipelines, spilled rows, partial accumulators, separate value signs."""
    from dataclasses import replace

    from axelsim.numerics.hadamard import paper_sign_roms

    macro = _qjl_macro(16, 3, 16, **sections)
    trace = random_trace(11, layers=1, kv_heads=2, q_heads=4, tokens=9, d=16, q_positions=[3, 8])
    if macro.signs.rule == "paper":
        keys, values = paper_sign_roms(42, 1, 16)
        signs = replace(keys, values=values)
    else:
        signs = signs_for(1, 16)
    result = simulate(macro, signs, trace)
    gold = _golden(macro, signs, trace, 0)
    assert same_bits(result.scores[0], gold.scores) and same_bits(result.outputs[0], gold.outputs)


@pytest.mark.parametrize("m,rows", [(16, 1), (32, 4)])
def test_one_query_latency_adds_the_projector_and_the_accumulator(m, rows):
    """One preloaded key, one query, no value path, one-cycle SRAM: the QJL macro's run is the
    plain macro's plus the projector's latency on the precompute (m / R + log2 d + 1) and the
    accumulator's on the read (ceil(log2 m) + 2)."""
    from axelsim.cost.tiles import SramTiming

    d = 16
    macro = _qjl_macro(d, 3, m, rows, value_path={"enabled": False})
    trace = random_trace(1, tokens=1, d=d, values=False)
    signs = signs_for(1, d)
    cycles = [simulate(mac, signs, trace, prefill="preloaded", timing=SramTiming.ideal(mac)).cycles["total"]
              for mac in (macro, macro.without_residual())]
    assert cycles[0] - cycles[1] == (m // rows + 4 + 1) + ((m - 1).bit_length() + 2)
