"""Process-wide tuning for speed: the C allocator and the BLAS threads (ours).

Apart from the NumPy/CuPy switch (minims/backend.py) because it changes the process, not the
arrays: what it sets holds for every library in the process, so only the command-line tools
(train, sample, bench, experiment) call it, never `import minims`. Both are best effort through
ctypes, with no extra dependency: where a library cannot be found (not Linux, not glibc, not
OpenBLAS) they do nothing and say so by their return value.

- `reuse_freed_memory`: glibc's malloc keeps freed memory for the next array instead of handing
  it back to the operating system (CuPy's pool does this on GPUs);
- `blas_threads` / `set_blas_threads`: the threads of the OpenBLAS that NumPy loaded (a
  data-parallel run gives each rank its share of the cores, minims/train/distributed.py).
"""
import ctypes
import ctypes.util


def openblas_function(name):
    """The function `name` ("get_num_threads", "set_num_threads") of the OpenBLAS that NumPy
    loaded, via ctypes, or None where it cannot be found (best effort: Linux, OpenBLAS builds;
    no extra dependency). Builds spell it differently: scipy-openblas wheels as
    `scipy_openblas_<name>64_`, 64-bit-integer builds as `openblas_<name>64_`."""
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


def blas_threads():
    """Threads the OpenBLAS that NumPy loaded will use, or None where that cannot be read."""
    get = openblas_function("get_num_threads")
    return None if get is None else int(get())


def set_blas_threads(n):
    """Set the threads of the OpenBLAS NumPy loaded (it read OPENBLAS_NUM_THREADS at import,
    so the variable alone is too late); False where its function cannot be found."""
    set_threads = openblas_function("set_num_threads")
    if set_threads is None:
        return False
    set_threads(int(n))
    return True


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
    library never does. Best effort: a no-op (False) without glibc (macOS, musl,
    Windows). Memory accounting (`memory_stats`, tracemalloc) is unaffected. Raises
    ValueError for a `limit_bytes` that is not an int in [1, 2**31 − 1] (mallopt takes a C int).
    """
    global _allocator_tuned
    if not isinstance(limit_bytes, int) or not 0 < limit_bytes < 2 ** 31:
        raise ValueError(f"limit_bytes must be an int in [1, 2**31 − 1] (a C int), got {limit_bytes!r}")
    if _allocator_tuned:
        return True
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's <malloc.h>
    _allocator_tuned = bool(mallopt(M_MMAP_THRESHOLD, 32 << 20) and mallopt(M_TRIM_THRESHOLD, limit_bytes))
    return _allocator_tuned
