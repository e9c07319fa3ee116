# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # Lesson 02: the engine
#
# **What you'll learn**
# - how minims records a computation: `Tensor`, `Function`, and the context (`ctx`) that links a
#   result to its inputs (the "tape");
# - how `backward()` orders the graph (an iterative topological sort), adds up gradients of values
#   used twice, undoes broadcasting, and frees the saved activations;
# - the rules you can rely on: leaf gradients accumulate, a graph can be walked back only once,
#   `no_grad()` records nothing.
#
# **Where this sits.** `minims/engine.py` is the whole engine (about 300 lines); `minims/ops/basic.py` holds the
# primitive ops. We read the library's **own** code here with `inspect.getsource`, never a copy,
# so what you read is what runs.

# %%
import os
import sys
from pathlib import Path

# Make `import minims` work from a fresh clone (before `pip install -e .`), as a script or a notebook.
HERE = Path(__file__).resolve().parent if "__file__" in globals() else Path.cwd()
ROOT = next((p for p in (HERE, *HERE.parents) if (p / "minims").is_dir()), HERE)
sys.path.insert(0, str(ROOT))
QUICK = os.environ.get("MINIMS_QUICK") == "1"  # the test suite's fast mode: a shallower deep graph

import inspect

import numpy as np

import minims
from minims import Tensor
from minims.engine import unbroadcast

# %% [markdown]
# ## 1. An op is a `Function`: forward, backward, and a context
#
# Every op is a subclass of `Function` with two static methods: `forward(ctx, *arrays)` computes
# the result from plain arrays, and `backward(ctx, grad)` turns the gradient of the result into one
# gradient per input (the vector-Jacobian product of lesson 01). Arrays that backward needs are
# kept with `ctx.save(...)`. Here is the base class; `apply` is where the graph gets recorded:

# %%
print(inspect.getsource(minims.Function))

# %% [markdown]
# `apply` runs `forward` on the raw arrays, wraps the result in a `Tensor`, and, only if some input
# requires grad and grad mode is on, stores on the context the op class, the input tensors
# (`ctx.parents`) and which of them need a gradient. The result's `_ctx` points at that context:
# that link *is* the tape. Subclassing also registers the op by name in `minims.OPS`.
#
# Multiplication, the op behind `a * b`, shows the pattern. It saves both inputs, because
# $\partial(ab)/\partial a = b$ and $\partial(ab)/\partial b = a$, and skips gradients nobody wants:

# %%
print(inspect.getsource(minims.ops.basic.Mul))
print("registered ops:", ", ".join(sorted(minims.OPS)))

# %% [markdown]
# ## 2. Looking at a graph
#
# Let's build $e = \tanh(a \cdot b + a)$ and follow the `_ctx` links from the output back to the
# leaves (tensors we created ourselves, with no `_ctx`).

# %%
a = Tensor(np.float64(0.5), requires_grad=True)
b = Tensor(np.float64(-2.0), requires_grad=True)
c = a * b
d = c + a
e = d.tanh()
names = {id(a): "a", id(b): "b", id(c): "c", id(d): "d", id(e): "e"}


def show(t, indent=0):
    """Print the graph behind t (for teaching; the engine itself never recurses)."""
    ctx = t._ctx
    if ctx is None:
        label = "leaf"
    else:
        label = f"= {ctx.op.__name__}(" + ", ".join(names[id(p)] for p in ctx.parents) + ")"
    print("  " * indent + f"{names[id(t)]} {label}   value {t.item():+.4f}")
    for p in ([] if ctx is None else ctx.parents):
        show(p, indent + 1)


show(e)

# %% [markdown]
# ## 3. The order of the walk: an iterative topological sort
#
# `backward` must reach a node only after **all** the nodes that use it are done, because their
# gradient contributions must be summed first (`a` above is used by both `c` and `d`). Any order
# with outputs before inputs works: a reverse topological order. minims finds it with a depth-first
# search that keeps its own stack instead of recursing, so a graph thousands of ops deep does not hit
# Python's recursion limit (a bug report every autograd project gets):

# %%
print(inspect.getsource(Tensor._topological_order))
print("order:", " -> ".join(names[id(n)] for n in e._topological_order()))

# %% [markdown]
# ## 4. `backward()`
#
# Now the heart of the engine. Read it top to bottom:
#
# 1. seed the output's gradient with 1 (for a scalar);
# 2. visit nodes in the order above; `grads` maps a node to the sum of the gradients received so far;
# 3. a leaf **accumulates** into `.grad`; an op node calls its `backward` and passes each input
#    gradient on, summed down to the input's shape by `unbroadcast`;
# 4. after a node is done, its saved arrays are dropped (`ctx.saved = ()`): activation memory is
#    freed as early as possible.

# %%
print(inspect.getsource(Tensor.backward))

# %%
e.backward()
# by hand: e = tanh(ab + a), de/da = (1 - e²)(b + 1), de/db = (1 - e²) a
one_minus_e2 = 1 - e.item() ** 2
print(f"de/da engine {float(a.grad):+.10f}  by hand {one_minus_e2 * (b.item() + 1):+.10f}")
print(f"de/db engine {float(b.grad):+.10f}  by hand {one_minus_e2 * a.item():+.10f}")

# %% [markdown]
# ## 5. A value used twice: gradients add up
#
# If $x$ feeds two places, $L$ changes through both, so $\bar x$ is the *sum* of the two
# contributions (the multivariate chain rule). For $y = x \cdot x$ the two parents of the `Mul` are
# the same tensor, and the engine must give $2x$, not $x$. (A classic bug: storing instead of adding.)

# %%
x = Tensor(np.array([3.0, -1.0]), requires_grad=True)
(x * x).sum().backward()
print("d(sum x*x)/dx =", x.grad, " (expected 2x =", 2 * x.numpy(), ")")

# %% [markdown]
# ## 6. Broadcasting and `unbroadcast`
#
# `h + bias` with `h` (B, T, C) and `bias` (C,) makes NumPy act as if `bias` were copied B·T times.
# Each copy receives a gradient, and all copies are the same parameter, so they add up: the
# gradient of `bias` is the output gradient *summed over the broadcast axes*. Ops return gradients
# of the output's shape, and the engine reduces them once, here (HIPS/autograd's idea):

# %%
print(inspect.getsource(unbroadcast))
h = Tensor(np.ones((2, 3, 4)), requires_grad=True)
bias = Tensor(np.zeros(4), requires_grad=True)
scale = Tensor(np.ones((2, 1, 1)), requires_grad=True)
((h + bias) * scale).sum().backward()
print("bias.grad  (4,)     =", bias.grad, "  (each entry summed over B*T = 6 positions)")
print("scale.grad (2,1,1)  =", scale.grad.ravel(), "  (summed over T*C = 12)")

# %% [markdown]
# ## 7. The rules of the road
#
# - **Leaf gradients accumulate** across `backward()` calls (as in PyTorch), which is what gradient
#   accumulation over micro-batches needs. Zero them between steps (`optimizer.zero_grad()`).
# - **A graph can be walked back once.** Its saved arrays are freed by the first `backward()`.
# - **`no_grad()` records nothing**: no `_ctx`, no saved arrays. Use it for evaluation and sampling.
# - Saved arrays are what `minims.memory.saved_bytes` counts: the activation memory of the graph.

# %%
w = Tensor(np.array([1.0, 2.0]), requires_grad=True)
for step in range(2):
    (w * w).sum().backward()
    print(f"after backward #{step + 1}: w.grad = {w.grad}")
w.grad = None  # what zero_grad() does

big = Tensor(np.random.default_rng(0).standard_normal((64, 64)), requires_grad=True)
out = ((big @ big).tanh() * big).sum()
held = minims.memory.saved_bytes(out)
print(f"bytes saved for backward before backward(): {held:,}")
out.backward()
freed = minims.memory.saved_bytes(out)
print(f"bytes saved after backward(): {freed}")
try:
    out.backward()
except RuntimeError as err:
    print("second backward():", err)

with minims.no_grad():
    quiet = (big @ big).tanh()
print("under no_grad: requires_grad =", quiet.requires_grad, "| _ctx =", quiet._ctx)

# %% [markdown]
# ## 8. Deep graphs
#
# A transformer's graph is a few thousand ops deep. A recursive topological sort would crash at
# Python's recursion limit (~1000 frames); the iterative one does not care:

# %%
depth = 3_000 if QUICK else 20_000
z = Tensor(np.float64(1.0), requires_grad=True)
y_deep = z
for _ in range(depth):
    y_deep = y_deep * 1.0001
y_deep.backward()
print(f"{depth:,} ops deep (recursion limit {sys.getrecursionlimit()}): dz = {float(z.grad):.6f}, "
      f"expected 1.0001^{depth} = {1.0001 ** depth:.6f}")

# %% [markdown]
# ## Check

# %%
assert abs(float(a.grad) - one_minus_e2 * (b.item() + 1)) < 1e-12, "de/da must sum both paths through a"
assert np.allclose(x.grad, [6.0, -2.0]), "a tensor used twice must get the sum of both gradients"
assert bias.grad.shape == (4,) and np.allclose(bias.grad, 6.0), "broadcast gradients must be summed back"
assert scale.grad.shape == (2, 1, 1) and np.allclose(scale.grad, 12.0), "keep-dims broadcasts too"
assert held > 0 and freed == 0, "backward() must free the saved activations"
assert quiet._ctx is None, "no_grad() must record nothing"
assert abs(float(z.grad) - 1.0001 ** depth) < 1e-9 * 1.0001 ** depth, "the deep chain must backprop exactly"
print("Check passed: recording, ordering, accumulation, unbroadcast and freeing all behave as described.")

# %% [markdown]
# ## Exercises
#
# Each exercise has a checker: `from lessons.support.exercises import check, help_for`, then
# `check("NN.i", your_answer)` prints *right* or what is off; `print(help_for("NN.i"))` shows what
# form the answer takes (a number, a dict with given keys, a function), not the answer itself.
# Reference solutions, for after you tried: `lessons/solutions.py`.
#
# 1. **Your own op.** Write `class Sin(minims.Function)` with `forward(ctx, a)` returning
#    `minims.backend.xp.sin(a)` and a `backward`. Check it on `Sin.apply(x)` against `np.cos`.
#    *Hint:* save `a` with `ctx.save(a)`; backward returns `g * xp.cos(a)`. Re-running the cell
#    registers `Sin` twice: `minims.OPS.pop("Sin", None)` first. Lesson 03 shows how to check it
#    properly.
#    *Check:* `check("02.1", Sin)`; the class.
# 2. **Constants are not walked.** Build `(x * Tensor(2.0)).sum()` and list its topological order.
#    Why is the constant missing? *Hint:* look at `needs` in `_topological_order`.
#    *Check:* `check("02.2", list(loss._topological_order()))`.
# 3. **Break it on purpose.** In a copy of `backward` (not in the library!), replace
#    `grads[key] + pg` by `pg`, and rerun the sections above. Which section's check fails first?
#    *Hint:* `broken = lessons.support.exercises.patched(Tensor.backward, "grads[key] + pg", "pg")` makes the
#    copy (`inspect.getsource(broken)` shows it); set `Tensor.backward = broken`, rerun, and put the
#    original back. Look for the first example that uses a value twice.
#    *Check:* `check("02.3", section_number)`; the section's number, an int.
