"""Time and peak memory of the worst hostile input of each family (issue 17; docs/hardening.md).

Each case is one whole `python -m axelsim ...` process, measured with os.wait4 (wall time, the
child's CPU time, which a loaded machine changes less, and its peak resident set, ru_maxrss);
the expected exit status is checked. For the killed sweep, wall time runs until the last worker,
resource tracker and forkserver is gone. Prints a
Markdown table. The inputs are built in a temporary folder; nothing in the repository changes.

    python scripts/hardening_bounds.py            # all cases (about 2 minutes)
    python scripts/hardening_bounds.py --only sweep_2p30,layers_1e9
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from axelsim.numerics.hadamard import SignRom  # noqa: E402
from axelsim.trace.format import Trace, save_trace  # noqa: E402

MACRO = REPO / "macros" / "axelram_b2.yaml"


def measure(argv: list[str], cwd: Path, kill_after: float | None = None) -> tuple[int, float, float, float, str]:
    """(exit status, wall s, CPU s, peak MiB, last stderr line) of `python -m axelsim ARGV`."""
    env = dict(os.environ, PYTHONPATH=str(REPO))
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "axelsim", *map(str, argv)], cwd=cwd, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    children: set[int] = set()
    if kill_after is not None:
        time.sleep(kill_after)
        children = _descendants(proc.pid)
        proc.send_signal(signal.SIGKILL)
    _, status, usage = os.wait4(proc.pid, 0)
    err = proc.stderr.read().decode("utf-8", "replace").strip().splitlines()
    if children:  # the time until the last worker, tracker and forkserver is gone
        while any(Path(f"/proc/{pid}").exists() for pid in children) and time.perf_counter() - start < 120:
            time.sleep(0.05)
    wall = time.perf_counter() - start
    cpu = usage.ru_utime + usage.ru_stime
    return os.waitstatus_to_exitcode(status), wall, cpu, usage.ru_maxrss / 1024, (err[-1] if err else "")


def _descendants(pid: int) -> set[int]:
    found, todo = set(), [pid]
    while todo:
        for path in Path(f"/proc/{todo.pop()}/task").glob("*/children"):
            for child in path.read_text().split():
                if int(child) not in found:
                    found.add(int(child))
                    todo.append(int(child))
    return found


def _trace(path: Path, dtype: str = "float32", value: float | None = None) -> Path:
    rng = np.random.default_rng(0)
    k, v, q = ({0: rng.standard_normal((1, n, 8))} for n in (16, 16, 2))
    if value is not None:
        k[0][0, 1, 2] = v[0][0, 2, 3] = q[0][0, 0, 1] = value
    save_trace(Trace.from_arrays(k, v, q, [7, 15], dtype=dtype), path)
    return path


def _layer_1e9(path: Path) -> Path:
    meta = {"format": "axelsim-kv-trace", "version": "1", "model": "m", "source": "s", "n_layers": "1", "kv_heads": "1",
            "q_heads": "1", "head_dim": "8", "tokens": "2", "dtype": "float32"}
    layer = 10**9
    header = {"__metadata__": meta,
              f"layers.{layer}.k": {"dtype": "F32", "shape": [1, 2, 8], "data_offsets": [0, 64]},
              f"layers.{layer}.q": {"dtype": "F32", "shape": [1, 1, 8], "data_offsets": [64, 96]},
              "q_positions": {"dtype": "I64", "shape": [1], "data_offsets": [96, 104]}}
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + bytes(104))
    return path


def _write(path: Path, text: str | bytes) -> Path:
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


def _sparse(path: Path, size: int = 1 << 36) -> Path:
    with open(path, "wb") as stream:
        stream.truncate(size)
    return path


def _fifo(path: Path) -> Path:
    os.mkfifo(path)
    return path


def _macro_with(root: Path, name: str, **sections) -> Path:
    data = yaml.safe_load(MACRO.read_text())
    data.update(sections)
    return _write(root / name, yaml.safe_dump(data))


BOMB = "\n".join(["a0: &a0 [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]"]
                 + [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]) + "\n"


def cases(root: Path) -> dict[str, tuple[str, list, int]]:
    """name -> (family, argv, expected exit status)."""
    good = _trace(root / "t.safetensors")
    (root / "tech").mkdir()
    for item in (REPO / "macros" / "tech").iterdir():
        (root / "tech" / item.name).write_bytes(item.read_bytes())
    tech = yaml.safe_load((REPO / "macros" / "tech" / "reference.yaml").read_text())
    tech["arithmetic"]["fp32_mul"]["energy_pj"] = 10**400
    _write(root / "tech" / "huge.yaml", yaml.safe_dump(tech))
    signs = SignRom.from_seed(1, 1, 8)
    signs.to_file(root / "good_signs.yaml")
    run = ["run", MACRO, "--trace"]
    sweep_grid = {key: list(range(1, 1025)) for key in ("sram.banks", "sram.rows_per_bank", "read_path.pipelines")}
    return {
        "trace_layer_1e9": ("traces", [*run, _layer_1e9(root / "l.safetensors"), "--quiet"], 2),
        "trace_sparse_64GiB": ("traces", [*run, _sparse(root / "s.safetensors"), "--quiet"], 2),
        "trace_fp16_65504": ("numeric extremes", [*run, _trace(root / "f16.safetensors", "float16", 65504.0), "--quiet"], 0),
        "trace_fp32_3e38": ("numeric extremes", [*run, _trace(root / "f32.safetensors", "float32", 3e38), "--quiet"], 2),
        "macro_alias_bomb": ("YAML kinds", ["run", _write(root / "bomb.yaml", BOMB), "--trace", good, "--quiet"], 2),
        "macro_dev_zero": ("YAML kinds", ["run", "/dev/zero", "--trace", good, "--quiet"], 2),
        "macro_fifo": ("YAML kinds", ["run", _fifo(root / "fifo.yaml"), "--trace", good, "--quiet"], 2),
        "signs_nested_20000": ("YAML kinds", ["run", _macro_with(root, "sm.yaml", signs={"file": str(_write(
            root / "deep.yaml", "format: axelsim-signs\nlayers: " + "[" * 20000 + "]" * 20000 + "\n"))}),
            "--trace", good, "--quiet"], 2),
        "technology_1e400": ("YAML kinds", ["run", _macro_with(root, "tm.yaml", technology={"file": "tech/huge.yaml"}),
                                            "--trace", good, "--quiet"], 2),
        "output_fifo_no_reader": ("outputs", [*run, good, "--quiet", "--json", _fifo(root / "out.fifo")], 2),
        "output_dev_full": ("outputs", [*run, good, "--quiet", "--json", "/dev/full"], 2),
        "output_proc": ("outputs", [*run, good, "--quiet", "--json", "/proc/x.json"], 2),
        "sweep_2p30": ("sweeps/faults", ["sweep", _write(root / "big.yaml", yaml.safe_dump(
            {"base": str(MACRO), "traces": [str(good)], "grid": sweep_grid})), "--out", root / "sw"], 2),
        "sweep_killed_workers": ("signals", ["sweep", _write(root / "two.yaml", yaml.safe_dump(
            {"base": str(MACRO), "traces": [str(good)], "grid": {"bits": [2, 3, 4], "read_path.pipelines": [1, 2]}})),
            "--out", root / "killed", "--workers", "2"], -9),
        "layers_0_999999999": ("ranges", [*run, good, "--quiet", "--layers", "0-999999999"], 2),
        "seeds_1_999999999": ("ranges", ["sensitivity", good, "--seeds", "1-999999999", "--out", root / "sens"], 2),
        "capture_text_fifo": ("traces", ["trace", "capture", "--model", root / "none", "--text", _fifo(root / "t.fifo"),
                                         "--tokens", "8", "--out", root / "c.safetensors"], 2),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="comma-separated case names")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        table = cases(root)
        names = args.only.split(",") if args.only else list(table)
        print("| family | worst input | exit | wall s | CPU s | peak MiB | stderr |\n|---|---|---|---|---|---|---|")
        for name in names:
            family, argv_, expected = table[name]
            kill = 6.0 if expected == -9 else None
            status, wall, cpu, peak, line = measure(argv_, root, kill_after=kill)
            flag = "" if status == expected else f" (expected {expected})"
            shown = line.replace(str(root), "TMP").replace("|", "/")[:90]
            print(f"| {family} | {name} | {status}{flag} | {wall:.2f} | {cpu:.2f} | {peak:.0f} | {shown} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
