"""The one switch between NumPy (CPU) and CuPy (CUDA): the `xp` handle.

Every op in minims computes with `backend.xp`, the array module of the active backend
(chainer's `xp` idiom). This is the only file in minims that may import CuPy, and the only
place that knows where the two libraries differ:

- `scatter_add`: duplicate-index `+=` drops updates in NumPy and is undefined in CuPy;
  use `np.add.at` / `cupyx.scatter_add`.
- `to_numpy`: CuPy arrays must be copied to the host explicitly.
- `host_rng`: parameters are drawn on the host from a seeded NumPy generator, so a NumPy
  run and a CuPy run with the same seed start from identical weights.
- `memory_stats`: bytes in use and peak bytes (tracemalloc on NumPy, the CuPy memory pool
  plus a memory hook on CuPy).
- `reuse_freed_memory`: on the CPU, keep freed array memory in the process for the next
  array instead of handing it back to the operating system (CuPy's pool does this on GPUs).

Choose the backend with `minims.set_backend("numpy" | "cupy")` or the environment variable
`MINIMS_BACKEND`.
"""
import contextlib
import os
import sys
import tracemalloc

import numpy

BACKENDS = ("numpy", "cupy")

CUPY_INSTALL_HINT = (
    "the cupy backend needs CuPy and a CUDA GPU: install it with "
    "pip install -e '.[cuda12]' (CUDA 12) or pip install -e '.[cuda13]' (CUDA 13), "
    "on a machine with an NVIDIA GPU and driver; or use --backend numpy"
)


class BackendUnavailable(RuntimeError):
    """The requested backend cannot run on this machine (e.g. no CuPy, no CUDA device)."""


# The active backend. `xp` is read at call time by every op (`backend.xp.exp(...)`), so
# switching backends takes effect everywhere at once.
name = "numpy"
xp = numpy
_cupyx = None
_peak_hook = None


_caches = []


def cache():
    """A dict for arrays cached on the active backend; emptied by every `set_backend`, so
    an array made by one backend is never handed to another."""
    d = {}
    _caches.append(d)
    return d


def _import_cupy():
    """Import cupy and cupyx, or raise BackendUnavailable saying how to install them."""
    try:
        import cupy
        import cupyx
    except ImportError as e:
        raise BackendUnavailable(f"{CUPY_INSTALL_HINT} (import failed: {e})") from None
    try:
        available = cupy.cuda.is_available()
    except Exception as e:  # a broken driver install can raise here
        raise BackendUnavailable(f"{CUPY_INSTALL_HINT} (CUDA check failed: {e})") from None
    if not available:
        raise BackendUnavailable(f"{CUPY_INSTALL_HINT} (CuPy is installed but no CUDA device is usable)")
    return cupy, cupyx


def set_backend(backend):
    """Make `backend` ("numpy" or "cupy") the active one for every op created from now on."""
    global name, xp, _cupyx
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if backend == "cupy":
        xp, _cupyx = _import_cupy()
    else:
        xp, _cupyx = numpy, None
    name = backend
    for d in _caches:
        d.clear()
    return xp


def get_backend():
    """The name of the active backend: "numpy" or "cupy"."""
    return name


def to_numpy(a):
    """A NumPy copy (or view) of an array of either backend; Python scalars pass through.

    Dispatches on the array itself, not on the active backend, so arrays made before a
    backend switch still come back."""
    if isinstance(a, numpy.ndarray) or numpy.isscalar(a):
        return numpy.asarray(a)
    cupy = sys.modules.get("cupy")  # only ever imported by set_backend("cupy")
    if cupy is not None and isinstance(a, cupy.ndarray):
        return cupy.asnumpy(a)      # device → host copy
    return numpy.asarray(a)


def asarray(a, dtype=None):
    """Move `a` (NumPy array, list, scalar or backend array) onto the active backend."""
    return xp.asarray(a, dtype=dtype)


def scatter_add(target, indices, values):
    """target[indices] += values, accumulating repeated indices (in place)."""
    if name == "cupy":
        _cupyx.scatter_add(target, indices, values)
    elif _row_ids(target, indices, values):
        _add_rows(target, indices, values)
    else:
        numpy.add.at(target, indices, values)
    return target


def _row_ids(target, indices, values):
    """Whether `indices` is a non-empty 1-D array of row ids in [0, len(target)) with one row
    of `values` each: the embedding's backward, which `_add_rows` does faster."""
    return (isinstance(indices, numpy.ndarray) and indices.ndim == 1 and len(indices) > 0
            and indices.dtype.kind in "iu" and values.shape == indices.shape + target.shape[1:]
            and 0 <= indices.min() and indices.max() < len(target))


def _add_rows(target, ids, values):
    """target[ids] += values for row ids, repeated ids summed (NumPy; ours, measured): sort the
    rows by id (stably), sum each run of equal ids with one `add.reduceat`, add the sums to
    their rows. 2,048 ids into 256 rows of 128: 0.5 ms against 2.3 ms for `numpy.add.at`."""
    order = numpy.argsort(ids, kind="stable")
    sorted_ids = ids[order]
    starts = numpy.flatnonzero(numpy.r_[True, sorted_ids[1:] != sorted_ids[:-1]])
    target[sorted_ids[starts]] += numpy.add.reduceat(values[order], starts, axis=0)


def host_rng(seed):
    """A seeded NumPy generator on the host: the single source of initial weights."""
    return numpy.random.default_rng(seed)


# The one host RNG for randomness during training (dropout masks, sampling): drawing on the
# host makes runs identical on both backends, and its state goes into checkpoints.
_rng = numpy.random.default_rng(0)


def manual_seed(seed):
    """Reseed the global host RNG (dropout masks)."""
    global _rng
    _rng = numpy.random.default_rng(seed)


def global_rng():
    return _rng


def get_rng_state():
    """The global host RNG's state (a JSON-friendly dict) for checkpoints."""
    return _rng.bit_generator.state


def set_rng_state(state):
    _rng.bit_generator.state = state


def synchronize():
    """Wait for queued GPU work (call before reading a timer); a no-op on NumPy."""
    if name == "cupy":
        xp.cuda.Device().synchronize()


def nccl():
    """CuPy's NCCL bindings (`cupy.cuda.nccl`, for minims.train.distributed on several GPUs), or
    None on NumPy or where CuPy was built without NCCL."""
    if name != "cupy":
        return None
    import importlib
    try:
        module = importlib.import_module("cupy.cuda.nccl")
    except ImportError:
        return None
    return module if getattr(module, "available", True) else None


def openblas_function(name):
    """The function `name` ("get_num_threads", "set_num_threads") of the OpenBLAS that NumPy
    loaded, via ctypes, or None where it cannot be found (best effort: Linux, OpenBLAS builds;
    no extra dependency). Builds spell it differently: scipy-openblas wheels as
    `scipy_openblas_<name>64_`, 64-bit-integer builds as `openblas_<name>64_`."""
    import ctypes
    try:
        with open("/proc/self/maps") as maps:
            paths = {line.split()[-1] for line in maps if "openblas" in line.lower()}
    except OSError:
        return None
    for path in sorted(paths):
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for symbol in (f"scipy_openblas_{name}64_", f"openblas_{name}64_", f"openblas_{name}"):
            if hasattr(lib, symbol):
                return getattr(lib, symbol)
    return None


_allocator_tuned = False


def reuse_freed_memory(limit_bytes=1 << 30):
    """Ask the C allocator (glibc's malloc) to keep freed memory for reuse; True if it did.

    Why (ours, measured): a training step makes and frees hundreds of arrays of 0.1–8 MiB
    (B·T·4C activations, the T×T attention bands). glibc serves such sizes with a fresh
    `mmap` and unmaps them at `free`, so every new array starts as untouched pages that the
    kernel must fault in and zero, one 4 KiB page at a time, before NumPy writes into them.
    On the 2-core test machine, forward + backward of the attention op at B=8, n_head=4,
    hs=32 took 16 → 8 ms at T=256 and 47 → 31 ms at T=512 with this on (medians of 30, one
    process each way), and one training step of the 4-layer vanilla model 147 → 135 ms (glibc
    adapts its threshold to the sizes it sees freed, so a long run recovers part of this by
    itself). With arrays up to 32 MiB (glibc's largest setting) taken from the
    heap and up to `limit_bytes` of freed heap kept, the next step reuses the pages already
    mapped: no faults, no zeroing. The cost: the process keeps up to `limit_bytes` it is not
    using (the same trade as CuPy's memory pool and PyTorch's CUDA caching allocator).

    Process-wide, so the command-line tools (train, sample, bench, experiment) call it and the
    library never does on import. Best effort: a no-op (False) without glibc (macOS, musl,
    Windows). Memory accounting (`memory_stats`, tracemalloc) is unaffected. Raises
    ValueError for a `limit_bytes` that is not an int in [1, 2**31 − 1] (mallopt takes a C int).
    """
    global _allocator_tuned
    if not isinstance(limit_bytes, int) or not 0 < limit_bytes < 2 ** 31:
        raise ValueError(f"limit_bytes must be an int in [1, 2**31 − 1] (a C int), got {limit_bytes!r}")
    if _allocator_tuned:
        return True
    import ctypes
    import ctypes.util
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's <malloc.h>
    _allocator_tuned = bool(mallopt(M_MMAP_THRESHOLD, 32 << 20) and mallopt(M_TRIM_THRESHOLD, limit_bytes))
    return _allocator_tuned


# ---------------------------------------------------------------------------------------
# Memory: bytes in use and peak bytes of the active backend.
# ---------------------------------------------------------------------------------------

def _cupy_peak_hook():
    """A CuPy memory hook that records the pool's peak used bytes (built on first use)."""
    global _peak_hook
    if _peak_hook is None:
        pool = xp.get_default_memory_pool()

        class PeakHook(xp.cuda.memory_hook.MemoryHook):
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
    if name == "cupy":
        hook = _cupy_peak_hook()
        hook.peak = xp.get_default_memory_pool().used_bytes()
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
    if name == "cupy":
        pool = xp.get_default_memory_pool()
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
    was_tracing = name == "numpy" and tracemalloc.is_tracing()
    reset_peak_memory()
    start = memory_stats()["in_use"]
    result = {}
    try:
        yield result
    finally:
        synchronize()
        stats = memory_stats()
        result["peak"] = stats["peak"] - start
        result["in_use"] = stats["in_use"] - start
        if name == "numpy" and not was_tracing:
            tracemalloc.stop()


class _Unavailable:
    """Stands in for `xp` when MINIMS_BACKEND names a backend that cannot start: importing
    minims still works (so a command-line tool can print its one-line error), but the first
    array operation raises the reason. Never a silent fall-back to NumPy."""

    def __init__(self, error):
        self.error = error

    def __getattr__(self, attr):
        raise self.error


if os.environ.get("MINIMS_BACKEND"):
    try:
        set_backend(os.environ["MINIMS_BACKEND"])
    except (ValueError, BackendUnavailable) as e:
        name, xp = os.environ["MINIMS_BACKEND"], _Unavailable(
            type(e)(f"MINIMS_BACKEND={os.environ['MINIMS_BACKEND']}: {e}"))
