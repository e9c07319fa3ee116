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
# - a build-up you can follow, each step trained for the same number of steps and scored by its
#   loss: a bigram table, + attention, + an MLP, + residuals and layer norm (the real block);
# - how the library trains it (AdamW, warmup + cosine learning rate, gradient clipping, the 0.02
#   init) for a fixed number of steps on Jane Austen, character by character, with its loss
#   curves, judged against the unigram baseline;
# - how to sample from it, what its attention heads look at, where its activation memory goes,
#   and how to check it is causal.
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
import re

import numpy as np

import minims
import minims.functional as F
from minims.data import get_batch, prepare, unigram_ppl
from lessons.support.figures import lessons_out_dir, new_figure, plot_loss_curves, read_log, save_figure
from minims.models import build_model
from minims.models.base import LanguageModel
from minims.models.vanilla import VanillaLM
from minims.nn import MLP, Block, CausalSelfAttention, Embedding, LayerNorm, Linear, Module, init_parameters
from minims.optim import AdamW, clip_grad_norm, cosine_lr
from minims.train import Trainer, make_args, setup, train_step

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
# ## 2. Building it up, one idea at a time
#
# Before the full model, four small ones, each adding one idea to the last. All four train for the
# same number of steps, on the same batches, with the same optimizer and the library's own training
# step, `minims.train.train_step` (forward, backward, clip, AdamW; section 4 explains each part):

# %%
print(inspect.getsource(train_step))

# %% [markdown]
# Every model here obeys the contract of all minims models, `model(idx, targets) -> (logits, loss)`;
# a tiny base class gives it to our four. The first is a **bigram** model: a $V \times V$ table whose
# row $x_t$ holds the logits for $x_{t+1}$. It sees one character of context, whatever `block_size` is.

# %%
class Tiny(Module):
    """The model contract for the build-up: subclasses define logits(idx) -> (B, T, V)."""

    def forward(self, idx, targets=None):
        logits = self.logits(np.asarray(idx))                         # (B, T, V)
        return logits, None if targets is None else F.cross_entropy(logits, targets)


class Bigram(Tiny):
    def __init__(self, V, C):
        super().__init__()
        self.table = Embedding(V, V)                                  # row x_t: logits of x_{t+1}

    def logits(self, idx):
        return self.table(idx)                                        # (B, T, V)


# %% [markdown]
# **+ attention.** Tokens become vectors (a token embedding plus a *position* embedding, since
# attention alone does not know the order), one causal self-attention layer lets each position
# gather what it needs from the earlier ones (lesson 05), and a linear head maps back to logits.
# **+ MLP.** Attention only *mixes* positions with weights that sum to 1; the MLP, applied to each
# position alone, computes on what was gathered: $C \to 4C$, GELU, $4C \to C$. Here is the library's:

# %%
print(inspect.getsource(MLP))


class Attention(Tiny):
    def __init__(self, V, C, mlp=False):
        super().__init__()
        self.wte, self.wpe = Embedding(V, C), Embedding(block_size, C)
        self.attn = CausalSelfAttention(C, n_head=4)
        self.mlp = MLP(C) if mlp else None
        self.lm_head = Linear(C, V)

    def logits(self, idx):
        x = self.wte(idx) + self.wpe(np.arange(idx.shape[1]))         # (B, T, C)
        x = self.attn(x)                                              # mixes positions <= t
        if self.mlp is not None:
            x = self.mlp(x)                                           # computes at each position
        return self.lm_head(x)                                        # (B, T, V)


# %% [markdown]
# **+ residuals and layer norm.** Stacked as above, each layer *replaces* its input, so the token's
# own identity must survive every layer's transformation. With a **residual** connection each
# sub-layer *adds* a correction to a stream that carries the input straight through:
# `x = x + attn(ln1(x))`, then `x = x + mlp(ln2(x))`; gradients flow back along the stream
# unchanged. **LayerNorm** before each sub-layer (pre-LN, GPT-2) keeps the scale of its input fixed
# however large the stream grows. That is the library's `Block`, and a model of one block is the
# vanilla model with `n_layer=1` (GPT-2's recipe, as in minGPT):

# %%
print(inspect.getsource(Block))

# %%
C_up = 32 if QUICK else 64
steps_up = 15 if QUICK else 150


def train_for(model, steps, lr=6e-3, seed=0):
    """`steps` steps of train_step with AdamW at a constant lr, on batches seeded by `seed`;
    -> the valid loss (mean of 4 fixed batches)."""
    optimizer = AdamW(model.parameters(), lr=lr, weight_decay=0.1)
    batch_rng = np.random.default_rng(seed)
    for _ in range(steps):
        train_step(model, optimizer, [get_batch(splits["train"], batch_size, block_size, batch_rng)],
                   lr, grad_clip=1.0)
    eval_rng = np.random.default_rng(1)
    model.eval()
    with minims.no_grad():
        loss = np.mean([model(*get_batch(splits["valid"], batch_size, block_size, eval_rng))[1].item()
                        for _ in range(4)])
    model.train()
    return float(loss)


stages = {
    "bigram": init_parameters(Bigram(V, C_up), seed=0),
    "+ attention": init_parameters(Attention(V, C_up), seed=0),
    "+ MLP": init_parameters(Attention(V, C_up, mlp=True), seed=0),
    "+ residual, layer norm": build_model("vanilla", vocab_size=V, block_size=block_size, n_layer=1,
                                          n_head=4, n_embd=C_up, seed=0),
}
stage_loss = {}
for name, stage_model in stages.items():
    stage_loss[name] = train_for(stage_model, steps_up)
    print(f"{name:24} {stage_model.num_parameters():7,} parameters   valid loss after {steps_up} steps: "
          f"{stage_loss[name]:.3f}")

# %% [markdown]
# What we measured (150 steps each, B = 16, T = 64, C = 64; your numbers differ a little): bigram
# 3.42, + attention 2.89, + MLP 2.85, + residual and layer norm 2.51 nats. Each idea helps. The
# bigram table is still *worse* than the unigram baseline of section 5 (3.08) after 150 steps:
# Adam moves each of its 6,724 entries by about the learning rate per step, and 150 steps are not
# enough to fill a table. Counted exactly (bigram frequencies of the training books, add-one
# smoothed) it would reach 2.44 on the valid book: about the best one character of context can do. The
# models with attention use the whole context. The MLP adds little on top of a single attention
# layer at this length of training, while the residual block gains the most: it keeps the
# current character on the stream, where the head can read it directly. That is why every layer of
# every model in this course is built that way.
#
# ## 3. The full model

# %%
print(inspect.getsource(VanillaLM.logits))
print(inspect.getsource(LanguageModel.embed))
print(inspect.getsource(LanguageModel.head))

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
# ## 4. Training, with the library's trainer
#
# The trainer (`python -m minims.train`, or `minims.train.setup(args).run()` from code) runs the
# same loop for every model (nanoGPT's): every `eval_interval` steps estimate the train and valid
# losses on fixed batches, append them to `log.jsonl` and save a checkpoint; then draw the batches
# and take one step with `train_step` (forward, backward, clip, AdamW, printed above). The loop, from
# the library (the meter times the steps, the console prints):

# %%
print(inspect.getsource(Trainer.run))

# %% [markdown]
# Its parts, each printed from the library:
#
# - **AdamW** keeps, per weight, running means of the gradient ($m$) and of its square ($v$), and
#   steps by $m/\sqrt{v}$: each weight moves by about the learning rate, whatever the scale of its
#   gradient. *Decoupled* weight decay shrinks the matrices a little every step (not the biases,
#   layer-norm gains or position table), which keeps weights small without fighting the Adam scaling.

# %%
print(inspect.getsource(AdamW.step))

# %% [markdown]
# - **Warmup, then a cosine.** At the start $v$ is estimated from a handful of gradients and the
#   weights are random, so large steps can throw the model somewhere it never recovers from: the
#   learning rate climbs linearly over the first steps, then decays along a cosine to a tenth of its
#   peak, so the last steps are small and the loss settles.

# %%
print(inspect.getsource(cosine_lr))

# %% [markdown]
# - **Gradient clipping.** If the global gradient norm exceeds 1, all gradients are scaled down
#   together (their direction is kept). One unlucky batch then cannot make a huge step.

# %%
print(inspect.getsource(clip_grad_norm))

# %% [markdown]
# - **The 0.02 init.** Every weight matrix starts as $N(0, 0.02^2)$ (GPT-2's choice), and the
#   projections that write into the residual stream start at $0.02/\sqrt{2\,n_{layer}}$: the stream
#   adds $2\,n_{layer}$ of them, and this keeps its variance the same however deep the model. Small
#   weights also make the first logits nearly equal, hence the first loss $\approx \ln V$ above.
#
# We train for a **fixed number of steps** (so two runs on two machines do the same work and give
# the same numbers), into `out/lessons/06_run/`. To train longer, with resuming:
# `python -m minims.train --max-iters 2000` (see `python -m minims.train --help`).

# %%
max_iters = 20 if QUICK else 300
run_dir = lessons_out_dir() / "06_run"
args = make_args(model="vanilla", block_size=block_size, batch_size=batch_size, n_layer=n_layer,
                 n_head=4, n_embd=n_embd, max_iters=max_iters, lr=6e-3, min_lr=6e-4, warmup_iters=20,
                 grad_clip=1.0, weight_decay=0.1, eval_interval=5 if QUICK else 25,
                 eval_iters=2 if QUICK else 4, out_dir=str(run_dir), overwrite=True,
                 cache_dir=str(ROOT / ".cache"), seed=0)
trainer = setup(args, verbose=False)      # verbose=True also prints every evaluation
result = trainer.run()
model = trainer.model                      # the trained model, built by the trainer from args
step_ms = 1000 * batch_size * block_size / result["tokens_per_s"]
print(f"trained {result['iter']} steps in {result['wall_s']:.1f} s ({step_ms:.0f} ms per step, "
      f"evaluations aside); valid loss {result['val_loss']:.3f}")

# %% [markdown]
# *Speed.* On two busy, shared CPU cores we measured about 80 ms per step for this model (B = 16,
# T = 64, three blocks of width 64; 300 steps in 27 s, the whole lesson in 42 s, plus about 5 s
# since section 5 scores the whole validation book); your number is printed above. If it is
# several times slower, check that NumPy's BLAS runs one thread (`OPENBLAS_NUM_THREADS=1`, set at
# the top of this lesson; `MKL_NUM_THREADS=1` for MKL builds): with many threads on few cores,
# small matrix products spend their time waiting. (The trainer chooses for itself when run from a
# shell: `--threads auto`, see `minims/threads.py`.)
#
# The log holds one record per evaluation. Plotted, the two curves tell what the numbers alone do
# not: whether the loss still falls (train longer), and whether valid parts from train (memorising).

# %%
log = read_log(run_dir / "log.jsonl")
print("first and last records:", {k: round(v, 3) for k, v in log[0].items() if k.endswith("loss")},
      {k: round(v, 3) for k, v in log[-1].items() if k.endswith("loss")})
unigram = unigram_ppl(splits["train"], splits["valid"], V)
plot_loss_curves({f"vanilla, {n_layer} layers": log}, "06_loss_curves",
                 baseline={"unigram": math.log(unigram),
                            f"bigram after {steps_up} steps (section 2)": stage_loss["bigram"]},
                 title="lesson 06: the vanilla model on Austen (characters)")

# %% [markdown]
# ## 5. Is it any good? Valid loss against the unigram baseline
#
# The training loss can fool us (the model may memorise). We measure the loss on *Northanger Abbey*,
# which it never saw, in eval mode and without a graph (`no_grad`). The yardstick: a **unigram** model
# that knows only how often each character occurs and ignores the context. Any model that learned
# something about context must beat it. We compare in nats (the loss) and in perplexity ($e^{\text{loss}}$:
# "as uncertain as a fair choice among this many characters").

# %%
def estimate_loss(model, ids, n_batches, seed=1):
    """Mean loss over `n_batches` random batches of windows -> (mean, its standard error)."""
    eval_rng = np.random.default_rng(seed)
    model.eval()
    with minims.no_grad():
        values = [model(*get_batch(ids, batch_size, block_size, eval_rng))[1].item()
                  for _ in range(n_batches)]
    model.train()
    return float(np.mean(values)), float(np.std(values, ddof=1) / math.sqrt(n_batches))


valid_loss, valid_se = estimate_loss(model, splits["valid"], 5 if QUICK else 10)
print(f"uniform guess   : loss {math.log(V):.3f}  perplexity {V:6.2f}")
print(f"unigram baseline: loss {math.log(unigram):.3f}  perplexity {unigram:6.2f}")
print(f"our model, valid: loss {valid_loss:.3f}  perplexity {math.exp(valid_loss):6.2f}")

# %% [markdown]
# **Why two valid losses?** The trainer printed one at the end of training (section 4), and we
# have just computed another, a little different. Both are *estimates* of one number, the mean
# loss over every character of the validation book, each from a small random sample of it: the
# trainer's from its `eval_iters` fixed batches (4 here, drawn by its own seeded generator, the
# same at every evaluation, so that its curve compares like with like), ours from 10 other
# batches. A mean of n batch losses misses the true value by about its **standard error** (the
# spread of the batch losses divided by $\sqrt{n}$), now and then by two or three. Scoring the
# whole book once (each character predicted once, in consecutive windows:
# `minims.experiment.split_loss` in `minims/experiment/measure.py`, lesson 11's measure) gives the
# number both are estimating; it takes a few seconds.

# %%
from minims.experiment import split_loss

n_scored = 8192 if QUICK else len(splits["valid"]) - 1
whole_loss = split_loss(model, splits["valid"], block_size, 64, max_tokens=n_scored)
scored = "the first 8,192 characters" if QUICK else f"all {n_scored:,} characters"
for label, value in ((f"the trainer's estimate, {args.eval_iters} batches", f"{result['val_loss']:.3f}"),
                     (f"ours, {5 if QUICK else 10} other batches",
                      f"{valid_loss:.3f} ± {valid_se:.3f} (standard error)"),
                     (f"{scored}, each scored once", f"{whole_loss:.3f}")):
    print(f"{label:<48} valid loss {value}")

# %% [markdown]
# In our run: 2.344 from the trainer's 4 batches, 2.380 ± 0.013 from our 10, and 2.351 for the
# whole book. Ours missed by about two standard errors, the trainer's happened to land closer.
# For comparing models, use one fixed set of windows for all of them (the trainer does) or,
# better, the whole split (lesson 11 does).

# %% [markdown]
# ## 6. Sampling
#
# `model.generate` is `minims.sampling.generate`, the one sampler of every minims model: its loop
# feeds the text so far, takes the logits at the last position (`next_logits`), divides them by a
# temperature (below 1: more conservative), keeps the `top_k` most likely characters, samples one,
# appends it, and repeats. A seed makes it reproducible:

# %%
print(inspect.getsource(minims.sampling._sample_tokens))

# %%
prompt = "Elizabeth"
context = tok.encode(prompt)[None, :].astype(np.int64)      # (1, T)
generated = model.generate(context, max_new_tokens=30 if QUICK else 200, temperature=0.8, top_k=20, seed=0)
sample = tok.decode(generated[0])
print(sample)
train_words = set(re.findall(r"[a-z]+", tok.decode(splits["train"]).lower()))
sampled_words = [w for w in re.findall(r"[a-z]+", sample[len(prompt):].lower()) if len(w) >= 2]
real_words = [w for w in sampled_words if w in train_words]
print(f"{len(real_words)} of {len(sampled_words)} sampled words (of 2 letters or more) occur in the "
      f"training books: {real_words[:12]}")

# %% [markdown]
# What to expect after 300 steps (we measured it): spaces, commas and full stops in plausible
# places, and a few short common words (*of*, *to*, *it*, *so*) among many invented ones; in our
# run 8 of the 32 sampled "words" occurred in the training books. Not yet Austen's words, and
# not her plots. Longer runs give
# more real words (`python -m minims.train --max-iters 2000`, then `python -m minims.sample`).
#
# ## 7. What the heads look at
#
# The attention probabilities $P$ of every layer are in the graph: the fused op saved them for
# backward (lesson 05). `minims.memory.saved_arrays(loss)` lists every saved array with the scope
# of the module that saved it, so we can pick out each block's $P$ for one window of *Persuasion*
# and draw the heads of the first and last block (row: query character, column: key character).

# %%
window = get_batch(splits["test"], 1, block_size, np.random.default_rng(3))
_, loss_window = model(*window)
P_by_block = {scope: arr for scope, op, arr in minims.memory.saved_arrays(loss_window)
              if op == "ScaledDotProductAttention" and arr.shape[-1] == arr.shape[-2]}
blocks_P = [np.asarray(P_by_block[scope])[0] for scope in sorted(P_by_block)]    # each (nh, T, T)
print("P saved by", sorted(P_by_block), "each of shape", blocks_P[0].shape)
T_show = min(block_size, 24)
chars = [c if c.strip() else "␣" for c in tok.decode(window[0][0][:T_show])]
fig = new_figure(2, 4, figsize=(13, 6.6))
if fig is not None:
    for row, (title, P_block) in enumerate((("first block", blocks_P[0]), ("last block", blocks_P[-1]))):
        for head in range(4):
            ax = fig.axes[4 * row + head]
            ax.imshow(P_block[head, :T_show, :T_show], cmap="Greys", vmin=0, vmax=1)
            ax.set_title(f"{title}, head {head}", fontsize=9)
            ax.set_xticks(range(T_show), chars, fontsize=6)
            ax.set_yticks(range(T_show), chars, fontsize=6)
    save_figure(fig, "06_attention_heads")

# %% [markdown]
# Typical patterns (they vary with the seed): heads that look at the previous character or two (a
# dark line just left of the diagonal), heads that spread over the whole word, and heads that jump
# back to the last space or capital. Nothing lies right of the diagonal: the causal mask.
#
# %% [markdown]
# ## 8. Is it causal?
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
assert all(math.isfinite(r["train_loss"]) for r in log), "training loss became NaN or infinite"
assert len(log) == max_iters // args.eval_interval + 1, "one log record per evaluation, and one at step 0"
if QUICK:
    assert valid_loss < first_loss, "even a few steps of training should lower the valid loss"
else:
    assert valid_loss < math.log(unigram), (
        f"after {max_iters} steps, the model (valid loss {valid_loss:.3f}) should beat the unigram baseline "
        f"({math.log(unigram):.3f})")
    assert valid_loss < stage_loss["bigram"], "the trained model should beat the bigram table of section 2"
assert np.all(diff[:t] == 0), "causality: logits before t changed when only tokens >= t changed"
assert diff[t] > 0, "sensitivity: the logits at t should depend on the token at t"
print(f"Check passed: trained {result['iter']} steps, valid loss {valid_loss:.3f} "
      f"(unigram {math.log(unigram):.3f}), and the model is causal.")

# %% [markdown]
# ## Exercises
#
# Each exercise has a checker: `from lessons.support.exercises import check, help_for`, then
# `check("NN.i", your_answer)` prints *right* or what is off; `print(help_for("NN.i"))` shows what
# form the answer takes (a number, a dict with given keys, a function), not the answer itself.
# Reference solutions, for after you tried: `lessons/solutions.py`.
#
# 1. **Depth vs memory.** Rebuild the model with `n_layer=2` and `n_layer=8` and compare
#    `minims.memory.saved_bytes(loss)` for one batch. Then double `block_size`. Which grows faster?
#    *Hint:* layers add memory linearly; the attention matrices grow with $T^2$ (lesson 05).
#    *Check:* `check("06.1", {"n_layer=2": bytes, "n_layer=8": bytes, "n_layer=2, 2T": bytes, "faster": ...})`.
# 2. **Temperature.** Sample with `temperature=0.5`, `1.0` and `1.5`. Which one repeats itself, which
#    one invents words? *Hint:* the temperature divides the logits before the softmax.
#    *Check:* `check("06.2", {"repeats": temperature, "invents": temperature})`.
# 3. **Your own text.** Train on any UTF-8 text file: `prepare("path/to/book.txt", "char",
#    cache_dir=ROOT / ".cache")` splits it 90/5/5. Or use the trainer:
#    `python -m minims.train --data path/to/book.txt`. *Hint:* a few hundred kilobytes is enough to
#    see it learn.
#    *Check:* `check("06.3", result_of_train)`; the dict `minims.train.train(...)` returns.
