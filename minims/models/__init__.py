"""The model registry: `from minims.models import MODELS, build_model`.

Importing this package registers every model: the vanilla transformer (the baseline) and
the paper's multi-scale stacks.
"""
from .base import LanguageModel, ModelConfig
from .registry import MODELS, build_model, canonical_name, model_from_description, register_model
from . import vanilla  # noqa: F401  (registers "vanilla")

__all__ = ["MODELS", "build_model", "canonical_name", "model_from_description",
           "register_model", "LanguageModel", "ModelConfig"]
