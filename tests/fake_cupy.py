"""A fake `cupy` (and `cupyx`) so that minims' CuPy code paths run on a machine with no GPU.

minims/backend.py is the only file that touches CuPy, and on a CPU-only CI machine its
CuPy branches would never run. This module builds stand-ins for the two modules out of
NumPy, strict where CuPy is strict, so that a test can take the CuPy path for real:

- arrays are `FakeArray`s, not `numpy.ndarray`s: like CuPy arrays they refuse implicit
  conversion to NumPy (`numpy.asarray(a)` raises TypeError; use `cupy.asnumpy` or `.get()`)
  and refuse to mix with NumPy arrays in arithmetic; reductions return 0-d arrays;
- `asarray`/`array` move host data "onto the device"; every other attribute of the module
  is NumPy's function, run on the underlying arrays and wrapped again;
- the CuPy-only pieces backend.py uses: `cuda.is_available()`, `cuda.Device().synchronize()`,
  `asnumpy`, `get_default_memory_pool()` (`used_bytes()`/`total_bytes()`, counting the
  bytes of live arrays), `cuda.memory_hook.MemoryHook`, and `cupyx.scatter_add`;
- `calls`, a Counter of the CuPy-only entry points (asarray, asnumpy, scatter_add,
  synchronize, ...), so that a test can assert the CuPy path was really taken.

Use `install(monkeypatch)` to put a fresh pair into `sys.modules`; the test must switch
minims back to NumPy afterwards (see the fixture in tests/test_backend.py).
"""
import collections
import sys
import types
import weakref

import numpy
from numpy.lib.mixins import NDArrayOperatorsMixin


class FakeArray(NDArrayOperatorsMixin):
    """A 'device' array: a NumPy array behind a wall, like a CuPy array in host code."""

    __slots__ = ("_a", "_module", "_base", "__weakref__")

    def __init__(self, array, module, base=None):
        self._a = array
        self._module = module
        self._base = base

    @property
    def base(self):
        """The array owning this view's memory: the same object every time, kept alive by the
        view, as in CuPy (minims.memory tells buffers apart by the identity of their owner)."""
        return self._base

    # --- what CuPy refuses -------------------------------------------------------------
    def __array__(self, *args, **kwargs):
        raise TypeError("Implicit conversion to a NumPy array is not allowed. "
                        "Please use `.get()` to construct a NumPy array explicitly. (fake cupy)")

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        for x in inputs:
            if not isinstance(x, (FakeArray, numpy.generic, int, float, complex, bool)):
                if isinstance(x, numpy.ndarray):
                    raise TypeError(f"Unsupported type {type(x)}: a NumPy array in a CuPy "
                                    f"operation ({ufunc.__name__}); move it with cupy.asarray "
                                    "(fake cupy)")
                return NotImplemented
        if "out" in kwargs:
            kwargs["out"] = tuple(_unwrap(o) for o in kwargs["out"])
        result = getattr(ufunc, method)(*_unwrap(inputs), **kwargs)
        return self._module._wrap(result)

    def __array_function__(self, func, types, args, kwargs):
        # NEP 18: numpy.sum(cupy_array) runs CuPy's sum, as real CuPy does
        return self._module._wrap(func(*_unwrap(args), **_unwrap(kwargs)))

    # --- everything else is NumPy's, wrapped again -------------------------------------------
    def __getattr__(self, name):
        if name.startswith("__"):  # no __array_interface__ etc.: NumPy must not see through
            raise AttributeError(name)
        attr = getattr(self._a, name)
        if callable(attr):
            wrap = self._module._wrap

            def method(*args, **kwargs):
                return wrap(attr(*_unwrap(args), **_unwrap(kwargs)))
            return method
        return self._module._wrap(attr)

    def get(self):
        """The host copy, as `cupy.ndarray.get()` gives it."""
        self._module.calls["get"] += 1
        return self._a.copy()

    def __getitem__(self, index):
        return self._module._wrap(self._a[_unwrap(index)])

    def __setitem__(self, index, value):
        self._a[_unwrap(index)] = _unwrap(value)

    def __len__(self):
        return len(self._a)

    def __iter__(self):
        return (self._module._wrap(row) for row in self._a)

    def __bool__(self):
        return bool(self._a)

    def __int__(self):
        return int(self._a)

    def __float__(self):
        return float(self._a)

    def __index__(self):
        return self._a.__index__()

    def __repr__(self):
        return "fake_cupy." + repr(self._a)


def _unwrap(x):
    """The NumPy arrays behind FakeArrays, inside tuples, lists and dicts too."""
    if isinstance(x, FakeArray):
        return x._a
    if isinstance(x, (tuple, list)):
        return type(x)(_unwrap(i) for i in x)
    if isinstance(x, dict):
        return {k: _unwrap(v) for k, v in x.items()}
    return x


class FakeMemoryPool:
    """`cupy.get_default_memory_pool()`: bytes held by live arrays (views count nothing)."""

    def __init__(self, module):
        self._module = module
        self._used = 0
        self._total = 0

    def used_bytes(self):
        self._module.calls["used_bytes"] += 1
        return self._used

    def total_bytes(self):
        return self._total

    def malloc(self, nbytes):
        self._used += nbytes
        self._total = max(self._total, self._used)
        for hook in list(self._module.cuda.memory_hook._hooks.values()):
            hook.malloc_postprocess(device_id=0, size=nbytes, mem_size=nbytes, mem_ptr=0, pmem_id=0)

    def free(self, nbytes):
        self._used -= nbytes


def make_fake_cupy(available=True):
    """A fresh (cupy, cupyx) pair of fake modules; `available=False` mimics 'no CUDA device'."""
    cupy = types.ModuleType("cupy")
    cupy.__doc__ = "fake cupy for tests (tests/fake_cupy.py)"
    cupy.calls = collections.Counter()
    cupy.ndarray = FakeArray
    cupy._is_fake = True

    wrappers = weakref.WeakValueDictionary()   # id(numpy array) -> its one FakeArray
    owners = weakref.WeakValueDictionary()     # id(numpy array) -> array whose bytes are counted
    pool = FakeMemoryPool(cupy)

    def wrap(x):
        """Wrap NumPy results as device arrays; one wrapper per array, so `is` and `.base` work."""
        if isinstance(x, numpy.generic):  # CuPy reductions return 0-d arrays, not scalars
            x = numpy.asarray(x)
        if isinstance(x, numpy.ndarray):
            w = wrappers.get(id(x))
            if w is None or w._a is not x:
                base = wrap(x.base) if isinstance(x.base, numpy.ndarray) else None
                w = FakeArray(x, cupy, base)
                wrappers[id(x)] = w
                if x.base is None and owners.get(id(x)) is not x:
                    owners[id(x)] = x
                    pool.malloc(x.nbytes)
                    weakref.finalize(x, pool.free, x.nbytes)
            return w
        if isinstance(x, (tuple, list)):
            return type(x)(wrap(i) for i in x)
        return x

    cupy._wrap = wrap

    def to_device(name):
        def func(a, dtype=None, **kwargs):
            cupy.calls[name] += 1
            if name == "asarray" and isinstance(a, FakeArray):  # already on the device: no copy
                return wrap(numpy.asarray(a._a, dtype=dtype))
            return wrap(numpy.array(_unwrap(a), dtype=dtype, copy=True, **kwargs))  # host -> device
        return func

    cupy.asarray = to_device("asarray")
    cupy.array = to_device("array")

    def asnumpy(a):
        cupy.calls["asnumpy"] += 1
        return a._a.copy() if isinstance(a, FakeArray) else numpy.asarray(a)

    cupy.asnumpy = asnumpy
    cupy.get_default_memory_pool = lambda: pool

    def numpy_attribute(name):
        """Any other `cupy.X` is `numpy.X`, taking and returning device arrays."""
        attr = getattr(numpy, name)
        if isinstance(attr, (type, types.ModuleType)) or not callable(attr):
            return attr
        is_ufunc = isinstance(attr, numpy.ufunc)

        def func(*args, **kwargs):
            if is_ufunc and any(isinstance(a, numpy.ndarray) for a in args):
                raise TypeError(f"Unsupported type {numpy.ndarray}: a NumPy array passed to "
                                f"cupy.{name}; move it with cupy.asarray (fake cupy)")
            return wrap(attr(*_unwrap(args), **_unwrap(kwargs)))
        func.__name__ = name
        return func

    cupy.__getattr__ = numpy_attribute

    # --- cupy.cuda ------------------------------------------------------------------------
    cuda = types.ModuleType("cupy.cuda")
    cuda.is_available = lambda: available

    class Device:
        def __init__(self, device=None):
            self.id = 0 if device is None else device

        def synchronize(self):
            cupy.calls["synchronize"] += 1

    cuda.Device = Device

    memory_hook = types.ModuleType("cupy.cuda.memory_hook")
    memory_hook._hooks = {}

    class MemoryHook:
        """Base class of memory hooks: `with hook:` installs it (once per name), as in CuPy."""
        name = "MemoryHook"

        def __enter__(self):
            if self.name in memory_hook._hooks:
                raise KeyError(f"MemoryHook {self.name} already exists")
            memory_hook._hooks[self.name] = self
            return self

        def __exit__(self, *exc):
            del memory_hook._hooks[self.name]

        def malloc_preprocess(self, **kwargs):
            pass

        def malloc_postprocess(self, **kwargs):
            pass

    memory_hook.MemoryHook = MemoryHook
    cuda.memory_hook = memory_hook
    cupy.cuda = cuda

    # --- cupyx ------------------------------------------------------------------------------
    cupyx = types.ModuleType("cupyx")

    def scatter_add(a, slices, value):
        cupy.calls["scatter_add"] += 1
        if not isinstance(a, FakeArray):
            raise TypeError("cupyx.scatter_add needs a cupy array (fake cupy)")
        numpy.add.at(a._a, _unwrap(slices), _unwrap(value))

    cupyx.scatter_add = scatter_add
    return cupy, cupyx


def install(monkeypatch, available=True):
    """Put a fresh fake cupy/cupyx into sys.modules for one test; returns the fake cupy."""
    cupy, cupyx = make_fake_cupy(available)
    monkeypatch.setitem(sys.modules, "cupy", cupy)
    monkeypatch.setitem(sys.modules, "cupyx", cupyx)
    return cupy
