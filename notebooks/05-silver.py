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
# inside `foreachBatch`** (`sbit_lib/course/upserter.py`). Streaming sinks can only append; a MERGE can
# insert, update and skip, which is what "one row per key" needs. It also makes a replayed
# micro-batch harmless: the rows are already there, so the MERGE changes nothing.

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
from sbit_lib.teaching.explore import catch_up, history, layer_counts, lesson_config, progress

config = lesson_config(environment, home, test_data, as_of=as_of)
spark = get_spark(config)
catch_up(config, spark, before="silver", sets=range(1, sets + 1))   # 02-04, skipping work already done
n = Producer(config).latest_set()
fq, db = config.qualified, config.db_name

# %% [markdown]
# ## Run the three waves once

# %%
silver = Silver(config, spark)
queries = silver.upsert(once=True)
pd.DataFrame([progress(q) for q in queries])

# %%
silver.validate(n)       # every silver table equals the independent reference computation
counts = layer_counts(spark, config)
counts[counts.layer == "silver"]

# %% [markdown]
# ## SCD type 1 from change events, in order
#
# `user_profile` keeps **one current row per user** (slowly changing dimension, type 1: an update
# overwrites, no history rows). Profile changes arrive as CDC events (`new`, `update`). Two rules
# make the result independent of arrival order and of micro-batch boundaries:
#
# * within a micro-batch, only the latest event per user is kept (`CDCUpserter`: newest `timestamp`,
#   ties broken by the Kafka `offset`);
# * the MERGE updates a row only if the event is newer (`WHEN MATCHED AND a.updated < b.updated`),
#   so a stale event that arrives late changes nothing.
#
# The user with the most profile events in bronze, and their one silver row:

# %%
events = spark.sql(f"""
    SELECT CAST(get_json_object(value, '$.user_id') AS BIGINT) AS user_id,
           get_json_object(value, '$.update_type') AS update_type,
           timestamp_seconds(CAST(get_json_object(value, '$.timestamp') AS DOUBLE)) AS event_time,
           get_json_object(value, '$.address.city') AS city, offset
    FROM {fq('kafka_multiplex_bz')} WHERE topic = 'user_info'""")
busiest = events.groupBy("user_id").count().orderBy("count", "user_id", ascending=[False, True]).first()
events.where(f"user_id = {busiest.user_id}").orderBy("event_time", "offset").show(truncate=False)
profile = spark.table(fq("user_profile")).where(f"user_id = {busiest.user_id}")
profile.select("user_id", "city", "updated").show(truncate=False)
latest = events.where(f"user_id = {busiest.user_id}").orderBy("event_time", "offset", ascending=False).first()
assert profile.first().city == latest.city

# %% [markdown]
# `user_profile` records its own changes: it has Delta's **Change Data Feed** on, and `user_bins`
# reads that feed as a stream, so a profile *update* in a later set reaches `user_bins` too. (The
# course used `ignoreChanges`, deprecated in Delta 4; `skipChangeCommits` would skip exactly those
# updates.) Its Delta history shows one MERGE per micro-batch:

# %%
spark.read.option("readChangeFeed", "true").option("startingVersion", 0).table(fq("user_profile")) \
    .groupBy("_change_type").count().orderBy("_change_type").show()
history(spark, config, "user_profile")

# %% [markdown]
# ## A replayed micro-batch changes nothing
#
# Replaying is what Structured Streaming does after a crash: the last micro-batch whose offsets
# were written but not committed runs again. Here we hand the `workouts` writer the whole
# `workouts` table as if it were a micro-batch: every row is already there, so the insert-only
# MERGE inserts nothing.

# %%
from sbit_lib.course.upserter import insert_new

before = spark.table(fq("workouts")).count()
writer = insert_new(db, "workouts", ["user_id", "time"])
writer(spark.table(fq("workouts")), 10**6)
metrics = spark.sql(f"DESCRIBE HISTORY {fq('workouts')} LIMIT 1").first()["operationMetrics"]
print(f"rows before {before}, after {spark.table(fq('workouts')).count()}, "
      f"MERGE inserted {metrics.get('numTargetRowsInserted')}")
assert spark.table(fq("workouts")).count() == before

# %% [markdown]
# ## The stream-stream join: `completed_workouts`
#
# A workout is complete when its `start` and `stop` events have both arrived. They come in
# different micro-batches, so the join keeps each unmatched side in **state** (RocksDB, in the
# checkpoint's `state/` folder). Two things bound that state:
#
# * **watermarks** (`withWatermark(..., "30 seconds")` on both sides): the query tracks the newest
#   event time seen; events older than that minus 30 s are late, and state older than what they
#   could still match can be dropped;
# * the **3-hour bound** in the join condition (`end_time < start_time + INTERVAL 3 HOURS`): a start
#   waits at most three hours of event time for its stop.
#
# Without both, the state would grow forever. Starts still waiting for their stop are in the state:

# %%
join = next(q for q in queries if q.name.startswith("completed_workouts"))
state = [op.get("numRowsTotal") for op in (join.lastProgress or {}).get("stateOperators", [])]
actions = {r.action: r["count"] for r in spark.table(fq("workouts")).groupBy("action").count().collect()}
completed = spark.table(fq("completed_workouts")).count()
print(f"workouts: {actions}; completed: {completed}; rows in the join's state after its last batch: {state}")
spark.table(fq("completed_workouts")).orderBy("start_time").show(5, truncate=False)

# %% [markdown]
# ## Heart rate and `workout_bpm`
#
# `heart_rate` keeps every reading once per `(device_id, time)` and flags `valid = heartrate > 0`
# instead of dropping the invalid ones. `workout_bpm` pairs each valid reading with the completed
# workout of its device that contains it. The course joins two streams here, which silently drops a
# reading that arrives after its workout left the join's state; this project recomputes the touched
# workouts from the tables, so a late reading still lands (see `sbit_lib/course/silver.py`).

# %%
spark.table(fq("heart_rate")).groupBy("valid").count().orderBy("valid").show()
spark.table(fq("workout_bpm")).groupBy("user_id", "session_id").count().orderBy("user_id", "session_id").show(5)

# %% [markdown]
# **Next:** `06-gold` aggregates `workout_bpm` into the per-workout summary.
