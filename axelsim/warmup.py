"""Cold start on two cores: the golden model's kernels compile in a second process.

numba compiles single-threaded, so on a cold cache one core idles while a run compiles its
kernels one after the other. When the golden model's kernels are not cached yet, `simulate`
starts this module as a child process that runs the golden model on the run's first layer
(same macro, trace, KV heads and queries, hence the same argument types): numba writes their
cache entries while the parent compiles the cycle model's. Before its own golden step the
parent waits for the child (at most WAIT_S seconds, then kills it) so the two never compile
one function at the same time, then loads the kernels from the cache, or compiles whatever is
missing itself. Nothing of the child's is read but numba's cache: its failure only costs the
saving. It dies with the parent (PR_SET_PDEATHSIG); a warm run never starts it, nor a run
on a machine with no idle core, where it would only take CPU from the parent
(docs/performance.md, cold start).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from typing import Optional, Sequence

ENV = "AXELSIM_COMPILE_CHILD"
"""Environment variable: 1 starts the child whenever the cache is cold, 0 never (default: when a core is idle)."""

WAIT_S = 120.0
"""Longest wait of the parent for the child before its golden step (seconds)."""


def golden_cache_cold() -> bool:
    """True when numba has no cache index for the golden lookup kernel (a cold cache); False
    when it has one or cannot say (then no child is started)."""
    try:
        from axelsim.numerics.kernels import lookup_kernel

        return not os.path.exists(lookup_kernel.serial._cache._cache_file._index_path)
    except (AttributeError, ImportError):
        return False


IDLE_SAMPLE_S = 0.1
"""How long the machine's CPU times are sampled to tell whether a core is idle (seconds; only
on a cold cache)."""

IDLE_CORES_NEEDED = 0.75
"""Idle cores (beyond this process's own) from which the child gets a core of its own."""


def cpu_times(stat_line: str) -> Optional[tuple[int, int]]:
    """(idle, total) CPU time of /proc/stat's aggregate `cpu` line, in clock ticks (idle counts
    iowait; total is user to steal; guest time is inside user), or None for another line."""
    fields = stat_line.split()
    if len(fields) < 6 or fields[0] != "cpu":  # up to iowait at least
        return None
    ticks = [int(x) for x in fields[1:9]]
    return ticks[3] + ticks[4], sum(ticks)


def _read_cpu_times() -> Optional[tuple[int, int]]:
    try:
        with open("/proc/stat") as stat:
            return cpu_times(stat.readline())
    except (OSError, ValueError):
        return None


def idle_cores(sample_s: float = IDLE_SAMPLE_S) -> Optional[float]:
    """Cores of the machine idle over the next `sample_s` seconds (None without /proc/stat):
    what is idle now, where the 1-min load average still counts the minute before (a run
    started right after another one would read busy for a minute)."""
    before = _read_cpu_times()
    time.sleep(sample_s)
    after = _read_cpu_times()
    if before is None or after is None or after[1] <= before[1]:
        return None
    return (after[0] - before[0]) / (after[1] - before[1]) * (os.cpu_count() or 1)


def idle_core() -> bool:
    """True when at least one of the cores this process may run on is idle: sampled now
    (`idle_cores`), else (no /proc/stat) by the 1-min load, at most cores - 1. The child only
    pays when it gets a core of its own; on a busy machine it would take CPU from the parent and
    lengthen the run."""
    from axelsim.workers import usable_cores

    try:
        cores = usable_cores()
        if cores < 2:
            return False
        idle = idle_cores()
        return idle >= IDLE_CORES_NEEDED if idle is not None else os.getloadavg()[0] <= cores - 1
    except OSError:
        return False


def wanted() -> bool:
    """Whether to start the child: AXELSIM_COMPILE_CHILD=1 always, 0 never, else (unset) when
    the golden kernels' cache is cold and a core is idle."""
    choice = os.environ.get(ENV, "")
    if choice in ("0", "1"):
        return choice == "1" and golden_cache_cold()
    return golden_cache_cold() and idle_core()


def _die_with_parent() -> None:
    """preexec_fn of the child: SIGKILL when the parent dies, however it dies (Linux)."""
    if sys.platform.startswith("linux"):
        import ctypes

        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG


def start(macro, trace, layers: Optional[Sequence[int]], kv_heads: Optional[Sequence[int]],
          queries: Optional[int]) -> Optional[subprocess.Popen]:
    """The child compiling the golden kernels for this run, or None (not `wanted`, a macro
    or trace given in memory rather than as a path, or no process could be started)."""
    if not (isinstance(macro, (str, os.PathLike)) and isinstance(trace, (str, os.PathLike))):
        return None
    if not wanted():
        return None
    return spawn([sys.executable, "-m", "axelsim.warmup", os.fspath(macro), os.fspath(trace),
                  ",".join(map(str, layers)) if layers else "-", ",".join(map(str, kv_heads)) if kv_heads else "-",
                  str(queries) if queries is not None else "-"])


def spawn(argv: Sequence[str]) -> Optional[subprocess.Popen]:
    """Start `argv` silent (no stdin, stdout or stderr) and bound to die with this process; None
    if it cannot be started."""
    try:
        return subprocess.Popen(list(argv), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, preexec_fn=_die_with_parent, close_fds=True)
    except (OSError, ValueError, subprocess.SubprocessError):
        return None


def finish(child: Optional[subprocess.Popen], wait_s: float = WAIT_S) -> None:
    """Wait for the child (at most `wait_s` seconds), then make sure it is gone."""
    if child is None:
        return
    try:
        child.wait(timeout=wait_s)
    except subprocess.TimeoutExpired:
        pass
    stop(child)


def stop(child: Optional[subprocess.Popen]) -> None:
    """Kill the child now if it still runs (the parent failed, or it outlived its wait)."""
    if child is not None and child.poll() is None:
        child.kill()
        child.wait()


def _ints(text: str) -> Optional[list[int]]:
    return None if text == "-" else [int(part) for part in text.split(",")]


def compile_golden(macro: str, trace: str, layers: Optional[list[int]], kv_heads: Optional[list[int]],
                   queries: Optional[int]) -> None:
    """Run the golden model on the first selected layer of the run, and the baselines' golden
    FP16 rounding on both float types (their kernels compile and are cached; the results are
    dropped)."""
    import numpy as np

    from axelsim.api import _as_macro, _as_trace, select, sign_rom
    from axelsim.numerics.golden import NumericsSpec
    from axelsim.numerics.nparith import round_fp16
    from axelsim.report.numerics import _layer_runs

    for dtype in (np.float32, np.float64):
        round_fp16(np.zeros(1, dtype=dtype), dtype)

    full = _as_trace(trace)
    loaded = _as_macro(macro, full)
    view = select(full, layers, kv_heads, queries)
    signs = sign_rom(loaded, view)
    first = select(view, [view.layer_indices[0]]) if len(view.layer_indices) > 1 else view
    for _ in _layer_runs(NumericsSpec.from_macro(loaded.config, signs), loaded.config, first):
        pass


def main(argv: Sequence[str]) -> int:
    macro, trace, layers, kv_heads, queries = argv
    compile_golden(macro, trace, _ints(layers), _ints(kv_heads), None if queries == "-" else int(queries))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
