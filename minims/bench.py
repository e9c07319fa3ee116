"""Benchmarks: `python -m minims.bench {engine,model,speed,memory,attention,decode,threads}` (`--help`).

Speed is measured, never asserted: every case prints medians of runs alternating with one
another in one process, so that background load hits all alike; engine, model and speed also
time the same computation in PyTorch (when installed) and print the ratio: on the CPU beside
`--backend numpy`, on the GPU (CUDA) beside `--backend cupy`.

- engine: forward + backward of a 4-layer, 128-wide, 4-head GPT stack (T=256, B=8, float32),
          and the GEMM floor: the step's matrix products alone, same shapes and threads.
- model:  one full training step (forward, backward, AdamW) of the same vanilla model, and
          its GEMM floor. `--processes N`: each side in its own process instead.
- speed:  one training step of every registered model (tokens/s), PyTorch for vanilla.
- memory: activation bytes held for backward and peak bytes per model for growing T, and
          the fitted growth exponent in T (≈2 for vanilla attention, lower for multi-scale).
- attention: forward + backward of causal attention (B, n_head, T, hs) for query bands of
          16, 32, 64 and 128 and for one band, at T = 128 … --max-t: the measurement behind
          `functional.ATTENTION_BAND_SIZE`.
- decode: sampling speed (tokens/s) of every registered model with and without the decoding
          cache, at --block-size and at --decode-block-size (512): batch 1, a 1-token prompt
          extended to a full context (block_size − 1 new tokens), the two paths alternating.
- threads: one training step of the trainer's default model (T=128, B=16) at several widths
          (--widths), with one BLAS thread and with one per core, alternating step by step:
          tokens/s of each and what --threads auto picks (quiet and now): the measurement
          behind `threads.MIN_THREADED_PRODUCT`. Run it on a quiet machine.

Every case but threads runs with --threads (default auto, as the trainer: minims/threads.py).
"""
import argparse
import json
import os
import platform
import sys
import time

import numpy

from . import allocator, backend, threads
from .cli import ArgumentParser, env_default, run_cli


def environment():
    """What the numbers depend on: backend, threads, BLAS."""
    blas = numpy.__config__.CONFIG.get("Build Dependencies", {}).get("blas", {})
    info = {
        "backend": backend.get_backend(),
        "cpu_count": os.cpu_count(),
        "blas": f"{blas.get('name', '?')} {blas.get('version', '')}".strip(),
        "blas_threads": threads.blas_threads(),
        "numpy": numpy.__version__,
        "python": platform.python_version(),
        "threads_env": {k: os.environ[k] for k in threads.ENV_VARS if k in os.environ},
    }
    # the installed version without importing it: importing PyTorch starts its own thread
    # pools, which would disturb a process meant to time minims alone (--impl minims)
    from importlib import metadata
    try:
        info["torch"] = metadata.version("torch")
    except metadata.PackageNotFoundError:
        info["torch"] = None
    if "torch" in sys.modules:
        info["torch_threads"] = sys.modules["torch"].get_num_threads()
        if backend.get_backend() == "cupy":
            info["torch_cuda"] = sys.modules["torch"].version.cuda
    info.update(backend.device_info())
    return info


def median_ms(times):
    return 1000.0 * float(numpy.median(times))


def time_alternating(cases, warmup, repeat, before=None):
    """Run each case `warmup` times, then `repeat` rounds in turn; {name: [seconds]}.
    `before(name)`, if given, runs untimed before each run of case `name`."""
    before = before or (lambda name: None)
    for name, fn in cases.items():
        for _ in range(warmup):
            before(name)
            fn()
    times = {name: [] for name in cases}
    for _ in range(repeat):
        for name, fn in cases.items():
            before(name)
            backend.synchronize()
            t0 = time.perf_counter()
            fn()
            backend.synchronize()
            times[name].append(time.perf_counter() - t0)
    return times


def _batch(args, seed=0):
    rng = numpy.random.default_rng(seed)
    idx = rng.integers(0, args.vocab_size, size=(args.batch_size, args.block_size + 1))
    return idx[:, :-1], idx[:, 1:]


def _minims_step(model, x, y, optimizer=None):
    def step():
        _, loss = model(x, y)
        model.zero_grad()
        loss.backward()
        if optimizer is not None:
            optimizer.step()
    return step


def torch_device():
    """Where PyTorch runs beside the active backend: "cpu" beside NumPy, "cuda" beside CuPy;
    None when PyTorch is not installed or, beside CuPy, cannot use the GPU."""
    try:
        import torch
    except ImportError:
        return None
    if backend.get_backend() == "numpy":
        return "cpu"
    return "cuda" if torch.cuda.is_available() else None


def _torch_step(state, args, x, y, with_optimizer):
    """PyTorch's training step of the same model and batch (None without PyTorch): on the CPU
    beside NumPy, on the GPU beside CuPy (with PyTorch's default AdamW there, its multi-tensor
    kernels: PyTorch eager as people run it on a GPU). Timed with `backend.synchronize()`,
    which waits for the whole device, PyTorch's kernels included."""
    device = torch_device()
    if device is None:
        return None
    import torch
    from .testing.torch_gpt import torch_adamw, torch_gpt
    params, forward = torch_gpt(state, args.n_head, dtype=args.dtype, device=device)
    opt = (torch_adamw(params, foreach=None if device == "cuda" else False)
           if with_optimizer else None)
    tx, ty = torch.tensor(x, device=device), torch.tensor(y, device=device)

    def step():
        _, loss = forward(tx, ty)
        for p in params.values():
            p.grad = None
        loss.backward()
        if opt is not None:
            opt.step()
    return step


def _model_kwargs(args):
    return dict(n_layer=args.n_layer, n_head=args.n_head, n_embd=args.n_embd, dtype=args.dtype)


def step_matrix_products(model, B, T):
    """The matrix products of one training step of the vanilla model, as (a, b) operand pairs
    laid out as the ops compute them (transposed views where they use them), so that timing
    `a @ b` for all of them is the step's GEMM time alone. (ours: the bench's floor)

    Every Linear runs on B·T rows: forward x W, backward g Wᵀ and xᵀ g. Each attention
    layer, per band of queries [a, b) with keys [0, b): forward S = Q Kᵀ and O = P V,
    backward Pᵀ dO, dO Vᵀ, dS K and dSᵀ Q (ScaledDotProductAttention). The row sums done as
    products with a ones vector are not matrix products of the model and are left out.
    Returns (pairs, flops), flops = Σ 2·m·k·n.
    """
    from . import functional as F
    from .nn.layers import Linear
    from .nn.transformer import CausalSelfAttention
    rng = numpy.random.default_rng(0)
    dtype = model.config.dtype if hasattr(model, "config") else "float32"
    shared = {}

    def arr(*shape):  # on the active backend (the floor of a CuPy run is the GPU's)
        if backend.get_backend() == "cupy" and shape in shared:
            # one operand per shape on a GPU: at GPU sizes the step's operands are several GB,
            # longer to draw on the host than the benchmark; far above a GPU's caches, sharing
            # them between layers changes no timing (on the CPU each product keeps its own)
            return shared[shape]
        a = shared[shape] = backend.asarray(rng.standard_normal(shape).astype(dtype))
        return a
    N, pairs = B * T, []
    for _, m in model.named_modules():
        if isinstance(m, Linear):
            n_in, n_out = m.weight.shape
            x, w, g = arr(N, n_in), arr(n_in, n_out), arr(N, n_out)
            pairs += [(x, w), (g, w.T), (x.T, g)]
        elif isinstance(m, CausalSelfAttention):
            nh = m.n_head
            hs = m.qkv.weight.shape[0] // nh
            for a, b, kb in F.causal_bands(T):
                q, kT, v = arr(B, nh, b - a, hs), arr(B, nh, hs, kb), arr(B, nh, kb, hs)
                P, gb, vT, k = arr(B, nh, b - a, kb), arr(B, nh, b - a, hs), arr(B, nh, hs, kb), arr(B, nh, kb, hs)
                pairs += [(q, kT), (P, v), (P.swapaxes(-1, -2), gb), (gb, vT), (P, k), (P.swapaxes(-1, -2), q)]
    flops = sum(2 * a.size * b.shape[-1] for a, b in pairs)
    return pairs, flops


def bench_vanilla(args, with_optimizer):
    """engine / model cases: minims vs PyTorch on the vanilla GPT, and the GEMM floor (the
    step's matrix products alone, same shapes, same threads), alternating in one process.
    `args.impl` picks the sides run here ("both", "minims" or "torch"; "both" without
    PyTorch installed times minims alone)."""
    from .models import build_model
    from .optim import AdamW
    model = build_model("vanilla", args.vocab_size, args.block_size, **_model_kwargs(args))
    x, y = _batch(args)
    cases = {}
    if args.impl in ("both", "minims"):
        cases["minims"] = _minims_step(model, x, y, AdamW(model.parameters()) if with_optimizer else None)
    if args.impl in ("both", "torch"):
        torch_step = _torch_step(model.state_dict(), args, x, y, with_optimizer)
        if torch_step is not None:
            cases["torch"] = torch_step
        elif args.impl == "torch":
            raise _torch_missing()
    pairs, flops = step_matrix_products(model, args.batch_size, args.block_size)

    def gemms():
        for a, b in pairs:
            a @ b
    cases["GEMM floor"] = gemms
    times = time_alternating(cases, args.warmup, args.repeat)
    return _vanilla_result({name: median_ms(t) for name, t in times.items()}, flops)


def _torch_missing():
    from .errors import UsageError
    return UsageError("--impl torch needs PyTorch: pip install -e '.[oracle]'")


def _vanilla_result(result, flops):
    """Add the floor's GFLOP and GFLOP/s, each side as a multiple of the floor and the ratio."""
    result["GEMM GFLOP"] = flops / 1e9
    result["GEMM GFLOP/s"] = flops / 1e6 / result["GEMM floor"]
    for side in ("minims", "torch"):
        if side in result:
            result[f"{side}/floor"] = result[side] / result["GEMM floor"]
    if "minims" in result and "torch" in result:
        result["ratio"] = result["minims"] / result["torch"]
    return result


def bench_vanilla_processes(args):
    """The same, but each side in its own fresh process: `--processes N` alternating pairs of
    child processes (minims, torch, minims, ...); each child reports its median step and the
    figure is the median over the children (PyTorch's OpenMP threads then cannot disturb
    minims, or the reverse)."""
    import subprocess
    import importlib.util
    available = ("minims", "torch") if importlib.util.find_spec("torch") else ("minims",)
    if args.impl == "torch" and "torch" not in available:
        raise _torch_missing()
    sides = available if args.impl == "both" else (args.impl,)
    medians = {**{side: [] for side in sides}, "GEMM floor": []}
    flops = None
    base = [args.case, *(f"--{k.replace('_', '-')}={getattr(args, k)}" for k in (
        "backend", "n_layer", "n_embd", "n_head", "block_size", "batch_size", "vocab_size",
        "dtype", "warmup", "repeat", "threads"))]
    for _ in range(args.processes):
        for side in sides:
            out = subprocess.run([sys.executable, "-m", "minims.bench", *base, "--impl", side, "--json"],
                                 capture_output=True, text=True)
            if out.returncode != 0:
                from .errors import UsageError
                last = (out.stderr.strip().splitlines() or ["(no message)"])[-1]
                raise UsageError(f"the {side} child process failed: {last}")
            rows = {r["impl"]: r for r in json.loads(out.stdout)["rows"]}
            medians[side].append(rows[side]["median_ms"])
            medians["GEMM floor"].append(rows["GEMM floor"]["median_ms"])
            flops = rows["GEMM GFLOP"]["value"] * 1e9
    return _vanilla_result({k: float(numpy.median(v)) for k, v in medians.items()}, flops)


def bench_speed(args):
    """speed: one training step per registered model; PyTorch alongside for vanilla."""
    from .models import MODELS, build_model
    from .optim import AdamW
    x, y = _batch(args)
    tokens = args.batch_size * args.block_size
    cases, params = {}, {}
    for name in MODELS:
        model = build_model(name, args.vocab_size, args.block_size, **_model_kwargs(args))
        cases[name] = _minims_step(model, x, y, AdamW(model.parameters()))
        params[name] = model.num_parameters()
        if name == "vanilla":
            torch_step = _torch_step(model.state_dict(), args, x, y, True)
            if torch_step is not None:
                cases["torch-vanilla"] = torch_step
    times = time_alternating(cases, args.warmup, args.repeat)
    rows = []
    for name, t in times.items():
        ms = median_ms(t)
        rows.append({"model": name, "params": params.get(name, params.get("vanilla")),
                     "step_ms": ms, "tokens_per_s": tokens / (ms / 1000.0)})
    if "torch-vanilla" in times:
        ratio = median_ms(times["vanilla"]) / median_ms(times["torch-vanilla"])
        rows.append({"model": "vanilla/torch ratio", "ratio": ratio})
    return rows


def bench_attention(args):
    """attention: ms per forward + backward of the fused causal attention op for each band
    size (queries per band; "none" = one band), all sizes alternating at each T."""
    from . import functional as F
    from .engine import Tensor
    rng = numpy.random.default_rng(0)
    hs = args.n_embd // args.n_head
    rows = []
    for T in (t for t in (128, 256, 512, 1024, 2048) if t <= args.max_t):
        shape = (args.batch_size, args.n_head, T, hs)
        q, k, v = (Tensor(rng.standard_normal(shape).astype(args.dtype), requires_grad=True)
                   for _ in range(3))
        g = rng.standard_normal(shape).astype(args.dtype)

        def case(n_bands):
            def run():
                out = F.ScaledDotProductAttention.apply(q, k, v, causal=True, scale=hs ** -0.5,
                                                        n_bands=n_bands)
                out.backward(g)
            return run
        sizes = {str(size): case(-(-T // size)) for size in (16, 32, 64, 128)}
        sizes["none"] = case(1)
        times = time_alternating(sizes, args.warmup, args.repeat)
        rows.append({"T": T, **{size: median_ms(t) for size, t in times.items()},
                     "default": F.ATTENTION_BAND_SIZE})
    return rows


def bench_threads(args):
    """threads: tokens/s of one training step (forward, backward, AdamW) of the vanilla model at
    each of --widths, with one BLAS thread and with one per core, the two alternating step by
    step (medians), the typical product's size (`threads.product_size`, millions of
    multiply-adds) and the threads --threads auto picks on a quiet machine (no other work) and
    with the other work measured before the run (`threads.other_work_now`)."""
    from .models import build_model
    from .optim import AdamW
    cores = threads.available_cores()
    other = threads.other_work_now()[0]
    counts = {"1 thread": 1}
    if cores > 1:
        counts[f"{cores} threads"] = cores
    x, y = _batch(args)
    tokens = args.batch_size * args.block_size
    rows = []
    for width in args.widths:
        model = build_model("vanilla", args.vocab_size, args.block_size,
                            **dict(_model_kwargs(args), n_embd=width))
        step = _minims_step(model, x, y, AdamW(model.parameters()))
        times = time_alternating(dict.fromkeys(counts, step), args.warmup, args.repeat,
                                 before=lambda name: threads.set_blas_threads(counts[name]))
        size = threads.product_size(tokens, width)
        row = {"n_embd": width, "product_M": size / 1e6}
        row.update({f"{name} tok/s": tokens / float(numpy.median(t)) for name, t in times.items()})
        if cores > 1:
            row["ratio"] = row[f"{cores} threads tok/s"] / row["1 thread tok/s"]
        row["auto, quiet"] = threads.choose_threads(size, cores, 0.0)
        row["other work"] = other
        row["auto, now"] = threads.choose_threads(size, cores, other)
        rows.append(row)
    return rows


def fit_exponent(ts, values):
    """Slope of log(value) against log(T): value ∝ T^slope."""
    return float(numpy.polyfit(numpy.log(ts), numpy.log(values), 1)[0])


def bench_memory(args):
    """memory: saved activation bytes (all, and attention's alone) and peak bytes per model,
    T = 256 … max_t, at equal total depth; then the growth exponent in T of each, fitted
    over all T and over the last doubling (where the T² parts dominate)."""
    from .memory import saved_bytes, track_memory
    from .models import MODELS, build_model
    ts = [t for t in (256, 512, 1024, 2048, 4096, 8192) if t <= args.max_t]
    keys = ("saved_bytes", "attention_bytes", "peak_bytes")
    rows = []
    for name in MODELS:
        series = {key: [] for key in keys}
        for T in ts:
            model = build_model(name, args.vocab_size, T, **_model_kwargs(args))
            rng = numpy.random.default_rng(0)
            idx = rng.integers(0, args.vocab_size, size=(args.batch_size, T + 1))
            with track_memory() as mem:
                _, loss = model(idx[:, :-1], idx[:, 1:])
                by_op = saved_bytes(loss, by="op")
                held = saved_bytes(loss)
                loss.backward()
            row = {"model": name, "T": T, "saved_bytes": held, "peak_bytes": mem["peak"],
                   "attention_bytes": sum(v for op, v in by_op.items() if "Attention" in op)}
            for key in keys:
                series[key].append(row[key])
            rows.append(row)
        rows.append({"model": name, "T": "exponent", **{k: fit_exponent(ts, series[k]) for k in keys}})
        if len(ts) > 2:
            rows.append({"model": name, "T": "exp. last 2×",
                         **{k: fit_exponent(ts[-2:], series[k][-2:]) for k in keys}})
    return rows


def bench_decode(args):
    """decode: tokens/s of `generate` with the cache and without it (the full forward pass per
    token), per model and block size, in wall-clock time; `cpu_speedup` is the same ratio in
    this process's CPU time (steadier on a shared machine); `same` says whether both sampled
    the same tokens."""
    from .models import MODELS, build_model
    rows = []
    sizes = list(dict.fromkeys([args.block_size, args.decode_block_size]))
    for T in sizes:
        kwargs = dict(_model_kwargs(args), block_size=T)
        for name in MODELS:
            model = build_model(name, args.vocab_size, **kwargs).eval()
            prompt = numpy.zeros((1, 1), dtype=numpy.int64)
            wall, cpu, outs = {True: [], False: []}, {True: [], False: []}, {}
            for _ in range(args.warmup):
                for cache in wall:
                    model.generate(prompt, 4, seed=0, cache=cache)
            for _ in range(args.repeat):
                for cache in wall:
                    backend.synchronize()
                    t0, c0 = time.perf_counter(), time.process_time()
                    outs[cache] = model.generate(prompt, T - 1, seed=0, cache=cache)
                    backend.synchronize()
                    wall[cache].append(time.perf_counter() - t0)
                    cpu[cache].append(time.process_time() - c0)
            cached, uncached = ((T - 1) / float(numpy.median(wall[c])) for c in (True, False))
            rows.append({"model": name, "block_size": T, "params": model.num_parameters(),
                         "cached_tok_s": cached, "uncached_tok_s": uncached,
                         "speedup": cached / uncached,
                         "cpu_speedup": float(numpy.median(cpu[False]) / max(numpy.median(cpu[True]), 1e-9)),
                         "same": "yes" if (outs[True] == outs[False]).all() else "no"})
    return rows


def _print_table(rows, columns):
    widths = [max(len(c), *(len(_fmt(r.get(c))) for r in rows)) for c in columns]
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths)))
    for r in rows:
        print("  ".join(_fmt(r.get(c)).ljust(w) for c, w in zip(columns, widths)))


def _fmt(v):
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.3g}" if abs(v) < 100 else f"{v:,.0f}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def build_parser():
    p = ArgumentParser(prog="python -m minims.bench", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("case", choices=["engine", "model", "speed", "memory", "attention", "decode", "threads"],
                   help="what to measure")
    p.add_argument("--backend", default=env_default("MINIMS_BACKEND", "numpy"), choices=backend.BACKENDS,
                   help="array backend (default: the environment variable MINIMS_BACKEND, else numpy)")
    p.add_argument("--n-layer", type=int, default=4, help="layers (default 4)")
    p.add_argument("--n-embd", type=int, default=128, help="width C (default 128)")
    p.add_argument("--n-head", type=int, default=4, help="attention heads (default 4)")
    p.add_argument("--block-size", type=int, default=None,
                   help="sequence length T (default 256; threads: 128, the trainer's)")
    p.add_argument("--batch-size", type=int, default=None,
                   help="batch size B (default 8; threads: 16, the trainer's)")
    p.add_argument("--vocab-size", type=int, default=256, help="vocabulary size (default 256)")
    p.add_argument("--dtype", default="float32", choices=["float32", "float64"], help="default float32")
    p.add_argument("--warmup", type=int, default=None,
                   help="untimed steps first (default 3; decode: 1 short generation per path)")
    p.add_argument("--repeat", type=int, default=None,
                   help="timed steps; the median is reported (default 10; decode: 1 generation per path)")
    p.add_argument("--max-t", type=int, default=2048,
                   help="memory, attention: largest T (default 2048); memory measures from T = 256 "
                        "and needs at least 512 (two lengths for its slope), attention from 128")
    p.add_argument("--decode-block-size", type=int, default=512,
                   help="decode: the second block size measured (default 512)")
    p.add_argument("--impl", default="both", choices=["both", "minims", "torch"],
                   help="engine/model: which implementations to time in this process (default both)")
    p.add_argument("--processes", type=int, default=0, metavar="N",
                   help="engine/model: instead, run each implementation in its own fresh process, "
                        "N alternating pairs, and report the medians over processes (default 0: "
                        "one process, the implementations alternating step by step)")
    p.add_argument("--widths", type=_widths, default=[32, 64, 96, 128, 192, 256, 512], metavar="C,C,...",
                   help="threads: the widths n_embd measured (default 32,64,96,128,192,256,512)")
    threads.add_threads_flag(p, "; the threads case sets them itself")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    return p


def _widths(text):
    try:
        widths = [int(w) for w in text.split(",")]
    except ValueError:
        widths = []
    if not widths or min(widths) < 1:
        raise argparse.ArgumentTypeError(f"expected whole numbers >= 1 separated by commas, got {text!r}")
    return widths


def main(argv=None):
    """The command line -> exit code (errors mapped by minims.cli.run_cli)."""
    return run_cli(_main, argv)


def _check_args(args):
    """UsageError naming the flag for sizes no benchmark can run with."""
    from .errors import UsageError
    from .models import ModelConfig
    for name in ("n_layer", "n_embd", "n_head", "block_size", "batch_size", "vocab_size", "repeat", "max_t"):
        if getattr(args, name) < 1:
            raise UsageError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}")
    if args.warmup < 0:
        raise UsageError(f"--warmup must be >= 0, got {args.warmup}")
    if args.processes < 0:
        raise UsageError(f"--processes must be >= 0, got {args.processes}")
    if args.case not in ("engine", "model") and (args.processes or args.impl != "both"):
        raise UsageError(f"--processes and --impl apply to the engine and model cases, not {args.case}")
    from .models import MODELS
    every_model = args.case in ("speed", "memory", "decode")
    sizes = {"--block-size": args.block_size}
    if args.case == "decode":    # (a generation fills the context from a 1-token prompt)
        sizes["--decode-block-size"] = args.decode_block_size
        for flag, T in sizes.items():
            if T < 2:
                raise UsageError(f"{flag} must be at least 2 for the decode case (it generates "
                                 f"block_size − 1 tokens), got {T}")
    widths = args.widths if args.case == "threads" else [args.n_embd]
    for flag, T in sizes.items():
        for name, cls in (MODELS.items() if every_model else [("vanilla", None)]):
            config = cls.Config if cls is not None else ModelConfig
            for width in widths:
                try:
                    config(vocab_size=args.vocab_size, block_size=T, n_layer=args.n_layer,
                           n_head=args.n_head, n_embd=width, dtype=args.dtype)
                except ValueError as e:
                    where = (f"{flag} {T}, " if len(sizes) > 1 else "") + f"the {name} model"
                    raise UsageError(f"{e}" + (f" ({where}; this case runs every model)" if every_model
                                               else f" (--widths {width})" if len(widths) > 1
                                               else "")) from None
    # (the first T measured, the least --max-t): memory fits a slope, so it needs two lengths
    first_t, least = {"memory": (256, 512), "attention": (128, 128)}.get(args.case, (None, None))
    if first_t and args.max_t < least:
        why = "; the growth exponent needs at least two lengths" if least > first_t else ""
        raise UsageError(f"--max-t must be at least {least} for the {args.case} case "
                         f"(it measures T = {first_t}, {2 * first_t}, … up to --max-t{why}), got {args.max_t}")


def _main(argv):
    args = build_parser().parse_args(argv)
    decode = args.case == "decode"
    args.warmup = (1 if decode else 3) if args.warmup is None else args.warmup
    args.repeat = (1 if decode else 10) if args.repeat is None else args.repeat
    trainer_sizes = args.case == "threads"
    if args.block_size is None:
        args.block_size = 128 if trainer_sizes else 256
    if args.batch_size is None:
        args.batch_size = 16 if trainer_sizes else 8
    _check_args(args)
    backend.set_backend(args.backend)
    allocator.reuse_freed_memory()  # as the trainer does (measured: see its docstring)
    rows_per_step = 1 * args.block_size if decode else args.batch_size * args.block_size
    chosen = threads.apply_threads(args.threads, threads.product_size(rows_per_step, args.n_embd))
    if args.case in ("engine", "model"):
        if args.processes:
            result = bench_vanilla_processes(args)
        else:
            result = bench_vanilla(args, with_optimizer=args.case == "model")
        rows = [{"impl": k, "median_ms": result[k]} for k in ("minims", "torch", "GEMM floor") if k in result]
        rows += [{"impl": k, "value": result[k]} for k in ("GEMM GFLOP", "GEMM GFLOP/s", "minims/floor", "torch/floor") if k in result]
        if "ratio" in result:
            rows.append({"impl": "minims/torch ratio", "value": result["ratio"]})
        columns = ["impl", "median_ms", "value"]
    elif args.case == "speed":
        rows = bench_speed(args)
        columns = ["model", "params", "step_ms", "tokens_per_s", "ratio"]
    elif args.case == "attention":
        rows = bench_attention(args)
        columns = ["T", "16", "32", "64", "128", "none", "default"]
    elif args.case == "threads":
        rows = bench_threads(args)
        columns = list(rows[0])
    elif decode:
        rows = bench_decode(args)
        columns = ["model", "block_size", "params", "cached_tok_s", "uncached_tok_s", "speedup",
                   "cpu_speedup", "same"]
    else:
        rows = bench_memory(args)
        columns = ["model", "T", "saved_bytes", "attention_bytes", "peak_bytes"]
    env = environment()  # (after the run: it reports PyTorch's threads only if the run used it)
    env["threads_chosen"] = chosen.describe() if args.case != "threads" else (
        f"1 and {threads.available_cores()} alternating; MIN_THREADED_PRODUCT = "
        f"{threads.MIN_THREADED_PRODUCT:,}")
    config = {k: getattr(args, k) for k in ("n_layer", "n_embd", "n_head", "block_size",
                                            "batch_size", "vocab_size", "dtype", "repeat")}
    if decode:                                          # (decoding runs one sequence)
        config.update(batch_size=1, decode_block_size=args.decode_block_size)
    if args.case in ("engine", "model"):
        config.update(impl=args.impl, processes=args.processes)
    if args.case == "threads":
        config.update(widths=args.widths)
        del config["n_embd"]
    if args.json:
        print(json.dumps({"case": args.case, "config": config, "environment": env, "rows": rows},
                         indent=2))
    else:
        print(f"# {args.case}: {config}")
        print(f"# {env}")
        _print_table(rows, columns)
    return 0


if __name__ == "__main__":
    sys.exit(main())
