"""The trainer: `python -m minims.train` (`--help` for every flag), or `train(make_args(...))`.

One folder, one file per part, read in the order a run goes through them:

- `flags.py`: the command line, its --help text and checks (`parse_args`; `make_args` for code);
- `pipeline.py`: the set-up, one way (`setup`): open the run folder, resolve the flags against a
  checkpoint once, set the backend, load the data, build the model -> `Trainer`; `main`, `train`;
- `run_folder.py`: OUT_DIR, its lock, config.json, log.jsonl and checkpoint writes;
- `resume.py`: the flags merged with a checkpoint's, re-sharding, restoring a run's state;
- `loop.py`: `train_step` and `Trainer.run`, the loop on one screen (nanoGPT's);
- `meter.py`: what a run measures (time, tokens, peak memory) and prints;
- `distributed.py`: data-parallel training over MPI (`mpiexec -n N python -m minims.train`).

    from minims.train import make_args, train
    metrics = train(make_args(model="top-down", pool=4, max_iters=200, out_dir="out-td"))
"""
from .flags import build_parser, make_args, parse_args
from .loop import NonFiniteLoss, Trainer, TrainingInterrupted, train_step
from .pipeline import main, setup, train

__all__ = ["train", "setup", "Trainer", "train_step", "make_args", "parse_args", "build_parser", "main",
           "NonFiniteLoss", "TrainingInterrupted"]
