"""The CLI's bad-input mapping: exit 2, one line on stderr naming the file, no traceback.

In-process (`cli.main`, stderr captured) for the fuzzed bulk; a handful of subprocess runs of
`python -m axelsim` prove the mapping as a user meets it (interpreter start, imports, stderr).
"""

from __future__ import annotations

import contextlib
import itertools
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from cli_helpers import run_main
from fuzz_helpers import (KNOWN_FAULTS, assert_bad_input, fixture_folder, fuzz_settings, known_fault, macro_dict,
                          mutated_macro, run_cli, split_safetensors, safetensors_bytes, time_limit, yaml_garbage)

_counter = itertools.count()


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A folder with a good d=64 macro, a good d=64 trace and room for bad ones."""
    return fixture_folder(tmp_path_factory.mktemp("fuzz_cli"), dtype="float16", layers=(0, 1), kv_heads=1,
                          q_heads=2, tokens=8, dim=64, positions=(3, 7))


def _main(argv) -> tuple[int, str, str]:
    """cli.main in this process: (exit status, stdout, stderr); a traceback or a hang fails the test."""
    with time_limit(120):  # a hang guard, not a timing: the first call imports matplotlib (slow under load)
        return run_main(argv)


def _check_bad_or_ok(status: int, err: str, *names: str, ok_allowed: bool = True) -> None:
    assert "Traceback" not in err, err
    if status == 0 and ok_allowed:
        return
    assert status == 2, f"exit {status}: {err!r}"
    assert err.count("\n") == 1 and err.endswith("\n") and "\r" not in err, f"not one line: {err!r}"
    if names and not any(name in err for name in names):
        raise AssertionError(f"{err!r} names none of {names}")


# ------------------------------------------------------------------------------ in-process fuzz
@fuzz_settings()
@given(data=st.one_of(mutated_macro().map(lambda d: yaml.safe_dump(d, allow_unicode=True)), yaml_garbage))
def test_fuzz_cli_run_with_bad_macro(files, data):
    """`axelsim run MACRO --trace MISSING`: whatever MACRO holds, the exit is 2 and names a file."""
    path = files / f"m{next(_counter)}.yaml"
    path.write_bytes(data.encode("utf-8", "surrogatepass"))
    status, _, err = _main(["run", path, "--trace", files / "absent.safetensors", "--quiet"])
    _check_bad_or_ok(status, err, str(path), "absent.safetensors", ok_allowed=False)


@fuzz_settings()
@given(cut=st.floats(0, 1), flips=st.lists(st.tuples(st.floats(0, 1), st.integers(0, 7)), max_size=3),
       drop=st.sampled_from([None, "layers.0.k", "layers.1.v", "layers.0.q", "q_positions"]))
def test_fuzz_cli_trace_info_and_run_with_damaged_trace(files, cut, flips, drop):
    """`trace info` and `run` on a truncated, bit-flipped or tensor-less trace: 0 or 2, never a traceback."""
    raw = (files / "good.safetensors").read_bytes()
    if drop is not None:
        header, body = split_safetensors(raw)
        header.pop(drop)
        raw = safetensors_bytes(header, body)
    raw = bytearray(raw[: max(1, int(len(raw) * cut))] if cut < 1 else raw)
    for where, bit in flips:
        raw[min(int(where * len(raw)), len(raw) - 1)] ^= 1 << bit
    path = files / f"t{next(_counter)}.safetensors"
    path.write_bytes(bytes(raw))
    status, _, err = _main(["trace", "info", path])
    _check_bad_or_ok(status, err, str(path))
    if status == 0:
        return  # a flip that still gives a valid trace; `run` would then simulate (covered elsewhere)
    status, _, err = _main(["run", files / "good.yaml", "--trace", path, "--quiet"])
    _check_bad_or_ok(status, err, str(path), ok_allowed=False)


@fuzz_settings()
@given(argv=st.lists(st.one_of(
    st.sampled_from(["run", "compare", "sweep", "codebook", "calibrate-signs", "trace", "info", "synth",
                     "--dim", "--bits", "--trace", "--layers", "--heads", "--queries", "--json", "--out",
                     "--fidelity", "--workers", "--tokens", "--head-dim", "--seed", "0", "3", "-1", "96",
                     "1-0", "x", "", "--", "-", "key", "burst"]),
    st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=6)),
    max_size=6))
def test_fuzz_cli_argument_garbage(files, argv):
    """Random command lines: a usage error or a user error is one line with exit 2; no traceback."""
    with contextlib.chdir(files):
        status, out, err = _main(argv)
    assert "Traceback" not in err, err
    if status == 1:
        pytest.fail(f"internal fault on argv {argv!r}: {err!r}")
    if status not in (0, 2):
        pytest.fail(f"exit {status} on argv {argv!r}: {err!r}")
    if status == 2:
        assert err.count("\n") == 1 or "usage:" in err, f"argv {argv!r}: {err!r}"


# ------------------------------------------------------------------------------ real subprocess
SUBPROCESS_MACROS = {
    "yaml_syntax": "head_dim: [\n",
}
"""A few real subprocess runs (each costs ~1 s of interpreter start); in-process fuzzing does the bulk."""


def _damaged_traces(files):
    raw = (files / "good.safetensors").read_bytes()
    header, body = split_safetensors(raw)
    missing = dict(header)
    missing.pop("layers.1.k")
    nan_body = bytearray(body)
    begin = header["layers.0.q"]["data_offsets"][0]
    nan_body[begin:begin + 2] = np.array([np.nan], dtype=np.float16).tobytes()
    return {"truncated": raw[: len(raw) - 7], "missing_tensor": safetensors_bytes(missing, body),
            "nan": safetensors_bytes(header, bytes(nan_body)), "text_file": b"not a trace\n",
            "wrong_format": safetensors_bytes({**header, "__metadata__": {**header["__metadata__"], "format": "gguf"}},
                                              body)}


def test_fuzz_subprocess_bad_input_exit_2(files):
    """Real `python -m axelsim` runs (concurrently, for speed): bad macros, bad traces, a mismatch."""
    cases = []  # (label, argv, names the line must hold, output that must not appear)
    for case, text in SUBPROCESS_MACROS.items():
        path = files / f"sub_{case}.yaml"
        path.write_bytes(text if isinstance(text, bytes) else text.encode())
        out = files / f"sub_{case}.json"
        cases.append((case, ["run", path, "--trace", files / "good.safetensors", "--quiet", "--json", out],
                      (str(path),), out))
    for case, data in _damaged_traces(files).items():
        if case in ("wrong_format", "text_file", "missing_tensor"):
            continue  # covered in-process
        path = files / f"sub_{case}.safetensors"
        path.write_bytes(data)
        out = files / f"sub_{case}.json"
        if case == "nan":
            cases.append((f"info {case}", ["trace", "info", path], (str(path),), None))
        else:
            cases.append((case, ["run", files / "good.yaml", "--trace", path, "--quiet", "--json", out],
                          (str(path),), out))
    macro = files / "d128.yaml"
    macro.write_text(yaml.safe_dump(macro_dict("axelram_paper")))
    cases.append(("head_dim mismatch", ["run", macro, "--trace", files / "good.safetensors", "--quiet"],
                  ("good.safetensors",), None))
    with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
        procs = list(pool.map(lambda case: run_cli(*case[1]), cases))
    for (label, argv, names, out), proc in zip(cases, procs):
        try:
            line = assert_bad_input(proc, *names)
        except AssertionError as error:
            raise AssertionError(f"{label}: {error}") from None
        assert out is None or not out.exists(), f"{label}: {out} written"
        if label == "head_dim mismatch":
            assert "head_dim" in line and "d128.yaml" in line


def test_known_faults_registry_names_owner_files():
    """Every tolerated defect names the file whose owner must fix it (and the test that pins it)."""
    for name, (owner, _) in KNOWN_FAULTS.items():
        assert owner.startswith("axelsim/"), name
    assert known_fault(ValueError("unrelated")) is None
