"""The generic gradient-check harness: one function checks any op from its spec.

An `OpSpec` says how to draw inputs for an op (with hypothesis), how to call it through the
public API, and how to compute its forward pass independently with plain NumPy. `check_op`
then verifies, in float64:
  1. forward values against the NumPy reference;
  2. backward against central differences along random directions (autograd's
     `check_grads` idea): for a random cotangent w and a random direction d_i for each
     differentiable input, (L(x_i + εd_i) − L(x_i − εd_i)) / 2ε  ==  ⟨∂L/∂x_i, d_i⟩,
     with L = ⟨w, op(x)⟩.
Value ranges in the specs keep inputs away from kinks (ReLU at 0, ties in max, log at 0),
where finite differences are meaningless.
"""
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

import minims
from minims import Tensor


@dataclass
class OpSpec:
    draw: Callable      # draw(hypothesis_draw) -> (list of float64 arrays, dict of options)
    call: Callable      # call(*tensors, **options) -> Tensor, through the public API
    reference: Callable  # reference(*arrays, **options) -> np.ndarray, plain NumPy
    ops: tuple = field(default=())  # registered op names this spec covers (besides its key)
    atol: float = 1e-8
    rtol: float = 1e-6
    eps: float = 1e-6   # finite-difference step (larger for ops that quantize, like casts)


def missing_specs(ops, specs):
    """Registered ops that no spec covers: each must get one before it can land."""
    covered = set(specs) | {name for spec in specs.values() for name in spec.ops}
    return sorted(set(ops) - covered)


def _loss(spec, arrays, options, w):
    with minims.no_grad():
        out = spec.call(*[Tensor(a) for a in arrays], **options)
    return float(np.sum(out.numpy() * w))


def check_op(spec, arrays, options, seed=0, n_directions=2):
    """Check one op at one input point; raises AssertionError with the details on failure."""
    rng = np.random.default_rng(seed)
    arrays = [np.asarray(a, dtype=np.float64) for a in arrays]
    tensors = [Tensor(a, requires_grad=True) for a in arrays]
    out = spec.call(*tensors, **options)
    expected = np.asarray(spec.reference(*arrays, **options))
    assert out.dtype == np.float64, f"float64 in, {out.dtype} out"
    assert out.shape == expected.shape, f"shape {out.shape}, reference {expected.shape}"
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-9, atol=1e-12,
                               err_msg="forward differs from the NumPy reference")

    eps = spec.eps
    w = rng.standard_normal(out.shape)
    out.backward(w)
    for i, (a, t) in enumerate(zip(arrays, tensors)):
        assert t.grad is not None, f"input {i} got no gradient"
        grad = minims.to_numpy(t.grad)
        assert grad.shape == a.shape, f"input {i}: grad shape {grad.shape} != {a.shape}"
        for _ in range(n_directions):
            d = rng.standard_normal(a.shape)
            plus = [x + eps * d if j == i else x for j, x in enumerate(arrays)]
            minus = [x - eps * d if j == i else x for j, x in enumerate(arrays)]
            numeric = (_loss(spec, plus, options, w) - _loss(spec, minus, options, w)) / (2 * eps)
            analytic = float(np.sum(grad * d))
            tol = spec.atol + spec.rtol * max(abs(numeric), abs(analytic))
            assert abs(numeric - analytic) <= tol, (
                f"input {i}: analytic directional derivative {analytic!r} vs "
                f"central difference {numeric!r} (tol {tol:.2e})")
