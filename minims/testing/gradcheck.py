"""The generic gradient-check harness: one function checks any op from its spec.

An `OpSpec` says how to draw inputs for an op, how to call it through the public API, and how
to compute its forward pass independently with plain NumPy. The specs of minims' own ops are
in minims/testing/op_specs.py (they draw inputs with hypothesis, a test dependency); this module needs
NumPy only, so an op you write can be checked with `check_op(spec, arrays, options)`. `check_op`
then verifies, in float64:
  1. forward values against the NumPy reference — or, where the reference (NumPy) raises
     on the input (the maximum over an empty axis, say), that the op raises too;
  2. backward against central differences along random directions (autograd's
     `check_grads` idea): for a random cotangent w and a random direction d_i for each
     differentiable input, (L(x_i + εd_i) − L(x_i − εd_i)) / 2ε  ==  ⟨∂L/∂x_i, d_i⟩,
     with L = ⟨w, op(x)⟩. The step actually applied, (x + εd) − (x − εd), is used on the
     right-hand side, so inputs with a large offset (1e6 + x) are checked as precisely as
     small ones: a careless op loses digits there, the check does not;
  3. an op-specific exact property, where the spec has one (a constant row through layer
     norm gives exactly the bias).
`check_integer_op` runs an op on integer or boolean operands (the others stay float64) and
checks the dtype rule (tests/test_engine.py spells it out) and the values.
`check_nonfinite_op` runs an op on inputs holding ±inf and NaN and compares its forward
values with the NumPy reference: NaN in the same places, the same infinities (relu(−inf) is
0, as numpy.maximum says, not the NaN of −inf · 0). Central differences mean nothing there,
so its backward is only run (tests/test_torch_oracle.py compares such gradients with PyTorch).
Value ranges in the specs keep inputs away from kinks (ReLU at 0, ties in max, log at 0),
where finite differences are meaningless.
"""
import warnings
from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np

import minims
from minims import Tensor

ERRORS = (ValueError, TypeError, IndexError, ZeroDivisionError)  # "a clear error"


@dataclass
class OpSpec:
    draw: Callable      # draw(hypothesis_draw) -> (list of float64 arrays, dict of options)
    call: Callable      # call(*tensors, **options) -> Tensor, through the public API
    reference: Callable  # reference(*arrays, **options) -> np.ndarray, plain NumPy
    ops: tuple = field(default=())  # registered op names this spec covers (besides its key)
    atol: float = 1e-8
    rtol: float = 1e-6
    eps: float = 1e-6   # finite-difference step (larger for ops that quantize, like casts)
    exact: Optional[Callable] = None  # exact(arrays, options, out) asserts an exact property
    integer_kinds: tuple = ("int", "bool")  # operand kinds `check_integer_op` tries; () = none
    nonfinite_inputs: Optional[tuple] = None  # inputs that may hold ±inf/NaN in
                                              # `check_nonfinite_op` (None: all; (): none)


def missing_specs(ops, specs):
    """Registered ops that no spec covers: each must get one before it can land."""
    covered = set(specs) | {name for spec in specs.values() for name in spec.ops}
    return sorted(set(ops) - covered)


def _loss(spec, arrays, options, w):
    with minims.no_grad():
        out = spec.call(*[Tensor(a) for a in arrays], **options)
    return float(np.sum(out.numpy() * w))


def _reference(spec, arrays, options):
    """The reference's answer, or the exception it raises (NumPy's errors and warnings are
    part of its answer: the mean of an empty axis is NaN, with a warning)."""
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        try:
            return np.asarray(spec.reference(*arrays, **options)), None
        except ERRORS as e:
            return None, e


def _raises_too(spec, tensors, options, numpy_error):
    try:
        spec.call(*tensors, **options)
    except ERRORS:
        return
    raise AssertionError(f"NumPy raises {numpy_error!r} on this input; the op does not")


def check_op(spec, arrays, options, seed=0, n_directions=2):
    """Check one op at one input point; raises AssertionError with the details on failure."""
    rng = np.random.default_rng(seed)
    arrays = [np.asarray(a, dtype=np.float64) for a in arrays]
    tensors = [Tensor(a, requires_grad=True) for a in arrays]
    expected, error = _reference(spec, arrays, options)
    if error is not None:
        return _raises_too(spec, tensors, options, error)
    out = spec.call(*tensors, **options)
    assert out.dtype == np.float64, f"float64 in, {out.dtype} out"
    assert out.shape == expected.shape, f"shape {out.shape}, reference {expected.shape}"
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-9, atol=1e-12,
                               err_msg="forward differs from the NumPy reference")
    if spec.exact is not None:
        spec.exact([a.copy() for a in arrays], options, out.numpy())

    eps = spec.eps
    w = rng.standard_normal(out.shape)
    out.backward(w)
    for i, (a, t) in enumerate(zip(arrays, tensors)):
        assert t.grad is not None, f"input {i} got no gradient"
        grad = minims.to_numpy(t.grad)
        assert grad.shape == a.shape, f"input {i}: grad shape {grad.shape} != {a.shape}"
        for _ in range(n_directions if a.size else 0):  # (an empty input has no directions)
            d = rng.standard_normal(a.shape)
            plus = [x + eps * d if j == i else x for j, x in enumerate(arrays)]
            minus = [x - eps * d if j == i else x for j, x in enumerate(arrays)]
            numeric = (_loss(spec, plus, options, w) - _loss(spec, minus, options, w)) / (2 * eps)
            analytic = float(np.sum(grad * (plus[i] - minus[i]))) / (2 * eps)
            tol = spec.atol + spec.rtol * max(abs(numeric), abs(analytic))
            assert abs(numeric - analytic) <= tol, (
                f"input {i}: analytic directional derivative {analytic!r} vs "
                f"central difference {numeric!r} (tol {tol:.2e})")


def check_nonfinite_op(spec, arrays, options, seed=0):
    """Forward on inputs holding ±inf and NaN, against the NumPy reference: NaN exactly where
    it has NaN, the same infinities, the finite values to 1e-9 (or the op raises where NumPy
    does). Then backward runs and gives each input a gradient of its shape."""
    arrays = [np.asarray(a, dtype=np.float64) for a in arrays]
    tensors = [Tensor(a, requires_grad=True) for a in arrays]
    expected, error = _reference(spec, arrays, options)
    if error is not None:
        return _raises_too(spec, tensors, options, error)
    with np.errstate(all="ignore"):     # (inf − inf and friends: NaN is the answer here)
        out = spec.call(*tensors, **options)
        assert out.dtype == np.float64, f"float64 in, {out.dtype} out"
        assert out.shape == expected.shape, f"shape {out.shape}, reference {expected.shape}"
        got = out.numpy()
        np.testing.assert_array_equal(np.isnan(got), np.isnan(expected),
                                      err_msg="NaN where the NumPy reference has none, or the reverse")
        np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-12,
                                   err_msg="forward differs from the NumPy reference")
        out.backward(np.random.default_rng(seed).standard_normal(out.shape))
    for i, (a, t) in enumerate(zip(arrays, tensors)):
        assert t.grad is not None and t.grad.shape == a.shape, f"input {i}: no gradient of its shape"


def as_kind(a, kind):
    """Integer (rounded away from zero, so nonzero stays nonzero) or boolean (> 0) operands."""
    if kind == "bool":
        return a > 0
    return (np.sign(a) * np.ceil(np.abs(a))).astype(np.int64)


def check_integer_op(spec, arrays, options, kind, which):
    """Run the op with inputs `which` as `kind` ("int" or "bool") operands, the others float64.

    The dtype rule: with a float64 operand left, the result is float64 (the integers were
    cast to it); with integer/boolean operands only, the result has NumPy's dtype on the
    same operands, except that where NumPy gives a float, minims gives float32. Where NumPy
    raises (a boolean subtraction, an integer to a negative power), the op raises too, or,
    for a float op, computes in floats.
    """
    arrays = [as_kind(a, kind) if i in which else np.asarray(a, np.float64)
              for i, a in enumerate(arrays)]
    tensors = [Tensor(a) for a in arrays]
    expected, error = _reference(spec, arrays, options)
    if error is not None:
        # NumPy refuses these operands (`True - False`): so must the op, unless it is a
        # float op that computes in floats anyway (softmax of booleans)
        try:
            out = spec.call(*tensors, **options)
        except ERRORS:
            return
        assert out.dtype.kind == "f", f"NumPy raises {error!r}; the op gives {out.dtype}"
        expected = np.zeros((), np.float64)
    else:
        out = spec.call(*tensors, **options)
    if any(a.dtype.kind == "f" for a in arrays):
        want = np.dtype(np.float64)
    elif expected.dtype.kind == "f":
        want = np.dtype(np.float32)
    else:
        want = expected.dtype
    assert out.dtype == want, f"{kind} operands {sorted(which)}: {out.dtype}, expected {want}"
    if want.kind != "f":
        assert out.shape == expected.shape, f"shape {out.shape}, reference {expected.shape}"
        np.testing.assert_array_equal(out.numpy(), expected)
        return
    exact, _ = _reference(spec, [a.astype(np.float64) for a in arrays], options)
    tol = dict(rtol=1e-9, atol=1e-12) if want == np.float64 else dict(rtol=2e-5, atol=2e-6)
    np.testing.assert_allclose(out.numpy(), exact, **tol, err_msg=f"{kind} operands {sorted(which)}")
