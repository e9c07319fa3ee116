# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # Lesson 06: the vanilla transformer language model
#
# **What you'll learn**
# - how the pieces of lessons 02–05 make a GPT-style language model: embeddings, pre-LayerNorm
#   residual blocks (attention + MLP), a final LayerNorm and a linear head;
# - the model contract every minims model obeys: `model(idx, targets) -> (logits, loss)`;
# - how to train it (AdamW, warmup + cosine learning rate, gradient clipping) for 40 seconds
#   on Jane Austen, character by character, and judge it against the unigram baseline;
# - how to sample from it, where its activation memory goes, and how to check it is causal.
#
# **Where this sits.** `minims/models/vanilla.py`: the paper's **baseline**. Every multi-scale model
# in lessons 07–11 is compared with it on perplexity and memory.

# %%
import os
import sys
from pathlib import Path

# Make `import minims` work from a fresh clone (before `pip install -e .`), as a script or a notebook.
HERE = Path(__file__).resolve().parent if "__file__" in globals() else Path.cwd()
ROOT = next((p for p in (HERE, *HERE.parents) if (p / "minims").is_dir()), HERE)
sys.path.insert(0, str(ROOT))
QUICK = os.environ.get("MINIMS_QUICK") == "1"  # the test suite's fast mode: tiny model, a few steps
# This model multiplies small matrices, where BLAS threads gain little and, on a busy machine, fight
# other processes for the cores (we measured 5x slower steps on 2 shared cores). So one thread,
# unless you chose otherwise; it must be set before NumPy is first imported.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import inspect
import math
import time

import numpy as np

import minims
from minims.data import get_batch, prepare, unigram_ppl
from minims.models import build_model
from minims.nn import Block
from minims.models.vanilla import VanillaLM
from minims.optim import AdamW, clip_grad_norm, cosine_lr

# %% [markdown]
# ## 1. The data: Austen, one character at a time
#
# minims ships Jane Austen's six novels, split **by book** (like the held-out books of BookCorpus,
# the paper's corpus): four novels to train on, *Northanger Abbey* to validate, *Persuasion* to test.
# `prepare` fits a character tokenizer on the training books only and returns the three splits as
# integer arrays (cached in `.cache/` after the first call).

# %%
tok, splits = prepare("austen", "char", cache_dir=ROOT / ".cache")
V = tok.vocab_size
print(f"vocabulary: {V} characters (id 0 = <unk>) | split sizes:",
      {name: f"{len(ids):,}" for name, ids in splits.items()})
print("the first 120 characters of the training text:\n" + tok.decode(splits["train"][:120]))

# %% [markdown]
# A training example is a random window of `block_size` characters `x`, and the same window shifted
# by one, `y`: at every position $t$ the model must predict `y[t] = x[t+1]` from `x[0..t]`. One
# window therefore holds `block_size` predictions at once, which causal attention makes honest.

# %%
block_size = 32 if QUICK else 64
batch_size = 8 if QUICK else 16
rng = np.random.default_rng(0)
x, y = get_batch(splits["train"], batch_size, block_size, rng)
print("x[0]:", repr(tok.decode(x[0][:40])))
print("y[0]:", repr(tok.decode(y[0][:40])))

# %% [markdown]
# ## 2. The model
#
# GPT-2's recipe, as in minGPT: token embedding + learned position embedding, then `n_layer` blocks,
# each `x + attn(ln1(x))` then `x + mlp(ln2(x))`. The residual stream `x` carries information
# straight through; each block adds a correction. LayerNorm sits *before* each sub-layer
# (pre-LN), which keeps deep stacks trainable without warm-up tricks. Here is the library's code:

# %%
print(inspect.getsource(Block))
print(inspect.getsource(VanillaLM.logits))

# %% [markdown]
# `build_model(name, vocab_size, block_size, **options)` builds any registered model by name
# (the multi-scale models are built the same way). The weights come from a seeded host generator,
# so the same seed gives the same model on any backend. An untrained model should predict every
# character with about the same probability, so its first loss should be close to $\ln V$:

# %%
n_layer, n_embd = (2, 32) if QUICK else (3, 64)   # small: on a CPU, more steps beat more width
model = build_model("vanilla", vocab_size=V, block_size=block_size, n_layer=n_layer, n_head=4,
                    n_embd=n_embd, seed=0)
print(f"{model.num_parameters():,} parameters; first names:",
      [name for name, _ in model.named_parameters()][:4], "...")
logits, loss = model(x, y)
first_loss = loss.item()
print(f"logits {logits.shape} (B, T, V); first loss {first_loss:.3f} vs ln V = {math.log(V):.3f}")

# %% [markdown]
# ### Where the activation memory goes
#
# Before calling `backward()`, the graph holds every array the backward pass will need. Each module
# runs inside a name scope (its attribute path), so `saved_bytes(..., by="scope")` can say which
# layer holds what: the quantity the paper trades against perplexity. We add the scopes up per block
# and per kind of layer. In a vanilla model every block works on all $T$ tokens, so every block costs
# the same.

# %%
by_scope = minims.memory.saved_bytes(loss, by="scope")
total = sum(by_scope.values())


def block_of(scope):
    """'blocks.2.attn.qkv' -> 'block 2'; 'ln_f' -> 'ln_f'; '' (the loss, outside any module) -> '(loss)'."""
    parts = scope.split(".") if scope else ["(loss)"]
    numbers = [part for part in parts if part.isdigit()]
    return f"block {numbers[0]}" if numbers else parts[0]


def kind_of(scope):
    for kind in ("attn", "mlp", "ln", "wte", "wpe", "lm_head"):
        if any(part.startswith(kind) for part in scope.split(".")):
            return kind
    return "(loss)"


print(f"activation memory held for backward: {total / 2**20:.2f} MiB for B={batch_size}, T={block_size}")
for title, key in (("per block", block_of), ("per kind of layer", kind_of)):
    groups = {}
    for scope, nbytes in by_scope.items():
        groups[key(scope)] = groups.get(key(scope), 0) + nbytes
    print(f"{title}:")
    for name, nbytes in sorted(groups.items(), key=lambda kv: (-kv[1], kv[0])):
        print(f"  {name:10} {nbytes / 2**20:7.2f} MiB  {100 * nbytes / total:5.1f} %")

# %% [markdown]
# ## 3. Training for 40 seconds
#
# The loop is the same for every model (nanoGPT's): draw a batch, forward, backward, clip the global
# gradient norm, step AdamW. The learning rate warms up, then follows a cosine down to a tenth of its
# peak. Because machines differ, we train for a **time budget** rather than a fixed number of steps,
# and drive the schedule by the fraction of the budget used (or of `max_iters`, whichever is further).
#
# To train longer, with checkpoints, resuming and logs, use the trainer:
# `python -m minims.train --max-iters 2000` (see `python -m minims.train --help`).
#
# *Speed.* A step should take well under 0.1 s here. If it is much slower, check that NumPy's BLAS
# runs one thread (`OPENBLAS_NUM_THREADS=1`, set at the top of this lesson; `MKL_NUM_THREADS=1` for
# MKL builds): with many threads on few cores, small matrix products spend their time waiting.

# %%
train_seconds = 4 if QUICK else 40
max_iters = 40 if QUICK else 2000
lr = 6e-3   # a small model takes a large learning rate
optimizer = AdamW(model.parameters(), lr=lr, weight_decay=0.1)

start, it, losses = time.perf_counter(), 0, []
while True:
    progress = max(it / max_iters, (time.perf_counter() - start) / train_seconds)
    if progress >= 1:
        break
    # warmup over the first 3 % of the run, then cosine decay to lr/10 (cosine_lr counts in steps,
    # so we hand it progress in thousandths)
    optimizer.lr = cosine_lr(int(progress * 1000), lr, lr / 10, warmup_iters=30, max_iters=1000)
    x, y = get_batch(splits["train"], batch_size, block_size, rng)
    _, loss = model(x, y)
    optimizer.zero_grad()
    loss.backward()
    clip_grad_norm(model.parameters(), 1.0)
    optimizer.step()
    losses.append(loss.item())
    if it % 100 == 0:
        print(f"step {it:4d}  loss {losses[-1]:.3f}  lr {optimizer.lr:.2e}  "
              f"{time.perf_counter() - start:5.1f} s")
    it += 1
print(f"trained {it} steps in {time.perf_counter() - start:.1f} s; "
      f"mean loss of the last 10 steps {np.mean(losses[-10:]):.3f}")

# %% [markdown]
# ## 4. Is it any good? Valid loss against the unigram baseline
#
# The training loss can fool us (the model may memorise). We measure the loss on *Northanger Abbey*,
# which it never saw, in eval mode and without a graph (`no_grad`). The yardstick: a **unigram** model
# that knows only how often each character occurs and ignores the context. Any model that learned
# something about context must beat it. We compare in nats (the loss) and in perplexity ($e^{\text{loss}}$:
# "as uncertain as a fair choice among this many characters").

# %%
def estimate_loss(model, ids, n_batches, seed=1):
    eval_rng = np.random.default_rng(seed)
    model.eval()
    with minims.no_grad():
        values = [model(*get_batch(ids, batch_size, block_size, eval_rng))[1].item()
                  for _ in range(n_batches)]
    model.train()
    return float(np.mean(values))


valid_loss = estimate_loss(model, splits["valid"], 5 if QUICK else 10)
unigram = unigram_ppl(splits["train"], splits["valid"], V)
print(f"uniform guess   : loss {math.log(V):.3f}  perplexity {V:6.2f}")
print(f"unigram baseline: loss {math.log(unigram):.3f}  perplexity {unigram:6.2f}")
print(f"our model, valid: loss {valid_loss:.3f}  perplexity {math.exp(valid_loss):6.2f}")

# %% [markdown]
# ## 5. Sampling
#
# `model.generate` (one implementation for every minims model) feeds the text so far, takes the
# logits at the last position, divides them by a temperature (below 1: more conservative), keeps the
# `top_k` most likely characters, samples one, appends it, and repeats. A seed makes it reproducible.
# After 40 seconds on a CPU, expect Austen's rhythm, punctuation and many real words; not her plots.

# %%
prompt = "Elizabeth"
context = tok.encode(prompt)[None, :].astype(np.int64)      # (1, T)
generated = model.generate(context, max_new_tokens=30 if QUICK else 200, temperature=0.8, top_k=20, seed=0)
print(tok.decode(generated[0]))

# %% [markdown]
# ## 6. Is it causal?
#
# Lesson 05 tested one attention layer; here we test the whole model, the way the test suite tests
# every registered model. We copy the trained weights into a float64 model (`load_state_dict`), so
# the comparison can be exact: change the tokens from position $t$ on, and no logit before $t$ may
# change; the logits at $t$ must.

# %%
model64 = build_model("vanilla", vocab_size=V, block_size=block_size, n_layer=n_layer, n_head=4,
                      n_embd=n_embd, dtype="float64")
model64.load_state_dict(model.state_dict())
model64.eval()

t = block_size // 2
seq = get_batch(splits["valid"], 1, block_size, np.random.default_rng(2))[0]
seq_changed = seq.copy()
seq_changed[0, t:] = (seq[0, t:] + 7) % V                     # different tokens from t on
with minims.no_grad():
    logits_a, _ = model64(seq)
    logits_b, _ = model64(seq_changed)
diff = np.abs(logits_a.numpy() - logits_b.numpy()).max(axis=-1)[0]   # (T,)
print(f"max |logit change| before t={t}: {diff[:t].max():.1e};  at t: {diff[t]:.2e}")

# %% [markdown]
# ## Check

# %%
assert abs(first_loss - math.log(V)) < 0.2, f"a fresh model's loss ({first_loss:.3f}) should be near ln V"
assert np.all(np.isfinite(losses)), "training loss became NaN or infinite"
if QUICK:
    assert valid_loss < first_loss, "even a few steps of training should lower the valid loss"
else:
    assert valid_loss < math.log(unigram), (
        f"after 40 s of training, the model (valid loss {valid_loss:.3f}) should beat the unigram baseline "
        f"({math.log(unigram):.3f}); on a very slow machine, raise train_seconds")
assert np.all(diff[:t] == 0), "causality: logits before t changed when only tokens >= t changed"
assert diff[t] > 0, "sensitivity: the logits at t should depend on the token at t"
print(f"Check passed: trained {it} steps, valid loss {valid_loss:.3f} "
      f"(unigram {math.log(unigram):.3f}), and the model is causal.")

# %% [markdown]
# ## Exercises
#
# 1. **Depth vs memory.** Rebuild the model with `n_layer=2` and `n_layer=8` and compare
#    `minims.memory.saved_bytes(loss)` for one batch. Then double `block_size`. Which grows faster?
#    *Hint:* layers add memory linearly; the attention matrices grow with $T^2$ (lesson 05).
# 2. **Temperature.** Sample with `temperature=0.5`, `1.0` and `1.5`. Which one repeats itself, which
#    one invents words? *Hint:* the temperature divides the logits before the softmax.
# 3. **Your own text.** Train on any UTF-8 text file: `prepare("path/to/book.txt", "char",
#    cache_dir=ROOT / ".cache")` splits it 90/5/5. Or use the trainer:
#    `python -m minims.train --data path/to/book.txt`. *Hint:* a few hundred kilobytes is enough to
#    see it learn.
