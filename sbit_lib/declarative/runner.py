"""Run the declared pipeline (``transformations/*.py``) in one environment: ``sbit declarative run``.

What the ``spark-pipelines`` CLI does, from Python, with this project's Spark settings:

1. a Spark Connect session on a Connect server in this process's JVM (with the Delta jars of
   ``sbit_lib.spark``, on a free loopback port: runs of several environments at once do not
   collide); Spark Declarative Pipelines run only over Connect, and the server needs a JVM
   started with it, so this process cannot also hold the notebooks' and tests' classic
   session: run it as its own process (``sbit declarative run``);
2. the environment's database, whose tables live where the hand-built pipeline keeps its
   own (``<data zone>/delta/<table>``), and the tables earlier runs made, registered again:
   the catalog is in memory and starts empty in each process;
3. a dataflow graph: every ``@dp.table``, ``@dp.materialized_view``, temporary view and
   flow of the definition files, registered with the Connect server;
4. a run (or a dry run, which only resolves the graph), whose events are printed as they come.

The environment must be one of its own: the tables have the hand-built pipeline's names,
and a pipeline owns its tables (it would truncate and recompute them). Course mode is
refused: its watermarked gold aggregation has no declarative equivalent here.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import io
import os
import re
import secrets
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from sbit_lib import ConfigError
from sbit_lib.course.bronze import SOURCES as BRONZE_SOURCES
from sbit_lib.course.catalog import register_tables, sql_str
from sbit_lib.course.config import DECLARATIVE_CHECKPOINTS, Config
from sbit_lib.course.run import remove_incomplete_checkpoint_writes
from sbit_lib.course.tables import ALL_TABLES, GYM_SUMMARY
from sbit_lib.spark.runlock import JobLock
from sbit_lib.spark.storage import HadoopPath

SPEC = Path(__file__).resolve().parent / "spark-pipeline.yml"
# The hand-built pipeline's checkpoints: <checkpoint zone>/<table>. This pipeline's: <checkpoint zone>/declarative.
HAND_BUILT_CHECKPOINTS = ("registered_users_bz", "gym_logins_bz", "kafka_multiplex_bz", "users", "gym_logs",
                          "user_profile", "workouts", "heart_rate", "user_bins", "completed_workouts",
                          "workout_bpm", "workout_bpm_summary")
# Every table the pipeline makes: the hand-built pipeline's tables, and gym_summary (a view there).
DATASETS = tuple(t.name for t in ALL_TABLES) + (GYM_SUMMARY,)
# Run events worth a line: a flow's end (or failure) and the run's state; not every STARTING/RUNNING.
_SHOWN = re.compile(r"(has COMPLETED|FAILED|Run is|SKIPPED|STOPPED)")


@dataclass
class RunResult:
    """What one run did: its events (seconds since the run started, message) and its times."""

    dry_run: bool
    full_refresh: bool
    seconds: float = 0.0                   # the whole command: session, graph, run
    start_up_s: float = 0.0                # the Connect session (a new JVM)
    events: list[tuple[float, str]] = field(default_factory=list)
    graph: "GraphRecorder | None" = None

    @property
    def completed_flows(self) -> list[str]:
        return [m.split()[1] for _, m in self.events if m.startswith("Flow ") and "has COMPLETED" in m]


def check_environment(config: Config) -> None:
    """Refuse course mode and an environment the hand-built pipeline uses, saying why and what to do."""
    if isinstance(config.checkpoint_zone, HadoopPath) or isinstance(config.data_zone, HadoopPath):
        raise ConfigError(
            "the declarative pipeline runs on local zones only (SBIT_DATA_ZONE / SBIT_CHECKPOINT_ZONE given as "
            "URLs): its Spark Connect session cannot reach Hadoop's file system from Python, which the runner "
            "needs to find the tables earlier runs made")
    if config.mode != "default":
        raise ConfigError(
            f"mode {config.mode!r} (--mode / SBIT_MODE): the declarative pipeline implements default mode only; "
            "course mode's gold is a watermarked streaming aggregation whose rows depend on micro-batch "
            "boundaries, which materialized views do not have")
    used = [name for name in HAND_BUILT_CHECKPOINTS if config.checkpoint_dir(name).exists()]
    if used:
        raise ConfigError(
            f"environment {config.environment!r} holds the hand-built pipeline (checkpoint "
            f"{config.checkpoint_dir(used[0])}): the declarative pipeline makes tables of the same names and "
            f"needs an environment of its own, e.g. --env {config.environment[:27]}_dp")


def _uri(zone) -> str:
    return Path(zone).resolve().as_uri()


def settings(config: Config) -> dict[str, str]:
    """The values the definition files read with ``spark.conf.get``."""
    return {
        "sbit.landing_zone": str(config.landing_zone),
        "sbit.test_data": str(config.test_data),
        "sbit.as_of": config.as_of_date.isoformat(),
        "sbit.database": config.db_name,
    }


def pipeline_spec(config: Config):
    """``spark-pipeline.yml`` with this environment's storage, database and settings filled in."""
    import yaml
    from pyspark.pipelines.cli import unpack_pipeline_spec

    data = yaml.safe_load(SPEC.read_text())
    data.update(storage=_uri(config.checkpoint_zone / DECLARATIVE_CHECKPOINTS), database=config.db_name,
                configuration={**data.get("configuration", {}), **settings(config)})
    return unpack_pipeline_spec(data)


def connect_session(config: Config, spec):
    """A Spark Connect session with this project's settings (Delta, Java, UI, memory) and the spec's,
    on a Connect server of this run's own: ``(connect session, the server's classic session)``.

    The server is what pyspark's ``remote("local")`` starts (a classic session with the Connect
    plugin, in this process's JVM), with two differences: the system picks a free port (pyspark's
    local mode always takes 15002 and dials it, so two runs on one machine at once, say a test
    beside notebook 11, collided) and the server listens on the loopback address only. A token
    of the run's own keeps other local processes out, as in pyspark's local mode.
    """
    from pyspark.sql import SparkSession
    from pyspark.sql.connect.session import SparkSession as ConnectSession

    from sbit_lib.spark.java import ensure_java_home
    from sbit_lib.spark.session import _builder, shuffle_partitions_setting

    if SparkSession.getActiveSession() is not None:
        raise RuntimeError("this process holds a Spark session already; the declarative pipeline's Connect "
                           "server needs a JVM of its own: run it as `sbit declarative run` (a new process)")
    ensure_java_home()
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    # The server reads its token from the environment the JVM starts with (a --conf would show it
    # in the process list); the first run of a process sets it, later ones share its JVM and token.
    token = os.environ.setdefault("SPARK_CONNECT_AUTHENTICATE_TOKEN", secrets.token_hex(16))
    partitions = shuffle_partitions_setting() or str(os.cpu_count() or 2)   # one per core, as spark_session does locally
    builder = _builder(f"sbit-declarative-{config.environment}", config.spark_master, config.spark_ui,
                       str(config.home / "spark-warehouse")).config(map={
        # Tables without a format are Delta. Naming it (format="delta") fails every run after the
        # first in Spark 4.2 + Delta 4.4: DELTA_CANNOT_CHANGE_PROVIDER (docs/declarative.md).
        "spark.sql.sources.default": "delta",
        "spark.sql.shuffle.partitions": partitions,
        "spark.sql.connect.serverStacktrace.enabled": "false",
        "spark.plugins": "org.apache.spark.sql.connect.SparkConnectPlugin",
        "spark.connect.grpc.binding.address": "127.0.0.1",
        "spark.connect.grpc.binding.port": "0",                # a free one, chosen by the system
        # what pyspark's local mode sets for its server
        "spark.sql.artifact.isolation.enabled": "true",
        "spark.sql.artifact.isolation.alwaysApplyClassloader": "true",
    })
    server = builder.getOrCreate()
    spark = None
    try:
        service = getattr(server._jvm, "org.apache.spark.sql.connect.service.SparkConnectService$")
        port = getattr(service, "MODULE$").localPort()
        # From here on pyspark's functions build Connect columns, as after pyspark's own remote("local").
        os.environ["SPARK_CONNECT_MODE_ENABLED"] = "1"
        # "localhost", not 127.0.0.1: pyspark sends a token over a channel without TLS to localhost only.
        spark = ConnectSession.builder.remote(f"sc://localhost:{port}/;token={token}").getOrCreate()
        # The client's session starts with the server's settings above; it adds the sbit.* ones the
        # definitions read (a setting the server refuses fails the run here).
        for key, value in spec.configuration.items():
            spark.conf.set(key, value)
    except BaseException:
        # The caller gets nothing to stop: undo what this function started, the client first.
        if spark is not None:
            spark.stop()
        os.environ.pop("SPARK_CONNECT_MODE_ENABLED", None)
        server.stop()
        raise
    return spark, server


def register_existing(spark, config: Config) -> list[str]:
    """Create the database at the tables' folder and register the tables earlier runs made.

    Works in either kind of session: the run's Connect one, or a classic one that reads the
    tables (a notebook, a test). The database gets a LOCATION here, unlike the hand-built
    pipeline's: the pipeline creates its tables as managed tables, in the database's folder.
    The tables themselves are registered as ``get_spark`` does (``catalog.register_tables``),
    where ``gym_summary`` is this pipeline's table in place of the hand-built view.
    """
    spark.sql(f"CREATE DATABASE IF NOT EXISTS {config.db_name} LOCATION {sql_str(config.tables_zone)}")
    registered = register_tables(spark, config)
    # Before this pipeline has made gym_summary (a first run cut short), register_tables makes the
    # hand-built view over the silver tables, which would stand in the materialized view's way.
    name = config.qualified(GYM_SUMMARY)
    if spark.catalog.tableExists(name) and spark.catalog.getTable(name).tableType == "VIEW":
        spark.sql(f"DROP VIEW {name}")
    return registered


class GraphRecorder:
    """A graph-element registry that passes every definition on to Spark Connect and keeps a copy,
    so the graph can be drawn (Mermaid) and listed without asking the server."""

    def __init__(self, spark, graph_id: str, database: str):
        from pyspark.pipelines.spark_connect_graph_element_registry import SparkConnectGraphElementRegistry

        class _Recording(SparkConnectGraphElementRegistry):
            def register_output(inner, output) -> None:
                self.outputs[output.name] = type(output).__name__
                super().register_output(output)

            def register_flow(inner, flow) -> None:
                super().register_flow(flow)
                self.edges += [(source, flow.name, flow.target) for source in sorted(self._sources(flow))]

        self.spark, self.graph_id, self.database = spark, graph_id, database
        self.outputs: dict[str, str] = {}
        self.edges: list[tuple[str, str, str]] = []
        self.registry = _Recording(spark, graph_id)

    def _sources(self, flow) -> set[str]:
        """The tables, views and landing folders a flow reads, from its Connect plan."""
        from pyspark.pipelines.add_pipeline_analysis_context import add_pipeline_analysis_context

        with add_pipeline_analysis_context(spark=self.spark, dataflow_graph_id=self.graph_id, flow_name=flow.name):
            plan = flow.func()._plan.plan(self.spark.client)
        found: set[str] = set()
        _walk(plan, found, self.database)
        return found or {"(unknown)"}

    def mermaid(self) -> str:
        """The graph as a Mermaid flowchart: datasets as nodes (their kind), flows as edges."""
        def node(name: str) -> str:
            return re.sub(r"\W", "_", name)

        lines = ["flowchart LR"]
        for name, kind in self.outputs.items():
            lines.append(f'  {node(name)}["{name}<br/><i>{_KIND.get(kind, kind)}</i>"]')
        for source in sorted({s for s, _, _ in self.edges if s not in self.outputs}):
            lines.append(f'  {node(source)}[("{source}")]')
        for source, flow, target in self.edges:
            label = "" if flow == target else f"|{flow}|"
            lines.append(f"  {node(source)} -->{label} {node(target)}")
        return "\n".join(lines)

    def listing(self) -> str:
        """The graph as text: each dataset, its kind, and what it reads."""
        reads: dict[str, set[str]] = {}
        for source, _, target in self.edges:
            reads.setdefault(target, set()).add(source)
        width = max(len(n) for n in self.outputs)
        return "\n".join(f"  {name:<{width}}  {_KIND.get(kind, kind):<17}  <- {', '.join(sorted(reads.get(name, ())))}"
                         for name, kind in self.outputs.items())


_KIND = {"StreamingTable": "streaming table", "MaterializedView": "materialized view",
         "TemporaryView": "temporary view", "Sink": "sink"}


def _walk(message, found: set[str], database: str) -> None:
    """Collect the names a Connect plan reads: tables/views, SQL text's tables, file folders."""
    for descriptor, value in message.ListFields():
        if descriptor.name == "named_table" and hasattr(value, "unparsed_identifier"):
            found.add(value.unparsed_identifier.split(".")[-1])
        elif descriptor.name == "data_source" and hasattr(value, "paths"):
            found.update("files: " + p.rstrip("/").split("/")[-1] for p in value.paths)
        elif descriptor.name == "sql" and hasattr(value, "query"):
            found.update(re.findall(rf"\b{database}\.(\w+)", value.query))    # <db>.<table> in SQL text
        if descriptor.type == descriptor.TYPE_MESSAGE:
            items = [value] if hasattr(value, "ListFields") else value.values() if hasattr(value, "values") else value
            for item in items:
                if hasattr(item, "ListFields"):          # a message, not a map's scalar value
                    _walk(item, found, database)


def run(config: Config, full_refresh: bool = False, dry_run: bool = False, echo=print) -> RunResult:
    """Run (or dry-run) the declared pipeline in `config`'s environment; print its events with `echo`.

    Takes the environment's run lock like ``sbit run``. Raises a RuntimeError naming the
    failed flow when the run fails.
    """
    from pyspark.pipelines.cli import register_definitions
    from pyspark.pipelines.spark_connect_pipeline import create_dataflow_graph, start_run

    check_environment(config)
    result = RunResult(dry_run=dry_run, full_refresh=full_refresh)
    began = time.monotonic()
    lock = None if dry_run else JobLock(config, "declarative run").acquire()
    stack = contextlib.ExitStack()
    try:
        if lock is not None:      # what a killed run left half-written in its flows' checkpoints
            remove_incomplete_checkpoint_writes(config, f"{DECLARATIVE_CHECKPOINTS}/_checkpoints/*/*/*/*/*")
        for table in BRONZE_SOURCES:     # a file source needs its folder, even empty (as in 04-bronze)
            config.landing_zone.joinpath(table).mkdir(parents=True, exist_ok=True)
        spec = pipeline_spec(config)
        stack.callback(os.environ.pop, "SPARK_CONNECT_MODE_ENABLED", None)    # set by connect_session
        spark, server = connect_session(config, spec)
        stack.callback(server.stop)               # after spark.stop(): the client first, then its server
        result.start_up_s = time.monotonic() - began
        if lock is not None:
            # The Connect server runs in this process's JVM: its pid lets a run after a SIGKILL wait
            # for the JVM (sbit_lib.spark.runlock).
            lock.record_jvm(server)
        try:
            register_existing(spark, config)
            graph_id = create_dataflow_graph(spark, default_catalog=spec.catalog, default_database=spec.database,
                                             sql_conf=spec.configuration)
            result.graph = GraphRecorder(spark, graph_id, config.db_name)
            with contextlib.redirect_stdout(io.StringIO()):      # its log lines name this machine's folders
                register_definitions(SPEC, result.graph.registry, spec, spark, graph_id)
            what = "Dry run" if dry_run else "Full refresh" if full_refresh else "Run"
            echo(f"{what} of the declarative pipeline in environment {config.environment!r}: "
                 f"{len(result.graph.outputs)} datasets, {len(result.graph.edges)} edges "
                 f"(session ready in {result.start_up_s:.1f} s)")
            started = time.monotonic()
            failed, final = [], None
            events = start_run(spark, graph_id, full_refresh=None, full_refresh_all=full_refresh, refresh=None,
                               dry=dry_run, storage=spec.storage)
            for reply in events:
                if "pipeline_event_result" not in reply:
                    continue
                message = reply["pipeline_event_result"].event.message
                at = time.monotonic() - started
                result.events.append((at, message))
                if "FAILED" in message:        # a flow may fail, be retried and complete
                    failed.append(_short(message, config))
                if message.startswith("Run is "):
                    final = message
                if _SHOWN.search(message):
                    echo(f"  {at:6.1f} s  {_short(message, config)}")
        finally:
            # pyspark's stop() releases the session on the server first and only then, closing the
            # client, waits for the ReleaseExecute calls the client still sends in the background
            # for the run's finished executions: one that arrives after its session is gone makes
            # the server log an ERROR with a stack trace (INVALID_HANDLE.SESSION_CLOSED) after a
            # successful run. Waiting for them first, as the client's close() would, keeps that order.
            concurrent.futures.wait(spark.client._release_futures, timeout=10)
            spark.stop()
    finally:
        stack.close()
        if lock is not None:
            lock.release()
    result.seconds = time.monotonic() - began
    if not (final or "").startswith("Run is COMPLETED"):
        raise RuntimeError(f"the declarative pipeline's run ended {final or 'without a final state'!r}"
                           + (f"; first failure: {failed[0]}" if failed else "")
                           + " (the reason is in Spark's log above; SBIT_DEBUG=1 shows the traceback)")
    return result


def _short(message: str, config: Config) -> str:
    """A run event without the catalog and database every name carries."""
    return message.replace(f"spark_catalog.{config.db_name}.", "").splitlines()[0]
