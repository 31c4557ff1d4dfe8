"""Model shapes for chip workloads: the attention fields of a published config.json.

`models/` ships four shapes (Llama-3.1-8B, Qwen2.5-3B, Qwen3-8B, SmolLM2-135M), each the
attention-shape fields of the model's config.json with its source; any local config.json of a
Hugging Face causal LM works too (`--model path/to/config.json`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from axelsim.errors import ConfigError

MODELS_DIR = Path(__file__).resolve().parents[2] / "models"
"""The shipped model shapes (models/ at the repository root)."""


@dataclass(frozen=True)
class ModelShape:
    """The attention shape of one model: what sizes its KV cache and its decode step."""

    name: str
    layers: int
    q_heads: int
    kv_heads: int
    head_dim: int
    source: str

    @property
    def group(self) -> int:
        """Query heads per KV head (grouped-query attention)."""
        return self.q_heads // self.kv_heads

    def to_dict(self) -> dict:
        return {"name": self.name, "layers": self.layers, "q_heads": self.q_heads, "kv_heads": self.kv_heads,
                "head_dim": self.head_dim, "source": self.source}


def shipped_models() -> list[str]:
    """Names of the shapes in models/."""
    return sorted(path.stem for path in MODELS_DIR.glob("*.json"))


def _count(data: dict, key: str, source: str) -> int:
    value = data.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(source, key, f"a positive integer, got {value!r}")
    return value


def shape_from_config(data: object, source: str, name: str) -> ModelShape:
    """A ModelShape from a parsed config.json (head_dim, else hidden_size / num_attention_heads)."""
    if not isinstance(data, dict):
        raise ConfigError(source, "", f"a JSON object (a model's config.json), got {type(data).__name__}")
    layers = _count(data, "num_hidden_layers", source)
    q_heads = _count(data, "num_attention_heads", source)
    kv_heads = _count(data, "num_key_value_heads", source) if "num_key_value_heads" in data else q_heads
    if q_heads % kv_heads:
        raise ConfigError(source, "num_key_value_heads", f"a divisor of num_attention_heads ({q_heads}), got {kv_heads}")
    if data.get("head_dim") is not None:
        head_dim = _count(data, "head_dim", source)
    else:
        hidden = _count(data, "hidden_size", source)
        if hidden % q_heads:
            raise ConfigError(source, "hidden_size", f"a multiple of num_attention_heads ({q_heads}) or a head_dim key, got {hidden}")
        head_dim = hidden // q_heads
    cited = data.get("_source")
    return ModelShape(str(data.get("_name", name)), layers, q_heads, kv_heads, head_dim,
                      str(cited) if cited else f"config.json {source}")


def load_model(spec: str) -> ModelShape:
    """A shipped name (case-insensitive, e.g. 'Llama-3.1-8B') or a path to a config.json."""
    by_name = {stem.lower(): stem for stem in shipped_models()}
    path = MODELS_DIR / f"{by_name[spec.lower()]}.json" if spec.lower() in by_name else Path(spec)
    source = str(path)
    try:
        if not path.is_file():
            raise ConfigError(spec, "--model", f"a shipped model ({', '.join(shipped_models())}) or a config.json file")
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(source, "--model", f"a readable config.json ({error})") from None
    try:
        data = json.loads(text)
    except ValueError as error:
        raise ConfigError(source, "", f"valid JSON ({str(error).splitlines()[0]})") from None
    return shape_from_config(data, source, path.parent.name if path.name == "config.json" else path.stem)
