"""axelsim: a cycle-accurate simulator of the AXELRAM smart SRAM macro."""

__version__ = "0.1.0"
