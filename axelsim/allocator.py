"""The C allocator's policy for a simulation process: freed memory is kept for reuse.

A run allocates and frees arrays of tens of MiB over and over (a layer's keys widened to
float32, its dequantized vectors, a golden model's temporaries). glibc serves each of those by
a fresh mmap and returns it to the kernel on free, so every new array is first-touched page by
page again. On this project's machines (virtual machines that hand freed guest pages back to
the host) a first touch costs 1.6-2.7 ms per MiB against 0.05 ms for writing memory already
held. `keep_freed_memory` makes glibc take large blocks from its heap and never trim it, so a
freed block is reused as it is. Measured on the 8B slice, every pass of a run in one process
(scripts/bench_process.py's passes): system CPU time 2.7-3.6 s -> 1.5-1.9 s, the user time
unchanged. The cost: a process's resident memory does not shrink before it exits (its peak is
the same). Set by the CLI and in each worker process, never on import of the package.
"""

from __future__ import annotations

import ctypes
import ctypes.util

M_TRIM_THRESHOLD = -1
M_MMAP_MAX = -4
"""mallopt parameters (glibc malloc.h)."""

NEVER_TRIM = 2 ** 31 - 1
"""The trim threshold (bytes; mallopt takes an int): more free memory at the heap's top than a
run holds, so none is given back."""


def keep_freed_memory() -> bool:
    """Tell glibc to serve every block from its heap (no per-block mmap) and never give the
    heap's free memory back; False (nothing changed) where the C library has no mallopt."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return bool(mallopt(M_TRIM_THRESHOLD, NEVER_TRIM) and mallopt(M_MMAP_MAX, 0))
