"""The configurations of the perplexity study: sign ROMs per protocol, QDQ or bit-exact decoding.

Protocols (docs/sensitivity.md):
- "axelsim": one sign ROM per layer from the seed rule (`SignRom.from_seed`), shared by keys,
  values and queries; comparator ties to the upper level; Algorithm 1 on keys and values.
- "paper": the paper's code (Axelidea/AXELRAM eval/ppl_eval.py, eval/sign_optimization.py):
  separate key and value ROMs (`paper_sign_roms`), ties to the lower level (nearest-centroid
  argmin), Algorithm 1 on keys only over a 2,000-vector subset with the paper's candidates; in
  QDQ mode also prefix-only quantization.
Modes: "qdq" (the model attends over the stored vectors, `macro_kv_transform`) or "bitexact"
(the model's attention replaced by the golden datapaths, `macro_attention`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from axelsim.calibrate.kvquant import macro_kv_transform, macro_spec
from axelsim.calibrate.macro_attention import baseline_backend, macro_backend, qjl_backend, register
from axelsim.calibrate.perplexity import AttentionSwap
from axelsim.errors import ConfigError
from axelsim.numerics.golden import NumericsSpec
from axelsim.numerics.baselines import KiviSpec
from axelsim.numerics.hadamard import SignRom, paper_sign_roms
from axelsim.numerics.qjl import QjlSpec

PROTOCOLS = ("axelsim", "paper")
MODES = ("qdq", "bitexact")
PAPER_CALIBRATION_VECTORS = 2000
KIVI_GROUP = 32
KIVI_WINDOW = 128
"""KIVI's group size and FP16 window (the macro schema's defaults, baselines.kivi; KIVI's R = 128)."""


@dataclass(frozen=True)
class Protocol:
    name: str
    mode: str

    def __post_init__(self):
        if self.name not in PROTOCOLS:
            raise ConfigError("perplexity", "protocol", f"expected one of {PROTOCOLS}, got {self.name!r}")
        if self.mode not in MODES:
            raise ConfigError("perplexity", "mode", f"expected one of {MODES}, got {self.mode!r}")

    @property
    def ties(self) -> str:
        return "lower" if self.name == "paper" else "upper"

    @property
    def prefix_only(self) -> bool:
        """The paper quantizes only the prefix; the bit-exact macro stores every vector it sees."""
        return self.name == "paper" and self.mode == "qdq"

    def roms(self, seed: int, n_layers: int, dim: int) -> tuple[SignRom, Optional[SignRom]]:
        """(key ROM, value ROM or None when the values share the key ROM)."""
        if self.name == "paper":
            return paper_sign_roms(seed, n_layers, dim)
        return SignRom.from_seed(seed, n_layers, dim), None

    def spec(self, dim: int, bits: int, signs: SignRom, value_signs: Optional[SignRom]) -> NumericsSpec:
        return macro_spec(dim, bits, signs, value_signs, self.ties)

    def calibration_options(self) -> dict:
        """Keyword arguments of `calibrate_signs` for this protocol."""
        if self.name == "paper":
            return {"include_values": False, "rule": "paper", "max_vectors": PAPER_CALIBRATION_VECTORS}
        return {"include_values": True}

    def configuration(self, label: str, spec: NumericsSpec, qjl_bits: Optional[int] = None):
        """A `perplexities` configuration: a KV transform (QDQ) or an `AttentionSwap` (bit-exact);
        qjl_bits: QJL residual keys with that many sketch bits (bit-exact only)."""
        if self.mode == "qdq":
            if qjl_bits is not None:
                raise ConfigError("perplexity", "qjl", "QJL scores have no stored key vector to attend over: use --mode bitexact")
            return macro_kv_transform(spec)
        backend = qjl_backend(QjlSpec.build(spec, qjl_bits)) if qjl_bits is not None else macro_backend(spec)
        return AttentionSwap(register(f"axelsim_{label}", backend))

    def baseline(self, label: str, kind: str, spec: NumericsSpec, kivi_bits: int = 2, window: int = KIVI_WINDOW):
        """A bit-exact configuration of a baseline macro's golden reference: kind "fp16" or
        "kivi" (`kivi_bits`-bit groups of KIVI_GROUP, the last `window` tokens in FP16)."""
        if self.mode != "bitexact":
            raise ConfigError("perplexity", "baselines", "the baselines' arithmetic needs --mode bitexact")
        if window < KIVI_GROUP or window % KIVI_GROUP:
            raise ConfigError("perplexity", "kivi-window", f"expected a multiple of the group size {KIVI_GROUP}, got {window}")
        kivi = KiviSpec(kivi_bits, KIVI_GROUP, window, min(KIVI_GROUP, spec.dim))
        return AttentionSwap(register(f"axelsim_{label}", baseline_backend(kind, spec, kivi)))
