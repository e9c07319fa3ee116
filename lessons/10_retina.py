# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # Lesson 10: the retina model
#
# **What you'll learn**
# - the third multi-scale architecture: one token-level stream, but each attention layer sees the
#   past at a **resolution that falls with distance**, like the retina: the last $w$ tokens one by
#   one, then blocks of $k$ tokens, then (with more scales) blocks of $k^2$ further back;
# - exactly which keys each query sees, drawn as a picture, and the two rules that make it right:
#   every past token is seen **exactly once**, and a block is seen only once it has **ended**;
# - one layer's data flow with shapes, a causality check, a short training run, and its memory
#   against a vanilla model: $O(T(w + T/k))$ per layer instead of $O(T^2)$.
#
# **Where this sits.** `minims/models/retina.py` (the attention layer and its key ranges) and
# `minims/ops/range_attention.py` (the range attention that stores only the keys each query uses).

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
import minims.functional as F
from minims.testing.causality import assert_causal, causality_report
from lessons.support.comparison import BASELINE, QUICK_SETTINGS, SETTINGS, train_same_budget
from lessons.support.comparison import report as report_runs
from minims.memory import activation_bytes
from lessons.support.figures import draw_key_sets, memory_axes, new_figure, read_log, save_figure
from minims.functional import range_attention
from minims.models import build_model
from minims.models.retina import RetinaAttention, retina_ranges

# %% [markdown]
# ## 1. The idea
#
# The paper's third family "compresses the representations of tokens further in the past". The
# top-down and bottom-up models keep separate coarse streams; the retina model keeps a single
# token-level stream, like the vanilla transformer, and changes only what attention looks at. Query
# $t$ attends to the most recent $w$ tokens at full resolution, and to everything older through
# **pooled keys and values**: each block of $k$ tokens of the same layer's input pooled into one
# vector (`pool_kind`: the mean, or a learned map; section 5 prints the default),
# mapped by the layer's own key and value projections. With more scales, blocks of $k^2$ cover what
# lies further back still. A layer then scores about $w + T/k$ keys per query instead of up to $T$.
#
# ```
#   one layer, query t (k = 4, window w = 6):
#
#   tokens   0 1 2 3 | 4 5 6 7 | 8 9 10 11 | 12 13 14 15 16 17 18 19 ... t
#            [block 0] [block 1] [ block 2 ] |<------ fine keys: w tokens ------>|
#            pooled    pooled    pooled       one key per token, up to t itself
#            \________ coarse keys: each block, pooled, that ended before the window
#
#   x (B, T, C) -> ln1 -> q, k, v (B, nh, T, hs)           fine keys and values
#             \--> pool blocks of k -> (B, T/k, C) -> the same key/value maps -> (B, nh, T/k, hs)
#   one softmax over [fine keys in the window] + [coarse keys before it] -> proj -> + x -> MLP
# ```
#
# The pooling here needs **no shift** (unlike lesson 07): a block is pooled as it stands, and the
# query decides which blocks it may use, from each block's **last** token (pitfall 8).
#
# ## 2. Which keys each query sees
#
# `retina_ranges` computes, for every query $t$, one range of keys per key set. For one coarse
# scale: the window starts at $a_t = k\lfloor \max(0, t-w+1)/k \rfloor$ (rounded *down* to a block
# start, so the window holds between $w$ and $w+k-1$ tokens); fine keys are $[a_t, t]$; coarse keys
# are the blocks $j < a_t/k$, every one of which has ended before $a_t$.

# %%
print(inspect.getsource(retina_ranges))

# %% [markdown]
# The picture: one row per query $t$, one column per **token** $i$. `o` = token $i$ is a fine key
# of query $t$; `1` = token $i$ reaches query $t$ inside a pooled block of $k$ (scale 1); `2` =
# inside a block of $k^2$ (scale 2); `.` = not seen (the future). We also count the keys per query
# against the $t+1$ of dense causal attention, and check the two rules: every token $\le t$ is
# covered exactly once, and no block reaches past $t$.

# %%
def retina_picture(T, k, window, n_scales=1, band=2, show=True):
    """Draw which tokens each query sees and through what; return the problems found."""
    ranges = retina_ranges(T, k, window, n_scales, band)
    problems = []
    if show:
        print(f"T={T}, k={k}, window={window}, n_scales={n_scales}" + (f", band={band}" if n_scales > 1 else ""))
        print("          i = " + "".join(str(i % 10) for i in range(T)) + "   keys (dense)")
    for t in range(T):
        row, covered, n_keys = ["."] * T, np.zeros(T, int), 0
        for s, (lo, hi) in enumerate(ranges):
            K = k ** s                                         # tokens per key in this set
            for j in range(lo[t], hi[t]):
                n_keys += 1
                first, last = j * K, (j + 1) * K - 1           # the tokens key j of scale s stands for
                if last > t:
                    problems.append(f"query {t} sees a block of scale {s} that ends at {last}")
                for i in range(first, min(last, T - 1) + 1):
                    covered[i] += 1
                    row[i] = "o" if s == 0 else str(s)
        if (covered[:t + 1] != 1).any():
            problems.append(f"query {t}: tokens covered {covered[:t + 1].tolist()} times")
        if show:
            print(f"  query t={t:2d}  " + "".join(row) + f"   {n_keys:3d} ({t + 1})")
    return problems


problems_1 = retina_picture(24, k=4, window=6)
print()
problems_2 = retina_picture(32 if QUICK else 40, k=2, window=4, n_scales=2, band=1)
print("problems found:", problems_1 + problems_2 or "none")


def key_sets(T, k, window, n_scales=1, band=2):
    """(T, T) ints: 0 = token i not seen by query t, 1 = a fine key, s + 1 = inside a block of scale s."""
    out = np.zeros((T, T), int)
    for s, (lo, hi) in enumerate(retina_ranges(T, k, window, n_scales, band)):
        for t in range(T):
            for j in range(lo[t], hi[t]):
                out[t, j * k ** s:(j + 1) * k ** s] = s + 1
    return out


fig = new_figure(1, 2, figsize=(11, 5))
if fig is not None:
    draw_key_sets(fig.axes[0], key_sets(24, 4, 6), ["fine key", "block of k=4"],
                  "retina keys: T=24, k=4, window 6")
    T2 = 32 if QUICK else 40
    draw_key_sets(fig.axes[1], key_sets(T2, 2, 4, n_scales=2, band=1),
                  ["fine key", "block of k=2", "block of k²=4"], f"two scales: T={T2}, k=2, window 4, band 1")
    save_figure(fig, "10_retina_keys")

# %% [markdown]
# Read a row from the right: the newest tokens one by one (`o`), then whole blocks. As $t$ grows,
# a block leaves the window only once the window has moved past all of it, and from then on it is
# seen as one pooled key. With two scales, a **band** of $m k^2$ to $(m+1) k^2$ tokens just before the
# window is kept in blocks of $k$ (`band=m`), and everything older arrives in blocks of $k^2$; all
# boundaries are multiples of the coarser block size, so blocks never overlap. The exact partition
# for any number of scales is our own rule (the paper does not give one), in the source above.
# The figure shows the same pictures: colour tells through which key set a token reaches the query,
# and a red outline would mark a block that ends after $t$.
#
# ## 3. One layer, shape by shape
#
# The layer's code (its `attend`: the projections and the head split around it are the attention
# template's, lesson 05), then a walk through it with a small model. The last line checks that the walk
# gives exactly what the layer gives. The attention itself is `range_attention`, one softmax over
# a range of keys per key set, computed by the `RangeAttention` op that lesson 05 (section 7)
# printed and checked against dense attention: it walks the queries in chunks and keeps for
# backward only the probabilities of the key slices each chunk uses. The memory of section 6
# rests on it.

# %%
print(inspect.getsource(RetinaAttention.attend))
print(inspect.getsource(range_attention))

# %%
V, T, B, k, window = 50, 64, 2, 4, 8
# one coarse scale keeps the walk-through short (the default has two: each adds one more pooled
# key set, built the same way from the previous scale's pooled input)
model = build_model("retina", vocab_size=V, block_size=T, n_layer=2, pool=k, window=window,
                    n_scales=1, n_head=2, n_embd=32, dtype="float64", seed=0)
model.eval()
idx = np.random.default_rng(0).integers(0, V, size=(B, T))
attn = model.blocks[0].attn


def show(step, tensor_or_shape):
    shape = getattr(tensor_or_shape, "shape", tensor_or_shape)
    print(f"{step:<52} {shape}")


with minims.no_grad():
    x = model.embed(idx)
    h = model.blocks[0].ln1(x)
    show("layer input after ln1: h", h)
    C, nh = h.shape[-1], attn.n_head
    qkv = attn.qkv(h).reshape(B, T, 3, nh, C // nh).transpose(2, 0, 3, 1, 4)
    show("fine queries, keys, values (each)", qkv[0])
    pooled = attn.pool[0](h)
    show(f"h pooled in blocks of k={k} (no shift)", pooled)
    kv = F.linear(pooled, attn.qkv.weight[:, C:], attn.qkv.bias[C:])
    kv = kv.reshape(B, -1, 2, nh, C // nh).transpose(2, 0, 3, 1, 4)
    show("coarse keys, values (the same maps)", kv[0])
    ranges = retina_ranges(T, k, window)
    n_keys = sum(np.maximum(hi - lo, 0) for lo, hi in ranges)
    print(f"{'keys per query (fine + coarse)':<52} at most {n_keys.max()}, mean {n_keys.mean():.1f} "
          f"(dense causal: up to {T})")
    y = range_attention(qkv[0], [(qkv[1], qkv[2]), (kv[0], kv[1])], ranges, attn.chunk)
    show("attention output", y)
    out = attn.proj(y.transpose(0, 2, 1, 3).reshape(B, T, C))
    show("heads joined, proj: the layer's output", out)
    walk_matches = np.array_equal(out.numpy(), attn(h).numpy())
print("the walk-through reproduces the layer exactly:", walk_matches)

# %% [markdown]
# ## 4. Is the whole model causal?
#
# The same black-box test as in lessons 08 and 09, from `minims/testing/causality.py`: for every $t$, change
# row 0's tokens from $t$ on; nothing before $t$ may move (float64, exact), nor row 1; the logits at
# $t$ must move. Masked keys get $-\infty$ before the softmax, so their weights are exactly 0, not
# merely small.

# %%
report = causality_report(model, idx)
print(f"checked t = 0..{T - 1}: largest change before t = {report[:, 0].max():.1e}, "
      f"in the untouched row = {report[:, 2].max():.1e}, smallest change at t = {report[:, 1].min():.1e}")

# %% [markdown]
# ## 5. Training on Austen, beside a vanilla model
#
# The comparison of lessons 08 and 09, with the same settings, the same number of steps and the
# same 4-layer vanilla model (`lessons.support.comparison.train_same_budget`). Our retina model has 4
# layers and a window of 32 tokens; the pooling factor and the kind of pooling keep the model's
# defaults, printed below. From a shell: `python -m minims.train --model retina --n-layer 4
# --window 32 --block-size 128 --n-embd 64 --batch-size 16 --max-iters 100 --lr 3e-3 --warmup-iters 10`.

# %%
settings = QUICK_SETTINGS if QUICK else SETTINGS
print("settings:", settings)
retina_options = dict(n_layer=4, window=8 if QUICK else 32)
runs = train_same_budget({"retina 4": ("retina", retina_options), "vanilla 4": BASELINE},
                         "10", quick=QUICK, cache_dir=ROOT / ".cache")
rt_config = runs["retina 4"]["model"].config
print(f"retina defaults used: pool k={rt_config.pool}, pool_kind={rt_config.pool_kind!r}, "
      f"n_scales={rt_config.n_scales}, window={rt_config.window}")
result = runs["retina 4"]["result"]
first_val_loss = read_log(runs["retina 4"]["log"])[0]["val_loss"]
unigram_loss = report_runs(runs, "10",
                           title=f"lesson 10: retina 4 and vanilla 4, {settings['max_iters']} steps each")

# %% [markdown]
# At $T = 128$ with a window of 32, most of a character's useful context is inside the window, so
# the two models see nearly the same context here. The retina model's difference is the memory at
# long $T$.
#
# ## 6. Memory against a vanilla model of the same depth
#
# Four vanilla layers against four retina layers (window 32, $k = 4$), with one and with two coarse
# scales, at two sequence lengths. The measure is lesson 08's (the bytes `saved_bytes` counts after
# one training forward pass on random tokens), as the library packages it for lesson 11's
# experiment: `minims.memory.activation_bytes` gives all the bytes and those of the body (the
# layers without the output head and the loss); we use all of them. Next to each, the keys one
# query scores.

# %%
def held_bytes(name, T, **options):
    model = build_model(name, vocab_size=V, block_size=T, n_head=4, n_embd=64, **options)
    return activation_bytes(model, 2, T, V)[0]                 # [1] would be the body's bytes


variants = [("vanilla 4", "vanilla", dict(n_layer=4)),
            ("retina 4, 1 scale", "retina", dict(n_layer=4, window=32, n_scales=1)),
            ("retina 4, 2 scales", "retina", dict(n_layer=4, window=32, n_scales=2))]
lengths = (64, 256) if QUICK else (256, 1024)   # quick: at T = 128 the gain is not there yet
MiB = 2 ** 20
memory = {}
print(f"{'model':<20} " + " ".join(f"{'T=' + str(L) + ' (MiB)':>14} {'vs vanilla':>10} {'keys/query':>10}"
                                   for L in lengths))
for label, name, options in variants:
    cells = []
    for L in lengths:
        memory[label, L] = held_bytes(name, L, **options)
        if name == "vanilla":
            keys = (L + 1) / 2                                # causal: t + 1 keys, on average
        else:
            rs = retina_ranges(L, 4, options["window"], options.get("n_scales", 1), 2)
            keys = sum(np.maximum(hi - lo, 0) for lo, hi in rs).mean()
        cells.append(f"{memory[label, L] / MiB:14.1f} {memory[label, L] / memory['vanilla 4', L]:9.2f}x "
                     f"{keys:10.1f}")
    print(f"{label:<20} " + " ".join(cells))

# %% [markdown]
# More lengths give the law: on log–log axes a power law $y = aT^p$ is a straight line of slope
# $p$. We add the lengths in between, fit a line to $\log y$ against $\log T$ for each model, and
# draw the points with the fitted slopes.

# %%
sweep = sorted(set(lengths) | {2 * lengths[0], lengths[-1] // 2})
for label, name, options in variants:
    for L in sweep:
        if (label, L) not in memory:
            memory[label, L] = held_bytes(name, L, **options)
slopes = {label: np.polyfit(np.log(sweep), np.log([memory[label, L] for L in sweep]), 1)[0]
          for label, _, _ in variants}
for label, slope in slopes.items():
    print(f"{label:<20} memory ~ T^{slope:.2f} over T = {sweep[0]}..{sweep[-1]}")
fig = new_figure(figsize=(5.8, 4.2))
if fig is not None:
    from matplotlib.ticker import FuncFormatter
    ax = fig.axes[0]
    for (label, _, _), marker in zip(variants, "os^"):
        ax.loglog(sweep, [memory[label, L] / MiB for L in sweep], marker=marker,
                  label=f"{label}: slope {slopes[label]:.2f}")
    ax.yaxis.set_major_formatter(FuncFormatter(lambda y, _: f"{y:g}"))   # 20, 30, ... not 2x10^1
    ax.yaxis.set_minor_formatter(FuncFormatter(lambda y, _: f"{y:g}"))
    memory_axes(ax, sweep, "4 layers, width 64, batch 2: memory against T", ylabel="activation memory (MiB)")
    save_figure(fig, "10_memory_loglog")

# %% [markdown]
# At $T = 256$ the window and the $T/k$ pooled keys are not much fewer than the $T$ keys of dense
# attention, and the gain is modest. Make $T$ four times longer and a vanilla layer's attention
# matrix grows 16-fold, while the retina model's keys per query grow less than 3-fold; a second
# scale cuts the coarse keys again (blocks of $k^2$ far back). Vanilla attention stores most of the
# $T \times T$ matrix, masked part included (it runs in bands of 32 queries, each with the keys up
# to its end: a little over half the matrix, still quadratic); range attention stores
# only the slices of keys each chunk of queries uses.

# %% [markdown]
# ## Check

# %%
assert not problems_1 and not problems_2, f"the retina ranges break a rule: {(problems_1 + problems_2)[:3]}"
assert walk_matches, "the step-by-step layer should reproduce RetinaAttention exactly"
assert len({run["result"]["iter"] for run in runs.values()}) == 1, "both models train for the same steps"
assert_causal(model, idx)   # raises AssertionError naming the first t that breaks a rule
# Training: a few quick steps must lower the valid loss, a full run must beat the unigram baseline.
target = first_val_loss if QUICK else unigram_loss
assert result["val_loss"] < target, (f"after {result['iter']} steps the retina model's valid loss "
                                     f"{result['val_loss']:.3f} should be below {target:.3f}")
L = lengths[-1]
assert memory["retina 4, 1 scale", L] < memory["vanilla 4", L], \
    f"at T={L} the retina model should hold less activation memory than a vanilla one of equal depth"
assert slopes["retina 4, 1 scale"] < slopes["vanilla 4"], "the retina model's memory should grow more slowly with T"
print(f"Check passed: every past token is seen exactly once, the retina model is causal, trains "
      f"(valid loss {result['val_loss']:.3f}), and holds {memory['retina 4, 1 scale', L] / memory['vanilla 4', L]:.2f}x "
      f"the vanilla model's activation memory at T={L}.")

# %% [markdown]
# ## Exercises
#
# Each exercise has a checker: `from lessons.support.exercises import check, help_for`, then
# `check("NN.i", your_answer)` prints *right* or what is off; `print(help_for("NN.i"))` shows what
# form the answer takes (a number, a dict with given keys, a function), not the answer itself.
# Reference solutions, for after you tried: `lessons/solutions.py`.
#
# 1. **The leaky mask (pitfall 8).** Change the rule in a copy of `retina_picture`: let the window
#    start at $a = t-w+1$ (fine keys $\max(0, a) \dots t$, not rounded to a block start) and show
#    block $j$ when it *starts* before $a$ ($jk < a$). Draw it for $T = 24$, $k = 4$, $w = 2$. Which
#    rows see a token twice, and which see the future? *Hint:* a block that starts before $a$ may
#    end after $t$ when $w < k$.
#    *Check:* `check("10.1", {"twice": [t, ...], "future": [t, ...]})`.
# 2. **How memory grows with T.** Use the line fitted in section 6 to predict the retina model's
#    memory at $T = 2048$, then measure it: `held_bytes("retina", 2048, n_layer=4, window=32)`.
#    How close is the prediction? Do the same for the vanilla model: does its line still hold?
#    *Hint:* `np.exp(np.polyval(np.polyfit(np.log(Ts), np.log(bytes), 1), np.log(2048)))`;
#    `python -m minims.bench memory` measures every model.
#    *Check:* `check("10.2", {"T": 2048, "predicted": bytes, "measured": bytes})` (retina, one scale).
# 3. **Window against pooling.** Count the keys per query at $T = 128$ for `window=8` and
#    `window=64` (`retina_ranges`, the model's default `pool`, one scale); then train both with
#    `train_same_budget` and compare with the vanilla model. Which loses more: a narrow window
#    (more of the context pooled), or a wide one?
#    *Hint:* for characters most of the signal is in the last few dozen characters.
#    *Check:* `check("10.3", {"keys": {8: mean keys per query, 64: mean keys per query}})`.
