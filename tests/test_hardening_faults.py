"""Faults and determinism: interrupted or failing writes leave no corrupt output; unwritable
outputs and full disks are clear one-line errors; a trace beyond the SRAM's rows is rejected
or spilled, never wrapped; the same inputs give a byte-identical report (except `run_info`).
"""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import yaml

from cli_helpers import run_main
from axelsim import api
from axelsim import io as axio
from axelsim.errors import UserError
from axelsim.trace.format import Trace, save_trace
from fuzz_helpers import (check_user_error, leftovers, macro_dict, macro_workdir, run_cli,
                          trace_arrays)

def _main(argv) -> tuple[int, str, str]:
    return run_main(argv)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = macro_workdir(tmp_path_factory.mktemp("faults"))
    (root / "d64.yaml").write_text(yaml.safe_dump(macro_dict("axelram_d64")))
    k, v, q, pos = trace_arrays(layers=(0,), kv_heads=1, q_heads=2, tokens=24, dim=64, positions=(0, 9, 23))
    save_trace(Trace.from_arrays(k, v, q, pos, dtype="float16"), root / "t.safetensors")
    (root / "a_file").write_text("a regular file, not a folder\n")
    return root


@pytest.fixture(scope="module")
def report(files):
    """One real report (what `run` would write), reused where only the writing is under test."""
    return api.simulate(files / "d64.yaml", files / "t.safetensors")


# ------------------------------------------------------------------------- atomic writers (io)
def _failing_fsync(*_):
    raise OSError(errno.ENOSPC, "No space left on device")


@pytest.mark.parametrize("previous", [None, b'{"complete": "previous report"}\n'], ids=["fresh", "existing"])
@pytest.mark.parametrize("fault", ["enospc", "interrupt"])
def test_failed_write_leaves_no_partial_file(tmp_path, monkeypatch, previous, fault):
    target = tmp_path / "report.json"
    if previous is not None:
        target.write_bytes(previous)

    def broken(*_):
        if fault == "interrupt":
            raise KeyboardInterrupt
        _failing_fsync()

    monkeypatch.setattr(axio.os, "fsync", broken)
    with pytest.raises((OSError, KeyboardInterrupt)):
        axio.write_json(target, {"numbers": list(range(1000))})
    assert (target.read_bytes() if target.exists() else None) == previous
    assert leftovers(tmp_path, "report") == []


def test_unserialisable_report_writes_nothing(tmp_path):
    target = tmp_path / "report.json"
    with pytest.raises(TypeError):
        axio.write_json(target, {"x": object()})
    assert not target.exists() and leftovers(tmp_path, "report") == []


def test_failed_trace_save_leaves_no_partial_file(tmp_path, monkeypatch):
    import axelsim.trace.format as fmt

    def half_then_full_disk(tensors, path, metadata=None):
        with open(path, "wb") as stream:
            stream.write(b"\x00" * 100)
        raise OSError(errno.ENOSPC, "No space left on device")

    k, v, q, pos = trace_arrays()
    trace = Trace.from_arrays(k, v, q, pos)
    monkeypatch.setattr(fmt, "save_file", half_then_full_disk)
    with pytest.raises(OSError):
        save_trace(trace, tmp_path / "t.safetensors")
    assert list(tmp_path.iterdir()) == []


def test_killed_writer_leaves_previous_file_intact(tmp_path):
    """SIGKILL between writing and renaming: the destination keeps its old bytes.

    (A killed process cannot clean up: its hidden `.report.tmp.*` file stays; see the report.)
    """
    target = tmp_path / "report.json"
    target.write_text('{"old": true}\n')
    code = (
        "import os, signal, sys\n"
        "from axelsim.io import atomic_path\n"
        "with atomic_path(sys.argv[1]) as temp:\n"
        "    open(temp, 'wb').write(b'{\"new\": [' + b'1,' * 100000)\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code, str(target)], capture_output=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL
    assert target.read_text() == '{"old": true}\n'
    assert all(name.startswith(".report.tmp.") for name in os.listdir(tmp_path) if name != "report.json")


# ------------------------------------------------------------- unwritable outputs, full disk (CLI)
def _fake_run(monkeypatch, report):
    monkeypatch.setattr(api, "simulate", lambda *a, **k: json.loads(json.dumps(report, default=str)))


def test_run_json_full_disk_writes_nothing(files, report, monkeypatch, tmp_path):
    """ENOSPC while writing `--json OUT`: no OUT, no temporary file, a non-zero exit, no traceback."""
    _fake_run(monkeypatch, report)
    monkeypatch.setattr(axio.os, "fsync", _failing_fsync)
    out = tmp_path / "r.json"
    status, _, err = _main(["run", files / "d64.yaml", "--trace", files / "t.safetensors", "--quiet", "--json", out])
    assert status != 0 and "Traceback" not in err and err.count("\n") == 1
    assert not out.exists() and leftovers(tmp_path, "r") == []


def test_run_json_full_disk_is_bad_input_naming_the_path(files, report, monkeypatch, tmp_path):
    _fake_run(monkeypatch, report)
    monkeypatch.setattr(axio.os, "fsync", _failing_fsync)
    out = tmp_path / "r.json"
    status, _, err = _main(["run", files / "d64.yaml", "--trace", files / "t.safetensors", "--quiet", "--json", out])
    assert status == 2 and err.count("\n") == 1 and str(out) in err


@pytest.mark.parametrize("where", ["under_a_file", "is_a_folder"])
def test_run_json_unwritable_path_is_bad_input_naming_the_path(files, report, monkeypatch, where):
    _fake_run(monkeypatch, report)
    out = files / "a_file" / "r.json" if where == "under_a_file" else files
    status, _, err = _main(["run", files / "d64.yaml", "--trace", files / "t.safetensors", "--quiet", "--json", out])
    assert status == 2 and err.count("\n") == 1 and str(out) in err


def test_trace_synth_unwritable_out_is_bad_input(files):
    out = files / "a_file" / "s.safetensors"
    status, _, err = _main(["trace", "synth", "--layers", "1", "--kv-heads", "1", "--q-heads", "1", "--head-dim", "8",
                            "--tokens", "4", "--queries", "1", "--out", out])
    assert status == 2 and err.count("\n") == 1 and str(out) in err


def test_calibrate_signs_unwritable_out_is_bad_input(files):
    out = files / "a_file" / "signs.yaml"
    status, _, err = _main(["calibrate-signs", files / "t.safetensors", "--bits", "3", "--candidates", "2",
                            "--out", out])
    assert status == 2 and str(out) in err.splitlines()[-1]


# ------------------------------------------------------------------------- SRAM capacity (hw)
def _small_sram_macro(files, overflow: str):
    data = macro_dict("axelram_d64")
    data["sram"].update(banks=2, rows_per_bank=8, overflow=overflow)  # 2 x 8 rows; the trace needs 2 x 24
    path = files / f"small_{overflow}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_trace_beyond_sram_rows_is_rejected(files):
    macro = _small_sram_macro(files, "reject")
    with pytest.raises(UserError) as caught:
        api.simulate(macro, files / "t.safetensors", baselines=False)
    check_user_error(caught.value)
    assert "sram.rows_per_bank" in caught.value.line()


def test_trace_beyond_sram_rows_error_names_the_macro_file(files):
    macro = _small_sram_macro(files, "reject")
    with pytest.raises(UserError) as caught:
        api.simulate(macro, files / "t.safetensors", baselines=False)
    check_user_error(caught.value, (str(macro),))


# H2 (spill crashed: 'offchip' unpriced in the cost model) fixed in edb6d4f
def test_trace_beyond_sram_rows_spills_and_never_wraps(files, report):
    """Spilled rows are counted off-macro; scores and outputs equal the run with room (no wrap-around)."""
    spilled = api.simulate(_small_sram_macro(files, "spill"), files / "t.safetensors", baselines=False)
    assert spilled["numerics"]["bit_exact"] is True
    for metric in ("score_rel_rmse", "score_max_abs_err", "attn_kl", "top1_agreement", "output_rel_rmse"):
        assert spilled["numerics"][metric] == report["numerics"][metric], metric
    offchip = spilled["energy_pj"]["by_component"].get("offchip", {})
    assert offchip.get("dynamic_total", 0) > 0, "spilled accesses are not charged"
    assert "offchip" not in report["energy_pj"]["by_component"] or \
        report["energy_pj"]["by_component"]["offchip"].get("dynamic_total", 0) == 0


# ---------------------------------------------------------------------------------- determinism
def _without_run_info(text: str) -> str:
    """The report text before its `run_info` section (the one part docs/report.md lets differ)."""
    data = json.loads(text)
    assert list(data)[-1] == "run_info"
    head = text[: text.index('\n  "run_info": {')]
    return head


def test_run_json_is_byte_identical_across_runs_and_processes(files, report, tmp_path):
    """The module's first run, a second `run --json` in this process and a real `axelsim run`
    subprocess (another hash seed) give the same bytes; killing a further subprocess mid-run
    leaves that complete report untouched."""
    first = axio.to_json_text(report)
    again = tmp_path / "again.json"
    status, _, err = _main(["run", files / "d64.yaml", "--trace", files / "t.safetensors", "--quiet", "--json", again])
    assert status == 0, err
    out = tmp_path / "sub.json"
    started = time.monotonic()
    proc = run_cli("run", files / "d64.yaml", "--trace", files / "t.safetensors", "--quiet", "--json", out,
                   env={"PYTHONHASHSEED": "12345"})
    took = time.monotonic() - started
    assert proc.returncode == 0, proc.stderr
    assert _without_run_info(first) == _without_run_info(again.read_text()) == _without_run_info(out.read_text())

    before = out.read_bytes()
    victim = subprocess.Popen([sys.executable, "-m", "axelsim", "run", str(files / "d64.yaml"), "--trace",
                               str(files / "t.safetensors"), "--quiet", "--json", str(out)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    time.sleep(0.6 * took)
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=60)
    after = out.read_bytes()
    assert after == before or _without_run_info(after.decode()) == _without_run_info(before.decode())


def test_sigint_mid_run_is_one_line_and_writes_nothing(files, tmp_path):
    out = tmp_path / "r.json"
    victim = subprocess.Popen([sys.executable, "-m", "axelsim", "run", str(files / "d64.yaml"), "--trace",
                               str(files / "t.safetensors"), "--quiet", "--json", str(out)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    time.sleep(2.0)
    victim.send_signal(signal.SIGINT)
    _, err = victim.communicate(timeout=120)
    assert leftovers(tmp_path, "r") == []
    if out.exists():  # the signal came too late, or before main() took over: the report must be whole
        json.loads(out.read_text())
        return
    if victim.returncode == 130:  # the signal reached axelsim's main (not the interpreter's start-up)
        assert "Traceback" not in err and err.count("\n") == 1 and "interrupted" in err, err
