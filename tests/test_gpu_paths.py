"""The GPU's slow paths, shown on the fake CuPy (tests/fake_cupy.py) of a CPU machine.

1. Host synchronisations. Every device → host read (`float(a)`, `.item()`, `int()` of an
   array, `cupy.asnumpy`, ...) makes the host wait until the GPU has run everything queued;
   the GPU then idles until the host queues more. The fake counts them (`syncs`) and says
   which line asked (`sync_sites`). A training step makes exactly one (the loss and the
   gradients' sums of squares, read together by `train_step`), for every model and with
   micro-batches; a decoding step one (the logits to sample from). Before this was counted, a
   step of the default model made 62: an `int()` of each end of every id range checked on the
   device (8) and one `float()` per gradient for the norm (53), plus the loss.
2. Fused kernels: on CuPy, GELU, layer norm and softmax (attention's too) run their
   elementwise chains as `backend.fuse` kernels; on NumPy the same functions give the very bits
   of the in-place NumPy chains (same operations, same order), so the formulas the GPU runs are
   the ones the gradient harness checks.
3. CuPy's memory pool is left in place (minims never changes CuPy's allocators).
"""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import minims
import minims.functional as F
from minims import Tensor, backend, to_numpy
from minims.models import MODELS, build_model
from minims.optim import AdamW
from minims.train import train_step

TINY = dict(vocab_size=13, block_size=16, n_layer=2, n_embd=16, n_head=2)
OPTIONS = {"retina": dict(window=4)}


def _batches(n=1, B=2, T=16, V=13, seed=0):
    ids = np.random.default_rng(seed).integers(0, V, size=(n, B, T + 1))
    return [(b[:, :-1], b[:, 1:]) for b in ids]


def syncs_of(cupy, fn):
    """(number of device → host reads fn() makes, {kind at line: count}) on the fake CuPy."""
    cupy.syncs.clear()
    cupy.sync_sites.clear()
    fn()
    return sum(cupy.syncs.values()), dict(cupy.sync_sites)


# --- the counter itself ---------------------------------------------------------------------

def test_the_fake_counts_every_device_to_host_read(fake_cupy):
    a = fake_cupy.asarray([1.0, -2.0, 3.0])
    reads = [lambda: float(a[0]), lambda: int(a[0]), lambda: bool(a[0] > 0), lambda: a[0].item(),
             lambda: a.tolist(), lambda: fake_cupy.asnumpy(a), lambda: a.get(),
             lambda: a[a > 0], lambda: fake_cupy.flatnonzero(a), lambda: range(5)[a.argmax()]]
    for read in reads:
        n, sites = syncs_of(fake_cupy, read)
        assert n == 1 and all("test_gpu_paths.py" in site for site in sites), sites
    on_device = [lambda: a * 2 + 1, lambda: a.sum(), lambda: a.max(axis=0), lambda: a[1:],
                 lambda: fake_cupy.asarray(np.ones(3)), lambda: a[fake_cupy.asarray([0, 2])]]
    for work in on_device:
        assert syncs_of(fake_cupy, work)[0] == 0


def test_to_floats_reads_many_values_at_once(fake_cupy):
    minims.set_backend("cupy")
    a = fake_cupy.asarray([1.5, 2.5])
    values = [a.sum(), a.max(), 7, np.float32(0.25), fake_cupy.asarray(3, dtype=np.int64)]
    n, _ = syncs_of(fake_cupy, lambda: values.append(backend.to_floats(values[:5])))
    assert n == 1 and values[-1] == [4.0, 2.5, 7.0, 0.25, 3.0]
    assert all(type(v) is float for v in values[-1])
    assert syncs_of(fake_cupy, lambda: backend.to_floats([1, np.float64(2)]))[0] == 0   # host: free


# --- a training step: one read ----------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(MODELS))
@pytest.mark.parametrize("micro_batches", [1, 3])
def test_a_training_step_reads_from_the_gpu_once(fake_cupy, name, micro_batches):
    minims.set_backend("cupy")
    model = build_model(name, **TINY, **OPTIONS.get(name, {}))
    optimizer = AdamW(model.parameters())
    batches = _batches(micro_batches)
    train_step(model, optimizer, batches, lr=1e-3, grad_clip=1.0)            # (warm caches)
    n, sites = syncs_of(fake_cupy, lambda: train_step(model, optimizer, batches, lr=1e-3, grad_clip=1.0))
    assert n == 1, f"{n} device → host reads in one training step (1 expected): {sites}"
    assert list(sites) == [next(s for s in sites if "loop.py" in s and "train_step" in s)]
    assert fake_cupy.calls["set_allocator"] == fake_cupy.calls["set_pinned_memory_allocator"] == 0


def test_the_trainer_s_step_reads_from_the_gpu_once(fake_cupy, tmp_path):
    """The loop's step (what `python -m minims.train --backend cupy` runs per step: draw the
    batch on the host, then `train_step`) reads once too: two runs that differ only in their
    number of steps (evaluated and saved at the start and at the end alike) differ by one read
    per step. (The loop also calls `backend.synchronize()` once per step, to time the step: a
    wait, but no copy.)"""
    from minims import train as train_cli
    from tiny_runs import small_text, tiny
    text, reads = small_text(tmp_path), {}
    for steps in (3, 5):
        args = train_cli.parse_args(tiny(tmp_path, text, "--backend", "cupy", "--max-iters", str(steps),
                                         "--eval-interval", "100", out=f"out{steps}"))
        reads[steps], sites = syncs_of(fake_cupy, train_cli.setup(args, verbose=False).run)
    assert reads[5] - reads[3] == 2, sites


def test_the_count_catches_a_read_added_to_the_hot_path(fake_cupy, monkeypatch):
    """The test of the test: a `float()` of a device value inside the forward pass (here, in
    GELU, as a careless debugging line would) shows up as a second read, at its line."""
    minims.set_backend("cupy")
    model = build_model("vanilla", **TINY)
    optimizer = AdamW(model.parameters())
    gelu = F.gelu

    def chatty_gelu(x):
        float(x.data.max())
        return gelu(x)
    monkeypatch.setattr(F, "gelu", chatty_gelu)
    n, sites = syncs_of(fake_cupy, lambda: train_step(model, optimizer, _batches(), lr=1e-3))
    assert n == 1 + TINY["n_layer"]
    assert any("chatty_gelu" in site for site in sites)


def test_ids_on_the_device_are_still_checked(fake_cupy):
    """Ids already on the GPU cannot be checked for free: one read of their range, and a
    clear error when it is out of the vocabulary."""
    minims.set_backend("cupy")
    w = Tensor(np.ones((5, 2)), requires_grad=True)
    n, _ = syncs_of(fake_cupy, lambda: F.embedding(fake_cupy.asarray([0, 4]), w))
    assert n == 1
    assert syncs_of(fake_cupy, lambda: F.embedding(np.array([0, 4]), w))[0] == 0      # host ids: free
    with pytest.raises(IndexError, match=r"got ids in \[0, 5\]"):
        F.embedding(fake_cupy.asarray([0, 5]), w)
    model = build_model("vanilla", **TINY)
    with pytest.raises(ValueError, match=r"token ids must be in \[0, 12\], got \[-1, 3\]"):
        model(fake_cupy.asarray([[3, -1]]))


@pytest.mark.parametrize("name", sorted(MODELS))
def test_decoding_reads_once_per_token(fake_cupy, name):
    minims.set_backend("cupy")
    model = build_model(name, **TINY, **OPTIONS.get(name, {}))
    prompt = np.zeros((1, 1), dtype=np.int64)
    for cache in (True, False):
        model.generate(prompt, 2, seed=0, cache=cache)                     # (warm caches)
        n, sites = syncs_of(fake_cupy, lambda: model.generate(prompt, 10, seed=0, cache=cache))
        assert n == 10, f"cache={cache}: {sites}"


# --- fused kernels ----------------------------------------------------------------------------

OPS_CHECKED = ("gelu", "layer_norm", "softmax", "attention in bands", "attention with a mask",
               "d gelu+layer_norm+softmax input", "d layer_norm weight", "d layer_norm bias",
               "d attention q", "d attention k", "d attention v")


def ops_forward_backward(dtype, seed):
    """GELU, layer norm, softmax and causal attention (in bands and in one band), forward and
    backward: every output and gradient (named by OPS_CHECKED), as NumPy arrays. (Also the
    device check's comparison of the GPU's fused kernels with NumPy: tests/gpu/check.py.)"""
    rng = np.random.default_rng(seed)
    B, nh, T, hs = 2, 2, 40, 4                       # T > 32: attention in two bands
    C = nh * hs
    leaf = lambda *shape: Tensor(rng.standard_normal(shape).astype(dtype) * 2, requires_grad=True)  # noqa: E731
    x, w, b, q, k, v = leaf(B, T, C), leaf(C), leaf(C), leaf(B, nh, T, hs), leaf(B, nh, T, hs), leaf(B, nh, T, hs)
    outs = [F.gelu(x), F.layer_norm(x + 3.0, w, b), F.softmax(x, axis=-1),
            F.scaled_dot_product_attention(q, k, v),
            F.scaled_dot_product_attention(q, k, v, causal=False, mask=np.tril(np.ones((T, T), bool)))]
    total = sum((o * Tensor(rng.standard_normal(o.shape).astype(dtype))).sum() for o in outs)
    total.backward()
    return [o.numpy() for o in outs] + [to_numpy(t.grad) for t in (x, w, b, q, k, v)]


@settings(max_examples=10, deadline=None)
@given(st.sampled_from(["float32", "float64"]), st.integers(0, 2**31 - 1))
def test_fused_kernels_compute_the_same_bits_as_the_numpy_chains(dtype, seed):
    """On NumPy (where `backend.fuse` leaves each function as it is) the fused formulas give
    exactly what the in-place chains give: the GPU runs what the gradient harness checks."""
    with pytest.MonkeyPatch.context() as m:
        m.setattr(backend, "use_fused", False)
        chains = ops_forward_backward(dtype, seed)
        m.setattr(backend, "use_fused", True)
        fused = ops_forward_backward(dtype, seed)
    for a, b in zip(chains, fused):
        assert a.dtype == b.dtype == dtype
        np.testing.assert_array_equal(a, b)


def test_the_cupy_path_runs_the_fused_kernels(fake_cupy):
    reference = ops_forward_backward("float32", 0)
    minims.set_backend("cupy")
    on_cupy = ops_forward_backward("float32", 0)
    kernels = {k.split(":")[1]: n for k, n in fake_cupy.calls.items() if k.startswith("fuse:")}
    assert kernels == {"minims__gelu_forward": 1, "minims__gelu_backward": 1,
                       "minims__layer_norm_center": 1, "minims__layer_norm_scale": 1,
                       "minims__layer_norm_affine": 1, "minims__layer_norm_grad_parts": 1,
                       "minims__layer_norm_grad": 1,
                       "minims__exp_shifted": 1 + 2 + 1,          # softmax; two bands; one band
                       "minims__softmax_grad": 1 + 2 + 1}
    for a, b in zip(reference, on_cupy):
        np.testing.assert_array_equal(a, b)


def test_minims_fuse_0_turns_the_kernels_off(fake_cupy, monkeypatch):
    monkeypatch.setattr(backend, "use_fused", False)       # what MINIMS_FUSE=0 sets at import
    minims.set_backend("cupy")
    ops_forward_backward("float32", 0)
    assert fake_cupy.calls["fuse"] == 0


def test_a_fused_function_may_only_be_elementwise(fake_cupy):
    """The fake refuses in a fused kernel what cupy.fuse cannot compile, so a CPU test fails
    where the GPU would."""
    minims.set_backend("cupy")
    a = fake_cupy.asarray([1.0, 2.0])
    for body in (lambda x: x.sum(), lambda x: x[0], lambda x: x * 2 if x > 0 else x,
                 lambda x: x.T, lambda x: fake_cupy.add(x, 1, out=x)):
        with pytest.raises(TypeError, match="cupy.fuse"):
            backend.fuse(body)(a)
    with pytest.raises(TypeError, match="NumPy array"):
        backend.fuse(lambda x, y: x + y)(a, np.ones(2))
    y, t = backend.fuse(lambda x, m: (backend.xp.exp(x - m), x * 0.5))(a, fake_cupy.asarray([[1.0]]))
    np.testing.assert_allclose(to_numpy(y), np.exp([[0.0, 1.0]]))
    assert to_numpy(t).dtype == np.float64 and to_numpy(y).shape == (1, 2)
