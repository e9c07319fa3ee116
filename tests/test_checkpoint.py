"""minims/checkpoint.py: a checkpoint is written atomically and a damaged one is a clear error."""
import os

import pytest

from minims import checkpoint
from minims import sample as sample_cli
from minims import train as train_cli
from minims.checkpoint import CheckpointError

from tiny_runs import small_text, tiny  # noqa: E402


@pytest.fixture(scope="module")
def text_file(tmp_path_factory):
    return small_text(tmp_path_factory.mktemp("text"))

def test_checkpoint_write_is_atomic(tmp_path, text_file, monkeypatch):
    assert train_cli.main(tiny(tmp_path, text_file, "--max-iters", "5")) == 0
    ckpt = tmp_path / "out" / "ckpt.npz"
    before = ckpt.read_bytes()
    args = train_cli.parse_args(tiny(tmp_path, text_file, "--resume", "--max-iters", "10"))
    trainer = train_cli.setup(args, verbose=False)

    def killed(src, dst):                  # the process dies between the write and the rename
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", killed)
    with pytest.raises(train_cli.TrainingInterrupted):     # five steps, then the write of iter 10
        trainer.run()
    monkeypatch.undo()
    assert ckpt.read_bytes() == before and checkpoint.load(ckpt)["header"]["iter"] == 5
    # a real kill leaves the half-written temporary file behind: it is ignored and replaced
    (tmp_path / "out" / "ckpt.npz.tmp").write_bytes(b"half a zip")
    assert train_cli.main(tiny(tmp_path, text_file, "--resume", "--max-iters", "10")) == 0
    assert checkpoint.load(ckpt)["header"]["iter"] == 10
    assert not (tmp_path / "out" / "ckpt.npz.tmp").exists()


@pytest.mark.parametrize("damage", ["truncate", "garbage", "flip", "empty"])
def test_corrupt_checkpoint_is_a_clear_error(tmp_path, text_file, capsys, damage):
    assert train_cli.main(tiny(tmp_path, text_file, "--max-iters", "5")) == 0
    ckpt = tmp_path / "out" / "ckpt.npz"
    raw = ckpt.read_bytes()
    damaged = {"truncate": raw[:len(raw) // 2], "garbage": b"not a checkpoint" * 100, "empty": b"",
               "flip": raw[:len(raw) // 2] + bytes([raw[len(raw) // 2] ^ 0xFF]) + raw[len(raw) // 2 + 1:]}[damage]
    ckpt.write_bytes(damaged)
    with pytest.raises(CheckpointError, match="ckpt.npz"):
        checkpoint.load(ckpt)
    capsys.readouterr()
    assert train_cli.main(tiny(tmp_path, text_file, "--resume", "--max-iters", "10")) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {ckpt}: ") and err.count("\n") == 1
    assert ckpt.read_bytes() == damaged                         # nothing overwritten
    assert sample_cli.main(["--out-dir", str(tmp_path / "out")]) == 2


def test_a_text_file_as_checkpoint_never_suggests_loading_pickles(tmp_path):
    """numpy.load reads a text file as a pickle and advises allow_pickle=True: unsafe advice
    for a file of unknown origin, so the message must not pass it on."""
    path = tmp_path / "README.md"
    path.write_text("# not a checkpoint\nsome text\n")
    with pytest.raises(CheckpointError) as e:
        checkpoint.load(path)
    assert "allow_pickle" not in str(e.value) and "not a minims checkpoint" in str(e.value)
