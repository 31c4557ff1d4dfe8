"""The headline figures of a report: one flat row of numbers, each with its unit in its name.

These are the columns of the sweep CSV, the rows of `axelsim compare` and the numbers of the
terminal summary. They are read from a report dict (see docs/report.md); a figure the report
does not hold (a baseline has no value path, a failed sweep point has nothing) is None.
"""

from __future__ import annotations

from typing import Any

PHASES = ("write", "precompute", "read", "value")
"""The phases of a report's `cycles` and `phase_active`, lowest priority first (a cycle covered
by several goes to the last of them: hw.controller.PHASES, which the simulator books)."""

HEADLINE_KEYS: tuple[str, ...] = (
    "cycles_total",
    "time_s",
    "energy_pj_total",
    "energy_pj_per_query",
    "energy_pj_per_token",
    "area_um2_total",
    "memory_bytes_total",
    "multiplications_per_query",
    "multiplication_reduction_x",
    "bit_exact",
    "score_rel_rmse",
    "score_max_abs_err",
    "attn_kl_nats",
    "top1_agreement",
    "output_rel_rmse",
)
"""Column names of the headline row; the unit is the suffix (x = ratio, nats, a bare fraction)."""

_PATHS: dict[str, tuple[str, ...]] = {
    "cycles_total": ("cycles", "total"),
    "time_s": ("time_s",),
    "energy_pj_total": ("energy_pj", "total"),
    "energy_pj_per_query": ("energy_pj", "per_query"),
    "energy_pj_per_token": ("energy_pj", "per_token"),
    "area_um2_total": ("area_um2", "total"),
    "memory_bytes_total": ("memory_bytes", "total"),
    "multiplications_per_query": ("multiplications_per_query", "axelram"),
    "multiplication_reduction_x": ("multiplications_per_query", "reduction"),
    "bit_exact": ("numerics", "bit_exact"),
    "score_rel_rmse": ("numerics", "score_rel_rmse"),
    "score_max_abs_err": ("numerics", "score_max_abs_err"),
    "attn_kl_nats": ("numerics", "attn_kl"),
    "top1_agreement": ("numerics", "top1_agreement"),
    "output_rel_rmse": ("numerics", "output_rel_rmse"),
}


def lookup(report: dict[str, Any], path: tuple[str, ...]) -> Any:
    """The value at `path` inside nested dicts, or None when any step is missing."""
    value: Any = report
    for key in path:
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return value


def headline(report: dict[str, Any]) -> dict[str, Any]:
    """The headline row of one report (or of one entry of its `baselines`)."""
    return {key: lookup(report, _PATHS[key]) for key in HEADLINE_KEYS}


def top_components(breakdown: dict[str, float], count: int = 3) -> list[tuple[str, float]]:
    """The `count` largest (name, value) pairs of a component breakdown, largest first.

    Ties are broken by name so the order never depends on dict order.
    """
    items = [(name, float(value)) for name, value in breakdown.items() if value is not None]
    return sorted(items, key=lambda item: (-item[1], item[0]))[:count]


LAYER_KEYS: tuple[str, ...] = ("layer", "cycles_write", "cycles_precompute", "cycles_read", "cycles_value",
                               "active_cycles_write", "active_cycles_precompute", "active_cycles_read",
                               "active_cycles_value", "multiplications_total", "additions_total",
                               "table_lookups_total", "sram_read_bits_total", "sram_write_bits_total", "bit_exact",
                               "score_rel_rmse", "attn_kl_nats", "top1_agreement", "output_rel_rmse")
"""Columns of the per-layer table (units in the names, as docs/report.md `layers.<L>`)."""


def layer_rows(report: dict[str, Any]) -> list[dict[str, Any]]:
    """One tidy row per replayed layer of a report: phase cycles (attributed and in flight),
    counted operations and the numerics of that layer."""
    rows = []
    for layer, entry in (report.get("layers") or {}).items():
        row: dict[str, Any] = {"layer": int(layer)}
        for phase in ("write", "precompute", "read", "value"):
            row[f"cycles_{phase}"] = lookup(entry, ("cycles", phase))
            row[f"active_cycles_{phase}"] = lookup(entry, ("active_cycles", phase))
        for kind in ("multiplications", "additions", "table_lookups", "sram_read_bits", "sram_write_bits"):
            row[f"{kind}_total"] = lookup(entry, ("ops", kind, "total"))
        numerics = entry.get("numerics") or {}
        for key, name in (("bit_exact", "bit_exact"), ("score_rel_rmse", "score_rel_rmse"), ("attn_kl", "attn_kl_nats"),
                          ("top1_agreement", "top1_agreement"), ("output_rel_rmse", "output_rel_rmse")):
            row[name] = numerics.get(key)
        rows.append({key: row.get(key) for key in LAYER_KEYS})
    return rows
