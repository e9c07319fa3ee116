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
root), or `$MINIMS_LESSONS_OUT` when set (the test suite points it at a temporary folder); the
lessons also put their training runs there (lesson 06: `out/lessons/06_run/`).

Loss curves of training runs, on shared axes so that models can be compared (lessons 06, 08–10):

    plot_loss_curves({"vanilla": "out/lessons/06_run/log.jsonl"}, "06_loss_curves")
"""
import json
import math
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


def lessons_out_dir():
    """The folder the lessons write to: $MINIMS_LESSONS_OUT, else ./out/lessons (a Path)."""
    return Path(os.environ.get("MINIMS_LESSONS_OUT") or Path("out") / "lessons")


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


def save_figure(fig, name, dpi=100):
    """Save `fig` as <lessons_out_dir()>/<name>.png, print the path, show it inline in a notebook;
    -> the Path written (None when `fig` is None, i.e. without matplotlib).

    `name` is the lesson's number and a short title, e.g. "05_attention_heatmap": letters,
    digits, '_' and '-' only (ValueError otherwise). An existing file of that name is replaced
    (the figure of the latest run).
    """
    if fig is None:
        return None
    if not re.fullmatch(r"[A-Za-z0-9_-]+", name):
        raise ValueError(f"figure name {name!r}: use letters, digits, '_' and '-' only")
    folder = lessons_out_dir()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.png"
    fig.savefig(path, dpi=dpi)
    print(f"figure: {path}")
    if in_notebook():
        from IPython.display import Image, display
        display(Image(filename=str(path)))
    return path


def read_log(path):
    """The evaluation records of a training run's log.jsonl (`python -m minims.train`): a list of
    dicts with iter, train_loss, val_loss, ... in file order. Lines that are not records (blank,
    or half-written by a killed run) are skipped. FileNotFoundError when the file is missing."""
    records = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict) and isinstance(record.get("iter"), int):
                records.append(record)
    return records


def plot_loss_curves(runs, name, baseline=None, title="loss during training"):
    """One figure comparing training runs: valid loss (solid) and train loss (dashed) against the
    optimizer step, all runs on the same axes; saved with `save_figure` -> its Path (None
    without matplotlib).

    runs: {label: path of a log.jsonl, or a list of its records}; baseline: an optional
    {label: loss in nats} drawn as horizontal dotted lines (e.g. the unigram model).
    """
    fig = new_figure(figsize=(6.4, 4.0))
    if fig is None:
        return None
    ax = fig.axes[0]
    for label, log in runs.items():
        records = read_log(log) if isinstance(log, (str, Path)) else log
        iters = [r["iter"] for r in records]
        line, = ax.plot(iters, [r["val_loss"] for r in records], marker=".", label=f"{label}: valid")
        ax.plot(iters, [r["train_loss"] for r in records], linestyle="--", color=line.get_color(),
                label=f"{label}: train")
    for label, loss in (baseline or {}).items():
        if math.isfinite(loss):
            ax.axhline(loss, linestyle=":", color="grey")
            ax.annotate(label, (ax.get_xlim()[1], loss), ha="right", va="bottom", color="grey")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("cross-entropy (nats per token)")
    ax.set_title(title)
    ax.legend()
    return save_figure(fig, name)


def draw_dependencies(ax, matrix, title, row_label="output position t", col_label="input position i"):
    """Draw a dependency matrix on `ax`: rows are outputs t, columns inputs i; a nonzero entry is
    a dependency, drawn dark when i <= t and red when i > t (a dependency on the future: a
    leak); the diagonal i = t is marked with a thin line. -> the number of red cells.

    The image version of the ASCII pictures of lessons 07, 09 and 10; `matrix` is any 2-D array
    (NumPy), rows and columns in the same position units.
    """
    import numpy
    matrix = numpy.asarray(matrix)
    rows, cols = matrix.shape
    depends = matrix != 0
    future = depends & (numpy.arange(cols)[None, :] > numpy.arange(rows)[:, None])
    image = numpy.ones((rows, cols, 3))                   # white: no dependency
    image[depends & ~future] = (0.15, 0.15, 0.15)         # dark: depends on the past or present
    image[future] = (0.85, 0.1, 0.1)                      # red: depends on the future
    ax.imshow(image, interpolation="nearest")
    ax.plot([-0.5, min(rows, cols) - 0.5], [-0.5, min(rows, cols) - 0.5], color="tab:blue", lw=0.8)
    ax.set_title(f"{title}\n{int(future.sum())} dependencies on the future", fontsize=9)
    ax.set_xlabel(col_label)
    ax.set_ylabel(row_label)
    ax.set_xticks(range(cols))
    ax.set_yticks(range(rows))
    ax.tick_params(labelsize=6)
    return int(future.sum())


def draw_key_sets(ax, matrix, names, title, row_label="query t", col_label="token i"):
    """Draw which key set each (row, column) belongs to: `matrix` holds 0 (not seen) or s + 1 for
    key set s, named names[s] in the legend (e.g. "fine key", "pooled by k"); cells with
    column > row that are seen are outlined in red (the future). -> the number of such cells.

    The image version of the ASCII key pictures of lessons 09 and 10 (ours).
    """
    import numpy
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch, Rectangle
    matrix = numpy.asarray(matrix)
    rows, cols = matrix.shape
    colours = ["white", "tab:blue", "tab:orange", "tab:green", "tab:purple", "tab:brown"][:len(names) + 1]
    ax.imshow(matrix, cmap=ListedColormap(colours), vmin=-0.5, vmax=len(colours) - 0.5,
              interpolation="nearest")
    future = (matrix != 0) & (numpy.arange(cols)[None, :] > numpy.arange(rows)[:, None])
    for t, i in zip(*numpy.nonzero(future)):
        ax.add_patch(Rectangle((i - 0.5, t - 0.5), 1, 1, fill=False, edgecolor="red", lw=1.5))
    ax.plot([-0.5, min(rows, cols) - 0.5], [-0.5, min(rows, cols) - 0.5], color="grey", lw=0.6)
    ax.legend(handles=[Patch(facecolor=c, edgecolor="grey", label=n) for c, n in zip(colours[1:], names)],
              loc="upper right", fontsize=7)
    ax.set_title(f"{title}\n{int(future.sum())} keys from the future", fontsize=9)
    ax.set_xlabel(col_label)
    ax.set_ylabel(row_label)
    ax.tick_params(labelsize=6)
    return int(future.sum())


def memory_axes(ax, lengths, title, ylabel="saved for backward (MiB)"):
    """Finish a log–log plot of memory against sequence length: the lengths as plain x ticks
    (256, 512, … rather than 10^2.4), the axis labels, the title and the legend."""
    ax.set_xticks(lengths, [str(T) for T in lengths], minor=False)
    ax.set_xticks([], minor=True)
    ax.set_xlabel("sequence length T (tokens)")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend()
