"""Atomic writing: complete files or none, canonical JSON."""

import json
import math

import numpy as np
import pytest

from axelsim import io


def test_write_json_is_canonical_and_plain(tmp_path):
    value = {"b": np.float64(1.5), "a": [np.int64(3), True, None], "n": math.nan, "arr": np.arange(3)}
    path = io.write_json(tmp_path / "sub" / "r.json", value)
    text = path.read_text()
    assert text == io.to_json_text(value) and text.endswith("\n")
    assert json.loads(text) == {"b": 1.5, "a": [3, True, None], "n": None, "arr": [0, 1, 2]}
    assert list(json.loads(text)) == ["b", "a", "n", "arr"]


def test_failed_write_leaves_old_file_and_no_temp(tmp_path):
    target = tmp_path / "report.json"
    io.write_text(target, "old\n")
    with pytest.raises(TypeError):
        io.write_json(target, {"bad": object()})
    assert target.read_text() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.json"]


def test_atomic_path_keeps_suffix_and_cleans_up_on_error(tmp_path):
    target = tmp_path / "plot.png"
    with pytest.raises(RuntimeError):
        with io.atomic_path(target) as temp:
            assert temp.suffix == ".png" and temp.parent == tmp_path
            temp.write_bytes(b"partial")
            raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []
    with io.atomic_path(target) as temp:
        temp.write_bytes(b"done")
    assert target.read_bytes() == b"done" and list(tmp_path.iterdir()) == [target]
