"""The neural-network ops: softmax, log-softmax, cross-entropy, GELU, layer norm, linear,
embedding, dropout and scaled dot-product attention.

The hot paths of a transformer, each one Function instead of a chain of primitives: fewer
temporaries, fewer Python calls, and a numerically stable formulation. Each backward is
derived in a short comment above it (llm.c style); the generic harness
(minims/testing/gradcheck.py, with the specs of minims/testing/op_specs.py) checks them all
against float64 central differences. Like the primitive ops they accept negative and tuple
axes, zero-size dimensions, and integer inputs (computed in float32). Call them through
minims/functional.py (`F.softmax`, `F.scaled_dot_product_attention`, ...).
"""
import math

import numpy

from .. import backend
from ..engine import Function, Tensor, normalize_axes
from .basic import as_rows


def _checked_ids(ids, n, what):
    """`ids` (a NumPy or backend integer array) on the backend, once checked to lie in [0, n).
    Out-of-range ids must fail loudly: NumPy wraps negative ids and CuPy wraps all of them.
    Ids on the host (the usual case: batches are drawn there) are checked there, before the
    copy to the device, at no cost to a GPU; ids already on a GPU cost one device → host read
    of their minimum and maximum (a synchronisation)."""
    if ids.size:
        lo, hi = (int(v) for v in backend.to_floats([ids.min(), ids.max()]))
        if lo < 0 or hi >= n:
            valid = f"[0, {n - 1}]" if n else "empty (there are 0 rows to pick from)"
            raise IndexError(f"{what} out of range: got ids in [{lo}, {hi}], valid range is {valid}")
    return backend.asarray(ids)


_vectors = backend.cache()


def _rowsum(a, scale=1):
    """Sum over the last axis times `scale`, keeping it (…, 1), as a matrix product with a
    constant vector: BLAS does this 3–4× faster than `a.sum(-1)` for the short rows of a
    transformer, and the scale costs no extra pass."""
    return a @ _column(a.shape[-1], a.dtype, scale)


def _column(n, dtype, value):
    """A cached (n, 1) array filled with `value`: `a @ _column(C, dtype, 1 / C)` is the row mean."""
    key = (n, dtype, value)                  # (the cache is emptied when the backend changes)
    column = _vectors.get(key)
    if column is None:
        column = _vectors[key] = backend.xp.full((n, 1), value, dtype=dtype)
    return column


# --- softmax family ---------------------------------------------------------------------

def _log_softmax(x, axis):
    """Stable log-softmax: shift by the max so exp never overflows (logits of ±1e4 are fine)."""
    if x.size == 0:  # nothing to normalise (and no maximum of an empty axis)
        return x.copy()
    shifted = x - x.max(axis=axis, keepdims=True)
    return shifted - backend.xp.log(backend.xp.exp(shifted).sum(axis=axis, keepdims=True))


class Softmax(Function):
    # y = exp(x) / Σ exp(x).  dy_i/dx_j = y_i (δ_ij − y_j), so
    # dx = y ⊙ (g − Σ_j g_j y_j)   (the full Jacobian, not just its diagonal)
    # `axis`: an int or a tuple (negative counting from the end), or None for all axes.
    int_to_float = True

    @staticmethod
    def forward(ctx, x, axis=-1):
        axis = normalize_axes(axis, x.ndim, "Softmax")
        if x.size == 0:  # nothing to normalise (and no maximum of an empty axis)
            y = x.copy()
        else:
            y = _exp_shifted(x, x.max(axis=axis, keepdims=True))
            y /= y.sum(axis=axis, keepdims=True)
        ctx.save(y)
        ctx.axis = axis
        return y

    @staticmethod
    def backward(ctx, g):
        (y,) = ctx.saved
        return _softmax_grad(y, g, (g * y).sum(axis=ctx.axis, keepdims=True))


# The elementwise parts of softmax, fused into one kernel each on a GPU (`backend.fuse`; the
# reductions stay outside, their (…, 1) results broadcast over the rows). Also attention's.
@backend.fuse
def _exp_shifted(x, m):
    """exp(x − m), m the row maximum: every exponent ≤ 0, so none overflows."""
    return backend.xp.exp(x - m)


@backend.fuse
def _softmax_grad(y, g, s):
    """dx = y ⊙ (g − s), s = Σ_j g_j y_j per row (the derivation above)."""
    return y * (g - s)


class LogSoftmax(Function):
    # y = x − log Σ exp(x).  dy_i/dx_j = δ_ij − softmax_j, so
    # dx = g − softmax(x) · Σ_i g_i,  with softmax(x) = exp(y)
    int_to_float = True

    @staticmethod
    def forward(ctx, x, axis=-1):
        axis = normalize_axes(axis, x.ndim, "LogSoftmax")
        y = _log_softmax(x, axis)
        ctx.save(y)
        ctx.axis = axis
        return y

    @staticmethod
    def backward(ctx, g):
        (y,) = ctx.saved
        return g - backend.xp.exp(y) * g.sum(axis=ctx.axis, keepdims=True)


class CrossEntropy(Function):
    # loss = mean_n [ log Σ_v exp(z_nv) − z_n,y_n ]   over N = all positions.
    # dloss/dz_nv = (softmax(z_n)_v − [v = y_n]) / N
    # No positions (N = 0): the mean of nothing is NaN, as in NumPy and PyTorch.
    int_to_float = True

    @staticmethod
    def forward(ctx, logits, targets):
        z = as_rows(logits)                                           # (N, V)
        y = _checked_ids(targets.reshape(-1), z.shape[1], "targets")  # (N,)
        logp = _log_softmax(z, axis=-1)                               # (N, V)
        rows = backend.xp.arange(len(y))
        loss = -logp[rows, y].mean() if len(y) else numpy.nan
        ctx.save(logp, y)
        ctx.shape = logits.shape
        return backend.xp.asarray(loss, dtype=logits.dtype)

    @staticmethod
    def backward(ctx, g):
        logp, y = ctx.saved
        dz = backend.xp.exp(logp)                                           # softmax, (N, V)
        dz[backend.xp.arange(len(y)), y] -= 1
        if len(y):
            dz *= g / len(y)
        return dz.reshape(ctx.shape)


# --- elementwise and normalisation ------------------------------------------------------

_GELU_C = math.sqrt(2.0 / math.pi)


class GELU(Function):
    # GPT-2's tanh approximation: y = ½ x (1 + tanh u),  u = c (x + 0.044715 x³), c = √(2/π)
    # dy/dx = ½ (1 + tanh u) + ½ x (1 − tanh² u) · c (1 + 3·0.044715 x²)
    # (computed in place: this op runs on the widest activations, B·T·4C, so every
    # temporary array costs)
    int_to_float = True

    @staticmethod
    def forward(ctx, x):
        if backend.fusing():
            y, t = _gelu_forward(x)
            ctx.save(x, t)
            return y
        t = x * x
        t *= _GELU_C * 0.044715
        t += _GELU_C
        t *= x                                                        # u
        backend.xp.tanh(t, out=t)
        ctx.save(x, t)
        y = t + 1
        y *= x
        y *= 0.5
        return y

    @staticmethod
    def backward(ctx, g):
        x, t = ctx.saved
        if backend.fusing():
            return _gelu_backward(x, t, g)
        # ½ x (1 − t²) c (1 + 3a x²)  +  ½ (1 + t)
        d = x * x
        d *= 3 * 0.044715 * _GELU_C
        d += _GELU_C
        d *= x
        one_minus_t2 = t * t
        backend.xp.subtract(1, one_minus_t2, out=one_minus_t2)
        d *= one_minus_t2
        d += 1
        d += t
        d *= g
        d *= 0.5
        return d


# GELU as one kernel each way on a GPU (`backend.fuse`): the in-place chains above, written as
# expressions in the same order (on NumPy both give the same bits; tests/test_gpu_paths.py).
@backend.fuse
def _gelu_forward(x):
    """→ (y, t): y = ½ x (1 + t), t = tanh(c (x + 0.044715 x³))."""
    t = backend.xp.tanh((x * x * (_GELU_C * 0.044715) + _GELU_C) * x)
    return (t + 1) * x * 0.5, t


@backend.fuse
def _gelu_backward(x, t, g):
    """dx = g ⊙ [½ x (1 − t²) c (1 + 3a x²) + ½ (1 + t)]."""
    d = (x * x * (3 * 0.044715 * _GELU_C) + _GELU_C) * x * (1 - t * t)
    return (d + 1 + t) * g * 0.5


class LayerNorm(Function):
    # Over the last axis (C features): x̂ = (x − μ) · r, r = 1/√(σ² + eps); y = x̂ ⊙ w + b.
    # With ĝ = g ⊙ w:  dx = r · (ĝ − mean(ĝ) − x̂ · mean(ĝ ⊙ x̂))
    #                  dw = Σ_rows g ⊙ x̂,  db = Σ_rows g
    # The statistics, computed with care (ours): each row is first shifted by its own first
    # value, d = x − x₀, then μ_d = Σ d / C and x − μ = d − μ_d (layer norm ignores a shift).
    # The shift is exact for values within a factor 2 of x₀, so a constant row becomes
    # exactly 0 (and y exactly the bias), and a large common offset (rows of 1e6 + noise)
    # is removed without rounding before anything is summed; whatever rounding d has is
    # relative to the row's spread, never to its offset. The naive Σx · (1/C) makes the
    # mean of seven float32 1e6's 1000000.06 and turns a constant row into −0.9987.
    int_to_float = True

    @staticmethod
    def forward(ctx, x, weight, bias, eps=1e-5):
        xhat, r = normalize(x, eps)
        ctx.save(xhat, r, weight)
        if backend.fusing():
            return _layer_norm_affine(xhat, weight, bias)
        y = xhat * weight
        y += bias
        return y

    @staticmethod
    def backward(ctx, g):
        xhat, r, weight = ctx.saved
        C = max(xhat.shape[-1], 1)
        if backend.fusing():
            gh, ghx = _layer_norm_grad_parts(g, weight, xhat)
            dx = _layer_norm_grad(gh, _rowsum(gh, 1 / C), xhat, _rowsum(ghx, 1 / C), r)
        else:
            gh = g * weight
            dx = gh - _rowsum(gh, 1 / C)
            dx -= xhat * _rowsum(gh * xhat, 1 / C)
            dx *= r
        rows = as_rows(g)
        dw = (rows * as_rows(xhat)).sum(axis=0) if ctx.needs_grad[1] else None
        db = rows.sum(axis=0) if ctx.needs_grad[2] else None
        return dx, dw, db


def normalize(x, eps=1e-5):
    """Layer norm without its gain and bias, on plain arrays: x (…, C) → (x̂, r), x̂ = (x − μ)·r
    (…, C) and r = 1/√(σ² + eps) (…, 1) per row, computed as `LayerNorm` explains (each row
    shifted by its first value first). The op's forward, and decoding's `LayerNorm.step`."""
    mean = _column(x.shape[-1], x.dtype, 1 / max(x.shape[-1], 1))   # (C, 1); an empty row: 0
    xc = x - x[..., :1]                                               # d = x − x₀
    if backend.fusing():
        xc, sq = _layer_norm_center(xc, xc @ mean)
        r = 1 / backend.xp.sqrt(sq @ mean + eps)                      # (…, 1)
        return _layer_norm_scale(xc, r), r
    xc -= xc @ mean                                                   # x − μ = d − μ_d
    r = 1 / backend.xp.sqrt((xc * xc) @ mean + eps)                   # (…, 1)
    xc *= r                                                           # x̂, in place
    return xc, r


# Layer norm's elementwise passes, fused on a GPU (`backend.fuse`): four kernels forward (d;
# d − μ_d with its square; x̂; y) instead of six, two backward for dx instead of six; the row
# means stay products with a constant vector. Same operations in the same order as above.
@backend.fuse
def _layer_norm_center(d, mu):
    """→ (x − μ, (x − μ)²) from d = x − x₀ and its row mean μ_d (…, 1)."""
    xc = d - mu
    return xc, xc * xc


@backend.fuse
def _layer_norm_scale(xc, r):
    """x̂ = (x − μ) · r."""
    return xc * r


@backend.fuse
def _layer_norm_affine(xhat, weight, bias):
    """y = x̂ ⊙ w + b."""
    return xhat * weight + bias


@backend.fuse
def _layer_norm_grad_parts(g, weight, xhat):
    """→ (ĝ, ĝ ⊙ x̂) with ĝ = g ⊙ w."""
    gh = g * weight
    return gh, gh * xhat


@backend.fuse
def _layer_norm_grad(gh, gh_mean, xhat, ghx_mean, r):
    """dx = r · (ĝ − mean(ĝ) − x̂ · mean(ĝ ⊙ x̂))."""
    return (gh - gh_mean - xhat * ghx_mean) * r


class Linear(Function):
    # y = x W + b, with all leading dimensions of x folded into one matrix product:
    # dx = g Wᵀ;  dW = xᵀ g (summed over every row);  db = Σ_rows g
    @staticmethod
    def forward(ctx, x, weight, bias=None):
        x2 = as_rows(x)                                               # (N, in)
        y = x2 @ weight                                               # (N, out)
        if bias is not None:
            y += bias
        ctx.save(x2, weight)
        ctx.shape = x.shape
        return y.reshape(*x.shape[:-1], weight.shape[1])

    @staticmethod
    def backward(ctx, g):
        x2, weight = ctx.saved
        g2 = as_rows(g)                                               # (N, out)
        dx = (g2 @ weight.T).reshape(ctx.shape) if ctx.needs_grad[0] else None
        dw = x2.T @ g2 if ctx.needs_grad[1] else None
        db = g2.sum(axis=0) if len(ctx.needs_grad) > 2 and ctx.needs_grad[2] else None
        return dx, dw, db


class Embedding(Function):
    # out[b, t] = weight[idx[b, t]].  Backward: each row of g is added to the row of the id
    # it came from; ids repeat, so this must be a scatter-add, never `dw[idx] += g`.
    @staticmethod
    def forward(ctx, weight, ids):
        ids = _checked_ids(ids, weight.shape[0], "token ids")
        ctx.save(ids)
        ctx.shape = weight.shape
        return weight[ids]

    @staticmethod
    def backward(ctx, g):
        (ids,) = ctx.saved
        dw = backend.xp.zeros(ctx.shape, dtype=g.dtype)
        backend.scatter_add(dw, ids.reshape(-1), as_rows(g))
        return dw


class Dropout(Function):
    # y = x / (1 − p) where m, 0 elsewhere, m ~ Bernoulli(1 − p) drawn on the host
    # (reproducible on any backend from `backend.get_rng_state()`).  dx = g / (1 − p) where m,
    # 0 elsewhere. Selected with the mask, not multiplied by it: a dropped inf or NaN becomes
    # 0, as dropping says (x·m/(1 − p), PyTorch's formula, makes it NaN, since inf · 0 is).
    int_to_float = True

    @staticmethod
    def forward(ctx, x, p):
        keep = backend.asarray(backend.global_rng().random(x.shape) >= p)
        ctx.save(keep)
        ctx.scale = 1.0 / (1.0 - p)
        return backend.xp.where(keep, x * ctx.scale, backend.xp.zeros((), x.dtype))

    @staticmethod
    def backward(ctx, g):
        return backend.xp.where(ctx.saved[0], g * ctx.scale, backend.xp.zeros((), g.dtype))


# --- attention ----------------------------------------------------------------------------

# Causal attention runs in bands of this many queries (see the op). Measured (ours, `python
# -m minims.bench attention`, B=8, nh=4, hs=32, forward + backward, 2-core machine): bands of
# 32 were the fastest, or within the run-to-run noise of it, at T = 128…2048 (T = 256: 9.8 ms
# against 10.3 for 64, 10.5 for 128 and 12.0 for one band; T = 512: 32.7 against 61.5 for one
# band); smaller bands skip more of the masked triangle, but each band is a separate batch of
# small matrix products.
ATTENTION_BAND_SIZE = 32
_future_cache = backend.cache()  # the causal rule's blocked keys per (Tq, Tk), emptied when
                                 # the backend changes


def _future(Tq, Tk):
    """(Tq, Tk) booleans, True where key j lies in query i's future (j > i): what the causal
    rule blocks. Cached: shared by every call (never write to it)."""
    key = (backend.name, Tq, Tk)
    if key not in _future_cache:
        _future_cache[key] = backend.xp.triu(backend.xp.ones((Tq, Tk), dtype=bool), k=1)
    return _future_cache[key]


def blocked_keys(mask, causal, Tq, Tk):
    """A user's boolean "may attend" mask → the op's `blocked` array (True where a query may
    not attend), at least 2-D and broadcastable to (..., Tq, Tk); None without a mask.

    A (Tk,) key-padding mask becomes (1, Tk). Refused: a mask that is not boolean (TypeError),
    one whose last two sizes do not broadcast to (Tq, Tk), causal attention with Tq ≠ Tk, and
    a query left with no key at all (its softmax would be 0/0), counting the causal rule
    (ValueError).
    """
    if causal and Tq != Tk:
        raise ValueError(f"causal=True needs as many queries as keys (got {Tq} and {Tk}); "
                         "pass an explicit mask instead")
    if mask is None:
        return None
    mask = mask.data if isinstance(mask, Tensor) else backend.asarray(mask)
    if mask.dtype != bool:
        raise TypeError(f"attention mask must be boolean ('may attend'), got {mask.dtype}")
    if mask.ndim < 2:
        mask = mask.reshape((1,) * (2 - mask.ndim) + mask.shape)
    if mask.shape[-2] not in (1, Tq) or mask.shape[-1] not in (1, Tk):
        raise ValueError(f"attention mask of shape {tuple(mask.shape)} does not broadcast to "
                         f"(..., Tq, Tk) = (..., {Tq}, {Tk})")
    allowed = mask & ~_future(Tq, Tk) if causal else mask
    if not bool(allowed.any(axis=-1).all()):
        raise ValueError("attention mask leaves a query with no key to attend to "
                         "(its softmax would be 0/0)")
    return ~mask


def _block(S, value, causal, blocked, a, b, kb):
    """Set the entries of a band's scores S (…, b−a, kb) (queries [a, b), keys [0, kb)) that
    the causal rule or `blocked` (…, Tq or 1, Tk or 1) forbid to `value`, by selection."""
    value = S.dtype.type(value)  # (a NumPy scalar: CuPy's copyto takes it in every version)
    if causal:  # only the band's diagonal block [a, b) × [a, kb) holds future keys
        backend.xp.copyto(S[..., a:], value, where=_future(b - a, kb - a))
    if blocked is not None:  # (an axis of size 1 broadcasts, so it is kept whole)
        rows = slice(a, b) if blocked.shape[-2] > 1 else slice(None)
        keys = slice(0, kb) if blocked.shape[-1] > 1 else slice(None)
        backend.xp.copyto(S, value, where=blocked[..., rows, keys])


class ScaledDotProductAttention(Function):
    # S = (s·Q) Kᵀ, masked,  P = softmax(S) (rows),  O = P V        (s = 1/√hs)
    # dV = Pᵀ dO;  dP = dO Vᵀ;  dS = P ⊙ (dP − D);  dQ = s · dS K;  dK = dSᵀ (s·Q)
    # where D = rowsum(dP ⊙ P) = rowsum(dO ⊙ O), one number per query: Σ_j P_ij (dO_i·V_j)
    # = dO_i·(Σ_j P_ij V_j) = dO_i·O_i (the identity FlashAttention uses), so D costs a pass
    # over the (Tq, hs) output instead of one over the (Tq, Tk) scores.
    # Masking sets the blocked scores to −inf (exp(−inf) is exactly 0) by selection, not by
    # adding a −inf bias: a blocked score that is +inf or NaN (a key holding inf) must not
    # make inf − inf = NaN; and backward sets dS to exactly 0 there (not P ⊙ (…) = 0 · NaN
    # when a query's row is NaN), as PyTorch's masked_fill does. (A non-finite value vector
    # still reaches every query whose P·V runs over it, 0 · inf being NaN, as in PyTorch.)
    # The scale is applied to Q (T·hs numbers) rather than to S (T·T numbers), and the
    # softmax runs in place on S: the T×T arrays are the cost of attention.
    # Leading dimensions broadcast (keys and values (B, 1, Tk, hs) shared by the heads of
    # queries (B, nh, Tq, hs): multi-query attention): everything is computed in the
    # broadcast shape, and the engine sums each gradient back to its input's shape.
    # Causal attention is computed in `n_bands` bands of queries: band [a, b) only needs keys
    # [0, b), so with n equal bands (n−1)/2n of the T×T work and memory (most of the masked
    # triangle) is skipped, 3/8 with 4 bands, 7/16 with 8; and since every key before a is
    # visible to the whole band, the causal rule only blocks keys in the band's diagonal
    # block [a, b) × [a, b) (a `blocked` mask of the user's applies to all of [a, b) × [0, b)).
    # The output (B, nh, Tq, hs) is a view of a (B, Tq, nh, hs) array, the layout the heads
    # are merged in: merging them afterwards is free, and O saved for backward is the same
    # buffer the output projection saves (counted once by minims.memory).
    int_to_float = True

    @staticmethod
    def forward(ctx, q, k, v, blocked=None, causal=False, scale=1.0, n_bands=1):
        xp = backend.xp
        Tq, Tk, hs = q.shape[-2], k.shape[-2], v.shape[-1]
        if blocked is not None and blocked.dtype != bool:
            raise TypeError(f"attention's blocked keys must be booleans, got {blocked.dtype}")
        if Tk == 0 and Tq > 0:
            raise ValueError("attention over 0 keys: every query needs a key to attend to "
                             "(its softmax would be 0/0)")
        if n_bands > 1 and not (causal and Tq == Tk):
            raise ValueError(f"attention in bands is causal, with as many queries as keys; "
                             f"got causal={causal}, {Tq} queries and {Tk} keys")
        lead = numpy.broadcast_shapes(q.shape[:-2], k.shape[:-2], v.shape[:-2],
                                      () if blocked is None else blocked.shape[:-2])  # (B, nh)
        qs = q * scale                                                # (B, nh, Tq, hs)
        if qs.shape[:-2] != lead:  # (the scores, and so dq, take the broadcast shape)
            qs = xp.ascontiguousarray(xp.broadcast_to(qs, lead + qs.shape[-2:]))
        # Contiguous operands: NumPy's batched matmul is slower on transposed views.
        kT = xp.ascontiguousarray(k.swapaxes(-1, -2))                 # (B, nh, hs, Tk)
        v = xp.ascontiguousarray(v)                                   # (B, nh, Tk, hs)
        if lead:
            out = xp.empty((*lead[:-1], Tq, lead[-1], hs), dtype=q.dtype)  # (B, Tq, nh, hs)
            out = out.swapaxes(-2, -3)                                # (B, nh, Tq, hs), a view
        else:
            out = xp.empty((Tq, hs), dtype=q.dtype)
        Ps = []
        for a, b, kb in _bands(Tq, Tk, n_bands):
            S = qs[..., a:b, :] @ kT[..., :kb]                        # (B, nh, b−a, kb)
            _block(S, -numpy.inf, causal, blocked, a, b, kb)
            if backend.fusing():  # one kernel (a new array) instead of two passes over S
                P = _exp_shifted(S, S.max(axis=-1, keepdims=True)) if S.size else S
            else:
                if S.size:  # (no maximum to take with no queries and no keys)
                    S -= S.max(axis=-1, keepdims=True)
                P = xp.exp(S, out=S)
            P *= 1 / _rowsum(P)
            xp.matmul(P, v[..., :kb, :], out=out[..., a:b, :])
            Ps.append(P)
        ctx.save(qs, kT, v, out, *Ps)
        ctx.scale, ctx.n_bands, ctx.causal, ctx.blocked = scale, n_bands, causal, blocked
        return out

    @staticmethod
    def backward(ctx, g):
        xp = backend.xp
        qs, kT, v, out, *Ps = ctx.saved
        lead, (Tq, Tk) = out.shape[:-2], (qs.shape[-2], v.shape[-2])
        g = xp.ascontiguousarray(g)                                   # (B, nh, Tq, hs)
        k = xp.ascontiguousarray(kT.swapaxes(-1, -2))                 # (B, nh, Tk, hs)
        vT = xp.ascontiguousarray(v.swapaxes(-1, -2))                 # (B, nh, hs, Tk)
        D = _rowsum(g * out)                                          # (B, nh, Tq, 1)
        # in the broadcast shape; the engine sums them back to each input's (`unbroadcast`)
        dq = xp.empty_like(qs)
        dk = xp.zeros((*lead, Tk, k.shape[-1]), dtype=k.dtype)
        dv = xp.zeros((*lead, Tk, v.shape[-1]), dtype=v.dtype)
        for (a, b, kb), P in zip(_bands(Tq, Tk, ctx.n_bands), Ps):
            gb = g[..., a:b, :]
            dv[..., :kb, :] += P.swapaxes(-1, -2) @ gb                # (B, nh, kb, hs)
            dS = gb @ vT[..., :kb]                                    # (B, nh, b−a, kb)
            if backend.fusing():
                dS = _softmax_grad(P, dS, D[..., a:b, :])
            else:
                dS -= D[..., a:b, :]
                dS *= P
            _block(dS, 0, ctx.causal, ctx.blocked, a, b, kb)
            xp.matmul(dS, k[..., :kb, :], out=dq[..., a:b, :])        # (B, nh, b−a, hs)
            dk[..., :kb, :] += dS.swapaxes(-1, -2) @ qs[..., a:b, :]
        dq *= ctx.scale
        return dq, dk, dv


def causal_bands(T):
    """(first query, end query, end key) of each band in which causal attention over T
    positions is computed (bands of ATTENTION_BAND_SIZE queries, one band for T ≤ that)."""
    return _bands(T, T, max(1, -(-T // ATTENTION_BAND_SIZE)))


def _bands(Tq, Tk, n_bands):
    """(first query, end query, end key) of each band: `n_bands` bands of ⌈Tq/n_bands⌉
    queries (the last one shorter when that does not divide Tq); with one band, everything."""
    if n_bands == 1:
        return [(0, Tq, Tk)]
    size = -(-Tq // n_bands)
    return [(a, min(a + size, Tq), min(a + size, Tq)) for a in range(0, Tq, size)]
