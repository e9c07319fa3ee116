"""Every lesson runs, start to finish, in quick mode: a lesson can never rot.

Each `lessons/NN_*.py` (found by glob, so new lessons are picked up with no change here) runs as
a plain script in a subprocess, from the repository root, with `MINIMS_QUICK=1` (smaller sizes,
fewer steps; about 10 s each). A lesson ends with its own check (assertions with messages), so
exit code 0 means the learner's check passes too. `lessons/README.md` must list every lesson.

What a new lesson needs to pass: it imports minims, is a jupytext py:percent file, reads
`MINIMS_QUICK`, has "## Check" and "## Exercises" markdown sections, prints "Check passed" at
the end, and finishes within 120 s in quick mode (aim for ~10 s).
"""
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LESSONS_DIR = ROOT / "lessons"
LESSONS = sorted(LESSONS_DIR.glob("[0-9][0-9]_*.py"))
TIMEOUT_S = 120
# the figures each lesson must leave in its output folder (when matplotlib is installed)
FIGURES = {
    "03_gradient_checking": ["03_central_difference_error.png"],
    "05_attention": ["05_attention_heatmap.png", "05_attention_memory_loglog.png",
                     "05_local_attention_memory.png"],
    "06_vanilla_transformer": ["06_loss_curves.png", "06_attention_heads.png"],
    "07_pooling_and_upsampling": ["07_dependencies.png"],
    "08_top_down": ["08_loss_curves.png"],
    "09_bottom_up": ["09_aggregate_keys.png", "09_loss_curves.png"],
    "10_retina": ["10_retina_keys.png", "10_loss_curves.png", "10_memory_loglog.png"],
    "11_memory_vs_perplexity": ["11_quick_tradeoff.png"],
}


def quick_env():
    env = dict(os.environ, MINIMS_QUICK="1")
    # Lessons multiply small matrices; on a shared CI machine BLAS thread pools only fight over the
    # cores (10x slower on 2 busy cores). A value the caller set is kept.
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        env.setdefault(var, "1")
    return env


def test_lessons_exist():
    assert LESSONS, f"no lessons found in {LESSONS_DIR}"


@pytest.mark.parametrize("lesson", LESSONS, ids=[p.stem for p in LESSONS])
def test_lesson_runs_in_quick_mode(lesson, tmp_path):
    env = dict(quick_env(), MINIMS_LESSONS_OUT=str(tmp_path))   # figures and runs: not in the checkout
    try:
        result = subprocess.run([sys.executable, str(lesson)], cwd=ROOT, env=env,
                                capture_output=True, text=True, timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"{lesson.name} took more than {TIMEOUT_S} s with MINIMS_QUICK=1\n"
                    f"--- stdout (end) ---\n{(e.stdout or b'')[-3000:]!r}")
    assert result.returncode == 0, (
        f"{lesson.name} failed (exit code {result.returncode}) with MINIMS_QUICK=1\n"
        f"--- stdout (end) ---\n{result.stdout[-4000:]}\n--- stderr (end) ---\n{result.stderr[-4000:]}")
    assert "Check passed" in result.stdout, f"{lesson.name} did not reach its final check"
    for name in FIGURES.get(lesson.stem, []):
        if importlib.util.find_spec("matplotlib") is None:
            assert "pip install -e '.[plot]'" in result.stdout, "without matplotlib, say how to get the pictures"
            break
        figure = tmp_path / name
        assert figure.is_file() and figure.stat().st_size > 10_000, f"{lesson.name} did not draw {name}"
        assert f"figure: {figure}" in result.stdout, f"{lesson.name} should print the path of {name}"


def test_readme_lists_every_lesson_in_order():
    readme = (LESSONS_DIR / "README.md").read_text(encoding="utf-8")
    listed = re.findall(r"\b(\d\d_\w+\.py)\b", readme)
    unlisted = [p.name for p in LESSONS if p.name not in listed]
    assert not unlisted, f"lessons/README.md does not list {unlisted}"
    first_mentions = list(dict.fromkeys(listed))
    assert first_mentions == sorted(first_mentions), "lessons/README.md should list lessons in order"


@pytest.mark.parametrize("lesson", LESSONS, ids=[p.stem for p in LESSONS])
def test_lesson_shape(lesson):
    """Lessons use the library (never a copy of it), are jupytext py:percent files, and end with
    a check and exercises."""
    text = lesson.read_text(encoding="utf-8")
    assert re.search(r"^(import minims|from minims)\b", text, re.M), f"{lesson.name} must import minims"
    assert "# %% [markdown]" in text and "\n# %%\n" in text, f"{lesson.name} is not in py:percent format"
    assert 'os.environ.get("MINIMS_QUICK")' in text, f"{lesson.name} must honour MINIMS_QUICK"
    for heading in ("## Check", "## Exercises"):
        assert f"# {heading}" in text, f"{lesson.name} has no '{heading}' section"


# ---------------------------------------------------------------- the committed figures

FIGURES_DIR = LESSONS_DIR / "figures"
MAKE_FIGURES = "python lessons/make_figures.py"


def _committed_figures():
    return sorted(p.name for p in FIGURES_DIR.glob("*.png"))


def test_every_lesson_figure_is_committed_small_and_linked_from_the_readme():
    readme = (LESSONS_DIR / "README.md").read_text(encoding="utf-8")
    committed = _committed_figures()
    expected = sorted(name for names in FIGURES.values() for name in names)
    assert set(expected) <= set(committed), f"not in lessons/figures/: {sorted(set(expected) - set(committed))}"
    for name in committed:
        assert f"](figures/{name})" in readme, f"lessons/README.md should link figures/{name}"
        size = (FIGURES_DIR / name).stat().st_size
        assert 10_000 < size < 400_000, f"{name}: {size:,} bytes (draw at dpi ~100)"
    assert MAKE_FIGURES in readme, "lessons/README.md should give the command that regenerates them"


def test_make_figures_writes_where_told_and_leaves_the_committed_ones(tmp_path):
    import hashlib
    import importlib.util as util

    def digests():
        return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in FIGURES_DIR.glob("*.png")}
    before = digests()
    spec = util.spec_from_file_location("make_figures", LESSONS_DIR / "make_figures.py")
    make_figures = util.module_from_spec(spec)
    spec.loader.exec_module(make_figures)
    if importlib.util.find_spec("matplotlib") is None:
        assert make_figures.main(["--only", "07", "--out", str(tmp_path)]) == 2
        return
    assert make_figures.main(["--only", "07", "--quick", "--out", str(tmp_path)]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == FIGURES["07_pooling_and_upsampling"]
    assert digests() == before, "a run with --out elsewhere must not touch lessons/figures/"
