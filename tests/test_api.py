"""The Python API as a notebook uses it: docs/api.md's code blocks run as written (from the
repository root), top-level names, in-memory configs, Figures, tidy tables."""

import os
import re
from pathlib import Path

import pytest
from matplotlib.figure import Figure

ROOT = Path(__file__).resolve().parents[1]


def _blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", (ROOT / "docs" / "api.md").read_text(), flags=re.S)


def test_docs_api_example_runs(tmp_path, capsys):
    blocks = _blocks()
    assert blocks
    old = os.getcwd()
    os.chdir(ROOT)
    try:
        namespace: dict = {}
        for block in blocks:
            exec(compile(block, "docs/api.md", "exec"), namespace)
    finally:
        os.chdir(old)
    assert "['cycles', 'energy_area', 'timeline']" in capsys.readouterr().out
    assert namespace["report"]["macro"]["head_dim"] == 64
    assert all(isinstance(figure, Figure) for figure in namespace["figs"].values())


def test_top_level_names_and_the_api_module():
    import axelsim

    assert axelsim.api.simulate is axelsim.simulate and callable(axelsim.load_macro)
    from axelsim import sweep  # the module, not api.sweep

    assert callable(sweep.plan_sweep)
    with pytest.raises(AttributeError):
        axelsim.no_such_name  # noqa: B018


def test_in_memory_config_equals_the_file(tmp_path):
    import yaml

    import axelsim
    from axelsim.config import MacroConfig

    data = {"head_dim": 64, "bits": 2, "sram": {"banks": 4, "rows_per_bank": 1024}}
    (tmp_path / "m.yaml").write_text(yaml.safe_dump(data))
    trace = "traces/smollm2_austen_full.safetensors"
    kw = dict(layers=[0], kv_heads=[0], queries=1, baselines=False)
    from_file = axelsim.simulate(tmp_path / "m.yaml", ROOT / trace, **kw)
    from_dict = axelsim.simulate(data, ROOT / trace, **kw)
    from_model = axelsim.simulate(MacroConfig(**data), ROOT / trace, **kw)
    for key in ("cycles", "energy_pj", "numerics", "ops"):
        assert from_file[key] == from_dict[key] == from_model[key]


def test_tables_csv_dataframe_and_saved_figures(tmp_path):
    import csv

    import axelsim

    report = axelsim.simulate({"head_dim": "auto", "sram": {"banks": 4, "rows_per_bank": 1024}},
                              ROOT / "traces" / "smollm2_austen_full.safetensors",
                              layers=[0, 2], kv_heads=[0], queries=1, baselines=False)
    rows = axelsim.layer_table(report)
    path = axelsim.write_csv(rows, tmp_path / "layers.csv")
    read = list(csv.DictReader(path.open()))
    assert [int(r["layer"]) for r in read] == [0, 2]
    assert sum(int(r["multiplications_total"]) for r in read) == report["ops"]["multiplications"]["total"]
    frame = axelsim.to_dataframe(axelsim.table(report))
    assert list(frame["design"]) == [report["macro"]["name"]]
    axelsim.figures(report, tmp_path / "plots")
    assert (tmp_path / "plots" / "timeline.png").stat().st_size > 0


def test_run_layer_csv_option(tmp_path):
    import csv

    from cli_helpers import run_main

    out = tmp_path / "layers.csv"
    status, stdout, err = run_main(["run", ROOT / "macros" / "axelram_d64.yaml", "--trace",
                                    ROOT / "traces" / "smollm2_austen_full.safetensors", "--layers", "0,1",
                                    "--queries", "1", "--quiet", "--layer-csv", out])
    assert status == 0, err
    rows = list(csv.DictReader(out.open()))
    assert [r["layer"] for r in rows] == ["0", "1"] and "cycles_value" in rows[0]
