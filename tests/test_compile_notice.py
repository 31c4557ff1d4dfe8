"""The cold-start notice: printed when numba actually compiles, never for compiled or cached kernels."""

import io

import numba

from axelsim import compile_notice as cn


def _fresh_kernel():
    @numba.njit
    def add_one(x):
        return x + 1

    return add_one


def test_notice_once_when_a_kernel_compiles_and_silent_otherwise():
    kernel = _fresh_kernel()
    out = io.StringIO()
    with cn.compile_notice(out) as notice:
        assert kernel(1) == 2
        assert kernel(2) == 3  # already compiled: no second compile
    lines = out.getvalue().splitlines()
    assert len(lines) == 2 and "compiling" in lines[0] and lines[1].startswith("axelsim: compiled 1 kernel (")
    assert notice.kernels == 1
    quiet = io.StringIO()
    with cn.compile_notice(quiet):
        assert kernel(5) == 6  # compiled already: a warm run prints nothing
    assert quiet.getvalue() == ""


def test_progress_line_while_compiling_long(monkeypatch):
    monkeypatch.setattr(cn, "PROGRESS_S", 0.0)
    out = io.StringIO()
    with cn.compile_notice(out):
        _fresh_kernel()(1)
        _fresh_kernel()(1.5)
    text = out.getvalue()
    assert text.count("compiling the simulator's kernels") == 1
    assert "still compiling: 2 kernels so far" in text


def test_listener_removed_after_the_block():
    out = io.StringIO()
    with cn.compile_notice(out):
        pass
    _fresh_kernel()(1)
    assert out.getvalue() == ""
