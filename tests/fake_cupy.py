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
  synchronize, fuse, ...), so that a test can assert the CuPy path was really taken;
- `syncs` and `sync_sites`: every device → host read, the operations that make the host
  wait for the GPU on a real one (`asnumpy`, `.get()`, `.item()`, `.tolist()`, `bool()`,
  `int()`, `float()`, `operator.index()` of an array, indexing with a boolean array,
  `nonzero`/`unique`-like functions whose result size depends on the values), counted by
  kind and by the line of minims that asked (`sync_sites`), so that a test can bound them
  per training step and name the line that added one;
- `fuse`: `cupy.fuse()` compiles an elementwise function into one kernel; the fake runs the
  function on stand-ins that allow only what a fused kernel can do (arithmetic and ufunc
  calls: no methods, no indexing, no reductions, no `bool()`), counting each call.

Use `install(monkeypatch)` to put a fresh pair into `sys.modules`; the test must switch
minims back to NumPy afterwards (see the fixture in tests/test_backend.py).
"""
import collections
import importlib.machinery
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
        if name in ("item", "tolist", "tobytes"):      # host values: a device → host read
            _record_sync(self._module, name)
        elif name == "nonzero":
            _record_sync(self._module, "nonzero")
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
        _record_sync(self._module, "get")
        return self._a.copy()

    def __getitem__(self, index):
        if _has_boolean_array(index):                  # the result's size is read back
            _record_sync(self._module, "boolean index")
        return self._module._wrap(self._a[_unwrap(index)])

    def __setitem__(self, index, value):
        self._a[_unwrap(index)] = _unwrap(value)

    def __len__(self):
        return len(self._a)

    def __iter__(self):
        return (self._module._wrap(row) for row in self._a)

    def __bool__(self):
        _record_sync(self._module, "bool")
        return bool(self._a)

    def __int__(self):
        _record_sync(self._module, "int")
        return int(self._a)

    def __float__(self):
        _record_sync(self._module, "float")
        return float(self._a)

    def __index__(self):
        _record_sync(self._module, "index")
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


# Functions whose result's size depends on the values: CuPy must read a count back from the
# GPU before it can allocate the result (a synchronisation).
SYNCING_FUNCTIONS = ("nonzero", "flatnonzero", "argwhere", "unique", "extract", "compress")


def _record_sync(module, kind):
    """Count one device → host read of `kind`, and the first line outside this file, NumPy
    and minims/backend.py (whose helpers read on behalf of a caller) that caused it:
    `sync_sites` says where a new synchronisation came from."""
    module.syncs[kind] += 1
    frame = sys._getframe(1)
    while frame is not None and (frame.f_code.co_filename == __file__
                                 or frame.f_code.co_filename.endswith("minims/backend.py")
                                 or "numpy" in frame.f_code.co_filename.split("/")[-3:-1]):
        frame = frame.f_back
    if frame is not None:
        where = f"{frame.f_code.co_filename.split('/')[-1]}:{frame.f_lineno} ({frame.f_code.co_name})"
        module.sync_sites[f"{kind} at {where}"] += 1


def _has_boolean_array(index):
    items = index if isinstance(index, tuple) else (index,)
    return any(isinstance(i, FakeArray) and i._a.dtype == bool and i._a.ndim > 0 for i in items)


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


class _FusedVar(NDArrayOperatorsMixin):
    """What a function compiled by `cupy.fuse` sees in place of an array: arithmetic and ufunc
    calls only. Anything else a fused kernel cannot do raises, as real CuPy does when it
    traces the function (methods, attributes, indexing, reductions, `bool()`, `out=`)."""

    __slots__ = ("_a",)

    def __init__(self, array):
        self._a = array

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        if method != "__call__" or kwargs:
            raise TypeError(f"cupy.fuse (fake): {ufunc.__name__}.{method}"
                            f"{' with ' + ', '.join(kwargs) if kwargs else ''} is not elementwise")
        for x in inputs:
            if not isinstance(x, (_FusedVar, int, float, bool, numpy.generic)):
                raise TypeError(f"cupy.fuse (fake): {type(x).__name__} operand in {ufunc.__name__}")
        result = ufunc(*(x._a if isinstance(x, _FusedVar) else x for x in inputs))
        return tuple(map(_FusedVar, result)) if isinstance(result, tuple) else _FusedVar(result)

    def __getattr__(self, name):
        raise TypeError(f"cupy.fuse (fake): .{name} is not available inside a fused kernel")

    def __array__(self, *args, **kwargs):
        raise TypeError("cupy.fuse (fake): a fused kernel's value cannot become a NumPy array")

    def __bool__(self):
        raise TypeError("cupy.fuse (fake): no Python control flow on values inside a fused kernel")

    def __getitem__(self, index):
        raise TypeError("cupy.fuse (fake): no indexing inside a fused kernel")


def _make_fuse(cupy):
    """`cupy.fuse(kernel_name=...)` (also usable bare, `@cupy.fuse`) for the fake module."""
    def fuse(*args, kernel_name=None):
        def compile(fn):
            name = kernel_name or fn.__name__

            def kernel(*inputs):
                cupy.calls["fuse"] += 1
                cupy.calls[f"fuse:{name}"] += 1
                for x in inputs:
                    if isinstance(x, numpy.ndarray):
                        raise TypeError(f"cupy.fuse (fake) kernel {name}: a NumPy array argument; "
                                        "move it with cupy.asarray")
                    if not isinstance(x, (FakeArray, int, float, bool, numpy.generic)):
                        raise TypeError(f"cupy.fuse (fake) kernel {name}: unsupported argument "
                                        f"{type(x).__name__}")
                out = fn(*(_FusedVar(x._a) if isinstance(x, FakeArray) else x for x in inputs))
                outs = out if isinstance(out, tuple) else (out,)
                if not all(isinstance(o, _FusedVar) for o in outs):
                    raise TypeError(f"cupy.fuse (fake) kernel {name}: every output must be an "
                                    "array computed from the inputs")
                arrays = tuple(cupy._wrap(numpy.asarray(o._a)) for o in outs)
                return arrays if isinstance(out, tuple) else arrays[0]
            kernel.__name__ = name
            return kernel
        if len(args) == 1 and callable(args[0]):       # @cupy.fuse without parentheses
            return compile(args[0])
        return compile
    return fuse


def make_fake_cupy(available=True):
    """A fresh (cupy, cupyx) pair of fake modules; `available=False` mimics 'no CUDA device'."""
    cupy = types.ModuleType("cupy")
    cupy.__doc__ = "fake cupy for tests (tests/fake_cupy.py)"
    cupy.__spec__ = importlib.machinery.ModuleSpec("cupy", None)   # (importlib.util.find_spec)
    cupy.__version__ = "0+fake"
    cupy.calls = collections.Counter()
    cupy.syncs = collections.Counter()          # device → host reads, by kind
    cupy.sync_sites = collections.Counter()     # ... by kind and the line that asked
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
        if isinstance(a, FakeArray):
            _record_sync(cupy, "asnumpy")
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
            if name in SYNCING_FUNCTIONS or (name == "where" and len(args) == 1):
                _record_sync(cupy, name)
            return wrap(attr(*_unwrap(args), **_unwrap(kwargs)))
        func.__name__ = name
        return func

    cupy.__getattr__ = numpy_attribute
    cupy.fuse = _make_fuse(cupy)

    # --- cupy.cuda ------------------------------------------------------------------------
    cuda = types.ModuleType("cupy.cuda")
    cuda.is_available = lambda: available

    class Device:
        def __init__(self, device=None):
            self.id = 0 if device is None else device

        def synchronize(self):
            cupy.calls["synchronize"] += 1

    cuda.Device = Device
    cuda.runtime = types.SimpleNamespace(
        getDeviceProperties=lambda device: {"name": b"fake GPU (tests/fake_cupy.py)",
                                            "totalGlobalMem": 2 ** 34},
        runtimeGetVersion=lambda: 0, driverGetVersion=lambda: 0)

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

    def allocator_setter(what):             # counted: minims must leave CuPy's pools in place
        def set_(allocator=None):
            cupy.calls[what] += 1
        return set_
    cuda.set_allocator = allocator_setter("set_allocator")
    cuda.set_pinned_memory_allocator = allocator_setter("set_pinned_memory_allocator")
    cupy.cuda = cuda

    # --- cupyx ------------------------------------------------------------------------------
    cupyx = types.ModuleType("cupyx")
    cupyx.__spec__ = importlib.machinery.ModuleSpec("cupyx", None)

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
