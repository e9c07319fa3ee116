"""Shared test set-up: a fixed hypothesis profile, the tests folder and the repository root (for
`lessons.support`, which the lessons tests import) on sys.path, and the backend the tests run on.

MINIMS_TEST_BACKEND picks the backend every test starts on:
- `numpy` (the default): the CPU, as CI runs.
- `cupy`: a real CUDA GPU. Every test starts on `minims.set_backend("cupy")` and
  MINIMS_BACKEND=cupy is set for child processes and for the trainer's `--backend` default.
  Without a usable GPU every test is skipped with the reason, or, with MINIMS_REQUIRE_CUDA=1
  (a GPU job), the run stops at once with exit code 4 and the reason: a GPU path that is never
  run is not tested. The device check (tests/gpu/check.py) runs the backend-independent test
  files this way.
- `fake-cupy`: the same, on the fake CuPy of tests/fake_cupy.py (NumPy behind CuPy's wall), so
  a CPU machine can check that those test files are written for any backend (e.g. compare
  `t.numpy()`, never `t.data`, with NumPy arrays) before a GPU runs them. A test that starts a
  child process is skipped there: the child cannot see the fake.
"""
import os
import subprocess
import sys

import pytest
from hypothesis import HealthCheck, settings

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(1, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# Derandomized and without deadlines: the same examples on every run (no flaky CI), and no
# failures because a 2-core machine was busy. `HYPOTHESIS_PROFILE=dev` explores more;
# `quick` (the device check) fewer: on a fresh GPU every new kernel is compiled first.
settings.register_profile("ci", deadline=None, derandomize=True, max_examples=50,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", deadline=None, max_examples=200,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("quick", deadline=None, derandomize=True, max_examples=10,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

TEST_BACKENDS = ("numpy", "cupy", "fake-cupy")
TEST_BACKEND = os.environ.get("MINIMS_TEST_BACKEND") or "numpy"


def cuda_problem():
    """Why the real CuPy backend cannot run here, or None when it can."""
    try:
        import cupy
    except Exception as e:  # ImportError, or a broken CUDA install failing at import
        return f"CuPy cannot be imported ({type(e).__name__}: {e})"
    if getattr(cupy, "_is_fake", False):
        return "sys.modules['cupy'] is the test fake"
    try:
        if not cupy.cuda.is_available():
            return "CuPy is installed but no CUDA device is usable"
    except Exception as e:
        return f"the CUDA check failed ({type(e).__name__}: {e})"
    return None


_skip_all = None
if TEST_BACKEND == "fake-cupy":   # (before any test module imports minims)
    import fake_cupy
    sys.modules["cupy"], sys.modules["cupyx"] = fake_cupy.make_fake_cupy()
    os.environ["MINIMS_BACKEND"] = "cupy"


def pytest_configure(config):
    global _skip_all
    if TEST_BACKEND not in TEST_BACKENDS:
        raise pytest.UsageError(f"MINIMS_TEST_BACKEND={TEST_BACKEND!r}: choose one of "
                                f"{', '.join(TEST_BACKENDS)}")
    if TEST_BACKEND == "cupy":
        problem = cuda_problem()
        if problem is not None and os.environ.get("MINIMS_REQUIRE_CUDA") == "1":
            raise pytest.UsageError(f"MINIMS_TEST_BACKEND=cupy with MINIMS_REQUIRE_CUDA=1, but {problem} "
                                    "(pip install -e '.[cuda12]' or '.[cuda13]' on a machine with an "
                                    "NVIDIA GPU)")
        _skip_all = problem and f"MINIMS_TEST_BACKEND=cupy but {problem}"
        os.environ["MINIMS_BACKEND"] = "cupy"


def pytest_report_header(config):
    return f"minims test backend: {TEST_BACKEND} (MINIMS_TEST_BACKEND)"


def pytest_collection_modifyitems(config, items):
    if _skip_all:
        for item in items:
            item.add_marker(pytest.mark.skip(reason=_skip_all))


def _reset_backend_caches(monkeypatch):
    """Empty minims' module-level caches of backend arrays (`*_cache` dicts keyed by the
    backend's name, e.g. causal masks) and the CuPy peak-memory hook, restoring them after
    the test: arrays of the fake must never reach a later test that uses real CuPy."""
    from minims import memory
    monkeypatch.setattr(memory, "_peak_hook", None)
    for module_name, module in list(sys.modules.items()):
        if module is not None and (module_name == "minims" or module_name.startswith("minims.")):
            for attr, value in list(vars(module).items()):
                if attr.endswith("_cache") and isinstance(value, dict):
                    monkeypatch.setattr(module, attr, {})


@pytest.fixture
def fake_cupy(monkeypatch):
    """A fresh fake cupy/cupyx (tests/fake_cupy.py) in sys.modules, with the caches of backend
    arrays emptied; the test switches to it with `minims.set_backend("cupy")`, and the next
    test starts on NumPy again."""
    import minims
    from fake_cupy import install
    cupy = install(monkeypatch)
    _reset_backend_caches(monkeypatch)
    yield cupy
    minims.set_backend("numpy")


@pytest.fixture(autouse=True)
def _test_backend(monkeypatch):
    """Start every test on the chosen backend (a test may switch; the next starts over)."""
    if TEST_BACKEND == "numpy" or _skip_all:
        yield
        return
    import minims
    if TEST_BACKEND == "fake-cupy":
        def no_child(*args, **kwargs):
            pytest.skip("starts a child process, which cannot see the fake CuPy")
        monkeypatch.setattr(subprocess.Popen, "__init__", no_child)
    minims.set_backend("cupy")
    yield
