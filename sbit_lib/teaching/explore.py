"""What the narrative notebooks show: row counts per layer, a table's Delta history, the
files inside a checkpoint, a query's progress, and `catch_up` to run the earlier steps.

Everything returns plain values or pandas frames, with paths relative to SBIT_HOME, so a
notebook's output reads the same on every machine.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from sbit_lib.course.config import Config
from sbit_lib.course.tables import ALL_TABLES
from sbit_lib.spark.storage import as_zone

LAYERS = ("history", "bronze", "silver", "gold")
STEPS = ("setup", "bronze", "silver", "gold")


def lesson_config(environment: str = "", home: str = "", test_data: str = "", mode: str = "",
                  as_of: str = "", spark_master: str = "") -> Config:
    """The notebooks' Config: ``Config.resolve``, with ages computed as of the expected results' date.

    user_bins holds each user's age bin, so a check against the expected results needs the
    date they were computed for (2023-03-31) unless `as_of` or SBIT_AS_OF says otherwise.
    """
    import os

    from sbit_lib.testing.expectations import Expectations

    if not as_of and not os.environ.get("SBIT_AS_OF"):
        as_of = Expectations.load(Config.resolve(test_data=test_data or None).test_data).as_of.isoformat()
    return Config.resolve(environment=environment or None, home=home or None, test_data=test_data or None,
                          mode=mode or None, as_of=as_of or None, spark_master=spark_master or None)


def relative(config: Config, path) -> str:
    """`path` relative to SBIT_HOME, e.g. ``dev/checkpoints/registered_users_bz``; a path
    elsewhere (a zone given as a URL or another folder) as it is."""
    path = as_zone(path)
    return path.relative_to(config.home).as_posix() if path.is_relative_to(config.home) else str(path)


def delta_version(config: Config, table: str) -> int:
    """The table's current Delta version: the number of the newest commit file in its ``_delta_log``."""
    log = config.table_location(table) / "_delta_log"
    return max(int(p.stem) for p in log.glob("*.json") if p.stem.isdigit())


def versions(config: Config) -> dict[str, int]:
    """{table: current Delta version} for every table of the environment (read from the logs, no Spark)."""
    return {table.name: delta_version(config, table.name) for table in ALL_TABLES}


def layer_counts(spark, config: Config) -> pd.DataFrame:
    """One row per table: layer, table, rows, and the Delta version it is at."""
    rows = []
    for table in ALL_TABLES:
        location = str(config.table_location(table.name))
        rows.append({"layer": table.layer, "table": table.name,
                     "rows": spark.read.format("delta").load(location).count(),
                     "version": delta_version(config, table.name)})
    frame = pd.DataFrame(rows)
    frame["layer"] = pd.Categorical(frame["layer"], LAYERS, ordered=True)
    return frame.sort_values(["layer", "table"]).reset_index(drop=True)


def history(spark, config: Config, table: str) -> pd.DataFrame:
    """A table's DESCRIBE HISTORY, oldest first: version, operation, its key parameters and row metrics."""
    wanted = ("numOutputRows", "numTargetRowsInserted", "numTargetRowsUpdated", "numTargetRowsDeleted")
    rows = []
    for row in spark.sql(f"DESCRIBE HISTORY {config.qualified(table)}").collect():
        metrics = row["operationMetrics"] or {}
        parameters = row["operationParameters"] or {}
        rows.append({"version": row["version"], "operation": row["operation"],
                     "output_mode": parameters.get("outputMode", parameters.get("mode", "")),
                     **{name: int(metrics[name]) for name in wanted if name in metrics}})
    return pd.DataFrame(rows).sort_values("version").fillna(0).reset_index(drop=True)


def checkpoint_files(config: Config, query: str) -> list[str]:
    """The files of a query's checkpoint, relative to it (checksums and temporary files left out)."""
    root = config.checkpoint_dir(query)
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*")
                  if p.is_file() and not p.name.endswith(".crc") and not p.name.startswith("."))


def checkpoint_entry(config: Config, query: str, kind: str, batch_id: int) -> list:
    """The JSON lines of a checkpoint's ``offsets/<id>`` or ``commits/<id>`` file (after its version line)."""
    path = config.checkpoint_dir(query) / kind / str(batch_id)
    lines = path.read_text().splitlines()
    return [json.loads(line) for line in lines[1:] if line.strip()]


def pending_files(config: Config) -> dict[str, list[str]]:
    """Per bronze source, the landed files its query has not read yet (not in its checkpoint's file log)."""
    from urllib.parse import unquote, urlparse

    from sbit_lib.course.bronze import SOURCES

    pending = {}
    for table in SOURCES:
        read = set()
        log = config.checkpoint_dir(table) / "sources" / "0"
        for entry in sorted(log.iterdir()) if log.exists() else []:
            if entry.is_file() and not entry.name.startswith(".") and not entry.name.endswith(".crc"):
                for line in entry.read_text().splitlines()[1:]:
                    if line.strip():
                        read.add(Path(unquote(urlparse(json.loads(line)["path"]).path)).name)
        folder = config.landing_zone / table
        landed = sorted(p.name for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")) \
            if folder.exists() else []
        pending[table] = [name for name in landed if name not in read]
    return pending


def progress(query) -> dict:
    """The essentials of a query's last progress: its name, last batch id and the rows that batch read."""
    last = query.lastProgress or {}
    return {"name": last.get("name"), "batch_id": last.get("batchId"), "input_rows": last.get("numInputRows")}


def _batch_ids(folder) -> list[int]:
    """The micro-batch ids logged in a checkpoint's ``offsets`` or ``commits`` folder (any zone)."""
    return [int(p.name) for p in folder.iterdir() if p.name.isdigit()] if folder.is_dir() else []


def _uncommitted(config: Config, query: str) -> bool:
    """True when a query's checkpoint planned a micro-batch it did not commit (an interrupted run)."""
    root = config.checkpoint_dir(query)
    return max(_batch_ids(root / "offsets"), default=-1) > max(_batch_ids(root / "commits"), default=-1)


def _mtime(path) -> float | None:
    """A local file's modification time; None for a zone given as a URL or a missing file."""
    return path.stat().st_mtime if isinstance(path, Path) and path.is_file() else None


def _last_commit_time(config: Config, table: str) -> float | None:
    """When `table`'s newest Delta commit file was written; None if unknown."""
    log = config.table_location(table) / "_delta_log"
    commits = sorted(p for p in log.iterdir() if p.name.endswith(".json")) if log.is_dir() else []
    return _mtime(commits[-1]) if commits else None


def _planned_after(config: Config, query: str, sources: list[str]) -> bool:
    """True when `query`'s last committed micro-batch was planned after the last commit of every
    table in `sources`: it then read everything they hold.

    A micro-batch fixes what it reads when it is planned (its ``offsets/<id>`` file), so that
    file's time is compared, not the commit's: a source that changed while the batch ran is
    not in it. Anything unknown (no batch yet, a URL zone) answers False: the layer runs.
    """
    root = config.checkpoint_dir(query)
    committed = _batch_ids(root / "commits")
    if not committed or _uncommitted(config, query):
        return False
    planned = _mtime(root / "offsets" / str(max(committed)))
    source_commits = [_last_commit_time(config, t) for t in sources]
    if planned is None or any(t is None for t in source_commits):
        return False
    return all(planned > t for t in source_commits)


def silver_is_current(config: Config) -> bool:
    """True when every silver query's last micro-batch was planned after its sources' last commit.

    Each wave reads bronze and the tables of the waves before it. (A query that last found
    nothing new planned no batch, so this can answer False when nothing is left: the layer
    then simply runs again, reading nothing.)
    """
    from sbit_lib.course.bronze import SOURCES
    from sbit_lib.course.silver import Silver

    upstream = list(SOURCES)
    for wave in Silver.WAVES:
        tables = [name.removeprefix("upsert_") for name in wave]
        if not all(_planned_after(config, t, upstream) for t in tables):
            return False
        upstream += tables
    return True


def catch_up(config: Config, spark, before: str, sets=(1,)) -> None:
    """Run the steps before `before` ('bronze', 'silver' or 'gold') for `sets`, skipping work done.

    Setting up only creates what is missing and the producer skips files already landed.
    Bronze runs only when a landed file is not in its checkpoints yet (or a batch was planned
    and not committed), silver only when a query's last batch was planned before its sources
    last changed: after a reader has run the earlier notebooks this starts no query at all.
    Refused while a stream job runs on the environment.
    """
    from sbit_lib.course.bronze import SOURCES, Bronze
    from sbit_lib.course.producer import Producer
    from sbit_lib.course.run import ensure_setup
    from sbit_lib.course.silver import Silver
    from sbit_lib.spark.runlock import ensure_not_running

    if before not in STEPS[1:]:
        raise ValueError(f"before must be one of {STEPS[1:]}, got {before!r}")
    ensure_not_running(config, "run the earlier steps")    # a stream job owns the checkpoints
    ensure_setup(config, spark)
    for n in sets:
        Producer(config).produce(n)
    bronze_behind = any(pending_files(config).values()) or any(_uncommitted(config, t) for t in SOURCES)
    if before in ("silver", "gold") and bronze_behind:
        Bronze(config, spark).consume(once=True)
    if before == "gold" and not silver_is_current(config):
        Silver(config, spark).upsert(once=True)
