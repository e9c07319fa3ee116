"""PyTorch as an independent oracle for the fused ops (micrograd's test idea), in float64.

Each fused op of minims.functional must give the same forward values and the same input
gradients as its PyTorch counterpart to 1e-10: softmax, log-softmax, GELU (tanh
approximation), layer norm, embedding (repeated ids), cross-entropy and scaled dot-product
attention (causal, with a boolean mask, both, with Tq != Tk, and with keys and values
shared by the heads). On inputs holding ±inf and NaN, the forward values and gradients must
be PyTorch's too, NaN in the same places. Skipped without torch; install it with
`pip install -e '.[oracle]'`.
"""
import numpy as np
import pytest

torch = pytest.importorskip("torch")
tF = torch.nn.functional

import minims.functional as F  # noqa: E402
from minims import Tensor  # noqa: E402

TOL = dict(rtol=1e-10, atol=1e-12)


def compare(minims_fn, torch_fn, arrays, seed=0):
    """Run both functions on the same float64 inputs, backpropagate the same random
    cotangent, and compare the outputs and every input gradient."""
    ours = [Tensor(a, requires_grad=True) for a in arrays]
    theirs = [torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in arrays]
    out, ref = minims_fn(*ours), torch_fn(*theirs)
    assert out.dtype == np.float64
    assert out.shape == tuple(ref.shape)
    np.testing.assert_allclose(out.numpy(), ref.detach().numpy(), **TOL)
    w = np.random.default_rng(seed).standard_normal(out.shape)
    out.backward(w)
    ref.backward(torch.from_numpy(w))
    for i, (a, b) in enumerate(zip(ours, theirs)):
        np.testing.assert_allclose(a.grad, b.grad.numpy(), err_msg=f"input {i}", **TOL)


def randn(*shape, seed=0, scale=1.0):
    return np.random.default_rng(seed).standard_normal(shape) * scale


@pytest.mark.parametrize("axis", [-1, 0, 1])
def test_softmax(axis):
    compare(lambda x: F.softmax(x, axis), lambda x: torch.softmax(x, dim=axis), [randn(3, 4, 5, scale=3)])


@pytest.mark.parametrize("axis", [-1, 0])
def test_log_softmax(axis):
    compare(lambda x: F.log_softmax(x, axis), lambda x: torch.log_softmax(x, dim=axis),
            [randn(3, 4, 5, scale=3)])


def test_log_softmax_large_logits():
    x = randn(2, 6, scale=1e3)
    compare(F.log_softmax, lambda x: torch.log_softmax(x, dim=-1), [x])


def test_gelu_tanh_approximation():
    x = np.linspace(-6, 6, 97).reshape(1, 97) + randn(4, 97, scale=0.01)
    compare(F.gelu, lambda x: tF.gelu(x, approximate="tanh"), [x])


def test_layer_norm():
    C = 7
    arrays = [randn(2, 3, C, scale=2) + 1.5, 1 + randn(C, seed=1, scale=0.3), randn(C, seed=2)]
    compare(F.layer_norm, lambda x, w, b: tF.layer_norm(x, (C,), w, b, eps=1e-5), arrays)


def test_layer_norm_custom_eps():
    C = 4
    arrays = [randn(5, C, scale=1e-2), np.ones(C), np.zeros(C)]   # tiny variance: eps matters
    compare(lambda x, w, b: F.layer_norm(x, w, b, eps=1e-3),
            lambda x, w, b: tF.layer_norm(x, (C,), w, b, eps=1e-3), arrays)


def test_embedding_with_repeated_ids():
    ids = np.array([[0, 2, 2, 5], [2, 1, 0, 2], [4, 4, 4, 4]])
    compare(lambda w: F.embedding(ids, w), lambda w: tF.embedding(torch.from_numpy(ids), w),
            [randn(6, 3)])


@pytest.mark.parametrize("shape", [(5,), (2, 3)])
def test_cross_entropy(shape):
    V = 7
    targets = np.random.default_rng(3).integers(0, V, size=shape)
    compare(lambda z: F.cross_entropy(z, targets),
            lambda z: tF.cross_entropy(z.reshape(-1, V), torch.from_numpy(targets).reshape(-1)),
            [randn(*shape, V, scale=3)])


def _qkv(B, nh, Tq, Tk, hs, seed=0):
    return [randn(B, nh, Tq, hs, seed=seed), randn(B, nh, Tk, hs, seed=seed + 1),
            randn(B, nh, Tk, hs, seed=seed + 2)]


def _random_mask(Tq, Tk, seed=4):
    mask = np.random.default_rng(seed).random((Tq, Tk)) > 0.5
    mask[np.arange(Tq), np.minimum(np.arange(Tq), Tk - 1)] = True    # no empty rows
    return mask


def test_attention_causal():
    compare(lambda q, k, v: F.scaled_dot_product_attention(q, k, v, causal=True),
            lambda q, k, v: tF.scaled_dot_product_attention(q, k, v, is_causal=True),
            _qkv(2, 3, 6, 6, 4))


def test_attention_no_mask_with_more_keys_than_queries():
    compare(lambda q, k, v: F.scaled_dot_product_attention(q, k, v, causal=False),
            lambda q, k, v: tF.scaled_dot_product_attention(q, k, v),
            _qkv(2, 2, 3, 7, 5))


def test_attention_boolean_mask():
    mask = _random_mask(5, 8)
    compare(lambda q, k, v: F.scaled_dot_product_attention(q, k, v, causal=False, mask=mask),
            lambda q, k, v: tF.scaled_dot_product_attention(q, k, v, attn_mask=torch.from_numpy(mask)),
            _qkv(2, 2, 5, 8, 4))


def test_attention_causal_and_mask_combined():
    T = 6
    mask = _random_mask(T, T)
    both = torch.from_numpy(mask & np.tril(np.ones((T, T), dtype=bool)))
    compare(lambda q, k, v: F.scaled_dot_product_attention(q, k, v, causal=True, mask=mask),
            lambda q, k, v: tF.scaled_dot_product_attention(q, k, v, attn_mask=both),
            _qkv(1, 2, T, T, 3))


def test_attention_broadcast_mask_and_custom_scale():
    masks = np.stack([_random_mask(4, 4, seed=s) for s in range(3)])[None]  # (1, nh, Tq, Tk)
    compare(lambda q, k, v: F.scaled_dot_product_attention(q, k, v, causal=False, mask=masks, scale=0.3),
            lambda q, k, v: tF.scaled_dot_product_attention(q, k, v, attn_mask=torch.from_numpy(masks),
                                                            scale=0.3),
            _qkv(2, 3, 4, 4, 2))


def test_attention_keys_and_values_shared_by_the_heads():
    """Multi-query attention: k and v (B, 1, T, hs) broadcast over the heads of q, with a
    key-padding mask (B, 1, 1, Tk); gradients of k and v summed over the heads."""
    rng = np.random.default_rng(5)
    q, k, v = randn(2, 4, 6, 3), randn(2, 1, 6, 3, seed=1), randn(2, 1, 6, 3, seed=2)
    padding = rng.random((2, 1, 1, 6)) > 0.3
    padding[..., 0] = True
    both = torch.from_numpy(padding & np.tril(np.ones((6, 6), dtype=bool)))
    compare(lambda q, k, v: F.scaled_dot_product_attention(q, k, v, causal=True, mask=padding),
            lambda q, k, v: tF.scaled_dot_product_attention(q, k, v, attn_mask=both), [q, k, v])


# --- ±inf and NaN ------------------------------------------------------------------------

INF, NAN = np.inf, np.nan


def compare_nonfinite(minims_fn, torch_fn, arrays, cotangent=None):
    """`compare` on inputs (and perhaps a cotangent) holding ±inf and NaN: NaN in the same
    places of the outputs and of every gradient, the same infinities, the rest to 1e-10."""
    ours = [Tensor(a, requires_grad=True) for a in arrays]
    theirs = [torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in arrays]
    with np.errstate(all="ignore"):
        out, ref = minims_fn(*ours), torch_fn(*theirs)
        w = np.random.default_rng(0).standard_normal(out.shape) if cotangent is None else cotangent
        out.backward(w)
    ref.backward(torch.from_numpy(np.asarray(w, dtype=np.float64)))
    pairs = [("output", out.numpy(), ref.detach().numpy())]
    pairs += [(f"gradient {i}", a.grad, b.grad.numpy()) for i, (a, b) in enumerate(zip(ours, theirs))]
    for what, got, want in pairs:
        np.testing.assert_array_equal(np.isnan(got), np.isnan(want), err_msg=f"{what}: NaN places")
        np.testing.assert_allclose(got, want, err_msg=what, **TOL)


EDGES = np.array([[-INF, -1.0, 0.5, 2.0, INF, NAN]])


def test_relu_on_nonfinite_inputs():
    """The issue's example among them: relu(−inf) = 0."""
    compare_nonfinite(lambda x: x.relu(), torch.relu, [EDGES])
    compare_nonfinite(lambda x: x.relu(), torch.relu, [EDGES],
                      cotangent=np.array([[INF, -INF, INF, NAN, -INF, 1.0]]))


def test_gelu_on_nonfinite_inputs():
    """The formula ½x(1 + tanh u) at −inf is −inf · 0: NaN, in PyTorch as here."""
    compare_nonfinite(F.gelu, lambda x: tF.gelu(x, approximate="tanh"), [EDGES])


ROWS = np.array([[-INF, 1.0, 2.0], [INF, 1.0, 2.0], [-INF, -INF, -INF], [NAN, 0.0, 1.0],
                 [-INF, 0.0, -INF], [1.0, 2.0, 3.0]])


@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
def test_softmax_family_on_nonfinite_inputs(name):
    compare_nonfinite(getattr(F, name), lambda x: getattr(torch, name)(x, dim=-1), [ROWS])


def test_max_on_nonfinite_inputs():
    """Tensor.max is PyTorch's amax: ties share the gradient, a NaN maximum gets NaN."""
    compare_nonfinite(lambda x: x.max(axis=-1), lambda x: x.amax(-1), [ROWS])


def test_layer_norm_on_nonfinite_inputs():
    compare_nonfinite(F.layer_norm, lambda x, w, b: tF.layer_norm(x, (3,), w, b, eps=1e-5),
                      [ROWS, np.array([1.0, INF, 2.0]), np.array([0.0, 1.0, NAN])])


def test_cross_entropy_on_nonfinite_logits():
    targets = np.array([1, 0, 2, 1, 0, 2])
    compare_nonfinite(lambda z: F.cross_entropy(z, targets),
                      lambda z: tF.cross_entropy(z, torch.from_numpy(targets)), [ROWS])
    masked = np.array([[-INF, 1.0, 2.0], [0.0, -INF, 3.0]])              # −inf off the target
    compare_nonfinite(lambda z: F.cross_entropy(z, targets[:2]),
                      lambda z: tF.cross_entropy(z, torch.from_numpy(targets[:2])), [masked])


def _masked_fill_attention(q, k, v, allowed):
    """Attention written with PyTorch's masked_fill (a selection) on the scores. (PyTorch's
    fused scaled_dot_product_attention adds a −inf bias instead, and so gives NaN where a
    blocked score is +inf or NaN, the very class of bug minims avoids.)"""
    scores = q @ k.transpose(-1, -2) / q.shape[-1] ** 0.5
    return torch.softmax(scores.masked_fill(~torch.from_numpy(allowed), -INF), dim=-1) @ v


@pytest.mark.parametrize("causal", [True, False])
def test_attention_on_nonfinite_queries_and_keys(causal):
    q, k, v = _qkv(2, 2, 5, 5, 3)
    q[0, 0, 1, 2], q[1, 1, 3, 0] = INF, NAN
    k[0, :, 4, 0], k[1, 0, 3, 1], k[1, 1, 0, 2] = INF, -INF, NAN
    padding = np.array([[1, 1, 1, 1, 0], [1, 1, 1, 0, 1]], dtype=bool)[:, None, None, :]
    allowed = padding & np.tril(np.ones((5, 5), dtype=bool)) if causal else padding
    compare_nonfinite(lambda q, k, v: F.scaled_dot_product_attention(q, k, v, causal=causal, mask=padding),
                      lambda q, k, v: _masked_fill_attention(q, k, v, allowed), [q, k, v])
