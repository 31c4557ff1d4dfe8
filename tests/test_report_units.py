"""Every number a report holds has a unit (issue 16 item 10): each leaf key of a real run's report,
nested keys included, matches a pattern of its `units` map; documented keys are documented."""

from __future__ import annotations

import fnmatch
import re

import pytest

from axelsim import api
from fuzz_helpers import REPO, fixture_folder

NO_UNIT = ("report.*", "macro.*", "inputs.*", "trace.name", "trace.model", "trace.digest_sha256", "trace.dtype",
           "units.*", "run_info.*", "*.bit_exact", "*.bit_exact_scores", "*.bit_exact_outputs")
"""Leaves that are not quantities: identity, configuration echoes, flags, the units map itself."""


def expand(pattern_key: str) -> list[str]:
    """'a.b, .c, d.*' -> ['a.b', 'a.c', 'd.*']: a leading dot continues the first name's parent."""
    names = [name.strip() for name in pattern_key.split(",")]
    parent = names[0].rpartition(".")[0]
    return [f"{parent}{name}" if name.startswith(".") else name for name in names]


def leaves(node, path=""):
    if isinstance(node, dict):
        for key, value in node.items():
            yield from leaves(value, f"{path}.{key}" if path else str(key))
    elif isinstance(node, list):
        if node and all(isinstance(item, (int, float)) for item in node):
            yield path, node
        else:
            for index, item in enumerate(node):
                yield from leaves(item, f"{path}.{index}")
    else:
        yield path, node


@pytest.fixture(scope="module", params=["axelram_b2", "axelram_qjl"])
def report(tmp_path_factory, request):
    root = fixture_folder(tmp_path_factory.mktemp("units"), macro=request.param, macro_name="m.yaml",
                          trace_name="t.safetensors", layers=(0, 1), tokens=8, dim=8, positions=(3, 7))
    return api.simulate(root / "m.yaml", root / "t.safetensors", progress=False)


def test_every_numeric_leaf_of_a_report_has_a_unit(report):
    patterns = [p for key in report["units"] for p in expand(key)]
    # a baseline's section uses the main report's keys and units: baselines.<kind>.<key>
    missing = []
    for path, value in leaves(report):
        if isinstance(value, bool) or not isinstance(value, (int, float, list)) or value == []:
            continue
        if any(fnmatch.fnmatchcase(path, p) for p in NO_UNIT):
            continue
        plain = re.sub(r"^baselines\.[^.]+\.", "", path)
        if not any(fnmatch.fnmatchcase(path, p) or fnmatch.fnmatchcase(plain, p) for p in patterns):
            missing.append(path)
    assert not missing, f"{len(missing)} report keys without a unit, e.g. {missing[:12]}"


def test_the_units_map_is_documented():
    doc = (REPO / "docs" / "report.md").read_text()
    assert "units map covers nested keys" in doc


def test_a_sweep_points_identity_keys_are_documented():
    from pathlib import Path

    from axelsim.sweep import Point

    point = Point("id", Path("m.yaml"), {}, Path("t.safetensors"), "d" * 64, None, None, None, "burst")
    doc = (REPO / "docs" / "report.md").read_text()
    section = doc[doc.index("DIR/points/<id>.json"):doc.index("DIR/points.csv")]
    for key in point.describe():
        assert f'"{key}"' in section, key
    assert "`baselines`" in section
