"""The pre-LayerNorm transformer block (GPT-2), with any self-attention variant.

The multi-scale models reuse it at any scale (fine tokens or coarse blocks): the block takes
its attention as an argument (dense causal attention by default; local windows or the
retina's pooled keys otherwise, minims/nn/attention.py), and `forward` passes an optional
boolean "may attend" mask and a decoding cache on to it.
"""
from .attention import CausalSelfAttention
from .layers import MLP, LayerNorm, as_array
from .module import Module


class Block(Module):
    """x + attn(ln1(x)), then + mlp(ln2(x)): pre-LayerNorm residual block.

    attn: the attention layer (default CausalSelfAttention(n_embd, n_head, dropout,
    proj_std)); its parameters are named `attn.*` whichever variant it is."""

    def __init__(self, n_embd, n_head, dropout=0.0, proj_std=0.02, attn=None):
        super().__init__()
        self.ln1 = LayerNorm(n_embd)
        self.attn = attn if attn is not None else CausalSelfAttention(n_embd, n_head, dropout, proj_std)
        self.ln2 = LayerNorm(n_embd)
        self.mlp = MLP(n_embd, dropout, proj_std)

    def forward(self, x, mask=None, cache=None):
        x = x + self.attn(self.ln1(x), mask=mask, cache=cache)
        return x + self.mlp(self.ln2(x))

    def step(self, x, cache):
        """One new position, a plain array (B, 1, C) → (B, 1, C), with the attention's cache
        (decoding: no graph, eval mode). A Tensor is taken too (its array is used)."""
        x = as_array(x)
        x = x + self.attn.step(self.ln1.step(x), cache)
        return x + self.mlp.step(self.ln2.step(x))
