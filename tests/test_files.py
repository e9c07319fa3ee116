"""minims.files.atomic_write: the old file survives a failed write, and no temporary stays."""
import pytest

from minims.files import atomic_write, write_text


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
