"""What every language model in minims shares: the config, the contract, `generate`.

The contract (minGPT's): `model(idx, targets=None) -> (logits, loss)` with idx an integer
array (B, T), T ≤ block_size; logits (B, T, vocab_size) where logits[:, t] predicts token
t+1 from tokens ≤ t; loss the mean cross-entropy when targets are given. One `generate`
serves all models. Each model has a `@dataclass` config, stored in checkpoints, from which
`build_model` rebuilds it.
"""
import math
from dataclasses import asdict, dataclass

import numpy

from .. import backend as B
from .. import functional as F
from ..engine import Tensor, no_grad
from ..nn import Embedding, LayerNorm, Linear, Module, init_parameters


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
        """Final LayerNorm and the linear head to the vocabulary, then draw every weight
        from the config's seed (call last in __init__)."""
        c = self.config
        self.ln_f = LayerNorm(c.n_embd)
        self.lm_head = Linear(c.n_embd, c.vocab_size, bias=False)
        init_parameters(self, seed=c.seed, dtype=c.dtype)

    def embed(self, idx):
        """(B, T) token ids → (B, T, C) token + position embeddings."""
        return self.wte(idx) + self.wpe(B.xp.arange(idx.shape[1]))

    def head(self, x):
        """(B, T, C) → (B, T, V) logits."""
        return self.lm_head(self.ln_f(x))

    def check_idx(self, idx, max_len=None):
        """idx as a backend integer array (B, T) with 1 ≤ T ≤ block_size (or ≤ max_len), or a
        clear error."""
        idx = B.asarray(idx.data if isinstance(idx, Tensor) else idx)
        if idx.ndim != 2:
            raise ValueError(f"idx must have shape (B, T), got {idx.shape}")
        if idx.dtype.kind not in "iu":
            raise TypeError(f"idx must hold integer token ids, got {idx.dtype}")
        T, limit = idx.shape[1], max_len or self.config.block_size
        if not 1 <= T <= limit:
            raise ValueError(f"sequence length {T} is outside 1..block_size={self.config.block_size}")
        if idx.size and (int(idx.min()) < 0 or int(idx.max()) >= self.config.vocab_size):
            raise ValueError(f"token ids must be in [0, {self.config.vocab_size - 1}], got "
                             f"[{int(idx.min())}, {int(idx.max())}]")
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

    def generate(self, idx, max_new_tokens, temperature=1.0, top_k=None, seed=None):
        """Extend idx (B, T) by `max_new_tokens` sampled tokens; a seed makes it reproducible.

        The context is cropped to the last block_size tokens. Runs in eval mode without a
        graph and restores the previous mode afterwards.
        """
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        rng = numpy.random.default_rng(seed)
        idx = B.to_numpy(self.check_idx(idx, max_len=numpy.inf)).astype(numpy.int64)
        was_training = self.training
        self.eval()
        try:
            with no_grad():
                for _ in range(max_new_tokens):
                    context = idx[:, -self.config.block_size:]
                    logits, _ = self(context)
                    z = B.to_numpy(logits.data[:, -1, :]).astype(numpy.float64) / temperature
                    if top_k is not None:
                        kth = numpy.sort(z, axis=-1)[:, -min(top_k, z.shape[-1])][:, None]
                        z = numpy.where(z < kth, -numpy.inf, z)
                    p = numpy.exp(z - z.max(axis=-1, keepdims=True))
                    p /= p.sum(axis=-1, keepdims=True)
                    nxt = [rng.choice(p.shape[-1], p=row) for row in p]
                    idx = numpy.concatenate([idx, numpy.array(nxt)[:, None]], axis=1)
        finally:
            self.train(was_training)
        return idx
