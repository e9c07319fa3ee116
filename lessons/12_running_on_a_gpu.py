# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # Lesson 12: running on a GPU
#
# **What you'll learn**
# - how to install and switch on the CuPy backend, and why the model code needs no change;
# - what *does* change on a GPU: where arrays live, asynchronous work (synchronize before reading a
#   timer), memory read from CuPy's pool, ids that wrap instead of failing;
# - that the same seed gives the same initial weights on both backends, and how close the two
#   backends' numbers then stay;
# - how to train (`--backend cupy`) and how to measure (`python -m minims.bench`).
#
# **Where this sits.** `minims/backend.py`, the only file in minims that knows about CuPy (lesson 00
# introduced it). This lesson runs on any machine: without CuPy and a CUDA GPU it **says** that the
# GPU cells are skipped and runs the same code paths on NumPy instead.

# %%
import os
import sys
from pathlib import Path

# Make `import minims` work from a fresh clone (before `pip install -e .`), as a script or a notebook.
HERE = Path(__file__).resolve().parent if "__file__" in globals() else Path.cwd()
ROOT = next((p for p in (HERE, *HERE.parents) if (p / "minims").is_dir()), HERE)
sys.path.insert(0, str(ROOT))
QUICK = os.environ.get("MINIMS_QUICK") == "1"  # the test suite's fast mode: tiny model, a few steps
# On the CPU fallback, small matrices: BLAS threads gain nothing and fight for the cores (lesson 06).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import inspect
import json
import math
import tempfile
import time

import numpy as np

import minims
import minims.bench
from minims.memory import saved_bytes
from minims.models import LanguageModel, build_model
from minims.nn import init_parameters
from minims.train import make_args, train

# %% [markdown]
# ## 1. Installing CuPy
#
# CuPy is NumPy's API on NVIDIA GPUs. Pick the wheel that matches your CUDA driver (`nvidia-smi`
# prints the CUDA version the driver supports):
#
# ```bash
# pip install -e '.[cuda12]'     # CUDA 12.x drivers: installs cupy-cuda12x
# pip install -e '.[cuda13]'     # CUDA 13.x drivers: installs cupy-cuda13x
# python -c "import cupy; print(cupy.cuda.runtime.getDeviceCount(), 'GPU(s)')"
# ```
#
# Then `minims.set_backend("cupy")` (in code), `--backend cupy` (every command line), or the
# environment variable `MINIMS_BACKEND=cupy`. When CuPy or a device is missing, `set_backend`
# raises `minims.backend.BackendUnavailable` with a message that says how to fix it. We catch it:

# %%
try:
    minims.set_backend("cupy")
    GPU = True
    print("CuPy and a CUDA device are available: this lesson runs its GPU cells.")
except minims.backend.BackendUnavailable as e:
    GPU = False
    print("NOTE: no usable GPU here, so the GPU cells of this lesson are SKIPPED. Each of them runs\n"
          "      the same code on the NumPy backend instead, so you can read what would change.")
    print("      why:", e)
finally:
    minims.set_backend("numpy")
BACKEND = "cupy" if GPU else "numpy"
print("backend for the rest of this lesson:", BACKEND)

# %% [markdown]
# ## 2. The `xp` handle: one switch, read at call time
#
# Every op computes with `minims.backend.xp`, which `set_backend` rebinds to `numpy` or `cupy`.
# Model code never names either library, so the same `build_model` gives a GPU model when the
# backend is CuPy: its parameters are created (and live) on the device.

# %%
print(inspect.getsource(minims.backend.set_backend))

# %%
V, T = 80, (32 if QUICK else 128)
minims.set_backend(BACKEND)
gpu_model = build_model("top-down", vocab_size=V, block_size=T, layout="2-2", n_embd=64, seed=0)
p = gpu_model.lm_head.weight
print(f"on {BACKEND}: lm_head.weight is a {type(p.data).__module__}.{type(p.data).__name__} of shape {p.shape}")
gpu_state = gpu_model.state_dict()            # NumPy copies on the host (copied while cupy is active)
minims.set_backend("numpy")
cpu_model = build_model("top-down", vocab_size=V, block_size=T, layout="2-2", n_embd=64, seed=0)
cpu_state = cpu_model.state_dict()

# %% [markdown]
# One rule keeps this simple: **one backend at a time**. Switch, build, compute, then switch back. A
# model built under CuPy holds CuPy arrays and must *run* while CuPy is the active backend (every op
# calls the active library). Copying its results to the host (`state_dict()`, `.numpy()`,
# `minims.to_numpy`) works at any time: the conversion looks at the array itself, not at the backend.

# %% [markdown]
# ## 3. Same seed, same weights
#
# GPU random number generators give different streams from NumPy's. minims draws every initial
# weight on the **host** from one seeded NumPy generator and only then copies it to the device, so
# a CPU run and a GPU run with the same seed start from identical weights, bit for bit:

# %%
print(inspect.getsource(init_parameters))
same_weights = all(np.array_equal(cpu_state[name], gpu_state[name]) for name in cpu_state)
print(f"{len(cpu_state)} parameter arrays; identical on numpy and {BACKEND}: {same_weights}" +
      ("" if GPU else "  (two NumPy builds here; on a GPU: numpy against cupy)"))

# %% [markdown]
# The *computations* then differ in rounding: a GPU sums in a different order, and may use fused
# multiply-adds. In float32 the logits of the two backends agree to about 1e-6, not exactly; this is
# why the project compares backends in float64 (`tests/test_cupy_real.py`) and never expects
# bit-equal training runs across devices.

# %%
idx = np.random.default_rng(0).integers(0, V, size=(4, T))
with minims.no_grad():
    cpu_logits = cpu_model(idx)[0].numpy()
    minims.set_backend(BACKEND)
    gpu_logits = gpu_model(idx)[0].numpy()                        # .numpy() copies to the host
    minims.set_backend("numpy")
logit_gap = float(np.abs(cpu_logits - gpu_logits).max())
print(f"largest |logit difference| numpy vs {BACKEND}: {logit_gap:.1e}" +
      ("" if GPU else "  (the same backend twice here, so exactly 0)"))

# %% [markdown]
# ## 4. Ids out of range: CuPy wraps, so minims checks
#
# NumPy raises `IndexError` for `table[100]` on a table of 80 rows. CuPy does not: it **wraps** the
# index around, silently, and the model trains on the wrong rows. So every minims model checks its
# token ids before the embedding lookup, on both backends, and says what is wrong:

# %%
print(inspect.getsource(LanguageModel.check_idx))
minims.set_backend(BACKEND)
try:
    gpu_model(np.array([[1, 2, V + 20]]))
    range_error = None
except ValueError as e:
    range_error = str(e)
minims.set_backend("numpy")
print(f"on {BACKEND}, token id {V + 20} with a vocabulary of {V}: ValueError: {range_error}")

# %% [markdown]
# ## 5. Timing: synchronize before reading the clock
#
# A CuPy call *queues* work on the GPU and returns at once. A timer read right after it measures the
# launch, not the work. `minims.backend.synchronize()` waits for the queue (a no-op on NumPy), so the
# right pattern is: synchronize, start the clock, run, synchronize, stop the clock. The first steps
# are slow on a GPU (kernels compile, the memory pool grows), so warm up first.

# %%
print(inspect.getsource(minims.backend.synchronize))


def training_step(model, x, y):
    _, loss = model(x, y)
    model.zero_grad()
    loss.backward()
    return loss


minims.set_backend(BACKEND)
x, y = idx, np.roll(idx, -1, axis=1)
for _ in range(2):                                                # warm-up
    training_step(gpu_model, x, y)
minims.backend.synchronize()
t0 = time.perf_counter()
training_step(gpu_model, x, y)
launched = time.perf_counter() - t0                               # without waiting
minims.backend.synchronize()
finished = time.perf_counter() - t0                               # the honest number
print(f"one forward + backward on {BACKEND}: the call returned after {launched * 1e3:.1f} ms, "
      f"the work was done after {finished * 1e3:.1f} ms")
if not GPU:
    print("(on NumPy the work is done when the call returns, so the two agree; on a GPU the first "
          "can be far smaller)")

# %% [markdown]
# ## 6. Memory: exact bytes from the graph, peak bytes from the pool
#
# Two measures, as in lessons 00 and 06. `saved_bytes` walks the graph and adds up the arrays held
# for backward: it is exact and **the same on both backends** (the same arrays, the same dtypes).
# `track_memory` reports the peak bytes allocated inside a block: on NumPy from `tracemalloc`, on
# CuPy from its memory pool, which keeps freed blocks for reuse (so `nvidia-smi` shows the pool, not
# your arrays; `cupy.get_default_memory_pool().free_all_blocks()` returns them).

# %%
minims.set_backend(BACKEND)
with minims.memory.track_memory() as mem:
    _, loss = gpu_model(x, y)
    held_gpu = saved_bytes(loss)
    loss.backward()
minims.set_backend("numpy")
_, loss_cpu = cpu_model(x, y)
held_cpu = saved_bytes(loss_cpu)
print(f"saved for backward: {held_gpu / 2**20:.2f} MiB on {BACKEND}, {held_cpu / 2**20:.2f} MiB on numpy")
print(f"peak bytes of one step on {BACKEND} ({'memory pool' if GPU else 'tracemalloc'}): {mem['peak'] / 2**20:.2f} MiB")

# %% [markdown]
# ## 7. The same training, on the GPU
#
# The trainer takes the backend as one more option; nothing else changes. From a shell:
#
# ```bash
# python -m minims.train --backend cupy --model top-down --layout 2-2 --block-size 512 --n-embd 256
# python -m minims.experiment tradeoff --backend cupy     # lesson 11's grid, on the GPU
# ```
#
# The small models of these lessons are too small to keep a big GPU busy (each step launches
# hundreds of tiny kernels); the GPU pays off at long sequences and wide models. On a GPU we train
# the same model on both backends for a few steps: the same start, and trajectories that differ
# only by rounding.

# %%
settings = dict(model="top-down", layout="2-2", block_size=T, batch_size=16, n_embd=64,
                max_iters=4 if QUICK else 30, eval_interval=4 if QUICK else 30, eval_iters=2 if QUICK else 5,
                lr=3e-3, warmup_iters=5)
runs = {}
for backend in (("numpy", "cupy") if GPU else ("numpy",)):
    with tempfile.TemporaryDirectory() as out_dir:
        result = train(make_args(backend=backend, out_dir=out_dir, cache_dir=str(ROOT / ".cache"), **settings),
                       verbose=False)
        log = [json.loads(line) for line in (Path(out_dir) / "log.jsonl").read_text().splitlines()]
    runs[backend] = (log[0]["val_loss"], result)
    print(f"{backend:>5}: valid loss {log[0]['val_loss']:.5f} -> {result['val_loss']:.5f} in {result['iter']} "
          f"steps, {result['tokens_per_s']:,.0f} tokens/s")
minims.set_backend("numpy")
if not GPU:
    print("GPU run skipped (no CuPy/CUDA): on a GPU this cell trains the same model with backend='cupy' too.")

# %% [markdown]
# ## 8. Measuring: `python -m minims.bench`
#
# The benchmark times whole training steps with synchronization, warm-up and medians, and with
# PyTorch alongside when it is installed (on the CPU):
#
# ```bash
# python -m minims.bench model --backend cupy             # one training step of the vanilla model
# python -m minims.bench speed --backend cupy             # every model, tokens per second
# python -m minims.bench memory --backend cupy --max-t 8192   # memory against T, and its exponent
# ```
#
# Here a small run of the first, on this lesson's backend:

# %%
bench_args = ["model", "--backend", BACKEND, "--n-layer", "2", "--n-embd", "64", "--block-size",
              "64" if QUICK else "128", "--batch-size", "4", "--warmup", "1", "--repeat", "2" if QUICK else "5"]
print("python -m minims.bench " + " ".join(bench_args))
bench_exit = minims.bench.main(bench_args)
minims.set_backend("numpy")

# %% [markdown]
# ## Check

# %%
assert minims.get_backend() == "numpy", "the lesson should end on the NumPy backend"
assert same_weights, "the same seed must give the same initial weights on both backends"
assert logit_gap < 1e-4, f"float32 logits of the two backends should agree to rounding (gap {logit_gap:.1e})"
assert range_error is not None and "token ids" in range_error, "out-of-range ids must raise a clear error"
assert abs(held_gpu - held_cpu) <= 0.01 * held_cpu, \
    f"saved_bytes should be the same on both backends ({held_gpu:,} vs {held_cpu:,} bytes)"
assert all(math.isfinite(r["val_loss"]) for _, r in runs.values()), "training diverged"
if GPU:
    start_gap = abs(runs["numpy"][0] - runs["cupy"][0])
    assert start_gap < 1e-3, f"the same seed should give the same first valid loss on both backends ({start_gap:.1e})"
assert bench_exit == 0, "python -m minims.bench model should finish with exit code 0"
print("Check passed: same seed, same weights; ids checked; timing synchronized; memory measured;",
      "trained on numpy and cupy." if GPU else "trained on numpy. (GPU cells skipped: no GPU.)")

# %% [markdown]
# ## Exercises
#
# Each exercise has a checker: `from lessons.support.exercises import check, help_for`, then
# `check("NN.i", your_answer)` prints *right* or what is off; `print(help_for("NN.i"))` shows what
# form the answer takes (a number, a dict with given keys, a function), not the answer itself.
# Reference solutions, for after you tried: `lessons/solutions.py`.
#
# 1. **Where the GPU wins.** On a GPU, run `python -m minims.bench speed --backend cupy` with
#    `--block-size 128`, then `512` and `2048` (and `--batch-size 1` if memory runs out). How do the
#    tokens per second of vanilla and retina change with $T$? *Hint:* small problems are bound by
#    kernel launches, not arithmetic; the $T^2$ attention shows only at long $T$.
#    *Check:* `check("12.1", {"vanilla": {T: tok_s}, "retina": {T: tok_s}})`.
# 2. **Forgetting to synchronize.** Write `timed(steps, sync)` and time 20 training steps with and without
#    `minims.backend.synchronize()` after the loop. Why is the unsynchronized number wrong even
#    though `loss.item()` is never called? *Hint:* the clock stops while kernels are still queued;
#    add `loss.item()` inside the loop and see it act as a synchronization.
#    *Check:* `check("12.2", timed)`; `timed(steps, sync)` -> seconds for one call of `steps()`.
# 3. **float64 on a GPU.** Build the model with `dtype="float64"` on both backends and compare the
#    logits again (section 3). How small does the gap get, and how much slower is a float64 step on
#    your GPU? *Hint:* data-centre GPUs run float64 at half the float32 rate, consumer ones at 1/32
#    or 1/64.
#    *Check:* `check("12.3", {"float32_gap": ..., "float64_gap": ...})`.
