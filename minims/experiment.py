"""The paper's experiments, small: `python -m minims.experiment ablate|tradeoff`.

Subramanian et al. (2020) report a trade-off: for the same memory, multi-scale models reach a
better perplexity than a vanilla transformer. Their headline: a 30-layer hierarchical model
with a 23 % smaller memory footprint *and* a better perplexity than a vanilla model with less
than half as many layers. Two commands reproduce this at the scale of a laptop, at character
level on Jane Austen (train: four novels; valid: Northanger Abbey; test: Persuasion):

`tradeoff`: vanilla models of several depths against each hierarchical model at about twice
  those depths, all with the same data, tokens seen, optimizer, schedule and seeds, at a
  context (T = 512) where attention memory matters. For each point and seed it reports the
  paper's three axes: bits per character on the whole valid book (and, in the final table
  only, the test book: never used for choosing anything), activation memory (the bytes the
  training forward pass holds for backward, measured exactly by `minims.memory.saved_bytes`)
  and time per training step.
`ablate`: every modelling choice the code marks "(ours)" (upsampling, pooling, causal mode,
  bottom-up combine and its pre/post split, retina window/scales, the pooling factor k),
  each varied on its own around the model's defaults under one shorter budget (T = 256), with
  valid bpc on the first 131,072 valid characters, activation memory and step time. The models'
  defaults are the winners of this table.

Both take `--seeds 0,1` (every point is trained once per seed; tables give the mean and the
spread, ± half the range over seeds), write `OUT_DIR/results.md`, `results.json` and, with
matplotlib (`pip install -e '.[plot]'`), a plot (`tradeoff.png`: bpc against memory and against
step time). Each point and seed trains in its own folder `OUT_DIR/points/NAME/seed-S/` with the
trainer's resumable checkpoints: a finished one (its `result.json` exists) is never retrained,
an interrupted one resumes. So several processes may share a grid (e.g. one per seed) and a last
run with all seeds writes the tables. `--quick` runs a tiny grid in seconds (the tests use it).
"""
import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

from . import backend, tuning
from .cli import ArgumentParser, run_cli
from .engine import no_grad
from .files import write_text
from .memory import activation_bytes

LN2 = math.log(2.0)

# --- the grids --------------------------------------------------------------------------------
# A point: (name, model, model options). Options not given are the model's defaults.

TRADEOFF_GRID = [
    ("vanilla-2", "vanilla", dict(n_layer=2)),
    ("vanilla-4", "vanilla", dict(n_layer=4)),
    ("top-down-2-2", "top-down", dict(layout="2-2")),
    ("top-down-6-2", "top-down", dict(layout="6-2")),
    ("bottom-up-4", "bottom-up", dict(n_layer=4)),
    ("bottom-up-8", "bottom-up", dict(n_layer=8)),
    ("bottom-up-1-6-1", "bottom-up", dict(layout="1-6-1")),    # 8 layers, most of them coarse
    ("retina-4", "retina", dict(n_layer=4)),
    ("retina-8", "retina", dict(n_layer=8)),
]
TRADEOFF_SETTINGS = dict(block_size=512, batch_size=4, n_embd=64, n_head=4, max_iters=2000,
                         warmup_iters=100, lr=3e-3, min_lr=3e-4, eval_interval=250, eval_iters=4)

# Each row spells out every (ours) option of its model, so that it keeps its meaning when a
# default changes; each row changes one choice from its family's base. The table marks the row
# that equals the model's current defaults.
_TD = dict(layout="4-2", pool=4, pool_kind="mean", upsample_kind="linear", causal_mode="shift",
           window=0)
_BU = dict(layout="0-4-2", pool=4, pool_kind="mean", combine="aggregate", upsample_kind="repeat",
           causal_mode="shift", window=0)
_RET = dict(n_layer=4, pool=4, n_scales=1, window=32, band=2, pool_kind="mean")
ABLATE_GRID = [
    ("vanilla-2", "vanilla", dict(n_layer=2)),
    ("vanilla-4", "vanilla", dict(n_layer=4)),
    ("top-down/upsample=repeat", "top-down", {**_TD, "upsample_kind": "repeat"}),
    ("top-down/upsample=linear", "top-down", _TD),
    ("top-down/pool=linear", "top-down", {**_TD, "pool_kind": "linear"}),
    ("top-down/causal=delay", "top-down", {**_TD, "causal_mode": "delay"}),
    ("top-down/k=2", "top-down", {**_TD, "pool": 2}),
    ("top-down/k=3", "top-down", {**_TD, "pool": 3}),
    ("bottom-up/aggregate,0-4-2", "bottom-up", _BU),
    ("bottom-up/aggregate,1-4-1", "bottom-up", {**_BU, "layout": "1-4-1"}),
    ("bottom-up/upsample=repeat,1-4-1", "bottom-up", {**_BU, "layout": "1-4-1", "combine": "upsample"}),
    ("bottom-up/upsample=linear,1-4-1", "bottom-up", {**_BU, "layout": "1-4-1", "combine": "upsample",
                                                      "upsample_kind": "linear"}),
    ("bottom-up/pool=linear", "bottom-up", {**_BU, "pool_kind": "linear"}),
    ("bottom-up/upsample=linear,1-4-1,pool=linear", "bottom-up", {**_BU, "layout": "1-4-1",
                                                                 "combine": "upsample",
                                                                 "upsample_kind": "linear",
                                                                 "pool_kind": "linear"}),
    ("retina/w=32", "retina", _RET),
    ("retina/w=64", "retina", {**_RET, "window": 64}),
    ("retina/scales=2", "retina", {**_RET, "n_scales": 2}),
    ("retina/pool=linear", "retina", {**_RET, "pool_kind": "linear"}),
    ("retina/scales=2,pool=linear", "retina", {**_RET, "n_scales": 2, "pool_kind": "linear"}),
]
ABLATE_SETTINGS = dict(block_size=256, batch_size=8, n_embd=128, n_head=4, max_iters=300,
                       warmup_iters=30, lr=2e-3, min_lr=2e-4, eval_interval=300, eval_iters=4)

QUICK_GRID = [
    ("vanilla-1", "vanilla", dict(n_layer=1)),
    ("vanilla-2", "vanilla", dict(n_layer=2)),
    ("top-down-2-1", "top-down", dict(layout="2-1")),
    ("bottom-up-1-2-1", "bottom-up", dict(layout="1-2-1")),
    ("retina-2", "retina", dict(n_layer=2, window=16)),
]
QUICK_SETTINGS = dict(block_size=64, batch_size=4, n_embd=32, n_head=2, max_iters=15,
                      warmup_iters=3, lr=2e-3, min_lr=2e-4, eval_interval=15, eval_iters=2)

# name -> (grid, settings, valid/test characters scored at the end: None = the whole book)
EXPERIMENTS = {
    "tradeoff": (TRADEOFF_GRID, TRADEOFF_SETTINGS, None),
    "ablate": (ABLATE_GRID, ABLATE_SETTINGS, 131072),
}
QUICK_EVAL_TOKENS = 4096


# --- measuring one model ------------------------------------------------------------------

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


def point_memory(folder, settings):
    """Activation bytes (all, and without the head) of the model in a point's checkpoint."""
    from .checkpoint import load
    from .models import model_from_description
    model = model_from_description(load(Path(folder) / "ckpt.npz")["header"]["model"])
    return activation_bytes(model, settings["batch_size"], settings["block_size"],
                            model.config.vocab_size)


def _write_json(path, obj):
    write_text(path, json.dumps(obj, indent=2) + "\n")


def point_folder(out_dir, name, seed):
    """Where one point trains with one seed: OUT_DIR/points/NAME/seed-S ('/' in NAME → '__')."""
    return Path(out_dir) / "points" / name.replace("/", "__") / f"seed-{seed}"


def run_point(name, model, options, settings, seed, args, eval_tokens, score_test):
    """Train one point with one seed (or reuse its finished result) -> its result dict."""
    from .train import make_args, setup
    folder = point_folder(args.out_dir, name, seed)
    result_path = folder / "result.json"
    if result_path.exists():
        print(f"[{name} seed {seed}] done before, reusing {result_path}")
        result = json.loads(result_path.read_text())
        # memory is a property of the code, not of the training: measure it again, so the
        # table always describes the minims you have
        result["activation_bytes"], result["body_activation_bytes"] = point_memory(folder, settings)
        return result
    folder.mkdir(parents=True, exist_ok=True)
    targs = make_args(model=model, data=args.data, tokenizer="char", backend=args.backend,
                      out_dir=str(folder), cache_dir=args.cache_dir, seed=seed,
                      resume=(folder / "ckpt.npz").exists(), **settings, **options)
    print(f"[{name} seed {seed}] training {model} {options} ...", flush=True)
    t0 = time.perf_counter()
    trainer = setup(targs, verbose=args.verbose)
    metrics = trainer.run()
    m, s = trainer.model, settings
    held, body = activation_bytes(m, s["batch_size"], s["block_size"], trainer.tokenizer.vocab_size)
    valid = split_loss(m, trainer.splits["valid"], s["block_size"], 4 * s["batch_size"], eval_tokens)
    test = (split_loss(m, trainer.splits["test"], s["block_size"], 4 * s["batch_size"], eval_tokens)
            if score_test else None)
    tokens_per_step = s["batch_size"] * s["block_size"]
    cfg = m.config
    result = {
        "name": name, "model": model, "options": options, "seed": seed,
        "config": m.describe()["config"],
        "layers": cfg.n_layer, "params": m.num_parameters(),
        "activation_bytes": held, "body_activation_bytes": body,
        "peak_mem_bytes": metrics["peak_mem_bytes"],
        "valid_bpc": valid / LN2, "test_bpc": None if test is None else test / LN2,
        "unigram_ppl": metrics["unigram_ppl"], "tokens_per_s": metrics["tokens_per_s"],
        "step_ms": (1000 * tokens_per_step / metrics["tokens_per_s"]
                    if metrics["tokens_per_s"] else None),
        "wall_s": time.perf_counter() - t0, "backend": backend.get_backend(),
    }
    _write_json(result_path, result)
    print(f"[{name} seed {seed}] valid bpc {result['valid_bpc']:.4f} | "
          f"{held / 1e6:.1f} MB | {result['wall_s'] / 60:.1f} min", flush=True)
    return result


def time_steps(rows, settings, rounds, out_dir):
    """Median wall time (ms) of one training step (forward, backward, AdamW) of each row's model,
    measured side by side: `rounds` rounds, each timing one step of every model in turn, so a
    change in the machine's load touches all models alike (the trainer's own tok/s, taken while
    other runs shared the cores, are not comparable across points). Sets row["step_ms"] and
    row["step_ms_spread"] (half the interquartile range) in place."""
    from .checkpoint import load
    from .models import model_from_description
    from .optim import AdamW
    from .train import train_step
    rng = np.random.default_rng(0)
    models = []
    for row in rows:
        header = load(point_folder(out_dir, row["name"], row["seeds"][0]) / "ckpt.npz")["header"]
        model = model_from_description(header["model"])
        models.append((model, AdamW(model.parameters(), lr=1e-4)))
    V = models[0][0].config.vocab_size
    Bsz, T = settings["batch_size"], settings["block_size"]
    times = [[] for _ in rows]
    for r in range(rounds + 1):                     # round 0 warms up and is not counted
        for i, (model, opt) in enumerate(models):
            ids = rng.integers(0, V, size=(Bsz, T + 1))
            t0 = time.perf_counter()
            train_step(model, opt, [(ids[:, :-1], ids[:, 1:])], lr=1e-4)
            backend.synchronize()
            if r:
                times[i].append(1000 * (time.perf_counter() - t0))
    for row, ts in zip(rows, times):
        q1, med, q3 = np.percentile(ts, [25, 50, 75])
        row["step_ms"], row["step_ms_spread"] = float(med), float(q3 - q1) / 2
        row["step_ms_measured"] = f"median of {rounds} interleaved steps"


# --- summarising over seeds -----------------------------------------------------------------

def summarise(results):
    """Per point (in grid order): mean and spread (± half the range) over its seeds."""
    rows = {}
    for r in results:
        rows.setdefault(r["name"], []).append(r)

    def stat(rs, key):
        values = [r[key] for r in rs if r.get(key) is not None]
        if not values:
            return None, None
        return float(np.mean(values)), (max(values) - min(values)) / 2

    out = []
    for name, rs in rows.items():
        first = rs[0]
        row = {"name": name, "model": first["model"], "options": first["options"],
               "layers": first["layers"], "params": first["params"], "seeds": [r["seed"] for r in rs],
               "activation_bytes": first["activation_bytes"],
               "body_activation_bytes": first["body_activation_bytes"]}
        for key in ("valid_bpc", "test_bpc", "step_ms"):
            row[key], row[key + "_spread"] = stat(rs, key)
        out.append(row)
    return out


def _pm(mean, spread, digits=3):
    if mean is None:
        return ""
    return f"{mean:.{digits}f} ± {spread:.{digits}f}"


def tradeoff_table(rows, settings, seeds):
    vanilla = {r["layers"]: r for r in rows if r["model"] == "vanilla"}
    lines = ["| point | layers | layout | params | seeds | activation MB | body MB | step ms | "
             "valid bpc | test bpc | vs vanilla of half the depth |",
             "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        ref = vanilla.get(r["layers"] // 2) if r["model"] != "vanilla" else None
        if ref is not None:
            verdict = (f"vanilla-{ref['layers']}: Δbpc {r['valid_bpc'] - ref['valid_bpc']:+.3f}, "
                       f"memory {r['activation_bytes'] / ref['activation_bytes']:.2f}×, "
                       f"step {r['step_ms'] / ref['step_ms']:.2f}×")
        else:
            verdict = ""
        lines.append(f"| {r['name']} | {r['layers']} | {r.get('layout', '')} | {r['params']:,} | "
                     f"{len(r['seeds'])} | "
                     f"{r['activation_bytes'] / 1e6:.1f} | {r['body_activation_bytes'] / 1e6:.1f} | "
                     f"{_pm(r['step_ms'], r['step_ms_spread'], 0)} | "
                     f"{_pm(r['valid_bpc'], r['valid_bpc_spread'])} | "
                     f"{_pm(r['test_bpc'], r['test_bpc_spread'])} | {verdict} |")
    lines += ["", _settings_text(settings, seeds, "the whole valid and test books", rows)]
    return "\n".join(lines)


def matches_defaults(model, options, layers):
    """Does a row's model equal `model`'s current defaults at its depth? (Top-down layouts are
    a depth choice, not a default; bottom-up's pre/post split is a default.)"""
    from .models import build_model
    keys = [k for k in options if k not in ("n_layer", "layout") or
            (k == "layout" and model == "bottom-up")]
    default = build_model(model, vocab_size=2, block_size=1024, n_layer=layers).config
    return all(getattr(default, k) == options[k] for k in keys)


def ablation_table(rows, settings, seeds, eval_tokens):
    base = {}
    for r in rows:
        if r["model"] != "vanilla" and matches_defaults(r["model"], r["options"], r["layers"]):
            base[r["model"]] = r
    lines = ["| row | layers | layout | activation MB | step ms | valid bpc | vs the defaults |",
             "|---|---:|---|---:|---:|---:|---:|"]
    for r in rows:
        ref = base.get(r["model"])
        if ref is r:
            diff = "(defaults)"
        else:
            diff = "" if ref is None else f"{r['valid_bpc'] - ref['valid_bpc']:+.3f}"
        lines.append(f"| {r['name']} | {r['layers']} | {r.get('layout', '')} | "
                     f"{r['activation_bytes'] / 1e6:.1f} | {_pm(r['step_ms'], r['step_ms_spread'], 0)} | "
                     f"{_pm(r['valid_bpc'], r['valid_bpc_spread'])} | {diff} |")
    where = "the whole valid book" if eval_tokens is None else f"the first {eval_tokens:,} valid characters"
    lines += ["", _settings_text(settings, seeds, where, rows)]
    return "\n".join(lines)


def _settings_text(s, seeds, scored, rows):
    timed = rows and rows[0].get("step_ms_measured")
    step = (f"step ms: the {timed} of each model, side by side in one process (± half the "
            f"interquartile range)" if timed else
            "step ms: mean wall time of a training step as the trainer measured it (first step "
            "excluded), while other runs shared the machine: a rough figure, not comparable "
            "across rows")
    return (f"Character-level Austen (train: 4 novels; valid: Northanger Abbey; test: Persuasion), "
            f"T={s['block_size']}, B={s['batch_size']}, C={s['n_embd']}, {s['n_head']} heads, "
            f"{s['max_iters']} AdamW steps (lr {s['lr']} → {s['min_lr']}, warmup {s['warmup_iters']}, "
            f"cosine), seeds {', '.join(map(str, seeds))} (mean ± half the range). bpc: bits per "
            f"character on {scored}. Activation MB: bytes saved for backward by one training forward "
            f"pass (10^6 bytes); body MB: the same without the output head and loss; {step}.")


# --- the plot ---------------------------------------------------------------------------------

def plot(rows, path):
    """bpc against activation memory and against step time, one line per model family.
    Uses matplotlib's object-oriented API (no global backend switch). -> path or None."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        print("matplotlib is not installed: no plot (pip install -e '.[plot]')")
        return None
    fig = Figure(figsize=(10, 4))
    axes = fig.subplots(1, 2, sharey=True)
    for model in dict.fromkeys(r["model"] for r in rows):
        rs = sorted((r for r in rows if r["model"] == model), key=lambda r: r["layers"])
        for ax, key, scale in ((axes[0], "activation_bytes", 1e-6), (axes[1], "step_ms", 1.0)):
            xs = [r[key] * scale for r in rs]
            ys = [r["valid_bpc"] for r in rs]
            ax.errorbar(xs, ys, yerr=[r["valid_bpc_spread"] for r in rs], marker="o", capsize=3,
                        label=model)
            for x, y, r in zip(xs, ys, rs):
                ax.annotate(f"{r['layers']}L", (x, y), textcoords="offset points", xytext=(4, 4),
                            fontsize=8)
    axes[0].set_xlabel("activation memory held for backward (MB)")
    axes[1].set_xlabel("time per training step (ms, 2-core CPU)")
    axes[0].set_ylabel("valid bits per character (lower is better)")
    axes[0].legend()
    for ax in axes:
        ax.grid(alpha=0.3)
    fig.suptitle("minims on Austen, character level: labels are layer counts")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return path


# --- the command ----------------------------------------------------------------------------

def parse_seeds(text):
    try:
        seeds = [int(s) for s in str(text).split(",") if s.strip() != ""]
    except ValueError:
        seeds = []
    if not seeds or any(s < 0 for s in seeds):
        from .errors import UsageError
        raise UsageError(f"--seeds must be non-negative integers joined by ',', like 0,1; got {text!r}")
    return seeds


def only_names(text, names):
    """--only's comma-separated point names -> a set. A name may itself hold commas (ablation
    rows like 'bottom-up/upsample=linear,1-4-1'), so at each place the longest run of pieces that
    names a point is taken; a piece that names none is kept as it is (it matches no point)."""
    parts, wanted, i = text.split(","), set(), 0
    while i < len(parts):
        for j in range(len(parts), i, -1):
            if ",".join(parts[i:j]) in names:
                wanted.add(",".join(parts[i:j]))
                i = j
                break
        else:
            wanted.add(parts[i])
            i += 1
    return wanted


def run_experiment(args):
    grid, settings, eval_tokens = EXPERIMENTS[args.experiment]
    if args.quick:
        grid, settings, eval_tokens = QUICK_GRID, QUICK_SETTINGS, QUICK_EVAL_TOKENS
    settings = dict(settings)
    if args.max_iters is not None:
        settings["max_iters"] = args.max_iters
        settings["eval_interval"] = min(settings["eval_interval"], args.max_iters)
    if args.only:
        wanted = only_names(args.only, [g[0] for g in grid])
        grid = [g for g in grid if g[0] in wanted]
        if not grid:
            from .errors import UsageError
            raise UsageError(f"--only {args.only!r} names no point of the {args.experiment} grid; "
                             "points: " + ", ".join(g[0] for g in (QUICK_GRID if args.quick else
                                                                   EXPERIMENTS[args.experiment][0])))
    seeds = parse_seeds(args.seeds)
    score_test = args.experiment == "tradeoff"
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    _write_json(out / "settings.json", {"experiment": args.experiment, "settings": settings,
                                        "quick": args.quick, "seeds": seeds, "grid": grid})
    results = []
    for name, model, options in grid:
        for seed in seeds:
            folder = point_folder(args.out_dir, name, seed)
            if args.report_only and not (folder / "result.json").exists():
                print(f"[{name} seed {seed}] not finished: left out of the tables (--report-only)")
                continue
            results.append(run_point(name, model, options, settings, seed, args, eval_tokens,
                                     score_test))
    if not results:
        from .errors import UsageError
        raise UsageError(f"no finished point in {args.out_dir}: run without --report-only first")
    rows = summarise(results)
    by_name = {r["name"]: r for r in results}
    for row in rows:
        row["layout"] = by_name[row["name"]]["config"].get("layout", "")
    if args.time_steps:
        print(f"timing one training step of each point, {args.time_steps} interleaved rounds ...")
        time_steps(rows, settings, args.time_steps, args.out_dir)
    if args.experiment == "tradeoff":
        table = tradeoff_table(rows, settings, seeds)
    else:
        table = ablation_table(rows, settings, seeds, eval_tokens)
    write_text(out / "results.md", table + "\n")
    _write_json(out / "results.json", {"settings": settings, "seeds": seeds, "rows": rows,
                                       "results": results})
    picture = plot(rows, out / f"{args.experiment}.png") if args.experiment == "tradeoff" else None
    print(table)
    print(f"wrote {out / 'results.md'}, {out / 'results.json'}" + (f", {picture}" if picture else ""))
    return rows


def build_parser():
    p = ArgumentParser(prog="python -m minims.experiment", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("experiment", choices=sorted(EXPERIMENTS),
                   help="'tradeoff' (bpc vs memory and step time) or 'ablate' (every (ours) choice)")
    p.add_argument("--quick", action="store_true",
                   help="a tiny grid in seconds (tiny models, a smoke test, not a measurement)")
    p.add_argument("--out-dir", default=None,
                   help="where points, tables and the plot go (default: out/EXPERIMENT, or "
                        "out/EXPERIMENT-quick with --quick)")
    p.add_argument("--backend", default="numpy", choices=backend.BACKENDS, help="array backend (default numpy)")
    p.add_argument("--data", default="austen", help="'austen' or a path to your text (default austen)")
    p.add_argument("--cache-dir", default=".cache", help="tokenized-corpus cache (default .cache)")
    p.add_argument("--seeds", default="0,1",
                   help="comma-separated seeds; each point is trained once per seed (default 0,1)")
    p.add_argument("--max-iters", type=int, default=None, help="override the steps per point")
    p.add_argument("--only", default=None, help="comma-separated point names to run (default: all)")
    p.add_argument("--verbose", action="store_true", help="print each training run's progress")
    p.add_argument("--time-steps", type=int, default=0, metavar="N",
                   help="time one training step of every point's model side by side, N rounds, and "
                        "report the medians as step ms (do it on a quiet machine; default 0: the "
                        "trainer's own timing)")
    p.add_argument("--report-only", action="store_true",
                   help="train nothing: write the tables from the points (and seeds) already finished")
    return p


def main(argv=None):
    """The command line -> exit code (errors mapped by minims.cli.run_cli)."""
    return run_cli(_main, argv)


def _main(argv):
    args = build_parser().parse_args(argv)
    backend.set_backend(args.backend)
    tuning.reuse_freed_memory()   # as the trainer does: the --time-steps figures too
    if args.out_dir is None:
        args.out_dir = f"out/{args.experiment}" + ("-quick" if args.quick else "")
    run_experiment(args)


if __name__ == "__main__":
    sys.exit(main())
