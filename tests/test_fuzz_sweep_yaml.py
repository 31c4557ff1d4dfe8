"""Fuzz the sweep YAML planner: every sweep file is a plan or one ConfigError/TraceError line.

Only planning is fuzzed (validation, grid expansion, every variant resolved); no point is run.
"""

from __future__ import annotations

import itertools

import pytest
import yaml
from hypothesis import example, given
from hypothesis import strategies as st

from axelsim.errors import UserError
from axelsim.sweep import plan_sweep
from fuzz_helpers import KnownFault, fixture_folder, fuzz_settings, key_text, outcome, yaml_garbage, yaml_values

_counter = itertools.count()


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return fixture_folder(tmp_path_factory.mktemp("fuzz_sweep"), macro_name="base.yaml", trace_name="t.safetensors",
                          layers=(0, 1), kv_heads=1, q_heads=1, tokens=4, dim=64, positions=(1, 3))


def _base_spec() -> dict:
    return {"name": "fuzz", "base": "base.yaml", "traces": ["t.safetensors"], "layers": [0, 1], "queries": 2,
            "fidelity": "burst",
            "grid": {"read_path.pipelines": [1, 2],
                     "quantizer": [{"bits": 2, "write_path.comparators": 192},
                                   {"bits": 3, "write_path.comparators": 448}]},
            "reference": {}}


SWEEP_KEYS = ["name", "base", "traces", "layers", "kv_heads", "queries", "fidelity", "grid", "reference",
              "list", "points", "baselines", "description"]


@st.composite
def mutated_sweep(draw) -> dict:
    spec = _base_spec()
    for _ in range(draw(st.integers(0, 4))):
        op = draw(st.sampled_from(["set", "drop", "unknown", "axis", "axis_value"]))
        if op == "set":
            spec[draw(st.sampled_from(SWEEP_KEYS))] = draw(yaml_values)
        elif op == "drop":
            spec.pop(draw(st.sampled_from(SWEEP_KEYS)), None)
        elif op == "unknown":
            spec[draw(key_text)] = draw(yaml_values)
        elif isinstance(spec.get("grid"), dict):
            grid = spec["grid"]
            axis = draw(st.one_of(st.sampled_from(["read_path.pipelines", "bits", "head_dim", "sram.banks",
                                                   "nope.key", "quantizer", "formats.table"]), key_text))
            if op == "axis":
                grid[axis] = draw(st.lists(yaml_values, max_size=3))
            else:
                grid[axis] = draw(yaml_values)
    return spec


def _plan(workdir, text: bytes):
    path = workdir / f"s{next(_counter)}.yaml"
    path.write_bytes(text)
    result = outcome(lambda: plan_sweep(path))  # the line may name the sweep or a file it refers to
    if not isinstance(result, (UserError, KnownFault)):
        assert result.points, "a plan with no points"
        assert len({p.point_id for p in result.points}) == len(result.points)
    return result


def test_fuzz_sweep_base_spec_plans(workdir):
    plan = _plan(workdir, yaml.safe_dump(_base_spec()).encode())
    assert not isinstance(plan, (UserError, KnownFault)) and len(plan.points) == 4


@fuzz_settings()
@given(spec=mutated_sweep())
@example(spec={**_base_spec(), "grid": {"read_path.pipelines": []}})
@example(spec={**_base_spec(), "grid": {"read_path.pipelines": [3]}})
@example(spec={**_base_spec(), "traces": []})
@example(spec={**_base_spec(), "traces": ["absent.safetensors"]})
@example(spec={**_base_spec(), "base": "absent.yaml"})
@example(spec={**_base_spec(), "layers": [7]})
@example(spec={**_base_spec(), "queries": 0})
@example(spec={**_base_spec(), "grid": {"quantizer": [{"bits": 9}]}})
def test_fuzz_mutated_sweep(workdir, spec):
    _plan(workdir, yaml.safe_dump(spec, allow_unicode=True).encode())


@fuzz_settings()
@given(text=yaml_garbage)
def test_fuzz_sweep_garbage(workdir, text):
    _plan(workdir, text.encode("utf-8", "surrogatepass"))
