"""Report assembly, terminal summary and plots, from a cycle result built here.

The cycle result is a plain stand-in with the documented SimResult fields (hw is tested on its
own); the cost model, the golden model and the reference are the real ones.
"""

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from axelsim import io
from axelsim.config import load_macro
from axelsim.numerics.golden import NumericsSpec, golden_layer
from axelsim.numerics.hadamard import SignRom
from axelsim.report.assemble import UNITS, baseline_section, build_report
from axelsim.report.figures import HEADLINE_KEYS, headline
from axelsim.report.numerics import bit_width_study, compare_numerics
from axelsim.report.plots import plot_compare, plot_run
from axelsim.report.tables import format_compare, format_rows, format_summary, scaled
from axelsim.trace import SynthSpec, synth_trace

MACRO = Path(__file__).resolve().parents[1] / "macros" / "axelram_d64.yaml"


def stand_in_result(trace, scale=1, actions=None, golden=None):
    """A cycle result with the SimResult fields, counts from the closed-form formulas."""
    d, layers, tokens, queries = trace.head_dim, trace.n_layers, trace.tokens, trace.n_queries
    per_layer_cycles = {"total": 1000 * scale, "write": 300, "precompute": 50, "read": 500, "value": 150, "stall": 7}
    ops = {"multiplications": {"write_path": 10 * d, "read_path": 2 * d, "value_path": 3 * d},
           "additions": {"write_path": 20 * d, "read_path": 5 * d}, "comparisons": {"write_path": 7 * d},
           "table_lookups": {"read_path": d * tokens}, "sram_read_bits": {"read_path": 208 * tokens},
           "sram_write_bits": {"write_path": 208 * tokens}}
    default_actions = {"index_sram": {"write": 2 * tokens * layers, "read": tokens * queries * layers},
               "rotator": {"add.fp32": 384 * tokens}, "table_sram": {"read": d * tokens * queries},
               "lookup_pipeline": {"add.fp16": 63 * tokens * queries, "mul.fp32": tokens * queries}}
    actions = actions or default_actions
    return SimpleNamespace(
        cycles={key: value * layers for key, value in per_layer_cycles.items()},
        time_s=per_layer_cycles["total"] * layers * 1e-9,
        unit_stats={"rotator": {"utilisation": 0.4, "stall_cycles": 3, "stall_causes": {"contention": 3}},
                    "lookup_pipeline": {"utilisation": 0.9, "stall_cycles": 0, "stall_causes": {}}},
        actions=actions,
        ops={kind: {**{path: count * layers for path, count in paths.items()},
                    "total": sum(paths.values()) * layers} for kind, paths in ops.items()},
        per_layer={layer: {"cycles": per_layer_cycles, "ops": ops, "active": {"write": 1, "precompute": 1, "read": 1,
                                                                              "value": 1}}
                   for layer in trace.layer_indices},
        phase_active={"write": 1, "precompute": 1, "read": 1, "value": 1},
        timeline={"bin_cycles": 1, "bins": 0, "units": {}},
        decode_cycles=[100] * queries,
        scores={layer: g.scores for layer, g in (golden or {}).items()},
        outputs={layer: g.outputs for layer, g in (golden or {}).items()},
        multiplications_per_query={"axelram": d * 8 + tokens, "conventional": d * tokens,
                                   "keys_per_query_mean": float(tokens), "reduction": d * tokens / (d * 8 + tokens)},
    )


@pytest.fixture(scope="module")
def report():
    loaded = load_macro(MACRO)
    trace = synth_trace(SynthSpec(layers=2, kv_heads=1, q_heads=3, head_dim=64, tokens=40, queries=3))
    signs = SignRom.from_seed(0, 2, 64)
    spec = NumericsSpec.from_macro(loaded.config, signs)
    golden = {L: golden_layer(spec, trace.k(L), trace.v(L), trace.q(L), trace.q_positions, L) for L in trace.layer_indices}
    numerics = compare_numerics(loaded.config, signs, trace, {L: g.scores for L, g in golden.items()},
                                {L: g.outputs for L, g in golden.items()})
    fp16_actions = {"kv_sram": {"write": 80, "read": 400}, "dot_product": {"mul.fp16": 64 * 400, "add.fp16": 63 * 400}}
    dequant_actions = {"index_sram": {"write": 80, "read": 400}, "dequantizer": {"mul.fp32": 64 * 400},
                       "dot_product": {"mul.fp16": 64 * 400, "add.fp16": 63 * 400}}
    pooled = {key: value for key, value in numerics.items() if key != "layers"}
    baselines = {"fp16": baseline_section("fp16", loaded, trace, stand_in_result(trace, 3, fp16_actions, golden), pooled),
                 "dequant_inverse_rotate": baseline_section("dequant_inverse_rotate", loaded, trace,
                                                            stand_in_result(trace, 2, dequant_actions, golden), pooled)}
    built = build_report(loaded, trace, stand_in_result(trace), numerics, baselines, "burst")
    built["numerics_by_bits"] = bit_width_study(loaded.config, signs, trace, (2, 3, 4))
    return built


def test_report_sections_units_and_totals(report):
    for key in ("macro", "trace", "cycles", "ops", "multiplications_per_query", "energy_pj", "area_um2",
                "memory_bytes", "numerics", "baselines", "layers", "units"):
        assert key in report
    assert report["macro"]["head_dim"] == 64 and report["trace"]["queries"] == 3
    energy = report["energy_pj"]
    assert energy["total"] == pytest.approx(energy["dynamic_total"] + energy["leakage_total"])
    assert energy["total"] == pytest.approx(sum(c["total"] for c in energy["by_component"].values()))
    assert energy["per_query"] == pytest.approx(energy["total"] / (2 * 3 * 3))
    assert report["area_um2"]["total"] == pytest.approx(sum(report["area_um2"]["by_component"].values()))
    assert report["ops"]["multiplications"]["total"] == 2 * 15 * 64
    assert report["memory_bytes"]["codebook_rom"] == 30 and report["kv_compression_x"] == pytest.approx(128 / 26)
    assert report["baselines"]["fp16"]["memory_bytes"]["kv_storage"] == pytest.approx(
        report["memory_bytes"]["kv_storage"] * 128 / 26)
    assert set(report["layers"]) == {"0", "1"} and report["layers"]["1"]["numerics"]["bit_exact"]
    assert report["utilisation"]["lookup_pipeline"] == pytest.approx(0.9)
    assert report["stall_cycles_by_cause"] == {"rotator": {"contention": 3}}
    assert UNITS["energy_pj.*"] == "picojoules"
    baseline_numerics = report["baselines"]["fp16"]["numerics"]
    assert baseline_numerics["score_rel_rmse"] == pytest.approx(report["numerics"]["score_rel_rmse"])


def test_report_json_is_deterministic_and_plain(report, tmp_path):
    text = io.to_json_text(report)
    assert text == io.to_json_text(json.loads(text))
    path = io.write_json(tmp_path / "report.json", report)
    assert json.loads(path.read_text())["numerics"]["bit_exact"] is True


def test_summary_names_every_headline_with_units(report):
    text = format_summary(report)
    lines = text.splitlines()
    assert len(lines) <= 16  # + auto values, SRAM occupancy, phases in flight, decode (issue 16)
    for word in ("cycles", "energy", "per query", "per token", "area", "mults/query", "bit_exact YES",
                 "score rel RMSE", "KL", "top-1", "baseline     fp16", "baseline     dequant_inverse_rotate"):
        assert word in text, word
    assert "µs" in text or "ns" in text
    assert any(unit in text for unit in ("pJ", "nJ", "µJ"))
    assert "mm²" in text or "µm²" in text


def test_headline_and_rows(report):
    row = headline(report)
    assert list(row) == list(HEADLINE_KEYS)
    assert row["bit_exact"] is True and row["cycles_total"] == 2000
    table = format_rows({"axelram_d64": report, **report["baselines"]})
    assert len(table.splitlines()) == 4 and "fp16" in table
    assert "trace " in format_compare({"trace": report["trace"], "designs": {"a": report},
                                       "baselines": report["baselines"]})


def test_scaled_picks_a_readable_prefix():
    assert scaled(12345.0, "pJ") == "12.35 nJ"
    assert scaled(2.5e-6, "s") == "2.5 µs"
    assert scaled(3 * 2**20, "bytes") == "3 MiB"
    assert scaled(2.5e6, "um2") == "2.5 mm²"
    assert scaled(None, "pJ") == "n/a"


def test_run_and_compare_plots_are_written_and_not_empty(report, tmp_path):
    paths = plot_run(report, tmp_path / "plots")
    assert sorted(p.name for p in paths) == sorted(f"{stem}.{ext}" for stem in ("energy_area", "cycles", "error_vs_bits")
                                                   for ext in ("png", "svg"))
    assert all(p.stat().st_size > 5000 for p in paths)
    assert "index_sram" in (tmp_path / "plots" / "energy_area.svg").read_text()
    compared = plot_compare({"axelram": report, **report["baselines"]}, tmp_path / "cmp")
    assert [p.name for p in compared] == ["compare.png", "compare.svg"]
    assert all(p.stat().st_size > 5000 for p in compared)


def test_compare_table_has_one_unit_per_column():
    """Rows of 900 pJ and 1.5 uJ are written in one unit (the largest value's: uJ), named in the header."""
    def fake(energy, area, memory):
        return {"cycles": {"total": 10}, "time_s": 1e-6, "energy_pj": {"total": energy, "per_query": energy,
                "per_token": energy / 2}, "area_um2": {"total": area}, "memory_bytes": {"total": memory},
                "numerics": {"bit_exact": True}}

    table = format_rows({"small": fake(900.0, 5e5, 512), "large": fake(1.5e6, 2e6, 3 * 2**20)})
    header, small, large = table.splitlines()
    assert "E/query (µJ)" in header and "area (mm²)" in header and "memory (MiB)" in header
    assert "nJ" not in table.replace(header, "") and "pJ" not in small and "µJ" not in small
    assert "0.0009" in small and "1.5" in large and "0.5" in small and "3" in large
