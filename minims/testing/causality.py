"""Is a language model causal? The black-box leak check.

Our convention: logits[:, t] predicts token t+1, so it may depend on tokens 0 … t only. A model
that sees a future token, or another row of the batch, learns to copy it and reports a loss far
too good to be true. The check treats the model as a black box: for every position t, change the
tokens of row 0 from t on and look at the logits.

- positions < t of row 0 must not change (they may not see tokens ≥ t);
- row 1, whose tokens did not change, must not change either (no leak across the batch);
- position t of row 0 must change (the model reads its own token: catches over-shifting).

If you add a model to minims, call this on it (any `model(idx) -> (logits, loss)` works):

    import numpy as np
    from minims.testing.causality import assert_causal
    from minims.models import build_model
    model = build_model("my-model", vocab_size=50, block_size=12, dtype="float64")
    assert_causal(model, np.random.default_rng(0).integers(0, 50, size=(2, 12)))

Use float64 and compare exactly (tol=0.0): a causal model does the same arithmetic on the
unchanged positions, so they match bit for bit. Random weights of O(1) scale find more leaks than
a fresh model's small ones (`randomize`, below). Test every t, so the block edges (t = jk−1, jk,
jk+1), where leaks live, are all covered.

The stricter checks (the tests run them on every model and every scale operator; each raises
AssertionError with the details when it fails). Run them in float64 and eval mode, after
`randomize`: zero-initialised output projections hide leaks, and saturated softmaxes
(exp(−800) == 0) would too, so the weights are large but not huge. They work on any model from
`build_model` (or any Module with a `wte` embedding whose call returns logits or (logits, loss)).

- `check_invariance`: change row 0 from position t on; logits of row 0 at positions < t and
  all of row 1 must not change (to 1e-12: same shapes, same arithmetic).
- `check_sensitivity`: change only x_t; logits of row 0 at position t must change (catches
  over-shifting, a double label shift).
- `check_structure`: backpropagate a random vector from logits[0, s] to the token-embedding
  output; its gradient must be exactly zero at positions > s and in row 1, non-zero at s.
- `check_prefix`: model(x[:, :L])[:, j] == model(x)[:, j] for j < L (what generate relies on).
- `find_leak`: the first position t whose invariance check fails, or None; `check_all` the
  four checks at one t. The pitfalls they catch are listed in minims/ops/pooling.py's docstring.
"""
import numpy as np

import minims
from minims.engine import Tensor


def causality_report(model, idx):
    """(T, 3) array: for every t, the largest change of row 0's logits before t, at t, and of
    the untouched rows' logits (row 1, …), when row 0's tokens from t on are changed. Runs in
    eval mode without a graph, and restores the model's mode afterwards."""
    idx = np.asarray(idx)
    (B, T), V = idx.shape, model.config.vocab_size
    if B < 2:
        raise ValueError(f"idx needs at least 2 rows (row 1 is the untouched control), got {B}")
    with model.eval_mode(), minims.no_grad():
        base = model(idx)[0].numpy()
        rows = []
        for t in range(T):
            other = idx.copy()
            # a different token everywhere from t on: add 1 … V−1 (mod V)
            other[0, t:] = (idx[0, t:] + 1 + np.arange(T - t) % (V - 1)) % V
            out = model(other)[0].numpy()
            rows.append((np.abs(out[0, :t] - base[0, :t]).max(initial=0.0),
                         np.abs(out[0, t] - base[0, t]).max(),
                         np.abs(out[1:] - base[1:]).max()))
    return np.array(rows)


def assert_causal(model, idx, tol=0.0):
    """Raise AssertionError naming the first t that breaks a rule of `causality_report`
    (a change > tol before t or in row 1, or no change > tol at t); return the report."""
    report = causality_report(model, idx)
    for t, (before, at, other) in enumerate(report):
        assert before <= tol, (f"leak at t={t}: changing tokens >= {t} of row 0 changed its "
                               f"logits before {t} by {before:.3g}")
        assert other <= tol, (f"leak across the batch at t={t}: changing row 0 changed the logits "
                              f"of another row by {other:.3g}")
        assert at > tol, (f"the logits at t={t} do not depend on token {t} (change {at:.3g}): "
                          f"is the input shifted one step too far?")
    return report


# --- the stricter checks -----------------------------------------------------------------------

def randomize(model, seed=0, std=1.0):
    """Re-draw every parameter with O(1)-scale entries (float64 if the model is): matrices
    N(0, std²/fan_in) so activations stay O(1), vectors and embeddings N(0, (std/2)²) (plus 1
    for LayerNorm gains), so no output projection starts at zero."""
    rng = np.random.default_rng(seed)
    for name, p in model.named_parameters():
        if p.ndim >= 2:
            fan_in = 1 if "wte" in name or "wpe" in name or "emb" in name else p.shape[0]
            value = rng.normal(0.0, std / np.sqrt(fan_in), size=p.shape)
        else:
            value = rng.normal(1.0 if p.init == "ones" else 0.0, std / 2, size=p.shape)
        p.data = minims.backend.asarray(value, dtype=p.dtype)
        p.grad = None
    return model


def logits_of(model, idx):
    """The logits as a float64 NumPy array, without a graph."""
    with minims.no_grad():
        out = model(idx)
    out = out[0] if isinstance(out, tuple) else out
    return out.numpy()


def _other_token(idx, V, rng):
    """Ids that differ from idx everywhere (shift by a random non-zero amount mod V)."""
    return (idx + rng.integers(1, V, size=np.shape(idx))) % V


def check_invariance(model, idx, t, vocab_size, seed=0, atol=1e-12):
    """Changing row 0 from position t on changes no logit of row 0 before t, nor of row 1."""
    rng = np.random.default_rng(seed)
    idx = np.asarray(idx)
    changed = idx.copy()
    changed[0, t:] = _other_token(idx[0, t:], vocab_size, rng)
    a, b = logits_of(model, idx), logits_of(model, changed)
    err0 = np.abs(a[0, :t] - b[0, :t]).max(initial=0.0)
    err1 = np.abs(a[1:] - b[1:]).max(initial=0.0)
    assert err0 <= atol, f"leak: changing tokens >= {t} changed logits at positions < {t} by {err0:.3g}"
    assert err1 <= atol, f"leak across the batch: changing row 0 changed row 1 by {err1:.3g}"


def check_sensitivity(model, idx, t, vocab_size, seed=0, min_change=1e-9):
    """Changing only x_t must change the logits at position t (the model reads its own token)."""
    rng = np.random.default_rng(seed)
    idx = np.asarray(idx)
    changed = idx.copy()
    changed[0, t] = _other_token(idx[0, t], vocab_size, rng)
    change = np.abs(logits_of(model, idx)[0, t] - logits_of(model, changed)[0, t]).max()
    assert change > min_change, f"logits at position {t} ignore token {t} (change {change:.3g})"


def embedding_gradient(model, idx, s, seed=0):
    """d⟨r, logits[0, s]⟩ / d(token-embedding output), r random: a (B, T, C) NumPy array."""
    captured = {}
    original = model.wte.forward

    def capture(ids):
        leaf = Tensor(original(ids).data, requires_grad=True)         # the graph starts here
        captured["emb"] = leaf
        return leaf

    model.wte.forward = capture
    try:
        out = model(idx)
    finally:
        del model.wte.forward                                         # back to the class method
    logits = out[0] if isinstance(out, tuple) else out
    r = np.zeros(logits.shape)
    r[0, s] = np.random.default_rng(seed).standard_normal(logits.shape[-1])
    logits.backward(minims.backend.asarray(r, dtype=logits.dtype))
    return minims.to_numpy(captured["emb"].grad)


def check_structure(model, idx, s, seed=0, require_self=True):
    """The gradient from logits[0, s] is exactly zero at positions > s and in row 1, and
    (with `require_self`) non-zero at s."""
    g = embedding_gradient(model, idx, s, seed)
    later = np.abs(g[0, s + 1:]).max(initial=0.0)
    other = np.abs(g[1:]).max(initial=0.0)
    assert later == 0.0, f"leak: logits at {s} have a gradient {later:.3g} from tokens after {s}"
    assert other == 0.0, f"leak across the batch: logits of row 0 depend on row 1 ({other:.3g})"
    if require_self:
        assert np.abs(g[0, s]).max() > 0.0, f"logits at {s} have no gradient from token {s}"


def check_prefix(model, idx, L, rtol=1e-9):
    """model(x[:, :L]) equals model(x)[:, :L] (different shapes, so to rounding only)."""
    idx = np.asarray(idx)
    full, part = logits_of(model, idx)[:, :L], logits_of(model, idx[:, :L])
    err = np.abs(full - part).max()
    assert err <= rtol * max(1.0, np.abs(full).max()), \
        f"prefix of length {L} gives different logits than the full sequence (by {err:.3g})"


def find_leak(model, idx, vocab_size, positions=None):
    """The first position t at which `check_invariance` fails (None if it never does)."""
    T = np.shape(idx)[1]
    for t in range(1, T) if positions is None else positions:
        try:
            check_invariance(model, idx, t, vocab_size)
        except AssertionError:
            return t
    return None


def check_all(model, idx, t, vocab_size, seed=0):
    """Invariance, sensitivity and structure at t, and prefix consistency at length t+1."""
    check_invariance(model, idx, t, vocab_size, seed)
    check_sensitivity(model, idx, t, vocab_size, seed)
    check_structure(model, idx, t, seed)
    check_prefix(model, idx, t + 1)


__all__ = ["assert_causal", "causality_report", "randomize", "logits_of", "check_invariance",
           "check_sensitivity", "embedding_gradient", "check_structure", "check_prefix", "find_leak",
           "check_all"]
