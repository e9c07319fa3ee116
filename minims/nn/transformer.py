"""The GPT-2 transformer block: multi-head causal self-attention, the MLP, and `Block`, the
pre-LayerNorm residual block that joins them (side by side, as in nanoGPT's model.py).

`CausalSelfAttention` is one template: split heads → attend → merge heads → project.
`forward` projects x to queries, keys and values, splits them into heads, calls `attend` and
merges the heads back before the output projection (GPT-2). A variant (local windows,
minims/nn/local_attention.py; the retina's pooled keys) subclasses it and overrides only
`attend` (and `attend_step` for decoding), so every variant has the same parameters (`qkv`,
`proj`) and the same head layout. `split_heads` and `merge_heads` are the only places heads are
split and merged in minims, except the decoding `step`, where one position makes both a reshape.

The multi-scale models reuse `Block` at any scale (fine tokens or coarse blocks): it takes its
attention as an argument (dense causal attention by default), and `forward` passes an optional
boolean "may attend" mask and a decoding cache on to it.

Decoding (ours, the standard key/value cache): `forward(x, cache=kv)` also keeps the keys
and values of all T positions in a `KVCache`; `step(x, kv)` then takes the next position
only, (B, 1, C), appends its key and value and attends over the cache: O(L) work per token
instead of a forward pass over all L tokens. `MLP` and `Block` have `step` too.
"""
from .. import backend
from .. import functional as F
from .layers import Dropout, LayerNorm, Linear, as_array
from .module import Module


def split_heads(x, n_head, parts=1):
    """(B, T, parts·C) → `parts` arrays (B, nh, T, hs), hs = C/nh, as a tuple (one array for
    parts=1). x is a Tensor, or a plain array when decoding without a graph."""
    B, T, width = x.shape
    hs = width // (parts * n_head)
    if parts == 1:
        return x.reshape(B, T, n_head, hs).transpose(0, 2, 1, 3)   # (B, nh, T, hs)
    y = x.reshape(B, T, parts, n_head, hs).transpose(2, 0, 3, 1, 4)  # (parts, B, nh, T, hs)
    return tuple(y[i] for i in range(parts))


def merge_heads(y):
    """(B, nh, T, hs) → (B, T, nh·hs): the heads side by side again (Tensor or array)."""
    B, nh, T, hs = y.shape
    return y.transpose(0, 2, 1, 3).reshape(B, T, nh * hs)


def attend(q, k, v):
    """softmax(q kᵀ/√hs) v for the single new query of each head, with plain arrays (no
    graph: decoding only). q (B, nh, 1, hs); k, v (B, nh, L, hs) → (B, nh, 1, hs)."""
    s = (q * (1.0 / q.shape[-1] ** 0.5)) @ k.swapaxes(-1, -2)         # (B, nh, 1, L)
    p = backend.xp.exp(s - s.max(axis=-1, keepdims=True))             # unnormalised
    return (p @ v) / p.sum(axis=-1, keepdims=True)                    # (B, nh, 1, hs)


class CausalSelfAttention(Module):
    """Multi-head self-attention; position t attends to positions ≤ t (and, with `mask`,
    only where the mask allows). The template of every self-attention variant."""

    def __init__(self, n_embd, n_head, dropout=0.0, proj_std=0.02):
        super().__init__()
        if n_embd % n_head:
            raise ValueError(f"n_embd={n_embd} is not divisible by n_head={n_head}")
        self.n_head = n_head
        self.qkv = Linear(n_embd, 3 * n_embd)
        self.proj = Linear(n_embd, n_embd, std=proj_std)
        self.drop = Dropout(dropout)

    def forward(self, x, mask=None, cache=None):
        """x (B, T, C) → (B, T, C); with a cache, what the next steps need is kept too."""
        q, k, v = split_heads(self.qkv(x), self.n_head, parts=3)     # (B, nh, T, hs) each
        y = self.attend(q, k, v, x, mask=mask, cache=cache)           # (B, nh, T, hs)
        return self.drop(self.proj(merge_heads(y)))                   # (B, T, C)

    def attend(self, q, k, v, x, mask=None, cache=None):
        """The variant's part: q, k, v (B, nh, T, hs) of the layer input x (B, T, C) →
        (B, nh, T, hs). Here: dense causal attention; a KVCache keeps k and v."""
        if cache is not None:
            cache.append(k, v)
        return F.scaled_dot_product_attention(q, k, v, causal=True, mask=mask)

    def step(self, x, cache):
        """The next position only: a plain array x (B, 1, C) → (B, 1, C), attending through
        `cache` (decoding: no graph, eval mode)."""
        x = as_array(x)
        B, _, C = x.shape
        # one position: splitting and merging heads are reshapes (no transpose to make)
        qkv = self.qkv.step(x).reshape(B, 3, self.n_head, 1, C // self.n_head)
        y = self.attend_step(qkv[:, 0], qkv[:, 1], qkv[:, 2], x, cache)  # (B, nh, 1, hs) each
        return self.proj.step(y.reshape(B, 1, C))

    def attend_step(self, q, k, v, x, cache):
        """The variant's part when decoding (arrays, no graph): the new position's key and
        value join `cache` and its query attends to every cached position (all in its past)."""
        k, v = cache.append(k, v)                                     # (B, nh, L, hs)
        return attend(q, k, v)


class MLP(Module):
    """The transformer feed-forward: C → 4C → GELU → C (GPT-2)."""

    def __init__(self, n_embd, dropout=0.0, proj_std=0.02):
        super().__init__()
        self.fc = Linear(n_embd, 4 * n_embd)
        self.proj = Linear(4 * n_embd, n_embd, std=proj_std)
        self.drop = Dropout(dropout)

    def forward(self, x):
        return self.drop(self.proj(F.gelu(self.fc(x))))

    def step(self, x):
        """Decoding: a plain array (..., C) → (..., C) (eval mode: no dropout)."""
        return self.proj.step(F.GELU.run(self.fc.step(x)))


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
