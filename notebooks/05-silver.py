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
# # 05 · Silver: clean, de-duplicated, merged
#
# **What this step does.** Silver turns raw bronze records into tables you can trust: typed columns,
# one row per key, invalid values flagged, change events applied in order. Eight queries run in the
# course's three **waves**; each wave reads the tables the previous one writes.
#
# ```mermaid
# flowchart LR
#     subgraph wave1 [wave 1]
#         U[users]; G[gym_logs]; P[user_profile]; W[workouts]; H[heart_rate]
#     end
#     subgraph wave2 [wave 2]
#         B[user_bins]; C[completed_workouts]
#     end
#     subgraph wave3 [wave 3]
#         WB[workout_bpm]
#     end
#     RU[(registered_users_bz)] --> U
#     GL[(gym_logins_bz)] --> G
#     K[(kafka_multiplex_bz)] -- "topic user_info" --> P
#     K -- "topic workout" --> W
#     K -- "topic bpm" --> H
#     P -- "Change Data Feed" --> B
#     U --> B
#     W -- "start ⋈ stop<br/>watermarks, 3 h bound" --> C
#     C --> WB
#     H --> WB
# ```
#
# Every silver query reads its source as a stream and writes each micro-batch with a **`MERGE`
# inside `foreachBatch`**. Streaming sinks can only append; a MERGE can insert, update and skip,
# which is what "one row per key" needs. It also makes a replayed micro-batch harmless: the rows are
# already there, so the MERGE changes nothing.
#
# **Runs:** 02-04 if they have not run (`catch_up`), the library's eight silver queries once
# (`availableNow`), then two of them again *inline*, written out in this notebook's cells, into
# scratch tables: the `user_profile` CDC upsert and the `completed_workouts` stream-stream join.
# Last, one bad record of each kind through the layers, in a scratch environment.
# About 3 minutes after 04, about 4 minutes in a fresh environment, on a 2-core laptop.

# %% tags=["parameters"]
environment = "dev"
home = ""
test_data = ""
as_of = ""               # empty: SBIT_AS_OF, else the expected results' date (ages in user_bins)
sets = 1

# %%
import pandas as pd

from sbit_lib.course.catalog import get_spark
from sbit_lib.course.producer import Producer
from sbit_lib.course.silver import Silver
from sbit_lib.course.upserter import CDCUpserter, Upserter, insert_new
from sbit_lib.teaching.explore import catch_up, history, layer_counts, lesson_config, progress
from sbit_lib.teaching.show import show

config = lesson_config(environment, home, test_data, as_of=as_of)
spark = get_spark(config)
catch_up(config, spark, before="silver", sets=range(1, sets + 1))   # 02-04, skipping work already done
n = Producer(config).latest_set()
fq = config.qualified

# %% [markdown]
# ## Run the library's three waves once
#
# `Silver.upsert(once=True)` starts each wave's queries with `trigger(availableNow=True)` and waits
# for them before starting the next wave. Then every silver table is compared with the expected
# results, computed independently with pandas from the input files.

# %%
silver = Silver(config, spark)
queries = silver.upsert(once=True)
pd.DataFrame([progress(q) for q in queries])

# %%
silver.validate(n)
counts = layer_counts(spark, config)
counts[counts.layer == "silver"]

# %% [markdown]
# ## The pattern: `MERGE` inside `foreachBatch`
#
# `foreachBatch(f)` hands each micro-batch to `f` as an ordinary DataFrame, with its batch id. The
# course's `Upserter` is such an `f`: it registers the batch as a temporary view and runs a MERGE
# that reads it. The view is created in `batch.sparkSession`, the query's own session, so two
# queries running at the same time never see each other's batches.

# %%
show(Upserter)

# %% [markdown]
# ## Wave 1: `user_profile`, SCD type 1 from change events, built inline
#
# `user_profile` keeps **one current row per user** (slowly changing dimension type 1: an update
# overwrites, no history rows). Profile changes arrive as CDC events (`new`, `update`) in the
# `user_info` topic of the multiplexed bronze table. First the stream: read the bronze table as a
# stream, keep the topic, parse the JSON `value` with an explicit schema, type the columns.

# %%
from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

# event_time_type: FLOAT in course mode, like the course (so multiples of 128 s in 2023), else DOUBLE.
profile_schema = (f"user_id BIGINT, update_type STRING, timestamp {silver.event_time_type}, dob STRING, "
                  "sex STRING, gender STRING, first_name STRING, last_name STRING, "
                  "address STRUCT<street_address: STRING, city: STRING, state: STRING, zip: INT>")


def profile_events(bronze: DataFrame) -> DataFrame:
    """The user_info records of kafka_multiplex_bz as typed events (from a stream or a table)."""
    return (bronze.where("topic = 'user_info'")            # a partition column: other topics are not read
            .select(F.from_json("value", profile_schema).alias("v"), "offset").select("v.*", "offset")
            # the library sends these to rejects_sv with a reason (end of this notebook)
            .where("user_id IS NOT NULL AND timestamp IS NOT NULL AND update_type IN ('new', 'update')")
            # try_to_date: a dob that does not parse is NULL; to_date would stop the query (ANSI)
            .selectExpr("user_id", "try_to_date(dob, 'MM/dd/yyyy') AS dob", "sex", "gender", "first_name",
                        "last_name", "address.street_address", "address.city", "address.state",
                        "address.zip", "timestamp_seconds(timestamp) AS updated", "offset"))


events = profile_events(spark.readStream.table(fq("kafka_multiplex_bz")))
print("streaming:", events.isStreaming)

# %% [markdown]
# The inline query writes to its own **scratch table**, created with the same columns as
# `user_profile` (`sbit_lib/course/tables.py`), with its own checkpoint: the pipeline's tables and
# checkpoints stay untouched. Both are deleted first, so the notebook can run again.

# %%
import shutil

from sbit_lib.course.catalog import sql_str
from sbit_lib.course.tables import table_def

scratch = config.env_root / "scratch" / "05-silver"


def scratch_table(name: str) -> tuple[str, str]:
    """A new empty table with silver table `name`'s columns: its SQL name and a fresh checkpoint."""
    table, folder = fq(f"scratch_{name}"), scratch / name
    spark.sql(f"DROP TABLE IF EXISTS {table}")
    shutil.rmtree(folder, ignore_errors=True)
    spark.sql(f"CREATE TABLE {table} ({table_def(name).columns}) USING DELTA "
              f"LOCATION {sql_str(folder / 'table')}")
    return table, str(folder / "checkpoint")


profile_table, profile_checkpoint = scratch_table("user_profile")

# %% [markdown]
# Then the `foreachBatch` function. Two rules make the result independent of arrival order and of
# micro-batch boundaries:
#
# * within a micro-batch only the **latest event per user** is kept (newest `updated`, ties broken
#   by the higher Kafka `offset`, so the result never depends on how Spark ordered the batch). A
#   MERGE also refuses two source rows that match the same target row;
# * the MERGE updates a row only if the event is newer (`WHEN MATCHED AND a.updated < b.updated`), so
#   a stale event that arrives late changes nothing.

# %%
latest_first = Window.partitionBy("user_id").orderBy(F.col("updated").desc(), F.col("offset").desc())


def upsert_profiles(batch: DataFrame, batch_id: int) -> None:
    latest = batch.withColumn("rank", F.row_number().over(latest_first)).where("rank = 1")
    latest.drop("rank", "offset").createOrReplaceTempView("user_profile_cdc")
    batch.sparkSession.sql(f"""
        MERGE INTO {profile_table} a USING user_profile_cdc b ON a.user_id = b.user_id
        WHEN MATCHED AND a.updated < b.updated THEN UPDATE SET *
        WHEN NOT MATCHED THEN INSERT *""")


profile_query = (events.writeStream.queryName("scratch_user_profile")
                 .option("checkpointLocation", profile_checkpoint)
                 .foreachBatch(upsert_profiles)
                 .trigger(availableNow=True)
                 .start())
profile_query.awaitTermination()
progress(profile_query)

# %% [markdown]
# **Check:** the inline table holds exactly the rows of the library's `user_profile` (`exceptAll`
# both ways: no row missing, none extra, duplicates counted).

# %%
def assert_same(inline: str, library: str) -> None:
    mine, theirs = spark.table(inline), spark.table(library)
    diff = (theirs.exceptAll(mine).withColumn("side", F.lit("missing"))
            .unionByName(mine.exceptAll(theirs).withColumn("side", F.lit("extra"))))
    found = {r.side: r["count"] for r in diff.groupBy("side").count().collect()}
    print(f"{library.split('.')[-1]}: inline {mine.count()} rows, library {theirs.count()}; "
          f"{found.get('missing', 0)} missing, {found.get('extra', 0)} extra")
    assert not found, found


assert_same(profile_table, fq("user_profile"))

# %% [markdown]
# The library writes the same rule once, as `CDCUpserter`: the `Upserter` above with the window in
# its `prepare` step. `Silver.upsert_user_profile` builds the stream above and hands it a
# `CDCUpserter` (`sbit_lib/course/silver.py`).

# %%
show(CDCUpserter)

# %% [markdown]
# The user with the most profile events in bronze, and their one row in silver: the latest event
# wins.

# %%
# The same function on the table as a batch; cached, the replay below reads it again.
all_events = profile_events(spark.read.table(fq("kafka_multiplex_bz"))).cache()
busiest = all_events.groupBy("user_id").count().orderBy(F.desc("count"), "user_id").first().user_id
user_events = all_events.where(f"user_id = {busiest}").orderBy("updated", "offset")
user_events.select("user_id", "updated", "offset", "first_name", "last_name", "city").show(truncate=False)
row = spark.table(fq("user_profile")).where(f"user_id = {busiest}")
row.select("user_id", "updated", "first_name", "last_name", "city").show(truncate=False)
latest = user_events.orderBy(F.desc("updated"), F.desc("offset")).drop("offset").first()
assert row.count() == 1 and row.first().asDict() == latest.asDict()

# %% [markdown]
# ### A replayed micro-batch changes nothing
#
# After a crash, Structured Streaming runs again the last micro-batch whose offsets were written but
# not committed. Here the function gets every profile event again, as one batch: each stored row is
# as new as its event, so the MERGE neither inserts nor updates.

# %%
def last_commit(table: str):
    return spark.sql(f"DESCRIBE HISTORY {table} LIMIT 1").first()


before = last_commit(profile_table)
upsert_profiles(all_events, batch_id=profile_query.lastProgress["batchId"])
all_events.unpersist()
replay = last_commit(profile_table)
metrics = replay["operationMetrics"]
print(f"version {before['version']} -> {replay['version']}: {replay['operation']} of {metrics['numSourceRows']} "
      f"rows inserted {metrics['numTargetRowsInserted']}, updated {metrics['numTargetRowsUpdated']}")
assert replay["version"] == before["version"] + 1
assert metrics["numTargetRowsInserted"] == metrics["numTargetRowsUpdated"] == "0"

# %% [markdown]
# ### `users` and `gym_logs`: the same `CDCUpserter`, other rules
#
# `users` keeps the **first** registration of a user: the MERGE only inserts, and the batch is
# ranked on the *negated* time, so "latest first" becomes "earliest first". `gym_logs` keeps one row
# per visit (`mac_address`, `gym`, `login`) and updates `logout` only with a later one.

# %%
show(Silver.upsert_users)

# %%
show(Silver.upsert_gym_logs)

# %% [markdown]
# ### `workouts` and `heart_rate`: insert what is new
#
# Rows that never change once written use `insert_new`: drop duplicates in the batch, then
# `MERGE ... WHEN NOT MATCHED THEN INSERT *`. For `heart_rate`, the largest table, `prune_on="time"`
# adds the batch's time range to the MERGE condition so Delta skips the files outside it.
# `heart_rate` keeps invalid readings and flags them (`valid = heartrate > 0`) instead of dropping them.

# %%
show(insert_new)

# %%
show(Silver.upsert_workouts, Silver.upsert_heart_rate)

# %%
spark.table(fq("heart_rate")).groupBy("valid").count().orderBy("valid").show()

# %% [markdown]
# ## Wave 2: `user_bins` follows `user_profile`'s Change Data Feed
#
# `user_bins` holds each registered user's age bin and location. It must change when a profile
# changes, so it reads `user_profile`'s **Change Data Feed** as a stream (the table has
# `delta.enableChangeDataFeed`), together with new `users`, and recomputes the touched users from
# the current tables. (The course used `ignoreChanges`, deprecated in Delta 4; `skipChangeCommits`
# would skip exactly the updates `user_bins` needs.)

# %%
show(Silver.upsert_user_bins)

# %% [markdown]
# What the feed holds: one row per inserted row and a pre- and post-image per update, and one
# Delta version (a MERGE) per micro-batch:

# %%
spark.read.option("readChangeFeed", "true").option("startingVersion", 0).table(fq("user_profile")) \
    .groupBy("_change_type").count().orderBy("_change_type").show()
history(spark, config, "user_profile")

# %% [markdown]
# ## Wave 2: `completed_workouts`, a stream-stream join, built inline
#
# A workout is complete when its `start` and its `stop` have both arrived. They may come in different
# micro-batches, so the join keeps the rows of both sides in **state** (in the checkpoint's `state/`
# folder) for the matches still to come. Two things bound that state:
#
# * **watermarks** (`withWatermark(..., "30 seconds")` on both sides): the query tracks the newest
#   event time seen; events older than that minus 30 s are late, and state they can no longer match
#   is dropped;
# * the **3-hour bound** in the join condition: a start waits at most three hours of event time for
#   its stop.
#
# Without both, the state would grow forever. Both sides read the `workouts` silver table; the
# stop side's columns are renamed so the two sides of this self-join stay distinct.

# %%
starts = (spark.readStream.table(fq("workouts")).where("action = 'start'")
          .selectExpr("user_id", "workout_id", "session_id", "time AS start_time")
          .withWatermark("start_time", "30 seconds"))
stops = (spark.readStream.table(fq("workouts")).where("action = 'stop'")
         .selectExpr("user_id AS stop_user", "workout_id AS stop_workout", "session_id AS stop_session",
                     "time AS end_time")
         .withWatermark("end_time", "30 seconds"))
completed = starts.join(stops, F.expr("""
    user_id = stop_user AND workout_id = stop_workout AND session_id = stop_session
    AND end_time < start_time + INTERVAL 3 HOURS"""), "inner") \
    .select("user_id", "workout_id", "session_id", "start_time", "end_time")

# %% [markdown]
# A completed workout never changes, so the writer only inserts the sessions not stored yet.

# %%
completed_table, completed_checkpoint = scratch_table("completed_workouts")


def insert_completed(batch: DataFrame, batch_id: int) -> None:
    batch.dropDuplicates(["user_id", "workout_id", "session_id"]).createOrReplaceTempView("completed_new")
    batch.sparkSession.sql(f"""
        MERGE INTO {completed_table} a USING completed_new b
        ON a.user_id = b.user_id AND a.workout_id = b.workout_id AND a.session_id = b.session_id
        WHEN NOT MATCHED THEN INSERT *""")


join_query = (completed.writeStream.queryName("scratch_completed_workouts")
              .option("checkpointLocation", completed_checkpoint)
              .foreachBatch(insert_completed)
              .trigger(availableNow=True)
              .start())
join_query.awaitTermination()
progress(join_query)

# %% [markdown]
# **Check:** the same rows as the library's `completed_workouts`. Then the join's state after its
# last micro-batch (`stateOperators` in the query's progress): the rows of both sides it still
# keeps. A matched start stays too, since another stop could still match it in an inner join,
# until the watermark passes it; `availableNow` ends with a batch without data that evicts what the
# watermark allows.

# %%
assert_same(completed_table, fq("completed_workouts"))
actions = {r.action: r["count"] for r in spark.table(fq("workouts")).groupBy("action").count().collect()}
state = [{key: op.get(key) for key in ("operatorName", "numRowsTotal", "numRowsDroppedByWatermark")}
         for op in join_query.lastProgress["stateOperators"]]
print(f"workouts: {actions}; completed: {spark.table(completed_table).count()}; join state: {state}")
spark.table(completed_table).orderBy("start_time", "user_id").show(5, truncate=False)

# %% [markdown]
# ## Wave 3: `workout_bpm`
#
# `workout_bpm` pairs each valid reading with the completed workout of its device that contains it
# (`start_time < time <= end_time`). The course joins two streams here, which silently drops a
# reading that arrives after its workout left the join's state. The library instead reads new
# readings and new completed workouts as one stream and, per micro-batch, recomputes the touched
# workouts from the tables, so a late reading still lands.

# %%
show(Silver.upsert_workout_bpm)

# %%
spark.table(fq("workout_bpm")).groupBy("user_id", "session_id").count().orderBy("user_id", "session_id").show(5)

# %% [markdown]
# ## A bad record through the layers
#
# Real feeds send bad records. Here a small generated data set with one record per bad-input rule
# (`sbit_lib/testing/dirty_data.py`) runs through every layer in a scratch environment of its own,
# so this notebook's tables stay the course's. Follow three of its records (README "Bad input"):
#
# * a profile event of user 1 whose `dob` is `"not-a-date"`: `to_date` would raise under ANSI and
#   stop the query on every retry; `try_to_date` gives NULL, the user stays, `user_bins.age` is NULL;
# * a profile event with `update_type` `delete`: not implemented, so **rejected** with its reason;
# * a registration without `device_id`: rejected (no reading could ever reach that user).
#
# About 1 minute (set-up, bronze, silver and gold of a few dozen records).

# %%
import tempfile
from pathlib import Path

from sbit_lib.course.config import Config
from sbit_lib.course.run import run
from sbit_lib.course.setup_helper import SetupHelper
from sbit_lib.testing import dirty_data

dirty_folder = dirty_data.write(Path(tempfile.mkdtemp(prefix="sbit-dirty-")), as_of=config.as_of_date)
bad = Config.resolve(environment=f"{config.environment}_bad_input", home=config.home,
                     test_data=dirty_folder, as_of=config.as_of_date.isoformat())
Producer(bad).produce(1)
for line in (dirty_folder / "2-user_info_1.json").read_text().splitlines():
    if "not-a-date" in line or "delete" in line:
        print(line[:160])
run(bad, spark=spark)                     # bronze, silver, gold: no query stops

# %% [markdown]
# Bronze keeps both events as they came (bronze does not interpret the `value`); silver decides.

# %%
bq = bad.qualified
spark.sql(f"""SELECT offset, get_json_object(value, '$.update_type') AS update_type,
                     get_json_object(value, '$.dob') AS dob FROM {bq('kafka_multiplex_bz')}
              WHERE topic = 'user_info' AND get_json_object(value, '$.user_id') IN ('1', '4')""").show()
spark.sql(f"""SELECT p.user_id, p.dob, b.age FROM {bq('user_profile')} p JOIN {bq('user_bins')} b USING (user_id)
              ORDER BY user_id""").show()

# %% [markdown]
# What silver could not use is in `rejects_sv`, with the table it was meant for and why; what bronze
# could not parse is in `quarantine_bz`. Nothing else is dropped except by design, and
# `Silver.counts()` (also `sbit counts`) shows that the numbers add up:
# bronze records = rows + rejected + dropped by design.

# %%
spark.sql(f"SELECT target_table, reason, left(raw_record, 60) AS raw_record FROM {bq('rejects_sv')} "
          "ORDER BY target_table, reason").show(truncate=False)
spark.sql(f"SELECT source, reason, left(raw_record, 50) AS raw_record FROM {bq('quarantine_bz')}").show(truncate=False)
pd.DataFrame(Silver(bad, spark).counts())

# %%
Silver(bad, spark).validate(1)              # the reference implements the same rules, independently
SetupHelper(bad, spark).cleanup()

# %% [markdown]
# **Next:** `06-gold` aggregates `workout_bpm` into the per-workout summary.
