"""minims.files: atomic_write (the old file survives a failed write, no temporary stays, the
umask is honoured) and DirLock (one run per folder)."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from minims.files import DirLock, LockedError, atomic_write, write_text


def test_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "results.json"
    write_text(target, "old")

    def dies_half_way(f):
        f.write(b"ne")
        raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        atomic_write(target, dies_half_way)
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]
    write_text(target, "new")
    assert target.read_text() == "new"


def test_fixed_temporary_name_overwrites_a_stale_one(tmp_path):
    target, tmp = tmp_path / "ckpt.npz", tmp_path / "ckpt.npz.tmp"
    tmp.write_bytes(b"left by a killed run")
    atomic_write(target, lambda f: f.write(b"complete"), tmp=tmp)
    assert target.read_bytes() == b"complete" and not tmp.exists()


def test_new_files_honour_the_umask_and_replaced_ones_keep_their_mode(tmp_path):
    """As open() does: 0666 less the umask for a new file (mkstemp alone gives 0600), the old
    mode for a file that is replaced."""
    old = os.umask(0o022)
    try:
        write_text(tmp_path / "new.txt", "x")
        atomic_write(tmp_path / "fixed.bin", lambda f: f.write(b"x"), tmp=tmp_path / "fixed.bin.tmp")
        assert (tmp_path / "new.txt").stat().st_mode & 0o777 == 0o644
        assert (tmp_path / "fixed.bin").stat().st_mode & 0o777 == 0o644
        os.umask(0o077)
        write_text(tmp_path / "private.txt", "x")
        assert (tmp_path / "private.txt").stat().st_mode & 0o777 == 0o600
        (tmp_path / "new.txt").chmod(0o664)
        write_text(tmp_path / "new.txt", "y")
        assert (tmp_path / "new.txt").stat().st_mode & 0o777 == 0o664
        assert (tmp_path / "new.txt").read_text() == "y"
    finally:
        os.umask(old)


def test_dir_lock_is_exclusive_reentrant_and_released(tmp_path):
    a, b = DirLock(tmp_path), DirLock(tmp_path)
    a.acquire()
    b.acquire()                       # the same process again: counted, not refused
    assert (tmp_path / "lock").read_text().split()[0] == str(os.getpid())
    b.release()
    assert (tmp_path / "lock").exists()
    a.release()
    assert not (tmp_path / "lock").exists()
    a.release()                       # a second release is harmless
    # another process holding it: refused with its PID
    code = ("import sys; from minims.files import DirLock; DirLock(sys.argv[1]).acquire(); "
            "print('locked', flush=True); sys.stdin.read()")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    holder = subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(LockedError, match=f"process {holder.pid} "):
            DirLock(tmp_path).acquire()
    finally:
        holder.stdin.close()          # it ends without releasing: its lock file stays, stale
        holder.wait(timeout=30)
    assert (tmp_path / "lock").read_text().split()[0] == str(holder.pid)
    c = DirLock(tmp_path).acquire()   # taken over
    assert (tmp_path / "lock").read_text().split()[0] == str(os.getpid())
    c.release()
    assert not (tmp_path / "lock").exists()
