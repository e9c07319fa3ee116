"""The vanilla transformer language model (GPT-2 style): the paper's baseline.

Token + learned position embeddings, n_layer pre-LayerNorm blocks with full causal
attention at the token scale, a final LayerNorm and a linear head. Every layer works on
all T tokens, so attention holds O(T²) activations per layer: the cost the multi-scale
models of the paper cut down.
"""
import math
from dataclasses import dataclass

from .. import backend as B
from ..nn import Block, Embedding, LayerNorm, Linear, ModuleList
from .base import LanguageModel, ModelConfig
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
        proj_std = 0.02 / math.sqrt(2 * config.n_layer)  # GPT-2: residual projections scaled
        self.wte = Embedding(config.vocab_size, C)
        # positional embeddings are not decayed (a choice shared by all models here)
        self.wpe = Embedding(config.block_size, C, decay=False)
        self.blocks = ModuleList(Block(C, config.n_head, config.dropout, proj_std)
                                 for _ in range(config.n_layer))
        self.ln_f = LayerNorm(C)
        self.lm_head = Linear(C, config.vocab_size, bias=False)
        self.init_weights()

    def logits(self, idx):
        T = idx.shape[1]
        x = self.wte(idx) + self.wpe(B.xp.arange(T))                  # (B, T, C)
        for block in self.blocks:
            x = block(x)
        return self.lm_head(self.ln_f(x))                             # (B, T, V)
