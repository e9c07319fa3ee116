"""lessons.support.comparison: the runs lessons 08-10 compare train with the same settings and steps,
are reproducible, and write their logs under the lessons' output folder."""
import re
from pathlib import Path

import pytest

from lessons.support import comparison
from minims.errors import UsageError
from lessons.support.figures import read_log

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".cache"


def test_same_budget_same_settings_reproducible(tmp_path, monkeypatch):
    monkeypatch.setenv("MINIMS_LESSONS_OUT", str(tmp_path))
    runs = {"bottom-up 1-1-1": ("bottom-up", dict(layout="1-1-1")),
            "vanilla 2": ("vanilla", dict(n_layer=2)),
            "vanilla 2, again": ("vanilla", dict(n_layer=2))}
    out = comparison.train_same_budget(runs, "99", quick=True, cache_dir=CACHE)
    assert list(out) == list(runs)
    steps = comparison.QUICK_SETTINGS["max_iters"]
    for label, run in out.items():
        assert run["result"]["iter"] == steps, label
        assert run["log"] == tmp_path / "99_run" / comparison.slug(label) / "log.jsonl"
        log = read_log(run["log"])
        assert [r["iter"] for r in log] == [0, 2, 4]          # eval_interval 2 of the quick settings
        assert run["sample"].startswith(comparison.PROMPT)
        assert len(run["sample"]) == len(comparison.PROMPT) + 30
        assert run["model"].config.block_size == comparison.QUICK_SETTINGS["block_size"]
    # the same model and settings twice: the same run (seeded data order and weights)
    a, b = out["vanilla 2"], out["vanilla 2, again"]
    assert a["result"]["val_loss"] == b["result"]["val_loss"]
    assert a["sample"] == b["sample"]
    # options not given keep the model's defaults
    from minims.models import build_model
    default = build_model("bottom-up", vocab_size=50, block_size=32, layout="1-1-1").config
    assert out["bottom-up 1-1-1"]["model"].config.pool == default.pool


def test_report_prints_each_run_the_baseline_the_curves_and_the_samples(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MINIMS_LESSONS_OUT", str(tmp_path))
    runs = comparison.train_same_budget({"vanilla 1": ("vanilla", dict(n_layer=1)),
                                         "retina 1": ("retina", dict(n_layer=1))}, "98", quick=True,
                                        cache_dir=CACHE)
    capsys.readouterr()
    unigram = comparison.report(runs, "98", title="two runs")
    printed = capsys.readouterr().out
    assert abs(unigram - __import__("math").log(runs["vanilla 1"]["result"]["unigram_ppl"])) < 1e-12
    for label, run in runs.items():
        assert re.search(rf"^{label} +[\d,]+ parameters  valid loss \d\.\d{{3}} -> "
                         rf"{run['result']['val_loss']:.3f} in 4 steps", printed, re.M), printed
        assert f"--- sample from {label} ---\n{run['sample']}" in printed
    assert f"unigram baseline: {unigram:.3f}" in printed
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return
    assert (tmp_path / "98_loss_curves.png").stat().st_size > 0


def test_a_rerun_replaces_the_earlier_run(tmp_path, monkeypatch):
    monkeypatch.setenv("MINIMS_LESSONS_OUT", str(tmp_path))
    runs = {"vanilla 1": ("vanilla", dict(n_layer=1))}
    first = comparison.train_same_budget(runs, "99", quick=True, cache_dir=CACHE)
    second = comparison.train_same_budget(runs, "99", quick=True, cache_dir=CACHE)
    assert second["vanilla 1"]["result"]["val_loss"] == first["vanilla 1"]["result"]["val_loss"]
    assert [r["iter"] for r in read_log(second["vanilla 1"]["log"])] == [0, 2, 4]


def test_an_option_the_model_does_not_take_is_a_usage_error(tmp_path, monkeypatch):
    monkeypatch.setenv("MINIMS_LESSONS_OUT", str(tmp_path))
    with pytest.raises(UsageError, match="window"):
        comparison.train_same_budget({"v": ("vanilla", dict(window=8))}, "99", quick=True, cache_dir=CACHE)


def test_slug():
    assert comparison.slug("top-down 2-2, window 32") == "top-down_2-2_window_32"
    assert comparison.slug("///") == "run"


@pytest.mark.parametrize("number, model", [("08", "top-down"), ("09", "bottom-up"), ("10", "retina")])
def test_lessons_08_to_10_compare_with_the_shared_baseline(number, model):
    text = next((ROOT / "lessons").glob(f"{number}_*.py")).read_text(encoding="utf-8")
    call = re.search(r"train_same_budget\(\{(.*?)\},\s*\"(\d\d)\"", text, re.S)
    assert call, f"lesson {number} should train with train_same_budget"
    assert call.group(2) == number
    assert f'("{model}"' in call.group(1) and '"vanilla 4": BASELINE' in call.group(1)
    assert "QUICK_SETTINGS if QUICK else SETTINGS" in text
