"""Bit-exact attention for perplexity: the model's attention replaced by the golden datapaths.

`attention_function(backend)` returns a function for transformers' `AttentionInterface`
(signature of `eager_attention_forward`): it receives one layer's post-RoPE queries [1, Hq,
Tq, d] and the whole cache's keys and values [1, Hkv, Tk, d], and returns the attention
output [1, Tq, Hq, d] computed by `backend(layer, k, v, q, q_positions)`. Query n sits at
position Tk − Tq + n and sees keys 0..that position (causal), so one call serves a prefill or
the decoding of Tq tokens after a cache of Tk − Tq. Backends:

- `macro_backend(spec)`: `golden_layer`: every key and value goes through the macro's write
  path, scores through the table, FP16 adder tree and norm multiplier, the output through the
  exp unit, bins, centroid multiply and inverse FWHT: the macro's arithmetic bit for bit.
- `qjl_backend(qjl_spec)`: the same with QJL residual keys (`numerics.qjl.qjl_layer`).
- `baseline_backend(kind, spec, kivi)`: a baseline macro's golden reference
  (`numerics.baselines.baseline_layer`): "fp16" (FP16 rows, the accumulator-format dot
  products, the exp unit and FP16 value accumulation) or "kivi" (KIVI's 2..4-bit groups with
  its FP16 window), bit for bit as that baseline computes.
- `exact_backend()`: float64 attention (the plumbing check: equals the model's own attention).

torch is imported lazily: it belongs to the optional `[capture]` extra.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from axelsim.errors import NumericsError
from axelsim.numerics.baselines import KiviSpec, baseline_layer
from axelsim.numerics.golden import NumericsSpec, golden_layer
from axelsim.numerics.qjl import QjlSpec, qjl_layer
from axelsim.numerics.reference import attention_f64

Backend = Callable[[int, np.ndarray, np.ndarray, np.ndarray, np.ndarray], np.ndarray]
"""(layer, k [Hkv, T, d], v [Hkv, T, d], q [Hq, Nq, d], q_positions [Nq]) -> outputs [Hq, Nq, d]."""


def macro_backend(spec: NumericsSpec) -> Backend:
    def run(layer, k, v, q, pos):
        return golden_layer(spec, k, v, q, pos, layer, "perplexity").outputs
    return run


def qjl_backend(qs: QjlSpec) -> Backend:
    def run(layer, k, v, q, pos):
        return qjl_layer(qs, k, v, q, pos, layer, "perplexity").outputs
    return run


def baseline_backend(kind: str, spec: NumericsSpec, kivi: KiviSpec = KiviSpec()) -> Backend:
    def run(layer, k, v, q, pos):
        return baseline_layer(kind, spec, kivi, k, v, q, pos, layer, "perplexity").outputs
    return run


def exact_backend() -> Backend:
    def run(layer, k, v, q, pos):
        return attention_f64(k, v, q, pos).outputs
    return run


def attention_function(backend: Backend):
    """An `AttentionInterface` function computing attention with `backend` (batch size 1)."""
    import torch

    def attend(module, query, key, value, attention_mask=None, scaling=None, dropout=0.0, **kwargs):
        if query.shape[0] != 1:
            raise NumericsError("perplexity", "batch", f"expected batch size 1, got {query.shape[0]}")
        q = query[0].detach().float().numpy()
        k = key[0].detach().float().numpy()
        v = value[0].detach().float().numpy()
        n_q, n_tok = q.shape[1], k.shape[1]
        positions = np.arange(n_tok - n_q, n_tok, dtype=np.int64)
        out = backend(int(module.layer_idx), k, v, q, positions)  # [Hq, Nq, d]
        return torch.from_numpy(np.ascontiguousarray(out.transpose(1, 0, 2), dtype=np.float32))[None], None

    return attend


def register(name: str, backend: Backend) -> str:
    """Register `backend` under `name` with transformers' AttentionInterface; returns the name."""
    from transformers import AttentionInterface

    AttentionInterface.register(name, attention_function(backend))
    return name
