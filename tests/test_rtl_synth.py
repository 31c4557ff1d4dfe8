"""Per-unit synthesis input (axelsim.rtl.synth.dedup_rtlil): identical operator submodules merged
into one module instantiated several times, counted against the number of operators the unit
builds (closed form from the macro's lane counts), and the instances' port connections renamed
to ports the representative has. Yosys itself is not run here (scripts/rtl_validation.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("amaranth", reason="the rtl extra (amaranth) is not installed: pip install -e '.[rtl]'")

from axelsim.config.load import load_macro  # noqa: E402
from axelsim.rtl.compare import resolved_macro  # noqa: E402
from axelsim.rtl.synth import _rtlil_modules, dedup_rtlil, parse_stat, rtlil_text  # noqa: E402
from axelsim.rtl.units import LookupPipeline, Quantizer, Rotator  # noqa: E402

MACRO = Path(__file__).resolve().parents[1] / "macros" / "rtl" / "axelram_d16.yaml"


@pytest.fixture(scope="module")
def mac():
    return resolved_macro(load_macro(MACRO))


@pytest.fixture(scope="module")
def rotator(mac):
    return deduped(Rotator(mac))


def deduped(unit):
    text = rtlil_text(unit, "top")
    out, instances = dedup_rtlil(text)
    return text, out, instances


def test_identical_comparators_become_one_module(mac):
    _, out, instances = deduped(Quantizer(mac))
    comparators = mac.write_path.comparators  # 16 coordinates x 7 thresholds, all one netlist
    assert len(instances) == 1 and sum(instances.values()) == comparators == 112
    assert out.count("\nmodule ") + out.startswith("module ") == 2  # the unit and its one comparator


def test_tree_adders_merge_and_the_multiplier_stays_apart(mac):
    _, _, instances = deduped(LookupPipeline(mac))
    d = mac.head_dim
    assert sorted(instances.values()) == [1, d - 1]  # d - 1 identical tree adders, one norm multiplier


def test_rotator_stages_after_the_first_are_one_adder_and_one_subtractor(mac, rotator):
    # stage 1 folds the sign flips (one sign bit per operand) into each operator: d distinct
    # netlists; the log2 d - 1 later stages are one add and one subtract netlist, d/2 each per stage
    d, stages = mac.head_dim, mac.log2_dim
    original, out, instances = rotator
    assert sum(instances.values()) == d * stages == len(_rtlil_modules(original)) - 1
    assert len(instances) == d + 2
    assert sorted(instances.values())[-2:] == [(d // 2) * (stages - 1)] * 2


def test_retargeted_instances_connect_only_ports_of_their_module(rotator):
    _, out, _ = rotator
    modules = _rtlil_modules(out)
    ports = {name: {line.split()[-1] for line in body if line.lstrip().startswith("wire ") and
                    (" input " in line or " output " in line)} for name, body in modules.items()}
    checked = 0
    for body in modules.values():
        target = None
        for line in body:
            words = line.split()
            if words[0] == "cell" and words[1] in modules:
                target = words[1]
            elif words[0] == "end":
                target = None
            elif words[0] == "connect" and target is not None:
                assert words[1] in ports[target], (target, words[1])
                checked += 1
    assert checked > 0


def test_parse_stat_reads_the_hierarchy_total():
    text = "\n".join(["=== sub ===", "     3   $_NAND_", "   Estimated number of transistors:        12",
                      "=== design hierarchy ===", "     9   $_NAND_", "     2   $_DFF_P_",
                      "   Estimated number of transistors:        68"])
    stat = parse_stat(text)
    assert stat["gate_transistors"] == 68 and stat["cells"] == {"$_NAND_": 9, "$_DFF_P_": 2}
    with pytest.raises(RuntimeError):
        parse_stat("=== top ===\n     3   $_NAND_\n")


def test_a_single_operator_design_has_its_operands_as_inputs_and_the_operator_once():
    from axelsim.rtl.synth import OPERATORS, ElaboratedUnit, OneOperator

    for kind in OPERATORS:
        unit = OneOperator(kind)
        design = ElaboratedUnit(unit)
        assert design.input_bits == 2 * len(unit.a) == 2 * (16 if kind == "square_fp16_to_fp32" else 32)
        _, instances = dedup_rtlil(design.rtlil("top"))
        assert instances.get("\\top.op") == 1, (kind, instances)
