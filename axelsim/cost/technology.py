"""The technology table (macros/tech/*.yaml) and the primitive prices derived from it.

Every figure is kept at the node its source measured it and scaled on use to the target node
with Stillmaker & Baas (2017). Units: energy in pJ per action, area in um^2, leakage in W.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from axelsim.config.formats import NumberFormat
from axelsim.config.load import one_line, read_yaml_mapping
from axelsim.errors import ConfigError


@dataclass(frozen=True)
class Price:
    """One primitive at the target node: energy per action (pJ), area (um^2), leakage (W)."""

    energy_pj: float
    area_um2: float
    leakage_w: float

    def times(self, count: float) -> "Price":
        return Price(self.energy_pj * count, self.area_um2 * count, self.leakage_w * count)

    def plus(self, other: "Price") -> "Price":
        return Price(self.energy_pj + other.energy_pj, self.area_um2 + other.area_um2, self.leakage_w + other.leakage_w)


@dataclass(frozen=True)
class SramPrice:
    """One SRAM array at the target node: per-access energies (pJ), area (um^2), leakage (W)."""

    read_pj: float
    write_pj: float
    area_um2: float
    leakage_w: float


@dataclass(frozen=True)
class PowerLawFit:
    """log y = c0 + c1 log(capacity_bytes) + c2 log(width_bits); errors relative, over the fitted rows."""

    coef: tuple[float, float, float]
    rms_rel_error: float
    max_rel_error: float
    n_points: int

    def __call__(self, capacity_bytes: float, width_bits: float) -> float:
        c0, c1, c2 = self.coef
        return math.exp(c0 + c1 * math.log(capacity_bytes) + c2 * math.log(width_bits))


SRAM_QUANTITIES = ("read_energy_pj", "write_energy_pj", "leakage_mw", "area_mm2")


def fit_power_law(capacity_bytes: np.ndarray, width_bits: np.ndarray, values: np.ndarray) -> PowerLawFit:
    """Least-squares fit of log(values) on log(capacity) and log(width)."""
    design = np.column_stack([np.ones_like(capacity_bytes), np.log(capacity_bytes), np.log(width_bits)])
    coef, *_ = np.linalg.lstsq(design, np.log(values), rcond=None)
    relative = np.exp(design @ coef) / values - 1.0
    return PowerLawFit(
        coef=tuple(float(c) for c in coef),
        rms_rel_error=float(np.sqrt(np.mean(relative**2))),
        max_rel_error=float(np.max(np.abs(relative))),
        n_points=int(values.size),
    )


def fit_cacti(csv_path: Path, node_nm: int, cell_type: str) -> dict[str, dict[str, PowerLawFit]]:
    """Fits per port set ('1rw', '1r1w') and quantity (SRAM_QUANTITIES) over one node and cell type."""
    with open(csv_path, newline="") as handle:
        rows = [r for r in csv.DictReader(handle) if int(r["node_nm"]) == node_nm and r["cell_type"] == cell_type]
    fits: dict[str, dict[str, PowerLawFit]] = {}
    for ports in ("1rw", "1r1w"):
        subset = [r for r in rows if r["ports"] == ports]
        cap = np.array([float(r["capacity_bytes"]) for r in subset])
        width = np.array([float(r["width_bits"]) for r in subset])
        fits[ports] = {q: fit_power_law(cap, width, np.array([float(r[q]) for r in subset])) for q in SRAM_QUANTITIES}
    return fits


class Technology:
    """Prices of primitives at one target node, read once from a technology YAML."""

    def __init__(self, table: dict[str, Any], base_dir: Path, node_nm: int, source: str):
        self.source = source
        self.node_nm = node_nm
        self._scaling = table["scaling"]
        self._arith = table["arithmetic"]
        self._aladdin = table["aladdin"]
        self._seed_bits = int(table["iterative"]["seed_bits"])
        self._sram = table["sram"]
        self._offchip = table.get("offchip")  # optional: only a spilling macro needs it
        self.sram_fits = fit_cacti(base_dir / self._sram["csv"], int(self._sram["node_nm"]), self._sram["cell_type"])

    @classmethod
    def load(cls, path: Path, node_nm: int) -> "Technology":
        """Read and check a technology YAML; ConfigError naming the file and key when it is malformed."""
        source = one_line(path)
        # the macro files' reader: one ConfigError line for any YAML flaw (tags, aliases, nesting)
        table = read_yaml_mapping(path, "technology YAML")
        for section in ("scaling", "arithmetic", "aladdin", "iterative", "sram"):
            if not isinstance(table.get(section), dict):
                raise ConfigError(source, section, "expected a section with its 'source' citation")
            if not isinstance(table[section].get("source"), str):
                raise ConfigError(source, f"{section}.source", "expected a citation string")
        csv_name = table["sram"].get("csv")
        try:
            csv_found = isinstance(csv_name, str) and (Path(path).parent / csv_name).is_file()
        except OSError:  # a name longer than NAME_MAX, ...
            csv_found = False
        if not csv_found:
            raise ConfigError(source, "sram.csv", "expected an existing CACTI sweep CSV next to the table")
        try:
            return cls(table, Path(path).parent, node_nm, str(path))
        except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
            raise ConfigError(source, "", f"expected a complete technology table ({one_line(repr(exc))[:200]})") from None

    # --- node scaling -------------------------------------------------------------------------
    def _factor_at(self, node_nm: float, kind: str) -> float:
        """Area or energy of a node relative to 45 nm, log-log interpolated between tabulated nodes."""
        points = sorted(
            ((float(n["node_nm"]), self._node_value(n, kind)) for n in self._scaling["nodes"]), reverse=True
        )
        nodes = [p[0] for p in points]
        if not nodes[-1] <= node_nm <= nodes[0]:
            raise ConfigError(self.source, "scaling.nodes", f"expected a node within {nodes[-1]}..{nodes[0]} nm, got {node_nm}")
        for (n_hi, v_hi), (n_lo, v_lo) in zip(points, points[1:]):
            if n_lo <= node_nm <= n_hi:
                t = math.log(n_hi / node_nm) / math.log(n_hi / n_lo)
                return math.exp(math.log(v_hi) + t * (math.log(v_lo) - math.log(v_hi)))
        return points[0][1]

    @staticmethod
    def _node_value(node: dict, kind: str) -> float:
        if kind == "area":
            return float(node["area_rel_45"])
        a, b, c = (float(x) for x in node["energy_poly"])
        vdd = float(node["vdd_v"])
        return a * vdd * vdd + b * vdd + c

    def area_scale(self, from_nm: float) -> float:
        """Multiply an area measured at from_nm by this to get it at the target node."""
        return self._factor_at(self.node_nm, "area") / self._factor_at(from_nm, "area")

    def energy_scale(self, from_nm: float) -> float:
        """Multiply an energy (and, by our leakage rule, a leakage power) at from_nm by this."""
        return self._factor_at(self.node_nm, "energy") / self._factor_at(from_nm, "energy")

    def _scaled(self, energy_pj: float, area_um2: float, leakage_w: float, from_nm: float) -> Price:
        e = self.energy_scale(from_nm)
        return Price(energy_pj * e, area_um2 * self.area_scale(from_nm), leakage_w * e)

    # --- logic ----------------------------------------------------------------------------------
    def _leak_density(self, unit: str) -> float:
        """Aladdin leakage per area (W/um^2) at 40 nm, for adders ('adder_32b') or multipliers."""
        entry = self._aladdin[unit]
        return float(entry["leakage_w"]) / float(entry["area_um2"])

    def _int_point(self, op: str, width_bits: int) -> tuple[float, float]:
        """Horowitz integer (energy_pj, area_um2) at a width, log-log interpolated over published widths."""
        points = sorted(self._arith[f"int_{op}"], key=lambda p: p["width_bits"])
        widths = [float(p["width_bits"]) for p in points]
        lo, hi = (0, 1) if width_bits <= widths[1] else (len(points) - 2, len(points) - 1)
        for i in range(len(points) - 1):
            if widths[i] <= width_bits <= widths[i + 1]:
                lo, hi = i, i + 1
        t = math.log(width_bits / widths[lo]) / math.log(widths[hi] / widths[lo])

        def interp(key: str) -> float:
            a, b = float(points[lo][key]), float(points[hi][key])
            return math.exp(math.log(a) + t * (math.log(b) - math.log(a)))

        return interp("energy_pj"), interp("area_um2")

    def arithmetic(self, op: str, fmt: NumberFormat) -> Price:
        """One adder ('add'), multiplier ('mul') or comparator ('cmp') in a number format."""
        node = float(self._arith["node_nm"])
        if op == "cmp":
            # A comparator of IEEE or fixed operands is a W-bit magnitude compare: Aladdin's
            # 32-bit comparator, linear in width.
            entry, ratio = self._aladdin["comparator_32b"], fmt.width_bits / 32.0
            return self._scaled(entry["energy_pj"] * ratio, entry["area_um2"] * ratio,
                                entry["leakage_w"] * ratio, float(self._aladdin["node_nm"]))
        if op not in ("add", "mul"):
            raise KeyError(f"no arithmetic primitive {op!r}")
        if fmt.kind == "fixed":
            energy, area = self._int_point(op, fmt.width_bits)
        else:
            entry = self._arith[f"{fmt.kind}_{op}"]
            energy, area = float(entry["energy_pj"]), float(entry["area_um2"])
        area_40 = area * self.area_scale_between(node, float(self._aladdin["node_nm"]))
        leak_w = area_40 * self._leak_density("adder_32b" if op == "add" else "multiplier_32b")
        leak_w *= self.energy_scale_between(float(self._aladdin["node_nm"]), node)
        return self._scaled(energy, area, leak_w, node)

    def area_scale_between(self, from_nm: float, to_nm: float) -> float:
        return self._factor_at(to_nm, "area") / self._factor_at(from_nm, "area")

    def energy_scale_between(self, from_nm: float, to_nm: float) -> float:
        return self._factor_at(to_nm, "energy") / self._factor_at(from_nm, "energy")

    def newton_iterations(self, fmt: NumberFormat) -> int:
        """Newton-Raphson steps from the seed table to the format's precision (quadratic convergence)."""
        precision = {"fp16": 11, "fp32": 24}.get(fmt.kind, fmt.width_bits)
        return max(0, math.ceil(math.log2(precision / self._seed_bits)))

    def composite_ops(self, op: str, fmt: NumberFormat) -> dict[str, int]:
        """sqrt, div and exp as the adds and multiplies they perform (docs/cost_model.md)."""
        n = self.newton_iterations(fmt)
        if op == "div":   # reciprocal x' = x (2 - b x): 2 mul + 1 add per step, then a * (1/b)
            return {"mul": 2 * n + 1, "add": n}
        if op == "sqrt":  # inverse sqrt y' = y (3 - a y^2) / 2: 3 mul + 1 add per step, then a * y
            return {"mul": 3 * n + 1, "add": n}
        if op == "exp":   # x*log2e, 7 Horner steps (mul + add), f = x*log2e - k
            return {"mul": 8, "add": 8}
        raise KeyError(f"no composite primitive {op!r}")

    def operation(self, op: str, fmt: NumberFormat) -> Price:
        """One unit performing `op` in `fmt` (add, mul, cmp, sqrt, div, exp); composite units summed."""
        if op in ("add", "mul", "cmp"):
            return self.arithmetic(op, fmt)
        total = Price(0.0, 0.0, 0.0)
        for part, count in self.composite_ops(op, fmt).items():
            total = total.plus(self.arithmetic(part, fmt).times(count))
        if op == "exp":  # the exponent add of p * 2^k: an 8-bit integer add
            total = total.plus(self.arithmetic("add", NumberFormat("fixed", 8, 0)))
        return total

    def register_bits(self, bits: int) -> Price:
        """`bits` flip-flops: area and leakage (register energy is not an action in the vocabulary)."""
        entry = self._aladdin["register_1b"]
        return self._scaled(0.0, entry["area_um2"] * bits, entry["leakage_w"] * bits, float(self._aladdin["node_nm"]))

    # --- memories -------------------------------------------------------------------------------
    def offchip_pj_per_bit(self) -> float:
        """Energy (pJ) to read or write one bit of off-chip DRAM, from the `offchip` section.

        Not node-scaled: the DRAM is not on the macro. ConfigError when the table has no
        well-formed `offchip` section (a macro with sram.overflow: spill needs one).
        """
        entry = self._offchip
        expected = ("expected a section with its 'source' citation, access_energy_pj > 0 and access_bits > 0 "
                    "(prices the rows of sram.overflow: spill)")
        if not isinstance(entry, dict) or not isinstance(entry.get("source"), str):
            raise ConfigError(self.source, "offchip", expected)
        energy, bits = entry.get("access_energy_pj"), entry.get("access_bits")
        numbers = all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in (energy, bits))
        if not (numbers and math.isfinite(energy) and energy > 0 and isinstance(bits, int) and bits > 0):
            raise ConfigError(self.source, "offchip", expected)
        return energy / bits

    def sram_array(self, capacity_bits: int, width_bits: int, ports: int) -> SramPrice:
        """An SRAM of capacity_bits read/written `width_bits` at a time, with `ports` ports (>= 1).

        Tiling keeps the fit inside the CACTI sweep: words wider than max_width_bits are split
        into equal column slices read together; slices larger than max_capacity_bytes into row
        tiles of which one is accessed. Arrays below the sweep's smallest capacity or width are
        priced per bit at the smallest swept point (CACTI's floor: 1 KB and
        4 * width bytes). Ports: 1 -> the 1rw fit, 2 -> 1r1w, more ->
        each extra port adds the fitted (1r1w - 1rw) increment.
        """
        cfg = self._sram
        cap_bytes = capacity_bits / 8.0
        slices = max(1, math.ceil(width_bits / int(cfg["max_width_bits"])))
        slice_width, slice_bytes = width_bits / slices, cap_bytes / slices
        tiles = max(1, math.ceil(slice_bytes / int(cfg["max_capacity_bytes"])))
        tile_bytes = slice_bytes / tiles
        fit_width = max(slice_width, float(cfg["min_width_bits"]))
        fit_bytes = max(tile_bytes, float(cfg["min_capacity_bytes"]), 4.0 * fit_width)  # CACTI floor
        width_share, bytes_share = slice_width / fit_width, tile_bytes / fit_bytes

        def fitted(quantity: str) -> float:
            one = self.sram_fits["1rw"][quantity](fit_bytes, fit_width)
            two = self.sram_fits["1r1w"][quantity](fit_bytes, fit_width)
            return one if ports == 1 else two + (ports - 2) * (two - one)

        node = float(cfg["node_nm"])
        e, a = self.energy_scale(node), self.area_scale(node)
        return SramPrice(
            read_pj=fitted("read_energy_pj") * width_share * slices * e,
            write_pj=fitted("write_energy_pj") * width_share * slices * e,
            area_um2=fitted("area_mm2") * 1e6 * bytes_share * slices * tiles * a,
            leakage_w=fitted("leakage_mw") * 1e-3 * bytes_share * slices * tiles * e,
        )
