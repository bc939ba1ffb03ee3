"""The committed notebooks are source files: generated from tools/notebooks/, in the course's
numbering, on the project's kernel, and free of outputs that carry machine paths or noise."""

import re
import sys
from pathlib import Path

import nbformat
import pytest

from sbit_lib.config import PROJECT_ROOT

NOTEBOOKS = PROJECT_ROOT / "notebooks"
COURSE_STEPS = ["01-config", "02-setup", "03-history-loader", "04-bronze", "05-silver", "06-gold",
                "07-run", "08-batch-test", "09-stream-test", "10-producer"]
MAX_OUTPUT_CHARS = 2000          # a small, stable, instructive output may stay
MACHINE_PATH = re.compile(r"(/home/|/root/|/tmp/|/work/|/Users/|/var/folders/|[A-Za-z]:\\\\)")


def problems(nb: nbformat.NotebookNode) -> list[str]:
    """What makes a notebook unfit to commit, one line each (empty when fine)."""
    found = []
    if "papermill" in nb.metadata:
        found.append("notebook metadata carries a papermill run record")
    for index, cell in enumerate(nb.cells):
        where = f"cell {index} ({cell.get('id', '?')})"
        if "execution" in cell.metadata:
            found.append(f"{where}: execution timestamps in its metadata")
        if cell.cell_type != "code":
            continue
        if cell.execution_count is not None:
            found.append(f"{where}: execution count {cell.execution_count}")
        text = ""
        for output in cell.outputs:
            text += output.get("text", "") if isinstance(output.get("text", ""), str) else ""
            for value in output.get("data", {}).values():
                text += value if isinstance(value, str) else str(value)
            text += "".join(output.get("traceback", []))
        if MACHINE_PATH.search(text):
            found.append(f"{where}: output contains a machine path: {MACHINE_PATH.search(text).group(0)}")
        if len(text) > MAX_OUTPUT_CHARS:
            found.append(f"{where}: {len(text):,} characters of output (at most {MAX_OUTPUT_CHARS:,})")
    return found


def committed() -> list[Path]:
    return sorted(NOTEBOOKS.glob("*.ipynb"))


def test_every_course_step_has_its_notebook_and_the_walkthrough_comes_first():
    names = [path.stem for path in committed()]
    assert names[0] == "00-interview-walkthrough"
    assert names[1:] == COURSE_STEPS


@pytest.mark.parametrize("path", committed(), ids=lambda p: p.name)
def test_a_committed_notebook_has_no_volatile_output(path):
    nb = nbformat.read(path, as_version=4)
    assert problems(nb) == []
    assert nb.metadata.kernelspec.name == "sbit-lakehouse"
    assert nb.metadata.execution.timeout <= 900


def test_the_check_finds_paths_noise_and_run_records():
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("print(config.home)")])
    nb.cells[0].outputs = [nbformat.v4.new_output("stream", name="stdout", text="/home/ana/sbit/lakehouse\n")]
    nb.cells[0].execution_count = 3
    nb.cells.append(nbformat.v4.new_code_cell("spark.range(10**4).show()"))
    nb.cells[1].outputs = [nbformat.v4.new_output("execute_result", data={"text/plain": "x" * 5000})]
    nb.metadata["papermill"] = {"start_time": "2026-11-26T10:00:00"}
    found = problems(nb)
    assert len(found) == 4, found
    assert any("/home/" in line for line in found) and any("5,000 characters" in line for line in found)


def test_the_notebooks_are_what_tools_make_notebooks_writes():
    sys.path.insert(0, str(PROJECT_ROOT / "tools"))
    from make_notebooks import sources

    stale = [name for name, nb in sources().items()
             if not (NOTEBOOKS / name).exists()
             or nbformat.writes(nb).strip() != (NOTEBOOKS / name).read_text().strip()]
    assert stale == [], f"regenerate with `python tools/make_notebooks.py`: {stale}"


@pytest.mark.parametrize("path", committed(), ids=lambda p: p.name)
def test_papermill_can_read_every_parameter_line(path):
    """papermill reads the `parameters` cell line by line and skips (with a warning) any line
    with a second `=`, e.g. in its comment; such a parameter loses its type and help."""
    from papermill.translators import PythonTranslator

    nb = nbformat.read(path, as_version=4)
    cells = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(cells) == 1, "every notebook takes its settings from one parameters cell"
    parsed = {p.name for p in PythonTranslator.inspect(cells[0])}
    assigned = {line.split("=")[0].strip() for line in cells[0].source.splitlines()
                if "=" in line and not line.lstrip().startswith("#")}
    assert parsed == assigned
