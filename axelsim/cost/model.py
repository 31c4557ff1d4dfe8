"""Energy, area and memory of a macro: an inventory of hardware priced by the technology table.

The inventory (what is instantiated) is derived from the MacroConfig alone; prices come from
`Technology`. Dynamic energy is charged per counted action, leakage over the simulated time.
Units: energy in pJ, area in um^2, leakage power in W, memory in bytes.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Callable, Mapping

from axelsim.config.formats import FP16, NumberFormat, parse_format
from axelsim.config.load import LoadedMacro
from axelsim.config.macro import BASELINE_KINDS, MacroConfig, kivi_channel_group
from axelsim.cost import tiles
from axelsim.cost.technology import Price, SramPrice, Technology

ARITHMETIC_OPS = ("add", "mul", "cmp", "sqrt", "div", "exp")
MEMORY_ACTIONS = ("read", "write")
OFFCHIP = "offchip"  # rows spilled past sram.rows_per_bank: priced per bit, no area on the macro


class UnpricedActionError(LookupError):
    """An action or unit the cost model has no price for: an internal fault, never free."""


@dataclass(frozen=True)
class Memory:
    """A memory instance: `arrays` identical arrays of `words` words of `word_bits` bits each."""

    arrays: int
    words: int
    word_bits: int
    ports: int
    tiled: bool = False
    """True: a row store built of CACTI tiles with an H-tree (axelsim.cost.tiles); its power
    states follow `power.gating`. False: a small untiled array (table SRAM, ROMs)."""

    @property
    def bits(self) -> int:
        return self.arrays * self.words * self.word_bits


@dataclass(frozen=True)
class Unit:
    """One component: arithmetic resources by action name ('mul.fp32' -> count), register bits, memory."""

    resources: dict[str, int]
    register_bits: int = 0
    memory: Memory | None = None


def _tally(*pairs: tuple[str, int]) -> dict[str, int]:
    """Resource counts from (name, count) pairs; a name given twice (same format) adds up."""
    out: dict[str, int] = {}
    for name, count in pairs:
        out[name] = out.get(name, 0) + count
    return out


def _bits(fmt: NumberFormat) -> int:
    return fmt.width_bits


def _tree_register_bits(dim: int, stages_per_cycle: int, width: int) -> int:
    """Pipeline registers of a d-leaf adder tree registered every `stages_per_cycle` levels (and at the root)."""
    levels = dim.bit_length() - 1
    registered = set(range(stages_per_cycle, levels + 1, stages_per_cycle)) | {levels}
    return width * sum(dim >> k for k in registered)


def sign_rom_rows(c: MacroConfig, n_layers: int) -> int:
    """Rows of d bits in the sign ROM: one per layer, two with separate value vectors (signs.rule: paper)."""
    return n_layers * (2 if c.signs.separate_values else 1)


def axelram_units(c: MacroConfig, n_layers: int) -> dict[str, Unit]:
    """The AXELRAM macro's hardware, unit by unit (names from docs/interfaces.md)."""
    d, levels, b = c.head_dim, c.levels, c.bits
    key_levels = 1 << c.key_bits  # the table and its generator serve keys: 2^(b-1) levels with QJL
    f = c.formats
    rot, tab, acc, score, soft, val = (f.get(k) for k in ("rotator", "table", "accumulator", "score", "softmax", "value"))
    wp, rp, vp, sram = c.write_path, c.read_path, c.value_path, c.sram
    stages_per_pass = max(1, wp.fwht_butterflies // (d // 2))
    units = {
        "norm_unit": Unit(
            _tally((f"mul.{rot}", wp.norm_squarers), (f"add.{rot}", wp.norm_squarers), (f"sqrt.{rot}", 1)),
            register_bits=_bits(rot) * (wp.norm_squarers + 1) + 16,
        ),
        "rotator": Unit({f"add.{rot}": 2 * wp.fwht_butterflies}, register_bits=d * _bits(rot) * stages_per_pass),
        "quantizer": Unit(
            _tally((f"cmp.{rot}", wp.comparators), (f"mul.{rot}", wp.threshold_multipliers)),
            register_bits=(levels - 1) * _bits(rot) + d * b,
        ),
        "index_sram": Unit({}, memory=Memory(sram.banks, sram.rows_per_bank, c.row_bits, sram.read_ports + sram.write_ports,
                                                tiled=True)),
        "codebook_rom": Unit({}, memory=Memory(1, 2 * levels - 1 + (2 * key_levels - 1 if c.residual == "qjl" else 0),
                                               16, 1)),
        "sign_rom": Unit({}, memory=Memory(1, sign_rom_rows(c, n_layers), d, 1)),
        "table_generator": Unit({f"mul.{tab}": rp.table_multipliers}, register_bits=d * _bits(rot)),
        "table_sram": Unit(
            {}, memory=Memory(rp.pipelines * rp.lookups_per_cycle, d * key_levels // rp.lookups_per_cycle, _bits(tab), 2)
        ),
        "lookup_pipeline": Unit(
            _tally((f"add.{acc}", rp.pipelines * (d - 1)), (f"mul.{score}", rp.norm_multipliers)),
            register_bits=rp.pipelines * (_tree_register_bits(d, rp.adder_tree_stages_per_cycle, _bits(acc)) + _bits(score)),
        ),
    }
    if c.residual == "qjl":
        units.update(qjl_units(c))
    if vp.enabled:
        units["value_unit"] = Unit(
            _tally(
                (f"exp.{soft}", vp.exp_units), (f"mul.{soft}", 1), (f"add.{soft}", 1), (f"cmp.{soft}", 1),
                (f"mul.{val}", vp.centroid_multipliers + 1),
                (f"add.{val}", vp.bin_lanes + 2 * vp.inverse_fwht_butterflies), (f"div.{val}", 1),
            ),
            # the bins (P_b copies with bin_hazard: partial) and the running sum's P_E partials
            register_bits=d * levels * _bits(val) * vp.bin_partials() + vp.sum_partials() * _bits(soft),
        )
    return units


def qjl_units(c: MacroConfig) -> dict[str, Unit]:
    """The QJL residual's hardware (hw/qjl.py): the residual unit (d centroid x norm multipliers,
    d subtractors, d squarers, a d-leaf tree, a square root), the shared projector (R sketch rows
    per cycle: R d multipliers, R d-leaf trees, R scaling multipliers), the FP16 sketch ROM (m d
    words) and per lookup pipeline a QJL accumulator (m sketch-weight registers, an m-leaf tree,
    the residual-norm multiplier and the score adder)."""
    d, q, rp, f = c.head_dim, c.qjl, c.read_path, c.formats
    rot, tab, acc, score = (f.get(k) for k in ("rotator", "table", "accumulator", "score"))
    m, rows = c.sketch_bits, q.projection_rows_per_cycle
    return {
        "qjl_residual": Unit(_tally((f"mul.{rot}", 2 * d), (f"add.{rot}", 2 * d - 1), (f"sqrt.{rot}", 1)),
                             register_bits=d * _bits(rot) + 16),
        "qjl_projector": Unit(_tally((f"mul.{rot}", rows * d), (f"add.{rot}", rows * (d - 1)), (f"mul.{tab}", rows)),
                              register_bits=d * _bits(rot) + m * _bits(tab) + rows * _tree_register_bits(d, 1, _bits(rot))),
        "sketch_rom": Unit({}, memory=Memory(1, m * d, 16, 1)),
        "qjl_accumulator": Unit(
            _tally((f"add.{acc}", rp.pipelines * (m - 1)), (f"mul.{score}", rp.pipelines), (f"add.{score}", rp.pipelines)),
            register_bits=rp.pipelines * (m * _bits(tab) + _tree_register_bits(m, 1, _bits(acc)) + 2 * _bits(score)),
        ),
    }




def _value_unit(c: MacroConfig, *, inverse_fwht: bool) -> Unit:
    """A baseline's value unit: softmax as AXELRAM's, bin_lanes multiply-accumulators in the
    value format (weight x value), one divider, the output multipliers; `inverse_fwht` adds
    AXELRAM's inverse FWHT (the rotated-domain accumulation of dequant_rotated)."""
    f, vp, d = c.formats, c.value_path, c.head_dim
    soft, val = f.get("softmax"), f.get("value")
    adders = vp.bin_lanes + (2 * vp.inverse_fwht_butterflies if inverse_fwht else 0)
    return Unit(
        _tally((f"exp.{soft}", vp.exp_units), (f"mul.{soft}", 1), (f"add.{soft}", 1), (f"cmp.{soft}", 1),
               (f"mul.{val}", vp.bin_lanes + vp.centroid_multipliers + 1), (f"add.{val}", adders), (f"div.{val}", 1)),
        register_bits=d * _bits(val),
    )


def kivi_row_bits(c: MacroConfig, kv: int) -> int:
    """Bits of one KIVI row of keys (kv 0) or values (1): d codes plus its share of the FP16
    scale and zero (32 bits per group: per channel and G tokens for keys, per token and
    kivi_channel_group channels for values)."""
    k = c.baselines.kivi
    group = k.group_size if kv == 0 else kivi_channel_group(k, c.head_dim)
    return c.head_dim * k.bits + 32 * c.head_dim // group


def kivi_window_rows(c: MacroConfig) -> int:
    """FP16 window rows per bank: `window` of every `context_tokens` rows the macro holds."""
    k = c.baselines.kivi
    return -(-c.sram.rows_per_bank * k.window // k.context_tokens)


def baseline_units(kind: str, c: MacroConfig, n_layers: int) -> dict[str, Unit]:
    """Conventional macros priced with the same table (docs/cost_model.md, 'Baselines').

    'fp16': FP16 K/V SRAM (rows of d*16 bits, same banks and rows) + d fp16 multipliers and an
    adder tree per pipeline. 'dequant_rotated': AXELRAM's write path, index SRAM and ROMs + d
    multipliers (rotated query x centroid), the tree and a norm multiplier per pipeline.
    'kivi': quantized rows (kivi_row_bits, same banks and rows), an FP16 window SRAM, a
    quantizer (d lanes), a dequantizer (d FP16 multiply-adds) and the FP16 dot product.
    'dequant_inverse_rotate': AXELRAM's rows + a dequantizer (d multipliers), an inverse FWHT
    and the FP16 dot product. Each has its value unit (_value_unit).
    """
    c = c.without_residual()  # the baselines are the plain b-bit designs
    d, f, sram, rp = c.head_dim, c.formats, c.sram, c.read_path
    acc, rot, score = f.get("accumulator"), f.get("rotator"), f.get("score")
    tree_regs = rp.pipelines * _tree_register_bits(d, rp.adder_tree_stages_per_cycle, _bits(acc))
    dot = Unit(_tally((f"mul.{FP16}", rp.pipelines * d), (f"add.{acc}", rp.pipelines * (d - 1))), register_bits=tree_regs)
    value = {"value_unit": _value_unit(c, inverse_fwht=kind == "dequant_rotated")} if c.value_path.enabled else {}
    full = axelram_units(c, n_layers)
    write = {k: full[k] for k in ("norm_unit", "rotator", "quantizer", "index_sram", "codebook_rom", "sign_rom")}
    ports = sram.read_ports + sram.write_ports
    if kind == "fp16":
        kv = Unit({}, memory=Memory(sram.banks, sram.rows_per_bank, d * 16, ports, tiled=True))
        return {"kv_sram": kv, "dot_product": dot, **value}
    if kind == "dequant_rotated":
        mac = Unit(_tally((f"mul.{acc}", rp.pipelines * d), (f"add.{acc}", rp.pipelines * (d - 1)),
                          (f"mul.{score}", rp.norm_multipliers)),
                   register_bits=tree_regs + rp.pipelines * _bits(score))
        return {**write, "dot_product": mac, **value}
    if kind == "kivi":
        k = c.baselines.kivi
        scale_bits = 32 * d  # one scale/zero row: d FP16 pairs (G keys) or G rows of d/G pairs (values)
        return {
            "kv_sram": Unit({}, memory=Memory(sram.banks, kivi_window_rows(c), d * 16, ports)),
            "quant_sram": Unit({}, memory=Memory(sram.banks, sram.rows_per_bank, d * k.bits, ports, tiled=True)),
            "scale_sram": Unit({}, memory=Memory(sram.banks, -(-sram.rows_per_bank // k.group_size), scale_bits, ports)),
            "kivi_quantizer": Unit(_tally((f"cmp.{rot}", 3 * d), (f"add.{rot}", d + 1), (f"mul.{rot}", d + 1),
                                          (f"div.{rot}", 1)), register_bits=k.group_size * d * 16),
            "dequantizer": Unit(_tally((f"mul.{FP16}", rp.pipelines * d), (f"add.{FP16}", rp.pipelines * d)),
                                register_bits=rp.pipelines * d * 16),
            "dot_product": dot,
            **value,
        }
    if kind == "dequant_inverse_rotate":
        return {
            **write,
            "dequantizer": Unit({f"mul.{rot}": rp.pipelines * d}, register_bits=rp.pipelines * d * _bits(rot)),
            "inverse_rotator": Unit({f"add.{rot}": rp.pipelines * d * c.log2_dim}, register_bits=rp.pipelines * d * _bits(rot)),
            "dot_product": dot,
            **value,
        }
    raise ValueError(f"unknown baseline kind {kind!r}; expected one of {', '.join(BASELINE_KINDS)}")


def baseline_memory_bytes(kind: str, c: MacroConfig, n_layers: int, kv_heads: int, tokens: int) -> dict[str, float]:
    """What a baseline stores for a trace, in bytes: kv_storage (K and V, K only without the
    value path), per_vector (its mean over the stored vectors), codebook_rom, sign_rom, table (0)."""
    d = c.head_dim
    kinds = 2 if c.value_path.enabled else 1
    streams = n_layers * kv_heads
    rom = {"codebook_rom": float(2 * (2 * c.levels - 1)), "sign_rom": sign_rom_rows(c, n_layers) * d / 8}
    if kind == "fp16":
        bits, rom = float(streams * kinds * tokens * d * 16), {"codebook_rom": 0.0, "sign_rom": 0.0}
    elif kind == "kivi":
        k = c.baselines.kivi
        quant_k = (tokens // k.window) * k.window
        quant_v = max(0, tokens - k.window) if kinds == 2 else 0
        fp16_rows = (tokens - quant_k) + (tokens - quant_v if kinds == 2 else 0)
        bits = float(streams * (quant_k * kivi_row_bits(c, 0) + quant_v * kivi_row_bits(c, 1) + fp16_rows * d * 16))
        rom = {"codebook_rom": 0.0, "sign_rom": 0.0}
    else:
        bits = float(streams * kinds * tokens * c.vector_bits)
    vectors = streams * kinds * tokens
    out = {"kv_storage": bits / 8, "per_vector": bits / 8 / vectors if vectors else 0.0, **rom, "table": 0.0}
    out["total"] = out["kv_storage"] + out["codebook_rom"] + out["sign_rom"]
    return out


class CostModel:
    """Prices one macro (AXELRAM or a baseline) at its technology node."""

    def __init__(self, config: MacroConfig, tech: Technology, build: Callable[[MacroConfig, int], dict[str, Unit]], kind: str):
        self.config = config
        self.tech = tech
        self.kind = kind
        self._build = build

    @classmethod
    def from_macro(cls, loaded: LoadedMacro) -> "CostModel":
        """The AXELRAM macro of `loaded`, priced by its technology table (read once, here)."""
        return cls(loaded.config, Technology.for_macro(loaded), axelram_units, "axelram")

    @classmethod
    def for_baseline(cls, kind: str, loaded: LoadedMacro, tech: Technology | None = None) -> "CostModel":
        """A conventional macro with the same d, banks, rows, pipelines and node (see baseline_units)."""
        baseline_units(kind, loaded.config, 1)  # rejects an unknown kind before reading the table
        tech = tech or Technology.for_macro(loaded)
        return cls(loaded.config.without_residual(), tech, lambda c, n: baseline_units(kind, c, n), kind)

    # --- inventory and area -------------------------------------------------------------------
    def units(self, n_layers: int) -> dict[str, Unit]:
        return self._build(self.config, n_layers)

    def inventory(self, n_layers: int) -> dict[str, dict[str, int]]:
        """Instantiated hardware: unit -> resource -> count ('mul.fp32', 'register_bits', 'memory_bits', ...)."""
        out: dict[str, dict[str, int]] = {}
        for name, unit in self.units(n_layers).items():
            entry = dict(unit.resources)
            if unit.register_bits:
                entry["register_bits"] = unit.register_bits
            if unit.memory is not None:
                m = unit.memory
                entry.update(memory_bits=m.bits, memory_arrays=m.arrays, memory_words=m.words, memory_word_bits=m.word_bits, memory_ports=m.ports)
            out[name] = entry
        return out

    def _resource_price(self, resource: str) -> Price:
        op, _, fmt = resource.partition(".")
        if op not in ARITHMETIC_OPS or not fmt:
            raise UnpricedActionError(f"no price for resource or action {resource!r}")
        return self.tech.operation(op, parse_format(fmt))

    def geometry(self, memory: Memory) -> tiles.TileGeometry:
        """The tiling of a tiled row store (index_sram, kv_sram)."""
        return tiles.tile_geometry(self.config, self.tech, row_bits=memory.word_bits)

    def _memory_price(self, memory: Memory) -> SramPrice:
        """One array (one bank of a tiled store): area and leakage of all its tiles, energy of one
        access (its tiles plus, when tiled, the row's bits over the H-tree from the macro's port)."""
        if not memory.tiled:
            return self.tech.sram_array(memory.words * memory.word_bits, memory.word_bits, memory.ports)
        geo = self.geometry(memory)
        tile = tiles.tile_price(self.config, self.tech, geo)
        return SramPrice(tile.read_pj * geo.slices, tile.write_pj * geo.slices,
                         tile.area_um2 * geo.tiles_per_bank, tile.leakage_w * geo.tiles_per_bank)

    def _access_pj(self, memory: Memory, action: str) -> float:
        price = self._memory_price(memory)
        wire = memory.word_bits * self.wire_mm() * self.tech.wire_pj_per_bit_mm() if memory.tiled else 0.0
        return (price.read_pj if action == "read" else price.write_pj) + wire

    @functools.cached_property
    def macro_area_um2(self) -> float:
        """The macro's area (um^2, one layer's sign ROM), which the H-tree spans."""
        return sum(self._unit_static(unit)[0] for unit in self.units(1).values())

    def wire_mm(self) -> float:
        """H-tree length from the macro's port to its farthest tile (mm)."""
        return tiles.htree_mm(self.macro_area_um2)

    def row_store(self, n_layers: int = 1) -> tuple[str, Memory]:
        """The tiled row store of this macro (index_sram, or the fp16 baseline's kv_sram)."""
        for name, unit in self.units(n_layers).items():
            if unit.memory is not None and unit.memory.tiled:
                return name, unit.memory
        raise UnpricedActionError(f"the {self.kind} macro has no tiled row store")

    def timing(self, spills: bool = False, source: str = "") -> tiles.SramTiming:
        """The row store's timing at the clock (derived unless the macro's keys override it)."""
        return tiles.derive_timing(self.config, self.tech, self.macro_area_um2, spills, source)

    def _unit_static(self, unit: Unit) -> tuple[float, float]:
        """(area_um2, leakage_w) of one unit."""
        area = leak = 0.0
        for resource, count in unit.resources.items():
            price = self._resource_price(resource)
            area, leak = area + price.area_um2 * count, leak + price.leakage_w * count
        regs = self.tech.register_bits(unit.register_bits)
        area, leak = area + regs.area_um2, leak + regs.leakage_w
        if unit.memory is not None:
            mem = self._memory_price(unit.memory)
            area += mem.area_um2 * unit.memory.arrays
            leak += mem.leakage_w * unit.memory.arrays
        return area, leak

    def area_um2(self, n_layers: int) -> dict[str, float]:
        """Area per unit and 'total', in um^2 at the macro's node."""
        areas = {name: self._unit_static(unit)[0] for name, unit in self.units(n_layers).items()}
        areas["total"] = sum(areas.values())
        return areas

    def leakage_w(self, n_layers: int) -> dict[str, float]:
        """Leakage power per unit and 'total', in W at the macro's node."""
        leaks = {name: self._unit_static(unit)[1] for name, unit in self.units(n_layers).items()}
        leaks["total"] = sum(leaks.values())
        return leaks

    # --- energy ---------------------------------------------------------------------------------
    def action_pj(self, unit_name: str, action: str, units: Mapping[str, Unit]) -> float:
        """Dynamic energy of one action of one unit, in pJ; UnpricedActionError if it has no price."""
        if unit_name == OFFCHIP and action in MEMORY_ACTIONS:
            return self.offchip_row_bits(units) * self.tech.offchip_pj_per_bit(self.config.sram.offchip_memory)
        unit = units.get(unit_name)
        if unit is None:
            raise UnpricedActionError(f"unit {unit_name!r} is not part of the {self.kind} macro ({', '.join(units)})")
        if action in MEMORY_ACTIONS:
            if unit.memory is None:
                raise UnpricedActionError(f"unit {unit_name!r} has no memory to {action}")
            return self._access_pj(unit.memory, action)
        return self._resource_price(action).energy_pj

    def offchip_row_bits(self, units: Mapping[str, Unit]) -> int:
        """Bits of one spilled row: a word of the macro's row store (index_sram, or the fp16 kv_sram)."""
        for name in ("index_sram", "kv_sram"):
            unit = units.get(name)
            if unit is not None and unit.memory is not None:
                return unit.memory.word_bits
        raise UnpricedActionError(f"the {self.kind} macro has no row store whose rows could spill off-chip")

    def energy_pj(self, actions: Mapping[str, Mapping[str, int]], time_s: float, n_layers: int,
                  rows_used: int | None = None, busy_cycles: int = 0) -> dict:
        """Energy in pJ: dynamic per counted action, leakage over `time_s` seconds.

        rows_used: rows each bank of the tiled row store holds (None: all of them); busy_cycles:
        bank-busy cycles summed over banks (for power.gating: idle_tiles). Returns
        {'dynamic': {unit: {action: pJ}}, 'dynamic_by_component': {unit: pJ}, 'leakage': {unit: pJ},
        'leakage_by_state': {'active', 'idle', 'off'} pJ (row store tiles by state, logic and small
        memories always active), 'tiles': counts, 'dynamic_total', 'leakage_total', 'total'}.
        """
        if not time_s >= 0.0:
            raise ValueError(f"time_s must be >= 0, got {time_s}")
        units = self.units(n_layers)
        dynamic = {
            unit: {action: count * self.action_pj(unit, action, units) for action, count in counts.items()}
            for unit, counts in actions.items()
        }
        by_component = {unit: sum(per.values()) for unit, per in dynamic.items()}
        leakage = {name: watts * time_s * 1e12 for name, watts in self.leakage_w(n_layers).items() if name != "total"}
        states = {"active": sum(leakage.values()), "idle": 0.0, "off": 0.0}
        tile_counts: dict = {}
        store = next(((n, u.memory) for n, u in units.items() if u.memory is not None and u.memory.tiled), None)
        if store is not None:
            name, memory = store
            geo = self.geometry(memory)
            split = tiles.leakage_by_state(self.config, self.tech, geo,
                                           memory.words if rows_used is None else rows_used, time_s, busy_cycles)
            leakage[name] = split["active"] + split["idle"]
            states = {"active": sum(v for k, v in leakage.items() if k != name) + split["active"],
                      "idle": split["idle"], "off": 0.0}
            tile_counts = {k: split[k] for k in ("tiles_total", "tiles_holding_data", "tiles_off")}
        dyn_total, leak_total = sum(by_component.values()), sum(leakage.values())
        return {
            "dynamic": dynamic,
            "dynamic_by_component": by_component,
            "leakage": leakage,
            "leakage_by_state": states,
            "tiles": tile_counts,
            "dynamic_total": dyn_total,
            "leakage_total": leak_total,
            "total": dyn_total + leak_total,
        }

    # --- memory ---------------------------------------------------------------------------------
    def memory_bytes(self, n_layers: int, kv_heads: int, tokens: int) -> dict[str, float]:
        """The paper's storage arithmetic, in bytes (compression is a ratio).

        per_vector = (d*b + 16)/8; kv_storage over K and V (K only when the value path is off);
        kv_storage_fp16 = the same vectors at 2 bytes per element; codebook_rom = 2*(2*2^b - 1);
        sign_rom = n_layers*d/8 (twice that with separate value vectors); table = pipelines * d*2^b entries of the table format.
        """
        c = self.config
        vectors = n_layers * kv_heads * tokens * (2 if c.value_path.enabled else 1)
        per_vector = (c.key_row_bits + (c.vector_bits if c.value_path.enabled else 0)) / 8 / (
            2 if c.value_path.enabled else 1)  # keys and values alike, or their mean with QJL keys
        fp16_vector = c.head_dim * 2
        table_bits = c.read_path.pipelines * c.head_dim * (1 << c.key_bits) * c.formats.get("table").width_bits
        return {
            "per_vector": per_vector,
            "per_vector_fp16": float(fp16_vector),
            "kv_storage": vectors * per_vector,
            "kv_storage_fp16": float(vectors * fp16_vector),
            "compression": fp16_vector / per_vector,
            "codebook_rom": float(2 * (2 * c.levels - 1) + (2 * (2 * (1 << c.key_bits) - 1) if c.residual == "qjl" else 0)),
            "sign_rom": sign_rom_rows(c, n_layers) * c.head_dim / 8,
            "table": table_bits / 8,
            **({"sketch_rom": c.sketch_bits * c.head_dim * 2.0} if c.residual == "qjl" else {}),
        }
