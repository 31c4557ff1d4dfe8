"""The command line: help, exit codes, one-line errors, and the helper commands end to end.

In-process calls (`cli.main([...])`) cover parsing and error mapping cheaply; a few subprocess
runs check the installed entry point as a user meets it.
"""

import json
import subprocess
import sys

import pytest

from axelsim import cli

COMMANDS = (["run"], ["compare"], ["sweep"], ["codebook"], ["calibrate-signs"],
            ["trace"], ["trace", "capture"], ["trace", "synth"], ["trace", "info"])


def axelsim(*args, cwd=None):
    """Run `python -m axelsim ARGS` in a subprocess; returns the CompletedProcess."""
    return subprocess.run([sys.executable, "-m", "axelsim", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=120)


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_every_command_has_help_with_examples(command, capsys):
    with pytest.raises(SystemExit) as done:
        cli.main([*command, "--help"])
    assert done.value.code == 0
    text = capsys.readouterr().out
    assert "usage: axelsim" in text
    if command != ["trace"]:
        assert "examples:" in text


def test_usage_error_is_one_line_and_status_2(capsys):
    with pytest.raises(SystemExit) as done:
        cli.main(["codebook", "--dim", "64"])
    assert done.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--bits" in err


@pytest.mark.parametrize("text", ["1,x", "3-1", "-2"])
def test_bad_index_list_is_a_usage_error(text, capsys):
    with pytest.raises(SystemExit) as done:
        cli.main(["run", "m.yaml", "--trace", "t.safetensors", "--layers", text])
    assert done.value.code == 2


def test_index_list_accepts_ranges():
    assert cli._index_list("0,2,5-7") == [0, 2, 5, 6, 7]


def test_user_error_prints_its_line_and_returns_2(capsys, tmp_path):
    assert cli.main(["codebook", "--dim", "96", "--bits", "3"]) == 2
    assert capsys.readouterr().err == "codebook: dim: expected a power of two from 8 to 1024, got 96\n"
    assert cli.main(["trace", "info", str(tmp_path / "missing.safetensors")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "missing.safetensors" in err


def test_internal_fault_is_one_line_with_hint_and_returns_1(monkeypatch, capsys):
    from axelsim import api

    def broken(dim, bits):
        raise RuntimeError("adder tree\nexploded")

    monkeypatch.setattr(api, "codebook", broken)
    monkeypatch.delenv("AXELSIM_DEBUG", raising=False)
    assert cli.main(["codebook", "--dim", "64", "--bits", "3"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "RuntimeError: adder tree exploded" in err and "AXELSIM_DEBUG=1" in err
    monkeypatch.setenv("AXELSIM_DEBUG", "1")
    assert cli.main(["codebook", "--dim", "64", "--bits", "3"]) == 1
    assert "Traceback" in capsys.readouterr().err


def test_codebook_json_has_the_papers_rom_size(capsys):
    assert cli.main(["codebook", "--dim", "128", "--bits", "3", "--json"]) == 0
    book = json.loads(capsys.readouterr().out)
    assert book["rom_bytes"] == 30 and book["levels"] == 8
    assert abs(book["centroids_n01"][-1] - 2.1519) < 1e-3


def test_trace_synth_info_and_calibrate_end_to_end(tmp_path):
    trace = tmp_path / "s.safetensors"
    made = axelsim("trace", "synth", "--layers", "2", "--kv-heads", "1", "--q-heads", "2", "--head-dim", "32",
                   "--tokens", "64", "--queries", "4", "--norm-ratio", "6", "--out", trace)
    assert made.returncode == 0, made.stderr
    assert trace.exists() and "2 layers" in made.stdout

    info = axelsim("trace", "info", trace, "--json")
    assert info.returncode == 0, info.stderr
    data = json.loads(info.stdout)
    assert (data["n_layers"], data["head_dim"], data["tokens"], data["queries"]) == (2, 32, 64, 4)
    assert data["key_norm_layer_max_min_ratio"] > 3

    signs = tmp_path / "signs.yaml"
    table = tmp_path / "calibration.json"
    calibrated = axelsim("calibrate-signs", trace, "--bits", "3", "--candidates", "8", "--out", signs, "--json", table)
    assert calibrated.returncode == 0, calibrated.stderr
    assert signs.exists() and str(signs) in calibrated.stdout
    summary = json.loads(table.read_text())
    assert [row["layer"] for row in summary["layers"]] == [0, 1]
    assert all(row["key_mse_after"] <= row["key_mse_before"] for row in summary["layers"])


def test_bad_trace_option_is_one_line_status_2_and_writes_nothing(tmp_path):
    out = tmp_path / "bad.safetensors"
    made = axelsim("trace", "synth", "--q-heads", "3", "--kv-heads", "2", "--out", out)
    assert made.returncode == 2
    assert made.stderr.count("\n") == 1 and "q_heads" in made.stderr and "Traceback" not in made.stderr
    assert list(tmp_path.iterdir()) == []
