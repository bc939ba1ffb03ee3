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
# week, month and `week_part` (the year and week, e.g. `2023-10`). Bronze later joins every Kafka
# record with it to add `date` and `week_part`, the columns `kafka_multiplex_bz` is partitioned by.
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
#
# **Runs:** 02's setup if it has not run; the load written out in cells, into a scratch table; the
# library's `HistoryLoader`, into `date_lookup`; a check that both hold the same rows. About 1
# minute on a 2-core laptop (some 20 s more in a fresh environment, where 02's setup runs first).

# %% tags=["parameters"]
environment = "dev"
home = ""
test_data = ""
as_of = ""               # empty: SBIT_AS_OF, else the expected results' date (ages in user_bins)

# %%
import shutil

from sbit_lib.course.catalog import get_spark, sql_str
from sbit_lib.course.history import DATE_LOOKUP_FILE, HistoryLoader
from sbit_lib.course.setup_helper import SetupHelper
from sbit_lib.teaching.explore import delta_version, lesson_config
from sbit_lib.teaching.show import show

config = lesson_config(environment, home, test_data, as_of=as_of)
spark = get_spark(config)
setup = SetupHelper(config, spark)
if not setup.is_set_up():                # 02-setup, if it has not run (creates only what is missing)
    setup.setup()
loader = HistoryLoader(config, spark)
table = config.qualified("date_lookup")

# %% [markdown]
# ## The load, written out
#
# Every field of the file is a JSON *string*, the numbers too:

# %%
source = config.test_data / DATE_LOOKUP_FILE
print(source.read_text().splitlines()[0])

# %% [markdown]
# So the file is read with an all-`STRING` schema (nothing inferred, nothing guessed), and each
# column is cast to its table type on purpose, in one `selectExpr` you can read (the ANSI section
# below shows what a bad value then does).
#
# The rows go to a **scratch table** created `LIKE date_lookup` (same columns, own folder), so the
# pipeline's table is left to the library. `insertInto` writes by column *position* into the table's
# schema, as the library does; `overwrite=True` replaces what a previous run left.

# %%
raw = spark.read.schema(
    "date STRING, week STRING, year STRING, month STRING, dayofweek STRING, "
    "dayofmonth STRING, dayofyear STRING, week_part STRING"
).json(str(source))
rows = raw.selectExpr(
    "CAST(date AS DATE) AS date", "CAST(week AS INT) AS week", "CAST(year AS INT) AS year",
    "CAST(month AS INT) AS month", "CAST(dayofweek AS INT) AS dayofweek",
    "CAST(dayofmonth AS INT) AS dayofmonth", "CAST(dayofyear AS INT) AS dayofyear", "week_part",
)

scratch_table = config.qualified("scratch_date_lookup")
scratch = config.env_root / "scratch" / "03-history-loader"
spark.sql(f"DROP TABLE IF EXISTS {scratch_table}")        # external: drops the name, not the files
shutil.rmtree(scratch, ignore_errors=True)
spark.sql(f"CREATE TABLE {scratch_table} LIKE {table} LOCATION {sql_str(scratch / 'date_lookup')}")
rows.write.insertInto(scratch_table, overwrite=True)
spark.table(scratch_table).orderBy("date").show(3)

# %% [markdown]
# ## The library's load
#
# `HistoryLoader.load_date_lookup` is the same read, casts and `insertInto`, plus two checks: the
# file must exist, and a table that already holds exactly the file's rows is left alone, so loading
# again adds no Delta version.

# %%
show(HistoryLoader.load_date_lookup)

# %%
loader.load_history()
loader.validate()
version = delta_version(config, "date_lookup")
loader.load_history()                     # again: nothing to write
assert delta_version(config, "date_lookup") == version, "a second load wrote a new version"
spark.sql(f"SELECT min(date), max(date), count(*) AS days, count(DISTINCT week_part) AS weeks FROM {table}").show()

# %% [markdown]
# ## Check: the cells loaded what the library loaded
#
# Same schema, and the same rows both ways round (`exceptAll` keeps duplicates, so a row loaded
# twice would show up too).

# %%
mine, library = spark.table(scratch_table), spark.table(table)
assert mine.schema == library.schema, (mine.schema, library.schema)
missing, extra = library.exceptAll(mine).count(), mine.exceptAll(library).count()
print(f"rows: {mine.count()} | in date_lookup only: {missing} | in the scratch table only: {extra}")
assert mine.count() == 365 and missing == extra == 0

# %% [markdown]
# ## Explicit casts, and why Spark 4 makes them matter
#
# The course ran on Spark 3.4, where a bad cast quietly returned `NULL`. Spark 4 has **ANSI mode**
# on by default: `CAST('2023-02-30' AS DATE)` raises an error instead. That is good for a
# lakehouse: a silent `NULL` date would drop the row from every later join, and the load above
# fails loudly on a malformed calendar instead. Where a value may legitimately be bad, `try_cast`
# says so explicitly.

# %%
from pyspark.errors import PySparkException
from pyspark.logger import PySparkLogger

query_log = PySparkLogger.getLogger("SQLQueryContextLogger")
query_log.disabled = True        # PySpark logs every failed query to stderr; this failure is expected
try:
    spark.sql("SELECT CAST('2023-02-30' AS DATE) AS d").collect()
except PySparkException as error:
    print("CAST     ->", error.getCondition())
else:
    raise AssertionError("ANSI mode is off: a bad cast returned a value")
finally:
    query_log.disabled = False
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
assert "BroadcastHashJoin" in plan, plan
print("plan: BroadcastHashJoin")
joined.orderBy("date").show()

# %%
spark.sql(f"DROP TABLE {scratch_table}")  # the scratch table's job is done
shutil.rmtree(scratch)

# %% [markdown]
# **Next:** `04-bronze` lands the first set of files and ingests them with Structured Streaming.
