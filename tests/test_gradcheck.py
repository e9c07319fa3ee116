"""Every registered op, checked by the one generic harness (forward and backward, float64)."""
import numpy as np
import pytest
from hypothesis import given, strategies as st

import minims
from gradcheck import check_op, missing_specs
from op_specs import SPECS


def test_every_registered_op_has_a_spec():
    assert missing_specs(minims.OPS, SPECS) == [], "register a spec in tests/op_specs.py"


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
