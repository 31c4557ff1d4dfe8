"""Outputs the OS refuses (W1) and progress bars that stay out of the way (W2).

W1: an unwritable output (a path through a regular file, a folder where a file goes, a full disk)
is bad input: exit 2, one line on stderr naming the path, nothing written, no temporary file.
W2: every command with progress has --quiet; bars draw nothing off a terminal (unless
AXELSIM_PROGRESS=1) and nothing during their first second, so an early error is one line.
"""

from __future__ import annotations

import errno
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from cli_helpers import run_main, stderr_lines
from axelsim import api
from axelsim import io as axio
from axelsim.errors import UserError

ROOT = Path(__file__).resolve().parents[1]
MACRO = ROOT / "macros" / "axelram_d64.yaml"
SYNTH = ["--layers", "1", "--kv-heads", "1", "--q-heads", "2", "--head-dim", "64", "--tokens", "16", "--queries", "2"]


def _main(argv) -> tuple[int, str, str]:
    return run_main(argv)


def _temps(folder: Path) -> list[str]:
    return [name for name in os.listdir(folder) if ".tmp." in name]


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("outputs")
    api.synth_trace({"layers": 1, "kv_heads": 1, "q_heads": 2, "head_dim": 64, "tokens": 16, "queries": 2},
                    out=root / "t.safetensors")
    (root / "afile").write_text("a regular file, not a folder\n")
    sweep = {"name": "s", "base": str(MACRO), "traces": [str(root / "t.safetensors")], "queries": 1}
    (root / "s.yaml").write_text(yaml.safe_dump(sweep))
    return root


def _unwritable_cases(root: Path) -> dict[str, tuple[list, Path]]:
    run = ["run", MACRO, "--trace", root / "t.safetensors", "--quiet"]
    bad = root / "afile" / "x"
    return {
        "run --json under a file": (run + ["--json", bad], bad),
        "run --json a folder": (run + ["--json", root], root),
        "run --plots a file": (run + ["--plots", root / "afile"], root / "afile"),
        "run --waveform under a file": (run + ["--waveform", root / "afile" / "w.vcd"], root / "afile" / "w.vcd"),
        "compare --json under a file": (["compare", MACRO, "--trace", root / "t.safetensors", "--quiet", "--json", bad],
                                        bad),
        "sweep --out a file": (["sweep", root / "s.yaml", "--out", root / "afile", "--quiet"], root / "afile"),
        "calibrate-signs --out": (["calibrate-signs", root / "t.safetensors", "--bits", "3", "--candidates", "2",
                                   "--quiet", "--out", bad], bad),
        "calibrate-signs --json": (["calibrate-signs", root / "t.safetensors", "--bits", "3", "--candidates", "2",
                                    "--quiet", "--json", bad], bad),
        "trace synth --out": (["trace", "synth", *SYNTH, "--out", bad], bad),
        "sensitivity --out": (["sensitivity", root / "t.safetensors", "--seeds", "1", "--bits", "3", "--quiet",
                               "--out", root / "afile"], root / "afile"),
    }


@pytest.mark.parametrize("case", list(_unwritable_cases(Path("/"))))
def test_unwritable_output_is_one_line_status_2_naming_the_path(files, case, monkeypatch):
    def no_run(*_, **__):
        raise AssertionError("the run started although its output cannot be written")

    monkeypatch.setattr("axelsim.hw.macro.simulate", no_run)
    argv, path = _unwritable_cases(files)[case]
    status, _, err = _main(argv)
    assert status == 2, err
    assert err.count("\n") == 1 and str(path) in err and "cannot write" in err and "Traceback" not in err


def test_full_disk_while_writing_the_report_is_bad_input(files, tmp_path, monkeypatch):
    def full(*_):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(axio.os, "fsync", full)
    out = tmp_path / "r.json"
    status, _, err = _main(["run", MACRO, "--trace", files / "t.safetensors", "--quiet", "--json", out])
    assert status == 2 and err == f"{out}: cannot write: No space left on device\n"
    assert not out.exists() and _temps(tmp_path) == []


def test_writer_errors_are_output_errors_and_still_os_errors(tmp_path):
    with pytest.raises(axio.OutputError) as caught:
        axio.write_text(tmp_path, "x")  # a folder where the file goes: the rename fails
    assert isinstance(caught.value, UserError) and isinstance(caught.value, OSError)
    assert caught.value.line() == f"{tmp_path}: cannot write: Is a directory"
    assert _temps(tmp_path) == []
    line = axio.output_error(tmp_path / "a\nb", OSError(errno.EACCES, "Permission denied")).line()
    assert "\n" not in line and "a\\nb" in line


def test_waveform_writer_failure_is_bad_input(files, tmp_path, monkeypatch):
    def refuse(result, path):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr("axelsim.hw.waveform.write_waveform", refuse)
    wave = tmp_path / "w.vcd"
    status, _, err = _main(["run", MACRO, "--trace", files / "t.safetensors", "--quiet", "--waveform", wave])
    assert status == 2 and err == f"{wave}: cannot write: Permission denied\n"


def test_bad_waveform_suffix_is_refused_before_the_run(files, tmp_path, monkeypatch):
    monkeypatch.setattr("axelsim.hw.macro.simulate", lambda *a, **k: pytest.fail("the run started"))
    status, _, err = _main(["run", MACRO, "--trace", files / "t.safetensors", "--quiet",
                            "--waveform", tmp_path / "w.txt"])
    assert status == 2 and err.count("\n") == 1 and ".vcd or .json" in err


def test_sweep_points_folder_blocked_by_a_file_is_bad_input(files, tmp_path):
    out = tmp_path / "o"
    out.mkdir()
    (out / "points").write_text("not a folder")
    status, _, err = _main(["sweep", files / "s.yaml", "--out", out, "--quiet", "--no-plots"])
    assert status == 2 and err.count("\n") == 1 and str(out / "points") in err


# ---------------------------------------------------------------------------------------- W2
class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_tqdm_options_quiet_terminal_log_and_forced(monkeypatch):
    monkeypatch.delenv(api.PROGRESS_ENV, raising=False)
    assert api.tqdm_options(False, _Terminal())["disable"] is True
    assert api.tqdm_options(True, _Terminal())["disable"] is False
    assert api.tqdm_options(True, io.StringIO())["disable"] is True  # a log file: no bar
    monkeypatch.setenv(api.PROGRESS_ENV, "1")
    forced = api.tqdm_options(True, io.StringIO())
    assert forced["disable"] is False and forced["mininterval"] >= 10.0
    assert api.tqdm_options(False, io.StringIO())["disable"] is True  # --quiet wins


def test_a_bar_that_fails_in_its_first_second_draws_nothing(monkeypatch):
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    wrap = api.progress_iter("calibrate", True, "layer")
    with pytest.raises(ValueError):
        for _ in wrap(range(5)):
            raise ValueError("bad input met in the first step")
    assert terminal.getvalue() == ""


@pytest.mark.parametrize("command", ["run", "compare", "sweep", "calibrate-signs", "sensitivity"])
def test_every_command_with_progress_has_quiet(command):
    status, out, _ = _main([command, "--help"])
    assert status == 0 and "--quiet" in out


def test_calibrate_signs_error_with_forced_progress_is_one_line(files):
    env = {**os.environ, api.PROGRESS_ENV: "1"}
    done = subprocess.run([sys.executable, "-m", "axelsim", "calibrate-signs", str(files / "t.safetensors"),
                           "--bits", "9"], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 2 and done.stderr == "--bits: expected a bit-width from 1 to 8, got 9\n"


def test_calibrate_signs_quiet_prints_nothing_on_stderr(files):
    status, out, err = _main(["calibrate-signs", files / "t.safetensors", "--bits", "3", "--candidates", "3",
                              "--quiet"])
    assert status == 0 and stderr_lines(err) == [] and "calibrate-signs" in out
