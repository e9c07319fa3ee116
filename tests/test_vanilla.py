"""The vanilla model and the Module machinery (the optimizers: tests/test_optim.py).

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
    from minims.testing.torch_gpt import torch_gpt
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
