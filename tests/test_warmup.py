"""The cold start's second process: when it starts, that it dies with its parent, and that the
cache entries it writes are the ones the golden model then loads (no compile left)."""

import os
import subprocess
import sys
import time

import pytest

from axelsim import warmup

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MACRO = os.path.join(ROOT, "macros", "axelram_d64.yaml")
TRACE = os.path.join(ROOT, "traces", "smollm2_austen_full.safetensors")
SLEEP = [sys.executable, "-c", "import time; time.sleep(60)"]


def _env(**extra) -> dict:
    return {**os.environ, "PYTHONPATH": ROOT, **extra}


def _gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def test_choice_follows_the_cache_the_cores_and_the_variable(monkeypatch):
    monkeypatch.delenv(warmup.ENV, raising=False)
    for cold, idle, expected in [(True, True, True), (True, False, False), (False, True, False)]:
        monkeypatch.setattr(warmup, "golden_cache_cold", lambda cold=cold: cold)
        monkeypatch.setattr(warmup, "idle_core", lambda idle=idle: idle)
        assert warmup.wanted() is expected
    monkeypatch.setattr(warmup, "golden_cache_cold", lambda: True)
    monkeypatch.setenv(warmup.ENV, "1")
    assert warmup.wanted()  # idle_core is False here
    monkeypatch.setenv(warmup.ENV, "0")
    monkeypatch.setattr(warmup, "idle_core", lambda: True)
    assert not warmup.wanted()


def test_cpu_times_of_the_aggregate_line():
    # user nice system idle iowait irq softirq steal guest guest_nice
    assert warmup.cpu_times("cpu  100 5 50 800 45 0 0 0 7 0\n") == (845, 1000)
    assert warmup.cpu_times("cpu0 100 5 50 800 45 0 0 0 0 0") is None
    assert warmup.cpu_times("intr 12345") is None
    assert warmup.cpu_times("cpu  100 5 50 800") is None  # no iowait field: not a line to trust


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="one core: the child is never wanted")
def test_idle_core_reads_the_cores_idle_now_else_the_load(monkeypatch):
    """Sampled idle cores decide (an idle core now, whatever the 1-min load); without /proc/stat
    the load average does."""
    monkeypatch.setattr(os, "getloadavg", lambda: (50.0, 50.0, 50.0))
    monkeypatch.setattr(warmup, "idle_cores", lambda: 1.2)
    assert warmup.idle_core()
    monkeypatch.setattr(warmup, "idle_cores", lambda: 0.3)
    assert not warmup.idle_core()
    monkeypatch.setattr(warmup, "idle_cores", lambda: None)
    assert not warmup.idle_core()
    monkeypatch.setattr(os, "getloadavg", lambda: (0.2, 0.2, 0.2))
    assert warmup.idle_core()


def test_idle_cores_sampled_on_this_machine():
    idle = warmup.idle_cores(0.05)
    assert idle is None or 0.0 <= idle <= (os.cpu_count() or 1)


def test_no_child_for_inputs_in_memory(monkeypatch):
    monkeypatch.setattr(warmup, "wanted", lambda: True)
    assert warmup.start({"name": "m"}, TRACE, None, None, None) is None
    assert warmup.start(MACRO, object(), None, None, None) is None


def test_empty_cache_dir_reads_cold(tmp_path):
    code = "from axelsim import warmup; print(warmup.golden_cache_cold())"
    out = subprocess.run([sys.executable, "-c", code], env=_env(NUMBA_CACHE_DIR=str(tmp_path)),
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "True"


def test_a_child_that_cannot_start_is_none():
    assert warmup.spawn([os.path.join(ROOT, "no-such-program")]) is None


def test_finish_kills_a_child_that_outlives_its_wait():
    child = warmup.spawn(SLEEP)
    warmup.finish(child, wait_s=0.05)
    assert child.returncode is not None and child.returncode < 0
    warmup.stop(None)
    warmup.finish(None)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_child_dies_when_its_parent_is_killed():
    code = ("import sys, time; from axelsim import warmup\n"
            f"child = warmup.spawn({SLEEP!r}); print(child.pid, flush=True); time.sleep(60)")
    parent = subprocess.Popen([sys.executable, "-c", code], env=_env(), stdout=subprocess.PIPE, text=True)
    try:
        pid = int(parent.stdout.readline())
        assert not _gone(pid)
        parent.kill()
        parent.wait()
        deadline = time.monotonic() + 20
        while not _gone(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _gone(pid)
    finally:
        parent.kill()
        parent.wait()


LOAD_COUNT = """
import sys
from numba.core import event
from axelsim import warmup

compiled = []
class Count(event.Listener):
    def on_start(self, e): compiled.append(e.data["dispatcher"].py_func.__qualname__)
    def on_end(self, e): pass
event.register("numba:compile", Count())
warmup.compile_golden(sys.argv[1], sys.argv[2], [0], None, 2)
print(",".join(compiled))
"""


def test_child_writes_the_cache_the_golden_run_loads(tmp_path):
    """The child (as `simulate` starts it, with the CLI's selection) compiles the golden kernels;
    the same golden run in a second process then compiles nothing."""
    env = _env(NUMBA_CACHE_DIR=str(tmp_path))
    child = subprocess.run([sys.executable, "-m", "axelsim.warmup", MACRO, TRACE, "0", "-", "2"], env=env,
                           capture_output=True, text=True)
    assert child.returncode == 0, child.stderr
    assert list(tmp_path.rglob("*lookup_kernel*.nbi")), "no cache index written"
    again = subprocess.run([sys.executable, "-c", LOAD_COUNT, MACRO, TRACE], env=env,
                           capture_output=True, text=True, check=True)
    assert again.stdout.strip() == ""
