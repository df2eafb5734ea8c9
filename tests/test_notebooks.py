"""Conventions every course notebook keeps (docs/notebook_conventions.md): clean storage, one parameters cell, a
lesson shape.

nbval executes the notebooks themselves (pytest collects notebooks/*.ipynb with --nbval-lax).
"""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

from sf2f.course import COURSE_MAP, discover_notebooks
from sf2f.paths import NOTEBOOK_DIR

NOTEBOOKS = discover_notebooks()
PARAMETER_NAMES = ("profile", "data_root", "device", "output_dir", "figures_dir", "seed")


def test_there_are_notebooks_and_every_ipynb_is_numbered() -> None:
    assert NOTEBOOKS, "no course notebooks found"
    assert sorted(NOTEBOOK_DIR.glob("*.ipynb")) == NOTEBOOKS, "every notebook in notebooks/ is named NN_name.ipynb"


def test_notebooks_follow_the_course_map_in_order() -> None:
    order = [stem for stem, _, _ in COURSE_MAP]
    stems = [p.stem for p in NOTEBOOKS]
    assert all(s in order for s in stems), set(stems) - set(order)
    assert stems == sorted(stems, key=order.index)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_stored_without_outputs_or_execution_counts(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(not c.outputs for c in code), "clear the outputs before committing"
    assert all(c.execution_count is None for c in code), "clear the execution counts before committing"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_exactly_one_parameters_cell_readable_from_the_environment(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, f"{len(tagged)} cells tagged 'parameters'"
    source = tagged[0].source
    for name in PARAMETER_NAMES:
        assert f"\n{name} = " in f"\n{source}", f"parameter '{name}' missing"
    # nbval cannot pass papermill parameters: the profile must come from the environment
    assert 'os.environ.get("SF2F_PROFILE"' in source


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_reads_as_a_lesson(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    first = nb.cells[0]
    assert first.cell_type == "markdown" and first.source.startswith(f"# {path.stem[:2]} ")
    assert "What you will learn" in first.source
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    assert f'setup_notebook("{path.stem}"' in code, "call sf2f.notebook.setup_notebook with this notebook's name"
    assert "assert " in code, "a notebook asserts what it demonstrates"
    text = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    assert "## Try this" in text and "## Summary" in text
