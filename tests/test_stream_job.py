"""The stream job in its own process, watched and stopped from outside, as a user would.

A file landed while it runs is read at the next trigger; a half-copied file (the
producer's hidden temporary name) is never read; a malformed file does not stop it;
`sbit status` shows it; `sbit stop` and SIGTERM stop it with exit 0; a restart after a
clean stop with no new data changes no table.

All of this runs on the course's data, in a job of its own: the long tail (`full`). The fast
tier (`make test`) makes the same checks on the job that tests/test_bad_input.py's dirty stream
test already runs, once it has validated every layer; that test imports the helpers below.
"""

import json
import os
import signal
from datetime import datetime

import pytest

from sbit_lib.course.config import Config
from sbit_lib.course.tables import ALL_TABLES
from sbit_lib.ops.job import read_status
from sbit_lib.ops.stream_test import StreamTest
from sbit_lib.spark.storage import atomic_copy
from tests.conftest import sbit_cli, wait_for

QUERIES = 12


def count(spark, config, table: str, where: str | None = None) -> int:
    df = spark.read.format("delta").load(str(config.table_location(table)))
    return (df.where(where) if where else df).count()


def last_commit_time(config) -> float:
    """Wall-clock time of the newest Delta commit of any table (its log file's mtime)."""
    return max((e.stat().st_mtime for t in ALL_TABLES
                for e in (config.table_location(t.name) / "_delta_log").glob("*.json")), default=0.0)


def wait_until_caught_up(test, config, timeout_s: float, what: str) -> None:
    """Poll until every query of this job has reported a trigger that started after the newest
    commit of any table and read no rows: each one looked again once everything upstream was
    written, and found nothing left. (Spark reports an empty trigger at most every 10 s.)

    Judged from the queries' own progress, not from a snapshot of "idle" messages: with 12
    queries polling every second on a busy machine, all of them are rarely idle at one instant.
    """
    def caught_up() -> bool:
        status = read_status(config) or {}
        if status.get("pid") != test.job.pid or status.get("state") != "running":
            return False
        queries, since = status.get("queries") or [], last_commit_time(config)
        return len(queries) == QUERIES and all(
            q.get("last_rows") == 0 and q.get("last_progress")
            and datetime.fromisoformat(q["last_progress"]).timestamp() > since for q in queries)

    wait_for(caught_up, timeout_s, what)


def checkpoint_files(config) -> set:
    return {p.relative_to(config.checkpoint_zone).as_posix() for p in config.checkpoint_zone.rglob("*")
            if p.is_file() and "/state/" not in p.as_posix()}


@pytest.mark.full
def test_a_running_job_reads_landed_files_skips_half_copied_ones_and_survives_bad_ones(
        spark, lakehouse_home, test_data, tmp_path):
    config = Config.resolve(environment="stream_job", home=lakehouse_home, test_data=test_data)
    args = ["--env", config.environment, "--home", str(config.home), "--test-data", str(test_data)]
    test = StreamTest(config, processing_time="1 second", timeout_s=300, spark=spark)
    test.start()
    kafka = config.landing_zone / "kafka_multiplex_bz"
    lines = (test_data / "3-bpm_1.json").read_text().splitlines(keepends=True)[:200]

    # A copy in progress, under the producer's hidden temporary name, its last line cut short.
    partial = kafka / ".3-bpm-part.json.4242.tmp"
    partial.write_text("".join(lines[:100]) + lines[100][:40])
    # A malformed file: two good records around a broken line.
    bad = tmp_path / "x-malformed.json"
    bad.write_text(lines[150] + '{"key": "1", "value": \n' + lines[151])
    atomic_copy(bad, kafka / bad.name)
    wait_for(lambda: count(spark, config, "quarantine_bz") == 1, 240, "the broken line to reach quarantine_bz")
    assert count(spark, config, "kafka_multiplex_bz") == 2            # nothing of the half-copied file
    raw = spark.read.format("delta").load(str(config.table_location("quarantine_bz"))).first()
    assert raw["raw_record"].startswith('{"key": "1", "value":') and raw["source_file"].endswith(bad.name)
    assert test.job.alive()

    # The copy completes and is renamed into place: the next trigger reads all of it.
    with partial.open("a") as handle:
        handle.write(lines[100][40:] + "".join(lines[101:150]))
    os.replace(partial, kafka / "3-bpm-part.json")
    wait_for(lambda: count(spark, config, "kafka_multiplex_bz") == 152, 240, "the completed file's 150 records")
    assert count(spark, config, "quarantine_bz") == 1
    readings = {(v["device_id"], v["time"]) for v in (json.loads(json.loads(line)["value"])
                                                      for line in lines[:150] + [lines[150], lines[151]])}
    wait_for(lambda: count(spark, config, "heart_rate") == len(readings), 240, "silver heart_rate to catch up")

    wait_until_caught_up(test, config, 240, "every query to have processed what was landed")
    status = sbit_cli("status", *args)
    assert status.returncode == 0, status.stdout + status.stderr
    assert "Stream job of environment 'stream_job': running" in status.stdout
    assert status.stdout.count("True") == QUERIES and "heart_rate_upsert_stream" in status.stdout

    stop = sbit_cli("stop", *args)
    assert stop.returncode == 0, stop.stderr
    assert test.job.process.wait(timeout=60) == 0
    final = read_status(config)
    assert final["state"] == "stopped" and not final["alive"]
    assert len(final["queries"]) == QUERIES and not any(q["active"] for q in final["queries"])
    assert "All queries stopped" in test.job.log_tail()

    # Restart with no new data: every query looks for data once, and nothing changes.
    versions, checkpoints = test._versions(), checkpoint_files(config)
    test.start(clean=False)
    wait_until_caught_up(test, config, 180, "every query to have looked for new data and found none")
    test.job.process.send_signal(signal.SIGTERM)
    assert test.job.process.wait(timeout=120) == 0, test.job.log_tail()
    assert read_status(config)["state"] == "stopped"
    assert test._versions() == versions
    assert {t.name for t in ALL_TABLES} <= set(versions)
    new_files = checkpoint_files(config) - checkpoints
    assert not [f for f in new_files if "/commits/" in f or "/offsets/" in f], new_files
