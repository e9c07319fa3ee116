"""The trainer's command line: its --help text, its flags, parsing and checking them.

`python -m minims.train` calls `parse_args`; code calls `make_args(**options)` (the same
defaults). Model-specific flags (e.g. `--pool`) are not written here: they are made from the
config dataclass of every registered model (each field a model's config adds to ModelConfig
becomes a flag, its type taken from its default, an int, float or str, and its help and choices
from the field's metadata, minims/models/multiscale.py's `option`), so a new model appears in
--help with no change to this file. How the flags meet a checkpoint on --resume (which may
change) is minims/train/resume.py.
"""
import argparse
import dataclasses
import json
import math

from .. import backend
from ..cli import ArgumentParser, HelpFormatter, env_default
from ..errors import UsageError
from ..models import MODELS, ModelConfig, canonical_name
from ..threads import add_threads_flag

# --help: what the command does (above the flags) and how it runs and fails (below them)
DESCRIPTION = """The trainer: `python -m minims.train` trains any registered model on Austen or your own text.

    python -m minims.train                                  # char-level vanilla model on Austen
    python -m minims.train --model top-down --pool 4        # a multi-scale model (flags from its config)
    python -m minims.train --resume                         # continue the run in --out-dir exactly
    python -m minims.train --backend cupy                   # on an NVIDIA GPU"""

EPILOG = """Several processes: `mpiexec -n N python -m minims.train --batch-size b ...` trains data-parallel
(minims/train/distributed.py). N ranks with --batch-size b make exactly the update of one process
with --batch-size b --grad-accum N (with --grad-accum g: of g*N), to rounding: rank r computes the
micro-batches r*g ... r*g+g-1 that one process would, and one Allreduce averages the gradients.
Evaluation is split over the ranks and summed. Rank 0 alone creates, locks and writes OUT_DIR
and prints; the checkpoint records the number of ranks, and --resume on another number N'
re-shards exactly (--grad-accum g*N/N' per rank) or refuses when N' does not divide g*N. With
--threads auto each rank's BLAS gets its share of the host's idle cores (minims/threads.py).
An error every rank meets ends the run as below; a rank failing alone stops all (MPI_Abort).

Exit codes: 0 done; 2 a usage, data, backend, checkpoint, file-system or memory error (one
line on stderr; minims/errors.py); 3 the loss became NaN or infinite (training stopped, the
last good checkpoint is kept); 130 interrupted with Ctrl-C (the last checkpoint is kept;
continue with --resume). A traceback means a bug in minims: please report it."""

BASE_FIELDS = [f.name for f in dataclasses.fields(ModelConfig)]
# Flags that may change when resuming: they steer the run (how long, how often it is
# evaluated, where files go) or are the remedies for a diverging run (a lower --lr, a tighter
# --grad-clip). --data may name the same text by another path (its token ids are checked).
# Every other flag given with --resume must equal the checkpoint's value.
RESUMABLE = {"backend", "max_iters", "lr_decay_iters", "eval_interval", "eval_iters",
             "out_dir", "cache_dir", "resume", "overwrite", "lr", "min_lr", "grad_clip", "data",
             "threads"}


def _flag(name):
    return "--" + name.replace("_", "-")


def model_options():
    """{field name: [(model name, dataclasses.Field), ...]} for each field that a registered
    model's config adds to ModelConfig: the model-specific flags."""
    options = {}
    for name, cls in MODELS.items():
        for f in dataclasses.fields(cls.Config):
            if f.name not in BASE_FIELDS:
                options.setdefault(f.name, []).append((name, f))
    return options


def _add_model_option(group, name, users):
    """One flag for config field `name`, shared by the models in `users`; no argparse default
    (SUPPRESS), so an absent flag leaves the model's own default in place."""
    defaults = {model: f.default for model, f in users}
    kinds = {type(d) for d in defaults.values()}
    if not kinds <= {int, float, str} or len(kinds - {int}) > 1:
        raise TypeError(f"config field {name!r} of model(s) {list(defaults)}: a model option needs "
                        f"an int, float or str default, the same kind in every model; got {defaults}")
    kwargs = {"type": float if float in kinds else kinds.pop()}
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
    p = ArgumentParser(prog="python -m minims.train", formatter_class=HelpFormatter,
                       description=DESCRIPTION, epilog=EPILOG)
    g = p.add_argument_group("run")
    g.add_argument("--backend", choices=backend.BACKENDS, default=env_default("MINIMS_BACKEND", "numpy"),
                   help="array library: numpy (CPU) or cupy (NVIDIA GPU; pip install -e '.[cuda12]'); "
                        "default: the environment variable MINIMS_BACKEND, else numpy")
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
    add_threads_flag(g)

    g = p.add_argument_group("data")
    g.add_argument("--data", default="austen", metavar="austen|PATH",
                   help="'austen' (shipped, split by book) or a path to a UTF-8 text file (any name) "
                        "or a folder of .txt files (not those of its subfolders; split 90/5/5 by "
                        "position). The text is read whole before training: a named pipe must be "
                        "written to the end and closed")
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
    probe = argparse.Namespace(**{k: _UNSET for k in vars(args)})
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


def check_args(args):
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
    if args.min_lr > args.lr:                  # the cosine "decay" would climb from lr to min_lr
        raise UsageError(f"--min-lr ({args.min_lr:g}) must be at most --lr ({args.lr:g}): it is where "
                         "the cosine decay ends")
    if args.lr_decay_iters is not None and args.lr_decay_iters < 1:
        raise UsageError(f"--lr-decay-iters must be at least 1, got {args.lr_decay_iters}")
    if not str(args.data).strip():
        raise UsageError("--data is empty: give 'austen', a text file or a folder of .txt files")
    for name in ("out_dir", "cache_dir"):
        if getattr(args, name) is not None and not str(getattr(args, name)).strip():
            raise UsageError(f"{_flag(name)} is empty: give a folder")
    foreign = sorted(k for k in args._given if k in model_options()
                     and k not in {f.name for f in dataclasses.fields(MODELS[args.model].Config)})
    if foreign:
        users = {k: [m for m, _ in model_options()[k]] for k in foreign}
        flags = "; ".join(f"--{k.replace('_', '-')} is used by {', '.join(u)}" for k, u in users.items())
        raise UsageError(f"the {args.model} model takes no such option ({flags})")


def model_kwargs(args):
    """The config values for build_model: the base fields, and the model-specific flags that
    were given (absent ones keep the model's own defaults)."""
    fields = {f.name for f in dataclasses.fields(MODELS[args.model].Config)}
    kwargs = {k: getattr(args, k) for k in BASE_FIELDS if k not in ("vocab_size", "block_size")}
    kwargs.update({k: getattr(args, k) for k in model_options() if k in fields and hasattr(args, k)})
    return kwargs


def args_dict(args):
    return {k: v for k, v in vars(args).items() if not k.startswith("_")}


def same_json(a, b):
    """Equal after a JSON round trip (tuples become lists in checkpoints)."""
    return json.loads(json.dumps(a)) == json.loads(json.dumps(b))


def model_config(args, vocab_size):
    """The model's config from the flags -> a UsageError when they are invalid or contradict
    each other (a flag the config overrides, e.g. --n-layer 7 with --layout 1-1)."""
    cls = MODELS[args.model]
    kwargs = model_kwargs(args)
    try:
        config = cls.Config(vocab_size=vocab_size, block_size=args.block_size, **kwargs)
    except (ValueError, TypeError) as e:
        raise UsageError(f"the {args.model} model: {e}") from None
    # a field the config changed although it was given: another flag decided it (a layout
    # sets the depth and the number of scales); training anyway would ignore a flag silently
    given = {k: v for k, v in kwargs.items() if k in args._given and v not in ("", None)}
    changed = [k for k, v in given.items() if not same_json(v, getattr(config, k))]
    if changed:
        deciding = [k for k in given if k not in changed and k in model_options()]
        by = " and ".join(f"{_flag(k)} {str(given[k])}" for k in deciding) or "the other flags"
        said = ", ".join(f"{_flag(k)} {str(given[k])}" for k in changed)
        sets = ", ".join(f"{k}={str(getattr(config, k))}" for k in changed)
        raise UsageError(f"the {args.model} model: {said} conflicts with {by}, which gives {sets}; "
                         "drop one of them")
    return config
