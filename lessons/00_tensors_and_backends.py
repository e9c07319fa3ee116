# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # Lesson 00: tensors and backends
#
# **What you'll learn**
# - what a minims `Tensor` is: an array plus the little extra needed to differentiate through it;
# - the `xp` handle, the one switch between NumPy (CPU) and CuPy (GPU), and why the library reads it
#   *at call time*;
# - what changes on a GPU: asynchronous work, explicit copies to the host, and the few places where
#   CuPy behaves differently from NumPy (and how `minims/backend.py` papers over them);
# - why initial weights are drawn on the host, and how to measure memory.
#
# **Where this sits.** Everything in minims (the engine, the layers, the multi-scale models of
# Subramanian et al. 2020) computes on arrays from `minims.backend.xp`. The paper's central
# trade-off is *memory* against perplexity, so from the very first lesson we also learn to count bytes.
#
# Run it as a script (`python lessons/00_tensors_and_backends.py`) or open it as a notebook (see
# `lessons/README.md`). If there is no GPU, the GPU cells say so and are skipped.

# %%
import os
import sys
from pathlib import Path

# Make `import minims` work from a fresh clone (before `pip install -e .`), as a script or a notebook.
HERE = Path(__file__).resolve().parent if "__file__" in globals() else Path.cwd()
ROOT = next((p for p in (HERE, *HERE.parents) if (p / "minims").is_dir()), HERE)
sys.path.insert(0, str(ROOT))
QUICK = os.environ.get("MINIMS_QUICK") == "1"  # the test suite's fast mode: smaller sizes

import inspect
import time

import numpy as np

import minims

# %% [markdown]
# ## 1. Arrays first
#
# A NumPy array is a block of memory plus a *shape* and a *dtype* (how to read the bytes). Most of
# deep learning is a handful of array operations: elementwise maths, matrix products, reductions,
# and reshapes. Two facts matter all the time:
#
# - **dtype decides memory and precision.** float32 takes 4 bytes per number and carries about 7
#   significant digits (its machine epsilon is ~1e-7); float64 takes 8 and carries about 16 (~2e-16). We train in float32 and check gradients in float64
#   (lesson 03 shows why).
# - **Broadcasting** lets a `(C,)` bias be added to a `(B, T, C)` activation without copying it
#   B·T times. Lesson 02 shows the price: its gradient must be summed back to `(C,)`.

# %%
a = np.arange(6, dtype=np.float32).reshape(2, 3)   # (2, 3)
bias = np.array([10.0, 20.0, 30.0], dtype=np.float32)  # (3,)
print("a =\n", a, "\nshape", a.shape, "dtype", a.dtype, "bytes", a.nbytes)
print("a + bias (broadcast over rows) =\n", a + bias)
print("a reshaped is a view, not a copy:", np.shares_memory(a, a.reshape(3, 2)))
print("machine epsilon (the gap after 1.0): float32", np.finfo(np.float32).eps,
      "| float64", np.finfo(np.float64).eps)

# %% [markdown]
# ## 2. A minims `Tensor`
#
# `minims.Tensor` wraps one array of the active backend in `.data`. It adds `requires_grad`
# (should the engine track it?), `.grad` (filled in by `backward()`), and a link to the op that made
# it (lesson 02). Python lists and scalars become **float32** tensors (the training dtype); NumPy
# arrays keep their own dtype, so a float64 array stays float64.

# %%
t = minims.Tensor([[1, 2], [3, 4]])
print(t, "dtype:", t.dtype, "| type of .data:", type(t.data).__name__)
w = minims.Tensor(np.ones((2, 2)), requires_grad=True)  # float64, because the array is float64
print(w, "dtype:", w.dtype)

loss = (t.astype("float64") * w).sum()  # minims never mixes float32 and float64 silently
loss.backward()
print("d loss / d w =\n", w.grad)       # = t, of course
print("back to NumPy:", type(w.numpy()).__name__, type(minims.to_numpy(w.grad)).__name__)

# %% [markdown]
# ## 3. The `xp` handle
#
# Chainer's idea: NumPy and CuPy share almost the same API, so an op written against a module
# variable `xp` runs on either. In minims that variable is `minims.backend.xp`; `set_backend`
# rebinds it, and every op reads it **at call time** (`backend.xp.exp(...)`). Here is the switch:

# %%
print(inspect.getsource(minims.backend.set_backend))
print("active backend:", minims.get_backend(), "| xp is", minims.backend.xp.__name__)

# %% [markdown]
# Because `set_backend` rebinds a module attribute, **never** write `from minims.backend import xp`
# in your own code: that copies the binding once, and your function would keep using NumPy after
# a switch to CuPy. Write `minims.backend.xp` (or `xp = minims.backend.xp` inside the function):

# %%
def rms(a):
    """Root mean square of an array of the active backend (works on NumPy and on CuPy)."""
    xp = minims.backend.xp  # read now, not at import time
    return xp.sqrt((a * a).mean())


minims.set_backend("numpy")
print("rms on", minims.get_backend(), "=", float(rms(minims.backend.asarray([3.0, 4.0]))))

# %% [markdown]
# ## 4. Trying the GPU
#
# `set_backend("cupy")` needs CuPy and a CUDA device. When either is missing it raises
# `minims.backend.BackendUnavailable` with a message that says how to fix it. We catch it and
# **say** that the GPU cells are skipped; never skip silently.

# %%
try:
    minims.set_backend("cupy")
    GPU = True
    print("CuPy backend is available: the GPU cells below will run.")
except minims.backend.BackendUnavailable as e:
    GPU = False
    print("NOTE: no usable GPU here, so the GPU cells of this lesson are skipped (printed, not silent).")
    print("      why:", e)
finally:
    minims.set_backend("numpy")

# %% [markdown]
# ### What changes on a GPU
#
# 1. **Work is asynchronous.** A CuPy call *queues* a kernel and returns at once. To time GPU work,
#    wait for the queue first: `minims.backend.synchronize()` (a no-op on NumPy). Without it you
#    measure the launch, not the work.
# 2. **Data lives in another memory.** A CuPy array cannot be handed to NumPy, to `print` formatting
#    or to matplotlib without an explicit copy: `minims.to_numpy(a)` / `tensor.numpy()`. Such copies are
#    slow, so keep them out of inner loops (`loss.item()` once per log line, not per step).
# 3. **Memory is pooled.** CuPy keeps freed blocks for reuse, so the OS sees the pool, not your
#    arrays; `minims.memory.memory_stats()` reads the pool.
# 4. **float64 can be far slower** than float32 on GPUs (up to 64× on consumer cards), so we train in
#    float32 there too.

# %%
if GPU:
    minims.set_backend("cupy")
    n = 512 if QUICK else 4096
    host = np.random.default_rng(0).standard_normal((n, n)).astype(np.float32)
    a = minims.Tensor(host)                     # host -> device copy
    b = a @ a                                   # warm-up (kernels load, pool grows)
    minims.backend.synchronize()
    start = time.perf_counter()
    b = a @ a
    launched = time.perf_counter() - start      # only queued so far
    minims.backend.synchronize()
    finished = time.perf_counter() - start
    print(f"{n}x{n} matmul on the GPU: call returned after {launched * 1e3:.2f} ms, "
          f"work finished after {finished * 1e3:.2f} ms")
    print("result type on the device:", type(b.data).__module__, "| after to_numpy:",
          type(b.numpy()).__name__)
    start = time.perf_counter()
    host @ host
    print(f"the same matmul with NumPy on the CPU: {(time.perf_counter() - start) * 1e3:.1f} ms")
    minims.set_backend("numpy")
else:
    print("Skipped on CPU: GPU timing (asynchronous launch vs. synchronize) needs CuPy and a CUDA GPU.")

# %% [markdown]
# ## 5. Where CuPy differs from NumPy, and the library's shims
#
# `minims/backend.py` is the only file that knows about these differences:
#
# - **Repeated indices in `a[idx] += v`.** NumPy applies the update *once* per distinct index
#   (the others are dropped); CuPy leaves it undefined. Embedding backward hits exactly this (a token
#   appears many times in a batch), so minims uses `backend.scatter_add`, which accumulates on both.
# - **Out-of-range indices.** NumPy raises on `a[7]` for a length-5 array, but *wraps* negative ids;
#   CuPy wraps every out-of-range id. So the library checks id ranges itself and fails loudly.
# - **Reductions return 0-d arrays** on CuPy, not Python numbers: use `.item()`.
#
# The first one is worth seeing with your own eyes:

# %%
counts = np.zeros(3)
counts[np.array([0, 0, 1])] += 1.0              # token 0 appears twice...
print("a[idx] += 1 with a repeated index:", counts, "(the second update to 0 was dropped)")

counts = np.zeros(3)
minims.backend.scatter_add(counts, np.array([0, 0, 1]), np.ones(3))
print("backend.scatter_add:               ", counts)
print(inspect.getsource(minims.backend.scatter_add))

# %%
import minims.functional as F

table = minims.Tensor(np.eye(5), requires_grad=True)
try:
    F.embedding(np.array([1, 7]), table)        # id 7 does not exist in a 5-row table
except IndexError as e:
    print("out-of-range id caught on every backend:", e)

# %% [markdown]
# ## 6. Same seed, same weights, on any backend
#
# Random numbers drawn on a GPU differ from those drawn by NumPy, so a model initialised on the
# device would start from different weights than on the CPU. minims draws every initial weight on
# the host from one seeded NumPy generator (`backend.host_rng`) and only then moves it to the
# backend (`minims.nn.init_parameters`), so a CPU run and a GPU run with the same seed start identical.

# %%
from minims.nn import Linear, init_parameters

w1 = init_parameters(Linear(4, 3), seed=0).weight.numpy()
w2 = init_parameters(Linear(4, 3), seed=0).weight.numpy()
print("first row, seed 0, twice:", w1[0], w2[0])
print(inspect.getsource(init_parameters))

# %% [markdown]
# ## 7. Counting bytes
#
# The paper compares models by memory, so minims can measure it. `memory.track_memory()` reports
# the peak bytes allocated inside a block (tracemalloc on NumPy, the memory pool on CuPy). Lessons
# 02 and 05 meet the other tool, `minims.memory.saved_bytes`, which counts the activations a graph
# keeps for backward.

# %%
n = 256 if QUICK else 1024
for dtype in ("float32", "float64"):
    with minims.memory.track_memory() as m:
        x = minims.backend.xp.ones((n, n), dtype=dtype)
        y = x @ x                               # a second (n, n) array
    print(f"{dtype}: two {n}x{n} arrays -> peak {m['peak'] / 2**20:.2f} MiB "
          f"(expected {2 * n * n * np.dtype(dtype).itemsize / 2**20:.2f} MiB)")
    del x, y

# %% [markdown]
# ## Check
#
# Run this cell. If an assertion fails, its message says what you changed.

# %%
assert minims.get_backend() == "numpy", "the lesson should end on the NumPy backend"
assert minims.Tensor([1, 2, 3]).dtype == np.float32, "Python lists must become float32 tensors"
assert minims.Tensor(np.zeros(2)).dtype == np.float64, "NumPy arrays must keep their dtype"
assert isinstance(minims.to_numpy(minims.Tensor([1.0]).data), np.ndarray), "to_numpy gives NumPy"
acc = np.zeros(3)
minims.backend.scatter_add(acc, np.array([0, 0, 1]), np.ones(3))
assert acc.tolist() == [2.0, 1.0, 0.0], "scatter_add must accumulate repeated indices"
assert np.array_equal(w1, w2), "the same seed must give the same weights"
print("Check passed: tensors, the xp handle, scatter_add and seeded init behave as described.",
      "(GPU cells ran)" if GPU else "(GPU cells skipped: no GPU)")

# %% [markdown]
# ## Exercises
#
# Each exercise has a checker: `from lessons.support.exercises import check, help_for`, then
# `check("NN.i", your_answer)` prints *right* or what is off; `print(help_for("NN.i"))` shows what
# form the answer takes (a number, a dict with given keys, a function), not the answer itself.
# Reference solutions, for after you tried: `lessons/solutions.py`.
#
# 1. **A backend-agnostic function.** Write `normalize(a)` that returns `a / rms(a)` for an array of
#    the active backend, without importing NumPy inside it.
#    *Hint:* take `xp = minims.backend.xp` inside the function; test it with
#    `minims.backend.asarray([3.0, 4.0])`.
#    *Check:* `check("00.1", normalize)`; `normalize(a)` -> an array of the active backend.
# 2. **Bytes per number.** Use `minims.memory.track_memory()` to measure a `(1000, 1000)` array in
#    float32 and in float64, and a `(1000, 1000)` boolean mask.
#    *Hint:* expect about 4 MB, 8 MB and 1 MB; a boolean takes a whole byte.
#    *Check:* `check("00.2", {"float32": bytes, "float64": bytes, "bool": bytes})`.
# 3. **(GPU)** Write `timed(fn, sync)` (seconds for one call of `fn`) and time `a @ a` for
#    `n = 4096` with and without `minims.backend.synchronize()` before stopping the clock, then
#    with float64. *Hint:* without the synchronize you time the launch only;
#    the float64 / float32 ratio depends on the card (small on data-centre GPUs, large on gaming ones).
#    *Check:* `check("00.3", timed)`; `timed(fn, sync)` -> seconds for one call of `fn()`.
