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
# # 01 · Config: where everything of one environment lives
#
# **What this step does.** Every later step asks one object, `Config`, where things are: the
# *landing zone* where source systems drop files, the folder of each Delta table, the checkpoint
# of each streaming query, and the database name. Nothing else in the project builds a path.
#
# **Why it matters in a medallion architecture.** Bronze, silver and gold are only folders of
# Delta tables plus the streaming queries that move data between them. If two environments
# (`dev`, `qa`, a test run) shared one checkpoint or one table, a test would corrupt your work,
# or a query would skip files another environment had already read. So an *environment* owns one
# folder, and everything of it lives below:
#
# ```mermaid
# flowchart LR
#     H["SBIT_HOME (./lakehouse)"] --> E["ENV/"]
#     E --> D["data/"]
#     D --> R["raw/ = landing zone<br/>(one folder per source)"]
#     D --> T["delta/TABLE/<br/>(one Delta table each)"]
#     E --> C["checkpoints/QUERY/<br/>(one per streaming query)"]
#     E -. "database" .-> DB["ENV_sbit_db<br/>(catalog pointers only)"]
# ```
#
# **Databricks → local.** The course reads two *external locations* from Unity Catalog
# (`describe external location data_zone`) and takes the environment from a *widget*. Here the
# locations come from configuration, and the notebook's `parameters` cell is the widget:
# papermill (and `08-batch-test`) can run this notebook with other values.
#
# **Runs:** nothing but the configuration and one Spark session (about 15-30 s on a 2-core laptop,
# most of it Spark starting).

# %% tags=["parameters"]
environment = "dev"      # the course's Environment widget
home = ""                # empty: SBIT_HOME, else ./lakehouse
test_data = ""           # empty: SBIT_TEST_DATA, else ./test_data

# %% [markdown]
# ## Resolve the configuration
#
# `Config.resolve` takes each setting from, in order: an explicit argument, an `SBIT_*`
# environment variable, a default. Every path comes out absolute, so a notebook run by papermill
# from another folder finds the same tables. Below, paths under `SBIT_HOME` are printed relative
# to it (`<SBIT_HOME>/...`).

# %%
from sbit_lib.course.config import Config, ConfigError
from sbit_lib.teaching.explore import relative

config = Config.resolve(environment=environment, home=home, test_data=test_data)
print(f"environment      {config.environment}")
print(f"mode             {config.mode}")
print(f"database         {config.db_name}")
def shown(path):     # under SBIT_HOME relative to it; elsewhere (another folder, a URL) as it is
    return f"<SBIT_HOME>/{relative(config, path)}" if path.is_relative_to(config.home) else str(path)

for name in ("landing_zone", "tables_zone", "checkpoint_zone"):
    print(f"{name:16} {shown(getattr(config, name))}")
print(f"one table        {shown(config.table_location('heart_rate'))}")
print(f"one checkpoint   {shown(config.checkpoint_dir('heart_rate'))}")
print(f"bronze reads     {config.bronze_max_files_per_trigger} file per micro-batch; "
      f"silver/gold {config.max_files_per_trigger} Delta files")

# %% [markdown]
# Two environments never share anything: `qa` gets its own database and folders. That is what lets
# the test suite, `08-batch-test` (environment `batch_test`) and your own `dev` work run side by side.

# %%
qa = Config.resolve(environment="qa", home=config.home)
assert qa.db_name == "qa_sbit_db" and qa.env_root != config.env_root
assert not qa.checkpoint_zone.is_relative_to(config.env_root)
print(f"{qa.db_name}: <SBIT_HOME>/{relative(qa, qa.env_root)}  vs  {config.db_name}: <SBIT_HOME>/{relative(config, config.env_root)}")

# %% [markdown]
# ## Zones elsewhere: a folder or a URL
#
# On Databricks the data and checkpoint zones are Unity Catalog external locations, URLs such as
# `abfss://container@account.dfs.core.windows.net/sbit`. Here `SBIT_DATA_ZONE` and
# `SBIT_CHECKPOINT_ZONE` (or `data_root=` / `checkpoint_root=`) put them anywhere Spark's Hadoop
# file-system layer reaches, and each environment still gets a folder of its own below them.
# A zone given as a URL is a `HadoopPath` (`sbit_lib/spark/storage.py`): it has the `pathlib` methods
# the library uses, carried out by Hadoop's `FileSystem` in Spark's JVM. Resolving touches
# nothing; only a file operation needs the scheme's connector on the classpath (`hadoop-aws` for
# `s3a://`), and says so when it is missing. `make cluster-test` runs its cluster half on
# `file:///` zones through this same code.

# %%
from sbit_lib.spark.storage import HadoopPath

cloud = Config.resolve(environment="qa", home=config.home, data_root="s3a://sbit-bucket/lakehouse",
                       checkpoint_root="s3a://sbit-bucket/checkpoints")
print(f"landing zone     {cloud.landing_zone!r}")
print(f"one table        {cloud.table_location('heart_rate')}")
print(f"one checkpoint   {cloud.checkpoint_dir('heart_rate')}")
assert isinstance(cloud.landing_zone, HadoopPath) and str(cloud.landing_zone) == "s3a://sbit-bucket/lakehouse/qa/raw"

# %% [markdown]
# ## A wrong parameter says which and why
#
# A typo in a widget on Databricks surfaces minutes later as a missing table. Here the
# configuration refuses it at once, naming the parameter, where it came from and what to use.

# %%
for bad in (dict(environment="Dev-1"), dict(mode="fast"), dict(data_root="file:lakehouse")):
    try:
        Config.resolve(home=config.home, **bad)
    except ConfigError as error:
        print(f"{bad} -> {error}")
    else:
        raise AssertionError(f"{bad} was accepted")

# %% [markdown]
# ## The Spark session
#
# One function starts Spark everywhere (`sbit_lib.course.catalog.get_spark`): the notebooks, the tests,
# the CLI and the stream job. On Databricks the cluster is already configured; locally these
# settings are the difference between a lakehouse and a pile of Parquet files:
#
# * **Delta Lake**: the SQL extension and the Delta catalog, with the Delta jars fetched once by
#   `make setup` and passed as files (no download when Spark starts);
# * **UTC** session time zone, so event times read the same on every laptop;
# * **shuffle partitions = cores**: the default 200 would make every tiny MERGE schedule 200 tasks;
# * **RocksDB state store** for the stateful queries (the stream-stream join), as on Databricks;
# * **FAIR scheduler pools** from the course, so concurrent streams share the cores;
# * **loopback only**: the Spark UI, the driver and its block manager listen on 127.0.0.1, where
#   nobody else on a shared network can reach them (Spark authenticates none of them).
#   `SBIT_SPARK_HOST` opens them for a cluster of several machines.
#
# There is no Hive metastore: an embedded Derby database allows one process at a time, and the
# stream job, a papermill child and this notebook are three processes. Instead every process
# registers the environment's Delta folders in its own in-memory catalog when it starts.

# %%
from sbit_lib.course.catalog import get_spark

spark = get_spark(config)
for key in ("spark.sql.extensions", "spark.sql.catalog.spark_catalog", "spark.sql.session.timeZone",
            "spark.sql.shuffle.partitions", "spark.sql.streaming.stateStore.providerClass",
            "spark.scheduler.mode", "spark.driver.bindAddress"):
    print(f"{key:46} {spark.conf.get(key)}")
print(f"Spark {spark.version}; Spark UI: {spark.sparkContext.uiWebUrl or 'off (SBIT_SPARK_UI=false)'}")
assert spark.conf.get("spark.sql.session.timeZone") == "UTC"

# %% [markdown]
# **Next:** `02-setup` creates the database, the tables and the view at these locations.
