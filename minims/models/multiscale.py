"""The config the hierarchical models share: the scales (pool, n_scales), the layers per
scale (layout), and how they shorten, upsample and stay causal.

`TopDownConfig` and `BottomUpConfig` subclass `MultiScaleConfig`: they change a default
(with the ablation row that chose it) and say how n_layer splits over the scales when no
layout is given (`default_counts`) and what a valid layout is (`check_counts`). The retina
model's config uses the same options (`option`, `check_options`). Adding a model option:
give it a help text in `_OPTIONS` (and its choices in `_CHOICES`), then declare it with
`option(name, default)`.
"""
from dataclasses import dataclass, field

from ..nn.pooling import POOL_KINDS, UPSAMPLE_KINDS
from ..functional import check_factor
from .base import ModelConfig

# --- the options ------------------------------------------------------------------------------
# One help text per option name: the trainer merges equal names into one flag (--pool, …).

CAUSAL_MODES = ("shift", "delay")
COMBINES = ("aggregate", "upsample")
_OPTIONS = {
    "pool": "pooling factor k: a coarse vector stands for k tokens (k^s at scale s)",
    "n_scales": "number of coarse scales S (blocks of k, k^2, ... tokens); a layout sets it",
    "layout": "layers per scale in data-flow order, e.g. top-down 'coarse-fine' 2-2 (coarsest first), "
              "bottom-up 'pre-coarse-post' 2-8-2; sets n_layer and n_scales (empty: split n_layer)",
    "window": "local attention window in tokens: retina's full-resolution span (>= 1); the "
              "fine layers of top-down/bottom-up (0 = full causal attention)",
    "band": "retina with n_scales > 1: blocks m kept at each intermediate scale",
    "pool_kind": "pooling: 'mean' of each block, 'linear' (a learned map of the block, the "
                 "paper's convolutional variant), or 'attention' (Hourglass's attention pooling: the "
                 "mean, then an attention layer in which each coarse vector reads the tokens up to its "
                 "block's last one, and a feed-forward; top-down and bottom-up only)",
    "upsample_kind": "upsampling: 'repeat' each coarse vector k times, 'linear' (a learned "
                     "projection per offset inside the block), or 'attention' (Hourglass's attention "
                     "upsampling: 'linear', then an attention layer in which each token reads the coarse "
                     "vectors of the blocks that have reached it, and a feed-forward)",
    "causal_mode": "'shift': shift by k-1, pool, repeat (block j reaches tokens >= jk); 'delay': "
                   "pool blocks as they are, give block j to block j+1 (SampleRNN)",
    "combine": "bottom-up: 'aggregate' (one attention layer over all scales, the first post "
               "layer) or 'upsample' (Hourglass: add each scale's upsampled output)",
}
_CHOICES = {"pool_kind": POOL_KINDS, "upsample_kind": UPSAMPLE_KINDS, "causal_mode": CAUSAL_MODES,
            "combine": COMBINES}


def option(name, default, chosen_by=None):
    """A config dataclass field with the shared help text (and choices) of option `name`.

    `chosen_by` names the row of `python -m minims.experiment ablate` whose measurement made
    `default` the model's default (shown by `python -m minims.train --help`)."""
    metadata = {"help": _OPTIONS[name]}
    if name in _CHOICES:
        metadata["choices"] = list(_CHOICES[name])
    if chosen_by:
        metadata["chosen_by"] = chosen_by
    return field(default=default, metadata=metadata)


def check_options(config):
    """Validate the scale options a config has (pool, n_scales, kinds, window) with clear errors."""
    check_factor(config.pool)
    if config.n_scales < 1:
        raise ValueError(f"n_scales must be >= 1, got {config.n_scales}")
    if config.pool ** config.n_scales > config.block_size:
        raise ValueError(f"pool^n_scales = {config.pool}^{config.n_scales} exceeds block_size="
                         f"{config.block_size}: use fewer scales or a smaller pool")
    if getattr(config, "window", 0) < 0:
        raise ValueError(f"window must be >= 0, got {config.window}")
    for name, choices in _CHOICES.items():
        value = getattr(config, name, choices[0])
        if value not in choices:
            raise ValueError(f"{name} must be one of {', '.join(choices)}; got {value!r}")


def parse_layout(text, n_parts=None, what="layout"):
    """'2-8-2' → [2, 8, 2]; a clear ValueError for anything else."""
    try:
        counts = [int(part) for part in str(text).split("-")]
    except ValueError:
        counts = None
    if not counts or any(c < 0 for c in counts):
        raise ValueError(f"{what} must be non-negative layer counts joined by '-', like '2-8-2'; "
                         f"got {text!r}")
    if n_parts is not None and len(counts) < n_parts:
        raise ValueError(f"{what} {text!r} needs at least {n_parts} counts")
    return counts


def split_layers(n, parts):
    """n layers over `parts` stacks as evenly as possible, earlier stacks getting the extra."""
    return [n // parts + (i < n % parts) for i in range(parts)]


@dataclass
class MultiScaleConfig(ModelConfig):
    """ModelConfig plus the scale options; `layout` (layer counts joined by '-') is the
    source of truth after construction: given, it sets n_layer and n_scales; empty, it is
    filled from them. Raises ValueError for an invalid combination."""
    pool: int = option("pool", 4)
    n_scales: int = option("n_scales", 1)
    layout: str = option("layout", "")
    window: int = option("window", 0)
    pool_kind: str = option("pool_kind", "mean")
    upsample_kind: str = option("upsample_kind", "linear")
    causal_mode: str = option("causal_mode", "shift")

    fine_stacks = 1  # layout entries that are not coarse scales (top-down: fine; bottom-up: pre, post)

    def __post_init__(self):
        if self.layout:
            counts = parse_layout(self.layout, self.fine_stacks + 1)
            self.n_scales, self.n_layer = len(counts) - self.fine_stacks, sum(counts)
        super().__post_init__()
        check_options(self)
        if not self.layout:
            self.layout = "-".join(map(str, self.default_counts()))
        self.check_counts(parse_layout(self.layout))

    def default_counts(self):
        """Layer counts in layout order from n_layer and n_scales (no layout given)."""
        raise NotImplementedError

    def check_counts(self, counts):
        """Raise ValueError for a layout the model cannot build."""

    def counts(self):
        """Layers per stack in layout (data-flow) order."""
        return parse_layout(self.layout)
