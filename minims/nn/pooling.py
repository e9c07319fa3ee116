"""Pooling and upsampling as layers: `Pool` (mean, learned or attention) and `Unpool`
(repeat, learned or attention).

Built on the causal operators of minims/ops/pooling.py, whose docstring states the causality rule
and the numbered pitfalls the comments here point to.

The attention kinds are Hourglass's (Nawrot et al. 2021, "Hierarchical Transformers Are More
Efficient Language Models"): its enwik8 ablation found attention upsampling best (1.132 bpc,
against 1.148 for repeat and 1.163 for linear) and attention pooling best (1.124, against
1.129 for the mean and 1.159 for linear). Each is a simple kind followed by one residual
attention layer and a feed-forward between the two scales (`PrefixCrossAttention`,
minims/nn/cross_attention.py); the simple kinds inside are Hourglass's own choices, the mean
for pooling and the linear upsampling. In minims's own ablation (2,000 steps at T = 256,
`python -m minims.experiment ablate`, lessons/results/ablation.md) both did worse than the
linear kinds, attention upsampling much worse (it learned slowly: with learned absolute
positions, finding its own block among the coarse steps is a lookup to learn, where Hourglass
has relative positions); they are options, not defaults. What each vector may attend to is the
causality rule itself:

- Attention pooling: coarse j attends to the fine inputs its pooled vector may summarise, and
  no others: inputs i ≤ jk with the shift (its last input after the k−1 shift), i ≤ jk+k−1
  without it (delay mode, retina keys). `pool_sees`.
- Attention upsampling: fine position i attends to the coarse vectors 0 … ⌊i/k⌋, exactly the
  blocks whose content has reached it in "repeat" upsampling (block j has seen inputs ≤ jk ≤ i).
  With the delay the coarse sequence is first shifted right by one block, as for the other
  kinds, so fine i sees a zero vector (the start) and blocks j ≤ ⌊i/k⌋ − 1, each of which
  ended before the block of i began. `up_sees`.
"""
import numpy

from .. import backend
from ..engine import Tensor
from ..functional import check_factor, concat, pad_end, shift_right, shorten, upsample, zero_steps
from .cross_attention import PrefixCrossAttention
from .cache import KVCache
from .layers import Linear
from .module import Module

POOL_KINDS = ("mean", "linear", "attention")
UPSAMPLE_KINDS = ("repeat", "linear", "attention")


def pool_sees(j, k, shift=True):
    """How many inputs coarse step j may attend to in attention pooling: those up to its last
    input, jk with the shift, jk+k−1 without it (j an int or an int array)."""
    return j * k + (1 if shift else k)


def up_sees(i, k):
    """How many (delay-shifted) coarse steps fine step i may attend to in attention
    upsampling: blocks 0 … ⌊i/k⌋ (i an int or an int array)."""
    return i // k + 1


def _attention(n_embd, n_head, dropout, proj_std, what):
    if n_head is None:
        raise ValueError(f"attention {what} needs n_head (the number of attention heads)")
    return PrefixCrossAttention(n_embd, n_head, dropout, proj_std)


class Pool(Module):
    """Causal shortening by k as a layer: (B, T, C) → (B, ⌈T/k⌉, C) (pads at the end, so any
    T works).

    kind "mean": ShiftPool. kind "linear": a learned map of the k·C values of each (shifted)
    block, y_j = Σ_r s_{jk+r} W_r + b — the paper's convolutional variant, a convolution with
    kernel k and stride k whose k−1 steps of padding are on the LEFT (pitfall 7), never "same".
    kind "attention" (Hourglass's attention pooling): the mean, then
    y_j ← y_j + attention(query y_j; keys and values: inputs 0 … jk, see `pool_sees`), then a
    residual feed-forward (12·C² + 15·C parameters; saved activations: the layer on ⌈T/k⌉
    queries, keys and values of all T inputs and about T²/(2k) attention probabilities per head).
    `shift=False` pools blocks as they are (retina keys, delay mode); attention then sees inputs
    up to jk+k−1. n_head, dropout and proj_std are the attention layer's (kind "attention" only).
    ValueError for an unknown kind, or kind "attention" without n_head.
    """

    def __init__(self, n_embd, k, kind="mean", shift=True, n_head=None, dropout=0.0, proj_std=0.02):
        super().__init__()
        check_factor(k)
        if kind not in POOL_KINDS:
            raise ValueError(f"unknown pooling kind {kind!r}; choose one of {', '.join(POOL_KINDS)}")
        self.k, self.kind, self.shift = k, kind, shift
        self.base = "mean" if kind == "attention" else kind          # the pooling before attention
        if kind == "linear":
            self.proj = Linear(k * n_embd, n_embd)
        if kind == "attention":
            self.attn = _attention(n_embd, n_head, dropout, proj_std, "pooling")

    def forward(self, x, cache=None):
        """x (B, T, C) → (B, ⌈T/k⌉, C); kind "attention" keeps the keys and values of x in
        `cache` (a KVCache from `new_cache`) when one is given."""
        y = self._pooled(x)                                           # (B, ⌈T/k⌉, C)
        if self.kind != "attention":
            return y
        seen = numpy.minimum(pool_sees(numpy.arange(y.shape[1]), self.k, self.shift), x.shape[1])
        return self.attn(y, x, seen, cache)                           # (B, ⌈T/k⌉, C)

    def _pooled(self, x):
        if self.base == "mean":
            return shorten(x, self.k, self.shift, pad=True)           # (B, ⌈T/k⌉, C)
        k = self.k
        x = shift_right(pad_end(x, k), k - 1 if self.shift else 0)    # (B, T', C), k | T'
        B, T, C = x.shape
        return self.proj(x.reshape(B, T // k, k * C))               # (B, T'/k, C)

    # --- decoding (ours): one pooled step at a time ---------------------------------------
    def new_cache(self):
        """What decoding keeps for this layer: a KVCache of its inputs' keys and values
        (kind "attention"), else None."""
        return KVCache() if self.kind == "attention" else None

    def complete(self, n):
        """How many pooled steps n inputs determine fully: with the shift, step j needs
        inputs ≤ jk (⌈n/k⌉ of them); without it, inputs ≤ jk+k−1 (⌊n/k⌋)."""
        return -(-n // self.k) if self.shift else n // self.k

    def pool_at(self, x, j, cache=None):
        """Pooled step j, (B, 1, C), from the inputs seen so far, x (B, n, C) with
        `complete(n) > j`: the same value as forward(x)[:, j]. Kind "attention" needs its
        `cache` (from `new_cache`); the keys of inputs it lacks are added first. A new
        pooling kind needs only `forward` and this method."""
        k = self.k
        lo = j * k - (k - 1 if self.shift else 0)                     # first input of block j
        block = x[:, max(lo, 0):lo + k]                               # (B, ≤ k, C)
        if lo < 0:                                                    # the shift's zeros
            block = concat([zero_steps(x, -lo), block], axis=1)  # (B, k, C)
        if self.base == "mean":
            y = block.mean(axis=1, keepdims=True)                     # (B, 1, C)
        elif self.base == "linear":
            B, _, C = block.shape
            y = self.proj(block.reshape(B, 1, k * C))               # (B, 1, C)
        else:
            raise NotImplementedError(f"pooling kind {self.kind!r} has no pool_at (needed to decode)")
        if self.kind != "attention":
            return y
        n = pool_sees(j, k, self.shift)
        if len(cache) < n:                                            # keys of the new inputs
            self.attn.add_keys(x[:, len(cache):n].data, cache)
        return Tensor._wrap(self.attn.step(y.data, cache, n))         # (B, 1, C)


class Unpool(Module):
    """Upsampling by k as a layer: (B, Tc, C) → (B, T, C), cropped to T ≤ Tc·k.

    kind "repeat": every fine position of block j receives c_j. kind "linear": a learned
    projection per offset r inside the block, y_{jk+r} = c_j W_r + b_r (k different maps).
    kind "attention" (Hourglass's attention upsampling; only through `add_to`, as it reads the
    fine stream too): the "linear" upsampling added to the fine stream x, then a residual
    attention layer whose query at fine position i is that sum and whose keys and values are the
    coarse steps 0 … ⌊i/k⌋ (`up_sees`), then a residual feed-forward (k·C² + k·C + 12·C² + 15·C
    parameters; saved activations: a fine-scale layer without self-attention, plus about
    T²/(2k) attention probabilities per head).
    `delay=True` (the delay mode, ours) first shifts the coarse sequence right by one block, so
    block j reaches the fine positions of block j+1 (attention: fine i sees a zero vector and
    blocks ≤ ⌊i/k⌋ − 1). n_head, dropout and proj_std are the attention layer's.
    ValueError for an unknown kind, or kind "attention" without n_head.
    """

    def __init__(self, n_embd, k, kind="repeat", delay=False, n_head=None, dropout=0.0, proj_std=0.02):
        super().__init__()
        check_factor(k)
        if kind not in UPSAMPLE_KINDS:
            raise ValueError(f"unknown upsampling kind {kind!r}; choose one of {', '.join(UPSAMPLE_KINDS)}")
        self.k, self.kind, self.delay = k, kind, delay
        self.base = "linear" if kind == "attention" else kind        # the upsampling before attention
        if self.base == "linear":
            self.proj = Linear(n_embd, k * n_embd)
        if kind == "attention":
            self.attn = _attention(n_embd, n_head, dropout, proj_std, "upsampling")

    def forward(self, c, T, x=None, cache=None):
        """c (B, Tc, C) → (B, T, C), T ≤ Tc·k: c upsampled; given the fine stream x (B, T, C),
        x plus c upsampled, which kind "attention" (that needs x) follows with its attention
        and feed-forward, keeping the keys and values of the coarse steps in `cache` (a
        KVCache from `new_cache`) when one is given. `add_to(x, c)` says the same."""
        if x is None:
            if self.kind == "attention":
                raise ValueError("attention upsampling reads the fine stream too: call add_to(x, c)")
            return self._upsampled(c, T)
        x = x + self._upsampled(c, T)                                 # (B, T, C)
        if self.kind != "attention":
            return x
        src = shift_right(c, 1) if self.delay else c                  # (B, Tc, C): what fine i may see
        seen = numpy.minimum(up_sees(numpy.arange(T), self.k), src.shape[1])
        return self.attn(x, src, seen, cache)                         # (B, T, C)

    def add_to(self, x, c, cache=None):
        """The fine stream x (B, T, C) plus the upsampled c (B, Tc, C), T ≤ Tc·k → (B, T, C)
        (kind "attention": then its attention from x to c and feed-forward; see `forward`)."""
        return self(c, x.shape[1], x, cache)

    def _upsampled(self, c, T):
        if self.delay:
            c = shift_right(c, 1)                                     # block j → block j+1
        if self.base == "repeat":
            return upsample(c, self.k, T)                             # (B, T, C)
        B, Tc, C = c.shape
        y = self.proj(c).reshape(B, Tc * self.k, C)                 # offset r of block j: c_j W_r + b_r
        return y if T == Tc * self.k else y[:, :T]

    # --- decoding (ours): one fine step at a time -----------------------------------------
    def new_cache(self):
        """What decoding keeps for this layer: a KVCache of the coarse steps' keys and values
        (kind "attention"), else None."""
        return KVCache() if self.kind == "attention" else None

    def add_at(self, x, c, i, cache=None):
        """Fine step i of `add_to`: x a plain array (B, 1, C), c a Buffer (axis 1, minims/nn/
        cache.py) of the coarse steps seen so far, of which it reads block j = ⌊i/k⌋ (j − 1
        with the delay; zeros before the first block), so it must hold more than j → a plain
        array (B, 1, C), equal to add_to(x_all, c_all)[:, i]. Kind "attention" needs its
        `cache` (from `new_cache`); the keys of coarse steps it lacks are added first. A new
        upsampling kind needs only `add_to` and this method."""
        j, r = divmod(i, self.k)
        j -= 1 if self.delay else 0
        cj = backend.xp.zeros_like(x) if j < 0 else c.view()[:, j:j + 1]  # (B, 1, C)
        if self.base == "linear":
            C = x.shape[-1]
            cj = cj @ self.proj.weight.data[:, r * C:(r + 1) * C] + self.proj.bias.data[r * C:(r + 1) * C]
        x = x + cj                                                    # + c_j (repeat) or c_j W_r + b_r
        if self.kind != "attention":
            return x
        n = up_sees(i, self.k)
        while len(cache) < n:                                         # keys of the new coarse steps
            a = len(cache) - (1 if self.delay else 0)                 # its index in c (−1: the zeros)
            new = backend.xp.zeros_like(x) if a < 0 else c.view()[:, a:n - (1 if self.delay else 0)]
            self.attn.add_keys(new, cache)
        return self.attn.step(x, cache, n)                            # (B, 1, C)


__all__ = ["Pool", "Unpool", "POOL_KINDS", "UPSAMPLE_KINDS", "pool_sees", "up_sees"]
