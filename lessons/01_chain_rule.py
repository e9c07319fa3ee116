# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # Lesson 01: the chain rule by hand
#
# **What you'll learn**
# - how to differentiate a small two-layer network *on paper*, one intermediate at a time;
# - the three rules that cover almost all of it: the local derivative of each step, "multiply by
#   the upstream gradient", and "add up the contributions where a value fans out";
# - why backpropagation never builds a Jacobian matrix (it multiplies *vectors* by Jacobians);
# - that minims' engine computes exactly the numbers you computed by hand.
#
# **Where this sits.** Every model in minims, the vanilla transformer and the paper's multi-scale
# stacks alike, is trained by this one idea, automated in `minims/engine.py` (lesson 02).

# %%
import os
import sys
from pathlib import Path

# Make `import minims` work from a fresh clone (before `pip install -e .`), as a script or a notebook.
HERE = Path(__file__).resolve().parent if "__file__" in globals() else Path.cwd()
ROOT = next((p for p in (HERE, *HERE.parents) if (p / "minims").is_dir()), HERE)
sys.path.insert(0, str(ROOT))
QUICK = os.environ.get("MINIMS_QUICK") == "1"  # nothing here is slow; kept for uniformity

import numpy as np

import minims
from minims import Tensor

# %% [markdown]
# ## 1. One number through two layers
#
# Take one input $x$, one target $y$, and a network with one hidden unit:
#
# $$a = w_1 x + b_1, \qquad h = \tanh(a), \qquad \hat y = w_2 h + b_2, \qquad L = \tfrac12(\hat y - y)^2 .$$
#
# Backpropagation walks this list **backwards**. Write $\bar v$ for $\partial L / \partial v$
# ("the gradient at $v$"). Each step multiplies the gradient arriving from above by the *local*
# derivative of that step (the chain rule):
#
# | step | local derivative | gradient |
# |---|---|---|
# | $L = \frac12(\hat y - y)^2$ | $\partial L/\partial \hat y = \hat y - y$ | $\bar{\hat y} = \hat y - y$ |
# | $\hat y = w_2 h + b_2$ | $\partial \hat y/\partial w_2 = h,\ \partial \hat y/\partial b_2 = 1,\ \partial \hat y/\partial h = w_2$ | $\bar w_2 = \bar{\hat y}\, h,\ \bar b_2 = \bar{\hat y},\ \bar h = \bar{\hat y}\, w_2$ |
# | $h = \tanh a$ | $1 - \tanh^2 a = 1 - h^2$ | $\bar a = \bar h\,(1 - h^2)$ |
# | $a = w_1 x + b_1$ | $x$ and $1$ | $\bar w_1 = \bar a\, x,\ \bar b_1 = \bar a$ |
#
# Notice what backward needs from the forward pass: $h$ (twice) and $x$. Those are the
# *activations saved for backward*: the memory the paper's models try to shrink.

# %%
x, y = 1.5, 0.5
w1, b1, w2, b2 = 0.8, -0.5, 1.2, 0.1

# forward, one line per step, keeping what backward needs
a = w1 * x + b1
h = np.tanh(a)
yhat = w2 * h + b2
L = 0.5 * (yhat - y) ** 2

# backward, the table above read from top to bottom
d_yhat = yhat - y
d_w2, d_b2, d_h = d_yhat * h, d_yhat, d_yhat * w2
d_a = d_h * (1 - h ** 2)
d_w1, d_b1 = d_a * x, d_a

print(f"forward : a={a:.6f}  h={h:.6f}  yhat={yhat:.6f}  L={L:.6f}")
print(f"backward: dL/dw1={d_w1:.6f}  dL/db1={d_b1:.6f}  dL/dw2={d_w2:.6f}  dL/db2={d_b2:.6f}")

# %% [markdown]
# Now let the engine do it. We build the same computation with minims `Tensor`s (float64, so the
# comparison is exact to ~16 digits) and call `backward()`:

# %%
T = {name: Tensor(np.float64(v), requires_grad=True)
     for name, v in dict(w1=w1, b1=b1, w2=w2, b2=b2).items()}
L_engine = 0.5 * ((T["w2"] * (T["w1"] * x + T["b1"]).tanh() + T["b2"]) - y) ** 2
L_engine.backward()

by_hand = dict(w1=d_w1, b1=d_b1, w2=d_w2, b2=d_b2)
for name, t in T.items():
    print(f"dL/d{name}: by hand {by_hand[name]: .12f}   engine {float(t.grad): .12f}")

# %% [markdown]
# A derivative is a *prediction*: nudging $w_1$ by a small $\varepsilon$ should change $L$ by about
# $\varepsilon \cdot \partial L/\partial w_1$. Checking that prediction with a central difference is
# the whole idea of gradient checking (lesson 03):

# %%
def loss_at(w1_):
    return 0.5 * (w2 * np.tanh(w1_ * x + b1) + b2 - y) ** 2


eps = 1e-6
print("central difference:", (loss_at(w1 + eps) - loss_at(w1 - eps)) / (2 * eps), " by hand:", d_w1)

# %% [markdown]
# ## 2. Matrices: the same rules, with shapes
#
# A real layer processes a batch of $N$ examples with $D$ inputs, $H$ hidden units and $O$ outputs:
#
# $$A = XW_1 + b_1,\quad H = \tanh A,\quad \hat Y = HW_2 + b_2,\quad L = \frac{1}{2N}\sum_{n,o}(\hat Y_{no} - Y_{no})^2$$
#
# with $X$ (N, D), $W_1$ (D, H), $b_1$ (H,), $W_2$ (H, O), $b_2$ (O,).
#
# **A gradient has the shape of its variable.** To find $\bar W_2$, write the product with indices:
# $\hat Y_{no} = \sum_h H_{nh} W_{2,ho} + b_{2,o}$. The entry $W_{2,ho}$ appears in every row $n$, so
# its gradient adds up over $n$:
#
# $$\bar W_{2,ho} = \sum_n \bar{\hat Y}_{no} H_{nh} \quad\Longrightarrow\quad \bar W_2 = H^\top \bar{\hat Y}\quad \text{(H, O)}.$$
#
# The same reasoning gives the rest. The bias is *broadcast* over the batch, so its gradient is a
# sum over the batch; the tanh is elementwise, so its local derivative multiplies elementwise ($\odot$):
#
# | gradient | formula | shape |
# |---|---|---|
# | $\bar{\hat Y}$ | $(\hat Y - Y)/N$ | (N, O) |
# | $\bar W_2,\ \bar b_2$ | $H^\top \bar{\hat Y}$, $\ \sum_n \bar{\hat Y}_n$ | (H, O), (O,) |
# | $\bar H$ | $\bar{\hat Y} W_2^\top$ | (N, H) |
# | $\bar A$ | $\bar H \odot (1 - H \odot H)$ | (N, H) |
# | $\bar W_1,\ \bar b_1$ | $X^\top \bar A$, $\ \sum_n \bar A_n$ | (D, H), (H,) |
#
# **No Jacobians.** The Jacobian of $\hat Y$ with respect to $W_2$ has $N\!\cdot\!O \times H\!\cdot\!O$
# entries, mostly zeros. We never build it: each step maps the *vector* $\bar{\text{output}}$ to the
# vector $\bar{\text{input}}$ (a vector-Jacobian product, VJP), here with one matrix multiply.
# That is what every `backward` in minims implements.

# %%
rng = np.random.default_rng(0)
N, D, H, O = 4, 3, 5, 2
X, Y = rng.standard_normal((N, D)), rng.standard_normal((N, O))
W1, B1 = rng.standard_normal((D, H)) * 0.5, rng.standard_normal(H) * 0.1
W2, B2 = rng.standard_normal((H, O)) * 0.5, rng.standard_normal(O) * 0.1

# forward by hand (plain NumPy)
A = X @ W1 + B1                      # (N, H)
Hh = np.tanh(A)                      # (N, H)
Yhat = Hh @ W2 + B2                  # (N, O)
loss = ((Yhat - Y) ** 2).sum() / (2 * N)

# backward by hand: the table above, line by line
dYhat = (Yhat - Y) / N               # (N, O)
dW2, dB2 = Hh.T @ dYhat, dYhat.sum(axis=0)
dH = dYhat @ W2.T                    # (N, H)
dA = dH * (1 - Hh * Hh)              # (N, H)
dW1, dB1 = X.T @ dA, dA.sum(axis=0)
hand = dict(W1=dW1, B1=dB1, W2=dW2, B2=dB2)
print(f"loss = {loss:.6f}")

# %% [markdown]
# The engine version reads like the forward pass and nothing else:

# %%
params = {name: Tensor(v, requires_grad=True) for name, v in dict(W1=W1, B1=B1, W2=W2, B2=B2).items()}
Yhat_t = (Tensor(X) @ params["W1"] + params["B1"]).tanh() @ params["W2"] + params["B2"]
loss_t = ((Yhat_t - Tensor(Y)) ** 2).sum() * (1 / (2 * N))
loss_t.backward()

print(f"{'param':6} {'shape':8} {'max |hand - engine|':>20}")
for name, p in params.items():
    print(f"{name:6} {str(p.shape):8} {np.abs(hand[name] - p.grad).max():20.2e}")

# %% [markdown]
# ## 3. What a gradient is for
#
# The gradient points uphill. A small step against it must lower the loss (for a small enough
# step); this is all that training does, millions of times (lesson 06).

# %%
lr = 0.1
W1n, B1n, W2n, B2n = W1 - lr * dW1, B1 - lr * dB1, W2 - lr * dW2, B2 - lr * dB2
loss_after = (((np.tanh(X @ W1n + B1n) @ W2n + B2n) - Y) ** 2).sum() / (2 * N)
print(f"loss before the step {loss:.6f}, after {loss_after:.6f}")

# %% [markdown]
# ## Check

# %%
for name, t in T.items():
    assert abs(float(t.grad) - by_hand[name]) < 1e-12, \
        f"scalar network: dL/d{name} differs from the hand value"
for name, p in params.items():
    assert p.grad.shape == p.shape, f"the gradient of {name} must have its shape {p.shape}"
    assert np.allclose(p.grad, hand[name], rtol=1e-12, atol=1e-14), f"dL/d{name}: engine and hand differ"
assert loss_after < loss, "a small step against the gradient must lower the loss"
print("Check passed: the engine's gradients equal the hand-derived ones to float64 precision.")

# %% [markdown]
# ## Exercises
#
# Each exercise has a checker: `from lessons.support.exercises import check, help_for`, then
# `check("NN.i", your_answer)` prints *right* or what is off; `print(help_for("NN.i"))` shows what
# form the answer takes (a number, a dict with given keys, a function), not the answer itself.
# Reference solutions, for after you tried: `lessons/solutions.py`.
#
# 1. **ReLU instead of tanh.** Replace `np.tanh` by `np.maximum(A, 0)` and `.tanh()` by `.relu()`,
#    and fix the hand backward. *Hint:* the local derivative is `(A > 0)`, an elementwise mask.
#    *Check:* `check("01.1", backward)`;
#    `backward(X, W1, b1, W2, b2, Y)` -> `(dW1, db1, dW2, db2)` for the ReLU network.
# 2. **Cross-entropy.** Treat `Yhat` as logits over O classes and use
#    `minims.functional.cross_entropy(Yhat_t, labels)` with `labels = rng.integers(0, O, N)`.
#    Derive $\bar{\hat Y}$ by hand. *Hint:* it is `(softmax(Yhat) - onehot(labels)) / N`
#    (lesson 04 derives it).
#    *Check:* `check("01.2", dlogits)`; `dlogits(Yhat, labels)` -> $\bar{\hat Y}$ as a NumPy array.
# 3. **Count the work.** For a third layer, how many matrix multiplies does the backward pass need,
#    compared with the forward? *Hint:* two per layer ($\bar W$ and $\bar{\text{input}}$), except that
#    nobody needs $\bar X$; so backward costs about twice the forward.
#    *Check:* `check("01.3", number_of_matmuls)`; the number of matrix multiplies in the backward
#    pass of the three-layer network, an int.
