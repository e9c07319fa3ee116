"""The device check: minims' CuPy backend on a real CUDA GPU, in one run of at most 8 minutes.

    python3 tests/gpu/check.py --out "$OUT"                 # on a GPU machine (no network needed)
                                                            # (device tool: timeout_s=480,
                                                            #  carry=[".device-wheels"])
    python3 tests/gpu/check.py --out /tmp/dry --dry-run     # anywhere: the fake CuPy, tiny sizes

A GPU machine is lent rarely and briefly, so everything it runs is prepared here and run in one
call. The parts run in this order, each in child processes (their output in OUT/<name>.log and
OUT/<name>.stderr.log), each ending with ONE line

    == PART: PASS|FAIL|SKIP  what it found ==

(also appended to OUT/summary.txt, and to OUT/summary.json as a record), so that a run cut short
still says what passed:

  env      versions (Python, NumPy, CuPy, PyTorch, pytest, hypothesis, tqdm), the GPU and driver,
           and what is missing (OUT/env.json, OUT/nvidia-smi.log). FAIL without a usable GPU.
  kernels  the fused elementwise kernels (GELU, layer norm, softmax, attention) forward and
           backward on CuPy against the NumPy backend, float32 and float64; then the default
           model's training step with and without them (ms) and CuPy's memory pool across 12
           steps (its size must stop growing). If a kernel fails, the later parts run with
           MINIMS_FUSE=0 (the line says so), so they still measure the rest. OUT/kernels.json.
  train    the README's default model (vanilla, 4 × 128, on Austen) trained 200 steps with
           `--backend cupy` and with `--backend numpy` from the same seed (identical weights at
           step 0, drawn on the host), evaluated every 10 steps: the two loss curves side by side
           (OUT/curves.tsv) must agree to float32 round-off: |Δ| ≤ 1e-4 at step 0, ≤ 0.02 after
           200 steps of chaotic training. OUT/train-{cupy,numpy}/ hold the runs' logs (not
           their checkpoints).
  bench    `python -m minims.bench` with --backend cupy, PyTorch beside it on CUDA: `model` at
           the default size and at a GPU-sized one (12 layers × 768, T = 1024, B = 16), `speed`,
           `decode` (tokens/s) and `attention` (band sizes). OUT/bench-*.json and .log; the line
           gives the step times, the ratios to PyTorch, and whether the GPU-sized step is within
           2× of PyTorch eager (the goal).
  tests    pytest, MINIMS_TEST_BACKEND=cupy MINIMS_REQUIRE_CUDA=1 (a missing GPU fails, never
           skips), HYPOTHESIS_PROFILE=quick: tests/test_cupy_real.py, then the gradient harness,
           model, causality, decoding and trainer tests on the CuPy backend, with whatever time
           is left (OUT/tests.log, OUT/tests-junit.xml; a run stopped by the clock reports the
           counts so far).

Exit code 0 when every part passed, 1 otherwise. --budget (default 420 s) bounds the whole run:
env, kernels, train and bench take at most 30, 60, 110 and 130 s, tests what is left (typically
most of it; they come last because their time is the hardest to foresee: a fresh GPU compiles
every new kernel once). --parts picks parts, e.g. a rerun of the tests alone with more time:

    python3 tests/gpu/check.py --out "$OUT" --parts tests --budget 400

Nothing is installed and nothing is downloaded: minims runs from this source tree (PYTHONPATH).
The GPU machine's python3 has NumPy, CuPy, PyTorch, pytest and hypothesis, but perhaps not tqdm,
a run-time dependency of the trainer. Prepare, here, with network, before the machine is lent:

    python3 -m pip download --only-binary=:all: --no-deps -d .device-wheels tqdm threadpoolctl

`.device-wheels/` is ignored by git: give it to the device tool with carry=[".device-wheels"].
Those wheels are pure Python, so the check puts each .whl on PYTHONPATH (Python imports from a
zip) for a module the machine lacks; without the wheel, tqdm is replaced by a stand-in progress
bar that prints nothing (env says so), and threadpoolctl is reported missing (minims does not
need it yet).

--dry-run runs every part on the fake CuPy of tests/fake_cupy.py with tiny sizes (seconds, on a
CPU): tests/test_device_check.py runs it in CI, so the script itself is tested.
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TESTS = REPO / "tests"
WHEELS = REPO / ".device-wheels"
OPTIONAL = ("tqdm", "threadpoolctl")    # pure-Python packages a bare GPU machine may lack
PARTS = ("env", "kernels", "train", "bench", "tests")
SHARE_S = {"env": 30, "kernels": 60, "train": 110, "bench": 130, "tests": 10 ** 9}  # tests: the rest
TEST_FILES = ["tests/test_cupy_real.py", "tests/test_gradcheck.py", "tests/test_models.py",
              "tests/test_causality.py", "tests/test_decode.py", "tests/test_train.py"]
DRY_TEST_FILTER = "test_attention_mlp or (test_gradcheck and GELU) or test_every_registered_model_is_causal"
GPU_SIZED = ["--n-layer", "12", "--n-embd", "768", "--n-head", "12", "--block-size", "1024",
             "--batch-size", "16"]
TINY_MODEL = ["--n-layer", "2", "--n-embd", "16", "--n-head", "2", "--block-size", "16",
              "--batch-size", "2"]
GOAL_RATIO = 2.0        # the GPU-sized training step within 2× of PyTorch eager's


class Check:
    """One run: the output folder, the clock, the environment of the child processes."""

    def __init__(self, out, dry_run, budget_s):
        self.out, self.dry_run = Path(out), dry_run
        self.deadline = time.monotonic() + budget_s
        self.part_started = time.monotonic()
        self.records = []
        self.env = dict(os.environ)
        for name in ("MINIMS_BACKEND", "MINIMS_TEST_BACKEND", "MINIMS_FUSE"):
            self.env.pop(name, None)
        self.env["PYTHONPATH"] = os.pathsep.join([str(REPO)] + self._missing_modules_path()
                                                 + [p for p in [os.environ.get("PYTHONPATH")] if p])
        self.env["PYTHONUNBUFFERED"] = "1"

    # --- dependencies the machine may lack -------------------------------------------------------
    def _missing_modules_path(self):
        """PYTHONPATH entries for OPTIONAL modules this python cannot import: the wheel from
        .device-wheels, else (tqdm only) a stand-in written under OUT/_stand-ins."""
        self.dependencies, entries = {}, []
        for module in OPTIONAL:
            if _importable(module):
                self.dependencies[module] = "installed"
                continue
            wheels = sorted(WHEELS.glob(f"{module}-*.whl"))
            if wheels:
                entries.append(str(wheels[-1]))
                self.dependencies[module] = f"from {wheels[-1].relative_to(REPO)} (on PYTHONPATH)"
            elif module == "tqdm":
                entries.append(str(_write_tqdm_stand_in(self.out / "_stand-ins")))
                self.dependencies[module] = ("MISSING: a stand-in progress bar that prints nothing is "
                                             "used (prepare .device-wheels: see this script's docstring)")
            else:
                self.dependencies[module] = "MISSING (not needed by minims yet)"
        return entries

    # --- running things -------------------------------------------------------------------------
    def left(self):
        return self.deadline - time.monotonic()

    def python(self, *args):
        """The command line running python with `args` (`-m module ...` or `script ...`); in a
        dry run the fake CuPy is put in place first (see `--with-fake-cupy`)."""
        if self.dry_run:
            return [sys.executable, str(Path(__file__).resolve()), "--with-fake-cupy", *args]
        return [sys.executable, *args]

    def run(self, name, cmd, timeout, env=None):
        """Run cmd, its output streamed to OUT/<name>.log (stdout, after the command line) and
        OUT/<name>.stderr.log (so a run killed from outside leaves what it printed) →
        (exit code or "timeout", seconds, stdout, stdout and stderr)."""
        out, err = self.out / f"{name}.log", self.out / f"{name}.stderr.log"
        t0 = time.monotonic()
        with open(out, "w") as f, open(err, "w") as g:
            f.write("$ " + " ".join(cmd) + "\n")
            f.flush()
            try:
                rc = subprocess.run(cmd, cwd=REPO, env=env or self.env, stdout=f, stderr=g,
                                    timeout=max(1.0, timeout)).returncode
            except subprocess.TimeoutExpired:
                rc = "timeout"
        stdout = out.read_text(errors="replace").split("\n", 1)[-1]
        return rc, time.monotonic() - t0, stdout, stdout + err.read_text(errors="replace")

    def share(self, part):
        """Seconds part may still use: its share of the budget from its start, or what is left."""
        return min(SHARE_S[part] - (time.monotonic() - self.part_started), self.left())

    def report(self, part, status, line, **details):
        seconds = time.monotonic() - self.part_started
        text = f"== {part}: {status}  {line} ({seconds:.0f} s) =="
        print(text, flush=True)
        with open(self.out / "summary.txt", "a") as f:
            f.write(text + "\n")
        self.records.append({"part": part, "status": status, "line": line, "seconds": seconds, **details})
        (self.out / "summary.json").write_text(json.dumps(self.records, indent=2, default=str) + "\n")
        return status


def _importable(module):
    import importlib.util
    return importlib.util.find_spec(module) is not None


def _write_tqdm_stand_in(folder):
    """A `tqdm` package with what minims uses (tqdm(...), .update, .set_postfix_str, .close,
    tqdm.write), printing only what tqdm.write prints."""
    package = folder / "tqdm"
    package.mkdir(parents=True, exist_ok=True)
    (package / "__init__.py").write_text(
        '"""Stand-in for tqdm written by tests/gpu/check.py: no progress bar."""\n'
        "import sys\n\n\n"
        "class tqdm:\n"
        "    def __init__(self, *args, **kwargs):\n        pass\n\n"
        "    def update(self, n=1):\n        pass\n\n"
        "    def set_postfix_str(self, *args, **kwargs):\n        pass\n\n"
        "    def close(self):\n        pass\n\n"
        "    @staticmethod\n"
        "    def write(text, file=None):\n        print(text, file=file or sys.stdout, flush=True)\n")
    return folder


def _tail(text, n=3):
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return " | ".join(lines[-n:])[-400:]


# --- env ---------------------------------------------------------------------------------------

ENV_PROBE = r"""
import json, sys, platform
info = {"python": platform.python_version(), "executable": sys.executable}
for name in ("numpy", "cupy", "torch", "pytest", "hypothesis", "tqdm", "threadpoolctl"):
    try:
        module = __import__(name)
        info[name] = getattr(module, "__version__", "?")
    except Exception as e:
        info[name] = f"MISSING ({type(e).__name__}: {e})"
import minims
from minims import backend
try:
    minims.set_backend("cupy")
    info.update(backend.device_info())
    info["gpu_usable"] = True
except Exception as e:
    info["gpu_usable"] = False
    info["gpu_problem"] = str(e)
try:
    import torch
    info["torch_cuda_available"] = torch.cuda.is_available()
    info["torch_cuda"] = torch.version.cuda
except Exception:
    pass
print(json.dumps(info))
"""


def part_env(c):
    rc, _, stdout, text = c.run("env", c.python("-c", ENV_PROBE), c.share("env"))
    try:
        info = json.loads([line for line in stdout.splitlines() if line.startswith("{")][-1])
    except (ValueError, IndexError):
        return c.report("env", "FAIL", f"the probe failed (rc {rc}): {_tail(text)}")
    info["dependencies"] = c.dependencies
    info["dry_run"] = c.dry_run
    (c.out / "env.json").write_text(json.dumps(info, indent=2) + "\n")
    smi = shutil.which("nvidia-smi")
    if smi and not c.dry_run:
        c.run("nvidia-smi", [smi], 20)
    deps = "; ".join(f"{k}: {v}" for k, v in c.dependencies.items() if v != "installed") or "all present"
    versions = ", ".join(f"{k} {info.get(k)}" for k in ("python", "numpy", "cupy", "torch") if k in info)
    if not info.get("gpu_usable"):
        return c.report("env", "FAIL", f"no usable GPU: {info.get('gpu_problem')} ({versions}; {deps})", **info)
    gpu = f"{info.get('gpu', '?')}, {info.get('gpu_memory_gib', 0):.0f} GiB, CUDA runtime {info.get('cuda_runtime')}"
    return c.report("env", "PASS", f"{gpu}; {versions}; torch CUDA {info.get('torch_cuda_available')}; {deps}",
                    **info)


# --- kernels (a child process runs `probe_kernels`) ---------------------------------------------

def part_kernels(c):
    cmd = c.python(str(Path(__file__).resolve()), "--probe", "kernels", "--out", str(c.out))
    if c.dry_run:
        cmd.append("--dry-run")
    rc, seconds, _, text = c.run("kernels", cmd, c.share("kernels"))
    try:
        result = json.loads((c.out / "kernels.json").read_text())
    except (OSError, ValueError):
        c.env["MINIMS_FUSE"] = "0"
        return c.report("kernels", "FAIL", f"the probe failed (rc {rc}, {seconds:.0f} s): {_tail(text)}; "
                        "the later parts run with MINIMS_FUSE=0")
    bad = [k for k, v in result["ops"].items() if v != "ok"] + [f"{k} step" for k in result.get("step_errors", {})]
    if bad:
        c.env["MINIMS_FUSE"] = "0"
    step = result.get("step_ms", {})
    pool = result.get("pool_total_mib", [])
    steady = len(pool) >= 4 and len(set(pool[len(pool) // 2:])) == 1     # no growth over the last half
    # (the pool is read after every step, unfused then fused: the same model and optimizer)
    line = (f"{len(result['ops']) - len(bad)}/{len(result['ops'])} op checks agree with NumPy"
            + (f" (failed: {', '.join(bad)}; the later parts run with MINIMS_FUSE=0)" if bad else "")
            + f"; step {step.get('fused', float('nan')):.1f} ms fused vs {step.get('unfused', float('nan')):.1f} "
            f"ms unfused; memory pool {'steady' if steady else 'GROWING'} at "
            f"{pool[-1] if pool else float('nan'):.1f} MiB over {len(pool)} steps")
    return c.report("kernels", "PASS" if not bad and steady and rc == 0 else "FAIL", line, **result)


def probe_kernels(out, dry_run):
    """(in a child process) Fused kernels against the NumPy backend, the step with and without
    them, and the memory pool across steps → OUT/kernels.json."""
    import numpy as np
    sys.path.insert(0, str(TESTS))
    import minims
    from minims import backend
    from minims.models import build_model
    from minims.optim import AdamW
    from minims.train import train_step
    from test_gpu_paths import ops_forward_backward, OPS_CHECKED

    result = {"ops": {}}
    for dtype, tol in (("float32", dict(rtol=2e-4, atol=2e-5)), ("float64", dict(rtol=1e-9, atol=1e-11))):
        minims.set_backend("numpy")
        reference = ops_forward_backward(dtype, 0)
        minims.set_backend("cupy")
        try:
            fused = ops_forward_backward(dtype, 0)
        except Exception as e:
            for name in OPS_CHECKED:
                result["ops"][f"{name} {dtype}"] = f"raised {type(e).__name__}: {e}"
            continue
        for name, a, b in zip(OPS_CHECKED, reference, fused):
            ok = a.dtype == b.dtype and a.shape == b.shape and np.allclose(a, b, **tol)
            result["ops"][f"{name} {dtype}"] = "ok" if ok else (
                f"{b.dtype} {b.shape} vs {a.dtype} {a.shape}, max |Δ| {np.abs(a - b).max():.3g}"
                if a.shape == b.shape else f"shape {b.shape} vs {a.shape}")

    path = Path(out) / "kernels.json"
    path.write_text(json.dumps(result, indent=2) + "\n")          # (so far: kept if what follows fails)

    # the default model's training step, with and without the fused kernels, and the pool
    size = dict(n_layer=2, n_embd=16, n_head=2) if dry_run else {}
    B, T, V = (2, 16, 13) if dry_run else (16, 128, 82)       # the trainer's defaults (Austen: V = 82)
    model = build_model("vanilla", vocab_size=V, block_size=T, **size)
    optimizer = AdamW(model.parameters())
    ids = np.random.default_rng(0).integers(0, V, size=(B, T + 1))
    batch = [(ids[:, :-1], ids[:, 1:])]
    pool = backend.xp.get_default_memory_pool()
    steps = 6 if dry_run else 12
    result.update(step_ms={}, step_errors={}, pool_total_mib=[], pool_used_mib=[])
    for label, fused in (("unfused", False), ("fused", True)):
        backend.use_fused = fused
        times = []
        try:
            for _ in range(steps):
                backend.synchronize()
                t0 = time.perf_counter()
                train_step(model, optimizer, batch, lr=1e-3, grad_clip=1.0)
                backend.synchronize()
                times.append(time.perf_counter() - t0)
                result["pool_total_mib"].append(pool.total_bytes() / 2 ** 20)
                result["pool_used_mib"].append(pool.used_bytes() / 2 ** 20)
        except Exception as e:
            result["step_errors"][label] = f"{type(e).__name__}: {e}"
        else:
            result["step_ms"][label] = 1000 * float(np.median(times[2:]))
        path.write_text(json.dumps(result, indent=2) + "\n")
    backend.use_fused = None


# --- train -------------------------------------------------------------------------------------

def part_train(c):
    if c.dry_run:
        text = (REPO / "data" / "austen" / "persuasion.txt").read_text(encoding="utf-8")[:30_000]
        (c.out / "small.txt").write_text(text, encoding="utf-8")
        flags = ["--data", str(c.out / "small.txt"), *TINY_MODEL, "--max-iters", "4", "--eval-interval",
                 "2", "--eval-iters", "1", "--warmup-iters", "2"]
    else:          # the README's default model and data; 200 steps, evaluated every 10
        flags = ["--max-iters", "200", "--eval-interval", "10", "--eval-iters", "4"]
    logs, lines = {}, []
    cache = tempfile.mkdtemp(prefix="minims-tokens-")   # (not under OUT: every file there travels back)
    for backend_name in ("numpy", "cupy"):   # (numpy first: it also fills the token cache)
        out_dir = c.out / f"train-{backend_name}"
        cmd = c.python("-m", "minims.train", "--backend", backend_name, "--seed", "0", "--out-dir",
                       str(out_dir), "--cache-dir", cache, "--overwrite", *flags)
        rc, seconds, stdout, text = c.run(f"train-{backend_name}", cmd,
                                          c.share("train") / (2 if backend_name == "numpy" else 1))
        (out_dir / "ckpt.npz").unlink(missing_ok=True)     # (megabytes nobody needs back)
        final = [line for line in stdout.splitlines() if line.startswith("final:")]
        lines.append(f"{backend_name}: " + (final[-1][len("final: "):] if final else f"rc {rc} {_tail(text, 2)}"))
        if rc != 0:
            return c.report("train", "FAIL", f"--backend {backend_name} failed (rc {rc}, {seconds:.0f} s): "
                            f"{_tail(text)}")
        logs[backend_name] = [json.loads(line) for line in (out_dir / "log.jsonl").read_text().splitlines()]
    rows = []
    for a, b in zip(logs["cupy"], logs["numpy"]):
        rows.append({"iter": a["iter"], "cupy_train": a["train_loss"], "numpy_train": b["train_loss"],
                     "cupy_val": a["val_loss"], "numpy_val": b["val_loss"],
                     "max_abs_diff": max(abs(a["train_loss"] - b["train_loss"]),
                                         abs(a["val_loss"] - b["val_loss"]))})
    with open(c.out / "curves.tsv", "w") as f:
        f.write("\t".join(rows[0]) + "\n")
        for r in rows:
            f.write("\t".join(f"{v:.6f}" if isinstance(v, float) else str(v) for v in r.values()) + "\n")
    first, worst = rows[0], max(rows, key=lambda r: r["max_abs_diff"])
    ok = (len(logs["cupy"]) == len(logs["numpy"]) and first["iter"] == 0 and first["max_abs_diff"] <= 1e-4
          and worst["max_abs_diff"] <= 0.02)
    line = (f"{len(rows)} points; step 0: cupy {first['cupy_val']:.5f} numpy {first['numpy_val']:.5f} "
            f"(|Δ| {first['max_abs_diff']:.1e}); largest |Δ| {worst['max_abs_diff']:.1e} at iter {worst['iter']}; "
            f"last: cupy {rows[-1]['cupy_val']:.4f} numpy {rows[-1]['numpy_val']:.4f}; " + "; ".join(lines))
    return c.report("train", "PASS" if ok else "FAIL", line, curves=rows)


# --- bench -------------------------------------------------------------------------------------

def bench_cases(dry_run):
    """(name, bench arguments) of every benchmark the bench part runs."""
    if dry_run:    # (one case imports PyTorch, which has no CUDA here: it takes seconds to import)
        small = [*TINY_MODEL, "--vocab-size", "11", "--warmup", "1", "--repeat", "2"]
        return [("model-default", ["model", *small, "--impl", "minims"]), ("speed", ["speed", *small]),
                ("decode", ["decode", *TINY_MODEL, "--vocab-size", "11", "--decode-block-size", "16"]),
                ("attention", ["attention", "--n-embd", "16", "--n-head", "2", "--batch-size", "2",
                               "--max-t", "128", "--warmup", "1", "--repeat", "2"])]
    return [("model-default", ["model", "--repeat", "20"]),
            ("model-gpu", ["model", *GPU_SIZED, "--warmup", "2", "--repeat", "5"]),
            ("speed", ["speed", "--repeat", "10"]),
            ("decode", ["decode", "--decode-block-size", "256"]),
            ("attention", ["attention", "--max-t", "1024", "--repeat", "5"])]


def part_bench(c):
    found, failed = {}, []
    for name, args in bench_cases(c.dry_run):
        if c.share("bench") < 5:
            failed.append(f"{name} (no time left)")
            continue
        cmd = c.python("-m", "minims.bench", *args, "--backend", "cupy", "--json")
        rc, seconds, stdout, text = c.run(f"bench-{name}", cmd, c.share("bench"))
        try:
            found[name] = json.loads(stdout) if rc == 0 else None
        except ValueError:
            found[name] = None
        if found[name] is None:
            failed.append(f"{name} (rc {rc}, {seconds:.0f} s: {_tail(text, 1)})")
        else:
            (c.out / f"bench-{name}.json").write_text(json.dumps(found[name], indent=2) + "\n")
    parts = []
    ratios = {}
    for name in ("model-default", "model-gpu"):
        rows = {r["impl"]: r for r in (found.get(name) or {}).get("rows", [])}
        if "minims" in rows:
            torch = rows.get("torch", {}).get("median_ms")
            ratio = rows.get("minims/torch ratio", {}).get("value")
            ratios[name] = ratio
            parts.append(f"{name}: minims {rows['minims']['median_ms']:.1f} ms"
                         + (f", torch {torch:.1f} ms, ratio {ratio:.2f}" if torch else ", no torch on CUDA")
                         + f", GEMM floor {rows['GEMM floor']['median_ms']:.1f} ms")
    speed = (found.get("speed") or {}).get("rows", [])
    if speed:
        parts.append("speed tok/s: " + ", ".join(f"{r['model']} {r['tokens_per_s']:,.0f}" for r in speed
                                                 if "tokens_per_s" in r))
    decode = (found.get("decode") or {}).get("rows", [])
    if decode:
        parts.append("decode tok/s cached/uncached: " + ", ".join(
            f"{r['model']} {r['cached_tok_s']:,.0f}/{r['uncached_tok_s']:,.0f}" for r in decode))
    gpu_ratio = ratios.get("model-gpu")
    if gpu_ratio is not None and not c.dry_run:
        parts.append(f"goal (GPU-sized step within {GOAL_RATIO:g}× of PyTorch): "
                     + ("MET" if gpu_ratio <= GOAL_RATIO else "NOT MET"))
    if failed:
        parts.append("failed: " + "; ".join(failed))
    return c.report("bench", "FAIL" if failed else "PASS", "; ".join(parts), ratios=ratios)


# --- tests -------------------------------------------------------------------------------------

def part_tests(c):
    env = dict(c.env, MINIMS_TEST_BACKEND="cupy", MINIMS_REQUIRE_CUDA="1", HYPOTHESIS_PROFILE="quick")
    if c.dry_run:      # (the fake cannot satisfy MINIMS_REQUIRE_CUDA: test_cupy_real.py skips)
        env.update(MINIMS_TEST_BACKEND="fake-cupy", MINIMS_REQUIRE_CUDA="0")
    cmd = [sys.executable, "-m", "pytest", "-v", "-rfE", "-p", "no:cacheprovider",
           f"--junitxml={c.out / 'tests-junit.xml'}", *TEST_FILES]
    if c.dry_run:
        cmd += ["-k", DRY_TEST_FILTER]
    rc, seconds, stdout, text = c.run("tests", cmd, c.left() - 2, env=env)
    counts = {k: len(re.findall(rf"(?m)^tests/\S+ {k.upper()}\b", stdout)) for k in ("passed", "failed", "skipped", "error")}
    counted = ", ".join(f"{n} {k}" for k, n in counts.items() if n)
    if rc == "timeout":
        return c.report("tests", "FAIL", f"stopped by the clock after {seconds:.0f} s: {counted or 'nothing'} so far "
                        "(OUT/tests.log)", counts=counts)
    failed = re.findall(r"(?m)^(?:FAILED|ERROR) (\S+)", stdout)
    status = "PASS" if rc == 0 and counts["passed"] and not failed else "FAIL"
    line = f"{counted or 'no tests ran'} in {seconds:.0f} s (rc {rc})"
    if failed:
        line += "; first failures: " + ", ".join(failed[:5])
    elif rc != 0:
        line += f": {_tail(text, 2)}"
    return c.report("tests", status, line, counts=counts, failed=failed)


# --- main --------------------------------------------------------------------------------------

def run_with_fake_cupy(argv):
    """`--with-fake-cupy -m MODULE ARGS` or `--with-fake-cupy SCRIPT ARGS`: run it as `python`
    would, with the fake CuPy in sys.modules (the dry run's child processes)."""
    import runpy
    sys.path.insert(0, str(TESTS))
    import fake_cupy
    sys.modules["cupy"], sys.modules["cupyx"] = fake_cupy.make_fake_cupy()
    if argv[0] == "-c":
        sys.argv = ["-c", *argv[2:]]
        exec(compile(argv[1], "<string>", "exec"), {"__name__": "__main__"})
    elif argv[0] == "-m":
        sys.argv = [argv[1], *argv[2:]]
        runpy.run_module(argv[1], run_name="__main__", alter_sys=True)
    else:
        sys.argv = list(argv)
        runpy.run_path(argv[0], run_name="__main__")


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--with-fake-cupy"]:
        return run_with_fake_cupy(argv[1:])
    p = argparse.ArgumentParser(prog="python3 tests/gpu/check.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, help="folder for the results (created; the device tool's $OUT)")
    p.add_argument("--dry-run", action="store_true", help="the fake CuPy and tiny sizes, on a CPU, in seconds")
    p.add_argument("--budget", type=float, default=420, help="seconds for the whole run (default 420)")
    p.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated, in this order: {','.join(PARTS)}")
    p.add_argument("--probe", choices=["kernels"], help=argparse.SUPPRESS)   # (a child process's job)
    args = p.parse_args(argv)
    out = Path(args.out)
    if args.probe:
        probe_kernels(out, args.dry_run)
        return 0
    parts = [x for x in args.parts.split(",") if x]
    unknown = sorted(set(parts) - set(PARTS))
    if unknown:
        p.error(f"unknown part(s) {', '.join(unknown)}; choose from {', '.join(PARTS)}")
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.txt").write_text("")
    c = Check(out, args.dry_run, args.budget)
    print(f"# device check{' (dry run: fake CuPy, tiny sizes)' if args.dry_run else ''}: parts "
          f"{', '.join(parts)}; budget {args.budget:.0f} s; results in {out}", flush=True)
    statuses = []
    for part in PARTS:
        if part not in parts:
            continue
        if c.left() < 3:
            statuses.append(c.report(part, "SKIP", "no time left in --budget"))
            continue
        c.part_started = time.monotonic()
        try:
            statuses.append(globals()[f"part_{part}"](c))
        except Exception as e:   # a bug in this script: say so, and go on with the next part
            statuses.append(c.report(part, "FAIL", f"the check itself failed: {type(e).__name__}: {e}"))
    print(f"# {statuses.count('PASS')}/{len(statuses)} parts passed", flush=True)
    return 0 if statuses and all(s == "PASS" for s in statuses) else 1


if __name__ == "__main__":
    sys.exit(main())
