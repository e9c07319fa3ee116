"""Tests for the data layer: corpus loading and splitting, tokenizers, cache, batches, baseline."""
import json
import shutil

import numpy as np
import pytest

from minims import data, tokenizers
from minims.data import DataError


# ---------------------------------------------------------------- fixtures (built once per module)

@pytest.fixture(scope="module")
def austen():
    return data.load_corpus("austen")


@pytest.fixture(scope="module")
def austen_word_cache(tmp_path_factory):
    """The word-level Austen splits, prepared once (the slowest step here, about a second)."""
    cache = tmp_path_factory.mktemp("cache")
    tok, splits = data.prepare("austen", "word", cache_dir=cache, min_freq=2)
    return cache, tok, splits


def sample_text(n_paragraphs=40):
    """A few thousand characters of varied, deterministic text."""
    words = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta"]
    paras = []
    for p in range(n_paragraphs):
        sentence = " ".join(words[(p * 3 + i) % len(words)] for i in range(9))
        paras.append(f"Paragraph {p}: {sentence}, and \"quoted {p}\" text; done!")
    return "\n\n".join(paras) + "\n"


# ---------------------------------------------------------------- the Austen corpus

def test_austen_split_by_book(austen):
    assert austen["train"].startswith("SENSE AND SENSIBILITY")
    assert austen["valid"].startswith("NORTHANGER ABBEY")
    assert austen["test"].startswith("Persuasion")
    train = austen["train"]
    # the four training books, in order
    starts = [train.index(t) for t in ("SENSE AND SENSIBILITY", "PRIDE AND PREJUDICE\n",
                                       "MANSFIELD PARK\n", "EMMA\n\nBy Jane Austen")]
    assert starts == sorted(starts) and starts[0] == 0
    for name in ("Elizabeth Bennet", "Mr. Darcy", "Elinor", "Fanny Price", "Emma Woodhouse"):
        assert name in train
    for split in ("valid", "test"):
        for name in ("Mr. Darcy", "Elizabeth Bennet", "Emma Woodhouse", "Fanny Price"):
            assert name not in austen[split], (name, split)
    assert "Catherine Morland" in austen["valid"] and "Wentworth" not in austen["valid"]
    assert "Anne Elliot" in austen["test"] and "Catherine Morland" not in austen["test"]
    assert isinstance(austen["source"], str) and austen["source"]


def test_austen_sizes_match_files(austen):
    sizes = {name: len((data.AUSTEN_DIR / name).read_text(encoding="utf-8"))
             for names in data.AUSTEN_SPLITS.values() for name in names}
    assert len(austen["valid"]) == sizes["northanger_abbey.txt"]
    assert len(austen["test"]) == sizes["persuasion.txt"]
    n_train = sum(sizes[n] for n in data.AUSTEN_SPLITS["train"]) + 3 * len(data.SEPARATOR)
    assert len(austen["train"]) == n_train


def test_austen_checksum_mismatch(tmp_path, monkeypatch):
    copy = tmp_path / "austen"
    shutil.copytree(data.AUSTEN_DIR, copy)
    with open(copy / "emma.txt", "a") as f:
        f.write("an edit")
    monkeypatch.setattr(data, "AUSTEN_DIR", copy)
    with pytest.raises(DataError, match=r"emma\.txt.*SHA256"):
        data.load_corpus("austen")


def test_austen_missing(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "AUSTEN_DIR", tmp_path / "nowhere")
    with pytest.raises(DataError, match="not found"):
        data.load_corpus("austen")


# ---------------------------------------------------------------- bring your own text

def test_own_file_split_90_5_5(tmp_path):
    text = sample_text()
    path = tmp_path / "mine.txt"
    path.write_text(text, encoding="utf-8")
    c = data.load_corpus(str(path))
    assert c["train"] + c["valid"] + c["test"] == text         # contiguous, nothing lost
    n = len(text)
    assert len(c["train"]) == int(0.9 * n)
    assert abs(len(c["valid"]) - 0.05 * n) <= 1 and abs(len(c["test"]) - 0.05 * n) <= 2
    assert str(path) in c["source"]


def test_own_folder_sorted_and_txt_only(tmp_path):
    (tmp_path / "b.txt").write_text("B" * 600)
    (tmp_path / "a.txt").write_text("A" * 600)
    (tmp_path / "notes.md").write_text("M" * 600)
    c = data.load_corpus(tmp_path)
    text = c["train"] + c["valid"] + c["test"]
    assert text == "A" * 600 + data.SEPARATOR + "B" * 600
    assert "M" not in text


def test_own_file_windows_line_ends_and_bom(tmp_path):
    path = tmp_path / "win.txt"
    path.write_bytes(b"\xef\xbb\xbf" + b"line one\r\n" * 200)
    c = data.load_corpus(path)
    text = c["train"] + c["valid"] + c["test"]
    assert "\r" not in text and text.startswith("line one\n") and "\ufeff" not in text


@pytest.mark.parametrize("case, expect", [
    ("missing", "no such file"),
    ("empty", "empty"),
    ("nul", "NUL"),
    ("latin1", "not valid UTF-8"),
    ("short", str(data.MIN_CHARS)),
    ("no_txt", "no .txt"),
    ("empty_in_folder", "empty"),
])
def test_bad_input_names_path_and_problem(tmp_path, case, expect):
    path = tmp_path / "corpus.txt"
    if case == "empty":
        path.write_bytes(b"")
    elif case == "nul":
        path.write_bytes(b"looks like text\x00\x01\x02" * 100)
    elif case == "latin1":
        path.write_bytes("caf\u00e9 ".encode("latin-1") * 400)
    elif case == "short":
        path.write_text("too short")
    elif case == "no_txt":
        path = tmp_path / "folder"
        path.mkdir()
        (path / "readme.md").write_text("x" * 5000)
    elif case == "empty_in_folder":
        folder = tmp_path / "folder"
        folder.mkdir()
        (folder / "a.txt").write_text("x" * 5000)
        path = folder / "b.txt"
        path.write_bytes(b"")
        with pytest.raises(DataError) as err:
            data.load_corpus(folder)
        assert str(path) in str(err.value) and expect in str(err.value)
        return
    with pytest.raises(DataError) as err:
        data.load_corpus(str(path))
    msg = str(err.value)
    assert str(path) in msg and expect in msg and "\n" not in msg
    assert isinstance(err.value, ValueError)


# ---------------------------------------------------------------- tokenizers

def test_char_round_trip_and_unk(austen):
    tok = tokenizers.build_tokenizer("char", austen["train"])
    assert tok.vocab_size == len(set(austen["train"])) + 1
    ids = tok.encode(austen["valid"])
    assert ids.dtype == np.int32 and len(ids) == len(austen["valid"])
    assert tok.decode(ids) == austen["valid"]               # every valid character is in train
    assert tok.decode(list(ids[:50])) == austen["valid"][:50]
    ids = tok.encode("Emma\u263a\U0001F600!")                 # two characters never seen in training
    assert ids[4] == 0 and ids[5] == 0 and ids[0] != 0 and ids[6] != 0
    assert tok.decode(ids) == "Emma\ufffd\ufffd!"
    with pytest.raises(ValueError):
        tok.decode([tok.vocab_size])


def test_word_tokenize_rules():
    toks = tokenizers.WordTokenizer.tokenize("\"I don't know,\" said Mr. Darcy--well-bred.\nNext line\n\n\n_Very_ 1814.")
    assert toks == ['"', "I", "don't", "know", ",", '"', "said", "Mr", ".", "Darcy", "--", "well", "-",
                    "bred", ".", "Next", "line", tokenizers.PAR, "_", "Very", "_", "1814", "."]


def test_word_round_trip_preserves_tokens(austen):
    text = austen["valid"][:60000]
    tok = tokenizers.WordTokenizer(min_freq=1).fit(text)     # every token known: no <unk>
    ids = tok.encode(text)
    assert 0 not in ids
    assert tok.tokenize(tok.decode(ids)) == tok.tokenize(text)
    assert tok.decode(tok.encode('He said, "Yes."')) == 'He said, "Yes."'


def test_word_unk_and_min_freq():
    tok = tokenizers.WordTokenizer(min_freq=2).fit("the cat\n\nthe dog\n\nthe cat . .")
    assert tok.itos[:2] == [tokenizers.UNK, tokenizers.PAR]
    assert len(set(tok.itos)) == len(tok.itos) == tok.vocab_size == 5    # <unk> <par> the cat .
    assert "dog" not in tok.stoi and "cat" in tok.stoi and "the" in tok.stoi
    assert tok.itos[2] == "the"                              # most frequent first
    ids = tok.encode("the dog zebra")
    assert ids.tolist() == [tok.stoi["the"], 0, 0]
    assert tok.decode(ids) == "the <unk> <unk>"


@pytest.mark.parametrize("kind", tokenizers.TOKENIZERS)
def test_to_dict_round_trip(kind):
    text = sample_text()
    tok = tokenizers.build_tokenizer(kind, text)
    d = json.loads(json.dumps(tok.to_dict()))
    assert d["kind"] == kind
    tok2 = tokenizers.tokenizer_from_dict(d)
    assert type(tok2) is type(tok) and tok2.vocab_size == tok.vocab_size
    probe = text[:500] + " unseen words \u00e9"
    assert np.array_equal(tok2.encode(probe), tok.encode(probe))
    assert tok2.decode(tok.encode(probe)) == tok.decode(tok.encode(probe))


def test_unknown_tokenizer_lists_choices():
    with pytest.raises(ValueError, match="char, word"):
        tokenizers.build_tokenizer("bpe", "text")
    with pytest.raises(ValueError, match="char, word"):
        tokenizers.tokenizer_from_dict({"kind": "bpe"})
    with pytest.raises(ValueError, match="char, word"):
        data.prepare("austen", "bpe")


# ---------------------------------------------------------------- prepare and its cache

def test_prepare_austen_word(austen_word_cache, austen):
    _, tok, splits = austen_word_cache
    assert 5000 < tok.vocab_size < 20000
    for s in ("train", "valid", "test"):
        assert splits[s].dtype == np.int32 and splits[s].ndim == 1
        assert 0 <= splits[s].min() and splits[s].max() < tok.vocab_size
    # vocabulary from train only: words only in Northanger Abbey are <unk>
    assert "Morland" not in tok.stoi and "Darcy" in tok.stoi
    assert (splits["valid"] == 0).mean() < 0.1


def test_prepare_austen_word_cached(austen_word_cache, monkeypatch):
    cache, tok, splits = austen_word_cache
    monkeypatch.setattr(tokenizers.WordTokenizer, "encode", lambda *a: pytest.fail("cache not used"))
    tok2, splits2 = data.prepare("austen", "word", cache_dir=cache, min_freq=2)
    assert tok2.to_dict() == tok.to_dict()
    assert all(np.array_equal(splits[s], splits2[s]) and splits2[s].dtype == np.int32 for s in splits)
    # another min_freq is another cache entry, not this one
    assert len(list(cache.iterdir())) == 1


def test_cache_hit_and_invalidation(tmp_path, monkeypatch):
    path, cache = tmp_path / "corpus.txt", tmp_path / "cache"
    path.write_text(sample_text())
    tok, splits = data.prepare(path, "char", cache_dir=cache)
    assert not list(cache.rglob("*.tmp"))                    # atomic writes leave no temp files
    with monkeypatch.context() as m:                         # second call: no fitting, no encoding
        m.setattr(data, "build_tokenizer", lambda *a, **k: pytest.fail("cache not used"))
        tok2, splits2 = data.prepare(path, "char", cache_dir=cache)
    assert all(np.array_equal(splits[s], splits2[s]) for s in splits)

    path.write_text(sample_text().replace("alpha", "kappa"))  # same length, different text
    tok3, splits3 = data.prepare(path, "char", cache_dir=cache)
    assert len(list(cache.iterdir())) == 2
    assert "k" in tok3.to_dict()["chars"] and "k" not in tok.to_dict()["chars"]
    assert tok3.decode(splits3["train"]) == data.load_corpus(path)["train"]


def test_damaged_cache_is_rebuilt(tmp_path):
    path, cache = tmp_path / "corpus.txt", tmp_path / "cache"
    path.write_text(sample_text())
    tok, splits = data.prepare(path, "word", cache_dir=cache)
    (npy,) = cache.rglob("valid.npy")
    npy.write_bytes(b"")
    tok2, splits2 = data.prepare(path, "word", cache_dir=cache)
    assert np.array_equal(splits["valid"], splits2["valid"])
    assert np.array_equal(np.load(npy), splits["valid"])


# ---------------------------------------------------------------- batches and the baseline

def test_get_batch_shapes_shift_determinism():
    ids = np.arange(1000, dtype=np.int32)
    x, y = data.get_batch(ids, 8, 16, np.random.default_rng(0))
    assert x.shape == y.shape == (8, 16) and x.dtype == y.dtype == np.int64
    assert np.array_equal(y[:, :-1], x[:, 1:]) and np.array_equal(y[:, -1], x[:, -1] + 1)
    assert np.array_equal(x - x[:, :1], np.broadcast_to(np.arange(16), (8, 16)))  # real windows
    x2, y2 = data.get_batch(ids, 8, 16, np.random.default_rng(0))
    assert np.array_equal(x, x2) and np.array_equal(y, y2)
    x3, _ = data.get_batch(ids, 8, 16, np.random.default_rng(1))
    assert not np.array_equal(x, x3)


def test_get_batch_edges():
    ids = np.arange(17)
    x, y = data.get_batch(ids, 4, 16, np.random.default_rng(0))  # one window fits exactly
    assert np.array_equal(x, np.tile(np.arange(16), (4, 1))) and y.max() == 16
    with pytest.raises(DataError, match="block_size=17"):
        data.get_batch(ids, 4, 17, np.random.default_rng(0))


def test_unigram_ppl():
    rng = np.random.default_rng(0)
    V = 50
    uniform = np.repeat(np.arange(V), 10)
    assert data.unigram_ppl(uniform, rng.integers(0, V, 200), V) == pytest.approx(V)
    # skewed data: the unigram model beats uniform guessing, and is at least 1
    train = rng.zipf(1.5, 5000) % V
    ppl = data.unigram_ppl(train, rng.zipf(1.5, 2000) % V, V)
    assert 1.0 < ppl < V
    # hand-computed: counts+1 = [3, 1] -> p = [3/4, 1/4]
    assert data.unigram_ppl([0, 0], [0, 1], 2) == pytest.approx(np.exp(-(np.log(0.75) + np.log(0.25)) / 2))


def test_unigram_ppl_austen_char(austen):
    tok = tokenizers.build_tokenizer("char", austen["train"])
    ppl = data.unigram_ppl(tok.encode(austen["train"]), tok.encode(austen["valid"]), tok.vocab_size)
    assert 10 < ppl < 40      # English letters: about 20-25


# ---------------------------------------------------------------- bad luck: unreadable, altered or odd input

def test_empty_data_device_and_unreadable_file_are_refused(tmp_path, monkeypatch):
    with pytest.raises(DataError, match="--data is empty"):
        data.load_corpus("")
    with pytest.raises(DataError, match="not a regular file"):
        data.load_corpus("/dev/zero")
    path = tmp_path / "corpus.txt"
    path.write_text(sample_text())

    def denied(self):
        raise PermissionError(13, "Permission denied", str(self))
    monkeypatch.setattr(type(path), "read_bytes", denied)
    with pytest.raises(DataError, match=r"corpus\.txt: cannot read the data file \(permission denied\)"):
        data.load_corpus(path)


def test_a_named_pipe_is_read_whole(tmp_path):
    import os
    import threading
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    text = sample_text()

    def writer():
        with open(fifo, "w") as f:
            f.write(text)
    t = threading.Thread(target=writer)
    t.start()
    corpus = data.load_corpus(fifo)
    t.join()
    assert corpus["train"] + corpus["valid"] + corpus["test"] == text


def test_an_altered_cache_array_is_rebuilt(tmp_path):
    """A valid .npy holding other ids (shuffled, same length and dtype) is never used: its hash
    no longer matches manifest.json, so the cache is rebuilt from the text."""
    path, cache = tmp_path / "corpus.txt", tmp_path / "cache"
    path.write_text(sample_text())
    tok, splits = data.prepare(path, "char", cache_dir=cache)
    (npy,) = cache.rglob("train.npy")
    np.save(npy, np.random.default_rng(0).permutation(splits["train"]))
    tok2, splits2 = data.prepare(path, "char", cache_dir=cache)
    assert np.array_equal(splits2["train"], splits["train"])
    assert np.array_equal(np.load(npy), splits["train"])                 # and the cache is repaired
    manifest = json.loads(next(cache.rglob("manifest.json")).read_text())
    assert set(manifest["sha256"]) == {"train", "valid", "test"}
    assert manifest["tokenizer"] == tok.to_dict()


def test_a_word_vocabulary_of_only_unk_is_refused(tmp_path):
    # 400 distinct words, each once: with min_freq 2 every word would be <unk> (vocab 2)
    words = [f"w{i}" for i in range(400)]
    path = tmp_path / "uniq.txt"
    path.write_text(" ".join(words) + "\n")
    with pytest.raises(DataError, match="no word occurs --min-freq 2 times"):
        data.prepare(str(path), "word", min_freq=2)
    tok, _ = data.prepare(str(path), "word", min_freq=1)
    assert tok.vocab_size > 2
