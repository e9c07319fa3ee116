"""The sampler: one for every model, from token ids (`generate`) or from text (`sample_stream`).

The models only give logits (minims/models/base.py: `next_logits`, cached or not); everything
else about sampling is here, once (makemore's one free `generate`): the checks of its options,
temperature and top-k, the draw itself, and what happens past block_size. `model.generate(...)`
is this module's `generate(model, ...)`, and `python -m minims.sample` streams `sample_stream`.

The options and their errors, checked once, at the call (`check_sampling`): max_new_tokens an
integer ≥ 0; temperature a finite number > 0 (logits are divided by it: < 1 safer text, > 1
wilder); top_k None or an integer ≥ 1 (sample among the k likeliest tokens only); seed None,
an integer ≥ 0 or a numpy Generator (which is then drawn from): the same seed samples the same
tokens; slide an integer in [1, block_size] (below). A wrong type raises TypeError, a value out
of range `SamplingError` (a ValueError naming the option, which the command line turns into
its flag).

Text (`sample_stream`, `sample`): the prompt is read as the training text was (`encode_prompt`:
line ends normalised; a token the model never learnt is refused, or read as <unk> by a word
model that met <unk> in training), and each new token's text is given as it is sampled.

Past block_size (ours): when the context is full, the oldest `slide` tokens are dropped at
once. With slide=1 (the default) the context is always the last block_size tokens, so every
position moves with every new token and the cached path must re-run the whole context (a
prefill) per token, like the uncached one; a larger slide re-runs it once per `slide` tokens
and steps in between (faster long samples, over a context of block_size − slide + 1 to
block_size tokens).
"""
import math
import numbers

import numpy

from . import backend
from .errors import UsageError
from .tokenizers import UNK_ID


class SamplingError(ValueError):
    """A sampling option out of its range: `option` is its name, `rule` what it must be, the
    message "option rule, got value" (the command line says "--option rule, got value")."""

    def __init__(self, option, rule, value):
        super().__init__(f"{option} {rule}, got {value}")
        self.option, self.rule, self.value = option, rule, value


def _is_int(x):
    return isinstance(x, (int, numpy.integer)) and not isinstance(x, (bool, numpy.bool_))


def check_sampling(max_new_tokens, temperature=1.0, top_k=None, seed=None, slide=1, block_size=None):
    """The checks of every sampling option (see the module docstring): TypeError for a wrong
    type, SamplingError for a value out of range; `slide` is checked against `block_size`
    when it is given."""
    if seed is not None and not isinstance(seed, numpy.random.Generator):
        _check_int("seed", seed, "must be >= 0", lambda s: s >= 0, "an integer, a numpy Generator or None")
    _check_int("max_new_tokens", max_new_tokens, "must be >= 0", lambda n: n >= 0)
    if isinstance(temperature, (bool, numpy.bool_)) or not isinstance(temperature, numbers.Real):
        raise TypeError(f"temperature must be a number, got {temperature!r}")
    if not (math.isfinite(temperature) and temperature > 0):
        raise SamplingError("temperature", "must be finite and > 0", temperature)
    if top_k is not None:
        _check_int("top_k", top_k, "must be >= 1", lambda k: k >= 1, "an integer or None")
    _check_int("slide", slide, f"must be an integer in [1, block_size={block_size}]",
               lambda s: block_size is None or 1 <= s <= block_size)


def _check_int(option, value, rule, ok, kinds="an integer"):
    """TypeError unless `value` is an integer; SamplingError(option, rule) unless `ok(value)`."""
    if not _is_int(value):
        raise TypeError(f"{option} must be {kinds}, got {value!r}")
    if not ok(value):
        raise SamplingError(option, rule, value)


# --- token ids ---------------------------------------------------------------------------------

def generate(model, idx, max_new_tokens, temperature=1.0, top_k=None, seed=None, cache=True, slide=1):
    """Extend idx (B, T) by `max_new_tokens` tokens sampled from `model` -> (B, T + max_new_tokens)
    NumPy int64 ids; a seed makes it reproducible.

    The context is the last block_size tokens (past that, see `slide` in the module docstring).
    Runs in eval mode without a graph and restores the previous mode afterwards. With
    `cache=True` (the default, for models that support it) the prompt is run once and each new
    token costs one step; `cache=False` runs a full forward pass per token (the reference: same
    logits to rounding, so the same seed samples the same text). Raises TypeError or
    SamplingError for an option (`check_sampling`), ValueError for an empty prompt, and from
    `sample_rows` for logits that are NaN or inf.
    """
    idx = backend.to_numpy(model.check_idx(idx, max_len=numpy.inf)).astype(numpy.int64)
    new = list(generate_tokens(model, idx, max_new_tokens, temperature, top_k, seed, cache, slide))
    return numpy.concatenate([idx] + [t[:, None] for t in new], axis=1)


def generate_tokens(model, idx, max_new_tokens, temperature=1.0, top_k=None, seed=None, cache=True,
                    slide=1, never=()):
    """Like `generate`, but an iterator that yields each new token column (B,) as soon as it
    is sampled (a streaming sampler prints them as they come). Ids in `never` are never
    sampled (their probability is set to 0 before top_k: `sample_stream` bans an `<unk>` that
    training never showed the model). The arguments are checked at the call; the model stays
    in eval mode until the iterator is exhausted or closed, then its previous mode is
    restored."""
    check_sampling(max_new_tokens, temperature, top_k, seed, slide, model.config.block_size)
    idx = backend.to_numpy(model.check_idx(idx, max_len=numpy.inf)).astype(numpy.int64)
    never = numpy.asarray(sorted(set(never)), dtype=numpy.int64)
    if never.size and not ((never >= 0) & (never < model.config.vocab_size)).all():
        raise SamplingError("never", f"must hold token ids in [0, {model.config.vocab_size})", list(never))
    return _sample_tokens(model, idx, max_new_tokens, temperature, top_k, seed,
                          bool(cache) and model.supports_cache, slide, never)


def _sample_tokens(model, idx, max_new_tokens, temperature, top_k, seed, cached, slide, never):
    rng = numpy.random.default_rng(seed)
    block = model.config.block_size
    context, state = idx[:, -block:], None                            # (B, ≤ block_size)
    with model.eval_mode():
        for _ in range(max_new_tokens):
            logits, state = model.next_logits(context, state if cached else False)  # (B, V)
            z = backend.to_numpy(logits).astype(numpy.float64)
            if temperature != 1:                                      # (z / 1 is z: skipped)
                z -= z.max(axis=-1, keepdims=True)      # shifted first: with a tiny temperature,
                with numpy.errstate(over="ignore"):     # z / T would overflow to inf, then NaN;
                    z /= temperature                    # now only to −inf (probability 0)
            z[:, never] = -numpy.inf
            if top_k is not None:
                kth = numpy.sort(z, axis=-1)[:, -min(top_k, z.shape[-1])][:, None]
                z = numpy.where(z < kth, -numpy.inf, z)
            p = numpy.exp(z - z.max(axis=-1, keepdims=True))
            p /= p.sum(axis=-1, keepdims=True)
            nxt = sample_rows(p, rng)                                 # (B,)
            context = slide_context(numpy.concatenate([context, nxt[:, None]], axis=1), block, slide)
            yield nxt


def sample_rows(p, rng):
    """One token per row of probabilities p (B, V), by the inverse of each row's cumulative
    distribution: the same draws as `[rng.choice(V, p=row) for row in p]` (NumPy's algorithm,
    one uniform number per row, in row order; tested), in three array operations instead of
    B calls. p: non-negative rows (a softmax's output; negative entries are not checked).
    Raises ValueError if a row is not finite (NaN or inf logits) or sums to 0."""
    cdf = p.cumsum(axis=-1)
    total = cdf[:, -1:]                                               # (B, 1)
    if not numpy.isfinite(total).all():          # (a NaN or inf anywhere in a row ends up here)
        raise ValueError("the probabilities to sample from are not finite (NaN or inf logits)")
    if not (total > 0).all():
        raise ValueError("a row of probabilities to sample from sums to 0")
    cdf /= total
    u = rng.random(len(p))                                            # (B,)
    return (cdf <= u[:, None]).sum(axis=-1).astype(numpy.int64)       # = searchsorted(cdf, u, "right")


def slide_context(context, block_size, slide=1):
    """The context (B, T) after a new token: unchanged up to block_size tokens, else without
    its oldest `slide` tokens (slide=1: the last block_size tokens)."""
    return context if context.shape[1] <= block_size else context[:, slide:]


# --- text --------------------------------------------------------------------------------------

def sample_stream(model, tokenizer, prompt="\n\n", max_new_tokens=300, temperature=1.0, top_k=None,
                  seed=0, cache=True, slide=1):
    """The continuation of `prompt` (a str) as it is generated: an iterator of the text of each
    new token (the pieces join to what `sample` returns; same seed, same text). The prompt is
    read by `encode_prompt`, and its last block_size tokens are the context. Checked at the
    call: the options like `generate_tokens`, the prompt by `encode_prompt`."""
    ids = encode_prompt(tokenizer, prompt)
    context = ids[-model.config.block_size:]                          # (T,) with T ≤ block_size
    # an <unk> that never occurred in training has an untrained embedding and output row: its
    # logit means nothing, and the sampler would print U+FFFD or "<unk>" from it
    never = () if tokenizer.unk_in_training else (UNK_ID,)
    tokens = generate_tokens(model, context[None, :], max_new_tokens, temperature, top_k, seed, cache, slide,
                             never)
    return _new_text(tokenizer, context, tokens)


def encode_prompt(tokenizer, prompt):
    """The ids of `prompt`, (T,) int64, read as training text was (`normalize_text`).

    Raises UsageError (a ValueError) for a prompt with no token, or with a token that maps
    to <unk> when the model never met <unk> in training (`tokenizer.unk_in_training` false:
    always for characters; for words when none was rarer than min_freq, as with min_freq 1),
    naming the first such token and its offset in `prompt` as given (ours: an untrained
    embedding would steer the text silently). Unseen words of a word tokenizer that did meet
    <unk> become <unk>, as rare words did in training; `tokenizer.unknown(prompt)` lists them.
    """
    unknown = tokenizer.unknown(prompt)
    if unknown and not tokenizer.unk_in_training:
        offset, token = unknown[0]
        what, noun = ((f"{token!r} (U+{ord(token):04X})", "character") if tokenizer.kind == "char"
                      else (repr(token), "word"))
        more = f" (and {len(unknown) - 1} more)" if len(unknown) > 1 else ""
        raise UsageError(f"the prompt holds {what} at offset {offset}{more}, a {noun} the model "
                         "never saw in training; leave it out or replace it")
    ids = numpy.asarray(tokenizer.encode(prompt), dtype=numpy.int64)
    if ids.size == 0:
        raise UsageError(f"the prompt {prompt!r} holds no {tokenizer.kind}-level token; give some text")
    return ids


def _new_text(tokenizer, context, tokens):
    # decode context + continuation together and emit what is new: the word tokenizer's
    # spacing depends on the tokens before (no space before "," or after an opening quote)
    out, shown = list(context), len(tokenizer.decode(context))
    for token in tokens:
        out.append(int(token[0]))
        text = tokenizer.decode(numpy.asarray(out))
        yield text[shown:]
        shown = len(text)


def sample(model, tokenizer, prompt="\n\n", max_new_tokens=300, temperature=1.0, top_k=None, seed=0,
           cache=True, slide=1):
    """The generated continuation of `prompt` (without the prompt), as text (`sample_stream`)."""
    return "".join(sample_stream(model, tokenizer, prompt, max_new_tokens, temperature, top_k, seed, cache,
                                 slide))
