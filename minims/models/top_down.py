"""The top-down model: a coarse stack models the sequence of blocks and conditions the fine one.

Paper: Subramanian et al. (2020), the top-down multi-scale model; paper-spec.md, "The three
architectures → Top-down (coarse → fine)", built with the operators of "The causality rule
for changing scale" (minims/scale.py).

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
    h_s = coarse[s−1](e_s + up[s](h_{s+1}))   s = S−1 … 1      # (B, T_s, C)
    h₀ = fine(e₀ + up[0](h₁))                                  # (B, T, C): full or local attention
    logits = lm_head(ln_f(h₀))                                 # (B, T, V)
Token t receives the scale-1 block ⌊t/k⌋, which has seen tokens ≤ k⌊t/k⌋ ≤ t.

Choices (ours):
- Depth: `n_layer` is the total depth. `layout` gives the layers per scale in data-flow order,
  coarsest first, fine last ("2-2", "1-2-3"), and then sets n_layer and n_scales. Without a
  layout, max(S, ⌊n_layer/2⌋) layers go to the coarse scales (the coarsest gets any extra)
  and the rest, at least one, to the fine stack. Every scale has at least one layer.
- The shortened stream is the pooled token embeddings (positions included): no separate
  coarse position embeddings, the pooled vector carries its block's mean position.
- The coarse path joins the fine stream once, as a residual added to the embeddings.
- `causal_mode="delay"` pools blocks as they are and hands block j to block j+1 (SampleRNN's
  tiers): also causal, with staler context; "shift" (the spec's recipe) is the default.
- Lengths that kˢ does not divide are zero-padded at the end and cropped after upsampling,
  so generation can feed any T ≤ block_size.
"""
from dataclasses import dataclass

from ..local_attention import local_block
from ..nn import Block, ModuleList
from ..scale import Pool, Unpool, check_options, option, parse_layout, split_layers
from .base import LanguageModel, ModelConfig
from .registry import register_model


@dataclass
class TopDownConfig(ModelConfig):
    pool: int = option("pool", 4)
    n_scales: int = option("n_scales", 1)
    layout: str = option("layout", "")
    window: int = option("window", 0)
    pool_kind: str = option("pool_kind", "linear")
    upsample_kind: str = option("upsample_kind", "linear")
    causal_mode: str = option("causal_mode", "shift")

    def __post_init__(self):
        if self.layout:
            counts = parse_layout(self.layout, 2)
            self.n_scales, self.n_layer = len(counts) - 1, sum(counts)
        super().__post_init__()
        check_options(self)
        if not self.layout:
            coarse = max(self.n_scales, self.n_layer // 2)
            if self.n_layer - coarse < 1:
                raise ValueError(f"n_layer={self.n_layer} is too shallow for {self.n_scales} coarse "
                                 f"scale(s) and a fine stack: use n_layer >= {self.n_scales + 1}")
            counts = split_layers(coarse, self.n_scales) + [self.n_layer - coarse]
            self.layout = "-".join(map(str, counts))
        if min(parse_layout(self.layout)) < 1:
            raise ValueError(f"layout {self.layout!r}: every scale needs at least one layer")

    def counts(self):
        """Layers per scale in data-flow order: [scale S, …, scale 1, fine]."""
        return parse_layout(self.layout)


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
        self.pool = ModuleList(Pool(C, k, config.pool_kind, shift) for _ in range(S))
        self.coarse = ModuleList(ModuleList(Block(C, nh, p, proj_std) for _ in range(counts[S - 1 - s]))
                                 for s in range(S))
        self.up = ModuleList(Unpool(C, k, config.upsample_kind, delay=not shift) for _ in range(S))
        self.fine = ModuleList(local_block(C, nh, p, proj_std, config.window) for _ in range(counts[-1]))
        self.add_head()

    def logits(self, idx):
        x = self.embed(idx)                                           # (B, T, C)
        e = [x]
        for pool in self.pool:
            e.append(pool(e[-1]))                                     # e[s]: (B, T_s, C)
        h = None
        for s in range(len(self.pool), 0, -1):                        # coarsest first
            z = e[s] if h is None else e[s] + self.up[s](h, e[s].shape[1])
            for block in self.coarse[s - 1]:
                z = block(z)                                          # (B, T_s, C)
            h = z
        x = x + self.up[0](h, x.shape[1])                               # (B, T, C)
        for block in self.fine:
            x = block(x)
        return self.head(x)                                           # (B, T, V)
