"""A chip of many macro instances decoding a whole model (docs/chip.md)."""
