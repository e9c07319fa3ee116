"""The model registry: `from minims.models import MODELS, build_model`.

Importing this package registers every model: the vanilla transformer (the baseline) and
the paper's three multi-scale stacks (each explained in its own file):
"top-down" (coarse → fine), "bottom-up" (pool up, aggregate back) and "retina" (attention
to the past at a resolution that falls with distance).
"""
from .base import LanguageModel, ModelConfig
from .registry import MODELS, build_model, canonical_name, model_from_description, register_model
from . import vanilla  # noqa: F401  (registers "vanilla")
from . import top_down  # noqa: F401  (registers "top-down")
from . import bottom_up  # noqa: F401  (registers "bottom-up")
from . import retina  # noqa: F401  (registers "retina")

__all__ = ["MODELS", "build_model", "canonical_name", "model_from_description",
           "register_model", "LanguageModel", "ModelConfig"]
