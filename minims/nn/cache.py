"""What attention layers keep while decoding: a `Buffer` that grows along one axis and the
`KVCache` of one layer's keys and values (ours, the standard key/value cache)."""
from .. import backend
from ..engine import Tensor


class Buffer:
    """A sequence that grows along one axis while decoding, e.g. (B, n, C) along axis 1.

    `append` adds steps at the end (storage doubles when full: amortised O(1) per step),
    `view()` / `tensor()` are the kept steps as an array / a Tensor (no copy: use them before
    the next `truncate`), `truncate(n)` keeps the first n steps, `drop_before(i)` forgets the
    steps before absolute index i (a sliding window). `len()` counts every step appended,
    dropped ones included, so indices stay absolute.
    """

    def __init__(self, axis):
        self.axis = axis
        self.lead = (slice(None),) * axis   # the index of the axes before `axis`
        self.data = None          # storage; step i lives at data[..., i − offset, ...]
        self.offset = self.start = self.end = 0

    def __len__(self):
        return self.end

    def append(self, x):
        """Add the steps of x (Tensor or array; same shape but along `axis`)."""
        x = x.data if isinstance(x, Tensor) else x
        n = x.shape[self.axis]
        if self.data is None or self.end + n - self.offset > self.data.shape[self.axis]:
            kept = None if self.data is None else self.view()
            shape = list(x.shape)
            shape[self.axis] = max(16, 2 * (self.end - self.start + n))
            self.data, self.offset = backend.xp.empty(tuple(shape), dtype=x.dtype), self.start
            if kept is not None:                                      # move the kept steps
                self.data[self.lead + (slice(0, kept.shape[self.axis]),)] = kept
        end = self.end - self.offset
        self.data[self.lead + (slice(end, end + n),)] = x
        self.end += n

    def view(self):
        """The kept steps [start, len), an array (no copy)."""
        return self.data[self.lead + (slice(self.start - self.offset, self.end - self.offset),)]

    def tensor(self):
        """The kept steps as a Tensor (no copy)."""
        return Tensor._wrap(self.view())

    def truncate(self, n):
        self.end = max(self.start, min(self.end, n))

    def drop_before(self, i):
        self.start = max(self.start, min(i, self.end))


class KVCache:
    """The keys and values of one attention layer's past positions, (B, nh, L, hs) each."""

    def __init__(self):
        self.k, self.v = Buffer(axis=2), Buffer(axis=2)

    def __len__(self):
        return len(self.k)

    @property
    def start(self):
        """Absolute index of the first key kept (0 unless `drop_before` was called)."""
        return self.k.start

    def append(self, k, v):
        """Add keys and values (B, nh, n, hs); returns all kept ones as arrays (B, nh, L, hs)."""
        self.k.append(k)
        self.v.append(v)
        return self.k.view(), self.v.view()

    def truncate(self, n):
        self.k.truncate(n)
        self.v.truncate(n)

    def drop_before(self, i):
        self.k.drop_before(i)
        self.v.drop_before(i)
