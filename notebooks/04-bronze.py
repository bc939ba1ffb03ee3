# ---
# jupyter:
#   execution:
#     timeout: 300
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
from sbit_lib.course.bronze import SOURCES, Bronze
from sbit_lib.course.catalog import get_spark
from sbit_lib.course.producer import Producer
from sbit_lib.teaching.explore import catch_up, checkpoint_entry, checkpoint_files, lesson_config, progress, relative

config = lesson_config(environment, home, test_data, as_of=as_of)
spark = get_spark(config)
# 02-setup and 03-history-loader if they have not run, then land the sets (10-producer does this job).
catch_up(config, spark, before="bronze", sets=range(1, sets + 1))
n = Producer(config).latest_set()
for folder in sorted(p for p in config.landing_zone.iterdir() if p.is_dir()):
    print(f"{relative(config, folder):40} {sorted(f.name for f in folder.iterdir())}")

# %% [markdown]
# ## Explicit schemas
#
# Each source's schema is written down (`sbit_lib/course/tables.py`): the table's columns minus the ones
# bronze adds. An explicit schema means no inference pass over the files, the same types whatever
# the first file happens to contain, and a record that does not fit is *detected*, not coerced.

# %%
for source in SOURCES.values():
    print(f"{source.table:22} {source.fmt:5} {source.schema}")

# %% [markdown]
# ## Run the three bronze streams once
#
# `Bronze.consume(once=True)` starts three queries with `trigger(availableNow=True)`: each reads
# every file not yet in its checkpoint, in micro-batches of at most `maxFilesPerTrigger` files
# (one, like the course, so a file is the unit of progress and of replay), then stops. With
# `once=False` the same queries use `trigger(processingTime=...)` and keep watching the folder:
# the code is the same, only the trigger changes (`sbit_lib/course/streaming.py`).
#
# Each query has a **`queryName`**: it names the query in the Spark UI, in `spark.streams.active`,
# in the stream job's status and log, and here.

# %%
import pandas as pd

queries = Bronze(config, spark).consume(once=True)
pd.DataFrame([progress(q) for q in queries])

# %%
bronze = Bronze(config, spark)
print(bronze.counts())
bronze.validate(n)           # every landed record is in bronze or in quarantine_bz

# %% [markdown]
# ## What is inside a checkpoint
#
# A checkpoint is a folder per query. Before a micro-batch runs, the query writes **which input**
# it will read to `offsets/<batch>`; after the batch is written, it writes `commits/<batch>`. The
# file source also logs the files it has taken in `sources/0/`. On restart the query reads the
# last offsets and commit: a batch with offsets but no commit is run again (*replayed*) with
# exactly the same input, and everything committed is never read again.

# %%
query = "registered_users_bz"
print("\n".join(checkpoint_files(config, query)))
last = max(int(p.name) for p in (config.checkpoint_dir(query) / "offsets").iterdir() if p.name.isdigit())
offsets = checkpoint_entry(config, query, "offsets", last)
print(f"offsets/{last}: source offset {offsets[-1]}")
files = checkpoint_entry(config, query, "sources/0", last)
print(f"sources/0/{last}: read", [entry["path"].rsplit("/", 1)[-1] for entry in files])

# %% [markdown]
# Because of the checkpoint, running the streams again reads nothing new and writes nothing:

# %%
before = bronze.counts()
for q in Bronze(config, spark).consume(once=True):
    assert (q.lastProgress or {}).get("numInputRows", 0) == 0, q.name
assert bronze.counts() == before
print("second run: no new rows", before)

# %% [markdown]
# ## Replays are harmless: idempotent appends
#
# Bronze appends, and an append replayed after a crash would write the batch twice. The writer
# (`_BatchWriter` in `sbit_lib/course/bronze.py`) tags each append with Delta's **`txnAppId`** (the query's
# id, kept in its checkpoint) and **`txnVersion`** (the batch id). Delta records the pair in the
# table's log and skips a write whose version it has already seen for that application id.
# `tests/test_bronze.py` replays a batch and checks nothing is appended twice.
#
# ## Malformed records are kept, not dropped
#
# The file source reads in `PERMISSIVE` mode with a `_corrupt_record` column: a line that does not
# fit the schema becomes a row with only that column filled. The writer sends those rows to
# `quarantine_bz` (with their file) and the good rows to the table. On a scratch file:

# %%
scratch = config.env_root / "scratch" / "malformed_demo"
scratch.mkdir(parents=True, exist_ok=True)
(scratch / "registrations.csv").write_text(
    "user_id,device_id,mac_address,registration_timestamp\n"
    "42,1042,aa:bb:cc:dd:ee:ff,1678450000\n"
    "forty-three,1043,aa:bb:cc:dd:ee:00,1678450001\n")
schema = SOURCES["registered_users_bz"].schema + ", _corrupt_record STRING"
parsed = (spark.read.schema(schema).option("header", "true").option("mode", "PERMISSIVE")
          .option("columnNameOfCorruptRecord", "_corrupt_record").csv(str(scratch))
          .cache())   # Spark refuses a query on raw files that reads only the corrupt-record column
parsed.show(truncate=False)
assert parsed.where("_corrupt_record IS NOT NULL").count() == 1
print("quarantined so far in this environment:", bronze.rejected_counts() or "none")

# %% [markdown]
# ## Schema enforcement and schema evolution
#
# A Delta table **enforces** its schema: a write with a column the table does not have fails,
# instead of silently changing the table. When a source really adds a column, you **evolve** the
# schema on purpose with `mergeSchema` (or `ALTER TABLE ... ADD COLUMN`); older rows read the new
# column as `NULL`. On a scratch table:

# %%
import shutil

from pyspark.errors import AnalysisException

path = str(config.env_root / "scratch" / "schema_demo")
shutil.rmtree(path, ignore_errors=True)
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
# ## The multiplexed Kafka table
#
# One bronze table holds three topics. It is partitioned by `topic` and `week_part`, so a silver
# query that reads one topic reads only that topic's folders:

# %%
table = config.table_location("kafka_multiplex_bz")
print(sorted(f"{p.name}/{q.name}" for p in table.iterdir() if p.is_dir() and "=" in p.name
             for q in p.iterdir() if q.is_dir()))
spark.table(config.qualified("kafka_multiplex_bz")).groupBy("topic").count().orderBy("topic").show()

# %% [markdown]
# **Next:** `05-silver` cleans, de-duplicates and merges these records into the silver tables.
