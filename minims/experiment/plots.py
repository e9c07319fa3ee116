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
    left end ('unigram 4.44'); the line's gid is 'baseline:NAME' (not in the legend). Where the
    y-range is fixed (`set_ylim`), the baselines above it are named in one line at the top edge
    ('above: bigram 3.52, unigram 4.44')."""
    top = None if ax.get_autoscaley_on() else max(ax.get_ylim())
    above = []
    for name, bpc in sorted((baselines or {}).items(), key=lambda item: item[1]):
        ax.axhline(bpc, linestyle=":", color="grey", linewidth=1, gid=f"baseline:{name}")
        if top is not None and bpc > top:
            above.append(f"{name} {bpc:.2f}")
            continue
        ax.annotate(f"{name} {bpc:.2f}", (0.01, bpc), xycoords=("axes fraction", "data"),
                    va="bottom", fontsize=7, color="grey")
    if above:
        ax.annotate("above: " + ", ".join(above), (0.01, 0.99), xycoords="axes fraction",
                    va="top", fontsize=7, color="grey")


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
    labels = {}                                     # ax -> [(x, y, label, colour)]
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
            labels.setdefault(ax, []).extend((x, y, r["label"], color) for x, y, r in zip(xs, ys, pts))
    # The points sit within a few tenths of a bpc of each other, the count baselines up to two
    # bits above them: the y-range spans the points and any baseline below their top, and the
    # baselines above it are named at the top edge.
    lows = [r["valid_bpc"] - r["valid_bpc_spread"] for r in rows]
    highs = [r["valid_bpc"] + r["valid_bpc_spread"] for r in rows]
    if rows:
        below = [b for b in (baselines or {}).values() if b <= max(highs)]
        lo, hi = min(lows + below), max(highs + below)
        pad = max(0.05, 0.08 * (hi - lo))
        for ax in axes:
            ax.set_ylim(lo - pad, hi + 2 * pad)
    fig = _finish(fig, axes, baselines, title, "valid bits per character (lower is better)",
                  ("activation memory held for backward (MB)", "time per training step (ms)"))
    place_labels(fig, labels)
    return fig


# beside the marker, then stacked further above and below it, right then left (points)
LABEL_OFFSETS = [(dx, dy) for dy in (4, -4, 14, -14, 24, -24, 34, -34) for dx in (5, -5)]


def place_labels(fig, labels, fontsize=7):
    """Name each point of `labels` ({ax: [(x, y, text, color)]}, data coordinates) in its
    family's colour, at the first of LABEL_OFFSETS whose text box overlaps no marker, no label
    placed before it, no baseline name and not the legend, and stays inside the axes; where none
    does, at the offset that overlaps least. (ours: matplotlib puts each annotation where it is
    told, so the labels of close points collide.) The layout is drawn first, once, so the boxes
    are measured where they will be seen; the labels stay out of the layout."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.transforms import Bbox
    canvas = fig.canvas if hasattr(fig.canvas, "get_renderer") else FigureCanvasAgg(fig)
    canvas.draw()                                  # runs the layout: the transforms are final
    renderer = canvas.get_renderer()
    marker = 5 * fig.dpi / 72                       # half a marker's width, in pixels
    for ax, items in labels.items():
        frame = ax.get_window_extent(renderer)
        centres = [ax.transData.transform((x, y)) for x, y, *_ in items]
        taken = [Bbox.from_extents(cx - marker, cy - marker, cx + marker, cy + marker) for cx, cy in centres]
        taken += [t.get_window_extent(renderer) for t in ax.texts]       # the baselines' names
        if ax.get_legend() is not None:
            taken.append(ax.get_legend().get_window_extent(renderer))

        def cost(box):
            inside = box.x0 >= frame.x0 and box.x1 <= frame.x1 and box.y0 >= frame.y0 and box.y1 <= frame.y1
            return sum(max(0, min(box.x1, b.x1) - max(box.x0, b.x0)) * max(0, min(box.y1, b.y1) - max(box.y0, b.y0))
                       for b in taken) + (0 if inside else 1e6)

        for x, y, text, color in items:
            tried = []
            for dx, dy in LABEL_OFFSETS:
                label = ax.annotate(text, (x, y), textcoords="offset points", xytext=(dx, dy), fontsize=fontsize,
                                    color=color, ha="left" if dx > 0 else "right", va="bottom" if dy > 0 else "top")
                label.set_in_layout(False)
                box = label.get_window_extent(renderer)
                tried.append((cost(box), box, label))
                if tried[-1][0] == 0:
                    break
            _, box, best = min(tried, key=lambda t: t[0])
            for _, _, label in tried:
                if label is not best:
                    label.remove()
            taken.append(box)


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
    for r, (color, style) in zip(rows, curve_styles(rows)):
        c = r["curve"]
        if not c["steps"]:
            continue
        lo = [v - s for v, s in zip(c["valid_bpc"], c["spread"])]
        hi = [v + s for v, s in zip(c["valid_bpc"], c["spread"])]
        axes[0].plot(c["steps"], c["valid_bpc"], label=r["name"], linewidth=1.3, color=color, linestyle=style)
        axes[0].fill_between(c["steps"], lo, hi, color=color, alpha=0.15)
        if r.get("step_ms"):
            minutes = [s * r["step_ms"] / 60000 for s in c["steps"]]
            axes[1].plot(minutes, c["valid_bpc"], color=color, linewidth=1.3, linestyle=style)
            axes[1].fill_between(minutes, lo, hi, color=color, alpha=0.15)
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


FAMILY_COLORMAPS = {"vanilla": "Blues", "top-down": "Oranges", "bottom-up": "Greens", "retina": "Reds"}
LINE_STYLES = ("-", "--", ":", "-.")


def curve_styles(rows):
    """(colour, line style) per row: each family in its own hue (the trade-off plot's blue,
    orange, green and red; grey for others), a darker shade for each later row of the family,
    the line styles cycling within it, so that no two curves look alike (ours: the default
    colour cycle repeats after ten curves and says nothing of the family)."""
    from matplotlib import colormaps
    members = {}
    for i, r in enumerate(rows):
        members.setdefault(r.get("model"), []).append(i)
    styles = [None] * len(rows)
    for model, idx in members.items():
        cmap = colormaps[FAMILY_COLORMAPS.get(model, "Greys")]
        for j, i in enumerate(idx):
            styles[i] = (cmap(0.5 + 0.45 * (j + 1) / len(idx)), LINE_STYLES[j % len(LINE_STYLES)])
    return styles


def curves_plot(rows, path, baselines=None, title="learning curves", dpi=120):
    """`curves_figure(rows, baselines, title)` saved as the PNG `path` -> path, or None without
    matplotlib."""
    return _save(curves_figure(rows, baselines, title), path, dpi)
