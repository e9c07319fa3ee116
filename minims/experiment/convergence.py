"""Has a point stopped improving? The convergence tests, read from learning curves (ours).

A point's learning curve is its valid bits per character at each evaluation of its training log
(log.jsonl: the valid loss on the same fixed batches every --eval-interval steps, in nats, / ln 2),
averaged over its seeds at the steps all of them logged.

**A point has converged** when the gain over its last 20 % of steps is at most a tenth of its
improvement since the first evaluation after warmup:

    gain        = bpc(s0) - bpc(end),   s0 = the last evaluation at or before 0.8 · max_iters
    improvement = bpc(first evaluation at or after warmup_iters, past step 0) - bpc(end)
    passed      when gain <= 0.10 · improvement

(measured from the evaluation at or before 0.8 · max_iters, the span is at least the last
20 %: the test never gets easier by the evaluation grid). A curve that never improved
(improvement <= 0) fails.

**A compared pair has converged** (a hierarchical point against its vanilla reference) when the
gap between their mean curves moved, over the same last 20 % of steps, by no more than the
pair's seed spread:

    change = |gap(end) - gap(s0)|,  gap = bpc_point - bpc_reference (mean curves)
    spread = the point's spread + the reference's spread (each: half the range over its seeds
             of the final curve value)
    passed when change <= spread; undecided when either has a single seed (no spread).
"""
import math

import numpy as np

LAST_FRACTION = 0.2          # the span the tests look at: the last 20 % of steps
MAX_GAIN_SHARE = 0.10        # ... may gain at most a tenth of the whole improvement
LN2 = math.log(2.0)


def curve_bpc(records):
    """[(step, valid bpc)] from a training log's records (in step order, one per step)."""
    by_step = {r["iter"]: r["val_loss"] / LN2 for r in records if r.get("val_loss") is not None}
    return sorted(by_step.items())


def mean_curve(curves):
    """The mean of several [(step, value)] curves at the steps all of them have -> (steps,
    means, spreads) as lists; the spread at a step is half the range over the curves."""
    if not curves:
        return [], [], []
    steps = sorted(set.intersection(*(set(s for s, _ in c) for c in curves)))
    if not steps:
        return [], [], []
    values = np.array([[dict(c)[s] for s in steps] for c in curves])     # (curves, steps)
    spread = (values.max(axis=0) - values.min(axis=0)) / 2
    return steps, [float(v) for v in values.mean(axis=0)], [float(v) for v in spread]


def _span(steps, max_iters, warmup_iters):
    """(first evaluation at or after warmup, last evaluation at or before 0.8 · max_iters) as
    indices into `steps`, or None when the second does not come after the first."""
    start = next((i for i, s in enumerate(steps) if s >= max(warmup_iters, 1)), None)
    mark = max((i for i, s in enumerate(steps) if s <= (1 - LAST_FRACTION) * max_iters), default=None)
    if start is None or mark is None or mark <= start:
        return None
    return start, mark


def point_test(steps, values, max_iters, warmup_iters):
    """The convergence test of one curve -> dict(passed, gain, improvement, from_step, start_step,
    end_step, text); passed is None when the curve is too short to tell."""
    out = {"passed": None, "gain": None, "improvement": None}
    if not steps or steps[-1] < max_iters:
        return {**out, "text": f"not finished (curve ends at step {steps[-1] if steps else 0} of {max_iters})"}
    span = _span(steps, max_iters, warmup_iters)
    if span is None:
        return {**out, "text": "undecided: too few evaluations between warmup and the last 20 % of steps"}
    start, mark = span
    end = values[-1]
    gain, improvement = values[mark] - end, values[start] - end
    passed = improvement > 0 and gain <= MAX_GAIN_SHARE * improvement
    share = f"{gain / improvement:.0%}" if improvement > 0 else "n/a"
    return {"passed": bool(passed), "gain": gain, "improvement": improvement,
            "from_step": steps[mark], "start_step": steps[start], "end_step": steps[-1],
            "text": (f"{'passed' if passed else 'FAILED'}: gain {gain:.3f} over steps "
                     f"{steps[mark]}–{steps[-1]} = {share} of the improvement {improvement:.3f} "
                     f"since step {steps[start]} (limit {MAX_GAIN_SHARE:.0%})")}


def pair_test(point, reference, max_iters, warmup_iters):
    """The pair test: `point` and `reference` are dicts with steps, values (the mean curves) and
    final_spread (half the range over seeds of the final value), seeds (how many) ->
    dict(passed, change, spread, text); passed is None when undecided."""
    common = sorted(set(point["steps"]) & set(reference["steps"]))
    gap = {s: dict(zip(point["steps"], point["values"]))[s] - dict(zip(reference["steps"],
                                                                      reference["values"]))[s]
           for s in common}
    out = {"passed": None, "change": None, "spread": None}
    if not common or common[-1] < max_iters:
        return {**out, "text": "pair: not finished"}
    span = _span(common, max_iters, warmup_iters)
    if span is None:
        return {**out, "text": "pair: undecided (too few evaluations between warmup and the last 20 %)"}
    mark = common[span[1]]
    change = abs(gap[common[-1]] - gap[mark])
    spread = point["final_spread"] + reference["final_spread"]
    if min(point["seeds"], reference["seeds"]) < 2:
        return {**out, "change": change,
                "text": f"pair: undecided (one seed, no spread); gap moved {change:.3f} over steps "
                        f"{mark}–{common[-1]}"}
    passed = change <= spread
    return {"passed": bool(passed), "change": change, "spread": spread,
            "text": (f"pair {'passed' if passed else 'FAILED'}: gap moved {change:.3f} over steps "
                     f"{mark}–{common[-1]}, seed spread {spread:.3f}")}
