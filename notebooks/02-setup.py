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
# # 02 · Setup: the database, fourteen tables and a view
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
# **Runs:** the DDL of one table (`kafka_multiplex_bz`) and of the view written out in cells, into a
# scratch database; then the library's `SetupHelper.setup()` for all fourteen tables, and checks
# that both made the same thing. About 1 minute on a 2-core laptop (most of it the fourteen
# `CREATE TABLE` commits).

# %% tags=["parameters"]
environment = "dev"
home = ""
test_data = ""
as_of = ""               # empty: SBIT_AS_OF, else the expected results' date (ages in user_bins)

# %%
import shutil

from sbit_lib.course.catalog import get_spark, sql_str
from sbit_lib.course.setup_helper import SetupHelper
from sbit_lib.course.tables import GYM_SUMMARY_SQL, table_def
from sbit_lib.teaching.explore import delta_version, lesson_config, relative, versions
from sbit_lib.teaching.show import show, show_sql

config = lesson_config(environment, home, test_data, as_of=as_of)
spark = get_spark(config)
helper = SetupHelper(config, spark)

# Everything this notebook builds by hand goes to a scratch database and folder, emptied first,
# so the pipeline's own tables stay as the library makes them and a re-run starts clean.
scratch_db = f"{config.environment}_scratch"
scratch = config.env_root / "scratch" / "02-setup"
spark.sql(f"DROP DATABASE IF EXISTS {scratch_db} CASCADE")   # external tables: drops names, not data
shutil.rmtree(scratch, ignore_errors=True)

# %% [markdown]
# ## One table, written out
#
# Every table's columns, partitioning and properties are defined once, in
# `sbit_lib/course/tables.py`; `table_def(name)` returns one. The cell below turns the definition
# of `kafka_multiplex_bz` into its `CREATE TABLE`:
#
# * **`USING DELTA ... LOCATION '<tables zone>/<name>'`**: an *external* table. The catalog entry
#   is only a pointer; the data and its schema live in the Delta log of the folder. That is why any
#   process can register the same tables again (`sbit_lib.course.catalog.register_tables`) without
#   a shared metastore.
# * **`PARTITIONED BY (topic, week_part)`**: one folder per topic and week, so a silver query that
#   reads one topic skips the others' files without opening them.
# * **`TBLPROPERTIES`**: Delta keeps min/max statistics of the first 32 columns of every file it
#   writes, for data skipping. Here only of the columns queries filter on: statistics of the raw
#   `value` payload would cost time at every write and serve no query.
# * **`IF NOT EXISTS`, not `OR REPLACE`**: running setup again must never wipe data (see below).

# %%
kafka = table_def("kafka_multiplex_bz")


def create_kafka_table(db: str, location) -> str:
    """The CREATE TABLE of kafka_multiplex_bz in database `db`, stored at `location`."""
    columns = ",\n    ".join(kafka.columns.split(", "))
    properties = ", ".join(f"'{key}' = '{value}'" for key, value in kafka.properties)
    return (f"CREATE TABLE IF NOT EXISTS {db}.{kafka.name} (\n    {columns})\n"
            f"USING DELTA\n"
            f"PARTITIONED BY ({', '.join(kafka.partitioned_by)})\n"
            f"LOCATION {sql_str(location)}\n"
            f"TBLPROPERTIES ({properties})")


scratch_location = scratch / kafka.name
statement = create_kafka_table(scratch_db, scratch_location)
show_sql(statement.replace(str(config.home), "<SBIT_HOME>"), "Written out in this cell:")

# %% [markdown]
# Run it, into the scratch database: first the database, then the table. The second run finds the
# table and does nothing: the Delta log still holds only version 0, the `CREATE TABLE` commit.

# %%
spark.sql(f"CREATE DATABASE IF NOT EXISTS {scratch_db}")
spark.sql(statement)
spark.sql(statement)                       # again: IF NOT EXISTS makes it a no-op
commits = sorted(p.name for p in (scratch_location / "_delta_log").glob("*.json"))
print(relative(config, scratch_location), "->", commits)
assert commits == ["00000000000000000000.json"], commits
detail = spark.sql(f"DESCRIBE DETAIL {scratch_db}.{kafka.name}").first()
print("partitioned by:", detail["partitionColumns"], "| properties:", detail["properties"])

# %% [markdown]
# ## The library does the same, for every table
#
# `SetupHelper._create_table` builds the same statement from each `TableDef` (and adds a property
# an older setup may have missed, without a new Delta version when it is there). `setup` creates
# the database, runs `_create_table` for the fourteen tables, a few at a time, and creates the view.

# %%
show(SetupHelper._create_table, SetupHelper.setup)

# %%
helper.setup()
helper.validate()
spark.sql(f"SHOW TABLES IN {config.db_name}").select("tableName", "isTemporary").show(20, truncate=False)

# %% [markdown]
# ## Check: the cell made what the library makes
#
# Same columns and types, same partition columns, same table properties.

# %%
def described(table: str) -> dict:
    """What a table's definition amounts to: its schema, partitioning and properties."""
    detail = spark.sql(f"DESCRIBE DETAIL {table}").first()
    return {"schema": spark.table(table).schema, "partitioned by": detail["partitionColumns"],
            "properties": detail["properties"]}


mine, library = described(f"{scratch_db}.{kafka.name}"), described(config.qualified(kafka.name))
for key in mine:
    print(f"{key:15} same: {mine[key] == library[key]}")
assert mine == library, (mine, library)

# %% [markdown]
# ## Setup is idempotent
#
# The written-out statement, run against the pipeline's own `kafka_multiplex_bz`, adds no Delta
# version; nor does a second `setup()` to any table. A table's history records data, not repeated
# setups. A Delta *version* is one commit file in the table's `_delta_log/` folder
# (`00000000000000000000.json` is version 0, the `CREATE TABLE`).

# %%
before = versions(config)
spark.sql(create_kafka_table(config.db_name, config.table_location(kafka.name)))
assert delta_version(config, kafka.name) == before[kafka.name], "the CREATE added a version"
helper.setup()
assert versions(config) == before, "a second setup changed a table"
print(before)
print(sorted(p.name for p in (config.table_location("users") / "_delta_log").iterdir()
             if not p.name.startswith(".")))      # hidden: the local file system's checksums

# %% [markdown]
# ## `IF NOT EXISTS` vs `OR REPLACE`, on a scratch table
#
# `CREATE OR REPLACE` builds a new, empty version of the table: the old rows are still in its
# history (time travel), but the current table is empty. That is why setup never uses it.

# %%
demo, demo_location = f"{scratch_db}.replace_demo", sql_str(scratch / "replace_demo")
spark.sql(f"CREATE TABLE {demo} (id INT, note STRING) USING DELTA LOCATION {demo_location}")
spark.sql(f"INSERT INTO {demo} VALUES (1, 'precious row')")

spark.sql(f"CREATE TABLE IF NOT EXISTS {demo} (id INT, note STRING) USING DELTA LOCATION {demo_location}")
print("after IF NOT EXISTS:", spark.table(demo).count(), "row")
spark.sql(f"CREATE OR REPLACE TABLE {demo} (id INT, note STRING) USING DELTA LOCATION {demo_location}")
print("after OR REPLACE:   ", spark.table(demo).count(), "rows")
spark.sql(f"DESCRIBE HISTORY {demo}").select("version", "operation").orderBy("version").show()
print("time travel to version 1:", spark.read.option("versionAsOf", 1).table(demo).collect())
assert spark.read.option("versionAsOf", 1).table(demo).count() == 1 and spark.table(demo).count() == 0

# %% [markdown]
# ## The view
#
# `gym_summary` is a **view**: a stored query, computed whenever it is read, so it always reflects
# the current silver tables and never needs a stream of its own. It joins gym logins with completed
# workouts of the same device that started during the visit. The query is `GYM_SUMMARY_SQL` in
# `sbit_lib/course/tables.py`, with `{db}` standing for the environment's database:

# %%
show_sql(GYM_SUMMARY_SQL, "GYM_SUMMARY_SQL")

# %% [markdown]
# A view lives in the catalog only (no folder, no Delta log), so `CREATE OR REPLACE` is right here:
# it rewrites a stored query, never data. Created in the scratch database, over the environment's
# silver tables, and compared with the library's view (empty until `05-silver` has run):

# %%
spark.sql(f"CREATE OR REPLACE VIEW {scratch_db}.gym_summary AS {GYM_SUMMARY_SQL.format(db=config.db_name)}")

mine, library = spark.table(f"{scratch_db}.gym_summary"), spark.table(config.qualified("gym_summary"))
mine.printSchema()
assert mine.schema == library.schema
assert mine.exceptAll(library).isEmpty() and library.exceptAll(mine).isEmpty()
print("same schema and rows as", config.qualified("gym_summary"), f"({library.count()} rows)")

# %% [markdown]
# ## Cleanup
#
# The scratch database and folder go now; the pipeline's tables stay for the next notebooks.
#
# `SetupHelper(config).cleanup()` (or `sbit clean --env <environment>`) drops the environment's
# database and deletes its folder: tables, landing zone and checkpoints together. Deleting a table
# but keeping its checkpoint would make the next run skip every file it had already read. It is
# refused while a pipeline run or the stream job holds the environment's lock. It is not run here:
# the next notebooks build on these tables.

# %%
spark.sql(f"DROP DATABASE {scratch_db} CASCADE")
shutil.rmtree(scratch)
assert not spark.catalog.databaseExists(scratch_db) and helper.is_set_up()

# %% [markdown]
# **Next:** `03-history-loader` fills the one history table, `date_lookup`.
