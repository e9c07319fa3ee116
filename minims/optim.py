"""Optimizers (AdamW, SGD), gradient clipping and the warmup + cosine learning-rate schedule.

Weight decay (AdamW's decoupled kind, Loshchilov & Hutter) is applied to matrices only:
the weights of Linear layers and the token embedding. Biases, LayerNorm gains and the
positional embeddings are not decayed — pulling a LayerNorm gain or a position vector
towards zero is not regularisation, it just distorts the model (nanoGPT makes the same
split, by dimension). A Parameter can override the rule with `decay=True/False`.
"""
import math

import numpy

from . import backend


def decays(p):
    """Whether weight decay applies to parameter p (matrices only, unless p.decay says)."""
    decay = getattr(p, "decay", None)
    return p.ndim >= 2 if decay is None else bool(decay)


class Optimizer:
    """What the optimizers share: the parameters, the learning rate and the state kept per
    parameter. Each parameter counts its own steps (`steps[i]`, PyTorch's state[p]["step"]):
    a step changes only the parameters that have a gradient (decay included) and counts for
    them alone, so a parameter first trained at step 5 starts with the bias correction of
    its own first step. `step_count` counts the calls to `step()`."""

    def __init__(self, params, lr):
        self.params = [p for p in params]
        if not self.params:
            raise ValueError("optimizer got an empty parameter list")
        self.lr = lr
        self.step_count = 0
        self.steps = [0] * len(self.params)

    def zero_grad(self):
        for p in self.params:
            p.grad = None

    def _buffers(self):
        return {}

    def _with_grad(self):
        """(index, parameter) of each parameter with a gradient, counting the step for each."""
        self.step_count += 1
        for i, p in enumerate(self.params):
            if p.grad is not None:
                self.steps[i] += 1
                yield i, p

    def state_dict(self):
        """Everything needed for an exact resume, as NumPy arrays and numbers: the buffers
        and "steps" as lists with one entry per parameter."""
        return {"lr": self.lr, "step": self.step_count,
                "steps": [numpy.array(n, dtype=numpy.int64) for n in self.steps],
                **{k: [backend.to_numpy(a).copy() for a in v] for k, v in self._buffers().items()}}

    def load_state_dict(self, state):
        """Load what `state_dict()` gave (copied). A state from before the steps were counted
        per parameter has only "step", the count every parameter's bias correction used
        then: each parameter resumes from it, which continues that run exactly."""
        buffers = self._buffers()
        steps = state.get("steps")
        for key, arrays in {**buffers, **({} if steps is None else {"steps": self.steps})}.items():
            if key not in state or len(state[key]) != len(arrays):
                raise ValueError(f"optimizer state does not match: buffer {key!r} is missing or "
                                 "has a different number of parameters")
        for key, arrays in buffers.items():
            for i, (a, saved) in enumerate(zip(arrays, state[key])):
                if a.shape != tuple(numpy.shape(saved)):
                    raise ValueError(f"optimizer state {key}[{i}] has shape {numpy.shape(saved)}, "
                                     f"parameter has {a.shape}")
        for key, arrays in buffers.items():
            for a, saved in zip(arrays, state[key]):
                a[...] = backend.asarray(saved, dtype=a.dtype)
        self.lr, self.step_count = state["lr"], int(state["step"])
        self.steps = [self.step_count] * len(self.params) if steps is None else [int(n) for n in steps]


class AdamW(Optimizer):
    """Adam with decoupled weight decay: p ← p − lr·(m̂/(√v̂ + eps) + wd·p) (decay on matrices),
    with m̂ and v̂ bias-corrected by each parameter's own step count t."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1):
        super().__init__(params, lr)
        self.betas, self.eps, self.weight_decay = betas, eps, weight_decay
        self.m = [backend.xp.zeros_like(p.data) for p in self.params]
        self.v = [backend.xp.zeros_like(p.data) for p in self.params]

    def _buffers(self):
        return {"m": self.m, "v": self.v}

    def step(self):
        b1, b2 = self.betas
        for i, p in self._with_grad():
            m, v, g, t = self.m[i], self.v[i], p.grad, self.steps[i]
            # fold the bias corrections into the step size: lr·√(1−b2ᵗ)/(1−b1ᵗ)
            step_size = self.lr * math.sqrt(1 - b2 ** t) / (1 - b1 ** t)
            eps = self.eps * math.sqrt(1 - b2 ** t)
            m *= b1
            m += (1 - b1) * g
            v *= b2
            v += (1 - b2) * (g * g)
            if self.weight_decay and decays(p):
                p.data *= 1 - self.lr * self.weight_decay
            p.data -= step_size * m / (backend.xp.sqrt(v) + eps)


class SGD(Optimizer):
    """Plain SGD with optional momentum: v ← μv + g; p ← p − lr·v."""

    def __init__(self, params, lr=1e-2, momentum=0.0):
        super().__init__(params, lr)
        self.momentum = momentum
        self.velocity = [backend.xp.zeros_like(p.data) for p in self.params]

    def _buffers(self):
        return {"velocity": self.velocity}

    def step(self):
        for i, p in self._with_grad():
            if self.momentum:
                vel = self.velocity[i]
                vel *= self.momentum
                vel += p.grad
                p.data -= self.lr * vel
            else:
                p.data -= self.lr * p.grad


def grad_squares(params):
    """Σ g² of each parameter's gradient (those that have one), as 0-d arrays of the backend:
    on a GPU they stay there until read, all at once (`backend.to_floats`)."""
    return [(p.grad * p.grad).sum() for p in params if p.grad is not None]


def clip_grad_norm(params, max_norm, squares=None):
    """Scale all gradients so that their global L2 norm is at most max_norm; returns the
    norm before clipping (a float; inf or nan if a gradient is not finite, and then the
    gradients are left as they are: scaling by max_norm/inf = 0 would turn each infinite
    entry into inf · 0 = NaN and every finite one into 0). `squares`: the floats of
    `grad_squares(params)` if the caller has read them already (the trainer reads them with
    the loss: one device → host read per step); else they are read here, at once."""
    grads = [p.grad for p in params if p.grad is not None]
    if squares is None:
        squares = backend.to_floats(grad_squares(params))
    total = math.sqrt(sum(squares))
    if max_norm is not None and max_norm > 0 and math.isfinite(total) and total > max_norm:
        scale = max_norm / (total + 1e-6)
        for g in grads:
            g *= scale
    return total


def cosine_lr(it, lr, min_lr, warmup_iters, max_iters):
    """Linear warmup from lr/warmup to lr over `warmup_iters`, then cosine decay to min_lr
    at `max_iters` (and min_lr after that)."""
    if it < warmup_iters:
        return lr * (it + 1) / warmup_iters
    if it >= max_iters:
        return min_lr
    progress = (it - warmup_iters) / max(1, max_iters - warmup_iters)
    return min_lr + 0.5 * (1 + math.cos(math.pi * progress)) * (lr - min_lr)
