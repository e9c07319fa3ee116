"""The errors minims reports to a user: one line each, naming the flag or the file and the fix.

Two kinds of failure, told apart by type (ours):

- a problem with what the user asked for or with the machine it runs on: a bad flag, an
  unusable data file, a damaged checkpoint, a missing GPU, a full disk, a read-only folder, a
  model too big for memory. These raise a `MinimsError` subclass below, whose message is one
  line naming the flag or the file and saying what to do. Every command-line tool (train,
  sample, experiment, bench) runs its body through `minims.cli.run_cli`, which prints that line
  (`report(e)`) on stderr and returns the error's exit code (2, unless the class says otherwise).
- anything else is a bug in minims (a shape mismatch, a typo): it is not caught, so Python
  prints the full traceback with file and line numbers.

Ctrl-C anywhere exits 130 with one line (the shell convention 128 + SIGINT). The error types
also subclass the built-in type that code catching them would expect (`DataError` is a
`ValueError`, `FileSystemError` an `OSError`, `OutOfMemory` a `MemoryError`), so `except
ValueError` around library calls keeps working.
"""
import errno
import re

from .backend import BackendUnavailable

__all__ = ["MinimsError", "UsageError", "DataError", "CheckpointError", "BackendUnavailable",
           "FileSystemError", "OutOfMemory", "USER_ERRORS", "file_error", "report"]


class MinimsError(Exception):
    """Base of the errors that are the user's to fix; `str(e)` is one line."""
    exit_code = 2
    label = "error"


class UsageError(MinimsError, ValueError):
    """A flag or option with a bad value, or two that contradict each other."""


class DataError(MinimsError, ValueError):
    """A corpus that cannot be used; the message names the file and the problem."""


class CheckpointError(MinimsError, ValueError):
    """A checkpoint that cannot be used; the message names the file."""


class FileSystemError(MinimsError, OSError):
    """A file or folder that cannot be read or written (permissions, read-only, disk full)."""

    def __str__(self):          # OSError would print "[Errno n] ..." for two arguments
        return self.args[0] if self.args else ""


class OutOfMemory(MinimsError, MemoryError):
    """The run needs more memory than the machine (or GPU) has; the message gives the estimate."""


# The backend's own error (defined in backend.py, the one module that touches CuPy) is a
# user-facing error too.
USER_ERRORS = (MinimsError, BackendUnavailable)

_REASONS = {
    errno.ENOSPC: "the disk is full",
    errno.EDQUOT: "the disk quota is exceeded",
    errno.EROFS: "the file system is read-only",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
    errno.ENOTDIR: "a part of the path is a file, not a folder",
    errno.EISDIR: "it is a folder",
    errno.EEXIST: "it already exists",
    errno.ENOENT: "no such file or folder",
}


def file_error(e, doing, advice="", where=None):
    """An OSError `e` met while `doing` (e.g. "writing the checkpoint") -> a FileSystemError
    whose one line names the file (`where`, else the error's), the cause in plain words and
    `advice`."""
    where = where or getattr(e, "filename", None)
    reason = _REASONS.get(e.errno) or " ".join(str(e.strerror or e).split())
    text = f"{where}: " if where else ""
    text += f"{doing} failed: {reason}"
    if advice:
        text += f"; {advice}"
    error = FileSystemError(text)
    error.errno = e.errno
    return error


def report(e):
    """The one line printed for a user-facing error `e`: its line breaks (with the space around
    them) become one space; runs of spaces inside it stay, as in a quoted prompt ('   ')."""
    label = getattr(e, "label", "error")
    return f"{label}: " + _LINE_BREAKS.sub(" ", str(e)).strip()


_LINE_BREAKS = re.compile(r"[ \t]*[\r\n]+[ \t]*")
