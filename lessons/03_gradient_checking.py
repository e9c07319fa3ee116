# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # Lesson 03: gradient checking
#
# **What you'll learn**
# - how to test a backward pass you wrote: compare it with **central differences**;
# - why we check along **random directions** instead of one coordinate at a time;
# - why the check must run in **float64**, and why it must stay away from **kinks** (ReLU at 0);
# - how minims' own property-based harness (`minims/testing/gradcheck.py` and the op specs
#   in `minims/testing/op_specs.py`) checks every registered op, and how it catches a planted
#   bug: a softmax whose backward keeps only the Jacobian's diagonal (the bug ML-From-Scratch
#   shipped for years).
#
# **Where this sits.** Every op minims registers must have a spec in `minims/testing/op_specs.py`;
# the test suite fails otherwise. The fused ops of lesson 04 and the attention of lesson 05 are trusted only
# because this harness checks them.

# %%
import os
import sys
from pathlib import Path

# Make `import minims` work from a fresh clone (before `pip install -e .`), as a script or a notebook.
HERE = Path(__file__).resolve().parent if "__file__" in globals() else Path.cwd()
ROOT = next((p for p in (HERE, *HERE.parents) if (p / "minims").is_dir()), HERE)
sys.path.insert(0, str(ROOT))
QUICK = os.environ.get("MINIMS_QUICK") == "1"  # the test suite's fast mode: fewer hypothesis examples

import inspect

import numpy as np

import minims
import minims.functional as F
from minims import Tensor
from lessons.support.figures import new_figure, save_figure

from minims.testing.gradcheck import OpSpec, check_op

try:
    from minims.testing.op_specs import SPECS
except ImportError as e:  # op_specs draws inputs with hypothesis, a test dependency
    raise SystemExit(f"lesson 03 runs the test harness, which needs hypothesis: "
                     f"pip install -e '.[test]' (or pip install hypothesis). ({e})")

# %% [markdown]
# ## 1. Central differences
#
# For a function $f$ and a small step $\varepsilon$,
#
# $$f'(x) \approx \frac{f(x+\varepsilon) - f(x-\varepsilon)}{2\varepsilon},$$
#
# with an error of order $\varepsilon^2$ (the $\varepsilon^1$ terms of the two Taylor expansions
# cancel; the one-sided difference $(f(x+\varepsilon)-f(x))/\varepsilon$ only reaches $\varepsilon$).
# So why not take $\varepsilon$ tiny? Because $f$ is computed with roundoff: each value carries an
# error of about $\delta |f|$, with $\delta$ the machine precision, and dividing by $2\varepsilon$
# magnifies it. The total error is roughly
#
# $$\underbrace{\varepsilon^2 |f'''|/6}_{\text{truncation}} + \underbrace{\delta |f| / \varepsilon}_{\text{roundoff}},$$
#
# smallest near $\varepsilon \approx \delta^{1/3}$, where it is about $\delta^{2/3}$:
# roughly $10^{-5}$ in float32 ($\delta \approx 6\cdot10^{-8}$) but $10^{-11}$ in float64
# ($\delta \approx 10^{-16}$). Let's measure it on $L(x) = \sum_i w_i \tanh(x_i)$:

# %%
rng = np.random.default_rng(0)
x0, w0, d0 = rng.standard_normal(50), rng.standard_normal(50), rng.standard_normal(50)

x_t = Tensor(x0, requires_grad=True)
(Tensor(w0) * x_t.tanh()).sum().backward()
exact = float(np.sum(x_t.grad * d0))  # the engine's directional derivative <dL/dx, d>, float64


def L(x, dtype):
    with minims.no_grad():
        return float((Tensor(w0, dtype=dtype) * Tensor(x, dtype=dtype).tanh()).sum().item())


print(f"{'eps':>8} {'rel. error float32':>20} {'rel. error float64':>20}")
for eps in [1e-1, 1e-2, 1e-3, 1e-4, 1e-5, 1e-6, 1e-7, 1e-8]:
    errs = [abs((L(x0 + eps * d0, dt) - L(x0 - eps * d0, dt)) / (2 * eps) - exact) / abs(exact)
            for dt in (np.float32, np.float64)]
    print(f"{eps:8.0e} {errs[0]:20.2e} {errs[1]:20.2e}")

# %% [markdown]
# The same measurement on a finer grid of steps, as a picture (log–log): each curve is a "V", the
# roundoff side falling with slope −1 on the left, the truncation side rising with slope 2 on the
# right; the dotted lines are the floors $\delta^{2/3}$ predicted above. (Where the two sides meet,
# a single point can dip below its floor by luck, the two errors cancelling; no check can rely on
# that.) Left of $10^{-7}$ the float32 difference is pure noise: $x \pm \varepsilon d$ rounds to
# nearly the same float32 numbers.

# %%
eps_grid = np.logspace(-10, -0.5, 39)
curves = {dt: [abs((L(x0 + e * d0, dt) - L(x0 - e * d0, dt)) / (2 * e) - exact) / abs(exact) for e in eps_grid]
          for dt in (np.float32, np.float64)}
fig = new_figure(figsize=(6, 4))
if fig is not None:
    ax = fig.axes[0]
    for dt, c in curves.items():
        delta = np.finfo(dt).eps / 2
        line, = ax.loglog(eps_grid, np.maximum(c, 1e-17), marker=".", label=np.dtype(dt).name)
        ax.axhline(delta ** (2 / 3), color=line.get_color(), linestyle=":", lw=1)
    ax.set_xlabel("step eps")
    ax.set_ylabel("relative error of the central difference")
    ax.set_title("gradient check of sum(w * tanh(x)): roundoff vs truncation")
    ax.legend()
    save_figure(fig, "03_central_difference_error")

# %% [markdown]
# In float32 the best you can hope for is about $10^{-4}$ to $10^{-5}$, and only if you pick
# $\varepsilon$ well; a real bug that is off by $10^{-4}$ (a missing term in a long sum) would pass.
# In float64 the error bottoms out near $10^{-11}$ and stays below $10^{-6}$ for every
# $\varepsilon$ from $10^{-3}$ to $10^{-8}$, so the harness can use a tight tolerance ($10^{-6}$
# relative) with $\varepsilon = 10^{-6}$ and never be flaky.
# **Rule: check gradients in float64, train in float32.**
#
# ## 2. Random directions
#
# Checking every coordinate of an input with $n$ entries costs $2n$ forward passes. Instead, draw
# a random direction $d$ and compare one number: the directional derivative
# $\langle \nabla L, d\rangle$ (from backward) with $(L(x+\varepsilon d) - L(x-\varepsilon d))/2\varepsilon$
# (two forward passes). A wrong entry of $\nabla L$ shows up in $\langle \nabla L, d\rangle$ for almost
# every $d$. And to test the whole vector-Jacobian product of an op, not only one output, the harness
# reduces the op's output to a number with a random cotangent $w$: $L = \langle w, \text{op}(x)\rangle$
# (the idea of HIPS/autograd's `check_grads`). Here is the library's harness:

# %%
print(inspect.getsource(check_op))

# %% [markdown]
# ## 3. Kinks
#
# Central differences assume $f$ is smooth between $x-\varepsilon$ and $x+\varepsilon$. ReLU is not
# at 0: there the difference averages the two slopes and gives 0.5, while backward reports one
# subgradient (minims says 0). Both are "right"; they just cannot be compared. Near the kink it is
# worse: at $x = 10^{-7}$ with $\varepsilon = 10^{-6}$ the difference straddles it. That is why the
# ReLU spec draws values at least 0.1 away from zero, Max draws values without near-ties, and Log
# and Sqrt stay away from 0.

# %%
xs = np.array([0.0, 1e-7, -1e-7, 0.3, -0.3])
xt = Tensor(xs, requires_grad=True)
xt.relu().sum().backward()
eps = 1e-6
numeric = (np.maximum(xs + eps, 0) - np.maximum(xs - eps, 0)) / (2 * eps)
print(f"{'x':>8} {'backward':>9} {'central diff.':>14}")
for xi, g, n in zip(xs, xt.grad, numeric):
    print(f"{xi:8.0e} {g:9.2f} {n:14.2f}" + ("   <- kink inside [x-eps, x+eps]" if abs(xi) < eps else ""))
print("the ReLU spec keeps inputs away from 0:", SPECS["ReLU"].draw.__qualname__,
      "with away_from_zero=0.1 (see minims/testing/op_specs.py)")

# %% [markdown]
# ## 4. The harness on one op: GELU
#
# A spec (`OpSpec`) says how to draw inputs with hypothesis, how to call the op through the public
# API, and how to compute the forward pass independently in plain NumPy. `check_op(spec, arrays,
# options)` checks one input point: the forward value against the reference, the dtype stays
# float64, and each input's gradient along random directions. It raises `AssertionError` with the
# numbers when something is off. First, a few inputs we choose ourselves (no hypothesis):

# %%
spec = SPECS["GELU"]
print("the GELU spec's independent NumPy reference:\n" + inspect.getsource(spec.reference))
for shape in [(5,), (3, 4), (2, 3, 4)]:
    x = rng.uniform(-4, 4, size=shape)
    check_op(spec, [x], {}, seed=1)
    print(f"check_op(GELU) on shape {shape}: ok")

# %% [markdown]
# The test suite does the same with inputs **drawn by hypothesis**: random shapes and values,
# derandomized so CI sees the same examples every run. Here is that property test for GELU:

# %%
from hypothesis import given, settings, strategies as st


@settings(max_examples=10 if QUICK else 100, derandomize=True, deadline=None, database=None)
@given(st.data())
def gelu_gradients_are_right(data):
    arrays, options = spec.draw(data.draw)
    check_op(spec, arrays, options, seed=data.draw(st.integers(0, 1000)))


gelu_gradients_are_right()
print("property test for GELU: passed on", 10 if QUICK else 100, "drawn examples")

# %% [markdown]
# ## 5. A gradient-check table
#
# Now many registered ops, each at a hand-picked input (broadcasting, repeated fancy indices, a
# causal attention). For each we report the worst relative error of the directional derivative
# over a few random directions (computed with the recipe of section 2, in float64) and the harness's
# verdict on the same input.

# %%
def max_rel_error(spec, arrays, options, n_directions=3, eps=1e-6, seed=0):
    """Worst |numeric - analytic| / max(|numeric|, |analytic|) over inputs and random directions."""
    r = np.random.default_rng(seed)
    tensors = [Tensor(a, requires_grad=True) for a in arrays]
    out = spec.call(*tensors, **options)
    w = r.standard_normal(out.shape)
    out.backward(w)

    def loss(xs):
        with minims.no_grad():
            return float(np.sum(spec.call(*[Tensor(a) for a in xs], **options).numpy() * w))

    worst = 0.0
    for i, (a, t) in enumerate(zip(arrays, tensors)):
        for _ in range(n_directions):
            d = r.standard_normal(a.shape)
            plus = [x + eps * d if j == i else x for j, x in enumerate(arrays)]
            minus = [x - eps * d if j == i else x for j, x in enumerate(arrays)]
            numeric = (loss(plus) - loss(minus)) / (2 * eps)
            analytic = float(np.sum(minims.to_numpy(t.grad) * d))
            worst = max(worst, abs(numeric - analytic) / max(abs(numeric), abs(analytic), 1e-12))
    return worst


def u(*shape, low=-2.0, high=2.0):
    return rng.uniform(low, high, size=shape)


cases = {
    "Add": ([u(3, 4), u(4)], {}),                          # broadcast: b's gradient is summed
    "Mul": ([u(2, 3, 1), u(1, 4)], {}),
    "Div": ([u(3, 4), u(3, 1, low=0.5, high=2.0)], {}),
    "MatMul": ([u(2, 3, 4), u(4, 5)], {}),
    "Max": ([rng.permutation(12).reshape(3, 4) * 0.1], dict(axis=-1, keepdims=False)),  # no ties
    "Exp": ([u(3, 4)], {}),
    "Log": ([u(3, 4, low=0.2, high=3.0)], {}),
    "Tanh": ([u(3, 4)], {}),
    "Sqrt": ([u(3, 4, low=0.2, high=3.0)], {}),
    "GetItem": ([u(4, 3)], dict(index=np.array([0, 2, 2, 3]))),  # a repeated index must add up
    "Softmax": ([u(3, 5, low=-3, high=3)], dict(axis=-1)),
    "LogSoftmax": ([u(3, 5, low=-3, high=3)], dict(axis=-1)),
    "GELU": ([u(3, 4, low=-4, high=4)], {}),
    "LayerNorm": ([u(2, 3, 6), u(6, low=0.5, high=1.5), u(6)], {}),
    "Embedding": ([u(5, 3)], dict(idx=np.array([[0, 4, 4], [1, 0, 2]]))),
    "CrossEntropy": ([u(2, 3, 7, low=-3, high=3)], dict(targets=rng.integers(0, 7, (2, 3)))),
    "ScaledDotProductAttention": ([u(1, 2, 5, 4), u(1, 2, 5, 4), u(1, 2, 5, 4)],
                                  dict(causal=True, mask=None)),
}

rows = []
for name, (arrays, options) in cases.items():
    err = max_rel_error(SPECS[name], arrays, options)
    try:
        check_op(SPECS[name], arrays, options)
        verdict = "ok"
    except AssertionError as e:
        verdict = f"FAIL: {e}"
    rows.append((name, err, verdict))

print(f"{'op':28} {'max rel. error':>15}  harness")
for name, err, verdict in rows:
    print(f"{name:28} {err:15.1e}  {verdict}")

# %% [markdown]
# ## 6. Catching a planted bug
#
# The softmax $y_i = e^{x_i}/\sum_k e^{x_k}$ has the Jacobian $\partial y_i/\partial x_j = y_i(\delta_{ij} - y_j)$.
# Its diagonal is $y_i(1-y_i)$, and it is tempting to "simplify" backward to $g \odot y \odot (1-y)$,
# forgetting the off-diagonal terms $-y_i y_j$. ML-From-Scratch did exactly that, with no tests to
# notice. We plant that bug in an op of our own and hand it to the harness with the correct NumPy
# reference. (Defining a `Function` registers it in `minims.OPS`; we remove it afterwards so that it
# cannot leak into anything else, and pop it first so re-running the cell in a notebook works.)

# %%
minims.OPS.pop("DiagonalSoftmax", None)


class DiagonalSoftmax(minims.Function):
    """A softmax with a WRONG backward: only the Jacobian's diagonal. Do not use."""

    @staticmethod
    def forward(ctx, x):
        xp = minims.backend.xp
        y = xp.exp(x - x.max(axis=-1, keepdims=True))
        y /= y.sum(axis=-1, keepdims=True)
        ctx.save(y)
        return y

    @staticmethod
    def backward(ctx, g):
        (y,) = ctx.saved
        return g * y * (1 - y)  # BUG: the -y_i y_j terms are missing


buggy = OpSpec(draw=None, call=lambda x: DiagonalSoftmax.apply(x),
               reference=lambda x: SPECS["Softmax"].reference(x, axis=-1))
caught = None
try:
    check_op(buggy, [u(3, 4, low=-3, high=3)], {})
except AssertionError as e:
    caught = str(e)
print("harness on the diagonal-only softmax, shape (3, 4):")
print("  CAUGHT:", caught)

# %% [markdown]
# Note *where* the bug hides. On a softmax over **one** element, $y = 1$, the true gradient is 0, and
# so is the buggy $y(1-y)$: the check passes. A test written by hand for one convenient shape could
# miss the bug; hypothesis draws many shapes, including the ones that expose it.

# %%
check_op(buggy, [u(3, 1)], {})
print("harness on the diagonal-only softmax, shape (3, 1): passes (off-diagonal terms do not exist)")
del minims.OPS["DiagonalSoftmax"]

# %% [markdown]
# ## Check

# %%
assert all(verdict == "ok" for _, _, verdict in rows), "every registered op in the table must pass"
assert max(err for _, err, _ in rows) < 1e-6, "float64 directional derivatives should agree to < 1e-6"
assert caught is not None and "central difference" in caught, "the planted softmax bug must be caught"
assert "DiagonalSoftmax" not in minims.OPS, "the planted op must be unregistered again"
print(f"Check passed: {len(rows)} ops agree with central differences (worst "
      f"{max(err for _, err, _ in rows):.1e}), and the diagonal-only softmax was caught.")

# %% [markdown]
# ## Exercises
#
# Each exercise has a checker: `from lessons.support.exercises import check, help_for`, then
# `check("NN.i", your_answer)` prints *right* or what is off; `print(help_for("NN.i"))` shows what
# form the answer takes (a number, a dict with given keys, a function), not the answer itself.
# Reference solutions, for after you tried: `lessons/solutions.py`.
#
# 1. **float32 hides small bugs.** Plant a subtle bug: make `DiagonalSoftmax.backward` return the
#    *correct* gradient `y * (g - (g * y).sum(axis=-1, keepdims=True))` times `1 + 1e-4`. Does the
#    float64 harness catch it? Would a float32 check, with the loose tolerance float32 forces on you,
#    have caught it? *Hint:* compare 1e-4 with the float32 column of section 1;
#    `lessons.support.exercises.gradient_check(lambda t: Op.apply(t), x, dtype)` runs one check in `"float64"`
#    or `"float32"`, with the step and tolerance each dtype forces, and says whether it caught a bug.
#    *Check:* `check("03.1", {"float64_caught": ..., "float32_caught": ...})`.
# 2. **A kink on purpose.** Call `check_op(SPECS["ReLU"], [np.array([0.0, 1e-7, 1.0])], {})`.
#    What fails, and why is the op not wrong? *Hint:* section 3.
#    *Check:* `check("03.2", indices_that_disagree)`;
#    a list of the indices (0, 1, 2) of the inputs where the two gradients disagree.
# 3. **Check your own op.** Take the `Sin` op from lesson 02's exercise and write an `OpSpec` for it
#    (`draw=None` is fine when you pass inputs yourself; the reference is `np.sin`). Then break its
#    backward (use `+cos`, `-cos`, `sin`) and watch which versions are caught.
#    *Hint:* `OpSpec(draw=None, call=lambda x: Sin.apply(x), reference=np.sin)`.
#    *Check:* `check("03.3", {"+cos": caught, "-cos": caught, "sin": caught})`.
