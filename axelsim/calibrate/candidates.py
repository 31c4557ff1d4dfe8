"""The candidate sign vectors of Algorithm 1 (seeded, reproducible).

Rule, for a layer and head size d, with C candidates, calibration seed `seed` and the macro's
seed `macro_seed`:
- candidate 0 is the macro's own vector, `sign_vector(macro_seed, layer, d)` (the seed rule of
  docs/architecture.md), so the selection is never worse than the default on its
  calibration set;
- candidate c, 1 <= c < C, is `sign_vector(seed * C + c, layer, d)`: the seed rule at seed
  seed·C + c. With seed = 0 these are the seed-rule vectors of seeds 1..C-1, which include
  the seeds 1..10 of the sensitivity study; other seeds select disjoint windows of seeds.
"""

from __future__ import annotations

import numpy as np

from axelsim.numerics.hadamard import PAPER_SEED, paper_sign_vector, sign_vector


def candidate_seeds(count: int, seed: int = 0, macro_seed: int = 0) -> list[int]:
    """The seed-rule seed of each candidate: [macro_seed, seed*count + 1, ..., seed*count + count-1]."""
    if count < 1:
        raise ValueError(f"expected at least one candidate, got {count}")
    return [macro_seed] + [seed * count + c for c in range(1, count)]


def candidate_signs(layer: int, dim: int, count: int, seed: int = 0, macro_seed: int = 0) -> np.ndarray:
    """The candidates of one layer: int8 [count, dim] of +-1, row c built by the rule above."""
    return np.stack([sign_vector(s, layer, dim) for s in candidate_seeds(count, seed, macro_seed)])


def paper_candidate_seeds(layer: int, count: int, base: int = PAPER_SEED) -> list[int]:
    """The paper's candidates (eval/sign_optimization.py): seeds (base + 1000 * layer) * 10000 + c."""
    return [(base + 1000 * layer) * 10000 + c for c in range(count)]


def paper_candidate_signs(layer: int, dim: int, count: int, base: int = PAPER_SEED) -> np.ndarray:
    """int8 [count, dim]: the paper's sign rule (`paper_sign_vector`) of each candidate seed."""
    return np.stack([paper_sign_vector(s, dim) for s in paper_candidate_seeds(layer, count, base)])
