"""Typed macro configuration: schema (macro.py), number formats (formats.py), YAML loading (load.py)."""

from axelsim.config.formats import FP16, FP32, NumberFormat, parse_format
from axelsim.config.load import (
    LoadedMacro, apply_overrides, bind_head_dim, dump_macro, from_config, load_macro, macro_from_dict,
)
from axelsim.config.macro import BASELINE_KINDS, MacroConfig, resolve_relative

__all__ = [
    "BASELINE_KINDS", "FP16", "FP32", "LoadedMacro", "MacroConfig", "NumberFormat", "apply_overrides", "bind_head_dim", "dump_macro",
    "from_config",
    "load_macro", "macro_from_dict", "parse_format", "resolve_relative",
]
