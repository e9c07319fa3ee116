"""A point's identity is its full settings (ours): what was trained, on what, and how.

Two runs are the same point only when everything that decides their numbers is equal: the data
(its name or resolved path *and* a SHA-256 of its text), the tokenizer, the model with every
field of its config, every training setting (batch size, steps, learning rates and schedule,
warmup, weight decay, gradient clipping, evaluation interval and batches, ...) and the seed.
`point_settings` writes that down as one flat dict; every finished point records it in its
`result.json`, and a training folder records it through the trainer's own `config.json` and
checkpoint (`folder_settings` reads it back from there, so folders trained by
`python -m minims.train` with the same flags are recognised as the same point).

`differences(recorded, requested)` lists the settings that differ. The runner never reuses or
mixes a point whose recorded settings differ from the requested ones: it refuses before it
trains anything, in one line naming the folder and the differing settings (minims.errors,
exit code 2), and the user chooses another --out-dir / --results-dir or removes the folder.
(Refusing rather than training into a folder of its own keeps one folder per point and seed,
the layout that other processes and other machines continue from.)
"""
import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path

from ..errors import UsageError

# The trainer's settings that decide a run's numbers (besides the model's config, the data and
# the seed). The backend, folders, BLAS threads (--threads) and the number of processes do not:
# they compute the same function (data-parallel ranks make the update of --grad-accum,
# minims/train/distributed.py).
TRAINING_KEYS = ("batch_size", "grad_accum", "max_iters", "lr", "min_lr", "warmup_iters",
                 "lr_decay_iters", "weight_decay", "grad_clip", "eval_interval", "eval_iters")
# What the trainer's config.json cannot tell (it records the token ids' digest in the checkpoint)
TEXT_KEY, IDS_KEY = "text_sha256", "ids_sha256"


@dataclass
class DataInfo:
    """The data of an experiment, loaded once: name (as the trainer stores it), tokenizer,
    source (a sentence on where the text comes from and how it is split), the SHA-256 of the
    text and of its token ids, vocab_size, chars (characters per split) and splits (the token
    ids: {"train", "valid", "test"})."""
    name: str
    tokenizer: str
    source: str
    text_sha256: str
    ids_sha256: str
    vocab_size: int
    chars: dict
    splits: dict

    def describe(self):
        """The JSON record of the data a result was trained and scored on."""
        return {"data": self.name, "tokenizer": self.tokenizer, "source": self.source,
                TEXT_KEY: self.text_sha256, IDS_KEY: self.ids_sha256,
                "vocab_size": self.vocab_size, "chars": self.chars}


def load_data(data, cache_dir, tokenizer="char"):
    """Read --data once: its text's digest, its token ids (through the trainer's cache) -> DataInfo."""
    from ..data import load_corpus, prepare
    from ..train.pipeline import data_digest
    from ..train.resume import resolved_data
    corpus = load_corpus(data)
    h = hashlib.sha256()
    for split in ("train", "valid", "test"):
        text = corpus[split].encode("utf-8")
        h.update(f"{split}:{len(text)}\0".encode())
        h.update(text)
    tok, splits = prepare(data, tokenizer, cache_dir=cache_dir)
    return DataInfo(name=resolved_data(data), tokenizer=tokenizer, source=corpus["source"],
                    text_sha256=h.hexdigest(), ids_sha256=data_digest(splits),
                    vocab_size=tok.vocab_size,
                    chars={s: len(corpus[s]) for s in ("train", "valid", "test")}, splits=splits)


def trainer_args(point, settings, seed, data, cache_dir, out_dir, backend, threads="auto"):
    """The trainer's arguments (minims.train.make_args) that train `point` with `seed`; `threads`
    is the trainer's --threads (N or "auto", minims/threads.py), not part of the point."""
    from ..train.flags import make_args
    training = point.training(settings)
    training.setdefault("lr_decay_iters", training["max_iters"])    # the cosine spans the run
    return make_args(model=point.model, data=data.name, tokenizer=data.tokenizer, seed=seed,
                     backend=backend, out_dir=str(out_dir), cache_dir=cache_dir, threads=threads,
                     **training, **point.options)


def point_settings(point, settings, seed, data):
    """The full settings of `point` trained with `seed` on `data` (a DataInfo): a flat dict of
    data, text and token-id digests, tokenizer, model, every field of the model's config, every
    training setting (TRAINING_KEYS) and the seed. UsageError if the options are invalid."""
    from ..train.flags import model_config
    from dataclasses import asdict
    args = trainer_args(point, settings, seed, data, None, "", "numpy")
    config = asdict(model_config(args, data.vocab_size))
    return _flat(data.name, data.tokenizer, point.model, config, vars(args), seed,
                 {TEXT_KEY: data.text_sha256, IDS_KEY: data.ids_sha256})


def _flat(data, tokenizer, model, config, args, seed, digests):
    out = {"data": data, "tokenizer": tokenizer, **digests, "model": model}
    out.update({f"model.{k}": v for k, v in config.items()})
    out.update({k: args.get(k, "(not set)") for k in TRAINING_KEYS})
    out["seed"] = seed
    if tokenizer == "word":
        out["min_freq"] = args.get("min_freq", "(not set)")
    return json.loads(json.dumps(out))       # as it reads back from a file (tuples -> lists)


def folder_settings(folder):
    """The full settings of the run in a trainer's folder (config.json, and the token ids'
    digest from its checkpoint), or None when it holds no checkpoint (nothing trained yet)."""
    from .. import checkpoint
    folder = Path(folder)
    ckpt = folder / checkpoint.CKPT_NAME
    if not ckpt.exists():
        return None
    header = checkpoint.load(ckpt)["header"]
    args = header["args"]
    described = header["model"]
    return _flat(args["data"], args["tokenizer"], described["model"], described["config"], args,
                 args["seed"], {IDS_KEY: header.get("data_sha256")})


def _same(a, b):
    if isinstance(a, float) or isinstance(b, float):
        try:
            return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=0.0)
        except (TypeError, ValueError):
            return False
    return a == b


def differences(recorded, requested):
    """The settings on which two settings dicts disagree -> ["max_iters 15 (asked: 3)", ...].

    A setting present on one side only is a difference, except the text digest, which a
    trainer's folder does not record (its token ids' digest stands for it). Floats are
    compared to 1e-9 relative (lr/10 written as 3.0e-04 is 3e-4)."""
    out = []
    for key in list(requested) + [k for k in recorded if k not in requested]:
        if key == TEXT_KEY and key not in recorded:
            continue
        then, now = recorded.get(key, "(not set)"), requested.get(key, "(not set)")
        if not _same(then, now):
            short = lambda v: v[:12] + "…" if isinstance(v, str) and len(v) > 40 else v  # noqa: E731
            out.append(f"{key} {short(then)} (asked: {short(now)})")
    return out


def refuse_mismatches(mismatches):
    """Raise one UsageError line for [(where, differences), ...]; nothing when empty."""
    if not mismatches:
        return
    where, diffs = mismatches[0]
    more = f"; {len(mismatches) - 1} more point(s) differ too" if len(mismatches) > 1 else ""
    raise UsageError(f"{where} holds a point trained with other settings: {', '.join(diffs)}{more}. "
                     "A point is never reused with other settings: give another --out-dir (and "
                     "--results-dir), or remove that folder")
