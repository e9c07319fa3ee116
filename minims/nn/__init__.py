"""Layers and the Module machinery (minims.nn)."""
from .attention import CausalSelfAttention, attend, merge_heads, split_heads
from .cache import Buffer, KVCache
from .layers import MLP, Dropout, Embedding, LayerNorm, Linear
from .module import Module, ModuleList, Parameter, init_parameters
from .transformer import Block

__all__ = ["Module", "ModuleList", "Parameter", "init_parameters", "Linear", "Embedding",
           "LayerNorm", "Dropout", "MLP", "CausalSelfAttention", "split_heads", "merge_heads",
           "attend", "Block", "Buffer", "KVCache"]
