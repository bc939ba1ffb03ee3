"""Notebook 09-stream-test."""

from nbformat.v4 import new_code_cell, new_markdown_cell

from . import notebook, parameters

NAME = "09-stream-test"

NOTEBOOK = notebook([
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
        "printed at the end. The course budgets 120 s per set; our target is 20 s.\n\n"
        "```mermaid\n"
        "sequenceDiagram\n"
        "    participant T as this notebook\n"
        "    participant J as stream job (background process)\n"
        "    participant D as Delta tables\n"
        "    T->>J: start (sbit run --stream)\n"
        "    J-->>T: status.json says running\n"
        "    loop each set\n"
        "        T->>T: Producer.produce(n) lands files\n"
        "        J->>D: bronze, silver, gold micro-batches\n"
        "        T->>D: re-check on each new Delta version\n"
        "    end\n"
        "    T->>J: stop request\n"
        "    J-->>T: every query stopped, exit 0\n"
        "```"),
    parameters('environment = "stream_test"\nsets = 2\nprocessing_time = "1 second"\ntimeout_s = 300\n'
               'mode = "default"          # default | course\nhome = ""\ntest_data = ""',
               ci={"sets": 1}),
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
    new_markdown_cell("## What the job did, micro-batch by micro-batch\n\n"
                      "The job logs one line per micro-batch that read rows (`job.log`, `sbit_lib.job.log_batches`). "
                      "Each dot below is one of them: when it ran and how many rows per second it processed. "
                      "Bronze's heart-rate batch (hundreds of thousands of rows) comes first; the silver and gold "
                      "queries follow at their next triggers with the rows it wrote."),
    new_code_cell("import matplotlib.pyplot as plt\n\nfrom sbit_lib.job import batch_log\nfrom sbit_lib.plots import stream_progress\n\n"
                  "batches = batch_log(config)\nstream_progress(batches)\nplt.show()\n"
                  "batches.groupby(\"query\")[[\"rows\"]].agg([\"count\", \"sum\"])"),
], timeout_s=900)
