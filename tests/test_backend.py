"""The backend switch (minims/backend.py), its CuPy control flow included, on a CPU machine.

With a fake `cupy` (tests/fake_cupy.py: NumPy behind a wall that is as strict as CuPy
about host and device arrays) the CuPy branches run for real here: `set_backend("cupy")`,
`scatter_add` through cupyx, `to_numpy` through `cupy.asnumpy`, `synchronize`, and the
memory pool. The error paths are checked too: an unknown backend, no CuPy, no CUDA device,
and the `MINIMS_BACKEND` environment variable. Then the host RNG helpers and
`track_memory()` on NumPy. (Real CuPy on a real GPU: tests/test_cupy_real.py.)
"""
import json
import os
import subprocess
import sys
import tracemalloc

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import minims
import minims.functional as F
from minims import Tensor, allocator, backend, memory
from minims.backend import BackendUnavailable

from fake_cupy import FakeArray, install

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
INSTALL_HINT = "pip install -e '.[cuda12]'"


@pytest.fixture(autouse=True)
def numpy_afterwards():
    """Whatever a test does, the next one starts on the NumPy backend."""
    yield
    minims.set_backend("numpy")


# --- choosing a backend -------------------------------------------------------------------

def test_unknown_backend_names_the_choices():
    with pytest.raises(ValueError, match="unknown backend 'tpu'") as e:
        minims.set_backend("tpu")
    assert "numpy" in str(e.value) and "cupy" in str(e.value)
    assert minims.get_backend() == "numpy" and backend.xp is np


def test_cupy_not_installed_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", None)      # `import cupy` now fails
    with pytest.raises(BackendUnavailable) as e:
        minims.set_backend("cupy")
    message = str(e.value)
    assert INSTALL_HINT in message
    assert "CUDA GPU" in message
    assert "import failed" in message
    assert minims.get_backend() == "numpy" and backend.xp is np
    assert isinstance(e.value, RuntimeError)            # catchable as a plain RuntimeError


def test_cupy_without_a_cuda_device(monkeypatch):
    cupy = install(monkeypatch, available=False)
    with pytest.raises(BackendUnavailable, match="no CUDA device") as e:
        minims.set_backend("cupy")
    assert INSTALL_HINT in str(e.value) and "CUDA GPU" in str(e.value)
    assert minims.get_backend() == "numpy" and backend.xp is np
    assert cupy.calls["asarray"] == 0


def test_cuda_check_that_crashes(monkeypatch):
    cupy = install(monkeypatch)

    def broken_driver():
        raise OSError("libcuda.so: cannot open shared object file")
    cupy.cuda.is_available = broken_driver
    with pytest.raises(BackendUnavailable, match="CUDA check failed.*libcuda") as e:
        minims.set_backend("cupy")
    assert INSTALL_HINT in str(e.value)
    assert minims.get_backend() == "numpy"


def test_numpy_backend_never_needs_cupy(monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", None)
    assert minims.set_backend("numpy") is np
    assert minims.get_backend() == "numpy"


def test_the_fake_is_as_strict_as_cupy(fake_cupy):
    """The fake must refuse what CuPy refuses, or the next test would prove nothing."""
    a = fake_cupy.asarray([1.0, 2.0])
    assert isinstance(a, FakeArray) and not isinstance(a, np.ndarray)
    with pytest.raises(TypeError, match="Implicit conversion"):
        np.asarray(a)
    with pytest.raises(TypeError, match="NumPy array"):
        a + np.ones(2)
    with pytest.raises(TypeError, match="NumPy array"):
        fake_cupy.exp(np.ones(2))
    assert isinstance(a.sum(), FakeArray) and a.sum().shape == ()   # 0-d, not a scalar
    np.testing.assert_array_equal(fake_cupy.asnumpy(a * 2.0), [2.0, 4.0])


# --- a training step through the fake CuPy ----------------------------------------------------

def _training_step():
    """Embedding, layer norm, attention (causal and masked), GELU MLP, dropout, cross-entropy,
    fancy indexing, then backward: returns what a test can compare across backends."""
    rng = backend.host_rng(0)
    B, T, C, V, nh = 2, 4, 8, 7, 2
    p = {name: Tensor(rng.standard_normal(shape) * 0.5, requires_grad=True)
         for name, shape in [("wte", (V, C)), ("fc", (C, 4 * C)), ("proj", (4 * C, C))]}
    p["ln_w"], p["ln_b"] = Tensor(np.ones(C), requires_grad=True), Tensor(np.zeros(C), requires_grad=True)
    idx = np.array([[1, 3, 3, 0], [6, 3, 1, 1]])                          # repeated ids
    targets = np.roll(idx, -1, axis=1)

    x = F.embedding(idx, p["wte"])                                         # (B, T, C)
    h = F.layer_norm(x, p["ln_w"], p["ln_b"])
    q = h.reshape(B, T, nh, C // nh).transpose(0, 2, 1, 3)                 # (B, nh, T, hs)
    window = np.tril(np.ones((T, T), dtype=bool)) & ~np.tril(np.ones((T, T), dtype=bool), -2)
    a = (F.scaled_dot_product_attention(q, q, q, causal=True)
         + F.scaled_dot_product_attention(q, q, q, causal=False, mask=window))
    x = x + a.transpose(0, 2, 1, 3).reshape(B, T, C)
    backend.manual_seed(3)
    x = x + F.dropout(F.linear(F.gelu(F.linear(x, p["fc"])), p["proj"]), 0.2)
    logits = x @ p["wte"].T                                                # (B, T, V)
    loss = F.cross_entropy(logits, targets) + x[np.array([0, 0, 1]), 1].sum() * 0.01
    saved = minims.memory.saved_bytes(loss, by="op")
    loss.backward()
    grads = {name: t.grad for name, t in p.items()}
    return loss, grads, saved


def test_training_step_takes_the_cupy_path(fake_cupy):
    ref_loss, ref_grads, ref_saved = _training_step()                       # NumPy first

    xp = minims.set_backend("cupy")
    assert xp is fake_cupy and minims.get_backend() == "cupy" and backend.xp is fake_cupy
    loss, grads, saved = _training_step()

    assert isinstance(loss.data, FakeArray)
    assert all(isinstance(g, FakeArray) for g in grads.values())
    assert fake_cupy.calls["asarray"] > 0                 # host data went to the "device"
    assert fake_cupy.calls["scatter_add"] >= 2            # embedding and fancy-index backward
    before = fake_cupy.calls["asnumpy"]
    value = loss.numpy()
    assert fake_cupy.calls["asnumpy"] == before + 1 and isinstance(value, np.ndarray)
    assert isinstance(loss.item(), float)

    # the same numbers as on NumPy (same host RNG, same dropout mask)
    np.testing.assert_allclose(value, ref_loss.numpy(), rtol=1e-12)
    for name in ref_grads:
        np.testing.assert_allclose(minims.to_numpy(grads[name]), ref_grads[name], rtol=1e-10,
                                   atol=1e-12, err_msg=name)
    assert saved == ref_saved                             # activation memory, op by op

    backend.synchronize()
    assert fake_cupy.calls["synchronize"] == 1


def test_out_of_range_ids_raise_on_cupy_too(fake_cupy):
    # CuPy wraps out-of-range indices silently; minims must check them itself
    minims.set_backend("cupy")
    w = Tensor(np.ones((4, 2)), requires_grad=True)
    with pytest.raises(IndexError):
        F.embedding(np.array([0, 4]), w)
    with pytest.raises(IndexError):
        F.embedding(np.array([-1, 0]), w)
    with pytest.raises(IndexError):
        F.cross_entropy(Tensor(np.zeros((2, 4))), np.array([0, 4]))


def test_switching_back_to_numpy(fake_cupy):
    minims.set_backend("cupy")
    assert isinstance(Tensor([1.0]).data, FakeArray)
    minims.set_backend("numpy")
    assert minims.get_backend() == "numpy" and backend.xp is np
    assert type(Tensor([1.0]).data) is np.ndarray


def test_memory_stats_read_the_cupy_pool(fake_cupy):
    minims.set_backend("cupy")
    pool = fake_cupy.get_default_memory_pool()
    memory.reset_peak_memory()
    big = Tensor(np.zeros(1_000_000))                     # 8 MB on the "device"
    stats = memory.memory_stats()
    assert stats["in_use"] == pool.used_bytes() >= 8_000_000
    del big                                               # freed: in use drops, the peak stays
    after = memory.memory_stats()
    assert after["in_use"] <= stats["in_use"] - 8_000_000
    assert after["peak"] >= stats["in_use"]

    with memory.track_memory() as mem:                   # the hook is installed only once
        y = Tensor(np.ones(1_000_000)) * 2.0
        del y
    assert mem["peak"] >= 2 * 8_000_000                   # the input and the product
    assert mem["in_use"] < 8_000_000
    assert fake_cupy.calls["synchronize"] >= 1            # track_memory waits for the GPU
    assert len(fake_cupy.cuda.memory_hook._hooks) == 1


# --- the MINIMS_BACKEND environment variable ---------------------------------------------------

def _import_minims(env_value, prelude="", then=""):
    env = dict(os.environ, MINIMS_BACKEND=env_value, PYTHONPATH=REPO)
    code = prelude + "import minims; print(minims.get_backend())" + then
    return subprocess.run([sys.executable, "-c", code], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=60)


def test_env_var_numpy():
    r = _import_minims("numpy")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "numpy"


def test_env_var_bogus_fails_at_first_use():
    # importing still works (a CLI can then print a one-line error), the first op raises
    assert _import_minims("bogus").returncode == 0
    r = _import_minims("bogus", then="; minims.Tensor([1.0])")
    assert r.returncode != 0
    assert "ValueError" in r.stderr and "unknown backend 'bogus'" in r.stderr
    assert "numpy" in r.stderr and "cupy" in r.stderr


def test_env_var_cupy_without_cupy_fails_with_the_install_hint():
    r = _import_minims("cupy", prelude="import sys; sys.modules['cupy'] = None; ",
                       then="; minims.Tensor([1.0])")
    assert r.returncode != 0
    assert "BackendUnavailable" in r.stderr and INSTALL_HINT in r.stderr


@pytest.mark.parametrize("command", ["train", "sample", "bench", "experiment"])
@pytest.mark.parametrize("value, said", [("bogus", "is 'bogus'"),
                                         ("nump\udcff", "is not valid UTF-8 (byte 0xff at offset 4)")])
def test_a_bad_minims_backend_is_one_line_and_exit_2_from_the_commands(monkeypatch, capsys, command, value, said):
    # argparse does not check a default against the flag's choices: the variable used to reach
    # set_backend and end in a traceback (train, sample), or was ignored (bench, experiment)
    from minims import bench, experiment, sample
    from minims.train import pipeline
    main, argv = {"train": (pipeline.main, ["--out-dir", "no-such-folder"]),
                  "sample": (sample.main, ["--out-dir", "no-such-folder"]),
                  "bench": (bench.main, ["engine"]),
                  "experiment": (experiment.main, ["tradeoff", "--report-only"])}[command]
    monkeypatch.setenv("MINIMS_BACKEND", value)
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"MINIMS_BACKEND {said}" in err[0] and "numpy, cupy" in err[0]


def test_a_given_backend_flag_overrides_a_bad_minims_backend(monkeypatch):
    from minims.train.flags import parse_args
    monkeypatch.setenv("MINIMS_BACKEND", "bogus")
    args = parse_args(["--backend", "numpy"])
    assert args.backend == "numpy" and "backend" in args._given
    monkeypatch.setenv("MINIMS_BACKEND", "numpy")
    args = parse_args([])
    assert type(args.backend) is str and args.backend == "numpy" and "backend" not in args._given


# --- host RNG ------------------------------------------------------------------------------

def test_host_rng_gives_identical_draws():
    a = backend.host_rng(42).standard_normal(5)
    b = backend.host_rng(42).standard_normal(5)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, backend.host_rng(43).standard_normal(5))


def test_rng_state_round_trip():
    backend.manual_seed(7)
    backend.global_rng().random(3)                        # move away from the seed
    state = json.loads(json.dumps(backend.get_rng_state()))  # as a checkpoint stores it
    first = backend.global_rng().random(4)
    backend.global_rng().random(10)
    backend.set_rng_state(state)
    np.testing.assert_array_equal(backend.global_rng().random(4), first)


def test_dropout_masks_replay_from_the_rng_state():
    x = Tensor(np.ones((4, 5)))
    backend.manual_seed(0)
    state = backend.get_rng_state()
    m1 = F.dropout(x, 0.5).numpy()
    m2 = F.dropout(x, 0.5).numpy()
    assert not np.array_equal(m1, m2)                     # the stream moves on
    backend.set_rng_state(state)
    np.testing.assert_array_equal(F.dropout(x, 0.5).numpy(), m1)


# --- helpers on NumPy ----------------------------------------------------------------------

def test_track_memory_on_numpy_sees_a_big_allocation():
    was_tracing = tracemalloc.is_tracing()
    with memory.track_memory() as mem:
        big = np.ones(1_000_000)                          # 8 MB
        del big
    assert mem["peak"] >= 8_000_000
    assert mem["in_use"] < 8_000_000
    assert tracemalloc.is_tracing() == was_tracing        # stopped again if it was off


def test_memory_stats_are_zero_when_not_tracing():
    if tracemalloc.is_tracing():
        pytest.skip("tracemalloc is on for this process")
    assert memory.memory_stats() == {"in_use": 0, "peak": 0}


def test_scatter_add_accumulates_repeated_indices_on_numpy():
    target = np.zeros(3)
    backend.scatter_add(target, np.array([0, 2, 2, 2]), np.array([1.0, 1.0, 2.0, 3.0]))
    np.testing.assert_array_equal(target, [1.0, 0.0, 6.0])


def test_to_numpy_passes_numpy_and_scalars_through():
    a = np.arange(3.0)
    assert backend.to_numpy(a) is a
    assert backend.to_numpy(2.5) == 2.5
    assert backend.synchronize() is None                  # a no-op on NumPy


def test_to_numpy_dispatches_on_the_array_not_the_active_backend(fake_cupy):
    minims.set_backend("cupy")
    t = minims.Tensor([1.0, 2.0])
    minims.set_backend("numpy")
    np.testing.assert_array_equal(minims.to_numpy(t.data), [1.0, 2.0])
    np.testing.assert_array_equal(t.numpy(), [1.0, 2.0])


def test_layers_and_models_start_identical_on_both_backends(fake_cupy):
    from minims.models.registry import build_model
    from minims.nn import Linear
    made = {}
    for name in ("numpy", "cupy"):
        minims.set_backend(name)
        layer = Linear(3, 4)
        model = build_model("top-down", vocab_size=9, block_size=8, n_embd=8, n_head=2, seed=4)
        made[name] = {"layer": backend.to_numpy(layer.weight.data), **model.state_dict()}
    assert isinstance(layer.weight.data, FakeArray)            # drawn, then moved to the device
    for key, value in made["numpy"].items():
        np.testing.assert_array_equal(made["cupy"][key], value, err_msg=key)


def test_reuse_freed_memory_takes_a_c_int_limit():
    """A limit mallopt cannot take is refused rather than wrapped (1 << 40 would become 0:
    trim at every free, the opposite of the intent); a valid call says whether it applied."""
    for bad in (0, -5, 1 << 40, 2.5):
        with pytest.raises(ValueError, match="limit_bytes"):
            allocator.reuse_freed_memory(bad)
    assert allocator.reuse_freed_memory() in (True, False)



@settings(max_examples=60, deadline=None)
@given(st.integers(1, 6), st.integers(0, 12), st.integers(0, 3), st.integers(0, 2**31 - 1),
       st.sampled_from(["float32", "float64"]))
def test_scatter_add_of_rows_equals_numpy_add_at(n_rows, n_ids, width, seed, dtype):
    """The sorted-runs path for row ids (the embedding's backward) adds exactly what
    numpy.add.at adds, repeated ids included; negative ids (NumPy's wrap-around) and ids of
    the wrong range still go through add.at."""
    from minims import backend
    rng = np.random.default_rng(seed)
    target = rng.standard_normal((n_rows, width)).astype(dtype)
    for ids in (rng.integers(0, n_rows, n_ids), rng.integers(-n_rows, n_rows, n_ids)):
        values = rng.standard_normal((n_ids, width)).astype(dtype)
        expected = target.copy()
        np.add.at(expected, ids, values)
        got = backend.scatter_add(target.copy(), ids, values)
        np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6)
