"""Checkpoints: everything a training run needs to continue exactly, in one `.npz` file.

A checkpoint is a NumPy `.npz` archive (a zip of `.npy` arrays) with no pickled objects:

- `header`: UTF-8 JSON bytes (uint8 array) holding the format version, the model's
  `describe()` (registry name + config, enough to rebuild it), the iteration, the best valid
  loss so far, the tokenizer's `to_dict()`, the RNG states (the batch sampler's and the
  backend's host RNG for dropout), the training arguments, the number of data-parallel ranks
  that wrote it (`world_size`, absent = 1; see minims/train/distributed.py), the optimizer's
  scalars, and the names of the arrays below (so a file missing one is caught on load).
- `model/<dotted name>`: the weights (`model.state_dict()`).
- `optim/<buffer>/<i>`: the optimizer's per-parameter state, one array per parameter:
  AdamW's m and v, and `steps`, each parameter's own step count (a 0-d integer array).
  Files written before the steps were counted per parameter have no `steps`: they load, and
  every parameter resumes from the global step they hold (what their run used; see
  `Optimizer.load_state_dict`).

Writes are atomic (`minims.files.atomic_write`): the archive goes to `<name>.tmp` beside the
target, is flushed and fsync'ed, then renamed over the target with `os.replace`. A run killed
at any moment leaves either the old checkpoint or the new one, never half of one.

Loads are validated: a missing, truncated or corrupt file (the zip's CRC32 check catches
flipped bytes), a wrong format version or missing arrays raise `CheckpointError`, a one-line
`ValueError` naming the file (minims/errors.py). Arrays are read with `allow_pickle=False`:
loading a checkpoint never runs code from it.
"""
import json
import zipfile
from pathlib import Path

import numpy

from .errors import CheckpointError
from .files import atomic_write

__all__ = ["CKPT_NAME", "FORMAT_VERSION", "CheckpointError", "load", "save"]

FORMAT_VERSION = 1
CKPT_NAME = "ckpt.npz"   # the latest checkpoint of a run, inside its --out-dir


def save(path, header, model_state, optim_state):
    """Write a checkpoint atomically.

    header: JSON-serialisable dict (iteration, RNG states, ...); model_state: {name: array}
    from `model.state_dict()`; optim_state: `optimizer.state_dict()` (scalars + lists of
    arrays). Returns the path written.
    """
    path = Path(path)
    arrays, buffers, scalars = {}, {}, {}
    for name, value in model_state.items():
        arrays[f"model/{name}"] = numpy.asarray(value)
    for key, value in optim_state.items():
        if isinstance(value, list):      # a buffer: one array per parameter
            buffers[key] = len(value)
            for i, a in enumerate(value):
                arrays[f"optim/{key}/{i}"] = numpy.asarray(a)
        else:
            scalars[key] = value
    header = {**header, "format_version": FORMAT_VERSION, "optim_scalars": scalars,
              "optim_buffers": buffers, "model_keys": sorted(model_state)}
    blob = json.dumps(header).encode("utf-8")   # fails here, before any file is touched
    arrays["header"] = numpy.frombuffer(blob, dtype=numpy.uint8)

    # a fixed temporary name: the half-written file of a killed run is overwritten next time
    return atomic_write(path, lambda f: numpy.savez(f, **arrays),
                        tmp=path.with_name(path.name + ".tmp"))


def load(path):
    """Read and validate a checkpoint -> {"header": dict, "model": {name: array},
    "optim": optimizer state dict}. Raises CheckpointError on any problem."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no checkpoint there (train first, or check the path)")
    try:
        with numpy.load(path, allow_pickle=False) as npz:
            # reading every member checks every CRC32: a flipped byte fails here
            arrays = {name: npz[name] for name in npz.files}
    except PermissionError:
        raise CheckpointError(f"{path}: cannot read the checkpoint (permission denied)") from None
    except (OSError, EOFError, ValueError, KeyError, zipfile.BadZipFile, zipfile.LargeZipFile) as e:
        if "pickle" in str(e):   # NumPy's own advice (load it with allow_pickle) is unsafe: drop it
            raise CheckpointError(f"{path}: not a minims checkpoint (not an .npz archive of "
                                  "arrays; minims never loads pickled data)") from None
        raise CheckpointError(f"{path}: unreadable checkpoint, truncated or corrupt "
                              f"({type(e).__name__}: {_one_line(e)})") from None
    try:
        header = json.loads(arrays.pop("header").tobytes().decode("utf-8"))
    except KeyError:
        raise CheckpointError(f"{path}: not a minims checkpoint (no header)") from None
    except (ValueError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{path}: corrupt checkpoint header ({_one_line(e)})") from None
    version = header.get("format_version") if isinstance(header, dict) else None
    if version != FORMAT_VERSION:
        raise CheckpointError(f"{path}: checkpoint format version {version!r}, this minims reads "
                              f"version {FORMAT_VERSION}")
    model = {k[len("model/"):]: v for k, v in arrays.items() if k.startswith("model/")}
    try:
        optim = dict(header["optim_scalars"])
        for key, n in header["optim_buffers"].items():
            optim[key] = [arrays.get(f"optim/{key}/{i}") for i in range(n)]
        missing = sorted(set(header["model_keys"]) - set(model))
    except (KeyError, TypeError, AttributeError) as e:
        raise CheckpointError(f"{path}: corrupt checkpoint header (bad or missing {e})") from None
    missing += [f"optim/{k}" for k, v in optim.items() if isinstance(v, list) and any(a is None for a in v)]
    if missing:
        raise CheckpointError(f"{path}: incomplete checkpoint, missing arrays {missing[:5]}")
    return {"header": header, "model": model, "optim": optim}


def _one_line(e):
    return " ".join(str(e).split()) or type(e).__name__
