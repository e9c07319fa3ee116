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
