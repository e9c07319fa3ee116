"""Attention with shapes that broadcast (minims.functional.scaled_dot_product_attention).

Keys and values of shape (B, 1, T, hs) shared by the nh heads of the queries (multi-query
attention), masks of shape (Tk,) or (B, 1, 1, Tk) (key padding), on the full path (T ≤ 32,
one band of queries) and the banded causal path (T > 32): forward and backward give what
the same attention gives with every operand repeated to the full shape (B, nh, …), the
gradients summed over the repeated axes. The harness checks the same draws against central
differences (minims/testing/op_specs.py, draw_attention); PyTorch checks them too
(tests/test_torch_oracle.py).
"""
import numpy as np
import pytest

import minims.functional as F
from minims import Tensor

B, NH, HS = 2, 3, 4


def attention_and_grads(q, k, v, w, **options):
    ts = [Tensor(a, requires_grad=True) for a in (q, k, v)]
    out = F.scaled_dot_product_attention(*ts, **options)
    out.backward(w)
    return out.numpy(), [t.grad for t in ts]


def check_against_repeated(q, k, v, **options):
    """Broadcast operands vs. the same operands repeated to (B, NH, …) as separate inputs."""
    T = q.shape[-2]
    w = np.random.default_rng(9).standard_normal((B, NH, T, HS))
    out, grads = attention_and_grads(q, k, v, w, **options)
    full = [np.ascontiguousarray(np.broadcast_to(a, (B, NH) + a.shape[-2:])) for a in (q, k, v)]
    want, full_grads = attention_and_grads(*full, w, **options)
    np.testing.assert_allclose(out, want, rtol=1e-12, atol=1e-14)
    for a, g, fg in zip((q, k, v), grads, full_grads):
        assert g.shape == a.shape
        summed = fg.sum(axis=tuple(range(fg.ndim - a.ndim)))  # the axes a lacks, then its 1s
        summed = summed.sum(axis=tuple(i for i, n in enumerate(a.shape[:-2]) if n == 1), keepdims=True)
        np.testing.assert_allclose(g, summed, rtol=1e-12, atol=1e-14)


def operands(T, q_lead=(B, NH), kv_lead=(B, 1), seed=0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(q_lead + (T, HS)), rng.standard_normal(kv_lead + (T, HS)),
            rng.standard_normal(kv_lead + (T, HS)))


@pytest.mark.parametrize("T", [5, 70])  # one band; three bands of 32, 32 and 6 queries
def test_multi_query_attention_forward_and_backward(T):
    """The issue's example: k and v (B, 1, T, hs), q (B, nh, T, hs); backward used to crash."""
    check_against_repeated(*operands(T))


@pytest.mark.parametrize("T", [5, 70])
@pytest.mark.parametrize("leads", [((1, NH), (B, 1)), ((B, NH), (1, 1)), ((B, 1), (B, NH)), ((B, NH), (NH,))])
def test_other_leading_shapes_that_broadcast(T, leads):
    check_against_repeated(*operands(T, *leads))


@pytest.mark.parametrize("T", [5, 70])
@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("shape", [(-1,), (B, 1, 1, -1), (1, NH, 1, -1), (1, -1)])
def test_key_padding_masks(T, causal, shape):
    """A (Tk,) mask used to crash in forward; (B, 1, 1, Tk) and one per head too."""
    rng = np.random.default_rng(3)
    shape = tuple(T if n == -1 else n for n in shape)
    mask = rng.random(shape) > 0.3
    mask[..., 0] = True                               # key 0: every query keeps a key
    check_against_repeated(*operands(T), causal=causal, mask=mask)


@pytest.mark.parametrize("T", [5, 70])
def test_masks_per_query_and_key_that_broadcast(T):
    mask = np.random.default_rng(4).random((B, 1, T, T)) > 0.5
    mask[..., np.arange(T), np.arange(T)] = True      # each query may attend to itself
    check_against_repeated(*operands(T), causal=True, mask=mask)


def test_shapes_that_do_not_broadcast_are_refused():
    q, k, v = operands(5, kv_lead=(B, 2))
    with pytest.raises(ValueError, match=r"attention shapes do not broadcast: q \(2, 3, 5, 4\), "
                                         r"k \(2, 2, 5, 4\)"):
        F.scaled_dot_product_attention(q, k, v)
    with pytest.raises(ValueError, match=r"attention mask of shape \(1, 4\) does not broadcast "
                                         r"to \(\.\.\., Tq, Tk\) = \(\.\.\., 5, 5\)"):
        F.scaled_dot_product_attention(*operands(5), mask=np.ones(4, bool))
    with pytest.raises(ValueError, match=r"attention needs q \(\.\.\., Tq, hs\), k \(\.\.\., Tk, hs\)"):
        F.scaled_dot_product_attention(q, k[..., :3], v)


def test_range_attention_with_keys_shared_by_the_heads():
    """The same for the windowed attention of the multi-scale models."""
    from minims.functional import local_ranges, range_attention
    q, k, v = operands(9)
    w = np.random.default_rng(9).standard_normal((B, NH, 9, HS))

    def run(q, k, v):
        ts = [Tensor(a, requires_grad=True) for a in (q, k, v)]
        out = range_attention(ts[0], [(ts[1], ts[2])], local_ranges(9, 3), chunk=4)
        out.backward(w)
        return out.numpy(), [t.grad for t in ts]
    out, (dq, dk, dv) = run(q, k, v)
    want, (wq, wk, wv) = run(q, *(np.ascontiguousarray(np.broadcast_to(a, (B, NH, 9, HS))) for a in (k, v)))
    np.testing.assert_allclose(out, want, rtol=1e-12)
    np.testing.assert_allclose(dq, wq, rtol=1e-12)
    np.testing.assert_allclose(dk, wk.sum(axis=1, keepdims=True), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(dv, wv.sum(axis=1, keepdims=True), rtol=1e-12, atol=1e-15)
