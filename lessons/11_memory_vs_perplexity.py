# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # Lesson 11: memory against perplexity, the paper's trade-off
#
# **What you'll learn**
# - what the paper claims, and how minims measures the same two quantities: activation memory
#   (bytes held for backward), valid **bits per character** and time per training step;
# - how to run the project's experiments (`python -m minims.experiment tradeoff`, `lr` and
#   `ablate`) and read their results: a table, a plot, and the **Pareto frontier** (the models
#   nothing beats on both axes);
# - the memory half of the headline claim, checked without any training: a 30-layer hierarchical
#   model against a vanilla model with less than half the layers;
# - why a run this small is a smoke test, not evidence, and what the real run (committed in
#   `lessons/results/`) shows.
#
# **Where this sits.** The package `minims/experiment/`, which trains every model of lessons 06
# and 08–10 with the trainer of `minims/train/` and measures it with `minims/memory.py`, one
# concept per file: `grids.py` (which points each experiment trains, with which settings),
# `identity.py` (a point is its full settings), `points.py` (training and scoring one point,
# its committed result), `measure.py` (`split_loss`, step times), `convergence.py`, `ngram.py`
# (the count baselines), `tables.py`, `plots.py` and `cli.py` (the command line).
# `from minims import experiment` gives all of their public names.

# %%
import os
import sys
from pathlib import Path

# Make `import minims` work from a fresh clone (before `pip install -e .`), as a script or a notebook.
HERE = Path(__file__).resolve().parent if "__file__" in globals() else Path.cwd()
ROOT = next((p for p in (HERE, *HERE.parents) if (p / "minims").is_dir()), HERE)
sys.path.insert(0, str(ROOT))
QUICK = os.environ.get("MINIMS_QUICK") == "1"  # the test suite's fast mode: 3 steps per model
# Small matrices: BLAS threads gain nothing and fight other processes for the cores (see lesson 06).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import inspect
import json
import math
import tempfile

from minims import experiment, memory
from lessons.support.figures import lessons_out_dir
from minims.models import build_model

# %% [markdown]
# ## 1. The claim
#
# Subramanian et al. (2020) compare models by two numbers: how well they predict held-out text
# (perplexity, lower is better) and how much memory training needs (the footprint, lower is better),
# and they also report compute time.
# Their headline, on Toronto BookCorpus: a hierarchical model with **30 layers** has a **23 %
# smaller memory footprint** and a **better perplexity** than a vanilla transformer with **less
# than half as many layers**. More generally: for the same memory, the multi-scale models reach a
# better perplexity, and the gap grows with the sequence length, because of attention's $T^2$.
#
# One number per model is not enough to compare families: a deeper vanilla model is better *and*
# more expensive. So the experiment trains each family at several depths and plots the loss
# against memory (and against step time). Each family then traces a curve; the family whose curve lies lower and further
# left is better. The quantities, as minims measures them:
#
# - **activation memory**: `minims.memory.saved_bytes` of one training forward pass at the training
#   batch and sequence length: the exact bytes the graph holds for backward (lessons 02 and 06),
#   free of allocator noise. (The parameters and optimizer state are small next to it at long $T$.)
# - **valid bits per character (bpc)**: the mean loss over the *whole* validation book (*Northanger
#   Abbey*), every character scored once in non-overlapping windows by `split_loss`, divided by
#   $\ln 2$ (nats → bits). Perplexity is $2^{\text{bpc}}$ per character; at character level bpc
#   is the field's usual unit. Lower is better.

# %%
print(inspect.getsource(experiment.split_loss))
print(inspect.getsource(memory.forward_bytes))
print(inspect.getsource(memory.activation_bytes))

# %% [markdown]
# ## 2. The grid
#
# All points share the data (Austen at **character** level: with a word vocabulary of thousands the
# output head, the same in every model, would hold most of the memory), the width, the optimizer,
# the schedule and the number of tokens seen. Only the model and its depth change, and each model
# family's peak learning rate (`TRADEOFF_LR`, picked by the `lr` sweep): vanilla models at several
# depths, and each hierarchical model at about twice those depths, at a context of $T = 512$ where
# attention memory matters. Every point is a `Point` (`minims/experiment/grids.py`) that spells
# out all of its model's options, so a row keeps its meaning when a default changes. The ablation
# grid varies one modelling choice at a time (the ones the code marks "(ours)", and the attention
# pooling and upsampling of lesson 07's Hourglass); its winners are the models' defaults. The
# three grids (the third, `--quick`, is a smoke test):

# %%
for title, grid, settings in (("tradeoff", experiment.TRADEOFF_GRID, experiment.TRADEOFF_SETTINGS),
                              ("ablate", experiment.ABLATE_GRID, experiment.ABLATE_SETTINGS),
                              ("quick (--quick)", experiment.QUICK_GRID, experiment.QUICK_SETTINGS)):
    print(f"{title}: {settings}")
    for point in grid:
        lr = "" if point.lr is None else f" lr {point.lr:g}"
        print(f"  {point.name:<34} {point.model:<10} {point.options}{lr}")

# %% [markdown]
# ## 3. Running the quick grid
#
# `experiment.main` is the command line as a function. We run the quick grid into a temporary
# folder (from a shell: `python -m minims.experiment tradeoff --quick`, which writes
# `out/tradeoff-quick/`). Each point and seed trains in its own folder, `points/NAME/seed-S/`,
# with the trainer's resumable checkpoints; when it finishes, its result and learning curve are
# written under `results/tradeoff/points/` (for the full grid: `lessons/results/`, committed), and
# a point with a result is never retrained: run the same command again and it only rebuilds the
# table. In quick mode (`MINIMS_QUICK=1`) we also cut the steps to 3 per point.

# %%
tmp = tempfile.TemporaryDirectory()
out_dir = Path(tmp.name)
argv = ["tradeoff", "--quick", "--seeds", "0", "--out-dir", str(out_dir), "--cache-dir", str(ROOT / ".cache")]
if QUICK:
    argv += ["--max-iters", "3"]
exit_code = experiment.main(argv)
print("exit code:", exit_code, "| files:", sorted(p.name for p in out_dir.iterdir()))

# %% [markdown]
# ## 4. Reading the results
#
# `results/tradeoff.json` holds one row per point (mean and spread over its seeds) and one record per point
# and seed. Two memory columns: `activation_bytes` counts everything, `body_activation_bytes`
# leaves out the output head and the loss, which are the same in every model. The figures below use
# all of it, as the committed results do.
#
# A point is on the **Pareto frontier** when no other point has both less memory and a lower
# bpc. The paper's claim, in these terms: the frontier is made of multi-scale models, and
# for a vanilla point there is a multi-scale point with less memory and a lower perplexity.

# %%
results = json.loads((out_dir / "results" / "tradeoff.json").read_text())
rows = sorted(results["rows"], key=lambda r: r["activation_bytes"])


def dominates(a, b):
    """a is at least as good as b on both axes, and strictly better on one."""
    mem_a, bpc_a, mem_b, bpc_b = a["activation_bytes"], a["valid_bpc"], b["activation_bytes"], b["valid_bpc"]
    return mem_a <= mem_b and bpc_a <= bpc_b and (mem_a < mem_b or bpc_a < bpc_b)


for r in rows:
    r["frontier"] = not any(dominates(other, r) for other in rows)
MB = 1e6
print(f"{'point':<18} {'layers':>6} {'params':>9} {'all MB':>7} {'body MB':>8} {'valid bpc':>10}  frontier")
for r in rows:
    print(f"{r['name']:<18} {r['layers']:6d} {r['params']:9,d} {r['activation_bytes'] / MB:7.2f} "
          f"{r['body_activation_bytes'] / MB:8.2f} {r['valid_bpc']:10.3f}  {'*' if r['frontier'] else ''}")
unigram_bpc = results["baselines_bpc"]["unigram"]   # counts from train, on the scored valid text
steps = results["settings"]["max_iters"]
print(f"unigram baseline: valid bpc {unigram_bpc:.3f} (a model that knows only how often each character "
      f"occurs); {steps} steps per point")
not_learned = [r["name"] for r in rows if r["valid_bpc"] >= unigram_bpc]
if not_learned:
    print(f"{len(not_learned)} of {len(rows)} points are WORSE than the unigram baseline: after {steps} steps "
          f"they have not learned even the character frequencies ({', '.join(not_learned)}).")
else:
    print(f"every point beats the unigram baseline after {steps} steps.")

# %% [markdown]
# ### A plot, when matplotlib is installed
#
# (`pip install -e '.[plot]'`.) `experiment.tradeoff_plot` (in `minims/experiment/plots.py`, the
# runner's own figure) draws bpc against memory and against step time, one marker per family,
# each point labelled by its layout, with matplotlib's object-oriented API, and the baselines we
# give it as dotted lines, here the unigram one: a point above it has not learned yet.
# (`experiment.tradeoff_figure` returns the figure instead of saving it.) As a script the figure
# is saved under `out/lessons/`; in a notebook it is shown too.

# %%
fig_dir = lessons_out_dir()                      # out/lessons/ (the tests point it elsewhere)
fig_dir.mkdir(parents=True, exist_ok=True)
plot_path = experiment.tradeoff_plot(rows, fig_dir / "11_quick_tradeoff.png", {"unigram": unigram_bpc},
                                    title="the quick grid: labels are layouts", dpi=100)
if plot_path is None:
    print("NOTE: no plot without matplotlib (pip install -e '.[plot]'); the table above holds the numbers.")
else:
    print(f"figure: {plot_path}")
    if "ipykernel" in sys.modules:
        from IPython.display import Image, display
        display(Image(str(plot_path)))

# %% [markdown]
# ### How much to believe it
#
# Not at all, at this size, and that is the lesson to take from it. Each point trained for a
# handful of steps (15; 3 in quick mode), from one seed, and was scored on the first 4,096
# characters of the validation book. After so few steps the models have **not learned**: in our
# run every point lay *above* the unigram baseline (the dotted line; the line under the table
# says how many do in yours), that is, they predicted worse than a table of character
# frequencies. Their order says nothing about the models: change `--seed` and it changes.
# What *is* reliable already is the memory column, which is exact and needs no training at all.
# Section 6 shows the real run, where every model is well below the baseline (1.9-2.3 bpc
# against 4.44).
#
# ## 5. The memory half of the headline, without training
#
# Memory depends only on the architecture, so we can check the first half of the claim now: a
# 30-layer hierarchical model against vanilla models with 12 and 14 layers (less than half of 30),
# at $C = 128$ (twice the trade-off grid's width) and a context of $T = 256$ (batch 2 here, memory
# is linear in it).
# The hierarchical models put most of their depth at the coarse scale, where layers are cheap.

# %%
T_claim, C_claim = (64, 32) if QUICK else (256, 128)
candidates = [("vanilla, 12 layers", "vanilla", dict(n_layer=12)),
              ("vanilla, 14 layers", "vanilla", dict(n_layer=14)),
              ("bottom-up 2-26-2", "bottom-up", dict(layout="2-26-2")),
              ("top-down 26-4", "top-down", dict(layout="26-4"))]
claim = {}
for label, name, options in candidates:
    model = build_model(name, vocab_size=100, block_size=T_claim, n_embd=C_claim, n_head=4, **options)
    _, body = memory.activation_bytes(model, 2, T_claim)
    claim[label] = (model.config.n_layer, body)
ref = claim["vanilla, 14 layers"][1]
for label, (n_layer, body) in claim.items():
    print(f"{label:<20} {n_layer:3d} layers  body {body / MB:7.1f} MB  {body / ref:5.2f}x the 14-layer vanilla model")

# %% [markdown]
# Both 30-layer models hold less than the 14-layer vanilla model: here the bottom-up one about a
# third less, more than the paper's 23 % (their widths, lengths and layouts are not known; ours
# are the choices each model's file marks "(ours)"). The second half of the claim, *better
# perplexity*, needs training: section 6.
#
# ## 6. The full runs, and how to read them
#
# ```bash
# python -m minims.experiment lr          # the learning-rate sweep: 8 models x 2-4 rates -> lessons/results/lr.md
# python -m minims.experiment ablate      # every (ours) choice, 1-2 seeds, T=256, 2000 steps -> out/ablate/
# python -m minims.experiment tradeoff    # 12 points x 2-3 seeds, T=512 -> out/tradeoff/, lessons/results/
# python -m minims.experiment tradeoff --seeds 0 &  python -m minims.experiment tradeoff --seeds 1 &
#                                         # two processes, one per seed (a point being trained by
#                                         # the other is skipped); each rewrites the tables from
#                                         # every committed point
# python -m minims.experiment tradeoff --only vanilla-2,retina-4   # a few points
# python -m minims.experiment tradeoff --report-only --time-steps 10   # tables and figures only
# python -m minims.experiment tradeoff --backend cupy  # on a GPU (lesson 12)
# ```
#
# On a 2-core CPU each takes an hour or more: leave it running; Ctrl-C keeps every finished point
# and the last checkpoint of the current one, and the same command continues. The results of a
# full run are committed in `lessons/results/`: the tables and figures (`tradeoff.md`,
# `ablation.md`, `tradeoff.png`, ...) and, for the runner of `minims/experiment/`, each finished
# point's result and learning curve, so that a clone continues the grid where another machine
# stopped. `lessons/results/README.md` describes the layout and the commands that made them; the
# README reads them.
#
# How to read them: for each vanilla point, find the hierarchical points with at most its memory
# and compare their valid bpc. The paper's claim holds here if a hierarchical model with about
# twice the layers of a vanilla model reaches a lower valid bpc, lower by more than the two seed
# spreads added, with at most 0.8x its memory (the check below). Treat smaller differences as
# ties. The test bpc (*Persuasion*) is for the very end: choose models on
# valid, report test.

# %%
committed = ROOT / "lessons" / "results" / "tradeoff.md"
if committed.exists():
    print(committed.read_text())
    # the headline question, read from the committed numbers: which models with twice the layers of
    # a vanilla model reach a lower valid bpc with at most 0.8x its memory?
    full = json.loads((ROOT / "lessons" / "results" / "tradeoff.json").read_text())["rows"]
    vanilla_rows = {r["layers"]: r for r in full if r["model"] == "vanilla"}
    for r in full:
        ref = vanilla_rows.get(r["layers"] // 2) if r["model"] != "vanilla" else None
        if ref is None:
            continue
        better = r["valid_bpc"] + r["valid_bpc_spread"] < ref["valid_bpc"] - ref["valid_bpc_spread"]
        mem = r["activation_bytes"] / ref["activation_bytes"]
        verdict = "yes" if better and mem <= 0.8 else "no"
        print(f"{r['name']:<18} vs vanilla-{ref['layers']}: bpc {r['valid_bpc']:.3f} vs {ref['valid_bpc']:.3f}, "
              f"memory {mem:.2f}x -> {verdict}")
else:
    print(f"(no committed results at {committed}: run python -m minims.experiment tradeoff)")

# %% [markdown]
# In the committed run (6,000 steps, each model at the learning rate its sweep picked,
# every point past the convergence test) two models answer yes: top-down 6-2 and bottom-up 1-6-1,
# each with eight layers, most of them coarse, against the 4-layer vanilla model (by about 0.11
# and 0.04 bpc, at 0.77x its memory). One tier deeper the answer is no: the 8-layer vanilla
# model beats top-down 12-4 and bottom-up 2-12-2 (by about 0.08 and 0.04 bpc) although they hold
# 0.76x its memory; at this width, coarse layers add less than token-level ones. The retina
# models are better at 4 and 8 layers (at 16 they tie vanilla-8 within their seed spread) but
# hold more memory than the 0.8x the question allows (all their layers work at full
# resolution), and so do the 4-layer models against vanilla-2, which
# keep its two token-level layers and add coarse ones on top.
# At 2,000 steps with one learning rate for all, the same grid had shown gaps of up to 0.8 bpc:
# `lessons/results/README.md` ("What the 2,000-step grid showed") keeps that table. Most of it
# was *speed of learning*: the vanilla models had only begun to leave the plateau where a
# character model predicts from the last character or two.

# %% [markdown]
# ## Check

# %%
assert exit_code == 0, "the experiment should finish with exit code 0"
assert len(rows) == len(experiment.QUICK_GRID), "every point of the quick grid should have a result"
assert all(math.isfinite(r["valid_bpc"]) and r["valid_bpc"] > 0.1 for r in rows), \
    "every valid bpc should be finite and well above 0 (a bpc near 0 would mean a leak)"
assert all(0 < r["body_activation_bytes"] < r["activation_bytes"] for r in rows), \
    "the body's memory should be positive and less than the total"
assert any(r["frontier"] for r in rows), "some point must be on the Pareto frontier"
vanilla = sorted((r for r in rows if r["model"] == "vanilla"), key=lambda r: r["layers"])
assert vanilla[0]["body_activation_bytes"] < vanilla[-1]["body_activation_bytes"], \
    "a deeper vanilla model should hold more activation memory"
assert claim["bottom-up 2-26-2"][1] < claim["vanilla, 14 layers"][1], \
    "the 30-layer bottom-up model should hold less memory than the 14-layer vanilla model"
print(f"Check passed: {len(rows)} points trained and measured; the 30-layer bottom-up model holds "
      f"{claim['bottom-up 2-26-2'][1] / claim['vanilla, 14 layers'][1]:.2f}x the memory of a 14-layer vanilla model.")
tmp.cleanup()

# %% [markdown]
# ## Exercises
#
# Each exercise has a checker: `from lessons.support.exercises import check, help_for`, then
# `check("NN.i", your_answer)` prints *right* or what is off; `print(help_for("NN.i"))` shows what
# form the answer takes (a number, a dict with given keys, a function), not the answer itself.
# Reference solutions, for after you tried: `lessons/solutions.py`.
#
# 1. **Noise.** Run the quick grid with `--seeds 0,1,2`, `--max-iters 200` and `--out-dir out/noise`
#    (a folder of its own: a point is never reused with other settings, so the runner refuses a
#    folder trained with other steps). For each point, how wide is the spread (the ± in the
#    table)? Which differences in section 4 survive? *Hint:* about a minute per seed on a laptop
#    CPU; compare the spread of one point with the gaps between points.
#    *Check:* `check("11.1", {"results": json.loads(Path("out/noise/results/tradeoff.json").read_text()),
#    "survive": [(name, name), ...]})`: the pairs of points whose mean valid bpc differ by more
#    than the sum of their two spreads.
# 2. **Longer sequences.** Repeat section 5 at $T = 512$ and $T = 1024$ (with `block_size` set to
#    match). How do the ratios move, and why? *Hint:* vanilla memory has a $T^2$ term per layer;
#    a coarse layer's attention has $(T/k)^2$.
#    *Check:* `check("11.2", {512: ratio, 1024: ratio})`: the bottom-up 2-26-2 model's body memory
#    over the 14-layer vanilla model's, at each length.
# 3. **Your own point.** Train one more model with the quick settings and place it in the table,
#    e.g. a deeper bottom-up model:
#    `args = experiment.build_parser().parse_args(["tradeoff", "--quick", "--out-dir", "out/my-point"])`, then
#    `experiment.run_point("bottom-up-1-6-1", "bottom-up", dict(layout="1-6-1"), experiment.QUICK_SETTINGS, 0, args, 4096, False)`.
#    Is it on the frontier? *Hint:* `run_point` (in `minims/experiment/points.py`) trains the point
#    in `out/my-point/points/bottom-up-1-6-1/seed-0/` and returns the same record as one entry of
#    `results/tradeoff.json["results"]` (with its learning curve under "curve"); it commits nothing.
#    *Check:* `check("11.3", record)`, the record `run_point` returned.
