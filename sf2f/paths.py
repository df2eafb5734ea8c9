"""Where the repository keeps things (sf2f is installed editable, so the package sits inside the checkout), what a
relative path means, a lock for processes that work on the same folder (prepare, train), and writing a file so that
a killed process never leaves half of it.

Two kinds of relative path, two rules: what a user types (`--wav me.wav`, `--out faces/me`, a notebook's
`data_root`) is taken from the current working folder, as with any command-line tool (:func:`user_path`); paths
inside config files (`data.root: data/synthetic`, `run.output_root: runs`) and the project's own defaults are taken
from the repository root (:func:`project_path`). Library functions take a path as Python does, from the working folder.
"""

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
FIGURES_DIR: Path = REPO_ROOT / "figures"
RUNS_DIR: Path = REPO_ROOT / "runs"


def user_path(path: str | Path) -> Path:
    """A path the user typed (a command-line option, a notebook parameter), made absolute the way every command-line
    tool does: `~` expanded, relative paths taken from the current working folder."""
    return Path(path).expanduser().absolute()


def project_path(path: str | Path) -> Path:
    """A path from a config file or one of the project's defaults (`data/synthetic`, `runs`, ...), made absolute:
    relative paths are taken from the repository root, where the shipped configs and data live, so that a config
    means the same folders whichever folder a command is started from. Absolute paths are kept."""
    path = Path(path).expanduser()
    return path if path.is_absolute() else REPO_ROOT / path


@contextmanager
def folder_lock(folder: Path, name: str, waiting: str = "") -> Iterator[None]:
    """Hold an exclusive lock (the file `folder/name`) while the block runs, so that processes working on the same
    folder take turns: a second one waits, then finds the first one's work done. `waiting` goes to stderr (where
    progress bars go) when it has to wait. POSIX `flock`: released by the system even when the holder is killed.
    Where there is no `fcntl` (Windows), the block runs unlocked: one process at a time is then the user's care.
    """
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
    """A temporary path to write `path`'s new content to; when the block ends, it is renamed over `path` (a rename
    within a folder is atomic), so readers see the old file or the new one, never half of one, even when the writer
    is killed. On an error the temporary file is removed. The name is hidden and ends in `.part`, which the synthetic
    data's writer sweeps up after a killed run. `durable` also flushes the data to disk before the rename (for
    checkpoints: a power cut then leaves the previous one, not an empty file).
    """
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


def write_atomic(path: Path, content: bytes | str) -> None:
    """Write a whole file (`str` as UTF-8) through :func:`atomic_path`."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
