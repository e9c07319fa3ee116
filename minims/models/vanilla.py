"""The vanilla transformer language model (GPT-2 style): the paper's baseline.

Token + learned position embeddings, n_layer pre-LayerNorm blocks with full causal
attention at the token scale, a final LayerNorm and a linear head. Every layer works on
all T tokens, so attention holds O(T²) activations per layer: the cost the multi-scale
models of the paper cut down.

Decoding: each block keeps the keys and values of the past tokens (a KVCache), so a new
token costs one query against L cached keys per layer instead of a forward pass over L
tokens. Nothing needs recomputation until the context passes block_size (then every
position shifts and generate re-runs the last block_size tokens).
"""
from dataclasses import dataclass

from ..nn import Block, KVCache, ModuleList
from .base import DecodeCache, LanguageModel, ModelConfig
from .registry import register_model


@dataclass
class VanillaConfig(ModelConfig):
    pass


@register_model("vanilla")
class VanillaLM(LanguageModel):
    Config = VanillaConfig

    def __init__(self, config):
        super().__init__(config)
        C = config.n_embd
        proj_std = self.proj_std
        self.add_embeddings()
        self.blocks = ModuleList(Block(C, config.n_head, config.dropout, proj_std)
                                 for _ in range(config.n_layer))
        self.add_head()

    supports_cache = True

    def logits(self, idx, cache=None):
        x = self.embed(idx)                                           # (B, T, C)
        kv = cache.blocks if cache is not None else [None] * len(self.blocks)
        for block, c in zip(self.blocks, kv):
            x = block(x, cache=c)
        return self.head(x)                                           # (B, T, V)

    def new_cache(self, batch):
        cache = DecodeCache(batch)
        cache.blocks = [KVCache() for _ in self.blocks]               # (B, nh, L, hs) keys, values
        return cache

    def step(self, cache, tokens):
        x = self.embed_step(cache, tokens)                            # (B, 1, C)
        for block, c in zip(self.blocks, cache.blocks):
            x = block.step(x, c)
        return self.head_step(x)                                      # (B, V)
