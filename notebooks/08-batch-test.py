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
# # 08 · Batch test
#
# The course's `08-batch-test`, locally: start from a clean environment, then for each set land its files, run `07-run` (with papermill, as the course runs it with `dbutils.notebook.run`) and validate every layer against the **expected results**. The expected results come from an independent reference computation in plain Python/pandas over the input files (`sbit_lib/testing/reference.py`), never from Spark.
#
# In **default** mode every silver and gold table must equal the reference row for row. In **course** mode `gym_summary` must equal the course's own `7-gym_summary_<n>.parquet`; the watermarked `workout_bpm` and gold summary depend on micro-batch boundaries, so they are checked between bounds: every row among the reference's possible rows, and at least the rows the watermark must have emitted (`test_data/EXPECTED.md`), the course's own `8-workout_bpm_summary_2.parquet` rows included.
#
# **Runs:** per set, a fresh papermill kernel for `07-run` (its own Spark start) and the validation:
# about 2 minutes per set on a 2-core laptop, 4-5 minutes for the default two sets (`make run` runs
# this notebook).
#
# ```mermaid
# flowchart LR
#     C[clean + setup] --> P1[produce set 1] --> R1[papermill 07-run] --> V1[validate<br/>every layer]
#     V1 --> P2[produce set 2] --> R2[papermill 07-run] --> V2[validate<br/>every layer]
# ```

# %% nbmake={"mock": {"mode": "course", "sets": 1}} tags=["parameters"]
environment = "batch_test"
sets = 2
mode = "default"          # default | course
home = ""
test_data = ""
keep_tables = False     # True: leave the tables for inspection
spark_master = ""        # empty: SBIT_SPARK_MASTER, else local mode (passed on to 07-run)

# %%
import textwrap
import time

import papermill

from sbit_lib.course.config import PROJECT_ROOT, Config
from sbit_lib.testing.expectations import Expectations
from sbit_lib.course.bronze import Bronze
from sbit_lib.course.gold import Gold
from sbit_lib.course.history import HistoryLoader
from sbit_lib.course.producer import Producer
from sbit_lib.course.run import ensure_setup
from sbit_lib.course.catalog import get_spark
from sbit_lib.course.setup_helper import SetupHelper
from sbit_lib.course.silver import Silver
# local_kernel(): papermill talks to each new kernel through local socket files instead of the
# network, so no "Kernel is running over TCP without encryption" warning per run of 07-run.
# printed_output(): what an executed notebook printed (07-run's progress per layer).
from sbit_lib.ops.batch_test import local_kernel, printed_output

# Ages are computed as of the date the expected results were computed for.
as_of = Expectations.load(Config.resolve(test_data=test_data).test_data).as_of.isoformat()
config = Config.resolve(environment=environment, mode=mode, home=home, test_data=test_data, as_of=as_of,
                        spark_master=spark_master)
spark = get_spark(config)
build = PROJECT_ROOT / "build"
build.mkdir(exist_ok=True)
print(f"Batch test of {config.db_name}, mode {config.mode}, sets 1..{sets}")

# %%
SetupHelper(config, spark).cleanup()
ensure_setup(config, spark)
SetupHelper(config, spark).validate()
HistoryLoader(config, spark).validate()

# %%
for n in range(1, sets + 1):
    Producer(config).produce(n)
    Producer(config).validate(n)
    run_notebook = build / f"07-run-{config.environment}-set{n}.ipynb"
    started = time.monotonic()
    papermill.execute_notebook(
        str(PROJECT_ROOT / "notebooks" / "07-run.ipynb"), str(run_notebook),
        parameters=dict(environment=config.environment, run_type="once", mode=config.mode,
                        home=str(config.home), test_data=str(config.test_data), as_of=as_of,
                        spark_master=config.spark_master),
        cwd=str(PROJECT_ROOT / "notebooks"), progress_bar=False, **local_kernel())
    print(f"07-run of set {n}: {time.monotonic() - started:.0f} s in a new kernel ({run_notebook.name})")
    print(textwrap.indent(printed_output(run_notebook).strip(), "  "))
    Bronze(config, spark).validate(n)
    Silver(config, spark).validate(n)
    Gold(config, spark).validate(n)
    print(f"Set {n} validated")

# %%
spark.table(config.qualified("gym_summary")).show(truncate=False)
spark.table(config.qualified("workout_bpm_summary")).orderBy("user_id", "session_id").show(truncate=False)

# %%
if not keep_tables:
    SetupHelper(config, spark).cleanup()
