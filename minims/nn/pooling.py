"""Pooling and upsampling as layers: `Pool` (mean or learned) and `Unpool` (repeat or learned).

Built on the causal operators of minims/ops/pooling.py, whose docstring states the causality rule
and the numbered pitfalls the comments here point to.
"""
from ..functional import check_factor, concat, pad_end, shift_right, shorten, upsample, zero_steps
from .layers import Linear
from .module import Module

POOL_KINDS = ("mean", "linear")
UPSAMPLE_KINDS = ("repeat", "linear")


class Pool(Module):
    """Causal shortening by k as a layer (pads at the end, so any T works).

    kind "mean": ShiftPool. kind "linear": a learned map of the k·C values of each (shifted)
    block, y_j = Σ_r s_{jk+r} W_r + b — the paper's convolutional variant, a convolution with
    kernel k and stride k whose k−1 steps of padding are on the LEFT (pitfall 7), never "same".
    `shift=False` pools blocks as they are (retina keys, delay mode).
    """

    def __init__(self, n_embd, k, kind="mean", shift=True):
        super().__init__()
        check_factor(k)
        if kind not in POOL_KINDS:
            raise ValueError(f"unknown pooling kind {kind!r}; choose one of {', '.join(POOL_KINDS)}")
        self.k, self.kind, self.shift = k, kind, shift
        if kind == "linear":
            self.proj = Linear(k * n_embd, n_embd)

    def forward(self, x):
        if self.kind == "mean":
            return shorten(x, self.k, self.shift, pad=True)           # (B, ⌈T/k⌉, C)
        k = self.k
        x = shift_right(pad_end(x, k), k - 1 if self.shift else 0)    # (B, T', C), k | T'
        B, T, C = x.shape
        return self.proj(x.reshape(B, T // k, k * C))               # (B, T'/k, C)

    # --- decoding (ours): one pooled step at a time ---------------------------------------
    def complete(self, n):
        """How many pooled steps n inputs determine fully: with the shift, step j needs
        inputs ≤ jk (⌈n/k⌉ of them); without it, inputs ≤ jk+k−1 (⌊n/k⌋)."""
        return -(-n // self.k) if self.shift else n // self.k

    def pool_at(self, x, j):
        """Pooled step j, (B, 1, C), from the inputs seen so far, x (B, n, C) with
        `complete(n) > j`: the same value as forward(x)[:, j]. A new pooling kind needs
        only `forward` and this method."""
        k = self.k
        lo = j * k - (k - 1 if self.shift else 0)                     # first input of block j
        block = x[:, max(lo, 0):lo + k]                               # (B, ≤ k, C)
        if lo < 0:                                                    # the shift's zeros
            block = concat([zero_steps(x, -lo), block], axis=1)  # (B, k, C)
        if self.kind == "mean":
            return block.mean(axis=1, keepdims=True)                  # (B, 1, C)
        if self.kind == "linear":
            B, _, C = block.shape
            return self.proj(block.reshape(B, 1, k * C))            # (B, 1, C)
        raise NotImplementedError(f"pooling kind {self.kind!r} has no pool_at (needed to decode)")


class Unpool(Module):
    """Upsampling by k as a layer: (B, Tc, C) → (B, T, C), cropped to T ≤ Tc·k.

    kind "repeat": every fine position of block j receives c_j. kind "linear": a learned
    projection per offset r inside the block, y_{jk+r} = c_j W_r + b_r (k different maps).
    `delay=True` (the delay mode, ours) first shifts the coarse sequence right by one block, so
    block j reaches the fine positions of block j+1.
    """

    def __init__(self, n_embd, k, kind="repeat", delay=False):
        super().__init__()
        check_factor(k)
        if kind not in UPSAMPLE_KINDS:
            raise ValueError(f"unknown upsampling kind {kind!r}; choose one of {', '.join(UPSAMPLE_KINDS)}")
        self.k, self.kind, self.delay = k, kind, delay
        if kind == "linear":
            self.proj = Linear(n_embd, k * n_embd)

    def forward(self, c, T):
        if self.delay:
            c = shift_right(c, 1)                                     # block j → block j+1
        if self.kind == "repeat":
            return upsample(c, self.k, T)                             # (B, T, C)
        B, Tc, C = c.shape
        y = self.proj(c).reshape(B, Tc * self.k, C)                 # offset r of block j: c_j W_r + b_r
        return y if T == Tc * self.k else y[:, :T]

    # --- decoding (ours): one fine step at a time -----------------------------------------
    def fine_at(self, c, i):
        """Fine step i, (B, 1, C), from the coarse steps seen so far, c (B, n, C): the same
        value as forward(c, T)[:, i] for any T > i. It reads coarse block j = ⌊i/k⌋ (j − 1 with
        the delay; zeros before the first block), so n must exceed that j. A new upsampling
        kind needs only `forward` and this method."""
        j, r = divmod(i, self.k)
        j -= 1 if self.delay else 0
        cj = zero_steps(c, 1) if j < 0 else c[:, j:j + 1]      # (B, 1, C)
        if self.kind == "repeat":
            return cj
        if self.kind == "linear":
            C = cj.shape[-1]
            w, b = self.proj.weight[:, r * C:(r + 1) * C], self.proj.bias[r * C:(r + 1) * C]
            return cj @ w + b                                         # c_j W_r + b_r
        raise NotImplementedError(f"upsampling kind {self.kind!r} has no fine_at (needed to decode)")


__all__ = ["Pool", "Unpool", "POOL_KINDS", "UPSAMPLE_KINDS"]
