# ---
# jupyter:
#   execution:
#     timeout: 600
#   jupytext:
#     formats: ipynb,py:percent
#     notebook_metadata_filter: execution
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (sbit-lakehouse)
#     language: python
#     name: sbit-lakehouse
# ---

# %% [markdown]
# # 04 · Bronze: raw files into Delta tables, with Structured Streaming
#
# **What this step does.** Source systems drop files in the *landing zone*: CSV files of device
# registrations and gym logins, and JSON files of Kafka records (profile changes, workout start/stop
# and heart-rate readings, all in one *multiplexed* feed). Bronze reads each folder as a **stream**
# and appends what it reads to a Delta table, adding when (`load_time`) and from which file
# (`source_file`) each record came. Bronze keeps data raw: no filtering, no de-duplication. Later
# layers can always be rebuilt from it.
#
# ```mermaid
# flowchart LR
#     subgraph landing zone
#         A["registered_users_bz/*.csv"]; B["gym_logins_bz/*.csv"]; C["kafka_multiplex_bz/*.json"]
#     end
#     A -- "readStream csv<br/>maxFilesPerTrigger 1" --> Q1(["registered_users_bz_ingestion_stream"])
#     B --> Q2(["gym_logins_bz_ingestion_stream"])
#     C --> Q3(["kafka_multiplex_bz_ingestion_stream<br/>+ broadcast join date_lookup"])
#     Q1 --> T1[(registered_users_bz)]; Q2 --> T2[(gym_logins_bz)]; Q3 --> T3[("kafka_multiplex_bz<br/>partitioned by topic, week_part")]
#     Q1 & Q2 & Q3 -. "malformed records" .-> QZ[(quarantine_bz)]
# ```
#
# **How this notebook goes.** You build the first stream, `registered_users_bz`, yourself, cell by
# cell: the file source, the micro-batch writer, the `writeStream` that runs it. It writes into a
# *scratch* table with its own checkpoint, so the pipeline's tables stay the library's. Then the
# library (`sbit_lib.course.bronze.Bronze`) runs all three streams into the real tables, a check
# shows your table equals the library's, and the same stream of yours runs continuously while
# new files land. Last, the library's code for the other two sources, which you can now read.
#
# **Runs:** setup and the date lookup if 02/03 have not run, lands set 1, your stream three times
# (two batch runs and a continuous run of half a minute), the library's three bronze streams (about
# a minute and a half: the heart-rate file holds 250,000 records) and a few small demos. About
# 1.5-3 minutes after 03 on a 2-core laptop (CI: 71 s), about 4 minutes on a fresh environment.
#
# **Databricks → local.** The course uses *Auto Loader* (`format("cloudFiles")`), which infers and
# evolves schemas and keeps a `_rescued_data` column. Open-source Spark has the plain file source:
# it needs the schema up front, and it lists the folder at every trigger. It also reads any file it
# sees, so files must *appear atomically* (the producer writes a hidden temporary file and renames
# it, see `10-producer`).

# %% tags=["parameters"]
environment = "dev"
home = ""
test_data = ""
as_of = ""               # empty: SBIT_AS_OF, else the expected results' date (ages in user_bins)
sets = 1                 # land sets 1..sets before reading (files already landed are skipped)

# %%
import dataclasses
import json
import shutil
import time
from pathlib import Path

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from sbit_lib.course.bronze import SOURCES, Bronze, _BatchWriter
from sbit_lib.course.catalog import get_spark
from sbit_lib.course.producer import Producer, count_records
from sbit_lib.course.streaming import start_foreach_batch
from sbit_lib.course.tables import table_def
from sbit_lib.spark.storage import atomic_copy
from sbit_lib.teaching.explore import catch_up, checkpoint_entry, checkpoint_files, lesson_config, progress, relative
from sbit_lib.teaching.show import show

config = lesson_config(environment, home, test_data, as_of=as_of)
spark = get_spark(config)
# 02-setup and 03-history-loader if they have not run, then land the sets (10-producer does this job).
catch_up(config, spark, before="bronze", sets=range(1, sets + 1))
n = Producer(config).latest_set()
for folder in sorted(p for p in config.landing_zone.iterdir() if p.is_dir()):
    print(f"{relative(config, folder):40} {sorted(f.name for f in folder.iterdir())}")

# %% [markdown]
# Your stream writes under a scratch folder: a copy of the environment's layout (a `Config` whose
# data and checkpoint zones are there), so `scratch.table_location(...)` and
# `scratch.checkpoint_dir(...)` are where yours go, next to the pipeline's `config.…` ones.

# %%
scratch_root = config.env_root / "scratch" / "bronze"
shutil.rmtree(scratch_root, ignore_errors=True)      # a re-run starts from nothing
scratch = dataclasses.replace(config, data_root=str(scratch_root / "batch" / "data"),
                              checkpoint_root=str(scratch_root / "batch" / "checkpoints"))
print("pipeline table:", relative(config, config.table_location("registered_users_bz")))
print("your table:    ", relative(config, scratch.table_location("registered_users_bz")))
print("your checkpoint:", relative(config, scratch.checkpoint_dir("registered_users_bz")))

# %% [markdown]
# ## 1. The source: files read as a stream, with an explicit schema
#
# The schema is the table's columns (`sbit_lib/course/tables.py`) less the two bronze adds. An
# explicit schema means no inference pass over the files, the same types whatever the first file
# happens to contain, and a record that does not fit is *detected*, not coerced: in `PERMISSIVE`
# mode a line that does not parse becomes a row with only `_corrupt_record` filled (the raw line),
# instead of failing the stream.
#
# `maxFilesPerTrigger` caps a micro-batch at that many new files (1, like the course): a file is then
# the unit of progress and of replay. The file source offers the hidden `_metadata` column, whose
# `file_path` becomes `source_file`; `current_timestamp()` in a stream is the micro-batch's start.

# %%
TABLE = "registered_users_bz"
table_columns = [column.split()[0] for column in table_def(TABLE).columns.split(", ")]
added = ("load_time", "source_file")
file_schema = ", ".join(c for c in table_def(TABLE).columns.split(", ") if c.split()[0] not in added)
assert file_schema == SOURCES[TABLE].schema           # the library's reader uses the same one


def read_registrations(landing) -> DataFrame:
    """The registrations files under `landing` as a stream of rows, with the columns bronze adds."""
    return (spark.readStream.format("csv")
            .schema(f"{file_schema}, _corrupt_record STRING")
            .option("header", "true")
            .option("mode", "PERMISSIVE")
            .option("columnNameOfCorruptRecord", "_corrupt_record")
            .option("maxFilesPerTrigger", config.bronze_max_files_per_trigger)
            .load(str(landing))
            .withColumn("source_file", F.col("_metadata.file_path"))
            .withColumn("load_time", F.current_timestamp()))


registrations = read_registrations(config.landing_zone / TABLE)
print("file schema:", file_schema)
print("streaming:", registrations.isStreaming, "| columns:", registrations.columns)

# %% [markdown]
# ## 2. The writer: one function per micro-batch (`foreachBatch`)
#
# `foreachBatch` hands each micro-batch to a Python function as an ordinary DataFrame, so the batch
# can go to two places: good rows appended to the table, malformed rows (the raw line and its
# file) to a quarantine table. Nothing is dropped and nothing stops the stream.
#
# **Replays are harmless: idempotent appends.** A micro-batch interrupted by a crash is run again
# on restart, with the same input (its offsets are in the checkpoint). Its append could then land
# twice. Each append therefore carries Delta's **`txnAppId`** (the query's id, written in its
# checkpoint's `metadata` file, so it survives restarts) and **`txnVersion`** (the batch id). Delta
# records the pair in the table's log and skips a write whose version it has already committed for
# that application id. A new checkpoint gets a new query id, so its batch ids (from 0 again) are
# never mistaken for old ones.

# %%
def batch_writer(zone):
    """The foreachBatch function of a registrations query whose table, quarantine and checkpoint are in `zone`."""
    checkpoint = zone.checkpoint_dir(TABLE)
    malformed_per_batch = {}

    def write_batch(batch: DataFrame, batch_id: int) -> None:
        # The query's id: the same after a restart, new with a new checkpoint.
        app_id = json.loads((checkpoint / "metadata").read_text().splitlines()[0])["id"]
        # Read the files once for both writes (and Spark refuses a query on raw CSV that reads
        # only _corrupt_record, as counting the bad rows would).
        batch = batch.cache()
        try:
            good = batch.where("_corrupt_record IS NULL").select(*table_columns)
            (good.write.format("delta").mode("append")
                 .option("txnAppId", app_id).option("txnVersion", batch_id)
                 .save(str(zone.table_location(TABLE))))
            bad = batch.where("_corrupt_record IS NOT NULL").select(
                F.lit(TABLE).alias("source"), F.col("_corrupt_record").alias("raw_record"), "source_file", "load_time")
            malformed_per_batch[batch_id] = bad.count()
            if malformed_per_batch[batch_id]:
                (bad.write.format("delta").mode("append")
                    .option("txnAppId", app_id).option("txnVersion", batch_id)
                    .save(str(zone.table_location("quarantine_bz"))))
        finally:
            batch.unpersist()

    write_batch.malformed = malformed_per_batch        # what the function kept, for the checks below
    return write_batch

# %% [markdown]
# ## 3. The query: `writeStream`, checkpoint, trigger, run
#
# `writeStream` turns the streaming DataFrame into a query. It has a **`queryName`** (in the Spark UI,
# in `spark.streams.active`, in the stream job's log), a **`checkpointLocation`** (its progress) and a
# **trigger**: `availableNow=True` reads every file not yet in the checkpoint, in micro-batches of at
# most `maxFilesPerTrigger` files, then stops — a batch run. `processingTime=...` (section 5) keeps
# watching the folder. Only the trigger differs, so it is a parameter here, as in the library.

# %%
def start_registrations(landing, zone, name: str, **trigger):
    """Start the registrations stream from `landing` into `zone`'s table; return the StreamingQuery."""
    writer = batch_writer(zone)
    query = (read_registrations(landing).writeStream
             .queryName(name)
             .option("checkpointLocation", str(zone.checkpoint_dir(TABLE)))
             .foreachBatch(writer)
             .trigger(**trigger)
             .start())
    query.writer = writer
    return query


query = start_registrations(config.landing_zone / TABLE, scratch, "registered_users_bz_yours", availableNow=True)
query.awaitTermination()
print(progress(query), "| malformed per batch:", query.writer.malformed)

# %% [markdown]
# The table your stream wrote, and in its Delta log the `txn` action of each append: the query's
# id and the batch id.

# %%
users_path = str(scratch.table_location(TABLE))
(spark.read.format("delta").load(users_path)
 .withColumn("source_file", F.substring_index("source_file", "/", -1))    # the file's name, not the machine's path
 .drop("load_time").orderBy("user_id").show(truncate=False))
log = scratch.table_location(TABLE) / "_delta_log"
for commit in sorted(log.glob("*.json")):
    txn = [json.loads(line)["txn"] for line in commit.read_text().splitlines() if '"txn"' in line]
    print(commit.name, "txnVersion", txn[0]["version"], "| txnAppId is the query's id:", txn[0]["appId"] == str(query.id))
    assert txn[0]["appId"] == str(query.id)

# %% [markdown]
# ## What is inside a checkpoint
#
# A checkpoint is a folder per query. `metadata` holds the query's id. Before a micro-batch runs,
# the query writes **which input** it will read to `offsets/<batch>`; after the batch is written, it
# writes `commits/<batch>`. The file source also logs the files it has taken in `sources/0/`. On
# restart the query reads the last offsets and commit: a batch with offsets but no commit is run
# again (*replayed*) with exactly the same input, and everything committed is never read again.

# %%
print("\n".join(checkpoint_files(scratch, TABLE)))
last = query.lastProgress["batchId"]
print(f"offsets/{last}: source offset {checkpoint_entry(scratch, TABLE, 'offsets', last)[-1]}")
files = checkpoint_entry(scratch, TABLE, "sources/0", last)
print(f"sources/0/{last}: read", [Path(entry["path"]).name for entry in files])
print(f"commits/{last}:", checkpoint_entry(scratch, TABLE, "commits", last))

# %% [markdown]
# Because of the checkpoint, running the same query again reads nothing and writes nothing. And a
# replayed batch is skipped: call the writer by hand with an id it has committed (batch 0, any rows)
# and Delta writes nothing. The skip goes by id, not by content — that is why it relies on the
# checkpoint replaying a batch with exactly the same input.

# %%
before = spark.read.format("delta").load(users_path).count()
again = start_registrations(config.landing_zone / TABLE, scratch, "registered_users_bz_yours", availableNow=True)
again.awaitTermination()
assert (again.lastProgress or {}).get("numInputRows", 0) == 0
again.writer(spark.read.format("delta").load(users_path).withColumn("_corrupt_record", F.lit(None).cast("string")), 0)
after = spark.read.format("delta").load(users_path).count()
assert after == before
print(f"second run: read {(again.lastProgress or {}).get('numInputRows', 0)} rows; "
      f"batch 0 replayed by hand: skipped; the table still has {after} rows")

# %% [markdown]
# ## 4. Check: your table is the library's
#
# `Bronze(config, spark).consume(once=True)` starts the library's three queries (registrations,
# gym logins, the Kafka feed) with `trigger(availableNow=True)` into the pipeline's tables and
# waits for them. Your registrations table must hold exactly its rows: compared both ways with
# `exceptAll` (which counts duplicates), on every column but `load_time` (the time of each run).

# %%
queries = Bronze(config, spark).consume(once=True)
for library_query in queries:
    print(progress(library_query))
library = spark.read.table(config.qualified(TABLE)).drop("load_time")
yours = spark.read.format("delta").load(users_path).drop("load_time")
missing, extra = library.exceptAll(yours).count(), yours.exceptAll(library).count()
print(f"library {library.count()} rows, yours {yours.count()} rows; "
      f"only in the library's: {missing}, only in yours: {extra}")
assert missing == extra == 0 and library.count() > 0
bronze = Bronze(config, spark)
assert bronze.rejected_counts().get(TABLE, 0) == sum(query.writer.malformed.values()) == 0
bronze.validate(n)           # every landed record is in bronze or in quarantine_bz

# %% [markdown]
# ## 5. The same stream, running: `trigger(processingTime=...)`
#
# With `processingTime="1 second"` the query checks its folder every second and runs a micro-batch
# whenever new files are there, until it is stopped. To watch it without touching the pipeline
# (05-silver checks the silver tables against the sets landed in the real landing zone), this run
# reads a scratch landing folder of its own: set 1's file first, then set 2's, landed while the
# query runs. A file lands atomically (`atomic_copy`: hidden temporary name, then a rename), so the
# stream never reads half of one. The cell waits by polling the query's progress, with a timeout.

# %%
live_zone = dataclasses.replace(config, data_root=str(scratch_root / "live" / "data"),
                                checkpoint_root=str(scratch_root / "live" / "checkpoints"))
live_landing = live_zone.landing_zone / TABLE


def wait_for_rows(query, rows: int, timeout_s: float = 180) -> None:
    """Poll until `query` has read `rows` input rows in all (or fail after `timeout_s`)."""
    deadline = time.monotonic() + timeout_s
    while sum(p["numInputRows"] for p in query.recentProgress) < rows:
        if not query.isActive:
            raise RuntimeError(f"{query.name} stopped: {query.exception()}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{query.name} read fewer than {rows} rows in {timeout_s} s")
        time.sleep(0.5)


def land(path: Path) -> int:
    """Land `path` in the live landing folder; return how many records it holds."""
    atomic_copy(path, live_landing / path.name)
    return count_records(path)


landed = land(config.test_data / "1-registered_users_1.csv")
live = start_registrations(live_landing, live_zone, "registered_users_bz_live", processingTime="1 second")
wait_for_rows(live, landed)
print(f"{live.name} active: {live.isActive}; read {landed} rows of set 1")

# %%
landed += land(config.test_data / "1-registered_users_2.csv")
wait_for_rows(live, landed)
live_users = spark.read.format("delta").load(str(live_zone.table_location(TABLE)))
live_users.groupBy(F.substring_index("source_file", "/", -1).alias("file")).count().orderBy("file").show(truncate=False)
assert live_users.count() == landed
print(f"set 2 arrived while the query ran: {landed} rows; batches so far:",
      [p["batchId"] for p in live.recentProgress if p["numInputRows"]])

# %% [markdown]
# ## Malformed records are kept, not dropped
#
# Now a file with one line that does not fit the schema (`forty-three` is no BIGINT) reaches the
# running query. The query does not stop: the good line goes to the table, the bad one, raw and with
# its file, to the quarantine table.

# %%
bad_file = scratch_root / "9-registered_users_bad.csv"
bad_file.write_text("user_id,device_id,mac_address,registration_timestamp\n"
                    "42,1042,aa:bb:cc:dd:ee:ff,1678450000\n"
                    "forty-three,1043,aa:bb:cc:dd:ee:00,1678450001\n")
landed += land(bad_file)
wait_for_rows(live, landed)
quarantined = spark.read.format("delta").load(str(live_zone.table_location("quarantine_bz")))
quarantined.select("source", "raw_record", F.substring_index("source_file", "/", -1).alias("file")).show(truncate=False)
assert quarantined.count() == sum(live.writer.malformed.values()) == 1
assert spark.read.format("delta").load(str(live_zone.table_location(TABLE))).count() == landed - 1
print("still running:", live.isActive, "| malformed per batch:", live.writer.malformed)

# %% [markdown]
# A query started with `processingTime` runs until it is stopped. Stop it between micro-batches
# (`stop()` during a batch would interrupt the Python function: safe, the batch is not committed and
# runs again on restart, but noisy); the checkpoint stays valid for the next start.

# %%
deadline = time.monotonic() + 60
while live.status["isTriggerActive"] and time.monotonic() < deadline:
    time.sleep(0.1)
live.stop()
assert not live.isActive and not [q for q in spark.streams.active if q.name == "registered_users_bz_live"]
print(f"{live.name} stopped after batch {live.lastProgress['batchId']}")

# %% [markdown]
# Bronze in the pipeline keeps malformed records the same way, in `quarantine_bz`:

# %%
print("quarantined in this environment's pipeline:", bronze.rejected_counts() or "none")

# %% [markdown]
# ## Schema enforcement and schema evolution
#
# A Delta table **enforces** its schema: a write with a column the table does not have fails,
# instead of silently changing the table. When a source really adds a column, you **evolve** the
# schema on purpose with `mergeSchema` (or `ALTER TABLE ... ADD COLUMN`); older rows read the new
# column as `NULL`. On a scratch table:

# %%
from pyspark.errors import AnalysisException

path = str(scratch_root / "schema_demo")
spark.createDataFrame([(1, "a")], "user_id INT, city STRING").write.format("delta").save(path)
wider = spark.createDataFrame([(2, "b", "x@example.com")], "user_id INT, city STRING, email STRING")
try:
    wider.write.format("delta").mode("append").save(path)
except AnalysisException as error:
    print("enforcement:", error.getCondition())
else:
    raise AssertionError("Delta accepted a column the table does not have")
wider.write.format("delta").mode("append").option("mergeSchema", "true").save(path)
spark.read.format("delta").load(path).orderBy("user_id").show()

# %% [markdown]
# ## 6. The library's bronze: what you built, for three sources
#
# The pipeline's code is your stream, written once for every source. `_read` is your
# `read_registrations` for any source (the format and schema come from `SOURCES`); the writer
# `_BatchWriter` is your `write_batch`, with two differences: `load_time` is added in the writer,
# and the malformed rows are counted by an `Observation` during the table's write instead of caching
# the batch (a third faster).

# %%
show(Bronze._read, _BatchWriter)

# %% [markdown]
# `start_foreach_batch` is your `writeStream` (plus a FAIR scheduler pool, so the three bronze queries
# share the cores), and each `consume_*` method starts one source. The two other sources differ from
# yours only in their schema and, for the Kafka feed, in a transformation the writer applies to the
# good rows: `_with_dates` adds the event's `date` and `week_part` with a broadcast join to
# `date_lookup`.

# %%
show(start_foreach_batch, Bronze._start, Bronze.consume_gym_logins, Bronze.consume_multiplex, Bronze._with_dates)
for source in SOURCES.values():
    print(f"{source.table:22} {source.fmt:5} {source.schema}")

# %% [markdown]
# ## The multiplexed Kafka table
#
# One bronze table holds three topics. It is partitioned by `topic` and `week_part`, so a silver
# query that reads one topic reads only that topic's folders:

# %%
table = config.table_location("kafka_multiplex_bz")
print(sorted(f"{p.name}/{q.name}" for p in table.iterdir() if p.is_dir() and "=" in p.name
             for q in p.iterdir() if q.is_dir()))
spark.table(config.qualified("kafka_multiplex_bz")).groupBy("topic").count().orderBy("topic").show()
assert spark.table(config.qualified("kafka_multiplex_bz")).where(
    "date IS NULL AND timestamp BETWEEN 1672531200 AND 1704067199").count() == 0    # every 2023 event has its date

# %% [markdown]
# **Next:** `05-silver` cleans, de-duplicates and merges these records into the silver tables.
