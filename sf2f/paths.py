"""Where the repository keeps things, what a relative path means (what a user types: from the working folder; paths in
configs and defaults: from the repository root), a lock for processes sharing a folder, and atomic writes."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REPO_ROOT: Path = Path(__file__).resolve().parents[1]
CONFIG_DIR: Path = REPO_ROOT / "configs"
PROFILE_DIR: Path = CONFIG_DIR / "profiles"
NOTEBOOK_DIR: Path = REPO_ROOT / "notebooks"
DATA_DIR: Path = REPO_ROOT / "data"
RUNS_DIR: Path = REPO_ROOT / "runs"


def user_path(path: str | Path) -> Path:
    """A path the user typed, made absolute as every command-line tool does (`~` expanded)."""
    return Path(path).expanduser().absolute()


def project_path(path: str | Path) -> Path:
    """A path from a config file or a project default (`data/synthetic`, `runs`), from the repository root."""
    path = Path(path).expanduser()
    return path if path.is_absolute() else REPO_ROOT / path


@contextmanager
def folder_lock(folder: Path, name: str, waiting: str = "") -> Iterator[None]:
    """Hold an exclusive lock (the file `folder/name`) while the block runs, so that processes working on one folder
    take turns: a second one waits (saying `waiting` on stderr), then finds the first one's work done. POSIX `flock`
    is released even when the holder is killed; without `fcntl` (Windows) the block runs unlocked."""
    folder.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:
        yield
        return
    with open(folder / name, "a") as handle:  # "a": never truncated, so a finished folder stays untouched
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if waiting:
                print(waiting, file=sys.stderr, flush=True)
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextmanager
def atomic_path(path: Path, durable: bool = False) -> Iterator[Path]:
    """A temporary path for `path`'s new content, renamed over `path` when the block ends: readers see the old file or
    the new one, never half of one (:func:`remove_partial_files` sweeps up what a killed process left). `durable`
    flushes to disk first, so that a power cut leaves the previous checkpoint, not an empty file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.part")
    try:
        yield tmp
        if durable:
            with open(tmp, "rb+") as handle:
                os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def remove_partial_files(folder: Path) -> None:
    """Delete the temporary files of :func:`atomic_path` that killed processes left under `folder` (a packed split can
    leave gigabytes); only while no other process writes there."""
    for stray in folder.rglob(".*.part"):
        stray.unlink(missing_ok=True)


def write_atomic(path: Path, content: bytes | str) -> None:
    """Write a whole file (`str` as UTF-8) through :func:`atomic_path`."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
