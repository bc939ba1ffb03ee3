"""Small, real experiments behind the interview walkthrough (``notebooks/00-interview-walkthrough.ipynb``).

Each function runs one tiny experiment on local Spark + Delta — a few rows, a few files,
``availableNow`` streams that are always awaited or stopped — either on the environment's
own tables or in its scratch folder ``<SBIT_HOME>/<environment>/lessons``, and returns what
it observed, so the notebook prints it and asserts it. Nothing here is used by the pipeline.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from sbit_lib.course.catalog import register_tables, sql_str
from sbit_lib.course.config import Config
from sbit_lib.course.tables import ALL_TABLES, GYM_SUMMARY
from sbit_lib.spark.storage import Zone, atomic_copy
from sbit_lib.teaching.explore import relative, versions

# The course's first workout in 4-workout_1.json: user 12474 (mac 4c:c5:9f:cb:13:bd), 65 minutes.
COURSE_WORKOUT_USER = 12474
COURSE_WORKOUT_MAC = "4c:c5:9f:cb:13:bd"
_ERROR_CLASS = re.compile(r"\[([A-Z][A-Z0-9_]+)\]")


# ---------------------------------------------------------------------------- plumbing
def lessons_dir(config: Config) -> Path:
    """Return the scratch folder of the walkthrough: ``<env root>/lessons``."""
    return config.env_root / "lessons"


def quietly(config: Config, fn, *args, **kwargs):
    """Return (fn's result, what it printed), absolute paths under SBIT_HOME shortened to ``<home>``."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        result = fn(*args, **kwargs)
    return result, out.getvalue().replace(str(config.home), "<home>")


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


def land(folder: Zone, name: str, lines: list[str]) -> Zone:
    """Land a file of `lines` the producer's way (storage.atomic_copy: hidden temporary name,
    then a rename; a folder or a URL zone); return it. The same bytes again change nothing."""
    with tempfile.TemporaryDirectory() as scratch:
        source = Path(scratch) / name
        source.write_text("".join(line + "\n" for line in lines))
        atomic_copy(source, folder / name)
    return folder / name


def _delta_count(spark: SparkSession, path: Path) -> int:
    return spark.read.format("delta").load(str(path)).count()


def start(config: Config, spark: SparkSession) -> str:
    """Clean the environment, set it up (tables, view, date_lookup), make the scratch folder; return a summary."""
    from sbit_lib.course.run import ensure_setup
    from sbit_lib.course.setup_helper import SetupHelper

    quietly(config, SetupHelper(config, spark).cleanup)
    quietly(config, ensure_setup, config, spark)
    lessons_dir(config).mkdir(parents=True)
    lookup = spark.table(config.qualified("date_lookup")).count()
    return (f"{config.db_name}: {len(ALL_TABLES)} tables, the {GYM_SUMMARY} view, date_lookup {lookup} rows; "
            f"scratch folder {relative(config, lessons_dir(config))}")


# ---------------------------------------------------------------------------- Q1 configuration
def locations(config: Config) -> dict[str, str]:
    """Return where `config`'s environment keeps its database, landing zone, tables and checkpoints."""
    return {
        "database": config.db_name,
        "landing zone": relative(config, config.landing_zone),
        "tables": relative(config, config.tables_zone),
        "checkpoints": relative(config, config.checkpoint_zone),
    }


def resolved_environment(explicit: str | None, sbit_env: str | None) -> str:
    """Return the environment Config.resolve picks from an explicit value and the SBIT_ENV variable."""
    saved = os.environ.pop("SBIT_ENV", None)
    try:
        if sbit_env is not None:
            os.environ["SBIT_ENV"] = sbit_env
        return Config.resolve(environment=explicit).environment
    finally:
        os.environ.pop("SBIT_ENV", None)
        if saved is not None:
            os.environ["SBIT_ENV"] = saved


# ---------------------------------------------------------------------------- Q2/Q3/Q19 files → stream
EVENT_SCHEMA = "id INT, name STRING"


def land_events(config: Config) -> Path:
    """Land three one-row JSON files in the scratch folder ``events/`` (once); return the folder."""
    folder = lessons_dir(config) / "events"
    for number, name in enumerate(("ann", "bob", "cy"), start=1):
        if not (folder / f"events_{number}.json").exists():
            land(folder, f"events_{number}.json", [json.dumps({"id": number, "name": name})])
    return folder


def _events_stream(spark: SparkSession, config: Config, max_files: int = 1000) -> DataFrame:
    return (spark.readStream.schema(EVENT_SCHEMA).option("maxFilesPerTrigger", max_files)
            .json(str(land_events(config))))


def rerun_rows(config: Config, spark: SparkSession, checkpoint: bool, runs: int = 2) -> list[int]:
    """Run the same file → Delta stream `runs` times (with or without a checkpoint); return the rows after each."""
    name = "with_checkpoint" if checkpoint else "without_checkpoint"
    target = lessons_dir(config) / name

    def append(batch: DataFrame, batch_id: int) -> None:
        batch.write.format("delta").mode("append").save(str(target))

    rows = []
    for _ in range(runs):
        writer = _events_stream(spark, config).writeStream.foreachBatch(append).trigger(availableNow=True)
        if checkpoint:
            writer = writer.option("checkpointLocation", str(lessons_dir(config) / "checkpoints" / name))
        writer.start().awaitTermination()
        rows.append(_delta_count(spark, target) if (target / "_delta_log").exists() else 0)
    return rows


def delta_sink_without_checkpoint(config: Config, spark: SparkSession) -> str:
    """Return the first line of Spark's refusal to start a Delta sink without a checkpoint."""
    try:
        query = (_events_stream(spark, config).writeStream.format("delta").trigger(availableNow=True)
                 .start(str(lessons_dir(config) / "refused")))
        query.stop()
    except Exception as error:      # noqa: BLE001
        return str(error).strip().splitlines()[0]
    raise AssertionError("Spark started a Delta sink without a checkpoint")


def batch_sizes(config: Config, spark: SparkSession, max_files: int) -> list[int]:
    """Return the rows of each micro-batch when the three event files are read with `max_files` per trigger."""
    sizes: list[int] = []
    query = (_events_stream(spark, config, max_files).writeStream
             .foreachBatch(lambda batch, batch_id: sizes.append(batch.count()))
             .option("checkpointLocation", str(lessons_dir(config) / "checkpoints" / f"max_files_{max_files}"))
             .trigger(availableNow=True).start())
    query.awaitTermination()
    return sizes


def batch_equals_stream(config: Config, spark: SparkSession) -> dict:
    """Return whether a batch read of the event files equals what the checkpointed stream wrote."""
    batch = spark.read.schema(EVENT_SCHEMA).json(str(land_events(config)))
    streamed = spark.read.format("delta").load(str(lessons_dir(config) / "with_checkpoint"))
    return {
        "spark.read is streaming": batch.isStreaming,
        "spark.readStream is streaming": _events_stream(spark, config).isStreaming,
        "same rows": batch.exceptAll(streamed).isEmpty() and streamed.exceptAll(batch).isEmpty(),
    }


# ---------------------------------------------------------------------------- Q4/Q5/Q6 setup, views, cleanup
def setup_again(config: Config, spark: SparkSession) -> dict[str, int]:
    """Run the project's setup a second time; return {table: Delta versions it added} (all 0 expected)."""
    from sbit_lib.course.setup_helper import SetupHelper

    before = versions(config)
    quietly(config, SetupHelper(config, spark).setup)
    return {name: version - before[name] for name, version in versions(config).items()}


def if_not_exists_vs_or_replace(config: Config, spark: SparkSession) -> dict[str, int]:
    """Create a 2-row table, then re-create it both ways; return the rows left after each statement."""
    name = config.qualified("lesson_replace")
    location = sql_str(lessons_dir(config) / "lesson_replace")
    ddl = f"TABLE {name} (id INT) USING DELTA LOCATION {location}"
    spark.sql(f"CREATE {ddl}")
    spark.sql(f"INSERT INTO {name} VALUES (1), (2)")
    rows = {}
    for statement in ("CREATE TABLE IF NOT EXISTS", "CREATE OR REPLACE TABLE"):
        spark.sql(f"{statement} {ddl.removeprefix('TABLE ')}")
        rows[statement] = spark.table(name).count()
    return rows


def catalog_kinds(config: Config, spark: SparkSession, names: list[str]) -> dict[str, tuple[str, bool]]:
    """Return {name: (catalog type, has a storage folder)} for tables and views of the environment."""
    return {n: (spark.catalog.getTable(config.qualified(n)).tableType, config.table_location(n).exists())
            for n in names}


def cleanup_neighbour(config: Config, spark: SparkSession) -> dict:
    """Give a neighbour environment a landing file and a checkpoint, clean it up; return what survived."""
    from sbit_lib.course.setup_helper import SetupHelper

    neighbour = Config.resolve(environment=f"{config.environment}_neighbour", home=config.home,
                               test_data=config.test_data)
    land(neighbour.landing_zone / "registered_users_bz", "users.csv", ["user_id", "1"])
    neighbour.checkpoint_dir("registered_users_bz").mkdir(parents=True)
    _, printed = quietly(config, SetupHelper(neighbour, spark).cleanup)
    return {
        "printed": printed.strip().splitlines(),
        "neighbour folder exists": neighbour.env_root.exists(),
        "this environment's tables": sum(spark.catalog.tableExists(config.qualified(t.name)) for t in ALL_TABLES),
    }


# ---------------------------------------------------------------------------- Q7/Q17 schema changes
def live_schema_change(config: Config, spark: SparkSession) -> list[str]:
    """Stream from a Delta table, add a column while the stream runs, restart; return what happened."""
    folder = lessons_dir(config) / "live"
    checkpoint = str(lessons_dir(config) / "checkpoints" / "live")
    spark.createDataFrame([(1, "ann")], EVENT_SCHEMA).write.format("delta").save(str(folder))
    seen: list = []

    def reader():
        return (spark.readStream.format("delta").load(str(folder)).writeStream
                .foreachBatch(lambda batch, batch_id: seen.extend(batch.collect()))
                .option("checkpointLocation", checkpoint))

    events = []
    query = reader().trigger(processingTime="1 second").start()
    try:
        query.processAllAvailable()
        events.append(f"running stream read {len(seen)} row: {[tuple(r) for r in seen]}")
        spark.sql(f"ALTER TABLE delta.{_quoted(folder)} ADD COLUMNS (note STRING)")
        (spark.createDataFrame([(2, "bob", "new column")], f"{EVENT_SCHEMA}, note STRING")
         .write.format("delta").mode("append").save(str(folder)))
        events.append("ALTER TABLE ... ADD COLUMNS (note STRING), then a row with a note: "
                      + failure(query.processAllAvailable))
    finally:
        query.stop()
    before = len(seen)
    reader().trigger(availableNow=True).start().awaitTermination()
    events.append(f"restarted from its checkpoint: read {[r.asDict() for r in seen[before:]]}")
    return events


def _quoted(path: Path) -> str:
    return "`" + str(path).replace("`", "``") + "`"


def schema_enforcement(config: Config, spark: SparkSession) -> dict:
    """Append a row with an extra column without and with mergeSchema; return the outcome of each."""
    folder = str(lessons_dir(config) / "enforced")
    spark.createDataFrame([(1, "ann")], EVENT_SCHEMA).write.format("delta").save(folder)
    wider = spark.createDataFrame([(2, "bob", "x@y.z")], f"{EVENT_SCHEMA}, email STRING")
    outcome = {"append with an extra column": failure(
        lambda: wider.write.format("delta").mode("append").save(folder))}
    wider.write.format("delta").mode("append").option("mergeSchema", "true").save(folder)
    table = spark.read.format("delta").load(folder).orderBy("id")
    outcome["with mergeSchema: columns"] = table.columns
    outcome["with mergeSchema: rows"] = [tuple(r) for r in table.collect()]
    return outcome


# ---------------------------------------------------------------------------- Q8/Q9 the real bronze and silver
BAD_REGISTRATION = "12999,not-a-number,aa:bb:cc:dd:ee:ff,1678451700"


def bronze_registrations(config: Config, spark: SparkSession, sets=(1,), malformed: bool = False) -> dict:
    """Land the course's registration files of `sets` (and a malformed one), run Bronze; return counts."""
    from sbit_lib.course.bronze import Bronze

    landing = config.landing_zone / "registered_users_bz"
    for n in sets:
        atomic_copy(config.test_data / f"1-registered_users_{n}.csv", landing / f"1-registered_users_{n}.csv")
    if malformed:
        bad = land(landing, "1-registered_users_malformed.csv",
                   ["user_id,device_id,mac_address,registration_timestamp", BAD_REGISTRATION])
        later = max(p.stat().st_mtime for p in landing.glob("1-registered_users_[0-9]*.csv")) + 1
        os.utime(bad, (later, later))      # the file source reads oldest first: the good file, then this
    def ingest():
        query = Bronze(config, spark).consume_user_registration(once=True)
        query.awaitTermination()
        return query

    query, printed = quietly(config, ingest)
    return {
        "micro-batches": sum(1 for p in query.recentProgress if p["numInputRows"]),
        "registered_users_bz": spark.table(config.qualified("registered_users_bz")).count(),
        "quarantine_bz": spark.table(config.qualified("quarantine_bz")).count(),
        "printed": printed.strip().splitlines(),
    }


def silver_users(config: Config, spark: SparkSession) -> int:
    """Run the project's silver users query (availableNow); return the rows of users."""
    from sbit_lib.course.silver import Silver

    Silver(config, spark).upsert_users(once=True).awaitTermination()
    return spark.table(config.qualified("users")).count()


def bronze_then_silver(config: Config, spark: SparkSession) -> list[tuple[str, int, int]]:
    """Run silver users after bronze's set 1, then land set 2 and run both, then again; return the counts."""
    steps = [("set 1", spark.table(config.qualified("registered_users_bz")).count(), silver_users(config, spark))]
    for step in ("set 2", "again, nothing new"):
        bronze = bronze_registrations(config, spark, sets=(2,))["registered_users_bz"]
        steps.append((step, bronze, silver_users(config, spark)))
    return steps


def bronze_commits(config: Config, table: str) -> dict:
    """Return whether a bronze table's txnAppId is its query's id, and the txnVersion of each commit."""
    log = config.table_location(table) / "_delta_log"
    txns = []
    for commit in sorted(log.glob("[0-9]*.json")):
        for line in commit.read_text().splitlines():
            action = json.loads(line)
            if "txn" in action:
                txns.append((action["txn"]["appId"], action["txn"]["version"]))
    meta = config.checkpoint_dir(table) / "metadata"
    query_id = json.loads(meta.read_text().splitlines()[0])["id"]
    return {"txnAppId is the query's id": {app for app, _ in txns} == {query_id},
            "txnVersion of each commit (= batch id)": [v for _, v in txns]}


# ---------------------------------------------------------------------------- Q10/Q11 triggers and names
def _noop_stream(config: Config, spark: SparkSession, name: str, once: bool):
    from sbit_lib.course.streaming import start_foreach_batch

    return start_foreach_batch(spark, _events_stream(spark, config), name,
                               lessons_dir(config) / "checkpoints" / name,
                               lambda batch, batch_id: None, "default", once, "1 second")


def trigger_modes(config: Config, spark: SparkSession) -> dict:
    """Start the same query with each of the project's triggers; return whether each still runs afterwards."""
    from sbit_lib.course.streaming import trigger

    once = _noop_stream(config, spark, "lesson_available_now", once=True)
    once.awaitTermination()
    stream = _noop_stream(config, spark, "lesson_processing_time", once=False)
    try:
        stream.processAllAvailable()
        still_running = stream.isActive
    finally:
        stream.stop()
    return {
        "trigger(once=True)": trigger(True, "1 second"),
        "trigger(once=False)": trigger(False, "1 second"),
        "availableNow: active after reading everything": once.isActive,
        "processingTime: active after reading everything": still_running,
    }


def query_names(config: Config, spark: SparkSession) -> dict:
    """Start a named query, then a second one with the same name; return the active names and the refusal."""
    first = _noop_stream(config, spark, "lesson_named_query", once=False)
    try:
        first.processAllAvailable()
        active = sorted(q.name for q in spark.streams.active)
        refused = failure(_noop_stream, config, spark, "lesson_named_query", False)
        progress_name = first.lastProgress["name"]
    finally:
        first.stop()
    return {"active queries": active, "lastProgress name": progress_name, "same name again": refused}


# ---------------------------------------------------------------------------- Q13 Delta history
def history(config: Config, spark: SparkSession, table: str) -> list[tuple[int, str, int]]:
    """Return (version, operation, rows it wrote) of every version of a table, from DESCRIBE HISTORY."""
    versions = (spark.sql(f"DESCRIBE HISTORY {config.qualified(table)}")
                .select("version", "operation", "operationMetrics").orderBy("version").collect())
    return [(v.version, v.operation, int((v.operationMetrics or {}).get("numOutputRows", 0))) for v in versions]


def rows_as_of(config: Config, spark: SparkSession, table: str, version: int) -> int:
    """Return the rows a table had at a Delta version (time travel)."""
    return (spark.read.format("delta").option("versionAsOf", version)
            .load(str(config.table_location(table))).count())


# ---------------------------------------------------------------------------- Q14 lookup join
def lookup_join(config: Config, spark: SparkSession) -> dict:
    """Enrich the course's workout envelopes like bronze does, and like the course does; return both."""
    from sbit_lib.course.bronze import SOURCES, Bronze

    envelopes = spark.read.schema(SOURCES["kafka_multiplex_bz"].schema).json(str(config.test_data / "4-workout_1.json"))
    ours = Bronze(config, spark)._with_dates(envelopes)
    lookup = spark.table(config.qualified("date_lookup")).select("date", "week_part")
    course_date = F.to_date(F.timestamp_seconds(F.col("timestamp") / 1000))   # the course's timestamp/1000
    course = envelopes.join(F.broadcast(lookup), course_date == F.col("date"), "left")
    plan = ours._jdf.queryExecution().executedPlan().toString()

    def dates(df):
        return sorted({(str(r.date), r.week_part) for r in df.select("date", "week_part").collect()})

    return {"plan uses BroadcastHashJoin": "BroadcastHashJoin" in plan,
            "date, week_part (this project)": dates(ours),
            "date, week_part (course: timestamp/1000)": dates(course),
            "course's event date": str(envelopes.select(course_date.alias("d")).first().d)}


# ---------------------------------------------------------------------------- Q15 MERGE
GYM_MERGE = """MERGE INTO delta.{target} a USING gym_logs_delta b
  ON a.mac_address = b.mac_address AND a.gym = b.gym AND a.login = b.login
  WHEN MATCHED AND b.logout > a.login AND (a.logout IS NULL OR b.logout > a.logout)
    THEN UPDATE SET logout = b.logout
  WHEN NOT MATCHED THEN INSERT *"""


def merge_upsert(config: Config, spark: SparkSession) -> list[list[tuple]]:
    """MERGE one micro-batch (an update and an insert) into a gym_logs-like table twice; return the rows after each."""
    from sbit_lib.course.upserter import Upserter

    folder = lessons_dir(config) / "gym_logs"
    schema = "mac_address STRING, gym BIGINT, login BIGINT, logout BIGINT"
    spark.createDataFrame([("aa", 1, 100, 200)], schema).write.format("delta").save(str(folder))
    batch = spark.createDataFrame([("aa", 1, 100, 260), ("bb", 2, 150, 300)], schema)
    upsert = Upserter(GYM_MERGE.format(target=_quoted(folder)), "gym_logs_delta")
    rows = []
    for batch_id in (0, 0):          # the same micro-batch delivered twice, as after a crash
        upsert(batch, batch_id)
        rows.append([tuple(r) for r in spark.read.format("delta").load(str(folder)).orderBy("mac_address").collect()])
    return rows


# ---------------------------------------------------------------------------- Q16/Q18 medallion, Spark
def medallion() -> dict[str, list[str]]:
    """Return the project's tables by layer (from sbit_lib/course/tables.py)."""
    layers: dict[str, list[str]] = {}
    for table in ALL_TABLES:
        layers.setdefault(table.layer, []).append(table.name)
    layers["gold"].append(f"{GYM_SUMMARY} (view)")
    return layers


def spark_facts(spark: SparkSession) -> dict[str, str]:
    """Return how the session from get_spark is configured: engine, catalog, Delta, scheduler, state store."""
    conf = spark.conf.get
    return {
        "Spark": spark.version,
        "master": spark.sparkContext.master,
        "catalog": conf("spark.sql.catalogImplementation"),
        "Delta extension": conf("spark.sql.extensions"),
        "scheduler": conf("spark.scheduler.mode"),
        "state store": conf("spark.sql.streaming.stateStore.providerClass").rsplit(".", 1)[-1],
        "time zone": conf("spark.sql.session.timeZone"),
    }


# ---------------------------------------------------------------------------- Q21 data quality
def ansi_casts(spark: SparkSession) -> dict:
    """Return what CAST and try_cast make of a malformed number, and the heart-rate validity rule."""
    validity = spark.createDataFrame([(72.5,), (0.0,), (None,)], "heartrate DOUBLE").selectExpr(
        "heartrate", "coalesce(heartrate > 0, false) AS valid")
    return {
        "CAST('four' AS INT)": failure(lambda: spark.sql("SELECT CAST('four' AS INT)").collect()),
        "try_cast('four' AS INT)": spark.sql("SELECT try_cast('four' AS INT) AS v").first().v,
        "valid = coalesce(heartrate > 0, false)": [tuple(r) for r in validity.collect()],
    }


# ---------------------------------------------------------------------------- Q22 watermarks
def watermark_drops_late_rows(config: Config, spark: SparkSession) -> list[list[int]]:
    """De-duplicate a stream with a 30 s watermark over two runs; return the ids each run let through."""
    folder = lessons_dir(config) / "readings"
    checkpoint = str(lessons_dir(config) / "checkpoints" / "readings")
    arrivals = [
        ['{"id": 1, "time": "2023-03-11 12:00:00"}', '{"id": 2, "time": "2023-03-11 12:10:00"}'],
        # set 2: a reading from 12:00:05 (late: older than the watermark 12:09:30) and a new one
        ['{"id": 3, "time": "2023-03-11 12:00:05"}', '{"id": 4, "time": "2023-03-11 12:10:01"}'],
    ]
    passed = []
    for number, lines in enumerate(arrivals, start=1):
        land(folder, f"readings_{number}.json", lines)
        ids: list[int] = []
        (spark.readStream.schema("id INT, time TIMESTAMP").json(str(folder))
         .withWatermark("time", "30 seconds").dropDuplicates(["id", "time"])
         .writeStream.foreachBatch(lambda batch, batch_id: ids.extend(r.id for r in batch.collect()))
         .option("checkpointLocation", checkpoint).trigger(availableNow=True).start().awaitTermination())
        passed.append(sorted(ids))
    return passed


# ---------------------------------------------------------------------------- Q23 orchestration
def second_run_refused(config: Config) -> str:
    """Hold the environment's run lock here, try to take it from another process; return what it said."""
    from sbit_lib.spark.runlock import JobLock

    code = ("import sys; from sbit_lib.course.config import Config; from sbit_lib.spark.runlock import JobLock\n"
            "config = Config.resolve(environment=sys.argv[1], home=sys.argv[2])\n"
            "try:\n    JobLock(config, 'batch run').acquire()\n    print('acquired')\n"
            "except Exception as e:\n    print(type(e).__name__ + ': ' + str(e).split(' (pid')[0])\n")
    with JobLock(config, "walkthrough"):
        other = subprocess.run([sys.executable, "-c", code, config.environment, str(config.home)],
                               capture_output=True, text=True, timeout=120)
    return other.stdout.strip() or other.stderr.strip().splitlines()[-1]


# ---------------------------------------------------------------------------- Q24 performance
def performance_facts(config: Config, spark: SparkSession) -> dict:
    """Return the shuffle partitions, the cores, and how kafka_multiplex_bz is partitioned and pruned."""
    table = config.qualified("kafka_multiplex_bz")
    detail = spark.sql(f"DESCRIBE DETAIL {table}").first()
    plan = spark.table(table).where("topic = 'bpm'")._jdf.queryExecution().executedPlan().toString()
    return {
        "spark.sql.shuffle.partitions": spark.conf.get("spark.sql.shuffle.partitions"),
        "cores (defaultParallelism)": spark.sparkContext.defaultParallelism,
        "kafka_multiplex_bz partitioned by": list(detail.partitionColumns),
        "topic filter is a partition filter": bool(re.search(r"PartitionFilters: \[[^\]]*topic", plan)),
    }


# ---------------------------------------------------------------------------- Q25 float32
def float32_minutes(config: Config, spark: SparkSession) -> dict:
    """Return the course's first workout parsed as DOUBLE and as FLOAT (like course mode), with its minutes."""
    lines = (config.test_data / "4-workout_1.json").read_text().splitlines()
    values = [json.loads(e["value"]) for e in map(json.loads, filter(None, lines))]
    events = {v["action"]: v["timestamp"] for v in values
              if v["user_id"] == COURSE_WORKOUT_USER and v["session_id"] == 1}
    out: dict = {"start, stop in the file": (events["start"], events["stop"]),
                 "float32 spacing at 2023 epoch seconds": float(np.spacing(np.float32(events["start"])))}
    for kind in ("DOUBLE", "FLOAT"):            # Silver.event_time_type: DOUBLE (default) / FLOAT (course)
        schema = f"timestamp {kind}, action STRING"
        df = spark.createDataFrame([(json.dumps({"timestamp": t, "action": a}),) for a, t in events.items()], "value STRING")
        parsed = {r.action: r.time for r in df.select(F.from_json("value", schema).alias("v")).selectExpr(
            "v.action", "timestamp_seconds(v.timestamp) AS time").collect()}
        minutes = spark.createDataFrame([(parsed["start"], parsed["stop"])], "start_time TIMESTAMP, end_time TIMESTAMP") \
            .selectExpr("round((unix_seconds(end_time) - unix_seconds(start_time)) / 60, 2) AS m").first().m
        out[f"{kind}: start, stop as epoch seconds"] = (int(parsed["start"].timestamp()), int(parsed["stop"].timestamp()))
        out[f"{kind}: minutes_exercising"] = float(minutes)
    expected = pd.read_parquet(config.test_data / "7-gym_summary_1.parquet")
    out["course's 7-gym_summary_1.parquet"] = float(
        expected.loc[expected.mac_address == COURSE_WORKOUT_MAC, "minutes_exercising"].iloc[0])
    return out


# ---------------------------------------------------------------------------- Q26 course-mode gold
def _workout_rows(session: int, end_hour: int) -> list[tuple]:
    import datetime as dt

    start = dt.datetime(2023, 3, 11, end_hour - 1)
    end = dt.datetime(2023, 3, 11, end_hour)
    return [(1, 1, session, start, end, start + dt.timedelta(minutes=m), 60.0 + m) for m in (10, 20)]


def course_gold_rows(config: Config, spark: SparkSession) -> dict:
    """Run the course-mode Gold over three workouts in workout_bpm; return the summary and what waits in its state."""
    from sbit_lib.course.gold import Gold

    course = Config.resolve(environment=config.environment, home=config.home, test_data=config.test_data,
                            mode="course")
    spark.sql(f"INSERT INTO {config.qualified('user_bins')} VALUES (1, '25-35', 'F', 'Fresno', 'CA')")
    columns = ("user_id INT, workout_id INT, session_id INT, start_time TIMESTAMP, end_time TIMESTAMP, "
               "time TIMESTAMP, heartrate DOUBLE")
    ends = {1: 10, 2: 11, 3: 12}                   # session -> hour its workout ends
    rows = [row for session, hour in ends.items() for row in _workout_rows(session, hour)]
    spark.createDataFrame(rows, columns).write.insertInto(config.qualified("workout_bpm"))
    (query,), _ = quietly(config, Gold(course, spark).upsert, once=True)
    summary = spark.table(config.qualified("workout_bpm_summary")).orderBy("session_id")
    progress = query.lastProgress
    return {"workouts in workout_bpm": len(ends),
            "summary rows (session_id)": [r.session_id for r in summary.collect()],
            "watermark": progress["eventTime"]["watermark"],
            "groups waiting in the state store": progress["stateOperators"][0]["numRowsTotal"]}


# ---------------------------------------------------------------------------- Q27 idempotent writes
def txn_writes(config: Config, spark: SparkSession) -> list[int]:
    """Append one row with (txnAppId, txnVersion) = (q, 0), (q, 0) again, (q, 1); return the rows after each."""
    folder = str(lessons_dir(config) / "txn")
    rows = []
    for version in (0, 0, 1):
        (spark.createDataFrame([(version,)], "batch_id INT").write.format("delta").mode("append")
         .option("txnAppId", "lesson-query").option("txnVersion", version).save(folder))
        rows.append(spark.read.format("delta").load(folder).count())
    return rows


# ---------------------------------------------------------------------------- Q28 catalog
def catalog_rebuilt(config: Config, spark: SparkSession, table: str = "users") -> dict:
    """Drop a table's catalog entry, then register the environment again as a new process would; return counts."""
    name = config.qualified(table)
    before = spark.table(name).count()
    spark.sql(f"DROP TABLE {name}")
    dropped = {"catalog entry after DROP TABLE": spark.catalog.tableExists(name),
               "Delta folder after DROP TABLE": (config.table_location(table) / "_delta_log").is_dir()}
    registered = register_tables(spark, config)
    return {"catalog": spark.conf.get("spark.sql.catalogImplementation"), "rows before": before, **dropped,
            "registered again": table in registered, "rows after": spark.table(name).count()}

