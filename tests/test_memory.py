"""The paper's memory axis, on measured bytes: what each model's forward pass holds for
backward (`minims.memory.saved_bytes`, exact from the arrays' shapes) and its peak bytes.

- vanilla attention holds B·n_head·T² probabilities per layer: doubling T quadruples that part;
- retina attention stays within O(T·(w + T/k)) and its T² part is at most 1/k of vanilla's;
- local attention (top-down's `window`) has no T² part at all;
- a coarse layer holds exactly what a vanilla layer holds at length T/k (≈ 1/k of a fine one);
- track_memory reports a positive peak for one forward + backward;
- attention pooling and upsampling keep about half of their (Tq, Tk) score matrix.
"""
import math

import numpy as np
import pytest

from minims import memory
from minims.memory import saved_bytes
from minims.models import MODELS, build_model

B, C, NH, K = 1, 32, 2, 4
ITEM = 4  # float32


def model(name, T=256, **options):
    return build_model(name, vocab_size=32, block_size=T, n_embd=C, n_head=NH, **options)


def forward(m, T, seed=0):
    idx = np.random.default_rng(seed).integers(0, 32, size=(B, T))
    logits, _ = m(idx)
    return logits


def op_bytes(m, T, op):
    return saved_bytes(forward(m, T), by="op").get(op, 0)


def test_vanilla_attention_grows_like_T_squared():
    """f(T) = a·T² + b·T. The probabilities are kept in n = T/s bands of s queries
    (s = ATTENTION_BAND_SIZE), band i with i·s keys: s²·n(n+1)/2 = T²/2 + s·T/2 numbers per
    head, so a = n_layer·B·n_head·4 bytes / 2 and the s·T/2 goes into b. Hence
    f(2T) − 2f(T) = 2aT² exactly, and the T² part quadruples when T doubles."""
    import minims.functional as F
    m = model("vanilla", T=512, n_layer=2)
    Ts = [F.ATTENTION_BAND_SIZE * n for n in (4, 8, 16)]
    f = {T: op_bytes(m, T, "ScaledDotProductAttention") for T in Ts}
    a = 2 * B * NH * ITEM // 2
    assert f[Ts[1]] - 2 * f[Ts[0]] == 2 * a * Ts[0] ** 2
    assert f[Ts[2]] - 2 * f[Ts[1]] == 4 * (f[Ts[1]] - 2 * f[Ts[0]])


def retina_bound(T, w, n_layer, chunk):
    """Stated bound on RangeAttention's saved bytes (two scales): scores for at most
    chunk + w + k − 1 fine keys and ⌈T/k⌉ coarse keys per query and head, plus the T-linear
    arrays (q, k, v of the fine keys, the pooled keys and values, the output)."""
    Tc = math.ceil(T / K)
    scores = B * NH * T * (chunk + w + K - 1 + Tc)
    linear = B * (3 * T * C + 2 * Tc * C + T * C)
    return n_layer * ITEM * (scores + linear)


@pytest.mark.parametrize("w", [16, 32])
def test_retina_attention_stays_within_T_times_w_plus_T_over_k(w):
    m = model("retina", T=1024, n_layer=2, pool=K, window=w)
    chunk = m.blocks[0].attn.chunk
    g = {T: op_bytes(m, T, "RangeAttention") for T in (256, 512, 1024)}
    v = model("vanilla", T=1024, n_layer=2)
    f = {T: op_bytes(v, T, "ScaledDotProductAttention") for T in (256, 512, 1024)}
    for T in g:
        assert g[T] <= retina_bound(T, w, 2, chunk), (T, g[T], retina_bound(T, w, 2, chunk))
    # the part that grows faster than T is at most 1/k of vanilla's T² part
    for T in (256, 512):
        assert g[2 * T] - 2 * g[T] <= (f[2 * T] - 2 * f[T]) / K
    assert g[1024] < 4 * g[512] and g[1024] < f[1024] / 2


def test_local_attention_has_no_T_squared_part():
    """Top-down's fine stack with window w: saved scores ≤ B·n_head·T·(chunk + w − 1) per layer,
    and the bytes are affine in T (equal second differences)."""
    w = 32
    m = model("top-down", T=1024, layout="1-2", pool=K, window=w)
    chunk = m.fine[0].attn.chunk
    h = {T: op_bytes(m, T, "RangeAttention") for T in (256, 512, 1024)}
    assert h[1024] - 2 * h[512] == h[512] - 2 * h[256]
    for T in h:
        assert h[T] <= 2 * ITEM * B * (NH * T * (chunk + w - 1) + 4 * T * C)


def layer_bytes(logits, scope):
    held = saved_bytes(logits, by="scope", depth=scope.count(".") + 1).get(scope, 0)
    assert held > 0, f"nothing saved under scope {scope!r}"
    return held


@pytest.mark.parametrize("name,options,coarse_scopes", [
    ("top-down", dict(layout="2-2"), ["coarse.0.0", "coarse.0.1"]),
    ("bottom-up", dict(layout="0-2-2", combine="upsample"), ["coarse.0.0", "coarse.0.1"]),
])
def test_a_coarse_layer_holds_what_a_vanilla_layer_holds_at_T_over_k(name, options, coarse_scopes):
    T = 256
    logits = forward(model(name, T=T, pool=K, **options), T)
    vanilla = {t: layer_bytes(forward(model("vanilla", T=t, n_layer=1), t), "blocks.0") for t in (T, T // K)}
    fine_scope = "fine.0" if name == "top-down" else "post.0"
    assert layer_bytes(logits, fine_scope) == vanilla[T]
    for scope in coarse_scopes:
        coarse = layer_bytes(logits, scope)
        assert coarse == vanilla[T // K]
        assert vanilla[T] / K ** 2 <= coarse <= vanilla[T] / K            # ≈ 1/k of a fine layer


def test_the_second_scale_holds_what_a_vanilla_layer_holds_at_T_over_k_squared():
    T = 256
    logits = forward(model("bottom-up", T=T, pool=K, layout="0-1-1-2"), T)
    vanilla = layer_bytes(forward(model("vanilla", T=T // K ** 2, n_layer=1), T // K ** 2), "blocks.0")
    assert layer_bytes(logits, "coarse.1.0") == vanilla


def test_scopes_split_the_memory_by_scale():
    logits = forward(model("top-down", layout="2-2", pool=K), 256)
    by_scope = saved_bytes(logits, by="scope", depth=1)
    assert {"coarse", "fine"} <= set(by_scope)
    assert by_scope["coarse"] < by_scope["fine"] / 2
    assert sum(by_scope.values()) == saved_bytes(logits)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_peak_memory_is_reported_for_forward_and_backward(name):
    m = model(name, T=128)
    idx = np.random.default_rng(0).integers(0, 32, size=(2, 128))
    with memory.track_memory() as mem:
        _, loss = m(idx, idx)
        held = saved_bytes(loss)
        loss.backward()
    assert held > 0 and mem["peak"] >= held


@pytest.mark.parametrize("name,options", [
    ("top-down", dict(layout="2-2")),
    ("bottom-up", dict(layout="1-1-1-1", combine="upsample", pool=2)),
])
def test_attention_pooling_and_upsampling_hold_about_half_their_score_matrix(name, options):
    """Each attention kind's prefix attention (Tq queries over Tk keys, query i seeing a prefix)
    keeps at most B·n_head·(Tq·Tk/2 + 16·(Tq + Tk)) probabilities (chunks of 16 queries), plus
    its q, k, v and output; and the whole attention-kind layer, a LayerNorm-ed residual block
    over Tq positions, holds less than a vanilla layer at T (no T×T attention)."""
    from minims.memory import saved_arrays
    T = 256
    options = {"pool": K, **options}
    logits = forward(model(name, T=T, pool_kind="attention", upsample_kind="attention", **options), T)
    k = options["pool"]
    n_scales = len(options["layout"].split("-")) - (1 if name == "top-down" else 2)
    vanilla = layer_bytes(forward(model("vanilla", T=T, n_layer=1), T), "blocks.0")
    held = {}
    for scope, op, a in saved_arrays(logits):
        if op == "RangeAttention" and scope.endswith(".attn"):
            held.setdefault(scope, []).append(a)
    expected = [f"pool.{s}.attn" for s in range(n_scales)] + [f"up.{s}.attn" for s in range(n_scales)]
    assert sorted(held) == sorted(expected)
    for scope, arrays in held.items():
        s = int(scope.split(".")[1])
        fine = math.ceil(T / k ** s)                                  # scale s, the finer side
        if name == "top-down" or scope.startswith("pool"):
            Tq, Tk = (math.ceil(fine / k), fine) if scope.startswith("pool") else (fine, math.ceil(fine / k))
        else:                                                         # bottom-up: scale s+1 to the tokens
            Tq, Tk = T, math.ceil(T / k ** (s + 1))
        q, keys, values, out, *probs = arrays
        assert q.shape[2] == out.shape[2] == Tq and keys.shape[2] == values.shape[2] == Tk
        n_probs = sum(p.size for p in probs)
        assert B * NH * Tq * Tk / 2 <= n_probs <= B * NH * (Tq * Tk / 2 + 16 * (Tq + Tk)), scope
        assert layer_bytes(logits, scope) < vanilla
