"""Sweep Pareto plots: units of the terminal (nJ, mm², µs), no paper label, rejected points
counted, the reference ring does not hide its point, an energy-latency plot."""

from matplotlib.figure import Figure

from axelsim.report import plots


def _rows():
    rows = []
    for index, (bits, pipes) in enumerate([(2, 1), (2, 2), (3, 1), (3, 2), (4, 1)]):
        rows.append({"point_id": f"pt{index}abcdef0123", "status": "ok", "is_reference": index == 2, "set.bits": bits,
                     "set.read_path.pipelines": pipes, "energy_pj_per_query": 4.0e5 + 1e4 * index,
                     "area_um2_total": 1.8e8 + 1e6 * bits, "score_rel_rmse": 0.3 / bits, "time_s": 1e-4 / pipes})
    rows.append({"point_id": "bad", "status": "error", "is_reference": False})
    return rows


def test_pareto_plots_units_labels_and_counts(tmp_path, monkeypatch):
    drawn: dict = {}
    monkeypatch.setattr(plots, "_save", lambda figure, out_dir, stem: drawn.setdefault(stem, figure) and [stem])
    plots.plot_sweep(_rows(), tmp_path)
    assert {"pareto_energy_area", "pareto_energy_accuracy", "pareto_energy_latency"} <= set(drawn)
    axis = drawn["pareto_energy_area"].axes[0]
    assert axis.get_xlabel() == "energy per query (nJ)" and axis.get_ylabel() == "area (mm²)"
    assert "1 rejected" in axis.get_title() and "5 points" in axis.get_title()
    labels = [text.get_text() for text in axis.get_legend().get_texts()]
    assert not any("paper" in label for label in labels)
    assert any("reference point" in label for label in labels)
    # the reference marker is an unfilled ring over its point
    ring = [c for c in axis.collections if c.get_label().startswith("reference point")][0]
    assert ring.get_facecolors().size == 0 or ring.get_facecolors()[0][3] == 0
    assert {tuple(o) for o in ring.get_offsets()} == {(4.2e2, 180.0 + 3.0)}
    # bits encoded by marker: three bit-widths, three marker paths among the design points
    points = [c for c in axis.collections if c.get_label().startswith("bits = ")]
    assert len(points) == 3 and len({c.get_paths()[0].vertices.tobytes() for c in points}) == 3 and all(isinstance(drawn[s], Figure) for s in drawn)
    latency = drawn["pareto_energy_latency"].axes[0]
    assert latency.get_ylabel() == "latency of the run (µs)"
    assert sorted(t.get_text() for t in latency.texts) == sorted(f"pt{i}abc" for i in range(5))
