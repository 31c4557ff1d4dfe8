"""Switching activity of the RTL twin from its simulation's VCD, per unit, against the cost
model's counted actions.

A toggle is one bit of one named signal changing value between two clock cycles (a vector
changing from a to b toggles popcount(a xor b) bits). Every named signal of a unit (its
registers and the combinational nets of its operators) counts once, in the scope of the unit
(MacroTop part) that declares it; a signal seen under several scopes (a port) counts in the
first. This is the activity a gate-level power estimate multiplies by switched capacitance;
the cost model instead charges a fixed energy per counted action (docs/cost_model.md), so the
comparison is toggles per counted action, per unit: how many signal bits switch for one
multiplication, addition or comparison the cost model prices.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path


def toggles_by_scope(vcd: Path, top_scopes: dict[str, str]) -> dict[str, int]:
    """Toggles per unit of a VCD written by Amaranth's simulator.

    top_scopes: the name of a scope directly under the design's top -> the unit it belongs to.
    """
    owner: dict[str, str] = {}
    stack: list[str] = []
    value: dict[str, int] = {}
    counts: dict[str, int] = defaultdict(int)
    with open(vcd, "r", encoding="ascii", errors="replace") as fh:
        for line in fh:
            if line.startswith("$enddefinitions"):
                break
            parts = line.split()
            if not parts:
                continue
            if parts[0] == "$scope":
                stack.append(parts[2])
            elif parts[0] == "$upscope":
                stack.pop()
            elif parts[0] == "$var":
                code = parts[3]
                unit = top_scopes.get(stack[2]) if len(stack) > 2 else None
                if code not in owner and unit is not None:
                    owner[code] = unit
                elif code not in owner:
                    owner[code] = ""
        for line in fh:
            c = line[:1]
            if c in ("#", "$", "\n", ""):
                continue
            if c in ("b", "B"):
                bits, code = line[1:].split()
                new = int(bits.replace("x", "0").replace("z", "0"), 2)
            elif c in "01xzXZ":
                code, new = line[1:].strip(), 1 if c == "1" else 0
            else:
                continue
            unit = owner.get(code)
            old = value.get(code)
            value[code] = new
            if unit and old is not None:
                counts[unit] += bin(old ^ new).count("1")
    return dict(counts)


def model_actions(ledger, unit_names: tuple[str, ...]) -> dict[str, int]:
    """Arithmetic and memory actions the cycle model counted for the given cost-model units."""
    total = 0
    for (_layer, _path, unit, _action), n in ledger.counts.items():
        if unit in unit_names:
            total += n
    return {"actions": total}


__all__ = ["toggles_by_scope", "model_actions"]
