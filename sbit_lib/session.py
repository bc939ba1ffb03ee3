"""One way to start Spark: local Spark + Delta, configured like the course's cluster.

``get_spark(config)`` returns the process's single SparkSession (creating it on
first use) and registers the environment's Delta tables in its catalog.

Why register on every start? Spark's default catalog lives in memory and dies
with the process; a Hive metastore (embedded Derby) lets only one JVM open it at
a time, so a papermill child or a second terminal could not see the tables while
a stream runs. Here the tables *are* their Delta folders: any process can point
its catalog at them with ``CREATE TABLE IF NOT EXISTS ... USING DELTA LOCATION``,
which reads schema and partitioning from the Delta log.
"""

from __future__ import annotations

import os
from pathlib import Path

from pyspark.sql import SparkSession

from sbit_lib import cds
from sbit_lib.config import Config, ConfigError
from sbit_lib.jars import delta_jars
from sbit_lib.java import ensure_java_home
from sbit_lib.tables import ALL_TABLES, GYM_SUMMARY, GYM_SUMMARY_SQL, TABLES

_HERE = Path(__file__).resolve().parent
ROCKSDB_PROVIDER = "org.apache.spark.sql.execution.streaming.state.RocksDBStateStoreProvider"


def sql_str(value: object) -> str:
    """Quote a value (e.g. a path) as a SQL string literal."""
    return "'" + str(value).replace("\\", "\\\\").replace("'", "\\'") + "'"


# C1 only (short JVMs on small data), with the code cache the JVM gives tiered compilation:
# C1-only JVMs reserve 48 MiB, which a stream job's twelve queries filled in CI ("CodeCache
# is full", then a query failed with VirtualMachineError: Out of space in CodeCache).
DEFAULT_JAVA_OPTIONS = "-XX:TieredStopAtLevel=1 -XX:ReservedCodeCacheSize=240m"


def _builder(config: Config) -> SparkSession.Builder:
    jars = ",".join(str(j) for j in delta_jars())
    log4j = _HERE / "log4j2.properties"
    # C1 only: the project's JVMs are many and short (a notebook, a papermill run, a CLI
    # command) on small data, so a cold JVM spends most of its first minute compiling
    # Spark's planner with C2. Measured on 2 cores: the first setup in a fresh JVM takes
    # half the time. SBIT_JAVA_OPTIONS="" restores the JVM's default tiered compilation.
    extra = os.environ.get("SBIT_JAVA_OPTIONS", DEFAULT_JAVA_OPTIONS)
    # The class-data archive `make setup` made for this JDK and these jars, if any
    # (sbit_lib/cds.py): a new process reached its first Delta write in 14 s instead of
    # 25 s on 2 cores (make bench, figure 7).
    java_opts = f"-Dlog4j2.configurationFile=file:{log4j} {extra} {cds.java_option()}".strip()
    builder = (
        SparkSession.builder.appName(f"sbit-{config.environment}")
        .master(config.spark_master)
        .config("spark.jars", jars)
        .config("spark.driver.extraJavaOptions", java_opts)
        .config("spark.sql.extensions", "io.delta.sql.DeltaSparkSessionExtension")
        .config("spark.sql.catalog.spark_catalog", "org.apache.spark.sql.delta.catalog.DeltaCatalog")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.warehouse.dir", str(config.home / "spark-warehouse"))
        .config("spark.sql.streaming.stateStore.providerClass", ROCKSDB_PROVIDER)
        # The course enables optimized writes; here they add a shuffle and three Spark jobs
        # to every micro-batch's write (a tiny MERGE: 12 jobs, 2.5 s -> 9 jobs, 1.9 s on 2
        # cores) for files that auto compaction merges anyway.
        .config("spark.databricks.delta.optimizeWrite.enabled", "false")
        # Twelve streaming queries in one driver: the default 1 GiB heap ran 97% full.
        .config("spark.driver.memory", os.environ.get("SBIT_DRIVER_MEMORY", "2g"))
        # Auto compaction checks every commit for small files to merge: set 1 through every
        # layer took 113 s with it, 83 s without (2 cores, same run). The tables here stay
        # small; OPTIMIZE compacts one when you choose (`sbit sql "OPTIMIZE <table>"`).
        .config("spark.databricks.delta.autoCompact.enabled", "false")
        # Delta rebuilds table state with 50 tasks by default: far too many for a laptop's
        # small logs (one set through every layer: 83 s with 2 tasks, 76 s with 1).
        .config("spark.databricks.delta.snapshotPartitions", "1")
        .config("spark.scheduler.mode", "FAIR")
        .config("spark.scheduler.allocation.file", str(_HERE / "fairscheduler.xml"))
        .config("spark.ui.enabled", str(config.spark_ui).lower())
        .config("spark.ui.showConsoleProgress", "false")
    )
    if config.spark_master.startswith("spark://") and os.environ.get("SBIT_DYNAMIC_ALLOCATION", "") != "false":
        # A standalone cluster gives an application every free core until it ends. The batch
        # test's notebook waits while the 07-run it starts (another application) works, so
        # an application gives back executors it has not used for 10 s (their shuffle files
        # 30 s) and asks again when it has tasks: without it 07-run would wait for ever.
        # These override the cluster's spark-defaults.conf; SBIT_DYNAMIC_ALLOCATION=false
        # leaves allocation to the cluster's settings.
        for key, value in (("spark.dynamicAllocation.enabled", "true"),
                           ("spark.dynamicAllocation.shuffleTracking.enabled", "true"),
                           ("spark.dynamicAllocation.executorIdleTimeout", "10s"),
                           ("spark.dynamicAllocation.shuffleTracking.timeout", "30s"),
                           ("spark.dynamicAllocation.cachedExecutorIdleTimeout", "30s")):
            builder = builder.config(key, value)
    return builder


def get_spark(config: Config | None = None) -> SparkSession:
    """Return the process's SparkSession with Delta, registering `config`'s tables.

    An existing session (a test fixture, a notebook, Databricks) is reused as it is.

    >>> spark = get_spark(Config.resolve(environment="dev"))   # doctest: +SKIP
    """
    config = config or Config.resolve()
    spark = SparkSession.getActiveSession()
    if spark is None:
        partitions = os.environ.get("SBIT_SHUFFLE_PARTITIONS", "")
        if partitions and (not partitions.isdigit() or int(partitions) < 1):
            raise ConfigError(f"SBIT_SHUFFLE_PARTITIONS={partitions!r} is not a positive whole number "
                              "(the shuffle partitions of every query; unset: one per core in local mode)")
        ensure_java_home()
        os.environ.setdefault("PYSPARK_PYTHON", os.sys.executable)
        spark = _builder(config).getOrCreate()
        spark.sparkContext.setLogLevel("ERROR")
        # One shuffle partition per core: the default 200 makes tiny tasks on a laptop. On a
        # cluster the cores are not known when the session starts (executors come later),
        # so Spark's setting stays unless SBIT_SHUFFLE_PARTITIONS gives one.
        if partitions:
            spark.conf.set("spark.sql.shuffle.partitions", partitions)
        elif config.spark_master.startswith("local"):
            spark.conf.set("spark.sql.shuffle.partitions", str(spark.sparkContext.defaultParallelism))
    register_tables(spark, config)
    return spark


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
        for table in spark.catalog.listTables(config.db_name):
            kind = "VIEW" if table.tableType == "VIEW" else "TABLE"
            spark.sql(f"DROP {kind} IF EXISTS {config.db_name}.{table.name}")
        spark.sql(f"DROP DATABASE IF EXISTS {config.db_name}")
    _DATABASE_ROOTS[config.db_name] = config.tables_zone


def register_tables(spark: SparkSession, config: Config) -> list[str]:
    """Point the catalog at every Delta table of `config` that exists on disk; return their names.

    The ``gym_summary`` view is (re)created once its three source tables are registered.
    """
    _claim_database(spark, config)
    registered: list[str] = []
    for table in ALL_TABLES:
        location = config.table_location(table.name)
        if not (location / "_delta_log").is_dir():
            continue
        if not registered:
            create_database(spark, config)
        spark.sql(
            f"CREATE TABLE IF NOT EXISTS {config.qualified(table.name)} "
            f"USING DELTA LOCATION {sql_str(location)}"
        )
        registered.append(table.name)
    if {"gym_logs", "completed_workouts", "users"} <= set(registered):
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


def stop_spark() -> None:
    """Stop the process's SparkSession, if any."""
    spark = SparkSession.getActiveSession()
    if spark is not None:
        spark.stop()


__all__ = ["get_spark", "register_tables", "create_database", "create_view", "stop_spark",
           "sql_str", "TABLES"]
