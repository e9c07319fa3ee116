"""Layers and the Module machinery (minims.nn)."""
from .cache import Buffer, KVCache
from .layers import Dropout, Embedding, LayerNorm, Linear
from .module import Module, ModuleList, Parameter, init_parameters
from .transformer import MLP, Block, CausalSelfAttention, attend, merge_heads, split_heads

__all__ = ["Module", "ModuleList", "Parameter", "init_parameters", "Linear", "Embedding",
           "LayerNorm", "Dropout", "MLP", "CausalSelfAttention", "split_heads", "merge_heads",
           "attend", "Block", "Buffer", "KVCache"]
