"""Physical upper bounds of every count the inputs may set (schemas, traces, signs files, sweeps).

A count without an upper bound lets a few bytes of input ask for unbounded work or memory
(`sram.banks: 2**63`, a trace layer numbered 10^9). Each bound below is far above any design
or model the simulator is meant for, and low enough that the largest allowed input still
builds its tables in bounded memory and time. Values beyond a bound are bad input (exit 2).
"""

MAX_MODEL_LAYERS = 1024
"""Transformer layers of a model (layer numbers 0..1023): the largest public LLMs have <= 128."""

MAX_HEADS = 1024
"""KV or query heads per layer (large models use 8-128 query heads)."""

MAX_TOKENS = 1 << 24
"""Token positions in a trace (16 M tokens; long-context models reach 1-2 M)."""

MAX_BANKS = 1 << 16
"""SRAM banks of one macro (65,536; a large on-chip SRAM has tens to thousands)."""

MAX_ROWS_PER_BANK = 1 << 24
"""Rows per SRAM bank (16 M; a physical sub-array has 256-4096 rows, a bank a few hundred k)."""

MAX_ROW_BITS = 1 << 16
"""Bits per SRAM row (65,536; d = 1024 at 8 bits needs 8,208)."""

MAX_PORTS = 64
"""Read or write ports per bank (multi-ported SRAM cells have at most a handful)."""

MAX_LATENCY_CYCLES = 1 << 16
"""Any latency in cycles (65,536 cycles is 65 us at 1 GHz, far beyond an SRAM access)."""

MAX_LANES = 1 << 20
"""Parallel units of one kind (squarers, butterflies, comparators, multipliers, lanes,
pipelines): d = 1024 with 8 bits and 256 pipelines needs at most 2^18 of any kind."""

MAX_SEED = 2**63 - 1
"""Seeds of the seed rule (numpy's SeedSequence takes any non-negative integer; int64 max)."""

MIN_CLOCK_HZ = 1.0e3
MAX_CLOCK_HZ = 1.0e12
"""Clock frequency bounds (1 kHz .. 1 THz): outside them energy or time per cycle over- or underflows."""

MAX_SWEEP_POINTS = 10_000
"""Design points a sweep plans without `--max-points` (each point is a full simulation)."""

MAX_INDEX_LIST = 1 << 16
"""Entries a range option (--layers, --heads, --seeds, --bits, --bit-study) may expand to."""
