"""Incremental decoding (`prefill`, then one `step` per token) against the full forward pass.

For every registered model and option, in float64 with random O(1) weights: the logits of
each cached step equal the last row of a forward pass over the same tokens to 1e-10, from
any prompt length, at every offset inside a block, across block boundaries at every scale
and past block_size (where the context slides and the cache re-prefills); the same seed
samples the same text with and without the cache; generate's arguments are checked.
"""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from minims import backend, to_numpy
from minims.engine import no_grad
from minims.models import MODELS, build_model
from minims import sampling
from minims.sampling import slide_context

from minims.testing import causality as leak
from test_models import draw_options

NAMES = sorted(MODELS)
V = 11
TINY = dict(n_embd=8, n_head=2)


def tiny(name, block_size, **options):
    model = build_model(name, vocab_size=V, block_size=block_size, dtype="float64", **TINY, **options)
    return leak.randomize(model, seed=1).eval()


def draw_model(name, draw, max_block=20):
    """A model with random options (as the causality property draws them) and a block_size
    from pool^n_scales up to max_block."""
    options = draw_options(name, draw)
    k, S = options.get("pool", 1), 1
    if "layout" in options:
        S = len(options["layout"].split("-")) - (1 if name == "top-down" else 2)
    else:
        S = options.get("n_scales", 1)
    block = draw(st.integers(max(2, k ** S), max(max_block, k ** S)))
    return tiny(name, block, **options)


def check_decoding(model, tokens, prompt, slide=1):
    """Feed `tokens` (B, N) one at a time after a prompt of `prompt` tokens, with the context
    generate keeps (past block_size it drops the oldest `slide` tokens at once); every cached
    logit row must equal the last row of the full forward pass over that context. Returns
    how many steps were checked."""
    cache, context = None, tokens[:, :prompt]
    for end in range(prompt, tokens.shape[1] + 1):
        if end > prompt:
            context = slide_context(tokens[:, end - context.shape[1] - 1:end], model.config.block_size, slide)
        logits, cache = model.next_logits(context, cache)
        with no_grad():
            full = model(context)[0].numpy()[:, -1]
        np.testing.assert_allclose(to_numpy(logits), full, rtol=1e-10, atol=1e-10,
                                   err_msg=f"tokens {end}, prompt {prompt}, slide {slide}")
    return tokens.shape[1] + 1 - prompt


@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=20, deadline=None)
@given(data=st.data())
def test_each_cached_step_equals_the_full_forward(name, data):
    model = draw_model(name, data.draw)
    block = model.config.block_size
    n = data.draw(st.integers(1, 2 * block + 2))                      # past block_size too
    prompt = data.draw(st.integers(1, min(n, block)))
    slide = data.draw(st.sampled_from(sorted({1, 2, max(1, block // 2), block} - {0})))
    tokens = np.random.default_rng(data.draw(st.integers(0, 99))).integers(0, V, size=(2, n))
    check_decoding(model, tokens, prompt, min(slide, block))


# Deterministic cases that cover every offset inside the blocks of every scale: k = 3 with
# two scales (blocks of 3 and 9), every prompt length, and 3 tokens past block_size.
EVERY_OFFSET = {
    "vanilla": [dict(n_layer=2)],
    "top-down": [dict(pool=3, layout="1-1-1"),
                 dict(pool=3, layout="1-1-1", causal_mode="delay", pool_kind="linear",
                      upsample_kind="linear", window=2),
                 dict(pool=3, layout="1-1-1", pool_kind="attention", upsample_kind="attention"),
                 dict(pool=3, layout="1-1-1", causal_mode="delay", pool_kind="attention",
                      upsample_kind="attention", window=2)],
    "bottom-up": [dict(pool=3, layout="1-1-1-1"),
                  dict(pool=3, layout="0-1-1-1", combine="upsample", causal_mode="delay",
                       pool_kind="linear", upsample_kind="linear", window=4),
                  dict(pool=3, layout="1-1-1-1", combine="upsample", pool_kind="attention",
                       upsample_kind="attention"),
                  dict(pool=3, layout="0-1-1-1", combine="upsample", causal_mode="delay",
                       pool_kind="attention", upsample_kind="attention"),
                  dict(pool=3, layout="0-1-1-1", combine="aggregate", causal_mode="delay",
                       pool_kind="attention")],
    "retina": [dict(pool=3, n_scales=2, window=2, band=1, n_layer=2),
               dict(pool=3, n_scales=2, window=4, band=0, pool_kind="linear", n_layer=1)],
}
OFFSET_CASES = [(name, options) for name in NAMES for options in EVERY_OFFSET.get(name, [{}])]


@pytest.mark.parametrize("name,options", OFFSET_CASES,
                         ids=[f"{n}-{i}" for i, (n, _) in enumerate(OFFSET_CASES)])
def test_every_prompt_length_and_offset_and_past_block_size(name, options):
    model = tiny(name, block_size=12, **options)
    tokens = np.random.default_rng(0).integers(0, V, size=(2, 15))
    for prompt in range(1, 13):
        assert check_decoding(model, tokens, prompt) == 16 - prompt
    assert check_decoding(model, np.concatenate([tokens, tokens], axis=1), 5, slide=4) == 26


@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=8, deadline=None)
@given(data=st.data())
def test_the_same_seed_samples_the_same_text_with_and_without_the_cache(name, data):
    model = draw_model(name, data.draw, max_block=12)
    prompt = np.random.default_rng(0).integers(0, V, size=(2, data.draw(st.integers(1, 12))))
    seed, top_k = data.draw(st.integers(0, 9)), data.draw(st.sampled_from([None, 3]))
    block = model.config.block_size
    slide = data.draw(st.integers(1, block))
    new = block + 3                                                   # runs past block_size
    cached = model.generate(prompt, new, seed=seed, top_k=top_k, slide=slide)
    np.testing.assert_array_equal(cached, model.generate(prompt, new, seed=seed, top_k=top_k, slide=slide,
                                                         cache=False))
    assert cached.shape == (2, prompt.shape[1] + new) and (cached[:, :prompt.shape[1]] == prompt).all()


def test_the_cache_does_not_recompute_the_past():
    """A step costs one token: the fine stack of a cached step sees a (B, 1, C) input, and a
    full cache refuses a step (the caller must re-prefill)."""
    model = tiny("vanilla", block_size=6, n_layer=1)
    shapes = []
    ln1 = model.blocks[0].ln1
    forward, step = ln1.forward, ln1.step                             # prefill, then a step
    ln1.forward = lambda x: shapes.append(x.shape) or forward(x)
    ln1.step = lambda x: shapes.append(x.shape) or step(x)
    tokens = np.arange(6)[None] % V
    with no_grad():
        cache, _ = model.prefill(tokens[:, :5])
        model.step(cache, tokens[:, 5])
        assert shapes == [(1, 5, 8), (1, 1, 8)] and cache.T == 6
        with pytest.raises(ValueError, match="cache is full"):
            model.step(cache, tokens[:, 5])


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("bad,error,match", [
    ([[V], [1]], IndexError, "out of range"), ([[-1], [1]], IndexError, "out of range"),
    ([[2.7], [3.2]], TypeError, "must be integers"), ([[True], [False]], TypeError, "must be integers"),
    ([["3"], ["4"]], TypeError, "must be integers"),
    ([[1]], ValueError, "one token per row of the cache \\(2\\), got 1"),
    ([[1], [2], [3]], ValueError, "one token per row of the cache \\(2\\), got 3")])
def test_a_refused_token_leaves_the_cache_as_it_was(name, bad, error, match):
    """A bad step (an id outside the vocabulary, ids that are not integers, a token count
    other than the batch) fails before the cache moves on: the next valid step gives the
    logits of the full forward pass at the right position."""
    model = tiny(name, block_size=16)
    tokens = (np.arange(1, 19).reshape(2, 9) * 5) % V                # (B=2, 9)
    cache, logits = model.prefill(tokens[:, :8])
    assert type(logits) is backend.xp.ndarray and logits.shape == (2, V)  # an array, like step's
    with pytest.raises(error, match=match):
        model.step(cache, np.array(bad)[:, 0])
    assert cache.T == 8
    logits = model.step(cache, tokens[:, 8])
    with no_grad():
        np.testing.assert_allclose(to_numpy(logits), model(tokens)[0].numpy()[:, -1], rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("name,options", OFFSET_CASES,
                         ids=[f"{n}-{i}" for i, (n, _) in enumerate(OFFSET_CASES)])
def test_steps_from_an_empty_cache_equal_the_forward_pass(name, options):
    """`new_cache(B)` then one step per token, with no prefill: every step (across the
    blocks of every scale; in delay mode the first tokens get the zeros before the first
    block) gives the last row of the forward pass, and the cache knows its batch (a step with
    the wrong token count is refused before anything moves)."""
    model = tiny(name, block_size=16, **options)
    tokens = (np.arange(2, 20).reshape(2, 9) * 3) % V                 # (B=2, 9)
    cache = model.new_cache(2)
    with pytest.raises(ValueError, match="one token per row"):
        model.step(cache, tokens[:1, 0])
    assert cache.T == 0
    for t in range(tokens.shape[1]):
        logits = model.step(cache, tokens[:, t])
        with no_grad():
            full = model(tokens[:, :t + 1])[0].numpy()[:, -1]
        np.testing.assert_allclose(to_numpy(logits), full, rtol=1e-10, atol=1e-10, err_msg=f"token {t}")


def test_generate_keeps_the_training_mode_and_streams():
    model = tiny("top-down", block_size=8, pool=2).train()
    tokens = model.generate_tokens(np.zeros((1, 2), dtype=int), 5, seed=0)
    first = next(tokens)
    assert first.shape == (1,) and not model.training               # eval while sampling
    rest = list(tokens)
    assert len(rest) == 4 and model.training                          # restored at the end
    out = model.generate(np.zeros((1, 2), dtype=int), 5, seed=0)
    assert [int(t[0]) for t in [first] + rest] == out[0, 2:].tolist()


@pytest.mark.parametrize("kwargs,error,match", [
    (dict(top_k=0), ValueError, "top_k must be >= 1"),
    (dict(top_k=-1), ValueError, "top_k must be >= 1"),
    (dict(top_k=2.5), TypeError, "top_k must be an integer"),
    (dict(top_k=True), TypeError, "top_k must be an integer"),
    (dict(max_new_tokens=-3), ValueError, "max_new_tokens must be >= 0"),
    (dict(max_new_tokens=2.0), TypeError, "max_new_tokens must be an integer"),
    (dict(temperature=0.0), ValueError, "temperature must be finite and > 0"),
    (dict(temperature=-1), ValueError, "temperature must be finite and > 0"),
    (dict(temperature=float("nan")), ValueError, "temperature must be finite and > 0"),
    (dict(temperature=float("inf")), ValueError, "temperature must be finite and > 0"),
    (dict(temperature="1"), TypeError, "temperature must be a number"),
    (dict(slide=0), ValueError, "slide must be an integer in"),
    (dict(slide=9), ValueError, "slide must be an integer in"),
    (dict(slide=2.0), TypeError, "slide must be an integer"),
    (dict(seed=-1), ValueError, "seed must be >= 0"),
    (dict(seed=1.5), TypeError, "seed must be an integer"),
    (dict(temperature=1j), TypeError, "temperature must be a number"),
])
def test_generate_checks_its_arguments_like_the_cli(kwargs, error, match):
    model = tiny("vanilla", block_size=8, n_layer=1)
    args = {"max_new_tokens": 3, **kwargs}
    with pytest.raises(error, match=match):
        model.generate(np.zeros((1, 2), dtype=int), **args)
    with pytest.raises(error, match=match):                           # at the call, not at next()
        model.generate_tokens(np.zeros((1, 2), dtype=int), **args)


def test_valid_edge_arguments_work():
    model = tiny("vanilla", block_size=8, n_layer=1)
    prompt = np.zeros((1, 2), dtype=int)
    with pytest.raises(ValueError, match="the prompt is empty"):
        model.generate(np.zeros((1, 0), dtype=int), 2)
    # a temperature so small that logits / T overflow: the logits are shifted first, so the
    # sample is the greedy one (not NaN)
    tiny_t = model.generate(prompt, 6, temperature=1e-320, seed=3)
    np.testing.assert_array_equal(tiny_t, model.generate(prompt, 6, top_k=1, seed=3))
    # a numpy Generator is drawn from, as NumPy's own `default_rng(generator)` would
    np.testing.assert_array_equal(model.generate(prompt, 6, seed=np.random.default_rng(5)),
                                  model.generate(prompt, 6, seed=5))
    assert model.generate(prompt, 0).shape == (1, 2)
    assert model.generate(prompt, np.int64(2), top_k=np.int32(1), temperature=np.float32(0.5)).shape == (1, 4)
    greedy = model.generate(prompt, 4, top_k=1, seed=0)                # top_k=1 is greedy decoding
    with no_grad():
        assert greedy[0, 2] == int(np.argmax(model(prompt)[0].numpy()[0, -1]))


@pytest.mark.parametrize("name,options", [("top-down", dict(pool=2, layout="1-1")),
                                          ("bottom-up", dict(pool=2, layout="0-1-1")),
                                          ("retina", dict(pool=2, window=2, n_layer=1)),
                                          ("top-down", dict(pool=2, layout="1-1", pool_kind="attention")),
                                          ("bottom-up", dict(pool=2, layout="0-1-1", pool_kind="attention"))])
def test_the_check_catches_a_stale_pooled_block(name, options, monkeypatch):
    """The test of the test: a step that pools the previous block instead of the one that
    just completed (an off-by-one in the block bookkeeping) must fail the comparison."""
    from minims.nn.pooling import Pool
    pool_at = Pool.pool_at
    monkeypatch.setattr(Pool, "pool_at", lambda self, x, j, *cache: pool_at(self, x, max(j - 1, 0), *cache))
    model = tiny(name, block_size=8, **options)
    tokens = np.random.default_rng(0).integers(0, V, size=(2, 8))
    with pytest.raises(AssertionError, match="Not equal to tolerance"):
        check_decoding(model, tokens, 1)


# --- the sampler streams --------------------------------------------------------------------

class Recorder:
    """A stdout that remembers what was written and when it was flushed."""

    def __init__(self):
        self.parts, self.flushed = [], []

    def write(self, text):
        self.parts.append(text)

    def flush(self):
        self.flushed.append("".join(self.parts))

    def text(self):
        return "".join(self.parts)


@pytest.fixture
def tiny_sampler(monkeypatch):
    """`python -m minims.sample` on a tiny word-level model, without a checkpoint file."""
    from minims import sample as sample_cli
    from minims.tokenizers import build_tokenizer
    tok = build_tokenizer("word", "it was , he said . \" yes , \" she said . it was not .", min_freq=1)
    model = leak.randomize(build_model("top-down", vocab_size=tok.vocab_size, block_size=8, pool=2,
                                       **TINY), seed=3).eval()
    monkeypatch.setattr(sample_cli, "load_model", lambda path: (model, tok, {}))
    return sample_cli, model, tok


@pytest.mark.parametrize("max_new", [0, 1, 25])
def test_the_sampler_prints_each_token_as_it_comes(tiny_sampler, monkeypatch, max_new):
    sample_cli, model, tok = tiny_sampler
    out = Recorder()
    monkeypatch.setattr("sys.stdout", out)
    assert sample_cli.main(["--prompt", "it was", "--max-new-tokens", str(max_new), "--seed", "4"]) == 0
    text = sampling.sample(model, tok, "it was", max_new_tokens=max_new, seed=4)
    assert out.text() == "it was" + text + "\n"
    pieces = list(sampling.sample_stream(model, tok, "it was", max_new_tokens=max_new, seed=4))
    assert len(pieces) == max_new and "".join(pieces) == text
    shown = ["it was" + "".join(pieces[:i + 1]) for i in range(max(1, max_new))]
    assert out.flushed == shown + ["it was" + text + "\n"]          # flushed after every token
    assert "".join(sampling.sample_stream(model, tok, "it was", max_new, seed=4, cache=False)) == text


def test_an_interrupted_sample_keeps_what_was_printed(tiny_sampler, monkeypatch):
    sample_cli, model, tok = tiny_sampler
    generate_tokens = sampling.generate_tokens

    def interrupted(*args, **kwargs):
        for i, token in enumerate(generate_tokens(*args, **kwargs)):
            if i == 5:
                raise KeyboardInterrupt
            yield token

    monkeypatch.setattr(sampling, "generate_tokens", interrupted)
    out = Recorder()
    monkeypatch.setattr("sys.stdout", out)
    assert sample_cli.main(["--prompt", "it was", "--max-new-tokens", "20", "--seed", "4"]) == 130
    monkeypatch.undo()
    five = sampling.sample(model, tok, "it was", max_new_tokens=5, seed=4)
    assert out.flushed[-1] == "it was" + five + "\n"


@pytest.mark.parametrize("flags,word", [(["--temperature", "0"], "temperature"), (["--slide", "0"], "slide"),
                                        (["--slide", "9"], "slide"), (["--top-k", "x"], "--top-k"),
                                        (["--bogus"], "--bogus")])
def test_a_bad_sampler_option_prints_nothing_but_the_error(tiny_sampler, capsys, flags, word):
    sample_cli, _, _ = tiny_sampler
    assert sample_cli.main(flags) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1 and word in captured.err
    assert "error: " in captured.err and "Traceback" not in captured.err


@pytest.mark.parametrize("flag,value,option", [("--temperature", "0", dict(temperature=0.0)),
                                               ("--top-k", "0", dict(top_k=0)),
                                               ("--max-new-tokens", "-1", dict(max_new_tokens=-1)),
                                               ("--seed", "-3", dict(seed=-3)), ("--slide", "9", dict(slide=9))])
def test_the_command_line_reports_the_samplers_own_check_under_its_flag(tiny_sampler, capsys, flag, value,
                                                                        option):
    """One sampler checks the options (minims/sampling.py); the command line says the same, with
    the flag for the name."""
    sample_cli, model, _ = tiny_sampler
    assert sample_cli.main(["--prompt", "it was", flag, value]) == 2
    with pytest.raises(sampling.SamplingError) as e:
        sampling.check_sampling(**{"max_new_tokens": 3, **option}, block_size=model.config.block_size)
    assert e.value.option.replace("_", "-") == flag[2:]
    assert capsys.readouterr().err == f"error: {flag} {e.value.rule}, got {e.value.value}\n"


def test_the_sampler_refuses_a_checkpoint_with_nan_weights(tmp_path, capsys):
    """A checkpoint of a run that diverged: one line naming the file and a weight, exit 2,
    nothing sampled (the sampler would otherwise fail on NaN logits)."""
    from minims import checkpoint, sample as sample_cli
    from minims.tokenizers import build_tokenizer
    tok = build_tokenizer("char", "it was a truth")
    model = build_model("vanilla", vocab_size=tok.vocab_size, block_size=8, **TINY)
    model.lm_head.weight.data[0, 0] = np.nan
    path = tmp_path / "nan.npz"
    checkpoint.save(path, {"model": model.describe(), "tokenizer": tok.to_dict()}, model.state_dict(), {})
    assert sample_cli.main(["--ckpt", str(path)]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1
    assert "nan.npz" in captured.err and "lm_head.weight" in captured.err


def test_the_sampler_slides_the_context_past_block_size(tiny_sampler, capsys):
    sample_cli, model, tok = tiny_sampler
    assert sample_cli.main(["--prompt", "it was", "--max-new-tokens", "30", "--slide", "4"]) == 0
    out = capsys.readouterr().out
    pieces = sampling.sample_stream(model, tok, "it was", 30, seed=0, slide=4, cache=False)
    assert out == "it was" + "".join(pieces) + "\n"


@pytest.mark.parametrize("name,options", [
    ("top-down", dict(pool=2, layout="1-1-1", upsample_kind="attention")),
    ("top-down", dict(pool=2, layout="1-1", upsample_kind="attention", causal_mode="delay")),
    ("bottom-up", dict(pool=2, layout="0-1-1-1", combine="upsample", upsample_kind="attention"))])
def test_the_check_catches_attention_upsampling_that_misses_the_newest_block(name, options, monkeypatch):
    """The test of the test for attention upsampling's cache: a step whose query sees one
    coarse vector fewer than the forward pass lets it see must fail the comparison."""
    from minims.nn import pooling
    step = pooling.PrefixCrossAttention.step
    monkeypatch.setattr(pooling.PrefixCrossAttention, "step",
                        lambda self, x, cache, n: step(self, x, cache, max(n - 1, 1)))
    model = tiny(name, block_size=8, **options)
    tokens = np.random.default_rng(0).integers(0, V, size=(2, 8))
    with pytest.raises(AssertionError, match="Not equal to tolerance"):
        check_decoding(model, tokens, 1)


def test_bench_decode_prints_both_paths_for_every_model_and_size(capsys):
    import json
    from minims import bench
    argv = ["decode", "--n-layer", "2", "--n-embd", "16", "--n-head", "2", "--block-size", "16",
            "--decode-block-size", "20", "--vocab-size", "11", "--dtype", "float64", "--json"]
    assert bench.main(argv) == 0
    rows = json.loads(capsys.readouterr().out)["rows"]
    assert [(r["model"], r["block_size"]) for r in rows] == [(n, T) for T in (16, 20) for n in MODELS]
    for r in rows:
        assert r["cached_tok_s"] > 0 and r["uncached_tok_s"] > 0 and r["same"] == "yes"


@settings(max_examples=60, deadline=None)
@given(ops=st.lists(st.tuples(st.sampled_from(["append", "truncate", "drop"]), st.integers(0, 40)),
                    max_size=30))
def test_buffer_behaves_like_a_list_with_absolute_indices(ops):
    from minims.nn import Buffer
    buf, ref, start, counter = Buffer(axis=1), [], 0, 0
    for op, n in ops:
        if op == "append":
            steps = np.arange(counter, counter + n % 7, dtype=float)
            counter += n % 7
            buf.append(backend.asarray(np.broadcast_to(steps[None, :, None], (2, len(steps), 3))))
            ref.extend(steps)
        elif op == "truncate":
            del ref[max(start, min(len(ref), n)):]
            buf.truncate(n)
        else:
            start = max(start, min(n, len(ref)))
            buf.drop_before(n)
        assert len(buf) == len(ref) and buf.start == start
        if buf.data is not None:
            np.testing.assert_array_equal(to_numpy(buf.view()[0, :, 0]), ref[start:])
            assert buf.view().shape == (2, len(ref) - start, 3)


def test_sample_rows_refuses_rows_it_cannot_sample_from():
    from minims.sampling import sample_rows
    rng = np.random.default_rng(0)
    for row, match in [([0.5, np.nan], "not finite"), ([np.inf, 0.0], "not finite"), ([0.0, 0.0], "sums to 0")]:
        with pytest.raises(ValueError, match=match):
            sample_rows(np.array([[0.5, 0.5], row]), rng)


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 4), st.integers(1, 40))
def test_sample_rows_draws_what_generator_choice_draws(seed, B, V):
    """The vectorised sampler must pick the very tokens `rng.choice(V, p=row)` picks, row by
    row and draw after draw (so a seed samples the same text as before it existed)."""
    from minims.sampling import sample_rows
    z = np.random.default_rng(seed).standard_normal((B, V)) * 4
    p = np.exp(z - z.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    mine, numpys = np.random.default_rng(seed + 1), np.random.default_rng(seed + 1)
    for _ in range(5):
        np.testing.assert_array_equal(sample_rows(p, mine), [numpys.choice(V, p=row) for row in p])
    with pytest.raises(ValueError, match="not finite"):
        sample_rows(np.full((1, 3), np.nan), mine)


@pytest.mark.parametrize("unk_in_training", [False, True])
def test_an_unk_training_never_showed_is_never_sampled(unk_in_training):
    # the char tokenizer never meets <unk> in training: its logit is untrained noise, and the
    # sampler printed U+FFFD from it. Here <unk>'s output column is made to dominate.
    from minims.tokenizers import UNK_ID, CharTokenizer
    tok = CharTokenizer().fit("abcab")
    tok.unk_in_training = unk_in_training
    model = build_model("vanilla", tok.vocab_size, 8, n_layer=1, n_head=2, n_embd=8)
    w = np.zeros(model.lm_head.weight.shape, dtype=np.float32)
    w[:, UNK_ID] = 50.0                         # with ln_f's output all positive: <unk> ~ 400, the rest 0
    model.lm_head.weight.data = backend.xp.asarray(w)
    model.ln_f.bias.data = backend.xp.full(model.ln_f.bias.shape, 10.0, dtype=np.float32)
    for top_k in (None, 1):
        text = sampling.sample(model, tok, prompt="ab", max_new_tokens=20, seed=0, top_k=top_k)
        assert len(text) == 20
        assert (text == "\ufffd" * 20) if unk_in_training else ("\ufffd" not in text)
    with pytest.raises(sampling.SamplingError, match="never"):
        list(sampling.generate_tokens(model, np.array([[1]]), 1, never=(tok.vocab_size,)))
