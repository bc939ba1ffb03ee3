# ---
# jupyter:
#   execution:
#     timeout: 900
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
# # 09 · Stream test
#
# The course's `09-stream-test`, locally. On Databricks it creates a *job* that runs `07-run` in stream mode, lands a set, sleeps two minutes and validates. Here:
#
# * the job is a background process (`sbit run --stream`, started by `sbit_lib.ops.job.start_job`) with its log in a file, its status in `status.json` (`sbit status`) and a lock that refuses a second job on the same environment;
# * instead of sleeping, the test **polls**: after landing set *n* it re-checks the tables whenever one of them gets a new Delta version, and goes on as soon as every layer equals the expected results — or fails after `timeout_s`, naming the layer and table still behind;
# * **freshness** (seconds from landing a set to every layer reflecting it) and the job's memory are printed at the end. The course budgets 120 s per set; our target is 20 s.
#
# **Runs:** a background stream job (its own Spark start), then each set until every layer is valid:
# about 2 minutes for set 1 and 1-1.5 minutes for each later set on a 2-core laptop (`make
# stream-test` runs this notebook with two sets).
#
# ```mermaid
# sequenceDiagram
#     participant T as this notebook
#     participant J as stream job (background process)
#     participant D as Delta tables
#     T->>J: start (sbit run --stream)
#     J-->>T: status.json says running
#     loop each set
#         T->>T: Producer.produce(n) lands files
#         J->>D: bronze, silver, gold micro-batches
#         T->>D: re-check on each new Delta version
#     end
#     T->>J: stop request
#     J-->>T: every query stopped, exit 0
# ```

# %% nbmake={"mock": {"sets": 1}} tags=["parameters"]
environment = "stream_test"
sets = 2
processing_time = "1 second"
timeout_s = 300
mode = "default"          # default | course
home = ""
test_data = ""

# %%
from sbit_lib.course.config import Config
from sbit_lib.ops.job import format_status
from sbit_lib.ops.stream_test import StreamTest
from sbit_lib.testing.expectations import Expectations

# Ages are computed as of the date the expected results were computed for.
as_of = Expectations.load(Config.resolve(test_data=test_data).test_data).as_of.isoformat()
config = Config.resolve(environment=environment, mode=mode, home=home, test_data=test_data, as_of=as_of)
test = StreamTest(config, processing_time=processing_time, timeout_s=timeout_s)
print(f"Stream test of {config.db_name}, mode {config.mode}, sets 1..{sets}")

# %% [markdown]
# ## Clean the environment and start the job
#
# The job sets the environment up (tables, view, history) before it starts its queries; `start` waits for its status to say *running*, then we check what it created.

# %%
test.start()
test.validate_setup()

# %% [markdown]
# ## Feed the sets, then stop the job
#
# Each set is landed atomically by the producer; the running queries pick it up at their next trigger. Whatever happens, the job is then stopped by a stop request: every query stops between micro-batches, the process exits 0 (checked), and the checkpoints stay valid for the next start.

# %%
try:
    for n in range(1, sets + 1):
        test.feed(n)
finally:   # a failed set must not leave the job running
    final = test.stop()
print(format_status(config, final).split(chr(10))[0])

# %%
print(test.summary())

# %% [markdown]
# ## What the job did, micro-batch by micro-batch
#
# The job logs one line per micro-batch that read rows (`job.log`, `sbit_lib.ops.job.log_batches`). Each dot below is one of them: when it ran and how many rows per second it processed. Bronze's heart-rate batch (hundreds of thousands of rows) comes first; the silver and gold queries follow at their next triggers with the rows it wrote.

# %%
import matplotlib.pyplot as plt

from sbit_lib.ops.job import batch_log
from sbit_lib.teaching.plots import stream_progress

batches = batch_log(config)
stream_progress(batches)
plt.show()
batches.groupby("query")[["rows"]].agg(["count", "sum"])
