"""The papermill course runner: order, parameters, stop at the first failure naming notebook and cell, summaries."""

from __future__ import annotations

import json
import re
from pathlib import Path

import nbformat
import pandas as pd
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from sf2f.config import load_config, load_resolved_config
from sf2f.course import collect_results, discover_notebooks, run_course

PARAMS = 'profile = "demo"\ndata_root = ""\ndevice = "auto"\noutput_dir = ""\nfigures_dir = ""'


def _notebook(path: Path, *sources: str) -> None:
    nb = new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    params = new_code_cell(PARAMS)
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, *(new_code_cell(s) for s in sources)]
    nbformat.write(nb, path)


def test_discover_orders_numbered_notebooks_only(tmp_path: Path) -> None:
    for name in ("01_b.ipynb", "00_a.ipynb", "scratch.ipynb", "10_c.ipynb"):
        _notebook(tmp_path / name)
    assert [p.name for p in discover_notebooks(tmp_path)] == ["00_a.ipynb", "01_b.ipynb", "10_c.ipynb"]


@pytest.mark.slow
def test_course_runs_in_order_and_stops_at_first_failure(tmp_path: Path) -> None:
    books = tmp_path / "notebooks"
    books.mkdir()
    _notebook(
        books / "00_first.ipynb",
        "import pathlib, json\nout = pathlib.Path(output_dir)\n(out / 'results').mkdir(parents=True)\n"
        "(out / 'results' / 'scores.csv').write_text('model,score\\nv2f,0.5\\n')\n"
        "(out / 'params.json').write_text(json.dumps([profile, device, data_root]))",
    )
    _notebook(books / "01_second.ipynb", "x = 1", "assert x == 2, 'the lesson claim failed'")
    _notebook(books / "02_third.ipynb", "open('should_not_run', 'w')")
    run = tmp_path / "run"

    summary = run_course(profile="quick", device="cpu", data_root=tmp_path, run_dir=run, notebook_dir=books,
                         progress=False)

    assert [(nb.name, nb.status) for nb in summary.notebooks] == [
        ("00_first", "ok"), ("01_second", "failed"), ("02_third", "not run")
    ]
    failure = summary.failure()
    # parameters [1], papermill's injected parameters [2], x = 1 [3], the assert [4]
    assert failure is not None and failure.failed_cell == 4
    assert failure.error == (
        "01_second.ipynb, cell [4] `assert x == 2, 'the lesson claim failed'`: AssertionError: the lesson claim failed"
    )
    assert json.loads((run / "00_first" / "params.json").read_text()) == ["quick", "cpu", str(tmp_path)]
    assert (run / "00_first.ipynb").exists() and (run / "01_second.ipynb").exists()
    assert not (books / "should_not_run").exists()
    assert re.search(r"\| v2f +\| +0\.500 \|", (run / "results.md").read_text())
    assert load_resolved_config(run / "configs" / "sf2f_fuser.yaml") == load_config("sf2f_fuser", profile="quick")
    saved = json.loads((run / "summary.json").read_text())
    assert saved["profile"] == "quick" and "FAILED" in (run / "summary.md").read_text()


def test_unknown_profile_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown profile 'fast'"):
        run_course(profile="fast", notebook_dir=tmp_path)


def test_empty_notebook_folder_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no numbered notebooks"):
        run_course(profile="quick", notebook_dir=tmp_path, run_dir=tmp_path / "run")


def test_collect_results_without_tables(tmp_path: Path) -> None:
    assert "No notebook of this run wrote a results table" in collect_results(tmp_path)


def test_collect_results_names_notebook_and_hides_the_unnamed_index(tmp_path: Path) -> None:
    results = tmp_path / "05_training" / "results"
    results.mkdir(parents=True)
    pd.DataFrame({"l1": [0.5, 0.4]}, index=["v2f", "sf2f"]).to_csv(results / "validation.csv")
    text = collect_results(tmp_path)
    assert "## validation (05_training)" in text
    assert "Unnamed" not in text and "| v2f" in text


def test_collected_tables_read_like_the_evaluation_table(tmp_path: Path) -> None:
    results = tmp_path / "06_evaluation" / "results"
    results.mkdir(parents=True)
    rows = {"model": ["v2f", "chance"], "identities": [30, None], "R@10": [0.4333333, 1 / 3],
            "rank p": [0.00009999, None], "VFS mean": [None, None]}
    pd.DataFrame(rows).to_csv(results / "06_evaluation.csv", index=False)
    text = collect_results(tmp_path)
    # missing values blank (not "nan"), a count read back as 30.0 shown as 30, three decimals, p-values kept readable,
    # a column with no value at all left out
    assert "nan" not in text and "VFS" not in text
    assert "|           30 |" in text and "30.0" not in text
    assert " 0.433 |" in text and " 0.333 |" in text and " 0.0001 |" in text
