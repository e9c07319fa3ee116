"""The retina model: one fine stream whose attention sees the past at a falling resolution.

Paper: Subramanian et al. (2020), the multi-scale model that "compresses the representations
of tokens further in the past", with the visibility rule of pitfall 8 (minims/ops/pooling.py) and
an exact partition of the past over S scales (ours, below).

The idea. Like the retina, whose receptive fields grow away from its centre, each layer looks
at the most recent w tokens at full resolution, at blocks of k tokens (keys and values pooled
from the same layer's input) for the span before that, and, with more scales, at blocks of k²,
k³, … further back. Every past token is seen exactly once, through the finest key that covers
it, so a layer's attention holds O(T·(w + T/k)) activations for two scales instead of O(T²):
the cost of long contexts grows almost linearly.

Which keys query t sees (k = pool, S = n_scales, m = band; A_s are token positions):
    A₀ = t+1;  A₁ = k·⌊max(0, t−w+1)/k⌋   (the window start, rounded down to a block start)
    A_s = max(0, (⌊A_{s−1}/kˢ⌋ − m)·kˢ)   for s = 2 … S
    fine keys [A₁, t];  scale-s blocks covering [A_{s+1}, A_s) for 1 ≤ s < S;
    every scale-S block below A_S.
Each A_s is a multiple of kˢ, so a block is used only when its LAST fine index is < A_s ≤ t+1
(pitfall 8: visibility from a block's last index, never its start). Keys per query:
≤ (w+k−1) + (S−1)(m+1)k + ⌈T/kˢ⌉.

Data flow (one layer; T_s = ⌈T/kˢ⌉):
    x (B, T, C) → h = ln1(x) → q, k, v = qkv(h)                  # (B, nh, T, hs) each
    p_s = pool_s(p_{s−1}), p₀ = h                                 # (B, T_s, C), blocks as they are
    k_s, v_s = the same layer's key/value maps of p_s             # (B, nh, T_s, hs)
    y = RangeAttention(q, [(k, v), (k₁, v₁), …], ranges)          # (B, nh, T, hs)
    x + proj(y), then + mlp(ln2(x)): the usual pre-LN block.

Choices (ours):
- Defaults w = 32, k = 4, two coarse scales (band m = 2) and learned pooling: measured by
  `python -m minims.experiment ablate` (rows retina/…; table in lessons/results/ablation.md),
  first at 300 steps, where two scales beat one and a learned map of each block beat its mean;
  at 2,000 steps no retina row differs from these defaults beyond the seed spread (the
  defaults' two seeds differ by 0.13 bpc), and a window of 64 did not beat 32.
- The coarse keys and values are the layer's own key/value projections of the pooled input
  (for mean pooling that is the same as pooling the keys and values). `pool_kind="linear"`
  learns one map of each block of k per scale and layer instead.
- No attention pooling (Hourglass's, `pool_kind="attention"` in the top-down and bottom-up
  models; refused here with a ValueError): it would give every layer and scale an attention
  from each block to all the tokens before it, about T²/(2k) scores per head, plus a
  feed-forward, to make keys that the retina pools precisely to hold less than T² per layer.
- Blocks are pooled without a shift: the visibility rule above shows a block only once it
  has ended. T not divisible by kˢ: the input is zero-padded at the end; a partial block
  ends after T−1, so no query ever sees it.
- Positions: learned absolute embeddings at the input, like the vanilla model.
- Queries are processed in chunks of max(16, w) (RangeAttention): saved scores per layer are
  O(B·n_head·T·(chunk + w + S·m·k + T/kˢ)); for two scales at most
  B·n_head·T·(chunk + w + k − 1 + ⌈T/k⌉) (tests/test_memory.py checks this on measured bytes).
- k = 1 is allowed (pooled keys are then single tokens: full attention, split in ranges).
- The parameters are exactly the vanilla model's (same names): with w ≥ T it IS the vanilla
  model, which tests/test_models.py uses as a cross-check of RangeAttention.

Decoding (ours). Each layer's cache keeps the fine keys and values of its window, its input
h and the pooled inputs p_s seen so far, and the pooled keys and values of every completed
block. A new token t appends its fine key and value and drops the fine keys that fell out of
its window (those before A₁, which never decreases); when t completes a block of kˢ tokens
(t+1 a multiple of kˢ) the layer pools that block from its k inputs of the scale below and
appends its key and value at scale s, once per block. The query then attends to the ranges
above for t alone. What a step recomputes: pooling a completed block reads its k inputs again
(mean, or the learned map of "linear" pooling). The prefill runs the forward pass, keeping
the caches, and then forgets any incomplete block.
"""
import functools
from dataclasses import dataclass

import numpy

from .. import backend
from .. import functional as F
from ..nn import Block, Buffer, CausalSelfAttention, KVCache, ModuleList, attend, split_heads
from ..nn.pooling import Pool
from .base import DecodeCache, LanguageModel, ModelConfig
from .multiscale import check_options, option
from .registry import register_model


@functools.lru_cache(maxsize=64)
def retina_ranges(T, k, window, n_scales=1, band=2):
    """The key ranges of every query: ((lo, hi) of fine keys, of scale-1 blocks, …, scale S).

    Each lo/hi is an int array of shape (T,), in units of its scale (tokens, blocks of k, …).
    """
    ranges = retina_ranges_at(numpy.arange(T), k, window, n_scales, band)
    for lo, hi in ranges:
        lo.flags.writeable = hi.flags.writeable = False
    return ranges


def retina_ranges_at(t, k, window, n_scales=1, band=2):
    """The key ranges of the queries at the positions t (an int array, or one int: then each
    lo/hi is a scalar, or a 0-d array, that `int()` reads; ~10× faster for a decoding step),
    as for retina_ranges."""
    A = [t + 1, k * (numpy.maximum(0, t - window + 1) // k)]           # A₀, A₁
    for s in range(2, n_scales + 1):
        K = k ** s
        A.append(numpy.maximum(0, (A[-1] // K - band) * K))
    ranges = [(A[1], t + 1)]                                           # fine keys [A₁, t]
    for s in range(1, n_scales):
        ranges.append((A[s + 1] // k ** s, A[s] // k ** s))            # blocks covering [A_{s+1}, A_s)
    ranges.append((numpy.zeros_like(t), A[n_scales] // k ** n_scales))  # all scale-S blocks below A_S
    return tuple(ranges)


class RetinaAttention(CausalSelfAttention):
    """Self-attention to the last `window` tokens, then to pooled blocks further back."""

    def __init__(self, n_embd, n_head, k, window, n_scales=1, band=2, pool_kind="mean",
                 dropout=0.0, proj_std=0.02):
        super().__init__(n_embd, n_head, dropout, proj_std)
        self.k, self.window, self.n_scales, self.band = k, window, n_scales, band
        self.chunk = max(16, window)
        self.pool = ModuleList(Pool(n_embd, k, pool_kind, shift=False) for _ in range(n_scales))

    def attend(self, q, k, v, x, mask=None, cache=None):
        """q, k, v (B, nh, T, hs) of the layer input x (B, T, C) → (B, nh, T, hs): the window
        of fine keys and the pooled blocks before it; a RetinaCache keeps what the next
        steps need."""
        if mask is not None:
            raise ValueError("RetinaAttention takes no mask: its ranges are the mask")
        T, C = x.shape[1], x.shape[2]
        keyvals = [(k, v)]
        w_kv, b_kv = self.qkv.weight[:, C:], self.qkv.bias[C:]        # the key and value maps
        pooled = x
        if cache is not None:
            cache.fine.append(k, v)
            cache.inputs[0].append(x)
        for s, pool in enumerate(self.pool, 1):
            pooled = pool(pooled)                                     # (B, T_s, C)
            kv = F.linear(pooled, w_kv, b_kv)                         # (B, T_s, 2C)
            keyvals.append(split_heads(kv, self.n_head, parts=2))     # (B, nh, T_s, hs) each
            if cache is not None:
                cache.inputs[s].append(pooled)
                cache.coarse[s - 1].append(*keyvals[-1])
        ranges = retina_ranges(T, self.k, self.window, self.n_scales, self.band)
        return F.range_attention(q, keyvals, ranges, self.chunk)     # (B, nh, T, hs)

    def attend_step(self, q, k, v, x, cache):
        """The next position t only (q, k, v arrays (B, nh, 1, hs); x (B, 1, C) an array), with this
        layer's RetinaCache: the blocks t completes are pooled, then t attends to its ranges."""
        t, C = len(cache.fine), x.shape[-1]
        cache.fine.append(k, v)
        cache.inputs[0].append(x)
        w_kv, b_kv = self.qkv.weight.data[:, C:], self.qkv.bias.data[C:]  # the key and value maps
        for s, pool in enumerate(self.pool, 1):                       # the blocks t completes
            n = len(cache.inputs[s])
            if pool.complete(len(cache.inputs[s - 1])) == n:
                break
            p = pool.pool_at(cache.inputs[s - 1].tensor(), n).data    # (B, 1, C): block n
            cache.inputs[s].append(p)
            cache.coarse[s - 1].append(*split_heads(F.Linear.run(p, w_kv, b_kv), self.n_head, parts=2))
        ranges = retina_ranges_at(t, self.k, self.window, self.n_scales, self.band)
        cache.fine.drop_before(int(ranges[0][0]))                     # out of the window for good
        keys, values = [], []                                         # what t sees, set by set
        for i, (kv, (lo, hi)) in enumerate(zip([cache.fine, *cache.coarse], ranges)):
            a, b = int(lo), int(hi)
            if i == 0:                                                # fine keys kept from `start`
                a, b = a - kv.start, b - kv.start
            if b > a:                            # (a scale with no block yet has nothing to give)
                keys.append(kv.k.view()[:, :, a:b])                   # (B, nh, b − a, hs)
                values.append(kv.v.view()[:, :, a:b])
        k, v = backend.xp.concatenate(keys, axis=2), backend.xp.concatenate(values, axis=2)
        return attend(q, k, v)                                        # one softmax over all


@dataclass
class RetinaConfig(ModelConfig):
    pool: int = option("pool", 4)
    n_scales: int = option("n_scales", 2, chosen_by="retina/scales=2")
    window: int = option("window", 32)
    band: int = option("band", 2)
    pool_kind: str = option("pool_kind", "linear", chosen_by="retina/pool=linear")

    def __post_init__(self):
        super().__post_init__()
        check_options(self)
        if self.window < 1:
            raise ValueError(f"the retina window must be >= 1 token, got {self.window}")
        if self.band < 0:
            raise ValueError(f"band must be >= 0, got {self.band}")
        if self.pool_kind == "attention":
            raise ValueError("pool_kind must be 'mean' or 'linear' here, not 'attention': attention "
                             "pooling would add to every layer and scale an attention from each block to "
                             "all tokens before it (about T^2/(2k) scores per head) and a feed-forward, "
                             "for keys the retina pools to save memory")


@register_model("retina")
class RetinaLM(LanguageModel):
    Config = RetinaConfig

    def __init__(self, config):
        super().__init__(config)
        C = config.n_embd
        proj_std = self.proj_std
        self.add_embeddings()
        self.blocks = ModuleList(
            Block(C, config.n_head, config.dropout, proj_std,
                  attn=RetinaAttention(C, config.n_head, config.pool, config.window, config.n_scales,
                                       config.band, config.pool_kind, config.dropout, proj_std))
            for _ in range(config.n_layer))
        self.add_head()

    supports_cache = True

    def logits(self, idx, cache=None):
        x = self.embed(idx)                                           # (B, T, C)
        layers = cache.layers if cache is not None else [None] * len(self.blocks)
        for block, c in zip(self.blocks, layers):
            x = block(x, cache=c)
        return self.head(x)                                           # (B, T, V)

    def new_cache(self, batch):
        return RetinaModelCache(self, batch)

    def step(self, cache, tokens):
        x = self.embed_step(cache, tokens)                            # (B, 1, C)
        for block, c in zip(self.blocks, cache.layers):
            x = block.step(x, c)
        return self.head_step(x)                                      # (B, V)


class RetinaCache:
    """One retina layer's past: fine keys/values (a KVCache holding the window), inputs[s]
    the pooled inputs (B, n_s, C) (inputs[0]: the layer's input h), coarse[s−1] the keys and
    values (B, nh, n_s, hs) of the completed blocks of scale s."""

    def __init__(self, n_scales):
        self.fine = KVCache()
        self.inputs = [Buffer(axis=1) for _ in range(n_scales + 1)]
        self.coarse = [KVCache() for _ in range(n_scales)]


class RetinaModelCache(DecodeCache):
    """layers: a RetinaCache per block."""

    def __init__(self, model, batch=None):
        super().__init__(batch)
        self.layers = [RetinaCache(model.config.n_scales) for _ in model.blocks]
        self.layer_pools = [list(block.attn.pool) for block in model.blocks]

    def finish(self, T):
        super().finish(T)
        for layer, pools in zip(self.layers, self.layer_pools):     # keep complete blocks only
            n = T
            for s, pool in enumerate(pools, 1):
                n = pool.complete(n)
                layer.inputs[s].truncate(n)
                layer.coarse[s - 1].truncate(n)
