"""Bad input through every layer: the dirty sets of sbit_lib.testing.dirty_data.

Every table, the quarantine and the rejects equal the reference's (computed from the
files alone); the hand-worked cases are asserted once more by value; the counts add
up: landed = bronze + quarantined, bronze = silver rows + rejected + dropped by design.

The fast tier (`make test`) sends both sets through the stream job, killed (SIGKILL) in the
middle of set 1; the same sets in batch mode, set by set, are the long tail (`full`): bronze
and silver run the same per-micro-batch code in both, and notebook 05 follows a dirty set 1
through every layer in batch mode.

Once the stream job has been validated, the same running job is watched and stopped from
outside, as a user would (the fast tier's version of tests/test_stream_job.py, whose own test
on the course's data is `full`): a half-copied file under the producer's hidden temporary
name is never read, a malformed file sends its broken line to quarantine_bz and its good
lines on, the completed file is read at the next trigger and reaches silver heart_rate;
`sbit status` shows the job, `sbit stop` stops it with exit 0, and a restart with no new
data, stopped by SIGTERM, changes no table and writes no new checkpoint commit or offset.
"""

import pytest

from sbit_lib.course.bronze import Bronze
from sbit_lib.course.config import Config
from sbit_lib.course.producer import Producer
from sbit_lib.course.run import run, validate_every_layer
from sbit_lib.course.silver import Silver
from sbit_lib.testing import dirty_data
from sbit_lib.testing.dirty_data import START
from sbit_lib.testing.expectations import Expectations

pytestmark = pytest.mark.xdist_group("bad_input")


@pytest.fixture(scope="module")
def dirty(spark, lakehouse_home, tmp_path_factory):
    folder = dirty_data.write(tmp_path_factory.mktemp("dirty_data"))
    return Config.resolve(environment="dirty", home=lakehouse_home, test_data=folder, as_of="2023-03-31")


def _counts_add_up(spark, config, n):
    expected = Expectations.load(config.test_data)
    landed = expected.landing(n)
    bronze = Bronze(config, spark)
    quarantined = bronze.rejected_counts()
    counts = bronze.counts()
    for table in ("registered_users_bz", "gym_logins_bz"):
        assert landed[table] == counts[table] + quarantined.get(table, 0), table
    assert (sum(landed["kafka_multiplex_bz"].values())
            == spark.table(config.qualified("kafka_multiplex_bz")).count() + quarantined["kafka_multiplex_bz"])
    for line in Silver(config, spark).counts():
        if line["table"] is None:
            assert line["dropped"] == 1 and "alerts" in line["dropped_why"]      # the unknown topic
            continue
        rows = expected.table(config.mode, n, line["table"]).count
        rejected = expected.table(config.mode, n, "rejects_sv").rows
        rejected = int((rejected["target_table"] == line["table"]).sum())
        assert line["rows"] == rows and sum(line["rejected"].values()) == rejected, line
        assert line["bronze"] == line["rows"] + rejected + line["dropped"] and line["dropped"] >= 0, line


@pytest.mark.full
def test_set_1_every_bad_record_is_kept_or_counted_and_no_query_fails(spark, dirty):
    Producer(dirty).produce(1)
    run(dirty, spark=spark)
    validate_every_layer(dirty, spark, 1)
    _counts_add_up(spark, dirty, 1)
    _hand_worked(spark, dirty, completed=[1])


def _hand_worked(spark, config, completed: list[int]):
    """The dirty sets' hand-worked cases, by value (`completed`: the users whose workouts completed)."""
    db = config.db_name
    # a dob that does not parse, or none, keeps the user with age NULL (not "95+")
    ages = dict(spark.sql(f"SELECT user_id, age FROM {db}.user_bins").collect())
    assert ages == {1: None, 2: "25-35", 3: None, 4: "25-35"}
    # a registration without device or mac is rejected, not a user
    assert sorted(r[0] for r in spark.sql(f"SELECT user_id FROM {db}.users").collect()) == [1, 2, 3, 4]
    # the stop before its start completes nothing; no negative duration anywhere
    assert spark.sql(f"SELECT count(*) FROM {db}.completed_workouts WHERE end_time <= start_time").first()[0] == 0
    assert sorted(r[0] for r in spark.sql(f"SELECT user_id FROM {db}.completed_workouts").collect()) == completed
    assert spark.sql(f"SELECT count(*) FROM {db}.gym_summary WHERE minutes_exercising < 0").first()[0] == 0
    # the first reading of a device at a time wins; a NULL heartrate is kept as invalid
    first = spark.sql(f"SELECT heartrate FROM {db}.heart_rate WHERE device_id = 101 "
                      f"AND time = timestamp_seconds({START + 60})").collect()
    assert [r[0] for r in first] == [81.0]
    assert spark.sql(f"SELECT valid FROM {db}.heart_rate WHERE heartrate IS NULL").collect()[0][0] is False
    # the CSV with its columns in another order was read by name
    assert spark.sql(f"SELECT device_id FROM {db}.registered_users_bz WHERE user_id = 1 "
                     "ORDER BY device_id").collect()[0][0] == 101
    reasons = {r[0] for r in spark.sql(f"SELECT reason FROM {db}.rejects_sv WHERE target_table = 'user_profile'")
               .collect()}
    assert "update_type not new or update" in reasons


@pytest.mark.full
def test_set_2_a_file_with_an_extra_column_is_quarantined_whole_empty_files_are_fine(spark, dirty):
    Producer(dirty).produce(2)
    run(dirty, spark=spark)
    validate_every_layer(dirty, spark, 2)
    _counts_add_up(spark, dirty, 2)
    _quarantined_whole(spark, dirty)


@pytest.mark.full
def test_sbit_counts_shows_rejects_per_table_and_reason_beside_the_rows(spark, dirty, capsys):
    _counts_printed(dirty, capsys)


def _quarantined_whole(spark, config):
    """Set 2's registrations file has an extra column: both its lines quarantined, with the reason."""
    whole = spark.sql(f"SELECT reason FROM {config.db_name}.quarantine_bz "
                      "WHERE source_file LIKE '%1-registered_users_2.csv'").collect()
    assert [r[0] for r in whole] == ["header unexpected column(s) email: file quarantined whole"] * 2


def _counts_printed(config, capsys):
    """`sbit counts` after set 2 shows the quarantined, rejected and dropped records beside the rows."""
    from sbit_lib.ops import cli

    capsys.readouterr()
    assert cli.main(["counts", "--env", config.environment, "--home", str(config.home),
                     "--test-data", str(config.test_data)]) == 0
    out = capsys.readouterr().out
    assert "        2  registered_users_bz: header unexpected column(s) email: file quarantined whole" in out
    assert "users                        4 rows  from 8 records of registered_users_bz" in out
    assert "        1  rejected: device_id missing  (rejects_sv)" in out
    assert "        1  dropped by design: a later registration of a registered user" in out
    assert "        1  dropped by design: topics no silver table reads: alerts" in out


@pytest.mark.full
def test_a_rerun_with_no_new_data_writes_no_reject_twice(spark, dirty):
    before = spark.table(dirty.qualified("rejects_sv")).count()
    run(dirty, spark=spark)
    assert spark.table(dirty.qualified("rejects_sv")).count() == before
    validate_every_layer(dirty, spark, 2)


def test_the_stream_job_killed_mid_set_keeps_running_on_dirty_sets_and_ends_equal_to_the_reference(
        spark, lakehouse_home, dirty, capsys, test_data, tmp_path):
    import time

    from sbit_lib.ops.stream_test import StreamTest
    from tests.conftest import wait_for

    config = Config.resolve(environment="dirty_stream", home=lakehouse_home, test_data=dirty.test_data,
                            as_of="2023-03-31")
    test = StreamTest(config, processing_time="1 second", timeout_s=600, spark=spark)
    test.start()
    try:
        Producer(config).produce(1)
        # silver has written its first rejects: its wave-1 MERGEs are running. Kill the job there.
        first_rejects = config.table_location("rejects_sv") / "_delta_log" / f"{1:020d}.json"
        wait_for(lambda: first_rejects.exists() or not test.job.alive(), 300, "silver's first rejects")
        assert test.job.alive(), f"the job died on bad input; its log:\n{test.job.log_tail()}"
        test.job.kill()
        test.start(clean=False)
        Producer(config).produce(2)
        test.wait_until_valid(2, time.monotonic() + 600)
        assert test.job.alive(), f"the job stopped; its log:\n{test.job.log_tail()}"
        validate_every_layer(config, spark, 2)
        _counts_add_up(spark, config, 2)
        _hand_worked(spark, config, completed=[1, 4])       # set 2 completes user 4's workout
        _quarantined_whole(spark, config)
        _counts_printed(config, capsys)
        _watched_and_stopped_from_outside(spark, test, test_data, tmp_path)
    finally:
        test.stop()       # after a pass the job has already stopped; after a failure this stops it


def _watched_and_stopped_from_outside(spark, test, test_data, tmp_path):
    """The running, validated job reads landed files, skips half-copied ones, survives bad ones;
    `sbit status` shows it, `sbit stop` stops it, and a restart with no new data changes nothing.

    The files landed carry course readings (device 900001, before the dirty sets' times): keys
    no dirty set has, so every count below is the count before plus what was landed.
    """
    import itertools
    import json
    import os
    import signal

    from sbit_lib.course.tables import ALL_TABLES
    from sbit_lib.ops.job import read_status
    from sbit_lib.spark.storage import atomic_copy
    from tests.conftest import sbit_cli, wait_for
    from tests.test_stream_job import QUERIES, checkpoint_files, count, wait_until_caught_up

    config = test.config
    args = ["--env", config.environment, "--home", str(config.home), "--test-data", str(config.test_data),
            "--as-of", str(config.as_of)]
    kafka = config.landing_zone / "kafka_multiplex_bz"
    with (test_data / "3-bpm_1.json").open() as course_file:
        lines = list(itertools.islice(course_file, 152))
    readings = {(v["device_id"], float(v["time"])) for v in (json.loads(json.loads(line)["value"]) for line in lines)}
    # Computed from the lines alone; none of these readings is in heart_rate yet.
    hr = spark.read.format("delta").load(str(config.table_location("heart_rate")))
    assert not readings & {(r[0], r[1]) for r in hr.selectExpr("device_id", "CAST(time AS DOUBLE)").collect()}
    quarantined, bronze, silver = (count(spark, config, t) for t in ("quarantine_bz", "kafka_multiplex_bz",
                                                                       "heart_rate"))

    # A copy in progress, under the producer's hidden temporary name, its last line cut short.
    partial = kafka / ".3-bpm-part.json.4242.tmp"
    partial.write_text("".join(lines[:100]) + lines[100][:40])
    # A malformed file: two good records around a broken line.
    bad = tmp_path / "x-malformed.json"
    bad.write_text(lines[150] + '{"key": "1", "value": \n' + lines[151])
    atomic_copy(bad, kafka / bad.name)
    wait_for(lambda: count(spark, config, "quarantine_bz") == quarantined + 1, 240,
             "the broken line to reach quarantine_bz")
    assert count(spark, config, "kafka_multiplex_bz") == bronze + 2      # nothing of the half-copied file
    raw = [r.raw_record for r in spark.read.format("delta").load(str(config.table_location("quarantine_bz")))
           .where(f"source_file LIKE '%{bad.name}'").collect()]
    assert len(raw) == 1 and raw[0].startswith('{"key": "1", "value":'), raw
    assert test.job.alive(), test.job.log_tail()

    # The copy completes and is renamed into place: the next trigger reads all of it.
    with partial.open("a") as handle:
        handle.write(lines[100][40:] + "".join(lines[101:150]))
    os.replace(partial, kafka / "3-bpm-part.json")
    wait_for(lambda: count(spark, config, "kafka_multiplex_bz") == bronze + 152, 240,
             "the completed file's 150 records")
    assert count(spark, config, "quarantine_bz") == quarantined + 1
    wait_for(lambda: count(spark, config, "heart_rate") == silver + len(readings), 240,
             "silver heart_rate to catch up")

    wait_until_caught_up(test, config, 240, "every query to have processed what was landed")
    status = sbit_cli("status", *args)
    assert status.returncode == 0, status.stdout + status.stderr
    assert f"Stream job of environment '{config.environment}': running" in status.stdout, status.stdout
    assert status.stdout.count("True") == QUERIES and "heart_rate_upsert_stream" in status.stdout, status.stdout

    stop = sbit_cli("stop", *args)
    assert stop.returncode == 0, stop.stdout + stop.stderr
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
