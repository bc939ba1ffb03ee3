"""The course's ``Bronze``: raw files → append-only Delta tables, one stream per source.

Differences from the course, and why:

* Auto Loader (``cloudFiles``) is Databricks-only: the open-source file source is
  used with an explicit schema (``readStream.format("csv"/"json").schema(...)``).
* Malformed records are neither dropped nor fatal. The reader runs in PERMISSIVE
  mode with a ``_corrupt_record`` column; each micro-batch is split in
  ``foreachBatch``: good records go to the bronze table, bad ones (the raw line,
  with its file) to ``quarantine_bz``. Both writes carry Delta's idempotent-write
  options (``txnAppId`` = the query's id, ``txnVersion`` = the batch id), so a
  micro-batch replayed after a crash is skipped instead of appended twice.
* ``kafka_multiplex_bz.date`` comes from the Kafka timestamp in epoch *seconds*
  (the course divides by 1000 and gets NULL for every row).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass
from typing import Callable

from pyspark.sql import DataFrame, Observation, functions as F

from sbit_lib.config import Config
from sbit_lib.session import get_spark
from sbit_lib.streaming import start_foreach_batch
from sbit_lib.tables import QUARANTINE, parse_columns, table_def
from sbit_lib.validation import assert_count

CORRUPT = "_corrupt_record"
# Kafka timestamps outside year 1970..9999 get a NULL date instead of an ANSI overflow
# error that would stop the whole stream.
_MAX_EPOCH_SECONDS = 253_402_300_799


_LOG = logging.getLogger(__name__)
# location → (its commit files, date → week_part): see Bronze._date_lookup.
_DATE_LOOKUPS: dict[str, tuple[tuple, dict]] = {}
_DATE_LOOKUP_LOCKS: dict[str, threading.Lock] = {}
_LOCKS_GUARD = threading.Lock()


def _lookup_lock(location: str) -> threading.Lock:
    with _LOCKS_GUARD:
        return _DATE_LOOKUP_LOCKS.setdefault(location, threading.Lock())


def _in_background(name: str, step: Callable[[], object]) -> threading.Thread:
    """Run `step` in a daemon thread.

    Used only for work a micro-batch would otherwise do itself on its critical path
    (reading date_lookup, building a Delta table's state). If the step fails or has not
    finished, the batch still gets what it needs: it waits for a date_lookup read under
    way (a lock) or reads it itself, and builds the table state itself when the table has
    changed since. So a failure is only logged, at debug level.
    """
    def run() -> None:
        try:
            step()
        except Exception:   # noqa: BLE001 - a warm-up only; the batch redoes the work
            _LOG.debug("background %s failed", name, exc_info=True)

    # A plain thread, not pyspark's InheritableThread: called from a micro-batch, that would
    # copy the batch's local properties (its SQL execution id among them) into the warm-up.
    thread = threading.Thread(target=run, name=name, daemon=True)
    thread.start()
    return thread


def _table_state(spark, location: str) -> Callable[[], object]:
    """A step that builds the state of the Delta table at `location` in this JVM.

    An idempotent append (txnAppId/txnVersion) asks the table's snapshot for its
    transactions, and Delta 4.4 builds the whole state for that (two Spark jobs, ~0.85 s
    on 2 cores, even for a new table) before it writes a row. The snapshot is shared by
    every user of the table in the JVM, so building it while the query starts (or while
    a stream waits for its next trigger) takes that off the batch's path, as long as the
    table has not changed in between (else the batch builds the newer version's state).
    """
    def step():
        from delta.tables import DeltaTable

        return DeltaTable.forPath(spark, location).detail().collect()
    return step


def _commit_files(spark, location: str) -> tuple:
    """(name, size, modification time) of a Delta table's commit files, through Hadoop's
    file system layer (any URL Spark can read); () when they cannot be listed."""
    try:
        jvm = spark._jvm
        log = jvm.org.apache.hadoop.fs.Path(location.rstrip("/") + "/_delta_log")
        statuses = log.getFileSystem(spark._jsc.hadoopConfiguration()).listStatus(log)
    except Exception:   # noqa: BLE001 - no listing (no table yet, no JVM access): no caching
        return ()
    return tuple(sorted((st.getPath().getName(), st.getLen(), st.getModificationTime())
                        for st in statuses if st.getPath().getName().endswith(".json")))


@dataclass(frozen=True)
class BronzeSource:
    """One bronze stream: landing folder, file format, schema, query name and pool.

    ``warm_state``: build the table's Delta state ahead of its micro-batches (see
    _table_state). Only the heart-rate table's batches are long enough to gain from it;
    for the two small tables it would only add Spark jobs.
    """

    table: str
    fmt: str
    schema: str
    query_name: str
    pool: str
    warm_state: bool = False


def _source(table: str, fmt: str, pool: str, derived: tuple[str, ...], warm_state: bool = False) -> BronzeSource:
    """A source whose file schema is its table's columns less the ones bronze adds."""
    columns = [c for c in table_def(table).columns.split(", ") if c.split()[0] not in derived]
    return BronzeSource(table, fmt, ", ".join(columns), f"{table}_ingestion_stream", pool, warm_state)


_ADDED = ("load_time", "source_file")
SOURCES = {
    "registered_users_bz": _source("registered_users_bz", "csv", "bronze_p1", _ADDED),
    "gym_logins_bz": _source("gym_logins_bz", "csv", "bronze_p1", _ADDED),
    "kafka_multiplex_bz": _source("kafka_multiplex_bz", "json", "bronze_p2", _ADDED + ("date", "week_part"),
                                  warm_state=True),
}


class _BatchWriter:
    """foreachBatch function: append good records, keep malformed ones in quarantine, idempotently."""

    def __init__(self, bronze: "Bronze", source: BronzeSource, transform: Callable[[DataFrame], DataFrame],
                 rewarm: bool = False):
        self.bronze = bronze
        self.config = bronze.config
        self.spark = bronze.spark
        self.rewarm = rewarm and source.warm_state
        self._warming: threading.Thread | None = None
        self.source = source
        self.transform = transform
        self.columns = [name for name, _ in parse_columns(table_def(source.table).columns)]
        self._app_id: str | None = None

    def app_id(self) -> str:
        # The query id is stored in the checkpoint and survives restarts; a new checkpoint
        # gets a new id, so its batch ids (restarting at 0) are never mistaken for old ones.
        if self._app_id is None:
            meta = self.config.checkpoint_dir(self.source.table) / "metadata"
            self._app_id = json.loads(meta.read_text().splitlines()[0])["id"]
        return self._app_id

    def _append(self, df: DataFrame, table: str, app_id: str, batch_id: int) -> None:
        (df.write.format("delta").mode("append")
           .option("txnAppId", app_id).option("txnVersion", batch_id)
           .save(str(self.config.table_location(table))))

    def __call__(self, batch: DataFrame, batch_id: int) -> None:
        batch = batch.withColumn("load_time", F.current_timestamp())
        malformed_rows = batch.where(F.col(CORRUPT).isNotNull())
        # One pass over the files: the good rows are written while an Observation counts
        # the malformed ones (no cache of the whole batch, which cost a third of the time).
        seen = Observation()
        counted = batch.observe(seen, F.count_if(F.col(CORRUPT).isNotNull()).alias("bad"))
        good = self.transform(counted.where(F.col(CORRUPT).isNull()).drop(CORRUPT))
        self._append(good.select(*self.columns), self.source.table, self.app_id(), batch_id)
        # The metric is set when the write's plan has run. When Delta skips the write (this
        # batch id was committed before a crash) nothing runs, so count the slow way instead
        # of waiting: Observation.get() would block forever.
        if seen._jo.future().isCompleted():
            malformed = seen.get["bad"]
        else:
            malformed = malformed_rows.count()
        if malformed:
            rejected = malformed_rows.select(
                F.lit(self.source.table).alias("source"), F.col(CORRUPT).alias("raw_record"),
                "source_file", "load_time")
            self._append(rejected, QUARANTINE.name, f"{self.app_id()}-quarantine", batch_id)
            print(f"WARNING {self.source.table}: {malformed} malformed record(s) kept in "
                  f"{self.config.qualified(QUARANTINE.name)}")
        # A stream: build the new version's state while it waits for the next trigger (one
        # warm-up at a time; batches that follow each other closely just do it themselves).
        if self.rewarm and (self._warming is None or not self._warming.is_alive()):
            self._warming = self.bronze._track(_in_background(
                f"warm {self.source.table}",
                _table_state(self.spark, str(self.config.table_location(self.source.table)))))


class Bronze:
    """Ingest the landing zone into the bronze tables with Structured Streaming."""

    def __init__(self, config: Config | None = None, spark=None):
        self.config = config or Config.resolve()
        self.spark = spark or get_spark(self.config)
        self._warmups: list[threading.Thread] = []
        self._warmups_lock = threading.Lock()     # stream writers add re-warms from their threads

    def _track(self, thread: threading.Thread) -> threading.Thread:
        with self._warmups_lock:
            self._warmups = [t for t in self._warmups if t.is_alive()] + [thread]
        return thread

    def wait_for_warmups(self, timeout_s: float = 60) -> None:
        """Wait for the background reads started with the queries or after a stream's
        micro-batch (see _in_background), so that none outlives a run (a bench repetition,
        a test that deletes its tables)."""
        deadline = time.monotonic() + timeout_s
        with self._warmups_lock:
            threads = list(self._warmups)
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        with self._warmups_lock:
            self._warmups = [t for t in self._warmups if t.is_alive()]

    def _read(self, source: BronzeSource) -> DataFrame:
        reader = (
            self.spark.readStream.format(source.fmt)
            .schema(f"{source.schema}, {CORRUPT} STRING")
            .option("mode", "PERMISSIVE")
            .option("columnNameOfCorruptRecord", CORRUPT)
            # One file per micro-batch, like the course: a file is the unit of replay.
            .option("maxFilesPerTrigger", self.config.bronze_max_files_per_trigger)
        )
        if source.fmt == "csv":
            reader = reader.option("header", "true")
        return (reader.load(str(self.config.landing_zone / source.table))
                .withColumn("source_file", F.col("_metadata.file_path")))

    def _start(self, source: BronzeSource, transform, once: bool, processing_time: str,
               prefetch: tuple[Callable[[], object], ...] = ()):
        self.config.landing_zone.joinpath(source.table).mkdir(parents=True, exist_ok=True)
        # While Spark starts the query and lists the landing folder, read what the first
        # micro-batch will need anyway, each in its own thread (see _table_state).
        if source.warm_state:
            prefetch = (*prefetch, _table_state(self.spark, str(self.config.table_location(source.table))))
        for step in prefetch:
            self._track(_in_background(f"warm {source.table}", step))
        return start_foreach_batch(self.spark, self._read(source), source.query_name,
                                   self.config.checkpoint_dir(source.table),
                                   _BatchWriter(self, source, transform, rewarm=not once),
                                   source.pool, once, processing_time)

    def consume_user_registration(self, once: bool = True, processing_time: str = "5 seconds"):
        """Start the registered_users_bz stream; return its StreamingQuery."""
        return self._start(SOURCES["registered_users_bz"], lambda df: df, once, processing_time)

    def consume_gym_logins(self, once: bool = True, processing_time: str = "5 seconds"):
        """Start the gym_logins_bz stream; return its StreamingQuery."""
        return self._start(SOURCES["gym_logins_bz"], lambda df: df, once, processing_time)

    def _date_lookup(self) -> dict:
        """date → week_part from date_lookup, cached in the process until the table changes.

        Reading it costs a Delta read (0.4-0.7 s on 2 cores) per micro-batch; the cache is
        keyed by the table's commit files (name, size, time), so a reload, a new version or
        a dropped and re-created table is seen by the next batch.
        """
        location = str(self.config.table_location("date_lookup"))
        with _lookup_lock(location):    # a batch waits for a read already under way (prefetch)
            key = _commit_files(self.spark, location)
            cached = _DATE_LOOKUPS.get(location)
            if key and cached and cached[0] == key:
                return cached[1]
            lookup = {row["date"]: row["week_part"] for row in
                      self.spark.read.format("delta").load(location)
                      .where("date IS NOT NULL").select("date", "week_part").collect()}
            if key and lookup:
                _DATE_LOOKUPS[location] = (key, lookup)
            return lookup

    def _with_dates(self, df: DataFrame) -> DataFrame:
        # A lookup join with date_lookup, broadcast: its rows travel once to every task and
        # the stream side is never shuffled. The rows come from the process's cache
        # (_date_lookup) as a local relation, not from a Delta read per micro-batch.
        rows = sorted(self._date_lookup().items())
        lookup = self.spark.createDataFrame(rows, "date DATE, week_part STRING")
        ts = F.col("timestamp")
        date = F.when(ts.between(0, _MAX_EPOCH_SECONDS), F.to_date(F.timestamp_seconds(ts)))
        return df.withColumn("date", date).join(F.broadcast(lookup), "date", "left")

    def consume_multiplex(self, once: bool = True, processing_time: str = "5 seconds"):
        """Start the kafka_multiplex_bz stream (topics user_info, workout, bpm); return it."""
        return self._start(SOURCES["kafka_multiplex_bz"], self._with_dates, once, processing_time,
                           prefetch=(self._date_lookup,))

    def consume(self, once: bool = True, processing_time: str = "5 seconds") -> list:
        """Start all three bronze streams; with ``once`` wait until they have read every landed file."""
        print(f"Starting bronze ({'batch' if once else 'stream, every ' + processing_time}) ...")
        queries = [
            self.consume_user_registration(once, processing_time),
            self.consume_gym_logins(once, processing_time),
            self.consume_multiplex(once, processing_time),
        ]
        if once:
            for query in queries:
                query.awaitTermination()
            self.wait_for_warmups()
            print("Bronze layer completed")
        return queries

    def rejected_counts(self) -> dict[str, int]:
        """Return the number of malformed records kept per source."""
        rows = (self.spark.read.table(self.config.qualified(QUARANTINE.name))
                .groupBy("source").count().collect())
        return {r["source"]: r["count"] for r in rows}

    def counts(self) -> dict:
        """Return the bronze row counts (kafka_multiplex_bz per topic)."""
        fq = self.config.qualified
        topics = {r["topic"]: r["count"] for r in
                  self.spark.read.table(fq("kafka_multiplex_bz")).groupBy("topic").count().collect()}
        return {
            "registered_users_bz": self.spark.read.table(fq("registered_users_bz")).count(),
            "gym_logins_bz": self.spark.read.table(fq("gym_logins_bz")).count(),
            "kafka_multiplex_bz": {t: topics.get(t, 0) for t in ("user_info", "workout", "bpm")},
        }

    def validate(self, n: int) -> None:
        """Check the bronze counts after set n against the expected values, and no lost record."""
        from sbit_lib.expectations import Expectations

        print(f"Validating bronze layer after set {n} ...")
        expected = Expectations.load(self.config.test_data).landing(n)
        fq = self.config.qualified
        rejected = self.rejected_counts()
        for table in ("registered_users_bz", "gym_logins_bz"):
            assert_count(self.spark, fq(table), expected[table] - rejected.get(table, 0))
        multiplex_rejected = rejected.get("kafka_multiplex_bz", 0)
        for topic, count in expected["kafka_multiplex_bz"].items():
            # A malformed Kafka line has no reliable topic; it is counted against the total below.
            if not multiplex_rejected:
                assert_count(self.spark, fq("kafka_multiplex_bz"), count, where=f"topic = '{topic}'")
        total = sum(expected["kafka_multiplex_bz"].values()) - multiplex_rejected
        assert_count(self.spark, fq("kafka_multiplex_bz"), total)
        assert_count(self.spark, fq("kafka_multiplex_bz"), 0,
                     where="(date IS NULL OR week_part IS NULL) AND timestamp BETWEEN 1672531200 AND 1704067199")
        print("Bronze layer validation completed")
