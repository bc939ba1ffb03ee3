"""One way to start Spark here: local Spark + Delta, configured like the course's cluster.

:func:`spark_session` returns the process's single SparkSession, creating it on first
use with the Delta jars (``sbit_lib.spark.jars``), a Java 17/21 (``sbit_lib.spark.java``)
and the class-data archive if ``make setup`` made one (``sbit_lib.spark.cds``). The
course's code asks for it through :func:`sbit_lib.course.catalog.get_spark`, which also
points the catalog at the environment's tables.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import sys
from pathlib import Path

from pyspark.sql import SparkSession

from sbit_lib import ConfigError
from sbit_lib.spark import cds
from sbit_lib.spark.jars import delta_jars
from sbit_lib.spark.java import DEFAULT_JAVA_OPTIONS, ensure_java_home

_HERE = Path(__file__).resolve().parent
LOOPBACK = "127.0.0.1"
ROCKSDB_PROVIDER = "org.apache.spark.sql.execution.streaming.state.RocksDBStateStoreProvider"


def _builder(app_name: str, master: str, ui: bool, warehouse_dir: str) -> SparkSession.Builder:
    jars = ",".join(str(j) for j in delta_jars())
    log4j = _HERE / "log4j2.properties"
    # C1 only: the project's JVMs are many and short (a notebook, a papermill run, a CLI
    # command) on small data, so a cold JVM spends most of its first minute compiling
    # Spark's planner with C2. Measured on 2 cores: the first setup in a fresh JVM takes
    # half the time. SBIT_JAVA_OPTIONS="" restores the JVM's default tiered compilation.
    extra = os.environ.get("SBIT_JAVA_OPTIONS", DEFAULT_JAVA_OPTIONS)
    # The class-data archive `make setup` made for this JDK and these jars, if any
    # (sbit_lib/spark/cds.py): a new process reaches its first Delta write in about half the time.
    java_opts = f"-Dlog4j2.configurationFile=file:{log4j} {extra} {cds.java_option()}".strip()
    host = host_setting(master)
    # Where the driver listens. Spark binds its RPC and block-manager ports to
    # spark.driver.bindAddress (else spark.driver.host, by default this machine's network
    # address) and its UI to SPARK_LOCAL_IP (else every interface), none of them authenticated:
    # on a shared network anyone could read the UI and reach the driver. By default all of them
    # are on loopback; SBIT_SPARK_HOST (the address other machines reach this one at) opens them
    # for executors on other machines. SPARK_LOCAL_IP is read by the JVM pyspark starts, which
    # inherits this process's environment: it must be set before the session's first start.
    if host is None:
        os.environ["SPARK_LOCAL_IP"] = LOOPBACK
        bind_address, advertised = LOOPBACK, LOOPBACK
    else:
        bind_address, advertised = "0.0.0.0", host
    builder = (
        SparkSession.builder.appName(app_name)
        .master(master)
        .config("spark.jars", jars)
        .config("spark.driver.bindAddress", bind_address)
        .config("spark.driver.host", advertised)
        .config("spark.driver.extraJavaOptions", java_opts)
        .config("spark.sql.extensions", "io.delta.sql.DeltaSparkSessionExtension")
        .config("spark.sql.catalog.spark_catalog", "org.apache.spark.sql.delta.catalog.DeltaCatalog")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.warehouse.dir", warehouse_dir)
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
        .config("spark.ui.enabled", str(ui).lower())
        .config("spark.ui.showConsoleProgress", "false")
    )
    if not codegen_setting():
        # Projections evaluated interpreted instead of as generated Java code. Spark generates,
        # formats and compiles the code of each task's projections (Delta's log replay and
        # statistics, every foreachBatch MERGE): on micro-batches of a few records that costs
        # more than the rows do, while on the course's 40 MB heart-rate files the generated
        # code pays for itself. The tests turn it off (conftest.py); a learner keeps Spark's
        # default, also because Spark 4.2's interpreted path cannot decode every typed result:
        # spark.catalog.listTables fails with EXPRESSION_DECODING_FAILED (the project's code
        # uses SHOW TABLES and catalog.getTable instead).
        builder = builder.config("spark.sql.codegen.factoryMode", "NO_CODEGEN")
    if master.startswith("spark://") and os.environ.get("SBIT_DYNAMIC_ALLOCATION", "") != "false":
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


def host_setting(master: str = "local[*]") -> str | None:
    """SBIT_SPARK_HOST, checked: None (unset: every listener on loopback), else the address
    executors on other machines reach this driver at (it then listens on every interface)."""
    host = os.environ.get("SBIT_SPARK_HOST", "").strip()
    if host:
        try:
            socket.getaddrinfo(host, None)
        except OSError as error:
            raise ConfigError(f"SBIT_SPARK_HOST={host!r} does not resolve ({error}): give the address or name "
                              "other machines reach this one at, or unset it to keep Spark on loopback") from None
        return host
    remote = [h for h in _master_hosts(master) if not _is_loopback(h)]
    if remote:
        raise ConfigError(f"the Spark master {master!r} is on another machine ({remote[0]}), and its executors "
                          "cannot reach a driver that listens on loopback only: set SBIT_SPARK_HOST to the "
                          "address that machine reaches this one at")
    return None


def _master_hosts(master: str) -> list[str]:
    """The hosts of a spark://h1:p1,h2:p2 master URL; none for local[...]."""
    if not master.startswith("spark://"):
        return []
    return [part.rsplit(":", 1)[0].strip("[]") for part in master[len("spark://"):].split(",") if part]


def _is_loopback(host: str) -> bool:
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(host, None)}
    except OSError:
        return False
    return all(is_loopback_address(a) for a in addresses)


def is_loopback_address(address: str) -> bool:
    """True for a loopback IP address, IPv4 or IPv6, also as Java's dual-stack sockets show an
    IPv4 one (::ffff:127.0.0.1) and with an IPv6 zone (%lo)."""
    ip = ipaddress.ip_address(address.split("%")[0])
    return (getattr(ip, "ipv4_mapped", None) or ip).is_loopback


def codegen_setting() -> bool:
    """SBIT_SPARK_CODEGEN, checked: false turns off Spark's code generation for projections."""
    value = os.environ.get("SBIT_SPARK_CODEGEN", "true").strip().lower()
    if value not in ("true", "false", "1", "0", "yes", "no"):
        raise ConfigError(f"SBIT_SPARK_CODEGEN={value!r} is neither true nor false (false: projections "
                          "evaluated without generated code, quicker on small data; unset: Spark's default)")
    return value in ("true", "1", "yes")


def shuffle_partitions_setting() -> str:
    """SBIT_SHUFFLE_PARTITIONS, checked: a positive whole number, or "" when unset."""
    partitions = os.environ.get("SBIT_SHUFFLE_PARTITIONS", "")
    if partitions and (not partitions.isdigit() or int(partitions) < 1):
        raise ConfigError(f"SBIT_SHUFFLE_PARTITIONS={partitions!r} is not a positive whole number "
                          "(the shuffle partitions of every query; unset: one per core in local mode)")
    return partitions


def spark_session(app_name: str = "sbit", master: str = "local[*]", ui: bool = True,
                  warehouse_dir: str | None = None) -> SparkSession:
    """Return the process's SparkSession with Delta: the active one as it is (a test fixture,
    a notebook, Databricks), else a new one with these settings.

    >>> spark = spark_session("sbit-dev", "local[2]", ui=False)   # doctest: +SKIP
    """
    spark = SparkSession.getActiveSession()
    if spark is not None:
        return spark
    partitions = shuffle_partitions_setting()
    ensure_java_home()
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    warehouse = warehouse_dir or str(Path.cwd() / "spark-warehouse")
    spark = _builder(app_name, master, ui, warehouse).getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    # One shuffle partition per core: the default 200 makes tiny tasks on a laptop. On a
    # cluster the cores are not known when the session starts (executors come later),
    # so Spark's setting stays unless SBIT_SHUFFLE_PARTITIONS gives one.
    if partitions:
        spark.conf.set("spark.sql.shuffle.partitions", partitions)
    elif master.startswith("local"):
        spark.conf.set("spark.sql.shuffle.partitions", str(spark.sparkContext.defaultParallelism))
    return spark


def observation_ready(observation) -> bool:
    """True when an ``Observation``'s metrics are set, i.e. the action it observed has run.

    ``Observation.get`` blocks until then, for ever if that action never runs (a write that
    Delta skipped as already committed); pyspark has no public way to ask.
    """
    return bool(observation._jo.future().isCompleted())


def active_session() -> SparkSession | None:
    """The session this process runs, from any thread; None when there is none."""
    return SparkSession._instantiatedSession or SparkSession.getActiveSession()


def stop_spark() -> None:
    """Stop the process's SparkSession, if any."""
    spark = active_session()
    if spark is not None:
        spark.stop()
