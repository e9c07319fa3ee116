"""Figures for the lessons: one PNG per figure under out/lessons/, shown inline in a notebook (ours).

The lessons draw with matplotlib's object-oriented API on a `matplotlib.figure.Figure` made
here, never through `pyplot`, so nothing switches the global backend: a figure drawn in a
notebook shows inline, one drawn by a script is saved to a file, and code that imports minims
keeps whatever backend its user chose. matplotlib is optional (`pip install -e '.[plot]'`):
without it `new_figure` returns None, says once in one line how to get the pictures, and the
lesson goes on without them.

    fig = new_figure(ncols=2, figsize=(8, 3))      # None without matplotlib
    if fig is not None:
        ax1, ax2 = fig.axes
        ...
        save_figure(fig, "05_attention_heatmap")   # -> out/lessons/05_attention_heatmap.png

The folder is `out/lessons/` under the current directory (the lessons run from the repository
root), or `$MINIMS_FIGURES_DIR` when set (the test suite points it at a temporary folder).
"""
import os
import re
import sys
from pathlib import Path

INSTALL_HINT = "pictures: matplotlib is not installed; pip install -e '.[plot]' to get them"
_said_missing = False


def have_matplotlib():
    """True when matplotlib can be imported."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def figures_dir():
    """The folder figures are saved in: $MINIMS_FIGURES_DIR, else ./out/lessons (a Path)."""
    return Path(os.environ.get("MINIMS_FIGURES_DIR") or Path("out") / "lessons")


def in_notebook():
    """True inside a Jupyter kernel (ipykernel loaded), where a figure is also shown inline."""
    return "ipykernel" in sys.modules


def new_figure(nrows=1, ncols=1, figsize=(6.4, 4.0), **subplot_kw):
    """A matplotlib Figure with nrows × ncols axes (in `fig.axes`, row by row), or None when
    matplotlib is missing (after printing INSTALL_HINT once per process).

    Uses `matplotlib.figure.Figure` directly: no pyplot, no global state, no backend switch.
    """
    global _said_missing
    try:
        from matplotlib.figure import Figure
    except ImportError:
        if not _said_missing:
            print(INSTALL_HINT)
            _said_missing = True
        return None
    fig = Figure(figsize=figsize, layout="constrained")
    fig.subplots(nrows, ncols, squeeze=False, subplot_kw=subplot_kw or None)
    return fig


def save_figure(fig, name, dpi=110):
    """Save `fig` as <figures_dir()>/<name>.png, print the path, show it inline in a notebook;
    -> the Path written (None when `fig` is None, i.e. without matplotlib).

    `name` is the lesson's number and a short title, e.g. "05_attention_heatmap": letters,
    digits, '_' and '-' only (ValueError otherwise). An existing file of that name is replaced
    (the figure of the latest run).
    """
    if fig is None:
        return None
    if not re.fullmatch(r"[A-Za-z0-9_-]+", name):
        raise ValueError(f"figure name {name!r}: use letters, digits, '_' and '-' only")
    folder = figures_dir()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.png"
    fig.savefig(path, dpi=dpi)
    print(f"figure: {path}")
    if in_notebook():
        from IPython.display import Image, display
        display(Image(filename=str(path)))
    return path
