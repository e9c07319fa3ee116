"""Attention from one sequence to a prefix of another: the residual layer inside attention
pooling and attention upsampling (minims/nn/pooling.py).

Source: Hourglass (Nawrot et al. 2021, "Hierarchical Transformers Are More Efficient Language
Models"), whose attention pooling and attention upsampling each add one attention layer and
one feed-forward between two scales: the queries come from one scale, the keys and values
from the other. Written here as a pre-LayerNorm residual block like every other block of
minims (ours; Hourglass normalises in other places and uses relative positions, where minims
has the learned absolute positions of the embeddings in every vector):

    y = x + proj(attend(q(ln1(x)), kv(ln_src(src))))     # query i sees src[:, :n_i] only
    y = y + mlp(ln2(y))                                   # (B, Tq, C)

x (B, Tq, C) are the queries' stream and src (B, Tk, C) the other scale. Which keys a query
may see is the caller's to decide (it is what keeps a model causal): query i sees the first
n_i ≥ 1 positions of src, a prefix, so the mask is one range per query and the attention is
`range_attention` (the library's op; it keeps the probabilities of each chunk of 16 queries
over the keys they reach, about half of the dense (Tq, Tk) matrix for a prefix mask).

Decoding (ours): `add_keys` appends the keys and values of new source positions to a
KVCache and `step` runs one query over the first n cached positions, on plain arrays.
"""
import numpy

from ..engine import Tensor
from ..functional import range_attention
from .layers import Dropout, LayerNorm, Linear, as_array
from .module import Module
from .transformer import MLP, attend, merge_heads, split_heads


class CrossAttentionLayers(Module):
    """What a cross-attention block shares (this one and bottom-up's aggregation layer): the
    query and key/value maps, the output projection into the residual stream and the
    feed-forward after it. A subclass makes its LayerNorms (`ln1` for the queries, its own for
    the keys), then calls `add_layers`."""

    def add_layers(self, n_embd, n_head, dropout=0.0, proj_std=0.02):
        if n_embd % n_head:
            raise ValueError(f"n_embd={n_embd} is not divisible by n_head={n_head}")
        self.n_head = n_head
        self.q = Linear(n_embd, n_embd)
        self.kv = Linear(n_embd, 2 * n_embd)
        self.proj = Linear(n_embd, n_embd, std=proj_std)
        self.drop = Dropout(dropout)
        self.ln2 = LayerNorm(n_embd)
        self.mlp = MLP(n_embd, dropout, proj_std)

    def keys_values(self, z):
        """(B, n, C) normalised sources → keys, values (B, nh, n, hs) (Tensors, or arrays when
        decoding)."""
        kv = self.kv(z) if isinstance(z, Tensor) else self.kv.step(z)
        return split_heads(kv, self.n_head, parts=2)

    def residual(self, x, y):
        """x (B, Tq, C) plus the projected attention output y (B, nh, Tq, hs), then plus the
        feed-forward of that: (B, Tq, C)."""
        x = x + self.drop(self.proj(merge_heads(y)))
        return x + self.mlp(self.ln2(x))

    def residual_step(self, x, y):
        """`residual` for one position, on plain arrays (decoding: no dropout)."""
        x = x + self.proj.step(merge_heads(y))
        return x + self.mlp.step(self.ln2.step(x))


class PrefixCrossAttention(CrossAttentionLayers):
    """x (B, Tq, C) attends to a prefix of src (B, Tk, C), then a feed-forward; both residual.

    Parameters: ln1, ln_src, ln2 (2·C each), q (C² + C), kv (2·C² + 2·C), proj (C² + C) and
    the MLP (8·C² + 5·C): 12·C² + 15·C in all."""

    def __init__(self, n_embd, n_head, dropout=0.0, proj_std=0.02):
        super().__init__()
        self.ln1 = LayerNorm(n_embd)
        self.ln_src = LayerNorm(n_embd)
        self.add_layers(n_embd, n_head, dropout, proj_std)

    def forward(self, x, src, n_seen, cache=None):
        """x (B, Tq, C), src (B, Tk, C), n_seen an int array (Tq,) with 1 ≤ n_seen[i] ≤ Tk:
        query i sees src positions < n_seen[i]. Returns (B, Tq, C). A KVCache `cache` keeps
        the keys and values of all Tk source positions. ValueError for a query with no key or
        one past Tk (from range_attention)."""
        q = split_heads(self.q(self.ln1(x)), self.n_head)             # (B, nh, Tq, hs)
        k, v = self.keys_values(self.ln_src(src))                     # (B, nh, Tk, hs)
        if cache is not None:
            cache.append(k, v)
        n_seen = numpy.asarray(n_seen, dtype=numpy.int64)
        y = range_attention(q, [(k, v)], [(numpy.zeros_like(n_seen), n_seen)], chunk=16)  # (B, nh, Tq, hs)
        return self.residual(x, y)                                    # (B, Tq, C)

    # --- decoding (ours): plain arrays, no graph ------------------------------------------
    def add_keys(self, src, cache):
        """Append the keys and values of new source positions, a plain array (B, m, C), to
        `cache` (a KVCache)."""
        cache.append(*self.keys_values(self.ln_src.step(as_array(src))))

    def step(self, x, cache, n):
        """One query, a plain array (B, 1, C) → (B, 1, C), over the first n positions of the
        source kept in `cache` (which must hold at least n)."""
        x = as_array(x)
        q = split_heads(self.q.step(self.ln1.step(x)), self.n_head)   # (B, nh, 1, hs)
        k, v = cache.k.view()[:, :, :n], cache.v.view()[:, :, :n]     # (B, nh, n, hs)
        return self.residual_step(x, attend(q, k, v))


__all__ = ["CrossAttentionLayers", "PrefixCrossAttention"]
