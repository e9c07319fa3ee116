"""Text from the command line: arguments that are not UTF-8, and prompts read as data is.

- Every command (train, sample, bench, experiment) refuses an argument that is not valid UTF-8
  (Python hands its bytes over as lone surrogates, "\\udcff" for 0xff) with one line on stderr,
  exit 2, naming the argument and the offset of the first bad byte; checked through a real
  process with bytes in argv and in-process through main(argv) with surrogate strings.
- A prompt goes through the same normalisation as training text (`normalize_text`: Windows and
  old-Mac line ends -> "\\n"), and a prompt token the model never learnt is named with its offset
  (char level always; word level when <unk> never occurred in training), a one-line error from
  the command line and a ValueError from the library.
"""
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from minims import bench, checkpoint, cli, experiment, sample as sample_cli, tokenizers
from minims import sampling, train as train_cli
from minims.testing import causality as leak
from minims.data import load_corpus
from minims.models import build_model
from minims.tokenizers import WordTokenizer, build_tokenizer, tokenizer_from_dict

REPO = Path(__file__).resolve().parent.parent
TEXT = "it was a truth, he said.\nit was not; she said it was.\n\nthe end of it.\n"
TINY = dict(n_embd=8, n_head=2, n_layer=1)


def tiny_model(tok):
    model = build_model("vanilla", vocab_size=tok.vocab_size, block_size=16, dtype="float64", **TINY)
    return leak.randomize(model, seed=3).eval()


@pytest.fixture
def char_ckpt(tmp_path):
    """A checkpoint of a tiny char-level model (random weights) fitted on TEXT."""
    tok = build_tokenizer("char", TEXT)
    model = tiny_model(tok)
    path = tmp_path / "tiny.npz"
    checkpoint.save(path, {"model": model.describe(), "tokenizer": tok.to_dict()}, model.state_dict(), {})
    return path


def run(folder, *argv):
    """`python -m <argv>` in `folder` (this checkout's minims) -> CompletedProcess (bytes out)."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", *argv], cwd=folder, env=env, capture_output=True,
                          timeout=120)


def one_line(err):
    return err.count("\n") == 1 and "Traceback" not in err


# ---------------------------------------------------------------- arguments that are not UTF-8

def test_a_prompt_that_is_not_utf8_is_one_line_in_a_real_process(char_ckpt):
    result = run(char_ckpt.parent, "minims.sample", "--ckpt", os.fsencode(char_ckpt), "--prompt", b"ab\xffc")
    err = result.stderr.decode()
    assert result.returncode == 2 and result.stdout == b"" and one_line(err)
    assert err.startswith("error: argument 4 (the value of --prompt) is not valid UTF-8: "
                          "byte 0xff at offset 2;")


@pytest.mark.parametrize("argv,where,byte", [
    (["minims.train", "--data", b"own\xfe.txt", "--max-iters", "1"], "argument 2 (the value of --data)",
     "0xfe at offset 3"),
    (["minims.bench", b"mod\xc3el"], "argument 1", "0xc3 at offset 3"),   # 0xc3 starts a 2-byte character
    (["minims.experiment", b"abl\xffate", "--quick"], "argument 1", "0xff at offset 3"),
])
def test_every_command_refuses_bytes_that_are_not_utf8(tmp_path, argv, where, byte):
    result = run(tmp_path, *argv)
    err = result.stderr.decode()
    assert result.returncode == 2 and result.stdout == b"" and one_line(err)
    assert err.startswith(f"error: {where} is not valid UTF-8: byte {byte};")


@pytest.mark.parametrize("main,argv,where", [
    (sample_cli.main, ["--prompt", "ab\udcffc"], "argument 2 (the value of --prompt)"),
    (sample_cli.main, ["--prom", "ab\udcffc"], "argument 2 (the value of --prom)"),   # abbreviated
    (sample_cli.main, ["--prompt=ab\udcffc"], "argument 1 (the value of --prompt)"),
    (train_cli.main, ["--max-iters", "1", "--data", "ab\udcffc"], "argument 4 (the value of --data)"),
    (bench.main, ["model", "--dtype", "ab\udcffc"], "argument 3 (the value of --dtype)"),
    (experiment.main, ["ab\udcffc"], "argument 1"),
    (experiment.main, ["tradeoff", "--o\udcffnly"], "argument 2 (a flag)"),
])
def test_main_refuses_surrogate_strings_with_one_line(capsys, main, argv, where):
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and one_line(captured.err)
    assert captured.err.startswith(f"error: {where} is not valid UTF-8: byte 0xff at offset ")
    assert captured.err.encode("utf-8")           # the line itself is printable text


def test_not_utf8_names_the_first_bad_byte_or_character():
    assert cli.not_utf8("plain text, é and €") is None
    assert cli.not_utf8("ab\udcffc") == "byte 0xff at offset 2"
    assert cli.not_utf8("é\udcff") == "byte 0xff at offset 2"                # offsets count bytes
    assert cli.not_utf8("\udce9t\udce9") == "byte 0xe9 at offset 0"           # Latin-1 "été"
    assert cli.not_utf8("x\ud800") == "character U+D800 (a lone surrogate) at character offset 1"
    assert cli.not_utf8("\udcc3\udca9") == "character U+DCC3 (a lone surrogate) at character offset 0"


def test_the_library_names_a_surrogate_in_a_prompt(char_ckpt):
    model, tok, _ = sample_cli.load_model(char_ckpt)
    with pytest.raises(ValueError, match=r"'\\udcff' \(U\+DCFF\) at offset 2"):
        sampling.sample(model, tok, "it\udcffwas", max_new_tokens=3)


# ---------------------------------------------------------------- prompts read as data is

def test_one_normalisation_for_data_and_prompts(tmp_path):
    raw = TEXT * 40
    (tmp_path / "win.txt").write_bytes(raw.replace("\n", "\r\n").encode())
    (tmp_path / "mac.txt").write_bytes(raw.replace("\n", "\r").encode())
    for name in ("win.txt", "mac.txt"):
        corpus = load_corpus(tmp_path / name)
        assert corpus["train"] + corpus["valid"] + corpus["test"] == tokenizers.normalize_text(raw) == raw
    assert tokenizers.normalize_text("a\r\nb\rc\r\r\nd\n") == "a\nb\nc\n\nd\n"
    for kind in ("char", "word"):
        tok = build_tokenizer(kind, TEXT.replace("\n", "\r\n"), **({"min_freq": 1} if kind == "word" else {}))
        assert tok.to_dict() == build_tokenizer(kind, TEXT, **({"min_freq": 1} if kind == "word" else {})).to_dict()
        for prompt in ("it was\r\nthe end", "it was\rthe end", "it was\r\n\r\nthe end"):
            np.testing.assert_array_equal(tok.encode(prompt), tok.encode(tokenizers.normalize_text(prompt)))
            assert tok.unknown(prompt) == []


def test_a_windows_prompt_samples_what_the_same_text_does(char_ckpt, capsys):
    outs = []
    for prompt in ("it was\r\nshe said", "it was\nshe said"):
        assert sample_cli.main(["--ckpt", str(char_ckpt), "--prompt", prompt, "--max-new-tokens", "20"]) == 0
        captured = capsys.readouterr()
        assert captured.err == ""
        outs.append(captured.out)
    assert outs[0] == outs[1] and outs[0].startswith("it was\nshe said") and "\r" not in outs[0]


@pytest.mark.parametrize("prompt,shown,offset", [("it was €", "'€' (U+20AC)", 7),
                                                 ("it\r\nwas\r\nZ", "'Z' (U+005A)", 9),
                                                 ("\tit was", "'\\t' (U+0009)", 0)])
def test_a_prompt_character_the_model_never_saw_is_named(char_ckpt, capsys, prompt, shown, offset):
    message = f"the prompt holds {shown} at offset {offset}, a character the model never saw in training"
    assert sample_cli.main(["--ckpt", str(char_ckpt), "--prompt", prompt]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and one_line(captured.err) and message in captured.err
    model, tok, _ = sample_cli.load_model(char_ckpt)
    with pytest.raises(ValueError, match=re.escape(message)):
        sampling.sample(model, tok, prompt)
    assert tok.unknown(prompt)[0] == (offset, prompt[offset])


def test_the_count_of_further_unknown_characters_is_given(char_ckpt):
    model, tok, _ = sample_cli.load_model(char_ckpt)
    with pytest.raises(ValueError, match=r"'X' \(U\+0058\) at offset 0 \(and 2 more\)"):
        list(sampling.sample_stream(model, tok, "XitYZ"))


def test_word_level_unseen_words_are_unk_when_the_model_learnt_unk(monkeypatch, capsys):
    tok = WordTokenizer(min_freq=2).fit(TEXT)          # "truth", "he", "end", ... became <unk>
    assert tok.unk_in_training and "truth" not in tok.stoi
    model = tiny_model(tok)
    monkeypatch.setattr(sample_cli, "load_model", lambda path: (model, tok, {}))
    assert tok.unknown("it was\r\na zebra, truth") == [(8, "a"), (10, "zebra"), (15, ","), (17, "truth")]
    assert sample_cli.main(["--prompt", "it was\r\na zebra, truth", "--max-new-tokens", "5"]) == 0
    captured = capsys.readouterr()
    assert captured.err == ("note: the model reads 'a' (offset 8) and 3 more as <unk>: words it never "
                            "saw in training\n")
    text = sampling.sample(model, tok, "it was\na zebra, truth", max_new_tokens=5)
    assert captured.out == "it was\na zebra, truth" + text + "\n"
    ids = tok.encode("it was\r\na zebra, truth")                 # what the model reads
    assert ids.tolist() == [tok.stoi["it"], tok.stoi["was"], 0, 0, 0, 0]


def test_word_level_unseen_words_are_refused_when_unk_never_occurred(monkeypatch, capsys):
    tok = WordTokenizer(min_freq=1).fit(TEXT)          # every training word kept: <unk> untrained
    assert not tok.unk_in_training
    model = tiny_model(tok)
    monkeypatch.setattr(sample_cli, "load_model", lambda path: (model, tok, {}))
    assert sample_cli.main(["--prompt", "it was\r\n\r\nzebra"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and one_line(captured.err)
    assert "the prompt holds 'zebra' at offset 10, a word the model never saw in training" in captured.err
    with pytest.raises(ValueError, match="'zebra' at offset 10"):
        sampling.sample(model, tok, "it was\r\n\r\nzebra")


def test_unk_in_training_is_kept_by_to_dict_and_guessed_for_old_dicts():
    for min_freq, seen in ((1, False), (2, True), (50, True)):
        tok = WordTokenizer(min_freq=min_freq).fit(TEXT)
        assert tok.unk_in_training is seen
        assert tokenizer_from_dict(tok.to_dict()).unk_in_training is seen
        old = {k: v for k, v in tok.to_dict().items() if k != "unk_in_training"}   # before the key
        assert tokenizer_from_dict(old).unk_in_training is (min_freq > 1)
    assert WordTokenizer(min_freq=2).fit("a a b b").unk_in_training is False   # nothing was rare
    assert build_tokenizer("char", TEXT).unk_in_training is False


def test_an_error_line_keeps_the_spaces_of_quoted_text_and_drops_line_breaks():
    # a prompt of three spaces was quoted as one in the error line
    from minims.errors import UsageError, report
    assert report(UsageError("the prompt '   ' holds no word-level token;\n   give some text")) == \
        "error: the prompt '   ' holds no word-level token; give some text"
