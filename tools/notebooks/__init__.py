"""Cell-building helpers shared by the notebook sources in this folder.

Each module `nbNN_*.py` defines `NAME` (the file name without `.ipynb`) and `NOTEBOOK`.
`python tools/make_notebooks.py` writes them all; the committed notebooks carry no outputs.
"""

from __future__ import annotations

import textwrap

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

# The project's Jupyter kernel: the .venv's Python, installed by `make setup` (see the Makefile).
KERNEL = {"name": "sbit-lakehouse", "display_name": "Python 3 (sbit-lakehouse)", "language": "python"}


def md(text: str):
    """A markdown cell from an indented triple-quoted string."""
    return new_markdown_cell(textwrap.dedent(text).strip("\n"))


def code(text: str):
    """A code cell from an indented triple-quoted string."""
    return new_code_cell(textwrap.dedent(text).strip("\n"))


def parameters(text: str, ci: dict | None = None):
    """The papermill `parameters` cell; `ci` = the short values nbmake substitutes in `make test`."""
    cell = code(text)
    cell.metadata["tags"] = ["parameters"]
    if ci:
        cell.metadata["nbmake"] = {"mock": ci}
    return cell


def notebook(cells, timeout_s: int) -> nbformat.NotebookNode:
    """A notebook with stable cell ids; `timeout_s` = nbmake's limit for any one cell."""
    for number, cell in enumerate(cells, start=1):
        cell.id = f"cell-{number:02d}"      # stable ids: regenerating changes nothing that did not change
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = dict(KERNEL)
    nb.metadata["language_info"] = {"name": "python"}
    nb.metadata["execution"] = {"timeout": timeout_s}
    return nb
