"""The config the hierarchical models share: the scales (pool, n_scales), the layers per
scale (layout), and how they shorten, upsample and stay causal.

`TopDownConfig` and `BottomUpConfig` subclass `MultiScaleConfig`: they change a default
(with the ablation row that chose it) and say how n_layer splits over the scales when no
layout is given (`default_counts`) and what a valid layout is (`check_counts`).
"""
from dataclasses import dataclass

from ..scale import check_options, option, parse_layout
from .base import ModelConfig


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
