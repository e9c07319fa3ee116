"""Semantics of the autodiff engine and the fused ops, beyond what the gradient check proves.

tests/test_gradcheck.py shows that every op's backward matches finite differences. This
file checks the things a gradient check cannot see:

- graph bookkeeping: a node used twice gets both contributions, leaf `.grad` accumulates
  across `backward()` calls, intermediate tensors keep no `.grad`, a graph cannot be
  walked twice, a 10,000-op chain needs no recursion, `no_grad()` records nothing;
- the arguments of `backward()` and the gradients of broadcast operands;
- dtypes: float32 stays float32 everywhere (Python constants included), float32 and
  float64 never mix silently;
- the small Tensor API (`item`, `numpy`, `detach`, `T`, comparisons);
- the errors of the fused ops (ids out of range, empty attention rows) and the numerical
  stability of log-softmax;
- `minims.memory.saved_bytes`, the activation memory a graph holds for backward.

The edge cases a user can write (axes in every spelling, integer operands, constant rows,
x ** 0 at 0, aliasing, zero-size dimensions) have their own file, tests/test_edge_cases.py.
"""
import sys

import numpy as np
import pytest

import minims
import minims.functional as F
from minims import Tensor
from minims.engine import is_grad_enabled
from minims.memory import saved_bytes


def leaf(values, dtype=np.float64):
    """A leaf tensor that requires grad (float64 unless asked otherwise)."""
    return Tensor(np.asarray(values, dtype=dtype), requires_grad=True)


# --- graph bookkeeping ------------------------------------------------------------------

def test_node_used_twice_gets_both_contributions():
    x = leaf([1.0, 2.0, -3.0])
    y = x * x + x                       # dy/dx = 2x + 1: x feeds Mul twice and Add once
    y.sum().backward()
    np.testing.assert_allclose(x.grad, 2 * x.numpy() + 1, rtol=0, atol=0)


def test_same_tensor_as_both_operands_of_one_op():
    x = leaf([0.5, -1.5])
    (x + x).sum().backward()
    np.testing.assert_array_equal(x.grad, [2.0, 2.0])


def test_diamond_graph():
    # a = 2x feeds two branches, b = 3a and c = a + 1, that meet again in out = Σ b·c.
    # out = Σ 6x(2x + 1) = Σ 12x² + 6x, so d out/dx = 24x + 6.
    x = leaf([1.0, -2.0, 0.25])
    a = x * 2.0
    b = a * 3.0
    c = a + 1.0
    (b * c).sum().backward()
    np.testing.assert_allclose(x.grad, 24 * x.numpy() + 6, rtol=1e-15)


def test_leaf_grad_accumulates_across_backward_calls_until_reset():
    x = leaf([1.0, 2.0])
    (x * 3.0).sum().backward()
    np.testing.assert_array_equal(x.grad, [3.0, 3.0])
    (x * x).sum().backward()            # a second, separate graph: adds 2x
    np.testing.assert_array_equal(x.grad, [5.0, 7.0])
    x.grad = None                       # zeroing, as an optimizer's zero_grad does
    (x * 3.0).sum().backward()
    np.testing.assert_array_equal(x.grad, [3.0, 3.0])


def test_intermediate_tensors_keep_no_grad():
    x = leaf([1.0, 2.0])
    h = x * 2.0
    g = h.tanh()
    out = g.sum()
    out.backward()
    assert x.grad is not None
    assert h.grad is None and g.grad is None and out.grad is None


def test_leaf_grads_do_not_share_memory():
    # Add passes the same gradient array to both operands; each leaf must get its own copy.
    a, b = leaf([1.0, 2.0]), leaf([3.0, 4.0])
    (a + b).backward(np.array([1.0, 1.0]))
    a.grad[0] = 100.0
    np.testing.assert_array_equal(b.grad, [1.0, 1.0])


def test_second_backward_through_the_same_graph_raises():
    x = leaf([1.0, 2.0])
    loss = (x * x).sum()
    loss.backward()
    with pytest.raises(RuntimeError, match="second time"):
        loss.backward()


def test_backward_through_a_released_subgraph_raises():
    x = leaf([1.0, 2.0])
    h = x.exp()
    h.sum().backward()                  # frees h's saved arrays
    with pytest.raises(RuntimeError, match="second time"):
        (h * 3.0).sum().backward()      # a new output on top of the freed part


def test_deep_chain_backpropagates_without_recursion():
    n = 10_000
    x = leaf([1.0, -1.0])
    y = x
    for i in range(n):
        y = y * 1.0 if i % 2 else y + 1.0
    limit = sys.getrecursionlimit()
    assert n > limit, "the chain must be deeper than Python's recursion limit to prove anything"
    assert saved_bytes(y) > 0           # the memory walk is iterative too
    y.sum().backward()
    np.testing.assert_array_equal(x.grad, [1.0, 1.0])
    np.testing.assert_array_equal(y.numpy(), x.numpy() + n // 2)


def test_no_grad_records_nothing():
    x = leaf([1.0, 2.0])
    with minims.no_grad():
        assert not is_grad_enabled()
        out = (x * x).exp().sum()
    assert out.requires_grad is False
    assert out._ctx is None
    assert is_grad_enabled()
    with pytest.raises(RuntimeError, match="does not require grad"):
        out.backward()


def test_no_grad_restores_the_flag_after_an_exception():
    with pytest.raises(ZeroDivisionError):
        with minims.no_grad():
            1 / 0
    assert is_grad_enabled()
    out = leaf([1.0]) * 2.0
    assert out.requires_grad and out._ctx is not None


def test_no_grad_nests():
    with minims.no_grad():
        with minims.no_grad():
            pass
        assert not is_grad_enabled()
    assert is_grad_enabled()


def test_constants_only_build_no_graph():
    out = Tensor([1.0, 2.0]) * 3.0
    assert out.requires_grad is False and out._ctx is None


# --- the arguments of backward() ---------------------------------------------------------

def test_backward_of_a_non_scalar_needs_a_grad():
    y = leaf([1.0, 2.0]) * 2.0
    with pytest.raises(RuntimeError, match="non-scalar"):
        y.backward()


def test_backward_of_a_size_one_tensor_needs_no_grad():
    x = leaf([[2.0]])
    (x * x).backward()
    np.testing.assert_array_equal(x.grad, [[4.0]])


def test_backward_with_a_grad_of_the_wrong_shape_raises():
    y = leaf([1.0, 2.0]) * 2.0
    with pytest.raises(ValueError, match="shape"):
        y.backward(np.ones(3))


def test_backward_with_an_explicit_grad_is_a_vector_jacobian_product():
    x = leaf([1.0, 2.0, 3.0])
    (x * x).backward(np.array([1.0, 0.0, -1.0]))
    np.testing.assert_array_equal(x.grad, [2.0, 0.0, -6.0])


def test_broadcast_gradients_are_reduced_to_the_operand_shape():
    a = leaf(np.arange(3.0).reshape(3, 1))              # (3, 1)
    b = leaf(np.arange(4.0) + 10)                       # (4,)
    (a + b).sum().backward()                            # (3, 4)
    assert a.grad.shape == (3, 1) and b.grad.shape == (4,)
    np.testing.assert_array_equal(a.grad, np.full((3, 1), 4.0))
    np.testing.assert_array_equal(b.grad, np.full(4, 3.0))

    a.grad = b.grad = None
    (a * b).sum().backward()
    np.testing.assert_array_equal(a.grad, np.full((3, 1), b.numpy().sum()))
    np.testing.assert_array_equal(b.grad, np.full(4, a.numpy().sum()))


def test_broadcast_against_a_scalar_tensor():
    s = leaf(2.0)                                       # shape ()
    x = leaf(np.ones((2, 3)))
    (s * x).sum().backward()
    assert s.grad.shape == ()
    assert float(s.grad) == 6.0


# --- dtypes -----------------------------------------------------------------------------

def test_python_lists_default_to_float32():
    assert Tensor([1.0, 2.0]).dtype == np.float32
    assert Tensor(3.0).dtype == np.float32
    assert Tensor(np.array([1.0, 2.0])).dtype == np.float64   # arrays keep their dtype


def _forward_float32_net(wrap):
    """A tiny transformer-like net in float32; `wrap` is applied to every intermediate."""
    rng = np.random.default_rng(0)
    B, T, C, V, nh = 2, 4, 8, 5, 2
    f32 = lambda *shape: leaf(rng.standard_normal(shape), np.float32)  # noqa: E731
    params = dict(wte=f32(V, C), w1=f32(C, 4 * C), b1=f32(4 * C), w2=f32(4 * C, C),
                  ln_w=leaf(np.ones(C), np.float32), ln_b=leaf(np.zeros(C), np.float32))
    idx = rng.integers(0, V, size=(B, T))

    x = wrap(F.embedding(idx, params["wte"]))                          # (B, T, C)
    # Python scalar constants and every primitive op
    side = [x * 2.0 + 1, x ** 2, x ** 3, (x * x + 1) ** 0.5, x / 3, 1 - x, 2.0 / (x * x + 1),
            -x, x.mean(), x.exp(), x.tanh(), x.relu(), x.max(axis=-1), x[0, 1:], x.sum(axis=0),
            (x * x + 1).log(), (x * x + 1).sqrt(), x.astype(np.float32), F.dropout(x, 0.25),
            minims.where(x > 0, x, 0.5), minims.concat([x, x], axis=1), minims.stack([x, x])]
    side = [wrap(s) for s in side]
    h = wrap(F.layer_norm(x, params["ln_w"], params["ln_b"]))
    q = wrap(h.reshape(B, T, nh, C // nh).transpose(0, 2, 1, 3))        # (B, nh, T, hs)
    a = wrap(F.scaled_dot_product_attention(q, q, q, causal=True))
    a = wrap(a.transpose(0, 2, 1, 3).reshape(B, T, C))
    m = wrap(F.gelu(F.linear(a + x, params["w1"], params["b1"])))
    logits = wrap(F.linear(m, params["w2"]) @ params["wte"].T)          # (B, T, V)
    side += [wrap(F.softmax(logits)), wrap(F.log_softmax(logits))]
    loss = F.cross_entropy(logits, idx)
    for s in side:
        loss = loss + s.mean() * 1e-3
    return loss, params


def test_float32_stays_float32_through_a_small_network():
    seen = []

    class DtypeProbe(minims.Function):
        """Identity that records the dtype of the gradient flowing back through it."""
        @staticmethod
        def forward(ctx, a):
            return a

        @staticmethod
        def backward(ctx, g):
            seen.append(g.dtype)
            return g

    probed = []

    def probe(t):
        probed.append(t)
        return DtypeProbe.apply(t)

    try:
        loss, params = _forward_float32_net(probe)
    finally:
        del minims.OPS["DtypeProbe"]
    for i, t in enumerate(probed + [loss]):
        assert t.dtype == np.float32, f"step {i}: {t.dtype}"
    loss.backward()
    assert len(seen) == len(probed) and set(seen) == {np.dtype(np.float32)}, seen
    # a second pass accumulates into .grad: no cast hides a float64 gradient there
    _forward_float32_net(lambda t: t)[0].backward()
    for name, p in params.items():
        assert p.grad is not None and p.grad.dtype == np.float32, (name, p.grad.dtype)
        assert np.all(np.isfinite(p.grad)), name


def test_float32_fractional_power_stays_float32():
    x = leaf([1.0, 4.0], np.float32)
    y = x ** 0.5
    assert y.dtype == np.float32
    y.sum().backward()
    assert x.grad.dtype == np.float32


@pytest.mark.parametrize("case", ["pow exponent", "dropout p", "layer_norm eps"])
def test_numpy_scalar_options_do_not_promote_float32(case):
    """Options that arrive as NumPy float64 scalars (e.g. read from a NumPy config or computed
    with np.sqrt) must not promote a float32 computation to float64 (NEP 50: NumPy scalars
    are not 'weak' like Python floats)."""
    x = leaf(np.linspace(0.5, 2.0, 6).reshape(2, 3), np.float32)
    if case == "pow exponent":
        y = x ** np.float64(0.5)
    elif case == "dropout p":
        minims.backend.manual_seed(0)
        y = F.dropout(x, np.float64(0.5))
    else:
        y = F.layer_norm(x, leaf(np.ones(3), np.float32), leaf(np.zeros(3), np.float32),
                         eps=np.float64(1e-5))
    assert y.dtype == np.float32
    y.sum().backward()
    y2 = x * 1.0
    y2.sum().backward()                 # accumulating must keep the leaf's dtype too
    assert x.grad.dtype == np.float32


def test_integer_tensor_does_not_promote_float32():
    """float32 + an int64 tensor is float64 in NumPy; minims must either keep float32 or refuse."""
    x = leaf([1.0, 2.0], np.float32)
    n = Tensor(np.array([1, 2]))
    try:
        y = x + n
    except TypeError:
        return
    assert y.dtype == np.float32


def test_mixing_float32_and_float64_tensors_raises():
    a = leaf([1.0, 2.0], np.float32)
    b = leaf([1.0, 2.0], np.float64)
    with pytest.raises(TypeError, match="float32.*float64"):
        a + b
    with pytest.raises(TypeError):
        b * a
    with pytest.raises(TypeError):
        F.layer_norm(a, b, b)
    # an explicit cast is the way out, and its gradient comes back in the original dtype
    (a.astype(np.float64) * b).sum().backward()
    assert a.grad.dtype == np.float32


def test_only_floating_tensors_can_require_grad():
    with pytest.raises(TypeError):
        Tensor(np.array([1, 2]), requires_grad=True)


# --- the small Tensor API ---------------------------------------------------------------

def test_comparisons_return_plain_boolean_arrays():
    x = leaf([1.0, 2.0, 3.0])
    for r in (x > 1.5, x >= 2.0, x < Tensor(np.array([2.0, 2.0, 2.0])), x <= 2.0, x == 2.0, x != 2.0):
        assert isinstance(r, np.ndarray) and not isinstance(r, Tensor)
        assert r.dtype == bool
    np.testing.assert_array_equal(x > 1.5, [False, True, True])
    assert hash(x) == hash(x)           # still usable as a dict key despite __eq__


def test_item_numpy_detach_T_shape():
    x = leaf([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    assert x.shape == (2, 3) and x.ndim == 2 and x.size == 6 and len(x) == 2
    assert (x.sum()).item() == 21.0 and isinstance(x.sum().item(), float)
    arr = x.numpy()
    assert isinstance(arr, np.ndarray) and arr.shape == (2, 3)
    np.testing.assert_array_equal(arr, [[1, 2, 3], [4, 5, 6]])

    d = (x * 2.0).detach()
    assert d.requires_grad is False and d._ctx is None
    np.testing.assert_array_equal(d.numpy(), 2 * arr)
    (d * x).sum().backward()            # gradient flows to x only through the live branch
    np.testing.assert_array_equal(x.grad, 2 * arr)

    x.grad = None
    t = x.T
    assert t.shape == (3, 2)
    np.testing.assert_array_equal(t.numpy(), arr.T)
    (t * Tensor(np.arange(6.0).reshape(3, 2))).sum().backward()
    np.testing.assert_array_equal(x.grad, np.arange(6.0).reshape(3, 2).T)


# --- fused ops: errors and stability --------------------------------------------------------

@pytest.mark.parametrize("bad", [[0, 5], [-1, 0], [[1, 2], [7, 0]]])
def test_embedding_ids_out_of_range_raise(bad):
    w = leaf(np.ones((5, 3)))
    with pytest.raises(IndexError, match="out of range"):
        F.embedding(np.array(bad), w)


def test_embedding_refuses_float_ids():
    with pytest.raises(TypeError):
        F.embedding(np.array([0.0, 1.0]), leaf(np.ones((5, 3))))


def test_embedding_repeated_ids_accumulate():
    V, C = 6, 3
    rng = np.random.default_rng(1)
    w = leaf(rng.standard_normal((V, C)))
    ids = np.array([[0, 2, 2, 5], [2, 1, 0, 2]])          # 2 four times, 0 twice, 3 and 4 never
    out = F.embedding(ids, w)
    np.testing.assert_array_equal(out.numpy(), w.numpy()[ids])

    out.sum().backward()                                  # every row of g is ones
    counts = np.bincount(ids.ravel(), minlength=V)
    np.testing.assert_array_equal(w.grad, np.repeat(counts[:, None], C, axis=1))

    w.grad = None
    g = rng.standard_normal(ids.shape + (C,))
    F.embedding(ids, w).backward(g)
    expected = np.zeros((V, C))
    for pos, i in np.ndenumerate(ids):                   # the slow, obvious way
        expected[i] += g[pos]
    np.testing.assert_allclose(w.grad, expected, rtol=1e-14)


@pytest.mark.parametrize("bad", [4, -1])
def test_cross_entropy_targets_out_of_range_raise(bad):
    logits = leaf(np.zeros((2, 4)))
    with pytest.raises(IndexError, match="out of range"):
        F.cross_entropy(logits, np.array([0, bad]))


def test_cross_entropy_target_shape_must_match():
    with pytest.raises(ValueError, match="shape"):
        F.cross_entropy(leaf(np.zeros((2, 3, 4))), np.zeros((2, 4), dtype=int))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_log_softmax_is_stable_for_huge_logits(dtype):
    z = leaf([[1e4, -1e4, 0.0], [-1e4, -1e4, -1e4]], dtype)
    y = F.log_softmax(z)
    assert y.dtype == dtype
    # exact answers: log Σ exp is the max (other terms underflow), or max + log 3 for ties
    expected = np.array([[0.0, -2e4, -1e4], [-np.log(3.0)] * 3])
    np.testing.assert_allclose(y.numpy(), expected, rtol=1e-6)
    y.backward(np.ones((2, 3), dtype))
    assert np.all(np.isfinite(z.grad))
    # d/dz Σ_i y_i = 1 − V·softmax:  softmax is (1, 0, 0) and (1/3, 1/3, 1/3)
    np.testing.assert_allclose(z.grad, [[-2.0, 1.0, 1.0], [0.0, 0.0, 0.0]], atol=1e-6)

    p = F.softmax(z)
    np.testing.assert_allclose(p.numpy(), [[1.0, 0.0, 0.0], [1 / 3] * 3], rtol=1e-6)
    loss = F.cross_entropy(z, np.array([1, 0]))
    np.testing.assert_allclose(loss.item(), (2e4 + np.log(3.0)) / 2, rtol=1e-6)


def test_attention_mask_that_empties_a_row_raises():
    q = leaf(np.ones((1, 1, 3, 2)))
    mask = np.ones((3, 3), dtype=bool)
    mask[1] = False
    with pytest.raises(ValueError, match="no key"):
        F.scaled_dot_product_attention(q, q, q, causal=False, mask=mask)
    # fine alone, but empty once combined with the causal rule: query 0 may only see key 0
    mask = np.ones((3, 3), dtype=bool)
    mask[0, 0] = False
    F.scaled_dot_product_attention(q, q, q, causal=False, mask=mask)
    with pytest.raises(ValueError, match="no key"):
        F.scaled_dot_product_attention(q, q, q, causal=True, mask=mask)


def test_attention_mask_must_be_boolean():
    q = leaf(np.ones((1, 1, 2, 2)))
    with pytest.raises(TypeError, match="boolean"):
        F.scaled_dot_product_attention(q, q, q, causal=False, mask=np.ones((2, 2)))


def test_causal_attention_needs_as_many_queries_as_keys():
    q, k = leaf(np.ones((1, 1, 2, 4))), leaf(np.ones((1, 1, 3, 4)))
    with pytest.raises(ValueError, match="causal"):
        F.scaled_dot_product_attention(q, k, k, causal=True)
    assert F.scaled_dot_product_attention(q, k, k, causal=False).shape == (1, 1, 2, 4)


def test_causal_attention_does_not_look_ahead():
    rng = np.random.default_rng(2)
    q, k, v = (leaf(rng.standard_normal((1, 2, 5, 3))) for _ in range(3))
    out = F.scaled_dot_product_attention(q, k, v, causal=True)
    v2 = v.numpy().copy()
    v2[:, :, 3:] += 100.0                                  # change the future only
    out2 = F.scaled_dot_product_attention(q, k, Tensor(v2), causal=True)
    np.testing.assert_array_equal(out.numpy()[:, :, :3], out2.numpy()[:, :, :3])
    assert not np.allclose(out.numpy()[:, :, 3:], out2.numpy()[:, :, 3:])


@pytest.mark.parametrize("T", [33, 70, 96])
def test_causal_attention_in_bands_matches_the_whole_matrix(T):
    """Past ATTENTION_BAND_SIZE queries the op works in bands (70: three bands of 24, 24 and 22
    queries, the last one shorter): values and the gradients of q, k and v equal those of the
    plain softmax(q kᵀ/√hs + causal mask) v in float64."""
    rng = np.random.default_rng(T)
    q, k, v = (rng.standard_normal((2, 2, T, 5)) for _ in range(3))
    g = rng.standard_normal((2, 2, T, 5))
    ts = [leaf(a) for a in (q, k, v)]
    out = F.scaled_dot_product_attention(*ts, causal=True)
    out.backward(g)
    # the reference, by hand: S = q kᵀ/√hs masked, P = softmax, O = P v and its backward
    S = q @ k.swapaxes(-1, -2) / np.sqrt(5) + np.triu(np.full((T, T), -np.inf), 1)
    P = np.exp(S - S.max(-1, keepdims=True))
    P /= P.sum(-1, keepdims=True)
    dP = g @ v.swapaxes(-1, -2)
    dS = P * (dP - (dP * P).sum(-1, keepdims=True)) / np.sqrt(5)
    np.testing.assert_allclose(out.numpy(), P @ v, rtol=1e-12, atol=1e-12)
    for t, ref in zip(ts, (dS @ k, dS.swapaxes(-1, -2) @ q, P.swapaxes(-1, -2) @ g)):
        np.testing.assert_allclose(t.grad, ref, rtol=1e-10, atol=1e-12)


# --- activation memory ------------------------------------------------------------------

def _attention_saved(T, B=2, nh=3, hs=4, dtype=np.float64):
    rng = np.random.default_rng(0)
    q, k, v = (leaf(rng.standard_normal((B, nh, T, hs)), dtype) for _ in range(3))
    out = F.scaled_dot_product_attention(q, k, v, causal=True)
    return saved_bytes(out, by="op")["ScaledDotProductAttention"]


def test_attention_saves_P_which_grows_with_T_squared():
    """Saved bytes = (one T×T array P) + (some T×hs arrays: the output, maybe a scaled q).
    From T and 2T: s(2T) − 2·s(T) = 2·|P(T)|, which pins the T² part down exactly."""
    B, nh, hs, T = 2, 3, 4, 8
    for dtype in (np.float64, np.float32):
        item = np.dtype(dtype).itemsize
        small, large = _attention_saved(T, dtype=dtype), _attention_saved(2 * T, dtype=dtype)
        P_small = item * B * nh * T * T                  # (B, nh, T, T)
        assert large - 2 * small == 2 * P_small          # exactly one T×T array per head
        P_large = large - 2 * (small - P_small)          # the T·hs part doubles
        assert P_large == item * B * nh * (2 * T) * (2 * T) == 4 * P_small
        # the rest is whole (B, nh, T, hs) arrays: at least the output, at most q, k, v and it
        # (q, k, v are leaves here, so a copy made of them would be the only reason to count one)
        row = item * B * nh * T * hs
        linear = small - P_small
        assert linear % row == 0 and 1 <= linear // row <= 4, linear / row


def test_parameters_and_inputs_are_not_counted():
    x = Tensor(np.ones((4, 3)))                           # an input
    w = leaf(np.ones((3, 5)))                             # a parameter
    y = x @ w                                             # MatMul saves x and w: both leaves
    assert saved_bytes(y) == 0
    z = (x @ w.T.T).tanh()                                # a view of a leaf is still the leaf
    assert saved_bytes(z) == 4 * 5 * 8                    # only tanh's output
    assert saved_bytes(z, by="op") == {"Tanh": 4 * 5 * 8}


def test_shared_buffers_are_counted_once():
    x = leaf(np.ones((4, 3)))
    e = x.exp()                                           # saves its output (96 bytes)
    y = e * e.reshape(4, 3)                               # Mul saves e and a view of e
    assert saved_bytes(y) == 4 * 3 * 8


def test_backward_frees_the_saved_arrays():
    x = leaf(np.ones((4, 3)))
    loss = (x.exp() * x.tanh()).sum()
    assert saved_bytes(loss) > 0
    loss.backward()
    assert saved_bytes(loss) == 0
    assert saved_bytes(loss, by="op") == {}


def test_name_scope_tags_show_up_by_scope():
    x = leaf(np.ones((2, 3)))
    with minims.name_scope("blocks.0.attn"):
        a = x.exp()                                       # 48 bytes
    with minims.name_scope("blocks.0.mlp"):
        b = a.tanh()                                      # 48 (Tanh saves only its output)
    with minims.name_scope("blocks.1.mlp"):
        c = b.exp()                                       # 48
    out = c.sum()                                         # Sum saves nothing
    by_scope = saved_bytes(out, by="scope")
    assert by_scope == {"blocks.0.attn": 48, "blocks.0.mlp": 48, "blocks.1.mlp": 48}
    assert saved_bytes(out, by="scope", depth=2) == {"blocks.0": 96, "blocks.1": 48}
    assert saved_bytes(out) == 144
    # scopes nest with a dot, as modules inside modules do
    with minims.name_scope("blocks"):
        with minims.name_scope("2"):
            with minims.name_scope("attn"):
                d = x.tanh()
            e = d.exp()
    assert saved_bytes(e, by="scope") == {"blocks.2.attn": 48, "blocks.2": 48}
    assert saved_bytes(e, by="scope", depth=1) == {"blocks": 96}
