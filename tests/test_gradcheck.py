"""Every registered op, checked by the one generic harness (forward and backward, float64),
on what users write: negative, tuple and None axes, zero-size dimensions, integer and
boolean operands, exponents 0 and 1 at 0, constant and large-offset rows, ±inf and NaN,
attention shapes that broadcast. And the harness itself must fail on planted bugs."""
import dataclasses

import numpy as np
import pytest
from hypothesis import Phase, given, settings, strategies as st

import minims
from minims.testing.gradcheck import check_integer_op, check_nonfinite_op, check_op, missing_specs
from minims.testing.op_specs import EXAMPLES, SPECS, with_nonfinite


def test_every_registered_op_has_a_spec():
    assert missing_specs(minims.OPS, SPECS) == [], "register a spec in minims/testing/op_specs.py"


def test_harness_refuses_an_op_without_a_spec():
    class Unchecked(minims.Function):
        @staticmethod
        def forward(ctx, a):
            return a

        @staticmethod
        def backward(ctx, g):
            return g
    try:
        assert missing_specs(minims.OPS, SPECS) == ["Unchecked"]
    finally:
        del minims.OPS["Unchecked"]


def test_harness_catches_a_wrong_backward():
    """A planted bug (softmax backward using only the Jacobian's diagonal) must be caught."""
    class DiagonalSoftmax(minims.Function):
        @staticmethod
        def forward(ctx, x):
            y = np.exp(x) / np.exp(x).sum(-1, keepdims=True)
            ctx.save(y)
            return y

        @staticmethod
        def backward(ctx, g):
            (y,) = ctx.saved
            return g * y * (1 - y)
    try:
        spec = SPECS["Softmax"].__class__(
            draw=None, call=lambda x: DiagonalSoftmax.apply(x),
            reference=lambda x: np.exp(x) / np.exp(x).sum(-1, keepdims=True))
        x = np.random.default_rng(0).standard_normal((3, 4))
        with pytest.raises(AssertionError, match="central difference"):
            check_op(spec, [x], {})
    finally:
        del minims.OPS["DiagonalSoftmax"]


@pytest.mark.parametrize("name", sorted(SPECS))
def test_op_gradients(name):
    spec = SPECS[name]

    @given(st.data())
    def check(data):
        arrays, options = spec.draw(data.draw)
        check_op(spec, arrays, options, seed=data.draw(st.integers(0, 1000)))

    check()


# The ops with fused kernels on a GPU (`backend.fuse`; minims/ops/nn.py): their fused formulas
# run on NumPy too when `backend.use_fused` is on, so the harness checks both paths.
FUSED = ("GELU", "LayerNorm", "Softmax", "ScaledDotProductAttention", "ScaledDotProductAttention (bands)")


@pytest.mark.parametrize("name, fused",
                         [(n, False) for n in sorted(SPECS) if SPECS[n].nonfinite_inputs != ()]
                         + [(n, True) for n in FUSED])
def test_op_nonfinite_values(name, fused, monkeypatch):
    """Inputs holding +inf, −inf and NaN: the forward values are the NumPy reference's (NaN in
    the same places), so no op turns an infinity into NaN by multiplying it by a 0/1 mask;
    the same for the fused kernels' formulas (`fused`)."""
    monkeypatch.setattr(minims.backend, "use_fused", fused)
    spec = SPECS[name]

    @given(st.data())
    def check(data):
        arrays, options = spec.draw(data.draw)
        arrays = with_nonfinite(data.draw, arrays, spec.nonfinite_inputs)
        check_nonfinite_op(spec, arrays, options, seed=data.draw(st.integers(0, 1000)))

    check()


def test_harness_catches_a_product_with_an_indicator():
    """The planted bug of the class: ReLU as a · (a > 0), whose −inf · 0 is NaN, not 0."""
    class IndicatorReLU(minims.Function):
        @staticmethod
        def forward(ctx, a):
            ctx.save(a > 0)
            return a * ctx.saved[0]

        @staticmethod
        def backward(ctx, g):
            return g * ctx.saved[0]
    try:
        spec = dataclasses.replace(SPECS["ReLU"], call=lambda a: IndicatorReLU.apply(a))
        check_op(spec, [np.array([-1.0, 2.0])], {})          # right on finite values
        with pytest.raises(AssertionError, match="NaN where the NumPy reference has none"):
            check_nonfinite_op(spec, [np.array([-np.inf, 1.0])], {})

        @settings(phases=[Phase.generate], report_multiple_bugs=False)
        @given(st.data())
        def check(data):
            arrays, options = spec.draw(data.draw)
            check_nonfinite_op(spec, with_nonfinite(data.draw, arrays), options)

        with pytest.raises(AssertionError):                  # and the strategy finds it
            check()
    finally:
        del minims.OPS["IndicatorReLU"]


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_op_edge_cases(name):
    """The spelled-out edge cases: negative and tuple axes, zero-size dimensions, x ** 0 at
    0, constant and large-offset rows, on every run (and NumPy's errors where it raises)."""
    assert name in SPECS
    for i, (arrays, options) in enumerate(EXAMPLES[name]):
        try:
            check_op(SPECS[name], arrays, options, seed=i)
        except AssertionError as e:
            raise AssertionError(f"example {i}: shapes {[a.shape for a in arrays]}, {options}: {e}")


@pytest.mark.parametrize("name", sorted(n for n in SPECS if SPECS[n].integer_kinds))
def test_op_integer_operands(name):
    """Integer or boolean operands (all of them, or some beside float64 ones): the dtype rule
    and the values, or the error NumPy gives."""
    spec = SPECS[name]

    @given(st.data())
    def check(data):
        arrays, options = spec.draw(data.draw)
        kind = data.draw(st.sampled_from(spec.integer_kinds))
        which = data.draw(st.sets(st.integers(0, len(arrays) - 1), min_size=1))
        check_integer_op(spec, arrays, options, kind, which)

    check()


def test_harness_catches_a_transpose_that_ignores_negative_axes():
    """The bug the harness once missed: Transpose.backward inverting the permutation with
    argsort of the axes as written. argsort((-1, 0, 1)) is (0, 1, 2), not the inverse of
    that permutation, (1, 2, 0). The Transpose spec's own strategy must find it."""
    class ArgsortTranspose(minims.Function):
        @staticmethod
        def forward(ctx, a, axes=None):
            ctx.axes = axes
            return a.transpose(axes)

        @staticmethod
        def backward(ctx, g):
            return g.transpose() if ctx.axes is None else g.transpose(np.argsort(ctx.axes))
    try:
        spec = dataclasses.replace(SPECS["Transpose"],
                                   call=lambda a, axes: ArgsortTranspose.apply(a, axes=axes))

        @settings(phases=[Phase.generate], report_multiple_bugs=False)  # (no shrinking: fast)
        @given(st.data())
        def check(data):
            arrays, options = spec.draw(data.draw)
            check_op(spec, arrays, options, seed=data.draw(st.integers(0, 1000)))

        # a wrong layout of the right shape fails the central differences; a wrong shape
        # is refused by the engine, naming the op
        with pytest.raises((AssertionError, ValueError), match="central difference|ArgsortTranspose"):
            check()
        # the input: a (4, 2, 3) gradient for a (2, 3, 4) input, once reshaped silently
        x = np.random.default_rng(0).standard_normal((2, 3, 4))
        with pytest.raises(ValueError, match=r"ArgsortTranspose.backward returned a gradient "
                                             r"of shape \(4, 2, 3\) for an input of shape \(2, 3, 4\)"):
            check_op(spec, [x], dict(axes=(-1, 0, 1)))
        # a cube: the shape is right, the layout wrong
        cube = np.random.default_rng(0).standard_normal((2, 2, 2))
        with pytest.raises(AssertionError, match="central difference"):
            check_op(spec, [cube], dict(axes=(-1, 0, 1)))
        # the real op passes on both
        check_op(SPECS["Transpose"], [x], dict(axes=(-1, 0, 1)))
        check_op(SPECS["Transpose"], [cube], dict(axes=(-1, 0, 1)))
    finally:
        del minims.OPS["ArgsortTranspose"]
