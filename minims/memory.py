"""Memory, in bytes: measured in the graph, measured on the backend, and estimated (ours).

The paper compares models by the memory training needs; minims measures it three ways, all here.

**Held for backward (exact).** Every op saves what its backward needs through `ctx.save(...)`,
tagged with the name scope it ran in (modules use their dotted path, e.g. `blocks.0.attn`).
Walking the live graph from an output and adding up those arrays (`saved_bytes`) gives the exact
activation memory of a forward pass, without timing noise or allocator effects; arrays that share
a buffer (views) are counted once, and the leaves' own data (parameters, inputs) is not counted.
`activation_bytes(model, ...)` is that figure for one training forward pass of a model, as the
lessons and `python -m minims.experiment` report it.

**Peak on the backend (measured).** `track_memory()` gives the peak bytes allocated inside a
block: tracemalloc on NumPy (NumPy reports its buffers to it), the CuPy memory pool (and a memory
hook for its peak) on a GPU. The trainer reports the peak of its first step.

**Before allocating (estimated).** A model far too big for the machine (say `--n-embd 100000`)
should be refused with a number in a second, not die minutes later inside NumPy or CuPy.
`training_bytes(config, batch_size)` counts:

- parameters: token and position embeddings (V·C + T·C), `n_layer` transformer blocks of
  12·C² + 13·C each (attention 4·C² + 4·C, MLP 8·C² + 5·C, two LayerNorms 4·C), the final
  LayerNorm and the head (C·V). Every model here is built from such blocks, so this is within a
  few per cent of `model.num_parameters()` (the multi-scale models add small pooling layers);
- training state: weights, gradients and AdamW's two moments, four copies of the parameters;
- activations held for backward by one micro-batch: per block about B·T·(16·C + 2·n_head·T)
  values (the projections, the MLP and the T×T attention weights), plus the logits and their
  softmax, 2·B·T·V. This is the vanilla model's figure; the multi-scale models hold less (that
  is their point), so for them it errs on the safe side by up to about 2×.

Every estimate is in bytes of the run's dtype. `available_bytes()` is what the backend can still
hand out: free host memory (Linux's MemAvailable plus free swap) or free GPU memory.
"""
import contextlib
import os
import tracemalloc
from collections import defaultdict

import numpy

from . import backend
from .engine import walk_graph

_peak_hook = None   # the CuPy memory hook that records the pool's peak (made on first use)
HEAD_SCOPES = ("lm_head", "ln_f", "")   # the output head and the loss: the same in every model


# --- held for backward: the graph ---------------------------------------------------------------

def _owner(a):
    """The array that owns a's buffer (views point at it through .base)."""
    while getattr(a, "base", None) is not None and hasattr(a.base, "nbytes"):
        a = a.base
    return a


def saved_arrays(*outputs):
    """Yield (scope, op_name, array) for every array saved in the graph behind `outputs`."""
    leaves, found = set(), []
    for t, ctx in walk_graph(*outputs):
        if ctx is None:
            leaves.add(id(_owner(t.data)))
            continue
        for a in ctx.saved:
            if hasattr(a, "nbytes"):
                found.append((ctx.scope, ctx.op.__name__, a))
    for scope, op, a in found:
        if id(_owner(a)) not in leaves:
            yield scope, op, a


def saved_bytes(*outputs, by=None, depth=None):
    """Total bytes saved for backward behind `outputs`.

    by=None → an int; by="scope" → {scope: bytes} (scope cut to its first `depth` dotted
    parts when `depth` is given); by="op" → {op name: bytes}.
    """
    totals, counted = defaultdict(int), {}
    for scope, op, a in saved_arrays(*outputs):
        owner = _owner(a)
        if id(owner) in counted:
            continue
        counted[id(owner)] = owner  # keep it alive so its id stays unique
        if by == "scope":
            key = ".".join(scope.split(".")[:depth]) if depth else scope
        else:
            key = op if by == "op" else None
        totals[key] += int(owner.nbytes)
    if by is None:
        return totals.get(None, 0)
    return dict(totals)


def forward_bytes(model, batch_size, block_size, vocab_size=None, by=None, depth=None):
    """`saved_bytes(loss, by=by, depth=depth)` of one training forward pass: `model` on
    `batch_size` sequences of `block_size` random tokens (ids below `vocab_size`, by default the
    model's; seed 0) with their targets, so the loss's graph counts too."""
    V = vocab_size or model.config.vocab_size
    idx = numpy.random.default_rng(0).integers(0, V, size=(batch_size, block_size + 1))
    _, loss = model(idx[:, :-1], idx[:, 1:])
    return saved_bytes(loss, by=by, depth=depth)


def activation_bytes(model, batch_size, block_size, vocab_size=None):
    """(all bytes, the body's bytes) saved for backward by one training forward pass (see
    `forward_bytes`); the body leaves out the output head and the loss (`HEAD_SCOPES`), which
    every model shares."""
    scopes = forward_bytes(model, batch_size, block_size, vocab_size, by="scope", depth=1)
    return sum(scopes.values()), sum(b for s, b in scopes.items() if s not in HEAD_SCOPES)


# --- peak on the backend: tracemalloc on NumPy, the memory pool on CuPy -------------------------

def _cupy_peak_hook():
    """A CuPy memory hook that records the pool's peak used bytes (built on first use)."""
    global _peak_hook
    if _peak_hook is None:
        pool = backend.xp.get_default_memory_pool()

        class PeakHook(backend.xp.cuda.memory_hook.MemoryHook):
            name = "minims_peak"

            def __init__(self):
                self.peak = pool.used_bytes()

            def malloc_postprocess(self, **kwargs):
                self.peak = max(self.peak, pool.used_bytes())

        _peak_hook = PeakHook()
        _peak_hook.__enter__()  # installed for the rest of the process
    return _peak_hook


def reset_peak_memory():
    """Start measuring peak memory from now (starts tracemalloc on NumPy if needed)."""
    if backend.name == "cupy":
        hook = _cupy_peak_hook()
        hook.peak = backend.xp.get_default_memory_pool().used_bytes()
    else:
        if not tracemalloc.is_tracing():
            tracemalloc.start()
        tracemalloc.reset_peak()


def memory_stats():
    """{"in_use": bytes, "peak": bytes} since the last `reset_peak_memory()`.

    On NumPy this counts what tracemalloc sees (NumPy reports its buffers to it), so it is
    zero until `reset_peak_memory()` or `track_memory()` starts tracing. On CuPy it reads the
    default memory pool.
    """
    if backend.name == "cupy":
        pool = backend.xp.get_default_memory_pool()
        used = pool.used_bytes()
        peak = max(_cupy_peak_hook().peak, used)
        return {"in_use": int(used), "peak": int(peak)}
    if not tracemalloc.is_tracing():
        return {"in_use": 0, "peak": 0}
    used, peak = tracemalloc.get_traced_memory()
    return {"in_use": int(used), "peak": int(peak)}


@contextlib.contextmanager
def track_memory():
    """Measure the peak bytes allocated inside the block: `with track_memory() as m: ...; m["peak"]`.

    The result is relative to what was in use when the block started. On NumPy, tracemalloc
    is stopped again afterwards if it was not running before (it slows Python down).
    """
    was_tracing = backend.name == "numpy" and tracemalloc.is_tracing()
    reset_peak_memory()
    start = memory_stats()["in_use"]
    result = {}
    try:
        yield result
    finally:
        backend.synchronize()
        stats = memory_stats()
        result["peak"] = stats["peak"] - start
        result["in_use"] = stats["in_use"] - start
        if backend.name == "numpy" and not was_tracing:
            tracemalloc.stop()


# --- before allocating: the estimate ----------------------------------------------------------

def parameter_count(vocab_size, block_size, n_layer, n_embd, pool=1, n_scales=0, pool_kind="mean",
                    upsample_kind="repeat", combine=None, band=None, **_):
    """Estimated number of parameters of a model with these settings: the blocks, plus the
    learned pooling (k·C² + C per scale; per scale and layer in the retina model, the one with
    a `band`) and upsampling (k·C² + k·C per scale) maps where a multi-scale model has them,
    and the attention layer of each attention pooling or upsampling (12·C² + 15·C per scale)."""
    V, T, C, L, k, S = vocab_size, block_size, n_embd, n_layer, pool, n_scales
    count = V * C + T * C + L * (12 * C * C + 13 * C) + 2 * C + C * V
    attention = 12 * C * C + 15 * C                                  # nn/cross_attention.py
    if pool_kind == "linear":
        count += (S if band is None else L * S) * (k * C * C + C)
    if pool_kind == "attention":
        count += S * attention
    if upsample_kind in ("linear", "attention") and combine != "aggregate":
        count += S * (k * C * C + k * C + (attention if upsample_kind == "attention" else 0))
    return count


def activation_count(vocab_size, block_size, n_layer, n_embd, n_head, batch_size, **_):
    """Estimated number of values one training forward pass keeps for backward."""
    B, T, C, L, nh, V = batch_size, block_size, n_embd, n_layer, n_head, vocab_size
    return L * B * T * (16 * C + 2 * nh * T) + 2 * B * T * V


def training_bytes(config, batch_size):
    """{"parameters", "optimizer", "activations", "total"}: estimated bytes to train a model with
    `config` (a ModelConfig, or a dict of its fields) on micro-batches of `batch_size`."""
    c = config if isinstance(config, dict) else vars(config)
    item = numpy.dtype(c.get("dtype", "float32")).itemsize
    params = parameter_count(**c) * item
    estimate = {"parameters": params, "optimizer": 3 * params,     # gradients + AdamW's m and v
                "activations": activation_count(**c, batch_size=batch_size) * item}
    estimate["total"] = sum(estimate.values())
    return estimate


def available_bytes():
    """Bytes the active backend can still allocate, or None when it cannot be told."""
    if backend.get_backend() == "cupy":
        try:
            free, _ = backend.xp.cuda.Device().mem_info
            return int(free) + int(backend.xp.get_default_memory_pool().free_bytes())
        except Exception:           # a driver that cannot answer: no check rather than a wrong one
            return None
    try:
        with open("/proc/meminfo") as f:
            info = {line.split(":")[0]: int(line.split()[1]) * 1024 for line in f if line.strip()}
        return info["MemAvailable"] + info.get("SwapFree", 0)
    except (OSError, KeyError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def gib(n):
    """Bytes as a short human figure: '112.0 GiB', '35.2 MiB'."""
    for unit, size in (("TiB", 2 ** 40), ("GiB", 2 ** 30), ("MiB", 2 ** 20)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n / 2 ** 10:.1f} KiB"


def describe(estimate):
    """One line: 'about 7.0 TiB (parameters 1.7 TiB, optimizer 5.2 TiB, activations 3.1 GiB)'."""
    parts = ", ".join(f"{k} {gib(v)}" for k, v in estimate.items() if k != "total")
    return f"about {gib(estimate['total'])} ({parts})"
