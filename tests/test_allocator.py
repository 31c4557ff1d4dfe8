"""axelsim.allocator: with glibc, a freed large block stays with the process for reuse."""

from __future__ import annotations

import subprocess
import sys

import pytest

PROBE = r"""
import ctypes, sys
import numpy as np

class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
                 "keepcost")]

libc = ctypes.CDLL(None)
if not hasattr(libc, "mallinfo2"):
    print("no mallinfo2"); sys.exit(0)
libc.mallinfo2.restype = MallInfo2
if sys.argv[1] == "keep":
    from axelsim.allocator import keep_freed_memory
    assert keep_freed_memory()
block = np.ones(64 << 17)  # 64 MiB of float64
during = libc.mallinfo2()
del block
after = libc.mallinfo2()
print(during.hblkhd >= 64 << 20, after.arena >= 64 << 20)
"""


def _probe(mode: str) -> str:
    done = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_freed_block_stays_in_the_heap():
    """By default glibc maps a 64 MiB block by itself and unmaps it on free; after
    keep_freed_memory it comes from the heap, which keeps it once freed."""
    default = _probe("default")
    if default == "no mallinfo2":
        pytest.skip("the C library has no mallinfo2 (not glibc 2.33 or later)")
    assert default == "True False"
    assert _probe("keep") == "False True"
