# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # Lesson 04: fused ops
#
# **What you'll learn**
# - why the hot paths of a transformer are *fused* ops (one `Function` with a hand-written backward)
#   rather than chains of primitives: fewer saved activations, fewer Python calls, and stability;
# - the **max-shift** that makes softmax and log-softmax safe for logits of ±10⁴;
# - how to derive the backward passes of softmax, log-softmax, cross-entropy, layer norm and GELU;
# - how to check them: against the same maths built from primitives, and with lesson 03's harness.
#
# **Where this sits.** `minims/ops/nn.py` (called as `minims.functional.softmax`, ...). Every layer
# of the vanilla transformer (lesson 06) and of the paper's multi-scale models calls these ops; their
# derivations sit beside the code, in the comment above each `backward` (the llm.c habit). Here we write them out in full.

# %%
import os
import sys
from pathlib import Path

# Make `import minims` work from a fresh clone (before `pip install -e .`), as a script or a notebook.
HERE = Path(__file__).resolve().parent if "__file__" in globals() else Path.cwd()
ROOT = next((p for p in (HERE, *HERE.parents) if (p / "minims").is_dir()), HERE)
sys.path.insert(0, str(ROOT))
QUICK = os.environ.get("MINIMS_QUICK") == "1"  # the test suite's fast mode: smaller timing arrays

import inspect
import math
import time

import numpy as np

import minims
import minims.functional as F
from minims import Tensor

from minims.testing.gradcheck import check_op

try:
    from minims.testing.op_specs import SPECS   # the op specs of lesson 03
except ImportError as e:  # they draw inputs with hypothesis, a test dependency
    raise SystemExit(f"lesson 04 runs the test harness, which needs hypothesis: "
                     f"pip install -e '.[test]' (or pip install hypothesis). ({e})")

rng = np.random.default_rng(0)

# %% [markdown]
# ## 1. Softmax, and why it is shifted
#
# $\text{softmax}(x)_i = e^{x_i} / \sum_k e^{x_k}$. Taken literally, $e^{x}$ overflows for
# $x \gtrsim 89$ in float32 and $x \gtrsim 710$ in float64, and a model's logits can get there.
# But softmax does not change when a constant is subtracted from every $x_i$ (it cancels between
# numerator and denominator), so we subtract $m = \max_k x_k$: the largest exponent is then
# $e^0 = 1$ and nothing overflows. For the *log* of a softmax we also avoid dividing and then taking
# a log (which turns an underflowed 0 into $-\infty$):
#
# $$\log \text{softmax}(x)_i = (x_i - m) - \log \sum_k e^{x_k - m} \qquad\text{(log-sum-exp)}.$$
#
# Here is what the naive formula does with logits of ±10⁴ (plain NumPy, for illustration), and
# what the library does:

# %%
z = np.array([1e4, 0.0, -1e4])
with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
    naive = np.log(np.exp(z) / np.exp(z).sum())
stable = F.log_softmax(Tensor(z)).numpy()
print("naive  log(exp(z) / sum exp(z)):", naive)
print("minims F.log_softmax(z):        ", stable)
with np.errstate(over="ignore"):
    print("in float32, exp(100) is already", np.exp(np.float32(100)), "(the largest float32 is",
          np.finfo(np.float32).max, ")")
print(inspect.getsource(minims.ops.nn._log_softmax))

# %% [markdown]
# ## 2. The softmax backward (the full Jacobian, not its diagonal)
#
# With $y = \text{softmax}(x)$: $\partial y_i / \partial x_j = y_i(\delta_{ij} - y_j)$. Backward
# receives $g = \partial L/\partial y$ and returns the vector-Jacobian product
#
# $$\bar x_j = \sum_i g_i\, y_i (\delta_{ij} - y_j) = y_j \Big(g_j - \sum_i g_i y_i\Big),
# \qquad \bar x = y \odot (g - \langle g, y\rangle).$$
#
# One saved array ($y$), one reduction. For **log-softmax**, $y_i = x_i - \log\sum_k e^{x_k}$, so
# $\partial y_i/\partial x_j = \delta_{ij} - \text{softmax}(x)_j$ and
#
# $$\bar x = g - \text{softmax}(x) \sum_i g_i, \qquad \text{softmax}(x) = e^{y}.$$
#
# **Cross-entropy** over $N$ positions with targets $t_n$, $L = -\frac1N \sum_n \log\text{softmax}(z_n)_{t_n}$,
# is log-softmax with $g$ equal to $-1/N$ at the target and 0 elsewhere, which gives the famous
#
# $$\bar z_n = \big(\text{softmax}(z_n) - \text{onehot}(t_n)\big) / N .$$
#
# The library's code says the same in a few lines each:

# %%
for op in (F.Softmax, F.LogSoftmax, F.CrossEntropy):
    print(inspect.getsource(op))

# %% [markdown]
# ## 3. Layer norm
#
# Over the last axis of $C$ features:
# $\mu = \frac1C\sum_j x_j$, $\sigma^2 = \frac1C\sum_j (x_j-\mu)^2$, $r = (\sigma^2+\epsilon)^{-1/2}$,
# $\hat x = (x-\mu)\,r$, and $y = \hat x \odot w + b$.
#
# *Parameters.* $w$ and $b$ are broadcast over all rows (every position of every sequence), so their
# gradients sum over rows: $\bar w = \sum_{\text{rows}} g \odot \hat x$ and $\bar b = \sum_{\text{rows}} g$.
#
# *Input.* Let $\hat g = g \odot w = \partial L/\partial \hat x$. Each $\hat x_j$ depends on every $x_i$
# through $\mu$ and $r$. Since $\partial\sigma^2/\partial x_i = \frac2C(x_i - \mu)$ (the $\mu$ term
# drops out because $\sum_j (x_j-\mu) = 0$), $\partial r/\partial x_i = -\frac{r^3}{C}(x_i-\mu)$, and
#
# $$\frac{\partial \hat x_j}{\partial x_i} = r\Big(\delta_{ij} - \frac1C\Big) - (x_j-\mu)\frac{r^3}{C}(x_i-\mu)
# = r\Big(\delta_{ij} - \frac1C - \frac{\hat x_i \hat x_j}{C}\Big).$$
#
# Contracting with $\hat g$:
#
# $$\bar x = r\Big(\hat g - \text{mean}(\hat g) - \hat x \odot \text{mean}(\hat g \odot \hat x)\Big).$$
#
# Backward needs only $\hat x$, $r$ (one number per row) and $w$: the fused op saves those and
# nothing else.

# %%
print(inspect.getsource(F.LayerNorm))

# %% [markdown]
# ## 4. GELU
#
# GPT-2's tanh approximation: $y = \tfrac12 x (1 + \tanh u)$ with $u = c(x + a x^3)$,
# $c = \sqrt{2/\pi}$, $a = 0.044715$. By the product and chain rules,
#
# $$\frac{dy}{dx} = \tfrac12 (1 + \tanh u) + \tfrac12 x\,(1 - \tanh^2 u)\; c\,(1 + 3 a x^2).$$
#
# The op saves $x$ and $\tanh u$, and computes in place: GELU runs on the widest activation of a
# transformer block (B·T·4C numbers), where every temporary array costs memory and time.

# %%
print(inspect.getsource(F.GELU))

# %% [markdown]
# ## 5. Check 1: the same maths from primitives
#
# The engine can differentiate the *unfused* formulas by itself (lesson 02). Writing them with
# primitive ops gives an independent reference for both the values and the gradients. In float64
# the two must agree to ~1e-12. (These composed versions exist only to check the fused ones.)

# %%
C_GELU = math.sqrt(2 / math.pi)


def composed_softmax(x):
    e = (x - x.max(axis=-1, keepdims=True)).exp()
    return e / e.sum(axis=-1, keepdims=True)


def composed_log_softmax(x):
    s = x - x.max(axis=-1, keepdims=True)
    return s - s.exp().sum(axis=-1, keepdims=True).log()


def composed_layer_norm(x, w, b, eps=1e-5):
    xc = x - x.mean(axis=-1, keepdims=True)
    return xc / ((xc * xc).mean(axis=-1, keepdims=True) + eps).sqrt() * w + b


def composed_gelu(x):
    return 0.5 * x * (1 + (C_GELU * (x + 0.044715 * x ** 3)).tanh())


def grads_of(fn, arrays, w):
    """Value and input gradients of <w, fn(*inputs)>, all float64."""
    ts = [Tensor(a, requires_grad=True) for a in arrays]
    out = fn(*ts)
    out.backward(w)
    return out.numpy(), [t.grad for t in ts]


x = rng.uniform(-3, 3, size=(4, 6))
lw, lb = rng.uniform(0.5, 1.5, size=6), rng.uniform(-1, 1, size=6)
w_out = rng.standard_normal((4, 6))
pairs = {
    "softmax": (F.softmax, composed_softmax, [x]),
    "log_softmax": (F.log_softmax, composed_log_softmax, [x]),
    "layer_norm": (F.layer_norm, composed_layer_norm, [x, lw, lb]),
    "gelu": (F.gelu, composed_gelu, [x]),
}
agreement = {}
print(f"{'op':12} {'max |value diff|':>17} {'max |grad diff|':>16}")
for name, (fused, composed, arrays) in pairs.items():
    vf, gf = grads_of(fused, arrays, w_out)
    vc, gc = grads_of(composed, arrays, w_out)
    agreement[name] = (np.abs(vf - vc).max(), max(np.abs(a - b).max() for a, b in zip(gf, gc)))
    print(f"{name:12} {agreement[name][0]:17.1e} {agreement[name][1]:16.1e}")

# %% [markdown]
# ## 6. Check 2: the harness, with central differences
#
# The composed versions are a strong check, but they share the engine with the fused ones. Lesson
# 03's harness compares against plain NumPy and finite differences instead:

# %%
harness_inputs = {
    "Softmax": ([rng.uniform(-3, 3, (3, 5))], dict(axis=-1)),
    "LogSoftmax": ([rng.uniform(-3, 3, (3, 5))], dict(axis=0)),
    "CrossEntropy": ([rng.uniform(-3, 3, (2, 4, 7))], dict(targets=rng.integers(0, 7, (2, 4)))),
    "LayerNorm": ([rng.uniform(-2, 2, (2, 3, 8)), rng.uniform(0.5, 1.5, 8), rng.uniform(-1, 1, 8)], {}),
    "GELU": ([rng.uniform(-4, 4, (3, 7))], {}),
}
for name, (arrays, options) in harness_inputs.items():
    check_op(SPECS[name], arrays, options, seed=3)
    print(f"check_op({name}): ok")

# %% [markdown]
# ## 7. What fusing buys: activation memory and graph size
#
# A composed op saves the intermediates of every primitive it is made of; the fused op saves only
# what its hand-derived backward needs. `minims.memory.saved_bytes(out)` counts the bytes a graph
# holds for backward (the paper's memory axis). The input is made an activation (`x0 * 1.0`), as it is
# inside a network; the table counts arrays of the size of `x`. We also time forward + backward
# (best of 5; timings jitter on a busy machine, the byte counts do not).

# %%
def n_ops(t):
    """How many op nodes the graph behind t holds."""
    seen, stack = set(), [t]
    while stack:
        node = stack.pop()
        if id(node) not in seen and node._ctx is not None:
            seen.add(id(node))
            stack.extend(node._ctx.parents)
    return len(seen)


def time_fwd_bwd(fn, x, repeats=5):
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        xt = Tensor(x, requires_grad=True)
        fn(xt).sum().backward()
        best = min(best, time.perf_counter() - start)
    return best


N, C = (64, 256) if QUICK else (2048, 512)
x32 = rng.standard_normal((N, C)).astype(np.float32)
lw32 = Tensor(np.ones(C, np.float32), requires_grad=True)
lb32 = Tensor(np.zeros(C, np.float32), requires_grad=True)
ops32 = {
    "softmax": (F.softmax, composed_softmax),
    "layer_norm": (lambda t: F.layer_norm(t, lw32, lb32), lambda t: composed_layer_norm(t, lw32, lb32)),
    "gelu": (F.gelu, composed_gelu),
}
memory = {}
unit = x32.nbytes
print(f"(N, C) = ({N}, {C}) float32; one array of that size = {unit / 2**20:.2f} MiB")
print(f"{'op':11} {'saved (×x) fused':>17} {'composed':>9} {'#ops fused':>11} {'composed':>9} "
      f"{'fwd+bwd ms fused':>17} {'composed':>9}")
for name, (fused, composed) in ops32.items():
    x_act = Tensor(x32, requires_grad=True) * 1.0
    yf, yc = fused(x_act), composed(x_act)
    memory[name] = (minims.memory.saved_bytes(yf), minims.memory.saved_bytes(yc))
    tf, tc = time_fwd_bwd(fused, x32), time_fwd_bwd(composed, x32)
    print(f"{name:11} {memory[name][0] / unit:17.2f} {memory[name][1] / unit:9.2f} "
          f"{n_ops(yf) - 1:11d} {n_ops(yc) - 1:9d} {tf * 1e3:17.1f} {tc * 1e3:9.1f}")

# %% [markdown]
# ## Check

# %%
assert np.all(np.isfinite(stable)) and np.allclose(stable, [0.0, -1e4, -2e4]), \
    "log_softmax must be exact and finite for logits of ±1e4"
assert not np.all(np.isfinite(naive)), "the naive formula should overflow (that is the point)"
for name, (dv, dg) in agreement.items():
    assert dv < 1e-12 and dg < 1e-10, \
        f"fused {name} must match its composed version (values {dv:.1e}, grads {dg:.1e})"
for name, (fused_bytes, composed_bytes) in memory.items():
    assert fused_bytes < composed_bytes, f"fused {name} should save less for backward than the composed one"
print("Check passed: stable log-softmax, fused == composed in float64, harness ok, and fused saves less memory.")

# %% [markdown]
# ## Exercises
#
# Each exercise has a checker: `from lessons.support.exercises import check, help_for`, then
# `check("NN.i", your_answer)` prints *right* or what is off; `print(help_for("NN.i"))` shows what
# form the answer takes (a number, a dict with given keys, a function), not the answer itself.
# Reference solutions, for after you tried: `lessons/solutions.py`.
#
# 1. **Cross-entropy from its parts.** Show numerically that `F.cross_entropy(z, t)` equals
#    `-(F.log_softmax(z) * onehot).sum() / N`, gradients included.
#    *Hint:* `onehot = np.eye(V)[t]`; call `.backward()` on each scalar loss (with a fresh `z`
#    tensor each time) and compare the two `z.grad`.
#    *Check:* `check("04.1", ce_from_parts)`; `ce_from_parts(z, t)` -> the loss Tensor.
# 2. **RMSNorm.** Derive the backward of $y = x \cdot r \odot w$ with $r = (\text{mean}(x^2) + \epsilon)^{-1/2}$
#    (no mean subtraction). *Hint:* follow section 3 without the $\mu$ terms:
#    $\bar x = r(\hat g - \hat x\, \text{mean}(\hat g \odot \hat x))$. Check it against a composed
#    version as in section 5.
#    *Check:* `check("04.2", rmsnorm_backward)`;
#    `rmsnorm_backward(x, w, g, eps)` -> `(dx, dw)`, NumPy in and out.
# 3. **Where does the memory go?** For the composed GELU, print
#    `minims.memory.saved_bytes(y, by="op")`. Which primitive saves the most? *Hint:* every `Mul`
#    saves both of its operands.
#    *Check:* `check("04.3", "OpName")`; the op's name as `saved_bytes` prints it.
