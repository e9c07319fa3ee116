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

Model-specific flags (e.g. `--pool`) are not written here: they are made from the config
dataclass of every registered model (each field a model's config adds to ModelConfig becomes a
flag, its type taken from its default and its help from the field's metadata), so a new model
appears in --help with no change to this file.

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
import dataclasses
import hashlib
import json
import math
import os
import sys
import time
import weakref
from pathlib import Path

import numpy as np

from . import backend
from . import checkpoint, distributed, files, footprint
from .data import get_batch, prepare, unigram_ppl
from .engine import no_grad
from .errors import CheckpointError, DataError, MinimsError, OutOfMemory, UsageError, file_error, run_cli
from .models import MODELS, ModelConfig, canonical_name
from .optim import AdamW, clip_grad_norm, cosine_lr

BASE_FIELDS = [f.name for f in dataclasses.fields(ModelConfig)]
# Flags that may change when resuming: they steer the run (how long, how often it is
# evaluated, where files go) or are the remedies for a diverging run (a lower --lr, a tighter
# --grad-clip). --data may name the same text by another path (its token ids are checked).
# Every other flag given with --resume must equal the checkpoint's value.
RESUMABLE = {"backend", "max_iters", "lr_decay_iters", "eval_interval", "eval_iters",
             "out_dir", "cache_dir", "resume", "overwrite", "lr", "min_lr", "grad_clip", "data"}
LOG_NAME, CONFIG_NAME = "log.jsonl", "config.json"


class NonFiniteLoss(MinimsError, RuntimeError):
    """The loss (or the gradient norm) became NaN or infinite (exit code 3)."""
    exit_code = 3


class TrainingInterrupted(MinimsError, RuntimeError):
    """Ctrl-C during training; the message says where the last checkpoint is (exit code 130)."""
    exit_code = 130
    label = "interrupted"


def _flag(name):
    return "--" + name.replace("_", "-")


# ---------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------

class _HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Keep the description's layout and show every default, except None (said in the help)."""

    def _get_help_string(self, action):
        if action.default is None:
            return action.help
        return super()._get_help_string(action)


def model_options():
    """{field name: [(model name, dataclasses.Field), ...]} for each field that a registered
    model's config adds to ModelConfig: the model-specific flags."""
    options = {}
    for name, cls in MODELS.items():
        for f in dataclasses.fields(cls.Config):
            if f.name not in BASE_FIELDS:
                options.setdefault(f.name, []).append((name, f))
    return options


def _field_default(f):
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return None


def _auto(text):
    """A value of a flag whose model default is None: none / int / float / string."""
    if text.lower() == "none":
        return None
    for convert in (int, float):
        try:
            return convert(text)
        except ValueError:
            pass
    return text


def _add_model_option(group, name, users):
    """One flag for config field `name`, shared by the models in `users`; no argparse default
    (SUPPRESS), so an absent flag leaves the model's own default in place."""
    defaults = {model: _field_default(f) for model, f in users}
    known = [d for d in defaults.values() if d is not None]
    sample = known[0] if known else None
    kwargs = {}
    if isinstance(sample, bool):
        kwargs["action"] = argparse.BooleanOptionalAction
    elif isinstance(sample, (tuple, list)):
        kwargs.update(nargs="+", type=type(sample[0]) if sample else _auto)
    elif isinstance(sample, (int, float)):
        kwargs["type"] = float if any(isinstance(d, float) for d in known) else int
    elif isinstance(sample, str):
        kwargs["type"] = str
    else:
        kwargs["type"] = _auto
    for _, f in users:
        if "choices" in f.metadata:
            kwargs["choices"] = f.metadata["choices"]
            break
    text = next((f.metadata["help"] for _, f in users if f.metadata.get("help")), name.replace("_", " "))
    shown = {repr(d) if isinstance(d, str) else str(d) for d in defaults.values()}
    if len(shown) == 1:
        default_text = f"default: {shown.pop()}"
    else:
        default_text = "defaults: " + ", ".join(f"{d!r} ({m})" for m, d in defaults.items())
    models = ", ".join(defaults)
    chosen = [f"{m}: {f.metadata['chosen_by']}" for m, f in users if f.metadata.get("chosen_by")]
    if chosen:   # which row of `python -m minims.experiment ablate` made each default
        default_text += "; chosen by the ablation rows " + ", ".join(chosen)
    help_text = f"{text} [model{'s' if len(defaults) > 1 else ''}: {models}; {default_text}]"
    group.add_argument("--" + name.replace("_", "-"), dest=name, default=argparse.SUPPRESS,
                       help=help_text.replace("%", "%%"), **kwargs)


def _model_name(text):
    try:
        return canonical_name(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def build_parser():
    p = argparse.ArgumentParser(prog="python -m minims.train", formatter_class=_HelpFormatter,
                                description=__doc__.split("\n\n")[0] + "\n\n" + __doc__.split("\n\n")[1],
                                epilog="\n\n".join(__doc__.split("\n\n")[-2:]))
    g = p.add_argument_group("run")
    g.add_argument("--backend", choices=backend.BACKENDS, default=os.environ.get("MINIMS_BACKEND") or "numpy",
                   help="array library: numpy (CPU) or cupy (NVIDIA GPU; pip install -e '.[cuda12]')")
    g.add_argument("--out-dir", default="out", metavar="DIR", help="folder for ckpt.npz, log.jsonl and config.json")
    g.add_argument("--resume", action="store_true",
                   help="continue the run in --out-dir from its checkpoint. Flags that may change: "
                        + ", ".join(_flag(k) for k in sorted(RESUMABLE - {"resume", "overwrite"}))
                        + " (--data: the same text, perhaps by another path); every other flag "
                        "given must match the checkpoint")
    g.add_argument("--overwrite", action="store_true",
                   help="start a new run even if --out-dir already holds a checkpoint (it is replaced)")
    g.add_argument("--seed", type=int, default=0,
                   help="seeds the weights, the training batches and dropout")

    g = p.add_argument_group("data")
    g.add_argument("--data", default="austen", metavar="austen|PATH",
                   help="'austen' (shipped, split by book) or a path to a UTF-8 .txt file or a folder "
                        "of .txt files (split 90/5/5 by position). The text is read whole before "
                        "training: a named pipe must be written to the end and closed")
    g.add_argument("--tokenizer", choices=("char", "word"), default="char",
                   help="character level or word level (vocabulary fitted on the training split)")
    g.add_argument("--min-freq", type=int, default=2,
                   help="word tokenizer: words seen fewer times in training become <unk>")
    g.add_argument("--cache-dir", default=".cache", metavar="DIR", help="where tokenized corpora are cached")

    g = p.add_argument_group("model")
    g.add_argument("--model", type=_model_name, default="vanilla", metavar="NAME",
                   help=f"which model: {', '.join(MODELS)}")
    g.add_argument("--block-size", type=int, default=128, help="context length T in tokens")
    g.add_argument("--n-layer", type=int, default=4, help="number of transformer blocks")
    g.add_argument("--n-head", type=int, default=4, help="attention heads per block")
    g.add_argument("--n-embd", type=int, default=128, help="embedding width C")
    g.add_argument("--dropout", type=float, default=0.0, help="dropout probability")
    g.add_argument("--dtype", choices=("float32", "float64"), default="float32",
                   help="floating-point type of weights and activations")

    options = model_options()
    if options:
        g = p.add_argument_group("model-specific (each applies only to the models named in it)")
        taken = {a.dest for a in p._actions}
        for name, users in options.items():
            if name in taken:
                raise RuntimeError(f"config field {name!r} of model(s) {[m for m, _ in users]} clashes "
                                   f"with the trainer flag --{name.replace('_', '-')}: rename the field")
            _add_model_option(g, name, users)

    g = p.add_argument_group("optimization")
    g.add_argument("--batch-size", type=int, default=16,
                   help="sequences per micro-batch (on each rank under mpiexec)")
    g.add_argument("--grad-accum", type=int, default=1,
                   help="micro-batches per step (on each rank under mpiexec), each loss scaled by 1/N "
                        "(= one N times larger batch)")
    g.add_argument("--max-iters", type=int, default=1000, help="optimizer steps in total")
    g.add_argument("--lr", type=float, default=2e-3, help="peak learning rate (AdamW)")
    g.add_argument("--min-lr", type=float, default=2e-4, help="learning rate at the end of the cosine decay")
    g.add_argument("--warmup-iters", type=int, default=50, help="steps of linear warmup")
    g.add_argument("--lr-decay-iters", type=int, default=None,
                   help="step at which the cosine decay reaches --min-lr (default: --max-iters of "
                        "the run's first start; stored in the checkpoint)")
    g.add_argument("--weight-decay", type=float, default=0.1, help="AdamW decoupled weight decay (matrices only)")
    g.add_argument("--grad-clip", type=float, default=1.0, help="clip the global gradient norm (0: off)")

    g = p.add_argument_group("evaluation")
    g.add_argument("--eval-interval", type=int, default=200, help="evaluate and checkpoint every N steps")
    g.add_argument("--eval-iters", type=int, default=20,
                   help="batches per loss estimate (the same fixed batches at every evaluation)")
    for action in p._actions:   # short placeholders keep the usage line readable
        if action.metavar is None and action.choices is None and action.nargs is None:
            action.metavar = {int: "N", float: "X"}.get(action.type, action.metavar)
    return p


_UNSET = object()


def parse_args(argv=None):
    """Parse the command line; `args._given` is the set of flags given explicitly."""
    parser = build_parser()
    args = parser.parse_args(argv)
    # parse again into a namespace pre-filled with a marker: argparse fills in defaults only for
    # attributes that are missing, so whatever is not the marker came from the command line
    probe = argparse.Namespace(**{k: _UNSET for k in vars(parser.parse_args([]))})
    parser.parse_args(argv, namespace=probe)
    args._given = {k for k, v in vars(probe).items() if v is not _UNSET}
    return args


def make_args(**options):
    """The trainer's arguments for code: defaults of the command line, overridden by `options`
    (Python names: `make_args(model="top-down", max_iters=100, pool=4)`)."""
    args = parse_args([])
    valid = {k for k in vars(args) if not k.startswith("_")} | set(model_options())
    unknown = sorted(set(options) - valid)
    if unknown:
        raise UsageError(f"unknown training option(s) {unknown}; valid: {sorted(valid)}")
    if "model" in options:
        try:
            options["model"] = canonical_name(options["model"])
        except ValueError as e:
            raise UsageError(str(e)) from None
    vars(args).update(options)
    args._given = set(options)
    return args


def _check_args(args):
    """Range checks for the trainer's own flags (the model's config checks its own) ->
    UsageError naming the flag."""
    positive = ("block_size", "batch_size", "grad_accum", "eval_interval", "eval_iters",
                "n_layer", "n_head", "n_embd", "min_freq")
    for name in positive:
        if getattr(args, name) < 1:
            raise UsageError(f"{_flag(name)} must be at least 1, got {getattr(args, name)}")
    for name in ("max_iters", "warmup_iters", "seed"):
        if getattr(args, name) < 0:
            raise UsageError(f"{_flag(name)} must be >= 0, got {getattr(args, name)}")
    for name in ("lr", "min_lr", "weight_decay", "grad_clip", "dropout"):
        value = getattr(args, name)
        if not (math.isfinite(value) and value >= 0):
            raise UsageError(f"{_flag(name)} must be a finite number >= 0, got {value}")
    if args.lr_decay_iters is not None and args.lr_decay_iters < 1:
        raise UsageError(f"--lr-decay-iters must be at least 1, got {args.lr_decay_iters}")
    if not str(args.data).strip():
        raise UsageError("--data is empty: give 'austen', a .txt file or a folder of .txt files")
    for name in ("out_dir", "cache_dir"):
        if getattr(args, name) is not None and not str(getattr(args, name)).strip():
            raise UsageError(f"{_flag(name)} is empty: give a folder")
    foreign = sorted(k for k in args._given if k in model_options()
                     and k not in {f.name for f in dataclasses.fields(MODELS[args.model].Config)})
    if foreign:
        users = {k: [m for m, _ in model_options()[k]] for k in foreign}
        flags = "; ".join(f"--{k.replace('_', '-')} is used by {', '.join(u)}" for k, u in users.items())
        raise UsageError(f"the {args.model} model takes no such option ({flags})")


def _model_kwargs(args):
    """The config values for build_model: the base fields, and the model-specific flags that
    were given (absent ones keep the model's own defaults)."""
    fields = {f.name for f in dataclasses.fields(MODELS[args.model].Config)}
    kwargs = {k: getattr(args, k) for k in BASE_FIELDS if k not in ("vocab_size", "block_size")}
    kwargs.update({k: getattr(args, k) for k in model_options() if k in fields and hasattr(args, k)})
    return {k: tuple(v) if isinstance(v, list) else v for k, v in kwargs.items()}


def _args_dict(args):
    return {k: v for k, v in vars(args).items() if not k.startswith("_")}


def _same(a, b):
    """Equal after a JSON round trip (tuples become lists in checkpoints)."""
    return json.loads(json.dumps(a)) == json.loads(json.dumps(b))


def _merge_resume_args(args, header, path):
    """The checkpoint's arguments, with the resumable flags given now; a flag given now that
    would change the model, the data or the optimisation is an error."""
    stored, config = header["args"], header["model"]["config"]
    merged = {**_args_dict(parse_args([])), **stored}   # flags newer than the checkpoint: defaults
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
        if not _same(now, then):
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


def _resolved_data(data):
    """--data as stored: 'austen', or the absolute path (so a run resumes from any folder)."""
    if data == "austen":
        return data
    return str(Path(data).expanduser().resolve())


def _model_config(args, vocab_size):
    """The model's config from the flags -> a UsageError when they are invalid or contradict
    each other (a flag the config overrides, e.g. --n-layer 7 with --layout 1-1)."""
    cls = MODELS[args.model]
    kwargs = _model_kwargs(args)
    try:
        config = cls.Config(vocab_size=vocab_size, block_size=args.block_size, **kwargs)
    except (ValueError, TypeError) as e:
        raise UsageError(f"the {args.model} model: {e}") from None
    # a field the config changed although it was given: another flag decided it (a layout
    # sets the depth and the number of scales); training anyway would ignore a flag silently
    given = {k: v for k, v in kwargs.items() if k in args._given and v not in ("", None)}
    changed = [k for k, v in given.items() if not _same(v, getattr(config, k))]
    if changed:
        deciding = [k for k in given if k not in changed and k in model_options()]
        by = " and ".join(f"{_flag(k)} {_show(given[k])}" for k in deciding) or "the other flags"
        said = ", ".join(f"{_flag(k)} {_show(given[k])}" for k in changed)
        sets = ", ".join(f"{k}={_show(getattr(config, k))}" for k in changed)
        raise UsageError(f"the {args.model} model: {said} conflicts with {by}, which gives {sets}; "
                         "drop one of them")
    return config


def _show(value):
    return " ".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)


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
    return "n/a" if n is None else f"{n / 2**20:.1f} MB"


def _nothing():
    pass


def _fmt_time(s):
    m, s = divmod(int(round(s)), 60)
    return f"{m}m{s:02d}s" if m else f"{s}s"


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
        if not args.resume:
            _check_args(args)                  # bad flags: refused before any folder is made
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
                args = _merge_resume_args(args, ckpt["header"], self.ckpt_path)
            except (KeyError, TypeError) as e:
                raise CheckpointError(f"{self.ckpt_path}: not a training checkpoint (no {e} in it)") from None
            backend.set_backend(args.backend)
            _check_args(args)
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
        args.data = _resolved_data(args.data)
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
            config = _model_config(args, V)
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
        self.peak_mem = None
        if ckpt is not None:
            self._restore(ckpt)
            if reshard_note:
                self.print(reshard_note)
        self.start_iter = self.iter
        self.saved_iter = self.iter if ckpt is not None else None
        self.train_time, self.train_tokens = 0.0, 0

    def _check_memory(self, config):
        """Refuse, before allocating, a run that cannot fit in the backend's free memory."""
        self.memory_estimate = footprint.training_bytes(config, self.args.batch_size)
        self.memory_free = footprint.available_bytes()
        if self.memory_free is not None and self.memory_estimate["total"] > self.memory_free:
            raise self._out_of_memory("planning the run")

    def _out_of_memory(self, doing, saved=""):
        free = "unknown" if self.memory_free is None else footprint.gib(self.memory_free)
        return OutOfMemory(f"not enough memory ({doing}): this model and batch need "
                           f"{footprint.describe(self.memory_estimate)} to train, {backend.get_backend()} has "
                           f"{free} free{saved}; use a smaller --n-embd, --n-layer, --block-size or "
                           "--batch-size")

    def _restore(self, ckpt):
        header, path = ckpt["header"], self.ckpt_path
        before = ("" if self.stored_data in (None, self.args.data) else
                  f" (written with --data {self.stored_data})")
        if not _same(self.tokenizer.to_dict(), header["tokenizer"]):
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
                  "args": _args_dict(a), "backend": backend.get_backend(), "world_size": self.world.size}
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
        config = {"args": _args_dict(self.args), "model": self.model.describe(),
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
        return self.train_tokens / self.train_time if self.train_time > 0 else None

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
            return self._run()
        finally:
            self.close()

    def _run(self):
        from tqdm import tqdm
        a = self.args
        self._write_config()
        tokens_per_step = a.batch_size * a.block_size * a.grad_accum * self.world.size   # all ranks
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
        bar = tqdm(total=max(a.max_iters, self.iter), initial=self.iter, leave=False, unit="it",
                   disable=None if self.verbose else True, dynamic_ncols=True)
        window_time, window_tokens, traced = 0.0, 0, True
        try:
            if self.saved_iter is None:
                self._evaluate_and_save(None)     # where we start: the loss should be about ln V
            elif self.iter >= a.max_iters:
                self.print(f"nothing to train: the checkpoint is at iter {self.iter}, --max-iters is "
                           f"{a.max_iters} (raise it to train further)")
                self._evaluate_and_save(None, save=False)
            while self.iter < a.max_iters:
                t0 = time.perf_counter()
                if traced:   # peak memory of one step (tracing every step would slow all of them)
                    with backend.track_memory() as mem:
                        loss = self.step()
                    self.peak_mem, traced = mem["peak"], False
                else:
                    loss = self.step()
                    backend.synchronize()
                dt = time.perf_counter() - t0
                if self.iter > self.start_iter + 1 or a.max_iters == self.start_iter + 1:
                    # the traced first step is slow: kept out of tokens/s unless it is all there is
                    self.train_time += dt
                    self.train_tokens += tokens_per_step
                    window_time += dt
                    window_tokens += tokens_per_step
                bar.update(1)
                if window_time:
                    bar.set_postfix_str(f"loss {loss:.3f}, {window_tokens / window_time:,.0f} tok/s",
                                        refresh=False)
                if self.iter % a.eval_interval == 0 or self.iter == a.max_iters:
                    self._evaluate_and_save(window_tokens / window_time if window_time else None)
                    window_time, window_tokens = 0.0, 0
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
    """The command line -> exit code (errors mapped by minims.errors.run_cli)."""
    def body(argv):
        train(parse_args(argv))
    return run_cli(body, argv)


if __name__ == "__main__":
    sys.exit(distributed.launch(main))
