"""The experiments' tables: rows over seeds, and the markdown with its note (ours).

Every number in a table and every word of its note comes from the committed results and the
settings and data actually used: the data's own description, the characters actually scored,
the steps, learning rates, seeds and evaluation settings of the run.
"""
import numpy as np

from .convergence import curve_bpc, mean_curve, pair_test, point_test
from .convergence import LAST_FRACTION, MAX_GAIN_SHARE
from .grids import layout_label


def _stat(rs, key):
    values = [r[key] for r in rs if r.get(key) is not None]
    if not values:
        return None, None
    return float(np.mean(values)), (max(values) - min(values)) / 2


def summarise(results, grid):
    """One row per point of `grid` that has results (in grid order): mean and spread (± half the
    range) over its seeds of valid/test bpc and step time, its mean learning curve and its
    convergence tests (convergence.py)."""
    by_name = {}
    for r in results:
        by_name.setdefault(r["name"], []).append(r)
    rows = []
    for point in grid:
        rs = sorted(by_name.get(point.name, []), key=lambda r: r["seed"])
        if not rs:
            continue
        first = rs[0]
        row = {"name": point.name, "model": first["model"], "options": first["options"],
               "config": first["config"], "layout": first["config"].get("layout", ""),
               "label": layout_label(first["model"], first["config"]),
               "layers": first["layers"], "params": first["params"], "seeds": [r["seed"] for r in rs],
               "lr": first["lr"], "min_lr": first["min_lr"], "max_iters": first["max_iters"],
               "reference": point.reference, "group": point.group,
               "activation_bytes": first["activation_bytes"],
               "body_activation_bytes": first["body_activation_bytes"]}
        for key in ("valid_bpc", "test_bpc", "step_ms"):
            row[key], row[key + "_spread"] = _stat(rs, key)
        steps, values, spreads = mean_curve([curve_bpc(r["curve"]) for r in rs])
        row["curve"] = {"steps": steps, "valid_bpc": values, "spread": spreads}
        row["final_spread"] = spreads[-1] if spreads else 0.0
        row["warmup_iters"] = first["settings"]["warmup_iters"]
        row["convergence"] = point_test(steps, values, first["max_iters"], row["warmup_iters"])
        rows.append(row)
    named = {r["name"]: r for r in rows}
    for row in rows:
        ref = named.get(row["reference"])
        if ref is not None:
            row["pair"] = pair_test(_pair_side(row), _pair_side(ref), row["max_iters"], row["warmup_iters"])
    return rows


def _pair_side(row):
    return {"steps": row["curve"]["steps"], "values": row["curve"]["valid_bpc"],
            "final_spread": row["final_spread"], "seeds": len(row["seeds"])}


def _pm(mean, spread, digits=3):
    if mean is None:
        return ""
    return f"{mean:.{digits}f} ± {spread:.{digits}f}"


def _converged(row):
    text = row["convergence"]["text"]
    if "pair" in row:
        text += "; " + row["pair"]["text"]
    return text


def tradeoff_table(rows):
    named = {r["name"]: r for r in rows}
    lines = ["| point | layers | layout | params | lr | seeds | activation MB | body MB | step ms | "
             "valid bpc | test bpc | vs its reference | converged |",
             "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|"]
    for r in rows:
        ref = named.get(r["reference"])
        if ref is not None:
            versus = (f"{ref['name']}: Δbpc {r['valid_bpc'] - ref['valid_bpc']:+.3f} "
                      f"(spreads ±{r['valid_bpc_spread']:.3f}, ±{ref['valid_bpc_spread']:.3f}), "
                      f"memory {r['activation_bytes'] / ref['activation_bytes']:.2f}×"
                      + (f", step {r['step_ms'] / ref['step_ms']:.2f}×"
                         if r["step_ms"] and ref["step_ms"] else ""))
        else:
            versus = ""
        lines.append(f"| {r['name']} | {r['layers']} | {r['layout']} | {r['params']:,} | {r['lr']:g} | "
                     f"{len(r['seeds'])} | {r['activation_bytes'] / 1e6:.1f} | "
                     f"{r['body_activation_bytes'] / 1e6:.1f} | "
                     f"{_pm(r['step_ms'], r['step_ms_spread'], 0)} | "
                     f"{_pm(r['valid_bpc'], r['valid_bpc_spread'])} | "
                     f"{_pm(r['test_bpc'], r['test_bpc_spread'])} | {versus} | {_converged(r)} |")
    return "\n".join(lines)


def matches_defaults(model, options, layers):
    """Does a row's model equal `model`'s current defaults at its depth? (Top-down layouts are
    a depth choice, not a default; bottom-up's pre/post split is a default.)"""
    from ..models import build_model
    keys = [k for k in options if k not in ("n_layer", "layout") or
            (k == "layout" and model == "bottom-up")]
    default = build_model(model, vocab_size=2, block_size=1024, n_layer=layers).config
    return all(getattr(default, k) == options[k] for k in keys)


def ablation_table(rows):
    base = {}
    for r in rows:
        if r["model"] != "vanilla" and matches_defaults(r["model"], r["options"], r["layers"]):
            base[r["model"]] = r
    floor = seed_spread_floor(rows)
    lines = ["| row | layers | layout | lr | seeds | activation MB | step ms | valid bpc | "
             "vs the defaults | converged |",
             "|---|---:|---|---:|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        ref = base.get(r["model"])
        diff = "(defaults)" if ref is r else "" if ref is None else versus_defaults(r, ref, floor)
        lines.append(f"| {r['name']} | {r['layers']} | {r['layout']} | {r['lr']:g} | {len(r['seeds'])} | "
                     f"{r['activation_bytes'] / 1e6:.1f} | {_pm(r['step_ms'], r['step_ms_spread'], 0)} | "
                     f"{_pm(r['valid_bpc'], r['valid_bpc_spread'])} | {diff} | {_converged(r)} |")
    lines.append("")
    lines.append("vs the defaults: the row's valid bpc minus its family's row at today's defaults; "
                 "'clear' when larger than the two rows' spreads added, else 'within the seed "
                 "spread'. A row's spread is its own (± half the range over its seeds; a row with "
                 "one seed is given its family's defaults row's), but at least "
                 f"{floor:.3f}, the median seed spread of the hierarchical rows with two seeds "
                 "(two seeds may agree by chance).")
    return "\n".join(lines)


def seed_spread_floor(rows):
    """The median seed spread (± half the range) of the hierarchical rows trained with two or
    more seeds: the least spread any row is given (two seeds can agree by chance). 0.0 when
    there is none."""
    spreads = [r["valid_bpc_spread"] for r in rows if r["model"] != "vanilla" and len(r["seeds"]) >= 2]
    return float(np.median(spreads)) if spreads else 0.0


def versus_defaults(row, ref, floor=0.0):
    """A row's valid bpc minus its family's defaults row `ref`, and whether the difference is
    larger than the two rows' spreads added ('clear') or not ('within the seed spread'). A side's
    spread is its own seed spread (two or more seeds; a one-seed row is given `ref`'s, the same
    family at the same budget), but at least `floor` (`seed_spread_floor`); with one seed on both
    sides and no floor there is nothing to compare with ('one seed')."""
    diff = row["valid_bpc"] - ref["valid_bpc"]
    if len(ref["seeds"]) < 2 and len(row["seeds"]) < 2 and not floor:
        return f"{diff:+.3f} (one seed)"
    ref_side = max(ref["valid_bpc_spread"] if len(ref["seeds"]) >= 2 else 0.0, floor)
    own = row["valid_bpc_spread"] if len(row["seeds"]) >= 2 else ref_side
    spread = max(own, floor) + ref_side
    verdict = "clear" if abs(diff) > spread else "within the seed spread"
    return f"{diff:+.3f} ({verdict} ±{spread:.3f})"


def vanilla_depth_check(rows):
    """Has the budget taken the baseline off the plateau? The deepest vanilla row must beat the
    shallowest by more than their seed spreads added -> (passed or None, one line)."""
    vanilla = sorted((r for r in rows if r["model"] == "vanilla"), key=lambda r: r["layers"])
    if len(vanilla) < 2:
        return None, "check: needs two vanilla rows of different depth"
    shallow, deep = vanilla[0], vanilla[-1]
    gain = shallow["valid_bpc"] - deep["valid_bpc"]
    spread = shallow["valid_bpc_spread"] + deep["valid_bpc_spread"]
    if min(len(shallow["seeds"]), len(deep["seeds"])) < 2:
        return None, (f"check: {deep['name']} beats {shallow['name']} by {gain:+.3f} bpc; undecided "
                      "(one seed: no spread)")
    passed = gain > spread
    return passed, (f"check {'passed' if passed else 'FAILED'}: {deep['name']} beats {shallow['name']} "
                    f"by {gain:+.3f} bpc, {'more' if passed else 'not more'} than the seed spread "
                    f"{spread:.3f} (the budget {'has' if passed else 'has not'} taken the baseline off "
                    "the plateau)")


def lr_table(rows):
    """One row per model: valid bpc at each learning rate, and the pick (the lowest)."""
    lrs = sorted({r["lr"] for r in rows})
    groups = {}
    for r in rows:
        groups.setdefault(r["group"] or r["name"], {})[r["lr"]] = r
    lines = ["| model | " + " | ".join(f"valid bpc, lr {lr:g}" for lr in lrs) + " | pick | converged (at the pick) |",
             "|---|" + "---:|" * len(lrs) + "---:|---|"]
    for group, by_lr in groups.items():
        pick = min(by_lr.values(), key=lambda r: r["valid_bpc"])
        cells = [(f"**{_pm(by_lr[lr]['valid_bpc'], by_lr[lr]['valid_bpc_spread'])}**" if by_lr.get(lr) is pick
                  else _pm(by_lr[lr]["valid_bpc"], by_lr[lr]["valid_bpc_spread"])) if lr in by_lr else ""
                 for lr in lrs]
        lines.append(f"| {group} | " + " | ".join(cells) + f" | {pick['lr']:g} | {_converged(pick)} |")
    return "\n".join(lines)


def lr_picks(rows):
    """{model (group): the learning rate with the lowest valid bpc}."""
    best = {}
    for r in rows:
        g = r["group"] or r["name"]
        if g not in best or r["valid_bpc"] < best[g]["valid_bpc"]:
            best[g] = r
    return {g: r["lr"] for g, r in best.items()}


def _scored_text(n_valid, n_valid_split, n_test, n_test_split):
    def one(n, total, split):      # n predictions: every character but the first is one
        return (f"the whole {split} split ({total:,} characters)" if n >= total - 1
                else f"the first {n:,} characters of the {split} split (of {total:,})")
    text = one(n_valid, n_valid_split, "valid")
    return text if n_test is None else f"{text} and {one(n_test, n_test_split, 'test')}"


def note(settings, data, results, rows, baselines, missing):
    """The note under a table, written from what was actually used: data, settings, learning
    rates, seeds, the characters scored, the baselines, the timing and the tests."""
    s = settings
    lrs = sorted({(r["lr"], r["min_lr"]) for r in results})
    if len(lrs) == 1:
        lr_text = f"lr {lrs[0][0]:g} → {lrs[0][1]:g}"
    else:
        lr_text = "the lr of each row (column lr) → lr/10" if all(
            abs(m - lr / 10) <= 1e-12 * lr for lr, m in lrs) else "the lr of each row (column lr)"
    n_seeds = sorted({len(r["seeds"]) for r in rows})
    first = results[0]
    chars = data["chars"]
    valid_n, test_n = first["scored_tokens"]["valid"], first["scored_tokens"]["test"]
    timed = rows and rows[0].get("step_ms_measured")
    step = (f"step ms: the {timed} of each model, built fresh from its config, side by side in one "
            "process (± half the interquartile range)" if timed else
            "step ms: the trainer's own median step time over its evaluation windows, while other "
            "runs may have shared the machine (a rough figure; `--time-steps N` measures them side "
            "by side)")
    base = ", ".join(f"{name} {bpc:.3f}" for name, bpc in baselines.items())
    parts = [
        f"Data: {data['source']} ({data['tokenizer']}-level, vocabulary {data['vocab_size']}; "
        f"text SHA-256 {data['text_sha256'][:12]}…).",
        f"T={s['block_size']}, B={s['batch_size']}, C={s['n_embd']}, {s['n_head']} heads; "
        f"{s['max_iters']} AdamW steps ({lr_text}, warmup {s['warmup_iters']}, cosine over the run; "
        f"weight decay {s['weight_decay']:g}, gradient clip {s['grad_clip']:g}); valid loss "
        f"estimated every {s['eval_interval']} steps on {s['eval_iters']} fixed batches (the "
        "learning curves).",
        f"Seeds: {'/'.join(map(str, n_seeds))} per point (column seeds; mean ± half the range).",
        f"bpc: bits per character on {_scored_text(valid_n, chars['valid'], test_n, chars['test'])}, "
        "each scored once in non-overlapping windows. Count baselines on the same valid text "
        f"(counts from the train split; add-one unigram, Witten-Bell bigram and trigram): {base} bpc.",
        "Activation MB: bytes saved for backward by one training forward pass (10^6 bytes), "
        f"measured on a model built from the recorded config; body MB: the same without the output "
        f"head and loss; {step}.",
        f"Converged: a point (its mean curve over seeds) gains over its last {LAST_FRACTION:.0%} of steps "
        f"at most {MAX_GAIN_SHARE:.0%} of its improvement since the first evaluation after warmup; "
        f"a pair (a point and its reference) when their gap moves over the last {LAST_FRACTION:.0%} "
        "by at most their seed spreads added (undecided with one seed).",
    ]
    if missing:
        parts.append("Not finished yet (left out): " + ", ".join(missing) + ".")
    return " ".join(parts)
