"""Issue 17, second hardening pass: the root causes the independent attack found, one family each.

Families: outputs (file kinds), input file kinds, the signs file, schema bounds, sweep grids,
range options, sparse or huge layer numbers, safetensors layout, descriptors, worker lifetime.
Every case is bad input that must end in one stderr line (exit 2) or a well-defined success,
quickly and in bounded memory; never a traceback, a hang, or a replaced non-regular file.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from axelsim import api, cli
from axelsim import io as axio
from axelsim.config import load_macro, macro_from_dict
from axelsim.config.load import read_yaml_mapping
from axelsim.config.limits import MAX_INDEX_LIST, MAX_MODEL_LAYERS, MAX_SWEEP_POINTS
from axelsim.config.macro import MacroConfig
from axelsim.errors import ConfigError, TraceError
from axelsim.numerics.hadamard import SignRom
from axelsim.trace.format import Trace, load_trace, save_trace
from cli_helpers import run_main
from fuzz_helpers import (REPO, assert_bad_input, check_user_error, fixture_folder, leftovers, macro_dict, macro_workdir,
                          run_cli, safetensors_bytes, split_safetensors, time_limit, trace_arrays)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return fixture_folder(tmp_path_factory.mktemp("second_pass"), macro_name="d64.yaml", trace_name="t.safetensors",
                          dtype="float16", layers=(0, 1), kv_heads=2, q_heads=4, tokens=8, dim=64, positions=(3, 7))


def _fake_report(monkeypatch):
    """`api.simulate` that must not run (outputs are checked first) or returns a tiny report."""
    calls = []

    def fake(*args, **kwargs):
        calls.append(args)
        return {"macro": {"name": "fake"}, "energy_pj": {"total": 1.0}}

    monkeypatch.setattr(api, "simulate", fake)
    monkeypatch.setattr("axelsim.report.tables.format_summary", lambda report: "summary")
    return calls


def _run_json(files, out) -> tuple[int, str, str]:
    return run_main(["run", files / "d64.yaml", "--trace", files / "t.safetensors", "--quiet", "--json", out])


# ============================================================ 1. outputs: file kinds, never replaced
def _char_device(path: Path) -> Path:
    try:
        os.mknod(path, 0o666 | stat.S_IFCHR, os.makedev(1, 3))  # the kernel's null device
    except PermissionError:
        pytest.skip("mknod needs root (CAP_MKNOD)")
    return path


def test_device_node_output_is_written_through_not_replaced(files, tmp_path, monkeypatch):
    _fake_report(monkeypatch)
    node = _char_device(tmp_path / "null")
    status, _, err = _run_json(files, node)
    assert status == 0, err
    assert stat.S_ISCHR(os.stat(node).st_mode), "the device node was replaced"
    assert leftovers(tmp_path, "null") == []


def test_plot_into_device_node_keeps_the_node(tmp_path):
    from matplotlib.figure import Figure

    from axelsim.report.plots import _save

    _char_device(tmp_path / "x.png")
    figure = Figure()
    figure.add_subplot().plot([0, 1], [1, 0])
    _save(figure, tmp_path, "x")
    assert stat.S_ISCHR(os.stat(tmp_path / "x.png").st_mode) and (tmp_path / "x.svg").stat().st_size > 0


def test_dev_full_is_enospc_one_line_exit_2(files, monkeypatch):
    _fake_report(monkeypatch)
    status, _, err = _run_json(files, "/dev/full")
    assert status == 2 and err == "/dev/full: cannot write: No space left on device\n"
    assert stat.S_ISCHR(os.stat("/dev/full").st_mode)


def test_fifo_without_reader_is_refused_and_kept(files, tmp_path, monkeypatch):
    calls = _fake_report(monkeypatch)
    fifo = tmp_path / "out.json"
    os.mkfifo(fifo)
    with time_limit(10):
        status, _, err = _run_json(files, fifo)
    assert status == 2 and err.count("\n") == 1 and "FIFO with no reader" in err and str(fifo) in err
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)
    # (checked at the write: opening a FIFO early to test it would hand its reader an EOF)


def test_fifo_with_reader_receives_the_report(tmp_path):
    fifo = tmp_path / "out.json"
    os.mkfifo(fifo)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()))
    reader.start()
    time.sleep(0.2)
    with time_limit(10):
        axio.write_json(fifo, {"a": [1, 2]})
    reader.join(10)
    assert json.loads(got[0]) == {"a": [1, 2]} and stat.S_ISFIFO(os.stat(fifo).st_mode)


@pytest.mark.parametrize("dangling", [False, True], ids=["to_file", "dangling"])
def test_symlink_output_is_written_through(tmp_path, dangling):
    real = tmp_path / "real.json"
    if not dangling:
        real.write_text("old\n")
    link = tmp_path / "link.json"
    link.symlink_to(real)
    axio.write_json(link, {"new": True})
    assert link.is_symlink() and json.loads(real.read_text()) == {"new": True}
    assert leftovers(tmp_path, "link") == [] and leftovers(tmp_path, "real") == []


@pytest.mark.parametrize("target", ["/proc/axelsim_report.json", "/proc/self/status", "/sys/axelsim.json"])
def test_pseudo_file_system_output_is_refused_before_the_simulation(files, monkeypatch, target):
    calls = _fake_report(monkeypatch)
    status, _, err = _run_json(files, target)
    assert status == 2 and err.count("\n") == 1 and target in err
    assert calls == [], "the simulation ran before the output was refused"


def test_unix_socket_output_is_refused(tmp_path):
    import socket

    path = tmp_path / "s.json"
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(path))
        with pytest.raises(axio.OutputError) as caught:
            axio.write_json(path, {})
    check_user_error(caught.value, (str(path),))
    assert stat.S_ISSOCK(os.stat(path).st_mode)


@pytest.mark.parametrize("argv", [["codebook", "--dim", "8", "--bits", "2"],
                                  ["codebook", "--dim", "8", "--bits", "2", "--json"]], ids=["table", "json"])
def test_stdout_on_a_full_disk_is_one_line_exit_2(argv):
    with open("/dev/full", "w") as full:
        proc = subprocess.run([sys.executable, "-m", "axelsim", *argv], stdout=full, stderr=subprocess.PIPE,
                              text=True, timeout=120, env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert proc.returncode == 2 and proc.stderr == "axelsim: standard output: cannot write: No space left on device\n"


# ============================================================ 6. inputs: regular files only
def _fifo(path: Path) -> Path:
    os.mkfifo(path)
    return path


INPUT_KINDS = {
    "fifo": _fifo,
    "dev_zero": lambda path: Path("/dev/zero"),
    "folder": lambda path: (path.mkdir(), path)[1],
    "symlink_to_dev_zero": lambda path: (path.symlink_to("/dev/zero"), path)[1],
}


@pytest.mark.parametrize("kind", sorted(INPUT_KINDS))
@pytest.mark.parametrize("role", ["macro", "sweep", "signs", "technology", "trace"])
def test_non_regular_input_is_one_line_quickly(files, tmp_path, kind, role):
    """A FIFO (which hung), /dev/zero (which ate memory), a folder: one line naming the file."""
    bad = INPUT_KINDS[kind](tmp_path / f"bad_{role}")
    macro = dict(macro_dict("axelram_d64"))
    if role == "signs":
        macro["signs"] = {"file": str(bad)}
    if role == "technology":
        macro["technology"] = {**macro.get("technology", {}), "file": str(bad)}
    macro_path = tmp_path / "m.yaml"
    macro_path.write_text(yaml.safe_dump(macro))
    calls = {
        "macro": lambda: load_macro(bad),
        "sweep": lambda: api.sweep(bad, tmp_path / "out", progress=False),
        "signs": lambda: SignRom.from_file(bad),
        "technology": lambda: api.simulate(macro_path, files / "t.safetensors", progress=False),
        "trace": lambda: load_trace(bad),
    }
    with time_limit(10), pytest.raises((ConfigError, TraceError)) as caught:
        calls[role]()
    check_user_error(caught.value, (str(bad),))


@pytest.mark.parametrize("kind", sorted(INPUT_KINDS))
def test_capture_text_must_be_a_regular_file(tmp_path, kind):
    """`trace capture --text FIFO` hung on the read; it is refused before the model is even loaded."""
    bad = INPUT_KINDS[kind](tmp_path / "text.txt")
    with time_limit(10):
        status, _, err = run_main(["trace", "capture", "--model", tmp_path / "no_model", "--text", bad,
                                   "--tokens", "8", "--out", tmp_path / "o.safetensors"])
    assert status == 2 and err.count("\n") == 1 and str(bad) in err, err
    assert not (tmp_path / "o.safetensors").exists()


def test_oversized_yaml_is_refused_without_reading_it_all(tmp_path):
    from axelsim.config.load import MAX_YAML_BYTES

    path = tmp_path / "big.yaml"
    path.write_bytes(b"# " + b"x" * (MAX_YAML_BYTES + 10) + b"\n")
    with pytest.raises(ConfigError) as caught:
        load_macro(path)
    check_user_error(caught.value, (str(path),))
    assert str(MAX_YAML_BYTES) in caught.value.line()


# ============================================================ 4. the signs file, through the hardened reader
def _signs_text(layers: dict, n_layers=None, dim=8) -> str:
    data = {"format": "axelsim-signs", "version": 1, "dim": dim, "n_layers": n_layers or len(layers),
            "provenance": "test", "layers": layers}
    return yaml.safe_dump(data, sort_keys=False)


GOOD_ROW = "+-" * 4
BILLION_LAUGHS = "\n".join(["a0: &a0 [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]"]
                           + [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]) + "\n"
HOSTILE_SIGNS = {
    "latin1": "format: axelsim-signs\nprovenance: caf\xe9\n".encode("latin-1"),
    "int_tag": b"format: axelsim-signs\ndim: !!int x\n",
    "digits_5000": ("format: axelsim-signs\ndim: " + "9" * 5000 + "\n").encode(),
    "nested_20000": ("format: axelsim-signs\nlayers: " + "[" * 20000 + "]" * 20000 + "\n").encode(),
    "alias_bomb": BILLION_LAUGHS.encode(),
    "python_object": b"format: !!python/object/apply:os.system ['true']\n",
    "n_layers_1e9": _signs_text({0: GOOD_ROW}, n_layers=10**9).encode(),
    "mixed_keys": b"format: axelsim-signs\ndim: 8\nn_layers: 1\nlayers: {0: '+-+-+-+-', a: '+-+-+-+-'}\n",
    "nul": b"format: axelsim-signs\x00\n",
    "bad_row": _signs_text({0: "+-+-+-+x"}).encode(),
}


@pytest.mark.parametrize("case", sorted(HOSTILE_SIGNS))
def test_hostile_signs_file_is_one_line_fast(tmp_path, case):
    path = tmp_path / "signs.yaml"
    path.write_bytes(HOSTILE_SIGNS[case])
    with time_limit(3), pytest.raises(ConfigError) as caught:
        SignRom.from_file(path)
    check_user_error(caught.value, (str(path),))


def test_hostile_signs_file_through_the_cli_is_exit_2(files, tmp_path):
    macro_workdir(tmp_path)
    signs = tmp_path / "signs.yaml"
    signs.write_bytes(HOSTILE_SIGNS["digits_5000"])
    macro = {**macro_dict("axelram_d64"), "signs": {"file": str(signs)}}
    (tmp_path / "m.yaml").write_text(yaml.safe_dump(macro))
    status, _, err = run_main(["run", tmp_path / "m.yaml", "--trace", files / "t.safetensors", "--quiet"])
    assert status == 2 and err.count("\n") == 1 and str(signs) in err


def test_signs_file_round_trip_still_loads(tmp_path):
    rom = SignRom.from_seed(3, 5, 16)
    rom.to_file(tmp_path / "s.yaml")
    back = SignRom.from_file(tmp_path / "s.yaml")
    assert np.array_equal(back.vectors, rom.vectors) and back.n_layers == 5


# ============================================================ 7. every integer of the schema is bounded
def _int_fields(model=MacroConfig, prefix=""):
    """(dotted key, field) for every field of the schema whose type admits an int (not a bool)."""
    from typing import get_args

    from pydantic import BaseModel

    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            yield from _int_fields(annotation, f"{prefix}{name}.")
            continue
        kinds = get_args(annotation) or (annotation,)
        if any(kind is int for kind in kinds) or annotation is float:
            yield f"{prefix}{name}", field


INT_KEYS = [key for key, _ in _int_fields()]


def test_schema_walk_finds_the_counts():
    """The walk sees the sections (so a field added to any of them is walked too)."""
    assert {"sram.banks", "sram.rows_per_bank", "sram.row_bits", "sram.read_ports", "read_path.pipelines",
            "value_path.bin_lanes", "write_path.comparators", "clock_hz", "head_dim", "signs.seed"} <= set(INT_KEYS)


@pytest.mark.parametrize("key", INT_KEYS)
@pytest.mark.parametrize("huge", [2**64, 10**400], ids=["2^64", "1e400"])
def test_every_integer_key_has_an_upper_bound(key, huge):
    """Any int field, present or added later, must refuse a huge value by name (exit 2 in the CLI)."""
    data = read_yaml_mapping(REPO / "macros" / "axelram_paper.yaml", "macro")
    *sections, leaf = key.split(".")
    node = data
    for section in sections:  # nested sections (baselines.kivi.window) one level at a time
        node = node.setdefault(section, {})
    node[leaf] = huge
    with pytest.raises(ConfigError) as caught:
        macro_from_dict(data, "m.yaml")
    check_user_error(caught.value, ("m.yaml",))
    assert key in caught.value.line(), caught.value.line()


@pytest.mark.parametrize("clock", [5e-324, 1e-3, 1e300])
def test_clock_is_bounded_both_ways(clock):
    with pytest.raises(ConfigError) as caught:
        macro_from_dict({**read_yaml_mapping(REPO / "macros" / "axelram_paper.yaml", "macro"), "clock_hz": clock},
                        "m.yaml")
    assert "clock_hz" in caught.value.line()


def test_sweep_point_that_faults_is_an_error_row_and_the_sweep_goes_on(tmp_path):
    import test_sweep_engine as engine

    from axelsim import sweep

    def faulty(point):
        if point.overrides.get("bits") == 4:
            raise MemoryError("Unable to allocate 2**63 bytes")
        return engine.fake_evaluate(point)

    plan = engine.plan(engine.write_sweep(tmp_path, grid={"bits": [2, 4], "read_path.pipelines": [1]}))
    outcome = sweep.run_sweep(plan, tmp_path / "out", evaluate=faulty, progress=False, plots=False)
    by_bits = {row["set.bits"]: row for row in outcome.rows if row["set.bits"] is not None}
    assert by_bits[2]["status"] == "ok" and by_bits[4]["status"] == "error"
    assert "MemoryError" in by_bits[4]["error"]


@pytest.mark.parametrize("content", [{"other": "schema"}, {"point": {"id": "x"}, "status": "ok"}, [1, 2], "text"])
def test_point_file_of_another_schema_is_redone_not_a_key_error(tmp_path, content):
    import test_sweep_engine as engine

    from axelsim import sweep

    plan = engine.plan(engine.write_sweep(tmp_path, grid={"bits": [2]}, points=[]))
    out = tmp_path / "out"
    first = plan.points[0]
    sweep.result_path(out, first).parent.mkdir(parents=True)
    sweep.result_path(out, first).write_text(json.dumps(content) if not isinstance(content, str) else content)
    outcome = sweep.run_sweep(plan, out, evaluate=engine.fake_evaluate, progress=False, plots=False)
    assert outcome.evaluated == len(plan.points) and all(row["status"] == "ok" for row in outcome.rows)


def test_collect_rows_reports_a_foreign_point_file_as_an_error_row(tmp_path):
    import test_sweep_engine as engine

    from axelsim import sweep

    plan = engine.plan(engine.write_sweep(tmp_path, grid={"bits": [2]}, points=[]))
    out = tmp_path / "out"
    path = sweep.result_path(out, plan.points[0])
    path.parent.mkdir(parents=True)
    path.write_text('{"unrelated": true}')
    rows = sweep.collect_rows(plan, out)
    assert rows[0]["status"] == "error" and str(path) in rows[0]["error"]


# ============================================================ 3. sweep grids: checked before expanded
def _sweep_file(tmp_path, grid) -> Path:
    import test_sweep_engine as engine

    return engine.write_sweep(tmp_path, grid=grid, points=[])


def _grid_file(tmp_path, files, grid) -> Path:
    """A sweep YAML over the module's d64 macro and trace with this grid."""
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump({"base": str(files / "d64.yaml"), "traces": [str(files / "t.safetensors")],
                                    "grid": grid}))
    return path


def test_unknown_grid_key_among_24_axes_is_named_at_once(tmp_path, files):
    path = _grid_file(tmp_path, files, {f"nope{i}.key": [1, 2] for i in range(24)})
    with time_limit(5), pytest.raises(ConfigError) as caught:
        api.sweep(path, tmp_path / "out", progress=False)
    check_user_error(caught.value, (str(path),))
    assert "nope0.key" in caught.value.line()


KNOWN_KEYS = ["sram.banks", "sram.rows_per_bank", "sram.read_ports", "sram.write_ports", "sram.read_latency_cycles",
              "sram.write_latency_cycles", "write_path.norm_squarers", "write_path.fwht_butterflies",
              "write_path.comparators", "write_path.threshold_multipliers", "read_path.table_multipliers",
              "read_path.lookups_per_cycle", "read_path.norm_multipliers", "read_path.pipelines"]


@pytest.mark.parametrize("keys, values", [(14, 2), (3, 1024), (2, 1000)], ids=["2^14", "2^30", "10^6"])
def test_huge_grid_is_refused_with_its_size(tmp_path, files, keys, values):
    grid = {key: list(range(1, values + 1)) for key in KNOWN_KEYS[:keys]}
    total = values ** keys
    path = _grid_file(tmp_path, files, grid)
    with time_limit(5), pytest.raises(ConfigError) as caught:
        api.sweep(path, tmp_path / "out", progress=False)
    check_user_error(caught.value, (str(path),))
    assert total > MAX_SWEEP_POINTS
    assert f"the sweep has {total:,} points" in caught.value.line() and "--max-points" in caught.value.line()
    assert not (tmp_path / "out").exists()


def test_max_points_is_the_stated_limit(tmp_path):
    import test_sweep_engine as engine

    from axelsim import sweep

    path = _sweep_file(tmp_path, {"bits": [2, 3, 4], "read_path.pipelines": [1, 2]})  # 6 x 2 traces = 12
    with pytest.raises(ConfigError) as caught:
        sweep.plan_sweep(path, resolve=engine.fake_resolve, digest=engine.fake_digest, max_points=11)
    assert "the sweep has 12 " in caught.value.line()
    assert len(sweep.plan_sweep(path, resolve=engine.fake_resolve, digest=engine.fake_digest,
                                max_points=12).points) > 0


def test_variants_are_lazy():
    from axelsim.sweep import SweepSpec, grid_size, variants

    spec = SweepSpec(base="m.yaml", traces=["t"], grid={f"k{i}": [1, 2] for i in range(60)})
    assert grid_size(spec) == 2 ** 60
    first = next(iter(variants(spec)))
    assert first == {f"k{i}": 1 for i in range(60)}


def test_cli_sweep_max_points_flag(tmp_path, files):
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump({"base": str(files / "d64.yaml"), "traces": [str(files / "t.safetensors")],
                                    "grid": {"read_path.pipelines": [1, 2]}}))
    status, _, err = run_main(["sweep", path, "--out", tmp_path / "out", "--max-points", "1", "--quiet",
                               "--no-plots"])
    assert status == 2 and err.count("\n") == 1 and "the sweep has 2 points" in err


# ============================================================ 8. range options and selection messages
@pytest.mark.parametrize("text", ["0-999999999", "0-999999999999", "0-70000", ",".join(["0-60000"] * 2)])
def test_range_option_is_bounded_before_expanding(text):
    with time_limit(2), pytest.raises(Exception) as caught:
        cli._index_list(text)
    assert type(caught.value).__name__ == "ArgumentTypeError" and str(MAX_INDEX_LIST) in str(caught.value)


@pytest.mark.parametrize("text", ["1-", "0-", "-3", "", "1,,2", "3-1", "a-b", "1-2-3", "9" * 5000, "1-" + "9" * 30])
def test_malformed_range_is_an_error_not_one_index(text):
    with pytest.raises(Exception) as caught:
        cli._index_list(text)
    assert type(caught.value).__name__ == "ArgumentTypeError"


def test_ranges_mean_what_they_say():
    assert cli._index_list("0,2,5-7") == [0, 2, 5, 6, 7] and cli._index_list("1..3") == [1, 2, 3]


@pytest.mark.parametrize("argv", [["sensitivity", "T", "--seeds", "1-999999999", "--out", "o"],
                                  ["run", "m.yaml", "--trace", "T", "--layers", "0-999999999"],
                                  ["run", "m.yaml", "--trace", "T", "--layers", "1-"]])
def test_range_options_in_the_cli_are_one_usage_line(argv):
    with time_limit(5):
        status, _, err = run_main(argv)
    assert status == 2 and err.count("\n") == 1 and "Traceback" not in err


@pytest.mark.parametrize("option, value, words", [
    ("--heads", "5", ["--heads", "KV head numbers in 0..1", "got 5"]),
    ("--layers", "7", ["--layers 0-1", "got 7"]),
    ("--queries", "200", ["--queries", "from 1 to 2", "got 200"]),
])
def test_selection_out_of_range_answers_in_user_terms(files, option, value, words):
    status, _, err = run_main(["run", files / "d64.yaml", "--trace", files / "t.safetensors", "--quiet",
                               option, value])
    assert status == 2 and err.count("\n") == 1 and "np." not in err and "int64" not in err, err
    for word in words:
        assert word in err, err


def _options(parser, *path):
    for name in path:
        parser = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction").choices[name]
    return parser


@pytest.mark.parametrize("path", [("sweep",), ("calibrate-signs",), ("trace", "capture"), ("run",)])
def test_every_option_has_help_text(path):
    parser = _options(cli.build_parser(), *path)
    missing = [a.dest for a in parser._actions if a.help in (None, "") and a.dest != "help"]
    assert missing == [], f"{' '.join(path)}: no help for {missing}"


def test_help_points_only_to_docs_that_exist():
    import re

    parser = cli.build_parser()
    texts = []
    for path in [("run",), ("compare",), ("sweep",), ("codebook",), ("calibrate-signs",), ("sensitivity",),
                 ("trace", "capture"), ("trace", "synth"), ("trace", "info")]:
        texts.append(_options(parser, *path).format_help())
    for doc in set(re.findall(r"docs/[\w.]+\.md", "\n".join(texts))):
        assert (REPO / doc).is_file(), f"--help names {doc}, which does not exist"


def test_capture_help_example_is_offline():
    text = _options(cli.build_parser(), "trace", "capture").format_help()
    assert "--gguf-file" in text.split("examples:")[1] and "HuggingFaceTB/" not in text


# ============================================================ 2. work bounded by what the file holds
def _meta(**changes):
    meta = {"format": "axelsim-kv-trace", "version": "1", "model": "m", "source": "s", "n_layers": "1",
            "kv_heads": "1", "q_heads": "1", "head_dim": "8", "tokens": "2", "dtype": "float32"}
    meta.update(changes)
    return meta


def _one_layer_file(path: Path, layer: int, **meta) -> Path:
    k = np.zeros((1, 2, 8), np.float32).tobytes()
    header = {"__metadata__": _meta(**meta),
              f"layers.{layer}.k": {"dtype": "F32", "shape": [1, 2, 8], "data_offsets": [0, 64]},
              f"layers.{layer}.q": {"dtype": "F32", "shape": [1, 1, 8], "data_offsets": [64, 96]},
              "q_positions": {"dtype": "I64", "shape": [1], "data_offsets": [96, 104]}}
    path.write_bytes(safetensors_bytes(header, k + np.ones(8, np.float32).tobytes() + np.int64(1).tobytes()))
    return path


@pytest.mark.parametrize("layer, meta", [(10**9, {}), (MAX_MODEL_LAYERS, {}), (0, {"model_layers": str(10**9)}),
                                         (0, {"n_layers": str(10**9)}), (0, {"tokens": "9" * 5000})],
                         ids=["layer_1e9", "layer_1024", "model_layers_1e9", "n_layers_1e9", "tokens_5000_digits"])
def test_huge_layer_numbers_are_refused_at_load(tmp_path, layer, meta):
    path = _one_layer_file(tmp_path / "t.safetensors", layer, **meta)
    with time_limit(5), pytest.raises(TraceError) as caught:
        load_trace(path)
    check_user_error(caught.value, (str(path),))


def test_sign_rom_of_a_sparse_trace_builds_only_the_layers_it_holds(tmp_path):
    from axelsim.config import load_macro as load

    path = _one_layer_file(tmp_path / "t.safetensors", 900, head_dim="8")
    trace = load_trace(path)
    macro = tmp_path / "m.yaml"
    macro.write_text(yaml.safe_dump({"head_dim": 8, "bits": 3, "write_path": {
        "norm_squarers": 8, "fwht_butterflies": 4, "comparators": 56}, "read_path": {
        "table_multipliers": 64, "lookups_per_cycle": 8}, "value_path": {"enabled": False}}))
    macro_workdir(tmp_path)
    rom = api.sign_rom(load(macro), trace)
    assert rom.n_layers == 901 and rom.rows == {}
    assert np.array_equal(rom.vector(900), SignRom.from_seed(0, 1000, 8).vectors[900])
    assert list(rom.rows) == [900]


# ============================================================ 10. safetensors layout, descriptors, warnings
def _layout_case(files, case: str) -> bytes:
    header, body = split_safetensors((files / "t.safetensors").read_bytes())
    names = sorted((n for n in header if n != "__metadata__"), key=lambda n: header[n]["data_offsets"])
    if case == "trailing":
        return safetensors_bytes(header, body + b"\0" * 16)
    if case == "overlap":  # the second tensor re-reads the first one's bytes
        first, second = names[0], names[1]
        span = header[second]["data_offsets"][1] - header[second]["data_offsets"][0]
        header[second]["data_offsets"] = [0, span]
        return safetensors_bytes(header, body)
    if case == "gap":
        last = names[-1]
        begin, end = header[last]["data_offsets"]
        header[last]["data_offsets"] = [begin + 8, end + 8]
        return safetensors_bytes(header, body + b"\0" * 8)
    raise AssertionError(case)


@pytest.mark.parametrize("case", ["trailing", "overlap", "gap"])
def test_safetensors_layout_must_tile_the_data(files, tmp_path, case):
    path = tmp_path / f"{case}.safetensors"
    path.write_bytes(_layout_case(files, case))
    with pytest.raises(TraceError) as caught:
        load_trace(path)
    check_user_error(caught.value, (str(path),))


def _open_descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_a_400_layer_trace_holds_one_descriptor(tmp_path):
    layers = tuple(range(400))
    k, v, q, pos = trace_arrays(layers=layers, kv_heads=1, q_heads=1, tokens=2, dim=8, positions=(1,))
    save_trace(Trace.from_arrays(k, v, q, pos), tmp_path / "t.safetensors")
    before = _open_descriptors()
    trace = load_trace(tmp_path / "t.safetensors")
    assert _open_descriptors() - before <= 1
    assert trace.n_layers == 400 and float(trace.k(399).sum()) == pytest.approx(float(k[399].sum()), rel=1e-5)


def test_a_400_layer_run_under_ulimit_n_64(files, tmp_path):
    """The whole CLI replays a 400-layer trace with at most 64 descriptors (one per tensor needed 1200)."""
    k, v, q, pos = trace_arrays(layers=tuple(range(400)), kv_heads=1, q_heads=1, tokens=2, dim=64, positions=(1,))
    save_trace(Trace.from_arrays(k, v, q, pos, dtype="float16"), tmp_path / "t.safetensors")
    code = ("import resource, sys; resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64)); "
            "from axelsim.cli import main; sys.exit(main(sys.argv[1:]))")
    proc = subprocess.run([sys.executable, "-c", code, "trace", "info", str(tmp_path / "t.safetensors")],
                          capture_output=True, text=True, timeout=300, env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert proc.returncode == 0 and "Too many open files" not in proc.stderr, proc.stderr[-500:]


# ============================================================ 9. workers die with a killed sweep
def _children(pid: int) -> set[int]:
    found = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.add(int(entry))
    return found


def _descendants(pid: int) -> set[int]:
    found, todo = set(), [pid]
    while todo:
        children = _children(todo.pop())
        found |= children
        todo.extend(children)
    return found


def _running(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_sigkill_of_a_sweep_leaves_no_worker_behind(tmp_path):
    """Kill -9 a `--workers 2` sweep mid-point: workers, forkserver and resource tracker all end
    within a few seconds (they survived a minute or more before)."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), str(REPO / "tests")]))
    victim = subprocess.Popen([sys.executable, str(REPO / "tests" / "sweep_workers.py"), str(tmp_path / "out")],
                              env=env, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while len(_descendants(victim.pid)) < 4 and time.monotonic() < deadline:  # tracker, forkserver, 2 workers
        time.sleep(0.05)
    helpers = _descendants(victim.pid)
    assert len(helpers) >= 4, f"the sweep started only {len(helpers)} helper processes"
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=30)
    deadline = time.monotonic() + 10
    while any(_running(pid) for pid in helpers) and time.monotonic() < deadline:
        time.sleep(0.1)
    survivors = [pid for pid in helpers if _running(pid)]
    for pid in survivors:
        os.kill(pid, signal.SIGKILL)
    assert survivors == [], f"{len(survivors)} processes outlived the killed sweep by 10 s"
