"""The chip: mapping, events, split-softmax merge, replication, the report and its bad inputs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import simpy
import yaml

from axelsim import api
from axelsim.chip.instance import ShareData, ShareRunner
from axelsim.chip.merge import MergeUnit, instance_stats, merge_cycles
from axelsim.chip.models import load_model, shipped_models
from axelsim.chip.network import Channel, Network, htree_lengths
from axelsim.chip.plan import make_plan
from axelsim.chip.simulate import Workload, run_design, simulate_chip
from axelsim.chip.step import INPUT_BITS
from axelsim.config.chip import InterconnectConfig, load_chip
from axelsim.config.formats import parse_format
from axelsim.errors import ConfigError
from axelsim.numerics.hadamard import SignRom
from axelsim.numerics.merge import merge_partials, partial_stats
from axelsim.trace import SynthSpec, save_trace, synth_trace
from tests.cli_helpers import run_main

REPO = Path(__file__).resolve().parents[1]
D64 = REPO / "macros" / "axelram_d64.yaml"
TRACE = REPO / "traces" / "smollm2_austen_full.safetensors"


def _chip(tmp_path: Path, rows: int = 16, **keys) -> Path:
    """A chip of d = 64 macros holding rows_per_bank x 16 rows (K and V: 8 x rows tokens)."""
    doc = {"name": "test_chip", "macro": {"file": str(D64), "overrides": {"sram.rows_per_bank": rows}}}
    for key, value in keys.items():
        node = doc
        parts = key.split("__")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    path = tmp_path / f"chip_{len(list(tmp_path.glob('chip_*')))}.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def _model(tmp_path: Path, layers=2, q=4, kv=2, d=64) -> str:
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"num_hidden_layers": layers, "num_attention_heads": q, "num_key_value_heads": kv,
                                "head_dim": d}))
    return str(path)


# ---- model shapes ------------------------------------------------------------------------------
def test_shipped_models_match_their_published_configs():
    shapes = {name: load_model(name) for name in shipped_models()}
    got = {name: (s.layers, s.q_heads, s.kv_heads, s.head_dim) for name, s in shapes.items()}
    assert got == {"Llama-3.1-8B": (32, 32, 8, 128), "Qwen2.5-3B": (36, 16, 2, 128),
                   "Qwen3-8B": (36, 32, 8, 128), "SmolLM2-135M": (30, 9, 3, 64)}
    assert all("huggingface.co" in s.source for s in shapes.values())
    assert load_model("llama-3.1-8b").name == "Llama-3.1-8B"


def test_local_config_json_head_dim_from_hidden_size(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"num_hidden_layers": 3, "num_attention_heads": 8, "hidden_size": 512}))
    shape = load_model(str(path))
    assert (shape.layers, shape.q_heads, shape.kv_heads, shape.head_dim) == (3, 8, 8, 64)


# ---- the merge: two implementations, bit for bit -------------------------------------------------
def test_merge_unit_equals_golden_merge_bit_for_bit_and_counts_its_operations():
    rng = np.random.default_rng(3)
    fp32 = parse_format("fp32")
    heads, parts, d = 5, 4, 64
    scores = [rng.standard_normal((heads, 37)) * 8 for _ in range(parts)]
    outs = rng.standard_normal((heads, parts, d))
    hw = [instance_stats(s, d, fp32, fp32) for s in scores]
    gold = [partial_stats(s, d, fp32) for s in scores]
    for (m1, e1), (m2, e2) in zip(hw, gold):
        assert np.array_equal(m1, m2) and np.array_equal(e1, e2)
    m = np.stack([x for x, _ in hw], axis=1)
    e = np.stack([x for _, x in hw], axis=1)
    unit = MergeUnit(fp32, fp32, lanes=16)
    merged = unit.merge(m, e, outs)
    golden = merge_partials(m, e, outs, fp32, fp32)
    assert np.array_equal(merged.view(np.uint64), golden.view(np.uint64))
    S = parts
    assert dict(unit.actions) == {"cmp.fp32": heads * (S - 1), "exp.fp32": heads * S,
                                  "add.fp32": heads * (S + S - 1) + heads * d * (S - 1),
                                  "mul.fp32": heads * S + heads * d * S + heads * d, "div.fp32": heads}
    # the merge is the softmax over the union: close to the float64 softmax output of the joint range
    full = np.concatenate(scores, axis=1) / np.sqrt(d)
    weights = [np.exp(s / np.sqrt(d) - full.max(axis=1, keepdims=True)) for s in scores]
    exact = sum(w.sum(axis=1)[:, None] * outs[:, i] for i, w in enumerate(weights)) / sum(w.sum(axis=1) for w in weights)[:, None]
    assert np.max(np.abs(merged - exact)) < 1e-5
    # 4 S of max/weights, the exp stage (one cycle per FP op of its chain), S vectors, division, scaling
    assert merge_cycles(4, 64, 16, 16) == 16 + 16 + 16 + 4 + 4


def test_token_split_is_bit_exact_through_the_chip(tmp_path):
    chip = _chip(tmp_path, rows=16, mapping={"kind": "token_split", "split": 3})
    view = api.select(api.load_trace(TRACE), layers=[0, 5])
    report = api.chip(chip, trace=view, baselines=False)
    assert report["mapping"]["split"] == 3
    assert report["decode"]["merges"] == 2 * 9
    assert report["numerics"]["bit_exact"] is True
    unsplit = api.chip(_chip(tmp_path, rows=512, mapping={"kind": "head_parallel"}), trace=view, baselines=False)
    assert unsplit["numerics"]["bit_exact"] is True
    # the split changes the arithmetic (rounding), not the attention: outputs within the same error
    assert abs(report["numerics"]["output_rel_rmse"] - unsplit["numerics"]["output_rel_rmse"]) < 1e-3
    assert report["numerics"]["score_rel_rmse"] == unsplit["numerics"]["score_rel_rmse"]


# ---- one instance, one head == axelsim run -------------------------------------------------------
def test_one_instance_one_head_equals_axelsim_run(tmp_path):
    spec = SynthSpec(layers=1, kv_heads=1, q_heads=1, head_dim=64, tokens=96, queries=1, seed=5)
    trace_path = save_trace(synth_trace(spec), tmp_path / "one.safetensors")
    chip = load_chip(_chip(tmp_path, rows=16, mapping={"kind": "head_parallel"}))
    workload = Workload.from_trace(api.load_trace(trace_path))
    plan = make_plan(chip.config, chip.macro.config, workload.shape, workload.context, 1, "test")
    assert plan.instances == 1 and len(plan.shares) == 1
    design = run_design("axelram", chip, workload, plan)
    (result,), _ = design["_results"][0].values(), None
    run = api.simulate(chip.macro, trace_path, baselines=False)
    assert result.prefill_cycles + result.service_cycles == run["cycles"]["total"]
    from axelsim.chip.simulate import _Pricer, _cost

    price = _Pricer(_cost("axelram", chip.macro))
    assert price(result.prefill_actions) + price(result.service_actions) == pytest.approx(
        run["energy_pj"]["dynamic_total"], rel=1e-12)
    assert design["instance"]["area_mm2"] == pytest.approx(run["area_um2"]["total"] * 1e-6, rel=1e-12)


# ---- closed-form latency, uncontended ------------------------------------------------------------
def test_uncontended_head_parallel_latency_closed_form(tmp_path):
    chip = load_chip(_chip(tmp_path, rows=64, mapping={"kind": "head_parallel"},
                           interconnect={"topology": "mesh", "link_bits": 64, "hop_latency_cycles": 3},
                           host={"bandwidth_gb_s": 16.0}))
    shape = load_model(_model(tmp_path, layers=3, q=2, kv=1, d=64))
    workload = Workload.from_model(shape, 100, 1)
    plan = make_plan(chip.config, chip.macro.config, shape, 100, 1, "test")
    assert plan.instances == 1  # three layers' heads fit one instance: served one after another
    design = run_design("axelram", chip, workload, plan)
    results = design["_results"][0]
    d, G = 64, 2
    host_bpc = 16.0 * 8e9 / chip.macro.config.clock_hz
    flits = lambda bits: -(-bits // 64)  # noqa: E731
    expected = 0
    for share in plan.shares:
        r = results[share.index]
        expected += -(-(G * d * 16 + 2 * d * 16) // host_bpc)                     # host in
        expected += 1 * 3 + flits(G * d * 16 + 2 * d * 16)                          # one hop down (port)
        expected += r.write_cycles + r.service_cycles                             # the instance
        expected += 1 * 3 + flits(G * d * 32)                                       # one hop up
        expected += -(-(G * d * 32) // host_bpc)                                  # host out
    assert design["decode"]["latency_cycles"] == expected
    assert design["decode"]["layer_end_cycles"][-1] == expected


# ---- interconnect contention, by hand ------------------------------------------------------------
@pytest.mark.parametrize("topology, first, second", [("mesh", 3, 5), ("bus", 3, 5), ("htree", 4, 6)])
def test_interconnect_contention_hand_case(topology, first, second):
    """Two 512-bit transfers (2 flits of 256) from instances 0 and 1 of 4, ready at 0, hop latency 1.

    mesh (2 x 2): instance 0 takes the port at 0 (held 0..2), arrives 0 + 1 + 2 = 3; instance 1
    crosses its x link (0..1), finds the port held until 2, takes it at 2, arrives 2 + 1 + 2 = 5.
    bus: one link for both: 3, then 2 + 1 + 2 = 5.
    htree (2 levels, both leaves under one depth-1 edge): instance 0 leaf edge at 0, depth-1 edge
    at 1 (held 1..3), arrives 1 + 1 + 2 = 4; instance 1 waits for that edge until 3: 3 + 1 + 2 = 6.
    """
    env = simpy.Environment()
    net = Network(env, InterconnectConfig(topology=topology, link_bits=256, hop_latency_cycles=1), 4, 1.0)
    done = {}

    def send(i):
        yield env.process(net.transfer(i, 512, True, "x"))
        done[i] = env.now

    env.process(send(0))
    env.process(send(1))
    env.run()
    assert (done[0], done[1]) == (first, second)
    assert net.traffic.bits == 1024


def test_htree_lengths_and_channel():
    assert htree_lengths(2, 1.0) == [0.5, 0.5]
    assert htree_lengths(4, 1.0) == [1.0, 1.0, 0.5, 0.5]
    env = simpy.Environment()
    channel = Channel(env, bits_per_cycle=100.0, latency_cycles=7)
    ends = []

    def go():
        yield env.process(channel.transfer(250))
        ends.append(env.now)

    env.process(go())
    env.process(go())
    env.run()
    assert ends == [3 + 7, 6 + 7]


# ---- auto holds the KV cache exactly; fewer instances stream ------------------------------------
def test_auto_holds_the_kv_cache_exactly(tmp_path):
    shape = load_model(_model(tmp_path, layers=3, q=4, kv=2, d=64))
    chip = load_chip(_chip(tmp_path, rows=16, mapping={"kind": "token_split", "split": "auto"}))
    cap = 16 * 16 // 2
    for context in (100, 128, 129, 500):
        plan = make_plan(chip.config, chip.macro.config, shape, context, 2, "test")
        assert plan.split == -(-context // cap)
        held = {}
        for share in plan.shares:
            held[share.instance] = held.get(share.instance, 0) + share.tokens
            assert not share.streamed
        assert max(held.values()) <= plan.capacity_tokens
        assert sum(held.values()) == 3 * 2 * 2 * context
        # one instance fewer cannot hold it: some share streams from off-chip
        fewer = load_chip(_chip(tmp_path, rows=16, instances=plan.instances - 1,
                                     mapping={"kind": "token_split", "split": "auto"})) if plan.instances > 1 else None
        if fewer is not None:
            smaller = make_plan(fewer.config, fewer.macro.config, shape, context, 2, "test")
            assert any(share.streamed for share in smaller.shares)


def test_streamed_shares_cost_offchip_time_and_energy(tmp_path):
    model = _model(tmp_path, layers=2, q=2, kv=2, d=64)
    full = api.chip(_chip(tmp_path, rows=16, mapping={"kind": "head_parallel"}), model=model, context=128,
                    baselines=False)
    assert full["instances"] == 4 and full["mapping"]["streamed_shares"] == 0
    half = api.chip(_chip(tmp_path, rows=16, mapping={"kind": "head_parallel"}, instances=2), model=model,
                    context=128, baselines=False)
    # each instance holds one range and is given two: it pins none and streams both through its slot
    assert half["mapping"]["streamed_shares"] == 4
    rows = 4 * 128 * 2
    assert half["decode"]["traffic_bits"]["offchip"] == rows * (64 * 3 + 16)
    assert half["decode"]["energy_j_per_token_by_component"]["offchip"] > 0
    assert half["decode"]["latency_cycles"] > full["decode"]["latency_cycles"]


# ---- replication is exact -----------------------------------------------------------------------
def test_replicated_equals_all_simulated(tmp_path):
    chip = load_chip(_chip(tmp_path, rows=16, mapping={"kind": "token_split", "split": 2}))
    workload = Workload.from_model(load_model(_model(tmp_path, layers=2, q=4, kv=2, d=64)), 96, 2)
    fast = simulate_chip(chip, workload, baselines=False, replicate=True)
    slow = simulate_chip(chip, workload, baselines=False, replicate=False)
    assert fast["simulation"]["shares_simulated"] < fast["simulation"]["shares"]
    assert slow["simulation"]["shares_simulated"] == slow["simulation"]["shares"]
    fast.pop("simulation"), slow.pop("simulation")
    assert fast == slow


def test_synthetic_origin_key_groups_shares_as_their_bytes_do(tmp_path):
    import dataclasses

    chip = load_chip(_chip(tmp_path, rows=16, mapping={"kind": "token_split", "split": 3}))
    workload = Workload.from_model(load_model(_model(tmp_path, layers=2, q=4, kv=2, d=64)), 100, 2)
    plan = make_plan(chip.config, chip.macro.config, workload.shape, 100, 2, "test")
    by_origin, by_bytes = {}, {}
    for share in plan.shares:
        data = workload.share_data(share)
        assert data.origin is not None
        by_origin.setdefault(data.digest(), set()).add(share.index)
        by_bytes.setdefault(dataclasses.replace(data, origin=None).digest(), set()).add(share.index)
    assert sorted(map(sorted, by_origin.values())) == sorted(map(sorted, by_bytes.values()))
    assert len(by_origin) == 3  # one per token range


def test_write_timing_and_counts_do_not_depend_on_values(tmp_path):
    chip = load_chip(_chip(tmp_path, rows=16))
    rom = SignRom.from_seed(0, 1, 64)
    rng = np.random.default_rng(0)
    runs = []
    for scale in (1.0, 30.0):
        data = ShareData(0, rng.standard_normal((40, 64)) * scale, rng.standard_normal((40, 64)),
                         rng.standard_normal((2, 64)))
        runner = ShareRunner(chip.macro, rom, replicate=False)
        result = runner.run(data, writer=True)
        runs.append((result.prefill_cycles, result.prefill_actions, result.write_cycles, result.write_actions))
    assert runs[0] == runs[1]


# ---- the report and the command -----------------------------------------------------------------
def test_chip_command_reports_spec_keys_and_baselines(tmp_path):
    out = tmp_path / "chip.json"
    status, stdout, stderr = run_main(["chip", _chip(tmp_path, rows=16, mapping={"kind": "token_split"}), "--model", _model(tmp_path), "--context", "200",
                                       "--batch", "2", "--json", out])
    assert status == 0, stderr
    report = json.loads(out.read_text())
    for key in ("chip", "workload", "instances", "mapping", "kv_capacity_tokens", "decode", "prefill", "area_mm2",
                "utilisation", "baselines", "units"):
        assert key in report
    for key in ("latency_cycles", "latency_s", "tokens_per_s", "energy_j_per_token", "energy_j_per_token_by_component"):
        assert key in report["decode"]
    assert report["decode"]["tokens_per_s"] == pytest.approx(2 / report["decode"]["latency_s"])
    parts = report["decode"]["energy_j_per_token_by_component"]
    assert sum(parts.values()) == pytest.approx(report["decode"]["energy_j_per_token"])
    assert set(parts) == {"macro_dynamic", "macro_leakage", "interconnect", "merge", "host_io", "offchip"}
    fp16 = report["baselines"]["fp16"]
    assert fp16["instances"] == report["instances"]
    assert fp16["instance"]["row_bits"] == 64 * 16 and report["instance"]["row_bits"] == 64 * 3 + 16
    # the chip of dequant_rotated macros: the same instances, AXELRAM's index rows, its own datapath and cost
    dequant = report["baselines"]["dequant_rotated"]
    assert dequant["instances"] == report["instances"]
    assert dequant["instance"]["row_bits"] == 64 * 3 + 16
    assert dequant["decode"]["traffic_bits"] == report["decode"]["traffic_bits"]
    assert dequant["decode"]["energy_j_per_token_by_component"]["macro_dynamic"] != \
        report["decode"]["energy_j_per_token_by_component"]["macro_dynamic"]
    assert dequant["instance"]["area_mm2"] != report["instance"]["area_mm2"]
    assert not any("dequant_rotated" in note for note in report["notes"])
    assert "axelram" in stdout and "fp16" in stdout and "dequant_rotated" in stdout


def test_gpu_anchor_row_for_a_measured_shape():
    from axelsim.chip.anchor import gpu_h200

    row = gpu_h200(load_model("Llama-3.1-8B"), 4096, 1)
    assert row["latency_s"] == pytest.approx(0.000383, rel=1e-2)
    assert row["energy_includes_idle_board_power"] is True and "board power" in row["source"]
    assert gpu_h200(load_model("Llama-3.1-8B"), 32768, 16) is None


@pytest.mark.parametrize("doc, where", [
    ({"macro": {"file": "m.yaml"}, "instance": 3}, "instance"),
    ({"macro": {"file": "m.yaml"}, "instances": 0}, "instances"),
    ({"macro": {"file": "m.yaml"}, "instances": "many"}, "instances"),
    ({"macro": {"file": "m.yaml"}, "mapping": {"kind": "token_split", "split": -2}}, "mapping.split"),
    ({"macro": {"file": "m.yaml"}, "mapping": {"kind": "ring"}}, "mapping.kind"),
    ({"macro": {"file": "m.yaml"}, "interconnect": {"topology": "torus"}}, "interconnect.topology"),
    ({"macro": {"file": "m.yaml"}, "interconnect": {"link_bits": 0}}, "interconnect.link_bits"),
    ({"macro": {"file": "m.yaml"}, "host": {"bandwidth_gb_s": ".nan"}}, "host.bandwidth_gb_s"),
    ({"macro": {"file": "missing.yaml"}}, "macro.file"),
    ({"macro": {"file": "m.yaml", "overrides": {"sram.rowz": 3}}}, "sram.rowz"),
    ({}, "macro"),
])
def test_bad_chip_yaml_one_line_exit_2(tmp_path, doc, where):
    (tmp_path / "m.yaml").write_text(D64.read_text().replace("tech/", str(D64.parent / "tech") + "/"))
    path = tmp_path / "bad.yaml"
    text = yaml.safe_dump(doc).replace("'.nan'", ".nan")
    path.write_text(text)
    status, _, stderr = run_main(["chip", path, "--model", "SmolLM2-135M", "--context", "64"])
    assert status == 2
    assert len(stderr.strip().splitlines()) == 1 and where in stderr and "Traceback" not in stderr


@pytest.mark.parametrize("args, where", [
    (["--model", "NoSuchModel", "--context", "64"], "--model"),
    (["--model", "SmolLM2-135M"], "--context"),
    (["--model", "Llama-3.1-8B", "--context", "64"], "head_dim"),
    (["--trace", str(TRACE), "--batch", "2"], "--batch"),
])
def test_bad_chip_command_lines(tmp_path, args, where):
    status, _, stderr = run_main(["chip", _chip(tmp_path), *args])
    assert status == 2 and where in stderr and len(stderr.strip().splitlines()) == 1


def test_head_parallel_that_cannot_hold_a_head_says_so(tmp_path):
    chip = load_chip(_chip(tmp_path, rows=16, mapping={"kind": "head_parallel"}))
    with pytest.raises(ConfigError, match="token_split"):
        make_plan(chip.config, chip.macro.config, load_model("SmolLM2-135M"), 4096, 1, "test")
    assert INPUT_BITS == 16
