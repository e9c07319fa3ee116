"""Count-based baselines: the bits per character of unigram, bigram and trigram models (ours).

A trained language model should beat a model that only counts: the experiments' tables and
figures mark these levels. Counts come from the training split, the score is on the valid
split (every token scored once, in order). The smoothing, so that no valid token gets
probability 0:

- unigram: add-one (Laplace), p(w) = (c(w) + 1) / (N + V), the trainer's unigram baseline
  (`minims.data.unigram_ppl`);
- order n >= 2: interpolated Witten-Bell. For a history h of n-1 tokens, seen c(h) times and
  followed by u(h) distinct tokens,
      p(w | h) = (c(h, w) + u(h) · p_lower(w | h')) / (c(h) + u(h)),
  where h' drops h's oldest token and p_lower is the order n-1 model; an unseen history
  (c(h) = 0) falls back to p_lower. It sums to 1 over the vocabulary for every h, and needs no
  tuned constant. The first n-1 valid tokens, which have shorter histories, are scored by the
  lower orders.

The counts are kept sparse (sorted n-gram codes), so a word vocabulary works too.
"""
import math

import numpy as np


def _codes(ids, n, vocab_size):
    """One int64 code per n-gram starting at each position: sum of ids[i+j] · V^(n-1-j)."""
    count = len(ids) - n + 1
    code = np.zeros(max(count, 0), dtype=np.int64)
    for j in range(n):
        code = code * vocab_size + ids[j:j + count]
    return code


def _lookup(table, counts, keys):
    """counts[table == key] for each key (0 where absent); `table` sorted and unique."""
    at = np.searchsorted(table, keys)
    at = np.minimum(at, len(table) - 1)
    found = table[at] == keys if len(table) else np.zeros(len(keys), bool)
    return np.where(found, counts[at] if len(table) else 0, 0)


def log_probs(train_ids, eval_ids, vocab_size, order):
    """Natural-log probability of each eval token under the order-`order` model fitted on the
    training ids (see the module docstring) -> float64 array of len(eval_ids)."""
    train = np.asarray(train_ids, dtype=np.int64).reshape(-1)
    ev = np.asarray(eval_ids, dtype=np.int64).reshape(-1)
    if len(train) and train.max() >= vocab_size or len(ev) and ev.max() >= vocab_size:
        raise ValueError(f"token ids reach beyond vocab_size={vocab_size}")
    counts = np.bincount(train, minlength=vocab_size).astype(np.float64) + 1.0
    logp = np.log(counts[ev] / counts.sum())                    # add-one unigram
    for n in range(2, order + 1):
        grams, gram_counts = np.unique(_codes(train, n, vocab_size), return_counts=True)
        hist, first = np.unique(grams // vocab_size, return_index=True)
        distinct = np.diff(np.append(first, len(grams)))        # u(h)
        seen = np.add.reduceat(gram_counts, first) if len(grams) else gram_counts   # c(h)
        codes = _codes(ev, n, vocab_size)                       # the tokens from n-1 on
        c_hw = _lookup(grams, gram_counts, codes).astype(np.float64)
        c_h = _lookup(hist, seen, codes // vocab_size).astype(np.float64)
        u_h = _lookup(hist, distinct, codes // vocab_size).astype(np.float64)
        lower = np.exp(logp[n - 1:])
        mixed = np.where(c_h > 0, (c_hw + u_h * lower) / np.maximum(c_h + u_h, 1), lower)
        logp = np.concatenate([logp[:n - 1], np.log(mixed)])
    return logp


def ngram_bpc(train_ids, eval_ids, vocab_size, orders=(1, 2, 3)):
    """{order: bits per token of eval_ids} for each n-gram order (counts from train_ids)."""
    return {n: float(-log_probs(train_ids, eval_ids, vocab_size, n).mean() / math.log(2))
            for n in orders}
