"""Measuring one model: its loss on a whole split, its activation memory (minims/memory.py's
`activation_bytes`), its step time (ours).

Memory and step time are properties of the code and the model's shape, not of its training:
they are measured again on models built from a point's recorded config whenever the tables are
made, so a table always describes the minims that made it.
"""
import time

import numpy as np

from .. import backend
from ..engine import no_grad
from ..memory import activation_bytes


def split_loss(model, ids, block_size, batch_size, max_tokens=None):
    """Mean loss (nats per token) over a whole split (or its first `max_tokens`):
    non-overlapping windows, each token predicted once (the final partial window is scored too)."""
    if max_tokens is not None:
        ids = ids[:max_tokens + 1]
    n = len(ids) - 1
    starts = list(range(0, n, block_size))
    total, count = 0.0, 0
    with model.eval_mode(), no_grad():
        full = [s for s in starts if s + block_size <= n]
        for i in range(0, len(full), batch_size):
            chunk = full[i:i + batch_size]
            x = np.stack([ids[s:s + block_size] for s in chunk]).astype(np.int64)
            y = np.stack([ids[s + 1:s + block_size + 1] for s in chunk]).astype(np.int64)
            _, loss = model(x, y)
            total += float(loss.item()) * y.size
            count += y.size
        if n % block_size:                    # the tail, shorter than a window
            s = starts[-1]
            x = ids[None, s:n].astype(np.int64)
            y = ids[None, s + 1:n + 1].astype(np.int64)
            _, loss = model(x, y)
            total += float(loss.item()) * y.size
            count += y.size
    return total / count


def build(model, config):
    """A fresh model (random weights) from a point's recorded model name and config."""
    from ..models import model_from_description
    return model_from_description({"model": model, "config": config})


def config_memory(model, config, batch_size, block_size):
    """minims.memory.activation_bytes of a model built from its recorded config: (all, body)."""
    return activation_bytes(build(model, config), batch_size, block_size)


def time_steps(rows, batch_size, block_size, rounds):
    """Median wall time (ms) of one training step (forward, backward, AdamW) of each row's model,
    built fresh from its recorded config and measured side by side: `rounds` rounds, each timing
    one step of every model in turn, so a change in the machine's load touches all models alike
    (the trainer's own tok/s, taken while other runs shared the cores, are not comparable across
    points). Sets row["step_ms"] and row["step_ms_spread"] (half the interquartile range) in place."""
    from ..optim import AdamW
    from ..train import train_step
    rng = np.random.default_rng(0)
    models = []
    for row in rows:
        model = build(row["model"], row["config"])
        models.append((model, AdamW(model.parameters(), lr=1e-4)))
    times = [[] for _ in rows]
    for r in range(rounds + 1):                     # round 0 warms up and is not counted
        for i, (model, opt) in enumerate(models):
            ids = rng.integers(0, model.config.vocab_size, size=(batch_size, block_size + 1))
            t0 = time.perf_counter()
            train_step(model, opt, [(ids[:, :-1], ids[:, 1:])], lr=1e-4)
            backend.synchronize()
            if r:
                times[i].append(1000 * (time.perf_counter() - t0))
    for row, ts in zip(rows, times):
        q1, med, q3 = np.percentile(ts, [25, 50, 75])
        row["step_ms"], row["step_ms_spread"] = float(med), float(q3 - q1) / 2
        row["step_ms_measured"] = f"median of {rounds} interleaved steps"
