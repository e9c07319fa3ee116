"""The bottom-up model: pool up the scales, then bring them all back to the tokens.

Paper: Subramanian et al. (2020), the bottom-up multi-scale model ("interleaving causal
transformer layers with pooling"), built with the causal shortening and upsampling operators
of minims/ops/pooling.py (whose docstring states the causality rule for changing scale).

The idea. Representations are built from the bottom up: the token stream is shortened
causally to blocks of k, a stack of coarse layers runs on them, its output is shortened again
to blocks of k² with its own stack, and so on. Layers at coarse scales are cheap (a scale-s
layer holds about 1/kˢ of a token-level layer's activations), so the model can be deep where
depth costs little: the abstract's 30-layer model with a 23 % smaller memory footprint than a
vanilla transformer half as deep is most naturally such a pooling-heavy model. The scales
then come back to the tokens, either added to the fine stream through a learned upsampling
(the default) or through one aggregation layer in which every token attends to the outputs of
all scales it may see; a few token-level layers predict the next token.

Data flow (k = pool, S = n_scales, T_s = ⌈T/kˢ⌉; layout = pre-c₁-…-c_S-post):
    x = pre(wte(idx) + wpe(t))                                 # (B, T, C): `pre` fine layers
    c_s = coarse[s−1](pool[s−1](c_{s−1})), c₀ = x, s = 1 … S   # (B, T_s, C): shift k−1, pool, layers
    combine="aggregate":  x = aggregate(x, [c₁ … c_S])         # (B, T, C): token t attends to its own
                          fine key and every block (s, j) whose last contributing token is ≤ t
    combine="upsample":   x = up[s−1].add_to(x, c_s), s = 1 … S  # (B, T, C): x + c_s upsampled by kˢ
                                                               # (Hourglass)
    logits = lm_head(ln_f(post(x)))                            # (B, T, V)
With the shift rule, block j of scale s has seen tokens ≤ j·kˢ, so token t sees blocks
j ≤ ⌊t/kˢ⌋; with causal_mode="delay", blocks j with (j+1)·kˢ − 1 ≤ t.

Choices (ours):
- Depth: `n_layer` is the total depth; in aggregate mode the aggregation layer is the first
  `post` layer. `layout` ("pre-c₁-…-c_S-post", e.g. "2-8-2") sets n_layer and n_scales.
  Without a layout: aggregate mode pre = 0, post = max(2, ⌈n_layer/4⌉) (the aggregation layer
  plus at least one token layer, so recent tokens inside the current block are seen) and the
  rest at the coarse scales; upsample mode pre = post = ⌊n_layer/4⌋ (at least 1 when room).
- Aggregation layer: queries from the fine stream; keys and values from one shared map of the
  fine stream (its own key only, so no row is empty) and of each scale's LayerNorm-ed output,
  plus a learned per-scale embedding; then a residual feed-forward. Its attention holds
  O(T·Σ_s T_s) activations, once.
- `combine="upsample"` (Hourglass style, the default): each scale's output is upsampled
  straight to the tokens (by kˢ) and added to the fine stream; with `upsample_kind="linear"`
  (the default) offset r inside a block of kˢ gets its own learned map. Measured by
  `python -m minims.experiment ablate` (rows bottom-up/…, table in lessons/results/ablation.md):
  at the same 6 layers and memory, 2,000 steps, upsample+linear (1-4-1) beat upsample+repeat
  by 0.09 bpc and the aggregation layer (1-4-1) by 0.21, beyond the seed spread. The paper's
  aggregation layer stays available as `combine="aggregate"`.
- Shortening is a learned map of each shifted block (`pool_kind="linear"`, the default): with
  upsampling, it beat the mean of the block (row bottom-up/upsample=linear,1-4-1,pool=linear
  against bottom-up/upsample=linear,1-4-1).
- Hourglass's attention kinds (Nawrot et al. 2021; minims/nn/pooling.py): `pool_kind=
  "attention"` follows the mean of each block of c_{s−1} with an attention layer in which
  block j of scale s reads c_{s−1} up to its last input (index ≤ jk; tokens ≤ j·kˢ) and a
  feed-forward; `upsample_kind="attention"` (combine="upsample") adds the "linear"
  upsampling of c_s to the fine stream, then lets token t attend to the blocks 0 … ⌊t/kˢ⌋ of
  c_s (with the delay: a zero vector and blocks ≤ ⌊t/kˢ⌋ − 1) and adds a feed-forward, one
  scale after the other. Each costs 12·C² + 15·C parameters per scale (plus the linear map
  for upsampling) and a prefix attention between the two lengths. In the ablation both did
  worse than the linear maps (attention pooling by 0.056 bpc, attention upsampling by 0.022 on
  a mean-pooled base), so neither is the default.
- `window` > 0 gives the pre/post fine layers local attention (O(T·w) memory).
- No coarse position embeddings: a pooled vector carries its block's mean position.
- Lengths that k does not divide are zero-padded at the end at each scale; padded blocks are
  never visible (they end after T−1) and the upsampled outputs are cropped to T.

Decoding (ours). The cache keeps each scale's outputs c_s seen so far and a KVCache per
layer. A new token runs the pre layers' step; scale s gains a step only when a block of kˢ
tokens completes (with the shift: t a multiple of kˢ; with the delay: t+1), and then its
coarse stack runs one step, once per block, and (aggregate mode) the aggregation layer
appends that block's key and value for scale s. The token's aggregation query then attends
to its own key and every cached block, all of which it may see; the post layers step.
What a step recomputes: pooling a completed block reads its k inputs again (mean, or the
learned map of "linear" pooling); in upsample mode each token maps the latest coarse vector
of every scale through Unpool.add_at ("linear": W_r of its offset r, one C×C product per
token and scale). The attention kinds keep a KVCache each (pool_kv, up_kv): attention
pooling adds the keys of a completed block's k inputs and runs the block's query over the
inputs ≤ its last; attention upsampling adds a coarse vector's key when its block completes
and runs each token's query over the blocks it may see, then its feed-forward (about one
layer's step per token and scale). The prefill runs the forward pass, keeping the caches, and then forgets
any incomplete block (the delay mode's last, zero-padded one).
"""
import functools
from dataclasses import dataclass

import numpy

from .. import backend
from .. import functional as F
from ..nn import Block, Buffer, KVCache, LayerNorm, ModuleList, Parameter, attend, split_heads
from ..nn.cross_attention import CrossAttentionLayers
from ..nn.layers import as_array
from ..nn.local_attention import local_block
from ..nn.pooling import Pool, Unpool
from .base import DecodeCache, LanguageModel
from .multiscale import MultiScaleConfig, option, split_layers
from .registry import register_model


@functools.lru_cache(maxsize=64)
def aggregate_ranges(T, k, lengths, shift=True):
    """Ranges for the aggregation layer: token t's own fine key, and per scale s the blocks
    [0, n_s(t)) whose last contributing token is ≤ t."""
    t = numpy.arange(T)
    ranges = [(t, t + 1)]
    for s, n in enumerate(lengths, 1):
        K = k ** s
        hi = t // K + 1 if shift else (t + 1) // K
        ranges.append((numpy.zeros_like(t), numpy.minimum(hi, n)))
    for lo, hi in ranges:
        lo.flags.writeable = hi.flags.writeable = False
    return tuple(ranges)


class Aggregate(CrossAttentionLayers):
    """One attention layer that brings every scale back to the tokens, then a feed-forward."""

    def __init__(self, n_embd, n_head, k, n_scales, shift=True, dropout=0.0, proj_std=0.02):
        super().__init__()
        self.k, self.shift = k, shift
        self.ln1 = LayerNorm(n_embd)
        self.ln_c = ModuleList(LayerNorm(n_embd) for _ in range(n_scales))
        self.scale_emb = Parameter((n_scales + 1, n_embd))           # row 0: the fine stream
        self.add_layers(n_embd, n_head, dropout, proj_std)            # q, kv, proj, ln2, mlp

    def forward(self, x, coarse, cache=None):
        """x (B, T, C), coarse [(B, T_s, C)] → (B, T, C); `cache` (a KVCache per scale) keeps
        the coarse keys and values."""
        T = x.shape[1]
        h = self.ln1(x)
        q = split_heads(self.q(h), self.n_head)                       # (B, nh, T, hs)
        keyvals = [self.keys_values(h + self.scale_emb[0])]
        for s, c in enumerate(coarse):
            keyvals.append(self.keys_values(self.ln_c[s](c) + self.scale_emb[s + 1]))
            if cache is not None:
                cache[s].append(*keyvals[-1])
        ranges = aggregate_ranges(T, self.k, tuple(c.shape[1] for c in coarse), self.shift)
        y = F.range_attention(q, keyvals, ranges, chunk=16)          # (B, nh, T, hs)
        return self.residual(x, y)                                    # (B, T, C)

    def add_block(self, c, s, cache):
        """A completed block of scale s+1, a plain array c (B, 1, C) (decoding): append its key
        and value to cache[s]."""
        cache[s].append(*self.keys_values(self.ln_c[s].step(as_array(c)) + self.scale_emb.data[s + 1]))

    def step(self, x, cache):
        """The next token, a plain array x (B, 1, C) → (B, 1, C) (decoding: no graph, eval
        mode): its query sees its own key and every completed block of every scale (all in
        its past)."""
        x = as_array(x)
        h = self.ln1.step(x)
        q = split_heads(self.q.step(h), self.n_head)                  # (B, nh, 1, hs)
        own_k, own_v = self.keys_values(h + self.scale_emb.data[0])
        seen = [kv for kv in cache if len(kv)]          # (in delay mode no block may have ended yet)
        k = backend.xp.concatenate([own_k] + [kv.k.view() for kv in seen], axis=2)  # (B, nh, 1 + Σ n_s, hs)
        v = backend.xp.concatenate([own_v] + [kv.v.view() for kv in seen], axis=2)
        return self.residual_step(x, attend(q, k, v))


@dataclass
class BottomUpConfig(MultiScaleConfig):
    """counts(): layers in data-flow order, [pre, scale 1, …, scale S, post]."""
    pool_kind: str = option("pool_kind", "linear", chosen_by="bottom-up/upsample=linear,1-4-1,pool=linear")
    upsample_kind: str = option("upsample_kind", "linear", chosen_by="bottom-up/upsample=linear,1-4-1")
    combine: str = option("combine", "upsample", chosen_by="bottom-up/upsample=linear,1-4-1")

    fine_stacks = 2  # layout: pre, scale 1, …, scale S, post

    def default_counts(self):
        n, S = self.n_layer, self.n_scales
        if n < S + 1:
            raise ValueError(f"n_layer={n} is too shallow for {S} coarse scale(s) and the "
                             f"post layers: use n_layer >= {S + 1}")
        if self.combine == "aggregate":
            pre, post = 0, min(max(2, -(-n // 4)), n - S)
        else:
            pre = post = min(max(1, n // 4), (n - S) // 2)
        return [pre] + split_layers(n - pre - post, S) + [post]

    def check_counts(self, counts):
        if min(counts[1:-1]) < 1:
            raise ValueError(f"layout {self.layout!r}: every coarse scale needs at least one layer")
        if self.combine == "aggregate" and counts[-1] < 1:
            raise ValueError(f"layout {self.layout!r}: combine='aggregate' needs post >= 1 (the "
                             "aggregation layer is the first post layer)")


@register_model("bottom-up")
class BottomUpLM(LanguageModel):
    Config = BottomUpConfig

    def __init__(self, config):
        super().__init__(config)
        C, nh, k, S, p = config.n_embd, config.n_head, config.pool, config.n_scales, config.dropout
        counts = config.counts()
        proj_std = self.proj_std
        shift = config.causal_mode == "shift"
        self.add_embeddings()
        self.pre = ModuleList(local_block(C, nh, p, proj_std, config.window) for _ in range(counts[0]))
        # pool[s]: scale s → s+1; coarse[s]: the layers of scale s+1
        self.pool = ModuleList(Pool(C, k, config.pool_kind, shift, nh, p, proj_std) for _ in range(S))
        self.coarse = ModuleList(ModuleList(Block(C, nh, p, proj_std) for _ in range(n))
                                 for n in counts[1:-1])
        n_post = counts[-1]
        if config.combine == "aggregate":
            self.aggregate = Aggregate(C, nh, k, S, shift, p, proj_std)
            n_post -= 1
        else:  # up[s]: scale s+1 straight to the tokens, by k^(s+1)
            self.up = ModuleList(Unpool(C, k ** (s + 1), config.upsample_kind, not shift, nh, p, proj_std)
                                 for s in range(S))
        self.post = ModuleList(local_block(C, nh, p, proj_std, config.window) for _ in range(n_post))
        self.add_head()

    supports_cache = True

    def logits(self, idx, cache=None):
        x = self.embed(idx)                                           # (B, T, C)
        kv = cache.pre if cache is not None else [None] * len(self.pre)
        for block, kc in zip(self.pre, kv):
            x = block(x, cache=kc)
        S = len(self.pool)
        pool_kv, up_kv = (cache.pool_kv, cache.up_kv) if cache is not None else ([None] * S, [None] * S)
        c, outs = x, []
        for s, (pool, stack) in enumerate(zip(self.pool, self.coarse)):
            c = pool(c, cache=pool_kv[s])                             # (B, T_s, C)
            kv = cache.coarse[s] if cache is not None else [None] * len(stack)
            for block, kc in zip(stack, kv):
                c = block(c, cache=kc)
            outs.append(c)
        if cache is not None:
            for buffer, out in zip(cache.c, [x] + outs):
                buffer.append(out)
        if self.config.combine == "aggregate":
            x = self.aggregate(x, outs, cache=cache.agg if cache is not None else None)  # (B, T, C)
        else:
            for up, c, kv in zip(self.up, outs, up_kv):
                x = up.add_to(x, c, kv)                               # (B, T, C)
        kv = cache.post if cache is not None else [None] * len(self.post)
        for block, kc in zip(self.post, kv):
            x = block(x, cache=kc)
        return self.head(x)                                           # (B, T, V)

    def new_cache(self, batch):
        return BottomUpCache(self, batch)

    def step(self, cache, tokens):
        t = cache.T
        x = self.embed_step(cache, tokens)                            # (B, 1, C)
        for block, kc in zip(self.pre, cache.pre):
            x = block.step(x, kc)
        cache.c[0].append(x)
        # pool up: scale s gains a step when the step just added to scale s−1 completes a block
        for s, (pool, stack) in enumerate(zip(self.pool, self.coarse), 1):
            n = len(cache.c[s])
            if pool.complete(len(cache.c[s - 1])) == n:
                break
            c = pool.pool_at(cache.c[s - 1].tensor(), n, cache.pool_kv[s - 1]).data  # (B, 1, C)
            for block, kc in zip(stack, cache.coarse[s - 1]):
                c = block.step(c, kc)
            cache.c[s].append(c)
            if self.config.combine == "aggregate":
                self.aggregate.add_block(c, s - 1, cache.agg)
        if self.config.combine == "aggregate":
            x = self.aggregate.step(x, cache.agg)                     # (B, 1, C)
        else:
            for s, up in enumerate(self.up, 1):
                x = up.add_at(x, cache.c[s], t, cache.up_kv[s - 1])  # (B, 1, C)
        for block, kc in zip(self.post, cache.post):
            x = block.step(x, kc)
        return self.head_step(x)                                      # (B, V)


class BottomUpCache(DecodeCache):
    """c[s]: each scale's outputs (B, n_s, C), s = 0 … S (c[0]: the pre layers' output);
    pre, coarse[s−1], post: a KVCache per layer; agg: the aggregation layer's coarse keys
    and values, a KVCache per scale; pool_kv[s], up_kv[s]: the KVCache of pool[s] (keys of
    c[s]) and of up[s] (keys of c[s+1]) for the attention kinds, else None."""

    def __init__(self, model, batch=None):
        super().__init__(batch)
        S = len(model.pool)
        self.pools = list(model.pool)
        self.c = [Buffer(axis=1) for _ in range(S + 1)]
        self.pre = [KVCache() for _ in model.pre]
        self.coarse = [[KVCache() for _ in stack] for stack in model.coarse]
        self.agg = [KVCache() for _ in range(S)]
        self.post = [KVCache() for _ in model.post]
        self.pool_kv = [pool.new_cache() for pool in model.pool]
        self.up_kv = [up.new_cache() for up in model.up] if hasattr(model, "up") else [None] * S

    def scale_parts(self, s):
        # keys kept from scale s: pool[s]'s and up[s−1]'s (both of c[s]); any key dropped here
        # is recomputed from c[s] when a step needs it
        keys = [self.pool_kv[s] if s < len(self.pool_kv) else None, self.up_kv[s - 1]]
        return [self.c[s], self.agg[s - 1], *self.coarse[s - 1], *(kv for kv in keys if kv is not None)]
