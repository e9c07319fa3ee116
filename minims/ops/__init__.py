"""The ops: one family per file, each op one `Function` class with its backward derived beside it.

- `basic.py`: the primitives `Tensor`'s operators and methods call (arithmetic, matmul,
  reductions, exp/log/tanh, reshapes, indexing, concat/stack/where);
- `pooling.py`: changing scale without looking into the future (shift, then pool; upsample);
- `range_attention.py`: attention over ranges of keys (local windows, pooled keys).

Code calls them through the one function API, `minims.functional` (`import minims.functional
as F`); every op is registered in `minims.OPS` and checked by minims/testing/gradcheck.py.
"""
