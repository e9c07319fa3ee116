"""Activation memory: the bytes a graph holds for backward (the paper's memory axis).

Every op saves what its backward needs through `ctx.save(...)`, tagged with the name scope
it ran in (modules use their dotted path, e.g. `blocks.0.attn`). Walking the live graph
from an output and adding up those arrays gives the exact activation memory of a forward
pass, without timing noise or allocator effects; arrays that share a buffer (views) are
counted once, and the leaves' own data (parameters, inputs) is not counted.
"""
from collections import defaultdict

from .engine import walk_graph


def _owner(a):
    """The array that owns a's buffer (views point at it through .base)."""
    while getattr(a, "base", None) is not None and hasattr(a.base, "nbytes"):
        a = a.base
    return a


def saved_arrays(*outputs):
    """Yield (scope, op_name, array) for every array saved in the graph behind `outputs`."""
    leaves, found = set(), []
    for t, ctx in walk_graph(*outputs):
        if ctx is None:
            leaves.add(id(_owner(t.data)))
            continue
        for a in ctx.saved:
            if hasattr(a, "nbytes"):
                found.append((ctx.scope, ctx.op.__name__, a))
    for scope, op, a in found:
        if id(_owner(a)) not in leaves:
            yield scope, op, a


def saved_bytes(*outputs, by=None, depth=None):
    """Total bytes saved for backward behind `outputs`.

    by=None → an int; by="scope" → {scope: bytes} (scope cut to its first `depth` dotted
    parts when `depth` is given); by="op" → {op name: bytes}.
    """
    totals, counted = defaultdict(int), {}
    for scope, op, a in saved_arrays(*outputs):
        owner = _owner(a)
        if id(owner) in counted:
            continue
        counted[id(owner)] = owner  # keep it alive so its id stays unique
        if by == "scope":
            key = ".".join(scope.split(".")[:depth]) if depth else scope
        else:
            key = op if by == "op" else None
        totals[key] += int(owner.nbytes)
    if by is None:
        return totals.get(None, 0)
    return dict(totals)

