"""The data layer: load a corpus, split it, tokenize it (with a cache), and draw batches.

Corpora (`load_corpus(data)`):
- `"austen"`: the six Jane Austen novels shipped in `data/austen/` (see PROVENANCE.md there),
  split by book like BookCorpus's held-out books: train = Sense and Sensibility, Pride and
  Prejudice, Mansfield Park, Emma; valid = Northanger Abbey; test = Persuasion. The files are
  checked against `SHA256SUMS` on every load, so results always come from the same text.
- any other value is a path: a UTF-8 text file, or a folder whose `*.txt` files are joined in
  name order. Its characters are split into three contiguous spans: the first 90 % is train, the
  next 5 % valid, the last 5 % test (cut at exact character positions, so the three strings
  joined give back the text). Contiguous spans, not shuffled lines, so no sentence is shared.
  The text is read whole before anything else happens: a named pipe works once its writer
  has sent everything and closed it; devices and sockets are refused.

`prepare(data, tokenizer)` fits the tokenizer on the training split only and returns the three
splits as int32 id arrays; with `cache_dir` it stores them as `.npy` under a key that hashes the
text and the tokenizer settings, so an edited file can never reuse a stale cache. The cache's
`manifest.json` holds the SHA-256 of each stored array: an array altered after it was written
(by hand, by a disk error) fails the check and the cache is rebuilt from the text.

`get_batch` draws random windows for next-token prediction; `unigram_ppl` is the baseline a
trained model must beat (a model that learnt nothing about context).
"""
import hashlib
import json
import stat
from pathlib import Path

import numpy as np

from .errors import DataError, file_error
from .files import atomic_write
from .tokenizers import TOKENIZERS, build_tokenizer, normalize_text, tokenizer_from_dict

AUSTEN_DIR = Path(__file__).resolve().parent.parent / "data" / "austen"
AUSTEN_SPLITS = {
    "train": ("sense_and_sensibility.txt", "pride_and_prejudice.txt", "mansfield_park.txt", "emma.txt"),
    "valid": ("northanger_abbey.txt",),
    "test": ("persuasion.txt",),
}
SPLIT_FRACTIONS = (0.90, 0.05, 0.05)   # train, valid, test for bring-your-own text
MIN_CHARS = 1000                       # shorter texts cannot give three useful splits
CACHE_VERSION = 2                      # bump when tokenization or the cache layout changes
SEPARATOR = "\n\n"                     # between joined books / files: a blank line


def load_corpus(data="austen"):
    """Return {"train": str, "valid": str, "test": str, "source": str} for "austen" or a path."""
    if data == "austen":
        return _load_austen()
    if not str(data).strip():
        raise DataError("--data is empty: give 'austen', a text file or a folder of .txt files")
    path = Path(data).expanduser()
    if not path.exists():
        raise DataError(f"{path}: no such file or folder (give 'austen', a text file or a folder of .txt files)")
    if path.is_dir():
        try:
            files = sorted(p for p in path.glob("*.txt") if p.is_file())
        except OSError as e:
            raise DataError(f"{path}: cannot list the folder ({e.strerror})") from None
        if not files:
            raise DataError(f"{path}: folder has no .txt files (only the folder itself is read, not "
                            "its subfolders)")
        text = SEPARATOR.join(_read_text(p) for p in files)
        what = f"{len(files)} .txt files in {path}"
    else:
        text, what = _read_text(path), str(path)
    if len(text) < MIN_CHARS:
        raise DataError(f"{path}: too short ({len(text)} characters; need at least {MIN_CHARS})")
    i = int(len(text) * SPLIT_FRACTIONS[0])
    j = i + int(len(text) * SPLIT_FRACTIONS[1])
    return {"train": text[:i], "valid": text[i:j], "test": text[j:],
            "source": f"{what}: {len(text):,} characters, split 90/5/5 by position"}


def _load_austen():
    if not AUSTEN_DIR.is_dir():
        raise DataError(f"{AUSTEN_DIR}: Austen corpus not found (it ships with the minims source tree; use a git checkout)")
    sums = _read_sha256sums(AUSTEN_DIR / "SHA256SUMS")
    splits = {}
    for split, names in AUSTEN_SPLITS.items():
        texts = []
        for name in names:
            path = AUSTEN_DIR / name
            if not path.is_file():
                raise DataError(f"{path}: missing from the Austen corpus")
            raw = path.read_bytes()
            if hashlib.sha256(raw).hexdigest() != sums.get(name):
                raise DataError(f"{path}: SHA256 does not match SHA256SUMS (file changed or corrupt; restore it with git)")
            texts.append(_decode(raw, path))
        splits[split] = SEPARATOR.join(texts)
    splits["source"] = ("Jane Austen's six novels, split by book: train = Sense and Sensibility, Pride and "
                        "Prejudice, Mansfield Park, Emma; valid = Northanger Abbey; test = Persuasion")
    return splits


def _read_sha256sums(path):
    if not path.is_file():
        raise DataError(f"{path}: checksum file missing")
    sums = {}
    for line in path.read_text().splitlines():
        if line.strip():
            digest, name = line.split(maxsplit=1)
            sums[name.lstrip("*")] = digest.lower()   # "*name" marks binary mode in sha256sum
    return sums


def _read_text(path):
    """The whole file, decoded; a regular file or a pipe (read until its writer closes it)."""
    try:
        mode = path.stat().st_mode
        if not (stat.S_ISREG(mode) or stat.S_ISFIFO(mode)):
            raise DataError(f"{path}: not a regular file (a device or socket); give a text file, "
                            "a folder of .txt files or a pipe")
        raw = path.read_bytes()
    except OSError as e:
        reason = ("permission denied" if isinstance(e, PermissionError)
                  else " ".join(str(e.strerror or e).split()))
        raise DataError(f"{path}: cannot read the data file ({reason})") from None
    if not raw:
        raise DataError(f"{path}: file is empty")
    return _decode(raw, path)


def _decode(raw, path):
    if b"\x00" in raw:   # UTF-8 text never holds NUL; it is the mark of a binary file (or UTF-16)
        raise DataError(f"{path}: binary file (contains NUL bytes); give a UTF-8 text file")
    try:
        text = raw.decode("utf-8-sig")   # -sig: drop a byte-order mark if an editor added one
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not valid UTF-8 (byte 0x{raw[e.start]:02x} at offset {e.start}); "
                        "re-save it as UTF-8") from None
    return normalize_text(text)          # Windows/old-Mac line ends -> "\n", as for prompts


def prepare(data="austen", tokenizer="char", cache_dir=None, min_freq=2):
    """Load, fit the tokenizer on train only, encode -> (tokenizer, {"train","valid","test": int32 ids}).

    `min_freq` is used by the word tokenizer only. With `cache_dir`, the encoded splits and the
    tokenizer are stored there and later calls with the same text and settings load them.
    """
    if tokenizer not in TOKENIZERS:
        raise ValueError(f"unknown tokenizer {tokenizer!r}: choose from {', '.join(TOKENIZERS)}")
    corpus = load_corpus(data)
    options = {"min_freq": min_freq} if tokenizer == "word" else {}
    folder = None
    if cache_dir is not None:
        folder = Path(cache_dir) / f"{tokenizer}-{_cache_key(corpus, tokenizer, options)}"
        cached = _load_cache(folder)
        if cached is not None:
            return cached
    tok = build_tokenizer(tokenizer, corpus["train"], **options)
    if tokenizer == "word" and tok.vocab_size <= 2:      # only <unk> and <par>: nothing to learn
        raise DataError(f"no word occurs --min-freq {min_freq} times in the training text of {data}, "
                        "so every word would be <unk>: lower --min-freq, or give more text")
    splits = {s: tok.encode(corpus[s]) for s in ("train", "valid", "test")}
    if folder is not None:
        _save_cache(folder, tok, splits)
    return tok, splits


def _cache_key(corpus, tokenizer, options):
    h = hashlib.sha256(json.dumps([CACHE_VERSION, tokenizer, options], sort_keys=True).encode())
    for s in ("train", "valid", "test"):
        h.update(f"\0{s}:{len(corpus[s])}\0".encode())   # lengths too: a moved split boundary is a new key
        h.update(corpus[s].encode("utf-8"))
    return h.hexdigest()[:20]


def _array_digest(ids):
    """SHA-256 of an id array's dtype, shape and bytes (what a cached .npy must still hold)."""
    ids = np.ascontiguousarray(ids)
    h = hashlib.sha256(f"{ids.dtype.str}{ids.shape}".encode())
    h.update(ids.tobytes())
    return h.hexdigest()


def _load_cache(folder):
    """(tokenizer, splits) from a complete, intact cache folder, else None (then rebuilt)."""
    try:
        manifest = json.loads((folder / "manifest.json").read_text())
        tok = tokenizer_from_dict(manifest["tokenizer"])
        splits = {}
        for s in ("train", "valid", "test"):
            ids = np.load(folder / f"{s}.npy", allow_pickle=False)
            if _array_digest(ids) != manifest["sha256"][s]:
                return None                # altered since it was written: never train on it
            splits[s] = ids.astype(np.int32, copy=False)
    except (OSError, EOFError, ValueError, KeyError, TypeError):   # absent, partial or damaged
        return None
    return tok, splits


def _save_cache(folder, tok, splits):
    manifest = {"tokenizer": tok.to_dict(), "sha256": {s: _array_digest(ids) for s, ids in splits.items()}}
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for s, ids in splits.items():
            atomic_write(folder / f"{s}.npy", lambda f, ids=ids: np.save(f, ids))
        # written last: a cache with manifest.json and the three .npy files is complete
        atomic_write(folder / "manifest.json", lambda f: f.write(json.dumps(manifest).encode()))
    except OSError as e:
        raise file_error(e, "writing the tokenized-data cache",
                         "give a writable --cache-dir with free space") from None


def get_batch(ids, batch_size, block_size, rng):
    """Draw `batch_size` random windows of `block_size` tokens -> (x, y), int64 (B, T) each.

    y is x shifted left by one: y[b, t] is the token that follows x[b, t] (the target of
    next-token prediction). `rng` is a numpy.random.Generator, so a seed fixes the batches.
    """
    ids = np.asarray(ids)
    if ids.ndim != 1 or not np.issubdtype(ids.dtype, np.integer):
        raise DataError(f"get_batch needs a 1-D integer array of token ids, got {ids.dtype} with shape {ids.shape}")
    if len(ids) <= block_size:
        raise DataError(f"split has {len(ids)} tokens but block_size={block_size} needs at least "
                        f"{block_size + 1}: use a longer text or a smaller block_size")
    starts = rng.integers(0, len(ids) - block_size, size=batch_size)   # last start leaves room for y
    idx = starts[:, None] + np.arange(block_size)                      # (B, T)
    return ids[idx].astype(np.int64), ids[idx + 1].astype(np.int64)


def unigram_ppl(train_ids, eval_ids, vocab_size):
    """Perplexity on eval_ids of an add-one (Laplace) smoothed unigram model fitted on train_ids.

    p(w) = (count(w) + 1) / (N + V); ppl = exp(-mean log p(w)). It ignores context entirely, so
    any language model that learnt something must score below it.
    """
    counts = np.bincount(np.asarray(train_ids).reshape(-1), minlength=vocab_size).astype(np.float64) + 1.0
    if len(counts) != vocab_size:
        raise ValueError(f"train ids go up to {len(counts) - 1}, beyond vocab_size={vocab_size}")
    log_p = np.log(counts) - np.log(counts.sum())
    return float(np.exp(-log_p[np.asarray(eval_ids).reshape(-1)].mean()))
