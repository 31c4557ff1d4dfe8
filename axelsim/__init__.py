"""axelsim: a cycle-accurate simulator of the AXELRAM smart SRAM macro.

The Python API (docs/api.md) is `axelsim.api`; its main functions are also reached from the
top level, imported on first use so `import axelsim` stays light:
`axelsim.load_macro`, `load_trace`, `simulate`, `compare`, `figures`, `table`, `layer_table`,
`write_csv`, `to_dataframe`, `accelergy` (`axelsim.sweep` is the sweep module: use `axelsim.api.sweep`).
"""

__version__ = "0.1.0"

_API_NAMES = ("load_macro", "load_trace", "simulate", "compare", "figures", "table", "layer_table",
              "write_csv", "to_dataframe", "codebook", "trace_info", "select", "accelergy")


def __getattr__(name: str):
    import importlib

    if name == "api":
        return importlib.import_module("axelsim.api")
    if name in _API_NAMES:
        return getattr(importlib.import_module("axelsim.api"), name)
    raise AttributeError(f"module 'axelsim' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), "api", *_API_NAMES])
