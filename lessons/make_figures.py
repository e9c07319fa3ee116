"""Regenerate the lessons' committed figures: `python lessons/make_figures.py` (from anywhere).

Runs every lesson (lessons/NN_*.py) start to finish as a script, at its default sizes, each with
its own temporary output folder (MINIMS_LESSONS_OUT), then copies the PNG figures it drew into
lessons/figures/, replacing the old ones. Nothing else of the runs is kept. About two minutes on
two quiet CPU cores; needs matplotlib (pip install -e '.[plot]').

    python lessons/make_figures.py                   # every lesson -> lessons/figures/
    python lessons/make_figures.py --only 06,11      # some lessons
    python lessons/make_figures.py --out /tmp/figs   # somewhere else (the tests do this)

Exit code 1 when a lesson fails (the end of its output is printed), 2 for a bad flag.
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

LESSONS_DIR = Path(__file__).resolve().parent
ROOT = LESSONS_DIR.parent
FIGURES_DIR = LESSONS_DIR / "figures"


def lessons(only=None):
    """The lesson files, in order; `only`: lesson numbers ("06") to keep."""
    found = sorted(LESSONS_DIR.glob("[0-9][0-9]_*.py"))
    return [p for p in found if only is None or p.name[:2] in only]


def make_figures(paths, out_dir, quick=False):
    """Run each lesson in `paths` and copy its PNGs into `out_dir` -> the Paths written.
    RuntimeError naming the lesson when one fails."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for lesson in paths:
        with tempfile.TemporaryDirectory() as tmp:
            env = dict(os.environ, MINIMS_LESSONS_OUT=tmp)
            env.pop("MINIMS_QUICK", None)
            if quick:                                   # the test suite's fast mode
                env["MINIMS_QUICK"] = "1"
            print(f"running {lesson.name} ...", flush=True)
            run = subprocess.run([sys.executable, str(lesson)], cwd=ROOT, env=env,
                                 capture_output=True, text=True)
            if run.returncode != 0:
                raise RuntimeError(f"{lesson.name} failed (exit code {run.returncode}):\n"
                                   f"{run.stdout[-2000:]}\n{run.stderr[-2000:]}")
            for png in sorted(Path(tmp).glob("*.png")):
                target = out_dir / png.name
                shutil.copyfile(png, target)
                written.append(target)
                print(f"  {target} ({png.stat().st_size // 1024} KiB)")
    return written


def main(argv=None):
    p = argparse.ArgumentParser(prog="python lessons/make_figures.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", default=None, metavar="NN,NN",
                   help="comma-separated lesson numbers (default: every lesson)")
    p.add_argument("--out", default=str(FIGURES_DIR), metavar="DIR",
                   help="where the PNGs go (default lessons/figures)")
    p.add_argument("--quick", action="store_true",
                   help="run the lessons in quick mode (MINIMS_QUICK=1): smaller figures, for tests")
    args = p.parse_args(argv)
    only = None if args.only is None else {n.strip().zfill(2) for n in args.only.split(",")}
    paths = lessons(only)
    if not paths:
        p.error(f"--only {args.only!r} names no lesson")
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        print("error: the figures need matplotlib: pip install -e '.[plot]'", file=sys.stderr)
        return 2
    try:
        written = make_figures(paths, args.out, quick=args.quick)
    except RuntimeError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"{len(written)} figures in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
