"""The index SRAM built of tiles: geometry, H-tree wire, derived timing and power states.

A bank of `rows_per_bank` rows of `row_bits` is `slices` column slices (tiles side by side, read
together) times `row_tiles` tiles deep; an access touches one tile of every slice. Tile timing
comes from the CACTI fit (access and cycle time), the wire from the macro's port to its farthest
tile from the table's repeated-wire model over an H-tree spanning the macro's area. Timing in
ns and clock cycles, energy in pJ, power in W, area in um^2 (docs/cost_model.md, "SRAM tiles and
timing" and "Power states").
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from axelsim.config.macro import MacroConfig
from axelsim.cost.technology import SramPrice, Technology
from axelsim.errors import ConfigError


@dataclass(frozen=True)
class TileGeometry:
    """How one bank of the index SRAM is tiled."""

    tile_bytes: int
    tile_width_bits: int
    slices: int
    """Tiles side by side per row (row_bits / tile_width_bits, rounded up)."""
    words_per_tile: int
    row_tiles: int
    """Tiles stacked per slice to hold rows_per_bank rows."""
    banks: int
    ports: int

    @property
    def tiles_per_bank(self) -> int:
        return self.slices * self.row_tiles

    @property
    def tiles(self) -> int:
        return self.banks * self.tiles_per_bank

    def tiles_holding(self, rows_used: int) -> int:
        """Tiles of one bank holding at least one of its first `rows_used` rows."""
        used = min(rows_used, self.words_per_tile * self.row_tiles)
        return self.slices * -(-used // self.words_per_tile)


def auto_tile_bytes(tech: Technology, width_bits: int, ports: int, clock_hz: float) -> int:
    """The largest power-of-two tile in the sweep whose fitted access time fits one clock period
    (the paper reads a row per cycle), else the sweep's smallest."""
    lo, hi, _, _ = tech.sram_range()
    period_ns = 1e9 / clock_hz
    best, cap = lo, lo
    while cap <= hi:
        if tech.sram_timing_ns(cap, width_bits, ports)[0] <= period_ns:
            best = cap
        cap *= 2
    return best


def tile_geometry(macro: MacroConfig, tech: Technology, row_bits: int | None = None, source: str = "") -> TileGeometry:
    """The tiling of the index SRAM (or, with `row_bits`, of a row store of that row width)."""
    sram = macro.sram
    row_bits = row_bits or macro.row_bits
    lo_cap, hi_cap, _, hi_width = tech.sram_range()
    width = sram.tile_width_bits or (row_bits if row_bits <= hi_width else -(-row_bits // -(-row_bits // hi_width)))
    ports = sram.read_ports + sram.write_ports
    tile_bytes = sram.tile_bytes or auto_tile_bytes(tech, width, ports, macro.clock_hz)
    if width > hi_width:
        raise ConfigError(source or macro.name, "sram.tile_width_bits",
                          f"at most the CACTI sweep's widest word ({hi_width} bits), got {width}")
    if not lo_cap <= tile_bytes <= hi_cap:
        raise ConfigError(source or macro.name, "sram.tile_bytes",
                          f"a tile inside the CACTI sweep ({lo_cap}..{hi_cap} bytes), got {tile_bytes}")
    words = tile_bytes * 8 // width
    if words < 1:
        raise ConfigError(source or macro.name, "sram.tile_bytes", f"at least one {width}-bit word, got {tile_bytes} bytes")
    return TileGeometry(tile_bytes=tile_bytes, tile_width_bits=width, slices=-(-row_bits // width),
                        words_per_tile=words, row_tiles=-(-sram.rows_per_bank // words), banks=sram.banks, ports=ports)


def htree_mm(area_um2: float) -> float:
    """Length (mm) of the H-tree path from a macro's centre port to its farthest tile: at most
    half the side in each direction, i.e. the side of the (square) macro."""
    return math.sqrt(max(area_um2, 0.0)) * 1e-3


EXP_STAGE_OPS = {"add": 8, "mul": 7}
"""The exp stage's pipelined chain (docs/architecture.md): the subtraction z - m, x * log2e,
f = x log2e - k, six Horner steps (multiply, add) of the degree-6 polynomial; plus one stage
for the exponent add of p * 2^k (an 11-bit integer add, one cycle)."""
EXP_EXPONENT_STAGES = 1


def exp_latency_cycles(add_cycles: int, mul_cycles: int) -> int:
    """Latency (cycles) of the exp stage: each FP operation of the chain a pipeline stage of
    its own operation latency, plus the exponent stage."""
    return EXP_STAGE_OPS["add"] * add_cycles + EXP_STAGE_OPS["mul"] * mul_cycles + EXP_EXPONENT_STAGES


@dataclass(frozen=True)
class SramTiming:
    """The macro's technology-derived timing at its clock: the index SRAM's latencies and bank
    II, and the value path's FP operation latencies (exp stage, bin read-modify-write), with
    where each value came from.

    `source[key]` is 'derived' (from the technology table), 'overridden' (a macro key) or
    'ideal' (no technology given: every latency and II one cycle, as a bare cycle-model run).
    Times in ns, latencies and IIs in clock cycles.
    """

    read_latency_cycles: int
    write_latency_cycles: int
    bank_ii_cycles: int
    access_ns: float | None = None
    cycle_ns: float | None = None
    wire_ns: float | None = None
    wire_mm: float | None = None
    offchip_latency_cycles: int = 1
    offchip_ii_cycles: int = 1
    softmax_add_cycles: int = 1
    """An add (or subtraction) in the softmax format."""
    softmax_mul_cycles: int = 1
    exp_latency_cycles: int = exp_latency_cycles(1, 1)
    """The exp stage: EXP_STAGE_OPS at the softmax format's add and multiply latencies."""
    bin_adder_latency_cycles: int = 1
    """The bin read-modify-write through the value-format adder (value_path.bin_adder_latency)."""
    fp_add_ns: dict = field(default_factory=dict)
    """Delay of one add per format name used ('fp32': 0.25, ...), ns (empty when ideal)."""
    fp_mul_ns: dict = field(default_factory=dict)
    source: dict = field(default_factory=dict)
    offchip_memory: str = ""
    """The off-chip memory spilled rows go to ('HBM3', 'HBM2'; empty when the macro does not spill)."""

    @classmethod
    def ideal(cls, macro: MacroConfig) -> "SramTiming":
        """Explicit keys where given, else one cycle ('ideal'): for cycle-model runs without a table."""
        s = macro.sram
        keys = {"read_latency_cycles": s.read_latency_cycles, "write_latency_cycles": s.write_latency_cycles,
                "bank_ii_cycles": s.bank_ii_cycles}
        keys["bin_adder_latency_cycles"] = macro.value_path.bin_adder_latency
        values = {k: (v if v is not None else 1) for k, v in keys.items()}
        source = {k: ("overridden" if v is not None else "ideal") for k, v in keys.items()}
        source.update(softmax_add_cycles="ideal", softmax_mul_cycles="ideal", exp_latency_cycles="ideal")
        return cls(**values, source=source)

    def as_report(self) -> dict:
        """The report's `sram_timing` section (docs/report.md)."""
        return {"read_latency_cycles": self.read_latency_cycles, "write_latency_cycles": self.write_latency_cycles,
                "bank_ii_cycles": self.bank_ii_cycles, "access_ns": self.access_ns, "cycle_ns": self.cycle_ns,
                "wire_ns": self.wire_ns, "wire_mm": self.wire_mm,
                "offchip_latency_cycles": self.offchip_latency_cycles, "offchip_ii_cycles": self.offchip_ii_cycles,
                "softmax_add_cycles": self.softmax_add_cycles, "softmax_mul_cycles": self.softmax_mul_cycles,
                "exp_latency_cycles": self.exp_latency_cycles, "bin_adder_latency_cycles": self.bin_adder_latency_cycles,
                "fp_add_ns": dict(self.fp_add_ns), "fp_mul_ns": dict(self.fp_mul_ns),
                "offchip_memory": self.offchip_memory, "source": dict(self.source)}


def _cycles(ns: float, clock_hz: float) -> int:
    """Whole clock cycles covering `ns` (at least one); a tiny epsilon keeps exact multiples exact."""
    return max(1, math.ceil(ns * clock_hz * 1e-9 - 1e-9))


def derive_timing(macro: MacroConfig, tech: Technology, macro_area_um2: float, spills: bool = False,
                  source: str = "") -> SramTiming:
    """Access and cycle time of one tile (CACTI fit, or the macro's keys), the H-tree wire over
    `macro_area_um2`, and from them the read/write latency and bank II at the clock; every
    explicit key overrides its derivation. `spills`: also derive the off-chip channel's timing."""
    s, f = macro.sram, macro.clock_hz
    geo = tile_geometry(macro, tech, source=source)
    fit_access, fit_cycle = tech.sram_timing_ns(geo.tile_bytes, geo.tile_width_bits, geo.ports)
    origin: dict[str, str] = {}

    def pick(key: str, explicit, derived):
        origin[key] = "overridden" if explicit is not None else "derived"
        return explicit if explicit is not None else derived

    access = pick("access_ns", s.access_ns, fit_access)
    cycle = pick("cycle_ns", s.cycle_ns, fit_cycle)
    wire_mm = htree_mm(macro_area_um2)
    wire_ns = wire_mm * tech.wire_ns_per_mm()
    origin["tile_bytes"] = "overridden" if s.tile_bytes is not None else "derived"
    read = pick("read_latency_cycles", s.read_latency_cycles, _cycles(access + 2 * wire_ns, f))
    write = pick("write_latency_cycles", s.write_latency_cycles, _cycles(access + wire_ns, f))
    bank_ii = pick("bank_ii_cycles", s.bank_ii_cycles, _cycles(cycle, f))
    off_lat = off_ii = 1
    off_name = ""
    if spills:
        dram = tech.offchip_memory(macro.sram.offchip_memory)
        off_lat = _cycles(dram.latency_ns + 2 * wire_ns, f)
        off_ii = _cycles(macro.row_bits / 8 / dram.bandwidth_gb_per_s, f)  # bytes / (GB/s) = ns
        origin["offchip"] = "derived"
        off_name = dram.name
    soft, value = macro.formats.get("softmax"), macro.formats.get("value")
    add_ns = {fmt.name: tech.fp_delay_ns("add", fmt) for fmt in (soft, value)}
    mul_ns = {fmt.name: tech.fp_delay_ns("mul", fmt) for fmt in (soft, value)}
    s_add, s_mul = _cycles(add_ns[soft.name], f), _cycles(mul_ns[soft.name], f)
    origin.update(softmax_add_cycles="derived", softmax_mul_cycles="derived", exp_latency_cycles="derived")
    bins = pick("bin_adder_latency_cycles", macro.value_path.bin_adder_latency, _cycles(add_ns[value.name], f))
    return SramTiming(read, write, bank_ii, access, cycle, wire_ns, wire_mm, off_lat, off_ii, s_add, s_mul,
                      exp_latency_cycles(s_add, s_mul), bins, add_ns, mul_ns, origin, off_name)


def tile_price(macro: MacroConfig, tech: Technology, geo: TileGeometry) -> SramPrice:
    """One tile's price (energy per access of the tile, area, leakage)."""
    return tech.sram_tile(geo.tile_bytes, geo.tile_width_bits, geo.ports)


def leakage_by_state(macro: MacroConfig, tech: Technology, geo: TileGeometry, rows_used: int,
                     time_s: float, busy_cycles: int) -> dict[str, float]:
    """Leakage energy (pJ) of the index SRAM's tiles over `time_s`, split by power state.

    rows_used: rows each bank holds (the trace's occupancy); busy_cycles: cycles banks were
    busy with accesses, summed over banks (an access holds its bank's tiles bank_ii cycles).
    Returns {'active', 'idle', 'off'} in pJ ('off' is always 0: gated tiles leak nothing) and
    the tile counts behind them.
    """
    tile_w = tile_price(macro, tech, geo).leakage_w
    gating = macro.power.gating
    holding = geo.banks * geo.tiles_holding(rows_used) if gating != "none" else geo.tiles
    off_tiles = geo.tiles - holding
    total_cycles = time_s * macro.clock_hz
    if gating == "idle_tiles" and total_cycles > 0:
        # while a bank is busy, the tiles of one row (one per slice) are active; the rest retain
        active_tile_s = min(busy_cycles * geo.slices / macro.clock_hz, holding * time_s)
        idle_tile_s = holding * time_s - active_tile_s
    else:
        active_tile_s, idle_tile_s = holding * time_s, 0.0
    return {"active": tile_w * active_tile_s * 1e12, "idle": tile_w * tech.retention_fraction * idle_tile_s * 1e12,
            "off": 0.0, "tiles_total": geo.tiles, "tiles_holding_data": holding, "tiles_off": off_tiles}
