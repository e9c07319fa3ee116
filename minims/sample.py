"""Sampling: `python -m minims.sample` prints text from a trained checkpoint.

    python -m minims.sample                                   # from out/ckpt.npz
    python -m minims.sample --prompt "It is a truth" --max-new-tokens 300 --temperature 0.8 --seed 1

Tokens are printed as they are generated (flushed, so Ctrl-C keeps what was shown; exit
code 130), each one a cached decoding step of the model (minims/sampling.py, the one sampler)
until the context holds block_size tokens; past that, with the default --slide 1, every new
token re-runs the whole context (positions are absolute), and --slide N does it once per N
tokens.

The checkpoint carries everything needed: the model's description (rebuilt with
`model_from_description`, so every registered model works), its weights and the tokenizer.
The same --seed gives the same text. The prompt is read as the training text was: Windows
line ends become "\\n" (`tokenizers.normalize_text`, the one normalisation of minims). A
prompt character a character-level model never saw in training is refused, naming it and
its offset: the model never learnt <unk>. A word-level model learnt <unk> from the words
rarer than --min-freq, so an unseen prompt word is read as <unk>, and the sampler names
those words on stderr (refused like characters if no training word was that rare, as with
--min-freq 1). Exit code 2 with a one-line error for a missing or corrupt checkpoint, a
checkpoint whose weights hold NaN or inf, a prompt the model cannot read, a command line
that is not UTF-8, an unusable backend or a bad flag (minims/errors.py); 130 on Ctrl-C.
"""
import sys
from pathlib import Path

import numpy as np

from . import allocator, backend, checkpoint, threads
from .cli import ArgumentParser, HelpFormatter, env_default, run_cli
from .errors import CheckpointError, UsageError
from .models import model_from_description
from .sampling import SamplingError, sample_stream
from .tokenizers import normalize_text, tokenizer_from_dict


def build_parser():
    p = ArgumentParser(prog="python -m minims.sample", description=__doc__.split("\n\n")[0],
                       formatter_class=HelpFormatter)
    where = p.add_mutually_exclusive_group()
    where.add_argument("--out-dir", default="out", metavar="DIR", help="run folder whose ckpt.npz is used")
    where.add_argument("--ckpt", default=None, metavar="FILE",
                       help="a checkpoint file (instead of DIR/ckpt.npz; not with --out-dir)")
    p.add_argument("--prompt", default="\n\n", metavar="TEXT",
                   help="text to continue (its last block_size tokens are the context), with line "
                        "ends normalised as the training data's were; a character the model never "
                        "saw is refused; an unseen word becomes <unk> where training replaced rare "
                        "words by <unk> (word level, a word rarer than --min-freq), else it is refused "
                        "too (default: %(default)r, a paragraph break: a fresh paragraph)")
    p.add_argument("--max-new-tokens", type=int, default=300, metavar="N", help="tokens to generate")
    p.add_argument("--temperature", type=float, default=1.0, metavar="X",
                   help="divide the logits by this (< 1: safer text, > 1: wilder)")
    p.add_argument("--top-k", type=int, default=None, metavar="K",
                   help="sample only among the K likeliest tokens (default: among all)")
    p.add_argument("--seed", type=int, default=0, metavar="N", help="seed of the sampler: same seed, same text")
    p.add_argument("--slide", type=int, default=1, metavar="N",
                   help="past block_size, drop this many oldest tokens at once when the context is "
                        "full: 1 keeps the last block_size tokens (each new token then re-runs the "
                        "whole context); larger is faster, with a context of block_size-slide+1 to "
                        "block_size tokens")
    p.add_argument("--backend", choices=backend.BACKENDS, default=env_default("MINIMS_BACKEND", "numpy"),
                   help="array library: numpy (CPU) or cupy (NVIDIA GPU); default: the environment "
                        "variable MINIMS_BACKEND, else numpy")
    threads.add_threads_flag(p, " (auto gives one for the small products of decoding)")
    return p


def load_model(path):
    """(model, tokenizer, header) from a checkpoint file, weights loaded, in eval mode."""
    ckpt = checkpoint.load(path)
    header = ckpt["header"]
    try:
        model = model_from_description(header["model"])
        model.load_state_dict(ckpt["model"])
        tokenizer = tokenizer_from_dict(header["tokenizer"])
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{path}: checkpoint does not describe a usable model ({e})") from None
    bad = [name for name, p in model.named_parameters() if not np.isfinite(backend.to_numpy(p.data)).all()]
    if bad:
        more = f" and {len(bad) - 1} more" if len(bad) > 1 else ""
        raise CheckpointError(f"{path}: the weights hold NaN or inf ({bad[0]}{more}): the run that "
                              "wrote it diverged; retrain it, e.g. with a lower --lr")
    return model.eval(), tokenizer, header


def main(argv=None):
    """The command line -> exit code (errors mapped by minims.cli.run_cli; Ctrl-C keeps the
    text already printed and exits 130)."""
    return run_cli(_main, argv)


def _main(argv):
    args = build_parser().parse_args(argv)
    backend.set_backend(args.backend)
    allocator.reuse_freed_memory()
    for flag, value in (("--ckpt", args.ckpt), ("--out-dir", args.out_dir)):
        if value is not None and not value.strip():
            raise UsageError(f"{flag} is empty: give " + ("a checkpoint file" if flag == "--ckpt" else
                                                           "the run folder that holds ckpt.npz"))
    if args.ckpt is not None and Path(args.ckpt).is_dir():
        raise UsageError(f"--ckpt {args.ckpt} is a folder: give a checkpoint file, or the folder as "
                         "--out-dir")
    path = Path(args.ckpt) if args.ckpt is not None else Path(args.out_dir) / checkpoint.CKPT_NAME
    model, tokenizer, _ = load_model(path)
    # a decoding step's largest product: the whole context re-run (rows = block_size)
    threads.apply_threads(args.threads, threads.product_size(model.config.block_size, model.config.n_embd))
    try:                              # the sampler checks every option (once, here) and the prompt
        pieces = sample_stream(model, tokenizer, args.prompt, args.max_new_tokens, args.temperature,
                               args.top_k, args.seed, slide=args.slide)
    except SamplingError as e:        # named by its flag
        raise UsageError(f"--{e.option.replace('_', '-')} {e.rule}, got {e.value}") from None
    first = next(pieces, "")          # a first step that fails (NaN logits) fails before any output
    unknown = tokenizer.unknown(args.prompt)
    if unknown:                       # a word model that learnt <unk>: say what it reads so
        offset, word = unknown[0]
        more = f" and {len(unknown) - 1} more" if len(unknown) > 1 else ""
        print(f"note: the model reads {word!r} (offset {offset}){more} as <unk>: words it never "
              "saw in training", file=sys.stderr, flush=True)
    print(normalize_text(args.prompt) + first, end="", flush=True)
    try:
        for piece in pieces:          # each token as it is generated: Ctrl-C keeps what is shown
            print(piece, end="", flush=True)
    finally:
        print(flush=True)             # end the line, also when interrupted


if __name__ == "__main__":
    sys.exit(main())
