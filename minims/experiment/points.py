"""Training and scoring one point with one seed, and the committed results (ours).

Two places per point and seed:

- its training folder, `OUT_DIR/points/NAME/seed-S/` ('/' in NAME becomes '__'): a plain
  trainer folder (config.json, log.jsonl, ckpt.npz), resumable, never committed. A folder made
  by `python -m minims.train` with the point's flags is the same thing and is adopted: resumed
  when partial, scored when finished;
- its committed result, `RESULTS_DIR/EXPERIMENT/points/NAME/seed-S/`: `result.json` (the
  scores, the model's config and the point's full settings, see identity.py) and `log.jsonl`
  (its learning curve: the trainer's evaluation records). Small text files that another
  machine continues from: a point with a committed result is never trained again, and the
  tables are made from these files alone.

Before anything is trained or reused, its recorded settings are compared with the requested
ones (identity.py): a difference is refused, never mixed.
"""
import json
import math
import time
from pathlib import Path

from .. import backend
from ..files import write_text
from .identity import differences, folder_settings, point_settings, refuse_mismatches, trainer_args
from ..memory import activation_bytes
from .measure import split_loss

LN2 = math.log(2.0)
RESULT_NAME, CURVE_NAME = "result.json", "log.jsonl"


def folder_name(name):
    """A point name as a folder name: '/' becomes '__' (ablation rows like 'top-down/k=2')."""
    return name.replace("/", "__")


def point_folder(out_dir, name, seed):
    """Where one point trains with one seed: OUT_DIR/points/NAME/seed-S."""
    return Path(out_dir) / "points" / folder_name(name) / f"seed-{seed}"


def result_folder(results_dir, experiment, name, seed):
    """Where one point's committed result lies: RESULTS_DIR/EXPERIMENT/points/NAME/seed-S."""
    return Path(results_dir) / experiment / "points" / folder_name(name) / f"seed-{seed}"


def write_json(path, obj):
    write_text(path, json.dumps(obj, indent=2) + "\n")


def read_curve(path):
    """The evaluation records of a log.jsonl (minims/train/run_folder.py's read_log: lines
    that are not records are skipped)."""
    from ..train.run_folder import read_log
    return read_log(path)[0]


def committed_seeds(results_dir, experiment, name):
    """The seeds with a committed result for point `name`, sorted."""
    folder = Path(results_dir) / experiment / "points" / folder_name(name)
    seeds = []
    for sub in folder.glob("seed-*") if folder.is_dir() else []:
        if (sub / RESULT_NAME).is_file() and sub.name[5:].isdigit():
            seeds.append(int(sub.name[5:]))
    return sorted(seeds)


def read_committed(results_dir, experiment, name, seed):
    """A committed result with its curve (result["curve"]: the log records)."""
    folder = result_folder(results_dir, experiment, name, seed)
    result = json.loads((folder / RESULT_NAME).read_text())
    result["curve"] = read_curve(folder / CURVE_NAME) if (folder / CURVE_NAME).exists() else []
    return result


def commit(results_dir, experiment, result, curve):
    """Write a finished point's curve, then its result.json (the mark that it is finished)."""
    folder = result_folder(results_dir, experiment, result["name"], result["seed"])
    write_text(folder / CURVE_NAME, "".join(json.dumps(r) + "\n" for r in curve))
    write_json(folder / RESULT_NAME, {k: v for k, v in result.items() if k != "curve"})
    return folder


def check_committed(point, settings, seed, data, results_dir, experiment):
    """[(folder, differences)] when the committed result of (point, seed) was made with other
    settings than the requested ones; [] when it matches or there is none."""
    folder = result_folder(results_dir, experiment, point.name, seed)
    if not (folder / RESULT_NAME).is_file():
        return []
    recorded = json.loads((folder / RESULT_NAME).read_text()).get("settings", {})
    diffs = differences(recorded, point_settings(point, settings, seed, data))
    return [(str(folder), diffs)] if diffs else []


def check_folder(point, settings, seed, data, out_dir):
    """The same for the training folder of (point, seed): a partial or finished run there."""
    folder = point_folder(out_dir, point.name, seed)
    recorded = folder_settings(folder)
    if recorded is None:
        return []
    diffs = differences(recorded, point_settings(point, settings, seed, data))
    return [(str(folder), diffs)] if diffs else []


def _trainer_step_ms(curve, tokens_per_step):
    """Median over the log's evaluation windows of the trainer's own step time (ms), or None."""
    rates = sorted(r["tokens_per_s"] for r in curve if r.get("tokens_per_s"))
    return 1000 * tokens_per_step / rates[len(rates) // 2] if rates else None


def train_point(point, settings, seed, data, out_dir, eval_chars, score_test, cache_dir,
                backend_name="numpy", verbose=False, threads="auto"):
    """Train `point` with `seed` in its folder (fresh, or resuming what is there when its settings
    match), then score it -> (result dict, curve records). `threads`: the trainer's --threads (N
    or "auto": the trainer decides for itself, minims/threads.py). Refuses a folder trained with
    other settings (UsageError); a folder in use by another process raises files.LockedError."""
    from ..train import setup
    from ..train.run_folder import LOG_NAME
    folder = point_folder(out_dir, point.name, seed)
    requested = point_settings(point, settings, seed, data)
    recorded = folder_settings(folder)
    if recorded is not None:
        diffs = differences(recorded, requested)
        refuse_mismatches([(str(folder), diffs)] if diffs else [])
    resume = recorded is not None
    targs = trainer_args(point, settings, seed, data, cache_dir, folder, backend_name, threads)
    targs.resume = resume
    if resume:                     # resume takes every setting from the checkpoint (checked above)
        targs._given = {"resume", "out_dir", "cache_dir", "backend"}
    print(f"[{point.name} seed {seed}] {'resuming the run in ' + str(folder) if resume else 'training'} "
          f"({point.model}, lr {requested['lr']:g}) ...", flush=True)
    t0 = time.perf_counter()
    trainer = setup(targs, verbose=verbose)
    metrics = trainer.run()
    model, s = trainer.model, trainer.args
    held, body = activation_bytes(model, s.batch_size, s.block_size)
    batch = 4 * s.batch_size
    valid = split_loss(model, data.splits["valid"], s.block_size, batch, eval_chars)
    test = split_loss(model, data.splits["test"], s.block_size, batch, eval_chars) if score_test else None
    curve = read_curve(folder / LOG_NAME)
    step_ms = _trainer_step_ms(curve, s.batch_size * s.block_size * s.grad_accum)
    result = {
        "name": point.name, "model": point.model, "options": point.options, "seed": seed,
        "group": point.group, "reference": point.reference,
        "config": model.describe()["config"], "settings": requested, "data": data.describe(),
        "layers": model.config.n_layer, "params": model.num_parameters(),
        "lr": requested["lr"], "min_lr": requested["min_lr"], "max_iters": requested["max_iters"],
        "activation_bytes": held, "body_activation_bytes": body,
        "peak_mem_bytes": next((r["peak_mem_bytes"] for r in curve if r.get("peak_mem_bytes")), None),
        "valid_bpc": valid / LN2, "test_bpc": None if test is None else test / LN2,
        "scored_tokens": {"valid": _scored(data.splits["valid"], eval_chars),
                          "test": _scored(data.splits["test"], eval_chars) if score_test else None},
        "unigram_ppl": metrics["unigram_ppl"], "step_ms": step_ms,
        "tokens_per_s": None if step_ms is None else 1000 * s.batch_size * s.block_size / step_ms,
        "wall_s": time.perf_counter() - t0, "backend": backend.get_backend(),
    }
    print(f"[{point.name} seed {seed}] valid bpc {result['valid_bpc']:.4f} | "
          f"{held / 1e6:.1f} MB | {result['wall_s'] / 60:.1f} min", flush=True)
    return result, curve


def _scored(ids, eval_chars):
    """How many tokens split_loss scores (each predicts the next one)."""
    n = len(ids) - 1
    return n if eval_chars is None else min(n, eval_chars)


def run_point(name, model, options, settings, seed, args, eval_tokens, score_test):
    """Train and score one point (a model with its options, the grid's `settings`) with one seed
    in `args.out_dir` (the experiment's parsed command line: its --data, --cache-dir, --backend,
    --verbose and --threads) -> its result dict (as one entry of EXPERIMENT.json["results"], with
    "curve": its log records). Nothing is committed."""
    from .grids import Point
    from .identity import load_data
    data = load_data(args.data, args.cache_dir)
    result, curve = train_point(Point(name, model, dict(options)), settings, seed, data, args.out_dir,
                                eval_tokens, score_test, args.cache_dir, args.backend, args.verbose,
                                getattr(args, "threads", "auto"))
    return {**result, "curve": curve}
