"""The string registry of models: `MODELS` and `build_model` (minGPT's `--type`)."""
from dataclasses import fields

MODELS = {}  # registry name -> model class


def register_model(name):
    """Class decorator: make a LanguageModel buildable as `build_model(name, ...)`."""
    def register(cls):
        if name in MODELS:
            raise ValueError(f"model {name!r} registered twice")
        cls.name = name
        MODELS[name] = cls
        return cls
    return register


def canonical_name(name):
    """'top_down' and 'top-down' both name the top-down model."""
    key = str(name).replace("_", "-").lower()
    if key not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(MODELS)}")
    return key


def build_model(name, vocab_size, block_size, **options):
    """Build a registered model: `build_model("vanilla", vocab_size=V, block_size=T, n_layer=4)`.

    Options are the fields of the model's config dataclass; an unknown one is an error that
    lists the valid ones.
    """
    cls = MODELS[canonical_name(name)]
    valid = {f.name for f in fields(cls.Config)}
    unknown = sorted(set(options) - valid)
    if unknown:
        raise ValueError(f"unknown option(s) {unknown} for model {cls.name!r}; valid: {sorted(valid)}")
    return cls(cls.Config(vocab_size=vocab_size, block_size=block_size, **options))


def model_from_description(description):
    """Rebuild a model from `model.describe()` (as stored in checkpoints); weights not loaded."""
    config = dict(description["config"])
    return build_model(description["model"], **config)
