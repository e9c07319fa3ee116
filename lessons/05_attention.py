# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # Lesson 05: attention
#
# **What you'll learn**
# - scaled dot-product attention step by step with `Tensor`s: scores, the $1/\sqrt{hs}$ scale, the
#   causal mask, the softmax, the weighted sum;
# - how the library fuses it into one op, and the derivation of its backward pass;
# - how to *test* causality: change token $t$, and no output before $t$ may move;
# - its memory: the $T \times T$ attention matrix, measured, grows 4× when $T$ doubles. This
#   quadratic cost is the problem the paper's multi-scale models attack;
# - `RangeAttention`, the op the multi-scale models use to store only the keys each query sees.
#
# **Where this sits.** `minims.functional.scaled_dot_product_attention` (the fused op) and
# `minims.nn.CausalSelfAttention` (the layer with its projections). The multi-scale models reuse both,
# passing boolean "may attend" masks for local windows and the retina model's coarse keys.

# %%
import os
import sys
from pathlib import Path

# Make `import minims` work from a fresh clone (before `pip install -e .`), as a script or a notebook.
HERE = Path(__file__).resolve().parent if "__file__" in globals() else Path.cwd()
ROOT = next((p for p in (HERE, *HERE.parents) if (p / "minims").is_dir()), HERE)
sys.path.insert(0, str(ROOT))
QUICK = os.environ.get("MINIMS_QUICK") == "1"  # the test suite's fast mode: shorter sequences

import inspect
import math

import numpy as np

import minims
import minims.functional as F
from minims import Tensor
from lessons.support.figures import memory_axes, new_figure, save_figure
from minims.nn import CausalSelfAttention, init_parameters, merge_heads, split_heads

rng = np.random.default_rng(0)

# %% [markdown]
# ## 1. Queries, keys, values
#
# Each position $t$ emits a **query** $q_t$ ("what am I looking for?"), a **key** $k_t$ ("what do I
# contain?") and a **value** $v_t$ ("what do I pass on?"), all linear maps of its input. Position $t$
# scores every position $s$ by $q_t \cdot k_s$, turns the scores into weights with a softmax, and
# outputs the weighted average of the values:
#
# $$S = \frac{QK^\top}{\sqrt{hs}}, \qquad P = \text{softmax}_{\text{rows}}(S + \text{mask}), \qquad O = PV.$$
#
# With several heads, the $C$ channels are split into `n_head` groups of `hs = C // n_head`, and each
# head attends on its own: tensors are `(B, nh, T, hs)`. Here is the layer, one template for every
# attention in minims: project, split the heads, attend, merge the heads, project back. A variant
# (section 7's local window, lesson 10's retina) overrides only `attend`:

# %%
print(inspect.getsource(CausalSelfAttention.forward))
print(inspect.getsource(split_heads))
print(inspect.getsource(merge_heads))
print(inspect.getsource(CausalSelfAttention.attend))

# %% [markdown]
# **Why divide by $\sqrt{hs}$?** If the entries of $q$ and $k$ have unit variance, $q\cdot k$ is a sum
# of $hs$ such products: its standard deviation is $\sqrt{hs}$. Large scores saturate the softmax
# (one weight ≈ 1, the others ≈ 0, gradients ≈ 0). Dividing by $\sqrt{hs}$ brings the spread back to ~1:

# %%
for hs_ in (16, 64, 256):
    q_, k_ = rng.standard_normal((2, 10_000, hs_))
    dots = (q_ * k_).sum(-1)
    scaled = dots / math.sqrt(hs_)
    print(f"hs={hs_:3d}: std of q·k = {dots.std():6.2f},  after / sqrt(hs): {scaled.std():.2f}")

# %% [markdown]
# ## 2. Step by step, with a causal mask
#
# A language model predicts token $t+1$ from tokens $\le t$, so position $t$ must not look at any
# $s > t$. We enforce it by setting those scores to $-\infty$ before the softmax: $e^{-\infty} = 0$
# exactly, so the future gets weight exactly 0. The mask is lower-triangular ("may attend"):

# %%
B, nh, T, hs = 2, 2, 6, 4
q, k, v = (Tensor(rng.standard_normal((B, nh, T, hs)), requires_grad=True) for _ in range(3))
allowed = np.tril(np.ones((T, T), dtype=bool))   # allowed[t, s]: may query t attend to key s?
print("causal mask (rows = queries t, columns = keys s; x = may attend):")
for t in range(T):
    print("   ", " ".join("x" if a else "." for a in allowed[t]))

S = (q @ k.transpose(0, 1, 3, 2)) * (1 / math.sqrt(hs))    # (B, nh, T, T)
S = minims.where(allowed, S, -np.inf)                      # future scores -> -inf
P = F.softmax(S, axis=-1)                                  # (B, nh, T, T), rows sum to 1
out_steps = P @ v                                          # (B, nh, T, hs)

np.set_printoptions(precision=3, suppress=True)
print("attention weights P of batch 0, head 0 (row t = how query t spreads its attention):")
print(P.numpy()[0, 0])
print("row sums:", P.numpy()[0, 0].sum(-1))

# %% [markdown]
# The same weights as a picture, one panel per head: row $t$ is query $t$, column $s$ key $s$,
# darker is more weight. Everything above the diagonal is exactly 0 (the mask), and each row's
# weights add up to 1, so the first row is a single black square (query 0 can only see itself).

# %%
fig = new_figure(1, nh, figsize=(3.2 * nh, 3.0))
if fig is not None:
    for head, ax in enumerate(fig.axes):
        image = ax.imshow(P.numpy()[0, head], cmap="Greys", vmin=0, vmax=1)
        ax.set_title(f"head {head}: P[t, s]")
        ax.set_xlabel("key s")
        ax.set_ylabel("query t")
    fig.colorbar(image, ax=fig.axes, label="attention weight")
    save_figure(fig, "05_attention_heatmap")

# %% [markdown]
# ## 3. The fused op and its backward
#
# The library does all of that in one `Function`, `ScaledDotProductAttention`. Its backward comes
# from the chain rule through the three steps, with $g = \partial L/\partial O$:
#
# - $O = PV$ is a matrix product: $\bar V = P^\top g$ and $\bar P = g V^\top$.
# - $P = \text{softmax}(S)$ row by row (lesson 04): $\bar S = P \odot (\bar P - \text{rowsum}(\bar P \odot P))$.
#   (One could use $\text{rowsum}(\bar P \odot P) = \text{rowsum}(g \odot O)$, which costs $T\cdot hs$
#   instead of $T^2$, but only by saving $O$ as well; the library computes $\text{rowsum}(\bar P \odot P)$
#   from $\bar P$, which it needs anyway, and keeps its memory for the arrays below.)
# - $S = sQK^\top$ (with $s = 1/\sqrt{hs}$): $\bar Q = s\,\bar S K$ and $\bar K = \bar S^\top (sQ)$.
#
# Masked entries have $P = 0$, so $\bar S = 0$ there: no gradient flows to the future either.
#
# **What it saves for backward:** $sQ$, $K^\top$, $V$ (each $T \times hs$ per head) and $P$
# ($T \times T$ per head); not $S$ (the softmax overwrites it in place) and not $O$. Only $P$ grows
# with $T^2$. Section 6 counts these bytes.
#
# Three arguments of the op appear below before their sections: **`causal`** (the rule of
# section 2) and **`blocked`** (a boolean array, True where a query may not attend: the masks of
# section 5) say which scores the op sets to $-\infty$, by selection (adding a $-\infty$ bias
# would turn a score of $+\infty$ into NaN); **`n_bands`** cuts causal attention into bands of
# queries (section 6 explains why; here, with $T = 6$, there is one band).

# %%
print(inspect.getsource(F.ScaledDotProductAttention))

# %% [markdown]
# Same inputs through the fused op; values and gradients must match the step-by-step graph
# (float64, so to ~1e-15):

# %%
w_out = rng.standard_normal(out_steps.shape)
out_steps.backward(w_out)
steps_grads = [t.grad for t in (q, k, v)]

qf, kf, vf = (Tensor(t.numpy(), requires_grad=True) for t in (q, k, v))
out_fused = F.scaled_dot_product_attention(qf, kf, vf, causal=True)
out_fused.backward(w_out)
value_diff = np.abs(out_fused.numpy() - out_steps.numpy()).max()
grad_diff = max(np.abs(a.grad - g).max() for a, g in zip((qf, kf, vf), steps_grads))
print(f"fused vs step by step: max |value diff| {value_diff:.1e}, max |grad diff| {grad_diff:.1e}")

# %% [markdown]
# ## 4. Testing causality
#
# A leak (a position seeing its own target) makes a language model look brilliant in training and
# useless in generation, so we test for it directly, in float64 with weights of O(1) scale (tiny
# weights can hide a leak):
#
# 1. **Invariance:** change the input at position $t$ (and after); outputs at positions $< t$ must be
#    *exactly* unchanged.
# 2. **Sensitivity:** the output at $t$ itself must change (otherwise the test proves nothing).
# 3. **Gradient structure:** backpropagate from the output at position $s$ only; the input gradient
#    must be exactly zero at every position $> s$.

# %%
C = 16
layer = init_parameters(CausalSelfAttention(C, n_head=4), seed=0, dtype="float64")
for p in layer.parameters():          # O(1) weights: leaks should be loud, not 0.02-quiet
    p.data = rng.standard_normal(p.shape) * 0.5
layer.eval()

T_leak, t = 8, 5
x_base = rng.standard_normal((1, T_leak, C))
x_changed = x_base.copy()
x_changed[:, t:] = rng.standard_normal((1, T_leak - t, C))   # change position t and everything after

with minims.no_grad():
    y_base, y_changed = layer(Tensor(x_base)).numpy(), layer(Tensor(x_changed)).numpy()
moved = np.abs(y_base - y_changed).max(axis=-1)[0]    # (T,) how much each output position moved
print("max change of the output at each position after changing positions >=", t)
print("   ", "  ".join(f"{i}:{m:.1e}" for i, m in enumerate(moved)))

s = 3
xg = Tensor(x_base, requires_grad=True)
y = layer(xg)
seed_grad = np.zeros(y.shape)
seed_grad[0, s] = rng.standard_normal(C)     # dL/dy is non-zero only at output position s
y.backward(seed_grad)
grad_norm = np.abs(xg.grad[0]).sum(-1)
print(f"|dL/dx| per input position, for a loss on output position {s}:")
print("   ", "  ".join(f"{i}:{m:.1e}" for i, m in enumerate(grad_norm)))

# %% [markdown]
# And what a leak looks like: the same op with `causal=False` lets every position read the future.

# %%
qk = rng.standard_normal((3, 1, 1, T_leak, 4))
qk_changed = qk.copy()
qk_changed[:, :, :, t:] += 1.0
with minims.no_grad():
    leaky = [F.scaled_dot_product_attention(*map(Tensor, arrs), causal=False).numpy()
             for arrs in (qk, qk_changed)]
print("causal=False, positions < t that moved:",
      [i for i in range(t) if np.abs(leaky[0][0, 0, i] - leaky[1][0, 0, i]).max() > 0], "(a leak)")

# %% [markdown]
# ## 5. Other masks
#
# `scaled_dot_product_attention` also takes a boolean `mask` ("may attend"), combined with the causal
# rule. A **local window** of $w$ tokens is one such mask; with it, each query sees at most $w$ keys,
# the idea behind the top-down model's cheaper fine layers and the retina model's recent-token window
# (lessons 08 and 10). A row with no allowed key would make the softmax $0/0$, so the library
# refuses it with an error rather than returning NaN.

# %%
window = 3
idx = np.arange(T)
local = (idx[:, None] - idx[None, :]) < window            # key s within the last `window` tokens of t
print(f"causal + local window of {window}:")
for r in range(T):
    print("   ", " ".join("x" if (local[r, c] and c <= r) else "." for c in range(T)))
with minims.no_grad():
    out_local = F.scaled_dot_product_attention(q, k, v, causal=True, mask=local)
print("output shape:", out_local.shape)

# %% [markdown]
# ## 6. The O(T²) memory, measured
#
# `minims.memory.saved_bytes(out, by="op")` walks the graph behind `out` and adds up the arrays each
# op saved for backward. We run one attention layer at $T$ and at $2T$. The projections save
# $O(T\cdot C)$ bytes, which double; the attention matrix $P$ of shape (B, nh, T, T) quadruples, and
# soon dominates. The fused op's row shows the sum of both kinds, so we also pick $P$ out by its shape.
#
# One refinement: causal attention is computed in bands of 32 queries
# (`minims.functional.ATTENTION_BAND_SIZE`, the fastest size measured); band $[a, b)$ only needs
# keys $[0, b)$, so most of the masked upper triangle is never computed nor stored. With $n$ bands
# the op holds $(n+1)/2n$ of the full $T\times T$ matrix: $9/16$ at $T=256$, tending to one half as
# $T$ grows — a constant factor: the cost is still quadratic in $T$. An explicit `mask` applies
# in the bands too (to all of a band's keys, not only its diagonal block). Here is the rule, from
# `scaled_dot_product_attention`:

# %%
print(next(line.strip() for line in inspect.getsource(F.scaled_dot_product_attention).splitlines()
           if line.strip().startswith("n_bands =")))

# %%
C_mem, nh_mem = 64, 4
T_small = 128 if QUICK else 256  # both lengths multiples of 32: whole bands of 32 queries
mem_layer = init_parameters(CausalSelfAttention(C_mem, nh_mem), seed=0)


def attention_memory(T_):
    x = Tensor(rng.standard_normal((1, T_, C_mem)).astype(np.float32), requires_grad=True)
    out = mem_layer(x)
    by_op = minims.memory.saved_bytes(out, by="op")
    hs = C_mem // nh_mem                       # q, k, v and the output all have an hs-sized axis,
    p_bytes = sum(a.nbytes for _, op, a in minims.memory.saved_arrays(out)   # the bands of P don't
                  if op == "ScaledDotProductAttention" and hs not in a.shape[-2:])
    return by_op, p_bytes, minims.memory.saved_bytes(out)


small, p_small, total_small = attention_memory(T_small)
large, p_large, total_large = attention_memory(2 * T_small)
print(f"{'saved for backward':28} {f'T={T_small}':>12} {f'T={2 * T_small}':>12} {'ratio':>7}")
for op in sorted(set(small) | set(large)):
    a, b = small.get(op, 0), large.get(op, 0)
    print(f"{op:28} {a:12,} {b:12,} {b / max(a, 1):7.2f}")
print(f"{'  of which P (in bands)':28} {p_small:12,} {p_large:12,} {p_large / p_small:7.2f}")
print(f"{'total':28} {total_small:12,} {total_large:12,} {total_large / total_small:7.2f}")
qkv_bytes = 3 * (2 * T_small) * C_mem * 4          # sQ, Kᵀ and V: T·C float32 numbers each
print(f"the fused op at T={2 * T_small}: 3 × {qkv_bytes // 3:,} (sQ, Kᵀ, V) + {p_large:,} (P) = "
      f"{qkv_bytes + p_large:,} bytes, and no S. It keeps O too, for its backward, but O is the "
      "very buffer the output projection keeps as its input (counted once, there)")

T_book = 4096
bands = T_book // F.ATTENTION_BAND_SIZE
band_fraction = (bands + 1) / (2 * bands)       # 129/256 of T×T with 128 bands of 32
print(f"\nextrapolated: at T={T_book}, P alone would take {band_fraction * nh_mem * T_book ** 2 * 4 / 2**20:,.0f} MiB "
      f"per sequence per layer, vs {p_large / 2**20:.1f} MiB at T={2 * T_small}.")

# %% [markdown]
# Two lengths give a ratio; a few more give a law. On log–log axes a power law $y = aT^p$ is a
# straight line of slope $p$, so we fit a line to $\log y$ against $\log T$: $P$ should have slope 2
# (quadratic; a little under 2 here, as the bands skip a growing share of the matrix, from 3/8 of
# it at $T=128$ towards one half), the rest slope 1 (linear), and the total somewhere in between,
# creeping towards 2 as $P$ takes over.

# %%
T_sweep = [128, 256, 512] if QUICK else [128, 256, 512, 1024]
sweep = [attention_memory(T_) for T_ in T_sweep]
p_sweep = np.array([p for _, p, _ in sweep], dtype=float)
total_sweep = np.array([tot for _, _, tot in sweep], dtype=float)
rest_sweep = total_sweep - p_sweep
slopes = {name: np.polyfit(np.log(T_sweep), np.log(ys), 1)[0]
          for name, ys in (("P", p_sweep), ("rest", rest_sweep), ("total", total_sweep))}
for name, slope in slopes.items():
    print(f"fitted slope of {name:5}: {slope:.2f}  (memory ~ T^{slope:.2f})")

fig = new_figure(figsize=(5.5, 4.0))
if fig is not None:
    ax = fig.axes[0]
    for name, ys, marker in (("P (attention weights)", p_sweep, "o"),
                             ("everything else", rest_sweep, "s"), ("total", total_sweep, "^")):
        key = name.split()[0] if name != "everything else" else "rest"
        ax.loglog(T_sweep, ys / 2**20, marker=marker, label=f"{name}: slope {slopes[key]:.2f}")
    memory_axes(ax, T_sweep, f"one attention layer, C={C_mem}, {nh_mem} heads, B=1")
    save_figure(fig, "05_attention_memory_loglog")

# %% [markdown]
# That is the paper's starting point: a vanilla transformer pays this in every layer. The
# multi-scale models run most layers on sequences $k$ or $k^2$ times shorter, where $P$ is $k^2$ or
# $k^4$ times smaller.
#
# ## 7. Attention that stores only what it sees
#
# A local window (section 5) lets each query see $w$ keys, yet the fused op above still builds and
# saves the whole $T \times T$ matrix, zeros included. The multi-scale models of lessons 08–10 need
# the saving to be real, so the library has a second attention op, `RangeAttention`
# (`minims/ops/range_attention.py`; the local-attention layer built on it is in
# `minims/nn/local_attention.py`): query $t$ sees one contiguous **range** of keys $[lo_t, hi_t)$ in
# each of a few key sets (fine tokens, pooled blocks...). It walks the queries in chunks; for each
# chunk it scores only the smallest slice of keys that covers the chunk's ranges, and saves only
# those probabilities: $T \cdot (\text{chunk} + w - 1)$ numbers per head instead of $T^2$.
#
# Its backward is the one of section 3, window by window, with one difference: here it *does* save
# the output $O$ and uses $\text{rowsum}(\bar P \odot P) = \text{rowsum}(g \odot O)$, because each
# chunk's $\bar P$ is split over several windows and $O$ is only $T \cdot hs$ numbers.

# %%
from minims.nn.local_attention import LocalSelfAttention
from minims.ops.range_attention import RangeAttention

print(inspect.getsource(RangeAttention.forward))
print(inspect.getsource(LocalSelfAttention.attend))

# %% [markdown]
# `LocalSelfAttention` has the same weights as `CausalSelfAttention`, so we can check it against the
# dense op with the window as a mask (values and gradients, float64), then measure both at growing $T$:

# %%
w_local = 32
dense64 = init_parameters(CausalSelfAttention(16, 2), seed=0, dtype="float64")
local64 = init_parameters(LocalSelfAttention(16, 2, window=w_local), seed=0, dtype="float64")
x64 = rng.standard_normal((2, 80, 16))
idx80 = np.arange(80)
window_mask = (idx80[:, None] - idx80[None, :]) < w_local
xd, xl = Tensor(x64, requires_grad=True), Tensor(x64, requires_grad=True)
yd, yl = dense64(xd, mask=window_mask), local64(xl)
yd.sum().backward()
yl.sum().backward()
local_diff = max(np.abs(yd.numpy() - yl.numpy()).max(), np.abs(xd.grad - xl.grad).max())
print(f"local attention vs dense attention with the window as a mask: max |diff| {local_diff:.1e}")

local_layer = init_parameters(LocalSelfAttention(C_mem, nh_mem, window=w_local), seed=0)


def local_memory(T_):
    x = Tensor(rng.standard_normal((1, T_, C_mem)).astype(np.float32), requires_grad=True)
    return minims.memory.saved_bytes(local_layer(x))


local_sweep = np.array([local_memory(T_) for T_ in T_sweep], dtype=float)
local_slope = np.polyfit(np.log(T_sweep), np.log(local_sweep), 1)[0]
print(f"{'T':>6} {'dense (bands)':>14} {f'local, w={w_local}':>14}")
for T_, dense_b, local_b in zip(T_sweep, total_sweep, local_sweep):
    print(f"{T_:6d} {dense_b / 2**20:11.2f} MiB {local_b / 2**20:11.2f} MiB")
print(f"fitted slopes: dense {slopes['total']:.2f}, local {local_slope:.2f}")

fig = new_figure(figsize=(5.5, 4.0))
if fig is not None:
    ax = fig.axes[0]
    ax.loglog(T_sweep, total_sweep / 2**20, marker="^", label=f"dense causal: slope {slopes['total']:.2f}")
    ax.loglog(T_sweep, local_sweep / 2**20, marker="o", label=f"local, w={w_local}: slope {local_slope:.2f}")
    memory_axes(ax, T_sweep, f"one attention layer, C={C_mem}, {nh_mem} heads, B=1")
    save_figure(fig, "05_local_attention_memory")

# %% [markdown]
# The local layer's memory grows linearly: at $T = 512$ it already holds about a third of the dense
# layer's, and the gap widens with every doubling. Lessons 08–10 build on this op.
#
# ## Check

# %%
assert value_diff < 1e-12 and grad_diff < 1e-12, "the fused attention must match the step-by-step graph"
assert np.all(moved[:t] == 0), f"causality: outputs before position {t} changed: {moved[:t]}"
assert np.all(moved[t:] > 0), "sensitivity: outputs at positions >= t should change"
assert np.all(grad_norm[s + 1:] == 0) and grad_norm[s] > 0, \
    f"gradient from output {s} must be zero at later inputs and non-zero at {s}"
assert large["ScaledDotProductAttention"] == qkv_bytes + p_large, "the op saves sQ, Kᵀ, V, O (shared) and P, nothing else"


def banded_p_bytes(T_, s=F.ATTENTION_BAND_SIZE):
    """n = T/s bands: band i holds s queries × i·s keys, so P has s²·n(n+1)/2 numbers per head."""
    n = T_ // s
    return nh_mem * 4 * s * s * n * (n + 1) // 2


assert (p_small, p_large) == (banded_p_bytes(T_small), banded_p_bytes(2 * T_small)), \
    "the bands of P must hold exactly s²·n(n+1)/2 numbers per head"
assert 3.5 < p_large / p_small < 4, "P must grow almost 4x when T doubles (4x in the limit)"
assert 2 < total_large / total_small < 4, "total activation memory should grow between 2x and 4x"
assert local_diff < 1e-12, "local attention must equal dense attention with the window as a mask"
assert abs(local_slope - 1) < 0.05, f"local attention memory should grow as T (fitted slope {local_slope:.2f})"
assert 1.85 < slopes["P"] <= 2 and abs(slopes["rest"] - 1) < 0.05, \
    f"P should grow as T^2 (just under: the bands skip more of the triangle as T grows) and the rest as T (fitted slopes {slopes})"
print("Check passed: fused == step by step, causal (invariance, sensitivity, gradient structure), "
      f"and P grows {p_large / p_small:.1f}x for 2x the length.")

# %% [markdown]
# ## Exercises
#
# Each exercise has a checker: `from lessons.support.exercises import check, help_for`, then
# `check("NN.i", your_answer)` prints *right* or what is off; `print(help_for("NN.i"))` shows what
# form the answer takes (a number, a dict with given keys, a function), not the answer itself.
# Reference solutions, for after you tried: `lessons/solutions.py`.
#
# 1. **Break the mask.** Replace `np.tril` by `np.tril(..., k=1)` in section 2 (each position may also
#    see the next one) and rerun the causality test of section 4 on the step-by-step version.
#    *Hint:* wrap the step-by-step code in a function of `(q, k, v, allowed)`; the invariance check
#    should now fail at position $t-1$.
#    *Check:* `check("05.1", attention_steps)`;
#    `attention_steps(q, k, v, allowed)` -> the output Tensor.
# 2. **Heads and memory.** At fixed $C$, how does the memory of $P$ change with `n_head`? And the rest?
#    Predict, then measure with `attention_memory`. *Hint:* $P$ is (B, nh, T, T).
#    *Check:* `check("05.2", {"T": T, "P": {nh: bytes}, "rest": {nh: bytes}})`.
# 3. **Local attention memory.** With an explicit mask (a local window), the fused op stores the
#    full $T \times T$ matrix. How many of its entries are non-zero for window $w$ (causal, so query
#    $t$ sees keys $\max(0, t-w+1) \dots t$)? *Hint:* about $T\cdot w$, exactly
#    $\sum_t \min(t+1, w)$. To exploit this, an op must not build the $T \times T$ matrix at all:
#    `RangeAttention` (section 7) scores only the slice of keys each chunk of queries can see.
#    *Check:* `check("05.3", nonzero)`; `nonzero(T, w)` -> an int.
