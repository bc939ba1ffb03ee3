"""Bronze, declared: the landing zone's files -> streaming tables (append only, incremental).

The hand-built version is sbit_lib/course/bronze.py (notebook 04). What the framework does
here that 04 does by hand: one checkpoint per flow (under the pipeline's `storage`), the
order of the flows (date_lookup before kafka_multiplex_bz), creating the tables.

`spark` is given to this file by the pipeline runner (pyspark.pipelines.cli.register_definitions).
"""

from pyspark import pipelines as dp
from pyspark.sql import functions as F

from sbit_lib.course.bronze import CORRUPT, LINE_REASON, SOURCES
from sbit_lib.course.history import _RAW_SCHEMA, DATE_LOOKUP_FILE
from sbit_lib.course.tables import QUARANTINE, table_def

LANDING = spark.conf.get("sbit.landing_zone")
TEST_DATA = spark.conf.get("sbit.test_data")


@dp.materialized_view(schema=table_def("date_lookup").columns, comment="the 2023 calendar (history)")
def date_lookup():
    return spark.read.schema(_RAW_SCHEMA).json(f"{TEST_DATA}/{DATE_LOOKUP_FILE}").selectExpr(
        "CAST(date AS DATE) AS date", "CAST(week AS INT) AS week", "CAST(year AS INT) AS year",
        "CAST(month AS INT) AS month", "CAST(dayofweek AS INT) AS dayofweek",
        "CAST(dayofmonth AS INT) AS dayofmonth", "CAST(dayofyear AS INT) AS dayofyear", "week_part")


def landed(table: str):
    """The files landed for `table`, parsed leniently: a malformed line keeps its text in _corrupt_record."""
    source = SOURCES[table]
    reader = (spark.readStream.format(source.fmt).schema(f"{source.schema}, {CORRUPT} STRING")
              .option("mode", "PERMISSIVE").option("columnNameOfCorruptRecord", CORRUPT)
              .option("maxFilesPerTrigger", 1))        # one file per micro-batch, like 04-bronze
    if source.fmt == "csv":
        reader = reader.option("header", "true")
    return reader.load(f"{LANDING}/{table}").select(
        "*", F.current_timestamp().alias("load_time"), F.col("_metadata.file_path").alias("source_file"))


def good(table: str, *extra):
    columns = [c.split()[0] for c in table_def(table).columns.split(", ")]
    return landed(table).where(F.col(CORRUPT).isNull()).select(*[c for c in columns if c not in extra], *extra)


@dp.table(schema=table_def("registered_users_bz").columns, comment="device registrations (CSV)")
def registered_users_bz():
    return good("registered_users_bz")


@dp.table(schema=table_def("gym_logins_bz").columns, comment="gym logins and logouts (CSV)")
def gym_logins_bz():
    return good("gym_logins_bz")


@dp.table(schema=table_def("kafka_multiplex_bz").columns, partition_cols=["topic", "week_part"],
          comment="Kafka topics user_info, workout and bpm, with the event's date and week part")
def kafka_multiplex_bz():
    calendar = spark.read.table("date_lookup").where("date IS NOT NULL").select("date", "week_part")
    events = landed("kafka_multiplex_bz").where(F.col(CORRUPT).isNull()).select(
        "key", "value", "topic", "partition", "offset", "timestamp",
        F.expr("CASE WHEN timestamp BETWEEN 0 AND 253402300799 THEN to_date(timestamp_seconds(timestamp)) END")
        .alias("date"), "load_time", "source_file")
    return (events.join(F.broadcast(calendar), "date", "left")
            .select("key", "value", "topic", "partition", "offset", "timestamp", "date", "week_part",
                    "load_time", "source_file"))


# Malformed lines of every source, kept with the reason: one table, one append flow per source.
dp.create_streaming_table(QUARANTINE.name, schema=QUARANTINE.columns, comment="malformed input lines, kept")


def _quarantine_flow(table: str):
    @dp.append_flow(target=QUARANTINE.name, name=f"quarantine_{table}")
    def flow():
        fields = [c.split()[0] for c in SOURCES[table].schema.split(", ")]
        # Spark refuses a query of raw files that reads only the corrupt-record column
        # (QUERY_ONLY_CORRUPT_RECORD_COLUMN): the coalesce reads the parsed fields too, and always
        # gives the line itself, never NULL on these rows.
        line = F.coalesce(F.col(CORRUPT), F.to_json(F.struct(*fields)))
        return landed(table).where(F.col(CORRUPT).isNotNull()).select(
            F.lit(table).alias("source"), line.alias("raw_record"), "source_file", "load_time",
            F.lit(LINE_REASON[SOURCES[table].fmt]).alias("reason"))


for _table in SOURCES:
    _quarantine_flow(_table)
