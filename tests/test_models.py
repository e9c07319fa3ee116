"""Every registered model (vanilla and the three multi-scale stacks): causality, prefix
consistency, finite-difference gradients of every parameter, overfitting one batch,
generation, and clear errors. A model registered later is picked up automatically (with its
default options)."""
import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from minims import backend, to_numpy
from minims.models import MODELS, ModelConfig, build_model, model_from_description
from minims.optim import AdamW

from minims.testing import causality as leak

NAMES = sorted(MODELS)
V, BLOCK = 11, 32
TINY = dict(n_embd=16, n_head=2)


def tiny(name, dtype="float64", block_size=BLOCK, **options):
    model = build_model(name, vocab_size=V, block_size=block_size, dtype=dtype, **{**TINY, **options})
    if dtype == "float64":
        leak.randomize(model, seed=1)
    return model.eval()


def tokens(T, B=2, seed=0):
    return np.random.default_rng(seed).integers(0, V, size=(B, T))


# --- causality: the hypothesis property ------------------------------------------------------

KINDS = dict(pool_kind=st.sampled_from(["mean", "linear", "attention"]),
             upsample_kind=st.sampled_from(["repeat", "linear", "attention"]),
             causal_mode=st.sampled_from(["shift", "delay"]))
ATTENTION = dict(pool_kind=st.just("attention"), upsample_kind=st.just("attention"))


def draw_options(name, draw, kinds=KINDS):
    """Random options of a model: k ∈ {1..4}, 1–2 coarse scales, layouts, windows, kinds
    (drawn from `kinds`)."""
    if name == "vanilla":
        return dict(n_layer=draw(st.integers(1, 2)))
    if name not in ("top-down", "bottom-up", "retina"):
        return {}
    k, S = draw(st.integers(1, 4)), draw(st.integers(1, 2))
    if name == "retina":                                    # (no attention pooling: refused)
        return dict(pool=k, n_scales=S, window=draw(st.integers(1, 8)), band=draw(st.integers(0, 2)),
                    pool_kind=draw(st.sampled_from(["mean", "linear"])), n_layer=draw(st.integers(1, 2)))
    options = {key: draw(strategy) for key, strategy in {**KINDS, **kinds}.items()}
    options.update(pool=k, window=draw(st.sampled_from([0, 1, 2, 5])))
    coarse = [draw(st.integers(1, 2)) for _ in range(S)]
    if name == "top-down":
        counts = coarse + [draw(st.integers(1, 2))]
    else:
        options["combine"] = draw(st.sampled_from(["aggregate", "upsample"]))
        post = draw(st.integers(1 if options["combine"] == "aggregate" else 0, 2))
        counts = [draw(st.integers(0, 1))] + coarse + [post]
    options["layout"] = "-".join(map(str, counts))
    return options


def edge_positions(T, k, S):
    """Where leaks live: the ends and both sides of every block boundary (k, k², …)."""
    edges = {0, T - 1}
    for K in {k ** s for s in range(1, S + 1)}:
        for j in range(0, T + 1, K):
            edges.update({j - 1, j, j + 1})
    return sorted(e for e in edges if 0 <= e < T)


@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=50)
@given(data=st.data())
def test_changing_token_t_changes_no_earlier_logit(name, data):
    """Float64, random O(1) weights, B = 2: invariance (to 1e-12), sensitivity, the exact-zero
    gradient structure, and prefix consistency, at a t biased toward block edges."""
    options = draw_options(name, data.draw)
    model = tiny(name, **options)
    T = data.draw(st.integers(1, BLOCK))
    k, S = options.get("pool", 1), getattr(model.config, "n_scales", 1)
    t = data.draw(st.one_of(st.sampled_from(edge_positions(T, k, S)), st.integers(0, T - 1)))
    idx = tokens(T, seed=data.draw(st.integers(0, 99)))
    leak.check_all(model, idx, t, V)


@pytest.mark.parametrize("name", ["top-down", "bottom-up"])
@settings(max_examples=30)
@given(data=st.data())
def test_attention_pooling_and_upsampling_change_no_earlier_logit(name, data):
    """The property above with Hourglass's attention pooling and upsampling at every scale
    (shift or delay, 1–2 scales, k = 1–4; the property above draws them a third of the time)."""
    options = draw_options(name, data.draw, ATTENTION)
    model = tiny(name, **options)
    T = data.draw(st.integers(1, BLOCK))
    k, S = options["pool"], model.config.n_scales
    t = data.draw(st.one_of(st.sampled_from(edge_positions(T, k, S)), st.integers(0, T - 1)))
    leak.check_all(model, tokens(T, seed=data.draw(st.integers(0, 99))), t, V)


@pytest.mark.parametrize("name,attribute", [("top-down", "pool"), ("bottom-up", "pool")])
def test_the_property_catches_a_planted_leak(name, attribute):
    """The test of the test: switch off the k−1 shift of a model's first pooling (pitfall 1,
    without the delay that would make it causal) and the leak checks must fail."""
    model = tiny(name, pool=4)
    getattr(model, attribute)[0].shift = False
    idx = tokens(16)
    assert leak.find_leak(model, idx, V) is not None
    with pytest.raises(AssertionError, match="leak"):
        for s in range(16):
            leak.check_structure(model, idx, s)


@pytest.mark.parametrize("name,layout", [("top-down", "1-1"), ("top-down", "1-1-1"), ("bottom-up", "0-1-1"),
                                         ("bottom-up", "1-1-1-1")])
@pytest.mark.parametrize("mask,mode,wider", [("pool_sees", "shift", 1), ("pool_sees", "delay", 2),
                                             ("up_sees", "shift", 1), ("up_sees", "delay", 1)])
def test_the_property_catches_an_attention_mask_that_is_too_wide(name, layout, mask, mode, wider, monkeypatch):
    """The test of the test for the attention kinds: the model passes, then with `wider` more
    keys per query in one mask the leak checks fail. pool_sees + 1: coarse j also sees input
    jk+1, the token after the first position j reaches. With the delay, block j reaches only
    positions ≥ jk+k, so with one scale input jk+k would still be causal (the mask stops at
    jk+k−1 because a decoding step pools block j once its own k inputs exist) and jk+k+1 is the
    first that leaks in every layout.
    up_sees + 1: fine i also sees the coarse block after the last one it may see."""
    from minims.nn import pooling
    model = tiny(name, pool=3, layout=layout, causal_mode=mode, pool_kind="attention",
                 upsample_kind="attention", **({"combine": "upsample"} if name == "bottom-up" else {}))
    idx = tokens(20)
    assert leak.find_leak(model, idx, V) is None
    sees = getattr(pooling, mask)
    monkeypatch.setattr(pooling, mask, lambda *args: sees(*args) + wider)
    assert leak.find_leak(model, idx, V) is not None
    with pytest.raises(AssertionError, match="leak"):
        for s in range(20):
            leak.check_structure(model, idx, s)


@pytest.mark.parametrize("name", NAMES)
def test_prefix_consistency_at_every_length(name):
    """What generate relies on: model(x[:, :L]) == model(x)[:, :L] for every L."""
    model = tiny(name, **({} if name == "vanilla" else dict(pool=3)))
    idx = tokens(BLOCK)
    for L in range(1, BLOCK + 1, 3):
        leak.check_prefix(model, idx, L)


# --- gradients of every parameter against central differences --------------------------------

GRAD_OPTIONS = {
    "vanilla": [dict(n_layer=2)],
    "top-down": [dict(pool=2, layout="1-1", window=2),
                 dict(pool=2, layout="1-1-1", pool_kind="linear", upsample_kind="linear", causal_mode="delay"),
                 dict(pool=2, layout="1-1-1", pool_kind="attention", upsample_kind="attention"),
                 dict(pool=3, layout="1-1", pool_kind="attention", upsample_kind="attention",
                      causal_mode="delay")],
    "bottom-up": [dict(pool=2, layout="1-1-2", window=3),
                  dict(pool=2, layout="0-1-1-1", combine="upsample", pool_kind="linear",
                       upsample_kind="linear", causal_mode="delay"),
                  dict(pool=2, layout="1-1-1-1", combine="upsample", pool_kind="attention",
                       upsample_kind="attention"),
                  dict(pool=3, layout="0-1-1", combine="aggregate", pool_kind="attention", causal_mode="delay"),
                  dict(pool=3, layout="0-1-1", combine="upsample", pool_kind="attention",
                       upsample_kind="attention", causal_mode="delay")],
    "retina": [dict(pool=2, window=2, n_layer=2, n_scales=1, pool_kind="mean"),
               dict(pool=2, n_scales=2, window=1, band=1, pool_kind="linear", n_layer=1)],
}
GRAD_CASES = [(name, options) for name in NAMES for options in GRAD_OPTIONS.get(name, [{}])]


@pytest.mark.parametrize("name,options", GRAD_CASES, ids=[f"{n}-{i}" for i, (n, _) in enumerate(GRAD_CASES)])
def test_every_parameter_gradient_matches_central_differences(name, options):
    """For each parameter p, a random direction d over ALL its entries:
    (L(p + εd) − L(p − εd)) / 2ε == ⟨∂L/∂p, d⟩ in float64; and no parameter is left without
    a gradient."""
    model = build_model(name, vocab_size=7, block_size=16, dtype="float64", n_embd=8, n_head=2, **options)
    leak.randomize(model, seed=2, std=0.7)
    model.eval()
    idx, targets = tokens(11, seed=3) % 7, tokens(11, seed=4) % 7
    _, loss = model(idx, targets)
    loss.backward()
    rng, eps = np.random.default_rng(0), 1e-6

    def loss_at(p, value):
        saved, p.data = p.data, value
        try:
            return model(idx, targets)[1].item()
        finally:
            p.data = saved

    for pname, p in model.named_parameters():
        assert p.grad is not None and np.abs(to_numpy(p.grad)).max() > 0, f"{pname} gets no gradient"
        d = rng.standard_normal(p.shape)
        step = backend.asarray(eps * d)
        numeric = (loss_at(p, p.data + step) - loss_at(p, p.data - step)) / (2 * eps)
        analytic = float(np.sum(to_numpy(p.grad) * d))
        assert abs(numeric - analytic) <= 1e-8 + 1e-6 * max(abs(numeric), abs(analytic)), \
            f"{pname}: analytic {analytic!r} vs central difference {numeric!r}"


# --- learning -----------------------------------------------------------------------------------

OVERFIT_OPTIONS = {"retina": dict(window=4)}


@pytest.mark.parametrize("name", NAMES)
def test_overfits_one_batch(name):
    rng = np.random.default_rng(0)
    stream = rng.integers(0, 16, size=(2, 17))
    stream[1, 0] = (stream[0, 0] + 1) % 16                            # rows differ from the start
    x, y = stream[:, :-1], stream[:, 1:]
    model = build_model(name, vocab_size=16, block_size=16, n_embd=32, n_head=2,
                        **OVERFIT_OPTIONS.get(name, {}))
    opt = AdamW(model.parameters(), lr=1e-2, weight_decay=0.0)
    for step in range(300):
        _, loss = model(x, y)
        if loss.item() < 0.05:
            break
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.1, f"{name} did not overfit one batch: loss {loss.item():.3f} after {step} steps"


def test_first_loss_is_about_ln_vocab():
    for name in NAMES:
        _, loss = build_model(name, vocab_size=50, block_size=32)(tokens(32), tokens(32, seed=1))
        assert abs(loss.item() - np.log(50)) < 0.1, name


# --- generation ---------------------------------------------------------------------------------

@pytest.mark.parametrize("name", NAMES)
def test_generate_any_length_reproducibly(name):
    model = tiny(name, dtype="float32")
    for L in (1, 7, BLOCK - 3):                                       # the last one crops the context
        prompt = tokens(L)
        out = model.generate(prompt, max_new_tokens=8, seed=3)
        assert out.shape == (2, L + 8) and (out[:, :L] == prompt).all()
        assert out.min() >= 0 and out.max() < V
        np.testing.assert_array_equal(out, model.generate(prompt, max_new_tokens=8, seed=3))


# --- errors, names and configs ----------------------------------------------------------------------

@pytest.mark.parametrize("name", NAMES)
def test_too_long_input_and_out_of_vocab_ids_are_errors(name):
    model = tiny(name, dtype="float32")
    with pytest.raises(ValueError, match="block_size"):
        model(tokens(BLOCK + 1))
    bad = tokens(5)
    bad[1, 2] = V
    with pytest.raises(ValueError, match="token ids"):
        model(bad)


def test_unknown_model_lists_the_choices_and_underscores_work():
    with pytest.raises(ValueError) as err:
        build_model("sideways", vocab_size=V, block_size=BLOCK)
    for name in NAMES:
        assert name in str(err.value)
    for name in ("top_down", "bottom_up", "Top-Down"):
        assert build_model(name, vocab_size=V, block_size=BLOCK).name == name.lower().replace("_", "-")
    assert {"vanilla", "top-down", "bottom-up", "retina"} <= set(MODELS)


@pytest.mark.parametrize("name", NAMES)
def test_config_fields_have_help_and_survive_a_checkpoint(name):
    model = build_model(name, vocab_size=V, block_size=BLOCK, **TINY)
    base = {f.name for f in dataclasses.fields(ModelConfig)}
    for f in dataclasses.fields(model.Config):
        if f.name not in base:
            assert f.metadata.get("help"), f"{name}.{f.name} has no help text"
            assert isinstance(f.default, (int, float, str, bool))
    again = model_from_description(model.describe())
    assert again.config == model.config
    for (n1, p1), (n2, p2) in zip(model.named_parameters(), again.named_parameters()):
        assert n1 == n2 and np.array_equal(p1.numpy(), p2.numpy())


@pytest.mark.parametrize("name,options,match", [
    ("top-down", dict(layout="2-x"), "layout"),
    ("top-down", dict(layout="3"), "at least 2"),
    ("top-down", dict(layout="0-2"), "at least one layer"),
    ("bottom-up", dict(layout="1-2"), "at least 3"),
    ("bottom-up", dict(layout="1-2-0", combine="aggregate"), "post >= 1"),
    ("bottom-up", dict(layout="1-0-2"), "every coarse scale"),
    ("top-down", dict(pool=0), "integer >= 1"),
    ("retina", dict(pool=4, n_scales=3), "exceeds block_size"),
    ("bottom-up", dict(pool_kind="max"), "pool_kind"),
    ("retina", dict(pool_kind="attention"), "not 'attention'"),
    ("top-down", dict(upsample_kind="nearest"), "upsample_kind"),
    ("top-down", dict(causal_mode="none"), "causal_mode"),
    ("bottom-up", dict(combine="concat"), "combine"),
    ("top-down", dict(window=-1), "window"),
    ("retina", dict(window=0), "window"),
    ("top-down", dict(n_layer=2, n_scales=2), "too shallow"),
])
def test_bad_configs_are_clear_errors(name, options, match):
    with pytest.raises(ValueError, match=match):
        build_model(name, vocab_size=V, block_size=BLOCK, **options)


def test_layouts_set_and_follow_the_depth():
    cfg = lambda name, **o: build_model(name, vocab_size=V, block_size=256, **TINY, **o).config  # noqa: E731
    assert (cfg("bottom-up", layout="2-8-2").n_layer, cfg("bottom-up", layout="2-8-2").n_scales) == (12, 1)
    assert (cfg("top-down", layout="1-2-3").n_layer, cfg("top-down", layout="1-2-3").n_scales) == (6, 2)
    assert cfg("top-down", n_layer=6).layout == "3-3"
    assert cfg("top-down", n_layer=5, n_scales=2).layout == "1-1-3"
    assert cfg("bottom-up", combine="aggregate").layout == "0-2-2"
    assert cfg("bottom-up", n_layer=12, combine="upsample").layout == "3-6-3"
    assert cfg("bottom-up", n_layer=8, n_scales=2, combine="aggregate").layout == "0-3-3-2"


def test_retina_with_a_window_covering_the_context_is_the_vanilla_model():
    """Same seed and parameter names: a window ≥ T means full attention, so the logits agree
    (a cross-check of RangeAttention against the dense attention op)."""
    idx = tokens(20)
    a = build_model("vanilla", vocab_size=V, block_size=BLOCK, dtype="float64", **TINY)
    b = build_model("retina", vocab_size=V, block_size=BLOCK, dtype="float64", window=BLOCK, pool_kind="mean",
                    **TINY)
    np.testing.assert_allclose(leak.logits_of(b, idx), leak.logits_of(a, idx), rtol=1e-10, atol=1e-12)
