"""The shared validation helpers: failures show expected vs actual and the differing rows, and
every check can fail: heart_rate by a hash of every row, column types against the spec, course
mode's batch-dependent tables by their bounds, and "not there yet" told from "wrong".

The expectations are the reference's (sbit_lib.testing.reference) over a tiny hand-made data
folder; the tables are real Delta tables filled with the expected rows, then spoilt.
"""

import datetime as dt
import json
import shutil
import time

import pandas as pd
import pytest

from sbit_lib.course.config import PROJECT_ROOT, Config
from sbit_lib.course.setup_helper import SetupHelper
from sbit_lib.ops.stream_test import StreamTest, StreamTestError
from sbit_lib.testing import reference
from sbit_lib.testing.expectations import Expectations, heart_rate_hash
from sbit_lib.testing.spec import SCHEMAS
from sbit_lib.testing.validation import (
    COURSE_SUMMARY_FILE,
    IncompleteError,
    ValidationError,
    _course_summary_rows,
    assert_count,
    assert_rows,
    check_schema,
    check_table,
    diff_rows,
    fingerprint,
    validate_tables,
)


def test_assert_count_shows_expected_and_found(spark):
    spark.range(3).createOrReplaceTempView("three")
    assert assert_count(spark, "three", 3) == 3
    with pytest.raises(ValidationError, match="three: expected 4 rows, found 3"):
        assert_count(spark, "three", 4)
    assert assert_count(spark, "three", 1, where="id > 1") == 1


def test_assert_rows_ignores_order_and_float_noise_but_not_values(spark):
    expected = pd.DataFrame({"k": [1, 2], "v": [0.1 + 0.2, 2.0],
                             "t": pd.to_datetime(["2023-03-11 08:05:00", "2023-03-11 09:00:00"])})
    actual = spark.createDataFrame(
        [(2, 2.0, dt.datetime(2023, 3, 11, 9)), (1, 0.3, dt.datetime(2023, 3, 11, 8, 5))], "k INT, v DOUBLE, t TIMESTAMP")
    assert assert_rows(actual, expected, "t") == 2

    wrong = spark.createDataFrame([(1, 0.3, dt.datetime(2023, 3, 11, 8, 5)), (2, 2.5, dt.datetime(2023, 3, 11, 9))],
                                  "k INT, v DOUBLE, t TIMESTAMP")
    with pytest.raises(ValidationError) as err:
        assert_rows(wrong, expected, "t")
    message = str(err.value)
    assert "1 expected rows missing, 1 unexpected rows" in message
    assert "2.5" in message and "2.0" in message


def test_a_fingerprint_ignores_row_order_and_sees_values_duplicates_and_where_nulls_are(spark):
    schema = "a INT, b INT, s STRING"
    rows = [(1, 2, "x"), (3, None, "y"), (3, None, "y"), (None, 5, None)]
    base = fingerprint(spark.createDataFrame(rows, schema))
    assert base[0] == 4
    assert fingerprint(spark.createDataFrame(rows[::-1], schema)) == base                 # order: same
    assert fingerprint(spark.createDataFrame(rows[:3] + [(None, 6, None)], schema)) != base  # a value
    assert fingerprint(spark.createDataFrame(rows[:2] + [(1, 2, "x"), rows[3]], schema)) != base  # a duplicate swapped
    assert fingerprint(spark.createDataFrame(rows[:3] + [(5, None, None)], schema)) != base  # a NULL moved
    assert fingerprint(spark.createDataFrame([], schema)) == (0, 0)


def test_duplicates_count_as_differences():
    expected = pd.DataFrame({"a": [1]})
    missing, unexpected = diff_rows(pd.DataFrame({"a": [1, 1]}), expected)
    assert (len(missing), len(unexpected)) == (0, 1)


# ----------------------------------------------------------------------------------
# a tiny data folder and its reference expectations
# ----------------------------------------------------------------------------------
T0 = 1_678_521_600            # 2023-03-11 08:00:00 UTC
DAY = 86_400


def kafka(topic, value: dict, offset: int, ts: int) -> str:
    return json.dumps({"key": "k", "value": json.dumps(value), "topic": topic, "partition": 0,
                       "offset": offset, "timestamp": ts})


def profile(user, ts, city, offset):
    return kafka("user_info", {"user_id": user, "update_type": "new" if offset < 10 else "update", "timestamp": ts,
                               "dob": "01/15/1990", "sex": "F", "gender": "F", "first_name": "A", "last_name": "B",
                               "address": {"street_address": "1 Main St", "city": city, "state": "CA",
                                           "zip": 90001}}, offset, ts)


def workout(user, action, ts, offset):
    return kafka("workout", {"user_id": user, "workout_id": 1, "timestamp": float(ts), "action": action,
                             "session_id": 1}, offset, ts)


def readings(device, start, stop, offset, step=60, kafka_ts=None):
    return [kafka("bpm", {"device_id": device, "time": t, "heartrate": 60.0 + (t // step) % 50}, offset + i,
                  kafka_ts or t) for i, t in enumerate(range(start, stop + 1, step))]


FILES = {
    "1-registered_users_1.csv": "user_id,device_id,mac_address,registration_timestamp\n"
                                f"1,101,m1,{T0 - DAY}\n2,102,m2,{T0 - DAY}\n",
    "1-registered_users_2.csv": f"user_id,device_id,mac_address,registration_timestamp\n3,103,m3,{T0}\n",
    "2-user_info_1.json": [profile(1, T0 - 3600, "Alpha", 1), profile(2, T0 - 3600, "Beta", 2)],
    "2-user_info_2.json": [profile(1, T0 + 3600, "Gamma", 11), profile(3, T0, "Delta", 3)],   # user 1 moves
    # user 1: 10 minutes; user 2: 20 minutes, an hour later (course mode: ends held back after set 1)
    "4-workout_1.json": [workout(1, "start", T0, 1), workout(1, "stop", T0 + 600, 2),
                         workout(2, "start", T0 + 3600, 3), workout(2, "stop", T0 + 4800, 4)],
    "4-workout_2.json": [workout(3, "start", T0 + DAY, 5), workout(3, "stop", T0 + DAY + 1200, 6)],
    "5-gym_logins_1.csv": f"mac_address,gym,login,logout\nm1,1,{T0 - 300},{T0 + 900}\n",
    "5-gym_logins_2.csv": f"mac_address,gym,login,logout\nm1,1,{T0 - 300},{T0 + 1000}\n",   # a later logout
    "3-bpm_1.json": readings(101, T0 - 120, T0 + 720, 0) + readings(102, T0 + 3540, T0 + 4920, 100)
    + [kafka("bpm", {"device_id": 102, "time": T0 + 3661, "heartrate": 0.0}, 300, T0)]        # invalid
    + readings(999, T0, T0 + 300, 400),                                                          # unregistered
    "3-bpm_2.json": readings(103, T0 + DAY - 60, T0 + DAY + 1300, 500)
    + [kafka("bpm", {"device_id": 101, "time": T0 + 330, "heartrate": 140.0}, 900, T0 + DAY)],  # late
}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    folder = tmp_path_factory.mktemp("validation_data")
    for name, content in FILES.items():
        text = "\n".join(content) if isinstance(content, list) else content
        (folder / name).write_text(text.rstrip("\n") + "\n")
    shutil.copy(PROJECT_ROOT / "test_data" / "6-date-lookup.json", folder)
    reference.write_expectations(folder, sets=range(1, 3))
    return folder


@pytest.fixture(scope="module")
def env(spark, lakehouse_home, tiny):
    """An environment per mode with every table created (empty), on the tiny folder's expectations."""
    made = {}

    def make(mode: str, name: str | None = None) -> Config:
        environment = f"validation_{name or mode}"
        if environment not in made:
            config = Config.resolve(environment=environment, home=lakehouse_home, test_data=tiny,
                                    mode=mode, as_of="2023-03-31")
            SetupHelper(config, spark).setup()
            made[environment] = config
        return made[environment]

    return make


def frame_to_spark(spark, table: str, frame: pd.DataFrame):
    """A Spark DataFrame with the spec's columns and types from pandas rows (timestamps via integer µs)."""
    columns, ddl, exprs = [], [], []
    data = {}
    for name, kind in SCHEMAS[table]:
        values = frame[name].tolist()
        if kind == "timestamp":
            values = [None if pd.isna(v) else pd.Timestamp(v).value // 1000 for v in values]
            ddl.append(f"{name} bigint")
            exprs.append(f"timestamp_micros({name}) AS {name}")
        else:
            values = [None if not isinstance(v, (str, dt.date)) and pd.isna(v) else v for v in values]
            ddl.append(f"{name} {kind}")
            exprs.append(name)
        data[name] = values
        columns.append(name)
    rows = list(zip(*(data[c] for c in columns))) if len(frame) else []
    return spark.createDataFrame(rows, ", ".join(ddl)).selectExpr(*exprs)


def put(spark, config, table: str, frame: pd.DataFrame) -> None:
    frame_to_spark(spark, table, frame).write.insertInto(config.qualified(table), overwrite=True)


def expected_rows(config, n, table) -> pd.DataFrame:
    return Expectations.load(config.test_data).table(config.mode, n, table).rows


def heart_rate_frame(folder, n) -> pd.DataFrame:
    """The reference's heart_rate rows after set n (device_id, time, heartrate, valid)."""
    hr = reference._Inputs(folder, range(1, n + 1)).heart_rate
    return pd.DataFrame({"device_id": hr["device_id"], "time": hr["time_us"].astype("datetime64[us]"),
                         "heartrate": hr["heartrate"], "valid": hr["heartrate"] > 0})


# ----------------------------------------------------------------------------------
# heart_rate: a hash of every row
# ----------------------------------------------------------------------------------
def test_the_row_hash_ignores_order_and_sees_every_value():
    frame = pd.DataFrame({"device_id": [1, 1, 2], "time_us": [10, 20, 10], "heartrate": [70.0, float("nan"), -0.0],
                          "valid": [True, False, False]})
    base = heart_rate_hash(frame["device_id"], frame["time_us"], frame["heartrate"], frame["valid"])
    shuffled = frame.iloc[[2, 0, 1]]
    assert heart_rate_hash(shuffled["device_id"], shuffled["time_us"], shuffled["heartrate"], shuffled["valid"]) == base
    as_times = pd.to_datetime(frame["time_us"], unit="us")
    assert heart_rate_hash(frame["device_id"], as_times, [70.0, None, 0.0], frame["valid"]) == base   # NULL = NaN
    for column, value in (("heartrate", 70.000001), ("time_us", 11), ("device_id", 3), ("valid", False)):
        changed = frame.copy()
        changed.loc[0, column] = value
        assert heart_rate_hash(changed["device_id"], changed["time_us"], changed["heartrate"],
                               changed["valid"]) != base, column
    doubled = pd.concat([frame, frame.iloc[:1]])
    assert heart_rate_hash(doubled["device_id"], doubled["time_us"], doubled["heartrate"], doubled["valid"]) != base


def test_heart_rate_fails_with_a_hash_mismatch_on_one_changed_extra_or_missing_row(spark, env, tiny):
    config = env("default")
    rows = heart_rate_frame(tiny, 2)
    put(spark, config, "heart_rate", rows)
    assert check_table(spark, config, 2, "heart_rate") == len(rows)

    changed = rows.copy()
    changed.loc[3, "heartrate"] += 1
    put(spark, config, "heart_rate", changed)
    with pytest.raises(ValidationError, match="wrong: row hash") as err:
        check_table(spark, config, 2, "heart_rate")
    assert not isinstance(err.value, IncompleteError)
    assert "0 missing, 0 unexpected (duplicates included), 1 changed" in str(err.value)

    extra = pd.concat([rows, pd.DataFrame({"device_id": [555], "time": [pd.Timestamp("2023-03-11 08:00")],
                                           "heartrate": [70.0], "valid": [True]})], ignore_index=True)
    put(spark, config, "heart_rate", extra)
    with pytest.raises(ValidationError, match="wrong: row hash") as err:
        check_table(spark, config, 2, "heart_rate")
    assert "0 missing, 1 unexpected" in str(err.value) and "555" in str(err.value)

    put(spark, config, "heart_rate", rows.drop(index=5))
    with pytest.raises(IncompleteError, match="not there yet: row hash") as err:      # a ValidationError too
        check_table(spark, config, 2, "heart_rate")
    assert "1 missing, 0 unexpected" in str(err.value)
    with pytest.raises(IncompleteError, match=f"{len(rows) - 1:,} rows, {len(rows):,} expected"):
        check_table(spark, config, 2, "heart_rate", quick=True)                         # a poll: count only


# ----------------------------------------------------------------------------------
# schema against the spec
# ----------------------------------------------------------------------------------
def test_a_wrong_column_type_fails_naming_the_column(spark, lakehouse_home, tiny):
    config = Config.resolve(environment="validation_types", home=lakehouse_home, test_data=tiny, as_of="2023-03-31")
    spark.sql(f"CREATE DATABASE IF NOT EXISTS {config.db_name}")
    users = expected_rows(config, 1, "users")
    (frame_to_spark(spark, "users", users).withColumn("device_id", users_device_as_int())
     .write.format("delta").mode("overwrite").option("overwriteSchema", "true").saveAsTable(config.qualified("users")))
    with pytest.raises(ValidationError, match="column 'device_id' is int, the spec says bigint") as err:
        validate_tables(spark, config, 1, ["users"])
    assert not isinstance(err.value, IncompleteError)

    df = spark.createDataFrame([], "user_id bigint, mac_address string, device_id bigint, registration_timestamp string")
    with pytest.raises(ValidationError) as err:
        check_schema(df, "users")
    assert "column 'registration_timestamp' is string, the spec says timestamp" in str(err.value)
    with pytest.raises(ValidationError, match=r"columns are in the order \['user_id', 'mac_address'"):
        check_schema(df.withColumn("registration_timestamp", df["registration_timestamp"].cast("timestamp")), "users")
    with pytest.raises(ValidationError, match="column 'device_id' .bigint. is missing"):
        check_schema(df.drop("device_id"), "users")
    check_schema(df, "quarantine_bz")            # a table the spec does not list: not checked


def users_device_as_int():
    from pyspark.sql import functions as F

    return F.col("device_id").cast("int")


# ----------------------------------------------------------------------------------
# exact tables: "not there yet" or "wrong"
# ----------------------------------------------------------------------------------
def test_exact_tables_tell_not_there_yet_from_wrong(spark, env):
    config = env("default")
    users = expected_rows(config, 2, "users")
    put(spark, config, "users", users)
    assert check_table(spark, config, 2, "users") == 3

    put(spark, config, "users", users.iloc[:2])
    with pytest.raises(IncompleteError, match="not there yet: 2 of 3 rows, 1 expected rows missing"):
        check_table(spark, config, 2, "users")

    stray = pd.concat([users.iloc[:2], users.iloc[:1].assign(user_id=99)], ignore_index=True)
    put(spark, config, "users", stray)
    with pytest.raises(ValidationError, match="1 rows with keys the reference never produces") as err:
        check_table(spark, config, 2, "users")
    assert not isinstance(err.value, IncompleteError)

    put(spark, config, "users", pd.concat([users, users.iloc[:1].assign(device_id=109)], ignore_index=True))
    with pytest.raises(ValidationError, match=r"1 rows repeat a key \['user_id'\]"):
        check_table(spark, config, 2, "users")

    put(spark, config, "users", users.assign(mac_address=["m1", "mX", "m3"]))
    with pytest.raises(ValidationError, match="1 rows differ from the expected row of their key") as err:
        check_table(spark, config, 2, "users")
    assert "mX" in str(err.value) and not isinstance(err.value, IncompleteError)

    # user 1 moved in set 2: set 1's row is still "not there yet", another city is wrong
    bins = expected_rows(config, 2, "user_bins")
    before = expected_rows(config, 1, "user_bins")
    put(spark, config, "user_bins", pd.concat([before, bins[bins["user_id"] == 3]], ignore_index=True))
    with pytest.raises(IncompleteError, match="1 rows still hold the previous set's values"):
        check_table(spark, config, 2, "user_bins")
    put(spark, config, "user_bins", bins.assign(city=bins["city"].replace({"Gamma": "Nowhere"})))
    with pytest.raises(ValidationError, match="differ from the expected row") as err:
        check_table(spark, config, 2, "user_bins")
    assert not isinstance(err.value, IncompleteError)


# ----------------------------------------------------------------------------------
# course mode: workout_bpm and workout_bpm_summary within their bounds
# ----------------------------------------------------------------------------------
def test_course_mode_bounds_come_from_the_watermark(tiny):
    exp = Expectations.load(tiny)
    first, second = (exp.table("course", n, "workout_bpm_summary") for n in (1, 2))
    # set 1: user 2's workout ends last, so only user 1's has been passed by the watermark
    assert (first.count, first.min_count, first.aggregates["must_emit"]) == (2, 1, [[1, 1, 1]])
    # set 2: user 3's workout (a day later) moves it past user 2's; user 3's is held back
    assert (second.count, second.min_count, second.aggregates["must_emit"]) == (3, 2, [[1, 1, 1], [2, 1, 1]])
    bpm = exp.table("course", 2, "workout_bpm")
    assert bpm.min_count == bpm.count - 1            # the late reading of user 1 can be dropped
    assert exp.table("default", 2, "workout_bpm").min_count == exp.table("default", 2, "workout_bpm").count


def test_course_mode_tables_fail_when_empty_or_out_of_bounds(spark, env):
    config = env("course")
    bpm = expected_rows(config, 2, "workout_bpm")
    summary = expected_rows(config, 2, "workout_bpm_summary")
    put(spark, config, "workout_bpm", bpm.iloc[:0])
    put(spark, config, "workout_bpm_summary", summary.iloc[:0])
    with pytest.raises(IncompleteError, match=f"0 rows, at least {len(bpm) - 1:,} expected"):
        validate_tables(spark, config, 2, ["workout_bpm"])
    with pytest.raises(IncompleteError, match=r"not emitted yet: \[\(1, 1, 1\), \(2, 1, 1\)\]"):
        validate_tables(spark, config, 2, ["workout_bpm_summary"])

    put(spark, config, "workout_bpm", bpm)
    emitted = summary[summary["user_id"] < 3]                   # what the watermark has passed
    put(spark, config, "workout_bpm_summary", emitted)
    validate_tables(spark, config, 2, ["workout_bpm", "workout_bpm_summary"])
    put(spark, config, "workout_bpm_summary", summary[summary["user_id"] < 2])
    with pytest.raises(IncompleteError, match=r"not emitted yet: \[\(2, 1, 1\)\]"):
        validate_tables(spark, config, 2, ["workout_bpm_summary"])

    put(spark, config, "workout_bpm", bpm.assign(heartrate=bpm["heartrate"].where(bpm.index != 0, 1.5)))
    with pytest.raises(ValidationError, match="1 rows the reference never produces"):
        validate_tables(spark, config, 2, ["workout_bpm"])
    too_many = emitted.assign(num_recordings=emitted["num_recordings"] + (emitted["user_id"] == 2))
    put(spark, config, "workout_bpm_summary", too_many)
    with pytest.raises(ValidationError, match="1 rows with num_recordings above the expected row's"):
        validate_tables(spark, config, 2, ["workout_bpm_summary"])
    put(spark, config, "workout_bpm_summary", pd.concat([emitted, emitted.iloc[:1].assign(session_id=7)]))
    with pytest.raises(ValidationError, match="1 rows with keys the reference never produces"):
        validate_tables(spark, config, 2, ["workout_bpm_summary"])


def test_the_course_summary_file_is_reproduced_where_the_watermark_emits_it(test_data):
    """After sets 1+2 the course's 8-workout_bpm_summary_2.parquet rows are workouts the watermark has passed,
    with the same bins; a different city in the table is wrong."""
    exp = Expectations.load(test_data)
    course = pd.read_parquet(test_data / COURSE_SUMMARY_FILE)
    keys = ["user_id", "workout_id", "session_id"]
    after_1, after_2 = (exp.table("course", n, "workout_bpm_summary") for n in (1, 2))
    assert (after_1.min_count, after_2.min_count, after_2.count) == (7, 15, 16)
    must = {tuple(k) for k in after_2.aggregates["must_emit"]}
    assert {tuple(int(v) for v in k) for k in course[keys].itertuples(index=False)} <= must
    mine = after_2.rows.merge(course[keys], on=keys)
    assert mine[["age", "gender", "city", "state"]].values.tolist() == \
        course.merge(mine[keys], on=keys)[["age", "gender", "city", "state"]].values.tolist()
    assert (mine["num_recordings"].to_numpy() <= course.merge(mine[keys], on=keys)["num_recordings"]).all()
    assert _course_summary_rows(mine, after_2, test_data / COURSE_SUMMARY_FILE, keys) == []
    moved = mine.assign(city="Elsewhere")
    problems = _course_summary_rows(moved, after_2, test_data / COURSE_SUMMARY_FILE, keys)
    assert len(problems) == 2 and "city 'Elsewhere'" in problems[0]


# ----------------------------------------------------------------------------------
# the stream test: wrong at once, missing rows are waited for
# ----------------------------------------------------------------------------------
def test_the_stream_test_fails_at_once_on_an_unexpected_row_and_waits_on_a_missing_one(spark, env):
    config = env("default")
    test = StreamTest(config, spark=spark, timeout_s=120)
    users = expected_rows(config, 1, "users")
    put(spark, config, "users", users.iloc[:1])
    behind = test.check_one(1, "silver", "users", test._versions())
    assert behind == "silver: users: not there yet: 1 rows, 2 expected"

    put(spark, config, "users", pd.concat([users, users.iloc[:1].assign(user_id=99)], ignore_index=True))
    # Nothing writes while it waits: every poll after the first sees the same table versions and
    # checks nothing again, so a wrong table the first check let pass would end at the deadline,
    # "did not reach every layer". "users is wrong" can only be the first check's failure: at once.
    with pytest.raises(StreamTestError, match="silver: users is wrong") as err:
        test.wait_until_valid(1, time.monotonic() + 120)
    assert "keys the reference never produces" in str(err.value) and "99" in str(err.value)
