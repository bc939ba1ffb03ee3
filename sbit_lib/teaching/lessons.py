"""Small shared setup of the interview walkthrough (``notebooks/00-interview-walkthrough.ipynb``).

The walkthrough writes every experiment in its own cells; what stays here is the plumbing
those cells share: a fresh environment, a fresh scratch folder per proof
(``<SBIT_HOME>/<environment>/scratch/<name>``), one-line event files to stream, and the
short name of the error an experiment expects. Nothing here is used by the pipeline.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shutil
import tempfile
from pathlib import Path

from pyspark.sql import SparkSession

from sbit_lib.course.config import Config
from sbit_lib.course.tables import ALL_TABLES, GYM_SUMMARY
from sbit_lib.spark.storage import Zone, atomic_copy
from sbit_lib.teaching.explore import relative

EVENTS = "id INT, name STRING"           # the schema of the scratch event files
NAMES = {1: "ann", 2: "bob", 3: "cy", 4: "dee"}
_ERROR_CLASS = re.compile(r"\[([A-Z][A-Z0-9_]+(?:\.[A-Z0-9_]+)?)\]")


def start(config: Config, spark: SparkSession) -> str:
    """Clean the environment, set it up (tables, view, date_lookup); return a one-line summary."""
    from sbit_lib.course.run import ensure_setup
    from sbit_lib.course.setup_helper import SetupHelper

    with contextlib.redirect_stdout(io.StringIO()):       # its messages name absolute paths
        SetupHelper(config, spark).cleanup()
        ensure_setup(config, spark)
    lookup = spark.table(config.qualified("date_lookup")).count()
    return (f"{config.db_name}: {len(ALL_TABLES)} tables, the {GYM_SUMMARY} view, date_lookup {lookup} rows; "
            f"scratch folders under {relative(config, config.env_root / 'scratch')}")


def scratch(config: Config, name: str) -> Path:
    """Return an empty scratch folder ``<env root>/scratch/<name>`` (emptied first: re-runs start afresh)."""
    folder = config.env_root / "scratch" / name
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return folder


def land(folder: Zone, name: str, lines: list[str]) -> Zone:
    """Write a file of `lines` into `folder` the producer's way (hidden name, then a rename), as the
    folder's newest file, so a file source reads it after the files already there; return it."""
    text = "".join(line + "\n" for line in lines)
    if not isinstance(folder, Path):           # a zone given as a URL: through Hadoop's file system
        with tempfile.TemporaryDirectory() as local:
            (Path(local) / name).write_text(text)
            atomic_copy(Path(local) / name, folder / name)
        return folder / name
    folder.mkdir(parents=True, exist_ok=True)
    tmp, path = folder / f".{name}.tmp", folder / name
    tmp.write_text(text)
    newest = max((p.stat().st_mtime for p in folder.iterdir() if not p.name.startswith(".")), default=0)
    if newest:
        os.utime(tmp, (newest + 1, newest + 1))
    os.replace(tmp, path)
    return path


def write_events(folder: Zone, *ids: int) -> Zone:
    """Land one one-line JSON file per id (``events_<id>.json``: ``{"id": 1, "name": "ann"}``); return the folder."""
    for number in ids:
        land(folder, f"events_{number}.json", [json.dumps({"id": number, "name": NAMES.get(number, str(number))})])
    return folder


def failure(fn, *args, **kwargs) -> str:
    """Return ``"<exception type>: <error classes, outer → inner, or first line>"`` of what `fn` raises.

    Raises AssertionError if `fn` raises nothing.
    """
    from pyspark.logger import PySparkLogger

    # PySpark logs every SQL error with its query context to stderr: expected here, so silenced.
    loggers = [PySparkLogger.getLogger(name) for name in ("SQLQueryContextLogger", "DataFrameQueryContextLogger")]
    for logger in loggers:
        logger.disabled = True
    try:
        fn(*args, **kwargs)
    except Exception as error:     # noqa: BLE001 - the lesson is the error itself
        text = str(error)
        classes = list(dict.fromkeys(_ERROR_CLASS.findall(text)))
        detail = " → ".join(classes) if classes else text.strip().splitlines()[0]
        return f"{type(error).__name__}: {detail}"
    finally:
        for logger in loggers:
            logger.disabled = False
    raise AssertionError(f"{getattr(fn, '__name__', fn)} raised nothing")
