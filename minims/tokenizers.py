"""Tokenizers: text <-> integer ids, at the character level and at the word level.

A language model sees only integers; a tokenizer fixes the mapping. Both tokenizers here are
*fitted* on the training split alone, so the valid and test splits may hold tokens the model has
never seen: those map to `<unk>` (id 0), just as in WikiText-103, whose vocabulary is also built
from the training set.

- `CharTokenizer`: one token per Unicode character. Vocabulary = `<unk>` followed by the sorted
  set of training characters. Encoding is vectorised with NumPy (a lookup table indexed by code
  point), so the 3.5 MB Austen corpus encodes in milliseconds. `<unk>` decodes to U+FFFD (the
  replacement character "\ufffd"), so decode always gives one character per id.
- `WordTokenizer`: WikiText-style word level. A word is a run of letters/digits, with inner
  apostrophes kept ("don't", "Elizabeth's"); a run of dashes is one token ("--" is an em-dash);
  every other non-space character (punctuation, `_`, `£`) is a token of its own. Case is kept ("Bath" and "bath" are different tokens), as in
  WikiText. Words seen fewer than `min_freq` times in training become `<unk>`.
  Line breaks: the Austen files are hard-wrapped at about 70 characters, so a single line break
  is only layout and counts as a space; a paragraph break (one or more blank lines) becomes the
  token `<par>`, which decodes to "\n\n". (WikiText's paragraph-per-line files play the same role
  with an end-of-line token.)

Common interface: `Tok().fit(text)`, `encode(text) -> int32 array`, `decode(ids) -> str`,
`vocab_size`, `unknown(text)` (the tokens of `text` that would become `<unk>`, with their
positions), `unk_in_training` (whether `<unk>` ever occurred in the training text), `to_dict()`
(JSON-serialisable, with a `"kind"` key) and `tokenizer_from_dict(d)`.

Text normalisation (ours): `normalize_text` turns Windows ("\\r\\n") and old-Mac ("\\r") line
ends into "\\n". It is the one normalisation of minims: data.py applies it to every corpus as it
is read, and `fit` and `encode` apply it to whatever text they are given, so a prompt typed with
Windows line ends reads exactly as the same text did in training.

Unknown tokens in a prompt (minims.sample refuses what the model cannot have learnt): a
character tokenizer never meets `<unk>` in training (it is fitted on the training text), so its
`<unk>` embedding is untrained and a prompt character outside the vocabulary is an error there.
A word tokenizer replaces the words rarer than `min_freq` by `<unk>` in training too, so the
model has learnt `<unk>` and an unseen prompt word is read as `<unk>`, by design (the sampler
says which words on stderr); with `min_freq=1` no training word became `<unk>`, and unseen
prompt words are refused as characters are. Nor does the sampler ever *generate* an `<unk>`
that training never showed (`unk_in_training` false): its logit was never trained.
"""
import bisect
import re
from collections import Counter

import numpy as np

TOKENIZERS = ("char", "word")
UNK = "<unk>"         # id 0 in both tokenizers
UNK_ID = 0
PAR = "<par>"         # word level: paragraph break
UNK_CHAR = "\ufffd"   # char level: what <unk> decodes to

# One regex pass splits text into word-level tokens. Alternatives are tried in order:
# a paragraph break (newline, optional spaces, newline, then any further blank lines),
# a word ([^\W_] = letter or digit in any script), a run of dashes ("-" joins words, "--" is
# the em-dash of these texts), then any other single non-space character.
_WORD_RE = re.compile(r"\n[^\S\n]*\n\s*|[^\W_]+(?:'[^\W_]+)*|-+|\S")
# decode: no space before closing punctuation, none after opening brackets, none around dashes
_NO_SPACE_BEFORE = set(".,;:!?)]}-")
_NO_SPACE_AFTER = set("([{-")
_PAIRED = set('"_')   # quotes and _italics_ markers: opening ones hug the next word


def normalize_text(text):
    """`text` with Windows ("\\r\\n") and old-Mac ("\\r") line ends as "\\n" (ours): the one
    normalisation applied to corpora (data.py), to the text a tokenizer is fitted on and to
    everything it encodes, prompts included. Idempotent."""
    if "\r" not in text:
        return text
    return text.replace("\r\n", "\n").replace("\r", "\n")


def source_offset(text, offset):
    """The offset in `text` of the character at `offset` in `normalize_text(text)` (ours: an
    error about a prompt names the place in the text as the user typed it)."""
    if "\r" not in text:
        return offset
    # the first prefix of text whose normalised form is longer than `offset` ends with it
    return bisect.bisect_left(range(len(text)), offset + 1,
                              key=lambda end: len(normalize_text(text[:end + 1])))


class CharTokenizer:
    """Character-level tokenizer; id 0 is `<unk>`, ids 1.. are the sorted training characters."""
    kind = "char"
    unk_in_training = False   # fitted on the training text: every training character is known

    def __init__(self):
        self.chars = None   # the sorted training characters; set by fit() or from_dict()

    def fit(self, text):
        self.chars = sorted(set(normalize_text(text)))
        self._build()
        return self

    def _build(self):
        codes = np.array([ord(c) for c in self.chars], dtype=np.int64)
        # lookup table: code point -> id; unseen code points stay 0 = <unk>
        self._lut = np.zeros(int(codes.max(initial=0)) + 1, dtype=np.int32)
        self._lut[codes] = np.arange(1, len(codes) + 1, dtype=np.int32)
        self._codes = np.concatenate([[ord(UNK_CHAR)], codes]).astype(np.uint32)  # id -> code

    @property
    def vocab_size(self):
        _check_fitted(self, self.chars)
        return len(self.chars) + 1

    def encode(self, text):
        _check_fitted(self, self.chars)
        # surrogatepass: a lone surrogate (text made from bytes that are not UTF-8) is <unk>
        codes = np.frombuffer(normalize_text(text).encode("utf-32-le", "surrogatepass"), dtype="<u4")
        ids = np.zeros(len(codes), dtype=np.int32)          # 0 = <unk> unless found below
        known = codes < len(self._lut)
        ids[known] = self._lut[codes[known]]
        return ids

    def unknown(self, text):
        """[(offset in `text`, character)] for each character of `text` outside the vocabulary
        (those `encode` maps to <unk>), offsets counted in `text` as given."""
        normal = normalize_text(text)
        return [(source_offset(text, int(i)), normal[i]) for i in np.flatnonzero(self.encode(normal) == 0)]

    def decode(self, ids):
        ids = _check_ids(ids, self.vocab_size)
        return self._codes[ids].astype("<u4").tobytes().decode("utf-32-le")

    def to_dict(self):
        _check_fitted(self, self.chars)
        return {"kind": self.kind, "chars": "".join(self.chars)}

    @classmethod
    def from_dict(cls, d):
        tok = cls()
        tok.chars = list(d["chars"])
        tok._build()
        return tok


class WordTokenizer:
    """Word-level tokenizer (WikiText style); ids 0, 1 are `<unk>`, `<par>`, then words by
    decreasing training frequency (ties alphabetical, so the vocabulary is deterministic)."""
    kind = "word"

    def __init__(self, min_freq=2):
        if min_freq < 1:
            raise ValueError(f"min_freq must be >= 1, got {min_freq}")
        self.min_freq = min_freq
        self.itos = None    # id -> token string; set by fit() or from_dict()
        self.unk_in_training = None   # whether fit() replaced a rare word by <unk>

    @staticmethod
    def tokenize(text):
        """Split text (normalised first) into token strings (words, punctuation, `<par>`),
        before any <unk>."""
        return [PAR if t[0] == "\n" else t for t in _WORD_RE.findall(normalize_text(text))]

    def fit(self, text):
        counts = Counter(self.tokenize(text))
        counts.pop(PAR, None)
        kept = sorted((w for w, n in counts.items() if n >= self.min_freq),
                      key=lambda w: (-counts[w], w))
        self.itos = [UNK, PAR] + kept
        self.unk_in_training = len(kept) < len(counts)
        self._build()
        return self

    def _build(self):
        self.stoi = {w: i for i, w in enumerate(self.itos)}

    @property
    def vocab_size(self):
        _check_fitted(self, self.itos)
        return len(self.itos)

    def encode(self, text):
        _check_fitted(self, self.itos)
        get = self.stoi.get
        return np.array([get(t, 0) for t in self.tokenize(text)], dtype=np.int32)

    def unknown(self, text):
        """[(offset in `text`, word)] for each token of `text` outside the vocabulary (those
        `encode` maps to <unk>), offsets counted in `text` as given."""
        _check_fitted(self, self.itos)
        normal = normalize_text(text)
        return [(source_offset(text, m.start()), m.group()) for m in _WORD_RE.finditer(normal)
                if m.group()[0] != "\n" and m.group() not in self.stoi]

    def decode(self, ids):
        """Join tokens with spaces, except where English typesetting has none."""
        ids = _check_ids(ids, self.vocab_size)
        out, is_open, glue = [], {q: False for q in _PAIRED}, True   # glue: no space before next
        for t in (self.itos[i] for i in ids.tolist()):
            if t == PAR:
                out.append("\n\n")
                is_open, glue = {q: False for q in _PAIRED}, True   # quotes reopen per paragraph
                continue
            if t in _PAIRED:
                is_open[t] = not is_open[t]
                closing = not is_open[t]
                out.append(t if (glue or closing) else " " + t)
                glue = not closing          # an opening quote hugs the word after it
                continue
            out.append(t if (glue or t[0] in _NO_SPACE_BEFORE) else " " + t)   # words never start
            glue = t[0] in _NO_SPACE_AFTER                                    # with punctuation
        return "".join(out)

    def to_dict(self):
        _check_fitted(self, self.itos)
        return {"kind": self.kind, "min_freq": self.min_freq, "itos": list(self.itos),
                "unk_in_training": self.unk_in_training}

    @classmethod
    def from_dict(cls, d):
        tok = cls(min_freq=d["min_freq"])
        tok.itos = list(d["itos"])
        # written before the key existed: any natural text has words rarer than min_freq >= 2
        tok.unk_in_training = bool(d.get("unk_in_training", tok.min_freq > 1))
        tok._build()
        return tok


_CLASSES = {"char": CharTokenizer, "word": WordTokenizer}


def build_tokenizer(kind, train_text, **options):
    """Fit a tokenizer of the given kind ("char" or "word") on the training text."""
    if kind not in _CLASSES:
        raise ValueError(f"unknown tokenizer {kind!r}: choose from {', '.join(TOKENIZERS)}")
    return _CLASSES[kind](**options).fit(train_text)


def tokenizer_from_dict(d):
    """Rebuild a tokenizer from its `to_dict()` (e.g. as stored in a checkpoint or cache)."""
    kind = d.get("kind")
    if kind not in _CLASSES:
        raise ValueError(f"unknown tokenizer kind {kind!r} in dict: choose from {', '.join(TOKENIZERS)}")
    return _CLASSES[kind].from_dict(d)


def _check_fitted(tok, vocab):
    if vocab is None:
        raise RuntimeError(f"{type(tok).__name__} has no vocabulary yet: call fit(text) first")


def _check_ids(ids, vocab_size):
    """ids (list, tuple or array, any int dtype) -> 1-D int64 array, each in [0, vocab_size)."""
    ids = np.asarray(ids, dtype=np.int64).reshape(-1)
    if ids.size and (ids.min() < 0 or ids.max() >= vocab_size):
        raise ValueError(f"token ids must be in [0, {vocab_size}), got min {ids.min()}, max {ids.max()}")
    return ids
