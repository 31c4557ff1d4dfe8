"""Waveform export: VCD edges match the recorded activity; Chrome JSON holds one event each."""

import json

import pytest

from axelsim.errors import ConfigError
from axelsim.hw.macro import simulate
from axelsim.hw.waveform import write_waveform
from test_hw_helpers import random_trace, signs_for, small_macro


@pytest.fixture(scope="module")
def result():
    return simulate(small_macro(16, 2), signs_for(1, 16), random_trace(1, tokens=4), record_waveform=True)


def test_vcd_has_a_signal_per_unit_and_rising_edges(result, tmp_path):
    path = write_waveform(result, tmp_path / "w.vcd")
    text = path.read_text()
    units = {(a.unit, a.instance) for a in result.waveform}
    assert text.count("$var wire 1") == len(units)
    assert "$enddefinitions $end" in text
    assert f"#{max(a.end for a in result.waveform)}" in text
    assert not list(tmp_path.glob(".*tmp"))


def test_chrome_json_one_event_per_activity(result, tmp_path):
    data = json.loads(write_waveform(result, tmp_path / "w.json").read_text())
    spans = [e for e in data["traceEvents"] if e["ph"] == "X"]
    assert len(spans) == len(result.waveform)
    assert sum(e["dur"] for e in spans) == sum(a.end - a.start for a in result.waveform)


def test_bad_suffix_is_a_user_error(result, tmp_path):
    with pytest.raises(ConfigError):
        write_waveform(result, tmp_path / "w.txt")


def test_waveform_file_mode_is_0644_like_other_outputs(tmp_path):
    import stat
    from types import SimpleNamespace

    from axelsim.hw.waveform import write_waveform

    for name in ("w.vcd", "w.json"):
        path = write_waveform(SimpleNamespace(waveform=[], clock_hz=1e9), tmp_path / name)
        assert stat.S_IMODE(path.stat().st_mode) == 0o644
