"""Running `python -m ...` in a child process from a test: the environment it gets, and a failure that shows why."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

REPO = Path(__file__).parents[1]


def child_env() -> dict[str, str]:
    """This environment with one OpenMP thread and the repository first on PYTHONPATH, keeping what PYTHONPATH already
    held (an environment may put its packages there)."""
    path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": path}


def run_checked(command: list[str], timeout: float = 300) -> None:
    """Run `command`; if it fails, the test fails with the end of its stderr (check=True would hide it)."""
    proc = subprocess.run(command, env=child_env(), capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{' '.join(command[1:4])} ... exited {proc.returncode}:\n{proc.stderr[-3000:]}"
