"""Tests for the trainer CLI, checkpoints and sampling (in-process through `main([...])`).

Tiny models on a small text of our own keep each run well under a second. Covered: --help
lists every flag (and one per model-specific config field), exact resume, gradient
accumulation, atomic and validated checkpoints, config mismatch on resume, NaN stop,
the --backend cupy error, a short Austen run that beats the unigram baseline, sampling.
"""
import dataclasses
import importlib.util
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import minims
from minims import checkpoint, functional, sampling, to_numpy
from minims import sample as sample_cli
from minims import train as train_cli
from minims.train import flags
from minims.models import MODELS, ModelConfig, build_model
from minims.models.vanilla import VanillaLM
from minims.optim import SGD

from tiny_runs import REPO, ctrl_c_on_call, read_log, small_text, tiny, weights  # noqa: E402


@pytest.fixture(scope="module")
def text_file(tmp_path_factory):
    return small_text(tmp_path_factory.mktemp("text"))


@pytest.fixture
def toy_model(monkeypatch):
    """A registered model whose config adds two fields: the CLI must grow flags for them."""
    @dataclasses.dataclass
    class ToyConfig(ModelConfig):
        toy_pool: str = dataclasses.field(default="mean", metadata={"help": "how to pool a toy block"})
        toy_k: int = dataclasses.field(default=4, metadata={"help": "toy pooling factor"})

    class ToyLM(VanillaLM):
        Config = ToyConfig
        name = "toy"

    monkeypatch.setitem(MODELS, "toy", ToyLM)
    return ToyLM


# ---------------------------------------------------------------- the command line

DOCUMENTED_FLAGS = ["--backend", "--model", "--data", "--tokenizer", "--block-size", "--batch-size",
               "--n-layer", "--n-head", "--n-embd", "--dropout", "--lr", "--min-lr",
               "--warmup-iters", "--max-iters", "--grad-clip", "--grad-accum", "--weight-decay",
               "--eval-interval", "--eval-iters", "--out-dir", "--resume", "--seed", "--dtype",
               "--threads"]


def test_help_lists_every_flag_and_every_model_option(capsys, toy_model):
    assert train_cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    for flag in DOCUMENTED_FLAGS:
        assert flag in out, flag
    actions = {a.dest: a for a in train_cli.build_parser()._actions}
    base = {f.name for f in dataclasses.fields(ModelConfig)}
    for name, cls in MODELS.items():   # every field a model adds gets a flag naming the model
        assert name in out
        for f in dataclasses.fields(cls.Config):
            if f.name not in base:
                flag = "--" + f.name.replace("_", "-")
                assert "\n  " + flag + " " in out, flag
                assert actions[f.name].option_strings == [flag]
                assert name in actions[f.name].help.split("[models: ")[-1].split("[model: ")[-1], (flag, name)
    assert "how to pool a toy block [model: toy; default: 'mean']" in actions["toy_pool"].help


def test_model_options_reach_the_model_and_foreign_ones_fail(tmp_path, text_file, capsys, toy_model):
    args = train_cli.parse_args(tiny(tmp_path, text_file, "--model", "toy", "--toy-pool", "max"))
    assert flags.model_kwargs(args)["toy_pool"] == "max"
    assert "toy_k" not in flags.model_kwargs(args)          # absent: the config's default
    code = train_cli.main(tiny(tmp_path, text_file, "--model", "vanilla", "--toy-pool", "max"))
    err = capsys.readouterr().err
    assert code == 2 and "--toy-pool is used by toy" in err and err.count("\n") == 1


def test_unknown_model_and_bad_flags_exit_2(tmp_path, text_file, capsys):
    assert train_cli.main(tiny(tmp_path, text_file, "--model", "nope")) == 2
    assert "unknown model 'nope'" in capsys.readouterr().err
    assert train_cli.main(tiny(tmp_path, text_file, "--batch-size", "0")) == 2
    assert capsys.readouterr().err == "error: --batch-size must be at least 1, got 0\n"
    assert train_cli.main(tiny(tmp_path, text_file, "--n-embd", "15")) == 2   # not divisible by heads
    assert "divisible" in capsys.readouterr().err


def test_bad_data_file_exit_2(tmp_path, text_file, capsys):
    missing = tmp_path / "missing.txt"
    args = tiny(tmp_path, text_file)
    args[args.index("--data") + 1] = str(missing)
    assert train_cli.main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and str(missing) in err and err.count("\n") == 1


@pytest.mark.skipif(importlib.util.find_spec("cupy") is not None,
                    reason="CuPy is installed: this checks the error where it is not")
def test_backend_cupy_without_cupy_is_a_clean_error(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("MINIMS_BACKEND", None)
    r = subprocess.run([sys.executable, "-m", "minims.train", "--backend", "cupy", "--max-iters", "1"],
                       cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert "Traceback" not in r.stderr and r.stderr.count("\n") == 1
    assert r.stderr.startswith("error: ") and "pip install" in r.stderr
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------- training and resuming

def test_austen_short_run_beats_unigram(tmp_path, capsys):
    metrics = train_cli.train(train_cli.make_args(
        out_dir=str(tmp_path / "out"), cache_dir=str(tmp_path / "cache"), block_size=32,
        batch_size=16, n_layer=1, n_embd=32, n_head=2, max_iters=60, warmup_iters=5, lr=1e-2,
        eval_interval=30, eval_iters=4))
    assert metrics["val_ppl"] < metrics["unigram_ppl"]
    log = read_log(tmp_path / "out")
    assert [r["iter"] for r in log] == [0, 30, 60]
    keys = {"iter", "train_loss", "val_loss", "val_ppl", "lr", "tokens_per_s", "peak_mem_bytes"}
    assert keys <= set(log[-1]) and log[-1]["peak_mem_bytes"] > 0 and log[-1]["tokens_per_s"] > 0
    assert abs(log[0]["val_loss"] - np.log(83)) < 0.2        # untrained: about ln V
    config = json.loads((tmp_path / "out" / "config.json").read_text())
    assert config["model"]["model"] == "vanilla" and config["args"]["max_iters"] == 60
    out = capsys.readouterr().out
    final = out.strip().splitlines()[-1]
    assert final.startswith("final: iter 60 | val loss") and "unigram ppl" in final and "peak mem" in final
    assert "unigram baseline: valid ppl" in out


def test_resume_is_exact(tmp_path, text_file):
    common = ["--dropout", "0.1", "--lr-decay-iters", "20"]      # dropout: its RNG is resumed too
    assert train_cli.main(tiny(tmp_path, text_file, *common, "--max-iters", "20", out="straight")) == 0
    assert train_cli.main(tiny(tmp_path, text_file, *common, "--max-iters", "10", out="split")) == 0
    assert train_cli.main(tiny(tmp_path, text_file, "--resume", "--max-iters", "20", out="split")) == 0
    assert read_log(tmp_path / "split") == [
        {**r, "tokens_per_s": a["tokens_per_s"], "peak_mem_bytes": a["peak_mem_bytes"], "elapsed_s": a["elapsed_s"]}
        for r, a in zip(read_log(tmp_path / "straight"), read_log(tmp_path / "split"))]
    a, b = weights(tmp_path / "straight"), weights(tmp_path / "split")
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
    # the run's time counts on over both sittings (it used to restart at 0 on resume)
    seconds = [r["elapsed_s"] for r in read_log(tmp_path / "split")]
    assert seconds == sorted(seconds) and seconds[0] > 0
    header = checkpoint.load(tmp_path / "split" / "ckpt.npz")["header"]
    assert header["elapsed_s"] >= seconds[-1]


def test_kill_between_log_and_checkpoint_then_resume(tmp_path, text_file, monkeypatch):
    """Killed after writing the iter-10 log line but before its checkpoint: resuming from
    iter 5 redoes 6..10 without a duplicate line and ends where a straight run ends."""
    assert train_cli.main(tiny(tmp_path, text_file, "--max-iters", "15", out="straight")) == 0
    real_save = checkpoint.save
    monkeypatch.setattr(checkpoint, "save", ctrl_c_on_call(real_save, 3))   # 0, 5 saved; 10 dies
    assert train_cli.main(tiny(tmp_path, text_file, "--max-iters", "15", out="killed")) == 130
    assert [r["iter"] for r in read_log(tmp_path / "killed")] == [0, 5, 10]
    assert checkpoint.load(tmp_path / "killed" / "ckpt.npz")["header"]["iter"] == 5
    monkeypatch.setattr(checkpoint, "save", real_save)
    assert train_cli.main(tiny(tmp_path, text_file, "--resume", out="killed")) == 0
    straight, killed = read_log(tmp_path / "straight"), read_log(tmp_path / "killed")
    assert [r["iter"] for r in killed] == [0, 5, 10, 15]
    assert [r["val_loss"] for r in killed] == [r["val_loss"] for r in straight]
    a, b = weights(tmp_path / "straight"), weights(tmp_path / "killed")
    assert all(np.array_equal(a[k], b[k]) for k in a)


def test_grad_accum_is_one_big_batch():
    """4 micro-batches of 2 (loss scaled by 1/4 each) = 1 batch of 8: same gradients and update."""
    rng = np.random.default_rng(0)
    x = rng.integers(0, 11, size=(8, 6))
    y = rng.integers(0, 11, size=(8, 6))
    models = [build_model("vanilla", vocab_size=11, block_size=6, n_layer=1, n_head=2, n_embd=8,
                          dtype="float64") for _ in range(2)]
    optims = [SGD(m.parameters(), lr=0.1) for m in models]
    big = train_cli.train_step(models[0], optims[0], [(x, y)], lr=0.1)
    small = train_cli.train_step(models[1], optims[1], [(x[i:i + 2], y[i:i + 2]) for i in range(0, 8, 2)], lr=0.1)
    assert abs(big - small) < 1e-12
    for p, q in zip(models[0].parameters(), models[1].parameters()):
        np.testing.assert_allclose(to_numpy(p.grad), to_numpy(q.grad), rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(p.numpy(), q.numpy(), rtol=1e-9, atol=1e-12)


def test_grad_accum_flag_matches_bigger_batch(tmp_path, text_file):
    """Through the CLI in float64: --grad-accum 4 --batch-size 2 trains like --batch-size 8 (the
    batch sampler draws the same windows either way)."""
    f64 = ["--dtype", "float64", "--max-iters", "5", "--eval-iters", "1"]
    assert train_cli.main(tiny(tmp_path, text_file, *f64, "--batch-size", "8", out="big")) == 0
    assert train_cli.main(tiny(tmp_path, text_file, *f64, "--batch-size", "2", "--grad-accum", "4",
                               out="accum")) == 0
    a, b = weights(tmp_path / "big"), weights(tmp_path / "accum")
    assert a["wte.weight"].dtype == np.float64
    for k in a:
        np.testing.assert_allclose(a[k], b[k], rtol=1e-6, atol=1e-9)


def test_existing_run_needs_resume_or_overwrite(tmp_path, text_file, capsys):
    assert train_cli.main(tiny(tmp_path, text_file, "--max-iters", "1")) == 0
    capsys.readouterr()
    assert train_cli.main(tiny(tmp_path, text_file, "--max-iters", "1")) == 2
    assert "--resume" in capsys.readouterr().err
    assert train_cli.main(tiny(tmp_path, text_file, "--max-iters", "1", "--overwrite")) == 0


def test_resume_and_overwrite_together_are_refused_and_the_run_is_kept(tmp_path, text_file, capsys):
    assert train_cli.main(tiny(tmp_path, text_file, "--max-iters", "2", "--overwrite")) == 0
    ckpt = tmp_path / "out" / "ckpt.npz"
    before = ckpt.read_bytes()
    capsys.readouterr()
    assert train_cli.main(tiny(tmp_path, text_file, "--max-iters", "4", "--resume", "--overwrite")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--resume" in err[0] and "--overwrite" in err[0]
    assert ckpt.read_bytes() == before
    # a run started with --overwrite still resumes (the stored flag is not a new --overwrite)
    assert train_cli.main(tiny(tmp_path, text_file, "--max-iters", "4", "--resume")) == 0


@pytest.mark.parametrize("extra", [("--min-lr", "0.1"), ("--lr", "1e-4"), ("--lr", "1e-3", "--min-lr", "2e-3")])
def test_a_min_lr_above_the_lr_is_refused(tmp_path, text_file, capsys, extra):
    # the cosine 'decay' would climb from --lr to --min-lr
    assert train_cli.main(tiny(tmp_path, text_file, "--max-iters", "2", *extra)) == 2
    err = capsys.readouterr().err
    assert "--min-lr" in err and "must be at most --lr" in err
    assert not (tmp_path / "out" / "ckpt.npz").exists()


def test_resume_with_other_architecture_is_refused(tmp_path, text_file, capsys):
    assert train_cli.main(tiny(tmp_path, text_file, "--max-iters", "5")) == 0
    ckpt = tmp_path / "out" / "ckpt.npz"
    before = ckpt.read_bytes()
    capsys.readouterr()
    assert train_cli.main(tiny(tmp_path, text_file, "--resume", "--max-iters", "10", "--n-embd", "32")) == 2
    err = capsys.readouterr().err
    assert "--n-embd 32 does not match the checkpoint's 16" in err and str(ckpt) in err
    assert ckpt.read_bytes() == before
    # the same values again (tiny() repeats them all) are fine, and --max-iters may grow
    assert train_cli.main(tiny(tmp_path, text_file, "--resume", "--max-iters", "10")) == 0
    assert checkpoint.load(ckpt)["header"]["iter"] == 10


# ---------------------------------------------------------------- a loss that is not finite

def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path, text_file, capsys, monkeypatch):
    real_ce, steps = functional.cross_entropy, []

    def ce(logits, targets):                 # training step 8 returns NaN
        loss = real_ce(logits, targets)
        if minims.engine.is_grad_enabled():
            steps.append(1)
            if len(steps) == 8:
                return loss * float("nan")
        return loss

    monkeypatch.setattr(functional, "cross_entropy", ce)
    assert train_cli.main(tiny(tmp_path, text_file, "--max-iters", "20")) == 3
    err = capsys.readouterr().err
    assert "nan at step 8" in err and "ckpt.npz holds iter 5 (the last good one)" in err
    assert err.count("\n") == 1
    ckpt = checkpoint.load(tmp_path / "out" / "ckpt.npz")
    assert ckpt["header"]["iter"] == 5
    assert all(np.isfinite(a).all() for a in ckpt["model"].values())
    assert [r["iter"] for r in read_log(tmp_path / "out")] == [0, 5]


def test_a_nan_before_the_first_checkpoint_says_to_run_again(tmp_path, text_file, capsys, monkeypatch):
    # the evaluation at iter 0 of a new run comes before any checkpoint: --resume would find none
    real_ce = functional.cross_entropy
    monkeypatch.setattr(functional, "cross_entropy", lambda logits, targets: real_ce(logits, targets) * float("nan"))
    assert train_cli.main(tiny(tmp_path, text_file, "--max-iters", "20")) == 3
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "before the first checkpoint: run again" in err and "resume" not in err
    assert not (tmp_path / "out" / "ckpt.npz").exists()


# ---------------------------------------------------------------- sampling

def test_sample_is_reproducible_with_a_seed(tmp_path, text_file, capsys):
    assert train_cli.main(tiny(tmp_path, text_file, "--max-iters", "5")) == 0
    capsys.readouterr()
    runs = []
    for seed in ("1", "1", "2"):
        assert sample_cli.main(["--out-dir", str(tmp_path / "out"), "--prompt", "Anne E", "--seed", seed,
                                "--max-new-tokens", "40"]) == 0
        runs.append(capsys.readouterr().out)
    assert runs[0] == runs[1] != runs[2]
    assert runs[0].startswith("Anne E") and len(runs[0]) == len("Anne E") + 40 + 1


@pytest.mark.parametrize("name", sorted(MODELS))
def test_sampling_works_for_every_model(tmp_path, text_file, name):
    metrics = train_cli.train(train_cli.make_args(
        model=name, data=str(text_file), out_dir=str(tmp_path / "out"), cache_dir=str(tmp_path / "cache"),
        block_size=16, batch_size=2, n_layer=2, n_head=2, n_embd=16, max_iters=2, eval_iters=1,
        tokenizer="word", min_freq=1), verbose=False)
    assert metrics["iter"] == 2
    model, tok, _ = sample_cli.load_model(tmp_path / "out" / "ckpt.npz")
    text = sampling.sample(model, tok, "It was", max_new_tokens=20, seed=0)
    assert text and text == sampling.sample(model, tok, "It was", max_new_tokens=20, seed=0)


@pytest.mark.parametrize("argv, said", [(["--ckpt", ""], "--ckpt is empty"),
                                        (["--out-dir", " "], "--out-dir is empty"),
                                        (["--ckpt", "."], "--ckpt . is a folder"),
                                        (["--ckpt", "a/ckpt.npz", "--out-dir", "b"], "not allowed with")])
def test_sample_names_an_empty_or_folder_checkpoint_flag(capsys, argv, said):
    # an empty --ckpt used to fall back to out/ckpt.npz, a folder to "no checkpoint there"
    assert sample_cli.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and said in err[0]
