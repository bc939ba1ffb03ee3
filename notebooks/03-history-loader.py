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
# # 03 · History loader: a dimension loaded once, in batch
#
# **What this step does.** `HistoryLoader` fills `date_lookup`, one row per day of 2023 with its
# week, month and `week_part` (weekday or weekend). Bronze later joins every Kafka record with it
# to add `date` and `week_part`, the columns `kafka_multiplex_bz` is partitioned by.
#
# **Why a batch load.** Not every table is a stream. Reference data that changes rarely is loaded
# once (here from `6-date-lookup.json`) and read by the streams as a static table: the join of a
# stream with a small static table is a *lookup join*, and Spark broadcasts the small side to every
# task instead of shuffling the stream.
#
# ```mermaid
# flowchart LR
#     F["6-date-lookup.json"] -- "batch read, explicit casts" --> DL[("date_lookup<br/>365 rows")]
#     K["kafka_multiplex records"] -- "stream" --> J{{"broadcast<br/>lookup join on date"}}
#     DL --> J --> B[("kafka_multiplex_bz<br/>+ date, week_part")]
# ```

# %% tags=["parameters"]
environment = "dev"
home = ""
test_data = ""
as_of = ""               # empty: SBIT_AS_OF, else the expected results' date (ages in user_bins)

# %%
from sbit_lib.course.catalog import get_spark
from sbit_lib.course.history import HistoryLoader
from sbit_lib.course.run import ensure_setup
from sbit_lib.teaching.explore import lesson_config

config = lesson_config(environment, home, test_data, as_of=as_of)
spark = get_spark(config)
ensure_setup(config, spark)          # 02-setup, if it has not run yet (creates only what is missing)
loader = HistoryLoader(config, spark)

# %% [markdown]
# ## Load and check
#
# Loading is idempotent: when the table already holds exactly the file's rows, nothing is written
# and the table keeps its Delta version.

# %%
loader.load_history()
loader.validate()
table = config.qualified("date_lookup")
spark.table(table).orderBy("date").show(5)
spark.table(table).groupBy("week_part").count().orderBy("week_part").show()

# %% [markdown]
# ## Explicit casts, and why Spark 4 makes them matter
#
# The course ran on Spark 3.4, where a bad cast quietly returned `NULL`. Spark 4 has **ANSI mode**
# on by default: `CAST('2023-02-30' AS DATE)` raises an error instead. That is good for a
# lakehouse, because a silent `NULL` date would drop the row from every later join. The loader
# reads the file with an explicit schema and casts each column on purpose (`sbit_lib/course/history.py`);
# where a value may legitimately be bad, `try_cast` says so explicitly.

# %%
from pyspark.errors import PySparkException

try:
    spark.sql("SELECT CAST('2023-02-30' AS DATE) AS d").collect()
except PySparkException as error:
    print("CAST     ->", error.getCondition())
else:
    raise AssertionError("ANSI mode is off: a bad cast returned a value")
print("try_cast ->", spark.sql("SELECT try_cast('2023-02-30' AS DATE) AS d").first()["d"])

# %% [markdown]
# ## The lookup join, as Spark plans it
#
# Bronze joins each micro-batch with `date_lookup` wrapped in `broadcast(...)`
# (`Bronze._with_dates`). The physical plan shows a `BroadcastHashJoin`: the 365 rows travel once
# to every task; the stream is never shuffled.

# %%
from pyspark.sql import functions as F

events = spark.range(3).select(F.expr("date_add(DATE'2023-03-10', CAST(id AS INT))").alias("date"))
joined = events.join(F.broadcast(spark.table(table).select("date", "week_part")), "date", "left")
plan = joined._jdf.queryExecution().executedPlan().toString()
print("BroadcastHashJoin" in plan and "plan: BroadcastHashJoin" or plan)
assert "BroadcastHashJoin" in plan
joined.orderBy("date").show()

# %% [markdown]
# **Next:** `04-bronze` lands the first set of files and ingests them with Structured Streaming.
