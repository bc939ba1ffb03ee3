"""Bronze on the real course data and generated heart-rate sets: counts, the date fix,
re-runs, exactly-once appends and malformed input. Expected values come from the
reference computation (sbit_lib.testing.reference), never from Spark."""

import json
from dataclasses import dataclass

import pytest

from sbit_lib.course.bronze import SOURCES, Bronze, _BatchWriter
from sbit_lib.course.producer import Producer
from sbit_lib.course.run import ensure_setup
from sbit_lib.testing.expectations import Expectations
from sbit_lib.testing.validation import ValidationError
from tests.conftest import sbit_cli, wait_for

# The rows set 1's files load; bronze only appends, so they stay the same after set 2.
SET_1_FILES = r"source_file RLIKE '_1[.](csv|json)$'"


@pytest.fixture(scope="module")
def env(spark, lakehouse_home, test_data):
    from sbit_lib.course.config import Config

    config = Config.resolve(environment="bronze_t", home=lakehouse_home, test_data=test_data)
    ensure_setup(config, spark)
    return config


@pytest.fixture(scope="module")
def expected(test_data):
    return Expectations.load(test_data)


@dataclass(frozen=True)
class Loaded:
    """Bronze right after set n's run, recorded then: the next set changes the tables."""

    n: int
    counts: dict
    problem: str | None        # what Bronze.validate(n) found wrong, None when the tables were as expected


def load(spark, config, n: int) -> Loaded:
    """Land set n, run bronze once, and record its counts and validation."""
    Producer(config).produce(n)
    Bronze(config, spark).consume(once=True)
    try:
        Bronze(config, spark).validate(n)
        problem = None
    except ValidationError as err:
        problem = str(err)
    return Loaded(n, bronze_counts(spark, config), problem)


@pytest.fixture(scope="module")
def set_1(spark, env) -> Loaded:
    return load(spark, env, 1)


@pytest.fixture(scope="module")
def set_2(spark, env, set_1) -> Loaded:
    return load(spark, env, 2)


def bronze_counts(spark, config):
    return Bronze(config, spark).counts()


def versions(spark, config):
    return {t: spark.sql(f"DESCRIBE HISTORY {config.qualified(t)}").agg({"version": "max"}).first()[0]
            for t in SOURCES}


def test_set_1_loads_every_record(set_1, expected):
    assert set_1.counts == expected.landing(1) == {
        "registered_users_bz": 5, "gym_logins_bz": 8,
        "kafka_multiplex_bz": {"user_info": 7, "workout": 16, "bpm": 253_801},
    }
    assert set_1.problem is None, set_1.problem


def test_every_2023_event_gets_its_date_and_week_part(spark, env, set_1, expected):
    """The course divides the epoch-seconds timestamp by 1000 and gets NULL for every row."""
    want = expected.table("default", 1, "kafka_multiplex_bz").aggregates["per_topic_week_part"]
    rows = (spark.table(env.qualified("kafka_multiplex_bz")).where(SET_1_FILES)
            .groupBy("topic", "week_part").count().collect())
    got = {}
    for r in rows:
        got.setdefault(r["topic"], {})[r["week_part"]] = r["count"]
    assert got == want
    assert None not in {wp for topic in got.values() for wp in topic}
    # 12474's first workout starts at 1678521900 = 2023-03-11 08:05 UTC, calendar week 2023-10
    sample = (spark.table(env.qualified("kafka_multiplex_bz"))
              .where("topic = 'workout' AND timestamp = 1678521900").select("date", "week_part").first())
    assert (str(sample["date"]), sample["week_part"]) == ("2023-03-11", "2023-10")


def test_bronze_keeps_the_raw_record_and_its_file(spark, env, set_1):
    row = (spark.table(env.qualified("registered_users_bz")).where("user_id = 12474").first())
    assert (row["device_id"], row["mac_address"], row["registration_timestamp"]) == \
        (118440, "4c:c5:9f:cb:13:bd", 1678451168.0)
    assert row["source_file"].endswith("/registered_users_bz/1-registered_users_1.csv")
    assert row["load_time"] is not None


def test_another_process_sees_the_tables(env, set_1):
    """A second terminal: `sbit sql` in its own JVM reads what this process wrote."""
    result = sbit_cli("sql", f"SELECT topic, count(*) AS n FROM kafka_multiplex_bz WHERE {SET_1_FILES} "
                      "GROUP BY topic ORDER BY topic",
                      "--format", "csv", "--env", env.environment, "--home", str(env.home))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines() == ["topic,n", "bpm,253801", "user_info,7", "workout,16"]


def test_set_2_adds_its_records(set_2, expected):
    assert set_2.counts == expected.landing(2)
    assert expected.landing(2)["kafka_multiplex_bz"]["bpm"] == 2 * 253_801
    assert set_2.problem is None, set_2.problem


def test_a_rerun_without_new_files_changes_nothing(spark, env, set_2, expected):
    before = versions(spark, env)
    Bronze(env, spark).consume(once=True)
    assert versions(spark, env) == before
    assert bronze_counts(spark, env) == expected.landing(2)


@pytest.fixture
def remove_hand_made_rows(spark, env, tmp_path):
    """After the test, delete the rows of its hand-made batches (their files are under tmp_path)
    from env's bronze tables: the set tests' counts then hold whichever test ran first."""
    yield
    for table in ("registered_users_bz", "quarantine_bz"):
        spark.sql(f"DELETE FROM {env.qualified(table)} WHERE source_file LIKE '{tmp_path.as_uri()}/%'")


def batch_file(tmp_path, name: str, *lines: str) -> str:
    """A real CSV for a hand-made batch: the writer reads each file's header (column order)."""
    path = tmp_path / name
    path.write_text("\n".join(("user_id,device_id,mac_address,registration_timestamp",) + lines) + "\n")
    return path.as_uri()


@pytest.mark.usefixtures("remove_hand_made_rows")
def test_a_replayed_micro_batch_is_not_appended_twice(spark, env, tmp_path):
    """After a crash Spark replays the last micro-batch: Delta's txnAppId/txnVersion skip it."""
    source = SOURCES["registered_users_bz"]
    writer = _BatchWriter(env, source, lambda df: df)
    writer._app_id = "replay-test"   # not the real query's id: its later batches must not be skipped
    file = batch_file(tmp_path, "replay.csv", "99001,1,aa:aa,1.0")
    batch = spark.createDataFrame(
        [(99001, 1, "aa:aa", 1.0, None, file)],
        "user_id BIGINT, device_id BIGINT, mac_address STRING, registration_timestamp DOUBLE, "
        "_corrupt_record STRING, source_file STRING")
    table = spark.table(env.qualified(source.table))
    before = table.count()
    writer(batch, 10_000)
    writer(batch, 10_000)          # the replay
    assert table.count() == before + 1
    writer(batch, 10_001)          # a new batch id is a new batch
    assert table.count() == before + 2


@pytest.mark.usefixtures("remove_hand_made_rows")
def test_a_replayed_micro_batch_with_a_malformed_record_is_not_kept_twice(spark, env, tmp_path):
    """The writer counts malformed rows while it writes; a skipped (replayed) write must not hang it."""
    source = SOURCES["registered_users_bz"]
    writer = _BatchWriter(env, source, lambda df: df)
    writer._app_id = "replay-bad-test"
    file = batch_file(tmp_path, "replay-bad.csv", "99101,1,aa:bb,1.0", "x,1,aa:cc,oops")
    batch = spark.createDataFrame(
        [(99101, 1, "aa:bb", 1.0, None, file),
         (None, None, None, None, "x,1,aa:cc,oops", file)],
        "user_id BIGINT, device_id BIGINT, mac_address STRING, registration_timestamp DOUBLE, "
        "_corrupt_record STRING, source_file STRING")
    table = spark.table(env.qualified(source.table))
    quarantine = spark.table(env.qualified("quarantine_bz")).where(f"source_file = '{file}'")
    writer(batch, 20_000)
    writer(batch, 20_000)          # the replay: both writes skipped, the malformed row counted again
    assert table.where("user_id = 99101").count() == 1
    assert [r["raw_record"] for r in quarantine.collect()] == ["x,1,aa:cc,oops"]

# ---------------------------------------------------------------- malformed input

GOOD_CSV = "user_id,device_id,mac_address,registration_timestamp\n1,11,aa:01,1678451168\n2,12,aa:02,1678451169\n"
BAD_CSV = ("user_id,device_id,mac_address,registration_timestamp\n3,13,aa:03,1678451170\n"
           "four,14,aa:04,1678451171\n5,15,aa:05,1678451172\n6,16,aa:06,not-a-time\n")
GOOD_JSON = [{"key": "1", "value": "{}", "topic": "workout", "partition": 0, "offset": i,
              "timestamp": 1678521900 + i} for i in range(3)]


@pytest.fixture(scope="module")
def dirty(spark, lakehouse_home, test_data):
    from sbit_lib.course.config import Config

    config = Config.resolve(environment="bronze_bad", home=lakehouse_home, test_data=test_data)
    ensure_setup(config, spark)
    land(config, "registered_users_bz", "a.csv", GOOD_CSV)
    land(config, "registered_users_bz", "b.csv", BAD_CSV)
    lines = [json.dumps(r) for r in GOOD_JSON]
    land(config, "kafka_multiplex_bz", "k.json",
         "\n".join(lines[:2] + ['{"key": "9", "value": "{\\"broken', '{"offset": "zero"}'] + lines[2:]) + "\n")
    Bronze(config, spark).consume(once=True)
    return config


def land(config, table, name, text):
    folder = config.landing_zone / table
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(text)


def test_malformed_records_are_kept_and_counted_and_the_good_ones_load(spark, dirty):
    bronze = Bronze(dirty, spark)
    users = spark.table(dirty.qualified("registered_users_bz")).where("source_file NOT LIKE '%c.csv'")
    assert sorted(r["user_id"] for r in users.collect()) == [1, 2, 3, 5]
    assert spark.table(dirty.qualified("kafka_multiplex_bz")).where("offset < 99").count() == 3
    assert bronze.rejected_counts() == {"registered_users_bz": 2, "kafka_multiplex_bz": 2}
    bad = (spark.table(dirty.qualified("quarantine_bz")).where("source = 'registered_users_bz'")
           .orderBy("raw_record").toPandas())
    assert list(bad["raw_record"]) == ["6,16,aa:06,not-a-time", "four,14,aa:04,1678451171"]
    assert all(path.endswith("/registered_users_bz/b.csv") for path in bad["source_file"])


def test_later_files_still_load_after_malformed_input(spark, dirty):
    land(dirty, "registered_users_bz", "c.csv", GOOD_CSV.replace("1,11,aa:01", "7,17,aa:07").replace("2,12,aa:02", "8,18,aa:08"))
    Bronze(dirty, spark).consume(once=True)
    users = spark.table(dirty.qualified("registered_users_bz"))
    assert sorted(r["user_id"] for r in users.collect()) == [1, 2, 3, 5, 7, 8]
    assert Bronze(dirty, spark).rejected_counts()["registered_users_bz"] == 2   # not re-read


def test_timestamps_outside_any_calendar_get_a_null_date_not_a_crash(spark, dirty):
    record = dict(GOOD_JSON[0], offset=99, timestamp=10**18)
    land(dirty, "kafka_multiplex_bz", "far.json", json.dumps(record) + "\n")
    Bronze(dirty, spark).consume(once=True)
    row = spark.table(dirty.qualified("kafka_multiplex_bz")).where("offset = 99").first()
    assert row["timestamp"] == 10**18 and row["date"] is None



def test_a_changed_date_lookup_reaches_the_next_batch(spark, dirty):
    """Bronze reads date_lookup at every micro-batch: a reloaded calendar reaches the next one."""
    spark.sql(f"UPDATE {dirty.qualified('date_lookup')} SET week_part = 'changed' WHERE date = '2023-03-11'")
    record = dict(GOOD_JSON[0], offset=98)            # 1678521900 = 2023-03-11 08:05 UTC
    land(dirty, "kafka_multiplex_bz", "changed.json", json.dumps(record) + "\n")
    Bronze(dirty, spark).consume(once=True)
    row = spark.table(dirty.qualified("kafka_multiplex_bz")).where("offset = 98").first()
    assert (str(row["date"]), row["week_part"]) == ("2023-03-11", "changed")

# ---------------------------------------------------------------- stream mode

# The long tail: its own environment, set up and loaded, for what the fast tier's stream job
# tests (tests/test_stream_job.py, tests/test_bad_input.py) also show: files landed while it runs.
@pytest.mark.full
def test_a_running_stream_picks_up_a_file_landed_while_it_runs(spark, lakehouse_home, test_data):
    from sbit_lib.course.config import Config
    from sbit_lib.spark.storage import atomic_copy

    config = Config.resolve(environment="bronze_stream", home=lakehouse_home, test_data=test_data)
    ensure_setup(config, spark)
    bronze = Bronze(config, spark)
    queries = bronze.consume(once=False, processing_time="1 second")
    try:
        assert {q.name for q in queries} == {s.query_name for s in SOURCES.values()}
        assert all(q.isActive for q in queries)
        table = spark.table(config.qualified("registered_users_bz"))
        assert table.count() == 0
        atomic_copy(test_data / "1-registered_users_1.csv",
                    config.landing_zone / "registered_users_bz" / "1-registered_users_1.csv")
        wait_for(lambda: table.count() == 5, 120, "the landed file to reach registered_users_bz")
    finally:
        for query in queries:
            query.stop()
    assert all(not q.isActive and q.exception() is None for q in queries)
    assert (config.checkpoint_dir("registered_users_bz") / "commits").is_dir()
