"""Helpers shared by the trainer tests: the flags of a tiny run, and reading what it wrote."""
import json
from pathlib import Path

from minims import checkpoint

REPO = Path(__file__).resolve().parent.parent


def small_text(folder):
    """About 30 000 characters of Austen (Persuasion's opening) as a bring-your-own file."""
    path = Path(folder) / "own.txt"
    raw = (REPO / "data" / "austen" / "persuasion.txt").read_text(encoding="utf-8")
    path.write_text(raw[:30_000], encoding="utf-8")
    return path


def tiny(tmp_path, text_file, *extra, out="out"):
    """Command-line flags of a tiny run on the small text (later flags override earlier ones)."""
    return ["--data", str(text_file), "--out-dir", str(tmp_path / out), "--cache-dir",
            str(tmp_path / "cache"), "--block-size", "16", "--batch-size", "4", "--n-layer", "1",
            "--n-head", "2", "--n-embd", "16", "--eval-interval", "5", "--eval-iters", "2",
            "--warmup-iters", "2", *extra]


def read_log(out_dir):
    return [json.loads(line) for line in (Path(out_dir) / "log.jsonl").read_text().splitlines()]


def weights(out_dir):
    return checkpoint.load(Path(out_dir) / "ckpt.npz")["model"]


def ctrl_c_on_call(real, n):
    """`real`, except that its n-th call raises KeyboardInterrupt instead (a user's Ctrl-C at
    that moment): for monkeypatching train_step, checkpoint.save and the like."""
    calls = []

    def wrapped(*args, **kwargs):
        calls.append(1)
        if len(calls) == n:
            raise KeyboardInterrupt
        return real(*args, **kwargs)
    return wrapped

