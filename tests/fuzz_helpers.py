"""Shared pieces of the fuzz and hardening suites (tests/test_fuzz_*.py, tests/test_hardening_*.py).

The contract under test is SPEC.md's 'Bad input': every input ends in success or in one
`UserError` whose line names the file and fits on one line; never another exception, a hang or
a half-written file. `outcome()` runs one call under a time limit and enforces that.

Known faults: a defect already reported (docs in /tmp/fuzz_findings.md and the hardening report)
is tolerated by the fuzzers through `KNOWN_FAULTS`, so one known bug does not mask every other
finding; each one also has a strict xfail regression test (test_hardening_known_bugs.py). When
its owner fixes it, the xfail turns into a failure: remove the xfail mark AND the entry here.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import traceback
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

import numpy as np
import yaml
from hypothesis import settings
from hypothesis import strategies as st

from axelsim.errors import UserError

REPO = Path(__file__).resolve().parents[1]
MACROS = REPO / "macros"
FUZZ_EXAMPLES = int(os.environ.get("AXELSIM_FUZZ_EXAMPLES", "30"))


def fuzz_settings(**overrides: Any) -> settings:
    """The fuzz profile (tests/conftest.py) with per-test overrides, e.g. fewer examples."""
    return settings(settings.get_profile("axelsim-fuzz"), **overrides)


def scaled(fraction: float, minimum: int = 1) -> int:
    """A share of AXELSIM_FUZZ_EXAMPLES, for the slower fuzz tests (subprocesses)."""
    return max(minimum, int(FUZZ_EXAMPLES * fraction))


# --------------------------------------------------------------------------------- time limit
class Hang(Exception):
    """Raised inside a call that ran past its time limit (a hang, as far as the user can tell)."""


@contextlib.contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Raise `Hang` inside the body after `seconds` of wall time (main thread, POSIX only)."""

    def _expired(signum, frame):
        raise Hang(f"no result after {seconds} s")

    previous = signal.signal(signal.SIGALRM, _expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


# ------------------------------------------------------------------------------- known faults
def _frames(exc: BaseException) -> list[traceback.FrameSummary]:
    return list(traceback.extract_tb(exc.__traceback__))


def _in(exc: BaseException, filename: str, function: Optional[str] = None) -> bool:
    """True when the traceback passes through `function` of a file ending with `filename`."""
    return any(f.filename.replace(os.sep, "/").endswith(filename) and (function is None or f.name == function)
               for f in _frames(exc))


# id -> (owner file, predicate on the escaped exception or the multi-line UserError)
KNOWN_FAULTS: dict[str, tuple[str, Callable[[BaseException], bool]]] = {
    # M1-M7 (config/load.py) fixed in b3073c4; T1-T6 (trace/format.py) fixed by the trace owner;
    # S1-S3 (sweep.py) fixed in 815a33b: no open defect is tolerated now.
}


def known_fault(exc: BaseException) -> Optional[str]:
    """The id of the already-reported defect this exception is, or None."""
    for name, (_, matches) in KNOWN_FAULTS.items():
        try:
            if matches(exc):
                return name
        except Exception:  # a predicate must never hide the real failure
            continue
    return None


class KnownFault:
    """The outcome of a call that hit an already-reported defect (tolerated by the fuzzers)."""

    def __init__(self, name: str, exc: BaseException):
        self.name, self.exc = name, exc

    def __repr__(self) -> str:
        return f"KnownFault({self.name}: {type(self.exc).__name__})"


# ------------------------------------------------------------------------------------ outcome
def check_user_error(error: UserError, names: tuple[str, ...] = ()) -> None:
    """The SPEC's one-line error: non-empty, no line break, naming the file (one of `names`)."""
    line = error.line()
    assert line.strip(), f"empty error line from {type(error).__name__}"
    assert "\n" not in line and "\r" not in line, f"error is not one line: {line!r}"
    if names:
        assert any(name in line for name in names), f"error does not name {names}: {line!r}"


def outcome(call: Callable[[], Any], names: tuple[str, ...] = (), limit_s: float = 20.0) -> Any:
    """Run `call`; return its result, the UserError it raised (checked), or a KnownFault.

    Anything else (another exception, a hang past `limit_s`) fails the test with the cause.
    """
    try:
        with time_limit(limit_s):
            return call()
    except UserError as error:
        bug = known_fault(error)
        if bug is not None:
            return KnownFault(bug, error)
        check_user_error(error, names)
        return error
    except (Exception, RecursionError) as error:
        bug = known_fault(error)
        if bug is not None:
            return KnownFault(bug, error)
        detail = "".join(traceback.format_exception(error)[-6:])
        raise AssertionError(f"bad input escaped as {type(error).__name__}, not a UserError:\n{detail}") from error


# -------------------------------------------------------------------------------- macro YAML
def macro_dict(name: str = "axelram_paper") -> dict:
    """A shipped macro YAML as a plain mapping."""
    return yaml.safe_load((MACROS / f"{name}.yaml").read_text())


def macro_workdir(root: Path) -> Path:
    """A folder where a fuzzed macro YAML can load: it holds a copy of macros/tech/."""
    shutil.copytree(MACROS / "tech", root / "tech", dirs_exist_ok=True)
    return root


def _schema() -> dict[str, list[str]]:
    """Top-level key -> its field names ([] for a scalar key)."""
    from pydantic import BaseModel

    from axelsim.config import MacroConfig

    out: dict[str, list[str]] = {}
    for key, field in MacroConfig.model_fields.items():
        ann = field.annotation
        out[key] = list(ann.model_fields) if isinstance(ann, type) and issubclass(ann, BaseModel) else []
    return out


SCHEMA = _schema()

# ------------------------------------------------------------------- numeric extremes (17.1)
FP16_MAX = 65504.0
NUMERIC_EXTREMES = (
    float("nan"), float("inf"), float("-inf"), FP16_MAX, -FP16_MAX, 65520.0, 3e38, -3e38, 3.4028234663852886e38,
    5e-324, 2.2250738585072014e-308, 1.401298464324817e-45, 1.1754943508222875e-38, 5.960464477539063e-08,
    6.103515625e-05, 2**63, 2**63 - 1, -2**63, 2**64, 10**400, 0.0, -0.0,
)
"""Numbers at the edges: NaN, +-inf, +-65504 (FP16 max) and 65520 (rounds to FP16 inf), 3e38 and
FP32 max, float64/float32/FP16 denormals and smallest normals, 2**63 around int64, 10**400
(an int no float holds), signed zeros."""
numeric_extremes = st.sampled_from(NUMERIC_EXTREMES)
NUMERIC_TEXTS = ("1e400", "1.0e+400", "-1.0e+400", ".nan", ".inf", "-.inf", "65504", "-65504", "3e38", "3.0e+38",
                 "5e-324", "4.9e-324", "1.0e-400", "9223372036854775808", "-9223372036854775809", "0x8000000000000000",
                 "1_000_000_000_000", "2**63", "1e9999", "0o777777777777777777777777")
"""The same extremes as YAML source text (how `1e400` or `2**63` reach a loader: a string, an
int beyond int64, an inf after float conversion)."""
numeric_texts = st.sampled_from(NUMERIC_TEXTS)

_NO_BREAK = st.characters(blacklist_categories=("Cs",))
key_text = st.text(_NO_BREAK, min_size=1, max_size=12)
"""Mapping keys of any characters, line breaks and control characters included."""

special_numbers = st.sampled_from([
    0, 1, -1, 2, 3, 7, 8, 64, 96, 128, 1024, 2048, 2**31 - 1, 2**31, 10**30, 10**300, 0.5, 1e-300, 1e300, 1.0e9,
    *NUMERIC_EXTREMES,
])
yaml_scalars = st.one_of(
    st.none(), st.booleans(), special_numbers,
    st.integers(min_value=-2**70, max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(_NO_BREAK, max_size=16),
    st.sampled_from(["fp16", "fp32", "fixed16.8", "fixed32.31", "fixed1.0", "fixed2.2", "bf16", "reject",
                     "spill", "token_interleaved", "head_per_bank", "tech/reference.yaml", "", " ",
                     "null", "true", "128", "0x80", "1e3", "~", "..", "/", "/dev/null", "tech"]),
)
yaml_values = st.recursive(
    yaml_scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(key_text, inner, max_size=4)),
    max_leaves=12,
)
"""Any value safe_dump can write: scalars of every type, lists, mappings, nesting."""


@st.composite
def mutated_macro(draw) -> dict:
    """A shipped macro (or an empty one) with 0-5 random edits: set, delete, unknown key, wrong type."""
    base = draw(st.sampled_from(["axelram_paper", "axelram_d64", "axelram_b2", "axelram_b4", None]))
    data = macro_dict(base) if base else {}
    for _ in range(draw(st.integers(0, 5))):
        top = draw(st.sampled_from(sorted(SCHEMA)))
        op = draw(st.sampled_from(["set", "set", "set", "delete", "unknown", "unknown_top", "replace"]))
        fields = SCHEMA[top]
        if op == "set" and fields:
            section = data.get(top)
            if not isinstance(section, dict):
                section = data[top] = {}
            section[draw(st.sampled_from(fields))] = draw(yaml_values)
        elif op == "set" or op == "replace":
            data[top] = draw(yaml_values)
        elif op == "delete":
            section = data.get(top)
            if isinstance(section, dict) and section and draw(st.booleans()):
                section.pop(draw(st.sampled_from(sorted(section, key=str))), None)
            else:
                data.pop(top, None)
        elif op == "unknown" and fields:
            section = data.get(top)
            if isinstance(section, dict):
                section[draw(key_text)] = draw(yaml_values)
        else:
            data[draw(key_text)] = draw(yaml_values)
    return data


# ------------------------------------------------------------------- file kinds and sizes (17.1)
def _fifo(path: Path) -> Path:
    os.mkfifo(path)
    return path


def _char_device(path: Path) -> Path:
    """A character device node (the null device) at `path`; /dev/null itself without root."""
    try:
        os.mknod(path, 0o666 | 0o020000, os.makedev(1, 3))
        return path
    except PermissionError:
        return Path("/dev/null")


def _sparse(path: Path, size: int) -> Path:
    """A file claiming `size` bytes (sparse: holes, no disk use)."""
    with open(path, "wb") as stream:
        stream.truncate(size)
    return path


FILE_KINDS: dict[str, Callable[[Path, bytes], Path]] = {
    "fifo": lambda path, data: _fifo(path),
    "char_device": lambda path, data: _char_device(path),
    "dev_zero": lambda path, data: Path("/dev/zero"),
    "symlink_to_dev_zero": lambda path, data: (path.symlink_to("/dev/zero"), path)[1],
    "directory": lambda path, data: (path.mkdir(), path)[1],
    "dangling_link": lambda path, data: (path.symlink_to(path.parent / "nothing_here"), path)[1],
    "missing": lambda path, data: path,
    "empty": lambda path, data: (path.write_bytes(b""), path)[1],
    "tiny": lambda path, data: (path.write_bytes(data[:1] or b"x"), path)[1],
    "truncated": lambda path, data: (path.write_bytes(data[: len(data) // 2]), path)[1],
    "huge_sparse": lambda path, data: _sparse(path, 1 << 36),
    "symlink_to_good": lambda path, data: ((path.parent / f"{path.name}.real").write_bytes(data),
                                           path.symlink_to(path.parent / f"{path.name}.real"), path)[2],
}
"""How an input path can be hostile, by kind: each builds `path` (or names a system file) from the
good file's bytes `data`. Every kind except symlink_to_good is bad input (huge_sparse claims 64 GiB)."""
file_kinds = st.sampled_from(sorted(FILE_KINDS))


def hostile_file(path: Path, kind: str, data: bytes = b"") -> Path:
    """The input path of `kind` (FILE_KINDS) built at `path` from the good content `data`."""
    return FILE_KINDS[kind](path, data)


yaml_tokens = st.sampled_from([
    ":", ": ", "- ", "{", "}", "[", "]", ",", "&a ", "*a", "!!int ", "!!str ", "!!binary ", "!!float ", "? ",
    "|", ">", "'", '"', "\t", "\n", "  ", "    ", "#", "head_dim", "bits", "sram", "banks", "read_path",
    "pipelines", "128", "3", "1e9", ".nan", "-.inf", "0x10", "0o17", "true", "null", "~", "%YAML 1.1\n",
    "---\n", "...\n", "\x00", "\ufeff", "\x85", "\u2028", "é", "\\", "<<: ", "=",
])
yaml_garbage = st.one_of(
    st.text(max_size=200),
    st.lists(yaml_tokens, max_size=60).map("".join),
)
"""Text that is YAML-ish or not YAML at all (encoded as UTF-8 by the test)."""


def fixture_folder(root: Path, macro: str = "axelram_d64", macro_name: str = "good.yaml",
                   trace_name: str = "good.safetensors", dtype: str = "float32", **shape: Any) -> Path:
    """`root` (a macro_workdir) holding a shipped macro as `macro_name` and a small random trace
    as `trace_name` (trace_arrays(**shape) stored in `dtype`): the files most fuzz tests start from."""
    macro_workdir(root)
    (root / macro_name).write_text(yaml.safe_dump(macro_dict(macro)))
    k, v, q, positions = trace_arrays(**shape)
    from axelsim.trace.format import Trace, save_trace

    save_trace(Trace.from_arrays(k, v, q, positions, dtype=dtype), root / trace_name)
    return root


# ------------------------------------------------------------------------------------- traces
def trace_arrays(layers=(0,), kv_heads=1, q_heads=1, tokens=4, dim=8, positions=(3,), values=True,
                 seed=0, scale=1.0):
    """k, v, q dicts and q_positions for Trace.from_arrays (standard normal times `scale`)."""
    rng = np.random.default_rng(seed)
    k = {L: scale * rng.standard_normal((kv_heads, tokens, dim)) for L in layers}
    v = {L: scale * rng.standard_normal((kv_heads, tokens, dim)) for L in layers} if values else None
    q = {L: scale * rng.standard_normal((q_heads, len(positions), dim)) for L in layers}
    return k, v, q, np.asarray(positions, dtype=np.int64)


def safetensors_bytes(header: dict | bytes, body: bytes = b"") -> bytes:
    """A safetensors file: 8-byte little-endian header length, JSON header, data."""
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + body


def split_safetensors(data: bytes) -> tuple[dict, bytes]:
    """(header dict, data section) of a well-formed safetensors file."""
    (n,) = struct.unpack("<Q", data[:8])
    return json.loads(data[8:8 + n]), data[8 + n:]


# ---------------------------------------------------------------------------------------- CLI
def run_cli(*args: Any, cwd: Optional[Path] = None, timeout: float = 300, env: Optional[dict] = None):
    """`python -m axelsim ARGS` in a subprocess (text mode); returns the CompletedProcess."""
    full_env = dict(os.environ, **(env or {}))
    full_env.pop("AXELSIM_DEBUG", None)
    return subprocess.run([sys.executable, "-m", "axelsim", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=timeout, env=full_env)


def assert_bad_input(proc: subprocess.CompletedProcess, *names: str) -> str:
    """Exit 2, exactly one line on stderr naming one of `names`, no traceback; returns that line."""
    err = proc.stderr
    assert "Traceback" not in err, err
    assert proc.returncode == 2, f"exit {proc.returncode}, stderr {err!r}"
    assert err.count("\n") == 1 and err.endswith("\n") and "\r" not in err, f"not one line: {err!r}"
    if names:
        assert any(name in err for name in names), f"{err!r} names none of {names}"
    return err.strip()


def leftovers(folder: Path, stem: str) -> list[str]:
    """Temporary files an atomic writer (axelsim.io) may have left for `stem` in `folder`."""
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(f".{stem}.tmp."))


def deep_copy(value: Any) -> Any:
    return copy.deepcopy(value)
