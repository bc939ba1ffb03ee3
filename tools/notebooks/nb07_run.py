"""Notebook 07-run."""

from nbformat.v4 import new_code_cell, new_markdown_cell

from . import notebook, parameters

NAME = "07-run"

NOTEBOOK = notebook([
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
        "`dbutils.notebook.run`.\n\n"
        "```mermaid\n"
        "flowchart LR\n"
        "    S[setup + history<br/>if new] --> B[bronze<br/>3 queries]\n"
        "    B --> W1[silver wave 1<br/>5 queries] --> W2[silver wave 2<br/>2 queries] --> W3[silver wave 3<br/>1 query]\n"
        "    W3 --> G[gold<br/>1 query]\n"
        "```\n\n"
        "In a batch run each box waits for the previous one. In a stream run all twelve queries "
        "start together and keep running; each picks up what the one before it writes at its next "
        "trigger, so a landed file reaches gold a few triggers later. The queries run in the course's "
        "FAIR scheduler pools, so a big heart-rate batch does not starve the small streams."),
    parameters('environment = "dev"\nrun_type = "once"          # once | stream\n'
               'processing_time = "5 seconds"\nmode = ""                  # default | course (empty: SBIT_MODE, '
               'else default)\nhome = ""                  # empty: SBIT_HOME or ./lakehouse\n'
               'test_data = ""             # empty: SBIT_TEST_DATA or ./test_data\n'
               'as_of = ""                 # empty: SBIT_AS_OF, else the expected results\' date (ages in user_bins)\n'
               'spark_master = ""          # empty: SBIT_SPARK_MASTER, else local mode, e.g. spark://host:7077'),
    new_code_cell(
        "from sbit_lib.explore import lesson_config\nfrom sbit_lib.job import run_job\nfrom sbit_lib.run import run\n\n"
        "if run_type not in (\"once\", \"stream\"):\n"
        "    raise ValueError(f\"run_type must be 'once' or 'stream', got {run_type!r}\")\n"
        "config = lesson_config(environment, home, test_data, mode=mode, as_of=as_of, spark_master=spark_master)\n"
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
], timeout_s=600)
