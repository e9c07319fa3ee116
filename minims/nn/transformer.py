"""Causal self-attention and the pre-LayerNorm transformer block (GPT-2).

The multi-scale models reuse both: a block runs at any scale (fine tokens or coarse
blocks), and attention takes an optional boolean "may attend" mask so the hierarchical
models can restrict what each position sees (local windows, retina masks).
"""
from .. import functional as F
from .layers import MLP, Dropout, LayerNorm, Linear
from .module import Module


class CausalSelfAttention(Module):
    """Multi-head self-attention; position t attends to positions ≤ t (and, with `mask`,
    only where the mask allows)."""

    def __init__(self, n_embd, n_head, dropout=0.0, proj_std=0.02):
        super().__init__()
        if n_embd % n_head:
            raise ValueError(f"n_embd={n_embd} is not divisible by n_head={n_head}")
        self.n_head = n_head
        self.qkv = Linear(n_embd, 3 * n_embd)
        self.proj = Linear(n_embd, n_embd, std=proj_std)
        self.drop = Dropout(dropout)

    def forward(self, x, mask=None):
        B, T, C = x.shape
        nh = self.n_head
        qkv = self.qkv(x).reshape(B, T, 3, nh, C // nh).transpose(2, 0, 3, 1, 4)  # (3, B, nh, T, hs)
        y = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2], causal=True, mask=mask)
        y = y.transpose(0, 2, 1, 3).reshape(B, T, C)                   # (B, T, C)
        return self.drop(self.proj(y))


class Block(Module):
    """x + attn(ln1(x)), then + mlp(ln2(x)): pre-LayerNorm residual block."""

    def __init__(self, n_embd, n_head, dropout=0.0, proj_std=0.02):
        super().__init__()
        self.ln1 = LayerNorm(n_embd)
        self.attn = CausalSelfAttention(n_embd, n_head, dropout, proj_std)
        self.ln2 = LayerNorm(n_embd)
        self.mlp = MLP(n_embd, dropout, proj_std)

    def forward(self, x, mask=None):
        x = x + self.attn(self.ln1(x), mask=mask)
        return x + self.mlp(self.ln2(x))
