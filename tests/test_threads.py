"""The BLAS thread choice (minims/threads.py): the rule, who wins, and that the commands apply it.

Only the choice is tested, never a time: the rule's threshold is measured with
`python -m minims.bench threads` on a quiet machine, and the machine (clock, CPU seconds,
/proc/stat) is a fake (`FakeMachine`) wherever the other work matters.
"""
import math

import pytest

from minims import bench, threads
from minims import train as train_cli
from minims.errors import UsageError
from minims.threads import MIN_THREADED_PRODUCT as MIN, choose_threads, resolve_threads

from tiny_runs import small_text, tiny

BIG = 4 * MIN


@pytest.fixture
def restore_blas():
    """Put the BLAS pool back as it was (tests that set it run in the suite's one process)."""
    before = threads.blas_threads()
    yield
    if before is not None:
        threads.set_blas_threads(before)


def test_small_products_get_one_thread_whatever_the_machine():
    for cores, load in ((2, 0.0), (16, 0.0), (64, 3.0)):
        assert choose_threads(MIN - 1, cores, load) == 1
    assert choose_threads(MIN, 2, 0.0) == 2                  # the threshold itself is threaded


def test_large_products_get_one_thread_per_idle_core():
    assert choose_threads(BIG, 2, 0.0) == 2                  # quiet: every core
    assert choose_threads(BIG, 2, 0.4) == 2                  # a core busy less than half the time is idle
    assert choose_threads(BIG, 2, 0.6) == 1
    assert choose_threads(BIG, 2, 1.0) == 1                  # one other busy process: one thread
    assert choose_threads(BIG, 2, 5.0) == 1                  # overloaded: never fewer than one
    assert choose_threads(BIG, 16, 4.0) == 12
    assert choose_threads(BIG, 16, 0.0) == 16
    assert choose_threads(BIG, 1, 0.0) == 1


def test_ranks_share_the_idle_cores():
    assert choose_threads(BIG, 16, 0.0, ranks=4) == 4
    assert choose_threads(BIG, 16, 8.0, ranks=4) == 2
    assert choose_threads(BIG, 2, 0.0, ranks=4) == 1         # more ranks than cores
    assert choose_threads(BIG, 10, 0.0, ranks=3) == 3        # at most cores // ranks


def test_the_threshold_sits_where_threads_started_to_pay():
    # measured (minims/threads.py): at the trainer's 2,048 rows two threads gained 1.13x at
    # width 64 and nothing (0.99x) at width 32
    rows = 16 * 128
    assert threads.product_size(rows, 64) >= MIN > threads.product_size(rows, 32)
    assert choose_threads(threads.product_size(rows, 64), 2, 0.0) == 2
    assert choose_threads(threads.product_size(rows, 32), 2, 0.0) == 1


def test_a_number_given_wins_then_the_environment_then_the_rule():
    env = {"OPENBLAS_NUM_THREADS": "1"}
    assert resolve_threads(3, BIG, 2, 0.0, env) == (3, "--threads 3")
    n, why = resolve_threads("auto", BIG, 2, 0.0, env)
    assert n is None and why == "OPENBLAS_NUM_THREADS=1"     # the BLAS library read it already
    assert resolve_threads("auto", BIG, 2, 0.0, {"MKL_NUM_THREADS": "4"})[0] is None
    assert resolve_threads("auto", BIG, 2, 0.0, {"OMP_NUM_THREADS": " "})[0] == 2   # blank: unset
    assert resolve_threads("auto", BIG, 2, 3.0, {}) == (1, "auto: 0.0 of 2 cores idle")
    assert resolve_threads("auto", BIG, 2, 0.0, {}) == (2, "auto: 2.0 of 2 cores idle")
    assert resolve_threads("auto", BIG, 16, 4.0, {}, ranks=4) == (3, "auto: 12.0 of 16 cores idle, 4 ranks")
    assert resolve_threads("auto", BIG, 1, 0.2, {}, how=" by the load average") == (
        1, "auto: 0.8 of 1 core idle by the load average")
    assert resolve_threads("auto", MIN - 1, 2, 0.0, {}) == (1, "auto: small matrix products")


@pytest.mark.parametrize("text,want", [("auto", "auto"), (" AUTO ", "auto"), ("2", 2), (3, 3)])
def test_parse_threads(text, want):
    assert threads.parse_threads(text) == want


@pytest.mark.parametrize("text", ["0", "-1", "two", "2.5", 2.5, None, ""])
def test_parse_threads_refuses_nonsense(text):
    with pytest.raises(ValueError, match="whole number"):
        threads.parse_threads(text)


def test_own_cpu_use_is_weighted_like_the_load_average():
    tau = threads.LOAD_WINDOW_S
    # two cores busy for ten minutes: the load average sees (almost exactly) 2
    assert math.isclose(threads.recent_cpu([(0.0, 0.0)], 600.0, 1200.0), 2 * (1 - math.exp(-10)))
    # idle for ten minutes, then two cores for 10 s: 2 (1 - e^(-10/60))
    own = threads.recent_cpu([(0.0, 0.0), (600.0, 0.0)], 610.0, 20.0)
    assert math.isclose(own, 2 * (1 - math.exp(-10 / tau)))
    assert threads.recent_cpu([(0.0, 5.0)], 30.0, 5.0) == 0.0


def test_set_and_read_the_pool(restore_blas):
    if threads.blas_threads() is None:
        pytest.skip("no BLAS library found by threadpoolctl in this NumPy")
    for n in (1, 2):
        assert threads.set_blas_threads(n) and threads.blas_threads() == n
    chosen = threads.apply_threads(1, BIG, environ={})
    assert (chosen.count, chosen.why, chosen.adaptive) == (1, "--threads 1", False)
    assert chosen.describe() == "1 BLAS thread (--threads 1)"
    assert threads.describe(None, "auto: small matrix products") == "? BLAS threads (auto: small matrix products)"


def test_the_trainer_applies_and_prints_its_choice(tmp_path, capsys, restore_blas):
    text = small_text(tmp_path)
    assert train_cli.main(tiny(tmp_path, text, "--max-iters", "1", "--threads", "1")) == 0
    header = [line for line in capsys.readouterr().out.splitlines() if line.startswith("model:")]
    assert header and "on numpy, 1 BLAS thread (--threads 1) |" in header[0]
    if threads.blas_threads() is not None:
        assert threads.blas_threads() == 1
    # auto on a resume: the start's own choice, never the one stored with the checkpoint
    assert train_cli.main(tiny(tmp_path, text, "--max-iters", "2", "--resume")) == 0
    header = [line for line in capsys.readouterr().out.splitlines() if line.startswith("model:")]
    assert "--threads 1" not in header[0] and "BLAS thread" in header[0]


def test_bad_threads_are_one_line_and_exit_2(tmp_path, capsys):
    assert train_cli.main(["--threads", "0"]) == 2
    assert "--threads: expected a whole number >= 1 or 'auto', got '0'" in capsys.readouterr().err
    args = train_cli.make_args(threads="many", out_dir=str(tmp_path / "out"))
    with pytest.raises(UsageError, match="--threads: expected a whole number"):
        train_cli.train(args)
    assert not (tmp_path / "out").exists()


def test_bench_threads_case_measures_one_and_all_threads(capsys, restore_blas):
    assert bench.main(["threads", "--widths", "16,32", "--n-layer", "1", "--block-size", "8",
                       "--batch-size", "2", "--repeat", "1", "--warmup", "0", "--json"]) == 0
    import json
    report = json.loads(capsys.readouterr().out)
    rows = report["rows"]
    assert [r["n_embd"] for r in rows] == [16, 32]
    cores = threads.available_cores()
    for r in rows:
        assert r["1 thread tok/s"] > 0 and (cores == 1 or r[f"{cores} threads tok/s"] > 0)
        size = threads.product_size(2 * 8, r["n_embd"])
        assert r["auto, quiet"] == choose_threads(size, cores, 0.0)


# --- measuring other work: /proc/stat snapshots -----------------------------------------------

STAT_BEFORE = """cpu  1000 200 300 9000 50 10 20 5 0 0
cpu0 500 100 150 4500 25 5 10 5 0 0
cpu1 500 100 150 4500 25 5 10 0 0 0
intr 12345 0 0
ctxt 999
"""
# one second later (hz 100): cpu0 busy 60 ticks more (40 user, 10 system, 10 steal), cpu1 90
# more (80 nice, 5 irq, 5 softirq); idle and iowait ticks are not busy
STAT_AFTER = """cpu  1040 280 310 9040 60 15 25 15 0 0
cpu0 540 100 160 4530 30 5 10 15 0 0
cpu1 500 180 150 4510 30 10 15 0 0 0
intr 12399 0 0
ctxt 1999
"""


def test_busy_ticks_add_the_busy_fields_of_the_cores_asked():
    assert threads.busy_ticks(STAT_BEFORE) == 1000 + 200 + 300 + 10 + 20 + 5     # the total line
    assert threads.busy_ticks(STAT_BEFORE, {0}) == 500 + 100 + 150 + 5 + 10 + 5
    assert threads.busy_ticks(STAT_AFTER, {0, 1}) - threads.busy_ticks(STAT_BEFORE, {0, 1}) == 150
    with pytest.raises(ValueError, match="cpu2"):
        threads.busy_ticks(STAT_BEFORE, {0, 2})                               # a core it does not list
    with pytest.raises(ValueError):
        threads.busy_ticks("intr 1 2 3\n")


def test_other_busy_is_the_machines_busy_time_less_ours_over_the_wall_time():
    # 1.5 CPU seconds busy in 1 s on both cores; we used 0.5 of them: others kept 1.0 core busy
    assert threads.other_busy(STAT_BEFORE, STAT_AFTER, 0.5, 1.0, cpus={0, 1}) == pytest.approx(1.0)
    assert threads.other_busy(STAT_BEFORE, STAT_AFTER, 0.0, 1.0, cpus={0, 1}) == pytest.approx(1.5)
    assert threads.other_busy(STAT_BEFORE, STAT_AFTER, 0.0, 2.0, cpus={1}) == pytest.approx(0.45)
    assert threads.other_busy(STAT_BEFORE, STAT_AFTER, 0.0, 1.0) == pytest.approx(1.5)   # total line
    assert threads.other_busy(STAT_BEFORE, STAT_AFTER, 0.0, 1.0, {0, 1}, hz=1000) == pytest.approx(0.15)
    # our CPU time measured more precisely than the ticks: never below zero
    assert threads.other_busy(STAT_BEFORE, STAT_AFTER, 1.6, 1.0, cpus={0, 1}) == 0.0
    with pytest.raises(ValueError, match="wall time"):
        threads.other_busy(STAT_BEFORE, STAT_AFTER, 0.0, 0.0)


class FakeMachine:
    """A machine for `BlasThreads` with a clock of its own: `cores` cores we may run on, other
    processes as (start, end, cores busy) spans, our own CPU use advanced by `run`, and the
    /proc/stat text these make (None with stat=False: not Linux). A core `cpu{cores}` outside
    our affinity is always busy (it must never count). Threads set are recorded, never the
    real BLAS pool."""

    def __init__(self, cores=2, others=(), load=0.0, stat=True, t=100.0):
        self.cores, self.others, self.load, self.stat = cores, list(others), load, stat
        self.t, self.own, self.pool, self.sets, self.sleeps = t, 0.0, 8, [], []

    def other_seconds(self, cpu):        # CPU seconds of other processes on core `cpu` since 0
        total = sum(max(0.0, min(end, self.t) - start) * busy for start, end, busy in self.others)
        return total / self.cores

    def stat_text(self):
        lines, total = [], [0] * 10
        for cpu in range(self.cores + 1):
            busy_s = self.t if cpu == self.cores else self.other_seconds(cpu) + self.own / self.cores
            busy, idle = round(busy_s * 100), round((self.t - busy_s) * 100)
            fields = [busy, 0, 0, idle, 0, 0, 0, 0, 0, 0]
            lines.append(f"cpu{cpu} " + " ".join(map(str, fields)))
            total = [a + b for a, b in zip(total, fields)]
        return "\n".join(["cpu  " + " ".join(map(str, total)), *lines, "intr 1 0", ""])

    def snapshot(self):
        return self.t, self.own, self.stat_text() if self.stat else None

    def cpus(self):
        return set(range(self.cores))

    def hz(self):
        return 100

    def other_load(self):
        return self.load

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.t += seconds

    def set_threads(self, n):
        self.pool = n
        self.sets.append(n)
        return True

    def threads(self):
        return self.pool

    def run(self, seconds, own_cores):
        """This process computes for `seconds` keeping `own_cores` cores busy."""
        self.t += seconds
        self.own += own_cores * seconds


def test_a_process_that_ended_a_second_ago_does_not_count():
    # another run kept both cores busy until a second ago: the load average still says 2.0
    m = FakeMachine(others=[(0.0, 99.0, 2.0)], load=2.0)
    chosen = threads.apply_threads("auto", BIG, environ={}, machine=m)
    assert m.sleeps == [threads.START_WINDOW_S]                  # measured now, over a short window
    assert (chosen.count, chosen.describe()) == (2, "2 BLAS threads (auto: 2.0 of 2 cores idle)")
    # where there is no /proc/stat the load average decides, and still counts it (the fallback)
    m = FakeMachine(others=[(0.0, 99.0, 2.0)], load=2.0, stat=False)
    chosen = threads.apply_threads("auto", BIG, environ={}, machine=m)
    assert m.sleeps == [] and chosen.describe() == "1 BLAS thread (auto: 0.0 of 2 cores idle by the load average)"


def test_other_work_at_the_start_gets_its_cores():
    m = FakeMachine(cores=2, others=[(50.0, 1e9, 1.0)])          # one CPU-bound process running
    assert threads.apply_threads("auto", BIG, environ={}, machine=m).describe() == \
        "1 BLAS thread (auto: 1.0 of 2 cores idle)"
    m = FakeMachine(cores=8, others=[(50.0, 1e9, 3.0)])
    assert threads.apply_threads("auto", BIG, environ={}, machine=m).count == 5


def test_another_process_started_mid_run_gives_one_thread_at_the_next_evaluation():
    m = FakeMachine()
    chosen = threads.apply_threads("auto", BIG, environ={}, machine=m)
    assert chosen.count == 2 and chosen.adaptive
    said = []
    m.run(10.0, 2.0)                                             # training alone on both cores
    assert chosen.recheck(said.append) is None and m.sets == [2]
    m.others.append((m.t, 1e9, 1.0))                             # another CPU-bound process starts
    m.run(10.0, 1.0)                                             # ... and takes one core of ours
    assert chosen.recheck(said.append) == "threads: 2 -> 1 (other work on 1.0 of 2 cores)"
    assert said == ["threads: 2 -> 1 (other work on 1.0 of 2 cores)"]
    assert (m.sets, chosen.count, chosen.why) == ([2, 1], 1, "auto: 1.0 of 2 cores idle")
    m.run(10.0, 1.0)
    assert chosen.recheck(said.append) is None and len(said) == 1    # said only when it changes
    m.others[-1] = (m.others[-1][0], m.t, 1.0)                   # it ends
    m.run(10.0, 1.0)
    assert chosen.recheck(said.append) == "threads: 1 -> 2 (other work on 0.0 of 2 cores)"
    assert m.sets == [2, 1, 2] and chosen.describe() == "2 BLAS threads (auto: 2.0 of 2 cores idle)"


def test_a_recheck_measures_the_whole_interval_since_the_last_decision():
    m = FakeMachine()
    chosen = threads.apply_threads("auto", BIG, environ={}, machine=m)
    m.others.append((m.t, m.t + 6.0, 2.0))                       # busy for 6 s of the next 10
    m.run(0.5, 0.0)
    assert chosen.recheck() is None                              # too short: waits for more
    m.run(9.5, 0.4)
    assert chosen.recheck() == "threads: 2 -> 1 (other work on 1.2 of 2 cores)"   # 12 s / 10 s


def test_our_own_ranks_are_not_other_work():
    # two ranks of one run on 4 cores, each computing on 2: the machine is fully busy, all ours
    m = FakeMachine(cores=4)
    chosen = threads.apply_threads("auto", BIG, ranks=2, environ={}, machine=m)
    assert chosen.count == 2
    m.others.append((m.t, 1e9, 2.0))                             # the sibling rank (not us)
    m.run(10.0, 2.0)
    assert chosen.recheck() is None and chosen.count == 2
    m.others[0] = (m.others[0][0], m.t, 2.0)                     # now other work on 2 cores:
    m.others += [(m.t, 1e9, 1.0), (m.t, 1e9, 2.0)]               # the sibling squeezed to 1 core
    m.run(10.0, 1.0)                                             # and so are we
    assert chosen.recheck() == "threads: 2 -> 1 (other work on 2.0 of 4 cores)"


def test_a_core_outside_our_affinity_does_not_count():
    m = FakeMachine(cores=2)                                     # cpu2 is always busy
    assert "cpu2 " in m.stat_text()
    assert threads.apply_threads("auto", BIG, environ={}, machine=m).count == 2


def test_an_unreadable_stat_falls_back_to_the_load_average():
    m = FakeMachine(load=1.0)
    m.stat_text = lambda: "cpu  garbage\n"
    assert threads.apply_threads("auto", BIG, environ={}, machine=m).describe() == \
        "1 BLAS thread (auto: 1.0 of 2 cores idle by the load average)"


@pytest.mark.parametrize("setting,size,environ", [(2, BIG, {}), ("auto", BIG, {"OPENBLAS_NUM_THREADS": "1"}),
                                                  ("auto", MIN - 1, {})])
def test_nothing_is_measured_or_rechecked_when_the_choice_is_fixed(setting, size, environ):
    m = FakeMachine(others=[(0.0, 1e9, 1.0)])
    chosen = threads.apply_threads(setting, size, environ=environ, machine=m)
    assert not chosen.adaptive and m.sleeps == []
    m.run(100.0, 1.0)
    assert chosen.recheck() is None and m.sets == ([] if environ else [2 if setting == 2 else 1])


def test_the_trainer_rechecks_at_each_evaluation_and_says_a_change(tmp_path, capsys, monkeypatch):
    machines = []

    class Busy(FakeMachine):      # the clock moves 5 s between reads; other work starts after the first decision
        def __init__(self):
            super().__init__(others=[(110.25, 1e9, 1.0)])
            machines.append(self)

        def snapshot(self):
            self.t += 5.0
            return super().snapshot()
    monkeypatch.setattr(threads, "Machine", Busy)
    monkeypatch.setattr(threads, "MIN_THREADED_PRODUCT", 1)       # the tiny model counts as large
    for var in threads.ENV_VARS:          # a user's OPENBLAS_NUM_THREADS=1 would fix the count
        monkeypatch.delenv(var, raising=False)
    text = small_text(tmp_path)
    assert train_cli.main(tiny(tmp_path, text, "--max-iters", "3", "--eval-interval", "1")) == 0
    out = capsys.readouterr().out
    header = [line for line in out.splitlines() if line.startswith("model:")]
    assert "on numpy, 2 BLAS threads (auto: 2.0 of 2 cores idle) |" in header[0]
    assert out.count("threads: 2 -> 1 (other work on 1.0 of 2 cores)") == 1
    assert machines[0].sets == [2, 1]
    # a number given: set once, the machine never read (its clock never moved)
    machines.clear()
    assert train_cli.main(tiny(tmp_path, text, "--max-iters", "2", "--eval-interval", "1", "--threads", "1",
                               out="fixed")) == 0
    assert [(m.sets, m.t) for m in machines] == [([1], 100.0)]
    assert "threads: " not in capsys.readouterr().out


def test_a_number_past_the_cores_or_the_librarys_limit_is_said():
    class Capped(FakeMachine):        # a BLAS library built for at most 8 threads
        def set_threads(self, n):
            super().set_threads(min(n, 8))
    chosen = threads.apply_threads(1000, BIG, environ={}, machine=Capped(cores=2))
    assert chosen.count == 8
    assert chosen.describe() == ("8 BLAS threads (--threads 1000; the BLAS library allows at most 8; "
                                 "more than the 2 cores here: slower, not faster)")
    assert threads.apply_threads(2, BIG, environ={}, machine=Capped(cores=2)).describe() == \
        "2 BLAS threads (--threads 2)"
    assert "more than" in threads.apply_threads(2, BIG, ranks=2, environ={}, machine=Capped(cores=2)).describe()
