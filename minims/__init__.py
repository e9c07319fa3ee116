"""minims: multi-scale transformer language models on a small autodiff engine of our own.

Subramanian, Collobert, Ranzato and Boureau (2020), "Multi-scale Transformer Language
Models", built from scratch on NumPy (CPU) or CuPy (CUDA):

    import minims
    minims.set_backend("numpy")          # or "cupy"
    x = minims.Tensor([[1.0, 2.0]], requires_grad=True)
    (x * x).sum().backward()             # x.grad == 2 x

Where things are (the README's "What is inside" has the whole map):
    minims.engine, minims.ops       the autodiff engine: Tensor, Function and every op
    minims.nn                       layers: attention, pooling and upsampling, transformer blocks
    minims.models                   the four models: build_model("vanilla" | "top-down" |
                                    "bottom-up" | "retina", vocab_size, block_size, ...)
Commands (each has --help):
    python -m minims.train          train a model on the shipped Austen text or your own
    python -m minims.sample         stream text from a trained checkpoint
    python -m minims.bench          speed, memory and decoding benchmarks
    python -m minims.experiment     the ablation, trade-off and learning-rate experiments
"""
from . import backend
from .backend import get_backend, set_backend, to_numpy
from .engine import OPS, Function, Tensor, name_scope, no_grad
from .functional import concat, stack, where
from . import functional
from . import memory

__version__ = "0.1.0"

__all__ = ["Tensor", "Function", "OPS", "no_grad", "name_scope", "set_backend", "get_backend",
           "to_numpy", "concat", "stack", "where", "functional", "memory", "backend"]
