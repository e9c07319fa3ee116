"""The one switch between NumPy (CPU) and CuPy (CUDA): the `xp` handle.

Every op in minims computes with `backend.xp`, the array module of the active backend
(chainer's `xp` idiom). This is the only file in minims that may import CuPy, and the only
place that knows where the two libraries differ:

- `scatter_add`: duplicate-index `+=` drops updates in NumPy and is undefined in CuPy;
  use `np.add.at` / `cupyx.scatter_add`.
- `to_numpy`: CuPy arrays must be copied to the host explicitly.
- `host_rng`: parameters are drawn on the host from a seeded NumPy generator, so a NumPy
  run and a CuPy run with the same seed start from identical weights.

Choose the backend with `minims.set_backend("numpy" | "cupy")` or the environment variable
`MINIMS_BACKEND`. Measuring memory on either backend is minims/memory.py's job; tuning the
process (the C allocator, BLAS threads) is minims/tuning.py's.
"""
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
