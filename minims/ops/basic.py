"""The primitive ops behind Tensor's operators: one class each, forward and backward.

Each backward returns one gradient per input, of the *output's broadcast shape*; the
engine sums it back to the input's shape (`engine.unbroadcast`) and refuses any other
shape. `ctx.needs_grad[i]` says whether input i wants a gradient, so ops skip work nobody
will use. Ops that take an axis normalise it in forward (`engine.normalize_axes` and
friends), so backward only ever sees axes in [0, ndim). Ops marked `int_to_float` compute
integer and boolean inputs in float32 (see `engine._as_tensors`).
"""
import math

import numpy

from .. import backend
# engine.py imports this module at its end (the cycle is explained there)
from ..engine import Function, normalize_axes, normalize_axis, normalize_permutation


def as_rows(a):
    """View (..., n) as (rows, n). With n = 0 (a zero-size dimension) the row count is
    spelled out: `reshape(-1, 0)` is ambiguous, and an error."""
    n = a.shape[-1]
    return a.reshape(-1, n) if n else a.reshape(math.prod(a.shape[:-1]), 0)


def _power(a, p):
    """a ** p for a scalar p, by repeated multiplication for small integers (x**3 is ~80×
    slower than x*x*x on NumPy arrays). Booleans go to NumPy (True * True stays a bool,
    NumPy's True ** 2 is the integer 1)."""
    if float(p).is_integer() and 1 <= p <= 4 and a.dtype.kind != "b":
        out = a
        for _ in range(int(p) - 1):
            out = out * a
        return out
    return backend.xp.power(a, p)  # (not `a ** p`: NumPy squares a bool array into int8 there)


class Add(Function):
    @staticmethod
    def forward(ctx, a, b):
        return a + b

    @staticmethod
    def backward(ctx, g):
        return g, g


class Sub(Function):
    @staticmethod
    def forward(ctx, a, b):
        return a - b

    @staticmethod
    def backward(ctx, g):
        return g, -g


class Mul(Function):
    @staticmethod
    def forward(ctx, a, b):
        ctx.save(a, b)
        return a * b

    @staticmethod
    def backward(ctx, g):
        a, b = ctx.saved
        return (g * b if ctx.needs_grad[0] else None,
                g * a if ctx.needs_grad[1] else None)


class Div(Function):
    int_to_float = True  # true division: 3 / 2 is 1.5 for integer tensors too

    @staticmethod
    def forward(ctx, a, b):
        ctx.save(a, b)
        return a / b

    @staticmethod
    def backward(ctx, g):
        a, b = ctx.saved
        ga = g / b
        # d(a/b)/db = -a/b² = -(a/b)/b
        return ga, (-ga * a / b if ctx.needs_grad[1] else None)


class Neg(Function):
    @staticmethod
    def forward(ctx, a):
        return -a

    @staticmethod
    def backward(ctx, g):
        return -g


class Pow(Function):
    """a ** p for a Python scalar p (an integer tensor ** a non-negative int stays integer)."""

    # d(a^p)/da = p a^(p−1), except where that formula is 0·∞: for p = 0 the function is the
    # constant 1 and the derivative 0 everywhere (a^(−1) is inf at a = 0), for p = 1 it is 1.
    @staticmethod
    def forward(ctx, a, exponent):
        ctx.save(a)
        ctx.exponent = exponent
        return _power(a, exponent)

    @staticmethod
    def backward(ctx, g):
        (a,), p = ctx.saved, ctx.exponent
        if p == 0:
            return backend.xp.zeros_like(a)
        return g * p * _power(a, p - 1) if p != 1 else g


class MatMul(Function):
    """a @ b for operands of 2 or more dimensions (leading dimensions broadcast)."""

    @staticmethod
    def forward(ctx, a, b):
        if a.ndim < 2 or b.ndim < 2:
            raise ValueError(f"matmul needs operands of 2 or more dims, got {a.shape} @ {b.shape}")
        ctx.save(a, b)
        return a @ b

    @staticmethod
    def backward(ctx, g):
        a, b = ctx.saved
        ga = gb = None
        if ctx.needs_grad[0]:
            ga = g @ b.swapaxes(-1, -2)
        if ctx.needs_grad[1]:
            if b.ndim == 2:  # the Linear case: fold all leading dims into one big GEMM
                gb = as_rows(a).T @ as_rows(g)
            else:
                gb = a.swapaxes(-1, -2) @ g
        return ga, gb


def _all_or(axes, ndim):
    """None for all axes (the plainest call into the backend, also for 0-d arrays), else axes."""
    return None if len(axes) == ndim else axes


class Sum(Function):
    """Sum over `axis` (None: all; an int or a tuple, negative counting from the end)."""

    @staticmethod
    def forward(ctx, a, axis=None, keepdims=False):
        axes = normalize_axes(axis, a.ndim, "Sum")
        ctx.shape, ctx.axes, ctx.keepdims = a.shape, axes, keepdims
        return a.sum(axis=_all_or(axes, a.ndim), keepdims=keepdims)

    @staticmethod
    def backward(ctx, g):
        if not ctx.keepdims:
            g = backend.xp.expand_dims(g, ctx.axes)
        return backend.xp.broadcast_to(g, ctx.shape)


class Max(Function):
    """Maximum along axes; ties share the gradient equally. NaN propagates: the maximum of a
    group holding a NaN is NaN (as in NumPy), and so is every gradient of that group (a NaN
    equals nothing, so no entry wins: PyTorch's amax and JAX answer NaN there too)."""

    @staticmethod
    def forward(ctx, a, axis=None, keepdims=False):
        axes = normalize_axes(axis, a.ndim, "Max")
        if any(a.shape[i] == 0 for i in axes):
            raise ValueError(f"Max over an empty axis of a tensor of shape {a.shape}: the "
                             "maximum of no values is undefined (NumPy raises too)")
        out = a.max(axis=_all_or(axes, a.ndim), keepdims=True)
        ctx.save(a, out)
        ctx.axes = axes
        return out if keepdims else out.squeeze(axes)

    @staticmethod
    def backward(ctx, g):
        xp = backend.xp
        a, out = ctx.saved
        g = g.reshape(out.shape)                     # put back the reduced axes, as size 1
        winners = a == out
        count = winners.sum(axis=ctx.axes, keepdims=True, dtype=g.dtype)
        nan_max = count == 0                         # a NaN maximum: NaN equals nothing
        share = xp.where(nan_max, xp.full((), numpy.nan, g.dtype),
                         g / xp.maximum(count, 1))   # each winner's part of g
        # selected, not multiplied by the 0/1 indicator: an infinite g must not make
        # inf · 0 = NaN at the entries that lost
        return xp.where(winners | nan_max, share, xp.zeros((), g.dtype))


class Exp(Function):
    int_to_float = True

    @staticmethod
    def forward(ctx, a):
        out = backend.xp.exp(a)
        ctx.save(out)
        return out

    @staticmethod
    def backward(ctx, g):
        return g * ctx.saved[0]


class Log(Function):
    int_to_float = True

    @staticmethod
    def forward(ctx, a):
        ctx.save(a)
        return backend.xp.log(a)

    @staticmethod
    def backward(ctx, g):
        return g / ctx.saved[0]


class Tanh(Function):
    int_to_float = True

    @staticmethod
    def forward(ctx, a):
        out = backend.xp.tanh(a)
        ctx.save(out)
        return out

    @staticmethod
    def backward(ctx, g):
        out = ctx.saved[0]
        return g * (1 - out * out)


class Sqrt(Function):
    int_to_float = True

    @staticmethod
    def forward(ctx, a):
        out = backend.xp.sqrt(a)
        ctx.save(out)
        return out

    @staticmethod
    def backward(ctx, g):
        return g * 0.5 / ctx.saved[0]


class ReLU(Function):
    # max(a, 0), as numpy.maximum (NaN stays NaN); the gradient is g where a > 0 and 0 where
    # a ≤ 0 (and g at a NaN, as in PyTorch). Both are selections, never a product with the
    # 0/1 indicator: −inf · 0 and an infinite g · 0 are NaN, not 0.
    @staticmethod
    def forward(ctx, a):
        zero = backend.xp.zeros((), a.dtype)
        ctx.save(a <= zero)
        return backend.xp.maximum(a, zero)

    @staticmethod
    def backward(ctx, g):
        return backend.xp.where(ctx.saved[0], backend.xp.zeros((), g.dtype), g)


class Reshape(Function):
    @staticmethod
    def forward(ctx, a, shape):
        ctx.shape = a.shape
        return a.reshape(shape)

    @staticmethod
    def backward(ctx, g):
        return g.reshape(ctx.shape)


class Transpose(Function):
    """Permute axes (None: reverse them). Output axis i is input axis axes[i], so the
    gradient goes back through the inverse permutation, argsort(axes) — which is only the
    inverse once the axes are non-negative."""

    @staticmethod
    def forward(ctx, a, axes=None):
        ctx.axes = normalize_permutation(axes, a.ndim, "Transpose")
        return a.transpose(ctx.axes)

    @staticmethod
    def backward(ctx, g):
        return g.transpose(tuple(numpy.argsort(ctx.axes)))


class Cast(Function):
    changes_dtype = True

    @staticmethod
    def forward(ctx, a, dtype):
        ctx.dtype = a.dtype
        return a.astype(dtype)

    @staticmethod
    def backward(ctx, g):
        return g.astype(ctx.dtype)


def _is_advanced(index):
    """True when an index holds arrays (fancy indexing), whose duplicates must accumulate."""
    parts = index if isinstance(index, tuple) else (index,)
    return any(hasattr(i, "shape") and getattr(i, "ndim", 0) > 0 for i in parts)


class GetItem(Function):
    """t[index]: basic slicing, integer and boolean/integer array indexing."""

    @staticmethod
    def forward(ctx, a, index):
        ctx.shape, ctx.dtype, ctx.index = a.shape, a.dtype, index
        return a[index]

    @staticmethod
    def backward(ctx, g):
        full = backend.xp.zeros(ctx.shape, dtype=ctx.dtype)
        if _is_advanced(ctx.index):
            backend.scatter_add(full, ctx.index, g)  # repeated indices must add up
        else:
            full[ctx.index] = g
        return full


class Concat(Function):
    @staticmethod
    def forward(ctx, *arrays, axis=0):
        axis = normalize_axis(axis, arrays[0].ndim, "Concat")
        ctx.axis = axis
        ctx.splits = numpy.cumsum([a.shape[axis] for a in arrays])[:-1]
        return backend.xp.concatenate(arrays, axis=axis)

    @staticmethod
    def backward(ctx, g):
        return tuple(backend.xp.split(g, ctx.splits, axis=ctx.axis))


class Stack(Function):
    @staticmethod
    def forward(ctx, *arrays, axis=0):
        axis = normalize_axis(axis, arrays[0].ndim + 1, "Stack")  # an axis of the output
        ctx.axis = axis
        return backend.xp.stack(arrays, axis=axis)

    @staticmethod
    def backward(ctx, g):
        return tuple(backend.xp.moveaxis(g, ctx.axis, 0))


class Where(Function):
    """where(condition, a, b): condition is a plain boolean array, not differentiated."""

    @staticmethod
    def forward(ctx, a, b, condition):
        ctx.save(condition)
        return backend.xp.where(condition, a, b)

    @staticmethod
    def backward(ctx, g):
        condition = ctx.saved[0]
        zero = backend.xp.zeros((), dtype=g.dtype)
        return backend.xp.where(condition, g, zero), backend.xp.where(condition, zero, g)
