"""The errors a user can act on, as opposed to bugs.

Every error sf2f raises about what a user asked for or gave it (a config key, a path, a dataset, a checkpoint, an
audio file, a device) derives from :class:`SF2FError`. The command line reports those in one line, since the message
already says what is wrong and what to do; anything else (a shape mismatch deep in a network, an out-of-memory, a
bug) keeps its traceback (`python -m sf2f --debug ...` shows the traceback of an :class:`SF2FError` too).

The concrete classes also derive from the built-in exception a caller would expect (ValueError for a bad value,
FileNotFoundError for a missing path, RuntimeError for a state that does not allow the request), so code that catches
those keeps working.
"""

from __future__ import annotations

from pathlib import Path

__all__ = [
    "BadInputError", "MissingPathError", "SF2FError", "UnavailableError", "UsageError", "require_nonempty_file",
]


class SF2FError(Exception):
    """Base of every error about the user's input or request: the message names the thing and the problem."""


class UsageError(SF2FError, ValueError):
    """A request that cannot be carried out as asked (an unknown name, an impossible setting, a folder in use)."""


class UnavailableError(SF2FError, RuntimeError):
    """What was asked for is not there on this machine (a device) or in this state (a stage without a fuser)."""


class MissingPathError(SF2FError, FileNotFoundError):
    """A file or folder the user named (or a default location) that is not there; the message says what belongs
    there."""


class BadInputError(SF2FError, ValueError):
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
