"""The basic layers: Linear, Embedding, LayerNorm and Dropout.

Decoding (ours): `Linear`, `Embedding` and `LayerNorm` also have `step(x)`, the same
layer on a plain array (the one new position, (B, 1, ·); a Tensor is taken as its array)
with no graph and no dropout (decoding runs in eval mode). Each computes its op's formula
(the op's own code where there is more than a product: `F.normalize` for layer norm,
`Function.run` for the embedding, and for GELU in the MLP of transformer.py) without the
engine's bookkeeping, which once cost a third of a decoding step: a token runs ~300 operations
on arrays of one row, where each Python call counts.
"""
from .. import backend
from .. import functional as F
from ..engine import Tensor
from ..functional import as_rows
from .module import Module, Parameter


def as_array(x):
    """The plain array of x (a Tensor's data; an array as it is): what `step` methods take."""
    return x.data if isinstance(x, Tensor) else x


class Linear(Module):
    """y = x W + b with W of shape (in_features, out_features), initialised N(0, 0.02²)."""

    def __init__(self, in_features, out_features, bias=True, std=0.02):
        super().__init__()
        self.weight = Parameter((in_features, out_features), std=std)
        self.bias = Parameter((out_features,), init="zeros") if bias else None

    def forward(self, x):
        return F.linear(x, self.weight, self.bias)

    def step(self, x):
        """Decoding: a plain array (..., in) → (..., out)."""
        x = as_array(x)
        y = backend.xp.dot(as_rows(x), self.weight.data)              # (rows, out)
        if self.bias is not None:
            y += self.bias.data
        return y.reshape(*x.shape[:-1], y.shape[-1])


class Embedding(Module):
    """A table of `num` vectors of size `dim`, looked up by integer ids."""

    def __init__(self, num, dim, decay=None):
        super().__init__()
        self.weight = Parameter((num, dim), decay=decay)

    def forward(self, idx):
        return F.embedding(idx, self.weight)

    def step(self, ids):
        """Decoding: an integer array of ids → a plain array (*ids.shape, dim)."""
        return F.Embedding.run(self.weight.data, ids=as_array(ids))


class LayerNorm(Module):
    """Normalise the last axis to zero mean, unit variance, then scale and shift."""

    def __init__(self, n_embd, eps=1e-5):
        super().__init__()
        self.weight = Parameter((n_embd,), init="ones")
        self.bias = Parameter((n_embd,), init="zeros")
        self.eps = eps

    def forward(self, x):
        return F.layer_norm(x, self.weight, self.bias, self.eps)

    def step(self, x):
        """Decoding: a plain array (..., C) → (..., C)."""
        y, _ = F.normalize(as_array(x), self.eps)                     # x̂, as the op computes it
        y *= self.weight.data
        y += self.bias.data
        return y


class Dropout(Module):
    def __init__(self, p=0.0):
        super().__init__()
        self.p = p

    def forward(self, x):
        return F.dropout(x, self.p, self.training)
