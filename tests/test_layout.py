"""The house in three tiers, read from the import statements of every file (no module is run):

- the library (`minims`, `minims.testing` among it) never imports an application (the trainer
  `minims.train`, `minims.sample`, `minims.bench`, `minims.experiment`, their command-line runner
  `minims.cli`) nor the lessons' support (`lessons.support`), which lives outside the package;
- no import cycle but the documented one: minims/engine.py imports the primitive ops at its end
  (minims/ops/basic.py), which subclass its `Function`;
- no lesson reaches into `tests/`.
"""
import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "minims"
APPLICATIONS = ("minims.train", "minims.sample", "minims.bench", "minims.experiment", "minims.cli")
ALLOWED_CYCLES = [{"minims.engine", "minims.ops.basic"}]


def module_name(path):
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports(name):
    """The modules `name` imports (at the top or inside functions), resolved to minims modules
    where they are ours; `from pkg import sub` counts as importing pkg.sub."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names if f"{base}.{alias.name}" in MODULES)
    return found


def is_application(name):
    return any(name == app or name.startswith(app + ".") for app in APPLICATIONS)


def test_the_modules_are_found():
    assert {"minims.engine", "minims.functional", "minims.train.loop", "minims.testing.gradcheck"} <= set(MODULES)


@pytest.mark.parametrize("name", [m for m in MODULES if not is_application(m)])
def test_the_library_imports_no_application_and_no_lesson_support(name):
    wrong = sorted(m for m in imports(name) if is_application(m) or m.split(".")[0] == "lessons")
    assert not wrong, f"{name} (library) imports {wrong}: imports must only point down"


def test_no_import_cycle_but_engine_and_its_ops():
    graph = {m: {i for i in imports(m) if i in MODULES and not m.startswith(i + ".") and i != m}
             for m in MODULES}
    # Tarjan's strongly connected components: each one with two or more modules is a cycle
    index, low, stack, on_stack, cycles = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(component)

    for v in graph:
        if v not in index:
            visit(v)
    assert [c for c in cycles if c not in ALLOWED_CYCLES] == []


@pytest.mark.parametrize("lesson", sorted((ROOT / "lessons").rglob("*.py")), ids=lambda p: p.name)
def test_no_lesson_reaches_into_tests(lesson):
    for node in ast.walk(ast.parse(lesson.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Constant) and node.value == "tests":
            pytest.fail(f"{lesson.name} names the tests folder (put what it needs in minims or lessons/support)")
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
            assert not any(n.split(".")[0] in {"op_specs", "tiny_runs", "fake_cupy", "conftest"} for n in names), \
                f"{lesson.name} imports a module of tests/"
