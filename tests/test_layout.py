"""The package's folders show the architecture, and its imports point one way.

Every import of a ``sbit_lib`` module counts, at the top of a file or inside a function:
a cycle through a lazy import is still a cycle a reader has to untangle.
"""

import ast
from pathlib import Path

import pytest

from sbit_lib import PROJECT_ROOT

PACKAGE = PROJECT_ROOT / "sbit_lib"
# folder -> the folders it may import from (besides itself)
ALLOWED = {
    "spark": set(),
    "testing": set(),
    "course": {"spark", "testing"},
    "teaching": {"course", "spark", "testing"},
    "declarative": {"course", "spark", "testing"},
    "ops": {"course", "spark", "testing", "teaching", "declarative"},
}


def module_name(path: Path) -> str:
    parts = path.relative_to(PROJECT_ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path, known: set[str]) -> set[str]:
    """The sbit_lib modules `path` imports, anywhere in the file."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"{node.module}.{alias.name}" for alias in node.names] + [node.module]
        else:
            continue
        for name in names:
            while name and name not in known:
                name = name.rpartition(".")[0]
            if name and name != "sbit_lib":
                found.add(name)
    return found


def graph() -> dict[str, set[str]]:
    files = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    known = set(files)
    return {name: imports(path, known) - {name} for name, path in files.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, found, counter = {}, {}, [], set(), [], [0]

    def visit(node):
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for nxt in edges.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in edges:
        if node not in index:
            visit(node)
    return found


def test_no_import_cycles():
    assert cycles(graph()) == []


def test_the_cycle_check_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_imports_between_folders_point_one_way():
    wrong = []
    for module, targets in graph().items():
        folder = module.split(".")[1] if module.count(".") else None
        if folder not in ALLOWED:
            continue
        for target in targets:
            other = target.split(".")[1]
            if other != folder and other in ALLOWED and other not in ALLOWED[folder]:
                wrong.append(f"{module} -> {target}")
    assert wrong == []


@pytest.mark.parametrize("folder", sorted(ALLOWED))
def test_every_folder_says_what_it_holds(folder):
    doc = ast.get_docstring(ast.parse((PACKAGE / folder / "__init__.py").read_text()))
    assert doc and len(doc) > 80


def test_the_course_classes_hold_course_logic():
    """No threads, caches or JVM calls in the course's classes: plumbing lives in spark/."""
    for path in (PACKAGE / "course").glob("*.py"):
        text = path.read_text()
        for marker in ("import threading", "._jvm", "._jsc", "._jdf", "._jo", "_jsparkSession"):
            assert marker not in text, f"{path.name} uses {marker}"


def test_the_reference_imports_no_spark_and_nothing_of_the_course():
    import subprocess
    import sys

    code = ("import sys, sbit_lib.testing.reference, sbit_lib.testing.expectations; "
            "print(sorted(m for m in sys.modules if m.startswith(('pyspark', 'sbit_lib.course', 'sbit_lib.spark'))))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
