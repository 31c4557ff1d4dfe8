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
TIMING_QUANTITIES = ("access_time_ns", "cycle_time_ns")
CSV_NODES = (45, 32, 22)
"""Nodes the CACTI sweep holds; timing is fitted at the one nearest the macro's node."""


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


CSV_COLUMNS = ("node_nm", "capacity_bytes", "width_bits", "ports", "cell_type") + SRAM_QUANTITIES + TIMING_QUANTITIES


def read_cacti_csv(csv_path: Path, source: str) -> list[dict]:
    """The CACTI sweep's rows (numbers as float), checked: every needed column present, every
    number finite and > 0, ports and cell type known, no duplicate point. ConfigError naming the
    CSV line otherwise."""
    rows, seen = [], set()
    try:
        with open(csv_path, newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            missing = [c for c in CSV_COLUMNS if c not in (reader.fieldnames or [])]
            if missing:
                raise ConfigError(source, "sram.csv", f"expected CACTI columns {', '.join(missing)} in {csv_path.name}")
            for line, raw in enumerate(reader, start=2):
                row = _csv_row(raw, f"{csv_path.name} line {line}", source)
                point = (row["node_nm"], row["capacity_bytes"], row["width_bits"], row["ports"], row["cell_type"])
                if point in seen:
                    raise ConfigError(source, "sram.csv", f"one row per point, {csv_path.name} line {line} repeats {point}")
                seen.add(point)
                rows.append(row)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ConfigError(source, "sram.csv", f"a readable UTF-8 CSV ({one_line(exc)[:120]})") from None
    return rows


def _csv_row(raw: dict, where: str, source: str) -> dict:
    row: dict = {}
    for column in CSV_COLUMNS:
        text = raw.get(column)
        if column in ("ports", "cell_type"):
            if text not in (("1rw", "1r1w") if column == "ports" else ("itrs-lop", "itrs-hp")):
                raise ConfigError(source, "sram.csv", f"a known {column} at {where}, got {_quote(text)}")
            row[column] = text
            continue
        try:
            value = float(text)
        except (TypeError, ValueError):
            raise ConfigError(source, "sram.csv", f"a number for {column} at {where}, got {_quote(text)}") from None
        if not (math.isfinite(value) and value > 0):
            raise ConfigError(source, "sram.csv", f"a finite number > 0 for {column} at {where}, got {_quote(text)}")
        row[column] = value
    return row


def _quote(text) -> str:
    return repr(text if text is None or len(str(text)) <= 40 else str(text)[:40] + "...")


def fit_cacti(rows: list[dict] | Path, node_nm: int, cell_type: str,
              quantities: tuple[str, ...] = SRAM_QUANTITIES) -> dict[str, dict[str, PowerLawFit]]:
    """Fits per port set ('1rw', '1r1w') and quantity over one node and cell type (rows from
    read_cacti_csv, or the CSV's path)."""
    if not isinstance(rows, list):
        rows = read_cacti_csv(Path(rows), str(rows))
    rows = [r for r in rows if int(r["node_nm"]) == node_nm and r["cell_type"] == cell_type]
    fits: dict[str, dict[str, PowerLawFit]] = {}
    for ports in ("1rw", "1r1w"):
        subset = [r for r in rows if r["ports"] == ports]
        if len(subset) < 3:
            raise ValueError(f"at least 3 CACTI points for {node_nm} nm {cell_type} {ports}, got {len(subset)}")
        cap = np.array([r["capacity_bytes"] for r in subset])
        width = np.array([r["width_bits"] for r in subset])
        fits[ports] = {q: fit_power_law(cap, width, np.array([r[q] for r in subset])) for q in quantities}
    return fits


@dataclass(frozen=True)
class OffchipMemory:
    """The off-chip DRAM holding spilled rows: energy per bit (pJ), bandwidth (GB/s), latency (ns)."""

    name: str
    energy_pj_per_bit: float
    bandwidth_gb_per_s: float
    latency_ns: float


def _finite(value) -> bool:
    """A real number a float holds: not a bool, NaN, inf, or an int beyond float range (10**400)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        return math.isfinite(float(value))
    except OverflowError:
        return False


def _num(table: dict, section: str, key: str, source: str, positive: bool = True) -> float:
    """A finite number (> 0 when `positive`) at section.key; ConfigError naming it otherwise."""
    value = table.get(key) if isinstance(table, dict) else None
    if not _finite(value) or (positive and value <= 0):
        raise ConfigError(source, f"{section}.{key}", f"a finite number{' > 0' if positive else ''}, got {_quote(value)}")
    return float(value)


def _entries(table: dict, section: str, key: str, source: str) -> list:
    value = table.get(key)
    if not isinstance(value, list) or not value or not all(isinstance(v, dict) for v in value):
        raise ConfigError(source, f"{section}.{key}", "a non-empty list of mappings")
    return value


def check_table(table: dict, source: str) -> None:
    """Every number the cost model reads is finite and > 0 (energy polynomials: finite, and > 0
    at their supply), lists are non-empty with no duplicate node or width; ConfigError naming
    the first bad key. Run once at load, so no price is ever NaN, negative or a division by zero."""
    for section in ("scaling", "arithmetic", "aladdin", "iterative", "sram", "wire", "fp_latency", "power"):
        if not isinstance(table.get(section), dict):
            raise ConfigError(source, section, "expected a section with its 'source' citation")
        if not isinstance(table[section].get("source"), str):
            raise ConfigError(source, f"{section}.source", "expected a citation string")
    nodes = _entries(table["scaling"], "scaling", "nodes", source)
    seen = set()
    for i, node in enumerate(nodes):
        where = f"scaling.nodes[{i}]"
        n = _num(node, where, "node_nm", source)
        if n in seen:
            raise ConfigError(source, f"{where}.node_nm", f"one entry per node, {n:g} nm appears twice")
        seen.add(n)
        _num(node, where, "area_rel_45", source)
        vdd = _num(node, where, "vdd_v", source)
        poly = node.get("energy_poly")
        if not (isinstance(poly, list) and len(poly) == 3 and all(_finite(c) for c in poly)):
            raise ConfigError(source, f"{where}.energy_poly", "three finite coefficients [a, b, c]")
        if not poly[0] * vdd * vdd + poly[1] * vdd + poly[2] > 0:
            raise ConfigError(source, f"{where}.energy_poly", "a positive energy factor at vdd_v")
    if 45.0 not in seen:
        raise ConfigError(source, "scaling.nodes", "an entry for 45 nm (the reference of area_rel_45)")
    arith = table["arithmetic"]
    _num(arith, "arithmetic", "node_nm", source)
    for op in ("int_add", "int_mul"):
        points = _entries(arith, "arithmetic", op, source)
        widths = [_num(p, f"arithmetic.{op}[{i}]", "width_bits", source) for i, p in enumerate(points)]
        if len(set(widths)) != len(widths) or len(widths) < 2:
            raise ConfigError(source, f"arithmetic.{op}", "at least two points of distinct width_bits")
        for i, p in enumerate(points):
            _num(p, f"arithmetic.{op}[{i}]", "energy_pj", source)
            _num(p, f"arithmetic.{op}[{i}]", "area_um2", source)
    for op in ("fp16_add", "fp32_add", "fp16_mul", "fp32_mul"):
        _num(arith.get(op), f"arithmetic.{op}", "energy_pj", source)
        _num(arith.get(op), f"arithmetic.{op}", "area_um2", source)
    alad = table["aladdin"]
    _num(alad, "aladdin", "node_nm", source)
    for unit, keys in (("comparator_32b", ("energy_pj", "area_um2", "leakage_w")),
                       ("adder_32b", ("energy_pj", "area_um2", "leakage_w")),
                       ("multiplier_32b", ("energy_pj", "area_um2", "leakage_w")),
                       ("register_1b", ("area_um2", "leakage_w"))):
        for key in keys:
            _num(alad.get(unit), f"aladdin.{unit}", key, source)
    _num(table["iterative"], "iterative", "seed_bits", source)
    sram = table["sram"]
    for key in ("node_nm", "min_capacity_bytes", "max_capacity_bytes", "min_width_bits", "max_width_bits"):
        _num(sram, "sram", key, source)
    if sram["min_capacity_bytes"] > sram["max_capacity_bytes"] or sram["min_width_bits"] > sram["max_width_bits"]:
        raise ConfigError(source, "sram", "min_* no larger than max_*")
    horowitz = sram.get("horowitz")
    if horowitz is not None:
        if not isinstance(horowitz, dict) or not isinstance(horowitz.get("source"), str):
            raise ConfigError(source, "sram.horowitz", "expected a section with its 'source' citation")
        _num(horowitz, "sram.horowitz", "node_nm", source)
        _num(horowitz, "sram.horowitz", "width_bits", source)
        points = _entries(horowitz, "sram.horowitz", "points", source)
        caps = [_num(p, f"sram.horowitz.points[{i}]", "capacity_bytes", source) for i, p in enumerate(points)]
        for i, p in enumerate(points):
            _num(p, f"sram.horowitz.points[{i}]", "read_energy_pj", source)
        if len(set(caps)) != len(caps) or len(caps) < 2:
            raise ConfigError(source, "sram.horowitz.points", "at least two points of distinct capacity_bytes")
    for key in ("node_nm", "delay_ps_per_mm", "energy_pj_per_bit_mm"):
        _num(table["wire"], "wire", key, source)
    for key in ("adder_fo4_fp64", "multiplier_to_adder_depth", "fo4_ps", "node_nm"):
        _num(table["fp_latency"], "fp_latency", key, source)
    fraction = _num(table["power"], "power", "retention_leakage_fraction", source)
    if fraction > 1:
        raise ConfigError(source, "power.retention_leakage_fraction", f"a fraction in (0, 1], got {fraction}")


class Technology:
    """Prices of primitives at one target node, read once from a technology YAML.

    `sram_cells` (itrs-lop / itrs-hp) picks the CACTI rows; `sram_energy` ('cacti' or
    'horowitz') the per-access SRAM energy (area, leakage and timing are CACTI's either way).
    """

    def __init__(self, table: dict[str, Any], base_dir: Path, node_nm: int, source: str,
                 sram_cells: str = "itrs-lop", sram_energy: str = "cacti"):
        self.source = source
        self.node_nm = node_nm
        self.sram_cells = sram_cells
        self.sram_energy = sram_energy
        self._scaling = table["scaling"]
        self._arith = table["arithmetic"]
        self._aladdin = table["aladdin"]
        self._seed_bits = int(table["iterative"]["seed_bits"])
        self._sram = table["sram"]
        self._wire = table["wire"]
        self._fp_latency = table["fp_latency"]
        self.retention_fraction = float(table["power"]["retention_leakage_fraction"])
        self._offchip = table.get("offchip")  # optional: only a spilling macro needs it
        self._factor_at(node_nm, "area")  # a node the scaling table does not cover is refused here
        rows = read_cacti_csv(base_dir / self._sram["csv"], source)
        self.sram_fits = fit_cacti(rows, int(self._sram["node_nm"]), sram_cells)
        self.timing_node_nm = min(CSV_NODES, key=lambda n: (abs(n - node_nm), n))
        self.timing_fits = fit_cacti(rows, self.timing_node_nm, sram_cells, TIMING_QUANTITIES)
        if sram_energy == "horowitz" and not isinstance(self._sram.get("horowitz"), dict):
            raise ConfigError(source, "sram.horowitz", "a section of Horowitz SRAM points (technology.sram_energy: horowitz)")

    @classmethod
    def load(cls, path: Path, node_nm: int, sram_cells: str = "itrs-lop", sram_energy: str = "cacti") -> "Technology":
        """Read and check a technology YAML; ConfigError naming the file and key when it is malformed."""
        source = one_line(path)
        # the macro files' reader: one ConfigError line for any YAML flaw (tags, aliases, nesting)
        table = read_yaml_mapping(path, "technology YAML")
        check_table(table, source)
        csv_name = table["sram"].get("csv")
        try:
            csv_found = isinstance(csv_name, str) and (Path(path).parent / csv_name).is_file()
        except OSError:  # a name longer than NAME_MAX, ...
            csv_found = False
        if not csv_found:
            raise ConfigError(source, "sram.csv", "expected an existing CACTI sweep CSV next to the table")
        try:
            return cls(table, Path(path).parent, node_nm, str(path), sram_cells, sram_energy)
        except (KeyError, TypeError, ValueError, IndexError, AttributeError, np.linalg.LinAlgError) as exc:
            raise ConfigError(source, "", f"expected a complete technology table ({one_line(repr(exc))[:200]})") from None

    @classmethod
    def for_macro(cls, loaded) -> "Technology":
        """The technology table of a LoadedMacro, at its node, cells and SRAM energy source."""
        t = loaded.config.technology
        return cls.load(loaded.tech_path, t.node_nm, t.sram_cells, t.sram_energy)

    # --- node scaling -------------------------------------------------------------------------
    def _factor_at(self, node_nm: float, kind: str) -> float:
        """Area or energy of a node relative to 45 nm, log-log interpolated between tabulated nodes."""
        points = sorted(
            ((float(n["node_nm"]), self._node_value(n, kind)) for n in self._scaling["nodes"]), reverse=True
        )
        nodes = [p[0] for p in points]
        if not nodes[-1] <= node_nm <= nodes[0]:
            raise ConfigError(self.source, "scaling.nodes", f"expected a node within {nodes[-1]:g}..{nodes[0]:g} nm "
                              f"(the cited scaling source's range), got {node_nm:g}")
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
    def offchip_memory(self, kind: str = "hbm3") -> OffchipMemory:
        """Memory `kind` ('hbm3', 'hbm2': sram.offchip_memory) of the `offchip` section (a macro
        with sram.overflow: spill needs it); ConfigError naming the key if missing or malformed."""
        section = self._offchip
        if not isinstance(section, dict):
            raise ConfigError(self.source, "offchip", "expected a section of off-chip memories (hbm3, hbm2), each with "
                              "its 'source' citation, energy_pj_per_bit, bandwidth_gb_per_s and latency_ns "
                              "(prices the rows of sram.overflow: spill)")
        entry, where = section.get(kind), f"offchip.{kind}"
        if not isinstance(entry, dict) or not isinstance(entry.get("source"), str):
            raise ConfigError(self.source, where, "expected a memory with its 'source' citation, energy_pj_per_bit, "
                              "bandwidth_gb_per_s and latency_ns")
        name = entry.get("memory") if isinstance(entry.get("memory"), str) else kind.upper()
        return OffchipMemory(name, *(_num(entry, where, k, self.source)
                                     for k in ("energy_pj_per_bit", "bandwidth_gb_per_s", "latency_ns")))

    def offchip_pj_per_bit(self, kind: str = "hbm3") -> float:
        """Energy (pJ) to read or write one bit of off-chip memory `kind` (not node-scaled)."""
        return self.offchip_memory(kind).energy_pj_per_bit

    def wire_ns_per_mm(self) -> float:
        """Delay of a repeated wire, ns per mm (node-independent, see the table's `wire` section)."""
        return float(self._wire["delay_ps_per_mm"]) * 1e-3

    def wire_pj_per_bit_mm(self) -> float:
        """Energy to move one bit one mm on a repeated wire at the target node (pJ)."""
        return float(self._wire["energy_pj_per_bit_mm"]) * self.energy_scale(float(self._wire["node_nm"]))

    def fp_delay_ns(self, op: str, fmt: NumberFormat) -> float:
        """Delay (ns) of one `op` ('add' or 'mul') in `fmt` at the target node: the table's
        double-precision adder depth (FO4) scaled by log2 of the significand width, times the
        FO4 delay at the node (the `fp_latency` section)."""
        t = self._fp_latency
        width = {"fp16": 11, "fp32": 24}.get(fmt.kind, fmt.width_bits)
        depth = float(t["adder_fo4_fp64"]) * math.log2(max(width, 2)) / math.log2(53)
        if op == "mul":
            depth *= float(t["multiplier_to_adder_depth"])
        elif op != "add":
            raise KeyError(f"no FP latency for {op!r}")
        fo4_ps = float(t["fo4_ps"]) * self.node_nm / float(t["node_nm"])
        return depth * fo4_ps * 1e-3

    def sram_range(self) -> tuple[int, int, int, int]:
        """(min, max capacity in bytes, min, max width in bits) of the CACTI sweep."""
        c = self._sram
        return (int(c["min_capacity_bytes"]), int(c["max_capacity_bytes"]), int(c["min_width_bits"]),
                int(c["max_width_bits"]))

    def _port_fit(self, fits: dict, quantity: str, cap_bytes: float, width: float, ports: int) -> float:
        one = fits["1rw"][quantity](cap_bytes, width)
        two = fits["1r1w"][quantity](cap_bytes, width)
        return one if ports == 1 else two + (ports - 2) * (two - one)

    def sram_timing_ns(self, capacity_bytes: float, width_bits: float, ports: int) -> tuple[float, float]:
        """(access, cycle) time in ns of one array, fitted at the CSV node nearest the target node.

        Below 22 nm the 22 nm fit is kept (no cited delay scaling in the table): an upper bound.
        """
        fit_bytes, fit_width = self._fit_point(capacity_bytes, width_bits)
        return (self._port_fit(self.timing_fits, "access_time_ns", fit_bytes, fit_width, ports),
                self._port_fit(self.timing_fits, "cycle_time_ns", fit_bytes, fit_width, ports))

    def _fit_point(self, capacity_bytes: float, width_bits: float) -> tuple[float, float]:
        """The swept point an array is fitted at: its own, or CACTI's floor (1 KB, 4 x width bytes, 64 bits)."""
        lo_cap, _, lo_width, _ = self.sram_range()
        width = max(width_bits, float(lo_width))
        return max(capacity_bytes, float(lo_cap), 4.0 * width), width

    def _horowitz_read_pj(self, capacity_bytes: float, width_bits: float) -> float:
        """Horowitz's 64-bit read points: power law in capacity through the nearest two, linear in width."""
        h = self._sram["horowitz"]
        points = sorted((float(p["capacity_bytes"]), float(p["read_energy_pj"])) for p in h["points"])
        lo, hi = (points[0], points[1]) if capacity_bytes <= points[1][0] else (points[-2], points[-1])
        for a, b in zip(points, points[1:]):
            if a[0] <= capacity_bytes <= b[0]:
                lo, hi = a, b
        t = math.log(capacity_bytes / lo[0]) / math.log(hi[0] / lo[0])
        energy = math.exp(math.log(lo[1]) + t * (math.log(hi[1]) - math.log(lo[1])))
        return energy * width_bits / float(h["width_bits"]) * self.energy_scale(float(h["node_nm"]))

    def sram_tile(self, tile_bytes: float, width_bits: float, ports: int) -> SramPrice:
        """One tile (one array of the sweep's kind): per-access energies (pJ), area (um^2), leakage (W).

        A tile below CACTI's floor (1 KB, 4 x width bytes, 64 bits) is priced per bit at the
        floor. Ports: 1 -> the 1rw fit, 2 -> 1r1w, more -> each extra port adds the fitted
        (1r1w - 1rw) increment.
        """
        fit_bytes, fit_width = self._fit_point(tile_bytes, width_bits)
        width_share, bytes_share = width_bits / fit_width, tile_bytes / fit_bytes
        node = float(self._sram["node_nm"])
        e, a = self.energy_scale(node), self.area_scale(node)

        def fitted(quantity: str) -> float:
            return self._port_fit(self.sram_fits, quantity, fit_bytes, fit_width, ports)

        if self.sram_energy == "horowitz":
            read = write = self._horowitz_read_pj(fit_bytes, fit_width) * width_share
        else:
            read = fitted("read_energy_pj") * width_share * e
            write = fitted("write_energy_pj") * width_share * e
        return SramPrice(read_pj=read, write_pj=write,
                         area_um2=fitted("area_mm2") * 1e6 * bytes_share * a,
                         leakage_w=fitted("leakage_mw") * 1e-3 * bytes_share * e)

    def sram_array(self, capacity_bits: int, width_bits: int, ports: int) -> SramPrice:
        """An untiled small memory (table SRAM, ROMs) of capacity_bits read `width_bits` at a time.

        Words wider than the sweep's widest are equal column slices read together; slices larger
        than its largest capacity are row tiles of which one is accessed (no inter-tile wiring:
        the index SRAM's tiling, with its H-tree, is `axelsim.cost.tiles`).
        """
        _, max_cap, _, max_width = self.sram_range()
        slices = max(1, math.ceil(width_bits / max_width))
        slice_width, slice_bytes = width_bits / slices, capacity_bits / 8.0 / slices
        tiles = max(1, math.ceil(slice_bytes / max_cap))
        one = self.sram_tile(slice_bytes / tiles, slice_width, ports)
        return SramPrice(one.read_pj * slices, one.write_pj * slices, one.area_um2 * slices * tiles,
                         one.leakage_w * slices * tiles)
