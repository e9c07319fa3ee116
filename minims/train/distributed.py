"""Data-parallel training on several processes: `mpiexec -n N python -m minims.train ...`.

Everything that knows about MPI (and NCCL) lives here; the trainer only calls the few hooks
below. One process per rank; every rank holds the whole model. (ours: the plan of
`torch.distributed`/Horovod data parallelism, written for this trainer.)

- Who am I: `current()` reads the rank and the number of ranks from the variables the MPI
  launcher sets (MPICH's Hydra and Intel MPI: PMI_RANK/PMI_SIZE; Open MPI:
  OMPI_COMM_WORLD_*; MVAPICH: MV2_COMM_WORLD_*). Without them, or with one process, the run
  is `Single` and mpi4py is never imported. With several ranks and no mpi4py it is a one-line
  `DistributedError`; the same if the launcher and mpi4py's MPI library disagree on the count.
- The update: N ranks with `--batch-size b --grad-accum g` make the update of ONE process with
  `--batch-size b --grad-accum g·N`. Every rank draws all g·N micro-batches from the shared
  batch RNG (cheap: index arithmetic) and runs forward/backward on its own g of them
  (rank r: micro-batches r·g ... r·g+g-1); `allreduce_grads` then averages the gradients (and
  the loss) with ONE Allreduce over a single flat buffer, so every rank takes the same
  optimizer step. The results agree with the single process to rounding (the sums run in
  another order), not bit for bit.
- Dropout: all ranks share one dropout RNG stream, as the single process does. Rank r jumps
  it forward (PCG64 `advance`) past the numbers micro-batches 0 ... r·g-1 would draw, and
  after the step every rank jumps to where the single process would be. The count per
  micro-batch is measured once with one forward pass without a graph (`rank_stream`).
- Evaluation is split: rank r computes the loss batches i with i % N == r, and the sums are
  added with one Allreduce (`sum_floats`).
- Files: only rank 0 creates, locks (OUT_DIR/lock), reads and writes OUT_DIR (checkpoint,
  log, config); its file errors are raised on every rank (`on_root`); a resumed checkpoint
  is read by rank 0 and broadcast (`on_root`), so the hosts need not share a file system,
  only the data. Every checkpoint checks that all ranks still hold the same weights, and a
  run resumed on another number of ranks is re-sharded (minims/train/resume.py).
- Failures: `launch()` runs the trainer's `main`. A failure every rank meets (a bad flag, a
  missing file, a NaN loss: the loss is reduced, so all ranks see it; Ctrl-C, which mpiexec
  passes to every rank) ends all ranks with the usual one line from rank 0 and the usual exit
  code. A failure of one rank alone (the other ranks wait inside a collective) is printed by
  that rank as one line, then `MPI_Abort` stops every rank with its exit code; never a hang.
- Threads: the trainer gives each rank its share of the host's idle cores for its BLAS
  (`local_size` ranks; minims/threads.py), so N ranks do not each start one thread per core.
- GPUs (`--backend cupy`): rank r uses GPU local_rank % (GPUs on the host); gradients are
  summed on the GPU with NCCL (`cupy.cuda.nccl`, its unique id broadcast over MPI), or, where
  CuPy was built without NCCL, copied to the host and summed with MPI.
"""
import contextlib
import io
import math
import os
import sys
import time
import traceback

from ..errors import MinimsError, report

# (rank variable, size variable) pairs set by MPI launchers, most common first
LAUNCHER_VARS = (("PMI_RANK", "PMI_SIZE"), ("OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE"),
                 ("MV2_COMM_WORLD_RANK", "MV2_COMM_WORLD_SIZE"))
# (local rank, ranks on this host)
LOCAL_VARS = (("MPI_LOCALRANKID", "MPI_LOCALNRANKS"),
              ("OMPI_COMM_WORLD_LOCAL_RANK", "OMPI_COMM_WORLD_LOCAL_SIZE"),
              ("MV2_COMM_WORLD_LOCAL_RANK", "MV2_COMM_WORLD_LOCAL_SIZE"))
MPI_INSTALL_HINT = "pip install -e '.[mpi]' (mpi4py, and MPICH with its mpiexec)"
ABORT_GRACE_S = 3.0   # how long a failed rank waits to see whether every rank failed with it


class DistributedError(MinimsError, ValueError):
    """A multi-process run that cannot work (no mpi4py, launcher and MPI library disagree,
    ranks that see different data or hold different weights); the message is one line. A
    MinimsError (minims/errors.py), so the trainer reports it like a bad flag (one line, exit 2)."""


def launcher_world(environ=None):
    """(rank, size, local_rank, local_size) from the launcher's environment variables;
    (0, 1, 0, 1) when no launcher set them. Raises DistributedError on nonsense values."""
    environ = os.environ if environ is None else environ
    rank, size = 0, 1
    for rank_var, size_var in LAUNCHER_VARS:
        if size_var in environ:
            rank, size = _int(environ, rank_var, 0), _int(environ, size_var, 1)
            break
    local_rank, local_size = rank, size      # without the local variables: one host
    for rank_var, size_var in LOCAL_VARS:
        if size_var in environ:
            local_rank, local_size = _int(environ, rank_var, 0), _int(environ, size_var, 1)
            break
    if size < 1 or not 0 <= rank < size or local_size < 1 or not 0 <= local_rank < local_size:
        raise DistributedError(f"the MPI launcher's variables make no sense: rank {rank} of {size}, "
                               f"local rank {local_rank} of {local_size}")
    return rank, size, local_rank, local_size


def _int(environ, name, default):
    try:
        return int(environ.get(name, default))
    except ValueError:
        raise DistributedError(f"the MPI launcher set {name}={environ[name]!r}, not a number") from None


_current = None


def current():
    """The World of this process (made on first use): `Single` or `MPIWorld`."""
    global _current
    if _current is None:
        rank, size, local_rank, local_size = launcher_world()
        _current = Single() if size == 1 else MPIWorld(rank, size, local_rank, local_size)
    return _current


class Single:
    """One process: every hook is the identity (or does nothing); nothing is imported.
    `MPIWorld` documents what each hook does with several ranks."""
    rank, size, local_rank, local_size = 0, 1, 0, 1
    is_root = True

    def start_run(self, backend_name):
        pass

    def allreduce_grads(self, params, loss):
        return loss

    def sum_floats(self, values):
        return list(values)

    def on_root(self, fn, *args):
        return fn(*args)

    def agree(self, what, value):
        pass

    def check_same_weights(self, params):
        pass

    @contextlib.contextmanager
    def rank_stream(self, rng, model, batches):
        yield

    def share(self, batches):
        return batches


class MPIWorld(Single):
    """Several processes started by an MPI launcher (see the module docstring)."""

    def __init__(self, rank, size, local_rank=0, local_size=1):
        try:
            from mpi4py import MPI
        except ImportError as e:
            raise DistributedError(f"the MPI launcher started {size} processes but mpi4py cannot be "
                                   f"imported ({e}): {MPI_INSTALL_HINT}, or run one process "
                                   "without mpiexec") from None
        self.MPI, self.comm = MPI, MPI.COMM_WORLD
        if self.comm.Get_size() != size or self.comm.Get_rank() != rank:
            raise DistributedError(f"the launcher says rank {rank} of {size} but mpi4py's MPI says rank "
                                   f"{self.comm.Get_rank()} of {self.comm.Get_size()}: mpiexec and mpi4py "
                                   "come from different MPI libraries; use the mpiexec of the MPI "
                                   f"mpi4py was built for ({MPI_INSTALL_HINT})")
        self.rank, self.size = rank, size
        self.local_rank, self.local_size = local_rank, local_size
        self.is_root = rank == 0
        self._control = self.comm.Dup()   # for the failure handshake, apart from the training's calls
        self._draws = None                # dropout draws per micro-batch (rank_stream)
        self._reduce_on_device = None

    # --- set-up -------------------------------------------------------------------------
    def start_run(self, backend_name):
        """Called by each new Trainer after `backend.set_backend`: forget the last run's dropout
        count; on CuPy, pick this rank's GPU and make the NCCL communicator."""
        from .. import backend
        self._draws = None
        if backend_name != "cupy":
            return
        cuda = backend.xp.cuda
        n_gpus = cuda.runtime.getDeviceCount()
        cuda.Device(self.local_rank % n_gpus).use()
        nccl = backend.nccl()
        if nccl is None:              # CuPy without NCCL: sum on the host (slower, still exact)
            self._reduce_on_device = self._reduce_via_host
            return
        uid = self.comm.bcast(nccl.get_unique_id() if self.is_root else None, root=0)
        communicator = nccl.NcclCommunicator(self.size, uid, self.rank)
        kinds = {"float32": nccl.NCCL_FLOAT32, "float64": nccl.NCCL_FLOAT64}

        def reduce_nccl(buf):
            stream = cuda.get_current_stream()
            communicator.allReduce(buf.data.ptr, buf.data.ptr, buf.size, kinds[str(buf.dtype)],
                                   nccl.NCCL_SUM, stream.ptr)
            stream.synchronize()
        self._reduce_on_device = reduce_nccl

    def _reduce_via_host(self, buf):
        from .. import backend
        host = backend.to_numpy(buf)
        self.comm.Allreduce(self.MPI.IN_PLACE, host, op=self.MPI.SUM)
        buf[...] = backend.asarray(host)

    # --- the step ----------------------------------------------------------------------
    def share(self, batches):
        """This rank's micro-batches out of the g·N that every rank drew: rank r takes
        batches[r·g : (r+1)·g]."""
        if len(batches) % self.size:
            raise ValueError(f"{len(batches)} micro-batches cannot be split over {self.size} ranks")
        g = len(batches) // self.size
        return batches[self.rank * g:(self.rank + 1) * g]

    def allreduce_grads(self, params, loss):
        """Average the gradients of `params` (in place) and `loss` over the ranks -> the mean
        loss. ONE Allreduce over a flat buffer holding every gradient and the loss; a
        parameter without a gradient (unused in the graph, the same on every rank) keeps None."""
        from .. import backend
        with_grad = [p for p in params if p.grad is not None]
        if not with_grad:
            return self.sum_floats([loss])[0] / self.size
        n = sum(p.grad.size for p in with_grad)
        buf = backend.xp.empty(n + 1, dtype=with_grad[0].grad.dtype)   # (n_params + 1,)
        offset = 0
        for p in with_grad:
            buf[offset:offset + p.grad.size] = p.grad.reshape(-1)
            offset += p.grad.size
        buf[n] = loss
        if backend.get_backend() == "cupy":
            self._reduce_on_device(buf)
        else:
            self.comm.Allreduce(self.MPI.IN_PLACE, buf, op=self.MPI.SUM)
        buf *= 1.0 / self.size
        offset = 0
        for p in with_grad:       # views into the fresh buffer: no copy
            p.grad = buf[offset:offset + p.grad.size].reshape(p.grad.shape)
            offset += p.grad.size
        return float(buf[n])

    @contextlib.contextmanager
    def rank_stream(self, rng, model, batches):
        """Run this rank's micro-batches `batches` of `model` on the shared dropout stream `rng`
        (a NumPy Generator on PCG64) from where the single process would start them, and leave
        `rng` where the single process ends the step.

        The numbers a micro-batch draws are counted once, by one forward pass of the first
        (no graph). Raises RuntimeError if a micro-batch then draws another count (the runs
        would no longer match a single process)."""
        import numpy
        from ..engine import no_grad
        n_mine, bits = len(batches), rng.bit_generator
        start = bits.state
        if self._draws is None:
            with no_grad():
                model(*batches[0])
            self._draws = pcg64_distance(start, bits.state)
            bits.state = start
        d = self._draws
        bits.advance(self.rank * n_mine * d)
        yield
        expected = numpy.random.PCG64()
        expected.state = start
        expected.advance((self.rank + 1) * n_mine * d)
        if expected.state["state"] != bits.state["state"]:
            raise RuntimeError("a micro-batch drew another number of dropout random numbers than "
                               f"measured ({d}); data-parallel dropout needs the same count every time")
        bits.state = start
        bits.advance(self.size * n_mine * d)

    # --- small collectives ---------------------------------------------------------------
    def sum_floats(self, values):
        """[v_0, v_1, ...] summed element-wise over the ranks (one Allreduce)."""
        import numpy
        buf = numpy.array(values, dtype=numpy.float64)
        self.comm.Allreduce(self.MPI.IN_PLACE, buf, op=self.MPI.SUM)
        return [float(v) for v in buf]

    def on_root(self, fn, *args):
        """fn(*args) run on rank 0 only, its result broadcast to every rank; if it raises, every
        rank raises the same exception (so all fail together, with rank 0's message)."""
        outcome = None
        if self.is_root:
            try:
                outcome = (True, fn(*args))
            except Exception as e:
                outcome = (False, e)
        ok, value = self.comm.bcast(outcome, root=0)
        if not ok:
            raise value
        return value

    def agree(self, what, value):
        """Check that every rank holds the same `value` (a small picklable object); raises
        DistributedError on every rank, naming the first rank that differs from rank 0."""
        values = self.comm.allgather(value)
        for r, v in enumerate(values):
            if v != values[0]:
                raise DistributedError(f"the ranks disagree on {what}: rank 0 has {values[0]!r}, "
                                       f"rank {r} has {v!r}")

    def check_same_weights(self, params):
        """Raise DistributedError if the ranks' weights differ (they take identical steps, so
        they never should); compares one number per rank, at every checkpoint."""
        self.agree("the weights (a step differed between ranks)", fingerprint(params))

    # --- failures ------------------------------------------------------------------------
    def stop(self, code, text):
        """This rank failed with exit `code` (its message in `text`, already printed on rank 0).
        If every rank failed (they all reach here within ABORT_GRACE_S) -> `code`, for a clean
        exit; otherwise print `text` and MPI_Abort every rank."""
        request = self._control.Ibarrier()
        deadline = time.monotonic() + ABORT_GRACE_S
        while not request.Test():
            if time.monotonic() > deadline:
                if not self.is_root:   # rank 0's message is out already
                    sys.stderr.write("".join(f"rank {self.rank} of {self.size}: {line}\n"
                                             for line in text.splitlines()))
                sys.stderr.flush()
                time.sleep(1.0)    # let the launcher pass our line on before the abort ends its pipes
                # MPI_Abort stops every rank; MPICH would add a line of its own, which says
                # nothing more than ours
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, 2)
                self.comm.Abort(code)
            time.sleep(0.01)
        return code


def launch(main, argv=None):
    """Run `main(argv)` (the trainer's entry point, returning an exit code) on this rank.

    One process: just `main(argv)`. Several: ranks other than 0 keep their output to
    themselves unless they fail alone; see `MPIWorld.stop` for how a failure ends all ranks."""
    try:
        world = current()
    except DistributedError as e:
        print(report(e), file=sys.stderr)
        return e.exit_code
    if world.size == 1:
        return main(argv)
    captured = io.StringIO()
    with contextlib.ExitStack() as stack:
        if not world.is_root:   # the same --help or usage error N times helps nobody
            stack.enter_context(contextlib.redirect_stdout(captured))
            stack.enter_context(contextlib.redirect_stderr(captured))
        try:
            code = main(argv)
        except KeyboardInterrupt:
            print("interrupted (Ctrl-C)", file=sys.stderr)   # as minims.cli.run_cli says it
            code = 130
        except BaseException:       # a bug: the traceback, then stop every rank
            traceback.print_exc()
            code = 1
    if not code:
        return 0
    return world.stop(code, captured.getvalue())


# ---------------------------------------------------------------------------------------
# PCG64 jumps (dropout on several ranks)
# ---------------------------------------------------------------------------------------

PCG64_MULTIPLIER = (2549297995355413924 << 64) + 4865540595714422341
_MASK128 = (1 << 128) - 1


def pcg64_distance(state_from, state_to):
    """How many 64-bit draws take a PCG64 generator from `state_from` to `state_to` (its
    `bit_generator.state` dicts): d with `advance(d)` mapping one onto the other.

    PCG64's state is a 128-bit linear congruential generator s -> a·s + c (mod 2^128). The
    distance is found one bit at a time (O'Neill's method for power-of-two LCGs): step k of
    the loop compares bit k of the two states and, where they differ, applies the jump by
    2^k, whose multiplier and increment come from squaring the previous ones."""
    for s in (state_from, state_to):
        if s.get("bit_generator") != "PCG64":
            raise ValueError(f"pcg64_distance needs PCG64 states, got {s.get('bit_generator')}")
    cur, target = state_from["state"]["state"], state_to["state"]["state"]
    inc = state_from["state"]["inc"]
    if inc != state_to["state"]["inc"]:
        raise ValueError("the two PCG64 states belong to different streams")
    mult, bit, distance = PCG64_MULTIPLIER, 1, 0
    while cur != target:
        if bit > _MASK128:     # cannot happen for states of one stream
            raise ValueError("PCG64 states are not on one stream")
        if (cur & bit) != (target & bit):
            cur = (cur * mult + inc) & _MASK128
            distance |= bit
        bit <<= 1
        inc = ((mult + 1) * inc) & _MASK128
        mult = (mult * mult) & _MASK128
    return distance


def fingerprint(params):
    """A float summarizing the weights (for `agree`): ranks that took different steps differ."""
    from .. import backend
    return math.fsum(float(backend.to_numpy(p.data).astype("float64").sum()) for p in params)
