"""How much memory a training run will need, estimated before anything is allocated (ours).

A model far too big for the machine (say `--n-embd 100000`) should be refused with a number
in a second, not die minutes later inside NumPy or CuPy. The estimate counts:

- parameters: token and position embeddings (V·C + T·C), `n_layer` transformer blocks of
  12·C² + 13·C each (attention 4·C² + 4·C, MLP 8·C² + 5·C, two LayerNorms 4·C), the final
  LayerNorm and the head (C·V). Every model here is built from such blocks, so this is within a
  few per cent of `model.num_parameters()` (the multi-scale models add small pooling layers);
- training state: weights, gradients and AdamW's two moments, four copies of the parameters;
- activations held for backward by one micro-batch: per block about B·T·(16·C + 2·n_head·T)
  values (the projections, the MLP and the T×T attention weights), plus the logits and their
  softmax, 2·B·T·V. This is the vanilla model's figure; the multi-scale models hold less (that
  is their point), so for them it errs on the safe side by up to about 2×.

Every figure is in bytes of the run's dtype. `available_bytes()` is what the backend can still
hand out: free host memory (Linux's MemAvailable plus free swap) or free GPU memory.
"""
import os

import numpy

from . import backend


def parameter_count(vocab_size, block_size, n_layer, n_embd, pool=1, n_scales=0, pool_kind="mean",
                    upsample_kind="repeat", combine=None, band=None, **_):
    """Estimated number of parameters of a model with these settings: the blocks, plus the
    learned pooling (k·C² + C per scale; per scale and layer in the retina model, the one with
    a `band`) and upsampling (k·C² + k·C per scale) maps where a multi-scale model has them,
    and the attention layer of each attention pooling or upsampling (12·C² + 15·C per scale)."""
    V, T, C, L, k, S = vocab_size, block_size, n_embd, n_layer, pool, n_scales
    count = V * C + T * C + L * (12 * C * C + 13 * C) + 2 * C + C * V
    attention = 12 * C * C + 15 * C                                  # nn/cross_attention.py
    if pool_kind == "linear":
        count += (S if band is None else L * S) * (k * C * C + C)
    if pool_kind == "attention":
        count += S * attention
    if upsample_kind in ("linear", "attention") and combine != "aggregate":
        count += S * (k * C * C + k * C + (attention if upsample_kind == "attention" else 0))
    return count


def activation_count(vocab_size, block_size, n_layer, n_embd, n_head, batch_size, **_):
    """Estimated number of values one training forward pass keeps for backward."""
    B, T, C, L, nh, V = batch_size, block_size, n_embd, n_layer, n_head, vocab_size
    return L * B * T * (16 * C + 2 * nh * T) + 2 * B * T * V


def training_bytes(config, batch_size):
    """{"parameters", "optimizer", "activations", "total"}: estimated bytes to train a model with
    `config` (a ModelConfig, or a dict of its fields) on micro-batches of `batch_size`."""
    c = config if isinstance(config, dict) else vars(config)
    item = numpy.dtype(c.get("dtype", "float32")).itemsize
    params = parameter_count(**c) * item
    estimate = {"parameters": params, "optimizer": 3 * params,     # gradients + AdamW's m and v
                "activations": activation_count(**c, batch_size=batch_size) * item}
    estimate["total"] = sum(estimate.values())
    return estimate


def available_bytes():
    """Bytes the active backend can still allocate, or None when it cannot be told."""
    if backend.get_backend() == "cupy":
        try:
            free, _ = backend.xp.cuda.Device().mem_info
            return int(free) + int(backend.xp.get_default_memory_pool().free_bytes())
        except Exception:           # a driver that cannot answer: no check rather than a wrong one
            return None
    try:
        with open("/proc/meminfo") as f:
            info = {line.split(":")[0]: int(line.split()[1]) * 1024 for line in f if line.strip()}
        return info["MemAvailable"] + info.get("SwapFree", 0)
    except (OSError, KeyError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def gib(n):
    """Bytes as a short human figure: '112.0 GiB', '35.2 MiB'."""
    for unit, size in (("TiB", 2 ** 40), ("GiB", 2 ** 30), ("MiB", 2 ** 20)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n / 2 ** 10:.1f} KiB"


def describe(estimate):
    """One line: 'about 7.0 TiB (parameters 1.7 TiB, optimizer 5.2 TiB, activations 3.1 GiB)'."""
    parts = ", ".join(f"{k} {gib(v)}" for k, v in estimate.items() if k != "total")
    return f"about {gib(estimate['total'])} ({parts})"
