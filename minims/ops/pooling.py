"""Changing scale without looking into the future: causal shortening and upsampling.

The operators every multi-scale model of Subramanian et al. (2020) is built from, and the
rule that keeps them causal (the logits at position t may depend on tokens 0 … t only).

1. Shorten (B, T, C) → (B, T/k, C): shift the sequence right by k−1 (zeros enter at the
   start), then pool each block of k neighbours. Coarse j then summarises h_{jk−k+1} … h_{jk}.
2. Causal layers at the coarse scale (coarse j sees coarse 0 … j, i.e. tokens ≤ jk).
3. Upsample (B, T/k, C) → (B, T, C): fine positions jk … jk+k−1 all receive coarse j; each
   of them is ≥ jk, so nothing from the future arrives.

Worked example, k = 2, T = 8. Shifted s_t = h_{t−1} (s₀ = 0):
    c₀ = pool(0, h₀)   c₁ = pool(h₁, h₂)   c₂ = pool(h₃, h₄)   c₃ = pool(h₅, h₆)
    upsampled: positions 0,1 ← c₀ (sees up to h₀); 2,3 ← c₁ (h₂); 4,5 ← c₂ (h₄); 6,7 ← c₃ (h₆).
Without the shift, c₀ = pool(h₀, h₁) would reach position 0 and hand it h₁, the very token it
must predict: the classic leak. The fine residual stream carries the newest tokens.

`shift=False` pools each block as it is (block j = h_{jk} … h_{jk+k−1}). That is causal only
if block j is shown to positions after its last index jk+k−1: the retina model's coarse keys,
and the "delay" mode (ours, SampleRNN's tiers), which gives block j to the fine positions of
block j+1 (`Unpool(..., delay=True)` shifts the coarse sequence by one block).

The ops (`ShiftPool`, `Upsample`) work on axis 1 of (B, T, …) arrays, group neighbours with
`reshape(B, T/k, k, …)` (never the strided `reshape(B, k, T/k, …)`, pitfall 3) and reduce the
upsampling gradient with a reshape-sum (never a fancy-index `+=`, pitfall 4). Lengths that k
does not divide are padded at the END and cropped after upsampling (pitfall 5): padding at the
front would move the block boundaries, so a prompt would be cut into different blocks during
generation than during training. Code calls them through minims/functional.py: `shorten`,
`upsample`, `shift_right`, `pad_end` and `check_factor`.

The pitfalls: how implementations of changing scale leak the future, or break (numbered, so the
code, the tests and the lessons can point here; tests/test_scale.py and tests/test_models.py
keep broken variants of 1–3 and 8 and check that the leak test catches them):
1. No shift, or a shift of k−2: the first position of a block sees its own target token.
2. Several scales with a shift only at the first level, then pooling again: the second level
   leaks. Shift by k−1 in each scale's own units at each level (what the models do), or shift
   once by K−1 at the fine level and pool by K = k·k.
3. Grouping strided positions: `reshape(B, k, T/k, C)` puts positions t, t+T/k, … in one block
   and leaks badly; neighbours are `reshape(B, T/k, k, C)`. Never mix batch and time.
4. Upsampling's backward with a fancy-index `dx[idx] += dy`: repeated indices drop updates in
   NumPy (and are undefined in CuPy); reduce with a reshape-sum instead.
5. T not divisible by k: pad at the end and crop after upsampling, never pad at the front.
6. k = 1 (a zero shift): `x[:, :-0]` is empty in NumPy; a zero shift must not slice.
7. Learned (convolutional) pooling must be causal: its k−1 steps of padding go on the left,
   never "same" padding.
8. Blocks pooled as they are (retina keys, delay mode): a block may be shown to a position only
   once its LAST token is ≤ that position, never from the block's start; every attention row
   keeps at least its own key (an all-masked row would give NaN).
9. Nothing may take statistics over the sequence axis (no batch norm over time, no mean over T).

The layers built on these ops, `Pool` and `Unpool` (mean, learned or attention pooling;
repeat, learned or attention upsampling), are in minims/nn/pooling.py, with the causal masks
of the attention kinds; the model options that choose them in minims/models/multiscale.py.

Decoding one token at a time (ours): `Pool.complete(n)` says how many pooled steps n inputs
determine, `Pool.pool_at` computes one pooled step and `Unpool.add_at` one fine step of
`Unpool.add_to` (the fine stream plus the upsampled coarse one), each equal to the matching
row of the whole-sequence call. A new pooling or upsampling kind implements both; the
decoding tests check the two agree.
"""
from .. import backend
from ..engine import Function


class ShiftPool(Function):
    # y_j = (1/k) Σ_{r<k} x_{jk+r−shift},  x_i = 0 for i < 0   (shift = k−1: the causal rule)
    # Each x_i with i < T−shift feeds exactly one y_j, j = (i+shift) // k, with weight 1/k; the
    # last `shift` inputs fall off the end. So dx = (dy repeated k times along time) / k,
    # shifted left by `shift`, zeros at the end. Nothing needs saving: the op is linear.
    @staticmethod
    def forward(ctx, x, k, shift):
        B, T, rest = x.shape[0], x.shape[1], x.shape[2:]
        if shift:  # (a zero shift must not slice: x[:, :-0] would be empty, pitfall 6)
            xs = backend.xp.zeros_like(x)
            xs[:, shift:] = x[:, :T - shift]                          # (B, T, …) shifted right
        else:
            xs = x
        ctx.k, ctx.shift, ctx.shape = k, shift, x.shape
        return xs.reshape(B, T // k, k, *rest).mean(axis=2)         # (B, T/k, …)

    @staticmethod
    def backward(ctx, g):
        k, shift, shape = ctx.k, ctx.shift, ctx.shape
        B, Tc = g.shape[0], g.shape[1]
        g = g * (1.0 / k)
        gs = backend.xp.broadcast_to(g[:, :, None], (B, Tc, k) + g.shape[2:]).reshape(shape)  # (B, T, …)
        if not shift:
            return gs
        gx = backend.xp.zeros(shape, dtype=g.dtype)
        gx[:, :shape[1] - shift] = gs[:, shift:]
        return gx


class Upsample(Function):
    # y_{jk+r} = x_j for r = 0 … k−1.  dx_j = Σ_r dy_{jk+r}: view dy as (B, T/k, k, …) and
    # sum the block axis (a reshape-sum, never `dx[idx] += dy` with repeated indices).
    @staticmethod
    def forward(ctx, x, k):
        ctx.k = k
        return backend.xp.repeat(x, k, axis=1)                              # (B, T·k, …)

    @staticmethod
    def backward(ctx, g):
        k = ctx.k
        return g.reshape(g.shape[0], g.shape[1] // k, k, *g.shape[2:]).sum(axis=2)
