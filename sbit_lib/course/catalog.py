"""The course's tables in this process's Spark catalog, and the one way to get Spark.

``get_spark(config)`` returns the process's SparkSession (``sbit_lib.spark.session``)
and points its catalog at the environment's Delta tables.

Why register on every start? Spark's default catalog lives in memory and dies
with the process; a Hive metastore (embedded Derby) lets only one JVM open it at
a time, so a papermill child or a second terminal could not see the tables while
a stream runs. Here the tables *are* their Delta folders: any process can point
its catalog at them with ``CREATE TABLE IF NOT EXISTS ... USING DELTA LOCATION``,
which reads schema and partitioning from the Delta log.
"""

from __future__ import annotations

import re

from pyspark.sql import SparkSession

from sbit_lib.course.config import Config
from sbit_lib.course.tables import ALL_TABLES, GYM_SUMMARY, GYM_SUMMARY_SQL
from sbit_lib.spark.session import spark_session
from sbit_lib.spark.storage import Zone

# What in a Delta log shows a committed table version: a commit ``NNNNNNNNNNNNNNNNNNNN.json``,
# a checkpoint of one (classic or V2: ``.parquet`` or ``.json``), or the pointer to the last
# checkpoint. A log holding none of them (empty, or only ``_staged_commits/``, ``.crc`` or
# ``.tmp`` files) is what a CREATE cut short leaves: no version of the table was ever written.
_COMMITTED = re.compile(r"^(\d{20}\.json|\d{20}\.checkpoint(\..+)?\.(parquet|json)|\d{20}\.\d{20}\.compacted\.json"
                        r"|_last_checkpoint)$")


def sql_str(value: object) -> str:
    """Quote a value (e.g. a path) as a SQL string literal."""
    return "'" + str(value).replace("\\", "\\\\").replace("'", "\\'") + "'"


def get_spark(config: Config | None = None) -> SparkSession:
    """Return the process's SparkSession with Delta, registering `config`'s tables.

    An existing session (a test fixture, a notebook, Databricks) is reused as it is.

    >>> spark = get_spark(Config.resolve(environment="dev"))   # doctest: +SKIP
    """
    config = config or Config.resolve()
    spark = spark_session(f"sbit-{config.environment}", config.spark_master, config.spark_ui,
                          str(config.home / "spark-warehouse"))
    register_tables(spark, config)
    return spark


def has_commit(location: Zone) -> bool:
    """True when the Delta table at `location` has at least one committed version.

    A folder whose ``_delta_log`` holds no commit is a table not yet created: Delta refuses
    to register it (DELTA_CREATE_EXTERNAL_TABLE_WITHOUT_TXN_LOG) or to create a table over
    it (DELTA_CREATE_TABLE_WITH_NON_EMPTY_LOCATION); ``SetupHelper.setup`` creates it.
    """
    try:
        return any(_COMMITTED.match(entry.name) for entry in (location / "_delta_log").iterdir())
    except (FileNotFoundError, NotADirectoryError):
        return False


# Which tables folder (local or URL) each database of this process's catalog points at.
_DATABASE_ROOTS: dict[str, object] = {}


def _claim_database(spark: SparkSession, config: Config) -> None:
    """Make this process's catalog entry for config's database point at config's folders.

    The same environment name under another ``SBIT_HOME`` or data zone (a notebook re-run
    with other parameters) has the same database name: forget the old entries first, so a name
    never resolves to another lakehouse's table. Dropping an external table's entry
    deletes no data.
    """
    previous = _DATABASE_ROOTS.get(config.db_name)
    if previous is not None and previous != config.tables_zone and spark.catalog.databaseExists(config.db_name):
        # SHOW TABLES, not catalog.listTables: the latter fails to decode its rows when
        # projections are interpreted (SBIT_SPARK_CODEGEN=false, as in the tests).
        for row in spark.sql(f"SHOW TABLES IN {config.db_name}").where("NOT isTemporary").collect():
            name = f"{config.db_name}.{row.tableName}"
            kind = "VIEW" if spark.catalog.getTable(name).tableType == "VIEW" else "TABLE"
            spark.sql(f"DROP {kind} IF EXISTS {name}")
        spark.sql(f"DROP DATABASE IF EXISTS {config.db_name}")
    _DATABASE_ROOTS[config.db_name] = config.tables_zone


def register_tables(spark: SparkSession, config: Config) -> list[str]:
    """Point the catalog at every Delta table of `config` that exists on disk; return their names.

    A table exists once its Delta log holds a commit: a folder a killed set-up left with a
    log but no commit is skipped here (set-up creates it). The ``gym_summary`` view is
    (re)created once its three source tables are registered.
    """
    _claim_database(spark, config)
    registered: list[str] = []
    for table in ALL_TABLES:
        location = config.table_location(table.name)
        if not has_commit(location):
            continue
        if not registered:
            create_database(spark, config)
        spark.sql(
            f"CREATE TABLE IF NOT EXISTS {config.qualified(table.name)} "
            f"USING DELTA LOCATION {sql_str(location)}"
        )
        registered.append(table.name)
    if has_commit(config.table_location(GYM_SUMMARY)):
        # The declarative pipeline (sbit_lib/declarative) makes gym_summary a materialized view:
        # a Delta table, registered like the others, in place of this pipeline's view.
        spark.sql(f"CREATE TABLE IF NOT EXISTS {config.qualified(GYM_SUMMARY)} "
                  f"USING DELTA LOCATION {sql_str(config.table_location(GYM_SUMMARY))}")
        registered.append(GYM_SUMMARY)
    elif {"gym_logs", "completed_workouts", "users"} <= set(registered):
        create_view(spark, config)
    return registered


def create_database(spark: SparkSession, config: Config) -> None:
    """Create the environment's database in the catalog.

    It gets no LOCATION of its own: every table names its folder, and dropping the
    database (cleanup) then never deletes a folder by itself.
    """
    _claim_database(spark, config)
    spark.sql(f"CREATE DATABASE IF NOT EXISTS {config.db_name}")


def create_view(spark: SparkSession, config: Config) -> None:
    """(Re)create the gym_summary view; a view lives in the catalog only, so every process makes it."""
    body = GYM_SUMMARY_SQL.format(db=config.db_name)
    spark.sql(f"CREATE OR REPLACE VIEW {config.qualified(GYM_SUMMARY)} AS {body}")
