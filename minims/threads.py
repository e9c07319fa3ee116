"""BLAS threads: how many threads NumPy's matrix products run on, chosen per run (ours).

NumPy hands every matrix product to a BLAS library (OpenBLAS in NumPy's wheels), which splits a
large product over a pool of threads, one per core unless told otherwise. Two things turn that
pool from a gain into a loss:

- **Small products.** Waking the threads, dividing the work and joining the parts cost time of
  their own; a product that takes tens of microseconds gains nothing from a second thread.
- **A busy machine.** A product is done when its slowest part is done. A thread that finds no
  idle core waits for the scheduler's next time slice (milliseconds), far longer than one
  product of the default model (well under a millisecond), so every product waits. On a 2-core
  machine with other work running, the default model trained 3-5x slower with two threads than
  with one (1,731-1,964 against 6,229-8,019 tokens/s, the same losses).

The commands that run models (train, sample, bench, experiment) take `--threads N|auto`
(default auto) and call `apply_threads`, which reads the machine and the environment and sets
the pool through threadpoolctl's `threadpool_limits` (NumPy has loaded its BLAS before any of
our code runs, so setting OPENBLAS_NUM_THREADS then would be too late). The decision itself is
`resolve_threads`, and the automatic rule `choose_threads`, both pure functions:

1. a number given with --threads wins; else a thread count the user set in the environment
   (OPENBLAS_NUM_THREADS, OMP_NUM_THREADS or MKL_NUM_THREADS) is kept as the BLAS library read it;
2. auto: one thread when the step's typical matrix product is smaller than
   MIN_THREADED_PRODUCT multiply-adds (`product_size`);
3. auto: otherwise one thread per idle core, where idle = cores − load: cores are the cores
   this process may run on, load the machine's 1-minute load average (runnable threads)
   less this process's own recent CPU use (`other_load`). Rounded to the nearest whole core
   (a core busy for less than half of the time counts as idle), at least 1, at most the
   cores. With R ranks on the host (MPI), each rank gets its share: (cores − load) / R, at
   most cores // R.

Why idle cores rather than "all cores unless busy": it says the same on a 2-core machine
(load below 0.5: two threads; above: one) and on a large one lets a run use the cores that are
free without stepping on the ones that are not.
"""
import math
import os
import time

# PROVISIONAL: not measured. The machine this was written on was busy, where timings cannot
# place it; `python -m minims.bench threads` prints tokens/s with one thread and with one per
# core for several widths side by side, to be run on a quiet machine to set it. 2**24 keeps
# the default model (2,048 token rows x 128 x 128 = 33.6 M) threaded, as it was before the rule,
# and gives width 64 (8.4 M) and the lessons' models one thread.
MIN_THREADED_PRODUCT = 2 ** 24
ENV_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
LOAD_WINDOW_S = 60.0    # the time constant of the kernel's 1-minute load average


def parse_threads(text):
    """'auto' or a whole number >= 1 (str or int) -> "auto" or the int; ValueError otherwise
    (argparse turns it into the flag's one-line error)."""
    if isinstance(text, str) and text.strip().lower() == "auto":
        return "auto"
    try:
        n = int(text)
    except (TypeError, ValueError):
        n = 0
    if n < 1 or (isinstance(text, float) and text != n):
        raise ValueError(f"expected a whole number >= 1 or 'auto', got {text!r}")
    return n


def add_threads_flag(parser, note=""):
    """Add `--threads N|auto` (default auto) to an argparse parser or group; `note` ends its help."""
    import argparse

    def flag_type(text):
        try:
            return parse_threads(text)
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e)) from None
    parser.add_argument("--threads", type=flag_type, default="auto", metavar="N|auto",
                        help="BLAS threads for the matrix products. auto: one where the products "
                             "are small or the machine is busy, else one per idle core "
                             "(minims/threads.py); OPENBLAS_NUM_THREADS, OMP_NUM_THREADS or "
                             "MKL_NUM_THREADS, when set, is kept unless N is given" + note)


def product_size(rows, n_embd):
    """Multiply-adds of the step's typical matrix product: `rows` token rows (B·T for a training
    step) times an n_embd × n_embd weight. The model's other products are a small multiple of
    it (3x for q, k, v, 4x for the MLP's) and the threads split each one alike."""
    return int(rows) * int(n_embd) * int(n_embd)


def choose_threads(size, cores, load, ranks=1):
    """The automatic rule (module docstring): BLAS threads for one of `ranks` processes on a
    host with `cores` cores and `load` runnable threads of other work, whose step's typical
    product has `size` multiply-adds -> an int in [1, max(1, cores // ranks)]."""
    most = max(1, int(cores) // max(1, int(ranks)))
    if size < MIN_THREADED_PRODUCT:
        return 1
    idle = (cores - max(0.0, load)) / max(1, ranks)
    return max(1, min(most, math.floor(idle + 0.5)))


def resolve_threads(setting, size, cores, load, environ, ranks=1):
    """(threads, why) for `--threads setting` ("auto" or an int): threads None means "leave the
    BLAS library's pool as the environment set it". `why` is a few words for the header line."""
    if setting != "auto":
        return int(setting), f"--threads {setting}"
    for var in ENV_VARS:
        if environ.get(var, "").strip():
            return None, f"{var}={environ[var].strip()}"
    n, most = choose_threads(size, cores, load, ranks), max(1, cores // max(1, ranks))
    if size < MIN_THREADED_PRODUCT:
        why = "auto: small matrix products"
    elif most == 1:
        why = "auto: one core" + (f" per rank, {ranks} ranks" if ranks > 1 else "")
    elif n < most:
        why = f"auto: load {load:.1f} on {cores} cores" + (f", {ranks} ranks" if ranks > 1 else "")
    else:
        why = "auto: idle cores" + (f", {ranks} ranks" if ranks > 1 else "")
    return n, why


# --- reading and setting the machine ----------------------------------------------------------

def available_cores():
    """The cores this process may run on (its CPU affinity where the OS says, else all)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:       # not Linux
        return os.cpu_count() or 1


_cpu_samples = [(time.monotonic(), time.process_time())]     # (wall, this process's CPU seconds)


def recent_cpu(samples, now, cpu_now, window=LOAD_WINDOW_S):
    """This process's CPU use (cores busy) weighted as the kernel weights the load average: an
    exponential average with time constant `window` over the pieces between `samples`
    [(wall, cpu seconds), ...] and (now, cpu_now), the rate taken as constant within a piece
    and zero before the first sample."""
    points = [*samples, (now, cpu_now)]
    total = 0.0
    for (t0, c0), (t1, c1) in zip(points, points[1:]):
        if t1 > t0:
            rate = (c1 - c0) / (t1 - t0)
            total += rate * (math.exp(-(now - t1) / window) - math.exp(-(now - t0) / window))
    return total


def other_load():
    """The machine's 1-minute load average less this process's own recent CPU use (so a
    second run in the same process does not count the first one as other work); 0.0 where
    the OS gives no load average."""
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):      # Windows
        return 0.0
    now, cpu = time.monotonic(), time.process_time()
    own = recent_cpu(_cpu_samples, now, cpu)
    _cpu_samples.append((now, cpu))
    del _cpu_samples[:-64]
    return max(0.0, load - own)


def blas_threads():
    """Threads of the BLAS library NumPy loaded (threadpoolctl), or None where none is found."""
    from threadpoolctl import threadpool_info
    counts = [info["num_threads"] for info in threadpool_info() if info.get("user_api") == "blas"]
    return max(counts) if counts else None


def set_blas_threads(n):
    """Set the BLAS pool of this process to `n` threads (until set again); False where no BLAS
    library is found."""
    from threadpoolctl import threadpool_limits
    if blas_threads() is None:
        return False
    threadpool_limits(limits=int(n), user_api="blas")
    return True


def apply_threads(setting, size, ranks=1, environ=None):
    """Decide (`resolve_threads`, on this machine now) and set the BLAS threads -> (threads now
    in use or None if unknown, why: a few words for the header line)."""
    environ = os.environ if environ is None else environ
    n, why = resolve_threads(setting, size, available_cores(), other_load(), environ, ranks)
    if n is not None:
        set_blas_threads(n)
    return blas_threads(), why


def describe(threads, why):
    """'2 BLAS threads (auto: idle cores)' for a header line."""
    count = "? BLAS threads" if threads is None else f"{threads} BLAS thread{'s' * (threads != 1)}"
    return f"{count} ({why})"
