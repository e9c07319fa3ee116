"""The trainer: `python -m minims.train` trains any registered model on Austen or your own text.

    python -m minims.train                                  # char-level vanilla model on Austen
    python -m minims.train --model top-down --pool 4        # a multi-scale model (flags from its config)
    python -m minims.train --resume                         # continue the run in --out-dir exactly
    python -m minims.train --backend cupy                   # on an NVIDIA GPU

One loop for every model (nanoGPT's): random windows from the training split, AdamW with
warmup + cosine learning rate, gradient clipping on the global norm, gradient accumulation,
and an evaluation of train and valid loss every --eval-interval steps. Each evaluation appends
a line to OUT_DIR/log.jsonl and writes OUT_DIR/ckpt.npz (atomically; see minims/checkpoint.py).
A checkpoint holds everything the loop depends on (weights, optimizer moments, iteration, RNG
states, the learning-rate schedule), so `--resume` continues bit for bit: a 20-step run stopped
at step 10 and resumed ends exactly like 20 steps straight. The cosine schedule's horizon
(--lr-decay-iters, by default --max-iters of the run's first start) is stored too: raising
--max-iters on resume extends the run at --min-lr, never restarts the decay; to decay over the
longer run, give --lr-decay-iters as well (the learning rate then changes from the resume on).
One run at a time per --out-dir: OUT_DIR/lock holds the running process's PID (a lock left by
a run that died is taken over).

The flags are made and checked in minims/train_flags.py (model-specific ones, e.g. `--pool`,
from the config dataclass of every registered model), so a new model appears in --help with no
change to this file.

For code (experiments, lessons): `train(make_args(max_iters=200, model="top-down"))` returns
the final metrics; `train_step` is one optimizer step, usable on its own.

Several processes: `mpiexec -n N python -m minims.train --batch-size b ...` trains data-parallel
(minims/distributed.py). N ranks with --batch-size b make exactly the update of one process with
--batch-size b --grad-accum N (with --grad-accum g: of g*N), to rounding: rank r computes the
micro-batches r*g ... r*g+g-1 that one process would, and one Allreduce averages the gradients.
Evaluation is split over the ranks and summed. Rank 0 alone creates, locks and writes OUT_DIR
and prints; the checkpoint records the number of ranks, and --resume on another number N'
re-shards exactly (--grad-accum g*N/N' per rank) or refuses when N' does not divide g*N. Each
rank's OpenBLAS gets cores/(ranks on the host) threads unless OPENBLAS_NUM_THREADS or
OMP_NUM_THREADS is set. An error every rank meets ends the run as below; a rank failing alone
stops all (MPI_Abort).

Exit codes: 0 done; 2 a usage, data, backend, checkpoint, file-system or memory error (one
line on stderr; minims/errors.py); 3 the loss became NaN or infinite (training stopped, the
last good checkpoint is kept); 130 interrupted with Ctrl-C (the last checkpoint is kept;
continue with --resume). A traceback means a bug in minims: please report it.
"""
import argparse
import contextlib
import hashlib
import json
import math
import sys
import time
import weakref
from pathlib import Path

import numpy as np

from .. import backend
from .. import checkpoint, files, memory, tuning
from . import distributed
from ..data import get_batch, prepare, unigram_ppl
from ..engine import no_grad
from ..cli import run_cli
from ..errors import CheckpointError, DataError, MinimsError, OutOfMemory, UsageError, file_error
from ..models import MODELS, canonical_name
from ..optim import AdamW, clip_grad_norm, cosine_lr
from .flags import (args_dict, check_args, merge_resume_args, model_config, parse_args,
                          resolved_data, same_json)
from .flags import build_parser, make_args  # noqa: F401  (minims.train.make_args for code)

LOG_NAME, CONFIG_NAME = "log.jsonl", "config.json"


class NonFiniteLoss(MinimsError, RuntimeError):
    """The loss (or the gradient norm) became NaN or infinite (exit code 3)."""
    exit_code = 3


class TrainingInterrupted(MinimsError, RuntimeError):
    """Ctrl-C during training; the message says where the last checkpoint is (exit code 130)."""
    exit_code = 130
    label = "interrupted"


# ---------------------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------------------

def train_step(model, optimizer, batches, lr, grad_clip=None, reduce=None):
    """One optimizer step on `batches` = [(x, y), ...] -> the mean loss (a float).

    Each micro-batch's loss is scaled by 1/len(batches) before backward and the gradients add
    up in `.grad`, so N micro-batches of b sequences make the same update as one batch of N·b
    (the loss is a mean over tokens). A NaN or infinite loss or gradient raises NonFiniteLoss
    before the weights are touched. `reduce(params, loss) -> loss`, if given, averages the
    gradients and the loss over data-parallel ranks before the check (minims.distributed).
    """
    optimizer.zero_grad()
    scale = 1.0 / len(batches)
    total = 0.0
    for x, y in batches:
        _, loss = model(x, y)
        (loss * scale).backward()
        total += float(loss.item()) * scale
    if reduce is not None:
        total = reduce(optimizer.params, total)
    if not math.isfinite(total):
        raise NonFiniteLoss(f"loss is {total}")
    norm = clip_grad_norm(optimizer.params, grad_clip)
    if not math.isfinite(norm):
        raise NonFiniteLoss(f"gradient norm is {norm} (loss {total:.4f})")
    optimizer.lr = lr
    optimizer.step()
    return total


def _read_log(path):
    """(records, [(record or None, line), ...]) of a log.jsonl; a missing file is empty.

    A line that is not a record (a JSON object with an integer "iter") is kept as (None, line),
    except a blank line and a half-written last one (no newline at its end: the write was
    cut), which are left out."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return [], []
    except OSError as e:
        raise file_error(e, "reading the log", where=path) from None
    lines = text.split("\n")
    cut = lines.pop()                   # "" when the file ends with a newline
    out = []
    for line in lines + ([cut] if cut else []):
        try:
            record = json.loads(line)
        except ValueError:
            record = None
        if not (isinstance(record, dict) and isinstance(record.get("iter"), int)):
            if not line.strip() or line is cut:
                continue
            record = None               # not one of our records: kept as it is
        out.append((record, line))
    return [r for r, _ in out if r is not None], out


def _data_digest(splits):
    h = hashlib.sha256()
    for s in ("train", "valid", "test"):
        h.update(np.ascontiguousarray(splits[s]).tobytes())
    return h.hexdigest()[:20]


def _fmt_bytes(n):
    return "n/a" if n is None else f"{n / 2**20:.1f} MiB"


def _nothing():
    pass


def _fmt_time(s):
    m, s = divmod(int(round(s)), 60)
    return f"{m}m{s:02d}s" if m else f"{s}s"


class StepMeter:
    """Wall time, tokens and peak memory of the training steps (the loop's metering).

    `with meter.step(): ...` times one step. The first is traced (memory.track_memory gives
    `peak_mem`), which slows it, so its time is kept out of the rates unless it is the run's
    only step (`only_step`); the others end with backend.synchronize(), so a GPU's queued work
    is counted. `rate()` is tokens/s over all counted steps, `window_rate()` since the last
    `new_window()` (one evaluation interval)."""

    def __init__(self, tokens_per_step, only_step=False):
        self.tokens_per_step, self.only_step = tokens_per_step, only_step
        self.steps, self.peak_mem = 0, None
        self.time = self.tokens = self.window_time = self.window_tokens = 0

    @contextlib.contextmanager
    def step(self):
        first, t0 = self.steps == 0, time.perf_counter()
        if first:   # peak memory of one step (tracing every step would slow all of them)
            with memory.track_memory() as mem:
                yield
            self.peak_mem = mem["peak"]
        else:
            yield
            backend.synchronize()
        dt = time.perf_counter() - t0
        self.steps += 1
        if not first or self.only_step:
            self.time += dt
            self.tokens += self.tokens_per_step
            self.window_time += dt
            self.window_tokens += self.tokens_per_step

    def rate(self):
        return self.tokens / self.time if self.time > 0 else None

    def window_rate(self):
        return self.window_tokens / self.window_time if self.window_time else None

    def new_window(self):
        self.window_time, self.window_tokens = 0.0, 0


class Trainer:
    """A training run: data, model, optimizer and RNGs, fresh or resumed from OUT_DIR.

    `run()` trains to --max-iters and returns the final metrics; `step()` is one optimizer
    step, `evaluate()` one loss estimate, `save()` one checkpoint. The run holds OUT_DIR/lock
    from construction until `run()` ends (or `close()`).
    """

    def __init__(self, args, verbose=True):
        self.t_start = time.perf_counter()
        self.world = world = distributed.current()
        self.verbose = verbose and world.is_root
        backend.set_backend(args.backend)            # before any array is made
        tuning.reuse_freed_memory()                 # a faster step (see its docstring)
        if not args.resume:
            check_args(args)                  # bad flags: refused before any folder is made
        self.out_dir = Path(args.out_dir)
        self.ckpt_path = self.out_dir / checkpoint.CKPT_NAME
        # rank 0 alone makes and locks OUT_DIR (the lock would refuse the other ranks); its
        # error, if any, is raised on every rank
        self._made_out_dir, taken = False, []
        world.on_root(lambda: taken.append(self._take_out_dir()))
        release = taken[0].release if taken else _nothing
        # released by close() (run() ends with it), or when this object is collected
        self._release = weakref.finalize(self, release)
        try:
            self._open(args)
        except BaseException:
            self.close()
            raise

    def _take_out_dir(self):
        """Create --out-dir if needed and lock it against a second run (one line if impossible)."""
        out = self.out_dir
        if out.exists() and not out.is_dir():
            raise UsageError(f"--out-dir {out} is a file, not a folder; give a folder (it is created "
                             "if missing)")
        self._made_out_dir = not out.exists()
        try:
            out.mkdir(parents=True, exist_ok=True)
            return files.DirLock(out).acquire()
        except files.LockedError:
            raise
        except OSError as e:
            raise file_error(e, f"creating --out-dir {out} and its lock file",
                             "choose a writable --out-dir", where=out) from None

    def close(self):
        """Release OUT_DIR/lock (and remove OUT_DIR again if this run made it and left it empty)."""
        if not self._release.alive:
            return
        self._release()
        if self._made_out_dir:
            try:
                self.out_dir.rmdir()            # only if empty: a run that wrote nothing
            except OSError:
                pass

    def _open(self, args):
        ckpt, world = None, self.world
        if args.resume:
            if not world.on_root(self.ckpt_path.exists):
                raise CheckpointError(f"{self.ckpt_path}: no checkpoint to resume (check --out-dir, or "
                                      "drop --resume to start a new run)")
            ckpt = world.on_root(checkpoint.load, self.ckpt_path)
            try:
                reshard_note = distributed.reshard(ckpt["header"], world.size, self.ckpt_path)
                args = merge_resume_args(args, ckpt["header"], self.ckpt_path)
            except (KeyError, TypeError) as e:
                raise CheckpointError(f"{self.ckpt_path}: not a training checkpoint (no {e} in it)") from None
            backend.set_backend(args.backend)
            check_args(args)
            self.stored_data = ckpt["header"].get("args", {}).get("data")
        else:
            if world.on_root(self.ckpt_path.exists) and not args.overwrite:
                raise UsageError(f"{self.out_dir} already holds a checkpoint ({self.ckpt_path.name}): continue "
                                 "it with --resume, replace it with --overwrite, or choose another --out-dir")
            logged = max(world.on_root(self._logged_iters), default=0)
            if logged > 0 and not args.overwrite:   # a run's records whose checkpoint is gone
                raise UsageError(f"{self.out_dir / LOG_NAME} holds the records of an earlier run (up to iter "
                                 f"{logged}) but there is no checkpoint to continue: replace them with "
                                 "--overwrite, or choose another --out-dir")
            args = argparse.Namespace(**{**vars(args)})
            if args.lr_decay_iters is None:    # the schedule's horizon, stored for every resume
                args.lr_decay_iters = max(args.max_iters, 1)
        args.data = resolved_data(args.data)
        self.args = args
        world.start_run(args.backend)

        self.tokenizer, self.splits = prepare(args.data, args.tokenizer, cache_dir=args.cache_dir,
                                              min_freq=args.min_freq)
        for split in ("train", "valid"):
            if len(self.splits[split]) <= args.block_size:
                raise DataError(f"{args.data}: the {split} split has {len(self.splits[split])} tokens, "
                                f"too few for --block-size {args.block_size}; use a longer text or a "
                                "smaller --block-size")
        V = self.tokenizer.vocab_size
        self.unigram_ppl = unigram_ppl(self.splits["train"], self.splits["valid"], V)
        self.data_digest = _data_digest(self.splits)
        world.agree("the token ids of --data (every host needs the same files)", self.data_digest)

        if ckpt is None:
            config = model_config(args, V)
            name = args.model
        else:
            description = ckpt["header"]["model"]
            name = description["model"]
            try:
                config = MODELS[canonical_name(name)].Config(**description["config"])
            except (KeyError, TypeError, ValueError) as e:
                raise CheckpointError(f"{self.ckpt_path}: checkpoint describes no usable model ({e})") from None
        self._check_memory(config)
        try:
            self.model = MODELS[canonical_name(name)](config)
            self.optimizer = AdamW(self.model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
        except MemoryError:
            raise self._out_of_memory("building the model") from None
        # three independent streams from one seed: training batches, eval batches, dropout
        self.batch_rng = np.random.default_rng([args.seed, 0])
        backend.manual_seed([args.seed, 2])
        self.iter, self.best_val_loss, self.last_eval = 0, math.inf, None
        self.meter = None                  # the StepMeter of run()
        if ckpt is not None:
            self._restore(ckpt)
            if reshard_note:
                self.print(reshard_note)
        self.start_iter = self.iter
        self.saved_iter = self.iter if ckpt is not None else None

    def _check_memory(self, config):
        """Refuse, before allocating, a run that cannot fit in the backend's free memory."""
        self.memory_estimate = memory.training_bytes(config, self.args.batch_size)
        self.memory_free = memory.available_bytes()
        if self.memory_free is not None and self.memory_estimate["total"] > self.memory_free:
            raise self._out_of_memory("planning the run")

    def _out_of_memory(self, doing, saved=""):
        free = "unknown" if self.memory_free is None else memory.gib(self.memory_free)
        return OutOfMemory(f"not enough memory ({doing}): this model and batch need "
                           f"{memory.describe(self.memory_estimate)} to train, {backend.get_backend()} has "
                           f"{free} free{saved}; use a smaller --n-embd, --n-layer, --block-size or "
                           "--batch-size")

    def _restore(self, ckpt):
        header, path = ckpt["header"], self.ckpt_path
        before = ("" if self.stored_data in (None, self.args.data) else
                  f" (written with --data {self.stored_data})")
        if not same_json(self.tokenizer.to_dict(), header["tokenizer"]):
            raise CheckpointError(f"{path}: the tokenizer fitted on --data {self.args.data} differs from the "
                                  f"checkpoint's{before}: the text changed; start a new run")
        if header.get("data_sha256") != self.data_digest:
            raise CheckpointError(f"{path}: --data {self.args.data} gives other token ids than when the "
                                  f"checkpoint was written{before}: the text changed; start a new run")
        try:
            self.model.load_state_dict(ckpt["model"])
            self.optimizer.load_state_dict(ckpt["optim"])
            self.batch_rng.bit_generator.state = header["rng"]["batch"]
            backend.set_rng_state(header["rng"]["backend"])
        except (ValueError, KeyError, TypeError) as e:
            raise CheckpointError(f"{path}: checkpoint does not fit the model it describes ({e})") from None
        self.iter = int(header["iter"])
        best = header.get("best_val_loss")
        self.best_val_loss = math.inf if best is None else float(best)
        self.world.on_root(self._truncate_log, self.iter)     # OUT_DIR is rank 0's

    # --- pieces -------------------------------------------------------------------------
    def print(self, *parts):
        if self.verbose:
            from tqdm import tqdm
            tqdm.write(" ".join(str(p) for p in parts))

    def lr_at(self, it):
        a = self.args
        decay = a.lr_decay_iters or a.max_iters
        return cosine_lr(it, a.lr, a.min_lr, a.warmup_iters, decay)

    def step(self):
        """One optimizer step (--grad-accum micro-batches) -> its loss."""
        a, world = self.args, self.world
        batches = [get_batch(self.splits["train"], a.batch_size, a.block_size, self.batch_rng)
                   for _ in range(a.grad_accum * world.size)]
        mine = world.share(batches)      # all ranks draw every micro-batch, each runs its own

        def probe():
            with no_grad():
                self.model(*mine[0])
        try:
            # a diverging run is caught by the finiteness checks in train_step; NumPy's own
            # overflow warnings on the way there would only bury that one line
            with np.errstate(over="ignore", invalid="ignore", divide="ignore"), \
                    world.rank_stream(backend.global_rng(), len(mine), probe):
                loss = train_step(self.model, self.optimizer, mine, self.lr_at(self.iter), a.grad_clip,
                                  reduce=world.allreduce_grads)
        except NonFiniteLoss as e:
            raise NonFiniteLoss(f"{e} at step {self.iter + 1}") from None
        self.iter += 1
        return loss

    def evaluate(self):
        """Mean loss on --eval-iters batches of train and of valid, in eval mode, no graph.

        The batches come from their own fixed-seed generators: every evaluation sees the same
        windows (comparable numbers) and the training RNG is never touched.
        """
        a = self.args
        losses = {}
        with self.model.eval_mode(), no_grad(), np.errstate(over="ignore", invalid="ignore",
                                                             divide="ignore"):
            for i, split in enumerate(("train", "valid")):
                rng = np.random.default_rng([a.seed, 1, i])
                total = 0.0
                for j in range(a.eval_iters):
                    x, y = get_batch(self.splits[split], a.batch_size, a.block_size, rng)
                    if j % self.world.size == self.world.rank:   # split over the ranks
                        total += float(self.model(x, y)[1].item())
                losses[split] = total
        sums = self.world.sum_floats([losses["train"], losses["valid"]])
        return {"train": sums[0] / a.eval_iters, "valid": sums[1] / a.eval_iters}

    def save(self):
        a = self.args
        header = {"model": self.model.describe(), "iter": self.iter,
                  "best_val_loss": None if math.isinf(self.best_val_loss) else self.best_val_loss,
                  "tokenizer": self.tokenizer.to_dict(), "data_sha256": self.data_digest,
                  "rng": {"batch": self.batch_rng.bit_generator.state, "backend": backend.get_rng_state()},
                  "args": args_dict(a), "backend": backend.get_backend(), "world_size": self.world.size}
        self.world.check_same_weights(self.model.parameters())
        self.world.on_root(self._write_checkpoint, header)    # rank 0 writes; its error is every rank's
        self.saved_iter = self.iter
        return self.ckpt_path

    def _write_checkpoint(self, header):
        try:
            checkpoint.save(self.ckpt_path, header, self.model.state_dict(), self.optimizer.state_dict())
        except OSError as e:
            kept = ("no earlier checkpoint exists" if self.saved_iter is None else
                    f"the previous checkpoint is intact at iter {self.saved_iter}")
            raise file_error(e, f"writing the checkpoint of iter {self.iter}",
                             f"{kept}; free some space and continue with --resume",
                             where=self.ckpt_path) from None

    def _write_config(self):
        config = {"args": args_dict(self.args), "model": self.model.describe(),
                  "n_params": self.model.num_parameters(), "vocab_size": self.tokenizer.vocab_size,
                  "tokens": {s: len(v) for s, v in self.splits.items()},
                  "unigram_val_ppl": self.unigram_ppl, "world_size": self.world.size}
        self.world.on_root(self._write_config_and_log, config)

    def _write_config_and_log(self, config):
        try:
            files.write_text(self.out_dir / CONFIG_NAME, json.dumps(config, indent=2) + "\n")
            if self.saved_iter is None:        # a new run starts a new log (--overwrite too)
                files.write_text(self.out_dir / LOG_NAME, "")
        except OSError as e:
            raise file_error(e, "writing the run's config and log", "choose a writable --out-dir "
                             "with free space", where=self.out_dir) from None

    def _logged_iters(self):
        """The iterations recorded in OUT_DIR/log.jsonl (valid records only)."""
        return [r["iter"] for r in _read_log(self.out_dir / LOG_NAME)[0]]

    def _truncate_log(self, last_iter):
        """On resume: drop the records written after the checkpoint (the resumed run writes
        them again, identically) and a half-written last line, so the log continues exactly
        like the checkpoint. Nothing else is dropped: a line that is not a record (a blank
        line aside) stays where it is."""
        path = self.out_dir / LOG_NAME
        if not path.exists():
            return
        _, lines = _read_log(path)
        kept = [line for record, line in lines if record is None or record["iter"] <= last_iter]
        try:
            files.write_text(path, "".join(line + "\n" for line in kept))
        except OSError as e:
            raise file_error(e, "rewriting the log", "choose a writable --out-dir with free space",
                             where=path) from None

    def _append_log(self, record):
        try:
            with open(self.out_dir / LOG_NAME, "a") as f:
                f.write(json.dumps(record) + "\n")
        except OSError as e:
            raise file_error(e, f"writing the log record of iter {self.iter}",
                             f"{self._last_saved()}; free some space and continue with --resume",
                             where=self.out_dir / LOG_NAME) from None

    def throughput(self):
        """Tokens per second over this start's metered steps (None before any)."""
        return self.meter.rate() if self.meter is not None else None

    @property
    def peak_mem(self):
        """Peak backend memory of this start's first step, in bytes (None before it)."""
        return self.meter.peak_mem if self.meter is not None else None

    def _evaluate_and_save(self, tokens_per_s, save=True):
        losses = self.evaluate()
        train_loss, val_loss = losses["train"], losses["valid"]
        if not (math.isfinite(train_loss) and math.isfinite(val_loss)):
            raise NonFiniteLoss(f"evaluation loss is {val_loss if math.isfinite(train_loss) else train_loss} "
                                f"at iter {self.iter}")
        self.best_val_loss = min(self.best_val_loss, val_loss)
        record = {"iter": self.iter, "train_loss": train_loss, "val_loss": val_loss,
                  "val_ppl": math.exp(val_loss), "lr": self.lr_at(max(self.iter - 1, 0)),
                  "tokens_per_s": tokens_per_s, "peak_mem_bytes": self.peak_mem,
                  "elapsed_s": time.perf_counter() - self.t_start}
        if save:
            # the log line first, then the checkpoint: a resume drops log lines past the
            # checkpoint, so a kill between the two can never leave a line without its state
            self.world.on_root(self._append_log, record)
            self.save()
        self.last_eval = record
        tps = "" if tokens_per_s is None else f" | {tokens_per_s:,.0f} tok/s"
        self.print(f"iter {self.iter} | train loss {train_loss:.4f} | val loss {val_loss:.4f} | "
                   f"val ppl {record['val_ppl']:.2f} | lr {record['lr']:.2e}{tps}")
        return record

    # --- the loop -----------------------------------------------------------------------
    def run(self):
        try:
            return self.loop()
        finally:
            self.close()

    def loop(self):
        """The training loop (run() = loop(), then release OUT_DIR) -> the final metrics."""
        a = self.args
        self._write_config()
        self._print_start()
        meter = StepMeter(self.tokens_per_step, only_step=a.max_iters == self.start_iter + 1)
        self.meter, bar = meter, self._progress_bar()
        try:
            if self.saved_iter is None:
                self._evaluate_and_save(None)     # where we start: the loss should be about ln V
            elif self.iter >= a.max_iters:
                self.print(f"nothing to train: the checkpoint is at iter {self.iter}, --max-iters is "
                           f"{a.max_iters} (raise it to train further)")
                self._evaluate_and_save(None, save=False)
            while self.iter < a.max_iters:
                with meter.step():
                    loss = self.step()
                bar.update(1)
                if meter.window_time:
                    bar.set_postfix_str(f"loss {loss:.3f}, {meter.window_rate():,.0f} tok/s", refresh=False)
                if self.iter % a.eval_interval == 0 or self.iter == a.max_iters:
                    self._evaluate_and_save(meter.window_rate())
                    meter.new_window()
        except KeyboardInterrupt:
            raise TrainingInterrupted(f"Ctrl-C at iter {self.iter}; {self._last_saved()}: "
                                      "continue with --resume") from None
        except NonFiniteLoss as e:
            raise NonFiniteLoss(f"{e}: training stopped; {self._last_saved()} (the last good one): resume "
                                "from it with a lower --lr (and --min-lr) or --grad-clip, or restart with "
                                "another --seed") from None
        except MemoryError:
            raise self._out_of_memory(f"training at iter {self.iter}", f"; {self._last_saved()}") from None
        finally:
            bar.close()
        return self._report()

    @property
    def tokens_per_step(self):
        a = self.args
        return a.batch_size * a.block_size * a.grad_accum * self.world.size   # all ranks

    def _print_start(self):
        a, tokens_per_step = self.args, self.tokens_per_step
        self.print(f"data: {a.data} ({a.tokenizer}-level, vocab {self.tokenizer.vocab_size}) | "
                   f"train {len(self.splits['train']):,} tokens | valid {len(self.splits['valid']):,} tokens")
        self.print(f"model: {a.model}, {self.model.num_parameters() / 1e6:.2f} M parameters, {a.dtype} "
                   f"on {backend.get_backend()} | {tokens_per_step:,} tokens per step")
        self.print(f"unigram baseline: valid ppl {self.unigram_ppl:.2f} (a model must beat this)")
        if self.saved_iter is not None:
            self.print(f"resumed from {self.ckpt_path} at iter {self.iter}")
            if a.max_iters > max(a.lr_decay_iters, self.iter):
                self.print(f"note: the cosine schedule of this run reaches --min-lr at iter {a.lr_decay_iters} "
                           f"(--lr-decay-iters, stored); iters {a.lr_decay_iters + 1}..{a.max_iters} train at "
                           f"{a.min_lr:g}. Give --lr-decay-iters to decay over the longer run instead")

    def _progress_bar(self):
        from tqdm import tqdm
        a = self.args
        return tqdm(total=max(a.max_iters, self.iter), initial=self.iter, leave=False, unit="it",
                    disable=None if self.verbose else True, dynamic_ncols=True)

    def _last_saved(self):
        if self.saved_iter is None:
            return "no checkpoint was written"
        return f"the checkpoint {self.ckpt_path} holds iter {self.saved_iter}"

    def _report(self):
        e, a = self.last_eval, self.args
        wall = time.perf_counter() - self.t_start
        tps = self.throughput()
        result = {"iter": self.iter, "train_loss": e["train_loss"], "val_loss": e["val_loss"],
                  "val_ppl": e["val_ppl"], "best_val_loss": self.best_val_loss,
                  "unigram_ppl": self.unigram_ppl, "peak_mem_bytes": self.peak_mem,
                  "tokens_per_s": tps, "wall_s": wall, "n_params": self.model.num_parameters(),
                  "ckpt": str(self.ckpt_path)}
        tps_text = "n/a tok/s" if tps is None else f"{tps:,.0f} tok/s"
        self.print(f"final: iter {self.iter} | val loss {e['val_loss']:.4f} | val ppl {e['val_ppl']:.2f} "
                   f"({a.tokenizer}-level) | unigram ppl {self.unigram_ppl:.2f} | peak mem "
                   f"{_fmt_bytes(self.peak_mem)} | {tps_text} | {_fmt_time(wall)}")
        return result


def train(args, verbose=True):
    """Train (or resume) as `args` says (from `parse_args` or `make_args`) -> final metrics:
    iter, train_loss, val_loss, val_ppl, best_val_loss, unigram_ppl, peak_mem_bytes,
    tokens_per_s, wall_s, n_params, ckpt."""
    return Trainer(args, verbose=verbose).run()


def main(argv=None):
    """The command line -> exit code (errors mapped by minims.cli.run_cli)."""
    def body(argv):
        train(parse_args(argv))
    return run_cli(body, argv)

