"""Settings for every pytest run, tests and notebooks (nbmake) alike: a fresh SBIT_HOME under
pytest's temporary folder (so no run touches ./lakehouse), the Spark UI off, and the order
and grouping that let `make test` run on two pytest-xdist workers (`-n 2 --dist loadgroup`).

Two tiers: `make test` deselects the items marked `full` (the long tail); `make test-full`
runs them after the fast tier."""

import os

import pytest

# Notebooks 01-07 and 10 share the environment "dev", as a reader's do: each one runs the
# earlier steps it needs (idempotent thanks to checkpoints), so they are correct in any order,
# but on one worker, in order, each finds the earlier ones' work done.
NARRATIVE = ("01-", "02-", "03-", "04-", "05-", "06-", "07-", "10-")
NARRATIVE_GROUP = "narrative-notebooks"
# A test module runs on one worker, in order (its module-scoped fixtures build tables once
# for its tests), except these, whose tests are independent and long.
INDEPENDENT_MODULES = ("test_restart.py",)
# The longest work starts first, so the two workers finish together (`make test` keeps
# this order: --no-loadscope-reorder; xdist would otherwise put big groups first and these
# one-test items last). The narrative notebooks are one group run in order, the longest chain.
SLOW_FIRST = (
    NARRATIVE_GROUP, "notebooks/11-", "tests/test_fault.py", "tests/test_bad_input.py", "tests/test_declarative.py",
    "notebooks/08-", "notebooks/09-", "tests/test_restart.py",
    "tests/test_silver_gold_rules.py", "tests/test_stream_job.py", "notebooks/00-",
)


@pytest.hookimpl(trylast=True)
def pytest_configure(config):
    os.environ["SBIT_SPARK_UI"] = "false"
    # Projections evaluated interpreted: the tests' micro-batches are small, and generating and
    # compiling each task's code costs more than their rows (sbit_lib/spark/session.py).
    os.environ["SBIT_SPARK_CODEGEN"] = "false"
    # a developer's own settings must not change the tests
    for name in ("SBIT_ENV", "SBIT_MODE", "SBIT_DATA_ZONE", "SBIT_CHECKPOINT_ZONE"):
        os.environ.pop(name, None)
    # Notebook kernels started by nbmake and papermill inherit this environment. Under xdist
    # every worker has its own temporary folder, hence its own lakehouse.
    os.environ["SBIT_HOME"] = str(config._tmp_path_factory.mktemp("lakehouse"))


def _group(item) -> str | None:
    path = item.nodeid.split("::")[0]
    name = path.rsplit("/", 1)[-1]
    if path.startswith("notebooks/") and name.startswith(NARRATIVE):
        return NARRATIVE_GROUP
    if path.startswith("tests/") and name not in INDEPENDENT_MODULES:
        return name
    return None


@pytest.hookimpl(tryfirst=True)      # marks first: xdist's hook turns them into node-id suffixes
def pytest_collection_modifyitems(config, items):
    def rank(item):
        for position, prefix in enumerate(SLOW_FIRST):
            if item.nodeid.startswith(prefix) or _group(item) == prefix:
                return position
        return len(SLOW_FIRST)

    items.sort(key=rank)            # stable: the order within each rank is pytest's
    for item in items:
        group = _group(item)
        if group and not item.get_closest_marker("xdist_group"):    # a test's own group wins
            item.add_marker(pytest.mark.xdist_group(group))


# What the notebooks cost a user who runs them all: the time of every nbmake item, added up
# and printed at the end of the run. Under xdist the reports reach the controller, so this
# sums both workers' notebooks.
_NOTEBOOK_SECONDS: dict[str, float] = {}
# And what each xdist worker spent in tests (set-up, call, tear-down): CI's wall time is the
# busier worker's, so a change that grows one worker only is seen here.
_WORKER_SECONDS: dict[str, float] = {}


def pytest_runtest_logreport(report):
    path = report.nodeid.split("::")[0]
    if path.startswith("notebooks/") and path.endswith(".ipynb"):
        _NOTEBOOK_SECONDS[path] = _NOTEBOOK_SECONDS.get(path, 0.0) + report.duration
    node = getattr(report, "node", None)          # set by xdist on the controller
    if node is not None:
        worker = node.gateway.id
        _WORKER_SECONDS[worker] = _WORKER_SECONDS.get(worker, 0.0) + report.duration


def pytest_terminal_summary(terminalreporter):
    if _NOTEBOOK_SECONDS:
        each = ", ".join(f"{path.split('/')[-1].split('-')[0]} {seconds:.0f}"
                         for path, seconds in sorted(_NOTEBOOK_SECONDS.items()))
        terminalreporter.write_line(
            f"notebooks under nbmake: {len(_NOTEBOOK_SECONDS)} in {sum(_NOTEBOOK_SECONDS.values()):.0f} s "
            f"in total (s each: {each})")
    if _WORKER_SECONDS:
        terminalreporter.write_line("busy per worker: " + ", ".join(
            f"{worker} {seconds:.0f} s" for worker, seconds in sorted(_WORKER_SECONDS.items())))
