"""The experiments' figures: the trade-off plot and the learning curves (ours).

Both use matplotlib's object-oriented API (no global backend switch) and return None without
matplotlib. The count baselines (ngram.py) are drawn as horizontal dotted lines.
"""
FAMILY_MARKERS = {"vanilla": "o", "top-down": "s", "bottom-up": "^", "retina": "D"}


def _figure(ncols, figsize):
    try:
        from matplotlib.figure import Figure
    except ImportError:
        print("matplotlib is not installed: no figures (pip install -e '.[plot]')")
        return None
    fig = Figure(figsize=figsize, layout="constrained")
    return fig, fig.subplots(1, ncols, sharey=True, squeeze=False)[0]


def _baselines(ax, baselines):
    for name, bpc in (baselines or {}).items():
        ax.axhline(bpc, linestyle=":", color="grey", linewidth=1)
        ax.annotate(f"{name} {bpc:.2f}", (0.01, bpc), xycoords=("axes fraction", "data"),
                    va="bottom", fontsize=7, color="grey")


def _finish(fig, axes, baselines, path, title, ylabel, xlabels, ncol=1):
    """Baselines, grids, labels, legend and title on the two panels; save -> path."""
    for ax, xlabel in zip(axes, xlabels):
        _baselines(ax, baselines)
        ax.grid(alpha=0.3)
        ax.set_xlabel(xlabel)
    axes[0].set_ylabel(ylabel)
    axes[0].legend(fontsize=7, ncol=ncol)
    fig.suptitle(title, fontsize=10)
    fig.savefig(path, dpi=120)
    return path


def family_line(rows, key):
    """Whether a family's points (sorted by depth) may be joined by a line on axis `key`: only
    when that order also orders `key` strictly, so that no line doubles back."""
    xs = [r[key] for r in sorted(rows, key=lambda r: r["layers"])]
    return len(xs) > 1 and all(a is not None for a in xs) and all(a < b for a, b in zip(xs, xs[1:]))


def tradeoff_plot(rows, path, baselines=None, title="bits per character against memory and step time"):
    """bpc against activation memory and against step time: markers per family with error bars
    over seeds, each labelled by its layout ('top-down 6-2', 'vanilla 4L'); a family's markers
    are joined in order of depth only where that never doubles back (`family_line`). -> path."""
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
    return _finish(fig, axes, baselines, path, title, "valid bits per character (lower is better)",
                   ("activation memory held for backward (MB)", "time per training step (ms)"))


def curves_plot(rows, path, baselines=None, title="learning curves"):
    """Valid bpc against steps and against training time (steps × the row's step time), one
    curve per point (the mean over its seeds, a band of ± half the range). -> path."""
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
    return _finish(fig, axes, baselines, path, title, "valid bits per character (evaluation batches)",
                   ("optimizer step", "training time (minutes: steps × the measured step time)"), ncol=2)
