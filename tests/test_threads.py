"""The BLAS thread choice (minims/threads.py): the rule, who wins, and that the commands apply it.

Only the choice is tested, never a time: the rule's threshold is measured with
`python -m minims.bench threads` on a quiet machine.
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


def test_the_threshold_sits_between_the_lessons_models_and_the_default_model():
    # provisional (minims/threads.py): the default trainer model (B·T = 2048 rows, width 128)
    # stays threaded as before the rule; width 64 and the lessons' small models do not
    assert threads.product_size(16 * 128, 128) >= MIN > threads.product_size(16 * 128, 64)


def test_a_number_given_wins_then_the_environment_then_the_rule():
    env = {"OPENBLAS_NUM_THREADS": "1"}
    assert resolve_threads(3, BIG, 2, 0.0, env) == (3, "--threads 3")
    n, why = resolve_threads("auto", BIG, 2, 0.0, env)
    assert n is None and why == "OPENBLAS_NUM_THREADS=1"     # the BLAS library read it already
    assert resolve_threads("auto", BIG, 2, 0.0, {"MKL_NUM_THREADS": "4"})[0] is None
    assert resolve_threads("auto", BIG, 2, 0.0, {"OMP_NUM_THREADS": " "})[0] == 2   # blank: unset
    assert resolve_threads("auto", BIG, 2, 3.0, {}) == (1, "auto: load 3.0 on 2 cores")
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
    assert threads.apply_threads(1, BIG, environ={}) == (1, "--threads 1")
    assert threads.describe(1, "--threads 1") == "1 BLAS thread (--threads 1)"
    assert threads.describe(None, "auto: idle cores") == "? BLAS threads (auto: idle cores)"


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
