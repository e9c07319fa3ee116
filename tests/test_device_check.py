"""The device check (tests/gpu/check.py) is tested here, on a CPU: its --dry-run runs every
part on the fake CuPy with tiny sizes, so that the run on a rarely lent GPU machine does not
fail for a reason a CPU could have shown."""
import importlib.util
import json
import os
import subprocess
import sys

import pytest

from tiny_runs import REPO, small_text

CHECK = REPO / "tests" / "gpu" / "check.py"
PARTS = ("env", "kernels", "train", "bench", "tests")


def _check_module():
    spec = importlib.util.spec_from_file_location("device_check", CHECK)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run(*args, timeout=300):
    env = {k: v for k, v in os.environ.items() if not k.startswith("MINIMS_")}
    return subprocess.run([sys.executable, str(CHECK), *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=timeout)


def test_the_dry_run_passes_every_part_and_writes_its_files(tmp_path):
    r = _run("--out", str(tmp_path), "--dry-run")
    assert r.returncode == 0, r.stdout + r.stderr
    lines = [line for line in r.stdout.splitlines() if line.startswith("== ")]
    assert [line.split(":")[0][3:] for line in lines] == list(PARTS)     # one line per part, in order
    assert all(": PASS " in line for line in lines), lines
    assert (tmp_path / "summary.txt").read_text().splitlines() == lines
    records = json.loads((tmp_path / "summary.json").read_text())
    assert [r["part"] for r in records] == list(PARTS)
    kernels = json.loads((tmp_path / "kernels.json").read_text())
    assert len(kernels["ops"]) == 22 and set(kernels["ops"].values()) == {"ok"}
    curves = (tmp_path / "curves.tsv").read_text().splitlines()
    assert curves[0].split("\t")[:3] == ["iter", "cupy_train", "numpy_train"] and len(curves) == 4
    for name in ("env.json", "bench-model-default.json", "bench-speed.json", "bench-decode.json",
                 "bench-attention.json", "tests-junit.xml", "train-cupy/log.jsonl", "train-numpy/log.jsonl"):
        assert (tmp_path / name).exists(), name
    assert json.loads((tmp_path / "env.json").read_text())["gpu_usable"] is True


def test_a_part_without_time_is_skipped_and_fails_the_run(tmp_path):
    r = _run("--out", str(tmp_path), "--budget", "0", "--parts", "env,tests")
    assert r.returncode == 1
    assert [line for line in r.stdout.splitlines() if line.startswith("== ")] == [
        "== env: SKIP  no time left in --budget (0 s) ==", "== tests: SKIP  no time left in --budget (0 s) =="]


def test_unknown_parts_are_refused():
    r = _run("--out", "unused", "--parts", "env,gpus")
    assert r.returncode == 2 and "unknown part(s) gpus" in r.stderr


def test_a_missing_dependency_comes_from_the_carried_wheel_or_a_stand_in(tmp_path, monkeypatch):
    """On a bare machine: tqdm from .device-wheels when the wheel is there (its path goes on
    PYTHONPATH), else the stand-in; threadpoolctl is only reported."""
    check = _check_module()
    monkeypatch.setattr(check, "_importable", lambda module: False)
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    monkeypatch.setattr(check, "WHEELS", wheels)
    monkeypatch.setattr(check, "REPO", tmp_path)
    (wheels / "tqdm-4.0.0-py3-none-any.whl").write_bytes(b"")
    c = check.Check(tmp_path / "out", dry_run=True, budget_s=10)
    assert str(wheels / "tqdm-4.0.0-py3-none-any.whl") in c.env["PYTHONPATH"].split(os.pathsep)
    assert c.dependencies["tqdm"].startswith("from wheels/tqdm-4.0.0")
    assert c.dependencies["threadpoolctl"].startswith("MISSING")
    (wheels / "tqdm-4.0.0-py3-none-any.whl").unlink()
    c = check.Check(tmp_path / "out", dry_run=True, budget_s=10)
    assert c.dependencies["tqdm"].startswith("MISSING: a stand-in")
    assert str(tmp_path / "out" / "_stand-ins") in c.env["PYTHONPATH"].split(os.pathsep)


def test_the_trainer_runs_with_the_tqdm_stand_in(tmp_path):
    """The stand-in covers what the trainer uses of tqdm (it shadows the real one here)."""
    stand_in = _check_module()._write_tqdm_stand_in(tmp_path / "stand-ins")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MINIMS_")}
    env["PYTHONPATH"] = os.pathsep.join([str(stand_in), str(REPO)])
    code = ("import tqdm, runpy, sys; assert 'stand-ins' in tqdm.__file__, tqdm.__file__; "
            "runpy.run_module('minims.train', run_name='__main__')")
    r = subprocess.run([sys.executable, "-c", code, "--data", str(small_text(tmp_path)), "--out-dir",
                        str(tmp_path / "out"), "--cache-dir", str(tmp_path / "cache"), "--max-iters", "2",
                        "--eval-interval", "1", "--eval-iters", "1", "--block-size", "8", "--batch-size", "2",
                        "--n-layer", "1", "--n-embd", "8", "--n-head", "2"],
                       cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "final: iter 2" in r.stdout


@pytest.mark.parametrize("dry_run", [True, False])
def test_the_benchmarks_of_a_real_run_are_the_issue_s(dry_run):
    """A real run benchmarks the default size and the GPU-sized model (12 × 768, T = 1024,
    B = 16) beside PyTorch; a dry run keeps every case tiny."""
    cases = dict(_check_module().bench_cases(dry_run))
    assert {"model-default", "speed", "decode", "attention"} <= set(cases)
    if dry_run:
        assert all("16" in args for args in cases.values())
    else:
        gpu = cases["model-gpu"]
        assert [gpu[gpu.index(f) + 1] for f in ("--n-layer", "--n-embd", "--block-size", "--batch-size")] == \
            ["12", "768", "1024", "16"]
        assert "--impl" not in gpu
