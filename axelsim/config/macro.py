"""The typed macro configuration: every parameter the numerics, cycle and cost models read.

Validated once, at load time (see `axelsim.config.load`); after that the code trusts it.
Defaults reproduce the paper's macro (d = 128, b = 3): a 448-butterfly FWHT, 896 comparators,
a 1024-entry FP16 table, a 127-adder tree, one norm multiplier and 400-bit rows.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from axelsim.config.formats import NumberFormat, parse_format
from axelsim.config.limits import MAX_CLOCK_HZ, MAX_LANES, MAX_SEED, MAX_TOKENS, MIN_CLOCK_HZ


class StrictModel(BaseModel):
    """A config section: unknown keys are errors, values are not coerced across types."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


def _power_of_two(value: int) -> bool:
    return value > 0 and value & (value - 1) == 0


class KeyedValueError(ValueError):
    """A cross-field rule broken at a known key path (e.g. 'read_path.pipelines').

    Raised inside model validators, where pydantic itself cannot know which key is at fault;
    `axelsim.config.load` reads `.where` to name the key in the ConfigError.
    """

    def __init__(self, where: str, expected: str):
        self.where = where
        self.expected = expected
        super().__init__(f"{where}: expected {expected}")


class FormatsConfig(StrictModel):
    """Number formats of the datapath, by where they are used (see axelsim.config.formats)."""

    input: str = "fp16"
    """Keys, values and queries are rounded to this format as they enter the macro."""
    rotator: str = "fp32"
    """Norm extractor (squares, pairwise sum, sqrt), FWHT butterflies and scaled thresholds."""
    table: str = "fp16"
    """Entries of the precomputed table P[i][j] = q_rot[i] * c_j."""
    accumulator: str = "fp16"
    """The read path's adder tree (pairwise, stage by stage)."""
    score: str = "fp32"
    """Output of the norm multiplier: score = tree_sum * ||k||."""
    softmax: str = "fp32"
    """Softmax: scale, max, exp, running sum (floating formats only)."""
    value: str = "fp32"
    """Value path: bins, centroid products, inverse FWHT and the attention output."""

    @field_validator("*")
    @classmethod
    def _known_format(cls, text: str) -> str:
        parse_format(text)
        return text

    @field_validator("softmax")
    @classmethod
    def _float_softmax(cls, text: str) -> str:
        if text not in ("fp16", "fp32"):
            raise ValueError(f"expected 'fp16' or 'fp32' for the softmax, got {text!r}")
        return text

    def get(self, where: str) -> NumberFormat:
        """The parsed format of one field, e.g. `formats.get('table')`."""
        return parse_format(getattr(self, where))


class SignsConfig(StrictModel):
    """Source of the sign ROM: a seed (the documented seed rule) or a signs file.

    Exactly one source is in effect: giving `file` without `seed` sets `seed` to None.
    """

    seed: Optional[int] = Field(default=0, ge=0, le=MAX_SEED)
    file: Optional[str] = None
    """A YAML written by `axelsim calibrate-signs`, relative to the macro file."""
    rule: Literal["axelsim", "paper"] = "axelsim"
    """'axelsim': one vector per layer from the seed rule, shared by keys, values and queries.
    'paper': the paper code's rule (numerics.hadamard.paper_sign_roms; seed 0..2^32-1, the
    paper's default 42): separate key (and query) and value vectors per layer, 2 d ROM bits per
    layer. Needs a seed, not a file."""

    @property
    def separate_values(self) -> bool:
        """True when the values have their own sign vectors (a second ROM of n_layers x d bits)."""
        return self.rule == "paper"

    @model_validator(mode="before")
    @classmethod
    def _one_source(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        has_file = data.get("file") is not None
        if has_file and data.get("rule") == "paper":
            raise KeyedValueError("signs.rule", "'paper' derives its vectors from a seed: drop 'file' or the rule")
        if has_file and data.get("seed") is not None:
            raise KeyedValueError("signs", "either 'seed' or 'file', not both")
        if has_file:
            return {**data, "seed": None}
        if "seed" in data and data["seed"] is None:
            raise KeyedValueError("signs.seed", "a seed (integer >= 0) when no signs 'file' is given")
        return data


class SramConfig(StrictModel):
    """The index SRAM: banks of rows, one stored vector (d*b index bits + 16-bit norm) per row.

    Each bank is built of CACTI-sized tiles (`tile_bytes` x `tile_width_bits`); timing keys left
    null are derived from the technology table at the configured clock (docs/cost_model.md,
    "SRAM tiles and timing"); a value given here overrides the derivation and the report says so.
    """

    banks: int = Field(default=16, ge=1, le=1 << 20)
    rows_per_bank: int = Field(default=512, ge=1, le=1 << 32)
    row_bits: Optional[int] = Field(default=None, ge=1, le=1 << 20)
    """Bits per row; None means exactly d*b + 16 (400 for d = 128, b = 3)."""
    read_ports: int = Field(default=1, ge=1, le=64)
    write_ports: int = Field(default=1, ge=1, le=64)
    tile_bytes: Optional[int] = Field(default=None, ge=1, le=1 << 30)
    """Capacity of one tile (one CACTI array) in bytes; None: the largest power of two in the
    technology table's sweep whose fitted access time fits one clock period."""
    tile_width_bits: Optional[int] = Field(default=None, ge=1, le=1 << 16)
    """Word width of one tile in bits; None: row_bits, split into equal column slices of at most
    the sweep's widest word (512 bits) when wider."""
    access_ns: Optional[float] = Field(default=None, gt=0, le=1e6, allow_inf_nan=False)
    """Tile access time in ns; None: the CACTI fit at the tile's capacity and width."""
    cycle_ns: Optional[float] = Field(default=None, gt=0, le=1e6, allow_inf_nan=False)
    """Tile random cycle time (bank busy time) in ns; None: the CACTI fit (docs/cost_model.md)."""
    read_latency_cycles: Optional[int] = Field(default=None, ge=1, le=1 << 20)
    """None: ceil((access_ns + 2 x wire_ns) x clock), wire_ns the H-tree from port to farthest tile."""
    write_latency_cycles: Optional[int] = Field(default=None, ge=1, le=1 << 20)
    """None: ceil((access_ns + wire_ns) x clock)."""
    bank_ii_cycles: Optional[int] = Field(default=None, ge=1, le=1 << 20)
    """Cycles a bank port is busy per access (its initiation interval); None: ceil(cycle_ns x clock)."""
    mapping: Literal["token_interleaved", "head_per_bank"] = "token_interleaved"
    """token_interleaved: bank = token % banks; head_per_bank: bank = (layer*kv_heads + head) % banks."""
    overflow: Literal["reject", "spill"] = "reject"
    """What happens when a trace needs more rows than the banks hold: reject the trace, or
    spill the excess to off-chip memory (the technology table's `offchip` section: its
    bandwidth, latency and energy per bit)."""
    offchip_memory: Literal["hbm3", "hbm2"] = "hbm3"
    """Which off-chip memory of the technology table's `offchip` section holds spilled rows."""


class PowerConfig(StrictModel):
    """Power states of the index SRAM's tiles (docs/cost_model.md, "Power states")."""

    gating: Literal["none", "empty_tiles", "idle_tiles"] = "empty_tiles"
    """none: every tile leaks at the active rate all the time; empty_tiles: tiles holding no
    data are power-gated (no leakage), the rest active; idle_tiles: as empty_tiles, and tiles
    holding data sit in retention (the technology's retention fraction of active leakage)
    except while their bank is busy with an access."""


class WritePathConfig(StrictModel):
    """Write path: norm extractor, FWHT rotator (shared with query rotation), comparators."""

    norm_squarers: int = Field(default=128, ge=1, le=MAX_LANES)
    """Parallel squarers in the norm extractor (d means one vector per cycle)."""
    fwht_butterflies: int = Field(default=448, ge=1, le=MAX_LANES)
    """Butterflies instantiated; (d/2)*log2(d) is the fully unrolled rotator of the paper."""
    comparators: int = Field(default=896, ge=1, le=MAX_LANES)
    """Comparators; d*(2^b - 1) quantizes a whole vector per cycle."""
    threshold_multipliers: int = Field(default=1, ge=1, le=MAX_LANES)
    """Multipliers forming the 2^b - 1 scaled thresholds boundary_j * ||x|| per vector."""
    ties: Literal["upper", "lower"] = "upper"
    """Comparator tie rule: a rotated value exactly on a threshold takes the upper level
    (y >= t), or the lower one (y > t: the paper's code, a nearest-centroid argmin that keeps
    the first of two equal distances)."""


class ReadPathConfig(StrictModel):
    """Read path: table generator and table SRAM, lookup + adder tree + norm multiplier."""

    table_multipliers: int = Field(default=128, ge=1, le=MAX_LANES)
    """Multipliers filling P[i][j]; d*2^b products per query take d*2^b / this many cycles."""
    lookups_per_cycle: int = Field(default=128, ge=1, le=MAX_LANES)
    """Parallel table reads per pipeline; d means one key per cycle."""
    adder_tree_stages_per_cycle: int = Field(default=1, ge=1, le=MAX_LANES)
    """Adder-tree stages evaluated per pipeline register (latency log2(d)/this, II = 1)."""
    norm_multipliers: int = Field(default=1, ge=1, le=MAX_LANES)
    pipelines: int = Field(default=1, ge=1, le=MAX_LANES)
    """Independent lookup pipelines, each with its own table copy."""
    gqa_shared_read: bool = False
    """True: the query heads of one GQA group share one index read per key."""


class ValuePathConfig(StrictModel):
    """Value path (beyond the paper): softmax, rotated-domain bins, centroid multiply, inverse FWHT."""

    enabled: bool = True
    exp_units: int = Field(default=1, ge=1, le=MAX_LANES)
    bin_lanes: int = Field(default=128, ge=1, le=MAX_LANES)
    """Bin accumulations per cycle; d means one value per cycle."""
    centroid_multipliers: int = Field(default=128, ge=1, le=MAX_LANES)
    inverse_fwht_butterflies: int = Field(default=448, ge=1, le=MAX_LANES)
    bin_adder_latency: Optional[int] = Field(default=None, ge=1, le=64)
    """Cycles of the bin read-modify-write (read the bin, add through the value-format adder,
    write back): null derives it from the technology table's adder delay at the clock
    (docs/cycle_model.md); a number overrides it (the report says which)."""
    bin_hazard: Literal["stall", "partial"] = "stall"
    """A key whose bin (coordinate, level) an earlier key is still updating: `stall` waits for
    that write; `partial` spreads the keys over `partial_accumulators` copies of every bin
    (key t into copy t mod P), merged in order at finalisation (docs/architecture.md)."""
    partial_accumulators: int = Field(default=1, ge=1, le=16)
    """P interleaved partial sums: the running sum E always keeps P (key t into E_{t mod P}),
    the bins keep P copies with bin_hazard: partial; merged left to right, copy 0 first."""

    def sum_partials(self) -> int:
        """Interleaved partial sums of the running sum E (always P)."""
        return self.partial_accumulators

    def bin_partials(self) -> int:
        """Copies of every bin: P with bin_hazard: partial, else 1."""
        return self.partial_accumulators if self.bin_hazard == "partial" else 1


class KiviConfig(StrictModel):
    """The KIVI baseline (Liu et al., "KIVI: A Tuning-Free Asymmetric 2bit Quantization for KV
    Cache", ICML 2024): keys per channel and values per token, asymmetric min/max codes."""

    bits: int = Field(default=2, ge=1, le=8)
    """Bits per quantized key or value coordinate (KIVI's 2-bit setting)."""
    group_size: int = Field(default=32, ge=1, le=MAX_TOKENS)
    """G: tokens per key group (one FP16 scale and zero per channel) and channels per value
    group (one FP16 scale and zero per token; min(G, head_dim)); a power of two (KIVI: 32)."""
    window: int = Field(default=128, ge=1, le=MAX_TOKENS)
    """Recent tokens kept in FP16 (KIVI's residual length R: 128); a multiple of group_size."""
    context_tokens: int = Field(default=4096, ge=1, le=MAX_TOKENS)
    """The context the macro is sized for: its FP16 window SRAM holds `window` rows for every
    `context_tokens` quantized rows (cost model only; the replay uses the trace's T)."""


def kivi_channel_group(kivi: KiviConfig, head_dim: int) -> int:
    """Channels per KIVI value group: group_size, or the whole vector when head_dim is smaller."""
    return min(kivi.group_size, head_dim)


BASELINE_KINDS = ("fp16", "dequant_rotated", "kivi", "dequant_inverse_rotate")
"""The conventional macros of every report, in the report's order (docs/report.md, docs/cycle_model.md);
`dequant_inverse_rotate` was `dequant`."""


class BaselinesConfig(StrictModel):
    """Options of the conventional macros the report compares against (docs/cycle_model.md)."""

    kivi: KiviConfig = KiviConfig()


class QjlConfig(StrictModel):
    """QJL residual keys (`residual: qjl`; Zandieh et al., 2024): a (b-1)-bit MSE key code plus
    an m-bit sign sketch of the rotated-domain residual through the FP16 Gaussian sketch ROM S
    (m x d) and the residual's FP16 norm (axelsim/numerics/qjl.py, docs/architecture.md)."""

    sketch_bits: Optional[int] = Field(default=None, ge=2, le=4096)
    """m: sign bits per stored key (rows of the sketch ROM); a power of two from 2 to 4096;
    null: m = d (the paper's and QJL's setting)."""
    seed: int = Field(default=0, ge=0, le=MAX_SEED)
    """Seed of the sketch ROM's N(0, 1) draws (numerics.qjl.sketch_matrix)."""
    projection_rows_per_cycle: int = Field(default=1, ge=1, le=MAX_LANES)
    """Sketch rows the shared projector evaluates per cycle (d multipliers and a d-leaf adder
    tree each): a key's residual or a query takes m / this many cycles; a divisor of m."""


class TechnologyConfig(StrictModel):
    """Which technology table prices the components, and at which node."""

    file: str = "tech/reference.yaml"
    """Technology table, relative to the macro file's folder."""
    node_nm: Literal[45, 32, 28, 22, 16, 7] = 45
    """Target node; the scaling section of the table must cover it (Stillmaker and Baas: 180-7 nm)."""
    sram_cells: Literal["itrs-lop", "itrs-hp"] = "itrs-lop"
    """CACTI cell and periphery type of the SRAM fits (docs/cost_model.md says why lop is the default)."""
    sram_energy: Literal["cacti", "horowitz"] = "cacti"
    """Per-access SRAM energy: the CACTI fit, or Horowitz's 64-bit SRAM read points (area,
    leakage and timing stay CACTI's)."""


AUTO = "auto"
"""A lane count (or head_dim, at load time) written as `auto` is derived: see `auto_lanes`."""

DEFAULT_HEAD_DIM, DEFAULT_BITS = 128, 3


def _lane_rules(d: int, levels: int, pipelines: int) -> dict[str, int]:
    """The balanced datapath of docs/config.md: every per-vector and per-key unit takes one
    vector (or one key per query head) per cycle, as the paper's d = 128 macro does."""
    butterflies = (d // 2) * (d.bit_length() - 1)
    return {
        "write_path.norm_squarers": d,
        "write_path.fwht_butterflies": butterflies,
        "write_path.comparators": d * (levels - 1),
        "write_path.threshold_multipliers": levels - 1,
        "read_path.table_multipliers": d,
        "read_path.lookups_per_cycle": d,
        "read_path.norm_multipliers": pipelines,
        "value_path.exp_units": 1,
        "value_path.bin_lanes": d,
        "value_path.centroid_multipliers": d,
        "value_path.inverse_fwht_butterflies": butterflies,
    }


LANE_KEYS = tuple(_lane_rules(8, 2, 1))
"""Every lane count that accepts `auto` (and is `auto` when absent)."""


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def auto_lanes(data: Any) -> dict[str, int]:
    """{dotted key: derived value} of the lane counts a macro mapping leaves absent or `auto`.

    Derived from the mapping's head_dim and bits (defaults 128 and 3); empty when those are not
    valid (their own error is reported instead) or a section is not a mapping.
    """
    if not isinstance(data, dict):
        return {}
    d, bits = data.get("head_dim", DEFAULT_HEAD_DIM), data.get("bits", DEFAULT_BITS)
    if not (_is_int(d) and _power_of_two(d) and 8 <= d <= 1024 and _is_int(bits) and 1 <= bits <= 8):
        return {}
    read = data.get("read_path", {})
    pipelines = read.get("pipelines", 1) if isinstance(read, dict) else 1
    rules = _lane_rules(d, 1 << bits, pipelines if _is_int(pipelines) and pipelines >= 1 else 1)
    derived = {}
    for key, value in rules.items():
        section, name = key.split(".")
        given = data.get(section, {})
        if not isinstance(given, dict):
            continue  # a section object built in Python, or a bad value pydantic will name
        if given.get(name, AUTO) == AUTO:
            derived[key] = value
    return derived


def with_auto_lanes(data: Any) -> Any:
    """A copy of a macro mapping with every absent or `auto` lane count replaced by its derived value."""
    derived = auto_lanes(data)
    if not derived:
        return data
    out = dict(data)
    for key, value in derived.items():
        section, name = key.split(".")
        out[section] = {**out.get(section, {}), name: value}
    return out


class MacroConfig(StrictModel):
    """One AXELRAM macro design point.

    Lane counts left out or written `auto` are derived before validation (`auto_lanes`), so
    `MacroConfig(bits=4)` is the balanced d = 128, b = 4 macro.
    """

    name: str = "axelram"
    description: str = ""
    head_dim: int = 128
    """Bounded by its validator: a power of two from 8 to 1024."""
    bits: int = 3
    """Bounded by its validator: 1 to 8."""
    clock_hz: float = Field(default=1.0e9, ge=MIN_CLOCK_HZ, le=MAX_CLOCK_HZ, allow_inf_nan=False)
    """Clock frequency in Hz (1 kHz .. 1 THz, axelsim.config.limits)."""
    formats: FormatsConfig = FormatsConfig()
    signs: SignsConfig = SignsConfig()
    sram: SramConfig = SramConfig()
    write_path: WritePathConfig = WritePathConfig()
    read_path: ReadPathConfig = ReadPathConfig()
    value_path: ValuePathConfig = ValuePathConfig()
    technology: TechnologyConfig = TechnologyConfig()
    power: PowerConfig = PowerConfig()
    baselines: BaselinesConfig = BaselinesConfig()
    residual: Literal["none", "qjl"] = "none"
    """none: b-bit MSE keys; qjl: (b-1)-bit MSE keys plus the `qjl` sketch (values keep b bits)."""
    qjl: QjlConfig = QjlConfig()

    @model_validator(mode="before")
    @classmethod
    def _derive_lanes(cls, data: Any) -> Any:
        return with_auto_lanes(data)

    @field_validator("head_dim")
    @classmethod
    def _head_dim(cls, value: int) -> int:
        if not (_power_of_two(value) and 8 <= value <= 1024):
            raise ValueError(f"expected a power of two from 8 to 1024, got {value}")
        return value

    @field_validator("bits")
    @classmethod
    def _bits(cls, value: int) -> int:
        if not 1 <= value <= 8:
            raise ValueError(f"expected a bit-width from 1 to 8, got {value}")
        return value

    @model_validator(mode="after")
    def _parallelism(self) -> "MacroConfig":
        check_parallelism(self)
        return self

    @property
    def levels(self) -> int:
        """Codebook size 2^b."""
        return 1 << self.bits

    @property
    def vector_bits(self) -> int:
        """Bits of one stored vector: d*b indices plus a 16-bit FP16 norm."""
        return self.head_dim * self.bits + 16

    @property
    def sketch_bits(self) -> int:
        """m of the QJL sketch: qjl.sketch_bits, or d when null."""
        return self.qjl.sketch_bits if self.qjl.sketch_bits is not None else self.head_dim

    @property
    def key_bits(self) -> int:
        """Bits per key index: b, or b - 1 with the QJL residual."""
        return self.bits - 1 if self.residual == "qjl" else self.bits

    @property
    def key_row_bits(self) -> int:
        """Bits of one stored key: d*b + 16, or with QJL (b-1)*d + 16 + m sign bits + a 16-bit residual norm."""
        if self.residual != "qjl":
            return self.vector_bits
        return self.head_dim * self.key_bits + 16 + self.sketch_bits + 16

    @property
    def stored_row_bits(self) -> int:
        """The widest stored vector (key or value row): the least row width."""
        return max(self.vector_bits, self.key_row_bits)

    @property
    def row_bits(self) -> int:
        return self.sram.row_bits if self.sram.row_bits is not None else self.stored_row_bits

    def without_residual(self) -> "MacroConfig":
        """The same macro with plain b-bit MSE keys (what the baselines compare against)."""
        if self.residual == "none":
            return self
        return self.model_copy(update={"residual": "none", "sram": self.sram.model_copy(update={"row_bits": None})
                                       if self.sram.row_bits == self.stored_row_bits else self.sram})

    @property
    def log2_dim(self) -> int:
        return self.head_dim.bit_length() - 1


def _divides(lanes: int, work: int) -> bool:
    return work % lanes == 0


def _fwht_lanes_ok(butterflies: int, dim: int) -> bool:
    """Whole FWHT stages per cycle (d/2 * k, k | log2 d) or a power-of-two slice of one stage."""
    half, stages = dim // 2, dim.bit_length() - 1
    if butterflies % half == 0:
        return _divides(butterflies // half, stages)
    return _divides(butterflies, half)


def _fwht_expectation(dim: int) -> str:
    half, stages = dim // 2, dim.bit_length() - 1
    whole = [half * k for k in range(1, stages + 1) if stages % k == 0]
    return (f"d/2 * k butterflies with k dividing log2(d) ({', '.join(map(str, whole))} for d = {dim}) "
            f"or a power of two dividing d/2 = {half}")


def check_parallelism(macro: "MacroConfig") -> None:
    """The lane rules of docs/config.md: every parallel unit divides its work evenly.

    Raises KeyedValueError naming the first key that breaks its rule. Value-path lanes are
    checked only when the value path is enabled.
    """
    d, levels, stages = macro.head_dim, macro.levels, macro.log2_dim
    wp, rp, vp, sram = macro.write_path, macro.read_path, macro.value_path, macro.sram
    rules = [
        ("write_path.norm_squarers", wp.norm_squarers, _divides(wp.norm_squarers, d),
         f"a divisor of head_dim = {d}"),
        ("write_path.fwht_butterflies", wp.fwht_butterflies, _fwht_lanes_ok(wp.fwht_butterflies, d),
         _fwht_expectation(d)),
        ("write_path.comparators", wp.comparators,
         wp.comparators % (levels - 1) == 0 and _divides(wp.comparators // (levels - 1), d),
         f"(2^b - 1) * m = {levels - 1} * m with m dividing head_dim = {d} (max {d * (levels - 1)})"),
        ("write_path.threshold_multipliers", wp.threshold_multipliers,
         _divides(wp.threshold_multipliers, levels - 1), f"a divisor of 2^b - 1 = {levels - 1}"),
        ("read_path.table_multipliers", rp.table_multipliers, _divides(rp.table_multipliers, d * levels),
         f"a divisor of d * 2^b = {d * levels}"),
        ("read_path.lookups_per_cycle", rp.lookups_per_cycle, _divides(rp.lookups_per_cycle, d),
         f"a divisor of head_dim = {d}"),
        ("read_path.adder_tree_stages_per_cycle", rp.adder_tree_stages_per_cycle,
         rp.adder_tree_stages_per_cycle <= stages, f"at most log2(head_dim) = {stages} stages"),
        ("read_path.pipelines", rp.pipelines, _divides(rp.pipelines, sram.banks * sram.read_ports),
         f"a divisor of sram.banks * sram.read_ports = {sram.banks * sram.read_ports}"),
        ("read_path.norm_multipliers", rp.norm_multipliers, _divides(rp.norm_multipliers, rp.pipelines),
         f"a divisor of read_path.pipelines = {rp.pipelines}"),
        ("value_path.bin_lanes", vp.bin_lanes, _divides(vp.bin_lanes, d), f"a divisor of head_dim = {d}"),
        ("value_path.centroid_multipliers", vp.centroid_multipliers,
         _divides(vp.centroid_multipliers, d * levels), f"a divisor of d * 2^b = {d * levels}"),
        ("value_path.inverse_fwht_butterflies", vp.inverse_fwht_butterflies,
         _fwht_lanes_ok(vp.inverse_fwht_butterflies, d), _fwht_expectation(d)),
        ("sram.row_bits", sram.row_bits, sram.row_bits is None or sram.row_bits >= macro.stored_row_bits,
         f"at least {macro.stored_row_bits} bits (one stored vector per row: d*b + 16"
         + (", or the QJL key row (b-1)*d + 32 + m" if macro.residual == "qjl" else "") + "), or null"),
        ("baselines.kivi.group_size", macro.baselines.kivi.group_size,
         _power_of_two(macro.baselines.kivi.group_size), "a power of two"),
        ("baselines.kivi.window", macro.baselines.kivi.window,
         _divides(macro.baselines.kivi.group_size, macro.baselines.kivi.window),
         f"a multiple of baselines.kivi.group_size = {macro.baselines.kivi.group_size}"),
    ]
    if macro.residual == "qjl":
        q = macro.qjl
        rules += [
            ("bits", macro.bits, macro.bits >= 2, "b >= 2 with residual: qjl (keys keep b - 1 MSE bits)"),
            ("qjl.sketch_bits", q.sketch_bits, _power_of_two(macro.sketch_bits), "a power of two from 2 to 4096, or null (d)"),
            ("qjl.projection_rows_per_cycle", q.projection_rows_per_cycle,
             _divides(q.projection_rows_per_cycle, macro.sketch_bits), f"a divisor of m = {macro.sketch_bits}"),
        ]
    for where, value, ok, expected in rules:
        if where.startswith("value_path.") and not vp.enabled:
            continue  # a disabled value path instantiates none of its lanes
        if not ok:
            raise KeyedValueError(where, f"{expected}, got {value}")


def resolve_relative(macro_file: Path, relative: str) -> Path:
    """A path named inside a macro YAML, resolved against the YAML's folder."""
    path = Path(relative)
    return path if path.is_absolute() else (macro_file.parent / path)
