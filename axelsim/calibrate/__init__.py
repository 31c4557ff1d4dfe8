"""Sign-pattern selection (Algorithm 1) and the sign-sensitivity study.

- `calibrate_signs(trace, bits, candidates=200, seed=0, per_head=False, include_values=False,
  progress=None, macro_seed=0) -> CalibrationResult` (`save(path)`, `table()`, `to_dict()`).
- `run_sensitivity(trace, seeds=range(1, 11), bits_list=(2, 3, 4), out_dir=None,
  progress=None, candidates=200, plot_dir=None) -> dict`.
- The perplexity harness (`axelsim.calibrate.perplexity`, torch/transformers, imported lazily)
  is driven by scripts/perplexity.py; results in docs/sensitivity.md.
"""

from axelsim.calibrate.calibration import CalibrationResult, Selection, calibrate_signs
from axelsim.calibrate.sensitivity import run_sensitivity, summary_markdown

__all__ = ["CalibrationResult", "Selection", "calibrate_signs", "run_sensitivity", "summary_markdown"]
