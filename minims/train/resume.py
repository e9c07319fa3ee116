"""A run's flags resolved against its folder, once; and a resumed run's state restored.

A checkpoint holds everything the loop depends on (weights, optimizer moments, iteration, RNG
states, the flags, the learning-rate schedule), so `--resume` continues bit for bit: a 20-step
run stopped at step 10 and resumed ends exactly like 20 steps straight. The cosine schedule's
horizon (--lr-decay-iters, by default --max-iters of the run's first start) is stored too:
raising --max-iters on resume extends the run at --min-lr, never restarts the decay; to decay
over the longer run, give --lr-decay-iters as well (the learning rate then changes from the
resume on). Flags that may change on resume are flags.RESUMABLE; any other flag given must
equal the checkpoint's. A checkpoint written by N ranks resumes on another number of ranks
when that number divides its micro-batches per step (`reshard`). (ours)
"""
import argparse
import math
from pathlib import Path

from .. import backend
from ..errors import CheckpointError, DataError, UsageError
from .flags import RESUMABLE, args_dict, check_args, model_options, parse_args, same_json


def resolve(args, folder, world):
    """The run's flags, once -> (args, checkpoint or None, a re-sharding note or None).

    A new run must not replace a checkpoint or an earlier run's log without --overwrite; its
    schedule's horizon is fixed now. A resumed run takes the checkpoint's flags with the ones
    given now (`merge_resume_args`), re-sharded to this number of ranks, then checked. Either
    way --data is stored resolved (an absolute path), so a run resumes from any folder."""
    ckpt, note = None, None
    if args.resume:
        if not folder.has_checkpoint():
            raise CheckpointError(f"{folder.ckpt_path}: no checkpoint to resume (check --out-dir, or "
                                  "drop --resume to start a new run)")
        ckpt = folder.load_checkpoint()
        try:
            note = reshard(ckpt["header"], world.size, folder.ckpt_path)
            args = merge_resume_args(args, ckpt["header"], folder.ckpt_path)
        except (KeyError, TypeError) as e:
            raise CheckpointError(f"{folder.ckpt_path}: not a training checkpoint (no {e} in it)") from None
        check_args(args)
    else:
        if folder.has_checkpoint() and not args.overwrite:
            raise UsageError(f"{folder.path} already holds a checkpoint ({folder.ckpt_path.name}): continue "
                             "it with --resume, replace it with --overwrite, or choose another --out-dir")
        logged = max(folder.logged_iters(), default=0)
        if logged > 0 and not args.overwrite:       # a run's records whose checkpoint is gone
            raise UsageError(f"{folder.log_path} holds the records of an earlier run (up to iter "
                             f"{logged}) but there is no checkpoint to continue: replace them with "
                             "--overwrite, or choose another --out-dir")
        args = argparse.Namespace(**vars(args))
        if args.lr_decay_iters is None:             # the schedule's horizon, stored for every resume
            args.lr_decay_iters = max(args.max_iters, 1)
    args.data = resolved_data(args.data)
    return args, ckpt, note


def merge_resume_args(args, header, path):
    """The checkpoint's arguments, with the resumable flags given now; a flag given now that
    would change the model, the data or the optimisation is an error."""
    stored, config = header["args"], header["model"]["config"]
    merged = {**args_dict(parse_args([])), **stored}   # flags newer than the checkpoint: defaults
    for k in sorted(args._given):
        now = getattr(args, k)
        if k in RESUMABLE:
            merged[k] = now
            continue
        if k == "model":
            then = header["model"]["model"]
        elif k in config:
            then = config[k]
        else:
            then = stored.get(k, "(not set)")
        if not same_json(now, then):
            raise CheckpointError(f"{path}: --{k.replace('_', '-')} {now} does not match the checkpoint's "
                                  f"{then}; drop the flag to resume, or start a new run in another --out-dir")
    if merged.get("lr_decay_iters") is None:
        # a checkpoint from before the horizon was stored: its run decayed over its --max-iters
        merged["lr_decay_iters"] = max(int(stored.get("max_iters", merged["max_iters"])), 1)
    if "data" not in args._given and merged["data"] != "austen" and not Path(merged["data"]).is_absolute():
        # written before --data was stored resolved: relative to the folder that run started in
        if not Path(merged["data"]).expanduser().exists():
            raise DataError(f"{merged['data']}: the checkpoint's --data, a path relative to the folder "
                            "the run started in, is not found from here; give --data with its path")
    resumed = argparse.Namespace(**merged)
    resumed._given = set(args._given) | (set(stored) & set(model_options()))
    return resumed


def resolved_data(data):
    """--data as stored: 'austen', or the absolute path (so a run resumes from any folder)."""
    if data == "austen":
        return data
    return str(Path(data).expanduser().resolve())


def reshard(header, size, path):
    """Adapt a checkpoint's header (in place) to `size` ranks -> a note (str) if it changed.

    A run of N ranks with --grad-accum g takes g·N micro-batches per step; on `size` ranks the
    same run needs --grad-accum g·N/size, exact as long as `size` divides g·N. Otherwise a
    CheckpointError says why and which numbers of ranks would work."""
    then = int(header.get("world_size", 1))
    if then == size:
        return None
    g = int(header["args"]["grad_accum"])
    total = g * then
    if total % size:
        divisors = [n for n in range(1, total + 1) if total % n == 0]
        raise CheckpointError(f"{path}: the checkpoint's run takes {total} micro-batches per step "
                              f"({then} rank(s) x --grad-accum {g}); {size} ranks cannot split them "
                              f"evenly, so the run would change: resume on {divisors} ranks")
    header["args"]["grad_accum"] = total // size
    return (f"re-sharded: the checkpoint was written by {then} rank(s) with --grad-accum {g}; on {size} "
            f"rank(s) each takes --grad-accum {total // size}, the same {total} micro-batches per step")


def restore(trainer, ckpt):
    """Continue `trainer` from the checkpoint: the same text (tokenizer and token ids), then the
    weights, optimizer moments, RNG states, iteration and best valid loss; the log is cut back
    to the checkpoint. CheckpointError when the text changed or the state does not fit."""
    header, path, data = ckpt["header"], trainer.folder.ckpt_path, trainer.args.data
    stored = header.get("args", {}).get("data")
    before = "" if stored in (None, data) else f" (written with --data {stored})"
    changed = "the text or its split changed" + (
        "" if (stored == "austen") == (data == "austen") else
        " ('austen' is split by book, a file or folder 90/5/5 by position: even a copy of the "
        "shipped novels splits otherwise)")
    if not same_json(trainer.tokenizer.to_dict(), header["tokenizer"]):
        raise CheckpointError(f"{path}: the tokenizer fitted on --data {data} differs from the "
                              f"checkpoint's{before}: {changed}; start a new run")
    if header.get("data_sha256") != trainer.data_digest:
        raise CheckpointError(f"{path}: --data {data} gives other token ids than when the "
                              f"checkpoint was written{before}: {changed}; start a new run")
    try:
        trainer.model.load_state_dict(ckpt["model"])
        trainer.optimizer.load_state_dict(ckpt["optim"])
        trainer.batch_rng.bit_generator.state = header["rng"]["batch"]
        backend.set_rng_state(header["rng"]["backend"])
    except (ValueError, KeyError, TypeError) as e:
        raise CheckpointError(f"{path}: checkpoint does not fit the model it describes ({e})") from None
    trainer.iter = int(header["iter"])
    trainer.elapsed_before = float(header.get("elapsed_s", 0.0))      # (older checkpoints: not stored)
    best = header.get("best_val_loss")
    trainer.best_val_loss = math.inf if best is None else float(best)
    trainer.folder.resume_at(trainer.iter)          # OUT_DIR is rank 0's
