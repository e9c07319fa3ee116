"""The vanilla transformer language model (GPT-2 style): the paper's baseline.

Token + learned position embeddings, n_layer pre-LayerNorm blocks with full causal
attention at the token scale, a final LayerNorm and a linear head. Every layer works on
all T tokens, so attention holds O(T²) activations per layer: the cost the multi-scale
models of the paper cut down.
"""
from dataclasses import dataclass

from ..nn import Block, ModuleList
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
        proj_std = self.proj_std
        self.add_embeddings()
        self.blocks = ModuleList(Block(C, config.n_head, config.dropout, proj_std)
                                 for _ in range(config.n_layer))
        self.add_head()

    def logits(self, idx):
        x = self.embed(idx)                                           # (B, T, C)
        for block in self.blocks:
            x = block(x)
        return self.head(x)                                           # (B, T, V)
