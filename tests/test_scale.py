"""The scale operators (minims/ops/pooling.py), their layers (minims/nn/pooling.py) and range attention
(minims/ops/range_attention.py, minims/nn/local_attention.py):
values, errors, and the leak test on each operator's round trip, with the broken variants of
the pitfalls of minims/ops/pooling.py made to fail it (they live here, never in the library)."""
import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import minims
import minims.functional as F
from minims import Tensor
from minims.nn.local_attention import LocalSelfAttention
from minims.nn.pooling import Pool, Unpool
from minims.models.retina import RetinaAttention, retina_ranges
from minims.nn import Block, Embedding, Linear, Module, ModuleList, init_parameters
from minims.functional import local_ranges, pad_end, range_attention, shift_right, shorten, upsample

from minims.testing import causality as leak

V, C = 7, 8


def seq(T, B=1, C=1):
    """(B, T, C) float64 tensor whose value is the position t: easy to read in asserts."""
    return Tensor(np.broadcast_to(np.arange(T, dtype=np.float64)[None, :, None] + 1, (B, T, C)).copy())


# --- values -----------------------------------------------------------------------------------

def test_worked_example_k2_T8():
    """scale.py's worked example: c₀ = pool(0, h₀), c₁ = pool(h₁, h₂), c₂ = pool(h₃, h₄), c₃ = pool(h₅, h₆)."""
    h = seq(8)                                                        # h_t = t + 1
    c = shorten(h, 2).numpy()[0, :, 0]
    np.testing.assert_array_equal(c, [(0 + 1) / 2, (2 + 3) / 2, (4 + 5) / 2, (6 + 7) / 2])
    up = upsample(Tensor(np.array([[[10.], [11.], [12.], [13.]]])), 2).numpy()[0, :, 0]
    np.testing.assert_array_equal(up, [10, 10, 11, 11, 12, 12, 13, 13])


def test_block_pooling_groups_neighbours_and_shift_false():
    np.testing.assert_array_equal(shorten(seq(6), 3, shift=False).numpy()[0, :, 0], [2, 5])
    np.testing.assert_array_equal(shorten(seq(6), 3).numpy()[0, :, 0], [1 / 3, 3])


def test_k1_is_the_identity():
    x = seq(5, 2, 3)
    assert shorten(x, 1) is x and upsample(x, 1) is x and shift_right(x, 0) is x
    np.testing.assert_array_equal(Pool(3, 1)(x).numpy(), x.numpy())
    np.testing.assert_array_equal(Unpool(3, 1)(x, 5).numpy(), x.numpy())


@pytest.mark.parametrize("k", [0, -1, 2.0, True, "2"])
def test_bad_factor_is_an_error(k):
    with pytest.raises(ValueError, match="integer >= 1"):
        shorten(seq(8), k)


def test_k_larger_than_T_and_non_divisible_T_are_errors():
    with pytest.raises(ValueError, match="larger than the sequence length"):
        shorten(seq(3), 4)
    with pytest.raises(ValueError, match="pad=True"):
        shorten(seq(10), 4)
    with pytest.raises(ValueError, match="cannot crop"):
        upsample(seq(3), 4, T=20)


def test_padding_goes_at_the_end_and_upsampling_crops():
    """Pitfall 5: pad at the end (block boundaries stay where training put them)."""
    x = seq(10)
    c = shorten(x, 4, pad=True)
    np.testing.assert_array_equal(c.numpy()[0, :, 0], [1 / 4, (2 + 3 + 4 + 5) / 4, (6 + 7 + 8 + 9) / 4])
    assert upsample(c, 4, T=10).shape == (1, 10, 1)
    np.testing.assert_array_equal(pad_end(x, 4).numpy()[0, 10:, 0], [0, 0])
    np.testing.assert_array_equal(shorten(seq(2), 4, pad=True).numpy()[0, :, 0], [0.25])  # T < k


def test_layers_reject_unknown_kinds():
    with pytest.raises(ValueError, match="pooling kind"):
        Pool(4, 2, kind="max")
    with pytest.raises(ValueError, match="upsampling kind"):
        Unpool(4, 2, kind="nearest")


def test_attention_kinds_need_heads_and_the_fine_stream():
    with pytest.raises(ValueError, match="needs n_head"):
        Pool(4, 2, kind="attention")
    with pytest.raises(ValueError, match="needs n_head"):
        Unpool(4, 2, kind="attention")
    c = Tensor(np.ones((1, 2, 4)))
    with pytest.raises(ValueError, match=r"add_to\(x, c\)"):
        Unpool(4, 2, kind="attention", n_head=2)(c, 4)


def dense_prefix_attention(attn, x, src, may_see):
    """What PrefixCrossAttention computes, with the dense attention op and a boolean
    (Tq, Tk) mask instead of per-query ranges: the independent reference."""
    B, Tq, Cx = x.shape
    q = attn.q(attn.ln1(x)).reshape(B, Tq, 2, Cx // 2).transpose(0, 2, 1, 3)
    kv = attn.kv(attn.ln_src(src)).reshape(B, src.shape[1], 2, 2, Cx // 2).transpose(2, 0, 3, 1, 4)
    y = F.scaled_dot_product_attention(q, kv[0], kv[1], causal=False, mask=may_see)   # (B, 2, Tq, hs)
    x = x + attn.proj(y.transpose(0, 2, 1, 3).reshape(B, Tq, Cx))
    return x + attn.mlp(attn.ln2(x))


@pytest.mark.parametrize("k,T", [(1, 5), (2, 8), (3, 7), (4, 9), (4, 3)])
@pytest.mark.parametrize("shift", [True, False])
def test_attention_pooling_equals_the_dense_mask_of_the_rule(k, T, shift):
    """Coarse j reads the mean of its (shifted) block plus attention over the inputs up to its
    last one: i ≤ jk with the shift, i ≤ jk+k−1 without (and i < T)."""
    pool = leak.randomize(init_parameters(Pool(C, k, "attention", shift, n_head=2), seed=1, dtype="float64"), 2)
    x = Tensor(np.random.default_rng(0).standard_normal((2, T, C)))
    Tc = math.ceil(T / k)
    j, i = np.arange(Tc)[:, None], np.arange(T)[None, :]
    may_see = i <= j * k + (0 if shift else k - 1)                      # (Tc, T)
    expected = dense_prefix_attention(pool.attn, shorten(x, k, shift, pad=True), x, may_see)
    np.testing.assert_allclose(pool(x).numpy(), expected.numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("k,Tc,T", [(1, 5, 5), (2, 4, 8), (3, 3, 7), (4, 3, 9)])
@pytest.mark.parametrize("delay", [False, True])
def test_attention_upsampling_equals_the_dense_mask_of_the_rule(k, Tc, T, delay):
    """Fine i reads x_i plus the linear upsampling, plus attention over the coarse steps
    j ≤ ⌊i/k⌋ (with the delay: over [zeros, c₀, c₁, …] up to entry ⌊i/k⌋, i.e. the zeros and
    blocks j ≤ ⌊i/k⌋ − 1)."""
    up = leak.randomize(init_parameters(Unpool(C, k, "attention", delay, n_head=2), seed=1, dtype="float64"), 2)
    rng = np.random.default_rng(0)
    c, x = Tensor(rng.standard_normal((2, Tc, C))), Tensor(rng.standard_normal((2, T, C)))
    src = shift_right(c, 1) if delay else c
    W, b = up.proj.weight.numpy().reshape(C, k, C), up.proj.bias.numpy().reshape(k, C)
    s = src.numpy()
    linear = np.stack([s[:, t // k] @ W[:, t % k] + b[t % k] for t in range(T)], axis=1)
    i, j = np.arange(T)[:, None], np.arange(Tc)[None, :]
    expected = dense_prefix_attention(up.attn, x + Tensor(linear), src, j <= i // k)
    np.testing.assert_allclose(up.add_to(x, c).numpy(), expected.numpy(), rtol=1e-10, atol=1e-12)


def test_linear_pool_is_a_causal_convolution():
    """Pitfall 7: y_j = Σ_r W_r x_{jk+r−(k−1)} + b with k−1 zeros of padding on the LEFT."""
    k, T = 3, 7
    pool = init_parameters(Pool(C, k, "linear"), seed=1, dtype="float64")
    x = np.random.default_rng(0).standard_normal((2, T, C))
    W, b = pool.proj.weight.numpy().reshape(k, C, C), pool.proj.bias.numpy()
    xp = np.concatenate([np.zeros((2, k - 1, C)), x, np.zeros((2, (-T) % k, C))], axis=1)
    expected = np.stack([sum(xp[:, j * k + r] @ W[r] for r in range(k)) + b
                         for j in range(math.ceil(T / k))], axis=1)
    np.testing.assert_allclose(pool(Tensor(x)).numpy(), expected, rtol=1e-12)


def test_linear_unpool_has_one_map_per_offset():
    k, Tc, T = 3, 3, 8
    up = init_parameters(Unpool(C, k, "linear"), seed=1, dtype="float64")
    c = np.random.default_rng(0).standard_normal((2, Tc, C))
    W, b = up.proj.weight.numpy().reshape(C, k, C), up.proj.bias.numpy().reshape(k, C)
    expected = np.stack([c[:, t // k] @ W[:, t % k] + b[t % k] for t in range(T)], axis=1)
    np.testing.assert_allclose(up(Tensor(c), T).numpy(), expected, rtol=1e-12)


def test_float32_stays_float32():
    x = Tensor(np.ones((2, 9, C), np.float32), requires_grad=True)
    outs = [shorten(x, 4, pad=True), upsample(x, 3), Pool(C, 4, "linear")(x), Unpool(C, 2, "linear")(x, 17)]
    q = Tensor(np.ones((2, 2, 9, 4), np.float32), requires_grad=True)
    outs.append(range_attention(q, [(q, q)], local_ranges(9, 3), chunk=4))
    for out in outs:
        assert out.dtype == np.float32
        out.sum().backward()
    assert x.grad.dtype == np.float32 and q.grad.dtype == np.float32


def test_upsample_gradient_adds_every_copy():
    """Pitfall 4: each coarse step receives the sum of its k fine gradients."""
    c = Tensor(np.zeros((1, 3, 1)), requires_grad=True)
    upsample(c, 4).backward(np.arange(12.0).reshape(1, 12, 1))
    np.testing.assert_array_equal(c.grad[0, :, 0], [0 + 1 + 2 + 3, 4 + 5 + 6 + 7, 8 + 9 + 10 + 11])


# --- range attention against dense masked attention ------------------------------------------------

def test_range_attention_refuses_an_empty_row_and_bad_ranges():
    q = Tensor(np.ones((1, 1, 3, 2)))
    with pytest.raises(ValueError, match="no key"):
        range_attention(q, [(q, q)], [(np.array([0, 1, 2]), np.array([1, 1, 3]))])
    with pytest.raises(ValueError, match="outside"):
        range_attention(q, [(q, q)], [(np.array([0, 0, 0]), np.array([1, 2, 4]))])


@pytest.mark.parametrize("window", [1, 3, 8, 40])
def test_local_attention_equals_dense_banded_attention(window):
    T = 37
    attn = init_parameters(LocalSelfAttention(C, 2, window, chunk=5), seed=2, dtype="float64")
    leak.randomize(attn, 3)
    x = Tensor(np.random.default_rng(1).standard_normal((2, T, C)))
    t = np.arange(T)
    band = (t[None, :] <= t[:, None]) & (t[None, :] > t[:, None] - window)
    qkv = attn.qkv(x).reshape(2, T, 3, 2, C // 2).transpose(2, 0, 3, 1, 4)
    y = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2], causal=True, mask=band)
    expected = attn.proj(y.transpose(0, 2, 1, 3).reshape(2, T, C)).numpy()
    np.testing.assert_allclose(attn(x).numpy(), expected, rtol=1e-10, atol=1e-12)


# --- the retina partition and its mask ------------------------------------------------------------

@settings(max_examples=40)
@given(T=st.integers(1, 70), k=st.integers(1, 4), w=st.integers(1, 12), S=st.integers(1, 3),
       m=st.integers(0, 3))
def test_retina_ranges_cover_every_past_token_exactly_once(T, k, w, S, m):
    ranges = retina_ranges(T, k, w, S, m)
    for t in range(T):
        count = np.zeros(T + k ** S, int)
        for s, (lo, hi) in enumerate(ranges):
            K = k ** s
            for j in range(lo[t], hi[t]):
                assert (j + 1) * K - 1 <= t, f"t={t}: a block of scale {s} ends after t"
                count[j * K:(j + 1) * K] += 1
        assert (count[:t + 1] == 1).all() and (count[t + 1:] == 0).all(), f"t={t}: {count}"
        n_keys = sum(max(0, hi[t] - lo[t]) for lo, hi in ranges)
        assert n_keys <= (w + k - 1) + (S - 1) * (m + 1) * k + math.ceil(T / k ** S)
        fine_lo, fine_hi = ranges[0]
        assert fine_lo[t] <= t < fine_hi[t], f"t={t} does not see its own token"


def retina_mask(T, k, w, from_block_start=False):
    """Dense (T, T + ⌈T/k⌉) 'may attend' mask of a two-scale retina layer, from the spec's rule:
    fine keys [a_t, t] with a_t = k⌊max(0, t−w+1)/k⌋, coarse blocks ending before a_t.
    `from_block_start` is the broken variant: unaligned window start a = t−w+1, and a block is
    shown when it STARTS before a (it may end after t)."""
    t, j = np.arange(T)[:, None], np.arange(-(-T // k))[None, :]
    a = np.maximum(0, t - w + 1)
    if from_block_start:
        coarse = j * k < a
    else:
        a = k * (a // k)
        coarse = (j + 1) * k - 1 < a
    fine = (np.arange(T)[None, :] >= a) & (np.arange(T)[None, :] <= t)
    return np.concatenate([fine, coarse], axis=1)


def dense_retina(attn, x, mask, k):
    """The same layer as RetinaAttention (n_scales=1, mean pooling) with a dense mask."""
    B, T, _ = x.shape
    nh = attn.n_head
    qkv = attn.qkv(x).reshape(B, T, 3, nh, C // nh).transpose(2, 0, 3, 1, 4)
    pooled = pad_end(x, k).reshape(B, -1, k, C).mean(axis=2)          # blocks as they are
    kv = F.linear(pooled, attn.qkv.weight[:, C:], attn.qkv.bias[C:])
    kv = kv.reshape(B, -1, 2, nh, C // nh).transpose(2, 0, 3, 1, 4)
    keys = minims.concat([qkv[1], kv[0]], axis=2)
    values = minims.concat([qkv[2], kv[1]], axis=2)
    y = F.scaled_dot_product_attention(qkv[0], keys, values, causal=False, mask=mask)
    return attn.proj(y.transpose(0, 2, 1, 3).reshape(B, T, C))


@pytest.mark.parametrize("k,w", [(1, 3), (2, 1), (3, 4), (4, 5), (4, 8)])
def test_retina_attention_equals_the_dense_mask_of_the_spec(k, w):
    T = 12 * k
    attn = init_parameters(RetinaAttention(C, 2, k, w), seed=2, dtype="float64")
    leak.randomize(attn, 4)
    x = Tensor(np.random.default_rng(1).standard_normal((2, T, C)))
    expected = dense_retina(attn, x, retina_mask(T, k, w), k).numpy()
    np.testing.assert_allclose(attn(x).numpy(), expected, rtol=1e-10, atol=1e-12)


# --- the leak test on round trips: correct operators pass, broken ones fail ----------------------

class RoundTrip(Module):
    """Tokens → embeddings → `down` → causal coarse layer(s) → `up` → logits.

    No fine residual, so the logits see the tokens only through the round trip."""

    def __init__(self, down, up, n_coarse=1, seed=0):
        super().__init__()
        self.wte = Embedding(V, C)
        self.wpe = Embedding(64, C)
        self.down, self.up = down, up
        self.coarse = ModuleList(Block(C, 2) for _ in range(n_coarse))
        self.head = Linear(C, V)
        init_parameters(self, seed, dtype="float64")
        leak.randomize(self, seed)
        self.eval()

    def embed(self, idx):
        return self.wte(idx) + self.wpe(np.arange(np.shape(idx)[1]))  # (B, T, C)

    def forward(self, idx):
        x = self.embed(idx)                                           # (B, T, C)
        c = self.down(x)                                              # (B, T', C)
        for block in self.coarse:
            c = block(c)
        return self.head(self.up(c, x.shape[1]))                      # (B, T, V)


class Fn(Module):
    """Wrap a function as a (parameter-free) module."""

    def __init__(self, fn):
        super().__init__()
        object.__setattr__(self, "fn", fn)

    def forward(self, *args):
        return self.fn(*args)


def tokens(T, seed=0):
    return np.random.default_rng(seed).integers(0, V, size=(2, T))


def assert_no_leak(model, T):
    idx = tokens(T)
    assert leak.find_leak(model, idx, V) is None
    for s in range(T):
        leak.check_structure(model, idx, s, require_self=False)
    leak.check_prefix(model, idx, T // 2 + 1)


def assert_leaks(model, T):
    idx = tokens(T)
    assert leak.find_leak(model, idx, V) is not None, "the leak test missed a leak"
    with pytest.raises(AssertionError, match="leak"):
        for s in range(T):
            leak.check_structure(model, idx, s, require_self=False)


@pytest.mark.parametrize("k", [1, 2, 3, 4])
@pytest.mark.parametrize("pool_kind,up_kind", [("mean", "repeat"), ("linear", "linear")])
@pytest.mark.parametrize("mode", ["shift", "delay"])
def test_round_trip_is_causal(k, pool_kind, up_kind, mode):
    down = Pool(C, k, pool_kind, shift=mode == "shift")
    up = Unpool(C, k, up_kind, delay=mode == "delay")
    assert_no_leak(RoundTrip(down, up), 3 * k + (k > 1))             # padded when k > 1


@pytest.mark.parametrize("k", [1, 2, 3])
@pytest.mark.parametrize("mode", ["shift", "delay"])
def test_two_scale_round_trips_are_causal(k, mode):
    """Shift (or delay) in each scale's own units at each level (pitfall 2)."""
    shift, delay = mode == "shift", mode == "delay"
    # pool twice, then upsample by k² at once (bottom-up's "upsample" combine)
    down = Fn(lambda x, p1=Pool(C, k, shift=shift), p2=Pool(C, k, shift=shift): p2(p1(x)))
    assert_no_leak(RoundTrip(down, Unpool(C, k * k, delay=delay)), 2 * k * k + 1)
    # pool twice, then upsample by k twice (top-down's tiers)
    u1, u2 = Unpool(C, k, delay=delay), Unpool(C, k, delay=delay)
    up = Fn(lambda c, T: u1(u2(c, math.ceil(T / k)), T))
    assert_no_leak(RoundTrip(down, up), 2 * k * k + 1)


class FineRoundTrip(RoundTrip):
    """RoundTrip with the fine residual: logits = head(up.add_to(x, c)), as the models join
    the scales (attention upsampling reads the fine stream x too)."""

    def forward(self, idx):
        x = self.embed(idx)                                           # (B, T, C)
        c = self.down(x)                                              # (B, T', C)
        for block in self.coarse:
            c = block(c)
        return self.head(self.up.add_to(x, c))                        # (B, T, V)


@pytest.mark.parametrize("k", [1, 2, 3, 4])
@pytest.mark.parametrize("pool_kind,up_kind", [("attention", "repeat"), ("mean", "attention"),
                                               ("attention", "attention")])
@pytest.mark.parametrize("mode", ["shift", "delay"])
def test_attention_round_trip_is_causal(k, pool_kind, up_kind, mode):
    down = Pool(C, k, pool_kind, shift=mode == "shift", n_head=2)
    up = Unpool(C, k, up_kind, delay=mode == "delay", n_head=2)
    assert_no_leak(FineRoundTrip(down, up), 3 * k + (k > 1))         # padded when k > 1


class TwoScaleTrip(RoundTrip):
    """Tokens → attention pooling twice (scale 1, then scale 2 over scale 1) with a causal layer
    at each scale → attention upsampling back to the tokens, either top-down's tiers
    (h₁ = layer(up₂.add_to(e₁, h₂)), then up₁.add_to(x, h₁)) or bottom-up's (x plus scale 1
    upsampled by k, then scale 2 by k²)."""

    def __init__(self, k, mode, tiers):
        shift, delay = mode == "shift", mode == "delay"
        down = ModuleList(Pool(C, k, "attention", shift, n_head=2) for _ in range(2))
        up = ModuleList(Unpool(C, K, "attention", delay, n_head=2) for K in (k, k if tiers else k * k))
        object.__setattr__(self, "tiers", tiers)
        super().__init__(down, up, n_coarse=2)

    def forward(self, idx):
        x = self.embed(idx)                                           # (B, T, C)
        e1 = self.down[0](x)                                          # (B, T₁, C)
        h2 = self.coarse[1](self.down[1](e1))                         # (B, T₂, C)
        if self.tiers:
            return self.head(self.up[0].add_to(x, self.coarse[0](self.up[1].add_to(e1, h2))))
        return self.head(self.up[1].add_to(self.up[0].add_to(x, self.coarse[0](e1)), h2))


@pytest.mark.parametrize("k", [2, 3])
@pytest.mark.parametrize("mode", ["shift", "delay"])
@pytest.mark.parametrize("tiers", [True, False])
def test_two_scale_attention_round_trips_are_causal(k, mode, tiers):
    assert_no_leak(TwoScaleTrip(k, mode, tiers), 2 * k * k + 1)


def test_functional_round_trip_is_causal():
    down = Fn(lambda x: shorten(x, 3, pad=True))
    assert_no_leak(RoundTrip(down, Fn(lambda c, T: upsample(c, 3, T))), 13)


# The broken variants (pitfalls 1–3): each must make the leak test fail.

def pool_after_shift(x, k, shift):
    """Shift right by `shift` then mean-pool neighbours (T divisible by k)."""
    B, T, _ = x.shape
    return shift_right(x, shift).reshape(B, T // k, k, C).mean(axis=2)


@pytest.mark.parametrize("k", [2, 3, 4])
def test_no_shift_leaks(k):
    down = Fn(lambda x: pool_after_shift(x, k, 0))
    assert_leaks(RoundTrip(down, Fn(lambda c, T: upsample(c, k, T))), 4 * k)


@pytest.mark.parametrize("k", [3, 4])
def test_shift_by_k_minus_2_leaks(k):
    down = Fn(lambda x: pool_after_shift(x, k, k - 2))
    assert_leaks(RoundTrip(down, Fn(lambda c, T: upsample(c, k, T))), 4 * k)


@pytest.mark.parametrize("k", [2, 3, 4])
def test_strided_pooling_leaks(k):
    """reshape(B, k, T/k, C) groups positions j, j + T/k, … instead of neighbours."""
    def strided(x):
        B, T, _ = x.shape
        return shift_right(x, k - 1).reshape(B, k, T // k, C).mean(axis=1)
    assert_leaks(RoundTrip(Fn(strided), Fn(lambda c, T: upsample(c, k, T))), 4 * k)


@pytest.mark.parametrize("k", [2, 3])
def test_first_level_only_shift_leaks(k):
    """Two scales, shifted by k−1 at the first level only, then pooled again without a shift."""
    down = Fn(lambda x: pool_after_shift(pool_after_shift(x, k, k - 1), k, 0))
    assert_leaks(RoundTrip(down, Fn(lambda c, T: upsample(c, k * k, T))), 3 * k * k)


class RetinaRoundTrip(Module):
    """Tokens → one retina attention layer with a given dense mask → logits."""

    def __init__(self, k, w, from_block_start):
        super().__init__()
        self.k, self.w, self.broken = k, w, from_block_start
        self.wte = Embedding(V, C)
        self.wpe = Embedding(64, C)
        self.attn = RetinaAttention(C, 2, k, w)
        self.head = Linear(C, V)
        init_parameters(self, 0, dtype="float64")
        leak.randomize(self, 0)
        self.eval()

    def forward(self, idx):
        T = np.shape(idx)[1]
        x = self.wte(idx) + self.wpe(np.arange(T))
        return self.head(dense_retina(self.attn, x, retina_mask(T, self.k, self.w, self.broken), self.k))


@pytest.mark.parametrize("k,w", [(3, 1), (4, 1), (4, 2)])
def test_retina_mask_from_block_start_leaks(k, w):
    """Pitfall 8: visibility decided from a block's start instead of its last index."""
    assert_no_leak(RetinaRoundTrip(k, w, from_block_start=False), 6 * k)
    assert_leaks(RetinaRoundTrip(k, w, from_block_start=True), 6 * k)
