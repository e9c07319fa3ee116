"""The trainer's set-up, one way, top to bottom: parse → open the run folder → resolve the flags
against a checkpoint once → set the backend → data → model → `Trainer(...)`, then `run()`.

`main` is the command line; `train(args)` and `setup(args)` are the same for code (experiments,
lessons): `train(make_args(max_iters=200, model="top-down"))` returns the final metrics, and
`setup(args)` the Trainer, ready to run, whose model and data can be looked at afterwards.
"""
import hashlib
import time
from dataclasses import dataclass

import numpy as np

from .. import allocator, backend, memory, threads
from ..cli import run_cli
from ..data import prepare, unigram_ppl
from ..errors import CheckpointError, DataError, OutOfMemory, UsageError
from ..models import MODELS, canonical_name
from ..optim import AdamW
from . import distributed
from .flags import args_dict, check_args, model_config, parse_args
from .loop import Trainer
from .resume import resolve, restore
from .run_folder import RunFolder


def main(argv=None):
    """The command line -> exit code (errors mapped by minims.cli.run_cli)."""
    def body(argv):
        train(parse_args(argv))
    return run_cli(body, argv)


def train(args, verbose=True):
    """Train (or resume) as `args` says (from `parse_args` or `make_args`) -> final metrics:
    iter, train_loss, val_loss, val_ppl, best_val_loss, unigram_ppl, peak_mem_bytes,
    tokens_per_s, wall_s, n_params, ckpt."""
    return setup(args, verbose).run()


def setup(args, verbose=True):
    """Everything before the first step -> a Trainer ready to `run()`. It holds OUT_DIR's lock
    from here until `run()` ends (or `trainer.close()`); bad flags, data or checkpoints are
    refused on the way (one-line errors, minims/errors.py), before any step is taken."""
    started, world = time.perf_counter(), distributed.current()
    if args.resume and args.overwrite:
        raise UsageError("--resume continues the run in --out-dir, --overwrite replaces it: give one "
                         "of them")
    if not args.resume:
        check_args(args)                           # a new run's flags: refused before any folder is made
    try:                     # --threads: this start's, never the checkpoint's (a machine's matter)
        threads_setting = threads.parse_threads(getattr(args, "threads", "auto"))
    except ValueError as e:
        raise UsageError(f"--threads: {e}") from None
    folder = RunFolder(args.out_dir, world)        # made if missing, and locked
    try:
        args, ckpt, note = resolve(args, folder, world)
        args.threads = threads_setting
        backend.set_backend(args.backend)          # before any array is made
        allocator.reuse_freed_memory()             # a faster step (see its docstring)
        world.start_run(args.backend)
        blas = threads.apply_threads(threads_setting, threads.product_size(args.batch_size * args.block_size,
                                                                           args.n_embd), ranks=world.local_size)
        data = load_data(args, world)
        model_class, config = model_config_of(args, data.tokenizer.vocab_size, ckpt, folder)
        plan = MemoryPlan(config, args.batch_size)     # refused here if it cannot fit
        try:
            model = model_class(config)
            optimizer = AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
        except MemoryError:
            raise plan.error("building the model") from None
        trainer = Trainer(args, model, optimizer, data, folder, world, plan, verbose, started, blas)
        if ckpt is not None:
            restore(trainer, ckpt)
            if note:
                trainer.console.print(note)
        folder.write_config({"args": args_dict(args), "model": model.describe(),
                             "n_params": model.num_parameters(), "vocab_size": data.tokenizer.vocab_size,
                             "tokens": {s: len(v) for s, v in data.splits.items()},
                             "unigram_val_ppl": data.unigram_ppl, "world_size": world.size})
        return trainer
    except BaseException:
        folder.close()
        raise


@dataclass
class RunData:
    """The text of a run as token ids: its tokenizer, the train/valid/test splits, the unigram
    baseline's valid perplexity, and a digest of the ids (a resume checks the text is the same)."""
    tokenizer: object
    splits: dict
    unigram_ppl: float
    digest: str


def load_data(args, world):
    """--data tokenized (and cached), checked to be long enough for --block-size, the same on
    every rank."""
    tokenizer, splits = prepare(args.data, args.tokenizer, cache_dir=args.cache_dir, min_freq=args.min_freq)
    for split in ("train", "valid"):
        if len(splits[split]) <= args.block_size:
            raise DataError(f"{args.data}: the {split} split has {len(splits[split])} tokens, "
                            f"too few for --block-size {args.block_size}; use a longer text or a "
                            "smaller --block-size")
    data = RunData(tokenizer, splits, unigram_ppl(splits["train"], splits["valid"], tokenizer.vocab_size),
                   data_digest(splits))
    world.agree("the token ids of --data (every host needs the same files)", data.digest)
    return data


def data_digest(splits):
    """A short digest of the token ids of the three splits (a resume checks the text is the same)."""
    h = hashlib.sha256()
    for s in ("train", "valid", "test"):
        h.update(np.ascontiguousarray(splits[s]).tobytes())
    return h.hexdigest()[:20]


def model_config_of(args, vocab_size, ckpt, folder):
    """(model class, config): from the flags for a new run, from the checkpoint on resume."""
    if ckpt is None:
        return MODELS[args.model], model_config(args, vocab_size)
    description = ckpt["header"]["model"]
    try:
        cls = MODELS[canonical_name(description["model"])]
        return cls, cls.Config(**description["config"])
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{folder.ckpt_path}: checkpoint describes no usable model ({e})") from None


class MemoryPlan:
    """The memory a run needs (minims/memory.py's estimate) against what the backend has free:
    a run that cannot fit is refused before anything is allocated, and a MemoryError later
    gives the same numbers (`error`)."""

    def __init__(self, config, batch_size):
        self.estimate = memory.training_bytes(config, batch_size)
        self.free = memory.available_bytes()
        if self.free is not None and self.estimate["total"] > self.free:
            raise self.error("planning the run")

    def error(self, doing, saved=""):
        free = "unknown" if self.free is None else memory.gib(self.free)
        return OutOfMemory(f"not enough memory ({doing}): this model and batch need "
                           f"{memory.describe(self.estimate)} to train, {backend.get_backend()} has "
                           f"{free} free{saved}; use a smaller --n-embd, --n-layer, --block-size or "
                           "--batch-size")
