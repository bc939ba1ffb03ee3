"""The course's ``Bronze``: raw files → append-only Delta tables, one stream per source.

Read it top to bottom like the course's class: the reader (``_read``), the writer
(``_BatchWriter``), then one ``consume_*`` method per source and ``consume`` for all three.

Differences from the course, and why:

* Auto Loader (``cloudFiles``) is Databricks-only: the open-source file source is
  used with an explicit schema (``readStream.format("csv"/"json").schema(...)``).
* Malformed records are neither dropped nor fatal. The reader runs in PERMISSIVE
  mode with a ``_corrupt_record`` column; each micro-batch is split in
  ``foreachBatch``: good records go to the bronze table, bad ones (the raw line,
  with its file and the reason) to ``quarantine_bz``. A CSV file is read by the
  names in its header: in another order it is read again in that order; with a
  column missing or added it is quarantined whole. Both writes carry Delta's
  idempotent-write
  options (``txnAppId`` = the query's id, ``txnVersion`` = the batch id), so a
  micro-batch replayed after a crash is skipped instead of appended twice.
* ``kafka_multiplex_bz.date`` comes from the Kafka timestamp in epoch *seconds*
  (the course divides by 1000 and gets NULL for every row).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from pyspark.sql import DataFrame, Observation
from pyspark.sql import functions as F

from sbit_lib.course.catalog import get_spark
from sbit_lib.course.config import Config
from sbit_lib.course.streaming import checkpoint_query_id, start_foreach_batch
from sbit_lib.course.tables import QUARANTINE, parse_columns, table_def
from sbit_lib.spark.session import observation_ready
from sbit_lib.testing.validation import assert_count

CORRUPT = "_corrupt_record"
# The reason kept with a malformed line in quarantine_bz, per file format.
LINE_REASON = {
    "csv": "wrong number of fields, or a value of the wrong type",
    "json": "not a JSON object, or a field of the wrong type",
}


def header_reason(missing: list[str], extra: list[str]) -> str:
    """The reason kept with every line of a CSV file whose header lacks or adds columns."""
    parts = ([f"missing column(s) {', '.join(missing)}"] if missing else []) + (
        [f"unexpected column(s) {', '.join(extra)}"] if extra else [])
    return "header " + "; ".join(parts) + ": file quarantined whole"


# Kafka timestamps outside year 1970..9999 get a NULL date instead of an ANSI overflow
# error that would stop the whole stream.
_MAX_EPOCH_SECONDS = 253_402_300_799


@dataclass(frozen=True)
class BronzeSource:
    """One bronze stream: its table (= landing folder), file format, file schema, query name and pool."""

    table: str
    fmt: str
    schema: str
    query_name: str
    pool: str


def _source(table: str, fmt: str, pool: str, derived: tuple[str, ...]) -> BronzeSource:
    """A source whose file schema is its table's columns less the ones bronze adds."""
    columns = [c for c in table_def(table).columns.split(", ") if c.split()[0] not in derived]
    return BronzeSource(table, fmt, ", ".join(columns), f"{table}_ingestion_stream", pool)


_ADDED = ("load_time", "source_file")
SOURCES = {
    "registered_users_bz": _source("registered_users_bz", "csv", "bronze_p1", _ADDED),
    "gym_logins_bz": _source("gym_logins_bz", "csv", "bronze_p1", _ADDED),
    "kafka_multiplex_bz": _source("kafka_multiplex_bz", "json", "bronze_p2", _ADDED + ("date", "week_part")),
}


class _BatchWriter:
    """foreachBatch function: append good records, keep malformed ones in quarantine, idempotently."""

    def __init__(self, config: Config, source: BronzeSource, transform: Callable[[DataFrame], DataFrame]):
        self.config = config
        self.source = source
        self.transform = transform
        self.columns = [name for name, _ in parse_columns(table_def(source.table).columns)]
        self._app_id: str | None = None
        self._cached: list[DataFrame] = []

    def app_id(self) -> str:
        # The query id is stored in the checkpoint and survives restarts.
        if self._app_id is None:
            self._app_id = checkpoint_query_id(self.config.checkpoint_dir(self.source.table))
        return self._app_id

    def _append(self, df: DataFrame, table: str, app_id: str, batch_id: int, merge_schema: bool = False) -> None:
        (df.write.format("delta").mode("append")
           .option("txnAppId", app_id).option("txnVersion", batch_id)
           .option("mergeSchema", str(merge_schema).lower())
           .save(str(self.config.table_location(table))))

    def _by_header(self, batch: DataFrame) -> tuple[DataFrame, DataFrame | None]:
        """CSV only: read every file of the batch by the column names of its header.

        The stream parses CSV by position. A file whose header names the same columns in
        another order is read again with its own order; one whose header lacks a column or
        adds one is quarantined whole (every line, with the reason), since no line of it
        can be trusted. Returns the batch to keep and the quarantined lines (or None).
        """
        spark = batch.sparkSession
        wanted = [name for name, _ in parse_columns(self.source.schema)]
        types = dict(parse_columns(self.source.schema))
        whole_files = None
        for (file,) in batch.select("source_file").distinct().collect():
            header_line = spark.read.text(file).first()[0]
            names = [name.strip().strip('"') for name in header_line.split(",")]
            if names == wanted:
                continue
            batch = batch.where(F.col("source_file") != file)
            if sorted(names) == sorted(wanted):
                schema = ", ".join(f"{name} {types[name]}" for name in names)
                reread = (spark.read.schema(f"{schema}, {CORRUPT} STRING").option("header", "true")
                          .option("mode", "PERMISSIVE").option("columnNameOfCorruptRecord", CORRUPT).csv(file)
                          .withColumn("source_file", F.lit(file)).withColumn("load_time", F.current_timestamp()))
                # Cached: Spark refuses a query of a raw CSV that reads only its corrupt-record
                # column (the quarantine's), and the file is read once instead of twice.
                self._cached.append(reread.cache())
                batch = batch.unionByName(reread)
                continue
            missing = [n for n in wanted if n not in names]
            extra = [n for n in names if n not in wanted]
            reason = header_reason(missing, extra)
            lines = (spark.read.text(file).where(F.trim("value") != "").where(F.col("value") != header_line)
                     .select(F.lit(self.source.table).alias("source"), F.col("value").alias("raw_record"),
                             F.lit(file).alias("source_file"), F.current_timestamp().alias("load_time"),
                             F.lit(reason).alias("reason")))
            whole_files = lines if whole_files is None else whole_files.unionByName(lines)
        return batch, whole_files

    def __call__(self, batch: DataFrame, batch_id: int) -> None:
        try:
            self._write(batch, batch_id)
        finally:
            for df in self._cached:
                df.unpersist()
            self._cached.clear()

    def _write(self, batch: DataFrame, batch_id: int) -> None:
        batch = batch.withColumn("load_time", F.current_timestamp())
        whole_files = None
        if self.source.fmt == "csv":
            batch, whole_files = self._by_header(batch)
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
        if observation_ready(seen):
            malformed = seen.get["bad"]
        else:
            malformed = malformed_rows.count()
        rejected = malformed_rows.select(
            F.lit(self.source.table).alias("source"), F.col(CORRUPT).alias("raw_record"),
            "source_file", "load_time", F.lit(LINE_REASON[self.source.fmt]).alias("reason"))
        if whole_files is not None:
            malformed += whole_files.count()
            rejected = rejected.unionByName(whole_files)
        if malformed:
            # mergeSchema: a quarantine_bz made before it had `reason` gains the column.
            self._append(rejected, QUARANTINE.name, f"{self.app_id()}-quarantine", batch_id, merge_schema=True)
            print(f"WARNING {self.source.table}: {malformed} malformed record(s) kept in "
                  f"{self.config.qualified(QUARANTINE.name)}")


class Bronze:
    """Ingest the landing zone into the bronze tables with Structured Streaming."""

    def __init__(self, config: Config | None = None, spark=None):
        self.config = config or Config.resolve()
        self.spark = spark or get_spark(self.config)

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

    def _start(self, source: BronzeSource, transform, once: bool, processing_time: str):
        self.config.landing_zone.joinpath(source.table).mkdir(parents=True, exist_ok=True)
        return start_foreach_batch(self.spark, self._read(source), source.query_name,
                                   self.config.checkpoint_dir(source.table),
                                   _BatchWriter(self.config, source, transform),
                                   source.pool, once, processing_time)

    def consume_user_registration(self, once: bool = True, processing_time: str = "5 seconds"):
        """Start the registered_users_bz stream; return its StreamingQuery."""
        return self._start(SOURCES["registered_users_bz"], lambda df: df, once, processing_time)

    def consume_gym_logins(self, once: bool = True, processing_time: str = "5 seconds"):
        """Start the gym_logins_bz stream; return its StreamingQuery."""
        return self._start(SOURCES["gym_logins_bz"], lambda df: df, once, processing_time)

    def _with_dates(self, df: DataFrame) -> DataFrame:
        """Add date and week_part: the Kafka timestamp's date, joined with date_lookup.

        A lookup join, broadcast: date_lookup's 365 rows travel once to every task and the
        stream side is never shuffled. It is read at every micro-batch, so a reloaded
        calendar is seen by the next one.
        """
        lookup = (self.spark.read.table(self.config.qualified("date_lookup"))
                  .where("date IS NOT NULL").select("date", "week_part"))
        ts = F.col("timestamp")
        date = F.when(ts.between(0, _MAX_EPOCH_SECONDS), F.to_date(F.timestamp_seconds(ts)))
        return df.withColumn("date", date).join(F.broadcast(lookup), "date", "left")

    def consume_multiplex(self, once: bool = True, processing_time: str = "5 seconds"):
        """Start the kafka_multiplex_bz stream (topics user_info, workout, bpm); return it."""
        return self._start(SOURCES["kafka_multiplex_bz"], self._with_dates, once, processing_time)

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
        """Check the bronze tables and quarantine_bz after set n against the reference.

        The expected counts come from reading the landed files independently (lines, and
        the lines that do not parse), not from this pipeline's quarantine: a good record
        quarantined by mistake, or a bad one let through, fails here.
        """
        from sbit_lib.testing.expectations import Expectations
        from sbit_lib.testing.validation import assert_rows

        print(f"Validating bronze layer after set {n} ...")
        expected = Expectations.load(self.config.test_data)
        fq = self.config.qualified
        for table in ("registered_users_bz", "gym_logins_bz"):
            assert_count(self.spark, fq(table), expected.table(self.config.mode, n, table).count)
        multiplex = expected.table(self.config.mode, n, "kafka_multiplex_bz")
        for topic, count in multiplex.aggregates["per_topic"].items():
            where = "topic IS NULL" if topic == "null" else f"topic = '{topic}'"
            assert_count(self.spark, fq("kafka_multiplex_bz"), count, where=where)
        assert_count(self.spark, fq("kafka_multiplex_bz"), multiplex.count)
        assert_count(self.spark, fq("kafka_multiplex_bz"), 0,
                     where="(date IS NULL OR week_part IS NULL) AND timestamp BETWEEN 1672531200 AND 1704067199")
        quarantined = self.spark.read.table(fq(QUARANTINE.name)).selectExpr(
            "source", "reason", "element_at(split(source_file, '/'), -1) AS file")
        assert_rows(quarantined, expected.table(self.config.mode, n, QUARANTINE.name).rows,
                    f"{fq(QUARANTINE.name)} after set {n} (source, reason, file)")
        print("Bronze layer validation completed")
