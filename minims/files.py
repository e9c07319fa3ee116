"""Writing files so that a crash never leaves half of one: `atomic_write`.

Checkpoints, cached token ids, logs and result tables all go through here. The bytes go to a
temporary file beside the target, are flushed and fsync'ed, and only then is the temporary
renamed over the target with `os.replace` (atomic on POSIX and Windows): a reader, or a run
killed at any moment, sees the old file or the new one, never a mix. The new file gets the
permissions `open()` would give it: the old file's mode when it replaces one, otherwise
0666 less the umask (`mkstemp` alone would make every file private, 0600).

`DirLock` keeps two runs out of one folder: a lock file holding the owner's PID (ours).
"""
import os
import socket
import stat
import tempfile
from pathlib import Path

from .errors import FileSystemError

try:                    # POSIX: an advisory lock that the kernel drops when its process dies
    import fcntl
except ImportError:     # Windows: the lock file alone (a stale one must be deleted by hand)
    fcntl = None


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
            _set_mode(f, path)
            write(f)
            f.flush()
            os.fsync(f.fileno())      # the bytes are on disk before the rename makes them live
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)   # the old file at `path` is untouched
        raise
    _fsync_dir(path.parent)
    return path


def _set_mode(f, path):
    """Give the temporary the mode `open(path, "w")` would leave: the replaced file's, or
    0666 & ~umask for a new one."""
    if not hasattr(os, "fchmod"):       # Windows: modes are not POSIX permissions
        return
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        mode = 0o666 & ~current_umask()
    os.fchmod(f.fileno(), mode)


def current_umask():
    """The process's umask (read by setting it and putting it back at once)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


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


LOCK_NAME = "lock"


class LockedError(FileSystemError):
    """Another live process holds the lock; the message names its PID and the lock file."""


class DirLock:
    """An exclusive lock on a folder: the file FOLDER/lock holding the owner's PID and host.

    `acquire()` takes it or raises LockedError; `release()` gives it back (and deletes the
    file). On POSIX the file is also held with `fcntl.flock`, which the kernel drops when the
    process dies however it dies (even SIGKILL): a lock file left by a dead run is stale and
    is taken over, while a live owner is always seen. Without fcntl (Windows) only the file's
    existence counts. Re-entrant within one process (a count), so code that builds a second
    trainer on the same folder in the same process is not locked out by itself. (ours)
    """
    _held = {}          # resolved folder -> [DirLock, count]: this process's locks

    def __init__(self, folder):
        self.folder = Path(folder)
        self.path = self.folder / LOCK_NAME
        self._fd = None

    def acquire(self):
        key = str(self.folder.resolve())
        if key in DirLock._held:
            DirLock._held[key][1] += 1
            self._key = key
            return self
        while True:
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | (0 if fcntl else os.O_EXCL), 0o666)
            except FileExistsError:     # no fcntl: the file alone is the lock
                raise LockedError(f"{self.path}: another run is using {self.folder}, or one that "
                                  "crashed left this file: delete it if no run is using the folder") from None
            if fcntl is None:
                break
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                owner = os.read(fd, 200).decode("utf-8", "replace").strip()
                os.close(fd)
                raise LockedError(f"{self.path}: another run is using {self.folder} (process "
                                  f"{owner or '?'}); wait for it to end or use another folder") from None
            except OSError:     # a file system without flock (some network mounts): the file alone
                break
            # the owner before us may have deleted the file after we opened it: lock the live one
            try:
                same = os.path.samestat(os.fstat(fd), os.stat(self.path))
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()} {socket.gethostname()}\n".encode())
        self._fd, self._key = fd, key
        DirLock._held[key] = [self, 1]
        return self

    def release(self):
        """Give the lock back (the last release of this process deletes the file)."""
        held = DirLock._held.get(getattr(self, "_key", None))
        if held is None:
            return
        held[1] -= 1
        if held[1] > 0:
            return
        del DirLock._held[self._key]
        owner = held[0]
        try:
            owner.path.unlink(missing_ok=True)      # while still locked: no one else has it yet
        except OSError:
            pass
        if owner._fd is not None:
            os.close(owner._fd)                     # closing drops the flock
            owner._fd = None
