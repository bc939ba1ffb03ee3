"""Notebook 08-batch-test."""

from nbformat.v4 import new_code_cell, new_markdown_cell

from . import notebook, parameters

NAME = "08-batch-test"

NOTEBOOK = notebook([
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
        "subset of the reference.\n\n"
        "```mermaid\n"
        "flowchart LR\n"
        "    C[clean + setup] --> P1[produce set 1] --> R1[papermill 07-run] --> V1[validate<br/>every layer]\n"
        "    V1 --> P2[produce set 2] --> R2[papermill 07-run] --> V2[validate<br/>every layer]\n"
        "```"),
    parameters('environment = "batch_test"\nsets = 2\nmode = "default"          # default | course\n'
               'home = ""\ntest_data = ""\nkeep_tables = False     # True: leave the tables for inspection\n'
               'spark_master = ""        # empty: SBIT_SPARK_MASTER, else local mode (passed on to 07-run)',
               # CI runs set 1 in course mode here (against the course's own gym_summary);
               # default mode runs on both sets in tests/test_restart.py (and in `make run`).
               ci={"mode": "course", "sets": 1}),
    new_code_cell(
        "from pathlib import Path\n\nimport papermill\n\n"
        "from sbit_lib.config import PROJECT_ROOT, Config\nfrom sbit_lib.expectations import Expectations\n"
        "from sbit_lib.bronze import Bronze\nfrom sbit_lib.gold import Gold\nfrom sbit_lib.history import HistoryLoader\n"
        "from sbit_lib.producer import Producer\nfrom sbit_lib.run import ensure_setup\n"
        "from sbit_lib.session import get_spark\nfrom sbit_lib.setup_helper import SetupHelper\n"
        "from sbit_lib.silver import Silver\n\n"
        "# Ages are computed as of the date the expected results were computed for.\n"
        "as_of = Expectations.load(Config.resolve(test_data=test_data).test_data).as_of.isoformat()\n"
        "config = Config.resolve(environment=environment, mode=mode, home=home, test_data=test_data, as_of=as_of,\n"
        "                        spark_master=spark_master)\n"
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
        "                        home=str(config.home), test_data=str(config.test_data), as_of=as_of,\n"
        "                        spark_master=config.spark_master),\n"
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
], timeout_s=900)
