"""`Module` and `Parameter`: the bookkeeping every layer and model shares.

A Module owns Parameters and sub-Modules as plain attributes (minGPT style); walking them
in attribute order gives stable dotted names such as `blocks.0.attn.qkv.weight`, which are
the keys of `state_dict()` and of checkpoints. Calling a module runs `forward` inside a
name scope of its attribute path, so `minims.memory.saved_bytes(..., by="scope")` can tell
how much activation memory each layer (and each scale of a multi-scale model) holds.

Weights are drawn by `init_parameters` from one seeded host-side NumPy generator, in name
order, and only then moved to the backend: the same seed gives the same weights on NumPy
and on CuPy. Every module is initialised when its construction ends (ours): the outermost
constructor call (`Linear(3, 4)` on its own, or a whole model with every layer it created,
in whatever order) draws each parameter not drawn yet, from `init_options()` (seed 0 and
float32, a model's config.seed and config.dtype), so no layer is ever left at zeros and the
result does not depend on when a helper such as `add_head` runs.
"""
import contextlib
import threading

import numpy

from .. import backend
from ..engine import Tensor, is_grad_enabled, name_scope


class Parameter(Tensor):
    """A Tensor that requires grad and knows how it is initialised.

    init: "normal" (N(0, std²)), "zeros" or "ones". `decay` says whether AdamW applies
    weight decay to it (None: decided by the optimizer's rule, matrices only). `name` is its
    dotted name in the module that drew it (for error messages), None until then.
    """

    __slots__ = ("init", "std", "decay", "drawn", "name")

    def __init__(self, shape, init="normal", std=0.02, decay=None):
        super().__init__(numpy.zeros(shape, dtype=numpy.float32), requires_grad=True)
        self.init, self.std, self.decay = init, std, decay
        self.drawn = False        # True once init_parameters (or load_state_dict) set it
        self.name = None


_building = threading.local()   # how deep inside Module constructors this thread is


class _InitialisedAfterBuild(type):
    """Runs a Module's constructor, then (outermost call only) draws its undrawn parameters.

    Nested constructions (the layers a model builds) are left to the outermost one, so a
    model's weights are drawn once, from its own seed, in name order."""

    def __call__(cls, *args, **kwargs):
        depth = getattr(_building, "depth", 0)
        _building.depth = depth + 1
        try:
            module = super().__call__(*args, **kwargs)
        finally:
            _building.depth = depth
        if depth == 0:
            init_parameters(module, **module.init_options(), only_undrawn=True)
        return module


class Module(metaclass=_InitialisedAfterBuild):
    """Base class of layers and models."""

    def __init__(self):
        object.__setattr__(self, "training", True)
        object.__setattr__(self, "_name", "")

    def __setattr__(self, name, value):
        if isinstance(value, Module):
            value._set_scope_name(name)  # its scope name inside this module
        object.__setattr__(self, name, value)

    def _set_scope_name(self, name):
        object.__setattr__(self, "_name", name)

    def __call__(self, *args, **kwargs):
        if not is_grad_enabled():     # the scope only labels saved arrays: none without grad
            return self.forward(*args, **kwargs)
        with name_scope(self._name):
            return self.forward(*args, **kwargs)

    def forward(self, *args, **kwargs):
        raise NotImplementedError

    def init_options(self):
        """The seed and dtype its construction draws undrawn parameters with (models: their
        config's)."""
        return {"seed": 0, "dtype": "float32"}

    # --- walking the tree ---------------------------------------------------------------
    def named_children(self):
        for name, value in vars(self).items():
            if isinstance(value, Module):
                yield name, value

    def named_modules(self, prefix=""):
        yield prefix, self
        for name, child in self.named_children():
            yield from child.named_modules(f"{prefix}.{name}" if prefix else name)

    def named_parameters(self):
        """(dotted name, Parameter) pairs in a stable order (attribute definition order)."""
        for path, module in self.named_modules():
            for name, value in vars(module).items():
                if isinstance(value, Parameter):
                    yield (f"{path}.{name}" if path else name), value

    def parameters(self):
        return [p for _, p in self.named_parameters()]

    def num_parameters(self):
        return sum(p.size for p in self.parameters())

    def zero_grad(self):
        for p in self.parameters():
            p.grad = None

    def train(self, mode=True):
        for _, m in self.named_modules():
            object.__setattr__(m, "training", mode)
        return self

    def eval(self):
        return self.train(False)

    @contextlib.contextmanager
    def eval_mode(self):
        """`with model.eval_mode():` runs the block in eval mode (no dropout), then restores
        the mode the module had, also when the block raises or a generator is closed."""
        was_training = self.training
        self.eval()
        try:
            yield self
        finally:
            self.train(was_training)

    # --- state --------------------------------------------------------------------------
    def state_dict(self):
        """{dotted name: NumPy array copy} of every parameter."""
        return {name: backend.to_numpy(p.data).copy() for name, p in self.named_parameters()}

    def load_state_dict(self, state):
        """Load arrays by name; names and shapes must match exactly (the error names the culprit).

        The arrays are copied (as in PyTorch): training afterwards leaves `state` as it was,
        and two models loaded from one dict share nothing. Loading is an in-place change of
        each parameter (its `version` moves on): a graph built before cannot backward through
        ops that saved the old values."""
        params = dict(self.named_parameters())
        missing = sorted(set(params) - set(state))
        unexpected = sorted(set(state) - set(params))
        if missing or unexpected:
            raise ValueError(f"state_dict mismatch: missing {missing}, unexpected {unexpected}")
        for name, p in params.items():
            value = numpy.asarray(state[name])
            if value.shape != p.shape:
                raise ValueError(f"state_dict mismatch for {name!r}: shape {value.shape} in the "
                                 f"state, {p.shape} in the model")
        for name, p in params.items():
            p.data = backend.asarray(numpy.array(state[name], dtype=p.dtype, copy=True))
            p.grad = None
            p.drawn = True


class ModuleList(Module):
    """Modules in a list, named "0", "1", … (so parameters read `blocks.0.attn...`)."""

    def __init__(self, modules=()):
        super().__init__()
        self._length = 0
        for m in modules:
            self.append(m)

    def append(self, module):
        setattr(self, str(self._length), module)
        self._length += 1
        self._set_scope_name(self._name)

    def _set_scope_name(self, name):
        # A list is iterated, never called, so its items carry its name themselves
        # (`blocks.0`, not `0`) for memory accounting by scope.
        object.__setattr__(self, "_name", name)
        for i in range(self._length):
            getattr(self, str(i))._set_scope_name(f"{name}.{i}" if name else str(i))

    def __getitem__(self, i):
        return getattr(self, str(range(self._length)[i]))

    def __len__(self):
        return self._length

    def __iter__(self):
        return (self[i] for i in range(self._length))


def init_parameters(module, seed=0, dtype="float32", only_undrawn=False):
    """Draw every parameter from one seeded host generator, in name order, then move it to
    the active backend in `dtype`. Same seed → same weights, whatever the backend.

    only_undrawn=True (what construction does) sets only the parameters not drawn yet, each
    to the value a full draw would give it (the generator still walks every parameter)."""
    rng = backend.host_rng(seed)
    for name, p in module.named_parameters():
        p.name = name
        if p.init == "normal":
            value = rng.normal(0.0, p.std, size=p.shape)
        elif p.init in ("zeros", "ones"):
            value = numpy.full(p.shape, 1.0 if p.init == "ones" else 0.0)
        else:
            raise ValueError(f"unknown init {p.init!r}")
        if only_undrawn and p.drawn:
            continue
        p.data = backend.asarray(value, dtype=numpy.dtype(dtype))
        p.grad = None
        p.drawn = True
    return module
