"""The project stands alone: what its files cite is in the repository (docs/) or in the paper, and no file points at a
path outside the repository, which a user who cloned it does not have."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

REPO = Path(__file__).parents[1]
RECIPE = REPO / "docs" / "original_recipe.md"
TEXT_SUFFIXES = {".py", ".md", ".ipynb", ".yaml", ".yml", ".toml", ".txt", ".cfg", ".sh", ""}


def _project_files() -> list[Path]:
    """The files git tracks or would track (untracked but not ignored), as a clone or a submission has them."""
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                            capture_output=True, text=True, check=True).stdout.splitlines()
    return [REPO / name for name in listed if Path(name).suffix in TEXT_SUFFIXES and (REPO / name).is_file()]


def test_every_cited_section_of_the_original_recipe_exists() -> None:
    """"recipe §N" (or "§N") in a docstring, notebook, config or README names a heading of docs/original_recipe.md."""
    headings = set(re.findall(r"^#{2,3} (\d+(?:\.\d+)?)\.? ", RECIPE.read_text(encoding="utf-8"), re.MULTILINE))
    assert {"1.4", "2.2", "3.2", "4.1", "6"} <= headings
    cited: dict[str, set[str]] = {}
    for path in _project_files():
        for number in re.findall(r"§\s?(\d+(?:\.\d+)?)", path.read_text(encoding="utf-8", errors="replace")):
            cited.setdefault(number, set()).add(path.relative_to(REPO).as_posix())
    assert len(cited) > 20, "the scan should see the project's citations"
    unknown = {number: sorted(files)[:3] for number, files in cited.items() if number not in headings}
    assert not unknown, f"cited sections that docs/original_recipe.md does not have: {unknown}"


def test_no_file_points_outside_the_repository() -> None:
    outside = re.compile(r"\.\./shared|/work/|shared/reference|sf2f-reference\.md|performance-anchors\.md|"
                         r"course-style\.md|environment\.md")
    offenders = []
    for path in _project_files():
        for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), start=1):
            if outside.search(line) and path != Path(__file__):
                offenders.append(f"{path.relative_to(REPO)}:{number}: {line.strip()[:100]}")
    assert not offenders, "\n".join(offenders)


def test_the_docs_pages_the_project_links_to_exist() -> None:
    linked = set()
    for path in _project_files():
        linked.update(re.findall(r"docs/([a-z_]+\.md)", path.read_text(encoding="utf-8", errors="replace")))
    assert "original_recipe.md" in linked
    assert not {name for name in linked if not (REPO / "docs" / name).is_file()}


def test_every_relative_link_of_the_markdown_pages_exists() -> None:
    """A figure or page the README (or a docs page) links to is in the repository."""
    missing = []
    for path in _project_files():
        if path.suffix != ".md":
            continue
        for target in re.findall(r"\]\(([^)\s]+)\)", path.read_text(encoding="utf-8")):
            if "://" in target or target.startswith(("#", "mailto:")):
                continue
            if not (path.parent / target.split("#")[0]).exists():
                missing.append(f"{path.relative_to(REPO)} -> {target}")
    assert not missing, "\n".join(missing)
