"""Fuzzing by file kind, size and numeric extreme (issue 17 item 1), not only by key names and types.

Every input role (trace, macro, sweep, signs, technology YAML, capture text) is given each hostile
file kind of fuzz_helpers.FILE_KINDS (FIFO, device node, /dev/zero and a link to it, folder,
dangling link, empty, one byte, truncated, a 64 GiB sparse file); numbers at the edges
(NUMERIC_EXTREMES: NaN, inf, +-65504, 3e38, denormals, 2**63, 1e400) go into traces, macro,
signs and technology YAML; CLI outputs are pointed at each output file kind. The contract: a
result, or one UserError line naming the file, within a time limit; no RuntimeWarning; never a
replaced non-regular output.
"""

from __future__ import annotations

import itertools
import json
import os
import stat
import warnings
from pathlib import Path

import numpy as np
import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from axelsim import api
from axelsim import io as axio
from axelsim.config import load_macro
from axelsim.cost.technology import Technology
from axelsim.errors import UserError
from axelsim.numerics.hadamard import SignRom
from axelsim.sweep import plan_sweep
from axelsim.trace.capture import read_text
from axelsim.trace.format import Trace, load_trace, save_trace
from cli_helpers import run_main
from fuzz_helpers import (FILE_KINDS, MACROS, NUMERIC_EXTREMES, FP16_MAX, file_kinds, fixture_folder, fuzz_settings,
                          hostile_file, leftovers, macro_dict, numeric_extremes, numeric_texts, outcome, scaled,
                          trace_arrays)

_counter = itertools.count()
GOOD_KINDS = {"symlink_to_good"}
"""Kinds that are a good file behind another path: they must load."""
MAYBE_GOOD = {"tiny", "truncated"}
"""Kinds that may stay valid input for a text role (a one-character text is a text; half a macro
YAML can be a complete macro of defaults): a result or one line, like any fuzzed input."""


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    folder = fixture_folder(tmp_path_factory.mktemp("extremes"), macro="axelram_b2", macro_name="m.yaml",
                            trace_name="t.safetensors", tokens=4, dim=8, positions=(3,))
    SignRom.from_seed(1, 1, 8).to_file(folder / "signs.yaml")
    (folder / "sweep.yaml").write_text(yaml.safe_dump({"base": "m.yaml", "traces": ["t.safetensors"],
                                                       "grid": {"bits": [2, 3]}}))
    (folder / "text.txt").write_text("It is a truth universally acknowledged. " * 4)
    return folder


ROLES = {
    "trace": ("t.safetensors", load_trace),
    "macro": ("m.yaml", load_macro),
    "sweep": ("sweep.yaml", plan_sweep),
    "signs": ("signs.yaml", SignRom.from_file),
    "technology": ("tech/reference.yaml", lambda path: Technology.load(Path(path), 45)),
    "capture_text": ("text.txt", read_text),
}


@given(kind=file_kinds, role=st.sampled_from(sorted(ROLES)))
@fuzz_settings(max_examples=scaled(2.0, 40))
def test_fuzz_input_file_kinds(root, kind, role):
    """Each role x file kind: loads (a good file behind a link) or one line naming the path, in 10 s."""
    good, reader = ROLES[role]
    good_path = root / good  # beside the good file: a technology table finds its CACTI CSV there
    path = hostile_file(good_path.parent / f"in{next(_counter)}_{good_path.name}", kind, good_path.read_bytes())
    result = outcome(lambda: reader(path), limit_s=10)
    if kind in GOOD_KINDS:
        assert not isinstance(result, UserError), result.line()
    elif not (kind in MAYBE_GOOD and role != "trace"):
        assert isinstance(result, UserError), f"{role} accepted a {kind} input"
        assert str(path) in result.line() or (kind == "dev_zero" and "/dev/zero" in result.line())


def test_every_file_kind_is_covered():
    assert {"fifo", "char_device", "symlink_to_dev_zero", "directory", "dangling_link", "empty", "tiny",
            "huge_sparse"} <= set(FILE_KINDS)


# ---------------------------------------------------------------- numeric extremes in traces
@pytest.fixture(scope="module")
def b2(root):
    return load_macro(root / "m.yaml", head_dim=8)


@given(value=numeric_extremes, tensor=st.sampled_from(["k", "v", "q"]), dtype=st.sampled_from(["float16", "float32"]),
       spot=st.tuples(st.integers(0, 3), st.integers(0, 7)))
@fuzz_settings(max_examples=scaled(0.4, 8), deadline=None)
def test_fuzz_numeric_extremes_in_a_trace(root, b2, value, tensor, dtype, spot):
    """An extreme in any tensor: a clean run with finite AXELRAM figures, or one line naming the
    tensor; never a RuntimeWarning (warnings are errors here)."""
    k, v, q, positions = trace_arrays(tokens=4, dim=8, positions=(3,))
    arrays = {"k": k[0], "v": v[0], "q": q[0]}
    row = min(spot[0], arrays[tensor].shape[1] - 1)
    arrays[tensor][0, row, spot[1]] = value if isinstance(value, float) else (float(value) if value < 1e308 else np.inf)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        made = outcome(lambda: Trace.from_arrays(k, v, q, positions, dtype=dtype))
        if isinstance(made, UserError):
            assert f"layers.0.{tensor}" in made.line()
            return
        result = outcome(lambda: api.simulate(b2, made, progress=False), limit_s=60)
    if isinstance(result, UserError):
        assert f"layers.0.{tensor}" in result.line() and abs(float(value)) > FP16_MAX
        return
    numerics = result["numerics"]
    assert numerics["bit_exact"]
    json.loads(axio.to_json_text(result))  # the report is writable JSON (non-finite -> null)
    if numerics["overflows"] == 0:
        assert all(np.isfinite(numerics[key]) for key in ("score_rel_rmse", "score_max_abs_err", "attn_kl"))


# ---------------------------------------------------------------- numeric extremes in YAML
def _numeric_fields() -> list[tuple[str, str]]:
    """(section, field) of every int or float field of the macro schema."""
    from pydantic import BaseModel

    from axelsim.config import MacroConfig

    found = []
    for top, field in MacroConfig.model_fields.items():
        ann = field.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            found += [(top, name) for name, sub in ann.model_fields.items() if "int" in str(sub.annotation)
                      or "float" in str(sub.annotation)]
        elif "int" in str(ann) or "float" in str(ann):
            found.append((top, ""))
    return found


NUMERIC_FIELDS = _numeric_fields()


@given(field=st.sampled_from(NUMERIC_FIELDS), text=st.one_of(numeric_texts, numeric_extremes.map(repr)))
@fuzz_settings(max_examples=scaled(2.0, 40))
def test_fuzz_numeric_extremes_in_macro_yaml(root, field, text):
    """`key: 1e400` (or NaN, 2**63, a denormal...) as raw YAML text at every numeric schema field:
    a valid macro with finite values, or one line naming the file."""
    top, name = field
    data = macro_dict("axelram_b2")
    marker = "__EXTREME__"
    if name:
        data.setdefault(top, {})[name] = marker
    else:
        data[top] = marker
    path = root / f"x{next(_counter)}.yaml"
    path.write_text(yaml.safe_dump(data).replace(f"'{marker}'", text).replace(marker, text))
    result = outcome(lambda: load_macro(path, head_dim=8), (str(path),))
    if not isinstance(result, UserError):
        value = getattr(getattr(result.config, top), name) if name else getattr(result.config, top)
        assert not isinstance(value, float) or np.isfinite(value), f"{top}.{name} = {value!r} accepted"


@given(path=st.lists(st.integers(0, 400), min_size=1, max_size=3), value=numeric_extremes)
@fuzz_settings(max_examples=scaled(1.0, 20))
def test_fuzz_numeric_extremes_in_the_technology_table(root, path, value):
    """An extreme at a random number of the shipped technology table: it loads and prices every
    primitive finitely, or one line naming the table."""
    table = yaml.safe_load((MACROS / "tech" / "reference.yaml").read_text())
    numbers = [(parent, key) for parent, key, item in _walk(table) if isinstance(item, (int, float))
               and not isinstance(item, bool)]
    parent, key = numbers[path[0] % len(numbers)]
    parent[key] = value
    target = root / "tech" / f"tech{next(_counter)}.yaml"
    target.write_text(yaml.safe_dump(table))
    result = outcome(lambda: Technology.load(target, 45), (str(target),))
    assert isinstance(result, (UserError, Technology))


def _walk(node, parent=None, key=None):
    if isinstance(node, dict):
        for name, item in node.items():
            yield from _walk(item, node, name)
    elif isinstance(node, list):
        for index, item in enumerate(node):
            yield from _walk(item, node, index)
    else:
        yield parent, key, node


@given(key=st.sampled_from(["dim", "n_layers", "version"]), value=st.one_of(numeric_extremes, numeric_texts))
@fuzz_settings(max_examples=scaled(0.7, 15))
def test_fuzz_numeric_extremes_in_a_signs_file(root, key, value):
    data = yaml.safe_load((root / "signs.yaml").read_text())
    data[key] = value
    path = root / f"signs{next(_counter)}.yaml"
    path.write_text(yaml.safe_dump(data))
    result = outcome(lambda: SignRom.from_file(path), (str(path),))
    if not isinstance(result, UserError):
        assert result.dim == 8 and result.n_layers == 1


# ---------------------------------------------------------------- CLI outputs by file kind
OUTPUT_KINDS = ("fifo", "char_device", "directory", "dangling_link", "symlink_to_good", "empty", "missing")


@given(kind=st.sampled_from(OUTPUT_KINDS), option=st.sampled_from(["--json", "--layer-csv"]))
@fuzz_settings(max_examples=scaled(0.7, 14))
def test_fuzz_output_file_kinds(root, monkeypatch_module, kind, option):
    """`run OPTION PATH` for each output kind: written (through a link, into a device) or one line,
    exit 2; a device node, FIFO or folder is never replaced by a regular file."""
    path = hostile_file(root / f"out{next(_counter)}", kind, b"old")
    before = os.lstat(path).st_mode if os.path.lexists(path) else None
    status, _, err = run_main(["run", root / "m.yaml", "--trace", root / "t.safetensors", "--quiet", option, path])
    assert status in (0, 2) and "Traceback" not in err
    if status == 2:
        assert err.count("\n") == 1 and str(path) in err
    if before is not None and not stat.S_ISREG(before) and not stat.S_ISLNK(before):
        assert stat.S_IFMT(os.lstat(path).st_mode) == stat.S_IFMT(before), f"the {kind} was replaced"
    if kind == "symlink_to_good":
        assert os.path.islink(path) and status == 0
    assert leftovers(path.parent, path.stem) == []


@pytest.fixture(scope="module")
def monkeypatch_module(root):
    """api.simulate replaced by a tiny report: the output paths are under test, not the run."""
    mp = pytest.MonkeyPatch()
    mp.setattr(api, "simulate", lambda *a, **k: {"macro": {"name": "fake"}, "energy_pj": {"total": 1.0},
                                                 "layers": {}})
    mp.setattr("axelsim.report.tables.format_summary", lambda report: "summary")
    yield mp
    mp.undo()


def test_extremes_cover_the_issue_list():
    for value in (65504.0, -65504.0, 3e38, 5e-324, 2**63, 10**400):
        assert value in NUMERIC_EXTREMES
    assert any(np.isnan(v) for v in NUMERIC_EXTREMES if isinstance(v, float))
