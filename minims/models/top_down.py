"""The top-down model: a coarse stack models the sequence of blocks and conditions the fine one.

Paper: Subramanian et al. (2020), the top-down multi-scale model, built with the causal
shortening and upsampling operators of minims/ops/pooling.py (whose docstring states the causality
rule for changing scale and its pitfalls).

The idea. Long-range structure (topic, plot, who is speaking) changes slowly, so it can be
modelled on a sequence k times shorter, where a layer costs about 1/k of the memory of a
token-level layer (and attention 1/k²). The token embeddings are shortened causally, a stack
of coarse layers runs over the blocks, and its output is upsampled and added to the token
embeddings before the fine stack, which predicts the tokens. With more scales the coarsest
runs first and each finer scale is conditioned on the next coarser one, like the tiers of
SampleRNN. Since long-range context arrives through the coarse path, the fine stack may use
local attention over the last w tokens: O(T·w) memory instead of O(T²).

Data flow (k = pool, S = n_scales, T_s = ⌈T/kˢ⌉):
    e₀ = wte(idx) + wpe(t)                                     # (B, T, C)
    e_s = pool[s−1](e_{s−1})            s = 1 … S              # (B, T_s, C): shift k−1, pool
    h_S = coarse[S−1](e_S)                                     # (B, T_S, C): causal blocks
    h_s = coarse[s−1](up[s].add_to(e_s, h_{s+1}))  s = S−1 … 1 # (B, T_s, C): e_s + upsampled h_{s+1}
    h₀ = fine(up[0].add_to(e₀, h₁))                            # (B, T, C): full or local attention
    logits = lm_head(ln_f(h₀))                                 # (B, T, V)
Token t receives the scale-1 block ⌊t/k⌋, which has seen tokens ≤ k⌊t/k⌋ ≤ t.

Choices (ours):
- Depth: `n_layer` is the total depth. `layout` gives the layers per scale in data-flow order,
  coarsest first, fine last ("2-2", "1-2-3"), and then sets n_layer and n_scales. Without a
  layout, max(S, ⌊n_layer/2⌋) layers go to the coarse scales (the coarsest gets any extra)
  and the rest, at least one, to the fine stack. Every scale has at least one layer.
- The shortened stream is the pooled token embeddings (positions included): no separate
  coarse position embeddings, the pooled vector carries its block's mean position.
- Shortening and upsampling are learned maps by default (measured, `python -m minims.experiment
  ablate`, rows top-down/pool=linear and top-down/upsample=repeat|linear; the table is in
  lessons/results/ablation.md): `pool_kind="linear"` maps each shifted block of k token vectors
  (k·C values, in order) to one coarse vector, where a mean would forget the order of the
  block's tokens; `upsample_kind="linear"` gives offset r of block j its own map c_j W_r + b_r,
  where "repeat" hands the same c_j to all k positions. At 2,000 steps (T = 256) the 4-2 model
  with linear pooling beat mean pooling by 0.035 bpc, and with linear upsampling beat repeat by
  0.058; k = 4 beat k = 2 and k = 3 (also with less memory), and the delay mode tied the shift
  with linear pooling (row top-down/causal=delay,pool=linear: +0.004, inside the seed spread).
- Hourglass's attention kinds (Nawrot et al. 2021; minims/nn/pooling.py): `pool_kind=
  "attention"` follows the mean of each block with an attention layer in which coarse block j
  reads the vectors of the scale below up to its last input (tokens ≤ jk at scale 1) and a
  feed-forward; `upsample_kind="attention"` adds the "linear" upsampling to e_s, then lets
  each position i attend to the coarse outputs 0 … ⌊i/k⌋ (with the delay: a zero vector and
  blocks ≤ ⌊i/k⌋ − 1) and adds a feed-forward. Each costs 12·C² + 15·C parameters per scale
  (plus the linear map for upsampling) and a T_s × T_{s+1} prefix attention. In the ablation
  both did worse than the linear maps (attention pooling by 0.045 bpc, attention upsampling by
  0.61: it learned far more slowly), so neither is the default.
- The coarse path joins the fine stream once, as a residual added to the embeddings.
- `causal_mode="delay"` pools blocks as they are and hands block j to block j+1 (SampleRNN's
  tiers): also causal, with staler context; "shift" (the spec's recipe) is the default.
- Lengths that kˢ does not divide are zero-padded at the end and cropped after upsampling,
  so generation can feed any T ≤ block_size.

Decoding (ours). The cache keeps, per scale, the pooled embeddings e_s and the coarse outputs
h_s seen so far, and a KVCache per layer. A new token t costs the fine stack's step; a
coarse scale advances only when one of its blocks completes (with the shift: when t is a
multiple of kˢ; with the delay: when t+1 is), and then its stack runs one step, once per
block. So the fine stack receives a new coarse vector only when a block completes; in
between it reuses the latest one. What a step recomputes: pooling a completed block reads
the block's k inputs again (mean, or the learned map of "linear" pooling); a "linear"
upsampling maps the stored coarse vector through W_r of the token's offset r (one C×C
product per token and scale). The attention kinds keep a KVCache each (pool_kv, up_kv):
attention pooling adds the keys of a completed block's k inputs and runs the block's query
over the inputs ≤ its last; attention upsampling adds a coarse vector's key when its block
completes and runs each token's query over the coarse vectors it may see, then its
feed-forward (about one layer's step per token and scale). The prefill runs the forward
pass above, keeping the caches, and then forgets any incomplete block (the delay mode's
last, zero-padded one) and its keys.
"""
from dataclasses import dataclass

from ..nn import Block, Buffer, KVCache, ModuleList
from ..nn.local_attention import local_block
from ..nn.pooling import Pool, Unpool
from .base import DecodeCache, LanguageModel
from .multiscale import MultiScaleConfig, option, split_layers
from .registry import register_model


@dataclass
class TopDownConfig(MultiScaleConfig):
    """counts(): layers per scale in data-flow order, [scale S, …, scale 1, fine]."""
    pool_kind: str = option("pool_kind", "linear", chosen_by="top-down/pool=linear")
    upsample_kind: str = option("upsample_kind", "linear", chosen_by="top-down/upsample=linear")

    fine_stacks = 1  # layout: scale S, …, scale 1, fine

    def default_counts(self):
        coarse = max(self.n_scales, self.n_layer // 2)
        if self.n_layer - coarse < 1:
            raise ValueError(f"n_layer={self.n_layer} is too shallow for {self.n_scales} coarse "
                             f"scale(s) and a fine stack: use n_layer >= {self.n_scales + 1}")
        return split_layers(coarse, self.n_scales) + [self.n_layer - coarse]

    def check_counts(self, counts):
        if min(counts) < 1:
            raise ValueError(f"layout {self.layout!r}: every scale needs at least one layer")


@register_model("top-down")
class TopDownLM(LanguageModel):
    Config = TopDownConfig

    def __init__(self, config):
        super().__init__(config)
        C, nh, k, S, p = config.n_embd, config.n_head, config.pool, config.n_scales, config.dropout
        counts = config.counts()
        proj_std = self.proj_std
        shift = config.causal_mode == "shift"
        self.add_embeddings()
        # pool[s]: scale s → s+1; coarse[s]: the layers of scale s+1; up[s]: scale s+1 → s
        self.pool = ModuleList(Pool(C, k, config.pool_kind, shift, nh, p, proj_std) for _ in range(S))
        self.coarse = ModuleList(ModuleList(Block(C, nh, p, proj_std) for _ in range(counts[S - 1 - s]))
                                 for s in range(S))
        self.up = ModuleList(Unpool(C, k, config.upsample_kind, not shift, nh, p, proj_std) for _ in range(S))
        self.fine = ModuleList(local_block(C, nh, p, proj_std, config.window) for _ in range(counts[-1]))
        self.add_head()

    supports_cache = True

    def logits(self, idx, cache=None):
        S = len(self.pool)
        x = self.embed(idx)                                           # (B, T, C)
        e = [x]
        pool_kv, up_kv = (cache.pool_kv, cache.up_kv) if cache is not None else ([None] * S, [None] * S)
        for pool, kv in zip(self.pool, pool_kv):
            e.append(pool(e[-1], cache=kv))                           # e[s]: (B, T_s, C)
        h = None
        for s in range(S, 0, -1):                                     # coarsest first
            z = e[s] if h is None else self.up[s].add_to(e[s], h, up_kv[s])  # e[s] + upsampled h
            kv = cache.coarse[s - 1] if cache is not None else [None] * len(self.coarse[s - 1])
            for block, c in zip(self.coarse[s - 1], kv):
                z = block(z, cache=c)                                 # (B, T_s, C)
            h = z
            if cache is not None:
                cache.e[s].append(e[s])
                cache.h[s].append(h)
        x = self.up[0].add_to(x, h, up_kv[0])                         # (B, T, C)
        if cache is not None:
            cache.e[0].append(e[0])
        kv = cache.fine if cache is not None else [None] * len(self.fine)
        for block, c in zip(self.fine, kv):
            x = block(x, cache=c)
        return self.head(x)                                           # (B, T, V)

    def new_cache(self, batch):
        return TopDownCache(self, batch)

    def step(self, cache, tokens):
        t, S = cache.T, len(self.pool)
        x = self.embed_step(cache, tokens)                            # (B, 1, C)
        cache.e[0].append(x)
        # pool up: scale s gains a step when the step just added to scale s−1 completes a block
        top = 0                                                       # the coarsest scale that advanced
        for s in range(1, S + 1):
            pool, n = self.pool[s - 1], len(cache.e[s])
            if pool.complete(len(cache.e[s - 1])) == n:
                break
            cache.e[s].append(pool.pool_at(cache.e[s - 1].tensor(), n, cache.pool_kv[s - 1]))  # (B, 1, C)
            top = s
        # coarsest first: each advanced scale runs its stack once on its new step j
        for s in range(top, 0, -1):
            j = len(cache.e[s]) - 1
            z = cache.e[s].view()[:, j:j + 1]                         # (B, 1, C)
            if s < S:
                z = self.up[s].add_at(z, cache.h[s + 1], j, cache.up_kv[s])
            for block, c in zip(self.coarse[s - 1], cache.coarse[s - 1]):
                z = block.step(z, c)
            cache.h[s].append(z)
        x = self.up[0].add_at(x, cache.h[1], t, cache.up_kv[0])  # block ⌊t/k⌋ (or the one before)
        for block, c in zip(self.fine, cache.fine):
            x = block.step(x, c)
        return self.head_step(x)                                      # (B, V)


class TopDownCache(DecodeCache):
    """e[s]: pooled embeddings (B, n_s, C), s = 0 … S (e[0]: the tokens'); h[s]: coarse outputs
    (B, n_s, C), s = 1 … S (h[0] unused); coarse[s−1], fine: a KVCache per layer; pool_kv[s],
    up_kv[s]: the KVCache of pool[s] (keys of e[s]) and of up[s] (keys of h[s+1]) for the
    attention kinds, else None."""

    def __init__(self, model, batch=None):
        super().__init__(batch)
        S = len(model.pool)
        self.pools = list(model.pool)
        self.e = [Buffer(axis=1) for _ in range(S + 1)]
        self.h = [None] + [Buffer(axis=1) for _ in range(S)]
        self.coarse = [[KVCache() for _ in stack] for stack in model.coarse]
        self.fine = [KVCache() for _ in model.fine]
        self.pool_kv = [pool.new_cache() for pool in model.pool]
        self.up_kv = [up.new_cache() for up in model.up]

    def scale_parts(self, s):
        # keys kept from scale s: pool[s]'s (of e[s]) and up[s−1]'s (of h[s]); any key dropped
        # here is recomputed from e[s] or h[s] when a step needs it
        keys = [self.pool_kv[s] if s < len(self.pool_kv) else None, self.up_kv[s - 1]]
        return [self.e[s], self.h[s], *self.coarse[s - 1], *(kv for kv in keys if kv is not None)]
