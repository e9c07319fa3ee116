"""`minims.testing.causality`, the black-box leak check a user runs on a new model: every registered
model passes it, and models that leak (a future token, another row of the batch) or that
never read their own token fail it, with a message naming the first bad t."""
import numpy as np
import pytest

from minims.testing.causality import assert_causal, causality_report
from minims.models import MODELS, build_model
from minims.models.vanilla import VanillaLM
from minims.functional import shift_right, shorten, upsample

from minims.testing import causality as leak

V, T = 11, 12
TINY = dict(n_embd=16, n_head=2, dtype="float64")
# Options that give each multi-scale model block edges inside T = 12 (a model registered
# later is built with its defaults).
OPTIONS = {
    "vanilla": dict(n_layer=2),
    "top-down": dict(layout="1-1-1", pool=2),                    # blocks of 2 and 4
    "bottom-up": dict(layout="0-1-1", pool=3),                   # blocks of 3, aggregation
    "retina": dict(n_layer=2, pool=2, n_scales=2, window=3, band=1),
}


def tokens(B=2, seed=0):
    return np.random.default_rng(seed).integers(0, V, size=(B, T))


def randomized(model):
    """O(1) random weights (small initial ones can hide a leak), in eval mode."""
    return leak.randomize(model, seed=1).eval()


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_registered_model_is_causal(name):
    model = randomized(build_model(name, vocab_size=V, block_size=T, **TINY, **OPTIONS.get(name, {})))
    report = assert_causal(model, tokens())
    assert report.shape == (T, 3)
    assert (report[:, [0, 2]] == 0.0).all() and (report[:, 1] > 0.0).all()


def test_report_shape_and_mode_restored():
    model = build_model("vanilla", vocab_size=V, block_size=T, n_layer=1, **TINY)
    model.train()
    report = causality_report(model, tokens(B=3))
    assert report.shape == (T, 3)
    assert model.training, "causality_report must restore the training mode"
    assert report[0, 0] == 0.0, "nothing lies before t = 0"


def test_needs_a_control_row():
    model = build_model("vanilla", vocab_size=V, block_size=T, n_layer=1, **TINY)
    with pytest.raises(ValueError, match="at least 2 rows"):
        causality_report(model, tokens(B=1))


# --- models that break the rules --------------------------------------------------------------

class NoShiftPool(VanillaLM):
    """Pitfall 1: mean-pool blocks of 2 *without* the k−1 shift and add them back, so position
    2j sees token 2j+1."""

    def logits(self, idx):
        x = self.embed(idx)
        x = x + upsample(shorten(x, 2, shift=False), 2)
        for block in self.blocks:
            x = block(x)
        return self.head(x)


class BatchMean(VanillaLM):
    """Statistics over the wrong axis: every row gets the mean over the batch."""

    def logits(self, idx):
        x = self.embed(idx)
        return self.head(x + x.mean(axis=0, keepdims=True))


class OverShifted(VanillaLM):
    """A double label shift: position t sees tokens < t only, never its own."""

    def logits(self, idx):
        return self.head(shift_right(self.embed(idx), 1))


def broken(cls):
    return randomized(cls(VanillaLM.Config(vocab_size=V, block_size=T, n_layer=1, **TINY)))


def test_a_future_token_leak_fails():
    with pytest.raises(AssertionError, match=r"^leak at t=1: .* before 1"):
        assert_causal(broken(NoShiftPool), tokens())


def test_a_leak_across_the_batch_fails():
    with pytest.raises(AssertionError, match=r"^leak across the batch at t=0"):
        assert_causal(broken(BatchMean), tokens())


def test_a_model_that_ignores_its_own_token_fails():
    with pytest.raises(AssertionError, match=r"logits at t=0 do not depend on token 0"):
        assert_causal(broken(OverShifted), tokens())

