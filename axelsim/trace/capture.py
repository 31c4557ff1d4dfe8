"""Capture a trace from a transformers causal LM (the `[capture]` extra: torch, transformers).

Nothing of the model is re-implemented: the capture registers an attention function with
transformers' `AttentionInterface` that records the query, key and value states it is handed
(queries and keys after RoPE, keys and values exactly as the model caches them) and then
delegates to the model's own attention implementation (sdpa or eager). After the forward pass
the recorded keys and values are checked against the model's own KV cache.

Loading is offline only (HF_HUB_OFFLINE=1, local_files_only): a local folder, or a GGUF file.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from axelsim.errors import TraceError
from axelsim.io import read_regular
from axelsim.trace.format import FLOAT_DTYPES, Trace, evenly_spaced_positions, save_trace

_CAPTURE_NAME = "axelsim_capture_"
_DELEGATES = ("sdpa", "eager")
_TEXT_CHARS_PER_TOKEN = 16  # generous: English averages about 4 characters per token


class CaptureMismatch(RuntimeError):
    """The recorded keys or values differ from the model's own KV cache (an internal fault)."""


def _torch():
    os.environ["HF_HUB_OFFLINE"] = "1"
    import torch
    return torch


def load_model(path_or_name: str | os.PathLike, gguf_file: str | None = None):
    """Load a causal LM and its tokenizer from local files: (model in eval mode, tokenizer).

    path_or_name: a model folder, a .gguf file (its folder is used), or a name already in the
    local Hugging Face cache. gguf_file: a GGUF file name inside the folder. Weights are
    dequantized to float32. Raises TraceError when nothing loadable is found.
    """
    torch = _torch()
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = Path(path_or_name)
    if path.suffix == ".gguf" and gguf_file is None:
        path, gguf_file = path.parent, path.name
    if gguf_file is not None and not (path / gguf_file).is_file():
        raise TraceError(str(path / gguf_file), "model", "an existing GGUF file")
    kwargs = {"local_files_only": True}
    if gguf_file is not None:
        kwargs["gguf_file"] = gguf_file
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(path), **kwargs)
        model = AutoModelForCausalLM.from_pretrained(str(path), dtype=torch.float32, **kwargs)
    except (OSError, ValueError) as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise TraceError(str(path_or_name), "model",
                         f"a local causal LM folder or GGUF file, loadable offline ({first_line})") from None
    model.eval()
    return model, tokenizer


def capture_trace(model, tokenizer_or_none, text: str | Sequence[int], tokens: int,
                  layers: Sequence[int] | None = None,
                  query_positions: int | Sequence[int] | None = None,
                  dtype: str = "float16", progress: bool = True, source: str | None = None,
                  model_name: str | None = None) -> Trace:
    """Run `model` once over the first `tokens` tokens of `text` and return the trace.

    text: a string (tokenized with `tokenizer_or_none`, special tokens included) or token ids
    (then the tokenizer may be None). layers: layer numbers (default all). query_positions:
    None for every position, an int N for N positions spread evenly up to T-1, or explicit
    ascending positions. dtype: stored precision, "float16" or "float32". Raises TraceError on
    bad input and CaptureMismatch if the recording disagrees with the model's KV cache.
    """
    torch = _torch()
    name = model_name or getattr(model.config, "_name_or_path", "") or model.config.model_type
    if dtype not in FLOAT_DTYPES:
        raise TraceError(name, "dtype", f"one of {sorted(FLOAT_DTYPES)}, got {dtype!r}")
    ids = _token_ids(tokenizer_or_none, text, tokens)
    depth = model.config.num_hidden_layers
    chosen = sorted(set(range(depth) if layers is None else (int(x) for x in layers)))
    if not chosen or chosen[0] < 0 or chosen[-1] >= depth:
        raise TraceError(name, "layers", f"layer numbers in 0..{depth - 1}, got {chosen}")
    positions = _query_positions(name, query_positions, tokens)
    recorder = _Recorder(set(chosen), torch.as_tensor(positions))
    from tqdm import tqdm
    with tqdm(total=len(chosen), desc="capture", unit="layer", disable=not progress) as bar:
        recorder.bar = bar
        with torch.no_grad(), _recording_attention(model, recorder) as delegate:
            out = model(input_ids=torch.as_tensor([ids]), use_cache=True, axelsim_recorder=recorder)
    _check_against_cache(out, recorder, chosen)
    k = {L: recorder.k[L].numpy() for L in chosen}
    v = {L: recorder.v[L].numpy() for L in chosen}
    q = {L: recorder.q[L].numpy() for L in chosen}
    import transformers
    extra = {"model_layers": str(depth),
             "capture": f"transformers {transformers.__version__}, attention {delegate}, float32 forward"}
    return Trace.from_arrays(k, v, q, positions, model=name,
                             source=source or f"{tokens} tokens of given text", dtype=dtype,
                             extra_meta=extra)


def _token_ids(tokenizer, text: str | Sequence[int], tokens: int) -> list[int]:
    if tokens < 1:
        raise TraceError("text", "tokens", f"a positive number of tokens, got {tokens}")
    if isinstance(text, str):
        if tokenizer is None:
            raise TraceError("text", "tokenizer", "a tokenizer for text (or token ids without one)")
        ids = list(tokenizer(text, add_special_tokens=True)["input_ids"])
    else:
        ids = [int(x) for x in text]
    if len(ids) < tokens:
        raise TraceError("text", "tokens", f"at least {tokens} tokens of text, it holds {len(ids)}")
    return ids[:tokens]


def _query_positions(name: str, query_positions, tokens: int) -> np.ndarray:
    if query_positions is None:
        return np.arange(tokens, dtype=np.int64)
    if isinstance(query_positions, (int, np.integer)):
        if query_positions < 1:
            raise TraceError(name, "query_positions", f"a positive count, got {query_positions}")
        return evenly_spaced_positions(tokens, int(query_positions))
    pos = np.asarray(list(query_positions), dtype=np.int64)
    if pos.size == 0 or np.any(np.diff(pos) <= 0) or pos[0] < 0 or pos[-1] >= tokens:
        raise TraceError(name, "query_positions", f"strictly ascending positions in 0..{tokens - 1}")
    return pos


class _Recorder:
    """Collects per-layer float32 q [Hq, Nq, d] (at the chosen positions), k and v [Hkv, T, d]."""

    def __init__(self, layers: set[int], positions):
        self.layers = layers
        self.positions = positions
        self.q: dict = {}
        self.k: dict = {}
        self.v: dict = {}
        self.bar = None

    def record(self, layer: int, query, key, value) -> None:
        if layer not in self.layers:
            return
        if query.shape[0] != 1 or query.shape[2] != key.shape[2]:
            raise CaptureMismatch(f"layer {layer}: expected one prefill sequence, got {tuple(query.shape)}")
        self.q[layer] = query[0][:, self.positions].detach().float().clone()
        self.k[layer] = key[0].detach().float().clone()
        self.v[layer] = value[0].detach().float().clone()
        if self.bar is not None:
            self.bar.update(1)


def _attention_function(delegate: str):
    """An attention function that records its inputs, then calls the `delegate` implementation."""
    from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS
    from transformers.models.llama.modeling_llama import eager_attention_forward

    def recording_attention(module, query, key, value, attention_mask, **kwargs):
        recorder = kwargs.pop("axelsim_recorder", None)
        if recorder is not None:
            recorder.record(module.layer_idx, query, key, value)
        inner = eager_attention_forward if delegate == "eager" else ALL_ATTENTION_FUNCTIONS[delegate]
        return inner(module, query, key, value, attention_mask, **kwargs)

    return recording_attention


@contextlib.contextmanager
def _recording_attention(model, recorder: _Recorder) -> Iterator[str]:
    """Switch `model` to the recording attention for the duration; yields the delegate name.

    The function is registered once per delegate under a fixed name in transformers' global
    attention and mask registries (that is how the AttentionInterface works); the recorder
    travels in the forward call's kwargs, so nothing is shared between captures.
    """
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS

    original = model.config._attn_implementation
    delegate = original if original in _DELEGATES else "sdpa"
    name = _CAPTURE_NAME + delegate
    AttentionInterface.register(name, _attention_function(delegate))
    ALL_MASK_ATTENTION_FUNCTIONS.register(name, ALL_MASK_ATTENTION_FUNCTIONS[delegate])
    model.set_attn_implementation(name)
    try:
        yield delegate
    finally:
        model.set_attn_implementation(original)


def _cached_kv(out, layer: int):
    """Keys and values [Hkv, T, d] of `layer` from the model's returned cache."""
    cache = out.get("cache") or out.get("past_key_values")
    if hasattr(cache, "layers"):
        entry = cache.layers[layer]
        return entry.keys[0], entry.values[0]
    return cache.key_cache[layer][0], cache.value_cache[layer][0]


def _check_against_cache(out, recorder: _Recorder, layers: Sequence[int]) -> None:
    torch = _torch()
    for layer in layers:
        if layer not in recorder.k:
            raise CaptureMismatch(f"layer {layer}: the attention function was never called")
        keys, values = _cached_kv(out, layer)
        if not torch.equal(keys.float(), recorder.k[layer]) or not torch.equal(values.float(), recorder.v[layer]):
            raise CaptureMismatch(f"layer {layer}: recorded keys/values differ from the model's KV cache")


MAX_TEXT_BYTES = 1 << 30
"""Largest text file `trace capture --text` reads (1 GiB; the shipped corpus is a few MB)."""


def read_text(path: str | os.PathLike, offset: int = 0, tokens: int | None = None) -> str:
    """Characters of a UTF-8 text file from `offset` (enough for `tokens` tokens when given)."""
    path = Path(path)
    try:  # a regular file only (a FIFO or /dev/zero is refused, never read), of bounded size
        text = read_regular(path, MAX_TEXT_BYTES).decode("utf-8")
    except FileNotFoundError:
        raise TraceError(str(path), "file", "an existing UTF-8 text file") from None
    except OSError as error:
        raise TraceError(str(path), "file", f"a readable UTF-8 text file: {error.strerror or error}") from None
    except UnicodeDecodeError:
        raise TraceError(str(path), "file", "UTF-8 text") from None
    if not 0 <= offset < len(text):
        raise TraceError(str(path), "offset", f"a character offset in 0..{len(text) - 1}, got {offset}")
    end = len(text) if tokens is None else offset + max(4096, tokens * _TEXT_CHARS_PER_TOKEN)
    return text[offset:end]


def capture_to_file(model_path: str | os.PathLike, text_path: str | os.PathLike, tokens: int,
                    out: str | os.PathLike, gguf_file: str | None = None, text_offset: int = 0,
                    layers: Sequence[int] | None = None, queries: int | None = None,
                    dtype: str = "float16", progress: bool = True,
                    model_name: str | None = None) -> Trace:
    """Load a model, capture `tokens` tokens of a text file from `text_offset`, save to `out`.

    This is `axelsim trace capture`. queries: N query positions spread evenly (None: all).
    Returns the saved trace, re-read from `out` (memory-mapped).
    """
    text = read_text(text_path, text_offset, tokens)  # before the (slow) model load: bad text fails at once
    model, tokenizer = load_model(model_path, gguf_file)
    source = f"{Path(text_path).name} from character {text_offset}, first {tokens} tokens"
    if model_name is None:
        model_name = f"{Path(model_path).name}/{gguf_file}" if gguf_file else Path(model_path).name
    trace = capture_trace(model, tokenizer, text, tokens, layers=layers, query_positions=queries,
                          dtype=dtype, progress=progress, source=source, model_name=model_name)
    from axelsim.trace.format import load_trace
    return load_trace(save_trace(trace, out))
