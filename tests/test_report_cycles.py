"""Utilisation in 0..1, phases that add up, stalls counted once per cycle, decode latency, SRAM
occupancy and the node in the summary; oracles computed from the trace shape, not the model."""

from pathlib import Path

import numpy as np
import pytest

from axelsim import api
from axelsim.hw.units import covered_before, merged_spans, union_cycles
from axelsim.report.tables import format_summary

ROOT = Path(__file__).resolve().parents[1]
MACRO = ROOT / "macros" / "axelram_d64.yaml"
TRACE = ROOT / "traces" / "smollm2_austen_full.safetensors"


@pytest.fixture(scope="module")
def report():
    return api.simulate(MACRO, TRACE, layers=[0, 1], queries=4, baselines=False)


def test_utilisation_is_a_fraction_and_matches_the_key_count(report):
    assert all(0.0 <= value <= 1.0 for value in report["utilisation"].values()), report["utilisation"]
    trace = api.select(api.load_trace(TRACE), layers=[0, 1], queries=4)
    # one key per cycle through the table SRAM stage (lookups_per_cycle = d, one head per job)
    keys = trace.n_layers * trace.q_heads * int(sum(p + 1 for p in trace.q_positions))
    assert report["utilisation"]["lookup_pipeline"] == pytest.approx(keys / report["cycles"]["total"])


def test_phases_add_up_and_stalls_fit_in_the_run(report):
    cycles = report["cycles"]
    assert sum(cycles[phase] for phase in ("write", "precompute", "read", "value", "idle")) == cycles["total"]
    assert 0 <= cycles["stall"] <= cycles["total"] <= cycles["stall_summed"] + cycles["total"]
    for unit, causes in report["stall_cycles_by_cause"].items():
        assert all(0 < n <= report["stall_cycles_by_unit"][unit] <= cycles["stall"] for n in causes.values())
    active = report["phase_active_cycles"]
    assert all(cycles[phase] <= active[phase] <= cycles["total"] for phase in active)
    assert active["read"] > 10 * cycles["read"]  # reads overlap the value path: attribution hides them
    for layer in report["layers"].values():
        assert all(layer["cycles"][p] <= layer["active_cycles"][p] for p in layer["active_cycles"])
    shares = report["timeline"]["units"]
    assert all(0.0 <= share <= 1.0 for values in shares.values() for share in values)
    assert report["timeline"]["bins"] * report["timeline"]["bin_cycles"] >= cycles["total"]


def test_decode_latency_tokens_per_second_and_sram_occupancy(report):
    decode = report["decode"]
    assert decode["steps"] == 4 and decode["layers_replayed"] == 2
    assert decode["tokens_per_s"] == pytest.approx(report["clock_hz"] / decode["latency_cycles_mean"])
    assert 0 < decode["latency_cycles_mean"] <= decode["latency_cycles_max"] <= report["cycles"]["total"]
    sram, macro = report["sram_tiles"], report["macro"]
    vectors = 2 * 3 * 256 * 2  # layers x KV heads x tokens x (K, V), one row of d*b + 16 bits each
    assert sram["occupied_bits"] >= vectors * (64 * 3 + 16)
    assert sram["occupancy"] == pytest.approx(sram["occupied_bits"] / sram["capacity_bits"], rel=0.05)


def test_summary_names_node_clock_capacity_and_decode(report):
    text = format_summary(report)
    assert "45 nm" in text and "clock 1 GHz" in text and "tokens/s" in text
    assert "index SRAM; trace occupies" in text
    assert "(each cycle once" in text and "in flight" in text


def test_interval_union_against_a_bitmap():
    rng = np.random.default_rng(7)
    for _ in range(100):
        starts = rng.integers(0, 100, 25)
        ends = starts + rng.integers(-3, 20, 25)
        bitmap = np.zeros(200, dtype=bool)
        for a, b in zip(starts, ends):
            bitmap[a:max(a, b)] = True
        assert union_cycles(starts, ends) == bitmap.sum()
        a, b = merged_spans(starts, ends)
        probes = np.arange(0, 201, 3)
        assert list(covered_before(a, b, probes)) == [bitmap[:x].sum() for x in probes]


def test_the_reports_phases_are_the_simulators(report):
    """The report layer names the phases without importing the simulator: its tuple is
    hw.controller's, in the same order, and every one of them is in a report's cycles."""
    from axelsim.hw.controller import PHASES as booked
    from axelsim.report.figures import PHASES

    assert PHASES == booked
    assert set(PHASES) <= set(report["cycles"]) and set(PHASES) == set(report["phase_active_cycles"])
