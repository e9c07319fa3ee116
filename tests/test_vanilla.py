"""The vanilla model, the Module machinery and the optimizers (issue: layers + baseline).

The model-generic properties (causality, parameter gradients, overfitting one batch) are
checked for every registered model in tests/test_models.py; here: what is specific to the
baseline and to the building blocks, plus PyTorch as an optional oracle.
"""
import math

import numpy as np
import pytest

import minims
from minims.models import MODELS, build_model
from minims.nn import Linear, Module
from minims.optim import SGD, AdamW, clip_grad_norm, cosine_lr, decays

V, T = 23, 12


def tiny(**kw):
    options = dict(n_layer=2, n_head=2, n_embd=16, dtype="float64", seed=3)
    options.update(kw)
    return build_model("vanilla", vocab_size=V, block_size=T, **options)


def batch(B=3, seed=0):
    idx = np.random.default_rng(seed).integers(0, V, size=(B, T + 1))
    return idx[:, :-1], idx[:, 1:]


def test_registry_and_defaults():
    assert "vanilla" in MODELS
    model = build_model("vanilla", vocab_size=V, block_size=T)      # defaults suffice
    x, _ = batch()
    logits, loss = model(x)
    assert logits.shape == (3, T, V) and loss is None and logits.dtype == np.float32
    with pytest.raises(ValueError, match="vanilla"):
        build_model("nope", vocab_size=V, block_size=T)
    with pytest.raises(ValueError, match="unknown option"):
        build_model("vanilla", vocab_size=V, block_size=T, pool=4)


def test_stable_parameter_names():
    names = [n for n, _ in tiny().named_parameters()]
    assert names[:3] == ["wte.weight", "wpe.weight", "blocks.0.ln1.weight"]
    assert "blocks.1.attn.qkv.weight" in names and names[-1] == "lm_head.weight"
    assert len(names) == len(set(names))


def test_same_seed_same_weights_and_first_loss_near_log_v():
    a, b, c = tiny(seed=1), tiny(seed=1), tiny(seed=2)
    for (na, pa), (_, pb), (_, pc) in zip(a.named_parameters(), b.named_parameters(), c.named_parameters()):
        np.testing.assert_array_equal(pa.numpy(), pb.numpy())
    assert not np.array_equal(a.lm_head.weight.numpy(), c.lm_head.weight.numpy())
    x, y = batch()
    _, loss = a(x, y)
    assert abs(loss.item() - math.log(V)) < 0.1, "a fresh model should predict ~uniformly"


def test_state_dict_round_trip_and_mismatch():
    a, b = tiny(seed=1), tiny(seed=2)
    x, _ = batch()
    b.load_state_dict(a.state_dict())
    np.testing.assert_array_equal(a(x)[0].numpy(), b(x)[0].numpy())
    state = a.state_dict()
    state["blocks.0.mlp.fc.weight"] = np.zeros((3, 3))
    with pytest.raises(ValueError, match=r"blocks\.0\.mlp\.fc\.weight"):
        b.load_state_dict(state)
    state = a.state_dict()
    del state["ln_f.bias"]
    with pytest.raises(ValueError, match=r"ln_f\.bias"):
        b.load_state_dict(state)
    state = a.state_dict()
    state["extra.weight"] = np.zeros(2)
    with pytest.raises(ValueError, match=r"extra\.weight"):
        b.load_state_dict(state)


def test_bad_inputs_are_clear_errors():
    model = tiny()
    with pytest.raises(ValueError, match="block_size"):
        model(np.zeros((1, T + 1), dtype=np.int64))
    with pytest.raises(ValueError, match="token ids"):
        model(np.full((1, 4), V, dtype=np.int64))
    with pytest.raises(ValueError, match=r"\(B, T\)"):
        model(np.zeros(4, dtype=np.int64))
    with pytest.raises(ValueError, match="divisible"):
        build_model("vanilla", vocab_size=V, block_size=T, n_embd=10, n_head=3)


def test_train_eval_and_dropout():
    model = tiny(dropout=0.5)
    x, _ = batch()
    model.eval()
    assert not any(m.training for _, m in model.named_modules())
    np.testing.assert_array_equal(model(x)[0].numpy(), model(x)[0].numpy())
    model.train()
    assert not np.array_equal(model(x)[0].numpy(), model(x)[0].numpy())


def test_generate_reproducible_and_cropped():
    model = tiny()
    x, _ = batch(B=2)
    a = model.generate(x[:, :3], max_new_tokens=T + 5, seed=7)   # longer than block_size
    b = model.generate(x[:, :3], max_new_tokens=T + 5, seed=7)
    assert a.shape == (2, 3 + T + 5)
    np.testing.assert_array_equal(a, b)
    assert model.training, "generate restores the training mode"
    long_prompt = np.concatenate([x, x], axis=1)                  # 2·block_size: cropped
    assert model.generate(long_prompt, max_new_tokens=2, seed=0).shape == (2, 2 * T + 2)
    c = model.generate(x[:, :3], max_new_tokens=5, top_k=1, seed=1)
    d = model.generate(x[:, :3], max_new_tokens=5, top_k=1, seed=2)
    np.testing.assert_array_equal(c, d)                           # top-1 is greedy


# --- optimizers -------------------------------------------------------------------------

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


def test_module_rejects_mismatched_names_in_custom_module():
    class Two(Module):
        def __init__(self):
            super().__init__()
            self.a = Linear(2, 2)
    m = Two()
    assert [n for n, _ in m.named_parameters()] == ["a.weight", "a.bias"]


# --- PyTorch as the oracle (optional) ---------------------------------------------------------

def test_same_logits_loss_and_grads_as_pytorch():
    torch = pytest.importorskip("torch")
    from minims.torch_gpt import torch_gpt
    model = tiny(n_layer=3, n_head=4, n_embd=32)
    x, y = batch()
    logits, loss = model(x, y)
    loss.backward()
    params, forward = torch_gpt(model.state_dict(), n_head=4, dtype="float64")
    tlogits, tloss = forward(torch.tensor(x), torch.tensor(y))
    tloss.backward()
    np.testing.assert_allclose(logits.numpy(), tlogits.detach().numpy(), atol=1e-10)
    assert loss.item() == pytest.approx(tloss.item(), abs=1e-10)
    for name, p in model.named_parameters():
        np.testing.assert_allclose(minims.to_numpy(p.grad), params[name].grad.numpy(),
                                   atol=1e-10, err_msg=name)


def test_adamw_matches_pytorch():
    torch = pytest.importorskip("torch")
    from minims.torch_gpt import torch_adamw, torch_gpt
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
