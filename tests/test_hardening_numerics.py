"""Numeric edge cases end to end (api.simulate): each runs and reports bit_exact true.

One d = 64 trace holds the data edge cases, a layer each: zero vectors, all-equal keys, norms
above the FP16 range (saturated and counted), tiny (subnormal) values, one outlier coordinate,
with a query at position 0. Two more traces cover T = 1 at d = 8 and d = 1024.
"""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from axelsim import api
from axelsim.trace.format import Trace, save_trace
from cli_helpers import stderr_lines
from fuzz_helpers import macro_dict, macro_workdir

FP16_MAX = 65504.0


def _macro_for(dim: int, bits: int = 3) -> dict:
    """The paper's macro scaled to head size `dim` (fully parallel lanes, as the shipped d = 64 one)."""
    data = macro_dict("axelram_paper")
    stages = dim.bit_length() - 1
    data.update(name=f"edge_d{dim}", head_dim=dim, bits=bits)
    data["write_path"].update(norm_squarers=dim, fwht_butterflies=dim // 2 * stages, comparators=dim * (2**bits - 1))
    data["read_path"].update(table_multipliers=dim, lookups_per_cycle=dim)
    data["value_path"].update(bin_lanes=dim, centroid_multipliers=dim, inverse_fwht_butterflies=dim // 2 * stages)
    return data


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return macro_workdir(tmp_path_factory.mktemp("edge"))


def _run(root, dim, k, v, q, positions, name):
    macro = root / f"{name}.yaml"
    macro.write_text(yaml.safe_dump(_macro_for(dim)))
    trace = root / f"{name}.safetensors"
    save_trace(Trace.from_arrays(k, v, q, np.asarray(positions, dtype=np.int64), model=name), trace)
    return api.simulate(macro, trace, baselines=False)


def _assert_bit_exact(report):
    assert report["numerics"]["bit_exact"] is True, report["numerics"]
    for layer, section in report["layers"].items():
        assert section["numerics"]["bit_exact"] is True, (layer, section["numerics"])


LAYERS = {0: "zero vectors", 1: "all-equal keys", 2: "norms above FP16 range", 3: "subnormal values",
          4: "one outlier coordinate"}


@pytest.fixture(scope="module")
def edge_report(root):
    d, T, positions = 64, 12, (0, 5, 11)
    rng = np.random.default_rng(7)
    k, v, q = {}, {}, {}
    shape_kv, shape_q = (1, T, d), (2, len(positions), d)
    k[0], v[0], q[0] = np.zeros(shape_kv), np.zeros(shape_kv), np.zeros(shape_q)
    same = rng.standard_normal(d)
    k[1], v[1], q[1] = np.broadcast_to(same, shape_kv).copy(), rng.standard_normal(shape_kv), rng.standard_normal(shape_q)
    k[2] = np.full(shape_kv, 6.0e4)  # every coordinate fits FP16; each norm is 4.8e5 > 65504
    k[2][0, ::2] *= -1
    v[2], q[2] = np.full(shape_kv, 5.0e3), rng.standard_normal(shape_q)
    k[3], v[3], q[3] = 1e-6 * rng.standard_normal(shape_kv), 1e-6 * rng.standard_normal(shape_kv), \
        rng.standard_normal(shape_q)
    k[4], v[4], q[4] = rng.standard_normal(shape_kv), rng.standard_normal(shape_kv), rng.standard_normal(shape_q)
    k[4][:, :, 3] = 3.0e3
    return _run(root, d, k, v, q, positions, "edge_d64")


def test_edge_cases_are_bit_exact(edge_report):
    _assert_bit_exact(edge_report)
    assert set(map(int, edge_report["layers"])) == set(LAYERS)


def test_fp16_norm_overflow_is_saturated_and_counted(edge_report):
    """Layer 2's 12 keys (and its values, if the value path stores norms) have norms above 65504."""
    assert edge_report["numerics"]["norm_saturations"] >= 12
    per_layer = {int(L): s for L, s in edge_report["layers"].items()}
    saturations = edge_report["ops"]["norm_saturations"]
    assert saturations["total"] == edge_report["numerics"]["norm_saturations"]
    assert per_layer[2]["ops"]["norm_saturations"]["total"] >= 12
    for layer in (0, 1, 3, 4):
        assert per_layer[layer]["ops"]["norm_saturations"]["total"] == 0, layer


def _layer(report, layer: int) -> dict:
    layers = report["layers"]
    return layers[str(layer)] if str(layer) in layers else layers[layer]


def test_zero_vectors_store_and_score_exactly_zero(edge_report):
    """Zero keys, values and queries: every score and output exactly the reference's (0), and the
    report still serialises as strict JSON (a 0/0 metric must not leak out as NaN)."""
    import json

    from axelsim.io import to_json_text

    numerics = _layer(edge_report, 0)["numerics"]
    assert numerics["bit_exact"] is True and numerics["score_max_abs_err"] == 0.0
    assert numerics["top1_agreement"] == 1.0
    json.loads(to_json_text(edge_report))


def test_zero_layer_relative_errors_are_zero(edge_report):
    numerics = _layer(edge_report, 0)["numerics"]
    assert numerics["score_rel_rmse"] == 0.0 and numerics["output_rel_rmse"] == 0.0


def test_single_token_query_at_position_zero_d8(root):
    rng = np.random.default_rng(1)
    k, v, q = ({0: rng.standard_normal((1, 1, 8))}, {0: rng.standard_normal((1, 1, 8))},
               {0: rng.standard_normal((1, 1, 8))})
    report = _run(root, 8, k, v, q, (0,), "t1_d8")
    _assert_bit_exact(report)
    assert report["trace"]["tokens"] == 1 and report["numerics"]["top1_agreement"] == 1.0


def test_head_dim_1024(root):
    rng = np.random.default_rng(2)
    k, v, q = ({0: rng.standard_normal((1, 4, 1024))}, {0: rng.standard_normal((1, 4, 1024))},
               {0: rng.standard_normal((1, 2, 1024))})
    report = _run(root, 1024, k, v, q, (0, 3), "d1024")
    _assert_bit_exact(report)
    assert report["trace"]["head_dim"] == 1024


@pytest.mark.parametrize("tensor", ["k", "v", "q"])
def test_value_beyond_fp16_input_range_is_a_one_line_error(root, tensor):
    """A float32 trace holding |x| > 65504 where formats.input is fp16: NumericsError naming the tensor."""
    from axelsim.errors import UserError
    from fuzz_helpers import check_user_error

    rng = np.random.default_rng(3)
    arrays = {"k": rng.standard_normal((1, 3, 8)), "v": rng.standard_normal((1, 3, 8)),
              "q": rng.standard_normal((1, 1, 8))}
    arrays[tensor][0, -1, 5] = 1.0e5
    with pytest.raises(UserError) as caught:
        _run(root, 8, {0: arrays["k"]}, {0: arrays["v"]}, {0: arrays["q"]}, (2,), f"big_{tensor}")
    check_user_error(caught.value)
    assert f"layers.0.{tensor}" in caught.value.line()


def test_value_beyond_fp16_input_range_names_the_trace_file(root):
    from axelsim.errors import UserError

    rng = np.random.default_rng(3)
    k = rng.standard_normal((1, 3, 8))
    k[0, -1, 5] = 1.0e5
    with pytest.raises(UserError) as caught:
        _run(root, 8, {0: k}, {0: k}, {0: rng.standard_normal((1, 1, 8))}, (2,), "big_named")
    assert str(root / "big_named.safetensors") in caught.value.line()


# ----------------------------------------------------------------- warnings and overflow (17.10)
def _extreme_trace(path, dtype: str, value: float) -> None:
    from fuzz_helpers import trace_arrays

    k, v, q, positions = trace_arrays(tokens=4, dim=8, positions=(3,))
    k[0][0, 1, 2] = v[0][0, 2, 3] = q[0][0, 0, 1] = value
    save_trace(Trace.from_arrays(k, v, q, positions, dtype=dtype), path)


@pytest.mark.parametrize("value", [65504.0, -65504.0])
def test_fp16_trace_at_the_fp16_limit_runs_without_warnings(tmp_path, value):
    """q.k of two 65504s overflows an FP16 baseline's arithmetic (IEEE: inf, inf - inf = NaN):
    no RuntimeWarning on stderr, AXELRAM's figures finite, the overflow counted, not hidden."""
    import json

    from fuzz_helpers import run_cli

    _extreme_trace(tmp_path / "t.safetensors", "float16", value)
    proc = run_cli("run", "macros/axelram_b2.yaml", "--trace", tmp_path / "t.safetensors",
                   "--json", tmp_path / "r.json", "--quiet", env={"PYTHONWARNINGS": "default"})
    assert proc.returncode == 0, proc.stderr
    assert stderr_lines(proc.stderr) == []
    report = json.loads((tmp_path / "r.json").read_text())
    numerics = report["numerics"]
    assert numerics["overflows"] == 0 and numerics["bit_exact"]
    assert all(isinstance(numerics[key], float) for key in ("score_rel_rmse", "attn_kl", "output_rel_rmse"))
    assert report["baselines"]["fp16"]["numerics"]["overflows"] > 0
    assert "overflowed its formats" in proc.stdout


def test_fp32_trace_beyond_the_fp16_input_is_exactly_one_line_before_any_simulation(tmp_path):
    from fuzz_helpers import run_cli

    _extreme_trace(tmp_path / "t.safetensors", "float32", 3e38)
    proc = run_cli("run", "macros/axelram_b2.yaml", "--trace", tmp_path / "t.safetensors",
                   "--json", tmp_path / "r.json", "--quiet", env={"PYTHONWARNINGS": "default"})
    assert proc.returncode == 2
    stored = float(np.float32(3e38))
    assert stderr_lines(proc.stderr) == [
        f"{tmp_path / 't.safetensors'}: layers.0.k: expected |values| <= 65504.0 (the fp16 input format), "
        f"found {stored} at index [0, 1, 2]"]
    assert not (tmp_path / "r.json").exists()


def test_softmax_of_overflowed_scores_takes_the_limit_without_warnings():
    import warnings

    from axelsim.numerics.reference import softmax_rows

    scores = np.array([[np.inf, 1.0, np.inf, np.nan], [-np.inf, 0.0, 0.0, np.nan]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        probs = softmax_rows(scores, 4)
    assert probs.tolist() == [[0.5, 0.0, 0.5, 0.0], [0.0, 0.5, 0.5, 0.0]]


def test_kl_of_a_large_finite_error_is_finite():
    """Two equal reference scores, the simulated second one 5000 * sqrt(d) lower: its probability
    underflows in float64, but KL = 0.5 ln(1 + e^-5000) + 0.5 (5000 + ln(1 + e^-5000)) - ln 2
    = 2500 - ln 2 (to double precision)."""
    import math

    from axelsim.numerics.metrics import attn_kl

    dim = 16
    ref = np.array([[0.0, 0.0]])
    sim = np.array([[0.0, -5000.0 * math.sqrt(dim)]])
    assert attn_kl(sim, ref, dim) == pytest.approx(2500.0 - math.log(2.0), rel=1e-12)
