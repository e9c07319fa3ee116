"""Arrays changed between forward and backward: the version counter (minims/engine.py).

An op keeps arrays for its backward; if a tensor they belong to changes in place before
backward() (an optimizer step, load_state_dict, an assignment to .data), the gradient would
silently be taken at the new values. backward() refuses instead, naming the op and the
tensor, as PyTorch does ("modified by an inplace operation").
"""
import numpy as np
import pytest

from minims import Tensor
from minims.nn import Linear
from minims.optim import SGD, AdamW

from test_vanilla import batch, tiny  # noqa: E402  (the tiny vanilla model and its batches)


def leaf(values):
    return Tensor(np.asarray(values, dtype=np.float64), requires_grad=True)


def test_an_optimizer_step_before_backward_is_refused():
    """The issue's example: the gradient would be 3w² at the *new* weights."""
    w = leaf([1.0, 2.0])
    opt = AdamW([w], lr=0.1)
    loss = (w * w * w).sum()
    w.grad = np.ones(2)
    opt.step()
    with pytest.raises(RuntimeError, match=r"Mul cannot run backward: it saved its input 1 "
                                           r"\(float64, shape \(2,\)\).*changed in place"):
        loss.backward()


def test_a_training_step_between_forward_and_backward_names_the_parameter():
    model = tiny()
    x, y = batch()
    opt = SGD(model.parameters(), lr=0.1)
    _, loss = model(x, y)
    loss.backward()                                   # some gradients to step with
    _, stale = model(x, y)
    opt.step()
    with pytest.raises(RuntimeError, match=r"\(in [\w.]+\) cannot run backward: it saved its "
                                           r"input \d \(parameter '[\w.]+(weight|bias)'"):
        stale.backward()


def test_load_state_dict_before_backward_is_refused():
    lin = Linear(3, 2)
    loss = lin(Tensor(np.ones((4, 3), np.float32))).sum()
    lin.load_state_dict(lin.state_dict())
    with pytest.raises(RuntimeError, match=r"Linear cannot run backward.*parameter 'weight'"):
        loss.backward()


@pytest.mark.parametrize("change", ["assign", "augmented"])
def test_assigning_to_data_bumps_the_version(change):
    w = leaf([1.0, 2.0])
    loss = (w * w).sum()
    if change == "assign":
        w.data = np.array([5.0, 6.0])
    else:
        w.data -= 1.0                                 # Python runs this as an assignment
    assert w.version == 1
    with pytest.raises(RuntimeError, match="Mul cannot run backward"):
        loss.backward()


def test_a_changed_output_is_refused_too():
    """Exp saves its output for backward."""
    x = leaf([0.0, 1.0])
    y = x.exp()
    y.data *= 2
    with pytest.raises(RuntimeError, match="Exp cannot run backward: it saved its output"):
        y.sum().backward()


def test_views_share_the_version_of_what_they_view():
    """A transposed weight (a view, as in a tied output head) changes with the weight."""
    w = leaf(np.arange(6.0).reshape(2, 3))
    x = leaf(np.ones((4, 3)))
    wT = w.T                                          # Transpose saves nothing; MatMul saves wT
    loss = (x @ wT).sum()
    w.data -= 1.0
    assert wT.version == w.version == 1
    with pytest.raises(RuntimeError, match=r"MatMul cannot run backward: it saved its input 1"):
        loss.backward()
    d = w.detach()
    w.data += 1.0
    assert d.version == w.version == 2


def test_ops_that_saved_nothing_of_the_changed_tensor_still_run():
    """Add's backward needs no values: as in PyTorch, changing its input is harmless."""
    w = leaf([1.0, 2.0])
    loss = (w + 1.0).sum()
    w.data -= 1.0
    loss.backward()
    np.testing.assert_array_equal(w.grad, [1.0, 1.0])


def test_forward_after_the_step_is_fine():
    w = leaf([1.0, 2.0])
    opt = SGD([w], lr=0.5)
    (w * w).sum().backward()
    opt.step()                                        # w = [0, 0]
    w.grad = None
    (w * w * w + w).sum().backward()
    np.testing.assert_array_equal(w.grad, [1.0, 1.0])


def test_element_writes_through_data_are_not_seen():
    """The documented limit (Tensor.version): a NumPy array tells no one it was written to,
    so `t.data[...] = x` does not bump the version; assigning `t.data = ...` does."""
    w = leaf([1.0, 2.0])
    w.data[0] = 3.0
    assert w.version == 0
