"""Writing files so that a crash never leaves half of one: `atomic_write`.

Checkpoints, cached token ids, logs and result tables all go through here. The bytes go to a
temporary file beside the target, are flushed and fsync'ed, and only then is the temporary
renamed over the target with `os.replace` (atomic on POSIX and Windows): a reader, or a run
killed at any moment, sees the old file or the new one, never a mix.
"""
import os
import tempfile
from pathlib import Path


def atomic_write(path, write, tmp=None):
    """Replace `path` atomically with what `write(f)` writes to a binary file object `f`.

    `tmp` names the temporary file; by default it is a fresh unique name beside `path`, so
    two processes writing the same target never mix their bytes. A caller that wants a stale
    temporary from a killed run to be overwritten passes a fixed name.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if tmp is None:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        f = os.fdopen(fd, "wb")
    else:
        f = open(tmp, "wb")
    try:
        with f:
            write(f)
            f.flush()
            os.fsync(f.fileno())      # the bytes are on disk before the rename makes them live
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)   # the old file at `path` is untouched
        raise
    _fsync_dir(path.parent)
    return path


def write_text(path, text):
    """`atomic_write` of a UTF-8 string."""
    return atomic_write(path, lambda f: f.write(text.encode("utf-8")))


def _fsync_dir(folder):
    """Make the rename itself durable (POSIX); not possible (nor needed) on Windows."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
