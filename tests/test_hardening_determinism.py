"""Plots are byte-identical between identical runs, without touching matplotlib's global state,
and titles stay inside their figure."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import matplotlib

from axelsim import io

_DRAW = """
import sys
from matplotlib.figure import Figure
from axelsim.report.plots import save_figure
figure = Figure()
axes = figure.add_subplot()
axes.plot([1, 2, 3], [1, 4, 9], marker="o")   # markers and clip paths carry the salted ids
axes.bar([1], [2])
save_figure(figure, sys.argv[1], "plot")
"""


def _draw(folder: Path) -> dict[str, bytes]:
    """One fresh process draws the same figure into `folder` (new interpreter: new ids)."""
    subprocess.run([sys.executable, "-c", _DRAW, str(folder)], check=True, timeout=120,
                   env={"PYTHONPATH": str(Path(__file__).resolve().parents[1]), "PYTHONHASHSEED": "random", "PATH": "/usr/bin:/bin"})
    return {name: (folder / name).read_bytes() for name in ("plot.svg", "plot.png")}


def test_svg_and_png_are_byte_identical_between_runs(tmp_path):
    first, second = _draw(tmp_path / "a"), _draw(tmp_path / "b")
    assert first["plot.svg"] == second["plot.svg"]
    assert first["plot.png"] == second["plot.png"]
    assert b"<dc:date>" not in first["plot.svg"]


def test_write_figure_leaves_the_global_rc_alone(tmp_path):
    from matplotlib.figure import Figure

    before = matplotlib.rcParams["svg.hashsalt"]
    figure = Figure()
    figure.add_subplot().plot([0, 1], [1, 0])
    io.write_figure(figure, tmp_path / "x.svg")
    assert matplotlib.rcParams["svg.hashsalt"] == before
    assert (tmp_path / "x.svg").read_bytes().startswith(b"<?xml")


def test_sensitivity_title_fits_its_figure():
    """One bit-width gives a 4.2-inch figure; the title of a long trace name is wrapped inside it."""
    from axelsim.calibrate.plots import sensitivity_figure

    layers = [0, 1]
    result = {"trace": "smollm2_austen_full_with_a_long_name", "bits": [3], "seeds": [1, 2],
              "norm_heterogeneity": 1.5, "key_norm_mean": {0: 1.0, 1: 2.0},
              "records": [{"bits": 3, "signs": signs, "seed": seed, "layer": layer,
                           "key_mse_ratio": 1.0 + layer, "score_rel_rmse": 0.1, "attn_kl": 0.01}
                          for signs, seed in (("random", 1), ("random", 2)) for layer in layers]}
    figure = sensitivity_figure(result)
    renderer = figure.canvas.get_renderer()
    box = figure._suptitle.get_window_extent(renderer)
    assert box.x0 >= 0 and box.x1 <= figure.bbox.width and box.y1 <= figure.bbox.height
