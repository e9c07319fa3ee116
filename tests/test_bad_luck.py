"""The trainer, sampler, experiment and bench under bad luck: every failure a user can cause or
meet (bad flags, read-only folders, a full disk, an unreadable file, too little memory, Ctrl-C,
a second run in the same folder, a damaged log) ends in one line and a documented exit code,
with nothing overwritten; a bug in minims keeps its traceback; `--resume` stays exact.

Read-only folders: tests may run as root, for whom permission bits do not stop writes, so the
commands that need one run in a subprocess without capabilities (`setpriv --bounding-set=-all`);
as another user, plain chmod does it.
"""
import errno
import json
import os
import shutil
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

import minims
from minims import bench, checkpoint, data, experiment, functional
from minims import sample as sample_cli
from minims import train as train_cli
from minims.train import loop as train_loop
from minims.train import pipeline as train_setup
from minims.cli import run_cli
from minims.errors import CheckpointError, DataError, MinimsError, UsageError

from tiny_runs import REPO, ctrl_c_on_call, read_log, small_text, tiny, weights  # noqa: E402


@pytest.fixture(scope="module")
def text_file(tmp_path_factory):
    return small_text(tmp_path_factory.mktemp("text"))


def same_run(a, b):
    """Two run folders hold the same weights and the same log (timings aside)."""
    timing = ("tokens_per_s", "peak_mem_bytes", "elapsed_s")
    strip = [[{k: v for k, v in r.items() if k not in timing} for r in read_log(d)] for d in (a, b)]
    wa, wb = weights(a), weights(b)
    return strip[0] == strip[1] and wa.keys() == wb.keys() and all(np.array_equal(wa[k], wb[k]) for k in wa)


def one_line(err, code, expected):
    """The CLI said exactly one line, an error or interrupt line, and returned `expected`."""
    return code == expected and err.count("\n") == 1 and "Traceback" not in err


def unprivileged():
    """The command prefix that makes permission bits bind (see the module docstring)."""
    if os.name != "posix":
        pytest.skip("permission bits are POSIX")
    if os.geteuid() != 0:
        return []
    prefix = ["setpriv", "--bounding-set=-all"]
    if shutil.which("setpriv") is None or subprocess.run(prefix + ["true"]).returncode != 0:
        pytest.skip("running as root without setpriv: cannot make a folder read-only for this test")
    return prefix


def cli(prefix, module, *argv, cwd=None):
    env = {**os.environ, "PYTHONPATH": str(REPO), "OPENBLAS_NUM_THREADS": "1"}
    env.pop("MINIMS_BACKEND", None)
    return subprocess.run(prefix + [sys.executable, "-m", module, *argv], capture_output=True,
                          text=True, env=env, cwd=cwd, timeout=120)


def tree(folder):
    """{relative path: bytes} of every file under folder."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(Path(folder).rglob("*")) if p.is_file()}


# ================================================================ 1. one line for the user's
# problems, a traceback for the code's

def test_run_cli_maps_user_errors_and_lets_bugs_through(capsys):
    def failing(exc):
        def body(argv):
            raise exc
        return body
    assert run_cli(failing(UsageError("--x must be >= 0, got -1"))) == 2
    assert capsys.readouterr().err == "error: --x must be >= 0, got -1\n"
    assert run_cli(failing(KeyboardInterrupt())) == 130
    assert capsys.readouterr().err == "interrupted (Ctrl-C)\n"
    assert run_cli(failing(MemoryError())) == 2
    assert capsys.readouterr().err.startswith("error: out of memory")
    assert run_cli(failing(SystemExit(0))) == 0
    assert run_cli(lambda argv: 7) == 7
    for bug in (ValueError("operands could not be broadcast together"), OSError(5, "I/O error"),
                KeyError("wte.weight")):
        with pytest.raises(type(bug)):
            run_cli(failing(bug))
    # the user-facing types are also the built-in types library callers catch
    assert issubclass(DataError, ValueError) and issubclass(CheckpointError, ValueError)
    assert issubclass(train_cli.NonFiniteLoss, MinimsError) and train_cli.NonFiniteLoss.exit_code == 3


def test_a_bug_in_a_model_keeps_its_traceback(tmp_path, text_file, monkeypatch):
    """A ValueError from inside the code (here a shape mismatch) is not a one-line user error."""
    from minims.models.vanilla import VanillaLM

    def broken(self, idx):
        raise ValueError("shapes (4,16) and (32,16) not aligned")
    monkeypatch.setattr(VanillaLM, "logits", broken)
    with pytest.raises(ValueError, match="not aligned"):
        train_cli.main(tiny(tmp_path, text_file, "--max-iters", "2"))


def test_out_dir_that_is_a_file(tmp_path, text_file, capsys):
    f = tmp_path / "out"
    f.write_text("my notes")
    code = train_cli.main(tiny(tmp_path, text_file, "--max-iters", "2"))
    err = capsys.readouterr().err
    assert one_line(err, code, 2) and f"--out-dir {f} is a file, not a folder" in err
    assert f.read_text() == "my notes"


def test_out_dir_and_cache_dir_in_a_read_only_folder(tmp_path, text_file):
    prefix = unprivileged()
    ro = tmp_path / "ro"
    ro.mkdir()
    common = ["--data", str(text_file), "--block-size", "16", "--batch-size", "4", "--n-layer", "1",
              "--n-head", "2", "--n-embd", "16", "--eval-iters", "1", "--max-iters", "2"]
    # a run folder made earlier, then the folder became read-only: a resume says so and keeps it
    assert cli(prefix, "minims.train", *common, "--out-dir", str(ro / "run"),
               "--cache-dir", str(tmp_path / "cache")).returncode == 0
    before = tree(ro)
    (ro / "run").chmod(0o555)
    ro.chmod(0o555)
    try:
        r = cli(prefix, "minims.train", *common, "--out-dir", str(ro / "new"),
                "--cache-dir", str(tmp_path / "cache"))
        assert one_line(r.stderr, r.returncode, 2), r.stderr
        assert "creating --out-dir" in r.stderr and "permission denied" in r.stderr and str(ro / "new") in r.stderr
        r = cli(prefix, "minims.train", *common, "--out-dir", str(ro / "run"), "--resume", "--max-iters", "4",
                "--cache-dir", str(tmp_path / "cache"))
        assert one_line(r.stderr, r.returncode, 2), r.stderr
        assert "permission denied" in r.stderr and "--out-dir" in r.stderr
        r = cli(prefix, "minims.train", *common, "--out-dir", str(tmp_path / "out"), "--cache-dir", str(ro / "cache"))
        assert one_line(r.stderr, r.returncode, 2), r.stderr
        assert "tokenized-data cache failed: permission denied" in r.stderr and "--cache-dir" in r.stderr
        assert not (tmp_path / "out").exists()          # the run made it, wrote nothing, removed it
    finally:
        ro.chmod(0o755)
        (ro / "run").chmod(0o755)
    assert tree(ro) == before


def enospc(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_disk_full_during_a_checkpoint_write(tmp_path, text_file, capsys, monkeypatch):
    """The third checkpoint (iter 10) hits a full disk: one line that says the iter-5 checkpoint
    is intact; it is, no temporary file stays, and a resume ends like a straight run."""
    assert train_cli.main(tiny(tmp_path, text_file, "--max-iters", "15", out="straight")) == 0
    real_savez, calls = np.savez, []

    def savez(f, **arrays):
        calls.append(1)
        if len(calls) == 3:
            f.write(b"PK\x03\x04 half an archive")
            enospc()
        return real_savez(f, **arrays)

    monkeypatch.setattr(checkpoint.numpy, "savez", savez)
    capsys.readouterr()
    code = train_cli.main(tiny(tmp_path, text_file, "--max-iters", "15"))
    err = capsys.readouterr().err
    assert one_line(err, code, 2), err
    assert "writing the checkpoint of iter 10 failed: the disk is full" in err
    assert "the previous checkpoint is intact at iter 5" in err and "--resume" in err
    assert checkpoint.load(tmp_path / "out" / "ckpt.npz")["header"]["iter"] == 5
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["ckpt.npz", "config.json", "log.jsonl"]
    monkeypatch.undo()
    assert train_cli.main(tiny(tmp_path, text_file, "--resume")) == 0
    assert same_run(tmp_path / "straight", tmp_path / "out")


def test_disk_full_during_a_log_write(tmp_path, text_file, capsys, monkeypatch):
    real_open, calls = open, []

    def full_open(path, mode="r", *a, **k):
        if str(path).endswith("log.jsonl") and mode == "a":
            calls.append(1)
            if len(calls) == 2:
                enospc()
        return real_open(path, mode, *a, **k)

    monkeypatch.setattr("builtins.open", full_open)
    code = train_cli.main(tiny(tmp_path, text_file, "--max-iters", "10"))
    err = capsys.readouterr().err
    assert one_line(err, code, 2) and "log record of iter 5 failed: the disk is full" in err
    assert "holds iter 0" in err


def test_disk_full_during_a_cache_write(tmp_path, text_file, capsys, monkeypatch):
    monkeypatch.setattr(data.np, "save", enospc)
    code = train_cli.main(tiny(tmp_path, text_file, "--max-iters", "2"))
    err = capsys.readouterr().err
    assert one_line(err, code, 2) and "cache failed: the disk is full" in err and "--cache-dir" in err
    assert not list((tmp_path / "cache").rglob("*.npy")) and not (tmp_path / "out").exists()


def test_full_disk_for_real(tmp_path, text_file, capsys):
    """On a 300 KiB tmpfs (where this machine lets us mount one): the first checkpoints fit,
    a later one does not; the one line says which checkpoint survived, and it loads."""
    disk = tmp_path / "disk"
    disk.mkdir()
    if os.name != "posix" or os.geteuid() != 0 or subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=300k", "tmpfs", str(disk)], capture_output=True).returncode:
        pytest.skip("cannot mount a small tmpfs here (needs root); the monkeypatched tests cover the logic")
    try:
        argv = tiny(tmp_path, text_file, "--max-iters", "40", "--eval-interval", "1", "--n-embd", "32",
                    out="disk/out")
        code = train_cli.main(argv)
        err = capsys.readouterr().err
        assert one_line(err, code, 2), err
        assert "the disk is full" in err
        kept = int(err.split("intact at iter ")[1].split(";")[0])
        assert checkpoint.load(disk / "out" / "ckpt.npz")["header"]["iter"] == kept
    finally:
        subprocess.run(["umount", str(disk)])


def test_unreadable_data_file(tmp_path, text_file):
    prefix = unprivileged()
    secret = tmp_path / "secret.txt"
    shutil.copy(text_file, secret)
    secret.chmod(0o000)
    r = cli(prefix, "minims.train", "--data", str(secret), "--out-dir", str(tmp_path / "out"),
            "--cache-dir", str(tmp_path / "cache"), "--max-iters", "1")
    assert one_line(r.stderr, r.returncode, 2), r.stderr
    assert r.stderr == f"error: {secret}: cannot read the data file (permission denied)\n"


def test_unreadable_data_file_in_process(tmp_path, text_file, capsys, monkeypatch):
    real = Path.read_bytes

    def read_bytes(self):
        if self == text_file:
            raise PermissionError(errno.EACCES, "Permission denied", str(self))
        return real(self)
    monkeypatch.setattr(Path, "read_bytes", read_bytes)
    code = train_cli.main(tiny(tmp_path, text_file, "--max-iters", "1"))
    err = capsys.readouterr().err
    assert one_line(err, code, 2) and "cannot read the data file (permission denied)" in err


def test_model_too_big_is_refused_with_the_estimate(tmp_path, text_file, capsys):
    code = train_cli.main(tiny(tmp_path, text_file, "--n-embd", "100000", "--max-iters", "1"))
    err = capsys.readouterr().err
    assert one_line(err, code, 2), err
    assert err.startswith("error: not enough memory (planning the run)")
    assert "TiB (parameters" in err and "optimizer" in err and "activations" in err and "--n-embd" in err
    assert not (tmp_path / "out").exists()


def test_a_late_memory_error_says_the_same(tmp_path, text_file, capsys, monkeypatch):
    real_step, steps = train_loop.train_step, []

    def step(*args, **kwargs):
        steps.append(1)
        if len(steps) == 8:                             # the step from iter 7
            raise MemoryError("Unable to allocate 112. GiB for an array")
        return real_step(*args, **kwargs)
    monkeypatch.setattr(train_loop, "train_step", step)
    code = train_cli.main(tiny(tmp_path, text_file, "--max-iters", "10"))
    err = capsys.readouterr().err
    assert one_line(err, code, 2), err
    assert "not enough memory (training at iter 7)" in err and "KiB (parameters" in err and "holds iter 5" in err


def test_refusal_compares_the_estimate_with_free_memory(tmp_path, text_file, capsys, monkeypatch):
    """A run that fits nowhere near 1 MiB is refused before any model is built, whatever this
    machine has; on CuPy the free figure is the device's free memory plus the pool's."""
    from types import SimpleNamespace

    from minims import backend
    from minims import memory
    monkeypatch.setattr(memory, "available_bytes", lambda: 2 ** 20)
    built = []
    monkeypatch.setattr(train_setup.AdamW, "__init__", lambda *a, **k: built.append(1))
    code = train_cli.main(tiny(tmp_path, text_file, "--n-embd", "256", "--n-head", "4", "--max-iters", "1"))
    err = capsys.readouterr().err
    assert one_line(err, code, 2) and "numpy has 1.0 MiB free" in err and not built
    monkeypatch.undo()
    device = SimpleNamespace(mem_info=(5 * 2 ** 30, 80 * 2 ** 30))
    pool = SimpleNamespace(free_bytes=lambda: 2 ** 30)
    gpu = SimpleNamespace(cuda=SimpleNamespace(Device=lambda: device), get_default_memory_pool=lambda: pool)
    monkeypatch.setattr(backend, "get_backend", lambda: "cupy")
    monkeypatch.setattr(backend, "xp", gpu)
    assert memory.available_bytes() == 6 * 2 ** 30


@pytest.mark.parametrize("name", ["vanilla", "top-down", "bottom-up", "retina"])
def test_parameter_estimate_is_close(name):
    """The pre-allocation estimate is within 10 % of the real count, for every model."""
    from minims import memory
    from minims.models import build_model
    for C, L, V, T in [(16, 2, 50, 32), (32, 4, 300, 64), (64, 3, 80, 16)]:
        model = build_model(name, vocab_size=V, block_size=T, n_layer=L, n_head=2, n_embd=C)
        estimate = memory.parameter_count(**vars(model.config))
        assert abs(estimate - model.num_parameters()) <= 0.1 * model.num_parameters(), (C, L, V, T)


def test_flag_messages_name_the_flag(tmp_path, text_file, capsys):
    code = train_cli.main(tiny(tmp_path, text_file, "--seed", "-1"))
    assert one_line(err := capsys.readouterr().err, code, 2) and err == "error: --seed must be >= 0, got -1\n"
    code = train_cli.main(tiny(tmp_path, text_file, "--tokenizer", "word", "--min-freq", "0"))
    assert one_line(err := capsys.readouterr().err, code, 2) and "--min-freq must be at least 1" in err
    args = tiny(tmp_path, text_file)
    args[args.index("--data") + 1] = ""
    code = train_cli.main(args)
    err = capsys.readouterr().err
    assert one_line(err, code, 2) and "--data is empty" in err
    assert not Path(tmp_path / "out").exists()
    assert train_cli.main(tiny(tmp_path, text_file, "--max-iters", "1")) == 0
    capsys.readouterr()
    for flag, value in [("--temperature", "nan"), ("--temperature", "0"), ("--top-k", "0"),
                        ("--max-new-tokens", "-1"), ("--seed", "-3")]:
        code = sample_cli.main(["--out-dir", str(tmp_path / "out"), flag, value])
        err = capsys.readouterr().err
        assert one_line(err, code, 2) and err.startswith(f"error: {flag} must be"), (flag, err)


def test_devices_refused_and_help_says_data_is_read_whole(tmp_path, capsys):
    code = train_cli.main(["--data", "/dev/zero", "--out-dir", str(tmp_path / "out"), "--max-iters", "1"])
    err = capsys.readouterr().err
    assert one_line(err, code, 2) and "/dev/zero: not a regular file" in err
    assert "read whole" in train_cli.build_parser().format_help().replace("\n", " ").replace("  ", " ")


def test_ctrl_c_anywhere_is_one_line_and_130(tmp_path, text_file, capsys, monkeypatch):
    def interrupt(*a, **k):
        raise KeyboardInterrupt
    with monkeypatch.context() as m:                 # while tokenising
        m.setattr(train_setup, "prepare", interrupt)
        code = train_cli.main(tiny(tmp_path, text_file, "--max-iters", "5"))
        err = capsys.readouterr().err
        assert one_line(err, code, 130) and err == "interrupted (Ctrl-C)\n"
        assert not (tmp_path / "out").exists()
    with monkeypatch.context() as m:                 # during an evaluation
        real, calls = train_cli.Trainer.evaluate, []

        def evaluate(self):
            calls.append(1)
            if len(calls) == 2:
                raise KeyboardInterrupt
            return real(self)
        m.setattr(train_cli.Trainer, "evaluate", evaluate)
        code = train_cli.main(tiny(tmp_path, text_file, "--max-iters", "10"))
        err = capsys.readouterr().err
        assert one_line(err, code, 130) and err.startswith("interrupted: Ctrl-C at iter 5")
        assert "holds iter 0" in err and "--resume" in err
    assert train_cli.main(tiny(tmp_path, text_file, "--resume", "--max-iters", "10")) == 0
    capsys.readouterr()
    with monkeypatch.context() as m:                 # before the first checkpoint: its advice works
        m.setattr(train_cli.Trainer, "evaluate", interrupt)
        code = train_cli.main(tiny(tmp_path, text_file, "--max-iters", "10", out="early"))
        err = capsys.readouterr().err
        assert one_line(err, code, 130) and "no checkpoint was written" in err
        assert "without --resume" in err
    assert train_cli.main(tiny(tmp_path, text_file, "--max-iters", "10", out="early")) == 0
    capsys.readouterr()
    with monkeypatch.context() as m:                 # while sampling
        from minims import sampling
        m.setattr(sampling, "generate_tokens", interrupt)      # what the sampler streams from
        code = sample_cli.main(["--out-dir", str(tmp_path / "out")])
        err = capsys.readouterr().err
        assert one_line(err, code, 130) and err == "interrupted (Ctrl-C)\n"


def test_experiment_and_bench_map_errors_the_same_way(tmp_path, capsys):
    code = experiment.main(["tradeoff", "--quick", "--out-dir", str(tmp_path / "x"), "--data",
                            str(tmp_path / "missing.txt"), "--max-iters", "1", "--only", "vanilla-1"])
    err = capsys.readouterr().err
    assert one_line(err, code, 2) and "missing.txt: no such file" in err
    code = experiment.main(["tradeoff", "--quick", "--out-dir", str(tmp_path / "y"), "--only", "nope"])
    err = capsys.readouterr().err
    assert one_line(err, code, 2) and "vanilla-1" in err
    code = experiment.main(["tradeoff", "--quick", "--report-only", "--results-dir", str(tmp_path / "none")])
    out, err = capsys.readouterr()
    assert one_line(err, code, 2) and "no committed point" in err and out == ""   # no line per point first
    code = bench.main(["engine", "--n-embd", "15", "--n-head", "2"])
    err = capsys.readouterr().err
    assert one_line(err, code, 2) and "divisible" in err
    code = bench.main(["engine", "--repeat", "0"])
    assert one_line(capsys.readouterr().err, code, 2)
    code = bench.main(["model", "--processes", "-1"])
    assert one_line(capsys.readouterr().err, code, 2)
    code = bench.main(["memory", "--processes", "2"])
    err = capsys.readouterr().err
    assert one_line(err, code, 2) and "engine and model" in err
    code = bench.main(["attention", "--max-t", "100"])
    err = capsys.readouterr().err
    assert one_line(err, code, 2) and "--max-t must be at least 128" in err
    code = bench.main(["memory", "--max-t", "300"])        # one length: no slope to fit
    err = capsys.readouterr().err
    assert one_line(err, code, 2) and "--max-t must be at least 512" in err and "two lengths" in err
    code = bench.main(["speed", "--n-layer", "1"])        # too shallow for the multi-scale models
    err = capsys.readouterr().err
    assert one_line(err, code, 2) and "too shallow" in err
    for size, words in [("0", "at least 2"), ("1", "at least 2"), ("8", "--decode-block-size 8")]:
        code = bench.main(["decode", "--n-layer", "2", "--block-size", "16", "--decode-block-size", size])
        err = capsys.readouterr().err
        assert one_line(err, code, 2) and words in err


@pytest.mark.parametrize("argv", [["--max-iters", "abc"], ["--bogus"], ["--lr"]])
def test_a_malformed_flag_is_one_line_in_every_command(argv, capsys):
    """argparse's own errors (an unknown flag, a missing or non-numeric value) are one line
    too, not the usage block (minims.cli.ArgumentParser)."""
    from minims import sample, train
    for main, args in [(train.main, argv), (experiment.main, ["tradeoff", *argv]),
                       (bench.main, ["engine", *argv]), (sample.main, argv)]:
        code = main(args)
        err = capsys.readouterr().err
        assert one_line(err, code, 2) and err.startswith("error: ") and "--help" in err, (main.__module__, err)


def test_a_missing_command_names_its_choices(capsys):
    code = bench.main([])
    err = capsys.readouterr().err
    assert one_line(err, code, 2) and "one of: engine, model, speed, memory, attention, decode" in err
    code = experiment.main([])
    err = capsys.readouterr().err
    assert one_line(err, code, 2) and "one of: ablate, lr, tradeoff" in err


# ================================================================ 2. the resume contract

def test_resume_with_a_raised_max_iters_keeps_the_schedule(tmp_path, text_file, capsys):
    """10 steps, then --resume --max-iters 20, with no --lr-decay-iters anywhere: the cosine
    decay is not restarted (the stored horizon is 10), so the run equals 20 straight steps on
    that schedule, and the learning rate never rises after the warmup."""
    assert train_cli.main(tiny(tmp_path, text_file, "--max-iters", "10", out="split")) == 0
    capsys.readouterr()
    assert train_cli.main(tiny(tmp_path, text_file, "--resume", "--max-iters", "20", out="split")) == 0
    out = capsys.readouterr().out
    assert "reaches --min-lr at iter 10 (--lr-decay-iters, stored)" in out and "--lr-decay-iters 20 to" in out
    assert train_cli.main(tiny(tmp_path, text_file, "--max-iters", "20", "--lr-decay-iters", "10",
                               out="straight")) == 0
    assert same_run(tmp_path / "straight", tmp_path / "split")
    lrs = [r["lr"] for r in read_log(tmp_path / "split")][1:]
    assert all(b <= a for a, b in zip(lrs, lrs[1:])) and lrs[-1] == pytest.approx(2e-4)


def test_a_warmup_longer_than_the_schedule_is_said_and_the_resume_note_is_true(tmp_path, text_file, capsys):
    """--warmup-iters 6 over a 4-step schedule: the lr rises for 6 steps, then drops to
    --min-lr (optim.cosine_lr); both notes say so, and the log agrees with them."""
    assert train_cli.main(tiny(tmp_path, text_file, "--max-iters", "4", "--warmup-iters", "6",
                               "--eval-interval", "1")) == 0
    assert "--warmup-iters 6 is not shorter than the schedule (--lr-decay-iters 4)" in capsys.readouterr().out
    assert train_cli.main(tiny(tmp_path, text_file, "--resume", "--max-iters", "9", "--warmup-iters", "6",
                               "--eval-interval", "1")) == 0
    out = capsys.readouterr().out       # resumed at iter 4, inside the warmup: both notes
    assert "reaches --min-lr at iter 6 (the end of the warmup" in out and "iters 7..9 train at 0.0002" in out
    assert "not shorter than the schedule" in out
    lrs = {r["iter"]: r["lr"] for r in read_log(tmp_path / "out")}      # row k: the lr of step k-1
    assert lrs[6] == pytest.approx(2e-3) and lrs[7] == pytest.approx(2e-4) and lrs[9] == pytest.approx(2e-4)
    assert train_cli.main(tiny(tmp_path, text_file, "--resume", "--max-iters", "11", "--lr-decay-iters", "8",
                               "--warmup-iters", "6", "--eval-interval", "1")) == 0
    out = capsys.readouterr().out       # at iter 9, past the warmup: only the resume note, as given
    assert "reaches --min-lr at iter 8 (--lr-decay-iters, given)" in out and "not shorter" not in out


def test_interrupted_run_resumes_exactly_without_lr_decay_iters(tmp_path, text_file, monkeypatch):
    common = ["--max-iters", "20", "--dropout", "0.1"]
    assert train_cli.main(tiny(tmp_path, text_file, *common, out="straight")) == 0
    monkeypatch.setattr(train_loop, "train_step",
                        ctrl_c_on_call(train_loop.train_step, 13))   # the step from iter 12
    assert train_cli.main(tiny(tmp_path, text_file, *common, out="split")) == 130
    monkeypatch.undo()
    assert train_cli.main(tiny(tmp_path, text_file, "--resume", out="split")) == 0
    assert same_run(tmp_path / "straight", tmp_path / "split")


def test_resume_from_another_folder_and_by_another_path(tmp_path, text_file, capsys, monkeypatch):
    here = tmp_path / "here"
    here.mkdir()
    shutil.copy(text_file, here / "small.txt")
    monkeypatch.chdir(here)
    small = ["--block-size", "16", "--batch-size", "4", "--n-layer", "1", "--n-head", "2", "--n-embd", "16",
             "--eval-interval", "5", "--eval-iters", "2", "--cache-dir", str(tmp_path / "cache")]
    assert train_cli.main(["--data", "small.txt", "--out-dir", "run", "--max-iters", "5", *small]) == 0
    assert train_cli.main(["--data", "./small.txt", "--out-dir", "run", "--resume", "--max-iters", "10"]) == 0
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert train_cli.main(["--out-dir", str(here / "run"), "--resume", "--max-iters", "15"]) == 0
    moved = elsewhere / "moved.txt"                  # the same text under another name
    shutil.copy(text_file, moved)
    assert train_cli.main(["--out-dir", str(here / "run"), "--resume", "--max-iters", "20",
                           "--data", "moved.txt"]) == 0
    assert checkpoint.load(here / "run" / "ckpt.npz")["header"]["iter"] == 20
    other = elsewhere / "other.txt"                  # another text: refused, naming the stored one
    other.write_text(text_file.read_text().replace("Anne", "Jane"))
    capsys.readouterr()
    code = train_cli.main(["--out-dir", str(here / "run"), "--resume", "--max-iters", "25", "--data", "other.txt"])
    err = capsys.readouterr().err
    assert one_line(err, code, 2) and "the text or its split changed" in err and f"written with --data {moved}" in err


def test_nan_stop_advice_works_and_is_quiet(tmp_path, text_file, capsys, monkeypatch):
    """A real overflow at step 8 (logits × 1e38 in float32): exit 3, one line, no NumPy
    RuntimeWarning on the way; then exactly what the line advises is accepted."""
    real_ce, steps = functional.cross_entropy, []

    def ce(logits, targets):
        if minims.engine.is_grad_enabled():
            steps.append(1)
            if len(steps) == 8:
                return real_ce(logits * 1e38, targets)
        return real_ce(logits, targets)

    monkeypatch.setattr(functional, "cross_entropy", ce)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        code = train_cli.main(tiny(tmp_path, text_file, "--max-iters", "20"))
    err = capsys.readouterr().err
    assert one_line(err, code, 3), err
    assert not [w for w in caught if issubclass(w.category, RuntimeWarning)], [str(w.message) for w in caught]
    assert "at step 8" in err and "holds iter 5" in err and "lower --lr" in err and "--grad-clip" in err
    monkeypatch.undo()
    assert train_cli.main(tiny(tmp_path, text_file, "--resume", "--lr", "1e-3", "--min-lr", "1e-4",
                               "--grad-clip", "0.5", "--max-iters", "20")) == 0
    log = read_log(tmp_path / "out")
    assert [r["iter"] for r in log] == [0, 5, 10, 15, 20]
    help_text = " ".join(train_cli.build_parser().format_help().split())
    for flag in ("--lr,", "--grad-clip", "--max-iters", "--min-lr"):
        assert flag in help_text.split("Flags that may change:")[1].split("every other flag")[0], flag


def test_conflicting_flags_are_refused_at_the_start(tmp_path, text_file, capsys):
    code = train_cli.main(tiny(tmp_path, text_file, "--model", "top-down", "--layout", "1-1", "--n-layer", "7"))
    err = capsys.readouterr().err
    assert one_line(err, code, 2), err
    assert "--n-layer 7 conflicts with --layout 1-1, which gives n_layer=2" in err
    assert not (tmp_path / "out").exists()
    code = train_cli.main(tiny(tmp_path, text_file, "--model", "bottom-up", "--layout", "1-2-1", "--n-scales", "3",
                                    "--n-layer", "4"))
    err = capsys.readouterr().err
    assert one_line(err, code, 2) and "--n-scales 3 conflicts with --layout 1-2-1" in err
    # agreeing flags are fine, and the same command resumes
    argv = tiny(tmp_path, text_file, "--model", "top-down", "--layout", "1-1", "--n-layer", "2", "--max-iters", "2")
    assert train_cli.main(argv) == 0
    assert train_cli.main(argv + ["--resume", "--max-iters", "4"]) == 0


# ================================================================ 3. logs, caches and out-dirs

def test_a_bad_line_in_the_log_loses_no_record(tmp_path, text_file):
    assert train_cli.main(tiny(tmp_path, text_file, "--max-iters", "20")) == 0
    path = tmp_path / "out" / "log.jsonl"
    lines = path.read_text().splitlines()
    lines[1:1] = ["", "a note I typed here"]           # a blank and a non-JSON line after iter 0
    path.write_text("\n".join(lines) + "\n" + '{"iter": 25, "train_lo')   # and a cut last line
    assert train_cli.main(tiny(tmp_path, text_file, "--resume", "--max-iters", "25")) == 0
    kept = path.read_text().splitlines()
    assert "a note I typed here" in kept
    records = [json.loads(x) for x in kept if x.startswith("{")]
    assert [r["iter"] for r in records] == [0, 5, 10, 15, 20, 25]


def test_overwrite_starts_a_fresh_log(tmp_path, text_file):
    assert train_cli.main(tiny(tmp_path, text_file, "--max-iters", "10")) == 0
    assert train_cli.main(tiny(tmp_path, text_file, "--max-iters", "10", "--overwrite")) == 0
    assert [r["iter"] for r in read_log(tmp_path / "out")] == [0, 5, 10]


def test_resume_from_iter_0_writes_no_second_iter_0_record(tmp_path, text_file):
    assert train_cli.main(tiny(tmp_path, text_file, "--max-iters", "0")) == 0
    assert train_cli.main(tiny(tmp_path, text_file, "--resume", "--max-iters", "5")) == 0
    assert [r["iter"] for r in read_log(tmp_path / "out")] == [0, 5]


def test_a_log_without_its_checkpoint_is_not_overwritten_silently(tmp_path, text_file, capsys):
    assert train_cli.main(tiny(tmp_path, text_file, "--max-iters", "10")) == 0
    (tmp_path / "out" / "ckpt.npz").unlink()
    before = (tmp_path / "out" / "log.jsonl").read_text()
    capsys.readouterr()
    code = train_cli.main(tiny(tmp_path, text_file, "--max-iters", "10"))
    err = capsys.readouterr().err
    assert one_line(err, code, 2) and "up to iter 10" in err and "--overwrite" in err
    assert (tmp_path / "out" / "log.jsonl").read_text() == before


HOLD_LOCK = """
import sys, time
from minims.files import DirLock
DirLock(sys.argv[1]).acquire()
print("locked", flush=True)
time.sleep(60)
"""


def test_a_second_run_in_the_same_out_dir_is_refused(tmp_path, text_file, capsys):
    out = tmp_path / "out"
    out.mkdir()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(out)], stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert holder.stdout.readline().strip() == "locked"
        for extra in ([], ["--resume"]):
            code = train_cli.main(tiny(tmp_path, text_file, "--max-iters", "2", *extra))
            err = capsys.readouterr().err
            assert one_line(err, code, 2), err
            assert f"another run is using {out} (process {holder.pid} " in err
        assert sorted(p.name for p in out.iterdir()) == ["lock"]
    finally:
        holder.kill()                                 # SIGKILL: the lock file stays behind
        holder.wait()
    assert (out / "lock").read_text().split()[0] == str(holder.pid)
    assert train_cli.main(tiny(tmp_path, text_file, "--max-iters", "2")) == 0   # stale: taken over
    assert not (out / "lock").exists()                 # and given back at the end


def test_a_stale_lock_of_a_dead_process_is_taken_over(tmp_path, text_file):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "lock").write_text(f"{dead.stdout.strip()} somehost\n")
    assert train_cli.main(tiny(tmp_path, text_file, "--max-iters", "2")) == 0


def test_files_honour_the_umask(tmp_path, text_file):
    old = os.umask(0o022)
    try:
        assert train_cli.main(tiny(tmp_path, text_file, "--max-iters", "5")) == 0
        assert train_cli.main(tiny(tmp_path, text_file, "--max-iters", "10", "--resume")) == 0
        written = [tmp_path / "out" / n for n in ("config.json", "log.jsonl", "ckpt.npz")]
        written += list((tmp_path / "cache").rglob("*.*"))
        assert len(written) == 7
        for path in written:
            assert path.stat().st_mode & 0o777 == 0o644, path
    finally:
        os.umask(old)


def test_sigkill_during_a_run_then_resume_is_exact(tmp_path, text_file):
    """A real kill (SIGKILL, no cleanup at all) while a run trains: the stale lock is taken
    over and the resumed run ends like a straight one."""
    common = tiny(tmp_path, text_file, "--max-iters", "400", "--eval-interval", "20", out="killed")
    env = {**os.environ, "PYTHONPATH": str(REPO), "OPENBLAS_NUM_THREADS": "1"}
    env.pop("MINIMS_BACKEND", None)
    proc = subprocess.Popen([sys.executable, "-m", "minims.train", *common], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ckpt = tmp_path / "killed" / "ckpt.npz"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        if ckpt.exists() and checkpoint.load(ckpt)["header"]["iter"] >= 20:
            break
        time.sleep(0.05)
    proc.kill()
    proc.wait()
    assert proc.returncode == -9 and (tmp_path / "killed" / "lock").exists()
    target = str(checkpoint.load(ckpt)["header"]["iter"] + 20)
    rest = ["--max-iters", target, "--eval-interval", "20", "--lr-decay-iters", "400"]
    assert train_cli.main(tiny(tmp_path, text_file, "--resume", *rest, out="killed")) == 0
    assert train_cli.main(tiny(tmp_path, text_file, *rest, out="straight")) == 0
    assert same_run(tmp_path / "straight", tmp_path / "killed")


def test_checkpoints_written_before_the_stored_schedule_still_resume(tmp_path, text_file, capsys, monkeypatch):
    """An older checkpoint (no stored horizon, --data as typed, relative): its horizon was its
    --max-iters, and a relative --data that is not found from here is one line saying so."""
    assert train_cli.main(tiny(tmp_path, text_file, "--max-iters", "10")) == 0
    path = tmp_path / "out" / "ckpt.npz"
    old = checkpoint.load(path)
    old["header"]["args"].update(lr_decay_iters=None, data="own.txt")
    header = {k: v for k, v in old["header"].items()
              if k not in ("format_version", "optim_scalars", "optim_buffers", "model_keys")}
    checkpoint.save(path, header, old["model"], old["optim"])
    monkeypatch.chdir(tmp_path)                       # own.txt is not here
    capsys.readouterr()
    code = train_cli.main(["--out-dir", "out", "--resume", "--max-iters", "20"])
    err = capsys.readouterr().err
    assert one_line(err, code, 2) and "own.txt: the checkpoint's --data, a path relative" in err
    monkeypatch.chdir(text_file.parent)               # the folder that run started in
    assert train_cli.main(["--out-dir", str(tmp_path / "out"), "--resume", "--max-iters", "20"]) == 0
    lrs = [r["lr"] for r in read_log(tmp_path / "out")]
    assert lrs[-2:] == [pytest.approx(2e-4)] * 2      # iters 15 and 20: past the old horizon of 10


def test_resuming_on_a_copy_of_the_shipped_novels_names_the_split(tmp_path, capsys):
    # the same text, but 'austen' splits by book and a folder by position
    copy = tmp_path / "austen-copy"
    copy.mkdir()
    for book in (Path(REPO) / "data" / "austen").glob("*.txt"):
        shutil.copy(book, copy / book.name)
    args = ["--out-dir", str(tmp_path / "out"), "--cache-dir", str(tmp_path / "cache"), "--block-size", "16",
            "--batch-size", "2", "--n-layer", "1", "--n-head", "2", "--n-embd", "16", "--eval-iters", "1"]
    assert train_cli.main(args + ["--max-iters", "1"]) == 0
    capsys.readouterr()
    assert train_cli.main(args + ["--max-iters", "2", "--resume", "--data", str(copy)]) == 2
    err = capsys.readouterr().err
    assert "the text or its split changed ('austen' is split by book" in err and "written with --data austen" in err
