# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # Lesson 09: the bottom-up model
#
# **What you'll learn**
# - the second multi-scale architecture: representations **pooled up** scale by scale, each scale
#   with its own stack of causal layers, then brought back to the tokens **all at once** by one
#   aggregation layer;
# - which coarse blocks each token may see in that aggregation, as a picture;
# - its data flow, shape by shape, stepping through the library's own modules;
# - a causality check, a short training run on Austen, and its memory against a vanilla model:
#   why this is the model that can be *deep and cheap* at the same time.
#
# **Where this sits.** `minims/models/bottom_up.py`, built from lesson 07's operators and the
# range attention of `minims/ops/range_attention.py` (`RangeAttention`, printed and checked in lesson 05,
# section 7: the aggregation layer's memory rests on it). The paper's headline model (30 layers, a smaller
# memory footprint than a vanilla model less than half as deep) is most naturally of this kind.

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

import numpy as np

import minims
from minims import Tensor
from minims.testing.causality import assert_causal, causality_report
from lessons.support.comparison import BASELINE, QUICK_SETTINGS, SETTINGS, train_same_budget
from lessons.support.comparison import report as report_runs
from minims.memory import activation_bytes
from minims.memory import saved_bytes
from minims.models import build_model
from lessons.support.figures import draw_dependencies, new_figure, read_log, save_figure
from minims.models.bottom_up import Aggregate, BottomUpLM, aggregate_ranges
from minims.functional import shorten

# %% [markdown]
# ## 1. The idea
#
# The paper describes its models as "interleaving causal transformer layers with pooling". Build
# the representation **from the bottom up**: a few token-level layers (`pre`, often none), then
# shorten to blocks of $k$ and run a stack of layers over the blocks, shorten that to blocks of
# $k^2$ and run another stack, and so on. Each shortening follows lesson 07's rule (shift by $k-1$
# in the scale's own units, then pool), so block $j$ of scale $s$ has seen tokens $\le j k^s$ only.
#
# Then every token must get the results back, and there are two ways. **Upsampling**
# (`combine="upsample"`, the Hourglass models' way and minims' default): each scale's output is
# upsampled straight to the tokens, offset $r$ inside a block getting its own learned map, and
# added to the fine stream. Or the paper's **aggregation layer** (`combine="aggregate"`), which
# does it at once: token $t$ attends, with one softmax, to its own fine
# vector and to *every* coarse block of *every* scale that it may see (those whose tokens are all
# $\le t$), each scale's keys tagged by a learned scale embedding. A few token-level layers (`post`)
# then predict the next token; they also read the newest tokens of the current block, which the
# coarse path has not seen yet. Which way is better was measured, not assumed: `python -m
# minims.experiment ablate` (lesson 11; table in `lessons/results/ablation.md`) trained both at the
# same depth and memory, and upsampling with learned maps won clearly at our scale (2.34 against
# 2.55 bits per character after 2,000 steps), so it is the default. This lesson walks through the aggregation layer, the more involved of the
# two (the upsampling path is lesson 08's `Unpool`).
#
# A layer at scale $s$ works on $T/k^s$ vectors, so it holds about $1/k^s$ of a token layer's
# activations and its attention matrix $1/k^{2s}$. That is the point: such a model can have many
# layers where they are cheap.
#
# ```
#  tokens --> wte + wpe --> pre layers (fine) --> x (B, T, C) ------------------------+
#                                                 |  shorten (shift k-1, pool)        |  queries and
#                                                 v                                   |  own fine key
#                              c1 (B, T/k, C) --> coarse stack 1 --> o1 ------------+ |
#                                                 |  shorten                        | |
#                                                 v                                 v v
#                            c2 (B, T/k^2, C) --> coarse stack 2 --> o2 -------> aggregate: token t attends
#                                                                                to every block of o1, o2
#                                                                                that ended by t, and to itself;
#                                                                                then a feed-forward
#                                                                                     |
#                                                              post layers (fine) <---+
#                                                                     |
#                                                            ln_f, lm_head --> logits (B, T, V)
# ```
#
# The library's forward pass (both ways) and the aggregation layer:

# %%
print(inspect.getsource(BottomUpLM.logits))
print(inspect.getsource(Aggregate.forward))

# %% [markdown]
# ## 2. What the aggregation layer lets each token see
#
# `aggregate_ranges` gives, for each token $t$ and each key set (its own fine key, then each scale),
# a range of keys $[lo, hi)$. For scale $s$, block $j$ ends at token $jk^s$ after the shift, so token
# $t$ sees blocks $0 \dots \lfloor t/k^s \rfloor$. Here for $T = 16$, $k = 2$, two scales: one row per
# token, one column per key (`#` seen, `.` not).

# %%
print(inspect.getsource(aggregate_ranges))

T_pic, k_pic = 16, 2
lengths_pic = (T_pic // k_pic, T_pic // k_pic ** 2)
ranges_pic = aggregate_ranges(T_pic, k_pic, lengths_pic)
labels = ["own key"] + [f"scale {s}: blocks of {k_pic ** s}" for s in (1, 2)]
widths = [max(len(label), n) for label, n in zip(labels, (1,) + lengths_pic)]
print(" " * 11 + "  ".join(f"{label:<{w}}" for label, w in zip(labels, widths)))
print(" " * 11 + "  ".join(f"{'':<{widths[0]}}" if n == 1 else f"{''.join(str(j) for j in range(n)):<{w}}"
                           for n, w in zip((1,) + lengths_pic, widths)))
for t in range(T_pic):
    cells = []
    for (lo, hi), n in zip(ranges_pic, (1,) + lengths_pic):
        if n == 1:   # the fine key set: token t sees exactly its own key
            cells.append("#" if (lo[t], hi[t]) == (t, t + 1) else "?")
        else:
            cells.append("".join("#" if lo[t] <= j < hi[t] else "." for j in range(n)))
    print(f"token {t:2d}:  " + "  ".join(f"{cell:<{w}}" for cell, w in zip(cells, widths)))

# %% [markdown]
# The same as pictures. Left: the keys each token sees, in key units (its own key, then the
# blocks of each scale). Right: what reaches token $t$ through each scale, in token units: input
# token $i$ feeds the blocks it is pooled into (`minims.functional.shorten`, lesson 07's operator), a
# block also reads the earlier blocks of its scale (the coarse stack is causal), and token $t$ reads
# the blocks it sees. Red would be a token from the future.

# %%
vis = [np.array([[lo[t] <= j < hi[t] for j in range(n)] for t in range(T_pic)])
       for (lo, hi), n in zip(ranges_pic[1:], lengths_pic)]                   # (T, n_s) per scale
reach, feeds = [], Tensor(np.eye(T_pic)[None])                                  # (1, T, T): token i alone
for s, v in enumerate(vis, 1):
    feeds = shorten(feeds, k_pic)                                               # block j <- tokens i
    feeds = Tensor(np.maximum.accumulate(feeds.numpy() != 0, axis=1).astype(float))   # + earlier blocks
    reach.append((v.astype(float) @ feeds.numpy()[0]) > 0)                     # token t <- tokens i, (T, T)
fig = new_figure(1, 3, figsize=(12, 4.2))
if fig is not None:
    ax = fig.axes[0]
    keys = np.concatenate([np.ones((T_pic, 1))] + [2.0 * v for v in vis], axis=1)   # own key 1, blocks 2
    ax.imshow(keys, cmap="Greys", vmin=0, vmax=2.5, interpolation="nearest")
    for edge in np.cumsum((1,) + lengths_pic)[:-1]:
        ax.axvline(edge - 0.5, color="tab:blue", lw=1)
    ax.set_xticks(range(keys.shape[1]), ["own"] + [str(j) for n in lengths_pic for j in range(n)], fontsize=6)
    ax.set_yticks(range(T_pic))
    ax.tick_params(labelsize=6)
    ax.set_xlabel("key: own | blocks of scale 1 | blocks of scale 2")
    ax.set_ylabel("token t")
    ax.set_title(f"keys token t sees in the aggregation\n(T={T_pic}, k={k_pic})", fontsize=9)
    for s in (1, 2):
        draw_dependencies(fig.axes[s], reach[s - 1], f"tokens reaching t through scale {s}")
    save_figure(fig, "09_aggregate_keys")
future_reach = sum(int(np.triu(r, 1).sum()) for r in reach)
print("tokens from the future reaching a token through the coarse path:", future_reach)

# %% [markdown]
# Token 0 already sees block 0 of each scale: after the shift, block 0 summarises only zeros and
# $h_0$. Token 2 sees scale-1 block 1, which summarises $h_1, h_2$. Everything a token sees has
# ended by $t$: the staircases on the right stay on or left of the diagonal, and each scale's
# steps are $k^s$ tokens wide (how stale that scale's news can be; the newest tokens arrive
# through the token's own key and the `post` layers). No row is empty (its own key is always
# there), so the softmax never divides 0 by 0.
#
# ## 3. The data flow, shape by shape
#
# A small model with two scales and the aggregation layer (`combine="aggregate"`): `layout="1-2-1-2"`
# means 1 `pre` layer, 2 layers at scale 1, 1 at scale 2, and 2 `post` layers, the first of which is
# the aggregation layer. We step through
# the same code with the model's own modules and check we get exactly its logits.

# %%
V, T, B, k = 50, 64, 2, 4
model = build_model("bottom-up", vocab_size=V, block_size=T, layout="1-2-1-2", pool=k,
                    combine="aggregate", n_head=2, n_embd=32, dtype="float64", seed=0)
model.eval()
idx = np.random.default_rng(0).integers(0, V, size=(B, T))


def show(step, name, tensor):
    print(f"{step:<44} {name:<3} {tensor.shape}")


with minims.no_grad():
    x = model.embed(idx)
    show("token + position embeddings", "", x)
    for block in model.pre:
        x = block(x)
    show(f"pre stack ({len(model.pre)} layer)", "x", x)
    c, outs = x, []
    for s, (pool, stack) in enumerate(zip(model.pool, model.coarse), 1):
        c = pool(c)
        show(f"shorten by k={k}: blocks of {k ** s} tokens", f"c{s}", c)
        for block in stack:
            c = block(c)
        outs.append(c)
        show(f"coarse stack of scale {s} ({len(stack)} layer{'s' * (len(stack) > 1)})", f"o{s}", c)
    x = model.aggregate(x, outs)
    show("aggregate: every token reads o1, o2", "", x)
    for block in model.post:
        x = block(x)
    show(f"post stack ({len(model.post)} layer after the aggregation)", "", x)
    logits = model.head(x)
    show("ln_f, lm_head: logits (B, T, V)", "", logits)
    walk_matches = np.array_equal(logits.numpy(), model(idx)[0].numpy())
print("the walk-through reproduces model(idx) exactly:", walk_matches)

# %% [markdown]
# ## 4. Is the whole model causal?
#
# The same black-box test as in lesson 08, from `minims/testing/causality.py`: for every $t$, change row 0's
# tokens from $t$ on. No logit before $t$ may move (float64, exact), row 1 must not move, and the
# logits at $t$ must.

# %%
report = causality_report(model, idx)
print(f"checked t = 0..{T - 1}: largest change before t = {report[:, 0].max():.1e}, "
      f"in the untouched row = {report[:, 2].max():.1e}, smallest change at t = {report[:, 1].min():.1e}")

# %% [markdown]
# ## 5. Training on Austen, beside a vanilla model
#
# The same comparison as in lesson 08, with the same settings, the same number of steps and the
# same 4-layer vanilla model (`lessons.support.comparison.train_same_budget`); only the model changes. Our
# bottom-up model "1-2-1" also has 4 layers: 1 pre, 2 coarse and 1 post. Options we do not give
# keep the model's defaults (upsampling back to the tokens), printed below. From a shell:
# `python -m minims.train --model bottom-up --layout 1-2-1 --block-size 128 --n-embd 64
# --batch-size 16 --max-iters 100 --lr 3e-3 --warmup-iters 10`.

# %%
settings = QUICK_SETTINGS if QUICK else SETTINGS
print("settings:", settings)
runs = train_same_budget({"bottom-up 1-2-1": ("bottom-up", dict(layout="1-2-1")), "vanilla 4": BASELINE},
                         "09", quick=QUICK, cache_dir=ROOT / ".cache")
bu_config = runs["bottom-up 1-2-1"]["model"].config
print(f"bottom-up defaults used: pool k={bu_config.pool}, pool_kind={bu_config.pool_kind!r}, "
      f"combine={bu_config.combine!r}, causal_mode={bu_config.causal_mode!r}")
result = runs["bottom-up 1-2-1"]["result"]
first_val_loss = read_log(runs["bottom-up 1-2-1"]["log"])[0]["val_loss"]
unigram_loss = report_runs(runs, "09",
                           title=f"lesson 09: bottom-up 1-2-1 and vanilla 4, {settings['max_iters']} steps each")

# %% [markdown]
# ## 6. Deep and cheap: memory against vanilla models
#
# We measure the activations held for backward for a vanilla model with 4 layers, a bottom-up
# model with the same 4 layers ("1-2-1": 1 pre, 2 coarse, and the aggregation layer), and a
# bottom-up model with **10** layers, 8 of them at the coarse scale ("1-8-1"). The measure is
# lesson 08's, packaged in the library as `minims.memory.activation_bytes` (lesson 11's
# experiment uses it): `saved_bytes` of one training forward pass on random tokens. Then we split
# the deep model's bytes by top-level module with `saved_bytes(loss, by="scope", depth=1)`.

# %%
variants = {"vanilla 4": ("vanilla", dict(n_layer=4)),
            "bottom-up 1-2-1": ("bottom-up", dict(layout="1-2-1")),
            "bottom-up 1-8-1": ("bottom-up", dict(layout="1-8-1"))}
lengths = (64, 128) if QUICK else (256, 1024)
MiB = 2 ** 20
memory = {}
print(f"{'model':<18} {'layers':>6} " + " ".join(f"{'T=' + str(L) + ' (MiB)':>14} {'vs vanilla':>10}" for L in lengths))
for label, (name, options) in variants.items():
    cells = []
    for L in lengths:
        net = build_model(name, vocab_size=V, block_size=L, n_head=4, n_embd=64, **options)
        memory[label, L], _ = activation_bytes(net, 2, L, V)          # all bytes (and the body's)
        cells.append(f"{memory[label, L] / MiB:14.1f} {memory[label, L] / memory['vanilla 4', L]:9.2f}x")
    print(f"{label:<18} {net.config.n_layer:6d} " + " ".join(cells))

L = lengths[-1]
deep_model = build_model("bottom-up", vocab_size=V, block_size=L, n_head=4, n_embd=64, layout="1-8-1")
ids = np.random.default_rng(0).integers(0, V, size=(2, L + 1))
_, loss = deep_model(ids[:, :-1], ids[:, 1:])
print(f"\nwhere the bottom-up 1-8-1 model's memory goes at T={L}:")
for scope, nbytes in sorted(saved_bytes(loss, by="scope", depth=1).items(), key=lambda kv: -kv[1]):
    if nbytes >= 0.005 * MiB:
        print(f"  {scope or '(loss)':10} {nbytes / MiB:7.2f} MiB")

# %% [markdown]
# Eight coarse layers together hold about as much as one or two token layers (compare `coarse` with
# `pre`, which is a single token layer), and the learned upsampling (`up`) is one matrix product per
# scale (with `combine="aggregate"`, the aggregation layer, whose attention spans only the
# $T/k + T/k^2 + \dots$ coarse keys, is cheap too). So the
# 10-layer bottom-up model holds less activation memory than the 4-layer vanilla one: the shape of
# the paper's headline comparison. Whether those cheap layers also buy perplexity is the question
# of lesson 11.
#
# `combine="aggregate"` keeps the paper's aggregation layer available as an option.

# %% [markdown]
# ## Check

# %%
assert future_reach == 0, "no token may reach another token before it through the coarse path"
assert walk_matches, "the step-by-step data flow should reproduce model(idx) exactly"
assert len({run["result"]["iter"] for run in runs.values()}) == 1, "both models train for the same steps"
assert_causal(model, idx)   # raises AssertionError naming the first t that breaks a rule
# Training: a few quick steps must lower the valid loss, a full run must beat the unigram baseline
# (a loss that is not finite already stops the trainer with an error).
target = first_val_loss if QUICK else unigram_loss
assert result["val_loss"] < target, (f"after {result['iter']} steps the bottom-up model's valid loss "
                                     f"{result['val_loss']:.3f} should be below {target:.3f}")
deep, vanilla = memory["bottom-up 1-8-1", L], memory["vanilla 4", L]
assert deep < vanilla, f"at T={L} the 10-layer bottom-up model should hold less memory than the 4-layer vanilla one"
print(f"Check passed: the bottom-up model is causal, trains (valid loss {result['val_loss']:.3f}), and "
      f"with 10 layers holds {deep / vanilla:.2f}x the activation memory of a 4-layer vanilla model (T={L}).")

# %% [markdown]
# ## Exercises
#
# Each exercise has a checker: `from lessons.support.exercises import check, help_for`, then
# `check("NN.i", your_answer)` prints *right* or what is off; `print(help_for("NN.i"))` shows what
# form the answer takes (a number, a dict with given keys, a function), not the answer itself.
# Reference solutions, for after you tried: `lessons/solutions.py`.
#
# 1. **Where is the break-even?** Keep `pre` and `post` at 1 and grow the coarse stack
#    ("1-8-1", "1-16-1", "1-32-1") at $T = 1024$. How deep can the bottom-up model go before it holds
#    more than the 4-layer vanilla model? *Hint:* a coarse layer at $k = 4$ holds a quarter of a
#    token layer's activations, and a sixteenth of its attention matrix; memory is linear in the
#    coarse depth, so two depths give the bytes of one coarse layer.
#    *Check:* `check("09.1", n)`: the largest `n` for which "1-n-1" holds no more than the vanilla
#    model (section 6's measure).
# 2. **Hourglass style.** Build `combine="upsample"` with `layout="1-2-1"` and compare its memory
#    with the aggregation version; then train both with `train_same_budget` and compare their
#    valid losses.
#    *Hint:* with `combine="upsample"` the post stack is all ordinary token layers, so "1-2-1" has one
#    more token-level layer than the aggregation version, where the first post layer *is* the aggregation.
#    *Check:* `check("09.2", {"T": T, "aggregate": bytes, "upsample": bytes})`, section 6's measure at
#    any $T \ge 64$.
# 3. **Another factor.** Redraw the aggregation picture of section 2 for $k = 3$, $T = 18$ and two
#    scales (`lengths = (6, 2)`). Which token is the first to see scale-2 block 1?
#    *Hint:* block $j$ of scale $s$ ends at token $jk^s$ after the shift.
#    *Check:* `check("09.3", t)`.
