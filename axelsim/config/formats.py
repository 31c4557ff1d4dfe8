"""Number-format names used in macro YAML: `fp16`, `fp32`, or `fixed<W>.<F>`.

`fixed<W>.<F>` is a W-bit two's-complement fixed-point number with F fractional bits
(resolution 2**-F, range [-2**(W-1), 2**(W-1) - 1] * 2**-F), 2 <= W <= 32, 0 <= F < W.
Every operation rounds to nearest, ties to even, and saturates at the range in fixed point;
floating formats follow IEEE 754 binary16 / binary32 (overflow to infinity).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_FIXED = re.compile(r"^fixed(\d+)\.(\d+)$")


@dataclass(frozen=True)
class NumberFormat:
    """A datapath number format: kind is 'fp16', 'fp32' or 'fixed' (then width and frac bits)."""

    kind: str
    width_bits: int
    frac_bits: int = 0

    @property
    def name(self) -> str:
        return f"fixed{self.width_bits}.{self.frac_bits}" if self.kind == "fixed" else self.kind

    def __str__(self) -> str:
        return self.name


FP16 = NumberFormat("fp16", 16)
FP32 = NumberFormat("fp32", 32)


def parse_format(text: str) -> NumberFormat:
    """Parse a format name; raises ValueError with the expectation on a bad name."""
    expected = "expected 'fp16', 'fp32' or 'fixed<W>.<F>' with 2 <= W <= 32 and 0 <= F < W"
    if not isinstance(text, str):
        raise ValueError(expected)
    if text == "fp16":
        return FP16
    if text == "fp32":
        return FP32
    match = _FIXED.match(text)
    if match:
        width, frac = int(match.group(1)), int(match.group(2))
        if 2 <= width <= 32 and 0 <= frac < width:
            return NumberFormat("fixed", width, frac)
    raise ValueError(f"{expected}, got {text!r}")
