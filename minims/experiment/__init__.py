"""The paper's experiments, small: `python -m minims.experiment tradeoff|ablate|lr`.

Subramanian et al. (2020) report a trade-off: for the same memory, multi-scale models reach a
better perplexity than a vanilla transformer. Their headline: a 30-layer hierarchical model
with a 23 % smaller memory footprint *and* a better perplexity than a vanilla model with less
than half as many layers. Three commands measure this at the scale of a laptop, at character
level on Jane Austen (train: four novels; valid: Northanger Abbey; test: Persuasion):

`tradeoff`: vanilla models of 2, 4 and 8 layers against each hierarchical model at twice those
  depths (each compared with the vanilla model of half its layers), all with the same data,
  steps, optimizer, schedule and evaluation, at a context (T = 512) where attention memory
  matters; each model family with its own learning rate (from the sweep); three seeds for the
  headline pairs, two elsewhere. Per point: bits per character on the whole valid book (and, in
  the final table only, the test book: never used for choosing anything), activation memory
  (the bytes the training forward pass holds for backward, `minims.memory.saved_bytes`) and
  time per training step; its learning curve and whether it converged.
`lr`: the learning-rate sweep that picks each model's rate: five models × three peak rates
  (min_lr = lr/10), one seed, a shorter budget; a table of valid bpc per rate and the pick.
`ablate`: every modelling choice the code marks "(ours)", each varied on its own around the
  model's defaults under one shorter budget (T = 256), and Hourglass's attention pooling and
  attention upsampling (pool_kind / upsample_kind 'attention', rows top-down/pool=attention,
  top-down/upsample=attention, bottom-up/pool=attention, bottom-up/upsample=attention,1-4-1);
  the models' defaults are its winners, and it checks that the budget took the baseline off
  its plateau (the 4-layer vanilla model beats the 2-layer one by more than the seed spread).

**Convergence** (convergence.py), per point from its learning curve (valid bpc at every
evaluation of its log): the gain over the last 20 % of steps must be at most 10 % of the
improvement since the first evaluation after warmup; per compared pair, the gap between the two
mean curves may move over the last 20 % of steps by at most the pair's seed spread. Each row
says passed or failed, with the numbers.

**A point is its full settings** (identity.py): data (name and a SHA-256 of its text),
tokenizer, model and every one of its options, every training setting, seed. A point trained
with other settings than the ones asked for is never reused or mixed: the command refuses in
one line (exit code 2) naming the settings that differ, before it trains anything.

**Where things go** (points.py). Each point and seed trains in `OUT_DIR/points/NAME/seed-S/` ('/'
in NAME → '__'), a plain resumable trainer folder (a folder made by `python -m minims.train`
with the same settings is adopted: resumed or scored). When it finishes, its result and its
learning curve are committed as small text files, `RESULTS_DIR/EXPERIMENT/points/NAME/seed-S/
result.json` and `log.jsonl`; a point with a committed result is never trained again, so
another machine continues the grid from a clone. The tables (`RESULTS_DIR/EXPERIMENT.md`,
`.json`) and figures (`EXPERIMENT.png`: bpc against memory and step time, trade-off only;
`EXPERIMENT-curves.png`: the learning curves against steps and against training time) are
rebuilt from the committed points of the whole grid at the end of every run, or alone with
`--report-only` (no checkpoints needed: memory is measured on models built from the recorded
configs, step time with `--time-steps N` on fresh ones). RESULTS_DIR is `lessons/results` for a
grid run as defined, and `OUT_DIR/results` for a changed one (`--quick`, `--max-iters`,
`--data`), unless `--results-dir` says otherwise. EXPERIMENT there is `tradeoff`, `ablation`
(the `ablate` command) or `lr`.

A point whose training diverges (a NaN or infinite loss, e.g. at too high a learning rate) is
left out, named in the table's note, and the grid goes on; its folder keeps the last good
checkpoint.

Several processes may share a grid (e.g. `--seeds 0` and `--seeds 1`, or `--only` halves): a
point being trained by another process is skipped. `--quick` runs a tiny grid in seconds (the
tests use it). The grids and settings are in grids.py (the trade-off grid's steps and learning
rates: `TRADEOFF_MAX_ITERS`, `TRADEOFF_LR`, `TRADEOFF_LR_BY_POINT`).
"""
from .cli import build_parser, main, only_names, parse_seeds, run_experiment
from .convergence import pair_test, point_test
from .grids import (ABLATE_GRID, ABLATE_SETTINGS, EXPERIMENTS, LR_GRID, LR_SETTINGS, QUICK_GRID,
                    QUICK_SETTINGS, TRADEOFF_GRID, TRADEOFF_LR, TRADEOFF_MAX_ITERS, TRADEOFF_SETTINGS,
                    Point)
from .identity import differences, folder_settings, load_data, point_settings
from .measure import split_loss, time_steps
from .ngram import ngram_bpc
from .plots import curves_figure, curves_plot, tradeoff_figure, tradeoff_plot
from .points import point_folder, result_folder, run_point
from .tables import matches_defaults, summarise

__all__ = ["ABLATE_GRID", "ABLATE_SETTINGS", "EXPERIMENTS", "LR_GRID", "LR_SETTINGS", "QUICK_GRID",
           "QUICK_SETTINGS", "TRADEOFF_GRID", "TRADEOFF_LR", "TRADEOFF_MAX_ITERS", "TRADEOFF_SETTINGS",
           "Point", "build_parser", "curves_figure", "curves_plot", "differences",
           "folder_settings", "load_data", "main", "matches_defaults", "ngram_bpc", "only_names",
           "pair_test", "parse_seeds", "point_folder", "point_settings", "point_test", "result_folder",
           "run_experiment", "run_point", "split_loss", "summarise", "time_steps", "tradeoff_figure",
           "tradeoff_plot"]
