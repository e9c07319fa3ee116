# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # Lesson 08: the top-down model
#
# **What you'll learn**
# - the first of the paper's three multi-scale architectures: a **coarse** stack models the
#   sequence of blocks of k tokens, and its output **conditions** the fine stack that predicts tokens;
# - its data flow, shape by shape, stepping through the library's own modules;
# - how to check that the whole model is causal (perturb token t, float64, exact);
# - how to train it on Austen with the project's trainer (`minims.train`);
# - where its activation memory goes, against a vanilla transformer of the same depth, and what
#   local attention in the fine stack buys at long sequences.
#
# **Where this sits.** `minims/models/top_down.py`, built from lesson 07's operators
# (`minims/ops/pooling.py`) and, optionally, the local attention of `minims/nn/local_attention.py` (the
# `RangeAttention` op that lesson 05, section 7, printed and checked: the memory of section 5 rests on it).

# %%
import os
import sys
from pathlib import Path

# Make `import minims` work from a fresh clone (before `pip install -e .`), as a script or a notebook.
HERE = Path(__file__).resolve().parent if "__file__" in globals() else Path.cwd()
ROOT = next((p for p in (HERE, *HERE.parents) if (p / "minims").is_dir()), HERE)
sys.path.insert(0, str(ROOT))
QUICK = os.environ.get("MINIMS_QUICK") == "1"  # the test suite's fast mode: tiny model, a few steps
# Small matrices: BLAS threads gain nothing and fight other processes for the cores (see lesson 06).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import inspect
import math

import numpy as np

import minims
from minims.testing.causality import assert_causal, causality_report
from lessons.support.comparison import BASELINE, QUICK_SETTINGS, SETTINGS, train_same_budget
from lessons.support.comparison import report as report_runs
from lessons.support.figures import read_log
from minims.memory import forward_bytes
from minims.models import build_model
from minims.models.top_down import TopDownLM

# %% [markdown]
# ## 1. The idea
#
# Language has structure at several time scales: who is speaking, the topic, the mood of a chapter
# change slowly; spelling and grammar change from token to token. A vanilla transformer spends the
# same effort on both, at every position of every layer. The **top-down** model gives the slow part
# its own, cheaper sequence: the token embeddings are shortened causally to one vector per block of
# $k$ tokens (lesson 07), a stack of transformer layers runs over those $T/k$ blocks, and its output
# is upsampled and added to the token embeddings before the **fine** stack, which predicts the
# tokens. Information flows from the coarse scale down to the fine one, like the tiers of SampleRNN,
# which the paper cites. A coarse layer holds about $1/k$ of a token layer's activations (and its
# attention matrix $1/k^2$), so coarse depth is cheap. And since long-range context arrives through
# the coarse path, the fine stack may attend only to the last $w$ tokens (**local attention**): its
# memory becomes $O(T \cdot w)$ instead of $O(T^2)$.
#
# ```
#  tokens x_0 .. x_{T-1}
#       |  wte + wpe
#       v
#  e0 (B, T, C) -----------------------------------------------+
#       |  shorten: shift by k-1, learned map of each block    |
#       v                                                      |
#  e1 (B, T/k, C) --> coarse blocks (causal, over blocks)      |
#                          |                                   |
#                          v  upsample: learned map per offset |
#                     up(h1) (B, T, C) ----------------> (+) <-+
#                                                         |
#                                                         v
#                            fine blocks (full or local causal attention)
#                                                         |
#                                                ln_f, lm_head --> logits (B, T, V)
# ```
#
# **Pooling and upsampling are learned maps by default.** Shortening applies one learned linear map
# to the $k \cdot C$ values of each (shifted) block, a convolution with kernel and stride $k$
# (`pool_kind="linear"`; `"mean"` averages the block, which forgets the order of its tokens).
# Upsampling gives offset $r$ of block $j$ its own learned map of the coarse vector,
# $c_j W_r + b_r$ (`upsample_kind="linear"`; `"repeat"` hands the same $c_j$ to all $k$
# positions). Both were measured against the alternatives by `python -m minims.experiment
# ablate` (lesson 11): with the two learned maps the same 4-2 model reaches a clearly lower valid
# loss than with mean pooling and repeat upsampling (2.22 against 2.31 bits per character after
# 2,000 steps; Hourglass's attention pooling and upsampling did worse still here; the table is
# in `lessons/results/ablation.md`).
#
# With more scales (`n_scales=2`), $e_1$ is shortened again to $e_2$ (blocks of $k^2$), the coarsest
# stack runs first, and its upsampled output joins $e_1$ before the middle stack: tiers, each
# conditioned on the next coarser one. Here is the library's forward pass:

# %%
print(inspect.getsource(TopDownLM.logits))

# %% [markdown]
# ## 2. The data flow, shape by shape
#
# We build a small top-down model with two coarse scales and step through the same code with the
# model's own modules, printing each shape. `layout` gives the layers per scale in data-flow order,
# coarsest first: "1-1-2" is one layer at blocks of $k^2$, one at blocks of $k$, two at the tokens.
# The last line checks that our walk-through gives exactly the model's logits.

# %%
V, T, B, k = 50, 64, 2, 4
model = build_model("top-down", vocab_size=V, block_size=T, layout="1-1-2", pool=k,
                    n_head=2, n_embd=32, dtype="float64", seed=0)
model.eval()
idx = np.random.default_rng(0).integers(0, V, size=(B, T))

def show(step, name, tensor):
    print(f"{step:<40} {name:<3} {tensor.shape}")


with minims.no_grad():
    x = model.embed(idx)
    show("token + position embeddings", "e0", x)
    e = [x]
    for s, pool in enumerate(model.pool, 1):
        e.append(pool(e[-1]))
        show(f"shorten by k={k}: blocks of {k ** s} tokens", f"e{s}", e[-1])
    h = None
    for s in range(len(model.pool), 0, -1):                    # coarsest first
        if h is None:
            z = e[s]
        else:
            z = e[s] + model.up[s](h, e[s].shape[1])
            show(f"e{s} + upsample(h{s + 1})", "", z)
        for block in model.coarse[s - 1]:
            z = block(z)
        h = z
        show(f"coarse stack of scale {s} ({len(model.coarse[s - 1])} layer)", f"h{s}", h)
    x = x + model.up[0](h, T)
    show("e0 + upsample(h1)", "", x)
    for block in model.fine:
        x = block(x)
    show(f"fine stack ({len(model.fine)} layers)", "", x)
    logits = model.head(x)
    show("ln_f, lm_head: logits (B, T, V)", "", logits)
    walk_matches = np.array_equal(logits.numpy(), model(idx)[0].numpy())
print("the walk-through reproduces model(idx) exactly:", walk_matches)

# %% [markdown]
# ## 3. Is the whole model causal?
#
# Lesson 07 tested one round trip; the model stacks two of them, with attention in between. The
# same black-box test applies: for every position $t$, change the tokens of row 0 from $t$ on; the
# logits before $t$ must not move at all (float64, exact), nor may row 1, and the logits *at* $t$
# must move (the fine stream sees its own token). We test every $t$, so the block edges
# ($t = jk-1, jk, jk+1$), where leaks live, are all covered.
#
# This test is part of the library, `minims/testing/causality.py`, because every model needs it
# (yours too, if you add one): `causality_report(model, idx)` returns, for each $t$, the largest
# change before $t$, at $t$, and in the untouched row; `assert_causal(model, idx)` checks those
# three rules and names the first $t$ that breaks one. Here is the report:

# %%
print(inspect.getsource(minims.testing.causality.causality_report))
report = causality_report(model, idx)
print(f"checked t = 0..{T - 1}: largest change before t = {report[:, 0].max():.1e}, "
      f"in the untouched row = {report[:, 2].max():.1e}, smallest change at t = {report[:, 1].min():.1e}")

# %% [markdown]
# The project runs `assert_causal` on every registered model (`tests/test_causality.py`), and a
# stricter version of this test, with randomised $O(1)$ weights (small initial weights can hide a
# leak behind a saturated softmax), gradient checks and prefix consistency:
# `minims/testing/causality.py` and `tests/test_models.py`.
#
# ## 4. Training on Austen, beside a vanilla model
#
# The trainer (`minims/train/`, the one loop for every model) builds the model by name, so
# training the top-down model is the same call as for the vanilla one. A comparison is only fair
# with the same budget: `lessons.support.comparison.train_same_budget` trains each model with the same
# settings (`SETTINGS`: data, width, batch, sequence length, optimizer, seed) for the same
# **fixed number of steps**, and samples from each. Lessons 09 and 10 use the same settings and
# the same vanilla model, so the three lessons' curves can be set side by side. Options we do not
# give (the pooling factor $k$, the kinds of pooling and upsampling) keep the model's defaults,
# printed from the trained model's config. The runs go to `out/lessons/08_run/`; the same top-down
# run from a shell: `python -m minims.train --model top-down --layout 2-2 --block-size 128 --n-embd 64
# --batch-size 16 --max-iters 100 --lr 3e-3 --warmup-iters 10`.

# %%
print(inspect.getsource(train_same_budget))
settings = QUICK_SETTINGS if QUICK else SETTINGS
print("settings:", settings)
runs = train_same_budget({"top-down 2-2": ("top-down", dict(layout="2-2")), "vanilla 4": BASELINE},
                         "08", quick=QUICK, cache_dir=ROOT / ".cache")
td_config = runs["top-down 2-2"]["model"].config
print(f"top-down defaults used: pool k={td_config.pool}, pool_kind={td_config.pool_kind!r}, "
      f"upsample_kind={td_config.upsample_kind!r}, causal_mode={td_config.causal_mode!r}")
result = runs["top-down 2-2"]["result"]
first_val_loss = read_log(runs["top-down 2-2"]["log"])[0]["val_loss"]
unigram_loss = report_runs(runs, "08",
                           title=f"lesson 08: top-down 2-2 and vanilla 4, {settings['max_iters']} steps each")

# %% [markdown]
# A hundred steps on a CPU give Austen's letters and common short words, not more, and one seed
# at this size cannot rank two models. Whether the coarse path makes the model *better for its
# memory* is lesson 11's question, asked the way the paper asks it: many models, the same budget,
# two seeds, bits per character against memory.
#
# ## 5. Memory against a vanilla model of the same depth
#
# `saved_bytes(loss, by="scope", depth=1)` adds up the activations the graph holds for backward,
# per top-level module: `fine` (the token-level layers), `coarse` (all coarse stacks), and the
# head; `minims.memory.forward_bytes` takes it after one training forward pass on random tokens.
# We compare, at two sequence lengths, a vanilla model with 4 layers, a top-down model with the
# same 4 layers split 2 coarse + 2 fine, the same with local attention (window 32) in the fine
# stack, and a deeper top-down model (6 coarse + 2 fine).

# %%
def memory_by_scope(name, T, B=2, **options):
    model = build_model(name, vocab_size=V, block_size=T, n_head=4, n_embd=64, **options)
    return forward_bytes(model, B, T, by="scope", depth=1)


variants = [("vanilla 4", "vanilla", dict(n_layer=4)),
            ("top-down 2-2", "top-down", dict(layout="2-2")),
            ("top-down 2-2, window 32", "top-down", dict(layout="2-2", window=32)),
            ("top-down 6-2", "top-down", dict(layout="6-2"))]
lengths = (64, 128) if QUICK else (256, 1024)
MiB = 2 ** 20
memory = {}
print(f"{'model':<25} {'layers':>6} " + " ".join(f"{'T=' + str(L) + ' (MiB)':>14} {'vs vanilla':>10}" for L in lengths))
for label, name, options in variants:
    n_layer = build_model(name, vocab_size=V, block_size=lengths[0], **options).config.n_layer
    cells = []
    for L in lengths:
        memory[label, L] = memory_by_scope(name, L, **options)
        total = sum(memory[label, L].values())
        ratio = total / sum(memory["vanilla 4", L].values())
        cells.append(f"{total / MiB:14.1f} {ratio:9.2f}x")
    print(f"{label:<25} {n_layer:6d} " + " ".join(cells))

L = lengths[-1]
print(f"\nwhere the top-down 2-2 model's memory goes at T={L}:")
for scope, nbytes in sorted(memory["top-down 2-2", L].items(), key=lambda kv: -kv[1]):
    print(f"  {scope or '(loss)':10} {nbytes / MiB:7.2f} MiB")

# %% [markdown]
# Read the table by rows. The two coarse layers of "2-2" cost far less than two token layers, so
# the model holds about 60 % of the vanilla model's memory at equal depth. The "6-2" model, twice
# as deep as the vanilla one, still holds less than it: depth at the coarse scale is cheap. The
# fine stack dominates what is left, and at long sequences its $T \times T$ attention dominates the
# fine stack: with a window of 32 tokens that part grows linearly in $T$, and the gap to the
# vanilla model widens as $T$ grows (the paper: "the gains matter more as sequences grow").

# %% [markdown]
# ## Check

# %%
assert walk_matches, "the step-by-step data flow should reproduce model(idx) exactly"
assert_causal(model, idx)   # raises AssertionError naming the first t that breaks a rule
assert math.isfinite(result["val_loss"]), "training diverged"
assert len({run["result"]["iter"] for run in runs.values()}) == 1, "both models train for the same steps"
if QUICK:
    assert result["val_loss"] < first_val_loss, "even a few steps should lower the valid loss"
else:
    assert result["val_loss"] < unigram_loss, (
        f"after {result['iter']} steps the top-down model (valid loss {result['val_loss']:.3f}) should "
        f"beat the unigram baseline ({unigram_loss:.3f})")
for L in lengths:
    vanilla_bytes = sum(memory["vanilla 4", L].values())
    assert sum(memory["top-down 2-2", L].values()) < vanilla_bytes, \
        f"at T={L} a top-down model should hold less activation memory than a vanilla one of equal depth"
print(f"Check passed: the top-down model is causal, trains (valid loss {result['val_loss']:.3f}), and holds "
      f"{sum(memory['top-down 2-2', L].values()) / sum(memory['vanilla 4', L].values()):.2f}x the "
      f"vanilla model's activation memory at equal depth (T={L}).")

# %% [markdown]
# ## Exercises
#
# Each exercise has a checker: `from lessons.support.exercises import check, help_for`, then
# `check("NN.i", your_answer)` prints *right* or what is off; `print(help_for("NN.i"))` shows what
# form the answer takes (a number, a dict with given keys, a function), not the answer itself.
# Reference solutions, for after you tried: `lessons/solutions.py`.
#
# 1. **The window.** Rebuild the memory table with `window=8, 32, 128` at $T = 1024$. Plot (or
#    print) the fine stack's bytes against the window. Is it linear in $w$?
#    *Hint:* `memory_by_scope("top-down", 1024, layout="2-2", window=w)["fine"]`; the query chunk of
#    local attention is `max(16, w)`, so very small windows flatten out.
#    *Check:* `check("08.1", {"T": 1024, "fine": {8: bytes, 32: bytes, 128: bytes}})`, measured with
#    this lesson's `memory_by_scope` (batch 2, 4 heads, width 64, V = 50).
# 2. **The other causal mode.** Build the model with `causal_mode="delay"` (block $j$ reaches the
#    tokens of block $j+1$, SampleRNN's tiers) and run `assert_causal`. Still causal? How stale is
#    its coarse context, against the shift's? Then train both modes with `train_same_budget` and
#    compare their valid losses and curves.
#    *Hint:* `delay` pools blocks as they stand and hands block $j$ to the positions of block $j+1$;
#    draw lesson 07's round trip for each mode, `upsample(shorten(eye, k), k)` and
#    `upsample(shift_right(shorten(eye, k, shift=False), 1), k)`, and read the newest token each row sees.
#    *Check:* `check("08.2", {"model": your_delay_model, "causal": True or False, "lag": {"shift": n,
#    "delay": n}})`; the checker runs its own perturbation test on your model.
# 3. **Three tiers.** Build `layout="2-2-2"` (two coarse scales, 6 layers) with `pool=4` and compare
#    its memory with `layout="4-2"` (one coarse scale, the same 6 layers): which holds less, and why?
#    Then train both with `train_same_budget` and compare their valid losses.
#    *Hint:* the coarsest blocks span $k^2 = 16$ tokens: `block_size` must be at least 16.
#    *Check:* `check("08.3", {"T": T, "2-2-2": bytes, "4-2": bytes})`: the total of
#    `memory_by_scope("top-down", T, layout=...)`, at any $T \ge 64$.
