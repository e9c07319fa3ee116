"""The paper's experiment, small: `python -m minims.experiment tradeoff`.

Subramanian et al. (2020) report a trade-off: for the same memory, multi-scale models reach a
better perplexity than a vanilla transformer (their headline: a 30-layer hierarchical model
with a 23 % smaller memory footprint and a better perplexity than a vanilla model with less
than half the layers). This command trains, on Jane Austen at word level (the paper works at
word/sub-word level on books), a family of vanilla models of growing depth and each
multi-scale model at growing depth, all with the same data, tokens seen, optimizer and
schedule, and reports for each:

- activation memory: the bytes the training forward pass holds for backward, measured exactly
  by `minims.memory.saved_bytes` at the training batch and sequence length;
- valid and test perplexity over the *whole* split (non-overlapping windows, every token
  scored once), not a sample of batches;
- parameters and wall time.

It writes `OUT_DIR/results.md` (a table), `OUT_DIR/results.json` and, when matplotlib is
installed (`pip install -e '.[plot]'`), `OUT_DIR/tradeoff.png` (perplexity against memory).
Each point trains in its own folder `OUT_DIR/points/NAME/` with the trainer's resumable
checkpoints; a finished point (its `result.json` exists) is never retrained, an interrupted
one resumes where it stopped. `--quick` runs a reduced grid in about a minute.
"""
import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

from . import backend as B
from .engine import no_grad
from .files import write_text
from .memory import saved_bytes

# (point name, model, model options). Depth grows within each family; the multi-scale
# layouts put most of their layers at the coarse scale, where a layer costs ~1/k.
FULL_GRID = [
    ("vanilla-2", "vanilla", dict(n_layer=2)),
    ("vanilla-4", "vanilla", dict(n_layer=4)),
    ("vanilla-8", "vanilla", dict(n_layer=8)),
    ("top-down-4-2", "top-down", dict(layout="4-2")),
    ("top-down-8-2", "top-down", dict(layout="8-2")),
    ("bottom-up-1-4-1", "bottom-up", dict(layout="1-4-1")),
    ("bottom-up-2-8-2", "bottom-up", dict(layout="2-8-2")),
    ("retina-4", "retina", dict(n_layer=4)),
    ("retina-8", "retina", dict(n_layer=8)),
]
FULL_SETTINGS = dict(block_size=256, batch_size=8, n_embd=128, n_head=4, max_iters=400,
                     warmup_iters=40, lr=1e-3, min_lr=1e-4, eval_interval=100, eval_iters=10)

QUICK_GRID = [
    ("vanilla-1", "vanilla", dict(n_layer=1)),
    ("vanilla-2", "vanilla", dict(n_layer=2)),
    ("top-down-2-1", "top-down", dict(layout="2-1")),
    ("bottom-up-1-2-1", "bottom-up", dict(layout="1-2-1")),
    ("retina-2", "retina", dict(n_layer=2, window=16)),
]
QUICK_SETTINGS = dict(block_size=64, batch_size=4, n_embd=32, n_head=2, max_iters=15,
                      warmup_iters=3, lr=2e-3, min_lr=2e-4, eval_interval=15, eval_iters=2)
# Tokens of valid and test scored at the end of each point: all of them in the full grid,
# the first 4,096 in the quick one (a smoke test, not a measurement).
EVAL_TOKENS = {"full": None, "quick": 4096}


def split_loss(model, ids, block_size, batch_size, max_tokens=None):
    """Mean loss over a whole split (or its first `max_tokens`): non-overlapping windows,
    each token predicted once (the final partial window is scored too)."""
    if max_tokens is not None:
        ids = ids[:max_tokens + 1]
    n = len(ids) - 1
    starts = list(range(0, n, block_size))
    total, count = 0.0, 0
    was_training = model.training
    model.eval()
    try:
        with no_grad():
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
    finally:
        model.train(was_training)
    return total / count


def activation_bytes(model, batch_size, block_size, vocab_size):
    """Bytes saved for backward by one training forward pass at (batch_size, block_size)."""
    idx = np.random.default_rng(0).integers(0, vocab_size, size=(batch_size, block_size + 1))
    _, loss = model(idx[:, :-1], idx[:, 1:])
    held = saved_bytes(loss)
    body = sum(v for k, v in saved_bytes(loss, by="scope", depth=1).items()
               if k not in ("lm_head", "ln_f", ""))
    return held, body


def point_memory(folder, settings):
    """Activation bytes (all, and without the head) of the model in a point's checkpoint."""
    from .checkpoint import load
    from .models import model_from_description
    model = model_from_description(load(Path(folder) / "ckpt.npz")["header"]["model"])
    return activation_bytes(model, settings["batch_size"], settings["block_size"],
                            model.config.vocab_size)


def _write_json(path, obj):
    write_text(path, json.dumps(obj, indent=2))


def run_point(name, model, options, settings, args):
    """Train one grid point (or reuse its finished result) -> its result dict."""
    from .train import Trainer, make_args
    folder = Path(args.out_dir) / "points" / name
    result_path = folder / "result.json"
    if result_path.exists():
        print(f"[{name}] done before, reusing {result_path}")
        result = json.loads(result_path.read_text())
        # memory is a property of the code, not of the training: measure it again, so the
        # table always describes the minims you have
        result["activation_bytes"], result["body_activation_bytes"] = point_memory(folder, settings)
        return result
    folder.mkdir(parents=True, exist_ok=True)
    targs = make_args(model=model, data=args.data, tokenizer="word", backend=args.backend,
                      out_dir=str(folder), cache_dir=args.cache_dir, seed=args.seed,
                      resume=(folder / "ckpt.npz").exists(), **settings, **options)
    print(f"[{name}] training {model} {options} ...")
    t0 = time.perf_counter()
    trainer = Trainer(targs)
    metrics = trainer.run()
    m, s = trainer.model, settings
    held, body = activation_bytes(m, s["batch_size"], s["block_size"], trainer.tokenizer.vocab_size)
    limit = EVAL_TOKENS["quick" if args.quick else "full"]
    valid = split_loss(m, trainer.splits["valid"], s["block_size"], 4 * s["batch_size"], limit)
    test = split_loss(m, trainer.splits["test"], s["block_size"], 4 * s["batch_size"], limit)
    cfg = m.config
    result = {
        "name": name, "model": model, "options": options,
        "layers": getattr(cfg, "n_layer", None), "params": m.num_parameters(),
        "activation_bytes": held, "body_activation_bytes": body,
        "peak_mem_bytes": metrics["peak_mem_bytes"],
        "valid_ppl": math.exp(valid), "test_ppl": math.exp(test),
        "unigram_ppl": metrics["unigram_ppl"], "tokens_per_s": metrics["tokens_per_s"],
        "wall_s": time.perf_counter() - t0, "backend": B.get_backend(),
    }
    _write_json(result_path, result)
    return result


def markdown_table(results, settings):
    vanilla = {r["name"]: r for r in results if r["model"] == "vanilla"}
    ref = max(vanilla.values(), key=lambda r: r["layers"]) if vanilla else None
    lines = ["| point | model | layers | params | activation MB | vs deepest vanilla | "
             "body MB | valid ppl | test ppl | tok/s | wall |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        rel = f"{r['activation_bytes'] / ref['activation_bytes']:.2f}×" if ref else ""
        tps = f"{r['tokens_per_s']:,.0f}" if r.get("tokens_per_s") else ""
        lines.append(f"| {r['name']} | {r['model']} | {r['layers']} | {r['params']:,} | "
                     f"{r['activation_bytes'] / 1e6:.1f} | {rel} | {r['body_activation_bytes'] / 1e6:.1f} | "
                     f"{r['valid_ppl']:.1f} | {r['test_ppl']:.1f} | {tps} | {r['wall_s'] / 60:.1f} min |")
    s = settings
    lines.append("")
    lines.append(f"Word-level Austen (train: 4 novels; valid: Northanger Abbey; test: Persuasion), "
                 f"T={s['block_size']}, B={s['batch_size']}, C={s['n_embd']}, {s['n_head']} heads, "
                 f"{s['max_iters']} AdamW steps (lr {s['lr']} → {s['min_lr']}, cosine), same seed and "
                 f"batches for every point. Activation MB: bytes saved for backward by one training "
                 f"forward pass; body MB: the same without the output head and loss.")
    return "\n".join(lines)


def plot(results, path):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no plot (pip install -e '.[plot]')")
        return None
    fig, ax = plt.subplots(figsize=(6, 4))
    for model in dict.fromkeys(r["model"] for r in results):
        rs = sorted((r for r in results if r["model"] == model), key=lambda r: r["body_activation_bytes"])
        mb = [r["body_activation_bytes"] / 1e6 for r in rs]
        ax.plot(mb, [r["valid_ppl"] for r in rs], "o-", label=model)
        for x, r in zip(mb, rs):
            ax.annotate(str(r["layers"]), (x, r["valid_ppl"]), textcoords="offset points",
                        xytext=(4, 4), fontsize=8)
    # the output head and loss hold the same bytes in every model; leave them out
    ax.set_xlabel("activation memory of the layers, held for backward (MB)")
    ax.set_ylabel("valid perplexity (word level)")
    ax.set_title("minims: perplexity vs memory on Austen")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def tradeoff(args):
    grid, settings = (QUICK_GRID, QUICK_SETTINGS) if args.quick else (FULL_GRID, FULL_SETTINGS)
    settings = dict(settings)
    if args.max_iters is not None:
        settings["max_iters"] = args.max_iters
    if args.only:
        wanted = set(args.only.split(","))
        grid = [g for g in grid if g[0] in wanted]
        if not grid:
            from .errors import UsageError
            raise UsageError(f"--only {args.only!r} names no grid point; points: "
                             + ", ".join(g[0] for g in (QUICK_GRID if args.quick else FULL_GRID)))
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    _write_json(out / "settings.json", {"settings": settings, "quick": args.quick, "grid": grid})
    results = [run_point(name, model, options, settings, args) for name, model, options in grid]
    table = markdown_table(results, settings)
    (out / "results.md").write_text(table + "\n")
    _write_json(out / "results.json", {"settings": settings, "results": results})
    picture = plot(results, out / "tradeoff.png")
    print(table)
    print(f"wrote {out / 'results.md'}, {out / 'results.json'}" + (f", {picture}" if picture else ""))
    return results


def build_parser():
    p = argparse.ArgumentParser(prog="python -m minims.experiment", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("experiment", choices=["tradeoff"], help="which experiment (only 'tradeoff' so far)")
    p.add_argument("--quick", action="store_true", help="a reduced grid in about a minute (tiny models)")
    p.add_argument("--out-dir", default=None,
                   help="where points, tables and the plot go (default: out/tradeoff, or "
                        "out/tradeoff-quick with --quick)")
    p.add_argument("--backend", default="numpy", choices=B.BACKENDS, help="array backend (default numpy)")
    p.add_argument("--data", default="austen", help="'austen' or a path to your text (default austen)")
    p.add_argument("--cache-dir", default=".cache", help="tokenized-corpus cache (default .cache)")
    p.add_argument("--seed", type=int, default=0, help="one seed for every point (default 0)")
    p.add_argument("--max-iters", type=int, default=None, help="override the steps per point")
    p.add_argument("--only", default=None, help="comma-separated point names to run (default: all)")
    return p


def main(argv=None):
    """The command line -> exit code (errors mapped by minims.errors.run_cli)."""
    from .errors import run_cli
    return run_cli(_main, argv)


def _main(argv):
    args = build_parser().parse_args(argv)
    if args.out_dir is None:
        args.out_dir = "out/tradeoff-quick" if args.quick else "out/tradeoff"
    tradeoff(args)


if __name__ == "__main__":
    sys.exit(main())
