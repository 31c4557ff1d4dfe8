"""Operation counts of a trace, counted as the operations execute.

The cycle model's units and the golden kernels book their operations per stream from the
structure of the unit (e.g. a score stream of n keys books h (d - 1) n additions: every
datapath of docs/architecture.md performs each of its operations once per item, it never skips
work). This module is the independent check of those per-stream figures: a plain float64
datapath in Python, one operation at a time, where every multiplication, addition, comparison,
table read, butterfly, square root, division and exp increments its counter in the line that
performs it. Values are float64 without the formats' rounding (the counts do not depend on
rounding; the number of saturated norms uses the float64 norm). Slow (about a microsecond per
operation): for tests and docs/validation.md only.

Counts use the report's ops kinds (docs/report.md, `ops`) and paths ('write_path',
'read_path', 'value_path'), in the replay of SPEC.md with the cache written through the write
path (`prefill='simulate'`) or preloaded (`write=False`: nothing counted for the writes).
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Optional

import numpy as np

FP16_MAX = 65504.0
KINDS = ("multiplications", "additions", "comparisons", "table_lookups", "sram_read_bits", "sram_write_bits",
         "butterflies", "divisions", "square_roots", "exps", "norm_saturations")
PATHS = ("write_path", "read_path", "value_path")


class Counter:
    """Arithmetic that counts itself: each call performs one operation and books it on `path`."""

    def __init__(self):
        self.n: dict = defaultdict(lambda: defaultdict(int))
        self.path = "write_path"

    def book(self, kind: str, count: int = 1) -> None:
        self.n[kind][self.path] += count

    def mul(self, a: float, b: float) -> float:
        self.book("multiplications")
        return a * b

    def add(self, a: float, b: float) -> float:
        self.book("additions")
        return a + b

    def sub(self, a: float, b: float) -> float:
        self.book("additions")
        return a - b

    def ge(self, a: float, b: float) -> bool:
        self.book("comparisons")
        return a >= b

    def gt(self, a: float, b: float) -> bool:
        self.book("comparisons")
        return a > b

    def table(self, tab: list, i: int, j: int) -> float:
        self.book("table_lookups")
        return tab[i][j]

    def totals(self) -> dict:
        """{kind: {path: n, ..., 'total': n}} for every kind."""
        out = {}
        for kind in KINDS:
            row = {p: int(self.n[kind][p]) for p in PATHS}
            row["total"] = sum(row.values())
            out[kind] = row
        return out


def _tree(c: Counter, xs: list) -> float:
    """Pairwise adder tree: d - 1 additions, executed level by level."""
    while len(xs) > 1:
        xs = [c.add(xs[2 * m], xs[2 * m + 1]) for m in range(len(xs) // 2)]
    return xs[0]


def _fwht(c: Counter, u: list) -> list:
    """In-place Walsh-Hadamard butterflies: each one an addition and a subtraction."""
    u = list(u)
    h = 1
    while h < len(u):
        for i in range(0, len(u), 2 * h):
            for j in range(i, i + h):
                a, b = u[j], u[j + h]
                c.book("butterflies")
                u[j], u[j + h] = c.add(a, b), c.sub(a, b)
        h *= 2
    return u


def write_vector(c: Counter, x: np.ndarray, signs: np.ndarray, boundaries: np.ndarray, row_bits: int) -> tuple:
    """Norm, rotation, quantization and storage of one vector: (levels, stored norm)."""
    norm = math.sqrt(_tree(c, [c.mul(float(v), float(v)) for v in x]))
    c.book("square_roots")
    if norm > FP16_MAX:
        c.book("norm_saturations")
    thresholds = [c.mul(float(b), norm) for b in boundaries]
    y = _fwht(c, [float(v) * float(s) for v, s in zip(x, signs)])  # the sign flips are wiring
    levels = [sum(1 for t in thresholds if c.ge(yi, t)) for yi in y]
    c.book("sram_write_bits", row_bits)
    return levels, min(norm, FP16_MAX)


def read_job(c: Counter, q: np.ndarray, rows: list, centroids: np.ndarray, signs: np.ndarray, row_bits: int) -> list:
    """Scores [h][n] of query heads q [h, d] (a GQA group sharing reads, or one head) over stored
    rows [(levels, norm)]: query rotation, table generation, per key a row read, d table reads,
    the adder tree and the norm multiplication."""
    tables = []
    for qh in q:
        r = _fwht(c, [float(v) * float(s) for v, s in zip(qh, signs)])
        tables.append([[c.mul(r[i], float(cj)) for cj in centroids] for i in range(len(r))])
    scores = [[] for _ in tables]
    for levels, norm in rows:
        c.book("sram_read_bits", row_bits)  # one index read per key serves the whole group
        for a, tab in enumerate(tables):
            s = _tree(c, [c.table(tab, i, j) for i, j in enumerate(levels)])
            scores[a].append(c.mul(s, norm))
    return scores


def value_job(c: Counter, scores: list, rows: list, centroids: np.ndarray, signs: np.ndarray, row_bits: int,
              sum_partials: int = 1, bin_partials: int = 1) -> list:
    """Outputs [h][d]: softmax (scale, max, exp, running sums in P partials), weights, bins in
    P_b copies, the merges, centroid multiply, inverse FWHT and the output scaling."""
    d, n = len(signs), len(rows)
    sigma = 1.0 / math.sqrt(d)
    z = [[c.mul(s, sigma) for s in head] for head in scores]
    tops = []
    for zh in z:
        top = zh[0]
        for zt in zh[1:]:
            if c.gt(zt, top):
                top = zt
        tops.append(top)
    sums = [[0.0] * sum_partials for _ in z]
    bins = [[[[0.0] * len(centroids) for _ in range(d)] for _ in range(bin_partials)] for _ in z]
    for t, (levels, norm) in enumerate(rows):
        c.book("sram_read_bits", row_bits)
        for a, zh in enumerate(z):
            e = math.exp(c.sub(zh[t], tops[a]))
            c.book("exps")
            sums[a][t % sum_partials] = c.add(sums[a][t % sum_partials], e)
            w = c.mul(e, norm)
            part = bins[a][t % bin_partials]
            for i, j in enumerate(levels):
                part[i][j] = c.add(part[i][j], w)
    outputs = []
    for a in range(len(z)):
        total = sums[a][0]
        for p in range(1, sum_partials):
            total = c.add(total, sums[a][p])
        merged = [row[:] for row in bins[a][0]]
        for p in range(1, bin_partials):
            merged = [[c.add(x, y) for x, y in zip(mr, pr)] for mr, pr in zip(merged, bins[a][p])]
        o = []
        for i in range(d):
            acc = c.mul(merged[i][0], float(centroids[0]))
            for j in range(1, len(centroids)):
                acc = c.add(acc, c.mul(merged[i][j], float(centroids[j])))
            o.append(acc)
        u = _fwht(c, o)
        scaled = c.mul(total, float(d))
        c.book("divisions")
        g = 1.0 / scaled if scaled else math.inf
        outputs.append([c.mul(u[i] * float(signs[i]), g) for i in range(d)])
    return outputs


def count_layer(k: np.ndarray, v: Optional[np.ndarray], q: np.ndarray, q_positions, signs: np.ndarray,
                boundaries: np.ndarray, centroids: np.ndarray, row_bits: int, *, write: bool = True,
                shared: bool = False, sum_partials: int = 1, bin_partials: int = 1) -> dict:
    """Ops of one layer in SPEC.md's replay: every key and value written (counted when `write`),
    then each query at position p served causally over keys 0..p, per query head (or per GQA
    group with `shared`), with the value path when `v` is given. k, v [Hkv, T, d]; q [Hq, Nq, d]."""
    c = Counter()
    writer = c if write else Counter()  # preloaded: stored before cycle 0, uncounted
    n_kv, n_tok, _ = k.shape
    group = q.shape[0] // n_kv
    stored = {}
    for kind, data in (("k", k), ("v", v)):
        if data is None:
            continue
        for h in range(n_kv):
            stored[kind, h] = [write_vector(writer, data[h, t], signs, boundaries, row_bits) for t in range(n_tok)]
    for qi, pos in enumerate(np.asarray(q_positions, dtype=np.int64)):
        for h in range(n_kv):
            heads = [list(range(h * group, (h + 1) * group))] if shared else [[a] for a in range(h * group, (h + 1) * group)]
            for hs in heads:
                c.path = "read_path"
                scores = read_job(c, q[hs, qi], stored["k", h][:pos + 1], centroids, signs, row_bits)
                if v is not None:
                    c.path = "value_path"
                    value_job(c, scores, stored["v", h][:pos + 1], centroids, signs, row_bits, sum_partials,
                              bin_partials)
    return c.totals()
