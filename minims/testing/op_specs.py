"""One spec per registered op: how to draw its inputs, call it, and compute it in NumPy.

`tests/test_gradcheck.py` runs every spec through the generic harness (minims/testing/gradcheck.py)
and fails when a registered op has none; lessons 03 and 04 run them too. To add an op: register
its Function, then add a spec here. Drawing inputs needs hypothesis, a test dependency
(`pip install -e '.[test]'`): import this module only where that is installed.
"""
import math
from fractions import Fraction

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra.numpy import array_shapes, mutually_broadcastable_shapes

import minims
import minims.functional as F
from minims.testing.gradcheck import OpSpec

SMALL = dict(min_dims=1, max_dims=3, min_side=1, max_side=4)


# --- what users write: zero-size dimensions, axes in every spelling ------------------------

def maybe_empty(draw, shape):
    """`shape`, or one time in five the same shape with one dimension of length 0."""
    shape = tuple(shape)
    if shape and draw(st.integers(0, 4)) == 0:
        i = draw(st.integers(0, len(shape) - 1))
        shape = shape[:i] + (0,) + shape[i + 1:]
    return shape


def shapes(draw, min_dims=1, max_dims=3, min_side=1, max_side=4, empty=True):
    shape = draw(array_shapes(min_dims=min_dims, max_dims=max_dims, min_side=min_side, max_side=max_side))
    return maybe_empty(draw, shape) if empty else shape


def spelled(draw, axis, n):
    """Axis `axis` (in [0, n)) as a user may write it: as is, or counted from the end."""
    return axis - n if draw(st.booleans()) else axis


def axis_option(draw, ndim, none=True, tuples=True):
    """An axis argument for a tensor of `ndim` dims: None, an int or a tuple of distinct
    axes (possibly empty, in any order), each entry spelled positive or negative."""
    kinds = (["none"] if none else []) + (["int"] if ndim else []) + (["tuple"] if tuples else [])
    kind = draw(st.sampled_from(kinds))
    if kind == "none":
        return None
    if kind == "int":
        return spelled(draw, draw(st.integers(0, ndim - 1)), ndim)
    axes = draw(st.lists(st.integers(0, ndim - 1), unique=True, max_size=ndim)) if ndim else []
    return tuple(spelled(draw, a, ndim) for a in axes)


def values(draw, shape, low=-2.0, high=2.0, away_from_zero=0.0):
    """Random float64 values for `shape`, from a hypothesis-drawn seed (fast, shrinkable)."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    x = rng.uniform(low, high, size=shape)
    if away_from_zero:
        x = np.sign(x + (x == 0)) * (away_from_zero + np.abs(x))
    return x


def with_nonfinite(draw, arrays, which=None):
    """The drawn inputs with some entries replaced by +inf, −inf or NaN (a drawn choice of
    those: only −inf, say, as masks write it): each entry of each input that may hold them
    (all, or the indices `which`) with a drawn probability, and at least one entry in all."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    kinds = sorted(draw(st.sets(st.sampled_from([np.inf, -np.inf, np.nan]), min_size=1)), key=str)
    rate = draw(st.sampled_from([0.1, 0.3, 1.0]))
    arrays = [np.array(a, dtype=np.float64) for a in arrays]
    eligible = [i for i, a in enumerate(arrays) if a.size and (which is None or i in which)]
    for i in eligible:
        hit = rng.random(arrays[i].shape) < rate
        arrays[i][hit] = rng.choice(kinds, size=int(hit.sum()))
    if eligible:
        i = eligible[draw(st.integers(0, len(eligible) - 1))]
        arrays[i].flat[rng.integers(arrays[i].size)] = rng.choice(kinds)
    return arrays


def rows(draw, shape, low=-2.0, high=2.0):
    """Values for normalisations over the last axis: random rows, some of them constant,
    and a large common offset (0, ±1e3 or ±1e6) on every row (the hard cases of a mean)."""
    x = values(draw, shape, low, high)
    if x.size and draw(st.booleans()):
        constant = np.random.default_rng(draw(st.integers(0, 99))).random(shape[:-1]) < 0.5
        x = np.where(constant[..., None], x[..., :1], x)
    return x + draw(st.sampled_from([0.0, 1e3, -1e3, 1e6, -1e6]))


def distinct(draw, shape):
    """Values whose entries differ by at least 0.1 (no near-ties for max)."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    n = int(np.prod(shape))
    return (rng.permutation(n) * 0.1 - 0.05 * n).reshape(shape) + rng.uniform(0, 0.01, size=shape)


def binary(low=-2.0, high=2.0, b_away=0.0):
    def draw_inputs(draw):
        s = draw(mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=3, max_side=3,
                                               min_side=draw(st.sampled_from([1, 1, 1, 0]))))
        a_shape, b_shape = s.input_shapes
        return [values(draw, a_shape, low, high), values(draw, b_shape, low, high, b_away)], {}
    return draw_inputs


def unary(low=-2.0, high=2.0, away_from_zero=0.0):
    def draw_inputs(draw):
        shape = shapes(draw, **SMALL)
        return [values(draw, shape, low, high, away_from_zero)], {}
    return draw_inputs


def draw_pow(draw):
    """Exponents users write, 0 and 1 included, with exact zeros among the points wherever
    the derivative is finite there (integer p ≥ 0); else away from the singularity at 0."""
    p = draw(st.sampled_from([0, 1, 2, 3, 4, 5, -1, -2, 0.5, 1.5, -1.5, 2.5]))
    shape = shapes(draw, **SMALL)
    if float(p).is_integer() and p >= 0:
        x = values(draw, shape)
        x[np.random.default_rng(draw(st.integers(0, 99))).random(shape) < 0.3] = 0.0
    elif float(p).is_integer():
        x = values(draw, shape, 0.5, 2.0) * np.where(values(draw, shape) > 0, 1, -1)
    else:
        x = values(draw, shape, 0.5, 2.0)
    return [x], dict(p=p)


def draw_reduce(draw, distinct_values=False):
    shape = shapes(draw, min_dims=0, max_dims=3, max_side=4)
    x = distinct(draw, shape) if distinct_values else values(draw, shape)
    return [x], dict(axis=axis_option(draw, len(shape)), keepdims=draw(st.booleans()))


def draw_transpose(draw):
    shape = shapes(draw, min_dims=0, max_dims=4, max_side=4)
    n = len(shape)
    axes = None if draw(st.integers(0, 4)) == 0 else tuple(
        spelled(draw, a, n) for a in draw(st.permutations(range(n))))
    return [values(draw, shape)], dict(axes=axes)


def draw_matmul(draw):
    n, k, m = (draw(st.integers(0, 4)) for _ in range(3))
    batch = draw(mutually_broadcastable_shapes(num_shapes=2, max_dims=2, max_side=3))
    a_batch, b_batch = batch.input_shapes
    return [values(draw, a_batch + (n, k)), values(draw, b_batch + (k, m))], {}


def draw_reshape(draw):
    shape, new = draw(st.sampled_from([((2, 3, 4), (6, 4)), ((2, 3, 4), (24,)),
                                        ((2, 3, 4), (4, 3, 2)), ((2, 3, 4), (-1, 2)),
                                        ((2, 0, 4), (0,)), ((2, 0, 4), (4, 0, 2)),
                                        ((2, 0, 4), (-1, 8)), ((), (1, 1)), ((1,), ())]))
    return [values(draw, shape)], dict(shape=new)


def draw_getitem(draw):
    shape = draw(array_shapes(min_dims=1, max_dims=3, min_side=2, max_side=4))
    kind = draw(st.sampled_from(["slice", "int", "fancy", "bool"]))
    if kind == "slice":
        index = (slice(draw(st.integers(0, 1)), None, draw(st.integers(1, 2))),)
    elif kind == "int":
        index = (draw(st.integers(-shape[0], shape[0] - 1)),)
    elif kind == "fancy":  # repeated indices must accumulate
        index = (np.array(draw(st.lists(st.integers(0, shape[0] - 1), min_size=1, max_size=6))),)
    else:
        index = (np.array(draw(st.lists(st.booleans(), min_size=shape[0], max_size=shape[0]))),)
    return [values(draw, shape)], dict(index=index if len(index) > 1 else index[0])


def draw_several(draw, same_shape):
    n = draw(st.integers(1, 3))
    shape = shapes(draw, min_dims=1, max_dims=3, max_side=3)
    ndim = len(shape) + (1 if same_shape else 0)       # stack's axis is one of its result
    axis = draw(st.integers(0, ndim - 1))
    shapes_ = []
    for _ in range(n):
        s = list(shape)
        if not same_shape:
            s[axis] = draw(st.integers(0, 3))
        shapes_.append(tuple(s))
    return [values(draw, s) for s in shapes_], dict(axis=spelled(draw, axis, ndim))


def draw_where(draw):
    s = draw(mutually_broadcastable_shapes(num_shapes=3, min_dims=0, max_dims=3, max_side=3,
                                           min_side=draw(st.sampled_from([1, 1, 1, 0]))))
    c_shape, a_shape, b_shape = s.input_shapes
    cond = np.random.default_rng(draw(st.integers(0, 99))).random(c_shape) > 0.5
    return [values(draw, a_shape), values(draw, b_shape)], dict(condition=cond)


def draw_softmax(draw, low=-3.0, high=3.0):
    shape = shapes(draw, min_dims=1, max_dims=3, max_side=5)
    return [rows(draw, shape, low, high)], dict(axis=axis_option(draw, len(shape)))


def draw_layer_norm(draw):
    shape = shapes(draw, min_dims=1, max_dims=3, min_side=2, max_side=5)
    C = shape[-1]
    return [rows(draw, shape), values(draw, (C,), 0.5, 1.5), values(draw, (C,))], {}


def draw_linear(draw):
    lead = shapes(draw, min_dims=1, max_dims=3, max_side=3)
    n_in, n_out = draw(st.integers(0, 4)), draw(st.integers(0, 4))
    arrays = [values(draw, lead + (n_in,)), values(draw, (n_in, n_out))]
    if draw(st.booleans()):
        arrays.append(values(draw, (n_out,)))
    return arrays, {}


def draw_embedding(draw):
    V, C = draw(st.integers(1, 5)), draw(st.integers(0, 4))
    idx_shape = shapes(draw, min_dims=1, max_dims=2, max_side=4)
    idx = np.random.default_rng(draw(st.integers(0, 99))).integers(0, V, size=idx_shape)
    return [values(draw, (V, C))], dict(idx=idx)


def draw_cross_entropy(draw):
    shape = shapes(draw, min_dims=1, max_dims=2, max_side=4)
    V = draw(st.integers(1, 6))
    targets = np.random.default_rng(draw(st.integers(0, 99))).integers(0, V, size=shape)
    return [rows(draw, shape + (V,), -3, 3)], dict(targets=targets)


def draw_dropout(draw):
    shape = shapes(draw, **SMALL)
    return [values(draw, shape)], dict(p=draw(st.sampled_from([0.1, 0.5])), seed=draw(st.integers(0, 99)))


def broadcasting_to(draw, lead):
    """A shape that broadcasts to `lead`: `lead` itself half the time, else `lead` with some
    sizes 1 and perhaps fewer leading axes (keys shared by the heads: (B, 1); one batch: ())."""
    if draw(st.booleans()):
        return lead
    shape = tuple(1 if draw(st.booleans()) else n for n in lead)
    return shape[draw(st.integers(0, len(shape))):]


def attention_mask(draw, lead, Tq, Tk):
    """None, or a boolean "may attend" mask of a shape that broadcasts to (*lead, Tq, Tk):
    (…, Tq, Tk), a key-padding mask (Tk,) or (B, 1, 1, Tk), one per head, … Random, but every
    query keeps a key it may attend to under the causal rule too (key 0 when the mask's
    rows are broadcast; else query i's key min(i, Tk − 1))."""
    if not draw(st.booleans()) or not Tq:
        return None
    rows = draw(st.sampled_from([Tq, 1]))
    shape = (Tk,) if rows == 1 and draw(st.booleans()) else broadcasting_to(draw, lead) + (rows, Tk)
    mask = np.random.default_rng(draw(st.integers(0, 99))).random(shape) > 0.4
    if rows == 1:
        mask[..., 0] = True
    else:
        mask[..., np.arange(Tq), np.minimum(np.arange(Tq), Tk - 1)] = True
    return mask


def draw_attention(draw):
    """q (…, Tq, hs), k and v (…, Tk, hs) whose leading axes (B, nh) broadcast, causal or not,
    with or without a mask of any shape that broadcasts."""
    lead = (draw(st.integers(0, 2)), draw(st.integers(1, 2)))                  # (B, nh)
    hs, Tq = draw(st.integers(0, 4)), draw(st.integers(0, 5))
    causal = draw(st.booleans())
    Tk = Tq if causal else draw(st.integers(1, 5))
    q, k, v = (values(draw, broadcasting_to(draw, lead) + (T, hs)) for T in (Tq, Tk, Tk))
    return [q, k, v], dict(causal=causal, mask=attention_mask(draw, lead, Tq, Tk))


# --- NumPy references (written independently of the library) -----------------------------

def ref_softmax(x, axis):
    if x.size == 0:
        return x * 1.0
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def ref_gelu(x):
    return 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))


def ref_layer_norm(x, w, b):
    """x − μ in exact rational arithmetic, rounded once: an accurate reference for rows with
    a large offset too (NumPy's x − x.mean() is off by ~1e-10 at 1e6)."""
    C = x.shape[-1]
    flat = x.reshape(int(np.prod(x.shape[:-1])), C)
    centred = []
    for row in flat:
        if not np.isfinite(row).all():  # (no fractions of inf or NaN: the row is NaN anyway)
            centred.append(row - row.mean())
            continue
        mu = sum(map(Fraction, row)) / C if C else 0
        centred.append([float(Fraction(v) - mu) for v in row])
    xc = np.array(centred, dtype=np.float64).reshape(x.shape)
    return xc / np.sqrt((xc * xc).mean(-1, keepdims=True) + 1e-5) * w + b


def exact_layer_norm(arrays, options, out):
    """A constant row (nothing to normalise) comes out as exactly the bias."""
    x, w, b = arrays
    constant = (x == x[..., :1]).all(axis=-1)
    np.testing.assert_array_equal(out[constant], np.broadcast_to(b, out.shape)[constant],
                                  err_msg="a constant row must give exactly the bias")


def ref_cross_entropy(logits, targets):
    logp = ref_log_softmax(logits, -1)
    return -np.take_along_axis(logp, targets[..., None], -1).mean()


def ref_log_softmax(x, axis):
    """log softmax as x − max − log Σ exp(x − max) (a plain log of the softmax underflows)."""
    if x.size == 0:
        return x * 1.0
    shifted = x - x.max(axis=axis, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))


def ref_attention(q, k, v, causal, mask):
    """Dense scores for every (query, key) pair (leading axes broadcast by NumPy's matmul),
    −inf where the mask or the causal rule forbids, softmax, times v."""
    Tq, Tk = q.shape[-2], k.shape[-2]
    allowed = np.ones((Tq, Tk), bool) if mask is None else mask
    if causal:
        allowed = allowed & np.tril(np.ones((Tq, Tk), bool))
    if not allowed.any(axis=-1).all():  # softmax over no keys: 0/0, an error in minims
        raise ValueError("a query with no key to attend to")
    s = q @ np.swapaxes(k, -1, -2) / math.sqrt(q.shape[-1])
    s = np.where(allowed, s, -np.inf)
    return ref_softmax(s, -1) @ v


def draw_banded_attention(draw):
    """Causal attention in bands of queries (the path long sequences take), at small T; any T:
    bands of ⌈T/n⌉ queries with a shorter last one (T = 7, n = 3: 3, 3 and 1 queries), or
    fewer than n bands; leading axes that broadcast and masks of any shape, as above."""
    n_bands = draw(st.sampled_from([2, 3, 4]))
    T = draw(st.integers(1, 9))
    lead, hs = (draw(st.integers(1, 2)), draw(st.integers(1, 2))), draw(st.integers(1, 4))
    arrays = [values(draw, broadcasting_to(draw, lead) + (T, hs)) for _ in range(3)]
    return arrays, dict(n_bands=n_bands, mask=attention_mask(draw, lead, T, T))


def call_banded_attention(q, k, v, n_bands, mask):
    T = q.shape[-2]
    return F.ScaledDotProductAttention.apply(
        q, k, v, blocked=F.blocked_keys(mask, True, T, T), causal=True,
        scale=1 / math.sqrt(q.shape[-1]), n_bands=n_bands)


def call_transpose(a, axes):
    return a.transpose() if axes is None else a.transpose(*axes)


def ref_dropout(x, p, seed):
    """x / (1 − p) where kept, 0 where dropped (an inf or NaN dropped is 0 too)."""
    keep = np.random.default_rng(seed).random(x.shape) >= p
    return np.where(keep, x / (1 - p), 0.0)


def call_dropout(x, p, seed):
    minims.backend.manual_seed(seed)  # the same mask for every evaluation of the op
    return F.dropout(x, p, training=True)


# --- scale operators and range attention (minims/ops/pooling.py, minims/ops/range_attention.py)

def draw_shift_pool(draw):
    k, Tc = draw(st.integers(1, 4)), draw(st.integers(1, 3))
    shape = (draw(st.integers(1, 2)), k * Tc) + draw(array_shapes(min_dims=1, max_dims=2, max_side=3))
    return [values(draw, shape)], dict(k=k, shift=draw(st.integers(0, k - 1)))


def ref_shift_pool(x, k, shift):
    """y_j = mean of x_{jk+r−shift} over r < k, with zeros before the start (loops, no reshape)."""
    out = np.zeros((x.shape[0], x.shape[1] // k) + x.shape[2:])
    for j in range(out.shape[1]):
        for r in range(k):
            if j * k + r - shift >= 0:
                out[:, j] += x[:, j * k + r - shift] / k
    return out


def draw_upsample(draw):
    shape = (draw(st.integers(1, 2)), draw(st.integers(1, 3))) + draw(array_shapes(min_dims=1, max_dims=2, max_side=3))
    return [values(draw, shape)], dict(k=draw(st.integers(1, 4)))


def ref_upsample(x, k):
    return np.stack([x[:, t // k] for t in range(x.shape[1] * k)], axis=1)


def draw_range_attention(draw):
    B_, nh, hs, Tq = (draw(st.integers(1, n)) for n in (2, 2, 3, 6))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    lengths = [draw(st.integers(1, 5)) for _ in range(draw(st.integers(1, 3)))]
    ranges = []
    for n in lengths:
        lo = rng.integers(0, n + 1, size=Tq)
        ranges.append((lo, np.minimum(n, lo + rng.integers(0, n + 1, size=Tq))))
    for t in range(Tq):  # every query keeps at least one key
        if all(hi[t] <= lo[t] for lo, hi in ranges):
            lo, hi = ranges[0]
            lo[t] = rng.integers(0, lengths[0])
            hi[t] = lo[t] + 1
    lead = (B_, nh)                                   # (leading axes that broadcast)
    arrays = [values(draw, broadcasting_to(draw, lead) + (Tq, hs))]
    for n in lengths:
        arrays += [values(draw, broadcasting_to(draw, lead) + (n, hs)) for _ in range(2)]
    return arrays, dict(ranges=ranges, chunk=draw(st.integers(1, Tq + 1)))


def call_range_attention(q, *kv, ranges, chunk):
    return F.range_attention(q, list(zip(kv[0::2], kv[1::2])), ranges, chunk=chunk)


def ref_range_attention(q, *kv, ranges, chunk):
    """Dense attention over all key sets concatenated, masked outside each query's ranges."""
    lead = np.broadcast_shapes(*(a.shape[:-2] for a in (q, *kv)))
    kv = [np.broadcast_to(a, lead + a.shape[-2:]) for a in kv]
    k, v = np.concatenate(kv[0::2], axis=-2), np.concatenate(kv[1::2], axis=-2)
    allowed = []
    for s, (lo, hi) in enumerate(ranges):
        j = np.arange(kv[2 * s].shape[-2])[None, :]
        allowed.append((j >= lo[:, None]) & (j < hi[:, None]))
    allowed = np.concatenate(allowed, axis=-1)                        # (Tq, Σ T_s)
    scores = np.where(allowed, q @ np.swapaxes(k, -1, -2) / math.sqrt(q.shape[-1]), -np.inf)
    return ref_softmax(scores, -1) @ v


SPECS = {
    "Add": OpSpec(binary(), lambda a, b: a + b, np.add),
    "Sub": OpSpec(binary(), lambda a, b: a - b, np.subtract),
    "Mul": OpSpec(binary(), lambda a, b: a * b, np.multiply),
    "Div": OpSpec(binary(b_away=0.5), lambda a, b: a / b, np.divide,
                  integer_kinds=("int",)),  # (a boolean divisor is mostly a division by 0)
    "Neg": OpSpec(unary(), lambda a: -a, np.negative),
    "Pow": OpSpec(draw_pow, lambda a, p: a ** p, lambda a, p: np.power(a, p)),
    "MatMul": OpSpec(draw_matmul, lambda a, b: a @ b, np.matmul),
    "Sum": OpSpec(draw_reduce, lambda a, **o: a.sum(**o), lambda a, **o: np.sum(a, **o)),
    # (not an op of its own: Sum, then Div by the count; an axis argument all the same)
    "Tensor.mean": OpSpec(draw_reduce, lambda a, **o: a.mean(**o), lambda a, **o: np.mean(a, **o)),
    "Max": OpSpec(lambda d: draw_reduce(d, distinct_values=True),
                  lambda a, **o: a.max(**o), lambda a, **o: np.max(a, **o)),
    "Exp": OpSpec(unary(), lambda a: a.exp(), np.exp),
    "Log": OpSpec(unary(0.2, 3.0), lambda a: a.log(), np.log),
    "Tanh": OpSpec(unary(), lambda a: a.tanh(), np.tanh),
    "Sqrt": OpSpec(unary(0.2, 3.0), lambda a: a.sqrt(), np.sqrt),
    "ReLU": OpSpec(unary(away_from_zero=0.1), lambda a: a.relu(),
                   lambda a: np.maximum(a, np.zeros((), a.dtype))),
    "Reshape": OpSpec(draw_reshape, lambda a, shape: a.reshape(shape), lambda a, shape: a.reshape(shape)),
    "Transpose": OpSpec(draw_transpose, call_transpose, lambda a, axes: np.transpose(a, axes)),
    # (a cast picks its dtype itself: no integer-operand rule to check)
    "Cast": OpSpec(unary(), lambda a: a.astype("float32").astype("float64"),
                   lambda a: a.astype(np.float32).astype(np.float64), atol=1e-4, rtol=1e-4, eps=1e-2,
                   integer_kinds=()),
    "GetItem": OpSpec(draw_getitem, lambda a, index: a[index], lambda a, index: a[index]),
    "Concat": OpSpec(lambda d: draw_several(d, same_shape=False),
                     lambda *ts, axis: minims.concat(ts, axis=axis),
                     lambda *xs, axis: np.concatenate(xs, axis=axis)),
    "Stack": OpSpec(lambda d: draw_several(d, same_shape=True),
                    lambda *ts, axis: minims.stack(ts, axis=axis),
                    lambda *xs, axis: np.stack(xs, axis=axis)),
    "Where": OpSpec(draw_where, lambda a, b, condition: minims.where(condition, a, b),
                    lambda a, b, condition: np.where(condition, a, b)),
    # fused ops
    "Softmax": OpSpec(draw_softmax, lambda x, axis: F.softmax(x, axis), ref_softmax),
    "LogSoftmax": OpSpec(draw_softmax, lambda x, axis: F.log_softmax(x, axis), ref_log_softmax),
    "GELU": OpSpec(unary(-4.0, 4.0), F.gelu, ref_gelu),
    # (on a constant row the op is sharply curved, r = 1/√eps ≈ 316: central differences
    # are good to ~1e-5 there)
    "LayerNorm": OpSpec(draw_layer_norm, F.layer_norm, ref_layer_norm, exact=exact_layer_norm,
                        rtol=2e-5, atol=1e-7),
    "Linear": OpSpec(draw_linear, F.linear, lambda x, w, b=None: x @ w if b is None else x @ w + b),
    "Embedding": OpSpec(draw_embedding, lambda w, idx: F.embedding(idx, w), lambda w, idx: w[idx]),
    "CrossEntropy": OpSpec(draw_cross_entropy, F.cross_entropy, ref_cross_entropy),
    "Dropout": OpSpec(draw_dropout, call_dropout, ref_dropout),
    # (non-finite values in q and k only: one in v reaches every query whose P·V runs over
    # it, 0 · inf being NaN, so which outputs turn NaN depends on how the op tiles its keys)
    "ScaledDotProductAttention": OpSpec(draw_attention, F.scaled_dot_product_attention, ref_attention,
                                        nonfinite_inputs=(0, 1)),
    "ScaledDotProductAttention (bands)": OpSpec(
        draw_banded_attention, call_banded_attention,
        lambda q, k, v, n_bands, mask: ref_attention(q, k, v, causal=True, mask=mask),
        nonfinite_inputs=(0, 1)),
    # scale operators and range attention (minims/ops/pooling.py, minims/ops/range_attention.py)
    "ShiftPool": OpSpec(draw_shift_pool, lambda x, k, shift: F.ShiftPool.apply(x, k=k, shift=shift),
                        ref_shift_pool),
    "Upsample": OpSpec(draw_upsample, lambda x, k: F.Upsample.apply(x, k=k), ref_upsample),
    "RangeAttention": OpSpec(draw_range_attention, call_range_attention, ref_range_attention,
                             nonfinite_inputs=(0, 1, 3, 5)),  # q and the keys (see above)
}


# --- the edge cases, spelled out ---------------------------------------------------------------
# Hypothesis draws the kinds above at random, 50 examples a spec; these inputs are checked
# on every run whatever it draws (tests/test_gradcheck.py::test_op_edge_cases).

def _x(*shape, seed=0, low=-2.0, high=2.0):
    return np.random.default_rng(seed).uniform(low, high, size=shape)


def _distinct(*shape):
    return np.random.default_rng(0).permutation(int(np.prod(shape))).reshape(shape) * 0.1


def _constant_and_offset_rows(C, offset):
    x = _x(3, C) + offset
    x[1] = x[1, 0]                                  # a constant row
    return x


_PERMUTATIONS = [(-1, 0, 1), (2, -3, -2), (-2, -1, -3), (1, 0, -1)]
EXAMPLES = {
    "Add": [([_x(0, 3), _x(1, 3)], {}), ([_x(2, 1), _x(0)], {})],
    "Mul": [([_x(0, 3), _x(3)], {})],
    "Exp": [([_x(2, 0)], {})],
    "Pow": [([np.array([0.0, 1.0, -2.0])], dict(p=p)) for p in (0, 1, 2, 3, 0.0, 1.0)]
           + [([_x(0, 2, low=0.5)], dict(p=0.5))],
    "MatMul": [([_x(3, 4), _x(4, 0)], {}), ([_x(0, 4), _x(4, 2)], {}), ([_x(3, 0), _x(0, 2)], {}),
               ([_x(2, 3, 4), _x(4, 0)], {})],
    "Sum": [([_x(2, 3, 4)], dict(axis=a, keepdims=k)) for a in (-1, (-1, 0), (2, -2), None, ())
            for k in (False, True)] + [([_x(0, 3)], dict(axis=0, keepdims=False)),
                                       ([_x(0, 3)], dict(axis=-1, keepdims=True))],
    "Tensor.mean": [([_x(2, 3, 4)], dict(axis=a)) for a in (-1, (-1, -3), None, ())]
                   + [([_x(0, 3)], dict(axis=0)), ([_x(0, 3)], dict(axis=-1)),
                      ([np.full((2, 7), 0.1)], dict(axis=-1))],
    "Max": [([_distinct(2, 3, 4)], dict(axis=a)) for a in (-1, (-1, 1), (0, -2), None)]
           + [([_x(0, 3)], dict(axis=0)), ([_x(0, 3)], dict(axis=-1)), ([_x(0, 3)], dict(axis=None))],
    "Transpose": [([_x(2, 3, 4)], dict(axes=p)) for p in _PERMUTATIONS]
                 + [([_x(2, 2, 2)], dict(axes=p)) for p in _PERMUTATIONS]
                 + [([_x(2, 0, 3)], dict(axes=(-1, 0, 1))), ([_x()], dict(axes=())),
                    ([_x(2, 3, 4)], dict(axes=None))],
    "Concat": [([_x(2, 0), _x(2, 3)], dict(axis=-1)), ([_x(0, 3), _x(2, 3)], dict(axis=-2)),
               ([_x(2, 3, 1), _x(2, 3, 2)], dict(axis=-1))],
    "Stack": [([_x(2, 3), _x(2, 3)], dict(axis=-1)), ([_x(2, 3), _x(2, 3)], dict(axis=-3)),
              ([_x(0, 3), _x(0, 3)], dict(axis=-2))],
    "Where": [([_x(0, 3), _x(3)], dict(condition=np.ones((0, 3), bool)))],
    "Softmax": [([_x(3, 4)], dict(axis=a)) for a in (-2, (-1, 0), None, ())]
               + [([_constant_and_offset_rows(5, o)], dict(axis=-1)) for o in (0.0, 1e6, -1e6)]
               + [([_x(3, 0)], dict(axis=-1)), ([_x(0, 4)], dict(axis=0))],
    "LogSoftmax": [([_x(3, 4)], dict(axis=a)) for a in (-2, (-1, 0), None)]
                  + [([_constant_and_offset_rows(5, o)], dict(axis=-1)) for o in (0.0, 1e6)]
                  + [([_x(3, 0)], dict(axis=-1))],
    "LayerNorm": [([_constant_and_offset_rows(7, o), _x(7, low=0.5), _x(7)], {})
                  for o in (0.0, 1e3, 1e6, -1e6)]
                 + [([np.full((2, 7), 1e6), np.ones(7), np.zeros(7)], {}),
                    ([_x(0, 4), _x(4), _x(4)], {}), ([_x(3, 0), _x(0), _x(0)], {})],
    "Linear": [([_x(2, 0), _x(0, 3), _x(3)], {}), ([_x(0, 2), _x(2, 3), _x(3)], {}),
               ([_x(2, 3), _x(3, 0)], {})],
    "Embedding": [([_x(5, 0)], dict(idx=np.array([[0, 4]]))), ([_x(5, 3)], dict(idx=np.zeros((0,), int)))],
    "CrossEntropy": [([_x(0, 5)], dict(targets=np.zeros(0, int))),
                     ([_constant_and_offset_rows(5, 1e6)], dict(targets=np.array([0, 3, 4])))],
    "ScaledDotProductAttention": [
        ([_x(1, 2, 0, 4), _x(1, 2, 3, 4), _x(1, 2, 3, 4)], dict(causal=False, mask=None)),
        ([_x(1, 2, 3, 0)] * 3, dict(causal=True, mask=None)),
        ([_x(0, 2, 3, 4)] * 3, dict(causal=True, mask=None)),
        ([_x(1, 1, 2, 4), _x(1, 1, 0, 4), _x(1, 1, 0, 4)], dict(causal=False, mask=None))],  # raises
}
