"""Show the library's own code in a notebook, so what a learner reads is what runs.

``show(Bronze._read)`` renders the method's source as it is in ``sbit_lib`` (never a copy
that could drift), with the file it lives in; ``show_sql(text)`` renders a statement the
library holds (e.g. a MERGE) as SQL.

>>> from sbit_lib.course.bronze import Bronze
>>> print(source(Bronze.consume_gym_logins).splitlines()[0])
def consume_gym_logins(self, once: bool = True, processing_time: str = "5 seconds"):
"""

from __future__ import annotations

import ast
import inspect
import textwrap
from pathlib import Path

from sbit_lib import PROJECT_ROOT


def source(obj) -> str:
    """The source code of a function, method or class, dedented."""
    return textwrap.dedent(inspect.getsource(obj)).rstrip()


def where(obj) -> str:
    """``sbit_lib/course/bronze.py, line 123``: where `obj` is defined, relative to the project."""
    path = Path(inspect.getsourcefile(obj)).resolve()
    try:
        path = path.relative_to(PROJECT_ROOT)
    except ValueError:
        pass
    return f"{path.as_posix()}, line {inspect.getsourcelines(obj)[1]}"


def _display(markdown: str, text: str):
    try:
        from IPython.display import Markdown, display
    except ImportError:      # outside Jupyter: plain text
        print(text)
        return
    display(Markdown(markdown))


def show(*objs) -> None:
    """Render the source of each of `objs` (functions, methods, classes) with where it lives."""
    for obj in objs:
        code = source(obj)
        _display(f"`{where(obj)}`\n\n```python\n{code}\n```", f"# {where(obj)}\n{code}")


def show_sql(sql: str, title: str = "") -> None:
    """Render a SQL statement the library holds, dedented (e.g. an Upserter's MERGE)."""
    text = textwrap.dedent(sql).strip()
    heading = f"{title}\n\n" if title else ""
    _display(f"{heading}```sql\n{text}\n```", f"-- {title}\n{text}" if title else text)


def _relative(path: Path) -> str:
    try:
        return path.resolve().relative_to(PROJECT_ROOT).as_posix()
    except ValueError:
        return path.name


def show_file(path, language: str = "python") -> None:
    """Render a whole file of the project (e.g. a pipeline's definitions) with its path."""
    path = Path(path)
    text = path.read_text().rstrip()
    _display(f"`{_relative(path)}`\n\n```{language}\n{text}\n```", f"# {_relative(path)}\n{text}")


def code_lines(path) -> int:
    """Lines of code in a Python file: not blank, not a comment, not part of a docstring."""
    path = Path(path)
    text = path.read_text()
    docstrings: set[int] = set()
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
                docstrings.update(range(first.lineno, first.end_lineno + 1))
    return sum(1 for number, line in enumerate(text.splitlines(), start=1)
               if line.strip() and not line.strip().startswith("#") and number not in docstrings)
