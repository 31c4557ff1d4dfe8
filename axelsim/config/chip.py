"""The typed chip configuration: many instances of one macro, how a model is mapped onto them,
and what connects them (interconnect, merge unit, host interface, off-chip memory).

Validated once at load time like a macro YAML (one-line ConfigError naming file and key).
Every constant's default carries its source in the schema and in docs/chip.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Optional, Union

from pydantic import Field, ValidationError

from axelsim.config.load import LoadedMacro, _check_finite, _error, _existing_file, _translate, load_macro, read_yaml_mapping
from axelsim.config.macro import StrictModel

WIRE_SOURCE = ("0.2 pJ/bit/mm: full-swing repeated wire, 310 fJ/bit/mm at 130 nm and 1.2 V (survey of on-chip "
               "interconnect, ISRN Electronics 2012, Table 1) scaled by V^2 to 1.0 V; wire capacitance per mm is about "
               "constant across nodes (R. Ho, K. Mai, M. Horowitz, 'The future of wires', Proc. IEEE 89(4), 2001)")
HOST_SOURCE = ("UCIe 1.0 standard-package module: 16 lanes x 32 GT/s = 64 GB/s per direction, 0.5 pJ/bit "
               "(UCIe 1.0 specification and white paper, 2022)")
OFFCHIP_SOURCE = ("HBM3 stack: 1024 bits x 6.4 Gb/s = 819.2 GB/s (JEDEC JESD238, 2022); 20.3 pJ/bit, the DRAM "
                  "access energy of the technology table (Horowitz, ISSCC 2014, 1.3 nJ per 64 bits); "
                  "100 ns first-access latency (typical DRAM row-miss latency, an assumption)")


class ChipMacro(StrictModel):
    """The macro every instance is built of: a macro YAML and dotted-key overrides."""

    file: str
    """Macro YAML, relative to the chip file's folder."""
    overrides: dict[str, Any] = {}
    """Dotted macro keys set on top of the file (`sram.rows_per_bank: 512`), as in a sweep."""


class MappingConfig(StrictModel):
    """Which instance serves which (sequence, layer, KV head, token range)."""

    kind: Literal["head_parallel", "token_split"] = "head_parallel"
    """head_parallel: each (layer, KV head) on its own instance; token_split: each KV head's tokens
    in `split` contiguous ranges on separate instances, partial softmaxes merged."""
    split: Union[int, Literal["auto"]] = "auto"
    """Token ranges per KV head (token_split only); auto: the fewest ranges one instance holds."""


class InterconnectConfig(StrictModel):
    """The on-chip network between instances and the host port (where the merge unit sits)."""

    topology: Literal["bus", "mesh", "htree"] = "mesh"
    link_bits: int = Field(default=256, ge=1)
    """Bits a link moves per cycle (one flit)."""
    hop_latency_cycles: int = Field(default=1, ge=0)
    """Cycles for a flit to cross one router or tree node (one bus arbitration)."""
    energy_pj_per_bit_mm: float = Field(default=0.2, gt=0, allow_inf_nan=False)
    energy_source: str = WIRE_SOURCE
    pitch_mm: Optional[float] = Field(default=None, gt=0, allow_inf_nan=False)
    """Instance pitch; None derives it: sqrt(instance area)."""


class MergeConfig(StrictModel):
    """The merge unit of token_split (formats: the macro's softmax and value formats)."""

    units: int = Field(default=1, ge=1)
    lanes: int = Field(default=32, ge=1)
    """Value-format multiply-add lanes of one merge unit."""


class HostConfig(StrictModel):
    """The host interface: queries and new K, V in, attention outputs out."""

    bandwidth_gb_s: float = Field(default=64.0, gt=0, allow_inf_nan=False)
    """Per direction, GB/s (1e9 bytes/s)."""
    energy_pj_per_bit: float = Field(default=0.5, gt=0, allow_inf_nan=False)
    source: str = HOST_SOURCE


class OffchipConfig(StrictModel):
    """The memory holding the KV rows that do not fit on the instances (streamed in each step)."""

    bandwidth_gb_s: float = Field(default=819.2, gt=0, allow_inf_nan=False)
    latency_ns: float = Field(default=100.0, ge=0, allow_inf_nan=False)
    energy_pj_per_bit: float = Field(default=20.3, gt=0, allow_inf_nan=False)
    source: str = OFFCHIP_SOURCE


class ChipConfig(StrictModel):
    """One chip: instances of one macro serving a whole model's attention."""

    name: str = "chip"
    description: str = ""
    macro: ChipMacro
    instances: Union[int, Literal["auto"]] = "auto"
    """Macro instances; auto: the fewest that hold the workload's KV cache at its context."""
    mapping: MappingConfig = MappingConfig()
    schedule: Literal["layer_serial", "all_layers"] = "layer_serial"
    """layer_serial: layer l+1's query leaves the host when layer l's outputs are back (a decode
    step's data dependence); all_layers: every layer's query at once (as if independent)."""
    interconnect: InterconnectConfig = InterconnectConfig()
    merge: MergeConfig = MergeConfig()
    host: HostConfig = HostConfig()
    offchip: OffchipConfig = OffchipConfig()
    power_gating: Literal["none", "unused_instances", "empty_tiles", "idle_tiles"] = "empty_tiles"
    """Power states of the instances, each policy including the one before: none: every instance
    leaks whole all the time; unused_instances: instances holding no KV data are gated whole;
    empty_tiles: also the row-store tiles of an instance holding no row are gated (the macro's
    power.gating: empty_tiles); idle_tiles: also the tiles holding data sit in retention except
    while their bank is accessed (power.gating: idle_tiles), so an instance leaks at retention
    between its heads' turns. Sets the instances' power.gating (docs/chip.md)."""


MACRO_GATING = {"none": "none", "unused_instances": "none", "empty_tiles": "empty_tiles", "idle_tiles": "idle_tiles"}
"""The instance macro's power.gating under each chip power_gating policy."""


def _positive(value: Any, source: str, where: str) -> None:
    if value != "auto" and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise _error(source, where, f"a positive integer or 'auto', got {value!r} ({type(value).__name__})")


def chip_from_dict(data: Any, source: str = "<dict>") -> ChipConfig:
    """Validate a chip mapping; ConfigError naming source and key path."""
    if not isinstance(data, dict):
        raise _error(source, "", f"a mapping of chip keys, got {type(data).__name__}")
    _check_finite(dict(data), source)
    _positive(data.get("instances", "auto"), source, "instances")
    mapping = data.get("mapping")
    if isinstance(mapping, dict):
        _positive(mapping.get("split", "auto"), source, "mapping.split")
    try:
        return ChipConfig.model_validate(data)
    except ValidationError as exc:
        raise _translate(exc.errors()[0], source, ChipConfig) from None


@dataclass(frozen=True)
class LoadedChip:
    """A validated chip and its resolved macro."""

    config: ChipConfig
    path: Path
    macro: LoadedMacro


def load_chip(path: str | Path, overrides: Optional[dict[str, Any]] = None, head_dim: Optional[int] = None) -> LoadedChip:
    """Read, validate and resolve one chip YAML (optionally with dotted chip-key overrides).

    An override `macro.<key>` (other than macro.file, macro.overrides) is the macro's dotted key
    `<key>` set on top of the file's `macro.overrides` (`macro.clock_hz`, `macro.sram.tile_bytes`).

    `head_dim` binds a macro whose head_dim is `auto` (the workload's head size)."""
    import copy

    from axelsim.config.load import _set_dotted

    chip_path = Path(path)
    source = str(chip_path)
    data = read_yaml_mapping(chip_path, "chip YAML")
    tree = copy.deepcopy(data)
    for key, value in (overrides or {}).items():
        key = str(key)
        section = key.split(".")[:2]
        if len(section) == 2 and section[0] == "macro" and section[1] not in ChipMacro.model_fields:
            # 'macro.clock_hz': a dotted key of the instances' macro, on top of the file's macro.overrides
            macro = tree.get("macro")
            if not isinstance(macro, dict) or not isinstance(macro.setdefault("overrides", {}), dict):
                raise _error(source, "macro.overrides", "a mapping of dotted macro keys")
            macro["overrides"] = {**macro["overrides"], key[len("macro."):]: value}
            continue
        _set_dotted(tree, key, value, source)
    config = chip_from_dict(tree, source)
    macro_path, _ = _existing_file(chip_path, config.macro.file, "macro.file", "macro YAML")
    gating = MACRO_GATING[config.power_gating]
    given = config.macro.overrides.get("power.gating", gating)
    if given != gating:
        raise _error(source, "macro.overrides.power.gating", f"no override, or {gating!r} (set by "
                     f"power_gating: {config.power_gating}), got {given!r}")
    try:
        macro = load_macro(macro_path, {**config.macro.overrides, "power.gating": gating}, head_dim)
    except Exception as error:  # name the chip file too: the override may be the fault
        from axelsim.errors import ConfigError

        if isinstance(error, ConfigError):
            raise ConfigError(source, f"macro ({error.source})", f"{error.where}: {error.expected}") from None
        raise
    if macro.config.residual != "none":  # the chip's golden split and merge score MSE keys
        raise _error(source, "macro.residual", f"'none' for a chip (QJL keys are simulated per macro: axelsim run), "
                     f"got {macro.config.residual!r}")
    return LoadedChip(config, chip_path, macro)
