"""The experiments' grids: which points each one trains, and with which settings (ours).

A grid is a list of `Point`s (a model with every one of its options spelled out, so that a row
keeps its meaning when a model's default changes) and one dict of training settings that all its
points share (every trainer setting spelled out too, for the same reason). A point may change
the learning rate (`lr`; `min_lr` is then lr/10 unless it gives its own) and carries its own
seeds. `EXPERIMENTS` maps each command (`tradeoff`, `ablate`, `lr`) to its `Experiment`.

**Edit here after the learning-rate sweep**: `TRADEOFF_MAX_ITERS`, `TRADEOFF_LR` and
`TRADEOFF_LR_BY_POINT` are what the trade-off grid takes from it (the steps per point, the
peak learning rate of each model family, and a point's own rate where the sweep at its depth
picked another).
"""
from dataclasses import dataclass, field, replace


@dataclass(frozen=True)
class Point:
    """One point of a grid.

    name: its name in tables, `--only` and folders ('/' becomes '__' in a folder name);
    model: a registered model name; options: its config options, all of them spelled out;
    lr, min_lr: this point's peak and final learning rate (None: the grid's settings; a
        point that gives lr alone ends at lr/10);
    seeds: the seeds it is trained with (`--seeds` replaces them);
    reference: the name of the point it is compared with (a hierarchical point's vanilla
        model with about half its layers), or None;
    group: the model a learning-rate sweep point belongs to (its table has one row per group).
    """
    name: str
    model: str
    options: dict = field(default_factory=dict)
    lr: float = None
    min_lr: float = None
    seeds: tuple = (0, 1)
    reference: str = None
    group: str = None

    def training(self, settings):
        """The grid's settings with this point's learning rates (a new dict)."""
        out = dict(settings)
        if self.lr is not None:
            out["lr"] = self.lr
            out["min_lr"] = self.lr / 10 if self.min_lr is None else self.min_lr
        elif self.min_lr is not None:
            out["min_lr"] = self.min_lr
        return out


@dataclass(frozen=True)
class Experiment:
    """A command's grid. name: what its results are called (RESULTS_DIR/NAME.md, NAME/points/);
    settings: the training settings every point shares (keys of the
    trainer's `make_args`); eval_chars: how many valid (and test) characters the final score
    reads (None: the whole split); score_test: whether the test split is scored (the final
    table only; never used for choosing anything); table: which table it writes."""
    name: str
    grid: list
    settings: dict
    eval_chars: int = None
    score_test: bool = False
    table: str = "tradeoff"


def _trainer_defaults(**settings):
    """Training settings with the trainer's remaining knobs spelled out at today's values."""
    return {"grad_accum": 1, "weight_decay": 0.1, "grad_clip": 1.0, "dropout": 0.0,
            "dtype": "float32", **settings}


# Every option of each family, spelled out at the values of today's defaults.
TOP_DOWN = dict(pool=4, pool_kind="linear", upsample_kind="linear", causal_mode="shift", window=0)
BOTTOM_UP = dict(pool=4, pool_kind="linear", upsample_kind="linear", combine="upsample",
                 causal_mode="shift", window=0)
RETINA = dict(pool=4, n_scales=2, window=32, band=2, pool_kind="linear")

# The evaluation every long grid shares: an estimate of the valid loss every 250 steps on 8
# fixed batches (the learning curves), after 100 warmup steps.
CURVE_SETTINGS = dict(block_size=512, batch_size=4, n_embd=64, n_head=4, warmup_iters=100,
                      eval_interval=250, eval_iters=8)

# --- the trade-off grid: EDIT HERE after the learning-rate sweep ------------------------------
TRADEOFF_MAX_ITERS = 6000
# the picks of `python -m minims.experiment lr` (lessons/results/lr.md), each family's rate swept
# at its 8-layer point (vanilla: 4 layers) and used at every depth where the sweep at that depth
# agreed (vanilla-8)
TRADEOFF_LR = {"vanilla": 1.2e-2, "top-down": 6e-3, "bottom-up": 1.2e-2, "retina": 6e-3}  # min_lr: lr/10
# where the sweep at a point's own depth picked another rate than its family's: that rate
TRADEOFF_LR_BY_POINT = {"top-down-12-4": 1.2e-2, "bottom-up-2-12-2": 6e-3}
# -----------------------------------------------------------------------------------------------

HEADLINE_SEEDS, OTHER_SEEDS = (0, 1, 2), (0, 1)


def _tradeoff_point(name, model, options, reference=None, seeds=OTHER_SEEDS):
    return Point(name, model, options, lr=TRADEOFF_LR_BY_POINT.get(name, TRADEOFF_LR[model]), seeds=seeds,
                 reference=reference)


# Vanilla models of 2, 4 and 8 layers, and each hierarchical model at twice those depths
# (compared with the vanilla model of half its layers); three seeds for the headline pairs.
TRADEOFF_GRID = [
    _tradeoff_point("vanilla-2", "vanilla", dict(n_layer=2)),
    _tradeoff_point("vanilla-4", "vanilla", dict(n_layer=4), seeds=HEADLINE_SEEDS),
    _tradeoff_point("vanilla-8", "vanilla", dict(n_layer=8)),
    _tradeoff_point("top-down-2-2", "top-down", dict(layout="2-2", **TOP_DOWN), "vanilla-2"),
    _tradeoff_point("top-down-6-2", "top-down", dict(layout="6-2", **TOP_DOWN), "vanilla-4",
                    seeds=HEADLINE_SEEDS),
    _tradeoff_point("top-down-12-4", "top-down", dict(layout="12-4", **TOP_DOWN), "vanilla-8"),
    _tradeoff_point("bottom-up-1-2-1", "bottom-up", dict(layout="1-2-1", **BOTTOM_UP), "vanilla-2"),
    _tradeoff_point("bottom-up-1-6-1", "bottom-up", dict(layout="1-6-1", **BOTTOM_UP), "vanilla-4",
                    seeds=HEADLINE_SEEDS),
    _tradeoff_point("bottom-up-2-12-2", "bottom-up", dict(layout="2-12-2", **BOTTOM_UP), "vanilla-8"),
    _tradeoff_point("retina-4", "retina", dict(n_layer=4, **RETINA), "vanilla-2"),
    _tradeoff_point("retina-8", "retina", dict(n_layer=8, **RETINA), "vanilla-4"),
    _tradeoff_point("retina-16", "retina", dict(n_layer=16, **RETINA), "vanilla-8"),
]
TRADEOFF_SETTINGS = _trainer_defaults(**CURVE_SETTINGS, max_iters=TRADEOFF_MAX_ITERS, lr=3e-3,
                                      min_lr=3e-4)

# --- the learning-rate sweep: eight models, two to four peak rates each, one seed, 3000 steps -
# (a model whose best rate is the highest one tried gets the next one too: EXTRA_LR_VALUES;
# vanilla-8 skips the lowest, its 6e-3 having been 0.23 bpc worse than 1.2e-2, and retina-16
# the highest, both its trade-off seeds having spiked at 6e-3: SKIPPED_LR_VALUES). The 16-layer
# hierarchical models were added after the trade-off grid, to check at their own depth the
# rates their families picked at 8 layers, as vanilla's was checked at 4 and 8.
LR_VALUES = ("3e-3", "6e-3", "1.2e-2")      # as written in the point names
EXTRA_LR_VALUES = {"vanilla-4": ("2.4e-2",), "vanilla-8": ("2.4e-2",), "bottom-up-1-6-1": ("2.4e-2",)}
SKIPPED_LR_VALUES = {"vanilla-8": ("3e-3",), "retina-16": ("1.2e-2",)}


def lr_values(name):
    """The peak learning rates swept for the model `name`, as written in its point names."""
    skipped = SKIPPED_LR_VALUES.get(name, ())
    return tuple(v for v in LR_VALUES + EXTRA_LR_VALUES.get(name, ()) if v not in skipped)


LR_MODELS = [
    ("vanilla-4", "vanilla", dict(n_layer=4)),
    ("vanilla-8", "vanilla", dict(n_layer=8)),
    ("top-down-6-2", "top-down", dict(layout="6-2", **TOP_DOWN)),
    ("bottom-up-1-6-1", "bottom-up", dict(layout="1-6-1", **BOTTOM_UP)),
    ("retina-8", "retina", dict(n_layer=8, **RETINA)),
    ("top-down-12-4", "top-down", dict(layout="12-4", **TOP_DOWN)),
    ("bottom-up-2-12-2", "bottom-up", dict(layout="2-12-2", **BOTTOM_UP)),
    ("retina-16", "retina", dict(n_layer=16, **RETINA)),
]
LR_GRID = [Point(f"{name}/lr={text}", model, options, lr=float(text), seeds=(0,), group=name)
           for name, model, options in LR_MODELS
           for text in lr_values(name)]
LR_SETTINGS = _trainer_defaults(**CURVE_SETTINGS, max_iters=3000, lr=3e-3, min_lr=3e-4)

# --- the ablation: one (ours) choice varied at a time around a base row ------------------------
# Each row changes one choice from its family's base. The table marks the row that equals the
# model's current defaults. The '=attention' rows are Hourglass's attention pooling (the mean,
# then an attention layer and a feed-forward) and attention upsampling (the linear map, then an
# attention layer and a feed-forward), minims/nn/pooling.py; the retina has no attention kind.
# Budget: 2000 steps at T=256 (B=8, the trade-off grid's 2,048 tokens per step and width), long
# enough for vanilla-4 to leave the plateau and beat vanilla-2 by more than their seed spread
# (the table prints that check); each family trains at its swept learning rate (TRADEOFF_LR).
# Two seeds for the vanilla rows and each family's row at today's defaults (the yardstick for
# every other row's difference), one seed elsewhere.
_TD = dict(layout="4-2", pool=4, pool_kind="mean", upsample_kind="linear", causal_mode="shift",
           window=0)
_BU = dict(layout="0-4-2", pool=4, pool_kind="mean", combine="aggregate", upsample_kind="repeat",
           causal_mode="shift", window=0)
_BU_UP = {**_BU, "layout": "1-4-1", "combine": "upsample", "upsample_kind": "linear"}
_RET = dict(n_layer=4, pool=4, n_scales=1, window=32, band=2, pool_kind="mean")
ABLATE_TWO_SEEDS = ("vanilla-2", "vanilla-4", "top-down/pool=linear",
                    "bottom-up/upsample=linear,1-4-1,pool=linear", "retina/scales=2,pool=linear")
ABLATE_GRID = [Point(name, model, options, lr=TRADEOFF_LR[model],
                     seeds=(0, 1) if name in ABLATE_TWO_SEEDS else (0,))
               for name, model, options in [
    ("vanilla-2", "vanilla", dict(n_layer=2)),
    ("vanilla-4", "vanilla", dict(n_layer=4)),
    ("top-down/upsample=repeat", "top-down", {**_TD, "upsample_kind": "repeat"}),
    ("top-down/upsample=linear", "top-down", _TD),
    ("top-down/pool=linear", "top-down", {**_TD, "pool_kind": "linear"}),
    ("top-down/pool=attention", "top-down", {**_TD, "pool_kind": "attention"}),
    ("top-down/upsample=attention", "top-down", {**_TD, "upsample_kind": "attention"}),
    ("top-down/causal=delay", "top-down", {**_TD, "causal_mode": "delay"}),
    # (added after the first reading: delay against shift with the learned pooling of today's
    # defaults, since with mean pooling delay had beaten shift's upsample=linear row)
    ("top-down/causal=delay,pool=linear", "top-down", {**_TD, "causal_mode": "delay", "pool_kind": "linear"}),
    ("top-down/k=2", "top-down", {**_TD, "pool": 2}),
    ("top-down/k=3", "top-down", {**_TD, "pool": 3}),
    ("bottom-up/aggregate,0-4-2", "bottom-up", _BU),
    ("bottom-up/aggregate,1-4-1", "bottom-up", {**_BU, "layout": "1-4-1"}),
    ("bottom-up/upsample=repeat,1-4-1", "bottom-up", {**_BU_UP, "upsample_kind": "repeat"}),
    ("bottom-up/upsample=linear,1-4-1", "bottom-up", _BU_UP),
    ("bottom-up/pool=linear", "bottom-up", {**_BU, "pool_kind": "linear"}),
    ("bottom-up/pool=attention", "bottom-up", {**_BU, "pool_kind": "attention"}),
    ("bottom-up/upsample=attention,1-4-1", "bottom-up", {**_BU_UP, "upsample_kind": "attention"}),
    ("bottom-up/upsample=linear,1-4-1,pool=linear", "bottom-up", {**_BU_UP, "pool_kind": "linear"}),
    ("bottom-up/upsample=linear,1-4-1,pool=attention", "bottom-up", {**_BU_UP, "pool_kind": "attention"}),
    ("retina/w=32", "retina", _RET),
    ("retina/w=64", "retina", {**_RET, "window": 64}),
    ("retina/scales=2", "retina", {**_RET, "n_scales": 2}),
    ("retina/pool=linear", "retina", {**_RET, "pool_kind": "linear"}),
    ("retina/scales=2,pool=linear", "retina", {**_RET, "n_scales": 2, "pool_kind": "linear"}),
]]
ABLATE_SETTINGS = _trainer_defaults(block_size=256, batch_size=8, n_embd=64, n_head=4, max_iters=2000,
                                    warmup_iters=100, lr=3e-3, min_lr=3e-4, eval_interval=250,
                                    eval_iters=8)

# --- --quick: a smoke test of the machinery in seconds (tiny models, not a measurement) --------
QUICK_GRID = [
    Point("vanilla-1", "vanilla", dict(n_layer=1)),
    Point("vanilla-2", "vanilla", dict(n_layer=2)),
    Point("top-down-2-1", "top-down", dict(layout="2-1", **TOP_DOWN), reference="vanilla-1"),
    Point("bottom-up-1-2-1", "bottom-up", dict(layout="1-2-1", **BOTTOM_UP), reference="vanilla-2"),
    Point("retina-2", "retina", dict(n_layer=2, **{**RETINA, "window": 16}), reference="vanilla-1",
          seeds=(0,)),
]
QUICK_SETTINGS = _trainer_defaults(block_size=64, batch_size=4, n_embd=32, n_head=2, max_iters=15,
                                   warmup_iters=3, lr=2e-3, min_lr=2e-4, eval_interval=5,
                                   eval_iters=2)
QUICK_EVAL_CHARS = 4096
QUICK_LR_GRID = [Point(f"{name}/lr={text}", model, options, lr=float(text), seeds=(0,), group=name)
                 for name, model, options in [("vanilla-1", "vanilla", dict(n_layer=1)),
                                              ("top-down-2-1", "top-down", dict(layout="2-1", **TOP_DOWN))]
                 for text in ("2e-3", "4e-3")]

EXPERIMENTS = {
    "tradeoff": Experiment("tradeoff", TRADEOFF_GRID, TRADEOFF_SETTINGS, None, True, "tradeoff"),
    "ablate": Experiment("ablation", ABLATE_GRID, ABLATE_SETTINGS, 131072, False, "ablate"),
    "lr": Experiment("lr", LR_GRID, LR_SETTINGS, None, False, "lr"),
}


def quick(experiment):
    """The --quick version of an experiment: the same table, on a tiny grid and settings."""
    grid = QUICK_LR_GRID if experiment.table == "lr" else QUICK_GRID
    return replace(experiment, grid=grid, settings=QUICK_SETTINGS, eval_chars=QUICK_EVAL_CHARS)


def layout_label(model, config):
    """How a point is labelled in figures: 'top-down 6-2', 'vanilla 4L', 'retina 8L'."""
    layout = config.get("layout")
    return f"{model} {layout}" if layout else f"{model} {config['n_layer']}L"
