"""Running the command line in this process, for tests."""

from __future__ import annotations

import contextlib
import io

from axelsim import cli


def stderr_lines(text: str) -> list[str]:
    """stderr lines other than the cold-start compile notice (axelsim.compile_notice), which a
    command prints when it compiles a kernel the numba cache does not hold yet: on a fresh
    clone, the first test to reach a kernel (run alone, say) sees it."""
    return [line for line in text.splitlines()
            if not line.startswith(("axelsim: compil", "axelsim: still compiling"))]


def run_main(argv) -> tuple[int, str, str]:
    """`cli.main(argv)` in this process: (exit status, stdout, stderr); argparse exits count."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            status = cli.main([str(a) for a in argv])
        except SystemExit as done:  # argparse usage errors
            status = done.code
    return status, out.getvalue(), err.getvalue()
