"""The one switch between NumPy (CPU) and CuPy (CUDA): the `xp` handle.

Every op in minims computes with `backend.xp`, the array module of the active backend
(chainer's `xp` idiom). This is the only file in minims that may import CuPy, and the only
place that knows where the two libraries differ:

- `scatter_add`: duplicate-index `+=` drops updates in NumPy and is undefined in CuPy;
  use `np.add.at` / `cupyx.scatter_add`.
- `to_numpy`: CuPy arrays must be copied to the host explicitly.
- `host_rng`: parameters are drawn on the host from a seeded NumPy generator, so a NumPy
  run and a CuPy run with the same seed start from identical weights.
- `to_floats`: several values read from the GPU with one copy. Every device → host read
  makes the host wait until the GPU has finished all queued work (a synchronisation), so a
  training step reads its loss and gradient norm together, once.
- `fuse`: a function of arrays made only of elementwise operations becomes one GPU kernel
  (`cupy.fuse`) on CuPy, and stays a plain function on NumPy; `fusing()` says whether the
  ops use such kernels (on CuPy, unless `MINIMS_FUSE=0`).

Choose the backend with `minims.set_backend("numpy" | "cupy")` or the environment variable
`MINIMS_BACKEND`. Measuring memory on either backend is minims/memory.py's job; tuning the
process is minims/allocator.py's (the C allocator) and minims/threads.py's (BLAS threads).
"""
import functools
import os
import sys

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


def is_device_array(a):
    """Whether `a` is an array of the active CuPy backend (False on NumPy: no device)."""
    return name == "cupy" and isinstance(a, xp.ndarray)


def to_floats(values):
    """Python floats of `values` (0-d arrays of either backend, NumPy scalars or numbers), those
    on the GPU read with ONE device → host copy. (ours)

    Each read from the GPU waits for every queued kernel first (a synchronisation: the GPU then
    idles until the host queues more work); reading n values one by one (`float(a)`, `.item()`)
    costs n of them, `to_floats` one. Values on the host cost nothing. Exact: a float32 value or
    an integer below 2**53 comes back unchanged."""
    values = list(values)
    on_device = [i for i, v in enumerate(values) if is_device_array(v)]
    if on_device:
        host = to_numpy(xp.stack([values[i].reshape(()) for i in on_device]))
        for i, v in zip(on_device, host):
            values[i] = v
    return [float(v) for v in values]


# Fused kernels: None = on CuPy only (the default), True/False = always/never (tests set it;
# MINIMS_FUSE=0 turns them off, e.g. to tell a kernel's failure from the rest on a new GPU).
use_fused = {"0": False, "1": True}.get(os.environ.get("MINIMS_FUSE", ""))


def fusing():
    """Whether the ops run their fused elementwise kernels (`fuse`) rather than their in-place
    NumPy chains: on CuPy by default (see `use_fused`). On NumPy a fused function is a plain
    expression, which makes more temporaries than the in-place chain, so it is not used there."""
    return name == "cupy" if use_fused is None else use_fused


def fuse(fn):
    """Decorator: `fn(*arrays)` → array or tuple of arrays, made only of elementwise operations
    (arithmetic, `backend.xp` ufuncs such as `xp.tanh`, Python number constants; no reductions,
    methods, indexing or control flow on values), becomes one GPU kernel on CuPy: `cupy.fuse`
    compiles it the first time it runs there (per dtype and ndim) and reads every input once
    and writes every output once, where the same chain of operations launches one kernel per
    operation, each a round trip through GPU memory. On NumPy the decorated function just
    calls `fn` (so does it on CuPy when `fusing()` is off): the same formula, so a CPU test
    checks what the GPU kernel computes. Inputs broadcast against one another as in a ufunc
    (e.g. a (…, 1) row statistic against (…, C)). (ours; cupy.fuse is CuPy's)"""
    kernels = cache()                  # emptied by set_backend: a kernel belongs to one CuPy

    @functools.wraps(fn)
    def run(*arrays):
        if name != "cupy" or not fusing():
            return fn(*arrays)
        kernel = kernels.get(fn)
        if kernel is None:
            kernel = kernels[fn] = xp.fuse(kernel_name=f"minims_{fn.__name__}")(fn)
        return kernel(*arrays)
    return run


def device_info():
    """What GPU numbers depend on, on CuPy: CuPy's version, the device's name and memory (GiB),
    the CUDA runtime and driver versions (e.g. 12080 = 12.8); {} on NumPy. Best effort: a field
    that cannot be read is left out."""
    if name != "cupy":
        return {}
    info = {"cupy": getattr(xp, "__version__", "?")}
    runtime = xp.cuda.runtime
    for key, read in (("gpu", lambda: runtime.getDeviceProperties(xp.cuda.Device().id)["name"]),
                      ("gpu_memory_gib", lambda: runtime.getDeviceProperties(
                          xp.cuda.Device().id)["totalGlobalMem"] / 2 ** 30),
                      ("cuda_runtime", runtime.runtimeGetVersion),
                      ("cuda_driver", runtime.driverGetVersion)):
        try:
            value = read()
        except Exception:   # (an old CuPy, a driver without the call: the field is left out)
            continue
        info[key] = value.decode() if isinstance(value, bytes) else value
    return info


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
