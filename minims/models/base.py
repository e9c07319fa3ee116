"""What every language model in minims shares: the config and the contract.

The contract (minGPT's): `model(idx, targets=None) -> (logits, loss)` with idx an integer
array (B, T), T ≤ block_size; logits (B, T, vocab_size) where logits[:, t] predicts token
t+1 from tokens ≤ t; loss the mean cross-entropy when targets are given. Each model has a
`@dataclass` config, stored in checkpoints, from which `build_model` rebuilds it.

The models only give logits: one sampler, minims/sampling.py, turns them into tokens for every
model (`model.generate` calls it). Decoding (ours): a model with `supports_cache` runs the
prompt once (`prefill`, the forward pass keeping each layer's keys and values and its coarse
scales' states in a cache) and then one token at a time (`step`), each step's logits equal to
the last row of the full forward pass; `next_logits` chooses between the two, and the sampler
uses it unless `cache=False`. Each model's docstring says what a step keeps and what it
recomputes.
"""
import math
from dataclasses import asdict, dataclass

import numpy

from .. import backend, sampling
from .. import functional as F
from ..engine import no_grad
from ..nn import Embedding, LayerNorm, Linear, Module
from ..nn.layers import as_array


@dataclass
class ModelConfig:
    """Settings every model has; each model's config adds its own."""
    vocab_size: int
    block_size: int
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128
    dropout: float = 0.0
    dtype: str = "float32"
    seed: int = 0

    def __post_init__(self):
        for name in ("vocab_size", "block_size", "n_layer", "n_head", "n_embd"):
            value = getattr(self, name)
            if not isinstance(value, (int, numpy.integer)) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.n_embd % self.n_head:
            raise ValueError(f"n_embd={self.n_embd} is not divisible by n_head={self.n_head}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.dtype not in ("float32", "float64"):
            raise ValueError(f"dtype must be float32 or float64, got {self.dtype!r}")


class LanguageModel(Module):
    """Base class: subclasses set `self.config` and implement `logits(idx) -> (B, T, V)`."""

    name = None  # the registry name, set by @register_model

    def __init__(self, config):
        super().__init__()
        self.config = config

    # --- the parts every model shares (GPT-2's input and output) -------------------------
    @property
    def proj_std(self):
        """Init std of the projections into the residual stream: 0.02/√(2·n_layer) (GPT-2)."""
        return 0.02 / math.sqrt(2 * self.config.n_layer)

    def add_embeddings(self):
        """Token and learned position embeddings (call first in __init__). The position
        table is not weight-decayed: a choice shared by all models here."""
        c = self.config
        self.wte = Embedding(c.vocab_size, c.n_embd)
        self.wpe = Embedding(c.block_size, c.n_embd, decay=False)

    def add_head(self):
        """Final LayerNorm and the linear head to the vocabulary (call last in __init__, so
        the head's names come last). Every weight is drawn from the config's seed when the
        model's construction ends (minims.nn.module), whatever was created after this."""
        c = self.config
        self.ln_f = LayerNorm(c.n_embd)
        self.lm_head = Linear(c.n_embd, c.vocab_size, bias=False)

    def init_options(self):
        return {"seed": self.config.seed, "dtype": self.config.dtype}

    def embed(self, idx):
        """(B, T) token ids → (B, T, C) token + position embeddings."""
        return self.wte(idx) + self.wpe(numpy.arange(idx.shape[1]))  # (positions checked on the host)

    def head(self, x):
        """(B, T, C) → (B, T, V) logits."""
        return self.lm_head(self.ln_f(x))

    def head_step(self, x):
        """Decoding: a plain array (B, 1, C) → logits (B, V), no graph."""
        return self.lm_head.step(self.ln_f.step(x))[:, 0]

    def check_idx(self, idx, max_len=None):
        """idx as an integer array (B, T) with 1 ≤ T ≤ block_size (or ≤ max_len), or a clear
        error. Ids on the host stay there (a NumPy array; the embedding copies them to the
        device), so that checking their range costs a GPU nothing; ids already on the device
        are checked with one read of their minimum and maximum."""
        idx = as_array(idx)
        if not backend.is_device_array(idx):
            idx = numpy.asarray(idx)
        if idx.ndim != 2:
            raise ValueError(f"idx must have shape (B, T), got {idx.shape}")
        if idx.dtype.kind not in "iu":
            raise TypeError(f"idx must hold integer token ids, got {idx.dtype}")
        T, limit = idx.shape[1], max_len or self.config.block_size
        if T < 1 and limit == numpy.inf:
            raise ValueError("the prompt is empty: give at least one token")
        if not 1 <= T <= limit:
            raise ValueError(f"sequence length {T} is outside 1..block_size={self.config.block_size}")
        if idx.size:
            lo, hi = (int(v) for v in backend.to_floats([idx.min(), idx.max()]))
            if lo < 0 or hi >= self.config.vocab_size:
                raise ValueError(f"token ids must be in [0, {self.config.vocab_size - 1}], got [{lo}, {hi}]")
        return idx

    def forward(self, idx, targets=None):
        idx = self.check_idx(idx)
        logits = self.logits(idx)                                     # (B, T, V)
        loss = None if targets is None else F.cross_entropy(logits, targets)
        return logits, loss

    def logits(self, idx):
        raise NotImplementedError

    def describe(self):
        """{"model": registry name, "config": dict}: enough to rebuild it (checkpoints)."""
        return {"model": self.name, "config": asdict(self.config)}

    # --- decoding: prefill the prompt, then one token at a time (ours) ---------------------
    # A model that supports it sets `supports_cache = True` and implements `new_cache(batch)`,
    # `logits(idx, cache)` (the forward pass, also filling the cache, then `cache.finish(T)`)
    # and `step(cache, tokens)`. Others are sampled by the uncached path.
    supports_cache = False

    def new_cache(self, batch):
        """An empty decoding cache for `batch` sequences (a DecodeCache made with `batch`, so
        that a step can check it gets one token per row); steps may start from it (T = 0)."""
        raise NotImplementedError

    def prefill(self, idx):
        """Run the prompt idx (B, T), T ≤ block_size, through the model once, keeping what
        the next steps need: returns (cache, logits (B, V) for the token after idx, a plain
        array like `step`'s). Runs without a graph."""
        idx = self.check_idx(idx)
        cache = self.new_cache(idx.shape[0])
        with no_grad():
            logits = self.logits(idx, cache=cache)                    # (B, T, V)
        cache.finish(idx.shape[1])
        return cache, logits.data[:, -1]

    def step(self, cache, tokens):
        """Append one token per row, tokens (B,) (any shape holding B integer ids), at position
        `cache.T` < block_size; returns the logits (B, V) for the token after it, a plain
        array equal (to rounding) to the last row of a forward pass over all the tokens so
        far. The tokens are checked before the cache changes (`embed_step`). No graph: the
        per-token path runs on arrays (the layers' `step` methods), the rarer coarse-scale
        work may use Tensors under `no_grad`."""
        raise NotImplementedError

    def embed_step(self, cache, tokens):
        """(B,) token ids at position cache.T → a plain array (B, 1, C); advances cache.T.
        Every check comes first, so a refused step leaves the cache as it was: ValueError
        for a full cache or a token count other than the cache's batch, TypeError for ids
        that are not integers, IndexError for ids outside the vocabulary."""
        t = cache.T
        if t >= self.config.block_size:
            raise ValueError(f"the cache is full: position {t} is outside block_size="
                             f"{self.config.block_size} (prefill the last block_size tokens instead)")
        tokens = backend.to_numpy(as_array(tokens))                  # a NumPy array
        if tokens.dtype.kind not in "iu":
            raise TypeError(f"token ids must be integers, got {tokens.dtype}")
        if cache.batch is not None and tokens.size != cache.batch:
            raise ValueError(f"a step takes one token per row of the cache ({cache.batch}), got "
                             f"{tokens.size}")
        ids = tokens.astype(numpy.int64).reshape(-1, 1)               # (B, 1), checked on the host
        x = self.wte.step(ids) + self.wpe.weight.data[t:t + 1]        # (position t < block_size)
        cache.T += 1
        return x

    def next_logits(self, context, cache=None):
        """Logits (B, V), a plain array, for the token after `context` (B, T), 1 ≤ T ≤
        block_size, and the cache for the next call, computed without a graph (call it in eval
        mode, as `generate` does). `cache=None` starts one (a
        prefill); a cache from the previous call, whose context is this one minus its last
        token, runs that token only (a step); when that cache is full (block_size tokens: the
        context slid by one, every position moved) it re-prefills. `cache=False` runs the
        full forward pass every time (the reference) and returns False as the cache."""
        with no_grad():
            if cache is False or not self.supports_cache:
                return self(context)[0].data[:, -1], False            # (B, V)
            if cache is None or cache.T == self.config.block_size:
                cache, logits = self.prefill(context)
                return logits, cache
            return self.step(cache, context[:, -1]), cache

    def generate(self, idx, max_new_tokens, **options):
        """Extend idx (B, T) by `max_new_tokens` sampled tokens: `minims.sampling.generate`
        (the one sampler of every model; its options and errors are documented there)."""
        return sampling.generate(self, idx, max_new_tokens, **options)

    def generate_tokens(self, idx, max_new_tokens, **options):
        """Each new token column (B,) as it is sampled: `minims.sampling.generate_tokens`."""
        return sampling.generate_tokens(self, idx, max_new_tokens, **options)


class DecodeCache:
    """What a model keeps between decoding steps: T, the tokens seen, and per model its
    layers' KVCaches and the histories of its coarse scales (the subclasses list them)."""

    pools = ()   # the model's Pool layers, scale 1 … S (the top-down and bottom-up caches set them)

    def __init__(self, batch=None):
        self.T = 0
        self.batch = batch   # rows (None: not checked)

    def finish(self, T):
        """After the prefill over T tokens: keep at each coarse scale only the steps of complete
        blocks (an incomplete block is pooled again once it completes)."""
        self.T = T
        n = T
        for s, pool in enumerate(self.pools, 1):
            n = pool.complete(n)
            for part in self.scale_parts(s):
                part.truncate(n)

    def scale_parts(self, s):
        """The histories and KVCaches kept at coarse scale s (none without coarse scales)."""
        return ()
