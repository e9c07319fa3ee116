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
3. auto: otherwise one thread per idle core, idle = cores − other: cores are the cores this
   process may run on, other the cores kept busy by other processes, measured (below).
   Rounded to the nearest whole core (a core busy for less than half of the time counts as
   idle), at least 1, at most the cores. With R ranks on the host (MPI), each rank gets its
   share: (cores − other) / R, at most cores // R.

**Measuring other work** (`other_busy`, a pure function of two snapshots). On Linux the kernel
counts in /proc/stat, per core, the time each core spent busy (user, nice, system, irq, softirq,
steal) and idle since boot. Two snapshots `wall` seconds apart give the busy CPU seconds of our
cores in between; less this process's own CPU seconds over the same time (`time.process_time`,
every thread of ours), divided by `wall`, that is how many cores other processes kept busy.
It sees only the window measured: a process that ended before it does not count, one that
started does. At the start `apply_threads` takes the two snapshots START_WINDOW_S apart
(sleeping in between); the trainer then re-decides at each evaluation (`BlasThreads.recheck`)
over the whole interval since the last decision, one read of /proc/stat and no sleep, and
prints a line when the count changes. With R ranks of one run on the host, the other R − 1
count as R − 1 times our own CPU use (the ranks do the same work), not as other work.

Where there is no /proc/stat (macOS, Windows) the measure falls back to the 1-minute load
average less this process's own recent CPU use (`other_load`): it lags by about a minute and
still counts processes that ended within it, so a run started just after another one may take
one thread where two would do; Windows has no load average, and counts nothing as other work.

Why idle cores rather than "all cores unless busy": it says the same on a 2-core machine
(other work below half a core: two threads; above: one) and on a large one lets a run use the
cores that are free without stepping on the ones that are not. Thread counts change the speed
only, never the losses, and are never stored in a checkpoint.
"""
import math
import os
import time

# Measured on a quiet 2-core machine with `python -m minims.bench threads --repeat 8`
# (2026-12-06): one training step of the trainer's model (T=128, B=16, 2,048 token rows),
# two threads against one, by width n_embd (the typical product, multiply-adds):
#   n_embd       32     64     96    128    192    256    512
#   product   2.1 M  8.4 M 18.9 M 33.6 M 75.5 M  134 M  537 M
#   2 vs 1    0.99x  1.13x  1.16x  1.24x  1.28x  1.36x  1.44x
# Threads pay from width 64 upward and not at 32: the threshold sits between the two.
MIN_THREADED_PRODUCT = 2 ** 22        # 4.2 M multiply-adds
ENV_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
LOAD_WINDOW_S = 60.0    # the time constant of the kernel's 1-minute load average
START_WINDOW_S = 0.25   # the first measurement of other work: long enough for a few clock ticks per core
RECHECK_MIN_S = 1.0     # a re-decision needs at least this long an interval (ticks are 10 ms)
PROC_STAT = "/proc/stat"
BUSY_FIELDS = (0, 1, 2, 5, 6, 7)   # user nice system [idle iowait] irq softirq steal (guest is in user)


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
                             "are small, else one per core left idle by other processes (measured "
                             "at the start and, in training, again at each evaluation; "
                             "minims/threads.py); OPENBLAS_NUM_THREADS, OMP_NUM_THREADS or "
                             "MKL_NUM_THREADS, when set, is kept unless N is given" + note)


def product_size(rows, n_embd):
    """Multiply-adds of the step's typical matrix product: `rows` token rows (B·T for a training
    step) times an n_embd × n_embd weight. The model's other products are a small multiple of
    it (3x for q, k, v, 4x for the MLP's) and the threads split each one alike."""
    return int(rows) * int(n_embd) * int(n_embd)


def choose_threads(size, cores, other_busy, ranks=1):
    """The automatic rule (module docstring): BLAS threads for one of `ranks` processes on a
    host with `cores` cores of which other processes keep `other_busy` busy (cores, a float),
    whose step's typical product has `size` multiply-adds -> an int in [1, max(1, cores // ranks)]."""
    most = max(1, int(cores) // max(1, int(ranks)))
    if size < MIN_THREADED_PRODUCT:
        return 1
    idle = (cores - max(0.0, other_busy)) / max(1, ranks)
    return max(1, min(most, math.floor(idle + 0.5)))


def _cores(n):
    return f"{n} core{'s' * (n != 1)}"


def resolve_threads(setting, size, cores, other_busy, environ, ranks=1, how=""):
    """(threads, why) for `--threads setting` ("auto" or an int): threads None means "leave the
    BLAS library's pool as the environment set it". `why` is a few words for the header line;
    `how` ends it (" by the load average" where other work was not measured directly)."""
    if setting != "auto":
        return int(setting), f"--threads {setting}"
    for var in ENV_VARS:
        if environ.get(var, "").strip():
            return None, f"{var}={environ[var].strip()}"
    n = choose_threads(size, cores, other_busy, ranks)
    if size < MIN_THREADED_PRODUCT:
        return n, "auto: small matrix products"
    idle = max(0.0, cores - max(0.0, other_busy))
    return n, f"auto: {idle:.1f} of {_cores(cores)} idle" + (f", {ranks} ranks" if ranks > 1 else "") + how


# --- measuring other work ---------------------------------------------------------------------

def busy_ticks(stat_text, cpus=None):
    """Busy clock ticks since boot in a /proc/stat text: summed over the lines `cpuN` for N in
    `cpus` (the cores this process may run on), or the machine's total line `cpu` where `cpus`
    is None. ValueError when a line is missing or malformed."""
    lines = {}
    for line in stat_text.splitlines():
        name, _, rest = line.partition(" ")
        if name.startswith("cpu"):
            lines[name] = rest.split()
    names = ["cpu"] if cpus is None else [f"cpu{n}" for n in sorted(cpus)]
    total = 0
    for name in names:
        fields = lines.get(name)
        if fields is None or len(fields) < 4:
            raise ValueError(f"/proc/stat has no line {name!r}")
        total += sum(int(fields[i]) for i in BUSY_FIELDS if i < len(fields))
    return total


def other_busy(before, after, own_cpu_s, wall_s, cpus=None, hz=100):
    """Cores kept busy by other processes between two /proc/stat snapshots (texts) taken
    `wall_s` seconds apart, while this process used `own_cpu_s` CPU seconds (all its threads;
    with R ranks of one run on the host, R times one rank's) -> a float >= 0. `hz`: the clock
    ticks per second /proc/stat counts in (os.sysconf("SC_CLK_TCK"), 100 on Linux).
    ValueError for a wall time <= 0 or a snapshot without the cores' lines."""
    if wall_s <= 0:
        raise ValueError(f"wall time must be > 0, got {wall_s}")
    busy_s = (busy_ticks(after, cpus) - busy_ticks(before, cpus)) / hz
    return max(0.0, (busy_s - own_cpu_s) / wall_s)


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
    """The fallback where /proc/stat is missing: the machine's 1-minute load average less this
    process's own recent CPU use (so a second run in the same process does not count the first
    one as other work); 0.0 where the OS gives no load average (Windows)."""
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):      # Windows
        return 0.0
    now, cpu = time.monotonic(), time.process_time()
    own = recent_cpu(_cpu_samples, now, cpu)
    _cpu_samples.append((now, cpu))
    del _cpu_samples[:-64]
    return max(0.0, load - own)


def available_cores():
    """The cores this process may run on (its CPU affinity where the OS says, else all)."""
    return len(Machine().cpus())


class Machine:
    """Where `BlasThreads` reads and sets things: this machine. Tests pass a fake with the same
    methods (a clock, CPU seconds and /proc/stat texts of their own)."""

    def snapshot(self):
        """(wall seconds, this process's CPU seconds, /proc/stat's text or None where missing)."""
        try:
            with open(PROC_STAT) as f:
                stat = f.read()
        except OSError:
            stat = None
        return time.monotonic(), time.process_time(), stat

    def cpus(self):
        """The ids of the cores this process may run on."""
        try:
            return set(os.sched_getaffinity(0))
        except AttributeError:       # not Linux
            return set(range(os.cpu_count() or 1))

    def hz(self):
        try:
            return os.sysconf("SC_CLK_TCK")
        except (AttributeError, ValueError, OSError):
            return 100

    def other_load(self):
        return other_load()

    def sleep(self, seconds):
        time.sleep(seconds)

    def set_threads(self, n):
        return set_blas_threads(n)

    def threads(self):
        return blas_threads()


def other_between(machine, before, after, ranks=1):
    """(cores kept busy by other processes between two `machine.snapshot()`s, how: "" or
    " by the load average" where /proc/stat is missing or unreadable). `ranks`: this run's
    processes on the host, counted as our own CPU use times `ranks`."""
    (t0, c0, s0), (t1, c1, s1) = before, after
    if s0 is not None and s1 is not None and t1 > t0:
        try:
            return other_busy(s0, s1, (c1 - c0) * ranks, t1 - t0, machine.cpus(), machine.hz()), ""
        except ValueError:
            pass
    return machine.other_load(), " by the load average"


def other_work_now(machine=None, ranks=1):
    """Measure other work now: two snapshots START_WINDOW_S apart (no wait where /proc/stat is
    missing) -> (cores kept busy by other processes, how (`other_between`), the last snapshot)."""
    machine = Machine() if machine is None else machine
    first = machine.snapshot()
    if first[2] is not None:
        machine.sleep(START_WINDOW_S)
    last = machine.snapshot()
    return (*other_between(machine, first, last, ranks), last)


class BlasThreads:
    """The BLAS threads of one run: decided and set when made (`apply_threads`), re-decided by
    `recheck()` (the trainer calls it at each evaluation) while the choice is automatic.

    `count` (threads in use, None if unknown) and `why` (a few words) make the header line
    (`describe()`). `adaptive` is False where nothing can change: a number given, a count set
    in the environment, small products, no BLAS library found."""

    def __init__(self, setting, size, ranks=1, environ=None, machine=None):
        environ = os.environ if environ is None else environ
        self.machine = m = Machine() if machine is None else machine
        self.size, self.ranks = size, max(1, int(ranks))
        self.cores = len(m.cpus())
        self.adaptive = (setting == "auto" and size >= MIN_THREADED_PRODUCT
                         and not any(environ.get(v, "").strip() for v in ENV_VARS))
        other, how = 0.0, ""
        if self.adaptive:
            other, how, self.last = other_work_now(m, self.ranks)
        n, self.why = resolve_threads(setting, size, self.cores, other, environ, self.ranks, how)
        if n is not None:
            m.set_threads(n)
        self.count = m.threads()
        if n is not None and self.count is not None and self.count < n:      # the library's limit
            self.why += f"; the BLAS library allows at most {self.count}"
        if setting != "auto" and int(setting) * self.ranks > self.cores:
            self.why += f"; more than the {_cores(self.cores)} here: slower, not faster"
        self.adaptive = self.adaptive and self.count is not None

    def recheck(self, say=None):
        """Re-decide from the other work since the last decision (one read, no wait); set and
        report a change -> the line said (`say(line)` where given), or None when nothing changed
        or the interval was shorter than RECHECK_MIN_S (it then runs on to the next call)."""
        if not self.adaptive:
            return None
        now = self.machine.snapshot()
        if now[0] - self.last[0] < RECHECK_MIN_S:
            return None
        other, how = other_between(self.machine, self.last, now, self.ranks)
        self.last = now
        n = choose_threads(self.size, self.cores, other, self.ranks)
        if n == self.count:
            return None
        self.machine.set_threads(n)
        before, self.count = self.count, n
        self.why = resolve_threads("auto", self.size, self.cores, other, {}, self.ranks, how)[1]
        line = f"threads: {before} -> {n} (other work on {other:.1f} of {_cores(self.cores)}{how})"
        if say is not None:
            say(line)
        return line

    def describe(self):
        """'2 BLAS threads (auto: 2.0 of 2 cores idle)' for a header line."""
        return describe(self.count, self.why)


# --- setting the machine ----------------------------------------------------------------------

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


def apply_threads(setting, size, ranks=1, environ=None, machine=None):
    """Decide (`resolve_threads`, on this machine now: measuring other work takes START_WINDOW_S
    where the choice is automatic and the products large) and set the BLAS threads -> the
    run's `BlasThreads` (count, why, describe(), recheck())."""
    return BlasThreads(setting, size, ranks, environ, machine)


def describe(threads, why):
    """'2 BLAS threads (auto: 2.0 of 2 cores idle)' for a header line."""
    count = "? BLAS threads" if threads is None else f"{threads} BLAS thread{'s' * (threads != 1)}"
    return f"{count} ({why})"
