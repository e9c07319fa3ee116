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
    from minims.causality import assert_causal
    from minims.models import build_model
    model = build_model("my-model", vocab_size=50, block_size=12, dtype="float64")
    assert_causal(model, np.random.default_rng(0).integers(0, 50, size=(2, 12)))

Use float64 and compare exactly (tol=0.0): a causal model does the same arithmetic on the
unchanged positions, so they match bit for bit. Random weights of O(1) scale find more leaks than
a fresh model's small ones (`tests/leak.py` has `randomize` and the stricter checks: gradients,
prefix consistency). Test every t, so the block edges (t = jk−1, jk, jk+1), where leaks live, are
all covered.
"""
import numpy as np

import minims


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


__all__ = ["assert_causal", "causality_report"]
