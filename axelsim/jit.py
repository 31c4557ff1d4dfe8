"""Compiled kernels in two flavours, serial and parallel, chosen by the work of each call.

A numba kernel written with `prange` compiles twice here: with parallel=True (threads over the
prange loop) and without (prange runs as range; the same arithmetic in the same order per item,
hence the same results bit for bit). A call runs the parallel flavour only when its work is at
least PARALLEL_MIN_WORK element operations: a parallel launch costs 0.1-1 ms of thread wake-up
(more on a loaded machine), more than a small call's arithmetic, and compiling a parallel
flavour costs seconds, so a small run (the first run after an install) never compiles one.
Each flavour is cached on disk under its own name (docs/performance.md, cold start).
"""

from __future__ import annotations

import types
from typing import Callable

import numba

PARALLEL_MIN_WORK = 1 << 20
"""Element operations (items x d, lookups, bin updates) from which a call runs in parallel."""


def twins(fn: Callable) -> tuple:
    """(parallel, serial) cached numba dispatchers of one prange kernel; the serial one is a copy
    of the function named NAME_serial (its own on-disk cache entry). Both release the GIL while
    they run, as every kernel of the package does (`nogil=True`): a process's other threads (the
    section dispatcher and the process pool's queue threads of axelsim.workers, which hand a
    worker its next section) then run while a kernel does, not only between kernels."""
    twin = types.FunctionType(fn.__code__, fn.__globals__, fn.__name__ + "_serial", fn.__defaults__, fn.__closure__)
    twin.__qualname__ = fn.__qualname__ + "_serial"
    twin.__doc__ = fn.__doc__
    return numba.njit(cache=True, parallel=True, nogil=True)(fn), numba.njit(cache=True, nogil=True)(twin)


def by_work(fn: Callable, work_of: Callable[[tuple], int]) -> Callable:
    """fn compiled in both flavours (`twins`), each call on the parallel one when work_of(args) >=
    PARALLEL_MIN_WORK (read at call time) and numba may use more than one thread, else the
    serial one. With one thread (a process beside worker processes: axelsim.workers) the
    parallel flavour would run the same loop on that thread after loading (or compiling) a
    second kernel and starting the threading layer, so it is never used there."""
    parallel, serial = twins(fn)

    def call(*args):
        threaded = work_of(args) >= PARALLEL_MIN_WORK and numba.get_num_threads() > 1
        return (parallel if threaded else serial)(*args)

    call.__name__ = fn.__name__
    call.__qualname__ = fn.__qualname__
    call.__doc__ = fn.__doc__
    call.parallel, call.serial = parallel, serial
    return call


def parallel_by_work(work_of: Callable[[tuple], int]) -> Callable[[Callable], Callable]:
    """Decorator form of `by_work`."""
    return lambda fn: by_work(fn, work_of)
