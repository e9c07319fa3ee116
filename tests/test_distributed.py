"""Data-parallel training (minims/train/distributed.py): `mpiexec -n 2 python -m minims.train`.

The multi-process tests launch real MPI runs of a tiny float64 model and check:
- 2 ranks with --batch-size b = 1 process with --batch-size b --grad-accum 2, to 1e-10 (loss log
  and final weights), with exactly one gradient Allreduce per step; also with dropout (the ranks
  share the dropout stream);
- a 2-rank run killed after a checkpoint resumes exactly, on 2 ranks and (re-sharded) on 1;
- a resume on a number of ranks that cannot split the step is refused in one line;
- one rank failing alone stops every rank with one line, no hang; a NaN on one rank, or ranks
  that see different data, end every rank with rank 0's one line;
- the NCCL path of --backend cupy, on the fake CuPy (tests/fake_cupy.py) with a fake NCCL whose
  allReduce sums the device buffers through MPI, matches the NumPy single process.
They need mpi4py and an mpiexec (`pip install -e '.[test]'` brings both, as in CI) and are
skipped, saying so, where either is missing. The rest (launcher variables, PCG64 jumps,
re-sharding rules, thread counts, a plain run never importing mpi4py) runs everywhere.
"""
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from minims import checkpoint, files
from minims.train import distributed, resume
from minims import train as train_cli
from minims.checkpoint import CheckpointError

import tiny_runs  # noqa: E402
from tiny_runs import REPO, read_log, small_text, weights  # noqa: E402
TESTS = Path(__file__).resolve().parent
MPIEXEC = shutil.which("mpiexec", path=os.pathsep.join([str(Path(sys.executable).parent),
                                                         os.environ.get("PATH", "")]))
HAVE_MPI4PY = importlib.util.find_spec("mpi4py") is not None
needs_mpi = pytest.mark.skipif(
    not (HAVE_MPI4PY and MPIEXEC),
    reason=f"needs mpi4py ({'found' if HAVE_MPI4PY else 'NOT importable'}) and mpiexec "
           f"({'found' if MPIEXEC else 'NOT found'}): pip install -e '.[mpi]'")
TOL = dict(rtol=1e-10, atol=1e-10)


@pytest.fixture(scope="module")
def text_file(tmp_path_factory):
    return small_text(tmp_path_factory.mktemp("text"))


def tiny(tmp_path, text_file, *extra, out="out"):
    """A tiny float64 run with a fixed schedule horizon (exact comparisons across rank counts)."""
    return tiny_runs.tiny(tmp_path, text_file, "--eval-iters", "3", "--dtype", "float64",
                          "--lr-decay-iters", "10", *extra, out=out)


# One rank of a test run: `python rank.py SPEC_JSON trainer-flags...`. SPEC may ask rank 1 to
# fail at some iteration ("fail": "raise" | "kill" | "nan"), to count the gradient Allreduces, or to run
# on the fake CuPy with a fake NCCL; each rank writes what it saw to OUT_DIR/rank<r>.json.
RANK_SCRIPT = textwrap.dedent('''
    import ctypes, json, os, signal, sys, types
    sys.path.insert(0, {tests!r})
    spec, argv = json.loads(sys.argv[1]), sys.argv[2:]
    seen = {{"allreduce_sizes": [], "calls": {{}}, "devices": []}}
    if spec.get("fake_cupy"):
        import numpy
        from mpi4py import MPI
        import fake_cupy
        cupy, cupyx = fake_cupy.make_fake_cupy()
        sys.modules.update({{"cupy": cupy, "cupyx": cupyx, "cupy.cuda": cupy.cuda}})
        nccl = types.ModuleType("cupy.cuda.nccl")
        nccl.NCCL_FLOAT32, nccl.NCCL_FLOAT64, nccl.NCCL_SUM = 7, 8, 0
        nccl.get_unique_id = lambda: (cupy.calls.update(["get_unique_id"]), (7, 7, 7))[1]

        class NcclCommunicator:
            def __init__(self, ndev, uid, rank):
                assert (ndev, rank, uid) == (MPI.COMM_WORLD.size, MPI.COMM_WORLD.rank, (7, 7, 7))

            def allReduce(self, send, recv, count, dtype, op, stream):
                # the device buffer, found by its address as NCCL finds it, summed over ranks
                cupy.calls["allReduce"] += 1
                assert send == recv and op == nccl.NCCL_SUM
                ctype = {{7: ctypes.c_float, 8: ctypes.c_double}}[dtype]
                view = numpy.ctypeslib.as_array((ctype * count).from_address(recv))
                MPI.COMM_WORLD.Allreduce(MPI.IN_PLACE, view, op=MPI.SUM)
        nccl.NcclCommunicator = NcclCommunicator
        sys.modules["cupy.cuda.nccl"] = cupy.cuda.nccl = nccl
        cupy.cuda.runtime = types.SimpleNamespace(getDeviceCount=lambda: 2)
        cupy.cuda.Device.use = lambda self: seen["devices"].append(self.id)

        class Stream:
            ptr = 0

            def synchronize(self):
                cupy.calls["stream.synchronize"] += 1
        cupy.cuda.get_current_stream = lambda: Stream()
        fake_cupy.FakeArray.data = property(lambda a: types.SimpleNamespace(ptr=a._a.ctypes.data))

    from minims import train
    from minims.train import distributed, loop, pipeline
    world = distributed.current()
    if spec.get("count"):
        class Counting:
            def __init__(self, comm):
                self.comm = comm

            def Allreduce(self, send, recv, op):
                seen["allreduce_sizes"].append(int(recv.size))
                return self.comm.Allreduce(send, recv, op=op)

            def __getattr__(self, name):
                return getattr(self.comm, name)
        world.comm = Counting(world.comm)
    if spec.get("other_data") and world.rank == 1:
        pipeline.data_digest = lambda splits: "not the same"
    steps, train_step = [], loop.train_step          # the loop's optimizer step, watched
    if spec.get("perturb") and world.rank == 1:      # rank 1's weights drift at step 3

        def drifting_step(model, *args, **kwargs):
            loss = train_step(model, *args, **kwargs)
            steps.append(1)
            if len(steps) == 3:
                model.parameters()[0].data[...] += 1e-9
            return loss
        loop.train_step = drifting_step
    if spec.get("fail"):

        def failing_step(*args, **kwargs):
            steps.append(1)
            if world.rank == 1 and len(steps) == spec["at"] + 1:      # the step from iter "at"
                if spec["fail"] == "kill":
                    os.kill(os.getpid(), signal.SIGKILL)
                if spec["fail"] == "nan":          # rank 1's loss (and gradients) become NaN
                    from minims import functional
                    ce = functional.cross_entropy
                    functional.cross_entropy = lambda *a: ce(*a) * float("nan")
                    return train_step(*args, **kwargs)
                from minims.data import DataError
                raise DataError("rank 1 met bad data")
            return train_step(*args, **kwargs)
        loop.train_step = failing_step
    code = distributed.launch(train.main, argv)
    out = argv[argv.index("--out-dir") + 1]
    if spec.get("fake_cupy"):
        seen["calls"] = dict(cupy.calls)
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "rank%d.json" % world.rank), "w") as f:
        json.dump(seen, f)
    sys.exit(code)
''')


def mpirun(tmp_path, n, args, spec=None, timeout=120):
    """`mpiexec -n N python -m minims.train ARGS` (or the rank script with SPEC)."""
    if spec is None:
        cmd = [sys.executable, "-m", "minims.train"]
    else:
        script = tmp_path / "rank.py"
        script.write_text(RANK_SCRIPT.format(tests=str(TESTS)))
        cmd = [sys.executable, str(script), json.dumps(spec)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
           "OPENBLAS_NUM_THREADS": "1"}
    return subprocess.run([MPIEXEC, "-n", str(n), *cmd, *args], capture_output=True, text=True,
                          env=env, timeout=timeout, cwd=tmp_path)


def assert_same_run(a_dir, b_dir, exact=False):
    """Same loss log (iterations, losses, lr) and final weights: to 1e-10, or bit for bit."""
    a_log, b_log = read_log(a_dir), read_log(b_dir)
    assert [r["iter"] for r in a_log] == [r["iter"] for r in b_log]
    for key in ("train_loss", "val_loss", "lr"):
        x, y = [r[key] for r in a_log], [r[key] for r in b_log]
        assert x == y if exact else np.allclose(x, y, **TOL), (key, x, y)
    a, b = weights(a_dir), weights(b_dir)
    assert a.keys() == b.keys()
    for k in a:
        if exact:
            assert np.array_equal(a[k], b[k]), k
        else:
            np.testing.assert_allclose(a[k], b[k], **TOL, err_msg=k)


# ---------------------------------------------------------------- several processes

@needs_mpi
def test_two_ranks_make_the_update_of_grad_accum_two(tmp_path, text_file):
    """The issue's equality, plus: one gradient Allreduce (one flat buffer) per step, rank 0
    alone writes OUT_DIR, the checkpoint and config record the world size."""
    assert train_cli.main(tiny(tmp_path, text_file, "--max-iters", "10", "--grad-accum", "2",
                               out="one")) == 0
    r = mpirun(tmp_path, 2, tiny(tmp_path, text_file, "--max-iters", "10", out="two"), spec={"count": True})
    assert r.returncode == 0, r.stderr
    assert_same_run(tmp_path / "one", tmp_path / "two")
    ranks = [json.loads((tmp_path / "two" / f"rank{i}.json").read_text()) for i in range(2)]
    n_params = sum(a.size for a in weights(tmp_path / "two").values())
    for seen in ranks:
        sizes = seen["allreduce_sizes"]
        assert sizes.count(n_params + 1) == 10          # gradients + loss, once per step
        assert sizes.count(2) == 3                       # the 3 evaluations (train, valid sums)
        assert len(sizes) == 13
    assert sorted(p.name for p in (tmp_path / "two").iterdir()) == [
        "ckpt.npz", "config.json", "log.jsonl", "rank0.json", "rank1.json"]
    assert checkpoint.load(tmp_path / "two" / "ckpt.npz")["header"]["world_size"] == 2
    assert json.loads((tmp_path / "two" / "config.json").read_text())["world_size"] == 2
    assert "iter 10" in r.stdout and r.stdout.count("final:") == 1      # rank 0 prints, once


@needs_mpi
def test_dropout_stream_is_shared_across_ranks(tmp_path, text_file):
    """With dropout, 2 ranks x --grad-accum 2 = 1 process x --grad-accum 4: rank 1 draws the
    masks micro-batches 2 and 3 of the single process draw."""
    flags = ("--max-iters", "6", "--dropout", "0.2", "--eval-interval", "3")
    assert train_cli.main(tiny(tmp_path, text_file, *flags, "--grad-accum", "4", out="one")) == 0
    r = mpirun(tmp_path, 2, tiny(tmp_path, text_file, *flags, "--grad-accum", "2", out="two"))
    assert r.returncode == 0, r.stderr
    assert_same_run(tmp_path / "one", tmp_path / "two")
    one, two = (checkpoint.load(tmp_path / d / "ckpt.npz")["header"]["rng"] for d in ("one", "two"))
    assert one == two                                    # the streams end in the same state


@needs_mpi
def test_killed_two_rank_run_resumes_exactly(tmp_path, text_file):
    """Rank 1 is killed (SIGKILL) at iter 7, after the iter-5 checkpoint: every rank stops;
    --resume on 2 ranks ends bit for bit where a straight run ends, and the same checkpoint
    resumed on 1 process (re-sharded to --grad-accum 2) ends there too, to rounding."""
    flags = tiny(tmp_path, text_file, "--max-iters", "10", "--dropout", "0.1", out="straight")
    assert mpirun(tmp_path, 2, flags).returncode == 0
    flags = tiny(tmp_path, text_file, "--max-iters", "10", "--dropout", "0.1", out="killed")
    r = mpirun(tmp_path, 2, flags, spec={"fail": "kill", "at": 7})
    assert r.returncode != 0
    assert [row["iter"] for row in read_log(tmp_path / "killed")] == [0, 5]
    assert checkpoint.load(tmp_path / "killed" / "ckpt.npz")["header"]["iter"] == 5
    shutil.copytree(tmp_path / "killed", tmp_path / "killed1")

    r = mpirun(tmp_path, 2, tiny(tmp_path, text_file, "--resume", out="killed"))
    assert r.returncode == 0, r.stderr
    assert "resumed from" in r.stdout
    assert_same_run(tmp_path / "straight", tmp_path / "killed", exact=True)

    assert train_cli.main(tiny(tmp_path, text_file, "--resume", out="killed1")) == 0
    assert_same_run(tmp_path / "straight", tmp_path / "killed1")
    header = checkpoint.load(tmp_path / "killed1" / "ckpt.npz")["header"]
    assert header["world_size"] == 1 and header["args"]["grad_accum"] == 2


@needs_mpi
def test_resume_that_cannot_be_split_is_refused_in_one_line(tmp_path, text_file):
    """A 1-process run with --grad-accum 1 takes 1 micro-batch per step: 2 ranks cannot share
    it. Every rank meets the error: one line from rank 0, exit 2, nothing written."""
    assert train_cli.main(tiny(tmp_path, text_file, "--max-iters", "5")) == 0
    before = (tmp_path / "out" / "ckpt.npz").read_bytes()
    r = mpirun(tmp_path, 2, tiny(tmp_path, text_file, "--resume", "--max-iters", "10"))
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1 and "2 ranks cannot split them evenly" in r.stderr
    assert "resume on [1] ranks" in r.stderr
    assert (tmp_path / "out" / "ckpt.npz").read_bytes() == before


@needs_mpi
def test_one_rank_failing_alone_stops_every_rank(tmp_path, text_file):
    """Rank 1 alone meets bad data while rank 0 waits in the gradient Allreduce: one line
    naming rank 1, the error's exit code, and no hang (the timeout would fail the test)."""
    r = mpirun(tmp_path, 2, tiny(tmp_path, text_file, "--max-iters", "10"),
               spec={"fail": "raise", "at": 3}, timeout=60)
    assert r.returncode == 2
    assert r.stderr.splitlines() == ["rank 1 of 2: error: rank 1 met bad data"]


@needs_mpi
def test_nan_on_one_rank_stops_all_with_one_line(tmp_path, text_file):
    """The loss is averaged over the ranks, so a NaN on rank 1 reaches every rank: all stop
    together, rank 0 prints the usual line, exit 3, the last good checkpoint is kept."""
    r = mpirun(tmp_path, 2, tiny(tmp_path, text_file, "--max-iters", "10"), spec={"fail": "nan", "at": 7},
               timeout=60)
    assert r.returncode == 3
    assert r.stderr.count("\n") == 1 and "nan at step 8" in r.stderr and "holds iter 5" in r.stderr
    assert checkpoint.load(tmp_path / "out" / "ckpt.npz")["header"]["iter"] == 5


@needs_mpi
def test_ranks_that_see_other_data_refuse_to_train(tmp_path, text_file):
    r = mpirun(tmp_path, 2, tiny(tmp_path, text_file, "--max-iters", "2"), spec={"other_data": True})
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1 and "the ranks disagree on the token ids of --data" in r.stderr
    assert not (tmp_path / "out" / "ckpt.npz").exists() and not (tmp_path / "out" / "log.jsonl").exists()


@needs_mpi
def test_out_dir_is_made_and_locked_by_rank_0_alone(tmp_path, text_file):
    """Only rank 0 takes OUT_DIR/lock (the other tests train on 2 ranks, so the ranks never
    lock each other out): a folder another run holds, or an --out-dir that is a file, ends
    every rank with rank 0's one line and exit 2, writing nothing; a run leaves no lock."""
    out = tmp_path / "out"
    out.mkdir()
    lock = files.DirLock(out).acquire()           # another run, in this test's process
    try:
        r = mpirun(tmp_path, 2, tiny(tmp_path, text_file, "--max-iters", "2"))
        assert sorted(p.name for p in out.iterdir()) == ["lock"]
    finally:
        lock.release()
    assert r.returncode == 2, r.stderr
    assert r.stderr.count("\n") == 1 and f"another run is using {out}" in r.stderr

    (tmp_path / "a_file").write_text("not a folder")
    r = mpirun(tmp_path, 2, tiny(tmp_path, text_file, "--max-iters", "2", out="a_file"))
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1 and "is a file, not a folder" in r.stderr

    r = mpirun(tmp_path, 2, tiny(tmp_path, text_file, "--max-iters", "2", out="fresh"))
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in (tmp_path / "fresh").iterdir()) == ["ckpt.npz", "config.json", "log.jsonl"]


@needs_mpi
def test_ranks_whose_weights_drift_apart_are_stopped(tmp_path, text_file):
    r = mpirun(tmp_path, 2, tiny(tmp_path, text_file, "--max-iters", "10"), spec={"perturb": True})
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1 and "the ranks disagree on the weights" in r.stderr
    assert checkpoint.load(tmp_path / "out" / "ckpt.npz")["header"]["iter"] == 0   # 5 not written


@needs_mpi
def test_nccl_path_on_the_fake_cupy(tmp_path, text_file):
    """--backend cupy on 2 ranks: each rank picks its GPU, rank 0's NCCL id reaches both, the
    gradients are summed by one NCCL allReduce per step on the device buffer, and the run
    equals the NumPy single process with --grad-accum 2."""
    assert train_cli.main(tiny(tmp_path, text_file, "--max-iters", "5", "--grad-accum", "2",
                               out="one")) == 0
    r = mpirun(tmp_path, 2, tiny(tmp_path, text_file, "--max-iters", "5", "--backend", "cupy", out="two"),
               spec={"fake_cupy": True, "count": True})
    assert r.returncode == 0, r.stderr
    assert_same_run(tmp_path / "one", tmp_path / "two")
    for rank in range(2):
        seen = json.loads((tmp_path / "two" / f"rank{rank}.json").read_text())
        assert seen["devices"] == [rank]
        assert seen["calls"]["allReduce"] == 5
        assert seen["calls"].get("get_unique_id", 0) == (1 if rank == 0 else 0)
        assert seen["calls"]["asarray"] > 0                   # the model really ran on the fake
        assert len(seen["allreduce_sizes"]) == 2              # MPI only for the 2 evaluations
    assert checkpoint.load(tmp_path / "two" / "ckpt.npz")["header"]["backend"] == "cupy"


# ---------------------------------------------------------------- one process

def test_plain_run_does_not_import_mpi4py(tmp_path, text_file):
    code = textwrap.dedent(f"""
        import runpy, sys
        sys.argv = ["minims.train"] + {tiny(tmp_path, text_file, "--max-iters", "2")!r}
        try:
            runpy.run_module("minims.train", run_name="__main__")
        except SystemExit as e:
            assert e.code == 0, e.code
        print("mpi4py" in sys.modules, "minims.train.distributed" in sys.modules)
    """)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PMI_", "OMPI_", "MV2_"))}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, env=env,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[-1] == "False True"


def test_several_ranks_without_mpi4py_is_one_line_error(tmp_path):
    code = ("import runpy, sys; sys.modules['mpi4py'] = None; sys.argv = ['minims.train', '--help']; "
            "runpy.run_module('minims.train', run_name='__main__')")
    env = {**os.environ, "PMI_RANK": "0", "PMI_SIZE": "2"}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, env=env,
                       timeout=120)
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1
    assert "started 2 processes but mpi4py cannot be imported" in r.stderr and ".[mpi]" in r.stderr


@pytest.mark.parametrize("environ, expected", [
    ({}, (0, 1, 0, 1)),
    ({"PMI_RANK": "1", "PMI_SIZE": "4", "MPI_LOCALRANKID": "1", "MPI_LOCALNRANKS": "2"}, (1, 4, 1, 2)),
    ({"OMPI_COMM_WORLD_RANK": "3", "OMPI_COMM_WORLD_SIZE": "4"}, (3, 4, 3, 4)),
    ({"MV2_COMM_WORLD_RANK": "0", "MV2_COMM_WORLD_SIZE": "1"}, (0, 1, 0, 1)),
])
def test_launcher_variables(environ, expected):
    assert distributed.launcher_world(environ) == expected


@pytest.mark.parametrize("environ", [{"PMI_RANK": "2", "PMI_SIZE": "2"}, {"PMI_RANK": "x", "PMI_SIZE": "2"},
                                     {"PMI_RANK": "0", "PMI_SIZE": "0"}])
def test_nonsense_launcher_variables_are_an_error(environ):
    with pytest.raises(distributed.DistributedError, match="launcher"):
        distributed.launcher_world(environ)


@given(seed=st.integers(0, 2**32), k=st.integers(0, 2**128 - 1))
def test_pcg64_distance_inverts_advance(seed, k):
    start = np.random.PCG64(seed)
    later = np.random.PCG64()
    later.state = start.state
    later.advance(k)
    assert distributed.pcg64_distance(start.state, later.state) == k


def test_pcg64_distance_counts_dropout_draws():
    rng = np.random.default_rng(3)
    before = rng.bit_generator.state
    rng.random((4, 16, 8))                # one 64-bit draw per float64, as dropout draws them
    assert distributed.pcg64_distance(before, rng.bit_generator.state) == 4 * 16 * 8


def _header(world_size, grad_accum):
    return {"world_size": world_size, "args": {"grad_accum": grad_accum}}


def test_reshard_rules():
    h = _header(2, 3)                                   # 6 micro-batches per step
    assert resume.reshard(h, 2, "ckpt") is None and h["args"]["grad_accum"] == 3
    assert "--grad-accum 2" in resume.reshard(h, 3, "ckpt") and h["args"]["grad_accum"] == 2
    h = {"args": {"grad_accum": 4}}                     # written before world sizes: 1 process
    resume.reshard(h, 4, "ckpt")
    assert h["args"]["grad_accum"] == 1
    with pytest.raises(CheckpointError, match=r"4 ranks cannot split them.*\[1, 2, 3, 6\]"):
        resume.reshard(_header(2, 3), 4, "ckpt")


def test_single_world_is_the_identity():
    world = distributed.Single()
    assert world.share([1, 2, 3]) == [1, 2, 3] and world.sum_floats([1.5]) == [1.5]
    assert world.allreduce_grads([], 2.5) == 2.5 and world.on_root(lambda x: x + 1, 1) == 2


@needs_mpi
def test_usage_error_is_printed_once(tmp_path):
    r = mpirun(tmp_path, 2, ["--no-such-flag"])
    assert r.returncode == 2 and r.stderr.count("unrecognized arguments: --no-such-flag") == 1
