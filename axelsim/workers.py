"""Report sections in worker processes: a run's baselines, and a compare's designs, on every core.

Each section of a report that is not the run's own macro (one baseline macro, or one more
design of a `compare`) is a pure function of the macro, the trace file, the selection and the
fidelity. A worker process recomputes it from those: it re-opens the trace from its file
(memory-mapped; the arrays are never pickled), builds the same view and sign ROM, and returns
the finished section, which is identical bit for bit to the one the serial run builds
(tests/test_workers.py compares whole reports). Meanwhile the main process simulates its own
macro, so a 2-core machine runs two sections at once.

`plan_workers` decides: `workers=N` is N processes in all, the main one and N - 1 workers
(`workers=1` is serial); `None` (the default) is one process per usable core when the run is
large enough to pay for starting workers (WORKERS_MIN_ELEMENTS). The main process takes
sections too once its own are done (SectionPool.result), so a worker per core beside it would
only put three processes on two cores (measured: 1 worker beat 2 on the 8B slice's run in 5
of 6 alternating pairs and its compare in 4 of 4, 2026-12-03). Either way only a trace read
from a file is shared out (a trace built in memory stays serial). On a cold numba cache each
process compiles the kernels of its own sections (mostly different ones: the baselines' against the
macro's), so the compile is shared out too.

Workers start through a forkserver (forking a process whose numba kernels already started
OpenMP threads aborts the child) that has imported what they run (WORKER_MODULES), die with the
main process (axelsim.sweep.die_with_parent), and run numba's kernels on one thread each (their
serial flavours, axelsim/jit.py), as the main process does while they run: with a process per
core, more threads would only contend for the same cores. A kernel's result does not depend on
its thread count.
"""

from __future__ import annotations

import collections
import contextlib
import multiprocessing
import os
import resource
import threading
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
    """Worker processes beside the main one for `sections` sections of a run on `view` (0:
    serial; see the module docstring). `requested` as `--workers` gives it, the processes in
    all (the main process takes sections too): None for the default, one per usable core."""
    if sections == 0 or view.path is None:  # a trace in memory: no file a worker could re-open
        return 0
    if requested is None:
        if stored_elements(view) < WORKERS_MIN_ELEMENTS:
            return 0
        requested = usable_cores()
    return min(requested - 1, sections) if requested >= 2 else 0


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


def _computed_here(section: "Section") -> Future:
    """The section computed in this process, as a finished future (its result or its error)."""
    done: Future = Future()
    try:
        done.set_result(_in_worker(section.job, section.args))
    except Exception as error:  # noqa: BLE001 - raised where the caller reads it, as a worker's would be
        done.set_exception(error)
    return done


class Section:
    """One submitted section: waiting in its pool's queue, then in a worker (its `future`), or
    taken back by the main process (`SectionPool.result`)."""

    def __init__(self, job: Callable[..., Any], args: tuple):
        self.job, self.args = job, args
        self.future: Optional[Future] = None


class SectionPool:
    """Worker processes taking report sections (`submit(job, *args)`, then `result(section)`);
    `peak_rss_mib` lists, for each section read, the peak memory of the process that computed it
    (MiB).

    Sections start in the order they were submitted (callers submit the longest first), at most
    one a worker, handed out by a dispatcher thread: a worker's start blocks until the
    forkserver has imported WORKER_MODULES (about 0.7 s), and the main process goes on with its
    own macro meanwhile instead of waiting. When the main process asks for a result that is not
    ready it computes the sections no worker has started yet itself (its own work done, it
    would otherwise only wait), so no core idles while sections are left. Either way a section
    is the same pure function of its arguments, hence the same bit for bit.
    """

    def __init__(self, workers: int):
        self._pool = ProcessPoolExecutor(max_workers=workers, mp_context=worker_context(), initializer=_start_worker,
                                         initargs=(os.getpid(),))
        self.workers = workers
        self.peak_rss_mib: list[float] = []
        self._changed = threading.Condition()
        self._waiting: collections.deque[Section] = collections.deque()
        self._running = 0
        self._closed = False
        self._dispatcher = threading.Thread(target=self._dispatch, name="axelsim-sections", daemon=True)
        self._dispatcher.start()

    def submit(self, job: Callable[..., Any], *args) -> Section:
        """job(*args) in a worker, or in this process if none has started it when `result` asks."""
        section = Section(job, args)
        with self._changed:
            self._waiting.append(section)
            self._changed.notify_all()
        return section

    def result(self, section: Section, timeout: Optional[float] = None) -> Any:
        """The section's result (its error raised as it was raised where it ran). Until it is
        finished this process computes waiting sections itself, the longest first (the submission
        order), then waits for it; the peak memory of the process that computed it is noted."""
        while True:
            with self._changed:
                self._changed.wait_for(lambda: section.future is not None or section in self._waiting)
                if section.future is not None and (section.future.done() or not self._waiting):
                    break
                taken = self._waiting.popleft()
            computed = _computed_here(taken)
            with self._changed:
                taken.future = computed
        value, rss = section.future.result(timeout)
        self.peak_rss_mib.append(round(rss, 1))
        return value

    def _dispatch(self) -> None:
        """The dispatcher thread: starts the forkserver at once (its imports overlap whatever the main
        process does before it submits), then the next waiting section whenever a worker is free."""
        from multiprocessing import forkserver

        try:
            forkserver.ensure_running()
        except Exception:  # noqa: BLE001 - the first worker's start tries again and its section carries the error
            pass
        while True:
            with self._changed:
                self._changed.wait_for(lambda: self._closed or (self._waiting and self._running < self.workers))
                if self._closed:
                    return
                section = self._waiting.popleft()
                self._running += 1
            try:
                future = self._pool.submit(_in_worker, section.job, section.args)
            except BaseException as error:  # a pool shut down or broken: the section's reader gets the error
                future = Future()
                future.set_exception(error)
            future.add_done_callback(self._finished)
            with self._changed:
                section.future = future
                self._changed.notify_all()

    def _finished(self, _future: Future) -> None:
        with self._changed:
            self._running -= 1
            self._changed.notify_all()

    def close(self, wait: bool = True) -> None:
        """Shut the workers down, sections not started dropped; without `wait`, at once (they die
        with this process at the latest)."""
        with self._changed:
            self._closed = True
            self._waiting.clear()
            self._changed.notify_all()
        self._dispatcher.join()
        self._pool.shutdown(wait=wait, cancel_futures=True)


@contextlib.contextmanager
def section_pool(workers: int) -> Iterator[Optional[SectionPool]]:
    """A SectionPool of `workers` processes (None when 0), the main process's numba kernels on one
    thread while it lives; shut down (sections not started dropped) on leaving."""
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
