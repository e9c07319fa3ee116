"""Reverse-mode automatic differentiation: `Tensor`, `Function` and `backward()`.

The whole engine in one file (in the spirit of micrograd and early tinygrad):

- A `Function` is one op: `forward(ctx, *arrays, **options) -> array` and
  `backward(ctx, grad) -> one gradient per input` (None where an input needs none).
  Arrays it needs for backward go through `ctx.save(...)`, so the engine can count the
  activation memory a graph holds (the paper's memory axis) and free it after backward.
- Every Function subclass is registered by name in `OPS`; the gradient-check harness in
  tests/ fails for an op that has no spec, so a new op cannot go unchecked.
- Broadcasting is undone once, here (`unbroadcast`), never in the ops; a gradient whose
  shape is not its input's (after undoing broadcasting) is an error naming the op.
- Axis arguments (negative, tuples, None) are normalised once, by the helpers below
  (`normalize_axes`, `normalize_axis`, `normalize_permutation`), in every op that takes one.
- Dtypes: float tensors never promote (float32 and float64 may not meet); integer and
  boolean operands of a float op take its float dtype; an op on integer/boolean tensors
  alone follows NumPy, except that a float result is float32 (`DEFAULT_FLOAT`, the dtype
  of Python floats here), as in PyTorch.
- `Tensor.backward()` walks the graph in reverse topological order found iteratively (no
  recursion limit), adds up contributions of a node used twice, accumulates into leaf
  `.grad` across calls, keeps no intermediate grads and releases saved arrays afterwards.
- In-place changes are versioned (as PyTorch's version counter): assigning to `t.data`
  (an optimizer step, `load_state_dict`) bumps `t.version`; `backward()` refuses, naming the
  op and the tensor, to run an op whose saved arrays belong to a tensor changed since its
  forward pass (see `Tensor.version` and `_check_unchanged`).
"""
import contextlib
import math
import numbers
import operator

import numpy

from . import backend

OPS = {}  # name -> Function subclass: the explicit op registry
DEFAULT_FLOAT = numpy.dtype(numpy.float32)  # Python floats and lists, and floats made from ints

_grad_enabled = True
_scope = []  # name stack for memory accounting (see `name_scope`)
_clock = 0   # in-place changes made so far, to any tensor (see `Tensor.version`)


@contextlib.contextmanager
def no_grad():
    """Inside this block ops record nothing: no graph, no saved arrays."""
    global _grad_enabled
    previous, _grad_enabled = _grad_enabled, False
    try:
        yield
    finally:
        _grad_enabled = previous


def is_grad_enabled():
    return _grad_enabled


@contextlib.contextmanager
def name_scope(name):
    """Tag every op created inside with `name`, nested under the enclosing scope with a dot
    (modules use their attribute names, so ops get paths like `blocks.0.attn`), so that
    `minims.memory` can say which layer holds which saved bytes."""
    parent = _scope[-1] if _scope else ""
    _scope.append(f"{parent}.{name}" if parent and name else parent or name)
    try:
        yield
    finally:
        _scope.pop()


# --- axis arguments ---------------------------------------------------------------------
# An axis may be written as a negative number, a tuple or None. Each op turns what it got
# into non-negative numbers once, in forward, so that its backward never has to care
# (`numpy.argsort((-1, 0, 1))` is not the inverse of that permutation, for example).

class AxisError(ValueError, IndexError):
    """An axis argument out of range or repeated (a ValueError and an IndexError, like NumPy's)."""


def normalize_axis(axis, ndim, op):
    """One axis (an int, negative counting from the end) -> a number in [0, ndim).
    `op` names the op in the error."""
    if isinstance(axis, (bool, numpy.bool_)):
        raise TypeError(f"{op}: an axis must be an integer, got {axis!r}")
    try:
        a = operator.index(axis)
    except TypeError:
        raise TypeError(f"{op}: an axis must be an integer, got {axis!r}") from None
    if not -ndim <= a < ndim:
        raise AxisError(f"{op}: axis {a} is out of range for a {ndim}-dim tensor "
                        f"(valid: {-ndim} to {ndim - 1})")
    return a % ndim


def normalize_axes(axis, ndim, op):
    """None (all axes), an int or a tuple of ints -> a sorted tuple of distinct axes in [0, ndim)."""
    if axis is None:
        return tuple(range(ndim))
    axes = [normalize_axis(a, ndim, op) for a in (axis if isinstance(axis, (tuple, list)) else (axis,))]
    if len(set(axes)) != len(axes):
        raise AxisError(f"{op}: repeated axis in {axis!r} for a {ndim}-dim tensor")
    return tuple(sorted(axes))


def normalize_permutation(axes, ndim, op):
    """None (reverse the axes) or a permutation, entries possibly negative -> a tuple in [0, ndim)."""
    if axes is None:
        return tuple(reversed(range(ndim)))
    perm = tuple(normalize_axis(a, ndim, op) for a in axes)
    if sorted(perm) != list(range(ndim)):
        raise AxisError(f"{op}: axes {tuple(axes)!r} are not a permutation of the "
                        f"{ndim} axes of the tensor")
    return perm


class Context:
    """What a Function instance remembers between forward and backward."""

    __slots__ = ("saved", "parents", "needs_grad", "scope", "released", "arrays", "clock",
                 "__dict__")

    def __init__(self):
        self.saved = ()
        self.released = False

    def save(self, *arrays):
        """Keep arrays for backward; they count as activation memory until released."""
        self.saved = arrays


class Function:
    """Base class of every op. Subclasses implement static `forward` and `backward`."""

    changes_dtype = False  # only casts may return another float dtype than their input
    int_to_float = False   # True: a float op (exp, division, softmax, ...): integer and
                           # boolean inputs are computed as DEFAULT_FLOAT, not as NumPy would
                           # (NumPy's exp of a bool array is float16)

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if cls.__name__ in OPS:
            raise ValueError(f"op {cls.__name__} registered twice")
        OPS[cls.__name__] = cls

    @staticmethod
    def forward(ctx, *arrays, **options):
        raise NotImplementedError

    @staticmethod
    def backward(ctx, grad):
        raise NotImplementedError

    @classmethod
    def apply(cls, *inputs, **options):
        """Run the op on Tensors (Python scalars and arrays become constants, see `_as_tensors`).
        Without grad (`no_grad`, or no input requiring grad) nothing is recorded: the result
        is a plain Tensor and the context is dropped with whatever forward saved in it."""
        tensors, float_dtype = _as_tensors(inputs, cls.int_to_float)
        ctx = Context()
        arrays = [t._data for t in tensors]
        data = cls.forward(ctx, *arrays, **options)
        # (`float_dtype is None or ...` spelled out: NumPy reads None as float64 in `dtype != None`)
        if (float_dtype is None or data.dtype != float_dtype) and data.dtype.kind == "f" \
                and not cls.changes_dtype:
            if float_dtype is None and data.dtype != DEFAULT_FLOAT:
                # integer/bool inputs only, and NumPy computed in float64 (or float16): the
                # result of a float op on integers is float32 here, as for a Python float
                data = data.astype(DEFAULT_FLOAT)
            elif float_dtype is not None:
                raise TypeError(f"{cls.__name__} turned {float_dtype} into {data.dtype}: an op must "
                                "not promote silently (look for a NumPy float64 scalar option)")
        out = Tensor._wrap(data, _view_version(data, tensors))
        if _grad_enabled:
            needs_grad = [t.requires_grad for t in tensors]
            if True in needs_grad:
                ctx.op = cls
                ctx.parents = tensors
                ctx.needs_grad = needs_grad
                ctx.scope = _scope[-1] if _scope else ""
                # for `_check_unchanged`: the arrays of the inputs and the output, and when
                arrays.append(data)
                ctx.arrays, ctx.clock = arrays, _clock
                out.requires_grad = True
                out._ctx = ctx
        return out


    @classmethod
    def run(cls, *arrays, **options):
        """The op's forward on plain backend arrays → a plain array: no Tensor, no graph, no
        dtype checks (the caller passes arrays of one float dtype). For decoding, where a
        handful of ops run on one position per token and the engine's bookkeeping around
        them (wrapping, dtype rules, contexts) cost a third of the time (measured, ours)."""
        return cls.forward(Context(), *arrays, **options)


def _constant_float_dtype(c):
    """The float dtype a constant (not a Tensor) brings to an op, or None for int/bool ones:
    its own dtype for arrays and NumPy scalars, DEFAULT_FLOAT for Python floats and lists."""
    dtype = getattr(c, "dtype", None)
    if dtype is None:
        return DEFAULT_FLOAT if numpy.asarray(c).dtype.kind == "f" else None
    return numpy.dtype(dtype) if numpy.dtype(dtype).kind == "f" else None


def _as_tensors(inputs, int_to_float=False):
    """Tensors and constants -> (Tensors, the op's float dtype or None for an integer op).

    No silent promotion: two float tensor dtypes may not meet (cast one side with
    .astype()), and every other operand of a float op is cast to its float dtype, not the
    reverse. Which float dtype: that of the float tensors; else that of a float constant
    (`int_tensor * 0.5` is float32, the Python-float dtype here; NumPy's answer, [1, 2, 4.5]
    for [2, 4, 9] * 0.5, not [0, 0, 0]); else DEFAULT_FLOAT for a float op (`int_to_float`).
    With none of these the op is an integer/boolean op: Python scalars take NumPy's result
    dtype with the tensors (`int8_tensor + 1` stays int8, `bool_tensor + 1` is int64).
    """
    dtype = None
    for t in inputs:                     # the common case first: Tensors of one float dtype
        if not isinstance(t, Tensor) or (dtype is not None and t._data.dtype != dtype):
            break
        dtype = t._data.dtype
    else:
        if dtype is not None and dtype.kind == "f":
            return inputs, dtype
    floats = [t._data.dtype for t in inputs if isinstance(t, Tensor) and t._data.dtype.kind == "f"]
    if floats:
        dtype = floats[0]
        if any(d != dtype for d in floats):
            raise TypeError(f"mixed float dtypes {sorted({str(d) for d in floats})}: minims "
                            "never promotes silently; cast one side with .astype()")
        if all(isinstance(t, Tensor) and t._data.dtype == dtype for t in inputs):
            return inputs, dtype                                  # the common case: nothing to do
    else:
        constants = {_constant_float_dtype(c) for c in inputs if not isinstance(c, Tensor)} - {None}
        if constants:
            dtype = numpy.result_type(*constants)
        else:
            dtype = DEFAULT_FLOAT if int_to_float and inputs else None
    tensors = [t for t in inputs if isinstance(t, Tensor)]
    out = []
    for t in inputs:
        if not isinstance(t, Tensor):
            if dtype is None and tensors and numpy.isscalar(t) and not hasattr(t, "dtype"):
                t = Tensor(t, dtype=numpy.result_type(*(u.dtype for u in tensors), t))
            elif dtype is None and tensors and not hasattr(t, "dtype"):
                t = Tensor(numpy.asarray(t))  # a list of ints: NumPy's dtype
            else:
                t = Tensor(t, dtype=dtype)
        elif dtype is not None and t.dtype.kind != "f":
            t = Tensor._wrap(t._data.astype(dtype))
        out.append(t)
    return out, dtype


def _broadcasts_to(shape, target):
    """Whether an array of `shape` broadcasts to `target` (NumPy's rules)."""
    if len(shape) > len(target):
        return False
    return all(n == t or n == 1 for n, t in zip(reversed(shape), reversed(target)))


def unbroadcast(grad, shape, op="an op"):
    """Sum `grad` down to `shape`, undoing NumPy broadcasting (the one place this is done).

    `grad` must have the shape the input was broadcast to; anything else (a transposed or
    otherwise wrong gradient of the right size, say) is a bug in `op`'s backward, and an
    error here rather than a silent reshape.
    """
    if grad.shape == shape:
        return grad
    if not _broadcasts_to(shape, grad.shape):
        raise ValueError(f"{op}.backward returned a gradient of shape {grad.shape} for an input "
                         f"of shape {shape}: it must be the input's shape, or one it broadcasts to")
    extra = grad.ndim - len(shape)
    if extra:
        grad = grad.sum(axis=tuple(range(extra)))
    axes = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    return grad.sum(axis=axes, keepdims=True) if axes else grad


def _view_version(array, tensors):
    """The version counter of an op's output: its input's when the output is a view of that
    input's memory (reshape, transpose, basic indexing: writing to one writes to the other),
    else a new one. NumPy and CuPy point a view's `base` at the array that owns the memory."""
    base = getattr(array, "base", None)
    if base is not None:
        for t in tensors:
            if base is t._data or base is t._data.base:
                return t._version
    return [0, 0]


def _check_unchanged(node, ctx):
    """Raise if `ctx`'s op saved an array (or a view of one) of an input, or of its output
    `node`, that has been changed in place since the forward pass: its backward would compute
    the gradient at the new values, silently.

    Free when no tensor at all changed since (the clock did not move: a training step's
    forward and backward); else each tensor's last change is compared with the op's clock,
    and only for one changed after it are the saved arrays compared with the array the
    tensor had at the forward pass (an op that saved nothing of it, like Add, still runs)."""
    if ctx.clock == _clock:
        return
    for i, (t, array) in enumerate(zip((*ctx.parents, node), ctx.arrays)):
        if t._version[1] > ctx.clock and any(backend.xp.may_share_memory(s, array)
                                             for s in ctx.saved if hasattr(s, "shape")):
            which = "its output" if t is node else f"its input {i}"
            name = getattr(t, "name", None)
            raise RuntimeError(
                f"{ctx.op.__name__}{f' (in {ctx.scope})' if ctx.scope else ''} cannot run "
                f"backward: it saved {which} ({f'parameter {name!r}, ' if name else ''}"
                f"{t.dtype}, shape {t.shape}) at the forward pass, and that tensor was changed "
                f"in place since (now at version {t._version[0]}: an optimizer step, "
                "load_state_dict or an assignment to .data). Call backward() before changing "
                "it, or run the forward pass again.")


def walk_graph(*outputs):
    """Every Tensor reachable from `outputs` through the live graph, once each, as (tensor,
    ctx): ctx is the Context of the op that made it (ctx.op, ctx.saved, ctx.scope), or None
    for a leaf or a node whose graph a backward() already freed. For tools that inspect a
    graph without running it (minims.memory)."""
    seen, stack = set(), list(outputs)
    while stack:
        t = stack.pop()
        if id(t) in seen:
            continue
        seen.add(id(t))
        ctx = t._ctx
        if ctx is None or ctx.parents is None:
            yield t, None
            continue
        yield t, ctx
        stack.extend(ctx.parents)


class Tensor:
    """An array on the active backend plus what is needed to differentiate through it.

    `Tensor(data)` does not copy when `data` already is a backend array of the requested
    dtype (like `numpy.asarray` and `torch.from_numpy`): writing to the array then changes
    the tensor, and an in-place optimizer step on such a tensor changes the array. Pass
    `data.copy()` to keep them apart. `detach()` and `numpy()` (on NumPy) share memory too.
    What minims keeps for you never aliases: parameters are drawn into fresh arrays,
    `Module.load_state_dict` and the optimizers' `load_state_dict` copy what they are given,
    and both `state_dict()`s return copies.
    """

    __slots__ = ("_data", "grad", "requires_grad", "_ctx", "_version", "__weakref__")
    __array_priority__ = 1000  # make `ndarray + Tensor` call Tensor.__radd__

    def __init__(self, data, requires_grad=False, dtype=None):
        version = [0, 0]
        if isinstance(data, Tensor):
            data, version = data._data, data._version
        if dtype is None and not hasattr(data, "dtype"):
            dtype = numpy.float32  # Python lists and scalars default to float32
        self._data = backend.asarray(data, dtype=dtype)
        if requires_grad and self._data.dtype.kind != "f":
            raise TypeError(f"only floating-point tensors can require grad, got {self._data.dtype}")
        self._version = version if self._data is data else [0, 0]  # (Tensor(t) shares t's array)
        self.requires_grad = requires_grad
        self.grad = None
        self._ctx = None

    @classmethod
    def _wrap(cls, array, version=None):
        t = cls.__new__(cls)
        t._data, t.grad, t.requires_grad, t._ctx = array, None, False, None
        t._version = [0, 0] if version is None else version
        return t

    # --- the array, and its in-place changes ------------------------------------------
    @property
    def data(self):
        """The array (on the active backend). Assigning to it is an in-place change of the
        tensor and bumps `version`: `t.data = a`, and `t.data -= a` (Python runs augmented
        assignment to an attribute as an assignment), which is how the optimizers step."""
        return self._data

    @data.setter
    def data(self, array):
        global _clock
        self._data = array
        _clock += 1
        self._version[0] += 1       # changes so far,
        self._version[1] = _clock   # and the clock at the last one (for `_check_unchanged`)

    @property
    def version(self):
        """How many in-place changes this tensor has seen (PyTorch's `_version`), counted by
        one counter shared with the tensors that view the same memory (`detach()`,
        `Tensor(t)`, reshape, transpose and basic indexing of it).

        Caught (backward() then refuses an op that saved the changed array): assignments to
        `.data`, so the optimizers' steps, `Module.load_state_dict` and `init_parameters`.
        Not caught: writes into the elements of the array itself (`t.data[...] = x`,
        `t.data[0] += 1`, writes to the array a Tensor was made from without a copy, or to
        `t.numpy()` on NumPy): a NumPy or CuPy array tells no one when it is written to
        (PyTorch sees no change made through `.data` at all). Assign instead:
        `t.data = new_array`, or `t.data += x`."""
        return self._version[0]

    # --- basic facts ------------------------------------------------------------------
    shape = property(lambda self: self._data.shape)
    dtype = property(lambda self: self._data.dtype)
    ndim = property(lambda self: self._data.ndim)
    size = property(lambda self: self._data.size)

    def __len__(self):
        return len(self._data)

    def __repr__(self):
        grad = ", requires_grad=True" if self.requires_grad else ""
        return f"Tensor({backend.to_numpy(self._data)!r}{grad})"

    def numpy(self):
        """The data as a NumPy array (copied from the GPU on CuPy)."""
        return backend.to_numpy(self._data)

    def item(self):
        return self._data.item()

    def detach(self):
        """The same data (and version counter), cut from the graph."""
        return Tensor._wrap(self._data, self._version)

    def astype(self, dtype):
        return Cast.apply(self, dtype=numpy.dtype(dtype))

    # --- backward ---------------------------------------------------------------------
    def backward(self, grad=None):
        """Accumulate d(self)/d(leaf) into every leaf's `.grad`.

        A scalar output needs no `grad`; any other output must be given one of its shape.
        """
        if not self.requires_grad:
            raise RuntimeError("backward() on a tensor that does not require grad")
        if grad is None:
            if self.size != 1:
                raise RuntimeError(f"backward() on a non-scalar tensor of shape {self.shape} "
                                   "needs grad=, an array of that shape")
            grad = backend.xp.ones_like(self._data)
        else:
            grad = backend.asarray(grad.data if isinstance(grad, Tensor) else grad, dtype=self.dtype)
            if grad.shape != self.shape:
                raise ValueError(f"grad shape {grad.shape} does not match tensor shape {self.shape}")

        grads = {id(self): grad}
        for node in self._topological_order():
            g = grads.pop(id(node), None)
            if g is None:  # an op declared no gradient for this path
                continue
            ctx = node._ctx
            if ctx is None:  # a leaf: accumulate like PyTorch until zeroed
                # (a copy: g may be a read-only broadcast view or shared with another leaf)
                node.grad = g.astype(node.dtype, copy=True) if node.grad is None else node.grad + g
                continue
            if ctx.released:
                raise RuntimeError("trying to backward through the graph a second time: its "
                                   "saved arrays were freed by the first backward()")
            _check_unchanged(node, ctx)  # no gradient from arrays changed since the forward
            input_grads = ctx.op.backward(ctx, g)
            if not isinstance(input_grads, tuple):
                input_grads = (input_grads,)
            for parent, needs, pg in zip(ctx.parents, ctx.needs_grad, input_grads):
                if not needs or pg is None:
                    continue
                pg = unbroadcast(pg, parent.shape, ctx.op.__name__)
                key = id(parent)
                grads[key] = grads[key] + pg if key in grads else pg
            ctx.saved, ctx.parents, ctx.arrays, ctx.released = (), None, None, True  # free now

    def _topological_order(self):
        """Nodes reachable from self that need grad, outputs before inputs (iterative DFS)."""
        order, visited, stack = [], set(), [(self, False)]
        while stack:
            node, expanded = stack.pop()
            if expanded:
                order.append(node)
                continue
            if id(node) in visited:
                continue
            visited.add(id(node))
            stack.append((node, True))
            ctx = node._ctx
            if ctx is not None and ctx.parents is not None:
                for parent, needs in zip(ctx.parents, ctx.needs_grad):
                    if needs and id(parent) not in visited:
                        stack.append((parent, False))
        return reversed(order)

    # --- operators: each one is a registered Function from minims.ops ---------------------
    def __add__(self, other): return Add.apply(self, other)
    def __radd__(self, other): return Add.apply(other, self)
    def __sub__(self, other): return Sub.apply(self, other)
    def __rsub__(self, other): return Sub.apply(other, self)
    def __mul__(self, other): return Mul.apply(self, other)
    def __rmul__(self, other): return Mul.apply(other, self)
    def __truediv__(self, other): return Div.apply(self, other)
    def __rtruediv__(self, other): return Div.apply(other, self)
    def __matmul__(self, other): return MatMul.apply(self, other)
    def __rmatmul__(self, other): return MatMul.apply(other, self)
    def __neg__(self): return Neg.apply(self)
    def __getitem__(self, index): return GetItem.apply(self, index=_to_backend_index(index))

    def __pow__(self, exponent):
        if isinstance(exponent, Tensor) or not numpy.isscalar(exponent):
            raise TypeError("Tensor ** x needs a Python scalar exponent x")
        # Python numbers only: a NumPy float64 (or int64) scalar would promote float32.
        # Integers stay integers, so an integer tensor ** 2 stays an integer tensor.
        exponent = int(exponent) if isinstance(exponent, numbers.Integral) else float(exponent)
        return Pow.apply(self, exponent=exponent)

    # comparisons give plain (non-differentiable) boolean arrays
    def _other(self, other): return other._data if isinstance(other, Tensor) else other
    def __lt__(self, other): return self._data < self._other(other)
    def __le__(self, other): return self._data <= self._other(other)
    def __gt__(self, other): return self._data > self._other(other)
    def __ge__(self, other): return self._data >= self._other(other)
    def __eq__(self, other): return self._data == self._other(other)
    def __ne__(self, other): return self._data != self._other(other)
    __hash__ = object.__hash__

    def sum(self, axis=None, keepdims=False): return Sum.apply(self, axis=axis, keepdims=keepdims)
    def max(self, axis=None, keepdims=False): return Max.apply(self, axis=axis, keepdims=keepdims)

    def mean(self, axis=None, keepdims=False):
        """Sum / n, with one correctly rounded division (n = the number of entries averaged):
        multiplying by a rounded 1/n instead makes the mean of seven float32 1e6's
        1000000.06. Integer tensors give DEFAULT_FLOAT; an empty axis gives NaN, as in NumPy."""
        n = math.prod(self.shape[a] for a in normalize_axes(axis, self.ndim, "mean"))
        total = self.sum(axis=axis, keepdims=keepdims)
        if n == 0:  # 0/0 as NumPy (NaN), without a division by zero in backward
            return total * math.nan
        return total / n

    def exp(self): return Exp.apply(self)
    def log(self): return Log.apply(self)
    def tanh(self): return Tanh.apply(self)
    def sqrt(self): return Sqrt.apply(self)
    def relu(self): return ReLU.apply(self)

    def reshape(self, *shape):
        shape = shape[0] if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape
        return Reshape.apply(self, shape=tuple(shape))

    def transpose(self, *axes):
        """Permute the axes (negative entries count from the end); no axes: reverse them."""
        axes = axes[0] if len(axes) == 1 and isinstance(axes[0], (tuple, list)) else axes
        return Transpose.apply(self, axes=tuple(axes) if axes else None)

    @property
    def T(self):
        return self.transpose()


def _to_backend_index(index):
    """Move array parts of an index (NumPy arrays, Tensors, lists) onto the backend."""
    def convert(i):
        if isinstance(i, Tensor):
            return i._data
        if isinstance(i, (list, numpy.ndarray)):
            return backend.asarray(i)
        return i
    return tuple(convert(i) for i in index) if isinstance(index, tuple) else convert(index)


# The ops live in minims/ops/basic.py; imported here at the end because they subclass Function.
# An import cycle, kept on purpose (as in early tinygrad): Tensor's operators (+, @, sum, …)
# need the op classes, and the ops need Function and Tensor. Splitting them keeps the engine
# (graph, backward, no_grad) readable in one file and the maths of each op in another; this
# line, after everything ops/basic.py imports from here is defined, is the only place they meet.
from .ops.basic import (Add, Cast, Div, Exp, GetItem, Log, MatMul, Max, Mul, Neg, Pow,  # noqa: E402
                  ReLU, Reshape, Sqrt, Sub, Sum, Tanh, Transpose)
