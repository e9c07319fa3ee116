"""The benchmark and experiment commands run end to end (smoke tests; nothing is timed here)."""
import json

import pytest

from minims import bench, experiment


def test_tradeoff_quick_writes_table_and_resumes(tmp_path, capsys):
    out = tmp_path / "tradeoff"
    argv = ["tradeoff", "--quick", "--out-dir", str(out), "--max-iters", "3",
            "--cache-dir", str(tmp_path / "cache")]
    assert experiment.main(argv) == 0
    results = json.loads((out / "results.json").read_text())["results"]
    names = [r["name"] for r in results]
    assert names == [g[0] for g in experiment.QUICK_GRID]
    assert {r["model"] for r in results} == {"vanilla", "top-down", "bottom-up", "retina"}
    for r in results:
        assert r["activation_bytes"] > r["body_activation_bytes"] > 0
        assert 1 < r["valid_ppl"] < 20000 and 1 < r["test_ppl"] < 20000
    table = (out / "results.md").read_text()
    assert all(f"| {n} |" in table for n in names)
    capsys.readouterr()
    # a finished point is never retrained
    assert experiment.main(argv) == 0
    assert capsys.readouterr().out.count("done before") == len(names)


def test_tradeoff_rejects_unknown_point(tmp_path):
    assert experiment.main(["tradeoff", "--quick", "--out-dir", str(tmp_path), "--only", "nope"]) == 2


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


@pytest.mark.parametrize("case", ["engine", "model", "speed", "memory"])
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


def test_bench_refuses_cupy_without_cuda(capsys):
    try:
        import cupy  # noqa: F401
        pytest.skip("CuPy is installed; the error path cannot be reached")
    except ImportError:
        pass
    assert bench.main(["engine", "--backend", "cupy"]) == 2
    assert "pip install" in capsys.readouterr().err
