"""Edge cases a user can write, one section per kind, each with the exact input that once gave
a silently wrong answer (the generic harness, tests/test_gradcheck.py, draws the whole kind):

1. axes in every spelling (negative, tuples, None), and gradients of the wrong shape;
2. integer and boolean operands of float arithmetic (the dtype rule);
3. careful statistics: constant and large-offset rows through layer norm and mean;
4. backward formulas at points where they read 0·∞ or 0/0 (x ** 0 at 0);
5. aliasing of state (load_state_dict, optimizer state, Tensor(array));
6. zero-size dimensions in every op.

Where PyTorch is installed it is a second oracle (`pytest.importorskip("torch")`).
"""
import warnings

import numpy as np
import pytest

import minims
import minims.functional as F
from minims import Tensor
from minims.engine import AxisError
from minims.nn import Linear, Module, init_parameters
from minims.optim import SGD, AdamW


def leaf(values, dtype=np.float64):
    return Tensor(np.asarray(values, dtype=dtype), requires_grad=True)


@pytest.fixture
def no_warnings():
    """Fail on any warning (a 0/0 or a division by zero in NumPy is one)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


def torch_or_skip():
    return pytest.importorskip("torch")


# --- 1. axes: negative, tuples, None --------------------------------------------------------

def test_transpose_with_a_negative_axis_has_the_right_gradient():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((2, 3, 4))
    W = rng.standard_normal((4, 2, 3))
    x = Tensor(a, requires_grad=True)
    (x.transpose(-1, 0, 1) * Tensor(W)).sum().backward()
    np.testing.assert_array_equal(x.grad, np.transpose(W, np.argsort([2, 0, 1])))


def _value_and_grad(fn, a, w):
    x = leaf(a)
    out = fn(x)
    out.backward(np.broadcast_to(w, out.shape) if w is not None else None)
    return out.numpy(), x.grad


# each op with one axis argument written in two equivalent ways
SPELLINGS = {
    "transpose": (lambda x: x.transpose(2, 0, 1), lambda x: x.transpose(-1, 0, -2)),
    "sum": (lambda x: x.sum(axis=(0, 2)), lambda x: x.sum(axis=(-1, -3))),
    "sum keepdims": (lambda x: x.sum(axis=1, keepdims=True), lambda x: x.sum(axis=-2, keepdims=True)),
    "max": (lambda x: x.max(axis=(1, 2)), lambda x: x.max(axis=(-1, 1))),
    "mean": (lambda x: x.mean(axis=(0, 1)), lambda x: x.mean(axis=(-2, 0))),
    "mean all": (lambda x: x.mean(), lambda x: x.mean(axis=(0, 1, 2))),
    "softmax": (lambda x: F.softmax(x, 1), lambda x: F.softmax(x, -2)),
    "softmax tuple": (lambda x: F.softmax(x, (0, 2)), lambda x: F.softmax(x, (-1, 0))),
    "log_softmax": (lambda x: F.log_softmax(x, 0), lambda x: F.log_softmax(x, -3)),
    "concat": (lambda x: minims.concat([x, x * 2.0], axis=2), lambda x: minims.concat([x, x * 2.0], axis=-1)),
    "stack": (lambda x: minims.stack([x, x * 2.0], axis=3), lambda x: minims.stack([x, x * 2.0], axis=-1)),
}


@pytest.mark.parametrize("name", sorted(SPELLINGS))
def test_every_axis_spelling_gives_the_same_value_and_gradient(name):
    first, second = SPELLINGS[name]
    a = np.random.default_rng(1).permutation(24).reshape(2, 3, 4) / 7.0  # no ties for max
    v1, g1 = _value_and_grad(lambda x: first(x).sum(), a, None)
    v2, g2 = _value_and_grad(lambda x: (second(x) * 1.0).sum(), a, None)
    w = np.random.default_rng(2).standard_normal(first(Tensor(a)).shape)
    v3, g3 = _value_and_grad(first, a, w)
    v4, g4 = _value_and_grad(second, a, w)
    np.testing.assert_allclose(v1, v2, rtol=1e-14)
    np.testing.assert_array_equal(v3, v4)
    np.testing.assert_allclose(g1, g2, rtol=1e-14)
    np.testing.assert_array_equal(g3, g4)


@pytest.mark.parametrize("call, message", [
    (lambda x: x.sum(axis=3), r"Sum: axis 3 is out of range for a 3-dim tensor"),
    (lambda x: x.max(axis=-4), r"Max: axis -4 is out of range"),
    (lambda x: x.mean(axis=(0, -3)), r"mean: repeated axis"),
    (lambda x: x.transpose(0, 1, 1), r"Transpose: axes \(0, 1, 1\) are not a permutation"),
    (lambda x: x.transpose(0, 1), r"Transpose: axes \(0, 1\) are not a permutation"),
    (lambda x: F.softmax(x, 5), r"Softmax: axis 5 is out of range"),
    (lambda x: minims.concat([x, x], axis=-4), r"Concat: axis -4"),
    (lambda x: minims.stack([x, x], axis=4), r"Stack: axis 4 is out of range for a 4-dim"),
])
def test_axis_out_of_range_or_repeated_is_a_clear_error(call, message):
    x = leaf(np.ones((2, 3, 4)))
    with pytest.raises(AxisError, match=message) as info:
        call(x)
    assert isinstance(info.value, ValueError) and isinstance(info.value, IndexError)  # as NumPy's


def test_an_axis_must_be_an_integer():
    x = leaf(np.ones((2, 3)))
    for bad in (1.0, True, "0"):
        with pytest.raises(TypeError, match="axis must be an integer"):
            x.sum(axis=bad)


def test_the_engine_refuses_a_gradient_of_the_wrong_shape():
    """A backward returning a transposed gradient (same size, wrong layout) was reshaped
    into place silently; now it is an error naming the op."""
    class TransposedGrad(minims.Function):
        @staticmethod
        def forward(ctx, a):
            return a * 2

        @staticmethod
        def backward(ctx, g):
            return g.T * 2
    try:
        x = leaf(np.ones((2, 3)))
        with pytest.raises(ValueError, match=r"TransposedGrad.backward returned a gradient of "
                                             r"shape \(3, 2\) for an input of shape \(2, 3\)"):
            TransposedGrad.apply(x).sum().backward()
    finally:
        del minims.OPS["TransposedGrad"]


def test_negative_axes_against_pytorch():
    torch = torch_or_skip()
    rng = np.random.default_rng(0)
    a = rng.standard_normal((2, 3, 4))
    W = rng.standard_normal((4, 2, 3))
    x = leaf(a)
    (x.transpose(-1, 0, 1) * Tensor(W)).sum().backward()
    t = torch.tensor(a, requires_grad=True)
    (t.permute(-1, 0, 1) * torch.tensor(W)).sum().backward()
    np.testing.assert_array_equal(x.grad, t.grad.numpy())
    for ours, theirs in [(lambda x: x.sum(axis=(-1, 0)), lambda t: t.sum(dim=(-1, 0))),
                         (lambda x: F.softmax(x, -2), lambda t: torch.softmax(t, dim=-2)),
                         (lambda x: F.log_softmax(x, -3), lambda t: torch.log_softmax(t, dim=-3)),
                         (lambda x: x.mean(axis=-2), lambda t: t.mean(dim=-2))]:
        x, t = leaf(a), torch.tensor(a, requires_grad=True)
        out, ref = ours(x), theirs(t)
        np.testing.assert_allclose(out.numpy(), ref.detach().numpy(), rtol=1e-12)
        w = rng.standard_normal(out.shape)
        out.backward(w)
        ref.backward(torch.tensor(w))
        np.testing.assert_allclose(x.grad, t.grad.numpy(), rtol=1e-12, atol=1e-15)


# --- 2. integer and boolean operands ----------------------------------------------------------

def test_integer_tensor_times_a_python_float_is_not_cast_down():
    t = Tensor(np.array([2, 4, 9]))
    for out in (t * 0.5, 0.5 * t, t / 2, t / Tensor(np.array([2, 2, 2]))):
        assert out.dtype == np.float32
        np.testing.assert_array_equal(out.numpy(), [1.0, 2.0, 4.5])
    np.testing.assert_array_equal((t + 0.5).numpy(), [2.5, 4.5, 9.5])
    np.testing.assert_array_equal((1.5 - t).numpy(), [-0.5, -2.5, -7.5])
    np.testing.assert_array_equal(minims.where(t > 3, t, 0.5).numpy(), [0.5, 4.0, 9.0])


@pytest.mark.parametrize("make, expected, dtype", [
    (lambda: Tensor(np.array([1, 2, 4])).mean(), 7 / 3, np.float32),            # reductions that divide
    (lambda: Tensor(np.array([[1, 2], [4, 8]])).mean(axis=-1), [1.5, 6.0], np.float32),
    (lambda: Tensor(np.array([True, False, True])).mean(), 2 / 3, np.float32),
    (lambda: Tensor(np.array([True, False])) * 0.5, [0.5, 0.0], np.float32),
    (lambda: Tensor(np.array([0, 1])).exp(), [1.0, np.e], np.float32),           # float ops
    (lambda: Tensor(np.array([True, False])).exp(), [np.e, 1.0], np.float32),    # (NumPy: float16)
    (lambda: Tensor(np.array([4, 9])).sqrt(), [2.0, 3.0], np.float32),
    (lambda: Tensor(np.array([4, 9])) ** 0.5, [2.0, 3.0], np.float32),
    (lambda: F.softmax(Tensor(np.array([0, 0]))), [0.5, 0.5], np.float32),
    (lambda: Tensor(np.array([2, 4])) * np.float64(0.5), [1.0, 2.0], np.float64),  # a NumPy float64
    (lambda: Tensor(np.array([2, 4])) + 1, [3, 5], np.int64),                     # integer ops stay
    (lambda: Tensor(np.array([2, 4])) ** 2, [4, 16], np.int64),
    (lambda: Tensor(np.array([2, 4])) ** 0, [1, 1], np.int64),
    (lambda: Tensor(np.array([2, 4])).sum(), 6, np.int64),
    (lambda: Tensor(np.array([2, 4], np.int8)) + 1, [3, 5], np.int8),             # NumPy's rules
    (lambda: Tensor(np.array([True, False])) + 1, [2, 1], np.int64),
    (lambda: Tensor(np.array([True, False])) * Tensor(np.array([True, True])), [True, False], np.bool_),
])
def test_dtype_rule_for_integer_and_boolean_operands(make, expected, dtype):
    out = make()
    assert out.dtype == dtype
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-6)


def test_integer_operands_of_a_float_tensor_take_its_dtype():
    x = leaf([1.0, 2.0], np.float32)
    n = Tensor(np.array([3, 4]))
    assert (x * n).dtype == np.float32 and (n / x).dtype == np.float32
    y = F.layer_norm(Tensor(np.array([[1, 2, 3]])), leaf(np.ones(3), np.float32),
                     leaf(np.zeros(3), np.float32))
    assert y.dtype == np.float32
    assert (x * 0.5).dtype == np.float32 and (x * np.float64(0.5)).dtype == np.float32  # no promotion
    with pytest.raises(TypeError, match="mixed float dtypes"):
        x * leaf([1.0, 2.0])


def test_numpy_refusals_stay_refusals():
    with pytest.raises(TypeError):
        Tensor(np.array([True, False])) - Tensor(np.array([True, True]))   # NumPy refuses bool -
    with pytest.raises(ValueError):
        Tensor(np.array([1, 2])) ** -1                                      # and ints to negative powers


def test_integer_operands_against_pytorch():
    torch = torch_or_skip()
    cases = [(lambda t: t * 0.5, np.array([2, 4, 9])), (lambda t: t / 2, np.array([2, 4, 9])),
             (lambda t: t.exp(), np.array([0, 1, 2])), (lambda t: t + 1, np.array([2, 4], np.int8)),
             (lambda t: t + 1, np.array([True, False])), (lambda t: t * 0.5, np.array([True, False]))]
    for fn, a in cases:
        ours, theirs = fn(Tensor(a)), fn(torch.from_numpy(a))
        assert ours.dtype == np.dtype(str(theirs.dtype).replace("torch.", "")), (a, ours.dtype, theirs.dtype)
        np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-6)


# --- 3. careful statistics ----------------------------------------------------------------------

def test_layer_norm_of_a_constant_row_is_exactly_the_bias():
    x = Tensor(np.full((1, 7), 1e6, np.float32), requires_grad=True)
    w = leaf(np.ones(7), np.float32)
    b = leaf(np.zeros(7), np.float32)
    y = F.layer_norm(x, w, b)
    np.testing.assert_array_equal(y.numpy(), np.zeros((1, 7), np.float32))
    bias = np.linspace(-1, 1, 7).astype(np.float32)
    for c in (1e6, 0.1, -3.7, 1e-20, 0.0):
        row = Tensor(np.full((2, 7), c, np.float32))
        out = F.layer_norm(row, leaf(np.linspace(0.5, 2, 7), np.float32), leaf(bias, np.float32))
        np.testing.assert_array_equal(out.numpy(), np.broadcast_to(bias, (2, 7)), err_msg=str(c))
    y.backward(np.random.default_rng(0).standard_normal((1, 7)).astype(np.float32))
    assert np.all(np.isfinite(x.grad)) and np.all(np.isfinite(w.grad))


def test_mean_of_a_constant_row_is_exact():
    x = Tensor(np.full((1, 7), 1e6, np.float32))
    assert x.mean().item() == 1e6
    np.testing.assert_array_equal(x.mean(axis=-1).numpy(), [1e6])


def _layer_norm_float64(x, w, b, eps=1e-5):
    x = x.astype(np.float64)
    xc = x - x.mean(-1, keepdims=True)
    xc -= xc.mean(-1, keepdims=True)          # (a second pass: accurate to 1e-16 here)
    return xc / np.sqrt((xc * xc).mean(-1, keepdims=True) + eps) * w + b


def test_layer_norm_rows_with_a_large_offset_are_accurate():
    """float32 rows of 1e6 + N(0, 1): the only error left is float32's on the output (~1e-7),
    not the 0.06 of a mean rounded at 1e6 (which the naive Σx·(1/C) gives)."""
    rng = np.random.default_rng(0)
    x = (1e6 + rng.standard_normal((64, 48))).astype(np.float32)
    w, b = rng.uniform(0.5, 1.5, 48).astype(np.float32), rng.standard_normal(48).astype(np.float32)
    y = F.layer_norm(Tensor(x), Tensor(w), Tensor(b)).numpy()
    error = np.abs(y - _layer_norm_float64(x, w, b)).max()
    assert error < 2e-6, error


def test_layer_norm_statistics_against_pytorch():
    torch = torch_or_skip()
    rng = np.random.default_rng(0)
    w, b = np.ones(7, np.float32), np.zeros(7, np.float32)
    x = np.full((1, 7), 1e6, np.float32)
    ref = torch.nn.functional.layer_norm(torch.from_numpy(x), (7,), torch.from_numpy(w), torch.from_numpy(b))
    np.testing.assert_allclose(F.layer_norm(Tensor(x), Tensor(w), Tensor(b)).numpy(), ref.numpy(),
                               atol=1e-6)        # ours is exactly 0 (the test above)
    # large offsets: at least as accurate as PyTorch, measured against float64
    x = (1e6 + rng.standard_normal((64, 48))).astype(np.float32)
    w, b = rng.uniform(0.5, 1.5, 48).astype(np.float32), rng.standard_normal(48).astype(np.float32)
    truth = _layer_norm_float64(x, w, b)
    ours = np.abs(F.layer_norm(Tensor(x), Tensor(w), Tensor(b)).numpy() - truth).max()
    theirs = np.abs(torch.nn.functional.layer_norm(
        torch.from_numpy(x), (48,), torch.from_numpy(w), torch.from_numpy(b)).numpy() - truth).max()
    assert ours <= max(theirs, 2e-6), (ours, theirs)


# --- 4. backward formulas at 0·∞ and 0/0 ------------------------------------------------------

def test_x_to_the_power_0_has_gradient_0_at_0(no_warnings):
    x = leaf([0.0, 1.0, -2.0])
    (x ** 0).sum().backward()
    np.testing.assert_array_equal(x.grad, [0.0, 0.0, 0.0])
    assert not np.signbit(x.grad).any()


@pytest.mark.parametrize("p, grad", [(0, [0, 0, 0]), (1, [1, 1, 1]), (2, [0, 2, -4]),
                                     (3, [0, 3, 12]), (0.0, [0, 0, 0]), (1.0, [1, 1, 1])])
def test_powers_with_a_finite_derivative_at_0(p, grad, no_warnings):
    x = leaf([0.0, 1.0, -2.0])
    (x ** p).sum().backward()
    np.testing.assert_array_equal(x.grad, grad)


def test_powers_against_pytorch():
    torch = torch_or_skip()
    for p in (0, 1, 2, 3, 0.0, 1.0):
        x, t = leaf([0.0, 1.0, -2.0]), torch.tensor([0.0, 1.0, -2.0], dtype=torch.float64, requires_grad=True)
        (x ** p).sum().backward()
        (t ** p).sum().backward()
        np.testing.assert_array_equal(x.grad, t.grad.numpy())


# --- 5. aliasing of state ----------------------------------------------------------------------

class Tiny(Module):
    def __init__(self):
        super().__init__()
        self.fc = Linear(3, 2)


def _train_step(model, opt):
    x = Tensor(np.ones((4, 3), np.float32))
    opt.zero_grad()
    (model.fc(x) * model.fc(x)).sum().backward()
    opt.step()


def test_load_state_dict_copies_the_arrays():
    model = init_parameters(Tiny(), seed=0)
    best = model.state_dict()
    kept = {k: v.copy() for k, v in best.items()}
    model.load_state_dict(best)
    _train_step(model, SGD(model.parameters(), lr=0.1))
    for k in best:
        np.testing.assert_array_equal(best[k], kept[k], err_msg=f"training changed best[{k!r}]")
    a, b = Tiny(), Tiny()
    a.load_state_dict(best)
    b.load_state_dict(best)
    for (name, p), q in zip(a.named_parameters(), b.parameters()):
        assert p.data is not q.data and not np.shares_memory(p.data, q.data), name
        assert not np.shares_memory(p.data, best[name]), name


@pytest.mark.parametrize("make", [lambda ps: AdamW(ps, lr=0.1), lambda ps: SGD(ps, lr=0.1, momentum=0.9)])
def test_optimizer_state_is_never_shared(make):
    model = init_parameters(Tiny(), seed=0)
    opt = make(model.parameters())
    _train_step(model, opt)
    saved = opt.state_dict()
    kept = {k: [a.copy() for a in v] if isinstance(v, list) else v for k, v in saved.items()}
    _train_step(model, opt)                       # state_dict() was a copy
    other = make(init_parameters(Tiny(), seed=1).parameters())
    other.load_state_dict(saved)
    for buffers in other._buffers().values():      # load_state_dict copied into its own buffers
        for a in buffers:
            a += 1.0
    for k, v in saved.items():
        if isinstance(v, list):
            for a, b in zip(v, kept[k]):
                np.testing.assert_array_equal(a, b, err_msg=k)


def test_tensor_of_an_array_shares_it_as_documented():
    """Tensor(array) is numpy.asarray-like (see its docstring): no copy for an array of the
    same dtype on NumPy; array.copy() keeps them apart; another dtype is a new array."""
    a = np.zeros(3)
    t = Tensor(a)
    a[0] = 5.0
    assert t.numpy()[0] == 5.0
    u = Tensor(a.copy())
    a[1] = 7.0
    assert u.numpy()[1] == 0.0
    assert not np.shares_memory(Tensor(a, dtype=np.float32).data, a)


# --- 6. zero-size dimensions -------------------------------------------------------------------

def test_matmul_with_a_zero_size_dimension(no_warnings):
    a = Tensor(np.ones((3, 4)), requires_grad=True)
    b = Tensor(np.ones((4, 0)), requires_grad=True)
    out = a @ b
    assert out.shape == (3, 0)
    out.sum().backward()
    np.testing.assert_array_equal(a.grad, np.zeros((3, 4)))
    assert b.grad.shape == (4, 0)


def test_reductions_over_an_empty_axis_give_what_numpy_gives():
    x = leaf(np.ones((0, 3)))
    s = x.sum(axis=0)
    np.testing.assert_array_equal(s.numpy(), np.ones((0, 3)).sum(axis=0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        expected = np.ones((0, 3)).mean(axis=0)       # NaN (with a warning)
    m = x.mean(axis=0)
    np.testing.assert_array_equal(m.numpy(), expected)
    with warnings.catch_warnings():
        warnings.simplefilter("error")               # no 0/0 in backward
        (s.sum() + m.sum()).backward()
    assert x.grad.shape == (0, 3)
    with pytest.raises(ValueError, match="Max over an empty axis"):
        x.max(axis=0)
    assert x.max(axis=1).shape == (0,)               # an empty result of a non-empty axis is fine


@pytest.mark.parametrize("name", ["softmax", "log_softmax", "gelu", "layer_norm rows", "layer_norm C=0",
                                  "linear in=0", "linear rows=0", "embedding C=0", "dropout",
                                  "attention Tq=0", "attention hs=0", "attention B=0",
                                  "cross_entropy N=0", "concat", "getitem"])
def test_every_op_takes_zero_size_dimensions(name, no_warnings):
    minims.backend.manual_seed(0)
    e = lambda *shape: leaf(np.ones(shape))  # noqa: E731
    if name == "cross_entropy N=0":
        logits = e(0, 5)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            loss = F.cross_entropy(logits, np.zeros(0, np.int64))
        assert np.isnan(loss.item())                 # the mean of nothing, as NumPy and PyTorch
        loss.backward()
        assert logits.grad.shape == (0, 5)
        return
    inputs, call = {
        "softmax": ([e(3, 0)], lambda x: F.softmax(x, -1)),
        "log_softmax": ([e(0, 4)], lambda x: F.log_softmax(x, 0)),
        "gelu": ([e(2, 0, 3)], F.gelu),
        "layer_norm rows": ([e(0, 4), e(4), e(4)], F.layer_norm),
        "layer_norm C=0": ([e(3, 0), e(0), e(0)], F.layer_norm),
        "linear in=0": ([e(2, 0), e(0, 3), e(3)], F.linear),
        "linear rows=0": ([e(0, 2), e(2, 3), e(3)], F.linear),
        "embedding C=0": ([e(5, 0)], lambda w: F.embedding(np.array([[0, 4]]), w)),
        "dropout": ([e(0, 3)], lambda x: F.dropout(x, 0.5)),
        "attention Tq=0": ([e(1, 2, 0, 4), e(1, 2, 3, 4), e(1, 2, 3, 4)],
                           lambda q, k, v: F.scaled_dot_product_attention(q, k, v, causal=False)),
        "attention hs=0": ([e(1, 2, 3, 0)] * 3, F.scaled_dot_product_attention),
        "attention B=0": ([e(0, 2, 3, 4)] * 3, F.scaled_dot_product_attention),
        "concat": ([e(2, 0), e(2, 3)], lambda a, b: minims.concat([a, b], axis=-1)),
        "getitem": ([e(3, 4)], lambda x: x[1:1]),
    }[name]
    out = call(*inputs)
    out.backward(np.ones(out.shape))
    for x in inputs:
        assert x.grad is not None and x.grad.shape == x.shape
    if name == "linear in=0":                        # x @ W is 0 there: the bias alone
        np.testing.assert_array_equal(out.numpy(), np.ones((2, 3)))
        np.testing.assert_array_equal(inputs[2].grad, [2.0, 2.0, 2.0])


def test_attention_over_zero_keys_is_a_clear_error():
    q, kv = leaf(np.ones((1, 1, 2, 4))), leaf(np.ones((1, 1, 0, 4)))
    with pytest.raises(ValueError, match="0 keys"):
        F.scaled_dot_product_attention(q, kv, kv, causal=False)


def test_zero_size_against_pytorch():
    torch = torch_or_skip()
    a, b = leaf(np.ones((3, 4))), leaf(np.ones((4, 0)))
    ta = torch.ones((3, 4), dtype=torch.float64, requires_grad=True)
    tb = torch.ones((4, 0), dtype=torch.float64, requires_grad=True)
    (a @ b).sum().backward()
    (ta @ tb).sum().backward()
    np.testing.assert_array_equal(a.grad, ta.grad.numpy())
    assert b.grad.shape == tuple(tb.grad.shape)
    x, t = leaf(np.ones((0, 3))), torch.ones((0, 3), dtype=torch.float64, requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        np.testing.assert_array_equal(x.mean(axis=0).numpy(), t.mean(dim=0).detach().numpy())
    np.testing.assert_array_equal(F.softmax(leaf(np.ones((3, 0))), -1).numpy(),
                                  torch.softmax(torch.ones((3, 0), dtype=torch.float64), -1).numpy())
