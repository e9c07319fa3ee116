"""Training runs the lessons compare: every model with the same budget and settings (ours).

Lessons 08, 09 and 10 each train their multi-scale model beside a vanilla model of the same
depth, with `train_same_budget`: the same data, width, batch, sequence length, optimizer,
schedule, seed and, above all, the same **fixed number of steps** (a time budget would give a
different number of steps on every machine, and a faster model more of them). The settings are
`SETTINGS` (`QUICK_SETTINGS` in the test suite's quick mode), the same in the three lessons, so
their loss curves and samples can be set side by side. Model options not given (pooling factor,
kinds of pooling and upsampling, ...) keep the model's own defaults, read from its config.

    runs = train_same_budget({"top-down 2-2": ("top-down", dict(layout="2-2")),
                              "vanilla 4": BASELINE}, "08")
    runs["vanilla 4"]["result"]["val_loss"], runs["vanilla 4"]["sample"]

Each run trains with `minims.train.setup(args).run()` into `<lessons_out_dir()>/<lesson>_run/<label>/`
(its log.jsonl and checkpoint; a run there from an earlier time is replaced).
"""
import math
import re
from pathlib import Path

import numpy

from lessons.support.figures import lessons_out_dir, plot_loss_curves, read_log
from minims.train import make_args, setup

# Shared by lessons 08-10: a 4-layer model of width 64 on 128 characters, 100 steps of 16 sequences.
SETTINGS = dict(block_size=128, batch_size=16, n_embd=64, n_head=4, max_iters=100, eval_interval=20,
                eval_iters=4, lr=3e-3, warmup_iters=10, seed=0)
QUICK_SETTINGS = dict(SETTINGS, block_size=32, batch_size=4, n_embd=32, n_head=2, max_iters=4,
                      eval_interval=2, eval_iters=2)
BASELINE = ("vanilla", dict(n_layer=4))   # the vanilla model every lesson compares with
PROMPT = "Elizabeth"


def slug(label):
    """A folder name for a run label: "top-down 2-2" -> "top-down_2-2"."""
    return re.sub(r"[^A-Za-z0-9_-]+", "_", label).strip("_") or "run"


def train_same_budget(runs, lesson, quick=False, cache_dir=None, new_tokens=120, verbose=False):
    """Train every run with the same settings and number of steps; sample from each.

    runs: {label: (model name, {model options})}, e.g. {"vanilla 4": ("vanilla", dict(n_layer=4))};
    lesson: the lesson's number ("08"), which names the folder; quick: use QUICK_SETTINGS (and
    30 sampled characters instead of `new_tokens`).
    -> {label: {"result": the trainer's final metrics (iter, val_loss, unigram_ppl, wall_s, ...),
    "model": the trained model, "log": Path of its log.jsonl, "sample": str (PROMPT and the
    sampled characters, temperature 0.8, top_k 20, seed 0)}} in the order of `runs`.
    UsageError (from the trainer) for an option the model does not take.
    """
    settings = QUICK_SETTINGS if quick else SETTINGS
    folder = lessons_out_dir() / f"{lesson}_run"
    out = {}
    for label, (name, options) in runs.items():
        run_dir = folder / slug(label)
        args = make_args(model=name, **settings, **options, out_dir=str(run_dir), overwrite=True,
                         **({} if cache_dir is None else {"cache_dir": str(cache_dir)}))
        trainer = setup(args, verbose=verbose)
        result = trainer.run()
        tok = trainer.tokenizer
        context = tok.encode(PROMPT)[None, :].astype(numpy.int64)            # (1, len(PROMPT))
        ids = trainer.model.generate(context, max_new_tokens=30 if quick else new_tokens,
                                     temperature=0.8, top_k=20, seed=0)
        out[label] = {"result": result, "model": trainer.model, "log": Path(run_dir) / "log.jsonl",
                      "sample": tok.decode(ids[0])}
    return out


def report(runs, lesson, title):
    """Print what `train_same_budget` returned, side by side: each run's parameters and valid
    loss from its first to its last evaluation, the unigram baseline, the loss curves (saved as
    `<lesson>_loss_curves.png`, see lessons.support.figures) and a sample from each.
    -> the unigram baseline's loss (nats per token)."""
    unigram = math.log(next(iter(runs.values()))["result"]["unigram_ppl"])
    width = max(len(label) for label in runs) + 2
    for label, run in runs.items():
        r = run["result"]
        print(f"{label:<{width}} {r['n_params']:8,d} parameters  valid loss "
              f"{read_log(run['log'])[0]['val_loss']:.3f} -> {r['val_loss']:.3f} in {r['iter']} steps "
              f"({r['wall_s']:.1f} s)")
    print(f"unigram baseline: {unigram:.3f}")
    plot_loss_curves({label: run["log"] for label, run in runs.items()}, f"{lesson}_loss_curves",
                     baseline={"unigram": unigram}, title=title)
    for label, run in runs.items():
        print(f"--- sample from {label} ---\n{run['sample']}")
    return unigram
