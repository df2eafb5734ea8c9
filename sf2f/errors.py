"""Bad input files: one error type that carries the file and the reason, for the preparation report."""

from __future__ import annotations

from pathlib import Path

__all__ = ["BadInputError", "require_nonempty_file"]


class BadInputError(ValueError):
    """A file that cannot be used, with the reason (it goes into the preparation report; it never stops a run)."""

    def __init__(self, path: str | Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason


def require_nonempty_file(path: Path, error: type[BadInputError]) -> None:
    """Raise `error` for a file that is missing, unreadable or empty."""
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise error(path, f"cannot be opened ({exc.strerror or exc})") from None
    if size == 0:
        raise error(path, "empty file (0 bytes)")
