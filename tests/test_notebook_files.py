"""The committed notebooks are source files: each .ipynb paired with a jupytext percent script
(notebooks/NN-name.py) holding the same cells, in the course's numbering, on the project's
kernel, free of outputs that carry machine paths or noise, and linted as code."""

import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from sbit_lib.course.config import PROJECT_ROOT

NOTEBOOKS = PROJECT_ROOT / "notebooks"
COURSE_STEPS = ["01-config", "02-setup", "03-history-loader", "04-bronze", "05-silver", "06-gold",
                "07-run", "08-batch-test", "09-stream-test", "10-producer", "11-declarative-pipeline"]
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
    assert problems(nb) == [], FIX
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


FIX = "run `make notebooks` (syncs each notebook with its paired script and strips outputs)"


def cells(nb) -> list[tuple]:
    """What a pair must agree on: each cell's kind, source, tags and nbmake settings."""
    return [(c.cell_type, c.source.strip(), c.metadata.get("tags", []), c.metadata.get("nbmake"))
            for c in nb.cells]


@pytest.mark.parametrize("path", committed(), ids=lambda p: p.name)
def test_every_notebook_is_paired_with_a_percent_script_holding_the_same_cells(path):
    import jupytext

    script = path.with_suffix(".py")
    assert script.exists(), f"{script.name} is missing: {FIX}"
    nb = nbformat.read(path, as_version=4)
    assert nb.metadata.get("jupytext", {}).get("formats") == "ipynb,py:percent"
    paired = jupytext.read(script)
    assert cells(paired) == cells(nb), f"{path.name} and {script.name} differ: {FIX}"
    assert paired.metadata["execution"] == nb.metadata["execution"]


def test_the_pair_check_notices_an_edited_script(tmp_path):
    import jupytext

    nb = nbformat.read(committed()[1], as_version=4)
    edited = jupytext.reads(jupytext.writes(nb, fmt="py:percent").replace("environment = ", "environment  = "),
                            fmt="py:percent")
    assert cells(edited) != cells(nb)


def test_the_code_and_the_notebook_scripts_pass_the_linter():
    done = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "sbit_lib", "tests",
                           "notebooks", "conftest.py"], cwd=PROJECT_ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]


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


# What each step's notebook must show and run in its own code cells (issue: notebooks that
# teach the code), not only behind a library call.
CODE_IN_CELLS = {
    "02-setup": ["CREATE DATABASE IF NOT EXISTS", "CREATE TABLE IF NOT EXISTS", "USING DELTA", "CREATE OR REPLACE VIEW"],
    "03-history-loader": ["CAST(", "insertInto"],
    "04-bronze": ["readStream", "writeStream", "foreachBatch", "queryName", "checkpointLocation",
                  "availableNow", "processingTime", "maxFilesPerTrigger", "txnAppId"],
    "05-silver": ["readStream", "writeStream", "foreachBatch", "withWatermark", "MERGE INTO", "row_number"],
    "06-gold": ["readStream", "withWatermark", "groupBy", "GROUP BY"],
    "10-producer": ["os.replace", "readStream"],
    # the declarations are files the pipeline runner imports: rendered whole by show_file
    "11-declarative-pipeline": ['"declarative", "run"', '"declarative", "dry-run"', "xxhash64", "exceptAll",
                                "DESCRIBE HISTORY"],
}


@pytest.mark.parametrize("name", sorted(CODE_IN_CELLS))
def test_each_step_shows_its_spark_code_in_code_cells(name):
    nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    missing = [construct for construct in CODE_IN_CELLS[name] if construct not in code]
    assert missing == [], f"{name}: no code cell contains {missing}"
    assert "show(" in code or "show_file(" in code, f"{name} does not render the library's own version of its code"


def test_a_notebook_run_by_papermill_prints_no_kernel_warning(tmp_path):
    """`make run` executes a notebook per set: over TCP each kernel started printed ipykernel's
    "Kernel is running over TCP without encryption", and each kernel's JVM Spark 4's
    "WARNING: Using incubator modules". local_kernel() talks to the kernel over IPC sockets,
    keeps what the kernel's file descriptors receive out of the executed notebook, and with a
    log file sends the kernel's stderr (a child process's, like the JVM's, included) there."""
    (tmp_path / "jvm.py").write_text("import sys\nsys.stderr.write('WARNING: from the JVM\\n')\n")
    script = tmp_path / "run.py"
    script.write_text(
        "import os, sys, nbformat, papermill\n"
        "from pathlib import Path\n"
        "os.environ.pop('PYTEST_CURRENT_TEST', None)      # ipykernel captures no fd output under pytest\n"
        "from sbit_lib.ops.batch_test import local_kernel\n"
        "cells = ['import subprocess, sys; subprocess.run([sys.executable, \"jvm.py\"])', 'print(6 * 7)']\n"
        "nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])\n"
        "nb.metadata.kernelspec = {'name': 'sbit-lakehouse', 'display_name': 'sbit', 'language': 'python'}\n"
        "nbformat.write(nb, 'in.ipynb')\n"
        "how = sys.argv[1]\n"
        "options = {} if how == 'tcp' else local_kernel(Path('logs/k.log') if how == 'log' else None)\n"
        "papermill.execute_notebook('in.ipynb', f'out-{how}.ipynb', progress_bar=False, **options)\n"
        "print(nbformat.read(f'out-{how}.ipynb', 4).cells[1].outputs[0]['text'].strip())\n")
    runs = {how: subprocess.run([sys.executable, str(script), how], cwd=tmp_path, capture_output=True,
                                text=True, timeout=120) for how in ("ipc", "tcp", "log")}
    for how, done in runs.items():
        assert done.returncode == 0 and done.stdout.strip().endswith("42"), (how, done.stderr[-2000:])
    assert "without encryption" not in runs["ipc"].stderr, runs["ipc"].stderr
    assert "without encryption" in runs["tcp"].stderr         # the warning this avoids
    assert "WARNING: from the JVM" in runs["ipc"].stderr      # a kernel's child writes to the runner's stderr
    assert "WARNING: from the JVM" not in runs["log"].stderr, runs["log"].stderr
    assert "WARNING: from the JVM" in (tmp_path / "logs" / "k.log").read_text()
    for how in ("ipc", "log"):        # and not copied into the executed notebook (capture_fd_output off)
        outputs = nbformat.read(str(tmp_path / f"out-{how}.ipynb"), 4).cells[0].outputs
        assert not any("from the JVM" in out.get("text", "") for out in outputs), (how, outputs)
    # The socket files live beside their connection file in Jupyter's runtime folder, not here.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.ipynb", "jvm.py", "logs", "out-ipc.ipynb",
                                                          "out-log.ipynb", "out-tcp.ipynb", "run.py"]
