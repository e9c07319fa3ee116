"""lessons.support.figures: PNGs under the lessons' output folder, no global backend switch, and one line
instead of a crash without matplotlib."""
import json
import sys

import numpy as np
import pytest

from lessons.support import figures


def test_save_figure_writes_the_png_and_prints_its_path(tmp_path, monkeypatch, capsys):
    pytest.importorskip("matplotlib")
    import matplotlib
    backend = matplotlib.get_backend()
    monkeypatch.setenv("MINIMS_LESSONS_OUT", str(tmp_path))
    fig = figures.new_figure(1, 2)
    assert len(fig.axes) == 2
    fig.axes[0].plot([0, 1], [1, 0])
    path = figures.save_figure(fig, "99_test")
    assert path == tmp_path / "99_test.png" and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"figure: {path}" in capsys.readouterr().out
    assert matplotlib.get_backend() == backend, "library code must not switch the global backend"
    with pytest.raises(ValueError, match="letters"):
        figures.save_figure(fig, "../escape")


def test_without_matplotlib_one_line_and_none(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib", None)          # import matplotlib -> ImportError
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    monkeypatch.setattr(figures, "_said_missing", False)
    assert figures.new_figure() is None and figures.new_figure() is None
    assert figures.save_figure(None, "x") is None
    out = capsys.readouterr().out
    assert out.count("pip install -e '.[plot]'") == 1 and len(out.strip().splitlines()) == 1


def test_loss_curves_and_dependencies(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    monkeypatch.setenv("MINIMS_LESSONS_OUT", str(tmp_path))
    log = tmp_path / "log.jsonl"
    log.write_text("\n".join(json.dumps({"iter": i, "train_loss": 4 - i / 10, "val_loss": 4.1 - i / 10})
                             for i in range(0, 30, 10)) + "\n{half-written")
    assert [r["iter"] for r in figures.read_log(log)] == [0, 10, 20]
    assert figures.plot_loss_curves({"a": log}, "99_curves", baseline={"unigram": 3.0}).is_file()
    fig = figures.new_figure()
    m = np.tril(np.ones((4, 4)))
    m[0, 2] = 1                                                   # one dependency on the future
    assert figures.draw_dependencies(fig.axes[0], m, "t") == 1


def test_key_sets_counts_keys_from_the_future(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    monkeypatch.setenv("MINIMS_LESSONS_OUT", str(tmp_path))
    fig = figures.new_figure()
    m = np.tril(np.ones((5, 5), dtype=int))
    m[:, 0] = 2                                                   # a second key set, all in the past
    assert figures.draw_key_sets(fig.axes[0], m, ["fine", "pooled"], "t") == 0
    m[1, 3] = 2                                                   # query 1 sees token 3: the future
    fig = figures.new_figure()
    assert figures.draw_key_sets(fig.axes[0], m, ["fine", "pooled"], "t") == 1
    assert figures.save_figure(fig, "99_keys").is_file()
