"""The command line: `python -m minims.experiment tradeoff|ablate|lr [flags]` (ours).

`run_experiment` plans the (point, seed) pairs, checks every recorded setting against the
requested ones before anything is trained (identity.py), trains what has no committed result
(points.py), commits each finished point, and rebuilds the tables and figures from the
committed points of the whole grid (tables.py, plots.py).
"""
import argparse
import json
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

from .. import allocator, backend, threads
from ..train import NonFiniteLoss
from ..cli import ArgumentParser, env_default, run_cli
from ..errors import UsageError
from ..files import LockedError, write_text
from .grids import EXPERIMENTS, quick
from .identity import load_data, refuse_mismatches
from .measure import config_memory, time_steps
from .ngram import ngram_bpc
from .plots import curves_plot, tradeoff_plot
from .points import (check_committed, check_folder, commit, committed_seeds, read_committed,
                     train_point, write_json)
from .tables import (ablation_table, lr_picks, lr_table, note, summarise, tradeoff_table,
                     vanilla_depth_check)

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = ROOT / "lessons" / "results"


def parse_seeds(text):
    try:
        seeds = [int(s) for s in str(text).split(",") if s.strip() != ""]
    except ValueError:
        seeds = []
    if not seeds or any(s < 0 for s in seeds):
        raise UsageError(f"--seeds must be non-negative integers joined by ',', like 0,1; got {text!r}")
    return seeds


def only_names(text, names):
    """--only's comma-separated point names -> a set. A name may itself hold commas (ablation
    rows like 'bottom-up/upsample=linear,1-4-1'), so at each place the longest run of pieces that
    names a point is taken. A piece that names no point is refused (UsageError listing the
    valid names): one misspelt name is never dropped silently."""
    parts, wanted, i = text.split(","), set(), 0
    while i < len(parts):
        for j in range(len(parts), i, -1):
            if ",".join(parts[i:j]) in names:
                wanted.add(",".join(parts[i:j]))
                i = j
                break
        else:
            raise UsageError(f"--only: {parts[i]!r} is not a point of this grid; points: " + ", ".join(names))
    return wanted


def plan(args):
    """The experiment as asked: its grid (--quick), its settings (--max-iters), which points
    and seeds to train (--only, --seeds) -> (experiment, [(point, seeds)] to train)."""
    exp = EXPERIMENTS[args.experiment]
    if args.quick:
        exp = quick(exp)
    settings = dict(exp.settings)
    if args.max_iters is not None:
        if args.max_iters < 1:
            raise UsageError(f"--max-iters must be at least 1, got {args.max_iters}")
        settings["max_iters"] = args.max_iters
        settings["eval_interval"] = min(settings["eval_interval"], args.max_iters)
    exp = replace(exp, settings=settings)
    names = [p.name for p in exp.grid]
    wanted = only_names(args.only, names) if args.only else set(names)
    seeds = parse_seeds(args.seeds) if args.seeds is not None else None
    todo = [(p, list(seeds) if seeds is not None else list(p.seeds)) for p in exp.grid if p.name in wanted]
    return exp, todo


def results_dir(args):
    """Where the committed results go: --results-dir; by default lessons/results for a grid run
    as defined (austen, no --quick, no --max-iters), else OUT_DIR/results (a changed grid never
    lands among the committed ones by accident)."""
    if args.results_dir is not None:
        return Path(args.results_dir)
    as_defined = not args.quick and args.max_iters is None and args.data == "austen"
    return COMMITTED if as_defined else Path(args.out_dir) / "results"


def run_experiment(args):
    exp, todo = plan(args)
    out, res = Path(args.out_dir), results_dir(args)
    data = load_data(args.data, args.cache_dir)
    s = exp.settings

    # 1. every recorded setting against the requested ones, before anything is trained
    mismatches = []
    for point in exp.grid:
        for seed in committed_seeds(res, exp.name, point.name):
            mismatches += check_committed(point, s, seed, data, res, exp.name)
    for point, seeds in ([] if args.report_only else todo):
        for seed in seeds:
            if seed not in committed_seeds(res, exp.name, point.name):
                mismatches += check_folder(point, s, seed, data, out)
    refuse_mismatches(mismatches)

    # 2. train what has no committed result
    diverged = []
    for point, seeds in todo:
        for seed in seeds:
            if seed in committed_seeds(res, exp.name, point.name):
                print(f"[{point.name} seed {seed}] done before, reusing its committed result")
                continue
            if args.report_only:      # named once, by the report (or its error when nothing is committed)
                continue
            try:
                result, curve = train_point(point, s, seed, data, out, exp.eval_chars, exp.score_test,
                                            args.cache_dir, args.backend, args.verbose, args.threads)
            except LockedError as e:
                print(f"[{point.name} seed {seed}] skipped: {e}")
                continue
            except NonFiniteLoss as e:          # a result of the sweep, not a reason to stop it
                print(f"[{point.name} seed {seed}] diverged, left out: {e}")
                diverged.append(f"{point.name} seed {seed}")
                continue
            folder = commit(res, exp.name, result, curve)
            print(f"[{point.name} seed {seed}] committed {folder}")

    # 3. the tables and figures, from the committed points of the whole grid
    return report(exp, todo, data, res, args.time_steps, diverged)


def keep_side_by_side_times(rows, previous):
    """Without --time-steps, keep the step times of the last committed report (`previous`, its
    JSON) where it timed exactly these points side by side: the trainer's own times, taken while
    other work shared the machine, must not silently replace them. Side-by-side times are only
    comparable within one set of points, so a report over other points keeps none."""
    try:
        old = {r["name"]: r for r in json.loads(Path(previous).read_text())["rows"]}
    except (OSError, ValueError, KeyError, TypeError):
        return
    if {r["name"] for r in rows} != set(old) or not all(o.get("step_ms_measured") for o in old.values()):
        return
    for row in rows:
        for key in ("step_ms", "step_ms_spread", "step_ms_measured"):
            row[key] = old[row["name"]][key]


def report(exp, todo, data, res, rounds=0, diverged=()):
    """Tables and figures of `exp` from the committed results under `res` -> the rows."""
    s = exp.settings
    results = []
    for point in exp.grid:
        done = committed_seeds(res, exp.name, point.name)
        results += [read_committed(res, exp.name, point.name, seed) for seed in done]
    wanted = {(p.name, seed) for p, seeds in todo for seed in seeds} | {
        (p.name, seed) for p in exp.grid for seed in p.seeds}
    done = {(r["name"], r["seed"]) for r in results}
    missing = [f"{name} seed {seed}" + (" (diverged)" if f"{name} seed {seed}" in diverged else "")
               for name, seed in sorted(wanted - done)]
    if not results:
        raise UsageError(f"no committed point of the {exp.name} grid in {res}: run it without "
                         "--report-only first")
    if missing:
        print(f"not finished, left out of the tables: {', '.join(missing)}")
    rows = summarise(results, exp.grid)
    for row in rows:       # memory is a property of the code: measured again, from the config
        row["activation_bytes"], row["body_activation_bytes"] = config_memory(
            row["model"], row["config"], s["batch_size"], s["block_size"])
    if rounds:
        print(f"timing one training step of each point, {rounds} interleaved rounds ...")
        time_steps(rows, s["batch_size"], s["block_size"], rounds)
    else:
        keep_side_by_side_times(rows, res / f"{exp.name}.json")
    valid_ids = data.splits["valid"][:None if exp.eval_chars is None else exp.eval_chars + 1]
    grams = ngram_bpc(data.splits["train"], valid_ids, data.vocab_size)
    baselines = {"unigram": grams[1], "bigram": grams[2], "trigram": grams[3]}

    extra = {}
    if exp.table == "tradeoff":
        table = tradeoff_table(rows)
    elif exp.table == "ablate":
        table = ablation_table(rows)
        passed, line = vanilla_depth_check(rows)
        print(line)
        extra = {"vanilla_depth_check": {"passed": passed, "text": line}}
        table += "\n\n" + line
    else:
        table = lr_table(rows)
        extra = {"lr_picks": lr_picks(rows)}
    text = table + "\n\n" + note(s, data.describe(), results, rows, baselines, missing) + "\n"
    res.mkdir(parents=True, exist_ok=True)
    write_text(res / f"{exp.name}.md", text)
    write_json(res / f"{exp.name}.json", {
        "experiment": exp.name, "settings": s, "data": data.describe(), "baselines_bpc": baselines,
        "rows": rows, "results": [{k: v for k, v in r.items() if k != "curve"} for r in results],
        "missing": missing, **extra})
    where = "Austen" if data.name == "austen" else Path(data.name).name
    title = f"minims, {where}, {data.tokenizer}-level, T={s['block_size']}: {s['max_iters']} steps"
    figures = [curves_plot(rows, res / f"{exp.name}-curves.png", baselines, "learning curves: " + title)]
    if exp.table == "tradeoff":
        figures.insert(0, tradeoff_plot(rows, res / f"{exp.name}.png", baselines,
                                        title + "; labels are layouts"))
    print(text, end="")
    print("wrote " + ", ".join(str(p) for p in [res / f"{exp.name}.md", res / f"{exp.name}.json",
                                                *figures] if p))
    return rows


def build_parser():
    from . import __doc__ as doc
    p = ArgumentParser(prog="python -m minims.experiment", description=doc,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("experiment", choices=sorted(EXPERIMENTS),
                   help="'tradeoff' (bpc vs memory and step time), 'ablate' (every (ours) choice, and "
                        "the attention pooling and upsampling rows) or 'lr' (the learning-rate sweep)")
    p.add_argument("--quick", action="store_true",
                   help="a tiny grid in seconds (tiny models, a smoke test, not a measurement)")
    p.add_argument("--out-dir", default=None,
                   help="where the points train (checkpoints; never committed) (default: "
                        "out/EXPERIMENT, or out/EXPERIMENT-quick with --quick)")
    p.add_argument("--results-dir", default=None,
                   help="where the finished points' results and curves, the tables and the figures "
                        "go (default: lessons/results for a grid as defined; OUT_DIR/results with "
                        "--quick, --max-iters or other --data)")
    p.add_argument("--backend", default=env_default("MINIMS_BACKEND", "numpy"), choices=backend.BACKENDS,
                   help="array backend (default: the environment variable MINIMS_BACKEND, else numpy)")
    p.add_argument("--data", default="austen", help="'austen' or a path to your text (default austen)")
    p.add_argument("--cache-dir", default=".cache", help="tokenized-corpus cache (default .cache)")
    p.add_argument("--seeds", default=None,
                   help="comma-separated seeds to train every chosen point with (default: each "
                        "point's own seeds, as the grid lists them); the tables hold every committed seed")
    p.add_argument("--max-iters", type=int, default=None,
                   help="override the steps per point (a new grid: its results go under OUT_DIR/results)")
    p.add_argument("--only", default=None,
                   help="comma-separated point names to train (default: all); the tables cover the "
                        "whole grid's committed points")
    p.add_argument("--verbose", action="store_true", help="print each training run's progress")
    p.add_argument("--time-steps", type=int, default=0, metavar="N",
                   help="time one training step of every point's model (built fresh from its "
                        "config) side by side, N rounds, and report the medians as step ms (do it on "
                        "a quiet machine; default 0: the trainer's own timing)")
    threads.add_threads_flag(p, " (passed to each point's trainer, which decides for itself)")
    p.add_argument("--report-only", action="store_true",
                   help="train nothing: rebuild the tables and figures from the committed points alone")
    return p


def main(argv=None):
    """The command line -> exit code (errors mapped by minims.cli.run_cli)."""
    return run_cli(_main, argv)


def _main(argv):
    args = build_parser().parse_args(argv)
    if args.time_steps < 0:
        raise UsageError(f"--time-steps must be >= 0, got {args.time_steps}")
    backend.set_backend(args.backend)
    allocator.reuse_freed_memory()   # as the trainer does: the --time-steps figures too
    if args.out_dir is None:
        args.out_dir = f"out/{args.experiment}" + ("-quick" if args.quick else "")
    results = results_dir(args) if args.results_dir is None else args.results_dir   # '' stays ''
    for flag, folder in (("--out-dir", args.out_dir), ("--results-dir", results),
                         ("--cache-dir", args.cache_dir)):
        check_folder_flag(flag, folder)
    run_experiment(args)


def check_folder_flag(flag, folder):
    """Refuse, before anything trains, a folder flag that is empty, names a file, or lies where
    nothing can be written -> UsageError naming the flag (ours: the results are written only
    after the first point has trained, which would fail with a traceback). Creates nothing."""
    if not str(folder).strip():
        raise UsageError(f"{flag} is empty: give a folder (it is created if missing)")
    path = Path(folder).absolute()
    if path.exists() and not path.is_dir():
        raise UsageError(f"{flag} {folder} is a file, not a folder; give a folder (it is created if missing)")
    existing = next(p for p in (path, *path.parents) if p.exists())
    if not existing.is_dir():
        raise UsageError(f"{flag} {folder}: {existing} is a file, so no folder can be made under it")
    try:                                    # a folder made and removed again: can we write there?
        tempfile.TemporaryDirectory(dir=existing).cleanup()
    except OSError as e:
        raise UsageError(f"{flag} {folder}: nothing can be made in {existing} "
                         f"({e.strerror or e}); choose a writable folder") from None


if __name__ == "__main__":
    sys.exit(main())
