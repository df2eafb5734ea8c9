"""The errors a user can act on, as opposed to bugs: all derive from :class:`SF2FError`, which the command line reports
in one line (anything else keeps its traceback), and from the built-in exception a caller would expect."""

from __future__ import annotations

from pathlib import Path


class SF2FError(Exception):
    """Base of every error about the user's input or request: the message names the thing and the problem."""


class UsageError(SF2FError, ValueError):
    """A request that cannot be carried out as asked (an unknown name, an impossible setting, a folder in use)."""


class UnavailableError(SF2FError, RuntimeError):
    """What was asked for is not there on this machine (a device) or in this state (a stage without a fuser)."""


class MissingPathError(SF2FError, FileNotFoundError):
    """A file or folder the user named (or a default location) that is not there."""


class BadInputError(SF2FError, ValueError):
    """A file that cannot be used, with the reason (it goes into the preparation report; it never stops a run)."""

    def __init__(self, path: str | Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path, self.reason = str(path), reason


def require_nonempty_file(path: Path, error: type[BadInputError]) -> None:
    """Raise `error` for a file that is missing, unreadable or empty."""
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise error(path, f"cannot be opened ({exc.strerror or exc})") from None
    if size == 0:
        raise error(path, "empty file (0 bytes)")
