"""The stderr notice of a cold start: numba compiling the simulator's kernels.

The first run after an install (or an upgrade, or with a new NUMBA_CACHE_DIR) compiles every
kernel it uses and caches it on disk; later runs load them. numba reports an actual compile
(never a cache load) as a "numba:compile" event, so the notice appears only when the cache is
cold: one line when the first kernel starts compiling, a progress line every PROGRESS_S seconds
of compiling after that, and a closing line once the command ends (docs/performance.md).
"""

from __future__ import annotations

import sys
import time
from contextlib import contextmanager
from typing import Iterator, TextIO

from numba.core import event

PROGRESS_S = 15.0
"""Seconds between progress lines while kernels compile."""


class CompileNotice(event.Listener):
    """Counts top-level kernel compiles (nested ones are part of their caller) and prints the notice."""

    def __init__(self, stream: TextIO):
        self.stream = stream
        self.depth = 0
        self.kernels = 0
        self.started: float | None = None
        self.last_line = 0.0

    def _say(self, text: str) -> None:
        print(f"axelsim: {text}", file=self.stream, flush=True)

    def on_start(self, event_) -> None:
        if self.started is None:
            self.started = self.last_line = time.perf_counter()
            self._say("compiling the simulator's kernels (first run after install; "
                      "they are cached, later runs start in seconds)")
        self.depth += 1

    def on_end(self, event_) -> None:
        self.depth -= 1
        if self.depth == 0:
            self.kernels += 1
            now = time.perf_counter()
            if now - self.last_line >= PROGRESS_S:
                self.last_line = now
                self._say(f"still compiling: {self.kernels} kernels so far, {now - self.started:.0f} s")

    def finish(self) -> None:
        if self.started is not None:
            self._say(f"compiled {self.kernels} kernel{'' if self.kernels == 1 else 's'} (cached for later runs)")


@contextmanager
def compile_notice(stream: TextIO = sys.stderr) -> Iterator[CompileNotice]:
    """Print the cold-start notice for compiles inside the block."""
    notice = CompileNotice(stream)
    event.register("numba:compile", notice)
    try:
        yield notice
    finally:
        event.unregister("numba:compile", notice)
        notice.finish()
