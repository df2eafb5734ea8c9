"""The package installs on its own: `pip install -e .` brings every module sf2f imports (docs/install.md)."""

from __future__ import annotations

import ast
import re
import sys
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10
    tomllib = pytest.importorskip("tomli")

REPO = Path(__file__).parents[1]
# installed with --no-deps because of its stale pins, so never a dependency; sf2f/faces.py imports it on demand
NO_DEPS = {"facenet_pytorch": "sf2f/faces.py"}


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _declared() -> set[str]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    return {_canonical(re.split(r"[<>=!~;\[ ]", spec, maxsplit=1)[0]) for spec in project["dependencies"]}


def _third_party_imports() -> dict[str, set[str]]:
    """Top-level module -> the files under sf2f/ that import it (at any depth), standard library and sf2f left out."""
    found: dict[str, set[str]] = {}
    for path in sorted((REPO / "sf2f").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and top != "sf2f":
                    found.setdefault(top, set()).add(path.relative_to(REPO).as_posix())
    return found


def test_every_imported_package_is_a_declared_dependency() -> None:
    declared, providers = _declared(), packages_distributions()
    imports = _third_party_imports()
    assert {"torch", "numpy", "webrtcvad", "soundfile", "yaml"} <= set(imports)  # the scan sees imports
    missing = {}
    for module, files in imports.items():
        if module in NO_DEPS:
            continue
        dists = {_canonical(d) for d in providers.get(module, [])}
        assert dists, f"{module} (imported by {sorted(files)}) is not installed in this environment"
        if not dists & declared:
            missing[module] = (sorted(dists), sorted(files))
    assert not missing, f"imported but not in pyproject.toml's dependencies: {missing}"


def test_the_no_deps_package_is_imported_in_one_place_only() -> None:
    # anywhere else, a missing facenet-pytorch would be a bare ModuleNotFoundError instead of the install command
    for module, allowed in NO_DEPS.items():
        assert _third_party_imports().get(module, set()) <= {allowed}


def test_the_torch_trio_is_pinned_alike_in_both_files() -> None:
    # a torchaudio or torchvision of another release than torch fails at import (docs/install.md)
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]["dependencies"]
    requirements = (REPO / "requirements.txt").read_text(encoding="utf-8").splitlines()
    for name in ("torch", "torchvision", "torchaudio"):
        pins = [spec.replace(" ", "") for spec in [*project, *requirements] if re.match(rf"{name}\s*==", spec)]
        assert len(pins) == 2 and pins[0] == pins[1], f"{name}: {pins}"


def test_requirements_pin_what_the_package_declares() -> None:
    pinned = {_canonical(re.split(r"[<>=!~;\[ ]", line, maxsplit=1)[0])
              for line in (REPO / "requirements.txt").read_text(encoding="utf-8").splitlines()
              if line.strip() and not line.startswith("#")}
    assert _declared() <= pinned, f"declared but not in requirements.txt: {sorted(_declared() - pinned)}"
