"""Report sections in worker processes: a run's baselines, and a compare's designs, on every core.

Each section of a report that is not the run's own macro (one baseline macro, or one more
design of a `compare`) is a pure function of the macro, the trace file, the selection and the
fidelity. A worker process recomputes it from those: it re-opens the trace from its file
(memory-mapped; the arrays are never pickled), builds the same view and sign ROM, and returns
the finished section, which is identical bit for bit to the one the serial run builds
(tests/test_workers.py compares whole reports). Meanwhile the main process simulates its own
macro, so a 2-core machine runs two sections at once.

`plan_workers` decides: `workers=1` is serial; `workers=N` (N > 1) uses N worker processes;
`None` (the default) uses one per usable core when the run is large enough to pay for starting
them (WORKERS_MIN_ELEMENTS). Either way only a trace read from a file is shared out (a trace
built in memory stays serial). On a cold numba cache each process
compiles the kernels of its own sections (mostly different ones: the baselines' against the
macro's), so the compile is shared out too.

Workers start through a forkserver (forking a process whose numba kernels already started
OpenMP threads aborts the child) that has imported what they run (WORKER_MODULES), die with the
main process (axelsim.sweep.die_with_parent), and run numba's kernels on one thread each (their
serial flavours, axelsim/jit.py), as the main process does while they run: with a process per
core, more threads would only contend for the same cores. A kernel's result does not depend on
its thread count.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import resource
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Optional, Sequence

WORKERS_MIN_ELEMENTS = 1 << 23
"""Stored key and value elements (layers x KV heads x T x d x 2) of the replayed view from which
worker processes are used by default: below it, a worker's start (about 1-2 s of imports and
cache loads) costs more than the section it would take over."""


@dataclass(frozen=True)
class TraceSource:
    """What a worker needs to rebuild the run's trace view: the file and the selection."""

    path: Path
    layers: Optional[tuple[int, ...]]
    kv_heads: Optional[tuple[int, ...]]
    queries: Optional[int]

    def view(self):
        from axelsim.api import load_trace, select

        return select(load_trace(self.path), self.layers, self.kv_heads, self.queries)


WORKER_MODULES = ("axelsim.api", "axelsim.hw.macro", "axelsim.hw.baselines", "axelsim.numerics.golden",
                  "axelsim.numerics.baselines", "axelsim.report.numerics", "axelsim.report.assemble", "axelsim.cost")
"""What every section (and sweep point) imports: loaded once by the forkserver, so each worker it
forks starts with them instead of importing them itself (about 0.7 s of CPU a worker on this
machine). Importing runs no kernel, so the forkserver has no OpenMP thread to break a fork."""


def worker_context():
    """The forkserver context of every worker pool, preloading WORKER_MODULES (and, as by default,
    the main module) when it starts."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["__main__", *WORKER_MODULES])
    return context


def usable_cores() -> int:
    """Cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def stored_elements(view) -> int:
    """Key and value elements the view stores (layers x KV heads x T x d, twice with values)."""
    return len(view.layer_indices) * view.kv_heads * view.tokens * view.head_dim * (2 if view.has_values else 1)


def plan_workers(requested: Optional[int], view, sections: int) -> int:
    """Worker processes for `sections` sections of a run on `view` (0: serial; see the module
    docstring). `requested` as `--workers` gives it: None for the default."""
    if sections == 0 or view.path is None:  # a trace in memory: no file a worker could re-open
        return 0
    if requested is not None:
        return 0 if requested <= 1 else min(requested, sections)
    if stored_elements(view) < WORKERS_MIN_ELEMENTS:
        return 0
    cores = usable_cores()
    return min(cores, sections) if cores >= 2 else 0


def _start_worker(parent_pid: int) -> None:
    """A worker's initializer: bound to die with the main process; numba kernels on one thread;
    freed memory kept for reuse (axelsim.allocator)."""
    from axelsim.allocator import keep_freed_memory
    from axelsim.sweep import die_with_parent

    die_with_parent(parent_pid)
    keep_freed_memory()
    import numba

    numba.set_num_threads(1)


def peak_rss_mib() -> float:
    """This process's peak resident memory (MiB; Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _in_worker(job: Callable[..., Any], args: tuple) -> tuple[Any, float]:
    return job(*args), peak_rss_mib()


class SectionPool:
    """Worker processes taking report sections (`submit(job, *args)`, then `result(future)`);
    `peak_rss_mib` lists the worker's peak memory for each section read (MiB)."""

    def __init__(self, workers: int):
        self._pool = ProcessPoolExecutor(max_workers=workers, mp_context=worker_context(), initializer=_start_worker,
                                         initargs=(os.getpid(),))
        self.workers = workers
        self.peak_rss_mib: list[float] = []

    def submit(self, job: Callable[..., Any], *args) -> Future:
        """job(*args) in a worker; read its result with `result`."""
        return self._pool.submit(_in_worker, job, args)

    def result(self, future: Future) -> Any:
        """The job's result (its error raised as it was raised in the worker); the worker's peak
        memory is noted."""
        value, rss = future.result()
        self.peak_rss_mib.append(round(rss, 1))
        return value

    def close(self, wait: bool = True) -> None:
        """Shut the workers down, pending sections cancelled; without `wait`, at once (they die
        with this process at the latest)."""
        self._pool.shutdown(wait=wait, cancel_futures=True)


@contextlib.contextmanager
def section_pool(workers: int) -> Iterator[Optional[SectionPool]]:
    """A SectionPool of `workers` processes (None when 0), the main process's numba kernels on one
    thread while it lives; shut down (pending sections cancelled) on leaving."""
    if workers <= 0:
        yield None
        return
    import numba

    threads = numba.get_num_threads()
    pool = SectionPool(workers)
    numba.set_num_threads(1)
    try:
        yield pool
    except BaseException:  # an error or Ctrl-C: do not wait for sections nobody will read
        pool.close(wait=False)
        raise
    else:
        pool.close()
    finally:
        numba.set_num_threads(threads)


def source_of(view, layers: Optional[Sequence[int]], kv_heads: Optional[Sequence[int]],
                 queries: Optional[int]) -> TraceSource:
    """The TraceSource of a run's view (its trace loaded from `view.path`)."""
    return TraceSource(Path(view.path), tuple(layers) if layers is not None else None,
                       tuple(kv_heads) if kv_heads is not None else None, queries)
