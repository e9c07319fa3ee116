"""Attention to a few ranges of keys per query, holding O(T·width) activations, not O(T²):
the `RangeAttention` op and its functional form `range_attention`.

The memory side of the multi-scale models: the top-down model's local attention (a window
of w tokens, "memory O(T·w) instead of O(T²)"), the retina model's attention (a window of
fine keys plus pooled keys further back, O(T·(w + T/k))) and the bottom-up aggregation layer.

Each query t sees, in each of a few key sets s (fine keys, keys pooled by k, by k², …), one
contiguous range of keys [lo_s[t], hi_s[t]); a single softmax runs over all the keys it sees.
`RangeAttention` walks the queries in chunks of `chunk`; for a chunk and a key set it takes
the smallest slice of keys that covers every query's range (a view, no copy), scores it,
sets the scores outside each query's range to −inf (exactly 0 after the softmax; selected,
not added, so that a score of +inf or NaN there cannot turn into NaN), and keeps
only the probabilities of those slices for backward. With ranges of width ≤ w the saved
arrays are O(T·(chunk + w)) per head instead of the T×T of dense attention.
"""
import numpy

from .. import backend
from ..engine import Function

_plans = {}


def _plan(ranges, Tq, chunk):
    """Per chunk of queries: its key windows [(set s, first key a, end b, column offset, blocked)].

    blocked is a boolean (Q, b−a) array, True outside each query's range (None when every key
    of the window is allowed). Plans are cached: they depend on the ranges only.
    """
    key = (backend.name, Tq, chunk, b"|".join(a.tobytes() for pair in ranges for a in pair))
    if key in _plans:
        return _plans[key]
    plan = []
    for c0 in range(0, Tq, chunk):
        c1 = min(Tq, c0 + chunk)
        windows, offset = [], 0
        for s, (lo, hi) in enumerate(ranges):
            lo, hi = lo[c0:c1], hi[c0:c1]
            seen = hi > lo
            if not seen.any():
                continue
            a, b = int(lo[seen].min()), int(hi[seen].max())
            j = numpy.arange(a, b)
            allowed = (j >= lo[:, None]) & (j < hi[:, None])           # (Q, b−a)
            blocked = None if allowed.all() else backend.asarray(~allowed)
            windows.append((s, a, b, offset, blocked))
            offset += b - a
        plan.append((c0, c1, windows))
    if len(_plans) > 256:
        _plans.clear()
    _plans[key] = plan
    return plan


class RangeAttention(Function):
    # Per query row (one chunk at a time), over the keys of all its windows concatenated:
    #   S = scale · q Kᵀ (−inf outside the query's ranges),  P = softmax(S),  o = P V
    # Backward, as for dense attention but per window:
    #   dV_win += Pᵀ g;  dP = g V_winᵀ;  dS = P ⊙ (dP − rowsum(g ⊙ o)), exactly 0 outside
    #   the query's ranges (selected: not 0 · NaN when a query's row is NaN);
    #   dq += scale · dS K_win;  dK_win += scale · dSᵀ q
    # Windows of one set may overlap between chunks, so dK, dV accumulate with += on slices
    # (basic slices: every element written once per statement, no repeated indices).
    # Leading axes broadcast (keys and values (B, 1, T_s, hs) shared by the heads): q is
    # taken to the broadcast shape, so every score and gradient has it, and the engine sums
    # the gradients back to each input's shape.
    int_to_float = True  # integer inputs compute in float32 (`out` takes q's dtype)

    @staticmethod
    def forward(ctx, q, *kv, ranges, scale, chunk):
        xp = backend.xp
        keys, vals = kv[0::2], kv[1::2]
        lead = numpy.broadcast_shapes(*(a.shape[:-2] for a in (q, *kv)))  # (B, nh)
        if q.shape[:-2] != lead:
            q = xp.ascontiguousarray(xp.broadcast_to(q, lead + q.shape[-2:]))
        plan = _plan(ranges, q.shape[-2], chunk)
        out = xp.empty(q.shape[:-1] + vals[0].shape[-1:], dtype=q.dtype)  # (B, nh, T, hs)
        probs = []
        for c0, c1, windows in plan:
            qc = q[..., c0:c1, :] * scale                              # (B, nh, Q, hs)
            parts = []
            for s, a, b, _, blocked in windows:
                S = qc @ keys[s][..., a:b, :].swapaxes(-1, -2)          # (B, nh, Q, b−a)
                if blocked is not None:
                    xp.copyto(S, S.dtype.type(-numpy.inf), where=blocked)
                parts.append(S)
            S = parts[0] if len(parts) == 1 else xp.concatenate(parts, axis=-1)  # (B, nh, Q, W)
            S -= S.max(axis=-1, keepdims=True)
            P = xp.exp(S, out=S)
            P /= P.sum(axis=-1, keepdims=True)
            oc = None
            for s, a, b, off, _ in windows:
                o = P[..., off:off + b - a] @ vals[s][..., a:b, :]      # (B, nh, Q, hs)
                oc = o if oc is None else oc + o
            out[..., c0:c1, :] = oc
            probs.append(P)
        ctx.save(q, *kv, out, *probs)
        ctx.plan, ctx.scale, ctx.n_kv = plan, scale, len(kv)
        return out

    @staticmethod
    def backward(ctx, g):
        xp = backend.xp
        n = ctx.n_kv
        q, kv, out, probs = ctx.saved[0], ctx.saved[1:1 + n], ctx.saved[1 + n], ctx.saved[2 + n:]
        keys, vals = kv[0::2], kv[1::2]
        dq = xp.zeros_like(q)                                          # (all of shape (B, nh, …))
        dkv = [xp.zeros(q.shape[:-2] + a.shape[-2:], dtype=a.dtype) for a in kv]
        for (c0, c1, windows), P in zip(ctx.plan, probs):
            gc = g[..., c0:c1, :]                                      # (B, nh, Q, hs)
            D = (gc * out[..., c0:c1, :]).sum(axis=-1, keepdims=True)  # rowsum(dP ⊙ P)
            qc = q[..., c0:c1, :]
            for s, a, b, off, blocked in windows:
                Pw = P[..., off:off + b - a]                           # (B, nh, Q, b−a)
                dkv[2 * s + 1][..., a:b, :] += Pw.swapaxes(-1, -2) @ gc
                dS = gc @ vals[s][..., a:b, :].swapaxes(-1, -2)
                dS -= D
                dS *= Pw
                if blocked is not None:
                    xp.copyto(dS, dS.dtype.type(0), where=blocked)
                dS *= ctx.scale
                dq[..., c0:c1, :] += dS @ keys[s][..., a:b, :]
                dkv[2 * s][..., a:b, :] += dS.swapaxes(-1, -2) @ qc
        return (dq, *dkv)
