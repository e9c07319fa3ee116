# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # Lesson 07: changing scale without looking into the future
#
# **What you'll learn**
# - the two operators every multi-scale model is built from: **shorten** (B, T, C) → (B, T/k, C)
#   and **upsample** (B, T/k, C) → (B, T, C), read from the library's own source;
# - why shortening must **shift the sequence right by k−1** before pooling, worked out on the
#   paper's example k = 2, T = 8, position by position;
# - how to *see* which tokens each position depends on (push an identity matrix through the ops),
#   and how to *test* it: perturb token t, and no output before t may change, exactly, in float64;
# - a deliberately broken version without the shift, which fails that test, and the list of
#   the other ways implementations leak.
#
# **Where this sits.** `minims/ops/pooling.py`. Lessons 08–10 build the paper's three multi-scale models
# (Subramanian et al. 2020) from these operators. A language model that leaks (lets position t see
# token t+1, the very token it must predict) trains to a wonderful loss and is worthless, so we
# learn to catch leaks before we train anything.

# %%
import os
import sys
from pathlib import Path

# Make `import minims` work from a fresh clone (before `pip install -e .`), as a script or a notebook.
HERE = Path(__file__).resolve().parent if "__file__" in globals() else Path.cwd()
ROOT = next((p for p in (HERE, *HERE.parents) if (p / "minims").is_dir()), HERE)
sys.path.insert(0, str(ROOT))
QUICK = os.environ.get("MINIMS_QUICK") == "1"  # the test suite's fast mode: shorter sequences
# Small matrices: BLAS threads gain nothing and fight other processes for the cores (see lesson 06).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import inspect

import numpy as np

import minims
from minims import Tensor
from minims.nn import Block, Embedding, Linear, Module, init_parameters
from lessons.support.figures import draw_dependencies, new_figure, save_figure
from minims.functional import shift_right, shorten, upsample
from minims.ops.pooling import ShiftPool, Upsample

# %% [markdown]
# ## 1. The rule
#
# Our convention since lesson 06: the logits at position $t$ predict $x_{t+1}$, so they may depend on
# $x_0 \dots x_t$ and nothing later. Causal attention keeps that promise *within* one scale. The
# danger is the change of scale. A coarse vector summarises a block of $k$ tokens; if it is handed
# back to a position *inside* its block, that position sees the rest of the block: its future.
#
# The recipe (the paper's models need it at every change of scale; the Hourglass models use it too):
#
# 1. **Shorten**: shift the sequence right by $k-1$ (zeros enter at the start, the last $k-1$
#    positions fall off), then average each block of $k$ neighbours. Coarse $j$ then summarises
#    $h_{jk-k+1} \dots h_{jk}$: it ends at position $jk$, the *first* position of block $j$.
# 2. Any number of **causal layers at the coarse scale**: coarse $j$ attends to coarse $0 \dots j$,
#    so it depends on tokens $\le jk$.
# 3. **Upsample**: fine positions $jk \dots jk+k-1$ all receive coarse $j$ (repeat it $k$ times).
#    Each of them is $\ge jk$, so nothing from the future arrives.
#
# Here are the library's functions:

# %%
print(inspect.getsource(shorten))
print(inspect.getsource(upsample))

# %% [markdown]
# They call two ops, each a `Function` with a hand-written backward (lesson 02). `ShiftPool` is
# linear, so it saves nothing for backward; `Upsample`'s backward adds up the $k$ copies with a
# reshape and a sum (never `dx[idx] += dy` with repeated indices, which drops updates: lesson 00).

# %%
print(inspect.getsource(ShiftPool))
print(inspect.getsource(Upsample))

# %% [markdown]
# ## 2. The worked example: k = 2, T = 8
#
# Let $h_t$ be the value at position $t$. We give position $t$ the value $t+1$ (so that position 0
# is not confused with the zeros that the shift brings in) and run the two ops:

# %%
k, T = 2, 8
h = Tensor(np.arange(1.0, T + 1).reshape(1, T, 1))           # (B=1, T=8, C=1), h_t = t + 1
coarse = shorten(h, k)                                        # (1, 4, 1)
back = upsample(coarse, k)                                    # (1, 8, 1)
print("h_t = t + 1:          ", h.numpy()[0, :, 0])
print("shifted right by k-1: ", np.concatenate([[0.0], h.numpy()[0, :-1, 0]]))
print("shorten (mean of 2):  ", coarse.numpy()[0, :, 0])
print("upsample (repeat 2):  ", back.numpy()[0, :, 0])

# %% [markdown]
# The numbers are hard to read as *dependencies*. A better probe: let the $C$ channels be the
# positions themselves, $h = I$ (the identity, shape (1, T, T)): channel $i$ of $h_t$ is 1 iff
# $t = i$. Both ops are linear and act on every channel alike, so channel $i$ of the output at
# position $t$ is the weight with which $h_i$ reaches position $t$. Nonzero means "depends on".

# %%
def sources(out_row):
    """The positions i whose h_i reach this output (nonzero weight)."""
    return [int(i) for i in np.flatnonzero(out_row)]


eye = Tensor(np.eye(T)[None])                                 # (1, T, T): h_t = e_t
c = shorten(eye, k).numpy()[0]                                # (T/k, T): coarse j ← which h_i
up = upsample(Tensor(c[None]), k).numpy()[0]                  # (T, T):   fine t  ← which h_i
for j in range(T // k):
    inputs = ", ".join(f"h{i}" for i in sources(c[j])) or "-"
    print(f"c{j} = mean(0 [shifted-in zero], {inputs})" if j == 0 else f"c{j} = mean({inputs})")
print()
for t in range(T):
    seen = sources(up[t])
    print(f"position {t} <- c{t // k}, which sees h{seen[0]}..h{seen[-1]}   "
          f"(newest token {max(seen)} <= {t}: {'ok' if max(seen) <= t else 'LEAK'})")

# %% [markdown]
# So: positions 0,1 ← $c_0$ (sees up to $h_0$); 2,3 ← $c_1$ ($h_2$);
# 4,5 ← $c_2$ ($h_4$); 6,7 ← $c_3$ ($h_6$). Notice that position 1 does **not** see $h_1$, its own
# token, through this path: the coarse path is always a little stale. That is why every model keeps
# a **fine residual stream** (the token embeddings, or fine layers) beside it: the fine stream
# carries the newest tokens, the coarse one the long-range context.
#
# As a picture: rows are output positions $t$, columns the positions $i$ they depend on. A causal
# operator has nothing to the right of the diagonal (`\`). We mark dependencies with `#`, and a
# dependency on the future with `!`.

# %%
def dependency_picture(matrix, title):
    """Rows: output positions t; columns: input positions i. '#' depends, '!' depends on i > t."""
    n = matrix.shape[1]
    print(title)
    print("       i = " + "".join(str(i % 10) for i in range(n)))
    for t, row in enumerate(matrix):
        cells = ["!" if (row[i] != 0 and i > t) else "#" if row[i] != 0 else
                 "\\" if i == t else "." for i in range(n)]
        print(f"  t = {t:2d}   " + "".join(cells))
    leaks = int(sum((matrix[t, t + 1:] != 0).sum() for t in range(matrix.shape[0])))
    print(f"  dependencies on the future: {leaks}\n")
    return leaks


leaks_correct = dependency_picture(up, "shift by k-1, pool, repeat (the library):")

# %% [markdown]
# ## 3. A deliberately broken version: no shift
#
# The most common mistake (pitfall 1 in section 5) is to pool each block as it stands:
# $c_0 = \text{mean}(h_0, h_1)$. Then position 0 receives $h_1$, the token it is supposed to predict.
# We build it here **on purpose**, from Tensor primitives, to watch the tests catch it. It is never
# in the library.

# %%
def shorten_without_shift(x, k):
    """DELIBERATELY BROKEN (a leak, for this lesson only): mean of each block of k, no shift."""
    B, T, C = x.shape
    return x.reshape(B, T // k, k, C).mean(axis=2)          # (B, T/k, C): block j = h_jk..h_jk+k-1


up_broken = upsample(shorten_without_shift(eye, k), k).numpy()[0]
leaks_broken = dependency_picture(up_broken, "pool without the shift (BROKEN):")

# %% [markdown]
# The two pictures side by side as an image: dark cells are dependencies on the past (or the
# present), red cells dependencies on the future; the blue line is the diagonal $i = t$. A causal
# operator has nothing red, that is nothing right of the line.

# %%
fig = new_figure(1, 2, figsize=(8, 4))
if fig is not None:
    draw_dependencies(fig.axes[0], up, f"shift by k-1, pool, repeat (k={k})")
    draw_dependencies(fig.axes[1], up_broken, f"pool without the shift (BROKEN, k={k})")
    save_figure(fig, "07_dependencies")

# %% [markdown]
# Every position at the start of a block sees the rest of its block: with $k = 2$, positions
# 0, 2, 4, 6 each see the next token. (The same pooling *is* causal when block $j$ is handed only
# to positions after its last token: the retina model's coarse keys do that, and so does the
# "delay" mode, `Unpool(..., delay=True)`, which gives block $j$ to block $j+1$. Exercise 2.)
#
# ## 4. The leak test
#
# Pictures are for operators; for a whole network we need a test that treats it as a black box.
# The property: **change the tokens from position t on, and no
# logit at a position before t may change.** In float64 the comparison is *exact*: the logits
# before $t$ come from the very same arithmetic on the very same numbers, so even a leak of 1e-15
# shows. (In float32 with a tolerance, a small leak hides in the noise.)
#
# We wrap each version in the smallest network that uses it: token and position embeddings →
# shorten → one causal transformer block at the coarse scale → upsample → a linear head. There is
# no fine residual, so the logits see the tokens only through the round trip.

# %%
V, C = 11, 16


class RoundTrip(Module):
    """Tokens → embeddings → `shorten_fn` → one causal Block at the coarse scale → upsample → logits."""

    def __init__(self, shorten_fn, k, seed=0):
        super().__init__()
        self.k = k
        object.__setattr__(self, "shorten_fn", shorten_fn)   # a plain function, not a module
        self.wte = Embedding(V, C)
        self.wpe = Embedding(64, C)
        self.coarse = Block(C, n_head=2)
        self.head = Linear(C, V)
        init_parameters(self, seed=seed, dtype="float64")     # float64: exact comparisons
        self.eval()

    def forward(self, idx):
        T = idx.shape[1]
        x = self.wte(idx) + self.wpe(np.arange(T))            # (B, T, C)
        c = self.coarse(self.shorten_fn(x, self.k))           # (B, T/k, C), causal at the coarse scale
        return self.head(upsample(c, self.k))                 # (B, T, V)


def changed_before(model, idx, t, seed=0):
    """Change the tokens of row 0 from position t on; return the positions < t whose logits moved
    (and whether row 1, which we did not touch, moved: batch rows must not mix)."""
    other = idx.copy()
    other[0, t:] = (idx[0, t:] + np.random.default_rng(seed).integers(1, V, size=idx.shape[1] - t)) % V
    with minims.no_grad():
        a, b = model(idx).numpy(), model(other).numpy()
    moved = np.abs(a[0, :t] - b[0, :t]).max(axis=-1) != 0    # exact, not a tolerance
    return [int(s) for s in np.flatnonzero(moved)], bool((a[1] != b[1]).any())


T_test = 12 if QUICK else 24
k_test = 3
idx = np.random.default_rng(1).integers(0, V, size=(2, T_test))
correct = RoundTrip(shorten, k_test)
broken = RoundTrip(shorten_without_shift, k_test)   # same seed: the very same weights

print(f"k={k_test}, T={T_test}: change tokens >= t; which logits before t moved?")
print(f"{'t':>3}  {'shift, pool, repeat':<22} {'no shift (BROKEN)':<22}")
failures = {"correct": [], "broken": []}
for t in range(1, T_test):
    row = []
    for name, model in (("correct", correct), ("broken", broken)):
        moved, row1 = changed_before(model, idx, t)
        if moved or row1:
            failures[name].append(t)
        row.append(("LEAK at " + str(moved)) if moved else "none")
    print(f"{t:3d}  {row[0]:<22} {row[1]:<22}")
print(f"\nthe correct round trip leaks at {len(failures['correct'])} positions, "
      f"the broken one at {len(failures['broken'])}: t = {failures['broken']}")

# %% [markdown]
# The broken version fails exactly where the picture said it would: changing token $t$ inside a
# block moves the logits of the earlier positions of the same block ($t \bmod k \neq 0$). Leaks live
# at **block edges**, which is why the project's test (the checks of `minims/testing/causality.py`, run on
# every model and on every operator in `tests/test_scale.py`) draws $t$ near $jk-1, jk, jk+1$. It also checks:
# that the logits at $t$ *do* change when only $x_t$ changes (a model that shifted too far would
# pass the invariance test while wasting its input); that the gradient from logits[s] is exactly
# zero at positions after $s$; and that a prefix gives the same logits as the full sequence, which
# `generate` relies on.
#
# ## 5. The pitfalls, briefly
#
# No public implementation of this paper exists; these are the ways implementations of its peers
# (Hourglass, MEGABYTE, SpaceByte) go wrong, and how `minims/ops/pooling.py` avoids each:
#
# 1. **No shift, or a shift of k−2**: block-start positions see their own target (above).
# 2. **Several scales, shifting only at the first**: pooling the pooled sequence again needs its own
#    shift by $k-1$ *in coarse units*. `shorten` applied twice does that (exercise 1).
# 3. **Pooling the wrong axis**: `reshape(B, T/k, k, C)` groups neighbours; `reshape(B, k, T/k, C)`
#    groups positions $j, j+T/k, \dots$ and leaks badly.
# 4. **Upsample backward with a fancy-index `+=`**: repeated indices drop updates in NumPy (and are
#    undefined in CuPy). `Upsample.backward` uses a reshape and a sum.
# 5. **Lengths not divisible by k**: pad at the **end**, crop after upsampling (`pad=True`,
#    `upsample(..., T=...)`). Padding at the front moves block boundaries, so a prompt would be cut
#    into different blocks in generation than in training.
# 6. **k = 1**: `x[:, :-0]` is empty in NumPy; the zero shift is a special case.
# 7. **Learned (convolutional) pooling** must pad $k-1$ on the *left*, never "same" padding
#    (`Pool(kind="linear")`).
# 8. **Retina masks** decide a block's visibility from its **last** token, not its first (lesson 10).
# 9. **No statistics over time**: no BatchNorm over the sequence, no mean over $T$.
#
# Pitfall 5 in action, T = 10 and k = 4 (two zeros appended, three blocks, cropped back to 10):

# %%
h10 = Tensor(np.arange(1.0, 11).reshape(1, 10, 1))
c10 = shorten(h10, 4, pad=True)
print("shorten(pad=True):", c10.numpy()[0, :, 0], "| upsample(T=10):", upsample(c10, 4, T=10).numpy()[0, :, 0])

# %% [markdown]
# ## Check

# %%
assert coarse.numpy()[0, :, 0].tolist() == [0.5, 2.5, 4.5, 6.5], \
    "shorten(k=2) of h_t = t+1 should be c = [(0+1)/2, (2+3)/2, (4+5)/2, (6+7)/2]"
assert leaks_correct == 0, "shift-pool-repeat must not depend on any future position"
assert leaks_broken > 0, "pooling without the shift should depend on the future (it is the broken variant)"
assert failures["correct"] == [], f"the library's round trip leaked at t = {failures['correct']}"
assert failures["broken"], "the leak test should have caught the unshifted pooling"
assert all(t % k_test for t in failures["broken"]), "the broken variant should leak inside blocks only"
print(f"Check passed: the library's shorten/upsample are causal; pooling without the shift leaks "
      f"at {len(failures['broken'])} positions and the leak test catches it.")

# %% [markdown]
# ## Exercises
#
# Each exercise has a checker: `from lessons.support.exercises import check, help_for`, then
# `check("NN.i", your_answer)` prints *right* or what is off; `print(help_for("NN.i"))` shows what
# form the answer takes (a number, a dict with given keys, a function), not the answer itself.
# Reference solutions, for after you tried: `lessons/solutions.py`.
#
# 1. **Two scales (pitfall 2).** Draw `dependency_picture` for `upsample(shorten(shorten(eye, 2), 2), 4)`
#    with `T = 16`: causal? Then build the broken variant "shift at the first level only":
#    `shorten_without_shift(shorten(eye, 2), 2)`, and find the leaking rows.
#    *Hint:* the second pooling works in units of blocks: it needs its own shift by $k-1$ blocks.
#    *Check:* `check("07.1", {"causal": ..., "leaking_rows": [...]})`.
# 2. **The other causal option (delay).** Pool without the shift, but give block $j$ to the fine
#    positions of block $j+1$: `minims.nn.pooling.Unpool(C, k, delay=True)(shorten(x, k, shift=False), T)`.
#    Draw its picture for $k = 2$, $T = 8$ and compare with the shift recipe: which one is staler?
#    *Hint:* `Unpool` is a module with no parameters in its "repeat" kind; call it on `Tensor(c[None])`.
#    *Check:* `check("07.2", "delay" or "shift")`.
# 3. **The strided mistake (pitfall 3).** Write `shorten_strided(x, k)`: the shift
#    `minims.functional.shift_right(x, k - 1)` (imported above), then `.reshape(B, k, T // k, C).mean(axis=1)`;
#    put it in `RoundTrip` and run the leak test. At how many positions does it leak?
#    *Hint:* coarse $j$ now mixes positions $j-k+1+mT/k$ for $m = 0 \dots k-1$: far in the future.
#    *Check:* `check("07.3", shorten_strided)`; `shorten_strided(x, k)` -> the coarse Tensor.
