"""RTL twin of the macro in Amaranth HDL (the `rtl` extra): arithmetic, units, simulation, synthesis.

Imports of amaranth stay inside this package; `require_amaranth()` turns a missing extra into a
one-line UserError for the CLI.
"""
