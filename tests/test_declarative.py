"""The pipeline declared with pyspark.pipelines (sbit_lib/declarative, notebook 11).

`sbit declarative run` runs in its own process (Spark Declarative Pipelines need a Spark
Connect session; this process holds the tests' classic one) over sets 1 and 2 of the
course's data, landed together: heart rate thinned as in the fault test, and a few bad records added (a short
CSV line, lines that are not JSON, records silver rejects) so the quarantine and the rejects
flows write rows. The tables are read here and compared with the expected results, computed
from the same files without Spark (sbit_lib/testing/reference.py). Then a run with no new
data, and a full refresh, must leave the same tables. Those three runs are the full tier
(`make test-full`); the fast tier's declarative run is notebook 11's (under nbmake), checked
against the same expected results. The three run one after another in one Python process, each
through `cli.main` as the `sbit` script runs it: the runner starts its Connect server again in the
JVM the first run started, sparing the later runs a JVM's start-up.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from sbit_lib.course.config import DECLARATIVE_CHECKPOINTS, PROJECT_ROOT, Config, ConfigError
from sbit_lib.course.producer import Producer
from sbit_lib.declarative import runner
from sbit_lib.ops import cli
from sbit_lib.ops.fault import make_data
from sbit_lib.testing.expectations import Expectations
from sbit_lib.testing.reference import write_expectations
from sbit_lib.testing.validation import fingerprint

# Flows per run: a flow per dataset, except quarantine_bz (3 append flows, one per source) and
# rejects_sv (5, one per wave-1 silver table): 16 - 2 + 3 + 5.
FLOWS = 22
# Bad records added to the course's files: (file, line). Offsets above any of the course's.
BAD_LINES = [
    ("1-registered_users_2.csv", "99999,1"),                                    # a field short: quarantined
    ("3-bpm_1.json", "not json at all"),                                        # quarantined
    ("3-bpm_1.json", '{"key":"k","value":"{\\"time\\": 1678492800, \\"heartrate\\": 70.0}","topic":"bpm",'
                     '"partition":0,"offset":90000001,"timestamp":1678492800}'),  # no device_id: rejected
    ("2-user_info_1.json", '{"key":"k","value":"not json","topic":"user_info","partition":0,'
                           '"offset":90000002,"timestamp":1678492800}'),          # value not JSON: rejected
    ("4-workout_2.json", '{"key":"k","value":"{\\"user_id\\": 1, \\"workout_id\\": 1, \\"timestamp\\": 1678608300, '
                         '\\"action\\": \\"pause\\", \\"session_id\\": 1}","topic":"workout","partition":0,'
                         '"offset":90000003,"timestamp":1678608300}'),           # unknown action: rejected
]


# A Python process that runs `sbit` commands one after another (each line of its stdin: the
# command's arguments as a JSON list), as `cli.main` does for the console script, and ends each
# command's output with a line `END <exit code>`.
_SBIT_COMMANDS = """
import json, sys
from sbit_lib.ops import cli
for line in sys.stdin:
    code = cli.main(json.loads(line))
    print(f"\\nEND {code}", flush=True)
"""


class DeclarativeRuns:
    """`sbit declarative run`s in one Python process: the first starts the JVM, the next ones reuse it."""

    def __init__(self, config: Config, log: Path):
        self.config, self.log = config, log
        self._stderr = log.open("w")
        self.process = subprocess.Popen([sys.executable, "-c", _SBIT_COMMANDS], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, stderr=self._stderr, text=True,
                                        env={**os.environ, "PYTHONUNBUFFERED": "1"})
        self._lines: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self._lines.put(line)
        self._lines.put(None)                       # the process has ended

    def run(self, *args: str, timeout_s: float = 900) -> str:
        """`sbit declarative run *args` in the environment; its stdout, once it has completed."""
        config = self.config
        command = ["declarative", "run", *args, "--env", config.environment, "--home", str(config.home),
                   "--test-data", str(config.test_data), "--as-of", config.as_of.isoformat()]
        logged_before = self.log.stat().st_size       # the process writes its stderr there itself
        self.process.stdin.write(json.dumps(command) + "\n")
        self.process.stdin.flush()
        output, deadline = [], time.monotonic() + timeout_s
        while True:
            try:
                line = self._lines.get(timeout=max(deadline - time.monotonic(), 0))
            except queue.Empty:
                raise AssertionError(f"sbit {' '.join(command[:3])} did not end within {timeout_s:.0f} s:\n"
                                     f"{''.join(output)}\n{self._log_tail()}") from None
            if line is None or line.startswith("END "):
                break
            output.append(line)
        stdout, ended = "".join(output), (line or "the process died").strip()
        assert ended == "END 0", f"sbit {' '.join(command[:3])} failed ({ended}):\n{stdout}\n{self._log_tail()}"
        assert "Run is COMPLETED" in stdout, stdout
        # A run that succeeds logs no error: no ERROR line, no Java stack trace.
        with self.log.open() as log:
            log.seek(logged_before)
            logged = log.read()
        errors = [line for line in logged.splitlines() if " ERROR " in line or line.lstrip().startswith("at java.")]
        assert not errors, f"sbit {' '.join(command[:3])} succeeded but logged errors:\n{logged[-3000:]}"
        return stdout

    def _log_tail(self) -> str:
        self._stderr.flush()
        return self.log.read_text()[-3000:]

    def close(self) -> None:
        self.process.stdin.close()                  # the loop ends, the process (and its JVM) exits
        try:
            self.process.wait(timeout=120)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=60)
        self._stderr.close()


def versions(spark, config) -> dict[str, int]:
    return {t: spark.sql(f"DESCRIBE HISTORY {config.qualified(t)} LIMIT 1").first()["version"]
            for t in runner.DATASETS}


def changed_tables(spark, config, before: dict[str, int]) -> list[str]:
    """The tables whose rows now differ from the rows they held at version `before[table]`
    (duplicates counted), load times aside: a full refresh reads the landed files again, at a
    new time. Compared by schema and fingerprint (one aggregation per version); the rows of a
    table that differs are printed for the failure's report."""
    changed = []
    for table in before:
        now = spark.table(config.qualified(table))
        then = spark.read.format("delta").option("versionAsOf", before[table]).load(str(config.table_location(table)))
        if [f for f in now.schema if f.name != "load_time"] != [f for f in then.schema if f.name != "load_time"]:
            changed.append(table)
            print(f"{table}: columns now {now.schema.simpleString()}, then {then.schema.simpleString()}")
            continue
        columns = [c for c in now.columns if c != "load_time"]
        now, then = now.select(*columns), then.select(*columns)
        if fingerprint(now) != fingerprint(then):
            changed.append(table)
            print(f"{table}: rows now and not then, then and not now")
            now.exceptAll(then).show(5, truncate=False)
            then.exceptAll(now).show(5, truncate=False)
    return changed


@pytest.fixture(scope="module")
def after_sets_1_and_2(spark, lakehouse_home, test_data, tmp_path_factory):
    """(config, the first run's output, the process that runs the module's runs) after one run over sets 1-2."""
    # The fault test's small sets 1-2: the course's files, heart rate cut to one reading per 15 s
    # (still every workout, late, duplicate and invalid reading), expected results from the
    # reference: each run is mostly fixed cost, so small data keeps it short; notebook 11 runs the
    # full set 1.
    data = make_data(tmp_path_factory.mktemp("declarative-data"), source=test_data)
    for name, line in BAD_LINES:
        text = (data / name).read_text()
        (data / name).write_text(text + ("" if text.endswith("\n") else "\n") + line + "\n")
    write_expectations(data, sets=(1, 2))          # the reference, again, over the files as they are now
    bad = Expectations.load(data)
    assert bad.table("default", 2, "quarantine_bz").count == 2 and bad.table("default", 2, "rejects_sv").count == 3
    config = Config.resolve(environment="declared", home=lakehouse_home, test_data=data,
                            as_of=Expectations.load(data).as_of)
    # Both sets landed, one run: every run costs about a minute of fixed cost here (docs/declarative.md),
    # and CI time is budgeted. Set 2 run after set 1 is what notebook 11 does with its default sets=2.
    Producer(config).produce(1)
    Producer(config).produce(2)
    runs = DeclarativeRuns(config, tmp_path_factory.mktemp("declarative-runs") / "stderr.log")
    try:
        output = runs.run()
        runner.register_existing(spark, config)
        yield config, output, runs
    finally:
        runs.close()


@pytest.mark.full
def test_after_sets_1_and_2_every_table_equals_the_expected_results(spark, after_sets_1_and_2):
    config, output, _ = after_sets_1_and_2
    # `sbit validate 2`, as a user checks it: the landing zone, then every layer
    assert cli.main(["validate", "2", "--env", config.environment, "--home", str(config.home),
                     "--test-data", str(config.test_data), "--as-of", config.as_of.isoformat()]) == 0
    # Real Delta tables, at the hand-built pipeline's locations, made by the pipeline's flows.
    for table in runner.DATASETS:
        detail = spark.sql(f"DESCRIBE DETAIL {config.qualified(table)}").first()
        assert detail["format"] == "delta", table
        assert detail["location"].rstrip("/").endswith(f"/{config.environment}/data/delta/{table}"), detail["location"]
    assert output.count("has COMPLETED") == FLOWS, output       # every flow ran


@pytest.mark.full
def test_a_run_without_new_data_changes_no_table(spark, after_sets_1_and_2):
    config, _, runs = after_sets_1_and_2
    before = versions(spark, config)
    runs.run()
    assert changed_tables(spark, config, before) == []     # (the fingerprint's own test: test_validation.py)
    # The streaming tables read no file twice: no row was appended.
    for table in ("registered_users_bz", "gym_logins_bz", "kafka_multiplex_bz", "quarantine_bz"):
        appended = spark.sql(f"DESCRIBE HISTORY {config.qualified(table)}").where(
            f"version > {before[table]} AND operationMetrics['numOutputRows'] > 0").count()
        assert appended == 0, table


@pytest.mark.full
def test_a_full_refresh_rebuilds_the_same_tables(spark, after_sets_1_and_2):
    config, _, runs = after_sets_1_and_2
    before = versions(spark, config)
    output = runs.run("--full-refresh")
    assert "Full refresh of the declarative pipeline" in output, output
    # Streaming tables emptied and read again from the landed files, views recomputed: the same
    # columns and rows as before (which the first test checks against the expected results).
    assert changed_tables(spark, config, before) == []
    # ... from new checkpoints: the full refresh really read the files again.
    for table in ("kafka_multiplex_bz", "rejects_sv"):
        rewritten = spark.sql(f"DESCRIBE HISTORY {config.qualified(table)}").where(
            f"version > {before[table]} AND operationMetrics['numOutputRows'] > 0").count()
        assert rewritten > 0, table


# ---------------------------------------------------------------- wrong use, refused before Spark starts
def test_course_mode_is_refused_with_the_reason(make_config):
    with pytest.raises(ConfigError, match="default mode only.*watermarked"):
        runner.check_environment(make_config("declared_course", mode="course"))


def test_an_environment_of_the_hand_built_pipeline_is_refused(make_config):
    config = make_config("handbuilt")
    config.checkpoint_dir("users").mkdir(parents=True)
    with pytest.raises(ConfigError, match="hand-built pipeline.*--env handbuilt_dp"):
        runner.check_environment(config)


def test_sbit_run_refuses_the_declarative_pipeline_s_environment(make_config, capsys):
    config = make_config("declared_only")
    config.checkpoint_zone.joinpath(DECLARATIVE_CHECKPOINTS).mkdir(parents=True)
    code = cli.main(["run", "--env", config.environment, "--home", str(config.home)])
    assert code == 2
    assert "holds the declarative pipeline's tables" in capsys.readouterr().err


def test_dry_run_takes_no_full_refresh(make_config, capsys):
    config = make_config("declared_dry")
    code = cli.main(["declarative", "dry-run", "--full-refresh", "--env", config.environment,
                     "--home", str(config.home)])
    assert code == 2
    assert "a dry run writes nothing" in capsys.readouterr().err


# A dry run through the runner's API whose `echo`, once the run's session is up (the line saying
# "session ready"), writes the port of the run's Connect server to <meeting>/<environment>, prints
# the TCP ports its process and JVM listen on (a line LISTENERS <json>) and waits,
# the session still up, until the other run has written its own: both servers up at once, or a
# timeout (one run waiting for the other's port would never see it) that fails the run.
_DRY_RUN_THAT_WAITS_FOR_THE_OTHER = """
import json, os, sys, time
from pathlib import Path
from pyspark import SparkContext
from tests.conftest import listeners
from sbit_lib.course.config import Config
from sbit_lib.declarative import runner

environment, home, meeting = sys.argv[1], sys.argv[2], Path(sys.argv[3])

def echo(line):
    print(line, flush=True)
    if "session ready" not in line:
        return
    service = getattr(SparkContext._active_spark_context._jvm, "org.apache.spark.sql.connect.service.SparkConnectService$")
    (meeting / environment).write_text(str(getattr(service, "MODULE$").localPort()))
    print("LISTENERS " + json.dumps(listeners(os.getpid())), flush=True)
    deadline = time.monotonic() + 300
    while len(list(meeting.iterdir())) < 2:
        if time.monotonic() > deadline:
            raise TimeoutError("the other run's session was not up within 300 s of this one's")
        time.sleep(0.05)
    print("both sessions up", flush=True)

runner.run(Config.resolve(environment=environment, home=home), dry_run=True, echo=echo)
"""


def test_two_runs_at_once_on_one_machine_each_get_a_connect_server_of_their_own(make_config, tmp_path):
    """pyspark's local Connect server always takes port 15002 and its client dials it: two runs at
    once (a test beside notebook 11, two environments) collided. Each run's server now takes a
    free port of its own: two dry runs started together, each holding its session until the
    other's is up, both resolve the graph, on two ports. And every port either run listens on
    (Connect, the driver's RPC, the block manager, the UI) is on loopback."""
    meeting = tmp_path / "sessions-up"
    meeting.mkdir()
    configs = [make_config(f"declared_at_once_{n}") for n in (1, 2)]
    # The first run with the Spark UI on (the tests turn it off), so its listener is checked too.
    envs = [{**os.environ, "SBIT_SPARK_UI": "true"}, os.environ]
    runs = [subprocess.Popen([sys.executable, "-c", _DRY_RUN_THAT_WAITS_FOR_THE_OTHER, c.environment,
                              str(c.home), str(meeting)], cwd=PROJECT_ROOT, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for c, env in zip(configs, envs)]
    outputs = {}
    for config, run in zip(configs, runs):
        out, err = run.communicate(timeout=600)
        assert run.returncode == 0, f"{config.environment}: {out[-2000:]}\n{err[-3000:]}"
        assert "both sessions up" in out, out
        outputs[config.environment] = out
    ports = {c.environment: int((meeting / c.environment).read_text()) for c in configs}
    assert len(set(ports.values())) == 2, ports
    # Local by default: the run's Connect server, its driver, block manager and UI on loopback only.
    for environment, out in outputs.items():
        listening = json.loads(next(line for line in out.splitlines() if line.startswith("LISTENERS "))[10:])
        assert ports[environment] in [port for _, _, _, port, _ in listening], (environment, listening)
        assert len(listening) >= (4 if environment == configs[0].environment else 3), (environment, listening)
        beyond = [entry for entry in listening if not entry[4]]
        assert not beyond, f"{environment}: listening beyond loopback: {beyond}"
