"""Settings for every pytest run, tests and notebooks (nbmake) alike: a fresh SBIT_HOME under
pytest's temporary folder (so no run touches ./lakehouse), and the Spark UI off."""

import os

import pytest


@pytest.hookimpl(trylast=True)
def pytest_configure(config):
    os.environ["SBIT_SPARK_UI"] = "false"
    for name in ("SBIT_ENV", "SBIT_MODE"):      # a developer's own settings must not change the tests
        os.environ.pop(name, None)
    # Notebook kernels started by nbmake and papermill inherit this environment.
    os.environ["SBIT_HOME"] = str(config._tmp_path_factory.mktemp("lakehouse"))
