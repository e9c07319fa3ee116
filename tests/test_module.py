"""minims/nn/module.py: every layer is initialised on its own, whatever the order of creation."""
import numpy as np
import pytest

from minims.models.base import LanguageModel, ModelConfig
from minims.nn import Block, Embedding, LayerNorm, Linear, Module, init_parameters


def _weights(module):
    return module.state_dict()


def test_a_linear_layer_alone_has_seeded_nonzero_weights():
    layer = Linear(3, 4)
    w = layer.weight.numpy()
    assert w.shape == (3, 4) and np.all(w != 0)
    assert 0.005 < w.std() < 0.05                          # N(0, 0.02²), not something else
    np.testing.assert_array_equal(layer.bias.numpy(), np.zeros(4))
    np.testing.assert_array_equal(Linear(3, 4).weight.numpy(), w)   # same seed, same weights
    np.testing.assert_array_equal(init_parameters(Linear(3, 4), seed=0).weight.numpy(), w)
    assert not np.array_equal(init_parameters(Linear(3, 4), seed=1).weight.numpy(), w)


def test_every_layer_alone_is_initialised():
    assert np.all(Embedding(5, 3).weight.numpy() != 0)
    np.testing.assert_array_equal(LayerNorm(3).weight.numpy(), np.ones(3))
    block = Block(8, 2)
    for name, value in block.state_dict().items():
        if name.endswith("weight") and not name.startswith("ln"):
            assert np.all(value != 0), name


class _Late(LanguageModel):
    """A model that creates a layer after add_head (and one more in the middle)."""

    def __init__(self, config, order):
        super().__init__(config)
        self.add_embeddings()
        if order == "head first":
            self.add_head()
            self.extra = Linear(config.n_embd, config.n_embd)
        else:
            self.extra = Linear(config.n_embd, config.n_embd)
            self.add_head()

    def logits(self, idx):
        return self.head(self.extra(self.embed(idx)))


@pytest.mark.parametrize("order", ["head first", "head last"])
def test_a_layer_added_to_a_model_in_any_order_is_initialised(order):
    config = ModelConfig(vocab_size=7, block_size=4, n_embd=8, n_head=2, seed=3)
    model = _Late(config, order)
    assert np.all(model.extra.weight.numpy() != 0)
    # every weight is the model seed's draw, as if init_parameters ran after construction
    expected = _weights(init_parameters(_Late(config, order), seed=3))
    for name, value in _weights(model).items():
        np.testing.assert_array_equal(value, expected[name], err_msg=name)
    # and the same seed gives the same weights on every construction
    again = _weights(_Late(config, order))
    assert all(np.array_equal(again[n], v) for n, v in _weights(model).items())


def test_initialising_inside_a_constructor_is_kept():
    """A module that draws its own weights (seed, dtype) while being built keeps them; only
    what it creates afterwards is drawn at the end of construction."""

    class Own(Module):
        def __init__(self):
            super().__init__()
            self.a = Linear(2, 2)
            init_parameters(self, seed=5, dtype="float64")
            self.b = Linear(2, 2)

    m = Own()
    assert m.a.weight.dtype == np.float64
    own = init_parameters(Linear(2, 2), seed=5, dtype="float64")
    np.testing.assert_array_equal(m.a.weight.numpy(), own.weight.numpy())
    assert np.all(m.b.weight.numpy() != 0)


def test_loaded_weights_are_not_redrawn():
    src = Linear(3, 4)
    init_parameters(src, seed=9)
    dst = Linear(3, 4)
    dst.load_state_dict(src.state_dict())
    init_parameters(dst, only_undrawn=True)
    np.testing.assert_array_equal(dst.weight.numpy(), src.weight.numpy())


@pytest.mark.parametrize("start", [True, False])
def test_eval_mode_restores_the_previous_mode_even_after_an_error(start):
    block = Block(8, 2, dropout=0.5).train(start)
    with block.eval_mode():
        assert not block.training and not block.mlp.drop.training
    assert block.training is start and block.mlp.drop.training is start
    with pytest.raises(RuntimeError):
        with block.eval_mode():
            raise RuntimeError("inside")
    assert block.training is start and block.attn.training is start
