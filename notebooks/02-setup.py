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
# # 02 · Setup: the database, thirteen tables and a view
#
# **What this step does.** `SetupHelper` creates the environment's database, one Delta table per
# table of the pipeline, a `quarantine_bz` table for malformed input, and the `gym_summary` view.
# Tables are created *empty and with their schema* before any data arrives, so every streaming
# query later writes into a table whose columns are fixed (schema enforcement).
#
# ```mermaid
# flowchart LR
#     subgraph history
#         DL[date_lookup]
#     end
#     subgraph bronze
#         RU[registered_users_bz]
#         GL[gym_logins_bz]
#         KM[kafka_multiplex_bz]
#         Q[quarantine_bz]
#     end
#     subgraph silver
#         U[users]; GY[gym_logs]; UP[user_profile]; HR[heart_rate]; W[workouts]
#         UB[user_bins]; CW[completed_workouts]; WB[workout_bpm]
#     end
#     subgraph gold
#         S[workout_bpm_summary]
#         V{{gym_summary view}}
#     end
#     RU --> U; GL --> GY; KM --> UP & HR & W
#     UP --> UB; W --> CW; HR --> WB; CW --> WB
#     WB --> S; UB --> S; GY --> V; CW --> V
# ```
#
# **Why `IF NOT EXISTS`, not `OR REPLACE`.** The course creates tables with
# `CREATE TABLE IF NOT EXISTS`: running setup again must never wipe data. `CREATE OR REPLACE`
# builds a new, empty version of the table; the old rows are still in its history (time travel)
# but the current table is empty. Both are shown below on a scratch table.

# %% tags=["parameters"]
environment = "dev"
home = ""
test_data = ""
as_of = ""               # empty: SBIT_AS_OF, else the expected results' date (ages in user_bins)

# %%
from sbit_lib.course.catalog import get_spark
from sbit_lib.course.setup_helper import SetupHelper
from sbit_lib.teaching.explore import lesson_config, versions

config = lesson_config(environment, home, test_data, as_of=as_of)
spark = get_spark(config)
helper = SetupHelper(config, spark)

# %% [markdown]
# ## Create everything (only what is missing)
#
# Each table is created at its fixed location, `LOCATION '<tables zone>/<name>'`: an *external*
# table. The catalog entry is only a pointer; the data and its schema live in the Delta log of the
# folder. That is why any process can register the same tables again (`sbit_lib.course.catalog.register_tables`)
# without a shared metastore.

# %%
helper.setup()
helper.validate()
spark.sql(f"SHOW TABLES IN {config.db_name}").select("tableName", "isTemporary").show(20, truncate=False)

# %% [markdown]
# ## Setup is idempotent
#
# Running it again creates nothing: every table stays at the same Delta version, so the history
# of a table records data, not repeated setups. A Delta *version* is one commit file in the
# table's `_delta_log/` folder (`00000000000000000000.json` is version 0, the `CREATE TABLE`).

# %%
before = versions(config)
helper.setup()
assert versions(config) == before, "a second setup changed a table"
print(before)
print(sorted(p.name for p in (config.table_location("users") / "_delta_log").iterdir()))

# %% [markdown]
# ## `IF NOT EXISTS` vs `OR REPLACE`, on a scratch table

# %%
import shutil

scratch = config.env_root / "scratch" / "replace_demo"
shutil.rmtree(scratch, ignore_errors=True)
name = config.qualified("replace_demo")
spark.sql(f"DROP TABLE IF EXISTS {name}")
spark.sql(f"CREATE TABLE {name} (id INT, note STRING) USING DELTA LOCATION '{scratch}'")
spark.sql(f"INSERT INTO {name} VALUES (1, 'precious row')")

spark.sql(f"CREATE TABLE IF NOT EXISTS {name} (id INT, note STRING) USING DELTA LOCATION '{scratch}'")
print("after IF NOT EXISTS:", spark.table(name).count(), "row")
spark.sql(f"CREATE OR REPLACE TABLE {name} (id INT, note STRING) USING DELTA LOCATION '{scratch}'")
print("after OR REPLACE:   ", spark.table(name).count(), "rows")
spark.sql(f"DESCRIBE HISTORY {name}").select("version", "operation").orderBy("version").show()
print("time travel to version 1:", spark.read.option("versionAsOf", 1).table(name).collect())
assert spark.read.option("versionAsOf", 1).table(name).count() == 1 and spark.table(name).count() == 0
spark.sql(f"DROP TABLE {name}")
shutil.rmtree(scratch)

# %% [markdown]
# ## The view
#
# `gym_summary` is a **view**: a stored query, computed whenever it is read, so it always reflects
# the current silver tables and never needs a stream of its own. It joins gym logins with completed
# workouts of the same device that started during the visit (`sbit_lib/course/tables.py`, `GYM_SUMMARY_SQL`).
# It is empty until silver has run (`05-silver`).

# %%
spark.table(config.qualified("gym_summary")).printSchema()

# %% [markdown]
# ## Cleanup
#
# `SetupHelper(config).cleanup()` (or `sbit clean --env <environment>`) drops the database and
# deletes the environment's folder: tables, landing zone and checkpoints together. Deleting a table
# but keeping its checkpoint would make the next run skip every file it had already read. It is
# refused while a pipeline run or the stream job holds the environment's lock. It is not run here:
# the next notebooks build on these tables.
#
# **Next:** `03-history-loader` fills the one history table, `date_lookup`.
