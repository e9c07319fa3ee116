"""The benchmark and experiment commands run end to end (smoke tests; nothing is timed here),
and the experiment machinery's parts: point identity, committed results, per-point learning
rates, convergence, the count baselines, the figures and the grids."""
import json
import math
import shutil

import numpy as np
import pytest

from minims import bench, experiment
from minims.experiment import convergence, grids, ngram, plots, tables
from tiny_runs import REPO


COMMITTED = REPO / "lessons" / "results"      # the committed results of every grid


def one_line(err, code, want=2):
    return code == want and err.count("\n") == 1 and "Traceback" not in err


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """One tokenized-corpus cache for the module (Austen is tokenized once)."""
    return str(tmp_path_factory.mktemp("cache"))


def quick(which, out, cache, *more):
    return [which, "--quick", "--out-dir", str(out), "--cache-dir", cache, *more]


@pytest.mark.parametrize("which", ["tradeoff", "ablate"])
def test_experiment_quick_writes_table_and_resumes(which, tmp_path, cache, capsys):
    out = tmp_path / which
    stem = experiment.EXPERIMENTS[which].name          # ablate -> ablation.md
    argv = quick(which, out, cache, "--max-iters", "3", "--seeds", "0,1")
    assert experiment.main(argv) == 0
    report = json.loads((out / "results" / f"{stem}.json").read_text())
    names = [r["name"] for r in report["rows"]]
    assert names == [p.name for p in experiment.QUICK_GRID]
    assert {r["model"] for r in report["rows"]} == {"vanilla", "top-down", "bottom-up", "retina"}
    # one result per point and seed, and the rows summarise them
    assert sorted((r["name"], r["seed"]) for r in report["results"]) == sorted(
        (n, s) for n in names for s in (0, 1))
    for row in report["rows"]:
        assert row["activation_bytes"] > row["body_activation_bytes"] > 0
        bpcs = [r["valid_bpc"] for r in report["results"] if r["name"] == row["name"]]
        assert row["valid_bpc"] == pytest.approx(sum(bpcs) / 2)
        assert row["valid_bpc_spread"] == pytest.approx(abs(bpcs[0] - bpcs[1]) / 2)
        assert 0 < row["valid_bpc"] < 10 and row["step_ms"] > 0
        assert (row["test_bpc"] is not None) == (which == "tradeoff")   # test only in the final table
        assert row["curve"]["steps"] == [0, 3] and row["convergence"]["text"]   # a learning curve
    table = (out / "results" / f"{stem}.md").read_text()
    assert all(f"| {n} |" in table for n in names)
    capsys.readouterr()
    # a finished point is never retrained
    assert experiment.main(argv) == 0
    assert capsys.readouterr().out.count("done before") == 2 * len(names)
    # --report-only tabulates what is committed and trains nothing
    shutil.rmtree(experiment.result_folder(out / "results", stem, names[0], 1))
    assert experiment.main(argv + ["--report-only"]) == 0
    printed = capsys.readouterr().out
    assert "] training" not in printed and f"not finished, left out of the tables: {names[0]} seed 1" in printed
    rows = json.loads((out / "results" / f"{stem}.json").read_text())["rows"]
    assert rows[0]["seeds"] == [0] and rows[1]["seeds"] == [0, 1]
    assert f"{names[0]} seed 1" in (out / "results" / f"{stem}.md").read_text()   # said missing
    # --time-steps replaces the trainer's timing by side-by-side medians
    assert experiment.main(argv + ["--report-only", "--time-steps", "2"]) == 0
    rows = json.loads((out / "results" / f"{stem}.json").read_text())["rows"]
    assert all(r["step_ms"] > 0 and r["step_ms_measured"] == "median of 2 interleaved steps" for r in rows)
    assert "side by side" in (out / "results" / f"{stem}.md").read_text()
    if which == "ablate":     # the plateau check is printed and written
        assert "check" in printed and "vanilla-2 beats vanilla-1" in printed


# ------------------------------------------------------------------ point identity (issue 26.7)

def test_a_point_trained_with_other_settings_is_refused_never_reused(tmp_path, cache, capsys):
    """(a) the same --out-dir with another --max-iters: the finished point was reused and the
    table described the new settings. Now one line, exit 2, naming what differs."""
    out, res = tmp_path / "out", tmp_path / "res"
    argv = quick("tradeoff", out, cache, "--only", "vanilla-1", "--seeds", "0", "--results-dir", str(res))
    assert experiment.main(argv + ["--max-iters", "2"]) == 0
    before = (res / "tradeoff.md").read_text()
    capsys.readouterr()
    code = experiment.main(argv + ["--max-iters", "3"])
    err = capsys.readouterr().err
    assert one_line(err, code) and "max_iters 2 (asked: 3)" in err and "lr_decay_iters 2 (asked: 3)" in err
    assert "vanilla-1" in err and "eval_interval 2 (asked: 3)" in err
    assert (res / "tradeoff.md").read_text() == before                     # nothing rewritten
    # the training folder alone (no committed result) is refused the same way
    code = experiment.main(quick("tradeoff", out, cache, "--only", "vanilla-1", "--seeds", "0",
                                 "--max-iters", "3", "--results-dir", str(tmp_path / "other")))
    err = capsys.readouterr().err
    assert one_line(err, code) and "max_iters 2 (asked: 3)" in err and str(out) in err
    # another text is another point, even under the same name
    text = tmp_path / "my.txt"
    text.write_text("".join(f"line {i} of my own text, not Austen.\n" for i in range(400)))
    code = experiment.main(argv + ["--max-iters", "2", "--data", str(text)])
    err = capsys.readouterr().err
    assert one_line(err, code) and "data austen (asked: " in err


def test_point_identity_covers_every_setting():
    point = grids.QUICK_GRID[2]
    data = experiment.identity.DataInfo("austen", "char", "s", "t" * 64, "i" * 20, 82, {}, {})
    base = experiment.point_settings(point, grids.QUICK_SETTINGS, 0, data)
    for key in ("data", "text_sha256", "ids_sha256", "tokenizer", "model", "model.layout", "model.pool_kind",
                "model.n_embd", "model.block_size", "model.dropout", "batch_size", "max_iters", "lr",
                "min_lr", "warmup_iters", "lr_decay_iters", "weight_decay", "grad_clip", "eval_interval",
                "eval_iters", "grad_accum", "seed"):
        assert key in base, key
    assert experiment.differences(base, dict(base)) == []
    for key, value in [("model.pool_kind", "mean"), ("weight_decay", 0.0), ("seed", 1), ("text_sha256", "x")]:
        diffs = experiment.differences({**base, key: value}, base)
        assert len(diffs) == 1 and diffs[0].startswith(f"{key} {value} (asked: {str(base[key])[:12]}")
    assert experiment.differences({**base, "min_lr": 2.0000000000000002e-4}, base) == []   # lr/10 rounding
    other = grids.Point("top-down-2-1", "top-down", {**point.options, "upsample_kind": "repeat"})
    assert experiment.differences(experiment.point_settings(other, grids.QUICK_SETTINGS, 0, data), base) == [
        "model.upsample_kind repeat (asked: linear)"]
    recorded = {k: v for k, v in base.items() if k != "text_sha256"}      # a trainer's folder
    assert experiment.differences(recorded, base) == []
    assert experiment.differences({**recorded, "extra": 1}, base) == ["extra 1 (asked: (not set))"]


def test_only_refuses_a_name_that_is_not_a_point(tmp_path, cache, capsys):
    """(b) one misspelt name among valid ones was dropped silently."""
    code = experiment.main(quick("tradeoff", tmp_path / "o", cache, "--only", "vanilla-1,vanila-2"))
    err = capsys.readouterr().err
    assert one_line(err, code) and "'vanila-2' is not a point" in err
    assert "vanilla-1, vanilla-2, top-down-2-1" in err                    # the valid names
    assert not (tmp_path / "o").exists()                                  # nothing trained
    names = ["vanilla-2", "bottom-up/upsample=linear,1-4-1", "bottom-up/upsample=linear,1-4-1,pool=linear"]
    assert experiment.only_names("bottom-up/upsample=linear,1-4-1,pool=linear,vanilla-2", names) == {
        "bottom-up/upsample=linear,1-4-1,pool=linear", "vanilla-2"}
    assert experiment.only_names("vanilla-2,bottom-up/upsample=linear,1-4-1", names) == {
        "vanilla-2", "bottom-up/upsample=linear,1-4-1"}
    with pytest.raises(experiment.cli.UsageError, match="'nope'"):
        experiment.only_names("nope,vanilla-2", names)


def test_the_note_describes_the_data_and_the_characters_actually_scored(tmp_path, cache):
    """(c) --data my.txt still said Austen books; (d) --quick said 'the whole valid and test
    books' while it scored 4,096 characters."""
    text = tmp_path / "my.txt"
    text.write_text("".join(f"{i} and {i * 7 % 13}: my own text.\n" for i in range(10000)))
    out = tmp_path / "mine"
    assert experiment.main(quick("tradeoff", out, cache, "--data", str(text), "--only", "vanilla-1",
                                 "--seeds", "0", "--max-iters", "2")) == 0
    note = (out / "results" / "tradeoff.md").read_text()
    assert "Austen" not in note and "Persuasion" not in note and str(text) in note
    assert "split 90/5/5 by position" in note
    assert "whole" not in note and "the first 4,096 characters of the valid split" in note
    assert "the first 4,096 characters of the test split" in note
    assert "2 AdamW steps" in note and "every 2 steps on 2 fixed batches" in note
    record = json.loads((out / "results" / "tradeoff.json").read_text())
    assert record["data"]["data"] == str(text.resolve()) and record["results"][0]["scored_tokens"]["valid"] == 4096


def test_the_note_says_whole_split_when_it_scores_all_of_it(cache):
    data = experiment.load_data("austen", cache)
    n = len(data.splits["valid"]) - 1
    rows = [{"seeds": [0, 1], "step_ms_measured": None}]
    results = [{"lr": 1e-3, "min_lr": 1e-4, "scored_tokens": {"valid": n, "test": None}}]
    text = tables.note(grids.TRADEOFF_SETTINGS, data.describe(), results, rows, {"unigram": 4.5}, [])
    assert f"the whole valid split ({n + 1:,} characters)" in text and "Northanger Abbey" in text
    assert f"{grids.TRADEOFF_MAX_ITERS} AdamW steps (lr 0.001 → 0.0001" in text


# ------------------------------------------------------- committed results, another machine

def test_committed_results_rebuild_every_table_without_checkpoints(tmp_path, cache, capsys):
    out, res = tmp_path / "out", tmp_path / "res"
    argv = quick("tradeoff", out, cache, "--only", "vanilla-1,top-down-2-1", "--max-iters", "3",
                 "--results-dir", str(res))
    assert experiment.main(argv) == 0
    folder = experiment.result_folder(res, "tradeoff", "top-down-2-1", 1)
    assert sorted(p.name for p in folder.iterdir()) == ["log.jsonl", "result.json"]
    recorded = json.loads((folder / "result.json").read_text())
    assert recorded["settings"]["model.layout"] == "2-1" and recorded["settings"]["seed"] == 1
    assert [r["iter"] for r in experiment.points.read_curve(folder / "log.jsonl")] == [0, 3]
    first = json.loads((res / "tradeoff.json").read_text())["rows"]
    # memory is measured again from the recorded config, never trusted from the file
    recorded["activation_bytes"] = 1
    (folder / "result.json").write_text(json.dumps(recorded))
    # another machine: a clone with the committed results and no checkpoints at all
    shutil.rmtree(out)
    other = tmp_path / "clone"
    shutil.copytree(res, other)
    capsys.readouterr()
    assert experiment.main(quick("tradeoff", tmp_path / "new-out", cache, "--only", "vanilla-1,top-down-2-1",
                                 "--max-iters", "3", "--results-dir", str(other))) == 0
    printed = capsys.readouterr().out
    assert printed.count("done before") == 4 and "] training" not in printed
    assert not (tmp_path / "new-out").exists()
    assert experiment.main(quick("tradeoff", tmp_path / "none", cache, "--max-iters", "3", "--results-dir",
                                 str(other), "--report-only", "--time-steps", "1")) == 0
    rows = json.loads((other / "tradeoff.json").read_text())["rows"]
    assert [r["activation_bytes"] for r in rows] == [r["activation_bytes"] for r in first]
    assert all(r["step_ms"] > 0 for r in rows)
    assert (other / "tradeoff.png").exists() == plots_available() == (other / "tradeoff-curves.png").exists()
    assert "vanilla-2 seed 0" in (other / "tradeoff.md").read_text()       # listed as not finished


def plots_available():
    import importlib.util
    return importlib.util.find_spec("matplotlib") is not None


def test_a_diverging_point_is_left_out_and_named_and_the_grid_goes_on(tmp_path, cache, capsys, monkeypatch):
    from minims.train import NonFiniteLoss
    real = experiment.cli.train_point

    def diverge_vanilla_1(point, *args, **kw):
        if point.name == "vanilla-1":
            raise NonFiniteLoss("loss is nan at step 2")
        return real(point, *args, **kw)
    monkeypatch.setattr(experiment.cli, "train_point", diverge_vanilla_1)
    out = tmp_path / "o"
    assert experiment.main(quick("tradeoff", out, cache, "--only", "vanilla-1,vanilla-2", "--seeds", "0",
                                 "--max-iters", "2")) == 0
    assert "[vanilla-1 seed 0] diverged, left out: loss is nan" in capsys.readouterr().out
    table = (out / "results" / "tradeoff.md").read_text()
    assert "vanilla-1 seed 0 (diverged)" in table and "| vanilla-2 |" in table and "| vanilla-1 |" not in table


def test_report_only_without_committed_points_is_one_line(tmp_path, cache, capsys):
    code = experiment.main(quick("lr", tmp_path / "o", cache, "--report-only"))
    err = capsys.readouterr().err
    assert one_line(err, code) and "no committed point" in err


def test_a_grid_as_defined_commits_to_lessons_results_and_a_changed_one_does_not(tmp_path):
    args = experiment.build_parser().parse_args(["lr", "--out-dir", str(tmp_path)])
    assert experiment.cli.results_dir(args) == experiment.cli.COMMITTED
    assert str(experiment.cli.COMMITTED).endswith("lessons/results")
    for more in (["--quick"], ["--max-iters", "5"], ["--data", "x.txt"]):
        args = experiment.build_parser().parse_args(["lr", "--out-dir", str(tmp_path), *more])
        assert experiment.cli.results_dir(args) == tmp_path / "results"


# --------------------------------------------------------- adopting a plain trainer's folder

def _train_flags(folder, cache, max_iters, **extra):
    """The flags of `python -m minims.train` that make the quick grid's vanilla-1, seed 0."""
    s = dict(grids.QUICK_SETTINGS, max_iters=max_iters, eval_interval=min(5, max_iters), **extra)
    flags = ["--out-dir", str(folder), "--cache-dir", cache, "--model", "vanilla", "--n-layer", "1",
             "--seed", "0"]
    for k, v in s.items():
        flags += ["--" + k.replace("_", "-"), str(v)]
    return flags


def test_a_plain_trainer_folder_is_adopted_resumed_or_scored(tmp_path, cache, capsys, monkeypatch):
    from minims import train
    out = tmp_path / "out"
    folder = experiment.point_folder(out, "vanilla-1", 0)
    argv = quick("tradeoff", out, cache, "--only", "vanilla-1", "--seeds", "0", "--max-iters", "6")
    # a partial run: stopped by Ctrl-C after its checkpoint at step 5
    from minims.train import loop
    from tiny_runs import ctrl_c_on_call
    with monkeypatch.context() as m:
        m.setattr(loop, "train_step", ctrl_c_on_call(loop.train_step, 6))   # the step from iter 5
        assert train.main(_train_flags(folder, cache, 6)) == 130
    partial = (folder / "log.jsonl").read_text().splitlines()
    assert [json.loads(r)["iter"] for r in partial] == [0, 5]
    capsys.readouterr()
    assert experiment.main(argv) == 0
    printed = capsys.readouterr().out
    assert "resuming the run in" in printed
    log = (folder / "log.jsonl").read_text().splitlines()
    assert log[:2] == partial and json.loads(log[2])["iter"] == 6          # continued, not restarted
    # a finished run is scored, not trained again: its log is untouched
    shutil.rmtree(tmp_path / "out" / "results")
    assert experiment.main(argv) == 0
    assert (folder / "log.jsonl").read_text().splitlines() == log
    # the same flags straight through give the same folder the runner would make
    straight = tmp_path / "straight"
    assert train.main(_train_flags(experiment.point_folder(straight, "vanilla-1", 0), cache, 6)) == 0
    capsys.readouterr()
    assert experiment.main(quick("tradeoff", straight, cache, "--only", "vanilla-1", "--seeds", "0",
                                 "--max-iters", "6")) == 0
    a = json.loads((out / "results" / "tradeoff.json").read_text())["results"][0]
    b = json.loads((straight / "results" / "tradeoff.json").read_text())["results"][0]
    assert a["valid_bpc"] == pytest.approx(b["valid_bpc"], rel=1e-6)     # resume is exact
    # a folder trained with another learning rate is refused, not adopted
    other = tmp_path / "other"
    assert train.main(_train_flags(experiment.point_folder(other, "vanilla-1", 0), cache, 6, lr=3e-3)) == 0
    capsys.readouterr()
    code = experiment.main(quick("tradeoff", other, cache, "--only", "vanilla-1", "--seeds", "0",
                                 "--max-iters", "6"))
    err = capsys.readouterr().err
    assert one_line(err, code) and "lr 0.003 (asked: 0.002)" in err


# The flags the sweep's runs were first started with, by hand with `python -m minims.train`, one
# per model; the lr sweep's points must be exactly these runs (so the runner adopts them).
LR_JOBS = {
    "vanilla-4": "--model vanilla --n-layer 4",
    "vanilla-8": "--model vanilla --n-layer 8",
    "top-down-6-2": "--model top-down --layout 6-2 --pool 4 --pool-kind linear --upsample-kind linear "
                    "--causal-mode shift --window 0",
    "bottom-up-1-6-1": "--model bottom-up --layout 1-6-1 --pool 4 --pool-kind linear --upsample-kind linear "
                       "--combine upsample --causal-mode shift --window 0",
    "retina-8": "--model retina --n-layer 8 --pool 4 --n-scales 2 --window 32 --band 2 --pool-kind linear",
    "top-down-12-4": "--model top-down --layout 12-4 --pool 4 --pool-kind linear --upsample-kind linear "
                     "--causal-mode shift --window 0",
    "bottom-up-2-12-2": "--model bottom-up --layout 2-12-2 --pool 4 --pool-kind linear --upsample-kind linear "
                        "--combine upsample --causal-mode shift --window 0",
    "retina-16": "--model retina --n-layer 16 --pool 4 --n-scales 2 --window 32 --band 2 --pool-kind linear",
}
LR_COMMON = ("--data austen --tokenizer char --block-size 512 --batch-size 4 --n-embd 64 --n-head 4 "
             "--warmup-iters 100 --eval-interval 250 --eval-iters 8 --seed 0")


def test_the_lr_sweep_is_exactly_the_trainer_runs_of_its_jobs(cache):
    from dataclasses import asdict
    from minims.train.flags import model_config, parse_args
    data = experiment.load_data("austen", cache)
    points = {p.name: p for p in experiment.LR_GRID}
    assert len(points) == 3 * len(LR_JOBS) + sum(map(len, grids.EXTRA_LR_VALUES.values())) \
        - sum(map(len, grids.SKIPPED_LR_VALUES.values()))
    for model, flags in LR_JOBS.items():
        for lr in grids.lr_values(model):
            min_lr = f"{float(lr) / 10:.1e}"
            point = points.pop(f"{model}/lr={lr}")
            assert point.seeds == (0,) and point.group == model
            args = parse_args(f"{LR_COMMON} {flags} --max-iters 3000 --lr {lr} --min-lr {min_lr}".split())
            args.lr_decay_iters = args.max_iters                 # what the trainer stores
            config = asdict(model_config(args, data.vocab_size))
            theirs = experiment.identity._flat("austen", "char", args.model, config, vars(args), 0,
                                               {"ids_sha256": data.ids_sha256})
            assert experiment.differences(theirs, experiment.point_settings(
                point, experiment.LR_SETTINGS, 0, data)) == [], (model, lr)
            # and its folder is where the coordinator trains it
            assert experiment.point_folder("out/lr", point.name, 0).parts[-2:] == (
                f"{model}__lr={lr}", "seed-0")
    assert not points


def test_per_point_learning_rates_reach_the_trainer_and_the_table(tmp_path, cache):
    out = tmp_path / "lr"
    assert experiment.main(quick("lr", out, cache, "--max-iters", "2")) == 0
    report = json.loads((out / "results" / "lr.json").read_text())
    by_name = {r["name"]: r for r in report["results"]}
    assert sorted(by_name) == sorted(p.name for p in grids.QUICK_LR_GRID)
    for point in grids.QUICK_LR_GRID:
        config = json.loads((experiment.point_folder(out, point.name, 0) / "config.json").read_text())
        assert config["args"]["lr"] == point.lr and config["args"]["min_lr"] == pytest.approx(point.lr / 10)
        assert by_name[point.name]["lr"] == point.lr
    table = (out / "results" / "lr.md").read_text()
    assert "valid bpc, lr 0.002 | valid bpc, lr 0.004" in table and "| pick |" in table
    assert "the lr of each row (column lr) → lr/10" in table
    picks = report["lr_picks"]
    for group in ("vanilla-1", "top-down-2-1"):
        best = min((r for r in report["results"] if r["group"] == group), key=lambda r: r["valid_bpc"])
        assert picks[group] == best["lr"]
    assert grids.Point("x", "vanilla", lr=1e-2).training({"lr": 1, "min_lr": 1})["min_lr"] == pytest.approx(1e-3)
    assert grids.Point("x", "vanilla", lr=1e-2, min_lr=0.0).training({"lr": 1, "min_lr": 1})["min_lr"] == 0.0


# ---------------------------------------------------------------------------- convergence

def _curve(values, every=250):
    return [i * every for i in range(len(values))], list(values)


def test_convergence_of_a_point():
    # improvement from step 250 (the first evaluation after warmup 100): 3.0 - 2.0 = 1.0
    steps, values = _curve([4.4, 3.0, 2.6, 2.3, 2.15, 2.09, 2.05, 2.02, 2.01, 2.00, 2.0, 2.0, 2.0])
    test = convergence.point_test(steps, values, 3000, 100)
    # the last 20 % of 3000 steps: from step 2400 (at or before 0.8 · 3000) -> 2.0: gain 0
    assert test["passed"] and test["from_step"] == 2250 and test["start_step"] == 250
    assert test["improvement"] == pytest.approx(1.0) and "passed" in test["text"]
    still_falling = [4.4, 3.0, 2.9, 2.8, 2.7, 2.6, 2.5, 2.4, 2.3, 2.2, 2.1, 2.0, 1.9]
    test = convergence.point_test(*_curve(still_falling), 3000, 100)
    assert test["passed"] is False and test["gain"] == pytest.approx(2.2 - 1.9)
    assert "FAILED" in test["text"] and "27%" in test["text"]
    # a gain of 1/16 of the improvement passes, 1/8 fails (the limit is 1/10)
    inside = [4.0, 3.0, 2.5, 2.2, 2.1, 2.1, 2.1, 2.1, 2.1, 2.0625, 2.0, 2.0, 2.0]
    assert convergence.point_test(*_curve(inside), 3000, 100)["passed"]
    over = inside[:9] + [2.125, 2.0, 2.0, 2.0]
    assert convergence.point_test(*_curve(over), 3000, 100)["passed"] is False
    assert convergence.point_test(*_curve([4, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3]), 3000, 100)["passed"] is False
    assert convergence.point_test(*_curve([4.0, 3.0]), 3000, 100)["passed"] is None       # not finished
    assert convergence.point_test([0, 3], [4.0, 3.0], 3, 1)["passed"] is None                # too short


def test_convergence_of_a_pair():
    steps = list(range(0, 3001, 250))
    point = {"steps": steps, "values": [3.0 - 0.001 * s / 250 for s in steps], "final_spread": 0.01, "seeds": 3}
    ref = {"steps": steps, "values": [3.1 - 0.001 * s / 250 for s in steps], "final_spread": 0.01, "seeds": 3}
    test = convergence.pair_test(point, ref, 3000, 100)
    assert test["passed"] and test["change"] == pytest.approx(0.0, abs=1e-12) and test["spread"] == 0.02
    moving = dict(ref, values=[3.1 - 0.02 * s / 250 for s in steps])     # the gap shrinks 0.019/eval
    test = convergence.pair_test(point, moving, 3000, 100)
    assert test["passed"] is False and test["change"] == pytest.approx(0.019 * 3) and "FAILED" in test["text"]
    assert convergence.pair_test(point, dict(ref, seeds=1), 3000, 100)["passed"] is None


def test_summarise_runs_the_tests_on_the_mean_curve_over_seeds():
    def result(name, seed, model, values):
        return {"name": name, "seed": seed, "model": model, "options": {}, "config": {"n_layer": 2},
                "layers": 2, "params": 1, "lr": 1e-3, "min_lr": 1e-4, "max_iters": 3000,
                "activation_bytes": 1, "body_activation_bytes": 1, "valid_bpc": values[-1],
                "test_bpc": None, "step_ms": 1.0, "settings": {"warmup_iters": 100},
                "curve": [{"iter": 250 * i, "val_loss": v * math.log(2)} for i, v in enumerate(values)]}
    flat = [4.0, 3.0, 2.5, 2.2, 2.1, 2.05, 2.02, 2.01, 2.0, 2.0, 2.0, 2.0, 2.0]
    results = [result("v", 0, "vanilla", flat), result("v", 1, "vanilla", [x + 0.02 for x in flat]),
               result("h", 0, "top-down", [x - 0.1 for x in flat]), result("h", 1, "top-down", [x - 0.12 for x in flat])]
    grid = [grids.Point("v", "vanilla"), grids.Point("h", "top-down", reference="v")]
    rows = tables.summarise(results, grid)
    assert rows[0]["curve"]["valid_bpc"][-1] == pytest.approx(2.01) and rows[0]["final_spread"] == pytest.approx(0.01)
    assert rows[0]["convergence"]["passed"] and rows[1]["pair"]["passed"]
    assert "pair passed" in tables.tradeoff_table(rows)


def test_the_vanilla_depth_check():
    def row(name, layers, bpc, spread, seeds=(0, 1)):
        return {"name": name, "model": "vanilla", "layers": layers, "valid_bpc": bpc,
                "valid_bpc_spread": spread, "seeds": list(seeds)}
    passed, text = tables.vanilla_depth_check([row("vanilla-2", 2, 3.5, 0.01), row("vanilla-4", 4, 3.3, 0.02)])
    assert passed and "vanilla-4 beats vanilla-2 by +0.200" in text
    passed, text = tables.vanilla_depth_check([row("vanilla-2", 2, 3.50, 0.01), row("vanilla-4", 4, 3.49, 0.02)])
    assert passed is False and "FAILED" in text and "plateau" in text
    assert tables.vanilla_depth_check([row("a", 2, 3.5, 0, (0,)), row("b", 4, 3.0, 0, (0,))])[0] is None



def test_an_ablation_row_is_called_clear_only_beyond_the_seed_spreads():
    def row(bpc, spread, seeds, model="top-down"):
        return {"valid_bpc": bpc, "valid_bpc_spread": spread, "seeds": list(seeds), "model": model}
    defaults = row(2.50, 0.010, (0, 1))
    # one seed: the row is given its defaults row's spread, so a difference must clear twice it
    assert tables.versus_defaults(row(2.45, 0.0, (0,)), defaults) == "-0.050 (clear ±0.020)"
    assert tables.versus_defaults(row(2.515, 0.0, (0,)), defaults) == "+0.015 (within the seed spread ±0.020)"
    assert tables.versus_defaults(row(2.535, 0.02, (0, 1)), defaults) == "+0.035 (clear ±0.030)"
    # two seeds that agree by chance are given the floor, not a zero spread
    assert tables.versus_defaults(row(2.515, 0.0, (0,)), row(2.5, 0.0, (0, 1)), 0.01) == \
        "+0.015 (within the seed spread ±0.020)"
    assert tables.versus_defaults(row(2.525, 0.0, (0,)), row(2.5, 0.0, (0, 1)), 0.01) == "+0.025 (clear ±0.020)"
    assert tables.versus_defaults(row(2.45, 0.0, (0,)), row(2.5, 0.0, (0,))) == "-0.050 (one seed)"
    rows = [row(2.5, 0.03, (0, 1), "vanilla"), row(2.4, 0.01, (0, 1)), row(2.3, 0.02, (0, 1), "bottom-up"),
            row(2.2, 0.5, (0,))]
    assert tables.seed_spread_floor(rows) == pytest.approx(0.015)   # vanilla and one-seed rows do not count
    assert tables.seed_spread_floor([]) == 0.0


# ------------------------------------------------------------------------ count baselines

def _witten_bell_by_hand(train, ev, V, order):
    """The module docstring's formulas with dictionaries, one token at a time."""
    from collections import Counter
    counts = [None] + [Counter(tuple(train[i:i + n]) for i in range(len(train) - n + 1))
                       for n in range(1, order + 1)]

    def p(history, w):
        if not history:
            return (counts[1][(w,)] + 1) / (len(train) + V)
        n = len(history) + 1
        lower = p(history[1:], w)
        c_h = sum(c for g, c in counts[n].items() if g[:-1] == history)
        u_h = sum(1 for g in counts[n] if g[:-1] == history)
        return lower if c_h == 0 else (counts[n][history + (w,)] + u_h * lower) / (c_h + u_h)
    return p, [math.log(p(tuple(ev[max(0, i - order + 1):i]), ev[i])) for i in range(len(ev))]


def test_ngram_baselines_match_the_formulas_and_sum_to_one():
    rng = np.random.default_rng(0)
    V = 5
    train = list(rng.integers(0, V, 300)) + [4, 4, 4]
    ev = list(rng.integers(0, V, 60)) + [3, 3, 3, 3]
    for order in (1, 2, 3):
        p, by_hand = _witten_bell_by_hand(train, ev, V, order)
        assert np.allclose(ngram.log_probs(train, ev, V, order), by_hand, rtol=1e-12)
        for history in [(), (0,), (4, 4), (1, 2)][:order]:
            assert sum(p(history, w) for w in range(V)) == pytest.approx(1.0, rel=1e-12)
    from minims.data import unigram_ppl
    bpc = ngram.ngram_bpc(train, ev, V)
    assert bpc[1] == pytest.approx(math.log2(unigram_ppl(np.array(train), np.array(ev), V)))
    with pytest.raises(ValueError):
        ngram.log_probs([0, 9], [0], 5, 2)


def test_ngram_baselines_of_austen_fall_with_the_order(cache):
    data = experiment.load_data("austen", cache)
    bpc = ngram.ngram_bpc(data.splits["train"], data.splits["valid"][:50001], data.vocab_size)
    assert 4.0 < bpc[1] < 5.0 and bpc[3] < bpc[2] < bpc[1] and bpc[3] > 2.0


# --------------------------------------------------------------------------------- figures

def test_a_family_is_joined_only_where_its_line_never_doubles_back():
    rows = [{"layers": 4, "m": 60.0}, {"layers": 8, "m": 93.0}, {"layers": 16, "m": 120.0}]
    assert plots.family_line(rows, "m")
    rows[1]["m"] = 130.0                          # the 8-layer point holds more than the 16-layer one
    assert not plots.family_line(rows, "m")
    assert not plots.family_line(rows[:1], "m")


def test_figures_draw_labels_baselines_and_curves(tmp_path):
    pytest.importorskip("matplotlib")
    rows = []
    for name, model, layout, layers, mem in [("vanilla-4", "vanilla", "", 4, 79e6), ("top-down-6-2", "top-down", "6-2", 8, 61e6)]:
        config = {"n_layer": layers, **({"layout": layout} if layout else {})}
        rows.append({"name": name, "model": model, "layers": layers, "label": grids.layout_label(model, config),
                     "activation_bytes": mem, "step_ms": 90.0, "valid_bpc": 2.2, "valid_bpc_spread": 0.01,
                     "curve": {"steps": [0, 250, 500], "valid_bpc": [4.4, 3.0, 2.2], "spread": [0, 0.01, 0.01]}})
    assert [r["label"] for r in rows] == ["vanilla 4L", "top-down 6-2"]
    base = {"unigram": 4.5, "bigram": 3.5}
    assert plots.tradeoff_plot(rows, tmp_path / "t.png", base).exists()
    assert plots.curves_plot(rows, tmp_path / "c.png", base).exists()


# ----------------------------------------------------------------------------------- grids

def test_grids_spell_out_every_option_and_mark_one_default_per_model():
    from minims.models import MODELS, build_model
    from minims.train.flags import BASE_FIELDS
    import dataclasses
    for grid in (grids.ABLATE_GRID, grids.TRADEOFF_GRID, grids.LR_GRID, grids.QUICK_GRID):
        for point in grid:
            build_model(point.model, vocab_size=5, block_size=256, **point.options)     # every row is valid
            own = {f.name for f in dataclasses.fields(MODELS[point.model].Config)} - set(BASE_FIELDS)
            decided = {"n_scales"} if "layout" in point.options else {"layout"}
            assert own - decided <= set(point.options), (point.name, own - set(point.options))
    families = {}
    for point in grids.ABLATE_GRID:
        if point.model != "vanilla":
            layers = build_model(point.model, vocab_size=5, block_size=256, **point.options).config.n_layer
            families.setdefault(point.model, []).append(
                experiment.matches_defaults(point.model, point.options, layers))
    assert set(families) == {"top-down", "bottom-up", "retina"}
    assert all(sum(flags) == 1 for flags in families.values()), families
    for grid in (grids.ABLATE_GRID, grids.TRADEOFF_GRID, grids.LR_GRID, grids.QUICK_GRID, grids.QUICK_LR_GRID):
        names = [p.name for p in grid]
        assert len(set(names)) == len(names)


def test_the_ablation_has_hourglass_attention_rows_each_one_change_from_its_base():
    from minims.models import build_model
    rows = {p.name: p for p in grids.ABLATE_GRID}
    changes = {    # row: (its base row, the options it changes)
        "top-down/pool=attention": ("top-down/upsample=linear", {"pool_kind": "attention"}),
        "top-down/upsample=attention": ("top-down/upsample=linear", {"upsample_kind": "attention"}),
        "top-down/causal=delay,pool=linear": ("top-down/pool=linear", {"causal_mode": "delay"}),
        "bottom-up/pool=attention": ("bottom-up/aggregate,0-4-2", {"pool_kind": "attention"}),
        "bottom-up/upsample=attention,1-4-1": ("bottom-up/upsample=linear,1-4-1",
                                               {"upsample_kind": "attention"}),
        "bottom-up/upsample=linear,1-4-1,pool=attention": ("bottom-up/upsample=linear,1-4-1",
                                                           {"pool_kind": "attention"}),
    }
    for name, (base, changed) in changes.items():
        point = rows[name]
        assert point.options == {**rows[base].options, **changed}, name
        config = build_model(point.model, vocab_size=5, block_size=256, **point.options).config
        assert all(getattr(config, k) == v for k, v in changed.items())
    assert experiment.only_names("bottom-up/upsample=attention,1-4-1,top-down/pool=attention", list(rows)) == {
        "bottom-up/upsample=attention,1-4-1", "top-down/pool=attention"}


def test_the_tradeoff_grid():
    from minims.models import build_model
    grid = {p.name: p for p in grids.TRADEOFF_GRID}
    assert list(grid) == ["vanilla-2", "vanilla-4", "vanilla-8", "top-down-2-2", "top-down-6-2", "top-down-12-4",
                          "bottom-up-1-2-1", "bottom-up-1-6-1", "bottom-up-2-12-2", "retina-4", "retina-8",
                          "retina-16"]
    for p in grid.values():
        layers = build_model(p.model, vocab_size=5, block_size=512, **p.options).config.n_layer
        if p.model == "vanilla":
            assert p.reference is None
        else:      # each hierarchical point against the vanilla model of half its layers
            assert p.reference == f"vanilla-{layers // 2}"
        headline = p.name in ("vanilla-4", "top-down-6-2", "bottom-up-1-6-1")
        assert p.seeds == ((0, 1, 2) if headline else (0, 1))
        assert p.lr == grids.TRADEOFF_LR_BY_POINT.get(p.name, grids.TRADEOFF_LR[p.model])
        assert p.training(grids.TRADEOFF_SETTINGS)["min_lr"] == pytest.approx(p.lr / 10)
    # a point's own rate only where the sweep at its depth picked it (lr.md, committed)
    picks = json.loads((COMMITTED / "lr.json").read_text())["lr_picks"]
    for name, lr in grids.TRADEOFF_LR_BY_POINT.items():
        assert picks[name] == lr != grids.TRADEOFF_LR[grid[name].model], name
    s = grids.TRADEOFF_SETTINGS
    assert s["max_iters"] == grids.TRADEOFF_MAX_ITERS
    assert (s["eval_interval"], s["eval_iters"], s["warmup_iters"]) == (250, 8, 100)
    assert {k: s[k] for k in ("eval_interval", "eval_iters", "warmup_iters", "block_size", "batch_size")} == {
        k: grids.LR_SETTINGS[k] for k in ("eval_interval", "eval_iters", "warmup_iters", "block_size", "batch_size")}


def test_experiment_rejects_bad_input(tmp_path):
    assert experiment.main(["tradeoff", "--quick", "--out-dir", str(tmp_path), "--only", "nope"]) == 2
    assert experiment.main(["ablate", "--quick", "--out-dir", str(tmp_path), "--seeds", "x"]) == 2
    assert experiment.main(["ablate", "--quick", "--out-dir", str(tmp_path), "--max-iters", "0"]) == 2
    assert experiment.main(["lr", "--quick", "--out-dir", str(tmp_path), "--time-steps", "-1"]) == 2


def test_split_loss_scores_every_token_once():
    from minims.models import build_model
    model = build_model("vanilla", vocab_size=7, block_size=8, n_layer=1, n_embd=8, n_head=2,
                        dtype="float64")
    ids = np.random.default_rng(0).integers(0, 7, size=30)
    whole = experiment.split_loss(model, ids, block_size=8, batch_size=2)
    # the same by hand: windows [0,8), [8,16), [16,24), [24,29)
    total = 0.0
    for s in range(0, 29, 8):
        e = min(s + 8, 29)
        _, loss = model(ids[None, s:e], ids[None, s + 1:e + 1])
        total += loss.item() * (e - s)
    assert whole == pytest.approx(total / 29, rel=1e-12)


@pytest.mark.parametrize("case", ["engine", "model", "speed", "memory", "attention"])
def test_bench_cases_print_their_tables(case, capsys):
    argv = [case, "--repeat", "1", "--warmup", "0", "--n-layer", "4", "--n-embd", "16",
            "--n-head", "2", "--block-size", "32", "--batch-size", "2", "--vocab-size", "11",
            "--max-t", "512", "--json"]
    assert bench.main(argv) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["case"] == case and report["rows"]
    env = report["environment"]
    assert env["blas_threads"] is None or env["blas_threads"] >= 1
    assert env["backend"] == "numpy" and "blas" in env
    if case == "memory":
        exps = {r["model"]: r["saved_bytes"] for r in report["rows"] if r["T"] == "exponent"}
        assert set(exps) == {"vanilla", "top-down", "bottom-up", "retina"}
    if case == "attention":  # every band size at every T up to --max-t
        assert [r["T"] for r in report["rows"]] == [128, 256, 512]
        assert all(r[size] > 0 for r in report["rows"] for size in ("16", "32", "64", "128", "none"))
    if case in ("engine", "model"):  # the floor: the step's matrix products, timed alone
        rows = {r["impl"]: r for r in report["rows"]}
        assert rows["GEMM floor"]["median_ms"] > 0 and rows["GEMM GFLOP"]["value"] > 0
        assert rows["minims/floor"]["value"] == pytest.approx(
            rows["minims"]["median_ms"] / rows["GEMM floor"]["median_ms"])


def test_step_matrix_products_count_the_flops_of_a_step():
    """The floor's products, counted independently: each Linear does 3 products of 2·N·in·out
    flops (forward, dx, dW), i.e. 6·N·(its weights); attention's six products per band of s
    queries with b keys each cost 2·s·b·hs per head and sequence."""
    from minims import functional as F
    from minims.models import build_model
    B, T, C, nh, V, L = 2, 96, 16, 2, 11, 3
    model = build_model("vanilla", V, T, n_layer=L, n_embd=C, n_head=nh)
    _, flops = bench.step_matrix_products(model, B, T)
    linear_weights = L * (C * 3 * C + C * C + C * 4 * C + 4 * C * C) + C * V
    s = F.ATTENTION_BAND_SIZE
    keys = sum(s * b for b in range(s, T + 1, s))     # Σ over bands of (queries × keys)
    attention = L * 6 * 2 * B * nh * keys * (C // nh)
    assert flops == 6 * B * T * linear_weights + attention


def test_bench_in_separate_processes(capsys):
    argv = ["model", "--processes", "1", "--repeat", "1", "--warmup", "0", "--n-layer", "1",
            "--n-embd", "8", "--n-head", "2", "--block-size", "16", "--batch-size", "1",
            "--vocab-size", "7", "--json"]
    assert bench.main(argv) == 0
    rows = {r["impl"]: r for r in json.loads(capsys.readouterr().out)["rows"]}
    assert rows["minims"]["median_ms"] > 0 and rows["GEMM floor"]["median_ms"] > 0


def test_bench_refuses_cupy_without_cuda(capsys):
    try:
        import cupy  # noqa: F401
        pytest.skip("CuPy is installed; the error path cannot be reached")
    except ImportError:
        pass
    assert bench.main(["engine", "--backend", "cupy"]) == 2
    assert "pip install" in capsys.readouterr().err


def _baseline_lines(fig, name):
    return [[line for line in ax.get_lines() if line.get_gid() == f"baseline:{name}"] for ax in fig.axes]


def test_both_figures_draw_the_baselines_given_and_no_others():
    pytest.importorskip("matplotlib")          # an optional extra ('.[plot]'; '.[test]' has it)
    rows = [dict(name=f"vanilla-{n}", model="vanilla", layers=n, label=f"vanilla {n}L",
                 activation_bytes=n * 1e6, step_ms=5.0 * n, valid_bpc=5.5 + n / 10, valid_bpc_spread=0.1,
                 curve={"steps": [0, 5], "valid_bpc": [6.0, 5.5 + n / 10], "spread": [0.0, 0.1]})
            for n in (1, 2)]
    for draw in (plots.tradeoff_figure, plots.curves_figure):
        fig = draw(rows, {"unigram": 4.44})
        for lines in _baseline_lines(fig, "unigram"):  # memory and step time (steps and time): both panels
            assert len(lines) == 1 and set(lines[0].get_ydata()) == {4.44}
            assert lines[0].get_linestyle() == ":"
        labels = [t.get_text() for ax in fig.axes for t in ax.texts]
        assert labels.count("unigram 4.44") == 2
        legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
        assert not [t for t in legend if "unigram" in t]          # named on the line, not in the legend
        assert _baseline_lines(draw(rows), "unigram") == [[], []]
    assert experiment.tradeoff_plot is plots.tradeoff_plot and experiment.tradeoff_figure is plots.tradeoff_figure


@pytest.mark.parametrize("flag", ["--out-dir", "--results-dir", "--cache-dir"])
@pytest.mark.parametrize("where", ["empty", "a file", "under a file"])
def test_a_bad_folder_flag_is_refused_before_anything_trains(tmp_path, capsys, flag, where):
    afile = tmp_path / "afile"
    afile.write_text("x")
    value = {"empty": "", "a file": str(afile), "under a file": str(afile / "sub")}[where]
    argv = ["tradeoff", "--quick", "--out-dir", str(tmp_path / "out"), "--cache-dir", str(tmp_path / "cache"),
            flag, value]
    assert experiment.main(argv) == 2
    out, err = capsys.readouterr()
    assert len(err.strip().splitlines()) == 1 and flag in err and "training" not in out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]          # nothing made


def test_tradeoff_figure_crops_to_its_points_and_names_the_baselines_above():
    pytest.importorskip("matplotlib")
    rows = [dict(name=f"p{i}", model="vanilla", layers=i, label=f"p{i}", activation_bytes=1e6 * i,
                 step_ms=float(i), valid_bpc=2.0 + 0.1 * i, valid_bpc_spread=0.01) for i in (1, 2)]
    fig = plots.tradeoff_figure(rows, {"unigram": 4.44, "bigram": 3.52, "trigram": 2.1})
    for ax in fig.axes:
        lo, hi = ax.get_ylim()
        assert lo < 2.09 and 2.21 < hi < 3.0           # the trigram (inside) in view, bigram not
        texts = [t.get_text() for t in ax.texts]
        assert "trigram 2.10" in texts and "above: bigram 3.52, unigram 4.44" in texts


def test_tradeoff_labels_of_close_points_do_not_overlap():
    pytest.importorskip("matplotlib")
    # four points within 0.01 bpc and 1 MB of each other: all four labels placed at (4, 4) overlap
    rows = [dict(name=f"model-{i}", model=m, layers=2, label=f"{m} 1-6-1", activation_bytes=60e6 + 2e5 * i,
                 step_ms=95.0 + i, valid_bpc=2.03 + 0.003 * i, valid_bpc_spread=0.0)
            for i, m in enumerate(("vanilla", "top-down", "bottom-up", "retina"))]
    rows.append(dict(name="far", model="vanilla", layers=4, label="vanilla 4L", activation_bytes=120e6,
                     step_ms=200.0, valid_bpc=2.3, valid_bpc_spread=0.0))
    fig = plots.tradeoff_figure(rows)
    renderer = fig.canvas.get_renderer()
    for ax in fig.axes:
        boxes = [t.get_window_extent(renderer) for t in ax.texts if t.get_text() in {r["label"] for r in rows}]
        assert len(boxes) == len(rows)
        assert not [(a, b) for i, a in enumerate(boxes) for b in boxes[i + 1:] if a.overlaps(b)]


def test_threads_reach_each_points_trainer(tmp_path, cache, monkeypatch):
    from minims import threads
    asked, real = [], threads.apply_threads
    before = threads.blas_threads()

    def spy(setting, *args, **kwargs):
        asked.append(setting)
        return real(setting, *args, **kwargs)
    monkeypatch.setattr(threads, "apply_threads", spy)
    try:
        assert experiment.main(quick("tradeoff", tmp_path, cache, "--only", "vanilla-1", "--seeds", "0",
                                     "--max-iters", "2", "--threads", "1")) == 0
    finally:
        if before is not None:
            threads.set_blas_threads(before)
    assert asked == [1]
    assert "--threads N|auto" in experiment.build_parser().format_help()


def test_report_only_keeps_the_side_by_side_step_times_it_is_not_asked_to_redo(tmp_path, cache):
    """A plain --report-only must not replace step times measured side by side (--time-steps)
    with the trainer's rough ones; a report over another set of points keeps none."""
    out = tmp_path / "t"
    base = quick("tradeoff", out, cache, "--max-iters", "2", "--seeds", "0",
                 "--only", "vanilla-1,top-down-2-1")
    assert experiment.main(base) == 0
    assert experiment.main(base + ["--report-only", "--time-steps", "1"]) == 0
    timed = {r["name"]: r for r in json.loads((out / "results" / "tradeoff.json").read_text())["rows"]}
    assert all(r.get("step_ms_measured") for r in timed.values())
    assert experiment.main(base + ["--report-only"]) == 0
    kept = {r["name"]: r for r in json.loads((out / "results" / "tradeoff.json").read_text())["rows"]}
    assert {n: (r["step_ms"], r["step_ms_measured"]) for n, r in kept.items()} == \
           {n: (r["step_ms"], r["step_ms_measured"]) for n, r in timed.items()}
    # one more point: the old side-by-side set no longer covers the table, so none is kept
    assert experiment.main(quick("tradeoff", out, cache, "--max-iters", "2", "--seeds", "0",
                                 "--only", "vanilla-2")) == 0
    rows = json.loads((out / "results" / "tradeoff.json").read_text())["rows"]
    assert len(rows) == 3 and not any(r.get("step_ms_measured") for r in rows)


def test_every_learning_curve_looks_different_and_keeps_its_familys_hue():
    pytest.importorskip("matplotlib")
    # twelve curves: the default colour cycle repeats after ten (vanilla-2 and retina-8 were both blue)
    rows = [dict(name=f"{m}-{n}", model=m, layers=n) for m in ("vanilla", "top-down", "bottom-up", "retina")
            for n in (2, 4, 8)]
    styles = plots.curve_styles(rows)
    assert len(set((tuple(c), ls) for c, ls in styles)) == len(rows)
    for (c, _), r in zip(styles, rows):
        red, green, blue = c[:3]
        hue = {"vanilla": blue > red, "top-down": red > blue and green < red, "bottom-up": green > red,
               "retina": red > green and red > blue}
        assert hue[r["model"]], (r["name"], c)


@pytest.mark.parametrize("name", ["tradeoff", "lr", "ablation"])
def test_the_committed_tables_are_what_report_only_makes_of_the_committed_points(name, tmp_path, cache, capsys):
    # the tables under lessons/results must be rebuilt exactly from its points by today's code:
    # a change to the tables' code without a rerun of --report-only (or a hand edit) fails here
    committed = COMMITTED
    res = tmp_path / "res"
    shutil.copytree(committed / name, res / name)
    for suffix in (".md", ".json"):
        shutil.copy(committed / f"{name}{suffix}", res)
    command = {"ablation": "ablate"}.get(name, name)
    assert experiment.main([command, "--report-only", "--results-dir", str(res), "--cache-dir", cache]) == 0
    capsys.readouterr()
    for suffix in (".md", ".json"):
        assert (res / f"{name}{suffix}").read_text() == (committed / f"{name}{suffix}").read_text(), suffix
