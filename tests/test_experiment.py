"""The benchmark and experiment commands run end to end (smoke tests; nothing is timed here)."""
import json

import pytest

from minims import bench, experiment


@pytest.mark.parametrize("which", ["tradeoff", "ablate"])
def test_experiment_quick_writes_table_and_resumes(which, tmp_path, capsys):
    out = tmp_path / which
    argv = [which, "--quick", "--out-dir", str(out), "--max-iters", "3", "--seeds", "0,1",
            "--cache-dir", str(tmp_path / "cache")]
    assert experiment.main(argv) == 0
    report = json.loads((out / "results.json").read_text())
    names = [r["name"] for r in report["rows"]]
    assert names == [g[0] for g in experiment.QUICK_GRID]
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
    table = (out / "results.md").read_text()
    assert all(f"| {n} |" in table for n in names)
    capsys.readouterr()
    # a finished point is never retrained
    assert experiment.main(argv) == 0
    assert capsys.readouterr().out.count("done before") == 2 * len(names)
    # --report-only tabulates what is finished and trains nothing
    import shutil
    shutil.rmtree(experiment.point_folder(out, names[0], 1))
    assert experiment.main(argv + ["--report-only"]) == 0
    printed = capsys.readouterr().out
    assert "] training" not in printed and "not finished" in printed
    rows = json.loads((out / "results.json").read_text())["rows"]
    assert rows[0]["seeds"] == [0] and rows[1]["seeds"] == [0, 1]
    # --time-steps replaces the trainer's timing by side-by-side medians
    assert experiment.main(argv + ["--report-only", "--time-steps", "2"]) == 0
    rows = json.loads((out / "results.json").read_text())["rows"]
    assert all(r["step_ms"] > 0 and r["step_ms_measured"] == "median of 2 interleaved steps" for r in rows)
    assert "side by side" in (out / "results.md").read_text()


def test_grids_spell_out_every_option_and_mark_one_default_per_model():
    for name, model, options in experiment.ABLATE_GRID:
        from minims.models import build_model
        build_model(model, vocab_size=5, block_size=256, **options)     # every row is valid
    families = {}
    for name, model, options in experiment.ABLATE_GRID:
        if model != "vanilla":
            layers = build_model(model, vocab_size=5, block_size=256, **options).config.n_layer
            families.setdefault(model, []).append(experiment.matches_defaults(model, options, layers))
    assert set(families) == {"top-down", "bottom-up", "retina"}
    assert all(sum(flags) == 1 for flags in families.values()), families
    names = [g[0] for g in experiment.TRADEOFF_GRID]
    assert len(set(names)) == len(names)


def test_only_takes_names_that_hold_commas():
    names = ["vanilla-2", "bottom-up/upsample=linear,1-4-1", "bottom-up/upsample=linear,1-4-1,pool=linear"]
    assert experiment.only_names("bottom-up/upsample=linear,1-4-1,pool=linear,vanilla-2", names) == {
        "bottom-up/upsample=linear,1-4-1,pool=linear", "vanilla-2"}
    assert experiment.only_names("vanilla-2,bottom-up/upsample=linear,1-4-1", names) == {
        "vanilla-2", "bottom-up/upsample=linear,1-4-1"}
    assert "nope" in experiment.only_names("nope,vanilla-2", names)


def test_experiment_rejects_bad_input(tmp_path):
    assert experiment.main(["tradeoff", "--quick", "--out-dir", str(tmp_path), "--only", "nope"]) == 2
    assert experiment.main(["ablate", "--quick", "--out-dir", str(tmp_path), "--seeds", "x"]) == 2


def test_split_loss_scores_every_token_once():
    import numpy as np
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


def test_the_tradeoff_plot_draws_the_unigram_baseline_when_given():
    pytest.importorskip("matplotlib")          # an optional extra ('.[plot]'; '.[test]' has it)
    rows = [dict(model="vanilla", layers=n, activation_bytes=n * 1e6, step_ms=5.0 * n,
                 valid_bpc=5.5 + n / 10, valid_bpc_spread=0.1) for n in (1, 2)]
    fig = experiment.tradeoff_figure(rows, baseline_bpc=4.44)
    for ax in fig.axes:                        # memory and step time: a dashed line at 4.44 on both
        lines = [line for line in ax.get_lines() if "unigram baseline" in line.get_label()]
        assert len(lines) == 1 and set(lines[0].get_ydata()) == {4.44}
        assert lines[0].get_linestyle() == "--"
    assert not [line for ax in experiment.tradeoff_figure(rows).axes for line in ax.get_lines()
                if "unigram" in line.get_label()]
