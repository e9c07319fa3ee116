"""The trainer, `python -m minims.train` (the command line is in __main__.py)."""
from .flags import build_parser, make_args, parse_args
from .loop import NonFiniteLoss, Trainer, TrainingInterrupted, main, train, train_step

__all__ = ["Trainer", "train", "train_step", "make_args", "parse_args", "build_parser", "main",
           "NonFiniteLoss", "TrainingInterrupted"]
