"""The CuPy backend on a real CUDA GPU, checked against the NumPy backend in float64.

Skipped (the whole module) when CuPy cannot be imported or no CUDA device is usable, which
is the normal case on a CPU-only CI machine; tests/test_backend.py covers the CuPy control
flow there with a fake. On a GPU job set `MINIMS_REQUIRE_CUDA=1`: then a missing CuPy or
GPU is a failure, not a silent skip (a GPU path that is never run is not tested).

    MINIMS_REQUIRE_CUDA=1 python -m pytest -q tests/test_cupy_real.py

The GPU's own paths are checked here too: the fused elementwise kernels (`backend.fuse`)
against the NumPy chains, `backend.to_floats` (one read of values of mixed dtypes), and
training steps on both backends from the same weights. The device check (tests/gpu/check.py)
runs this file first.
"""
import os

import numpy as np
import pytest

import minims
import minims.functional as F
from minims import Tensor, backend, memory

from conftest import cuda_problem


_problem = cuda_problem()
if _problem is not None:
    if os.environ.get("MINIMS_REQUIRE_CUDA") == "1":
        pytest.fail(f"MINIMS_REQUIRE_CUDA=1 but {_problem}: "
                    "pip install -e '.[cuda12]' on a machine with an NVIDIA GPU", pytrace=False)
    pytest.skip(_problem, allow_module_level=True)

import cupy  # noqa: E402  (only reached with a usable GPU)

TOL = dict(rtol=1e-10, atol=1e-12)


@pytest.fixture(autouse=True)
def numpy_afterwards():
    yield
    minims.set_backend("numpy")


def _attention_mlp(idx, mask):
    """Embedding → layer norm → attention (causal and masked) → GELU MLP → cross-entropy,
    forward and backward, in float64. Returns the loss and every gradient, on the host."""
    rng = backend.host_rng(0)                  # the same initial weights on both backends
    B, T = idx.shape
    V, C, nh = 11, 8, 2
    p = {name: Tensor(rng.standard_normal(shape) * 0.5, requires_grad=True)
         for name, shape in [("wte", (V, C)), ("qkv", (C, 3 * C)), ("fc", (C, 4 * C)),
                             ("proj", (4 * C, C)), ("ln_w", (C,)), ("ln_b", (C,))]}
    x = F.embedding(idx, p["wte"])                                          # (B, T, C)
    h = F.layer_norm(x, p["ln_w"], p["ln_b"])
    qkv = F.linear(h, p["qkv"]).reshape(B, T, 3, nh, C // nh).transpose(2, 0, 3, 1, 4)
    q, k, v = qkv[0], qkv[1], qkv[2]                                        # (B, nh, T, hs)
    a = (F.scaled_dot_product_attention(q, k, v, causal=True)
         + F.scaled_dot_product_attention(q, k, v, causal=False, mask=mask))
    x = x + a.transpose(0, 2, 1, 3).reshape(B, T, C)
    x = x + F.linear(F.gelu(F.linear(x, p["fc"])), p["proj"])
    logits = x @ p["wte"].T                                                 # (B, T, V)
    loss = F.cross_entropy(logits, np.roll(idx, -1, axis=1))
    loss.backward()
    on_gpu = {name: isinstance(t.grad, cupy.ndarray) for name, t in p.items()}
    return loss.item(), {name: minims.to_numpy(t.grad) for name, t in p.items()}, on_gpu


def test_attention_mlp_matches_numpy():
    idx = np.array([[1, 3, 3, 0, 10, 2], [6, 3, 1, 1, 1, 9]])
    mask = np.random.default_rng(1).random((6, 6)) > 0.5
    mask[np.arange(6), np.arange(6)] = True
    ref_loss, ref_grads, _ = _attention_mlp(idx, mask)

    minims.set_backend("cupy")
    assert minims.get_backend() == "cupy"
    loss, grads, on_gpu = _attention_mlp(idx, mask)
    assert all(on_gpu.values()), on_gpu
    np.testing.assert_allclose(loss, ref_loss, **TOL)
    for name in ref_grads:
        np.testing.assert_allclose(grads[name], ref_grads[name], err_msg=name, **TOL)


def test_embedding_backward_with_repeated_ids_matches_numpy():
    ids = np.array([[0, 2, 2, 5, 2], [2, 1, 0, 2, 2]])
    w0 = np.random.default_rng(2).standard_normal((6, 3))
    g = np.random.default_rng(3).standard_normal(ids.shape + (3,))

    def run():
        w = Tensor(w0, requires_grad=True)
        out = F.embedding(ids, w)
        out.backward(g)
        return out.numpy(), minims.to_numpy(w.grad)

    ref_out, ref_grad = run()
    minims.set_backend("cupy")
    out, grad = run()
    np.testing.assert_allclose(out, ref_out, **TOL)
    np.testing.assert_allclose(grad, ref_grad, **TOL)
    expected = np.zeros_like(w0)
    np.add.at(expected, ids.ravel(), g.reshape(-1, 3))
    np.testing.assert_allclose(grad, expected, **TOL)


def test_out_of_range_ids_raise_on_cupy():
    # CuPy wraps out-of-range indices instead of raising: minims checks them itself
    minims.set_backend("cupy")
    w = Tensor(np.ones((4, 2)), requires_grad=True)
    for bad in ([0, 4], [-1, 0]):
        with pytest.raises(IndexError):
            F.embedding(np.array(bad), w)
    with pytest.raises(IndexError):
        F.cross_entropy(Tensor(np.zeros((2, 4))), np.array([0, 4]))


def test_memory_and_synchronize_on_cupy():
    minims.set_backend("cupy")
    with memory.track_memory() as mem:
        y = Tensor(np.ones(1_000_000)) * 2.0              # 8 MB each, on the GPU
        backend.synchronize()
        del y
    assert mem["peak"] >= 8_000_000
    stats = memory.memory_stats()
    assert stats["peak"] >= stats["in_use"] >= 0


def test_fused_kernels_match_the_numpy_backend():
    """GELU, layer norm, softmax and attention, forward and backward, as cupy.fuse compiled
    them, against the NumPy backend's in-place chains: float64 to 1e-10, float32 to its
    round-off, dtypes kept (a kernel computing float32 in float64 would be slow and wrong)."""
    from test_gpu_paths import OPS_CHECKED, ops_forward_backward
    for dtype, tol in (("float64", TOL), ("float32", dict(rtol=2e-4, atol=2e-5))):
        minims.set_backend("numpy")
        reference = ops_forward_backward(dtype, 0)
        minims.set_backend("cupy")
        assert backend.fusing()
        for name, a, b in zip(OPS_CHECKED, reference, ops_forward_backward(dtype, 0)):
            assert b.dtype == a.dtype, name
            np.testing.assert_allclose(b, a, err_msg=f"{name} {dtype}", **tol)


def test_to_floats_reads_mixed_dtypes_at_once():
    minims.set_backend("cupy")
    a = cupy.asarray([1.5, 2.5], dtype=cupy.float32)
    values = [a.sum(), cupy.asarray(2.0 ** 40 + 1, dtype=cupy.float64), cupy.asarray(7, dtype=cupy.int64), 0.5]
    assert backend.to_floats(values) == [4.0, 2.0 ** 40 + 1, 7.0, 0.5]


def test_training_steps_match_numpy_from_the_same_weights():
    """Three AdamW steps (clipped) of a small vanilla model in float64 on each backend: the
    same losses and weights, the losses read once per step (train_step's one read)."""
    from minims.models import build_model
    from minims.optim import AdamW
    from minims.train import train_step
    ids = np.random.default_rng(0).integers(0, 11, size=(3, 4, 17))
    runs = {}
    for name in ("numpy", "cupy"):
        minims.set_backend(name)
        model = build_model("vanilla", vocab_size=11, block_size=16, n_layer=2, n_embd=16, n_head=2,
                            dtype="float64")
        optimizer = AdamW(model.parameters(), lr=1e-2)
        losses = [train_step(model, optimizer, [(b[:, :-1], b[:, 1:])], lr=1e-2, grad_clip=0.1) for b in ids]
        runs[name] = losses, model.state_dict()
    np.testing.assert_allclose(runs["cupy"][0], runs["numpy"][0], **TOL)
    for key, value in runs["numpy"][1].items():
        np.testing.assert_allclose(runs["cupy"][1][key], value, rtol=1e-9, atol=1e-11, err_msg=key)
