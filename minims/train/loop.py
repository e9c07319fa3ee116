"""The training loop: `train_step` (one optimizer step) and `Trainer.run` (nanoGPT's loop).

One loop for every model: random windows from the training split, AdamW with warmup + cosine
learning rate, gradient clipping on the global norm, gradient accumulation, and an evaluation
of train and valid loss every --eval-interval steps. Each evaluation appends a line to
OUT_DIR/log.jsonl and writes OUT_DIR/ckpt.npz (minims/train/run_folder.py), from which
`--resume` continues bit for bit (minims/train/resume.py). Everything a run needs is made
before (minims/train/pipeline.py): a Trainer only runs.

Failures end the loop with one line (minims/errors.py): a NaN or infinite loss exits 3
(training stopped, the last good checkpoint kept), Ctrl-C exits 130 (continue with --resume;
before the first checkpoint, run the same command again), a MemoryError is told with the run's
memory estimate (exit 2).
"""
import math
import time

import numpy as np

from .. import backend
from ..data import get_batch
from ..engine import no_grad
from ..errors import MinimsError
from ..optim import clip_grad_norm, cosine_lr, grad_squares
from .meter import Console, StepMeter


class NonFiniteLoss(MinimsError, RuntimeError):
    """The loss (or the gradient norm) became NaN or infinite (exit code 3)."""
    exit_code = 3


class TrainingInterrupted(MinimsError, RuntimeError):
    """Ctrl-C during training; the message says where the last checkpoint is (exit code 130)."""
    exit_code = 130
    label = "interrupted"


def train_step(model, optimizer, batches, lr, grad_clip=None, reduce=None):
    """One optimizer step on `batches` = [(x, y), ...] -> the mean loss (a float).

    Each micro-batch's loss is scaled by 1/len(batches) before backward and the gradients add
    up in `.grad`, so N micro-batches of b sequences make the same update as one batch of N·b
    (the loss is a mean over tokens). A NaN or infinite loss or gradient raises NonFiniteLoss
    before the weights are touched. `reduce(params, loss) -> loss`, if given, averages the
    gradients and the loss over data-parallel ranks before the check (minims/train/distributed.py).
    """
    optimizer.zero_grad()
    scale = 1.0 / len(batches)
    total = 0.0
    for x, y in batches:
        _, loss = model(x, y)
        (loss * scale).backward()
        total = total + loss.data * scale        # left on the device: read once, below
    if reduce is not None:
        total = reduce(optimizer.params, total)
    # the step's one device → host read (each makes the host wait for the GPU): the loss and
    # every gradient's sum of squares, together
    total, *squares = backend.to_floats([total, *grad_squares(optimizer.params)])
    if not math.isfinite(total):
        raise NonFiniteLoss(f"loss is {total}")
    norm = clip_grad_norm(optimizer.params, grad_clip, squares)
    if not math.isfinite(norm):
        raise NonFiniteLoss(f"gradient norm is {norm} (loss {total:.4f})")
    optimizer.lr = lr
    optimizer.step()
    return total


class Trainer:
    """A run, made by `setup` (minims/train/pipeline.py): its flags, model, optimizer, data, run
    folder and data-parallel world, at iteration `iter` (0, or the resumed checkpoint's).

    `run()` trains to --max-iters and returns the final metrics, releasing OUT_DIR at the end
    (`close()` releases it without running); `evaluate()` is one loss estimate, `save()` one
    checkpoint."""

    def __init__(self, args, model, optimizer, data, folder, world, memory_plan, verbose=True,
                 started=None, threads=None):
        self.args, self.model, self.optimizer, self.folder, self.world = args, model, optimizer, folder, world
        self.tokenizer, self.splits = data.tokenizer, data.splits
        self.unigram_ppl, self.data_digest = data.unigram_ppl, data.digest
        self.memory_plan, self.console = memory_plan, Console(verbose and world.is_root)
        self.started = time.perf_counter() if started is None else started
        self.threads = threads         # the BLAS threads (minims/threads.py's BlasThreads), or None
        # three independent streams from one seed: training batches, eval batches, dropout
        self.batch_rng = np.random.default_rng([args.seed, 0])
        backend.manual_seed([args.seed, 2])
        self.iter, self.best_val_loss, self.last_eval = 0, math.inf, None
        self.elapsed_before = 0.0      # seconds of the earlier sittings of a resumed run, to its checkpoint
        self.tokens_per_step = args.batch_size * args.block_size * args.grad_accum * world.size  # all ranks

    def lr_at(self, it):
        a = self.args
        return cosine_lr(it, a.lr, a.min_lr, a.warmup_iters, a.lr_decay_iters)

    # a diverging run is caught by the finiteness checks (train_step, record); NumPy's own
    # overflow warnings on the way there would only bury that one line
    @np.errstate(over="ignore", invalid="ignore", divide="ignore")
    def run(self):
        """The training loop, top to bottom -> the final metrics (see `result`)."""
        a, world, folder = self.args, self.world, self.folder
        start, fresh = self.iter, folder.saved_iter is None   # a new run is evaluated at iter 0 too
        meter = self.meter = StepMeter(self.tokens_per_step, only_step=a.max_iters == start + 1)
        self.console.start(self, resumed_from=None if fresh else folder.ckpt_path)
        try:
            if not fresh and self.iter >= a.max_iters:        # nothing to train: say where it stands
                self.console.evaluation(self.record(self.evaluate(), None))
            while True:
                # evaluate, log and save: a new run at its start, every --eval-interval steps, at the end
                if (self.iter > start or fresh) and (self.iter % a.eval_interval == 0 or self.iter == a.max_iters):
                    record = self.record(self.evaluate(), meter.window_rate())
                    # the log line first, then the checkpoint: a resume drops log lines past the
                    # checkpoint, so a kill between the two never leaves a line without its state
                    folder.append_log(record)
                    self.save()
                    self.console.evaluation(record)
                    if self.threads:     # --threads auto: re-decided from the other work since the last time
                        self.threads.recheck(self.console.print)
                    meter.new_window()
                if self.iter >= a.max_iters:
                    break
                # one step: every rank draws all --grad-accum x ranks micro-batches from the shared
                # batch RNG and runs its own share (minims/train/distributed.py)
                batches = world.share([get_batch(self.splits["train"], a.batch_size, a.block_size, self.batch_rng)
                                       for _ in range(a.grad_accum * world.size)])
                with meter.step(), world.rank_stream(backend.global_rng(), self.model, batches):
                    try:
                        loss = train_step(self.model, self.optimizer, batches, self.lr_at(self.iter), a.grad_clip,
                                          reduce=world.allreduce_grads)
                    except NonFiniteLoss as e:
                        raise NonFiniteLoss(f"{e} at step {self.iter + 1}") from None
                self.iter += 1
                self.console.progress(loss, meter)
        except KeyboardInterrupt:
            raise TrainingInterrupted(f"Ctrl-C at iter {self.iter}; {folder.last_saved()}: "
                                      f"{folder.how_to_continue()}") from None
        except NonFiniteLoss as e:
            if folder.saved_iter is None:
                raise NonFiniteLoss(f"{e}: training stopped before the first checkpoint: run again with a "
                                    "lower --lr (and --min-lr) or --grad-clip, or another --seed") from None
            raise NonFiniteLoss(f"{e}: training stopped; {folder.last_saved()} (the last good one): resume "
                                "from it with a lower --lr (and --min-lr) or --grad-clip, or restart with "
                                "another --seed") from None
        except MemoryError:
            raise self.memory_plan.error(f"training at iter {self.iter}", f"; {folder.last_saved()}") from None
        finally:
            self.close()
        return self.result()

    def evaluate(self):
        """Mean loss on --eval-iters batches of train and of valid, in eval mode, no graph.

        The batches come from their own fixed-seed generators: every evaluation sees the same
        windows (comparable numbers) and the training RNG is never touched. Under mpiexec each
        rank computes its share of the batches and the sums are added.
        """
        a = self.args
        losses = {}
        with self.model.eval_mode(), no_grad():
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

    def record(self, losses, tokens_per_s):
        """The log record of an evaluation at this iteration (NonFiniteLoss if a loss is NaN or
        infinite); keeps the best valid loss."""
        train_loss, val_loss = losses["train"], losses["valid"]
        if not (math.isfinite(train_loss) and math.isfinite(val_loss)):
            raise NonFiniteLoss(f"evaluation loss is {val_loss if math.isfinite(train_loss) else train_loss} "
                                f"at iter {self.iter}")
        self.best_val_loss = min(self.best_val_loss, val_loss)
        self.last_eval = {"iter": self.iter, "train_loss": train_loss, "val_loss": val_loss,
                          "val_ppl": math.exp(val_loss), "lr": self.lr_at(max(self.iter - 1, 0)),
                          "tokens_per_s": tokens_per_s, "peak_mem_bytes": self.meter.peak_mem,
                          "elapsed_s": self.elapsed()}
        return self.last_eval

    def elapsed(self):
        """Seconds the run has taken so far, over all its sittings: a resumed run counts on from
        its checkpoint's time (the time between that checkpoint and a crash is not counted)."""
        return self.elapsed_before + time.perf_counter() - self.started

    def save(self):
        """A checkpoint of this iteration: everything the loop depends on (minims/checkpoint.py)."""
        header = {"model": self.model.describe(), "iter": self.iter,
                  "best_val_loss": None if math.isinf(self.best_val_loss) else self.best_val_loss,
                  "tokenizer": self.tokenizer.to_dict(), "data_sha256": self.data_digest,
                  "rng": {"batch": self.batch_rng.bit_generator.state, "backend": backend.get_rng_state()},
                  "args": {k: v for k, v in vars(self.args).items() if not k.startswith("_")},
                  "backend": backend.get_backend(), "world_size": self.world.size, "elapsed_s": self.elapsed()}
        self.world.check_same_weights(self.model.parameters())
        self.folder.save(header, self.model, self.optimizer)      # rank 0 writes; its error is every rank's
        return self.folder.ckpt_path

    def result(self):
        """The final metrics of the run (the last evaluation's), printed in one line."""
        e = self.last_eval
        result = {"iter": self.iter, "train_loss": e["train_loss"], "val_loss": e["val_loss"],
                  "val_ppl": e["val_ppl"], "best_val_loss": self.best_val_loss,
                  "unigram_ppl": self.unigram_ppl, "peak_mem_bytes": self.meter.peak_mem,
                  "tokens_per_s": self.meter.rate(), "wall_s": time.perf_counter() - self.started,
                  "n_params": self.model.num_parameters(), "ckpt": str(self.folder.ckpt_path)}
        self.console.final(result, self.args.tokenizer)
        return result

    def close(self):
        """Release OUT_DIR (run() ends with it)."""
        self.console.close()
        self.folder.close()
