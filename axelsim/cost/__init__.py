"""Energy, area and memory cost model: technology table (technology.py), priced inventory (model.py)."""

from axelsim.cost.model import (
    CostModel, Memory, Unit, UnpricedActionError, axelram_units, baseline_memory_bytes, baseline_units,
)
from axelsim.cost.technology import Price, SramPrice, Technology, fit_cacti

__all__ = [
    "CostModel", "Memory", "Price", "SramPrice", "Technology", "Unit", "UnpricedActionError",
    "axelram_units", "baseline_memory_bytes", "baseline_units", "fit_cacti",
]
