"""±inf and NaN through the ops: a forward or backward that multiplies by a 0/1 indicator
(x · (x > 0), a mask, `where` written as arithmetic) turns an infinity into NaN, since
inf · 0 is NaN. Every op selects instead. The generic harness draws ±inf and NaN for every
op against its NumPy reference (tests/test_gradcheck.py::test_op_nonfinite_values) and
PyTorch checks the gradients (tests/test_torch_oracle.py); here the examples, spelled out.
"""
import numpy as np
import pytest

import minims.functional as F
from minims import Tensor
from minims.optim import clip_grad_norm
from minims.functional import local_ranges, range_attention

INF, NAN = np.inf, np.nan
# NumPy warns of the inf − inf and inf · 0 it computes (in blocked scores, then set to −inf)
pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")


def leaf(values):
    return Tensor(np.asarray(values, dtype=np.float64), requires_grad=True)


def test_relu_of_minus_infinity_is_zero():
    """The issue's example: numpy.maximum(x, 0) and PyTorch give [0, 1]."""
    np.testing.assert_array_equal(Tensor([-np.inf, 1.0]).relu().numpy(), [0.0, 1.0])


def test_relu_keeps_nan_and_plus_infinity_and_its_gradient_selects():
    x = leaf([-INF, -1.0, 0.0, 2.0, INF, NAN])
    y = x.relu()
    np.testing.assert_array_equal(y.numpy(), [0.0, 0.0, 0.0, 2.0, INF, NAN])
    y.backward(np.array([INF, -INF, INF, 3.0, INF, 1.0]))
    # an infinite gradient where relu is flat is 0, not inf · 0; at NaN the gradient passes
    # (PyTorch's rule)
    np.testing.assert_array_equal(x.grad, [0.0, 0.0, 0.0, 3.0, INF, 1.0])


def test_max_gradient_with_an_infinite_cotangent_leaves_the_losers_at_zero():
    x = leaf([[1.0, 3.0, 2.0], [2.0, 2.0, -INF], [1.0, NAN, INF]])
    m = x.max(axis=-1)
    np.testing.assert_array_equal(m.numpy(), [3.0, 2.0, NAN])
    m.backward(np.array([INF, -INF, 1.0]))
    np.testing.assert_array_equal(x.grad[0], [0.0, INF, 0.0])
    np.testing.assert_array_equal(x.grad[1], [-INF, -INF, 0.0])  # a tie shares it
    assert np.isnan(x.grad[2]).all()                              # a NaN maximum: NaN


def test_dropout_drops_infinities_to_zero():
    x = leaf(np.full(400, INF))
    y = F.dropout(x, 0.5)
    assert not np.isnan(y.numpy()).any()
    assert set(np.unique(y.numpy())) == {0.0, INF}
    y.backward(np.full(400, INF))
    np.testing.assert_array_equal(x.grad, np.where(y.numpy() == 0, 0.0, INF))


def _causal_attention_with_a_future_key(k_value):
    """Queries 0..2 of causal attention when key 3 (in their future) holds k_value."""
    rng = np.random.default_rng(0)
    q, k, v = (rng.standard_normal((1, 2, 4, 3)) for _ in range(3))
    k[..., 3, :] = k_value
    return F.scaled_dot_product_attention(Tensor(q), Tensor(k), Tensor(v), causal=True).numpy()[..., :3, :]


@pytest.mark.parametrize("bad", [INF, -INF, NAN])
def test_causal_attention_ignores_a_nonfinite_key_in_the_future(bad):
    """A blocked score of +inf or NaN must not become NaN (inf + (−inf) bias): the queries
    before it see exactly what they see with a finite key there."""
    np.testing.assert_array_equal(_causal_attention_with_a_future_key(bad),
                                  _causal_attention_with_a_future_key(0.5))


@pytest.mark.parametrize("causal", [True, False])
def test_masked_keys_holding_infinities_are_ignored(causal):
    rng = np.random.default_rng(1)
    q, k, v = (rng.standard_normal((2, 2, 5, 3)) for _ in range(3))
    padding = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 0]], dtype=bool)[:, None, None, :]  # (B,1,1,Tk)
    garbage = k.copy()
    garbage[0, :, 3:] = INF
    garbage[1, :, 4] = -INF
    want = F.scaled_dot_product_attention(q, k, v, causal=causal, mask=padding).numpy()
    got = F.scaled_dot_product_attention(q, garbage, v, causal=causal, mask=padding).numpy()
    np.testing.assert_array_equal(got, want)


def test_range_attention_ignores_nonfinite_keys_outside_the_window():
    """Keys inside a chunk's slice but outside a query's range are set to −inf, not added."""
    rng = np.random.default_rng(2)
    q, k, v = (rng.standard_normal((1, 1, 6, 2)) for _ in range(3))
    ranges = local_ranges(6, 2)                       # query t sees keys t−1 and t
    garbage = k.copy()
    garbage[..., 5, :] = INF                          # only query 5 may see key 5
    want = range_attention(Tensor(q), [(Tensor(k), Tensor(v))], ranges, chunk=6).numpy()
    got = range_attention(Tensor(q), [(Tensor(garbage), Tensor(v))], ranges, chunk=6).numpy()
    np.testing.assert_array_equal(got[..., :5, :], want[..., :5, :])


def test_clip_grad_norm_leaves_nonfinite_gradients_as_they_are():
    """The norm is inf: scaling by max_norm/inf = 0 would make inf · 0 = NaN and zero every
    finite entry; the caller (train_step) refuses the step on the returned norm."""
    a, b = leaf([1.0, 2.0]), leaf([3.0])
    a.grad, b.grad = np.array([INF, 2.0]), np.array([3.0])
    assert clip_grad_norm([a, b], 1.0) == INF
    np.testing.assert_array_equal(a.grad, [INF, 2.0])
    np.testing.assert_array_equal(b.grad, [3.0])
