"""The one function API: `import minims.functional as F` (what torch.nn.functional is to PyTorch).

The layers (minims/nn), the models and your code call the ops through these functions; each op
itself is a `Function` class in minims/ops/, one family per file, its backward derived beside it:

- the neural-network ops (minims/ops/nn.py): `softmax`, `log_softmax`, `cross_entropy`, `gelu`,
  `layer_norm`, `linear`, `embedding`, `dropout`, `scaled_dot_product_attention`;
- joining tensors (minims/ops/basic.py, whose other ops are Tensor's operators and methods):
  `concat`, `stack`, `where`;
- changing scale causally (minims/ops/pooling.py, with the causality rule and its numbered
  pitfalls): `shorten`, `upsample`, `shift_right`, `pad_end`, `zero_steps`, `check_factor`;
- attention over ranges of keys (minims/ops/range_attention.py): `range_attention`,
  `local_ranges`.

The functions check their arguments and call `Op.apply`. The op classes are importable from here
too, for `Op.run` (the forward on plain arrays, no graph: the layers' decoding `step` methods) and
for reading their derivations (`inspect.getsource(F.LayerNorm)`).
"""
import functools
import math

import numpy

from . import backend
from .engine import Tensor
from .ops.basic import Concat, Stack, Where, as_rows
from .ops.nn import (ATTENTION_BAND_SIZE, GELU, CrossEntropy, Dropout, Embedding, LayerNorm, Linear,
                     LogSoftmax, ScaledDotProductAttention, Softmax, blocked_keys, causal_bands, normalize)
from .ops.pooling import ShiftPool, Upsample
from .ops.range_attention import RangeAttention

__all__ = ["softmax", "log_softmax", "cross_entropy", "gelu", "layer_norm", "linear", "embedding",
           "dropout", "scaled_dot_product_attention", "concat", "stack", "where", "shorten", "upsample",
           "shift_right", "pad_end", "zero_steps", "check_factor", "range_attention", "local_ranges",
           "normalize", "as_rows", "causal_bands", "blocked_keys", "ATTENTION_BAND_SIZE",
           "Softmax", "LogSoftmax", "CrossEntropy", "GELU", "LayerNorm", "Linear", "Embedding", "Dropout",
           "ScaledDotProductAttention", "Concat", "Stack", "Where", "ShiftPool", "Upsample", "RangeAttention"]


# --- the neural-network ops ------------------------------------------------------------------

def softmax(x, axis=-1):
    return Softmax.apply(x, axis=axis)


def log_softmax(x, axis=-1):
    return LogSoftmax.apply(x, axis=axis)


def gelu(x):
    return GELU.apply(x)


def layer_norm(x, weight, bias, eps=1e-5):
    return LayerNorm.apply(x, weight, bias, eps=float(eps))


def embedding(idx, weight):
    """Rows of `weight` (V, C) picked by integer ids of any shape → (*idx.shape, C)."""
    return Embedding.apply(weight, ids=_ids(idx))


def cross_entropy(logits, targets):
    """Mean cross-entropy over all positions: logits (..., V), integer targets (...)."""
    targets = _ids(targets)
    if targets.shape != logits.shape[:-1]:
        raise ValueError(f"targets shape {targets.shape} does not match logits {logits.shape}")
    return CrossEntropy.apply(logits, targets=targets)


def dropout(x, p, training=True):
    """Zero each entry with probability p during training (scaling the rest by 1/(1-p))."""
    if not 0.0 <= p < 1.0:
        raise ValueError(f"dropout probability must be in [0, 1), got {p}")
    if not training or p == 0.0:
        return x
    return Dropout.apply(x, p=float(p))  # a NumPy float64 p would promote float32


def linear(x, weight, bias=None):
    """x @ weight + bias with weight of shape (in, out) (bias optional)."""
    return Linear.apply(x, weight) if bias is None else Linear.apply(x, weight, bias)


def scaled_dot_product_attention(q, k, v, causal=True, mask=None, scale=None):
    """softmax(q kᵀ / √hs, masked) v for q (B, nh, Tq, hs), k (B, nh, Tk, hs) and v (B, nh,
    Tk, hs_v) → (B, nh, Tq, hs_v).

    The leading dimensions broadcast, as in a matrix product: k and v of shape (B, 1, Tk, hs)
    serve all nh heads (multi-query attention), and their gradients are summed over the
    heads. `mask` is an optional boolean "may attend" array broadcastable to (B, nh, Tq, Tk):
    (Tq, Tk), a key-padding mask (Tk,) or (B, 1, 1, Tk), one mask per head (1, nh, Tq, Tk), …;
    with `causal=True` (then Tq = Tk) it is combined with the causal rule, and the queries
    run in bands of ATTENTION_BAND_SIZE (skipping most of the blocked triangle). Raises
    ValueError for a query with no key it may attend to (not a NaN), for a causal call with
    Tq ≠ Tk, and for shapes that do not broadcast; TypeError for a non-boolean mask.
    """
    Tq, Tk, hs = q.shape[-2], k.shape[-2], q.shape[-1]
    if k.shape[-1] != hs or v.shape[-2] != Tk:
        raise ValueError(f"attention needs q (..., Tq, hs), k (..., Tk, hs) and v (..., Tk, hs_v); "
                         f"got q {tuple(q.shape)}, k {tuple(k.shape)} and v {tuple(v.shape)}")
    blocked = blocked_keys(mask, causal, Tq, Tk)
    try:
        numpy.broadcast_shapes(q.shape[:-2], k.shape[:-2], v.shape[:-2],
                               () if blocked is None else blocked.shape[:-2])
    except ValueError:
        raise ValueError(f"attention shapes do not broadcast: q {tuple(q.shape)}, k {tuple(k.shape)}, "
                         f"v {tuple(v.shape)}, mask {None if blocked is None else tuple(blocked.shape)}"
                         ) from None
    if scale is None:  # (head size 0: the output is empty whatever the scale)
        scale = 1.0 / math.sqrt(hs) if hs else 1.0
    n_bands = len(causal_bands(Tq)) if causal else 1
    return ScaledDotProductAttention.apply(q, k, v, blocked=blocked, causal=causal, scale=scale,
                                           n_bands=n_bands)


def _ids(idx):
    """An integer index array from a Tensor, NumPy or backend array, or list: a backend array
    stays where it is, anything else becomes a NumPy array (the op checks it on the host)."""
    ids = idx.data if isinstance(idx, Tensor) else idx
    if not backend.is_device_array(ids):
        ids = numpy.asarray(ids)
    if ids.dtype.kind not in "iu":
        raise TypeError(f"ids must be integers, got {ids.dtype}")
    return ids


# --- joining tensors ------------------------------------------------------------------------

def concat(tensors, axis=0):
    """Join tensors along an existing axis (negative counting from the end)."""
    if not len(tensors):
        raise ValueError("concat needs at least one tensor")
    return Concat.apply(*tensors, axis=axis)


def stack(tensors, axis=0):
    """Join tensors along a new axis (an axis of the result, negative counting from the end)."""
    if not len(tensors):
        raise ValueError("stack needs at least one tensor")
    return Stack.apply(*tensors, axis=axis)


def where(condition, a, b):
    """Pick from a where condition holds, else from b (gradients flow to a and b)."""
    if isinstance(condition, Tensor):
        condition = condition.data
    return Where.apply(a, b, condition=backend.asarray(condition))


# --- changing scale causally (the pitfalls: minims/ops/pooling.py) ------------------------------

def check_factor(k, T=None, pad=False):
    """k must be an integer ≥ 1; without padding also k ≤ T and k divides T."""
    if isinstance(k, bool) or not isinstance(k, (int, numpy.integer)) or k < 1:
        raise ValueError(f"pooling factor k must be an integer >= 1, got {k!r}")
    if T is None or pad:
        return
    if k > T:
        raise ValueError(f"pooling factor k={k} is larger than the sequence length T={T}")
    if T % k:
        raise ValueError(f"sequence length T={T} is not divisible by k={k}: pass pad=True to pad "
                         f"at the end (then crop after upsampling with upsample(..., T={T}))")


def zero_steps(x, n):
    """A constant (B, n, …) block of zeros in x's dtype."""
    return Tensor(backend.xp.zeros((x.shape[0], n) + tuple(x.shape[2:]), dtype=x.dtype))


def pad_end(x, k):
    """Zero-pad axis 1 of (B, T, …) at the END up to a multiple of k (pitfall 5)."""
    n = (-x.shape[1]) % k
    return x if n == 0 else concat([x, zero_steps(x, n)], axis=1)


def shift_right(x, n):
    """Shift axis 1 right by n steps: zeros enter at the start, the last n steps fall off."""
    T = x.shape[1]
    if n == 0:  # x[:, :T-0] is fine, but a zero shift needs no op at all (pitfall 6)
        return x
    n = min(n, T)
    if n == T:
        return zero_steps(x, T)
    return concat([zero_steps(x, n), x[:, :T - n]], axis=1)


def shorten(x, k, shift=True, pad=False):
    """(B, T, …) → (B, T/k, …): shift right by k−1 (`shift=True`), then mean of each block of k.

    With `pad=True`, T need not be a multiple of k (nor ≥ k): zeros are added at the end and
    the result has ⌈T/k⌉ steps. k = 1 returns x itself.
    """
    check_factor(k, x.shape[1], pad)
    if pad:
        x = pad_end(x, k)
    if k == 1:
        return x
    return ShiftPool.apply(x, k=k, shift=k - 1 if shift else 0)


def upsample(x, k, T=None):
    """(B, Tc, …) → (B, Tc·k, …): repeat each coarse step k times; crop to the first T steps."""
    check_factor(k)
    y = x if k == 1 else Upsample.apply(x, k=k)
    if T is None or T == y.shape[1]:
        return y
    if not (x.shape[1] - 1) * k < T <= y.shape[1]:
        raise ValueError(f"cannot crop {x.shape[1]} coarse steps × k={k} to T={T} fine steps")
    return y[:, :T]


# --- attention over ranges of keys -----------------------------------------------------------

def _check_ranges(ranges, Tq, lengths):
    ranges = tuple((numpy.asarray(lo, dtype=numpy.int64), numpy.asarray(hi, dtype=numpy.int64))
                   for lo, hi in ranges)
    if len(ranges) != len(lengths):
        raise ValueError(f"{len(lengths)} key sets but {len(ranges)} ranges")
    seen = numpy.zeros(Tq, dtype=numpy.int64)
    for (lo, hi), n in zip(ranges, lengths):
        if lo.shape != (Tq,) or hi.shape != (Tq,):
            raise ValueError(f"ranges must be arrays of shape ({Tq},), got {lo.shape} and {hi.shape}")
        if (lo < 0).any() or (hi > n).any():
            raise ValueError(f"a key range falls outside the {n} keys of its set")
        seen += numpy.maximum(hi - lo, 0)
    if (seen == 0).any():
        raise ValueError(f"query {int(numpy.argmin(seen))} has no key to attend to "
                         "(its softmax would be 0/0)")
    return ranges


def range_attention(q, keyvals, ranges, chunk=64, scale=None):
    """softmax(q Kᵀ/√hs) V where query t sees keys [lo_s[t], hi_s[t]) of each key set s.

    q (B, nh, T, hs); keyvals a list of (k_s, v_s), each (B, nh, T_s, hs); ranges a list of
    (lo_s, hi_s) integer arrays of shape (T,). Leading axes broadcast (k_s, v_s of shape
    (B, 1, T_s, hs) serve every head; their gradients are summed over the heads). Saves
    O(T·(chunk + range widths)) per head. Raises ValueError for ranges that leave a query
    with no key, fall outside their key set or do not match T.
    """
    Tq, hs = q.shape[-2], q.shape[-1]
    ranges = _check_ranges(ranges, Tq, [k.shape[-2] for k, _ in keyvals])
    scale = 1.0 / math.sqrt(hs) if scale is None else scale
    flat = [a for pair in keyvals for a in pair]
    return RangeAttention.apply(q, *flat, ranges=ranges, scale=scale, chunk=int(chunk))


@functools.lru_cache(maxsize=64)
def local_ranges(T, window):
    """Query t sees the tokens [max(0, t−w+1), t]: the last w, itself included."""
    t = numpy.arange(T)
    lo, hi = numpy.maximum(0, t - window + 1), t + 1
    lo.flags.writeable = hi.flags.writeable = False
    return ((lo, hi),)
