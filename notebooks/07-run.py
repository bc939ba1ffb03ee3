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
# # 07 · Run the pipeline
#
# The course's `07-run`: set up the environment if it is new (tables, the `gym_summary` view, the `date_lookup` history), then run **bronze**, the three **silver** waves and **gold**.
#
# * `run_type = "once"` — every query uses `trigger(availableNow=True)`: it reads everything landed so far, in micro-batches, and stops. Each wave finishes before the next starts, because each reads the tables the previous one writes.
# * `run_type = "stream"` — every query uses `trigger(processingTime=...)` and keeps running: this notebook *is* then the stream job (`sbit_lib.ops.job.run_job`). It holds the environment's lock, writes its status (`sbit status`), and runs until `sbit stop --env <environment>` or an interrupt, then stops every query between micro-batches.
#
# On Databricks the parameters are widgets; here they are a papermill `parameters` cell, so `08-batch-test` can run this notebook with other values, as the course does with `dbutils.notebook.run`.
#
# ```mermaid
# flowchart LR
#     S[setup + history<br/>if new] --> B[bronze<br/>3 queries]
#     B --> W1[silver wave 1<br/>5 queries] --> W2[silver wave 2<br/>2 queries] --> W3[silver wave 3<br/>1 query]
#     W3 --> G[gold<br/>1 query]
# ```
#
# **Runs:** the whole pipeline over everything landed; after 02-06 have run, every query finds its
# checkpoint up to date and the run takes about 30-60 s on a 2-core laptop; on a fresh environment
# with set 1 landed, about 2 minutes.
#
# In a batch run each box waits for the previous one. In a stream run all twelve queries start together and keep running; each picks up what the one before it writes at its next trigger, so a landed file reaches gold a few triggers later. The queries run in the course's FAIR scheduler pools, so a big heart-rate batch does not starve the small streams.

# %% tags=["parameters"]
environment = "dev"
run_type = "once"          # once | stream
processing_time = "5 seconds"
mode = ""                  # default | course (empty: SBIT_MODE, else default)
home = ""                  # empty: SBIT_HOME or ./lakehouse
test_data = ""             # empty: SBIT_TEST_DATA or ./test_data
as_of = ""                 # empty: SBIT_AS_OF, else the expected results' date (ages in user_bins)
spark_master = ""          # empty: SBIT_SPARK_MASTER, else local mode, e.g. spark://host:7077

# %%
from sbit_lib.course.run import run
from sbit_lib.ops.job import run_job
from sbit_lib.teaching.explore import lesson_config

if run_type not in ("once", "stream"):
    raise ValueError(f"run_type must be 'once' or 'stream', got {run_type!r}")
config = lesson_config(environment, home, test_data, mode=mode, as_of=as_of, spark_master=spark_master)
if run_type == "once":
    queries = run(config, once=True)
else:   # blocks until `sbit stop`; the queries are stopped when it returns
    run_job(config, processing_time=processing_time, handle_signals=False)
    queries = []

# %% [markdown]
# The code that just ran, as the library has it (`sbit_lib/course/run.py`): the lock, then setup if
# needed, then each layer's queries in order. Notebooks 04-06 build these queries cell by cell.

# %%
from sbit_lib.course import run as run_module
from sbit_lib.teaching.show import show

show(run_module.run, run_module._start)

# %%
# What ran: one line per streaming query, with the rows its last micro-batch read.
for q in queries:
    progress = q.lastProgress or {}
    print(f"{q.name:40} active={q.isActive!s:5} last batch rows={progress.get('numInputRows', 0):>8,}")
