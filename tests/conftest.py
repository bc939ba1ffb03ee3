"""One Spark session for the whole test run (UI off, few partitions), real Delta tables
under the temporary SBIT_HOME the root conftest.py sets, and the project's prepared test data."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from sbit_lib.course.config import PROJECT_ROOT, Config  # noqa: E402

TEST_DATA = PROJECT_ROOT / "test_data"


@pytest.fixture(scope="session")
def lakehouse_home() -> Path:
    """This test run's fresh SBIT_HOME (made by the root conftest.py)."""
    return Path(os.environ["SBIT_HOME"])


@pytest.fixture(scope="session")
def test_data() -> Path:
    """The project's test data, with heart-rate sets and expectations prepared (skipped when done)."""
    from sbit_lib.testing.testdata import prepare

    prepare(TEST_DATA)
    return TEST_DATA


@pytest.fixture(scope="session")
def spark(lakehouse_home):
    """The one SparkSession of the test process."""
    from sbit_lib.course.catalog import get_spark

    session = get_spark(Config.resolve(environment="pytest", home=lakehouse_home))
    yield session
    session.stop()


@pytest.fixture
def make_config(lakehouse_home, test_data):
    """Build a Config for a named environment under the test home."""

    def make(environment: str, **kwargs) -> Config:
        kwargs.setdefault("test_data", test_data)
        return Config.resolve(environment=environment, home=lakehouse_home, **kwargs)

    return make


# The `sbit` console script of this interpreter's environment.
SBIT = Path(sys.executable).parent / "sbit"


def sbit_cli(*args: str, env: dict | None = None, timeout: int = 300):
    """Run the `sbit` console script in a separate process; return the CompletedProcess."""
    import subprocess

    return subprocess.run([str(SBIT), *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


def wait_for(predicate, timeout_s: float, what: str) -> None:
    """Poll `predicate` until it is true or `timeout_s` passes (no fixed sleeps)."""
    import time

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


def listeners(pid: int) -> list[tuple[str, int, str, int, bool]]:
    """The TCP ports that process `pid` and every process under it listen on, as
    (process name, pid, address, port, on loopback). Every interface shows as 0.0.0.0 or ::."""
    import psutil

    from sbit_lib.spark.session import is_loopback_address

    root = psutil.Process(pid)
    found = []
    for process in [root, *root.children(recursive=True)]:
        try:
            name, connections = process.name(), process.net_connections(kind="tcp")
        except psutil.Error:                       # ended meanwhile
            continue
        for connection in connections:
            if connection.status != psutil.CONN_LISTEN:
                continue
            address = connection.laddr.ip
            found.append((name, process.pid, address, connection.laddr.port, is_loopback_address(address)))
    return found
