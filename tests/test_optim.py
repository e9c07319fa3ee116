"""minims/optim.py: AdamW, SGD, gradient clipping and the cosine schedule (PyTorch as an
optional oracle for AdamW)."""
import math

import numpy as np
import pytest

import minims
from minims.nn import Linear
from minims.optim import SGD, AdamW, clip_grad_norm, cosine_lr, decays

from test_vanilla import batch, tiny  # noqa: E402  (the same tiny vanilla model and batches)


def test_weight_decay_only_on_matrices():
    model = tiny()
    decayed = {n for n, p in model.named_parameters() if decays(p)}
    assert "blocks.0.attn.qkv.weight" in decayed and "wte.weight" in decayed
    assert "wpe.weight" not in decayed and "blocks.0.ln1.weight" not in decayed
    assert not any(n.endswith(".bias") for n in decayed)


def test_adamw_decay_with_zero_gradient():
    lin = Linear(3, 2)
    for p in lin.parameters():
        p.data = p.data.astype(np.float64) + 1.0
    opt = AdamW(lin.parameters(), lr=0.1, weight_decay=0.5)
    for p in lin.parameters():
        p.grad = np.zeros_like(p.data)
    w, b = lin.weight.numpy().copy(), lin.bias.numpy().copy()
    opt.step()
    np.testing.assert_allclose(lin.weight.numpy(), w * (1 - 0.1 * 0.5))
    np.testing.assert_allclose(lin.bias.numpy(), b)


def test_optimizer_state_round_trip_is_exact():
    x, y = batch()

    def run(steps, resume_after=None):
        model = tiny()
        opt = AdamW(model.parameters(), lr=1e-2)
        for i in range(steps):
            if i == resume_after:
                state, weights = opt.state_dict(), model.state_dict()
                model = tiny(seed=99)
                model.load_state_dict(weights)
                opt = AdamW(model.parameters(), lr=1e-2)
                opt.load_state_dict(state)
            _, loss = model(x, y)
            model.zero_grad()
            loss.backward()
            opt.step()
        return model.state_dict()

    straight, resumed = run(6), run(6, resume_after=3)
    for name in straight:
        np.testing.assert_array_equal(straight[name], resumed[name])


def test_clip_grad_norm_is_global():
    a, b = minims.Tensor([3.0], requires_grad=True), minims.Tensor([4.0], requires_grad=True)
    a.grad, b.grad = np.array([3.0], np.float32), np.array([4.0], np.float32)
    norm = clip_grad_norm([a, b], 1.0)
    assert norm == pytest.approx(5.0)
    assert math.hypot(a.grad[0], b.grad[0]) == pytest.approx(1.0, rel=1e-5)
    np.testing.assert_allclose(a.grad / b.grad, 0.75, rtol=1e-6)


def test_cosine_schedule():
    kw = dict(lr=1.0, min_lr=0.1, warmup_iters=10, max_iters=110)
    assert cosine_lr(0, **kw) == pytest.approx(0.1)
    assert cosine_lr(9, **kw) == pytest.approx(1.0)
    assert cosine_lr(10, **kw) == pytest.approx(1.0)
    assert cosine_lr(60, **kw) == pytest.approx(0.55)
    assert cosine_lr(110, **kw) == pytest.approx(0.1) and cosine_lr(500, **kw) == 0.1
    values = [cosine_lr(i, **kw) for i in range(10, 111)]
    assert all(u >= v for u, v in zip(values, values[1:]))


def test_sgd_momentum():
    p = minims.Tensor([1.0], requires_grad=True, dtype=np.float64)
    opt = SGD([p], lr=0.1, momentum=0.9)
    for _ in range(2):
        p.grad = np.array([1.0])
        opt.step()
    np.testing.assert_allclose(p.numpy(), [1.0 - 0.1 - 0.1 * 1.9])


def test_adamw_matches_pytorch():
    torch = pytest.importorskip("torch")
    from minims.testing.torch_gpt import torch_adamw, torch_gpt
    model = tiny()
    x, y = batch()
    params, forward = torch_gpt(model.state_dict(), n_head=2, dtype="float64")
    opt, topt = AdamW(model.parameters(), lr=1e-2), torch_adamw(params, lr=1e-2)
    for _ in range(3):
        _, loss = model(x, y)
        model.zero_grad()
        loss.backward()
        opt.step()
        _, tloss = forward(torch.tensor(x), torch.tensor(y))
        topt.zero_grad()
        tloss.backward()
        topt.step()
    for name, p in model.named_parameters():
        np.testing.assert_allclose(p.numpy(), params[name].detach().numpy(), atol=1e-9, err_msg=name)


# --- state per parameter: each parameter counts its own steps -----------------------------

def _params(*values):
    return [minims.Tensor(np.asarray(v, dtype=np.float64), requires_grad=True) for v in values]


def test_adamw_bias_correction_uses_each_parameters_own_step_count():
    """The issue's example: q has no gradient at step 1, so its first update (step 2) is
    Adam's first step, bias-corrected for t = 1: m̂ = g, v̂ = g², q moves by lr·g/(|g| + eps)."""
    p, q = _params([1.0, -2.0], [0.5, 3.0])
    opt = AdamW([p, q], lr=0.1, weight_decay=0.0)
    p.grad = np.array([0.3, -0.2])
    opt.step()
    np.testing.assert_array_equal(q.numpy(), [0.5, 3.0])          # no gradient: untouched
    g = np.array([2.0, -0.5])
    p.grad, q.grad = np.array([0.1, 0.1]), g
    opt.step()
    np.testing.assert_allclose(q.numpy(), np.array([0.5, 3.0]) - 0.1 * g / (np.abs(g) + 1e-8),
                               rtol=1e-14)
    assert opt.steps == [2, 1] and opt.step_count == 2


def test_a_parameter_without_gradient_is_left_untouched_decay_included():
    p, q = _params(np.ones((2, 2)), np.ones((2, 2)))                # matrices: both decay
    opt = AdamW([p, q], lr=0.1, weight_decay=0.5)
    for _ in range(3):
        p.grad = np.full((2, 2), 0.5)
        opt.step()
    np.testing.assert_array_equal(q.numpy(), np.ones((2, 2)))
    assert not opt.m[1].any() and not opt.v[1].any() and opt.steps == [3, 0]
    assert (p.numpy() != 1).all()


def test_adamw_with_gradients_that_come_and_go_matches_pytorch():
    torch = pytest.importorskip("torch")
    values = [np.random.default_rng(s).standard_normal((3, 2)) for s in range(2)]
    ours = _params(*values)
    theirs = [torch.tensor(v, requires_grad=True) for v in values]
    opt = AdamW(ours, lr=0.05, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1)
    topt = torch.optim.AdamW(theirs, lr=0.05, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1)
    rng = np.random.default_rng(7)
    for which in ([0], [0, 1], [1], [], [0, 1], [1]):
        for i, (a, b) in enumerate(zip(ours, theirs)):
            g = rng.standard_normal((3, 2))
            a.grad = g if i in which else None
            b.grad = torch.from_numpy(g.copy()) if i in which else None
        opt.step()
        topt.step()
        for a, b in zip(ours, theirs):
            np.testing.assert_allclose(a.numpy(), b.detach().numpy(), rtol=1e-13, atol=1e-15)
    assert opt.steps == [int(topt.state[b]["step"]) for b in theirs] == [3, 4]


def _train(steps, save_after=None, path=None, old_format=False, frozen_until=2):
    """AdamW on the tiny model; the last layer norm gets no gradient for the first
    `frozen_until` steps. Optionally saved to a checkpoint after `save_after` steps (in the
    format written before per-parameter steps, with `old_format`) and resumed from it in a
    fresh model and optimizer. Returns the final weights."""
    from minims import checkpoint
    x, y = batch()
    model = tiny()
    opt = AdamW(model.parameters(), lr=1e-2)
    for i in range(steps):
        if i == save_after:
            state = opt.state_dict()
            if old_format:  # what the optimizer wrote before: the global "step" only
                del state["steps"]
            checkpoint.save(path, {}, model.state_dict(), state)
            loaded = checkpoint.load(path)
            model = tiny(seed=99)
            model.load_state_dict(loaded["model"])
            opt = AdamW(model.parameters(), lr=1e-2)
            opt.load_state_dict(loaded["optim"])
            assert opt.steps == [save_after if old_format or not n.startswith("ln_f") else
                                 save_after - frozen_until for n, _ in model.named_parameters()]
        _, loss = model(x, y)
        model.zero_grad()
        loss.backward()
        if i < frozen_until:
            model.ln_f.weight.grad = model.ln_f.bias.grad = None
        opt.step()
    return model.state_dict()


def test_checkpoints_keep_the_steps_per_parameter(tmp_path):
    straight = _train(6)
    resumed = _train(6, save_after=3, path=tmp_path / "ckpt.npz")
    for name in straight:
        np.testing.assert_array_equal(straight[name], resumed[name], err_msg=name)


def test_checkpoints_from_before_per_parameter_steps_load_and_resume_exactly(tmp_path):
    """A checkpoint of the old format (one global "step", no "steps") resumes every parameter
    from the global count, which is what that run used: with every parameter trained at
    every step, as runs were, the result is bit for bit the uninterrupted run's."""
    straight = _train(6, frozen_until=0)
    resumed = _train(6, save_after=3, path=tmp_path / "old.npz", old_format=True, frozen_until=0)
    for name in straight:
        np.testing.assert_array_equal(straight[name], resumed[name], err_msg=name)


def test_optimizer_state_with_a_wrong_number_of_steps_is_refused():
    p, q = _params([1.0], [2.0])
    state = AdamW([p, q]).state_dict()
    state["steps"] = state["steps"][:1]
    with pytest.raises(ValueError, match="buffer 'steps' is missing or has a different number"):
        AdamW([p, q]).load_state_dict(state)


def test_sgd_counts_steps_per_parameter_too():
    p, q = _params([1.0], [2.0])
    opt = SGD([p, q], lr=0.1, momentum=0.9)
    p.grad = np.array([1.0])
    opt.step()
    q.grad = np.array([1.0])
    opt.step()
    assert opt.steps == [2, 1] and [int(n) for n in opt.state_dict()["steps"]] == [2, 1]
    np.testing.assert_allclose(q.numpy(), [2.0 - 0.1])               # its first momentum step
