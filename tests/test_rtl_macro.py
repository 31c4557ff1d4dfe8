"""The RTL twin (d = 16, b = 3, a few tokens, two query heads, the value path built) against the
golden model (bits of the stored rows, scores and attention outputs) and the cycle model (the
cycle each item enters and leaves each of the 16 units), plus the comparison's own
failure paths and the CLI's bad-input lines; the CLI's run (its RTL sources, VCD and activity)
has the bins on 4 lanes, where the bins write-after-read interlock binds. Runs in make test
(the rtl extra is installed)."""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("amaranth", reason="the rtl extra (amaranth) is not installed: pip install -e '.[rtl]'")

from axelsim import api  # noqa: E402
from axelsim.cli import main  # noqa: E402
from axelsim.hw.macro import simulate  # noqa: E402
from axelsim.rtl.compare import compare_bits, compare_cycles  # noqa: E402
from test_hw_helpers import random_trace, signs_for, small_macro  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
MACRO = ROOT / "macros" / "rtl" / "axelram_d16.yaml"
TRACE = ROOT / "traces" / "rtl_d16.safetensors"


@pytest.fixture(scope="module")
def checked():
    """One RTL run of the shipped small slice, with the raw run kept for the failure tests."""
    from axelsim.config.load import load_macro
    from axelsim.rtl import compare

    loaded = load_macro(MACRO)
    view = api.load_trace(TRACE)
    mac = compare.resolved_macro(loaded)
    comp, run = compare.check(mac, api.sign_rom(loaded, view), view, list(view.layer_indices), str(MACRO))
    golden = compare.golden_results(mac, api.sign_rom(loaded, view), view,
                                    list(view.layer_indices))
    schedule, _ = compare.hw_schedule(mac, api.sign_rom(loaded, view), view,
                                      list(view.layer_indices), str(MACRO))
    return comp.to_dict(), run, golden, schedule


def test_a_part_with_too_many_input_bits_is_refused_before_any_file(checked, tmp_path, monkeypatch):
    from axelsim.errors import ConfigError
    from axelsim.rtl import run as rtl_run
    from axelsim.rtl.synth import ElaboratedUnit

    _, run, _, _ = checked
    bins = ElaboratedUnit(run.design.bins)  # inputs: e (softmax word), norm (fp16), the d b indices, in_valid, first
    assert bins.input_bits == run.design.bins.f.softmax.width + 16 + 16 * 3 + 2
    monkeypatch.setattr(rtl_run, "MAX_INPUT_BITS", bins.input_bits - 1)
    with pytest.raises(ConfigError, match="head_dim"):
        rtl_run.write_sources(run.design, tmp_path / "out", verilog=False)
    assert not (tmp_path / "out").exists()


def test_rtl_is_bit_exact_and_cycle_equal_at_d16(checked):
    report, run, _, _ = checked
    assert report["bit_exact_by_unit"] == {"norm_unit": True, "quantizer": True, "norm_multiplier": True,
                                           "output_scale": True}
    assert report["cycles_equal"], {u: c for u, c in report["cycles_by_unit"].items() if not c["equal"]}
    assert report["total_cycles_rtl"] == report["total_cycles_model"] > 0
    assert report["overruns"] == 0
    # every item reached every unit: 6 positions x K,V = 12 writes; 2 heads x (3 + 6) keys scored
    counts = {u: c["items"] for u, c in report["cycles_by_unit"].items()}
    assert counts["index_sram_write"] == 12 and counts["norm_multiplier"] == 18 and counts["table_generator"] == 4
    assert len(run.scores) == 4 and all(np.isfinite(s).all() for s in run.scores.values())
    # the value path: every scored key's value row read, exp'd and binned; one finalisation per job
    assert all(counts[u] == 18 for u in ("softmax_scale", "index_sram_read_v", "exp", "bins"))
    assert all(counts[u] == 4 for u in ("centroids", "inverse_fwht", "output_scale"))
    assert len(run.outputs) == 4 and all(np.isfinite(o).all() and np.abs(o).max() > 0 for o in run.outputs.values())


def test_comparison_detects_a_late_item_and_a_wrong_bit(checked):
    _, run, golden, schedule = checked
    shifted = copy.deepcopy(schedule)
    start, done = shifted["adder_tree"][3]
    shifted["adder_tree"][3] = (start, done + 1)
    cycles = compare_cycles(run, shifted)
    assert not cycles["adder_tree"]["equal"] and cycles["adder_tree"]["max_abs_diff_cycles"] == 1
    assert cycles["rotator"]["equal"]
    bad = dataclasses.replace(run, rows=dict(run.rows), scores=dict(run.scores), outputs=dict(run.outputs))
    key = next(iter(bad.rows))
    idx, norm, sat = bad.rows[key]
    bad.rows[key] = (idx ^ np.uint8(1), norm, sat)
    key = next(iter(bad.scores))
    bad.scores[key] = bad.scores[key].copy()
    bad.scores[key][0] = np.nextafter(np.float32(bad.scores[key][0]), np.float32(np.inf))
    bits = compare_bits(bad, golden)
    assert bits == {"norm_unit": True, "quantizer": False, "norm_multiplier": False, "output_scale": True}
    key = next(iter(bad.outputs))
    bad.outputs[key] = bad.outputs[key].copy()
    bad.outputs[key][3] = np.nextafter(np.float32(bad.outputs[key][3]), np.float32(-np.inf))
    assert compare_bits(bad, golden)["output_scale"] is False
    del bad.outputs[key]  # a missing output is not bit-exact either
    assert compare_bits(bad, golden)["output_scale"] is False


def test_cycle_model_waits_for_the_last_lookup_before_rewriting_the_table():
    # Two query heads, one pipeline: head 1's table may be written only after head 0's last key
    # left the table SRAM (the write-after-read hazard the RTL twin exposed).
    macro = small_macro(16, 2, read_path=dict(table_multipliers=16, lookups_per_cycle=4))
    result = simulate(macro, signs_for(1, 16), random_trace(3, q_heads=2, tokens=6, values=False),
                      prefill="preloaded", record_waveform=True)
    tables = sorted((a for a in result.waveform if a.unit == "table_generator"), key=lambda a: a.start)
    lookups = sorted((a for a in result.waveform if a.unit == "table_sram"), key=lambda a: a.start)
    assert len(tables) == 2 and len(lookups) == 2
    assert tables[1].start >= lookups[0].end


def test_cli_rtl_bad_input_is_one_line(tmp_path, capsys):
    code = main(["rtl", str(MACRO), "--trace", str(tmp_path / "missing.safetensors"), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "missing.safetensors" in err
    big = ROOT / "traces" / "smollm2_austen_full.safetensors"
    code = main(["rtl", str(ROOT / "macros" / "axelram_d64.yaml"), "--trace", str(big), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "--queries" in err


def test_cli_rtl_without_the_extra_says_so(tmp_path, capsys, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "amaranth", None)  # import amaranth now raises ImportError
    code = main(["rtl", str(MACRO), "--trace", str(TRACE), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "rtl extra" in err


def test_rtl_refuses_separate_value_signs(tmp_path):
    import yaml

    from axelsim.config.load import load_macro
    from axelsim.errors import ConfigError
    from axelsim.rtl.compare import resolved_macro

    text = yaml.safe_load(MACRO.read_text())
    text["signs"] = {"rule": "paper", "seed": 42}
    text["technology"] = {"file": str(ROOT / "macros" / "tech" / "reference.yaml")}
    path = tmp_path / "m.yaml"
    path.write_text(yaml.safe_dump(text))
    with pytest.raises(ConfigError, match="signs.rule"):
        resolved_macro(load_macro(path))


def bins_held_macro(tmp_path: Path) -> Path:
    """The shipped d = 16, b = 3 macro with the bins on 4 of 16 lanes: each key takes 4 cycles at
    the bins and centroids 8 per job, so the second query head's first key reaches the bins
    (cycle 90) before the first head's centroid stage has taken them (cycle 91): the bins
    write-after-read interlock holds it to cycle 92 and its 6 keys enter 2 cycles later."""
    import yaml

    text = yaml.safe_load(MACRO.read_text())
    text.update(technology={"file": str(ROOT / "macros" / "tech" / "reference.yaml")}, value_path={"bin_lanes": 4})
    path = tmp_path / "axelram_d16_bl4.yaml"
    path.write_text(yaml.safe_dump(text))
    return path


def test_cli_rtl_vcd_writes_the_waveform_and_the_activity(tmp_path, capsys):
    # One simulation checks the CLI's RTL sources, VCD and activity table and the bins
    # write-after-read rule (bins on 4 lanes, two query heads): the RTL held a first key and the
    # cycle model times every item of every unit the same
    import json

    vcd, report = tmp_path / "w" / "sim.vcd", tmp_path / "r.json"
    code = main(["rtl", str(bins_held_macro(tmp_path)), "--trace", str(TRACE), "--out", str(tmp_path / "o"),
                 "--vcd", str(vcd), "--queries", "1", "--json", str(report)])
    out = capsys.readouterr().out
    assert code == 0 and "bit_exact=True" in out and "cycles_equal=True" in out
    doc = json.loads(report.read_text())
    out_dir = tmp_path / "o"
    assert doc["files"] == [f"{stem}.il" for stem in ("norm_unit", "rotator", "quantizer", "index_sram", "table_generator",
                                                      "lookup_pipeline", "softmax_scale", "exp_unit", "bins_finalize",
                                                      "controller")]
    assert all((out_dir / f).read_text().startswith("attribute") or "module" in (out_dir / f).read_text()
               for f in doc["files"])
    # the bins feed the finalisation inside its part: neither the bins nor E is a port of it
    top = (out_dir / "bins_finalize.il").read_text().split("module \\bins_finalize\n", 1)[1].split("\nend\n", 1)[0]
    inputs = [line.split()[-1] for line in top.splitlines() if " input " in line]
    assert "\\idx" in inputs and "\\signs" in inputs
    assert not [name for name in inputs if name.startswith("\\B") or "total" in name]
    assert doc["bin_holds"] == 2 and doc["cycles_equal"] and doc["end_to_end_cycle_error"] == 0
    assert all(c["equal"] and c["items"] == c["items_model"] > 0 for c in doc["cycles_by_unit"].values())
    assert doc["vcd"] == str(vcd) and vcd.read_text().startswith("$")
    assert not list((tmp_path / "o").glob("*.vcd"))  # the waveform goes where --vcd says, nowhere else
    activity = doc["activity_by_unit"]
    assert set(activity) == {"norm_unit", "rotator", "quantizer", "table_generator", "lookup_pipeline", "value_unit"}
    # operations are the items through each unit: K and V of every token written, one table per
    # query head, every token's key scored and its value binned per query head
    tokens, heads = doc["tokens_written"], doc["q_heads"]
    assert doc["queries"] == 1 and activity["norm_unit"]["operations"] == 2 * tokens
    assert activity["table_generator"]["operations"] == heads
    assert activity["lookup_pipeline"]["operations"] == activity["value_unit"]["operations"] == heads * tokens
    assert all(a["toggles"] > 0 for a in activity.values())


def test_cli_rtl_vcd_must_be_a_vcd_file(tmp_path, capsys):
    code = main(["rtl", str(MACRO), "--trace", str(TRACE), "--out", str(tmp_path / "o"), "--vcd", str(tmp_path / "w.txt")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "--vcd" in err and not (tmp_path / "o").exists()
