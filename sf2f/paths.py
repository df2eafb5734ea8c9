"""Where the repository keeps things. sf2f is installed editable, so the package sits inside the checkout."""

from __future__ import annotations

from pathlib import Path

REPO_ROOT: Path = Path(__file__).resolve().parents[1]
CONFIG_DIR: Path = REPO_ROOT / "configs"
PROFILE_DIR: Path = CONFIG_DIR / "profiles"
NOTEBOOK_DIR: Path = REPO_ROOT / "notebooks"
DATA_DIR: Path = REPO_ROOT / "data"
FIGURES_DIR: Path = REPO_ROOT / "figures"
RUNS_DIR: Path = REPO_ROOT / "runs"


def resolve(path: str | Path, base: Path = REPO_ROOT) -> Path:
    """An absolute path; relative ones are taken from `base` (the repository root by default)."""
    path = Path(path).expanduser()
    return path if path.is_absolute() else (base / path).resolve()
