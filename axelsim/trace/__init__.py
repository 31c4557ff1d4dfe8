"""KV-cache traces: the safetensors format, synthetic traces, capture from real models.

`capture` needs the `[capture]` extra (torch, transformers) and is not imported here.
"""

from axelsim.trace.format import Trace, evenly_spaced_positions, load_trace, save_trace
from axelsim.trace.info import format_trace_info, trace_info
from axelsim.trace.synth import SynthSpec, synth_trace

__all__ = [
    "Trace", "load_trace", "save_trace", "evenly_spaced_positions", "trace_info",
    "format_trace_info", "SynthSpec", "synth_trace",
]
