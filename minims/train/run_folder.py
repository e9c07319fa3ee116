"""The run folder, OUT_DIR: its lock, config.json, log.jsonl and the checkpoint ckpt.npz.

One run at a time per folder: OUT_DIR/lock holds the running process's PID (minims/files.py's
`DirLock`; a lock left by a run that died is taken over). The folder is made if missing, and
removed again at the end if this run made it and wrote nothing. Every write is atomic or an
append, and a failed one is one line naming the file and what is still intact (the last
checkpoint). Under mpiexec rank 0 alone touches the folder; its error, if any, is raised on
every rank (`world.on_root`, minims/train/distributed.py). (ours)

The log is one JSON record per evaluation (minims/train/loop.py's `Trainer.record`: iter,
train_loss and val_loss in nats per token, val_ppl, the lr of the last step, tokens_per_s,
peak_mem_bytes, and elapsed_s, the seconds since the run's first start over all its sittings,
counted on from the checkpoint when resumed). On resume, records past the checkpoint (written
before a crash, and written again by the resumed run, identically) and a half-written last line
are dropped; a line that is not a record stays where it is.
"""
import json
import weakref
from pathlib import Path

from .. import checkpoint, files
from ..errors import UsageError, file_error

LOG_NAME, CONFIG_NAME = "log.jsonl", "config.json"


class RunFolder:
    """OUT_DIR, made if missing and locked from construction until `close()` (or until this
    object is collected). `saved_iter` is the iteration of the last checkpoint written or
    resumed from (None before any)."""

    def __init__(self, out_dir, world):
        self.path, self.world = Path(out_dir), world
        self.ckpt_path = self.path / checkpoint.CKPT_NAME
        self.log_path = self.path / LOG_NAME
        self.saved_iter = None
        self._made, taken = False, []
        world.on_root(lambda: taken.append(self._take()))     # the lock would refuse the other ranks
        self._release = weakref.finalize(self, taken[0].release if taken else _nothing)

    def _take(self):
        """Create the folder if needed and lock it against a second run (one line if impossible)."""
        out = self.path
        if out.exists() and not out.is_dir():
            raise UsageError(f"--out-dir {out} is a file, not a folder; give a folder (it is created "
                             "if missing)")
        self._made = not out.exists()
        try:
            out.mkdir(parents=True, exist_ok=True)
            return files.DirLock(out).acquire()
        except files.LockedError:
            raise
        except OSError as e:
            raise file_error(e, f"creating --out-dir {out} and its lock file",
                             "choose a writable --out-dir", where=out) from None

    def close(self):
        """Release the lock (and remove the folder again if this run made it and left it empty)."""
        if not self._release.alive:
            return
        self._release()
        if self._made:
            try:
                self.path.rmdir()               # only if empty: a run that wrote nothing
            except OSError:
                pass

    # --- what is there ---------------------------------------------------------------------
    def has_checkpoint(self):
        return self.world.on_root(self.ckpt_path.exists)

    def load_checkpoint(self):
        """The checkpoint, read by rank 0 and sent to every rank (CheckpointError if unusable)."""
        return self.world.on_root(checkpoint.load, self.ckpt_path)

    def logged_iters(self):
        """The iterations recorded in log.jsonl (valid records only)."""
        return self.world.on_root(lambda: [r["iter"] for r in read_log(self.log_path)[0]])

    def last_saved(self):
        """Where the run can be continued from, for error messages."""
        if self.saved_iter is None:
            return "no checkpoint was written"
        return f"the checkpoint {self.ckpt_path} holds iter {self.saved_iter}"

    def how_to_continue(self):
        """The advice that works after a stop: --resume needs a checkpoint; without one (a stop
        before the first was written) the same command starts the run again."""
        if self.saved_iter is None:
            return "run the same command again, without --resume"
        return "continue with --resume"

    # --- writing -------------------------------------------------------------------------------
    def write_config(self, config):
        """config.json, and an empty log.jsonl for a new run (--overwrite too)."""
        self.world.on_root(self._write_config, config)

    def _write_config(self, config):
        try:
            files.write_text(self.path / CONFIG_NAME, json.dumps(config, indent=2) + "\n")
            if self.saved_iter is None:
                files.write_text(self.log_path, "")
        except OSError as e:
            raise file_error(e, "writing the run's config and log", "choose a writable --out-dir "
                             "with free space", where=self.path) from None

    def append_log(self, record):
        """One record (a dict with an integer "iter") at the end of log.jsonl."""
        self.world.on_root(self._append_log, record)

    def _append_log(self, record):
        try:
            with open(self.log_path, "a") as f:
                f.write(json.dumps(record) + "\n")
        except OSError as e:
            raise file_error(e, f"writing the log record of iter {record['iter']}",
                             f"{self.last_saved()}; free some space and {self.how_to_continue()}",
                             where=self.log_path) from None

    def save(self, header, model, optimizer):
        """Write the checkpoint of iteration header["iter"] (atomically, minims/checkpoint.py)."""
        self.world.on_root(self._save, header, model, optimizer)
        self.saved_iter = header["iter"]

    def _save(self, header, model, optimizer):
        try:
            checkpoint.save(self.ckpt_path, header, model.state_dict(), optimizer.state_dict())
        except OSError as e:
            kept = ("no earlier checkpoint exists" if self.saved_iter is None else
                    f"the previous checkpoint is intact at iter {self.saved_iter}")
            raise file_error(e, f"writing the checkpoint of iter {header['iter']}",
                             f"{kept}; free some space and {self.how_to_continue()}",
                             where=self.ckpt_path) from None

    def resume_at(self, last_iter):
        """The run continues from the checkpoint of `last_iter`: drop the log's records written
        after it (the resumed run writes them again, identically) and a half-written last line,
        so the log continues exactly like the checkpoint."""
        self.saved_iter = last_iter
        self.world.on_root(self._truncate_log, last_iter)

    def _truncate_log(self, last_iter):
        if not self.log_path.exists():
            return
        _, lines = read_log(self.log_path)
        kept = [line for record, line in lines if record is None or record["iter"] <= last_iter]
        try:
            files.write_text(self.log_path, "".join(line + "\n" for line in kept))
        except OSError as e:
            raise file_error(e, "rewriting the log", "choose a writable --out-dir with free space",
                             where=self.log_path) from None


def read_log(path):
    """(records, [(record or None, line), ...]) of a log.jsonl; a missing file is empty.

    A line that is not a record (a JSON object with an integer "iter") is kept as (None, line),
    except a blank line and a half-written last one (no newline at its end: the write was
    cut), which are left out."""
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return [], []
    except OSError as e:
        raise file_error(e, "reading the log", where=path) from None
    lines = text.split("\n")
    cut = lines.pop()                   # "" when the file ends with a newline
    out = []
    for line in lines + ([cut] if cut else []):
        try:
            record = json.loads(line)
        except ValueError:
            record = None
        if not (isinstance(record, dict) and isinstance(record.get("iter"), int)):
            if not line.strip() or line is cut:
                continue
            record = None               # not one of our records: kept as it is
        out.append((record, line))
    return [r for r, _ in out if r is not None], out


def _nothing():
    pass
