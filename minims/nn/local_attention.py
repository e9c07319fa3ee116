"""Local self-attention: each token attends to the last `window` tokens only (O(T·w) memory).

The attention template of minims/nn/transformer.py with its `attend` replaced by range
attention (minims/ops/range_attention.py) over one window of keys per query.
"""
from ..functional import local_ranges, range_attention
from .transformer import Block, CausalSelfAttention, attend


class LocalSelfAttention(CausalSelfAttention):
    """Causal self-attention restricted to the last `window` tokens (saved memory O(T·w)).

    Same parameters as CausalSelfAttention (qkv, proj), so a checkpoint's names do not
    depend on the window. The query chunk defaults to max(16, window): saved scores
    ≤ B·n_head·T·(chunk + window − 1) per layer.
    """

    def __init__(self, n_embd, n_head, window, dropout=0.0, proj_std=0.02, chunk=None):
        super().__init__(n_embd, n_head, dropout, proj_std)
        if window < 1:
            raise ValueError(f"local attention window must be >= 1, got {window}")
        self.window = window
        self.chunk = chunk or max(16, window)

    def attend(self, q, k, v, x, mask=None, cache=None):
        """q, k, v (B, nh, T, hs) → (B, nh, T, hs): each query over the last `window` keys."""
        if mask is not None:
            raise ValueError("LocalSelfAttention takes no mask: its window is the mask")
        T = q.shape[2]
        if cache is not None:
            cache.append(k, v)
            cache.drop_before(T - self.window + 1)                   # the next query's window
        return range_attention(q, [(k, v)], local_ranges(T, self.window), self.chunk)

    def attend_step(self, q, k, v, x, cache):
        """The next position t only (arrays (B, nh, 1, hs)): attends to the cached keys of
        [t−w+1, t]; keys that leave the window are dropped from the cache."""
        cache.drop_before(len(cache) + 1 - self.window)
        k, v = cache.append(k, v)                                     # (B, nh, ≤ w, hs)
        return attend(q, k, v)


def local_block(n_embd, n_head, dropout=0.0, proj_std=0.02, window=0):
    """A Block with full causal attention (window 0) or local attention over `window` tokens."""
    attn = LocalSelfAttention(n_embd, n_head, window, dropout, proj_std) if window else None
    return Block(n_embd, n_head, dropout, proj_std, attn=attn)
