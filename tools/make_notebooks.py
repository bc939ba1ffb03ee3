"""Write the papermill notebooks 07-run, 08-batch-test and 09-stream-test from the cell sources below.

The notebooks are committed; this script only keeps their source readable in review
(`python tools/make_notebooks.py` rewrites them, outputs empty).
"""

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


def notebook(cells) -> nbformat.NotebookNode:
    for number, cell in enumerate(cells, start=1):
        cell.id = f"cell-{number:02d}"      # stable ids: regenerating changes nothing that did not change
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    return nb


def parameters(source: str):
    cell = new_code_cell(source)
    cell.metadata["tags"] = ["parameters"]
    return cell


RUN = notebook([
    new_markdown_cell(
        "# 07 · Run the pipeline\n\n"
        "The course's `07-run`: set up the environment if it is new (tables, the `gym_summary` view, "
        "the `date_lookup` history), then run **bronze**, the three **silver** waves and **gold**.\n\n"
        "* `run_type = \"once\"` — every query uses `trigger(availableNow=True)`: it reads everything "
        "landed so far, in micro-batches, and stops. Each wave finishes before the next starts, "
        "because each reads the tables the previous one writes.\n"
        "* `run_type = \"stream\"` — every query uses `trigger(processingTime=...)` and keeps running: "
        "this notebook *is* then the stream job (`sbit_lib.job.run_job`). It holds the environment's "
        "lock, writes its status (`sbit status`), and runs until `sbit stop --env <environment>` or "
        "an interrupt, then stops every query between micro-batches.\n\n"
        "On Databricks the parameters are widgets; here they are a papermill `parameters` cell, so "
        "`08-batch-test` can run this notebook with other values, as the course does with "
        "`dbutils.notebook.run`."),
    parameters('environment = "dev"\nrun_type = "once"          # once | stream\n'
               'processing_time = "5 seconds"\nmode = ""                  # "" = SBIT_MODE or default; '
               'default | course\nhome = ""                  # "" = SBIT_HOME or ./lakehouse\n'
               'test_data = ""             # "" = SBIT_TEST_DATA or ./test_data\n'
               'as_of = ""                 # "" = SBIT_AS_OF or today'),
    new_code_cell(
        "from sbit_lib.config import Config\nfrom sbit_lib.job import run_job\nfrom sbit_lib.run import run\n\n"
        "if run_type not in (\"once\", \"stream\"):\n"
        "    raise ValueError(f\"run_type must be 'once' or 'stream', got {run_type!r}\")\n"
        "config = Config.resolve(environment=environment, mode=mode, home=home, test_data=test_data, as_of=as_of)\n"
        "if run_type == \"once\":\n"
        "    queries = run(config, once=True)\n"
        "else:   # blocks until `sbit stop`; the queries are stopped when it returns\n"
        "    run_job(config, processing_time=processing_time, handle_signals=False)\n"
        "    queries = []"),
    new_code_cell(
        "# What ran: one line per streaming query, with the rows its last micro-batch read.\n"
        "for q in queries:\n"
        "    progress = q.lastProgress or {}\n"
        "    print(f\"{q.name:40} active={q.isActive!s:5} last batch rows={progress.get('numInputRows', 0):>8,}\")"),
])

BATCH_TEST = notebook([
    new_markdown_cell(
        "# 08 · Batch test\n\n"
        "The course's `08-batch-test`, locally: start from a clean environment, then for each set "
        "land its files, run `07-run` (with papermill, as the course runs it with "
        "`dbutils.notebook.run`) and validate every layer against the **expected results**. "
        "The expected results come from an independent reference computation in plain "
        "Python/pandas over the input files (`sbit_lib/reference.py`), never from Spark.\n\n"
        "In **default** mode every silver and gold table must equal the reference row for row. "
        "In **course** mode `gym_summary` must equal the course's own `7-gym_summary_<n>.parquet`; "
        "the watermarked gold summary depends on micro-batch boundaries, so it is checked as a "
        "subset of the reference."),
    parameters('environment = "batch_test"\nsets = 2\nmode = "default"          # default | course\n'
               'home = ""\ntest_data = ""\nkeep_tables = False     # True: leave the tables for inspection'),
    new_code_cell(
        "from pathlib import Path\n\nimport papermill\n\n"
        "from sbit_lib.config import PROJECT_ROOT, Config\nfrom sbit_lib.expectations import Expectations\n"
        "from sbit_lib.bronze import Bronze\nfrom sbit_lib.gold import Gold\nfrom sbit_lib.history import HistoryLoader\n"
        "from sbit_lib.producer import Producer\nfrom sbit_lib.run import ensure_setup\n"
        "from sbit_lib.session import get_spark\nfrom sbit_lib.setup_helper import SetupHelper\n"
        "from sbit_lib.silver import Silver\n\n"
        "# Ages are computed as of the date the expected results were computed for.\n"
        "as_of = Expectations.load(Config.resolve(test_data=test_data).test_data).as_of.isoformat()\n"
        "config = Config.resolve(environment=environment, mode=mode, home=home, test_data=test_data, as_of=as_of)\n"
        "spark = get_spark(config)\nbuild = PROJECT_ROOT / \"build\"\nbuild.mkdir(exist_ok=True)\n"
        "print(f\"Batch test of {config.db_name}, mode {config.mode}, sets 1..{sets}\")"),
    new_code_cell(
        "SetupHelper(config, spark).cleanup()\nensure_setup(config, spark)\n"
        "SetupHelper(config, spark).validate()\nHistoryLoader(config, spark).validate()"),
    new_code_cell(
        "for n in range(1, sets + 1):\n"
        "    Producer(config).produce(n)\n"
        "    Producer(config).validate(n)\n"
        "    papermill.execute_notebook(\n"
        "        str(PROJECT_ROOT / \"notebooks\" / \"07-run.ipynb\"),\n"
        "        str(build / f\"07-run-{config.environment}-set{n}.ipynb\"),\n"
        "        parameters=dict(environment=config.environment, run_type=\"once\", mode=config.mode,\n"
        "                        home=str(config.home), test_data=str(config.test_data), as_of=as_of),\n"
        "        cwd=str(PROJECT_ROOT / \"notebooks\"), progress_bar=False)\n"
        "    Bronze(config, spark).validate(n)\n"
        "    Silver(config, spark).validate(n)\n"
        "    Gold(config, spark).validate(n)\n"
        "    print(f\"Set {n} validated\")"),
    new_code_cell(
        "spark.table(config.qualified(\"gym_summary\")).show(truncate=False)\n"
        "spark.table(config.qualified(\"workout_bpm_summary\")).orderBy(\"user_id\", \"session_id\").show(truncate=False)"),
    new_code_cell(
        "if not keep_tables:\n    SetupHelper(config, spark).cleanup()"),
])

STREAM_TEST = notebook([
    new_markdown_cell(
        "# 09 · Stream test\n\n"
        "The course's `09-stream-test`, locally. On Databricks it creates a *job* that runs `07-run` in "
        "stream mode, lands a set, sleeps two minutes and validates. Here:\n\n"
        "* the job is a background process (`sbit run --stream`, started by `sbit_lib.job.start_job`) with "
        "its log in a file, its status in `status.json` (`sbit status`) and a lock that refuses a second "
        "job on the same environment;\n"
        "* instead of sleeping, the test **polls**: after landing set *n* it re-checks the tables whenever "
        "one of them gets a new Delta version, and goes on as soon as every layer equals the expected "
        "results — or fails after `timeout_s`, naming the layer and table still behind;\n"
        "* **freshness** (seconds from landing a set to every layer reflecting it) and the job's memory are "
        "printed at the end. The course budgets 120 s per set; our target is 20 s."),
    parameters('environment = "stream_test"\nsets = 2\nprocessing_time = "1 second"\ntimeout_s = 300\n'
               'mode = "default"          # default | course\nhome = ""\ntest_data = ""'),
    new_code_cell(
        "from sbit_lib.config import Config\nfrom sbit_lib.expectations import Expectations\n"
        "from sbit_lib.job import format_status\nfrom sbit_lib.stream_test import StreamTest\n\n"
        "# Ages are computed as of the date the expected results were computed for.\n"
        "as_of = Expectations.load(Config.resolve(test_data=test_data).test_data).as_of.isoformat()\n"
        "config = Config.resolve(environment=environment, mode=mode, home=home, test_data=test_data, as_of=as_of)\n"
        "test = StreamTest(config, processing_time=processing_time, timeout_s=timeout_s)\n"
        "print(f\"Stream test of {config.db_name}, mode {config.mode}, sets 1..{sets}\")"),
    new_markdown_cell("## Clean the environment and start the job\n\n"
                      "The job sets the environment up (tables, view, history) before it starts its queries; "
                      "`start` waits for its status to say *running*, then we check what it created."),
    new_code_cell("test.start()\ntest.validate_setup()"),
    new_markdown_cell("## Feed the sets, then stop the job\n\nEach set is landed atomically by the producer; "
                      "the running queries pick it up at their next trigger. Whatever happens, the job is "
                      "then stopped by a stop request: every query stops between micro-batches, the process "
                      "exits 0 (checked), and the checkpoints stay valid for the next start."),
    new_code_cell("try:\n    for n in range(1, sets + 1):\n        test.feed(n)\n"
                  "finally:   # a failed set must not leave the job running\n    final = test.stop()\n"
                  "print(format_status(config, final).split(chr(10))[0])"),
    new_code_cell("print(test.summary())"),
])


if __name__ == "__main__":
    NOTEBOOKS.mkdir(exist_ok=True)
    nbformat.write(RUN, NOTEBOOKS / "07-run.ipynb")
    nbformat.write(BATCH_TEST, NOTEBOOKS / "08-batch-test.ipynb")
    nbformat.write(STREAM_TEST, NOTEBOOKS / "09-stream-test.ipynb")
    print("wrote 07-run, 08-batch-test and 09-stream-test in", NOTEBOOKS)
