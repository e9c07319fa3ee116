"""What a run measures and prints: `StepMeter` (time, tokens, peak memory of the steps) and
`Console` (the lines a run prints, and its progress bar).

The console shows, in this order: the data, the model and the unigram baseline (the perplexity a
model must beat); on resume, where it resumed from; a progress bar with the last loss and
tokens/s; one line per evaluation; a final line with the valid loss, the peak memory of one step,
the throughput and the wall time. Under mpiexec only rank 0 prints. (ours)
"""
import contextlib
import time

from .. import backend, memory


class StepMeter:
    """Wall time, tokens and peak memory of the training steps.

    `with meter.step(): ...` times one step. The first is traced (memory.track_memory gives
    `peak_mem`), which slows it, so its time is kept out of the rates unless it is the run's
    only step (`only_step`); the others end with backend.synchronize(), so a GPU's queued work
    is counted. `rate()` is tokens/s over all counted steps, `window_rate()` since the last
    `new_window()` (one evaluation interval); both None before any counted step."""

    def __init__(self, tokens_per_step, only_step=False):
        self.tokens_per_step, self.only_step = tokens_per_step, only_step
        self.steps, self.peak_mem = 0, None
        self.time = self.tokens = self.window_time = self.window_tokens = 0

    @contextlib.contextmanager
    def step(self):
        first, t0 = self.steps == 0, time.perf_counter()
        if first:   # peak memory of one step (tracing every step would slow all of them)
            with memory.track_memory() as mem:
                yield
            self.peak_mem = mem["peak"]
        else:
            yield
            backend.synchronize()
        dt = time.perf_counter() - t0
        self.steps += 1
        if not first or self.only_step:
            self.time += dt
            self.tokens += self.tokens_per_step
            self.window_time += dt
            self.window_tokens += self.tokens_per_step

    def rate(self):
        return self.tokens / self.time if self.time > 0 else None

    def window_rate(self):
        return self.window_tokens / self.window_time if self.window_time else None

    def new_window(self):
        self.window_time, self.window_tokens = 0.0, 0


class Console:
    """The lines of a run (through tqdm, so they do not break the progress bar); silent
    unless `verbose`."""

    def __init__(self, verbose):
        self.verbose, self.bar = verbose, None

    def print(self, *parts):
        if self.verbose:
            from tqdm import tqdm
            tqdm.write(" ".join(str(p) for p in parts))

    def start(self, trainer, resumed_from=None):
        """The first lines: data, model, baseline (and where a resumed run continues)."""
        a, tok, splits = trainer.args, trainer.tokenizer, trainer.splits
        self.print(f"data: {a.data} ({a.tokenizer}-level, vocab {tok.vocab_size}) | "
                   f"train {len(splits['train']):,} tokens | valid {len(splits['valid']):,} tokens")
        on = backend.get_backend() + (f", {trainer.threads.describe()}"
                                      if backend.get_backend() == "numpy" and trainer.threads else "")
        self.print(f"model: {a.model}, {trainer.model.num_parameters() / 1e6:.2f} M parameters, {a.dtype} "
                   f"on {on} | {trainer.tokens_per_step:,} tokens per step")
        self.print(f"unigram baseline: valid ppl {trainer.unigram_ppl:.2f} (a model must beat this)")
        # the lr reaches --min-lr at the end of the decay, or of the warmup if that is longer
        # (optim.cosine_lr: the warmup runs its course, then the lr drops to min_lr at once)
        at_min = max(a.lr_decay_iters, a.warmup_iters)
        if a.warmup_iters >= a.lr_decay_iters and a.max_iters > trainer.iter < a.warmup_iters:
            self.print(f"note: --warmup-iters {a.warmup_iters} is not shorter than the schedule "
                       f"(--lr-decay-iters {a.lr_decay_iters}): the lr rises until iter {a.warmup_iters}, "
                       f"then drops to --min-lr {a.min_lr:g}, with no cosine decay; give a smaller "
                       "--warmup-iters")
        if resumed_from is not None:
            self.print(f"resumed from {resumed_from} at iter {trainer.iter}")
            if a.max_iters > max(at_min, trainer.iter):
                given = "given" if "lr_decay_iters" in getattr(a, "_given", ()) else "stored"
                why = (f"--lr-decay-iters, {given}" if a.lr_decay_iters >= a.warmup_iters else
                       f"the end of the warmup, which is longer than --lr-decay-iters {a.lr_decay_iters}")
                self.print(f"note: the schedule of this run reaches --min-lr at iter {at_min} ({why}); "
                           f"iters {at_min + 1}..{a.max_iters} train at {a.min_lr:g}. Give "
                           f"--lr-decay-iters {a.max_iters} to decay over the whole run instead")
            if trainer.iter >= a.max_iters:
                self.print(f"nothing to train: the checkpoint is at iter {trainer.iter}, --max-iters is "
                           f"{a.max_iters} (raise it to train further)")
        from tqdm import tqdm
        self.bar = tqdm(total=max(a.max_iters, trainer.iter), initial=trainer.iter, leave=False, unit="it",
                        disable=None if self.verbose else True, dynamic_ncols=True)

    def progress(self, loss, meter):
        """After each step: the bar moves, with the loss and the tokens/s of this interval."""
        self.bar.update(1)
        if meter.window_time:
            self.bar.set_postfix_str(f"loss {loss:.3f}, {meter.window_rate():,.0f} tok/s", refresh=False)

    def evaluation(self, record):
        tps = "" if record["tokens_per_s"] is None else f" | {record['tokens_per_s']:,.0f} tok/s"
        self.print(f"iter {record['iter']} | train loss {record['train_loss']:.4f} | val loss "
                   f"{record['val_loss']:.4f} | val ppl {record['val_ppl']:.2f} | lr {record['lr']:.2e}{tps}")

    def final(self, result, tokenizer_kind):
        tps = result["tokens_per_s"]
        tps_text = "n/a tok/s" if tps is None else f"{tps:,.0f} tok/s"
        self.print(f"final: iter {result['iter']} | val loss {result['val_loss']:.4f} | val ppl "
                   f"{result['val_ppl']:.2f} ({tokenizer_kind}-level) | unigram ppl {result['unigram_ppl']:.2f} "
                   f"| peak mem {_fmt_bytes(result['peak_mem_bytes'])} | {tps_text} | {_fmt_time(result['wall_s'])}")

    def close(self):
        if self.bar is not None:
            self.bar.close()


def _fmt_bytes(n):
    return "n/a" if n is None else f"{n / 2**20:.1f} MiB"


def _fmt_time(s):
    m, s = divmod(int(round(s)), 60)
    return f"{m}m{s:02d}s" if m else f"{s}s"
