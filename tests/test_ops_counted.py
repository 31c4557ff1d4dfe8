"""The cycle model's per-stream operation counts against an independent count: a float64
datapath in which every operation increments its counter as it executes (numerics/opcount.py)."""

from __future__ import annotations

import numpy as np
import pytest

from axelsim.cost.tiles import SramTiming
from axelsim.hw.macro import simulate
from axelsim.numerics.codebook import lloyd_max_codebook
from axelsim.numerics.golden import NumericsSpec, golden_layer
from axelsim.numerics.opcount import count_layer
from test_hw_helpers import random_trace, signs_for, small_macro


@pytest.mark.parametrize("prefill,shared,values,hazard", [
    ("simulate", False, True, None), ("preloaded", True, True, None), ("simulate", True, False, None),
    ("simulate", False, True, ("partial", 3)), ("preloaded", False, True, ("stall", 2))])
def test_counters_equal_the_executed_operations(prefill, shared, values, hazard):
    d, bits = 8, 2
    vp = {} if hazard is None else dict(bin_hazard=hazard[0], partial_accumulators=hazard[1])
    macro = small_macro(d, bits, read_path=dict(gqa_shared_read=shared), value_path=vp)
    trace = random_trace(12, kv_heads=2, q_heads=4, tokens=7, d=d, q_positions=[2, 6], values=values)
    trace_k = np.asarray(trace.k(0))
    trace_k[1, 3] *= 1e5  # one saturated norm
    signs = signs_for(1, d)
    trace = trace.__class__.from_arrays({0: trace_k}, {0: np.asarray(trace.v(0))} if values else None,
                                        {0: np.asarray(trace.q(0))}, list(trace.q_positions))
    macro = macro.model_copy(update={"formats": macro.formats.model_copy(update={"input": "fp32"})})
    result = simulate(macro, signs, trace, prefill=prefill, timing=SramTiming.ideal(macro))
    cb = lloyd_max_codebook(d, bits)
    counted = count_layer(trace_k, np.asarray(trace.v(0)) if values else None, np.asarray(trace.q(0)),
                          trace.q_positions, signs.vector(0), cb.rom_boundaries, cb.rom_centroids, macro.row_bits,
                          write=prefill == "simulate", shared=shared, sum_partials=macro.value_path.sum_partials(),
                          bin_partials=macro.value_path.bin_partials())
    assert result.ops == counted
    assert counted["norm_saturations"]["total"] == (1 if prefill == "simulate" else 0)
    # the golden kernels book the same operations (their own per-job figures)
    if values and not shared:
        gold = golden_layer(NumericsSpec.from_macro(macro, signs), trace_k, np.asarray(trace.v(0)),
                            np.asarray(trace.q(0)), trace.q_positions, 0)
        v = gold.actions["value_path"]
        assert v["mul.fp32"] == counted["multiplications"]["value_path"]
        assert v["add.fp32"] == counted["additions"]["value_path"]
        assert v["exp.fp32"] == counted["exps"]["value_path"]
