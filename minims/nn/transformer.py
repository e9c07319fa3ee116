"""Causal self-attention and the pre-LayerNorm transformer block (GPT-2), and their cache.

The multi-scale models reuse both: a block runs at any scale (fine tokens or coarse
blocks), and attention takes an optional boolean "may attend" mask so the hierarchical
models can restrict what each position sees (local windows, retina masks).

Decoding (ours, the standard key/value cache): `forward(x, cache=kv)` also keeps the keys
and values of all T positions in a `KVCache`; `step(x, kv)` then takes the next position
only, (B, 1, C), appends its key and value and attends over the cache: O(L) work per token
instead of a forward pass over all L tokens.
"""
from .. import backend as B
from .. import functional as F
from ..engine import Tensor
from .layers import MLP, Dropout, LayerNorm, Linear
from .module import Module


class Buffer:
    """A sequence that grows along one axis while decoding, e.g. (B, n, C) along axis 1.

    `append` adds steps at the end (storage doubles when full: amortised O(1) per step),
    `view()` / `tensor()` are the kept steps as an array / a Tensor (no copy: use them before
    the next `truncate`), `truncate(n)` keeps the first n steps, `drop_before(i)` forgets the
    steps before absolute index i (a sliding window). `len()` counts every step appended,
    dropped ones included, so indices stay absolute.
    """

    def __init__(self, axis):
        self.axis = axis
        self.data = None          # storage; step i lives at data[..., i − offset, ...]
        self.offset = self.start = self.end = 0

    def __len__(self):
        return self.end

    def _index(self, a, b):
        return (slice(None),) * self.axis + (slice(a - self.offset, b - self.offset),)

    def append(self, x):
        """Add the steps of x (Tensor or array; same shape but along `axis`)."""
        x = x.data if isinstance(x, Tensor) else x
        n = x.shape[self.axis]
        if self.data is None or self.end + n - self.offset > self.data.shape[self.axis]:
            kept = None if self.data is None else self.data[self._index(self.start, self.end)]
            shape = list(x.shape)
            shape[self.axis] = max(16, 2 * (self.end - self.start + n))
            self.data, self.offset = B.xp.empty(tuple(shape), dtype=x.dtype), self.start
            if kept is not None:                                      # move the kept steps
                self.data[self._index(self.start, self.end)] = kept
        self.data[self._index(self.end, self.end + n)] = x
        self.end += n

    def view(self):
        """The kept steps [start, len), an array (no copy)."""
        return self.data[self._index(self.start, self.end)]

    def tensor(self):
        """The kept steps as a Tensor (no copy)."""
        return Tensor._wrap(self.view())

    def truncate(self, n):
        self.end = max(self.start, min(self.end, n))

    def drop_before(self, i):
        self.start = max(self.start, min(i, self.end))


class KVCache:
    """The keys and values of one attention layer's past positions, (B, nh, L, hs) each."""

    def __init__(self):
        self.k, self.v = Buffer(axis=2), Buffer(axis=2)

    def __len__(self):
        return len(self.k)

    @property
    def start(self):
        """Absolute index of the first key kept (0 unless `drop_before` was called)."""
        return self.k.start

    def append(self, k, v):
        """Add keys and values (B, nh, n, hs); returns all kept ones as arrays (B, nh, L, hs)."""
        self.k.append(k)
        self.v.append(v)
        return self.k.view(), self.v.view()

    def truncate(self, n):
        self.k.truncate(n)
        self.v.truncate(n)

    def drop_before(self, i):
        self.k.drop_before(i)
        self.v.drop_before(i)


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

    def forward(self, x, mask=None, cache=None):
        """x (B, T, C) → (B, T, C); with a KVCache, its keys and values are kept too."""
        B, T, C = x.shape
        nh = self.n_head
        qkv = self.qkv(x).reshape(B, T, 3, nh, C // nh).transpose(2, 0, 3, 1, 4)  # (3, B, nh, T, hs)
        if cache is not None:
            cache.append(qkv[1], qkv[2])
        y = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2], causal=True, mask=mask)
        y = y.transpose(0, 2, 1, 3).reshape(B, T, C)                   # (B, T, C)
        return self.drop(self.proj(y))

    def qkv_heads(self, x):
        """x (B, 1, C) → q, k, v as arrays (B, nh, 1, hs) each (decoding: no graph)."""
        B, _, C = x.shape
        qkv = self.qkv(x).data.reshape(B, 3, self.n_head, 1, C // self.n_head)  # T = 1 moves freely
        return qkv[:, 0], qkv[:, 1], qkv[:, 2]

    def merge_heads(self, y):
        """y (B, nh, 1, hs) array → the output projection, (B, 1, C) Tensor."""
        B, nh, _, hs = y.shape
        return self.drop(self.proj(Tensor._wrap(y.reshape(B, 1, nh * hs))))

    def step(self, x, cache):
        """The next position only: x (B, 1, C) → (B, 1, C); its key and value join `cache`,
        and it attends to every cached position (all are in its past)."""
        q, k, v = self.qkv_heads(x)                                   # (B, nh, 1, hs) each
        k, v = cache.append(k, v)                                     # (B, nh, L, hs)
        return self.merge_heads(attend(q, k, v))


def attend(q, k, v):
    """softmax(q kᵀ/√hs) v for the single new query of each head, with plain arrays (no
    graph: decoding only). q (B, nh, 1, hs); k, v (B, nh, L, hs) → (B, nh, 1, hs)."""
    s = (q * (1.0 / q.shape[-1] ** 0.5)) @ k.swapaxes(-1, -2)         # (B, nh, 1, L)
    p = B.xp.exp(s - s.max(axis=-1, keepdims=True))
    return (p / p.sum(axis=-1, keepdims=True)) @ v                    # (B, nh, 1, hs)


class Block(Module):
    """x + attn(ln1(x)), then + mlp(ln2(x)): pre-LayerNorm residual block."""

    def __init__(self, n_embd, n_head, dropout=0.0, proj_std=0.02):
        super().__init__()
        self.ln1 = LayerNorm(n_embd)
        self.attn = CausalSelfAttention(n_embd, n_head, dropout, proj_std)
        self.ln2 = LayerNorm(n_embd)
        self.mlp = MLP(n_embd, dropout, proj_std)

    def forward(self, x, mask=None, cache=None):
        x = x + self.attn(self.ln1(x), mask=mask, cache=cache)
        return x + self.mlp(self.ln2(x))

    def step(self, x, cache):
        """One new position, (B, 1, C) → (B, 1, C), with the attention's cache (decoding)."""
        x = x + self.attn.step(self.ln1(x), cache)
        return x + self.mlp(self.ln2(x))
