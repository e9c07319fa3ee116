"""The experiments' figures: the trade-off plot and the learning curves (ours).

One API serves the runner and lesson 11: `tradeoff_figure` and `curves_figure` draw a
matplotlib Figure (None without matplotlib), `tradeoff_plot` and `curves_plot` save it as a PNG.
They use matplotlib's object-oriented API (no pyplot, no global backend switch). Count
baselines ({"unigram": bpc, ...}, ngram.py) are drawn on every panel as dotted grey horizontal
lines, each named at its left end: a point above the unigram line predicts worse than a table
of character frequencies, i.e. has not learned yet.
"""
FAMILY_MARKERS = {"vanilla": "o", "top-down": "s", "bottom-up": "^", "retina": "D"}
TRADEOFF_TITLE = "bits per character against memory and step time"


def _figure(ncols, figsize):
    try:
        from matplotlib.figure import Figure
    except ImportError:
        print("matplotlib is not installed: no figures (pip install -e '.[plot]')")
        return None
    fig = Figure(figsize=figsize, layout="constrained")
    return fig, fig.subplots(1, ncols, sharey=True, squeeze=False)[0]


def draw_baselines(ax, baselines):
    """Each {name: bpc} of `baselines` as a dotted grey horizontal line on `ax`, named at its
    left end ('unigram 4.44'); the line's gid is 'baseline:NAME' (not in the legend)."""
    for name, bpc in (baselines or {}).items():
        ax.axhline(bpc, linestyle=":", color="grey", linewidth=1, gid=f"baseline:{name}")
        ax.annotate(f"{name} {bpc:.2f}", (0.01, bpc), xycoords=("axes fraction", "data"),
                    va="bottom", fontsize=7, color="grey")


def _finish(fig, axes, baselines, title, ylabel, xlabels, ncol=1):
    """Baselines, grids, labels, legend and title on the two panels -> fig."""
    for ax, xlabel in zip(axes, xlabels):
        draw_baselines(ax, baselines)
        ax.grid(alpha=0.3)
        ax.set_xlabel(xlabel)
    axes[0].set_ylabel(ylabel)
    axes[0].legend(fontsize=7, ncol=ncol)
    fig.suptitle(title, fontsize=10)
    return fig


def _save(fig, path, dpi):
    if fig is None:
        return None
    fig.savefig(path, dpi=dpi)
    return path


def family_line(rows, key):
    """Whether a family's points (sorted by depth) may be joined by a line on axis `key`: only
    when that order also orders `key` strictly, so that no line doubles back."""
    xs = [r[key] for r in sorted(rows, key=lambda r: r["layers"])]
    return len(xs) > 1 and all(a is not None for a in xs) and all(a < b for a, b in zip(xs, xs[1:]))


def tradeoff_figure(rows, baselines=None, title=TRADEOFF_TITLE):
    """bpc against activation memory and against step time: markers per family with error bars
    over seeds, each labelled by its layout ('top-down 6-2', 'vanilla 4L'); a family's markers
    are joined in order of depth only where that never doubles back (`family_line`); the count
    `baselines` ({name: bpc}) as dotted lines. rows: the table's rows (summarise's, or
    EXPERIMENT.json["rows"]: model, layers, label, activation_bytes, step_ms, valid_bpc,
    valid_bpc_spread). -> the Figure, or None without matplotlib."""
    made = _figure(2, (11, 4.5))
    if made is None:
        return None
    fig, axes = made
    for model in dict.fromkeys(r["model"] for r in rows):
        rs = sorted((r for r in rows if r["model"] == model), key=lambda r: r["layers"])
        color = None
        for ax, key, scale in ((axes[0], "activation_bytes", 1e-6), (axes[1], "step_ms", 1.0)):
            pts = [r for r in rs if r.get(key) is not None]
            if not pts:
                continue
            xs, ys = [r[key] * scale for r in pts], [r["valid_bpc"] for r in pts]
            bars = ax.errorbar(xs, ys, yerr=[r["valid_bpc_spread"] for r in pts], capsize=3,
                               marker=FAMILY_MARKERS.get(model, "o"), label=model, color=color,
                               linestyle="-" if family_line(pts, key) else "none")
            color = bars.lines[0].get_color()
            for x, y, r in zip(xs, ys, pts):
                ax.annotate(r["label"], (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7)
    return _finish(fig, axes, baselines, title, "valid bits per character (lower is better)",
                   ("activation memory held for backward (MB)", "time per training step (ms)"))


def tradeoff_plot(rows, path, baselines=None, title=TRADEOFF_TITLE, dpi=120):
    """`tradeoff_figure(rows, baselines, title)` saved as the PNG `path` -> path, or None
    without matplotlib."""
    return _save(tradeoff_figure(rows, baselines, title), path, dpi)


def curves_figure(rows, baselines=None, title="learning curves"):
    """Valid bpc against steps and against training time (steps × the row's step time), one
    curve per point (the mean over its seeds, a band of ± half the range); the count
    `baselines` as dotted lines; with a unigram baseline the y-axis ends 0.3 bpc above it or
    above the highest final value (the first evaluations, near ln(vocab) nats, are cut off).
    -> the Figure, or None without matplotlib."""
    made = _figure(2, (12, 4.8))
    if made is None:
        return None
    fig, axes = made
    for r in rows:
        c = r["curve"]
        if not c["steps"]:
            continue
        lo = [v - s for v, s in zip(c["valid_bpc"], c["spread"])]
        hi = [v + s for v, s in zip(c["valid_bpc"], c["spread"])]
        line, = axes[0].plot(c["steps"], c["valid_bpc"], label=r["name"], linewidth=1.2)
        axes[0].fill_between(c["steps"], lo, hi, color=line.get_color(), alpha=0.15)
        if r.get("step_ms"):
            minutes = [s * r["step_ms"] / 60000 for s in c["steps"]]
            axes[1].plot(minutes, c["valid_bpc"], color=line.get_color(), linewidth=1.2)
            axes[1].fill_between(minutes, lo, hi, color=line.get_color(), alpha=0.15)
    # The ends of the curves are what a reader compares: the first evaluations (~ln(vocab) nats)
    # are cut off the top; every baseline stays in view.
    values = [v for r in rows for v in r["curve"]["valid_bpc"]]
    if baselines and "unigram" in baselines and values:
        ends = [r["curve"]["valid_bpc"][-1] for r in rows if r["curve"]["valid_bpc"]]
        top = max(baselines["unigram"], max(ends)) + 0.3
        for ax in axes:
            ax.set_ylim(min(values + list(baselines.values())) - 0.1, top)
    return _finish(fig, axes, baselines, title, "valid bits per character (evaluation batches)",
                   ("optimizer step", "training time (minutes: steps × the measured step time)"), ncol=2)


def curves_plot(rows, path, baselines=None, title="learning curves", dpi=120):
    """`curves_figure(rows, baselines, title)` saved as the PNG `path` -> path, or None without
    matplotlib."""
    return _save(curves_figure(rows, baselines, title), path, dpi)
