"""Run the course's batch test notebook (``notebooks/08-batch-test.ipynb``) with papermill.

``make run`` calls this: sets 1..2 through every layer, validated against the expected
results, the executed notebook kept in ``build/`` and its printed results shown.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sbit_lib.course.config import PROJECT_ROOT

NOTEBOOK = PROJECT_ROOT / "notebooks" / "08-batch-test.ipynb"
BUILD = PROJECT_ROOT / "build"


def local_kernel(stderr_log: Path | None = None) -> dict:
    """papermill.execute_notebook options: talk to the kernel over local IPC sockets, not TCP;
    with `stderr_log`, append what the kernel process writes to stderr to that file.

    The kernel and papermill run on one machine; over TCP without encryption ipykernel
    warns at every start ("Kernel is running over TCP without encryption"), once per
    notebook a run executes. The sockets are files ``kernel-sbit-<random>-ipc-N`` beside
    their own connection file ``kernel-sbit-<random>.json`` in Jupyter's runtime folder,
    which only this user can open (0700): two runs never share a name, and nothing is left
    in the working folder. Call it once per execution.

    A kernel's stderr is where its JVM writes (Spark 4's "WARNING: Using incubator modules:
    jdk.incubator.vector", once per JVM, and any error Spark logs). ipykernel would copy what
    the process's file descriptors receive into the notebook as cell output; here it does not
    (``capture_fd_output=False``), so an executed notebook holds what its code printed, and
    the JVM's lines go to the kernel's stderr, which the kernels a notebook starts itself
    (08-batch-test's 07-run per set) inherit. ``make run`` and ``make stream-test`` send it
    to ``build/logs/`` and name the file when a run fails: the terminal shows the results,
    not one JVM warning per kernel. (08-batch-test opened in JupyterLab runs in a kernel that
    does capture: its 07-run kernels' JVM lines show in its cell output, as before.)
    """
    import secrets

    from jupyter_core.paths import jupyter_runtime_dir
    from traitlets.config import Config as KernelConfig

    runtime = Path(jupyter_runtime_dir())
    runtime.mkdir(mode=0o700, parents=True, exist_ok=True)
    connection = runtime / f"kernel-sbit-{secrets.token_hex(6)}.json"
    options = {"config": KernelConfig({"KernelManager": {"transport": "ipc", "connection_file": str(connection)}}),
               "extra_arguments": ["--IPKernelApp.capture_fd_output=False"]}
    if stderr_log is not None:
        stderr_log.parent.mkdir(parents=True, exist_ok=True)
        options["kernel_manager_class"] = _kernel_manager_logging_to(stderr_log)
    return options


def _kernel_manager_logging_to(log: Path) -> type:
    """A jupyter_client kernel manager class whose kernels write their stderr to `log` (appended)."""
    from jupyter_client.manager import AsyncKernelManager

    class StderrToFile(AsyncKernelManager):
        async def _async_launch_kernel(self, kernel_cmd, **kw):
            with open(log, "ab") as stderr:      # the kernel keeps its own descriptor
                await super()._async_launch_kernel(kernel_cmd, **{**kw, "stderr": stderr})

    return StderrToFile


def kernel_log(name: str) -> Path:
    """``build/logs/<name>-kernels.log``, emptied: where a papermill run's kernels write stderr."""
    log = BUILD / "logs" / f"{name}-kernels.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_bytes(b"")
    return log


def run_batch_test(sets: int = 2, mode: str = "default", environment: str = "batch_test",
                   keep_tables: bool = False, output: Path | None = None, stderr_log: Path | None = None,
                   **parameters) -> Path:
    """Execute 08-batch-test with papermill; return the executed notebook (raises if a check fails).

    `stderr_log`: a file for the kernels' stderr (their JVMs' messages); None leaves it on this
    process's stderr."""
    import papermill

    output = Path(output or BUILD / f"08-batch-test-{mode}.ipynb")
    output.parent.mkdir(parents=True, exist_ok=True)
    papermill.execute_notebook(
        str(NOTEBOOK), str(output), progress_bar=False,
        cwd=str(NOTEBOOK.parent), **local_kernel(stderr_log),
        parameters=dict(environment=environment, sets=sets, mode=mode, keep_tables=keep_tables, **parameters))
    return output


def printed_output(notebook: Path) -> str:
    """Return what the notebook's cells printed, in order."""
    import nbformat

    nb = nbformat.read(str(notebook), as_version=4)
    return "".join(out.get("text", "") for cell in nb.cells if cell.cell_type == "code"
                   for out in cell.get("outputs", []) if out.get("output_type") == "stream")


def report(execute, output: Path, what: str, passed: str, stderr_log: Path | None = None) -> int:
    """Run `execute()` (a papermill execution writing `output`), print what the notebook printed,
    and end with one line: `passed`, or ``error: <what> failed: ...``; return the exit code.
    `stderr_log`, where the kernels wrote their stderr, is named when the run fails."""
    import traceback

    from papermill.exceptions import PapermillExecutionError

    logs = f"; the kernels' stderr (Spark, the JVM): {stderr_log}" if stderr_log else ""
    output.unlink(missing_ok=True)        # what is printed below is this run's, never an older one's
    try:
        execute()
    except PapermillExecutionError as err:
        print(printed_output(output))
        print(f"error: {what} failed: {err.ename}: {err.evalue.splitlines()[0] if err.evalue else ''} "
              f"(executed notebook: {output}{logs})", file=sys.stderr)
        return 1
    except Exception as err:          # a kernel that died or did not start: no cell error to show
        if output.exists():
            print(printed_output(output))
        traceback.print_exc()
        print(f"error: {what} failed: {type(err).__name__}: {err} (executed notebook: {output}{logs})",
              file=sys.stderr)
        return 1
    print(printed_output(output))
    print(passed)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", type=int, default=2)
    parser.add_argument("--mode", default="default", choices=("default", "course"))
    parser.add_argument("--env", default="batch_test")
    parser.add_argument("--keep-tables", action="store_true", help="leave the tables for inspection")
    args = parser.parse_args(argv)
    output = BUILD / f"08-batch-test-{args.mode}.ipynb"
    log = kernel_log(f"08-batch-test-{args.mode}")
    return report(lambda: run_batch_test(args.sets, args.mode, args.env, args.keep_tables, output, log), output,
                  "batch test",
                  f"Batch test passed for sets 1..{args.sets} in {args.mode} mode; executed notebooks in {BUILD}",
                  log)


if __name__ == "__main__":
    sys.exit(main())
