"""Checkers for the lessons' exercises, and the scaffolding some exercises need (ours).

Every exercise of a lesson has an id "NN.i" (lesson NN, exercise i) and a checker here:

    from lessons.support.exercises import check
    check("05.3", my_answer)      # prints "05.3 right: ..." or "05.3 not yet: <what is off>"

`check` returns True or False, so a notebook cell can also assert it. What form an answer takes
(a number, a dict, a function) is said in the exercise's text and in the checker's docstring
(`help_for("05.3")` prints it; it never gives the answer away). An answer that is a word from a
fixed set ("delay", "layers", an op's name) is compared with `same_word`, without case or
surrounding space: "Delay " is "delay". The reference solutions live in `lessons/solutions.py`; the test suite
runs each through its checker, and a wrong answer through it too, so neither can rot.

Scaffolding:
- `gradient_check(fn, x, dtype)`: a directional gradient check in float64 or float32, with the
  step and tolerance each dtype forces (lesson 03, exercise 1);
- `patched(function, old, new)`: a copy of a function with one piece of its source replaced,
  whose `inspect.getsource` shows the edited source (lesson 02, exercise 3);
- `record_calls(...)`: watch the order of calls, for the timing exercises (00.3, 12.2).
"""
import contextlib
import inspect
import linecache
import math
import textwrap

import numpy

from minims import backend
from minims.engine import Tensor

CHECKERS = {}     # "NN.i" -> (title, checker(answer) -> (ok: bool, message: str))


def checker(exercise, title):
    """Register `fn(answer) -> (ok, message)` as the checker of exercise "NN.i"."""
    def register(fn):
        CHECKERS[exercise] = (title, fn)
        return fn
    return register


def check(exercise, answer):
    """Check `answer` to exercise "NN.i" (e.g. "05.3"): prints one line, right or what is off;
    -> True when right. KeyError naming the known ids for an unknown exercise."""
    if exercise not in CHECKERS:
        raise KeyError(f"no exercise {exercise!r}; known: {', '.join(sorted(CHECKERS))}")
    title, fn = CHECKERS[exercise]
    ok, message = _run(fn, answer)
    number = _as_number(answer)
    if not ok and number is not None and _run(fn, number)[0]:     # "4" for 4: say so, not "wrong"
        message = f"give it as a number, {number!r}, not as the text {answer!r}"
    print(f"{exercise} ({title}) {'right' if ok else 'not yet'}: {message}")
    return bool(ok)


def _run(fn, answer):
    try:
        return fn(answer)
    except Exception as e:   # the learner's code failed inside the checker: say so, do not crash
        return False, f"your answer raised {type(e).__name__}: {e}"


def _as_number(answer):
    """The int or float a text answer spells ("4", " 0.5 "), else None."""
    if not isinstance(answer, str):
        return None
    for kind in (int, float):
        try:
            return kind(answer.strip())
        except ValueError:
            pass
    return None


def help_for(exercise):
    """What form the checker of exercise "NN.i" expects the answer in (its docstring: a number,
    a dict with these keys, a function of these arguments), as a string; not the answer."""
    return inspect.getdoc(CHECKERS[exercise][1])


def same_word(answer, expected):
    """True when `answer` is the word `expected` whatever its case and surrounding spaces; False
    for an answer that is not a string. Every checker whose answer is a word uses it (ours: a
    learner's "Delay" means "delay")."""
    return isinstance(answer, str) and answer.strip().casefold() == expected.strip().casefold()


# --- scaffolding ------------------------------------------------------------------------------

def patched(function, old, new):
    """A copy of `function` with the text `old` of its source replaced by `new` (once), compiled
    in the function's own module, so it sees the same names. `inspect.getsource` works on the
    copy and shows the edited source (it is registered with `linecache` under a made-up file
    name). The original is untouched; assign the copy where you want it, e.g.
    `Tensor.backward = patched(Tensor.backward, "grads[key] + pg", "pg")`, and put the original
    back afterwards. ValueError when `old` is not in the source exactly once.
    """
    source = textwrap.dedent(inspect.getsource(function))
    if source.count(old) != 1:
        raise ValueError(f"{old!r} occurs {source.count(old)} times in {function.__qualname__}; "
                         "give a piece of source that occurs exactly once")
    source = source.replace(old, new)
    filename = f"<patched {function.__module__}.{function.__qualname__}>"
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    namespace = dict(function.__globals__)
    exec(compile(source, filename, "exec"), namespace)
    copy = namespace[function.__name__]
    copy.__qualname__ = function.__qualname__
    return copy


def gradient_check(fn, x, dtype="float64", seed=0):
    """Compare the engine's gradient of L = <w, fn(x)> with a central difference along a random
    direction, everything in `dtype` -> (relative error, tolerance, caught: error > tolerance).

    float64: step 1e-6, tolerance 1e-7 (tight, as the project's harness). float32: step 1e-2 and
    tolerance 1e-2: lesson 03 measures errors of 1e-5 to 1e-3 at the best float32 steps on one
    smooth function, and a check meant for every op and input needs a margin above that (the
    roundoff of a float32 difference grows as the loss grows and the step shrinks). `fn` maps
    a Tensor to a Tensor; `x` is a NumPy array.
    """
    eps, tol = {"float64": (1e-6, 1e-7), "float32": (1e-2, 1e-2)}[numpy.dtype(dtype).name]
    rng = numpy.random.default_rng(seed)
    x = numpy.asarray(x, dtype=dtype)
    xt = Tensor(x, requires_grad=True)
    out = fn(xt)
    w = rng.standard_normal(out.shape).astype(dtype)
    out.backward(backend.asarray(w))
    d = rng.standard_normal(x.shape).astype(dtype)

    def loss(a):
        return float((backend.to_numpy(fn(Tensor(a)).data) * w).sum(dtype=dtype))

    numeric = (loss(x + eps * d) - loss(x - eps * d)) / (2 * eps)
    analytic = float((backend.to_numpy(xt.grad) * d).sum())
    error = abs(numeric - analytic) / max(abs(numeric), abs(analytic), 1e-12)
    return error, tol, error > tol


@contextlib.contextmanager
def record_calls(events):
    """Within the block, `minims.backend.synchronize` also appends "synchronize" to `events`
    (a list); use `events.append(...)` in your own code to mark other steps."""
    original = backend.synchronize

    def watched():
        events.append("synchronize")
        return original()

    backend.synchronize = watched
    try:
        yield events
    finally:
        backend.synchronize = original


def _close(a, b, rtol=1e-8, atol=1e-10):
    return numpy.allclose(backend.to_numpy(a), backend.to_numpy(b), rtol=rtol, atol=atol)


def _timing_habit(timed, label):
    """Shared by 00.3 and 12.2: `timed(fn, sync)` must call synchronize after fn, and only when
    sync is true."""
    events = []
    with record_calls(events):
        timed(lambda: events.append("work"), True)
        with_sync = list(events)
        events.clear()
        timed(lambda: events.append("work"), False)
        without = list(events)
    if "work" not in with_sync:
        return False, "timed(fn, True) never called fn"
    if "synchronize" not in with_sync[with_sync.index("work"):]:
        return False, f"timed(fn, True) must call minims.backend.synchronize() after {label}, before stopping the clock"
    if "synchronize" in without:
        return False, "timed(fn, False) should not synchronize (it is the wrong measurement, on purpose)"
    return True, (f"you synchronize after {label}. On a GPU the unsynchronized time measures only the "
                  "launch of the kernels; on a CPU the two agree (synchronize does nothing there)")


# --- lesson 00 ----------------------------------------------------------------------------------

@checker("00.1", "a backend-agnostic function")
def _check_00_1(normalize):
    """Answer: your function normalize(a) -> a / rms(a), with rms(a) = sqrt(mean(a**2))."""
    a = backend.asarray([3.0, 4.0])
    out = normalize(a)
    if not isinstance(out, type(a)):
        return False, f"returned a {type(out).__name__}, not an array of the active backend ({type(a).__name__})"
    if not _close(out, numpy.array([3.0, 4.0]) / math.sqrt(12.5)):
        return False, f"normalize([3, 4]) gave {backend.to_numpy(out)}, expected [3, 4] / sqrt(12.5)"
    x = backend.asarray(numpy.random.default_rng(0).standard_normal((3, 5)))
    y = backend.to_numpy(normalize(x))
    if y.shape != (3, 5) or not math.isclose(float(numpy.sqrt((y ** 2).mean())), 1.0, rel_tol=1e-9):
        return False, "on a (3, 5) array the result should keep the shape and have rms 1 (over all entries)"
    try:
        source = inspect.getsource(normalize)
    except (OSError, TypeError):
        source = ""
    if "numpy" in source or "np." in source:
        return False, "it works, but uses NumPy by name: take xp = minims.backend.xp inside the function"
    return True, "the result has rms 1 and stays on the active backend"


@checker("00.2", "bytes per number")
def _check_00_2(answer):
    """Answer: {"float32": bytes, "float64": bytes, "bool": bytes} measured for one (1000, 1000)
    array each with minims.memory.track_memory()."""
    expected = {"float32": 4_000_000, "float64": 8_000_000, "bool": 1_000_000}
    for key, value in expected.items():
        if key not in answer:
            return False, f"missing {key!r} (give bytes for float32, float64 and bool)"
        if not 0.95 * value <= answer[key] <= 1.1 * value:
            return False, f"{key}: {answer[key]:,} bytes; expected about {value:,} (1e6 numbers × its size)"
    return True, "4, 8 and 1 bytes per number: a boolean takes a whole byte, not a bit"


@checker("00.3", "timing with synchronize")
def _check_00_3(timed):
    """Answer: your function timed(fn, sync) -> seconds: runs fn() once and returns how long it
    took, calling minims.backend.synchronize() before stopping the clock when sync is True.
    (Use it with fn = lambda: a @ a to answer the questions on a GPU.)"""
    return _timing_habit(timed, "the work")


# --- lesson 01 ----------------------------------------------------------------------------------

def _two_layer(seed=0, N=5, D=3, H=4, O=2):
    rng = numpy.random.default_rng(seed)
    return (rng.standard_normal((N, D)), rng.standard_normal((D, H)), rng.standard_normal(H),
            rng.standard_normal((H, O)), rng.standard_normal(O), rng.standard_normal((N, O)))


@checker("01.1", "ReLU instead of tanh")
def _check_01_1(backward):
    """Answer: your function backward(X, W1, b1, W2, b2, Y) -> (dW1, db1, dW2, db2) by hand for
    A = X W1 + b1, H = relu(A), Yhat = H W2 + b2, L = sum((Yhat - Y)**2) / (2N)."""
    X, W1, b1, W2, b2, Y = _two_layer()
    ts = [Tensor(a, requires_grad=True) for a in (W1, b1, W2, b2)]
    Yhat = (Tensor(X) @ ts[0] + ts[1]).relu() @ ts[2] + ts[3]
    (((Yhat - Tensor(Y)) ** 2).sum() * (1 / (2 * len(X)))).backward()
    mine = backward(X, W1, b1, W2, b2, Y)
    for name, got, t in zip(("dW1", "db1", "dW2", "db2"), mine, ts):
        if numpy.shape(got) != t.shape:
            return False, f"{name} has shape {numpy.shape(got)}, expected {t.shape}"
        if not _close(got, t.grad):
            return False, f"{name} differs from the engine's (max |diff| {numpy.abs(got - t.grad).max():.2e})"
    return True, "all four gradients match the engine's"


@checker("01.2", "cross-entropy")
def _check_01_2(dlogits):
    """Answer: your function dlogits(Yhat, labels) -> dL/dYhat by hand for
    L = minims.functional.cross_entropy(Yhat, labels) (mean over the N rows)."""
    from minims import functional as F
    rng = numpy.random.default_rng(1)
    Yhat = rng.standard_normal((6, 4))
    labels = rng.integers(0, 4, 6)
    t = Tensor(Yhat, requires_grad=True)
    F.cross_entropy(t, labels).backward()
    got = numpy.asarray(dlogits(Yhat, labels))
    if got.shape != Yhat.shape:
        return False, f"shape {got.shape}, expected {Yhat.shape}"
    if not _close(got, t.grad):
        return False, "differs from the engine's gradient: is it (softmax(Yhat) - onehot) / N?"
    return True, "(softmax - onehot) / N, as the engine computes"


@checker("01.3", "count the work")
def _check_01_3(answer):
    """Answer: the number of matrix multiplies the backward pass of a three-layer network
    (three X W products in the forward) needs, an int."""
    if answer == 5:
        return True, "two per layer (dW and d-input), minus the dX nobody needs: 2·3 − 1 = 5, vs 3 forward"
    if answer == 6:
        return False, "6 counts dX too: nobody needs the gradient of the data"
    return False, f"{answer}: count dW and d-input for each layer, then drop the one nobody needs"


# --- lesson 02 ----------------------------------------------------------------------------------

@checker("02.1", "your own op")
def _check_02_1(Sin):
    """Answer: your class Sin(minims.Function) (forward: sin, backward: g * cos)."""
    x = numpy.linspace(-3, 3, 7)
    t = Tensor(x, requires_grad=True)
    y = Sin.apply(t)
    if not _close(y.data, numpy.sin(x)):
        return False, "the forward is not sin(x)"
    w = numpy.arange(1.0, 8.0)
    y.backward(backend.asarray(w))
    if t.grad is None or not _close(t.grad, w * numpy.cos(x)):
        return False, "the backward should return g * cos(a)"
    return True, "forward sin, backward g·cos: lesson 03 shows how to check it with the harness"


@checker("02.2", "constants are not walked")
def _check_02_2(order):
    """Answer: the list `loss._topological_order()` for loss = (x * Tensor(2.0)).sum() with
    x = Tensor(..., requires_grad=True)."""
    order = list(order)
    if any(not n.requires_grad for n in order):
        return False, "your order holds a tensor that needs no gradient: is x requires_grad=True?"
    if len(order) != 3:
        return False, f"expected 3 nodes (the sum, the product, x), got {len(order)}"
    return True, "the sum, the product and x; the constant needs no gradient, so `needs` skips it"


@checker("02.3", "break it on purpose")
def _check_02_3(section):
    """Answer: the number of the lesson's section whose check fails first (an int) when backward
    stores `pg` instead of adding `grads[key] + pg`."""
    if section == 4:
        return True, ("section 4: e = tanh(ab + a) uses a twice, and with `pg` instead of "
                      "`grads[key] + pg` one of the two paths is lost (section 5 fails as well)")
    if section == 5:
        return False, ("section 5 fails too, but an earlier one fails first: which of the lesson's "
                       "examples uses a value twice before section 5?")
    return False, f"section {section}: which checks involve a value used twice?"


# --- lesson 03 ----------------------------------------------------------------------------------

@checker("03.1", "float32 hides small bugs")
def _check_03_1(answer):
    """Answer: {"float64_caught": bool, "float32_caught": bool}: whether the gradient check caught
    the softmax backward scaled by 1 + 1e-4 (use gradient_check(fn, x, dtype))."""
    if answer.get("float64_caught") is not True:
        return False, "in float64 (error ~1e-4 vs tolerance 1e-7) the check does catch it"
    if answer.get("float32_caught") is not False:
        return False, "in float32 the tolerance must be ~1e-2, so a 1e-4 error passes unseen"
    return True, "float64 catches a 1e-4 error; the loose tolerance float32 forces does not"


@checker("03.2", "a kink on purpose")
def _check_03_2(answer):
    """Answer: the indices (a list) of the inputs in [0.0, 1e-7, 1.0] where the numeric and the
    engine's gradient of ReLU disagree."""
    if sorted(answer) == [0, 1]:
        return True, ("0.0 is the kink and 1e-7 lies within the finite-difference step of it: the "
                      "difference straddles the kink, the op is right")
    return False, f"{sorted(answer)}: which inputs are within the step (1e-6) of the kink at 0?"


@checker("03.3", "check your own op")
def _check_03_3(answer):
    """Answer: {"+cos": caught?, "-cos": ..., "sin": ...}, whether check_op caught each backward
    of Sin, a bool each ("+cos", which may also be spelled "cos", is the correct g * cos)."""
    missing = [key for key in ("+cos", "-cos", "sin") if not isinstance(answer.get(key), bool)
               and not (key == "+cos" and isinstance(answer.get("cos"), bool))]
    if missing:
        return False, (f"say True or False for each of +cos, -cos and sin (missing or not a "
                       f"bool: {', '.join(missing)})")
    expected = {"-cos": True, "sin": True}
    for key, value in expected.items():
        if answer.get(key) is not value:
            return False, f"{key}: the harness does catch it (the gradient is wrong at almost every point)"
    for key in ("cos", "+cos"):
        if answer.get(key, False):
            return False, f"{key} is the correct backward: the harness should pass it"
    return True, "the correct backward passes, -cos and sin are caught"


# --- lesson 04 ----------------------------------------------------------------------------------

@checker("04.1", "cross-entropy from its parts")
def _check_04_1(ce_from_parts):
    """Answer: your function ce_from_parts(z, t) -> the loss Tensor
    -(F.log_softmax(z) * onehot).sum() / N, for a Tensor z (N, V) and integer targets t (N,)."""
    from minims import functional as F
    rng = numpy.random.default_rng(2)
    z0, t = rng.standard_normal((5, 7)), rng.integers(0, 7, 5)
    za, zb = Tensor(z0, requires_grad=True), Tensor(z0, requires_grad=True)
    la, lb = F.cross_entropy(za, t), ce_from_parts(zb, t)
    la.backward()
    lb.backward()
    if not math.isclose(la.item(), lb.item(), rel_tol=1e-12):
        return False, f"value {lb.item()} vs cross_entropy {la.item()}"
    if zb.grad is None or not _close(za.grad, zb.grad, rtol=1e-10, atol=1e-14):
        return False, "values agree but the gradients do not"
    return True, "same value and same gradient as the fused cross-entropy"


@checker("04.2", "RMSNorm")
def _check_04_2(backward):
    """Answer: your function backward(x, w, g, eps) -> (dx, dw) for y = x * r * w with
    r = (mean(x**2, last axis) + eps) ** -0.5 and upstream gradient g (all NumPy, x (N, C))."""
    rng = numpy.random.default_rng(3)
    x0, w0, g = rng.standard_normal((4, 6)), rng.standard_normal(6), rng.standard_normal((4, 6))
    eps = 1e-5
    x, w = Tensor(x0, requires_grad=True), Tensor(w0, requires_grad=True)
    y = x / ((x * x).mean(axis=-1, keepdims=True) + eps).sqrt() * w
    y.backward(backend.asarray(g))
    dx, dw = backward(x0, w0, g, eps)
    if not _close(dx, x.grad):
        return False, "dx differs from the composed version's: r(ĝ − x̂·mean(ĝ ⊙ x̂)) with ĝ = g ⊙ w"
    if not _close(dw, w.grad):
        return False, "dw differs: sum over rows of g ⊙ x̂"
    return True, "dx and dw match the engine on the composed RMSNorm"


@checker("04.3", "where does the memory go")
def _check_04_3(op_name):
    """Answer: the name of the primitive op (as saved_bytes(y, by="op") prints it) that saves the
    most bytes in the composed GELU 0.5·x·(1 + tanh(c·(x + 0.044715·x³)))."""
    from minims import memory
    x = Tensor(numpy.random.default_rng(4).standard_normal((64, 64)), requires_grad=True)
    c = math.sqrt(2 / math.pi)
    y = 0.5 * x * (1 + (c * (x + 0.044715 * x ** 3)).tanh())
    by_op = memory.saved_bytes(y, by="op")
    top = max(by_op, key=by_op.get)
    if same_word(op_name, top):
        return True, f"{top} saves {by_op[top]:,} of {sum(by_op.values()):,} bytes: each Mul keeps both operands"
    return False, f"{op_name!r}: print saved_bytes(y, by='op') and take the largest"


# --- lesson 05 ----------------------------------------------------------------------------------

@checker("05.1", "break the mask")
def _check_05_1(attention):
    """Answer: your step-by-step function attention(q, k, v, allowed) -> O (Tensors (B, nh, T, hs),
    `allowed` a boolean (T, T) "may attend" array). Checked: with np.tril it is causal, with
    np.tril(..., k=1) the outputs at t-1 move when the inputs from t on change."""
    from minims import functional as F
    rng = numpy.random.default_rng(5)
    T, t = 8, 5
    q, k, v = rng.standard_normal((3, 1, 2, T, 4))
    k2, v2 = k.copy(), v.copy()
    k2[..., t:, :] += 1.0
    v2[..., t:, :] += 1.0
    results = {}
    for shift in (0, 1):
        allowed = numpy.tril(numpy.ones((T, T), dtype=bool), k=shift)
        a = backend.to_numpy(attention(Tensor(q), Tensor(k), Tensor(v), allowed).data)
        b = backend.to_numpy(attention(Tensor(q), Tensor(k2), Tensor(v2), allowed).data)
        results[shift] = [i for i in range(t) if numpy.abs(a[..., i, :] - b[..., i, :]).max() > 0]
    reference = F.scaled_dot_product_attention(Tensor(q), Tensor(k), Tensor(v), causal=True)
    mine = attention(Tensor(q), Tensor(k), Tensor(v), numpy.tril(numpy.ones((T, T), dtype=bool)))
    if not _close(mine.data, reference.data):
        return False, "with the causal mask your function differs from the library's attention"
    if results[0]:
        return False, f"with np.tril, positions {results[0]} moved: the mask is not applied"
    if results[1] != [t - 1]:
        return False, f"with np.tril(k=1) positions {results[1]} moved; expected exactly [{t - 1}]"
    return True, f"causal with np.tril; with k=1 exactly position {t - 1} sees position {t}"


@checker("05.2", "heads and memory")
def _check_05_2(answer):
    """Answer: {"T": T, "P": {n_head: bytes of P}, "rest": {n_head: all other saved bytes}} for
    one CausalSelfAttention of fixed C at length T and B=1, float32, for at least 3 head counts."""
    T, P, rest = answer["T"], answer["P"], answer["rest"]
    heads = sorted(P)
    if len(heads) < 3:
        return False, "measure at least three values of n_head"
    # causal attention keeps its probabilities in bands of queries, each with the keys up to
    # its end: band [a, b) holds (b − a)·b numbers per head
    from minims.functional import ATTENTION_BAND_SIZE, causal_bands
    per_head = sum((b - a) * kb for a, b, kb in causal_bands(T))
    for nh in heads:
        if P[nh] != nh * per_head * 4:
            return False, (f"P at n_head={nh}: {P[nh]:,} bytes; (B, nh, T, T) float32 is "
                           f"{nh * T * T * 4:,}, and the bands of {ATTENTION_BAND_SIZE} queries "
                           f"keep {nh * per_head * 4:,} of it")
    if len({rest[nh] for nh in heads}) != 1:
        return False, "the rest should not depend on n_head: q, k, v and the projections keep C channels"
    return True, "P grows in proportion to n_head; the rest stays the same (C channels, however split)"


@checker("05.3", "local attention memory")
def _check_05_3(nonzero):
    """Answer: your function nonzero(T, w) -> the number of (query, key) pairs a causal local
    window of w tokens allows (query t sees keys max(0, t-w+1) .. t)."""
    for T, w in ((8, 3), (64, 16), (100, 1), (10, 20)):
        idx = numpy.arange(T)
        allowed = (idx[:, None] >= idx[None, :]) & (idx[:, None] - idx[None, :] < w)
        if nonzero(T, w) != int(allowed.sum()):
            return False, f"nonzero({T}, {w}) = {nonzero(T, w)}, the mask has {int(allowed.sum())}"
    return True, "about T·w of the T² entries: the rest of the stored matrix is zeros"


# --- lesson 06 ----------------------------------------------------------------------------------

@checker("06.1", "depth vs memory")
def _check_06_1(answer):
    """Answer: {"n_layer=2": bytes, "n_layer=8": bytes, "n_layer=2, 2T": bytes}: saved_bytes(loss)
    of one batch for the vanilla model with 2 layers, 8 layers, and 2 layers at twice the
    block_size (everything else the same), and "faster": "layers" or "block_size" (which of
    the two, per doubling, grows the memory more)."""
    m2, m8, m2T = answer["n_layer=2"], answer["n_layer=8"], answer["n_layer=2, 2T"]
    if not 2 < m8 / m2 < 4:
        return False, (f"8 layers hold {m8 / m2:.2f}× the memory of 2: with the embeddings and head "
                       "fixed, expect between 2× and 4×")
    if not 2 <= m2T / m2 <= 4:
        return False, f"twice the length gave {m2T / m2:.2f}×; expect between 2× (linear parts) and 4× (attention)"
    want = "block_size" if m2T / m2 > (m8 / m2) ** (1 / 2) else "layers"
    if not same_word(answer.get("faster"), want):
        return False, f"per doubling, your numbers say {want} grows the memory faster"
    return True, (f"doubling T: ×{m2T / m2:.2f}; doubling depth: ×{(m8 / m2) ** 0.5:.2f}: layers add "
                  "memory linearly, attention grows with T²")


@checker("06.2", "temperature")
def _check_06_2(answer):
    """Answer: {"repeats": temperature, "invents": temperature}, each one of 0.5, 1.0, 1.5."""
    if answer.get("repeats") == 0.5 and answer.get("invents") == 1.5:
        return True, ("dividing the logits by 0.5 sharpens the softmax (the likeliest characters, "
                      "again and again); by 1.5 flattens it (rare characters, invented words)")
    return False, "a temperature below 1 sharpens the distribution, above 1 flattens it: which repeats?"


@checker("06.3", "your own text")
def _check_06_3(result):
    """Answer: the dict minims.train.train(...) returned for a run on your own text."""
    if result["val_ppl"] < result["unigram_ppl"]:
        return True, (f"valid perplexity {result['val_ppl']:.2f} beats the unigram's "
                      f"{result['unigram_ppl']:.2f}: it learned something about context")
    return False, (f"valid perplexity {result['val_ppl']:.2f} does not beat the unigram's "
                   f"{result['unigram_ppl']:.2f}: train longer (--max-iters) or on more text")


# --- lesson 07 ----------------------------------------------------------------------------------

def _future_rows(matrix):
    return [t for t in range(matrix.shape[0]) if (numpy.asarray(matrix)[t, t + 1:] != 0).any()]


@checker("07.1", "two scales")
def _check_07_1(answer):
    """Answer: {"causal": bool, "leaking_rows": [t, ...]} for T = 16: whether
    upsample(shorten(shorten(eye, 2), 2), 4) is causal, and the rows t of the broken variant
    upsample(shorten_without_shift(shorten(eye, 2), 2), 4) that depend on the future."""
    from minims.functional import shorten, upsample
    eye = Tensor(numpy.eye(16)[None])
    x = shorten(eye, 2)
    broken = x.reshape(1, 4, 2, 16).mean(axis=2)              # the second pooling without its shift
    rows = _future_rows(upsample(broken, 4).numpy()[0])
    if answer.get("causal") is not True:
        return False, "shorten applied twice shifts at both levels: the picture has nothing right of the diagonal"
    if sorted(answer.get("leaking_rows", [])) != rows:
        return False, f"leaking rows {sorted(answer.get('leaking_rows', []))}; the picture says otherwise"
    return True, f"causal with a shift per level; shifting only at the first leaks at rows {rows}"


@checker("07.2", "the other causal option")
def _check_07_2(answer):
    """Answer: "delay" or "shift": which recipe is staler (the newest token a position sees is
    further in its past)."""
    if same_word(answer, "delay"):
        return True, ("with k = 2 the delay gives position t the block ending at t − 1 − t mod 2, "
                      "the shift the one ending at t − t mod 2: the delay is one token staler")
    if not same_word(answer, "shift"):
        return False, f"{answer!r}: answer with one of the two words, \"delay\" or \"shift\""
    return False, "compare the newest token each position sees in the two pictures"


@checker("07.3", "the strided mistake")
def _check_07_3(shorten_strided):
    """Answer: your function shorten_strided(x, k): shift_right(x, k - 1), then
    reshape(B, k, T // k, C).mean(axis=1). Checked: it leaks, as the picture of the round trip
    shows (rows t that depend on a later position)."""
    from minims.functional import shift_right, upsample
    T, k = 12, 3
    eye = Tensor(numpy.eye(T)[None])
    mine = shorten_strided(eye, k)
    expected = shift_right(eye, k - 1).reshape(1, k, T // k, T).mean(axis=1)
    if mine.shape != expected.shape or not _close(mine.data, expected.data):
        return False, "not the strided pooling after the shift: reshape(B, k, T // k, C).mean(axis=1)"
    rows = _future_rows(upsample(mine, k).numpy()[0])
    return True, f"it leaks at {len(rows)} of {T} positions (T = {T}, k = {k}): far-future tokens, not neighbours"


# --- lessons 08-10: the measures the lessons use ------------------------------------------------

def _scope_bytes(name, T, **options):
    """Lesson 08's memory_by_scope: memory.forward_bytes by top-level module, batch 2, 4 heads,
    width 64, V 50."""
    from minims import memory
    from minims.models import build_model
    model = build_model(name, vocab_size=50, block_size=T, n_head=4, n_embd=64, **options)
    return memory.forward_bytes(model, 2, T, by="scope", depth=1)


def _held_bytes(name, T, **options):
    """Lessons 09 and 10's measure: memory.activation_bytes (all bytes), batch 2, 4 heads,
    width 64, V 50."""
    from minims import memory
    from minims.models import build_model
    model = build_model(name, vocab_size=50, block_size=T, n_head=4, n_embd=64, **options)
    return memory.activation_bytes(model, 2, T)[0]


def _same_bytes(got, want):
    return abs(got - want) <= 0.005 * want


# --- lesson 08 ----------------------------------------------------------------------------------

@checker("08.1", "the window")
def _check_08_1(answer):
    """Answer: {"T": T, "fine": {w: bytes}}: the `fine` entry of lesson 08's
    memory_by_scope("top-down", T, layout="2-2", window=w) for three or more windows w < T
    (the exercise: T = 1024, w = 8, 32, 128; any T >= 256 is checked)."""
    T, fine = answer["T"], answer["fine"]
    windows = sorted(fine)
    if T < 256 or len(windows) < 3 or windows[-1] >= T:
        return False, "give T >= 256 and at least three windows smaller than T"
    for w in windows:
        want = _scope_bytes("top-down", T, layout="2-2", window=w)["fine"]
        if not _same_bytes(fine[w], want):
            return False, f"window {w}: {fine[w]:,} bytes; the fine stack holds {want:,} (batch 2, 4 heads, width 64)"
    wide = [w for w in windows if w >= 16]
    steps = [(fine[b] - fine[a]) / (b - a) for a, b in zip(wide, wide[1:])]
    text = ", ".join(f"{s:,.0f}" for s in steps)
    return True, (f"from w = 16 on each extra key adds about the same bytes ({text} per unit of w): "
                  "linear in w; below 16 the query chunk of 16 sets the size")


def _coarse_lag(k, mode, T=32):
    """The largest t - i over positions t >= k, i the newest token the coarse path has seen at t
    (lesson 07's round trip on an identity: shift and pool, or pool and delay by a block)."""
    from minims.functional import shift_right, shorten, upsample
    eye = Tensor(numpy.eye(T)[None])                                       # (1, T, T)
    coarse = shorten(eye, k) if mode == "shift" else shift_right(shorten(eye, k, shift=False), 1)
    seen = upsample(coarse, k).numpy()[0] != 0                             # (T, T): t <- i
    return max(t - int(numpy.nonzero(seen[t])[0].max()) for t in range(k, T))


@checker("08.2", "the other causal mode")
def _check_08_2(answer):
    """Answer: {"model": a top-down model built with causal_mode="delay", "causal": True or False
    (what assert_causal told you), "lag": {"shift": n, "delay": n}}: for the model's pool k, the
    largest number of tokens by which the coarse context at a position t >= k trails t (t minus
    the newest token the coarse path has seen). The checker runs its own perturbation test."""
    from minims.testing.causality import causality_report
    model = answer["model"]
    mode = getattr(model.config, "causal_mode", None)
    if mode != "delay":
        return False, f"the model's causal_mode is {mode!r}: build it with causal_mode='delay'"
    T = min(model.config.block_size, 64)
    idx = numpy.random.default_rng(0).integers(0, model.config.vocab_size, size=(2, T))
    report = causality_report(model, idx)
    causal = bool(report[:, 0].max() == 0 and report[:, 2].max() == 0)
    if answer["causal"] != causal:
        return False, f"our test says causal = {causal}; run assert_causal(model, idx) again"
    k = model.config.pool
    want = {mode: _coarse_lag(k, mode) for mode in ("shift", "delay")}
    for mode, lag in want.items():
        if answer["lag"].get(mode) != lag:
            return False, (f"lag of {mode!r}: {answer['lag'].get(mode)}; draw lesson 07's round trip for that "
                           f"mode with k={k} and read, row by row, the newest token each position sees")
    return True, (f"still causal, and staler: with k={k} the shift trails by up to {want['shift']} tokens, the "
                  f"delay by up to {want['delay']} (it hands block j, as it stands, to the positions of block j + 1)")


@checker("08.3", "three tiers")
def _check_08_3(answer):
    """Answer: {"T": T, "2-2-2": bytes, "4-2": bytes}: the total of lesson 08's
    memory_by_scope("top-down", T, layout=...) (pool 4) for both layouts, at any T >= 64 that
    is a multiple of 16."""
    T = answer["T"]
    if T < 64 or T % 16:
        return False, "choose T >= 64, a multiple of 16 (the coarsest blocks span 16 tokens)"
    want = {layout: sum(_scope_bytes("top-down", T, layout=layout, pool=4).values()) for layout in ("2-2-2", "4-2")}
    for layout, value in want.items():
        if not _same_bytes(answer[layout], value):
            return False, f"{layout}: {answer[layout]:,} bytes; the model holds {value:,} at T={T}"
    less = min(want, key=want.get)
    return True, (f"{less} holds less ({want['2-2-2'] / want['4-2']:.2f}x): two of the 2-2-2 model's coarse "
                  "layers run on blocks of 16, where a layer holds a sixteenth of a token layer's activations "
                  "(4-2 runs all four on blocks of 4)")


# --- lesson 09 ----------------------------------------------------------------------------------

def _break_even(T=1024):
    vanilla = _held_bytes("vanilla", T, n_layer=4)
    one, two = (_held_bytes("bottom-up", T, layout=f"1-{n}-1") for n in (1, 2))
    per_layer = two - one
    return 1 + int((vanilla - one) // per_layer), per_layer, vanilla


@checker("09.1", "where is the break-even")
def _check_09_1(n):
    """Answer: the largest n (an int) for which the bottom-up model "1-n-1" holds no more
    activation memory than the 4-layer vanilla model at T = 1024 (lesson 09's measure)."""
    best, per_layer, vanilla = _break_even()
    if n == best:
        return True, (f"1-{best}-1: each coarse layer adds {per_layer / 2**20:.2f} MiB, and the vanilla "
                      f"model holds {vanilla / 2**20:.1f} MiB, so {best + 2} layers fit in its memory")
    side = "holds more than the vanilla model" if n > best else "still fits: go deeper"
    return False, f"1-{n}-1 {side}; memory is linear in the coarse depth: measure two depths and solve"


@checker("09.2", "Hourglass style")
def _check_09_2(answer):
    """Answer: {"T": T, "aggregate": bytes, "upsample": bytes}: lesson 09's measure for
    layout="1-2-1" with combine="aggregate" (the default) and combine="upsample", at any T >= 64
    that is a multiple of 16."""
    T = answer["T"]
    if T < 64 or T % 16:
        return False, "choose T >= 64, a multiple of 16"
    for combine in ("aggregate", "upsample"):
        want = _held_bytes("bottom-up", T, layout="1-2-1", combine=combine)
        if not _same_bytes(answer[combine], want):
            return False, f"{combine}: {answer[combine]:,} bytes; the model holds {want:,} at T={T}"
    ratio = answer["upsample"] / answer["aggregate"]
    return True, (f"upsample/aggregate = {ratio:.2f} at T={T}: the upsample version's post layer is an ordinary "
                  "token layer (query t scores t + 1 keys), the aggregation layer scores its own key and the "
                  "T/k + T/k² coarse keys; try a longer T to see which term wins")


@checker("09.3", "another factor")
def _check_09_3(t):
    """Answer: the first token t (an int) that sees block 1 of scale 2 in the aggregation
    layer, for T = 18, k = 3 and two scales (lengths (6, 2))."""
    from minims.models.bottom_up import aggregate_ranges
    lo, hi = aggregate_ranges(18, 3, (6, 2))[2]
    first = next(u for u in range(18) if lo[u] <= 1 < hi[u])
    if t == first:
        return True, f"token {first} = 1·k²: block j of scale s is seen from token j·kˢ on (after the shift)"
    return False, f"token {t}: read the scale-2 columns of your picture, row by row"


# --- lesson 10 ----------------------------------------------------------------------------------

def _leaky_rows(T=24, k=4, w=2):
    twice, future = [], []
    for t in range(T):
        a = t - w + 1
        covered = numpy.zeros(T, int)
        covered[max(0, a):t + 1] += 1                               # fine keys
        late = False
        for j in range(T // k):
            if j * k < a:                                           # the leaky rule: the block *starts* before a
                covered[j * k:(j + 1) * k] += 1
                late |= (j + 1) * k - 1 > t
        if (covered[:t + 1] > 1).any():
            twice.append(t)
        if late:
            future.append(t)
    return twice, future


@checker("10.1", "the leaky mask")
def _check_10_1(answer):
    """Answer: {"twice": [t, ...], "future": [t, ...]}: for T = 24, k = 4, w = 2 and the leaky rule
    (fine keys max(0, a)..t with a = t - w + 1; block j shown when j·k < a), the queries t that see
    some token twice, and those that see a block ending after t."""
    twice, future = _leaky_rows()
    if sorted(answer["future"]) != future:
        return False, f"future rows {sorted(answer['future'])}: which blocks end after t when they start before a?"
    if sorted(answer["twice"]) != twice:
        return False, f"rows seeing a token twice {sorted(answer['twice'])}: count fine keys and blocks per token"
    return True, (f"{len(future)} of 24 queries see the future and {len(twice)} see tokens twice: a block may "
                  "be used only once it has ended, and the window must start at a block boundary")


@checker("10.2", "how memory grows with T")
def _check_10_2(answer):
    """Answer: {"T": T, "predicted": bytes, "measured": bytes}: the retina model's memory
    (held_bytes("retina", T, n_layer=4, window=32)) at a T longer than the lesson's, predicted by
    the line fitted on the log-log plot, and measured (any T >= 256 is checked)."""
    T = answer["T"]
    if T < 256:
        return False, "predict at T >= 256, beyond the lengths you fitted"
    want = _held_bytes("retina", T, n_layer=4, window=32)
    if not _same_bytes(answer["measured"], want):
        return False, f"measured {answer['measured']:,} bytes; the retina model holds {want:,} at T={T}"
    error = answer["predicted"] / want - 1
    if abs(error) > 0.2:
        return False, f"the prediction is {100 * error:+.0f} % off: fit log(bytes) against log(T), then extrapolate"
    return True, (f"predicted within {100 * abs(error):.0f} %: a power law with a slope near 1 (the window and "
                  "the T/k pooled keys grow linearly); vanilla's slope creeps towards 2")


@checker("10.3", "window against pooling")
def _check_10_3(answer):
    """Answer: {"keys": {8: mean keys per query, 64: mean keys per query}} at T = 128 with the
    retina model's default pooling factor and one scale (retina_ranges); then train both windows."""
    from minims.models.retina import RetinaConfig, retina_ranges
    k = RetinaConfig.__dataclass_fields__["pool"].default
    for w in (8, 64):
        ranges = retina_ranges(128, k, w, 1, 2)
        want = float(sum(numpy.maximum(hi - lo, 0) for lo, hi in ranges).mean())
        got = answer["keys"].get(w)
        if got is None or not math.isclose(got, want, rel_tol=1e-3):
            return False, f"window {w}: {got} keys per query on average; retina_ranges gives {want:.2f}"
    return True, ("a wide window scores more keys per query (and holds more memory); which loses more "
                  "in valid loss is what your two training runs tell")


# --- lesson 11 ----------------------------------------------------------------------------------

def _surviving_pairs(rows):
    pairs = []
    for i, a in enumerate(rows):
        for b in rows[i + 1:]:
            if abs(a["valid_bpc"] - b["valid_bpc"]) > a["valid_bpc_spread"] + b["valid_bpc_spread"]:
                pairs.append(tuple(sorted((a["name"], b["name"]))))
    return sorted(pairs)


@checker("11.1", "noise")
def _check_11_1(answer):
    """Answer: {"results": the dict of tradeoff.json (OUT_DIR/results/ for the quick grid) of a
    run with two or more seeds, "survive": [(name, name), ...]}: the pairs of points whose mean
    valid bpc differ by more than the sum of their two spreads (the ± of the table)."""
    rows = answer["results"]["rows"]
    if min(len(r["seeds"]) for r in rows) < 2:
        return False, "run two or more seeds (--seeds 0,1,2): one seed has no spread"
    want = _surviving_pairs(rows)
    got = sorted(tuple(sorted(p)) for p in answer["survive"])
    if got != want:
        return False, f"{len(got)} pairs; {len(want)} differ by more than their spreads: {want[:4]}"
    return True, f"{len(want)} of {len(rows) * (len(rows) - 1) // 2} differences are larger than the noise between seeds"


def _claim_ratio(T):
    from minims.memory import activation_bytes
    from minims.models import build_model
    body = {}
    for name, options in (("vanilla", dict(n_layer=14)), ("bottom-up", dict(layout="2-26-2"))):
        model = build_model(name, vocab_size=100, block_size=T, n_embd=128, n_head=4, **options)
        body[name] = activation_bytes(model, 2, T, 100)[1]
    return body["bottom-up"] / body["vanilla"]


@checker("11.2", "longer sequences")
def _check_11_2(answer):
    """Answer: {T: ratio} for two or more T: the body memory of the bottom-up 2-26-2 model over
    that of the 14-layer vanilla model, as in lesson 11's section 5 (width 128, batch 2)."""
    lengths = sorted(answer)
    if len(lengths) < 2:
        return False, "give the ratio at two or more lengths"
    for T in lengths:
        want = _claim_ratio(T)
        if not math.isclose(answer[T], want, rel_tol=0.005):
            return False, f"T={T}: ratio {answer[T]:.3f}; the models give {want:.3f}"
    if answer[lengths[-1]] >= answer[lengths[0]]:
        return True, "the ratio does not fall here: at these lengths the linear terms still dominate"
    return True, ("the ratio falls as T grows: the vanilla model pays T^2 attention in all 14 layers, the "
                  "bottom-up one in its 4 token layers only")


@checker("11.3", "your own point")
def _check_11_3(record):
    """Answer: the record experiment.run_point returned for your point, trained with the quick
    settings (a point not in experiment.QUICK_GRID)."""
    from minims import experiment
    from minims.memory import activation_bytes
    from minims.models import model_from_description
    if record["name"] in {point.name for point in experiment.QUICK_GRID}:
        return False, f"{record['name']} is already in the quick grid: choose another model or depth"
    if not (math.isfinite(record["valid_bpc"]) and record["valid_bpc"] > 0.1):
        return False, f"valid bpc {record['valid_bpc']}: not a trained point"
    model = model_from_description({"model": record["model"], "config": record["config"]})
    s = experiment.QUICK_SETTINGS
    held, _ = activation_bytes(model, s["batch_size"], s["block_size"])
    if held != record["activation_bytes"]:
        return False, f"the record says {record['activation_bytes']:,} bytes, its model holds {held:,}"
    return True, (f"{record['name']}: {held / 1e6:.2f} MB, valid bpc {record['valid_bpc']:.3f}; place it "
                  "in the table and see whether any point beats it on both")


# --- lesson 12 ----------------------------------------------------------------------------------

@checker("12.1", "where the GPU wins")
def _check_12_1(answer):
    """Answer: {"vanilla": {T: tokens/s}, "retina": {T: tokens/s}} from
    `python -m minims.bench speed` at three or more block sizes, the same ones for both."""
    lengths = sorted(answer["vanilla"])
    if len(lengths) < 3 or sorted(answer["retina"]) != lengths:
        return False, "give tokens/s at the same three (or more) block sizes for both models"
    ratios = [answer["retina"][T] / answer["vanilla"][T] for T in lengths]
    text = ", ".join(f"T={T}: retina/vanilla {r:.2f}" for T, r in zip(lengths, ratios))
    if ratios[-1] <= ratios[0]:
        return False, (f"{text}: retina should gain on vanilla as T grows (its attention is not T²); "
                       "measure on the same device, with --batch-size 1 if memory runs out")
    return True, f"{text}: the T² attention of vanilla shows at long T"


@checker("12.2", "forgetting to synchronize")
def _check_12_2(timed):
    """Answer: your function timed(steps, sync) -> seconds: runs steps() (e.g. 20 training steps)
    and returns how long they took, calling minims.backend.synchronize() before stopping the
    clock when sync is True."""
    return _timing_habit(timed, "the steps")


@checker("12.3", "float64 on a GPU")
def _check_12_3(answer):
    """Answer: {"float32_gap": x, "float64_gap": y}: the largest |logit difference| between the
    NumPy and the CuPy backend for the same model and input, in float32 and in float64."""
    f32, f64 = answer["float32_gap"], answer["float64_gap"]
    if not f64 < 1e-9:
        return False, f"a float64 gap of {f64:.1e} is too large: the same weights should agree to ~1e-12"
    if f32 > 1e-2:
        return False, f"a float32 gap of {f32:.1e} is too large: are the weights the same (same seed)?"
    if f64 > 0 and f32 > 0 and f64 >= f32:
        return False, "float64 should agree more closely than float32"
    return True, (f"float32 gap {f32:.1e}, float64 gap {f64:.1e}: the backends sum in different orders, "
                  "and float64 rounds 2^29 times finer")
