"""The measured GPU anchor: decode-step attention over an FP16 KV cache on an NVIDIA H200.

Data: data/gpu_anchor/decode_attention_h200.json (method and provenance in its README). A row
is looked up by shape (layers, query heads, KV heads, head_dim), context and batch; a workload
that was not measured has no anchor (never extrapolated).
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Optional

from axelsim.chip.models import ModelShape

ANCHOR_FILE = Path(__file__).resolve().parents[2] / "data" / "gpu_anchor" / "decode_attention_h200.json"
SOURCE = ("measured on an NVIDIA H200 with torch.nn.functional.scaled_dot_product_attention, CUDA-graph replay, "
          "2026-12-01 (data/gpu_anchor/README.md); energy is board power (idle floor and HBM included) x step time / batch")


@lru_cache(maxsize=1)
def _rows() -> tuple[dict, ...]:
    return tuple(json.loads(ANCHOR_FILE.read_text(encoding="utf-8"))["rows"])


def gpu_h200(shape: ModelShape, context: int, batch: int) -> Optional[dict]:
    """The anchor row as the chip report's `baselines.gpu_h200`, or None when not measured."""
    for row in _rows():
        if (row["layers"], row["q_heads"], row["kv_heads"], row["head_dim"], row["T"], row["batch"]) == \
                (shape.layers, shape.q_heads, shape.kv_heads, shape.head_dim, context, batch):
            return {"latency_s": row["step_s_median"], "tokens_per_s": batch / row["step_s_median"],
                    "energy_j_per_token": row["energy_J_per_token"], "board_power_w": row["power_W_mean"],
                    "energy_includes_idle_board_power": True, "model": row["model"], "source": SOURCE}
    return None
