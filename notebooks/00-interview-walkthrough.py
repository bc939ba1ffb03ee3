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
# # 00 · Interview walkthrough
#
# The course's thirty interview questions (listed in `docs/interview-questions.md`), in the
# course's order, answered from **this project's code**; then five questions only this project
# can answer, and a five-minute pitch.
#
# Every answer opens with what you would **say** aloud — one or two sentences — and then the
# detail, naming the file, class or function to read. The code cell after it is the **proof**:
# the 5-16 lines an interviewer would ask you to write on the spot (a stream run twice, a MERGE on
# a temporary view, a broadcast join's plan, a schema change refused and then merged), run on
# real local Spark, real Delta tables and real streaming queries, ending in `assert`s.
#
# **Runs** in its own environment, `interview`: it cleans it, sets it up like `07-run` does, and
# runs each experiment on tiny data in a scratch folder of its own
# (`<SBIT_HOME>/interview/scratch/<question>`, emptied first, so the notebook can run again), or,
# where the question is about the pipeline itself, the real `Bronze`, `Silver` and clean-up on the
# course's first two registration files. About 4 minutes on a 2-core laptop; it needs no other
# notebook first. Shared plumbing (a fresh scratch folder, three one-line event files, the short
# name of an expected error) lives in `sbit_lib/teaching/lessons.py`.

# %% tags=["parameters"]
environment = "interview"   # its own environment: cleaned at the start
home = ""                   # empty: SBIT_HOME or ./lakehouse
test_data = ""              # empty: SBIT_TEST_DATA or ./test_data (the course's files)

# %%
import datetime as dt
import io
import json
import os
import re
import shutil
import subprocess
import sys
import time
from contextlib import redirect_stdout
from pathlib import Path
from unittest.mock import patch

import numpy as np
import pandas as pd
from pyspark.sql import functions as F

from sbit_lib.course.bronze import SOURCES, Bronze
from sbit_lib.course.catalog import create_database, get_spark, sql_str
from sbit_lib.course.config import Config
from sbit_lib.course.setup_helper import SetupHelper
from sbit_lib.course.silver import Silver
from sbit_lib.course.streaming import check_processing_time, stop_queries, trigger
from sbit_lib.course.tables import ALL_TABLES
from sbit_lib.spark.runlock import JobLock
from sbit_lib.spark.storage import atomic_copy, remove_tree
from sbit_lib.teaching.explore import relative, versions
from sbit_lib.teaching.lessons import EVENTS, failure, land, scratch, start, write_events
from sbit_lib.teaching.show import show
from sbit_lib.testing.expectations import Expectations
from sbit_lib.testing.validation import assert_count, assert_rows, validate_tables

if environment in ("dev", "qa", "batch_test", "stream_test") or environment.startswith("nb_"):
    raise ValueError(f"this notebook cleans its environment: give it its own, not {environment!r}")
config = Config.resolve(environment=environment, home=home, test_data=test_data)
spark = get_spark(config)
print(start(config, spark))

# %% [markdown]
# # Part 1 · The course's questions, by step

# %% [markdown]
# # Config step

# %% [markdown]
# ## Q1. What is describing an external location for, in the course's Config, and what replaces it locally? (course Q1)

# %% [markdown]
# **Say:** "An external location is Unity Catalog's name for a cloud storage path; the course's
# `Config` looks up `data_zone` and `checkpoint` with `DESCRIBE EXTERNAL LOCATION` so no notebook
# hard-codes a bucket. Here `Config` resolves the same two zones from parameters, `SBIT_*`
# variables or defaults, one folder per environment."
#
# The course runs `spark.sql("describe external location `data_zone`").select("url")` and builds
# every path from the URL it gets back. `sbit_lib/course/config.py` resolves every location in
# this order: an explicit argument (a notebook parameter, `sbit --env`), then an `SBIT_*`
# environment variable, then the default (`./lakehouse`). An environment owns
# `<SBIT_HOME>/<environment>/` — landing zone `data/raw`, tables `data/delta`, one checkpoint
# per query under `checkpoints/` — and the database `<environment>_sbit_db`, so `dev` and `qa`
# never share a table, a file or a checkpoint. `SBIT_DATA_ZONE` / `SBIT_CHECKPOINT_ZONE` may
# point the zones elsewhere, even at a URL (`s3a://bucket/sbit`), which is what an external
# location is. `Config` is frozen and validated: a bad value fails with a message naming the
# setting.

# %%
qa = Config.resolve(environment="qa", home=config.home)
for c in (config, qa):
    print(f"{c.db_name:18} {relative(c, c.landing_zone):22} {relative(c, c.tables_zone):22} "
          f"{relative(c, c.checkpoint_zone)}")
cloud = Config.resolve(environment="qa", home=config.home, data_root="s3a://bucket/sbit",
                       checkpoint_root="s3a://bucket/checkpoints")
print("zones as URLs:", cloud.landing_zone, "|", cloud.checkpoint_dir("users"))
with patch.dict(os.environ, {"SBIT_ENV": "ci"}):        # explicit wins over SBIT_ENV, then the default
    order = [Config.resolve(environment="qa").environment, Config.resolve().environment]
    del os.environ["SBIT_ENV"]
    order.append(Config.resolve().environment)
print("explicit, SBIT_ENV, default ->", order)
print(failure(Config.resolve, environment="Dev-1"))
assert order == ["qa", "ci", "dev"] and str(cloud.landing_zone) == "s3a://bucket/sbit/qa/raw"

# %% [markdown]
# ## Q2. Why is checkpointing important in a data pipeline? (course Q2)

# %% [markdown]
# **Say:** "The checkpoint is a stream's memory: it records which input each micro-batch covered
# and whether it was committed, so a stopped or crashed query resumes exactly where it left off —
# nothing lost, nothing read twice — and a batch run becomes incremental."
#
# Every query here gets its own (`config.checkpoint_dir(name)`, passed by `start_foreach_batch` in
# `sbit_lib/course/streaming.py`). That is what lets one code path serve both modes: `sbit run`
# (availableNow) reads only what landed since the last run, and the stream job resumes after
# `sbit stop`/`sbit start` or a crash (`tests/test_restart.py` kills it with SIGKILL mid-batch and
# checks every table). A checkpoint belongs to one query and its sink: it is deleted together with
# its table (`SetupHelper.cleanup`), never shared, never copied to another query.

# %% [markdown]
# Three one-line files → a Delta table; a fourth file lands; the same query starts again from its checkpoint:

# %%
folder = scratch(config, "q2")
write_events(folder / "in", 1, 2, 3)

def run_once() -> int:
    query = (spark.readStream.schema(EVENTS).json(str(folder / "in"))
             .writeStream.format("delta").option("checkpointLocation", str(folder / "checkpoint"))
             .trigger(availableNow=True).start(str(folder / "table")))
    query.awaitTermination()
    return sum(p["numInputRows"] for p in query.recentProgress)

first = run_once()
write_events(folder / "in", 4)
second = run_once()
total = spark.read.format("delta").load(str(folder / "table")).count()
print(f"run 1 read {first} rows, run 2 read {second}; the table holds {total}")
assert (first, second, total) == (3, 1, 4)

# %% [markdown]
# ## Q3. How does `maxFilesPerTrigger` affect a streaming job? (course Q3)

# %% [markdown]
# **Say:** "It caps how many new files one micro-batch reads, so it sets the size of a batch: small
# caps give small, steady batches and a small unit of replay, large ones fewer batches with more
# per-batch overhead saved."
#
# The file and Delta sources both accept it. `Bronze._read` (`sbit_lib/course/bronze.py`) uses
# `config.bronze_max_files_per_trigger` = 1, like the course: one landed file per micro-batch, so a
# file is the unit of replay and memory stays bounded (the producer lands the big heart-rate file
# last, so the small files reach silver first). Silver reads its Delta sources with
# `config.max_files_per_trigger` = 1000 (`Silver._stream`). With `availableNow` the cap still
# holds: the run takes as many micro-batches as it needs, then stops (the old `trigger(once=True)`
# ignored it and read everything in one batch).

# %%
folder = write_events(scratch(config, "q3") / "in", 1, 2, 3)
sizes = {}
for cap in (1, 1000):
    seen = []
    (spark.readStream.schema(EVENTS).option("maxFilesPerTrigger", cap).json(str(folder))
     .writeStream.foreachBatch(lambda batch, batch_id: seen.append(batch.count()))
     .option("checkpointLocation", str(folder.parent / f"checkpoint_{cap}"))
     .trigger(availableNow=True).start().awaitTermination())
    sizes[cap] = seen
print("rows per micro-batch:", sizes)
assert sizes == {1: [1, 1, 1], 1000: [3]}
assert (config.bronze_max_files_per_trigger, config.max_files_per_trigger) == (1, 1000)

# %% [markdown]
# ## Q4. What happens if a streaming query has no checkpoint location? (course Q4)

# %% [markdown]
# **Say:** "Spark refuses to start a file or Delta sink without one; where it does start —
# `foreachBatch`, console, memory — it uses a throw-away temporary checkpoint, so every start reads
# all the input again and appends it twice."
#
# Without a checkpoint a query has no offsets, no commit log and no state to come back to: a
# restart is a new query with a new id. For a Delta sink Spark says so at `start()`; for
# `foreachBatch` it silently re-reads every file, and an append duplicates the data (an
# aggregation would lose its state as well). Setting `spark.sql.streaming.checkpointLocation`
# would give every query a folder under one root; this project names each query's checkpoint
# explicitly instead (`start_foreach_batch` always passes `checkpointLocation`).

# %%
folder = scratch(config, "q4")
stream = spark.readStream.schema(EVENTS).json(str(write_events(folder / "in", 1, 2, 3)))
print("Delta sink:", failure(lambda: stream.writeStream.format("delta").start(str(folder / "refused"))))

def append(batch, batch_id):
    batch.write.format("delta").mode("append").save(str(folder / "table"))

rows = []
for run in (1, 2):              # no checkpointLocation: each start is a new query
    stream.writeStream.foreachBatch(append).trigger(availableNow=True).start().awaitTermination()
    rows.append(spark.read.format("delta").load(str(folder / "table")).count())
print("rows after run 1, run 2 of foreachBatch without a checkpoint:", rows)
assert rows == [3, 6]

# %% [markdown]
# # Setup step

# %% [markdown]
# ## Q5. Why `CREATE DATABASE IF NOT EXISTS`? (course Q5)

# %% [markdown]
# **Say:** "Because setup must be safe to run again: a plain `CREATE DATABASE` fails the second time
# with `SCHEMA_ALREADY_EXISTS`, while `IF NOT EXISTS` makes it a no-op, so every run can start by
# making sure its database is there."
#
# `create_database` (`sbit_lib/course/catalog.py`) runs it from `SetupHelper.setup`, from
# `register_tables` (every process, on start: the catalog lives in memory, Q34) and before
# `cleanup`'s `DROP DATABASE ... CASCADE`. `ensure_setup` runs at the start of every pipeline run,
# so idempotence is not optional. The database gets no `LOCATION` of its own: every table names its
# folder, so dropping the database removes catalog entries only and never deletes a folder by
# itself. (`CREATE OR REPLACE` does not exist for databases; replacing one would mean
# `DROP ... CASCADE`, i.e. losing every table's entry.)

# %%
db = f"{config.environment}_scratch_db"
spark.sql(f"DROP DATABASE IF EXISTS {db} CASCADE")
spark.sql(f"CREATE DATABASE {db}")
again = failure(spark.sql, f"CREATE DATABASE {db}")          # the second setup, without IF NOT EXISTS
spark.sql(f"CREATE DATABASE IF NOT EXISTS {db}")              # with it: nothing happens
spark.sql(f"DROP DATABASE {db}")
lookup = spark.table(config.qualified("date_lookup")).count()
create_database(spark, config)                                # the project's, on the live database
print("CREATE DATABASE twice:", again)
print("date_lookup rows before and after create_database:", lookup,
      spark.table(config.qualified("date_lookup")).count())
assert again.endswith("SCHEMA_ALREADY_EXISTS") and spark.table(config.qualified("date_lookup")).count() == lookup

# %% [markdown]
# ## Q6. `CREATE OR REPLACE TABLE` vs `CREATE TABLE IF NOT EXISTS`: what differs, when to use which? (course Q6)

# %% [markdown]
# **Say:** "`IF NOT EXISTS` leaves an existing table alone; `OR REPLACE` commits a new, empty
# version of it — the rows survive only in its history. Use `IF NOT EXISTS` for tables a setup may
# meet again, `OR REPLACE` for things that hold no data, like views, or for a deliberate rebuild."
#
# `SetupHelper._create_table` (`sbit_lib/course/setup_helper.py`) uses `IF NOT EXISTS`: a second
# setup must neither wipe data nor add a Delta version, and a missing table property is added
# with `ALTER TABLE ... SET TBLPROPERTIES` instead of re-creating the table. The course mixes the
# two: `gym_logins_bz`, `users` and `gym_logs` are `CREATE OR REPLACE`, so a second setup would
# empty them while their checkpoints survive, and the streams would never read those files again
# — only its `07-run`'s "database missing?" guard prevents it. `create_view` uses
# `CREATE OR REPLACE VIEW`: a view holds no data.

# %%
name, location = config.qualified("scratch_replace"), sql_str(scratch(config, "q6"))
spark.sql(f"CREATE TABLE {name} (id INT) USING DELTA LOCATION {location}")
spark.sql(f"INSERT INTO {name} VALUES (1), (2)")
rows = {}
for create in ("CREATE TABLE IF NOT EXISTS", "CREATE OR REPLACE TABLE"):
    spark.sql(f"{create} {name} (id INT) USING DELTA LOCATION {location}")
    rows[create] = spark.table(name).count()
operations = [r.operation for r in spark.sql(f"DESCRIBE HISTORY {name}").orderBy("version").collect()]
spark.sql(f"DROP TABLE {name}")
before = versions(config)
with redirect_stdout(io.StringIO()):                  # its messages name absolute folders
    SetupHelper(config, spark).setup()                # the project's setup, a second time
print("rows of a 2-row table after", rows, "| its history:", operations)
print("Delta versions the second setup added:", sum(versions(config).values()) - sum(before.values()))
assert rows == {"CREATE TABLE IF NOT EXISTS": 2, "CREATE OR REPLACE TABLE": 0} and versions(config) == before

# %% [markdown]
# ## Q7. Why is `gym_summary` a view? (course Q7)

# %% [markdown]
# **Say:** "It is a join of three tables that must always agree with them: as a view it stores
# nothing and is computed when read, so it is always current and needs no stream or MERGE of its
# own; the price is that every read runs the joins again."
#
# `gym_summary` (`GYM_SUMMARY_SQL` in `sbit_lib/course/tables.py`) joins `gym_logs`,
# `completed_workouts` and `users`: one row per gym visit that contains a completed workout. A view
# lives in the catalog only; a table here is `EXTERNAL`, a catalog entry pointing at a Delta folder
# under `data/delta/`. Because the catalog is in memory (Q34), `register_tables`
# (`sbit_lib/course/catalog.py`) recreates the view with `CREATE OR REPLACE VIEW` in every process
# once its three tables are registered. If reads became expensive, the next step would be a gold
# table maintained by a stream (or a materialized view on Databricks).

# %%
summary, users = (spark.catalog.getTable(config.qualified(n)) for n in ("gym_summary", "users"))
for table in (summary, users):
    print(f"{table.name:12} {table.tableType:9} Delta folder: {config.table_location(table.name).exists()}")
plan = spark.table(config.qualified("gym_summary"))._jdf.queryExecution().analyzed().toString()
read = sorted(set(re.findall(rf"Relation spark_catalog\.{config.db_name}\.(\w+)", plan)))
print("reading the view runs", plan.count("Join Inner"), "joins over", read)
assert summary.tableType == "VIEW" and not config.table_location("gym_summary").exists()
assert users.tableType == "EXTERNAL" and read == ["completed_workouts", "gym_logs", "users"]

# %% [markdown]
# ## Q8. What does `dbutils.fs.rm` do in the clean-up, and what replaces it here? (course Q8)

# %% [markdown]
# **Say:** "`dbutils.fs.rm(path, True)` deletes a folder recursively on the cloud storage; the course
# needs it because dropping an external table only removes its catalog entry and leaves its files
# and checkpoints behind. Here `remove_tree` does it: `shutil.rmtree` for a local folder, Hadoop's
# `FileSystem.delete(path, recursive=True)` — what `dbutils.fs.rm` wraps — for a zone given as a URL."
#
# `SetupHelper.cleanup` (`sbit_lib/course/setup_helper.py`, `sbit clean`) takes the environment's
# run lock (refused while a run or the stream job holds it), drops the database
# (`DROP DATABASE ... CASCADE`: catalog entries only, the tables are external), then deletes
# `<SBIT_HOME>/<environment>/` with `remove_tree` (`sbit_lib/spark/storage.py`): tables, landing
# zone and checkpoints together, so no checkpoint outlives its table. Zones configured elsewhere
# lose only what the pipeline put there (landing, tables, the query checkpoints), then their
# environment folder if it is empty. Nothing outside is touched (`tests/test_setup.py`); this
# notebook starts with it, which makes it re-runnable.

# %%
folder = scratch(config, "q8")
name = config.qualified("scratch_rm")
spark.sql(f"CREATE TABLE {name} (id INT) USING DELTA LOCATION {sql_str(folder / 'table')}")
spark.sql(f"INSERT INTO {name} VALUES (1)")
spark.sql(f"DROP TABLE {name}")                              # an external table: the entry goes ...
files_left = (folder / "table" / "_delta_log").is_dir()      # ... its files stay
# dbutils.fs.rm(url, True) on Databricks; through Spark's JVM here, as remove_tree does for a URL:
url = spark._jvm.org.apache.hadoop.fs.Path(f"file://{(folder / 'table').as_posix()}")
deleted = url.getFileSystem(spark._jsparkSession.sessionState().newHadoopConf()).delete(url, True)
(folder / "local" / "checkpoint").mkdir(parents=True)
shutil.rmtree(folder / "local")                              # a local folder: what remove_tree does for a Path
print("files left after DROP TABLE:", files_left, "| FileSystem.delete:", deleted,
      "| still there:", (folder / "table").exists(), (folder / "local").exists())
assert files_left and deleted and not (folder / "table").exists() and not (folder / "local").exists()

# %% [markdown]
# The library's function, and the project's clean-up run on a neighbour environment (a landing file and a checkpoint):

# %%
show(remove_tree)

# %%
neighbour = Config.resolve(environment=f"{config.environment}_neighbour", home=config.home,
                           test_data=config.test_data)
land(neighbour.landing_zone / "registered_users_bz", "users.csv", ["user_id", "1"])
neighbour.checkpoint_dir("registered_users_bz").mkdir(parents=True)
with redirect_stdout(io.StringIO()):                  # it prints the absolute folders it removes
    SetupHelper(neighbour, spark).cleanup()
mine = sum(spark.catalog.tableExists(config.qualified(t.name)) for t in ALL_TABLES)
print("neighbour's folder still there:", neighbour.env_root.exists(), "| this environment's tables:", mine)
assert not neighbour.env_root.exists() and mine == len(ALL_TABLES)

# %% [markdown]
# ## Q9. How do you change a table's schema in a live environment? (course Q9)

# %% [markdown]
# **Say:** "With Delta DDL, planned: `ALTER TABLE ... ADD COLUMNS` is a metadata-only commit, but a
# stream reading the table stops at the change on purpose; you stop the job, change the table and
# the code that writes it, and restart from the same checkpoint — nothing is lost."
#
# Old rows read the new column as NULL; no file is rewritten. A query *reading* the table sees the
# new schema at its next micro-batch and fails with `DELTA_SCHEMA_CHANGED_WITH_VERSION`; restarted
# from its checkpoint it goes on with the new column. So: `sbit stop`, change the schema in its one
# place (`sbit_lib/course/tables.py`) and the writer, `ALTER TABLE`, `sbit start`. Renames, drops
# and type changes are harder (column mapping with a schema tracking location, or a new table and
# new checkpoints). `SetupHelper._create_table` evolves an existing table in place
# (`ALTER TABLE ... SET TBLPROPERTIES`), never by re-creating it (Q6).

# %%
folder = scratch(config, "q9")
table, seen = str(folder / "table"), []
spark.createDataFrame([(1, "ann")], EVENTS).write.format("delta").save(table)

def reader():
    return (spark.readStream.format("delta").load(table).writeStream
            .foreachBatch(lambda batch, batch_id: seen.extend(r.asDict() for r in batch.collect()))
            .option("checkpointLocation", str(folder / "checkpoint")))

query = reader().trigger(processingTime="1 second").start()
query.processAllAvailable()
spark.sql(f"ALTER TABLE delta.`{table}` ADD COLUMNS (note STRING)")
spark.createDataFrame([(2, "bob", "new column")], f"{EVENTS}, note STRING").write.format("delta").mode("append").save(table)
stopped = failure(query.processAllAvailable)          # the running stream stops at the change
query.stop()
reader().trigger(availableNow=True).start().awaitTermination()      # restarted from its checkpoint
print(stopped, "\nread:", seen)
assert stopped.endswith("DELTA_SCHEMA_CHANGED_WITH_VERSION") and seen[-1] == {"id": 2, "name": "bob", "note": "new column"}

# %% [markdown]
# # Bronze step

# %% [markdown]
# ## Q10. What is the Bronze class for? (course Q10)

# %% [markdown]
# **Say:** "Bronze lands the raw files in append-only Delta tables, one stream per source, exactly as
# they came plus lineage — load time and source file — and keeps malformed lines in a quarantine
# table, so everything downstream can be rebuilt from it and nothing is ever silently dropped."
#
# `Bronze` (`sbit_lib/course/bronze.py`): `_read` is `spark.readStream.format("csv" | "json")` with
# an explicit schema (the course's Auto Loader, `cloudFiles`, is Databricks-only), `PERMISSIVE`
# mode with a `_corrupt_record` column, `maxFilesPerTrigger` 1, and `source_file` from
# `_metadata.file_path` (the course's `input_file_name()`). Each micro-batch goes to `_BatchWriter`
# through `foreachBatch`: it adds `load_time`, appends the good rows to the bronze table and the
# unparsable lines, raw and with their file, to `quarantine_bz` — both appends idempotent (Q33).
# One query per source (`consume_user_registration`, `consume_gym_logins`, `consume_multiplex`);
# `consume` starts all three (Q16).

# %% [markdown]
# Into the pipeline's landing zone: the course's `1-registered_users_1.csv`, then a file with one malformed line. The bronze reader and writer, written out, into a scratch table:

# %%
landing = config.landing_zone / "registered_users_bz"
atomic_copy(config.test_data / "1-registered_users_1.csv", landing / "1-registered_users_1.csv")
land(landing, "1-registered_users_malformed.csv",
     ["user_id,device_id,mac_address,registration_timestamp", "12999,not-a-number,aa:bb:cc:dd:ee:ff,1678451700"])
out = scratch(config, "q10")
raw = (spark.readStream.format("csv").option("header", "true").option("mode", "PERMISSIVE")
       .schema(f"{SOURCES['registered_users_bz'].schema}, _corrupt_record STRING")
       .option("maxFilesPerTrigger", 1).load(str(landing))
       .withColumn("source_file", F.col("_metadata.file_path")))

def write(batch, batch_id):
    batch = batch.withColumn("load_time", F.current_timestamp())
    batch.where("_corrupt_record IS NULL").drop("_corrupt_record").write.format("delta").mode("append").save(str(out / "bronze"))
    batch.where("_corrupt_record IS NOT NULL").write.format("delta").mode("append").save(str(out / "quarantine"))

(raw.writeStream.foreachBatch(write).option("checkpointLocation", str(out / "checkpoint"))
 .trigger(availableNow=True).start().awaitTermination())

# %% [markdown]
# The real `Bronze` on the same files gives the same rows:

# %%
query = Bronze(config, spark).consume_user_registration(once=True)
query.awaitTermination()
columns = ["user_id", "device_id", "mac_address", "registration_timestamp", "source_file"]
mine = spark.read.format("delta").load(str(out / "bronze")).select(columns)
real = spark.table(config.qualified("registered_users_bz")).select(columns)
quarantined = spark.table(config.qualified("quarantine_bz")).count()
print(f"registered_users_bz {real.count()} rows, quarantine_bz {quarantined}, "
      f"in {sum(1 for p in query.recentProgress if p['numInputRows'])} micro-batches")
assert mine.exceptAll(real).isEmpty() and real.exceptAll(mine).isEmpty()
assert (real.count(), quarantined) == (5, 1) == (mine.count(), spark.read.format("delta").load(str(out / "quarantine")).count())

# %% [markdown]
# ## Q11. What does `readStream` give you over `read`? (course Q11)

# %% [markdown]
# **Say:** "`read` is a one-off query over what is there now; `readStream` gives an unbounded
# DataFrame that Spark runs incrementally — each trigger processes only the new input, tracked in a
# checkpoint — with the same DataFrame API, plus streaming-only tools: triggers, watermarks, state."
#
# A streaming DataFrame cannot be collected or counted directly; it runs only as a query
# (`writeStream.start()`), and its sink decides what happens to each micro-batch. A plain
# `spark.read` job would re-read everything each time and need its own bookkeeping of what it has
# done; `readStream` with a checkpoint gives that bookkeeping for free, which is why every hop of
# this pipeline, bronze → silver → gold, is a stream, even in batch runs (Q25).

# %%
folder = write_events(scratch(config, "q11") / "in", 1, 2)
stream = spark.readStream.schema(EVENTS).json(str(folder))
print("isStreaming:", spark.read.schema(EVENTS).json(str(folder)).isStreaming, stream.isStreaming)
print("count() on a stream:", failure(stream.count).split(" with writeStream")[0])
batches = []

def run_once():
    (stream.writeStream.foreachBatch(lambda batch, batch_id: batches.append(sorted(r.id for r in batch.collect())))
     .option("checkpointLocation", str(folder.parent / "checkpoint")).trigger(availableNow=True)
     .start().awaitTermination())

run_once()
write_events(folder, 3)                               # a new file lands between the runs
run_once()
read_all = spark.read.schema(EVENTS).json(str(folder)).count()
print("readStream, run twice, read per run:", batches, "| read, once more:", read_all, "rows")
assert batches == [[1, 2], [3]] and read_all == 3

# %% [markdown]
# ## Q12. What does checkpointing do in stream processing? (course Q12)

# %% [markdown]
# **Say:** "It is the query's write-ahead log: before a micro-batch runs, Spark writes the offsets it
# will read; after the sink has committed, it writes a commit entry. On restart it replays a batch
# that was planned but not committed and resumes after the last committed one, with its state."
#
# A checkpoint folder holds `metadata` (the query's id, stable across restarts), `offsets/<batch>`
# (what each micro-batch covers: for the file source a log offset, for Delta a table version),
# `commits/<batch>`, the source's own log (`sources/0/`: for the file source, every file read and by
# which batch) and, for stateful queries, `state/` (watermarks, aggregation and join state: the
# silver stream-stream join and course-mode gold). Bronze uses the query id as its `txnAppId`
# (Q33). Exactly-once needs the other two pieces too: a replayable source and an idempotent sink
# (Q28).

# %%
root = config.checkpoint_dir("registered_users_bz")
files = sorted(p.relative_to(root).as_posix() for p in root.rglob("*")
               if p.is_file() and not p.name.endswith(".crc") and not p.name.startswith("."))
offsets = (root / "offsets" / "0").read_text().splitlines()
source_log = sorted((root / "sources" / "0").glob("[0-9]*"), key=lambda p: int(p.name))
read = [json.loads(line) for entry in source_log for line in entry.read_text().splitlines()[1:]]
print("files:", files)
print("offsets/0, the planned batch:", offsets[0], "... source offset", offsets[-1])
print("sources/0/<batch>, files read:", [(Path(r["path"]).name, "batch", r["batchId"]) for r in read])
print("query id:", json.loads((root / "metadata").read_text())["id"])
assert {"metadata", "offsets/0", "commits/0", "offsets/1", "commits/1"} <= set(files)
assert [r["batchId"] for r in read] == [0, 1]

# %% [markdown]
# ## Q13. How do several streams that write Delta tables stay consistent? (course Q13)

# %% [markdown]
# **Say:** "Each table has one writer and each query one checkpoint, so a downstream stream reads
# every committed Delta version exactly once and whole; writes are idempotent, so a replay changes
# nothing; and in a batch run the layers run in order, each awaited before the next reads it."
#
# `sbit_lib/course/run.py`: bronze, silver's three waves (`Silver.WAVES`), gold — each wave
# awaited, because each reads what the previous one wrote. A Delta commit is atomic, so a reader
# never sees half a micro-batch. Every write is a MERGE or a txn append (Q33). One run per
# environment (`JobLock`, Q29): two runs would share the checkpoints. In stream mode the layers are
# eventually consistent: a downstream query picks up an upstream commit at its next trigger.

# %% [markdown]
# Bronze (registrations) feeds the real silver `users` query; then set 2 lands; then both run again with nothing new:

# %%
def bronze_then_silver():
    Bronze(config, spark).consume_user_registration(once=True).awaitTermination()
    Silver(config, spark).upsert_users(once=True).awaitTermination()      # starts once bronze has committed
    return (spark.table(config.qualified("registered_users_bz")).count(),
            spark.table(config.qualified("users")).count())

steps = {"set 1": bronze_then_silver()}
atomic_copy(config.test_data / "1-registered_users_2.csv", landing / "1-registered_users_2.csv")
steps["set 2"] = bronze_then_silver()
steps["again, nothing new"] = bronze_then_silver()
for step, (bronze_rows, users_rows) in steps.items():
    print(f"{step:20} registered_users_bz {bronze_rows:3}   users {users_rows:3}")
assert list(steps.values()) == [(5, 5), (10, 10), (10, 10)]

# %% [markdown]
# ## Q14. What is `queryName` for? (course Q14)

# %% [markdown]
# **Say:** "It names a running query so people and code can find it — `spark.streams.active`, the
# Spark UI, progress logs and metrics — and Spark refuses a second active query with the same name
# in one session, a cheap guard against starting a layer twice."
#
# The names here are `<table>_ingestion_stream` and `<table>_upsert_stream`, set in
# `start_foreach_batch`; the stream job's `status.json` (printed by `sbit status`) lists each query
# by name with its last micro-batch. The name is not the query's identity, though: the checkpoint
# is (its query id survives restarts, Q12).

# %%
folder = write_events(scratch(config, "q14") / "in", 1)

def start_named(name, checkpoint):
    return (spark.readStream.schema(EVENTS).json(str(folder)).writeStream.queryName(name)
            .foreachBatch(lambda batch, batch_id: None)
            .option("checkpointLocation", str(folder.parent / checkpoint)).start())

first = start_named("q14_named_query", "a")
try:
    first.processAllAvailable()
    active, progress_name = [q.name for q in spark.streams.active], first.lastProgress["name"]
    refused = failure(start_named, "q14_named_query", "b")       # another checkpoint, the same name
finally:
    first.stop()
print("active:", active, "| lastProgress name:", progress_name, "\nsame name again:", refused)
assert active == ["q14_named_query"] and "already active" in refused

# %% [markdown]
# ## Q15. What does the trigger do: `availableNow` vs `processingTime`? (course Q15)

# %% [markdown]
# **Say:** "The trigger decides when micro-batches run. `availableNow` processes everything that is
# there when it starts, in as many batches as the caps allow, then stops — a batch job with
# streaming's bookkeeping; `processingTime` runs a micro-batch every interval until stopped — a
# continuous job."
#
# `trigger(once, processing_time)` in `sbit_lib/course/streaming.py` picks one: `once=True` →
# `availableNow` for batch runs (`sbit run`, `07-run` with `run_type="once"`, the batch test);
# `once=False` → `processingTime=<interval>` for the stream job (`sbit start`, the stream test).
# `check_processing_time` refuses a malformed interval before Spark sees it. The old
# `trigger(once=True)` is deprecated (it ignored `maxFilesPerTrigger`); continuous processing
# supports neither `foreachBatch` nor the Delta sink.

# %%
stream = spark.readStream.schema(EVENTS).json(str(write_events(scratch(config, "q15") / "in", 1)))

def start_with(checkpoint, **how):
    return (stream.writeStream.foreachBatch(lambda batch, batch_id: None).trigger(**how)
            .option("checkpointLocation", str(config.env_root / "scratch" / "q15" / checkpoint)).start())

once = start_with("once", availableNow=True)
once.awaitTermination()                               # returns: it stopped by itself
running = start_with("running", processingTime="1 second")
running.processAllAvailable()                         # everything read, and it keeps running
still_active = running.isActive
running.stop()
print("availableNow active after reading:", once.isActive, "| processingTime:", still_active)
print(trigger(True, "5 seconds"), trigger(False, "5 seconds"), "|", failure(check_processing_time, "soon"))
assert not once.isActive and still_active

# %% [markdown]
# ## Q16. What does `consume` do, batch vs continuous? (course Q16)

# %% [markdown]
# **Say:** "`consume` starts the three bronze streams. In batch mode it waits until each has read
# every landed file and returns stopped queries; in continuous mode it returns at once with running
# queries that pick up each new file within one trigger, until someone stops them."
#
# `Bronze.consume(once, processing_time)` (`sbit_lib/course/bronze.py`) calls
# `consume_user_registration`, `consume_gym_logins` and `consume_multiplex`; with `once=True` it
# awaits all three (`awaitTermination`), otherwise it hands the queries back. The stream job
# (`sbit_lib/ops/job.py`) keeps them running and stops them between micro-batches with
# `stop_queries` on `sbit stop`. `Silver.upsert` and `Gold.upsert` follow the same contract.

# %%
bronze, logins = Bronze(config, spark), config.qualified("gym_logins_bz")
queries = bronze.consume(once=False, processing_time="1 second")       # returns at once, queries running
try:
    atomic_copy(config.test_data / "5-gym_logins_1.csv", config.landing_zone / "gym_logins_bz" / "5-gym_logins_1.csv")
    deadline = time.monotonic() + 180
    while spark.table(logins).count() == 0 and time.monotonic() < deadline:
        time.sleep(0.5)                                # the running query picks the new file up
    running = [q.isActive for q in queries]
finally:
    stop_queries(queries)
batch = bronze.consume(once=True)                      # returns when every landed file is read
print("continuous: active while waiting", running, "| batch: active after return", [q.isActive for q in batch])
assert all(running) and not any(q.isActive for q in batch)
assert spark.table(logins).count() == Expectations.load(config.test_data).landing(1)["gym_logins_bz"]

# %% [markdown]
# ## Q17. What does `assert_count` check, and how is it used? (course Q17)

# %% [markdown]
# **Say:** "It counts a table, optionally filtered, prints expected against found, and raises a
# clear error naming the table and filter when they differ; each layer's `validate` calls it after
# a run, and here it is written once instead of once per class."
#
# `assert_count(spark, table, expected, where=None)` in `sbit_lib/testing/validation.py` raises
# `ValidationError` (an `AssertionError`). The course repeats the same method in `HistoryLoader`,
# `Bronze`, `Gold`, ...; here it is one function used by `Bronze.validate` (per source and per Kafka
# topic, and no NULL dates), `HistoryLoader.validate` and `validate_tables`, next to `assert_rows`,
# which compares whole tables (Q26).

# %%
assert_count(spark, config.qualified("registered_users_bz"), 10)
assert_count(spark, config.qualified("kafka_multiplex_bz"), 0, where="topic = 'bpm'")
wrong = failure(assert_count, spark, config.qualified("registered_users_bz"), 11)
print(wrong)
assert wrong.startswith("ValidationError") and "expected 11 rows, found 10" in wrong

# %% [markdown]
# ## Q18. What does Delta Lake add for stream processing? (course Q18)

# %% [markdown]
# **Say:** "It makes a table a reliable streaming source and sink: commits are atomic, so a reader
# sees whole micro-batches; every commit is a version a downstream stream can read incrementally;
# and MERGE, idempotent appends and the Change Data Feed let a stream update tables exactly once."
#
# Plain Parquet folders have none of that: a reader can see half-written files, and nothing says
# which files form a version. Here: bronze appends with `txnAppId`/`txnVersion` (Q33); silver and
# gold `MERGE` inside `foreachBatch`; `user_profile` → `user_bins` → gold follow updates through
# the Change Data Feed (`readChangeFeed`); every silver query reads its bronze table as a stream of
# versions (`readStream.table(...)`, `maxFilesPerTrigger` 1000); `DESCRIBE HISTORY` and time travel
# show and reproduce what each micro-batch did; schema enforcement stops a bad write (Q22).

# %%
table = config.qualified("registered_users_bz")
history = (spark.sql(f"DESCRIBE HISTORY {table}").orderBy("version")
           .selectExpr("version", "operation", "operationMetrics['numOutputRows'] AS rows").collect())
for h in history:
    print(f"version {h.version}  {h.operation:13} rows written: {h.rows or 0}")
as_of = {v: spark.sql(f"SELECT count(*) AS n FROM {table} VERSION AS OF {v}").first().n
         for v in (0, 1, history[-1].version)}
print("rows as of version (time travel):", as_of)
assert list(as_of.values()) == [0, 5, 10]

# %% [markdown]
# ## Q19. How does the join with `date_lookup` work in the Kafka multiplex stream? (course Q19)

# %% [markdown]
# **Say:** "It is a stream-static lookup join: each micro-batch of Kafka envelopes gets its date from
# the event timestamp and is left-joined with the small `date_lookup` table, broadcast to every task
# so the stream side is never shuffled, to add `week_part`."
#
# `Bronze._with_dates` (`sbit_lib/course/bronze.py`) wraps `date_lookup` (365 rows, loaded by
# `HistoryLoader` with explicit casts) in `F.broadcast`; the static side is read at every
# micro-batch, so a reloaded calendar is seen by the next one. The Kafka `timestamp` is epoch
# *seconds*: the course divides it by 1000, lands in January 1970 and finds no calendar row, so
# every `week_part` is NULL. Here `date = to_date(timestamp_seconds(timestamp))`, only for values
# inside the calendar's range (an absurd value gives NULL, not an ANSI overflow that would stop the
# stream). `kafka_multiplex_bz` is partitioned by `topic, week_part` (Q30).

# %%
envelopes = spark.read.schema(SOURCES["kafka_multiplex_bz"].schema).json(str(config.test_data / "4-workout_1.json"))
lookup = spark.table(config.qualified("date_lookup")).select("date", "week_part")
ours = envelopes.withColumn("date", F.to_date(F.timestamp_seconds("timestamp"))).join(F.broadcast(lookup), "date", "left")
course = (envelopes.withColumn("date", F.to_date(F.timestamp_seconds(F.col("timestamp") / 1000)))
          .join(F.broadcast(lookup), "date", "left"))
plan = ours._jdf.queryExecution().executedPlan().toString()
dates = {name: sorted({(str(r.date), r.week_part) for r in df.select("date", "week_part").collect()})
         for name, df in (("this project", ours), ("course: timestamp/1000", course))}
print("BroadcastHashJoin in the plan:", "BroadcastHashJoin" in plan, "|", dates)
library = Bronze(config, spark)._with_dates(envelopes)          # the pipeline's join gives the same rows
assert library.exceptAll(ours.select(library.columns)).isEmpty() and ours.select(library.columns).exceptAll(library).isEmpty()
assert "BroadcastHashJoin" in plan and dates == {"this project": [("2023-03-11", "2023-10")],
                                                 "course: timestamp/1000": [("1970-01-20", None)]}

# %% [markdown]
# # General questions

# %% [markdown]
# ## Q20. What is Delta Lake, and why choose it? (course Q20)

# %% [markdown]
# **Say:** "Delta Lake is an open table format: Parquet data files plus a transaction log,
# `_delta_log`, that turns a folder into a table with ACID commits, schema enforcement,
# MERGE/UPDATE/DELETE, time travel and streaming reads and writes. I chose it because streams and
# upserts need atomic commits and idempotent writes, and it runs the same on a laptop and in the
# cloud."
#
# Each commit is a JSON file of actions (`add`/`remove` of data files, `metaData`, `txn`,
# `commitInfo`); a reader takes the newest version it finds, so it sees whole commits only. On top:
# file statistics for data skipping (the `Upserter`'s `prune_on`), partitioning and compaction
# (`OPTIMIZE`), a Change Data Feed, idempotent appends (Q33). Alternatives: Apache Iceberg and Hudi
# offer much the same; the course is built on Delta and Databricks, and `delta-spark` is a pip
# package with no server.

# %%
folder = scratch(config, "q20")
rows = spark.createDataFrame([(1, "ann"), (2, "bob")], EVENTS)
rows.write.parquet(str(folder / "parquet"))
rows.write.format("delta").save(str(folder / "delta"))
print("UPDATE on Parquet:", failure(spark.sql, f"UPDATE parquet.`{folder / 'parquet'}` SET name = 'x' WHERE id = 1"))
spark.sql(f"UPDATE delta.`{folder / 'delta'}` SET name = 'anna' WHERE id = 1")
log = sorted((folder / "delta" / "_delta_log").glob("*.json"))
actions = [next(iter(json.loads(line))) for line in log[-1].read_text().splitlines()]
print("commits:", [p.name for p in log], "\nactions of the UPDATE:", actions)
assert len(log) == 2 and {"commitInfo", "add", "remove"} <= set(actions)
assert sorted(tuple(r) for r in spark.read.format("delta").load(str(folder / "delta")).collect()) == [(1, "anna"), (2, "bob")]

# %% [markdown]
# ## Q21. What is the medallion architecture? (course Q21)

# %% [markdown]
# **Say:** "Layers of tables of rising quality: bronze keeps the raw data as it arrived, silver
# cleans, types, de-duplicates and conforms it, gold holds the business aggregates; each layer is
# built from the one before, so any later layer can be rebuilt by replaying bronze."
#
# **Bronze** (`sbit_lib/course/bronze.py`): raw, append-only, one stream per source, with
# `load_time`/`source_file` lineage and the quarantine. **Silver** (`sbit_lib/course/silver.py`):
# parsed, typed, de-duplicated and merged, eight queries in three waves, and `rejects_sv` for the
# records it cannot use, each with its reason. **Gold**
# (`sbit_lib/course/gold.py`): `workout_bpm_summary` and the `gym_summary` view. Every layer is a
# set of Delta tables and every hop a Structured Streaming query reading the previous layer's
# tables, so one code path serves batch and stream. `sbit_lib/course/tables.py` lists every table
# with its layer.

# %%
layers = {}
for t in ALL_TABLES:                                  # every table is a Delta folder of one layer
    layers.setdefault(t.layer, []).append(t.name)
layers["gold"].append("gym_summary (view)")
for layer, names in layers.items():
    print(f"{layer:8} {', '.join(names)}")
raw, clean = (spark.table(config.qualified(n)) for n in ("registered_users_bz", "users"))
print("bronze keeps lineage:", [c for c in raw.columns if c not in clean.columns],
      "| silver is typed:", dict(clean.dtypes)["registration_timestamp"], "| rows:", raw.count(), clean.count())
assert list(layers) == ["history", "bronze", "silver", "gold"] and len(layers["silver"]) == 9
assert layers["silver"][-1] == "rejects_sv" and layers["bronze"][-1] == "quarantine_bz"
assert raw.count() == clean.count() == 10 and dict(raw.dtypes)["registration_timestamp"] == "double"

# %% [markdown]
# ## Q22. How does Delta Lake handle schema evolution? (course Q22)

# %% [markdown]
# **Say:** "By default it enforces the schema: a write with an unknown column or a wrong type is
# refused instead of silently changing the table. You evolve it on purpose — `mergeSchema` on the
# write, or `ALTER TABLE ... ADD COLUMNS` — and old rows read the new column as NULL."
#
# Enforcement fails with `DELTA_METADATA_MISMATCH`; `option("mergeSchema", "true")` (or
# `spark.databricks.delta.schema.autoMerge.enabled` for MERGE) adds the column in the same commit.
# Renames and drops need column mapping. Sources here are read with explicit schemas
# (`BronzeSource.schema`, derived from `sbit_lib/course/tables.py`): a new JSON field is ignored, a
# value of the wrong type sends its line to `quarantine_bz`. Auto Loader's schema inference,
# evolution and rescued-data column are Databricks-only; adopting a new source field is a
# deliberate change here — the schema in `tables.py`, an `ALTER TABLE`, a restart (Q9).

# %%
table = str(scratch(config, "q22") / "table")
spark.createDataFrame([(1, "ann")], EVENTS).write.format("delta").save(table)
wider = spark.createDataFrame([(2, "bob", "x@y.z")], f"{EVENTS}, email STRING")
refused = failure(lambda: wider.write.format("delta").mode("append").save(table))
wider.write.format("delta").mode("append").option("mergeSchema", "true").save(table)
result = spark.read.format("delta").load(table).orderBy("id")
print("append with an extra column:", refused)
print("with mergeSchema:", result.columns, [tuple(r) for r in result.collect()])
assert refused.endswith("DELTA_METADATA_MISMATCH")
assert [tuple(r) for r in result.collect()] == [(1, "ann", None), (2, "bob", "x@y.z")]

# %% [markdown]
# ## Q23. What are the advantages of Databricks for data engineering? (course Q23)

# %% [markdown]
# **Say:** "Databricks runs Spark and Delta as a managed platform: clusters that start, scale and
# stop themselves, Auto Loader, governance and lineage in Unity Catalog, the Photon engine,
# declarative pipelines with data-quality expectations, and a scheduler — so a team writes
# transformations instead of operating infrastructure. This project gives up all of that to run
# anywhere, free, and be tested in CI."
#
# What Databricks gives a data engineer, and what this local stack does instead:
#
# * **Managed compute**: job and all-purpose clusters, autoscaling, serverless compute, cluster
#   policies. Here: one local JVM (`local[*]`), or a standalone cluster (`make cluster-test`).
# * **Auto Loader** (`cloudFiles`): scalable file discovery by notification, schema inference and
#   evolution, a rescued-data column. Here: the open-source file source, explicit schemas and a
#   quarantine table (the cell below shows `cloudFiles` does not exist here).
# * **Unity Catalog**: one governed catalog across workspaces, permissions, external locations,
#   lineage, audit. Here: an in-memory catalog rebuilt per process (Q34), folders per environment
#   (Q1), no access control.
# * **Photon** (a vectorised C++ engine) and **predictive optimization** (automatic `OPTIMIZE`,
#   `VACUUM`, statistics, liquid clustering). Here: the JVM engine, and `OPTIMIZE`/`VACUUM` run by
#   hand.
# * **Delta Live Tables / Lakeflow Declarative Pipelines**: tables declared as queries, the
#   dependency graph, retries and **expectations** (data-quality rules with metrics) managed for
#   you. Here: the waves written out in `run.py` and checks in `sbit_lib/testing`. (Open-source
#   Spark 4.1+ ships a first version, `spark-pipelines`; this project does not use it.)
# * **Workflows** (Lakeflow Jobs): tasks with dependencies, schedules, retries, alerts, job
#   clusters (Q29). Here: the `sbit` CLI, papermill and a cron/systemd/Airflow of your choice.
# * **Notebooks and collaboration**: shared notebooks, `dbutils`, widgets, Git folders, the SQL
#   editor and dashboards. Here: JupyterLab, jupytext pairs, parameters cells.
#
# What this stack gives in return: it runs on any laptop or CI runner with Python and Java, costs
# nothing, has no lock-in beyond open formats (Delta, Parquet), and every claim is a test
# (`make test`: unit tests, restarts under SIGKILL, every notebook). The same code would run on
# Databricks (`get_spark` reuses an existing session), though that is untested.

# %%
folder = write_events(scratch(config, "q23") / "in", 1)
auto_loader = failure(lambda: spark.readStream.format("cloudFiles").option("cloudFiles.format", "json").load(str(folder)))
print("Auto Loader here:", auto_loader, "| dbutils here:", "dbutils" in globals())
instead = spark.readStream.schema(EVENTS).json(str(folder))            # the open-source file source
print("instead:", instead.isStreaming, "| Spark", spark.version, "on", spark.sparkContext.master,
      "| catalog:", spark.conf.get("spark.sql.catalogImplementation"))
assert auto_loader.endswith("DATA_SOURCE_NOT_FOUND") and "dbutils" not in globals()

# %% [markdown]
# ## Q24. What is Spark's role in the project? (course Q24)

# %% [markdown]
# **Say:** "Spark is the engine for everything that touches data: it reads the landing files, runs
# the twelve streaming queries, executes the joins, aggregations and MERGEs, and hosts Delta Lake
# and the catalog. Python only orchestrates."
#
# Twelve Structured Streaming queries: 3 bronze, 8 silver, 1 gold. Delta Lake is a library inside
# Spark (`DeltaSparkSessionExtension`, `DeltaCatalog`). `get_spark` (`sbit_lib/course/catalog.py`,
# which starts the session through `sbit_lib/spark/session.py`) is the one way to start it: local
# mode, Delta jars from the cache, UTC, ANSI mode, FAIR scheduler pools per layer
# (`fairscheduler.xml`), the RocksDB state store, shuffle partitions = cores. pandas appears only
# in the independent reference computation and the validators.

# %%
conf = spark.conf.get
facts = {"Spark": spark.version, "master": spark.sparkContext.master,
         "catalog": conf("spark.sql.catalogImplementation"), "extensions": conf("spark.sql.extensions"),
         "scheduler": conf("spark.scheduler.mode"), "ANSI": conf("spark.sql.ansi.enabled"),
         "state store": conf("spark.sql.streaming.stateStore.providerClass").rsplit(".", 1)[-1],
         "time zone": conf("spark.sql.session.timeZone"),
         "shuffle partitions": conf("spark.sql.shuffle.partitions")}
for key, value in facts.items():
    print(f"{key:18} {value}")
assert facts["Spark"].startswith("4.") and "DeltaSparkSessionExtension" in facts["extensions"]
assert facts["time zone"] == "UTC" and facts["ANSI"] == "true"

# %% [markdown]
# ## Q25. Batch vs stream processing in Spark: what differs? (course Q25)

# %% [markdown]
# **Say:** "The DataFrame code is the same; what differs is the input and the bookkeeping. Batch
# reads a bounded snapshot and recomputes; streaming processes unbounded input incrementally, so it
# needs checkpoints, triggers, output modes, and watermarks to know when a result is final."
#
# In this project only the trigger changes: the same queries (`Bronze.consume`, `Silver.upsert`,
# `Gold.upsert`) run with `availableNow` (`sbit run`, `08-batch-test`) or `processingTime`
# (`sbit start`, `09-stream-test`), and both must produce the same tables, checked against the same
# expected results. What a stream cannot do like a batch: an aggregation in append mode needs a
# watermark (a stream never knows a group is complete without one), sorting and some joins are
# restricted, and late data is a design question (Q28, Q32).

# %%
folder = write_events(scratch(config, "q25") / "in", 1, 2, 3)

def shout(df):                                        # one transformation, for either kind of input
    return df.where("id > 1").select("id", F.upper("name").alias("name"))

as_batch = shout(spark.read.schema(EVENTS).json(str(folder)))
as_stream, streamed = shout(spark.readStream.schema(EVENTS).json(str(folder))), []
(as_stream.writeStream.foreachBatch(lambda batch, batch_id: streamed.extend(batch.collect()))
 .option("checkpointLocation", str(folder.parent / "checkpoint")).trigger(availableNow=True).start().awaitTermination())
print("batch:", sorted(tuple(r) for r in as_batch.collect()), "| stream:", sorted(tuple(r) for r in streamed))
counts = as_stream.groupBy("name").count().writeStream.outputMode("append").foreachBatch(lambda b, i: None)
refused = failure(lambda: counts.option("checkpointLocation", str(folder.parent / "agg")).start())
print("an aggregation appended without a watermark:", refused)
assert sorted(streamed) == sorted(as_batch.collect()) and "UNSUPPORTED_OPERATION" in refused

# %% [markdown]
# ## Q26. How did you validate data through the pipeline? (course Q26)

# %% [markdown]
# **Say:** "Against an independent reference, never against the pipeline's own output: a plain
# pandas implementation recomputes every table from the input files, and after every set each layer
# is compared with it — counts in bronze, row for row in silver and gold."
#
# `sbit_lib/testing/reference.py` writes `test_data/expected/` (counts, rows, aggregates per set and
# mode). Each layer has a `validate(n)`: `Producer.validate` (records landed), `Bronze.validate`
# (counts per source and topic from the files, `quarantine_bz` line by line), `Silver.validate`
# and `Gold.validate` (`validate_tables`: types as the spec states them, rows equal, `heart_rate` by
# an order-independent hash of every row, `rejects_sv` by table and reason, course mode's
# batch-dependent tables between a minimum and the possible rows). `assert_rows` names the rows missing and unexpected. The batch
# test runs them after every set; the stream test re-checks until they pass or time out. The
# reference is how the course's own expected files were found to hide two effects (Q31, Q32).

# %%
validate_tables(spark, config, 2, ["users"])          # silver users after sets 1-2 vs the reference
expected = Expectations.load(config.test_data).table("default", 2, "users").rows
wrong = failure(assert_rows, spark.table(config.qualified("users")), expected.iloc[:-1], "users")
print("against the reference less one row:", wrong)
assert "1 unexpected rows" in wrong

# %% [markdown]
# ## Q27. Which techniques handle data-quality problems in big-data pipelines? (course Q27)

# %% [markdown]
# **Say:** "Explicit schemas; keep bad records in a quarantine instead of dropping them or failing;
# de-duplicate on business keys; enforce rules in the MERGE conditions; flag invalid values instead
# of deleting them; and check every layer against expectations after each run."
#
# Layer by layer here: explicit schemas on every source; PERMISSIVE parsing with bad lines kept in
# `quarantine_bz`, never dropped and never fatal (Q10); ANSI casts (Spark 4's default) where a bad
# value must fail loudly (`HistoryLoader` casts `date_lookup` explicitly) and guards where it must
# not stop a stream (the Kafka date range, Q19); NOT NULL filters on keys in silver;
# de-duplication on the business key inside each micro-batch and by MERGE across batches; validity
# flags instead of deletes (`heart_rate.valid`, only valid readings reach `workout_bpm`); business
# rules in MERGE conditions (a logout only moves later, a profile only changes on a newer event);
# validation against the reference after each set (Q26). On Databricks, DLT expectations would
# state such rules declaratively and count their violations.

# %%
cast = failure(lambda: spark.sql("SELECT CAST('four' AS INT)").collect())
try_cast = spark.sql("SELECT try_cast('four' AS INT) AS v").first().v
readings = spark.createDataFrame([(72.5,), (0.0,), (None,)], "heartrate DOUBLE")
valid = [tuple(r) for r in readings.selectExpr("heartrate", "coalesce(heartrate > 0, false) AS valid").collect()]
kept = spark.table(config.qualified("quarantine_bz")).select("source", "raw_record").collect()
print("CAST('four' AS INT):", cast, "| try_cast:", try_cast)
print("validity flag:", valid)
print("kept in quarantine_bz:", [tuple(r) for r in kept])
assert cast.endswith("CAST_INVALID_INPUT") and try_cast is None and [v for _, v in valid] == [True, False, False]
assert len(kept) == 1 and "not-a-number" in kept[0].raw_record

# %% [markdown]
# ## Q28. How do you keep a streaming pipeline consistent and its data intact? (course Q28)

# %% [markdown]
# **Say:** "Exactly-once is three pieces: a replayable source, checkpointed offsets, and an
# idempotent sink, so a batch replayed after a crash is applied once. Then watch what drops data:
# a watermark bounds state, but it also silently discards events older than itself."
#
# The file and Delta sources can be re-read; the checkpoint records what each micro-batch covered
# (Q12); every write is idempotent — txn appends in bronze, MERGE in silver and gold (Q33) —
# and `tests/test_restart.py` kills runs with SIGKILL and checks every table. One writer per table
# and one run per environment (Q13, Q29). Watermarks: `completed_workouts` joins starts and stops
# with 30-second watermarks and the 3-hour bound, so old state is dropped. But silver does *not*
# de-duplicate with `withWatermark(...).dropDuplicates(...)` like the course: a reading arriving
# one set late would vanish, as below. It de-duplicates by MERGE key instead and drops nothing.

# %% [markdown]
# `withWatermark("time", "30 seconds").dropDuplicates(...)`, two runs; the second brings a reading from 12:00:05, after one from 12:10:00:

# %%
folder, passed = scratch(config, "q28"), []
arrivals = [[(1, "12:00:00"), (2, "12:10:00")], [(3, "12:00:05"), (4, "12:10:01")]]   # id 3 comes late
for number, readings in enumerate(arrivals, start=1):
    land(folder / "in", f"readings_{number}.json",
         [json.dumps({"id": i, "time": f"2023-03-11 {t}"}) for i, t in readings])
    ids = []
    (spark.readStream.schema("id INT, time TIMESTAMP").json(str(folder / "in"))
     .withWatermark("time", "30 seconds").dropDuplicates(["id", "time"])
     .writeStream.foreachBatch(lambda batch, batch_id: ids.extend(r.id for r in batch.collect()))
     .option("checkpointLocation", str(folder / "checkpoint")).trigger(availableNow=True).start().awaitTermination())
    passed.append(sorted(ids))
print("ids let through by run 1:", passed[0], "  by run 2:", passed[1], "  (id 3 was late: dropped)")
assert passed == [[1, 2], [4]]

# %% [markdown]
# ## Q29. How were the jobs scheduled and orchestrated? (course Q29)

# %% [markdown]
# **Say:** "On Databricks with Workflows: a job of notebook tasks with dependencies on a job cluster,
# scheduled, with retries and alerts. Locally the same steps are commands — `make run` for the
# batch test, `sbit start`/`status`/`stop` for the stream job — which cron, systemd or Airflow
# would call, and a lock guarantees one run per environment."
#
# **Locally.** `run` (`sbit_lib/course/run.py`) sets up what is missing, then runs bronze, silver's
# three waves and gold. `make run` → `sbit_lib/ops/batch_test.py` executes `08-batch-test` with
# papermill, which lands each set (`Producer`), executes `07-run` (papermill again, parameters
# `environment`, `run_type`, ...) and validates every layer. The stream job (`sbit_lib/ops/job.py`)
# is a background process: `sbit start` launches it, it writes `status.json` every second
# (`sbit status`), and it stops between micro-batches on `sbit stop` or SIGTERM, checkpoints valid.
# Every run first takes the environment's lock (`JobLock`, an OS `flock`): a second run is refused,
# and a crashed process leaves no stale lock. A scheduler would call `sbit run --env prod` from cron
# or a systemd timer, keep `sbit start` alive as a systemd service, or wrap both in Airflow tasks;
# the exit codes (0, 1 error, 2 bad configuration, 3 "not running" for `status`) are what it
# checks.
#
# **On Databricks** (the course): a Workflows job (Lakeflow Jobs) with tasks and dependencies
# (setup → run → validate), each on a job cluster that exists only for the run, a cron schedule or
# a file-arrival trigger, retries with back-off, timeouts and e-mail alerts; notebooks call each
# other with `dbutils.notebook.run(path, timeout, parameters)` (the course's 08 and 09 run `07-run`
# so), and the course's 09 creates a job that runs `07-run` in stream mode. Its repair-run reruns
# only the failed tasks.

# %%
def sbit(*args):           # the command a scheduler would run, in another process
    done = subprocess.run([sys.executable, "-m", "sbit_lib.ops.cli", *args, "--env", config.environment,
                           "--home", str(config.home), "--test-data", str(config.test_data)],
                          capture_output=True, text=True, timeout=120)
    return done.returncode, (done.stdout + done.stderr).strip().splitlines()[-1]

with JobLock(config, "walkthrough"):                  # this process runs the pipeline here, say
    refused = sbit("run")
status = sbit("status")
print("sbit run while the lock is held: exit", refused[0], "|", refused[1].split(" (pid")[0])
print("sbit status with no stream job: exit", status[0])
assert refused[0] == 1 and "is in use by a walkthrough" in refused[1] and status[0] == 3

# %% [markdown]
# ## Q30. Which Spark performance optimisations apply, and which did you use? (course Q30)

# %% [markdown]
# **Say:** "Cut the data read — partition pruning and file skipping — avoid shuffles — broadcast the
# small side of a join — size the shuffles to the cluster, cache only what is used twice, and keep
# file sizes healthy. Here: partitioned multiplex table, broadcast lookup, shuffle partitions =
# cores, MERGE pruning, one-pass bronze writes."
#
# **Partitioning**: only `kafka_multiplex_bz`, by `topic, week_part` (`sbit_lib/course/tables.py`):
# readers filter on `topic`, which becomes a partition filter; small tables stay unpartitioned
# (tiny partitions cost more than they save). **Data skipping**: statistics only on the columns
# queries filter on, and the `Upserter`'s `prune_on` adds the micro-batch's time range to a MERGE so
# Delta skips the target files outside it. **Broadcast joins**: `date_lookup` (Q19). **Shuffle
# partitions**: `get_spark` sets `spark.sql.shuffle.partitions` to the number of cores, not 200;
# adaptive query execution stays on. **Caching**: `persist()` only where a micro-batch is used twice
# (the `Upserter` reads its time range before merging), always `unpersist()` in `finally`; bronze's
# `_BatchWriter` avoids the second pass altogether with an `Observation`. Also: optimized writes and
# auto compaction off (an extra shuffle per batch; a small-file check after every commit cost a
# quarter of a run), `OPTIMIZE` on demand, FAIR pools so twelve queries share the cores, and a JVM
# class-data archive for a faster start (`sbit cds`). `make bench` measures them.

# %%
table = config.qualified("kafka_multiplex_bz")
partitioned_by = list(spark.sql(f"DESCRIBE DETAIL {table}").first().partitionColumns)
plan = spark.table(table).where("topic = 'bpm'")._jdf.queryExecution().executedPlan().toString()
pruned = bool(re.search(r"PartitionFilters: \[[^\]]*topic", plan))
print("partitioned by", partitioned_by, "| topic = 'bpm' is a partition filter:", pruned)
print("shuffle partitions", spark.conf.get("spark.sql.shuffle.partitions"), "for",
      spark.sparkContext.defaultParallelism, "cores | adaptive execution:", spark.conf.get("spark.sql.adaptive.enabled"))
assert partitioned_by == ["topic", "week_part"] and pruned
assert spark.conf.get("spark.sql.shuffle.partitions") == str(spark.sparkContext.defaultParallelism)

# %% [markdown]
# # Part 2 · Questions the course cannot answer

# %% [markdown]
# ## Q31. Why are the course's expected minutes 66.13 instead of 65.0?

# %% [markdown]
# **Say:** "Because the course parses event times as 32-bit floats: near 1.68 billion seconds a
# float32 can only hold multiples of 128 seconds, so a 65-minute workout becomes 66.13 minutes.
# Course mode reproduces it on purpose; default mode parses doubles and gets 65.0."
#
# A float32 has a 24-bit significand, and 2023's epoch seconds (between 2³⁰ and 2³¹) are held in
# steps of 2³⁰⁻²³ = 128 s: every start and stop is rounded to the nearest multiple of 128 s. User
# 12474's first workout runs 1678521900 → 1678525800, exactly 3,900 s = 65.0 minutes; as float32 it
# becomes 1678521856 → 1678525824 = 3,968 s = 66.13 minutes, the value in
# `7-gym_summary_1.parquet` (and the 3968 `num_recordings` of `8-workout_bpm_summary_2.parquet`).
# `Silver.event_time_type` is `"FLOAT"` in course mode, `"DOUBLE"` otherwise.

# %%
values = [json.loads(json.loads(line)["value"]) for line in (config.test_data / "4-workout_1.json").read_text().splitlines() if line]
first = {v["action"]: v["timestamp"] for v in values if v["user_id"] == 12474 and v["session_id"] == 1}
event = spark.createDataFrame([(json.dumps(first),)], "value STRING")
minutes = {}
for kind in ("DOUBLE", "FLOAT"):                      # Silver.event_time_type: default / course mode
    parsed = event.select(F.from_json("value", f"start {kind}, stop {kind}").alias("v"))
    minutes[kind] = parsed.selectExpr("round((unix_seconds(timestamp_seconds(v.stop)) - "
                                      "unix_seconds(timestamp_seconds(v.start))) / 60, 2) AS m").first().m
published = pd.read_parquet(config.test_data / "7-gym_summary_1.parquet")
course_value = published.loc[published.mac_address == "4c:c5:9f:cb:13:bd", "minutes_exercising"].iloc[0]
print("start, stop:", first, "| float32 spacing there:", np.spacing(np.float32(first["start"])))
print("minutes:", minutes, "| the course's file:", course_value)
assert np.spacing(np.float32(first["start"])) == 128 and minutes == {"DOUBLE": 65.0, "FLOAT": 66.13} and course_value == 66.13

# %% [markdown]
# ## Q32. Why do only 2 rows of the gold summary appear in course mode?

# %% [markdown]
# **Say:** "The course's gold table is a watermarked streaming aggregation in append mode: a group is
# written only once the watermark — the newest end time minus 30 seconds — has passed it, and the
# watermark only moves when newer data arrives, so the last workouts of a run wait in the state
# store."
#
# After sets 1-2 the course had emitted two, hence its 2-row expected file. They are not lost — the
# next data releases them — but a batch test sees a truncated table. Course mode
# (`Gold._upsert_course` in `sbit_lib/course/gold.py`) reproduces it; default mode
# (`Gold._upsert_exact`) recomputes the summary of every workout a micro-batch touches and MERGEs
# it, so every completed workout has its row and a late reading corrects it.

# %% [markdown]
# The course's aggregation over three workouts, ending at 10:00, 11:00 and 12:00:

# %%
folder = scratch(config, "q32")
rows = [(session, dt.datetime(2023, 3, 11, 9 + session), 60.0 + m) for session in (1, 2, 3) for m in (10, 20)]
spark.createDataFrame(rows, "session_id INT, end_time TIMESTAMP, heartrate DOUBLE").write.format("delta").save(str(folder / "bpm"))
summary = (spark.readStream.format("delta").load(str(folder / "bpm"))
           .withWatermark("end_time", "30 seconds")
           .groupBy("session_id", "end_time").agg(F.count("heartrate").alias("num_recordings")))
query = (summary.writeStream.format("delta").outputMode("append").trigger(availableNow=True)
         .option("checkpointLocation", str(folder / "checkpoint")).start(str(folder / "summary")))
query.awaitTermination()
emitted = sorted(r.session_id for r in spark.read.format("delta").load(str(folder / "summary")).collect())
waiting = query.lastProgress["stateOperators"][0]["numRowsTotal"]
print("summary rows (session_id):", emitted, "| watermark:", query.lastProgress["eventTime"]["watermark"],
      "| groups waiting in the state store:", waiting)
assert emitted == [1, 2] and waiting == 1

# %% [markdown]
# ## Q33. How do you make foreachBatch writes idempotent?

# %% [markdown]
# **Say:** "`foreachBatch` is at-least-once: after a crash the last micro-batch runs again with the
# same batch id. So either MERGE, which finds the rows already there, or append with Delta's
# `txnAppId` and `txnVersion`, which skips a version it has already committed for that app id."
#
# Both are used. Silver and gold MERGE (`sbit_lib/course/upserter.py`: the micro-batch becomes a
# temporary view in its own session, `batch.sparkSession`, so concurrent queries never see each
# other's views). Bronze appends: `_BatchWriter` (`sbit_lib/course/bronze.py`) passes
# `.option("txnAppId", <query id>).option("txnVersion", batch_id)`; Delta remembers the highest
# version committed per app id and skips a write whose version is not newer. The app id is the
# query's id from its checkpoint's `metadata` — stable across restarts, new with a new checkpoint
# whose batch ids restart at 0 — and `<id>-quarantine` for the append to `quarantine_bz`. A random
# id per run would make the option useless.

# %% [markdown]
# `gym_logs`' MERGE on a temporary view, one micro-batch (a later logout, a new visit) delivered twice:

# %%
target = str(scratch(config, "q33") / "gym_logs")
schema = "mac_address STRING, gym BIGINT, login BIGINT, logout BIGINT"
spark.createDataFrame([("aa", 1, 100, 200)], schema).write.format("delta").save(target)

def upsert(batch, batch_id):
    batch.createOrReplaceTempView("gym_logs_delta")
    batch.sparkSession.sql(f"""MERGE INTO delta.`{target}` a USING gym_logs_delta b
        ON a.mac_address = b.mac_address AND a.gym = b.gym AND a.login = b.login
        WHEN MATCHED AND b.logout > a.logout THEN UPDATE SET logout = b.logout
        WHEN NOT MATCHED THEN INSERT *""")

batch, after = spark.createDataFrame([("aa", 1, 100, 260), ("bb", 2, 150, 300)], schema), []
for batch_id in (0, 0):                               # the same micro-batch again, as after a crash
    upsert(batch, batch_id)
    after.append(sorted(tuple(r) for r in spark.read.format("delta").load(target).collect()))
print("after the batch:", after[0], "\nafter its replay:", after[1])
assert after[0] == after[1] == [("aa", 1, 100, 260), ("bb", 2, 150, 300)]

# %% [markdown]
# Appends with `txnAppId`/`txnVersion`: versions 0, 0 again, 1; then the real bronze table's commits:

# %%
target, rows = str(scratch(config, "q33_txn") / "table"), []
for version in (0, 0, 1):
    (spark.createDataFrame([(version,)], "batch_id INT").write.format("delta").mode("append")
     .option("txnAppId", "q33-query").option("txnVersion", version).save(target))
    rows.append(spark.read.format("delta").load(target).count())
log = config.table_location("registered_users_bz") / "_delta_log"
txns = [json.loads(line)["txn"] for commit in sorted(log.glob("0*.json"))
        for line in commit.read_text().splitlines() if line.startswith('{"txn"')]
query_id = json.loads((config.checkpoint_dir("registered_users_bz") / "metadata").read_text())["id"]
print("rows after (q, 0), (q, 0) again, (q, 1):", rows)
print("registered_users_bz: txnAppId is the query's id:", {t["appId"] for t in txns} == {query_id},
      "| txnVersion of each commit:", [t["version"] for t in txns])
assert rows == [1, 1, 2] and {t["appId"] for t in txns} == {query_id} and [t["version"] for t in txns] == [0, 1, 2]

# %% [markdown]
# ## Q34. Why does an embedded metastore break when two processes use the lakehouse?

# %% [markdown]
# **Say:** "With Hive support Spark keeps its catalog in an embedded Derby database, and embedded
# Derby admits one JVM at a time, so a second process — a papermill child, the stream job, a second
# terminal — cannot open it. This project keeps the catalog in memory and treats the Delta folders
# as the truth: every process registers them on start."
#
# The second process fails with "Another instance of Derby may have already booted the database"
# (`metastore_db/` in the working directory). Without Hive the catalog lives in memory and dies with
# the process, so `register_tables` (`sbit_lib/course/catalog.py`), called by `get_spark`, points
# the catalog at every table with `CREATE TABLE IF NOT EXISTS ... USING DELTA LOCATION ...`, which
# reads the schema and partitioning from the Delta log. Dropping an entry deletes no data: the
# tables are external. A shared metastore service (Hive metastore on a database, Unity Catalog)
# is what a team would use instead.

# %% [markdown]
# Drop the catalog entry of `users` — a new process starts without it — and register it again, as `register_tables` does:

# %%
name, location = config.qualified("users"), config.table_location("users")
before = spark.table(name).count()
spark.sql(f"DROP TABLE {name}")
gone, files_kept = not spark.catalog.tableExists(name), (location / "_delta_log").is_dir()
spark.sql(f"CREATE TABLE IF NOT EXISTS {name} USING DELTA LOCATION {sql_str(location)}")
after = spark.table(name)
print("catalog:", spark.conf.get("spark.sql.catalogImplementation"), "| entry gone:", gone,
      "| Delta folder kept:", files_kept, "| rows before, after:", before, after.count())
print("schema read from the Delta log:", after.schema.simpleString())
assert gone and files_kept and before == after.count() == 10 and after.columns[0] == "user_id"

# %% [markdown]
# ## Q35. How would you build this with Delta Live Tables / declarative pipelines, and what would you give up?

# %% [markdown]
# **Say:** "I'd declare each table as a function returning a DataFrame: bronze as streaming tables
# over the landing folders, silver's CDC as an AUTO CDC flow, gold as materialized views, and let
# the framework infer the order, keep the checkpoints and retry. Notebook 11 does it with
# open-source Spark 4.2, and the honest cost is recomputing silver in full on every run."
#
# `sbit_lib/declarative/transformations/*.py` is the pipeline declared with `pyspark.pipelines`
# (`@dp.table`, `@dp.materialized_view`, `dp.create_streaming_table` plus `@dp.append_flow` for
# the quarantine and `rejects_sv`); `sbit declarative run` runs it over Spark Connect in an
# environment of its own. Open-source Spark refuses AUTO CDC into Delta
# (`AUTOCDC_TARGET_DOES_NOT_SUPPORT_MERGE`, SPARK-57623) and has no expectations or `foreachBatch`
# sink, so each silver table is a materialized view keeping the first or latest record per key
# with a window: on the course's data the same rows as the MERGEs (notebook 11 compares them),
# but every run rewrites every heart-rate reading, where the hand-built MERGE writes only the new
# ones. Course mode's watermarked gold has no declarative counterpart. What you gain: about a quarter
# of the code, a dry run that checks the whole graph in seconds, retries and `--full-refresh`.

# %% [markdown]
# What the declarations say, read from their source: which silver tables are materialized views
# and which a streaming table, and the course mode the runner refuses, with its reason.

# %%
import ast
from sbit_lib.declarative import runner
tree = ast.parse((runner.SPEC.parent / "transformations" / "silver.py").read_text())
kinds = {node.name: ast.unparse(d.func if isinstance(d, ast.Call) else d) for node in tree.body
         if isinstance(node, ast.FunctionDef) for d in node.decorator_list}
print({name: kind.removeprefix("dp.") for name, kind in kinds.items()})
try:
    runner.check_environment(Config.resolve(environment=f"{environment}_dp", home=home, mode="course"))
    refused = "accepted"
except ValueError as error:
    refused = str(error)
print("course mode:", refused)
assert kinds["user_profile"] == kinds["heart_rate"] == "dp.materialized_view" and "default mode only" in refused
assert "dp.create_streaming_table(REJECTS.name" in ast.unparse(tree)       # rejects_sv: append flows

# %% [markdown]
# # The pitch
#
# *About five minutes, spoken, and built from what this notebook just ran.*
#
# I rebuilt the capstone of a Databricks streaming course — a fitness-tracker lakehouse called
# SBIT — so that it runs on a laptop with open-source Spark 4 and Delta Lake 4, with no cloud
# account, and I made it exact and testable.
#
# The business first. Wearables and a gym chain send five event streams: device registrations,
# profile changes as change-data-capture events, a heart-rate reading per device per second,
# workout start and stop events, and gym logins. The goal is a gym summary and a per-workout
# heart-rate summary that a product team can trust.
#
# The architecture is a medallion on Delta. Bronze is raw and append-only: one Structured Streaming
# query per source, explicit schemas, one file per micro-batch, lineage columns, and a quarantine
# table, so a malformed line is kept and counted instead of being dropped or crashing the stream —
# you saw five good registrations and one quarantined line, and the same rows from the reader
# written out by hand. Silver parses, types, de-duplicates and merges: eight queries in three waves,
# each writing through foreachBatch with a MERGE. Gold aggregates. Every hop is a stream reading the
# previous layer's Delta table, so the same code runs as a batch, with trigger availableNow, or as a
# long-running job with processingTime. Only the trigger changes.
#
# Correctness was the centre of the design. Exactly-once takes three pieces: a replayable source,
# a checkpoint, and an idempotent sink. You watched a stream without a checkpoint append the same
# three rows twice, and with a checkpoint read only the one new file. foreachBatch is
# at-least-once, so every write is idempotent: bronze appends carry Delta's txnAppId and txnVersion
# — the query's id from its checkpoint and the batch id — and a repeated version was applied once.
# Silver and gold MERGE, and a replayed batch changed nothing. The test suite goes further: it
# kills the stream job with SIGKILL in the middle of bronze and of a silver MERGE, restarts it, and
# every table still equals the reference.
#
# Expected results never come from the pipeline. A separate reference implementation in plain
# Python and pandas recomputes every table after every set, and each layer is validated against
# it, row for row in silver and gold. That reference is how I found two things the course's own
# expected files hide. Its 66.13 minutes for a 65-minute workout come from parsing epoch seconds as
# a 32-bit float: in 2023 a float32 can only hold multiples of 128 seconds. And its gold table has
# only two rows because a watermarked append-mode aggregation holds back the last workouts until
# newer data moves the watermark — you saw three workouts give two rows, and the third wait in the
# state store. So the project has two modes. Course mode reproduces the published numbers exactly,
# which proves the port is faithful. Default mode is exact: full-precision times, and a gold summary
# recomputed for the keys each micro-batch touches, so late data corrects a result instead of
# vanishing. For the same reason silver does not de-duplicate with a watermark: you saw a late
# reading silently dropped by one.
#
# Leaving Databricks forced a few engineering decisions. Auto Loader became the file source with
# explicit schemas, and the producer lands files atomically — hidden name, then rename — so a
# stream never reads half a file. Unity Catalog's external locations became one configuration
# object: each environment owns one folder and one database, so dev and a test run never share a
# checkpoint, and cleanup removes one environment and nothing else — dbutils.fs.rm became a
# function that deletes a local folder or, for a cloud URL, goes through Hadoop's file system, the
# layer dbutils itself wraps. There is no Hive metastore, because embedded Derby admits one JVM at
# a time; every process registers the Delta folders in its in-memory catalog instead — you dropped
# a catalog entry and got it back with the same rows. And the course's Kafka date divided epoch
# seconds by a thousand, which put every event in January 1970 with no week part; here every event
# has its date.
#
# Operations are one command each: make run sets everything up and runs the batch test. The stream
# job runs in the background with start, status and stop, and a file lock guarantees one run per
# environment — you saw a second process refused. On Databricks these would be Workflows tasks; here
# cron, systemd or Airflow would call the same commands. The README records measured numbers:
# memory flat over ten sets, and 12 to 19 seconds from landing a heart-rate set to every layer
# reflecting it once the job is warm.
#
# What Databricks would add is operations, not logic: managed and autoscaled clusters, Auto
# Loader, Unity Catalog's governance and lineage, Photon, declarative pipelines with expectations
# and AUTO CDC — the same pipeline declared with open-source Spark's declarative pipelines runs in
# notebook 11, with its silver recomputed in full on every run, and it shows what that costs.
# What this version adds is that it runs anywhere, for free, and every claim in this pitch is a
# test or a cell you can run. Next I would point the landing zone at a real Kafka topic.
