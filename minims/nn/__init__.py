"""Layers and the Module machinery (minims.nn)."""
from .layers import MLP, Dropout, Embedding, LayerNorm, Linear
from .module import Module, ModuleList, Parameter, init_parameters
from .transformer import Block, Buffer, CausalSelfAttention, KVCache

__all__ = ["Module", "ModuleList", "Parameter", "init_parameters", "Linear", "Embedding",
           "LayerNorm", "Dropout", "MLP", "CausalSelfAttention", "Block",
           "Buffer", "KVCache"]
