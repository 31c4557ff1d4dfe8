"""Running the command line in this process, for tests."""

from __future__ import annotations

import contextlib
import io

from axelsim import cli


def run_main(argv) -> tuple[int, str, str]:
    """`cli.main(argv)` in this process: (exit status, stdout, stderr); argparse exits count."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            status = cli.main([str(a) for a in argv])
        except SystemExit as done:  # argparse usage errors
            status = done.code
    return status, out.getvalue(), err.getvalue()
