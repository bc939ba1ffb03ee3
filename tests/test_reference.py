"""The independent reference computation (sbit_lib.testing.reference) and its loader (sbit_lib.testing.expectations).

Pure Python/pandas, no Spark. Rule tests use tiny hand-made data folders; the
course-data tests use the course files plus generated heart-rate sets 1-3.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
from pathlib import Path

import pandas as pd
import pytest

from sbit_lib.testing import bpm_generator, reference
from sbit_lib.testing.expectations import Expectations, ExpectationsError, TableExpectation
from sbit_lib.testing.spec import SCHEMAS

TEST_DATA = Path(__file__).resolve().parents[1] / "test_data"
COURSE_FILES = [
    "1-registered_users_1.csv", "1-registered_users_2.csv", "2-user_info_1.json", "2-user_info_2.json",
    "4-workout_1.json", "4-workout_2.json", "5-gym_logins_1.csv", "5-gym_logins_2.csv",
    "6-date-lookup.json",
]
T0 = 1_678_521_600  # 2023-03-11T08:00:00Z


# ----------------------------------------------------------------------------------
# fixtures
# ----------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def course_folder(tmp_path_factory) -> Path:
    """Course files + generated heart-rate sets 1-3 (generated once per session)."""
    folder = tmp_path_factory.mktemp("course-data")
    for name in COURSE_FILES:
        shutil.copyfile(TEST_DATA / name, folder / name)
    # Reuse already generated files (generate() checks them against the checksums and
    # regenerates any that differ); otherwise generate (about 5 s per set).
    checksums = TEST_DATA / bpm_generator.CHECKSUM_FILE
    if checksums.is_file():
        shutil.copyfile(checksums, folder / checksums.name)
        for n in (1, 2, 3):
            source = TEST_DATA / bpm_generator.bpm_file_name(n)
            if source.is_file():
                shutil.copyfile(source, folder / source.name)
    bpm_generator.generate(folder, sets=(1, 2, 3))
    return folder


@pytest.fixture(scope="session")
def expected(course_folder) -> Expectations:
    reference.write_expectations(course_folder, sets=range(1, 4))
    return Expectations.load(course_folder)


def envelope(topic: str, value: dict, offset: int, timestamp: int) -> str:
    return json.dumps({
        "key": str(value.get("user_id", value.get("device_id"))), "value": json.dumps(value),
        "topic": topic, "partition": 0, "offset": offset, "timestamp": timestamp,
    })


def profile(user_id, ts, *, update_type="new", dob="01/01/1990", city="Springfield", last_name="Doe"):
    return {
        "user_id": user_id, "update_type": update_type, "timestamp": ts, "dob": dob, "sex": "F",
        "gender": "F", "first_name": "Jane", "last_name": last_name,
        "address": {"street_address": "1 Main St", "city": city, "state": "CA", "zip": 90001},
    }


def workout(user_id, ts, action, session_id=1, workout_id=1):
    return {"user_id": user_id, "workout_id": workout_id, "timestamp": ts, "action": action, "session_id": session_id}


def make_folder(root: Path, sets: dict[int, dict]) -> Path:
    """Write a tiny data folder. sets[n] may hold lists for 'users' (user_id, device_id, mac, ts),
    'gym' (mac, gym, login, logout), 'profiles' (envelope lines), 'workouts' (envelope lines),
    'bpm' (device_id, time, heartrate[, kafka_ts])."""
    root.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(TEST_DATA / "6-date-lookup.json", root / "6-date-lookup.json")
    for n, content in sets.items():
        if "users" in content:
            lines = ["user_id,device_id,mac_address,registration_timestamp"]
            lines += [",".join(str(v) for v in row) for row in content["users"]]
            (root / f"1-registered_users_{n}.csv").write_text("\n".join(lines) + "\n\n")
        if "gym" in content:
            lines = ["mac_address,gym,login,logout"] + [",".join(str(v) for v in row) for row in content["gym"]]
            (root / f"5-gym_logins_{n}.csv").write_text("\n".join(lines))
        if "profiles" in content:
            (root / f"2-user_info_{n}.json").write_text("\n".join(content["profiles"]) + "\n")
        if "workouts" in content:
            (root / f"4-workout_{n}.json").write_text("\n".join(content["workouts"]) + "\n")
        lines = []
        for i, reading in enumerate(content.get("bpm", [])):
            device, t, hr = reading[:3]
            kafka_ts = reading[3] if len(reading) > 3 else t
            value = {"device_id": device, "time": t, "heartrate": hr}
            lines.append(envelope("bpm", value, n * 1000 + i, kafka_ts))
        (root / f"3-bpm_{n}.json").write_text("\n".join(lines) + ("\n" if lines else ""))
    return root


def rows(result, n, table) -> pd.DataFrame:
    return result[n][table].rows


# ----------------------------------------------------------------------------------
# course data
# ----------------------------------------------------------------------------------
@pytest.mark.parametrize("n", [1, 2])
def test_course_mode_gym_summary_equals_course_files(expected, n):
    course = pd.read_parquet(TEST_DATA / f"7-gym_summary_{n}.parquet")
    got = expected.table("course", n, "gym_summary")
    assert got.exact and got.count == len(course) == (8 if n == 1 else 16)
    mine = got.rows
    assert list(mine.columns) == list(course.columns)
    mine = mine.astype(course.dtypes.to_dict())
    pd.testing.assert_frame_equal(mine.reset_index(drop=True), course.reset_index(drop=True), check_exact=True)


def test_course_files_differ_from_default_mode(expected):
    course = pd.read_parquet(TEST_DATA / "7-gym_summary_1.parquet")
    default = expected.table("default", 1, "gym_summary").rows
    assert not default["minutes_exercising"].equals(course["minutes_exercising"])
    assert default["minutes_in_gym"].tolist() == course["minutes_in_gym"].tolist()


def test_default_mode_minutes_exercising_is_true_duration(expected):
    summary = expected.table("default", 1, "gym_summary").rows
    row = summary[summary["mac_address"] == "4c:c5:9f:cb:13:bd"]  # user 12474: 3900 s workout
    assert row["minutes_exercising"].tolist() == [65.0]
    course = expected.table("course", 1, "gym_summary").rows
    assert course[course["mac_address"] == "4c:c5:9f:cb:13:bd"]["minutes_exercising"].tolist() == [66.13]


@pytest.mark.parametrize("mode", ["default", "course"])
def test_published_counts(expected, mode):
    published = {"users": (5, 10), "gym_logs": (8, 16), "user_profile": (5, 10), "workouts": (16, 32),
                 "user_bins": (5, 10), "completed_workouts": (8, 16)}
    for table, counts in published.items():
        for n, count in zip((1, 2), counts):
            got = expected.table(mode, n, table)
            assert (got.count, len(got.rows)) == (count, count), (mode, n, table)


def test_landing_counts_are_cumulative_non_blank_records(expected):
    assert expected.landing(1) == {
        "registered_users_bz": 5, "gym_logins_bz": 8,
        "kafka_multiplex_bz": {"user_info": 7, "workout": 16, "bpm": bpm_generator.RECORDS_PER_SET},
    }
    assert expected.landing(3) == {
        "registered_users_bz": 10, "gym_logins_bz": 16,
        "kafka_multiplex_bz": {"user_info": 13, "workout": 32, "bpm": 3 * bpm_generator.RECORDS_PER_SET},
    }
    for mode in ("default", "course"):
        bz = expected.table(mode, 3, "kafka_multiplex_bz")
        assert bz.count == 13 + 32 + 3 * bpm_generator.RECORDS_PER_SET
        assert expected.table(mode, 2, "registered_users_bz").count == 10


def test_bpm_week_part_counts_have_no_null_dates(expected):
    agg = expected.table("default", 3, "kafka_multiplex_bz").aggregates
    assert agg["null_date_count"] == 0 and agg["null_date_per_topic"] == {}
    assert agg["per_topic"]["bpm"] == 3 * bpm_generator.RECORDS_PER_SET
    for topic, total in agg["per_topic"].items():
        assert sum(agg["per_topic_week_part"][topic].values()) == total
    # set 1 is Saturday 2023-03-11 (week 10); sets 2 and 3 fall in week 11
    assert agg["per_topic_week_part"]["bpm"] == {"2023-10": 253_801, "2023-11": 2 * 253_801}


def test_course_mode_cdc_tie_broken_by_offset(expected):
    # user 12140: 'new' at 1678451529 and 'update' at 1678451625 both round to 1678451584
    # as float32; the update has the higher offset and wins.
    for mode in ("default", "course"):
        users = expected.table(mode, 1, "user_profile").rows.set_index("user_id")
        assert users.loc[12140, "last_name"] == "Castillo"
    course = expected.table("course", 1, "user_profile").rows.set_index("user_id")
    assert course.loc[12140, "updated"] == pd.Timestamp(1_678_451_584, unit="s")
    default = expected.table("default", 1, "user_profile").rows.set_index("user_id")
    assert default.loc[12140, "updated"] == pd.Timestamp(1_678_451_625, unit="s")


def test_course_mode_workout_times_are_float32(expected):
    times = expected.table("course", 2, "workouts").rows["time"].astype("int64") // 1_000_000
    assert (times % 128 == 0).all()
    default_times = expected.table("default", 2, "workouts").rows["time"].astype("int64") // 1_000_000
    assert not (default_times % 128 == 0).all()


def test_late_readings_in_next_set_complete_default_summary(expected):
    def recordings(mode, n, user_id):
        summary = expected.table(mode, n, "workout_bpm_summary").rows
        row = summary[(summary["user_id"] == user_id) & (summary["session_id"] == 1)]
        assert len(row) == 1
        return int(row["num_recordings"].iloc[0])

    # the last 5 minutes of user 12474's set-1 workout arrive in set 2
    assert recordings("default", 2, 12474) > recordings("default", 1, 12474)
    assert recordings("default", 2, 12474) - recordings("default", 1, 12474) <= 300
    # ... and those of user 14633's set-2 workout in set 3
    assert recordings("default", 3, 14633) > recordings("default", 2, 14633)
    bpm = expected.table("default", 2, "workout_bpm").rows
    assert len(bpm[(bpm["user_id"] == 12474) & (bpm["session_id"] == 1)]) == recordings("default", 2, 12474)


def test_default_summary_exact_and_course_summary_marked_inexact(expected):
    default = expected.table("default", 2, "workout_bpm_summary")
    assert default.exact and default.note is None and default.count == 16
    assert default.rows["num_recordings"].sum() == expected.table("default", 2, "workout_bpm").count
    for table in ("workout_bpm", "workout_bpm_summary"):
        course = expected.table("course", 2, table)
        assert not course.exact and "count" in course.note and course.count == len(course.rows)
    assert expected.table("course", 2, "gym_summary").exact


def test_heart_rate_aggregates_same_in_both_modes(expected):
    default = expected.table("default", 3, "heart_rate")
    course = expected.table("course", 3, "heart_rate")
    assert default.aggregates == course.aggregates and default.rows is None
    agg = default.aggregates
    assert agg["count"] == default.count
    # duplicates (about 1 in 200) were dropped
    assert 3 * bpm_generator.RECORDS_PER_SET - agg["count"] > 3 * 1000
    assert 0 < agg["count"] - agg["valid_count"] < agg["count"] // 100
    assert agg["min_time"] == "2023-03-11T00:00:00"


ROW_TABLES = sorted(set(SCHEMAS) - {"registered_users_bz", "gym_logins_bz", "kafka_multiplex_bz", "heart_rate"})


@pytest.mark.parametrize("table", ROW_TABLES)
def test_stored_rows_follow_the_spec_schema(expected, table):
    got = expected.table("default", 2, table).rows
    assert list(got.columns) == [name for name, _ in SCHEMAS[table]]
    for name, kind in SCHEMAS[table]:
        column = got[name]
        if kind == "int":
            assert column.dtype == "int32", name
        elif kind == "bigint":
            assert column.dtype == "int64", name
        elif kind == "double":
            assert column.dtype == "float64", name
        elif kind == "timestamp":
            assert column.dtype == "datetime64[us]", name
        elif kind == "date":
            assert all(type(v) is dt.date for v in column), name
        elif kind == "string":
            assert all(isinstance(v, str) for v in column), name


def test_date_lookup_has_365_typed_rows(expected):
    lookup = expected.table("course", 3, "date_lookup")
    assert lookup.count == 365 and len(lookup.rows) == 365
    first = lookup.rows.iloc[0]
    assert first["date"] == dt.date(2023, 1, 1) and first["week_part"] == "2023-1" and first["dayofyear"] == 1


# ----------------------------------------------------------------------------------
# rules, on tiny folders
# ----------------------------------------------------------------------------------
def test_duplicate_registration_is_ignored(tmp_path):
    folder = make_folder(tmp_path, {
        1: {"users": [(1, 10, "aa", T0), (1, 10, "aa", T0), (2, 20, "bb", T0 + 5), (2, 21, "cc", T0 + 6)]},
        2: {"users": [(1, 11, "dd", T0 + 86_400), (3, 30, "ee", T0 + 86_400)]},
    })
    result = reference.compute(folder, "default", sets=[1, 2])
    assert result[1]["users"].count == 2 and result[1]["registered_users_bz"].count == 4
    users = rows(result, 2, "users").set_index("user_id")
    assert result[2]["users"].count == 3 and result[2]["registered_users_bz"].count == 6
    assert users.loc[1, "device_id"] == 10 and users.loc[1, "mac_address"] == "aa"
    assert users.loc[2, "device_id"] == 20
    assert users.loc[3, "registration_timestamp"] == pd.Timestamp(T0 + 86_400, unit="s")


def test_gym_logs_later_logout_updates_earlier_does_not(tmp_path):
    folder = make_folder(tmp_path, {
        1: {"gym": [("m1", 1, T0, T0 + 1000), ("m2", 1, T0, T0 + 1000), ("m3", 1, T0, T0 + 1000),
                    ("m4", 1, T0, T0 - 100)]},      # a (bad) logout before the login
        2: {"gym": [("m1", 1, T0, T0 + 2000),       # later: updates
                    ("m2", 1, T0, T0 + 500),        # earlier: ignored
                    ("m3", 1, T0, T0 - 10),         # before login: ignored
                    ("m4", 1, T0, T0 - 50),         # later than stored but not than login: ignored
                    ("m3", 2, T0, T0 + 100)]},      # another gym: a new row
    })
    result = reference.compute(folder, "default", sets=[1, 2])
    first = rows(result, 1, "gym_logs").set_index("mac_address")
    assert (first.loc[["m1", "m2", "m3"], "logout"] == pd.Timestamp(T0 + 1000, unit="s")).all()
    logs = rows(result, 2, "gym_logs")
    assert len(logs) == 5
    logout = {(m, g): t for m, g, t in zip(logs["mac_address"], logs["gym"], logs["logout"])}
    assert logout[("m1", 1)] == pd.Timestamp(T0 + 2000, unit="s")
    assert logout[("m2", 1)] == pd.Timestamp(T0 + 1000, unit="s")
    assert logout[("m3", 1)] == pd.Timestamp(T0 + 1000, unit="s")
    assert logout[("m4", 1)] == pd.Timestamp(T0 - 100, unit="s")


def test_out_of_order_cdc_and_offset_tie_break(tmp_path):
    folder = make_folder(tmp_path, {
        1: {"profiles": [
            envelope("user_info", profile(5, T0 + 200, city="First"), 100, T0),
            # equal timestamps: the higher offset wins, whatever the line order
            envelope("user_info", profile(6, T0 + 300, city="HighOffset"), 50, T0),
            envelope("user_info", profile(6, T0 + 300, update_type="update", city="LowOffset"), 40, T0),
            # an update_type other than new/update is ignored
            envelope("user_info", profile(5, T0 + 900, update_type="delete", city="Deleted"), 101, T0),
        ]},
        2: {"profiles": [
            envelope("user_info", profile(5, T0 + 100, update_type="update", city="Older"), 200, T0),
            envelope("user_info", profile(6, T0 + 300, update_type="update", city="SameTime"), 999, T0),
        ]},
    })
    for mode in ("default", "course"):
        result = reference.compute(folder, mode, sets=[1, 2])
        for n in (1, 2):
            table = rows(result, n, "user_profile").set_index("user_id")
            assert table.loc[5, "city"] == "First", (mode, n)
            # set 2's equal-time event is not strictly newer than the stored one
            assert table.loc[6, "city"] == "HighOffset", (mode, n)
    default = rows(reference.compute(folder, "default", sets=[1]), 1, "user_profile").set_index("user_id")
    assert default.loc[5, "updated"] == pd.Timestamp(T0 + 200, unit="s")
    assert default.loc[5, "dob"] == dt.date(1990, 1, 1) and default.loc[5, "zip"] == 90001


def test_newer_update_in_later_set_wins_and_changes_user_bins(tmp_path):
    folder = make_folder(tmp_path, {
        1: {"users": [(7, 70, "aa", T0)],
            "profiles": [envelope("user_info", profile(7, T0, dob="01/01/2000", city="Before"), 1, T0)]},
        2: {"profiles": [envelope("user_info", profile(7, T0 + 86_400, update_type="update",
                                                       dob="01/01/1950", city="After"), 2, T0 + 86_400)]},
    })
    result = reference.compute(folder, "default", sets=[1, 2])
    before = rows(result, 1, "user_bins").set_index("user_id").loc[7]
    after = rows(result, 2, "user_bins").set_index("user_id").loc[7]
    assert (before["age"], before["city"]) == ("18-25", "Before")
    assert (after["age"], after["city"]) == ("65-75", "After")


def test_user_bins_need_a_registration(tmp_path):
    folder = make_folder(tmp_path, {
        1: {"users": [(1, 10, "aa", T0)],
            "profiles": [envelope("user_info", profile(1, T0), 1, T0), envelope("user_info", profile(2, T0), 2, T0)]},
    })
    result = reference.compute(folder, "default", sets=[1])
    assert result[1]["user_profile"].count == 2
    assert rows(result, 1, "user_bins")["user_id"].tolist() == [1]


@pytest.mark.parametrize("dob, expected_bin", [
    (dt.date(1998, 3, 31), "25-35"),   # 25 exactly: lower bound inclusive
    (dt.date(1998, 4, 1), "18-25"),    # 24
    (dt.date(2005, 3, 31), "18-25"),
    (dt.date(2005, 4, 1), "under 18"),
    (dt.date(1928, 3, 31), "95+"),
    (dt.date(1928, 4, 1), "85-95"),
    (dt.date(1939, 7, 25), "75-85"),
])
def test_age_bins_as_of_reference_date(dob, expected_bin):
    assert reference.age_bin(reference.age_years(dob, reference.REFERENCE_AS_OF)) == expected_bin


def test_stop_more_than_three_hours_after_start_is_not_completed(tmp_path):
    three_hours = 3 * 3600
    folder = make_folder(tmp_path, {1: {"workouts": [
        envelope("workout", workout(1, T0, "start", session_id=1), 1, T0),
        envelope("workout", workout(1, T0 + three_hours - 1, "stop", session_id=1), 2, T0),
        envelope("workout", workout(2, T0, "start", session_id=1), 3, T0),
        envelope("workout", workout(2, T0 + three_hours, "stop", session_id=1), 4, T0),
        envelope("workout", workout(3, T0, "start", session_id=1), 5, T0),
        envelope("workout", workout(3, T0 + three_hours + 60, "stop", session_id=1), 6, T0),
        envelope("workout", workout(4, T0, "start", session_id=1), 7, T0),  # never stopped
    ]}})
    result = reference.compute(folder, "default", sets=[1])
    assert result[1]["workouts"].count == 7
    completed = rows(result, 1, "completed_workouts")
    assert completed["user_id"].tolist() == [1]
    assert completed["end_time"].iloc[0] - completed["start_time"].iloc[0] == pd.Timedelta(seconds=three_hours - 1)


def test_duplicate_workout_event_is_dropped(tmp_path):
    folder = make_folder(tmp_path, {
        1: {"workouts": [envelope("workout", workout(1, T0, "start"), 1, T0)]},
        2: {"workouts": [envelope("workout", workout(1, T0, "start"), 1, T0),
                         envelope("workout", workout(1, T0 + 600, "stop"), 2, T0)]},
    })
    result = reference.compute(folder, "default", sets=[1, 2])
    assert result[1]["completed_workouts"].count == 0
    assert result[2]["workouts"].count == 2 and result[2]["completed_workouts"].count == 1


def _workout_folder(tmp_path, set1_bpm, set2_bpm=None):
    """User 1 (device 100, mac aa) works out from T0 to T0 + 600 in set 1."""
    sets = {1: {
        "users": [(1, 100, "aa", T0 - 3600)],
        "profiles": [envelope("user_info", profile(1, T0 - 3600, dob="06/15/1980"), 1, T0 - 3600)],
        "workouts": [envelope("workout", workout(1, T0, "start"), 1, T0),
                     envelope("workout", workout(1, T0 + 600, "stop"), 2, T0 + 600)],
        "gym": [("aa", 3, T0 - 60, T0 + 900)],
        "bpm": set1_bpm,
    }}
    if set2_bpm is not None:
        sets[2] = {"bpm": set2_bpm}
    return make_folder(tmp_path, sets)


def test_workout_bpm_interval_and_validity(tmp_path):
    folder = _workout_folder(tmp_path, [
        (100, T0, 90.0),          # exactly at start: excluded
        (100, T0 + 1, 100.0),
        (100, T0 + 2, 0.0),       # invalid
        (100, T0 + 3, -1.0),      # invalid
        (100, T0 + 4, 120.0),
        (100, T0 + 4, 120.0),     # exact duplicate
        (100, T0 + 600, 110.0),   # exactly at end: included
        (100, T0 + 601, 80.0),    # after the end
        (999, T0 + 5, 130.0),     # unregistered device
    ])
    result = reference.compute(folder, "default", sets=[1])
    hr = result[1]["heart_rate"].aggregates
    assert len(hr.pop("row_hash")) == 16
    assert hr == {"count": 8, "valid_count": 6, "distinct_devices": 2,
                  "min_time": "2023-03-11T08:00:00", "max_time": "2023-03-11T08:10:01",
                  "sum_heartrate": 90.0 + 100.0 + 0.0 - 1.0 + 120.0 + 110.0 + 80.0 + 130.0}
    bpm = rows(result, 1, "workout_bpm")
    assert (bpm["time"].astype("int64") // 1_000_000).tolist() == [T0 + 1, T0 + 4, T0 + 600]
    summary = rows(result, 1, "workout_bpm_summary")
    assert summary[["min_bpm", "avg_bpm", "max_bpm", "num_recordings"]].iloc[0].tolist() == [100.0, 110.0, 120.0, 3]
    assert summary[["user_id", "age", "city"]].iloc[0].tolist() == [1, "35-45", "Springfield"]
    assert result[1]["kafka_multiplex_bz"].aggregates["per_topic"] == {"bpm": 9, "user_info": 1, "workout": 2}
    gym = rows(result, 1, "gym_summary")
    assert gym[["gym", "minutes_in_gym", "minutes_exercising"]].iloc[0].tolist() == [3, 16.0, 10.0]


def test_late_reading_in_set_2_adds_to_set_1_summary(tmp_path):
    folder = _workout_folder(
        tmp_path,
        [(100, T0 + 10, 100.0), (100, T0 + 20, 100.0)],
        [(100, T0 + 30, 130.0, T0 + 86_400), (100, T0 + 40, -5.0, T0 + 86_400)],  # late, one invalid
    )
    for mode in ("default", "course"):
        result = reference.compute(folder, mode, sets=[1, 2])
        first = rows(result, 1, "workout_bpm_summary")
        second = rows(result, 2, "workout_bpm_summary")
        assert first["num_recordings"].tolist() == [2] and second["num_recordings"].tolist() == [3], mode
        assert second["max_bpm"].tolist() == [130.0]
        assert result[2]["workout_bpm_summary"].exact is (mode == "default")


def test_kafka_null_dates_are_counted(tmp_path):
    folder = make_folder(tmp_path, {1: {"bpm": [(1, T0, 80.0), (1, T0 + 1, 80.0, 1_704_067_200)]}})  # 2024-01-01
    agg = reference.compute(folder, "default", sets=[1])[1]["kafka_multiplex_bz"].aggregates
    assert agg["null_date_count"] == 1 and agg["null_date_per_topic"] == {"bpm": 1}
    assert agg["per_topic_week_part"] == {"bpm": {"2023-10": 1}}


def test_unparsable_lines_are_landed_quarantined_and_not_in_bronze_or_silver(tmp_path):
    folder = make_folder(tmp_path, {1: {"bpm": [(1, T0, 80.0)],
                                        "workouts": ["not json", envelope("workout", workout(1, T0, "start"), 1, T0)]}})
    with (folder / "3-bpm_1.json").open("a") as handle:
        handle.write("{broken\n")
    result = reference.compute(folder, "default", sets=[1])
    assert result[1]["kafka_multiplex_bz"].count == 2          # 4 landed, 2 quarantined
    assert result[1]["kafka_multiplex_bz"].aggregates["unparsed"] == 2
    quarantined = result[1]["quarantine_bz"].rows
    assert sorted(quarantined["file"]) == ["3-bpm_1.json", "4-workout_1.json"]
    assert set(quarantined["reason"]) == {reference.JSON_LINE_REASON}
    assert result[1]["heart_rate"].count == 1 and result[1]["workouts"].count == 1


# ----------------------------------------------------------------------------------
# manifest, loader, skipping
# ----------------------------------------------------------------------------------
def test_manifest_round_trip(tmp_path):
    folder = _workout_folder(tmp_path / "data", [(100, T0 + 1, 100.0)], [(100, T0 + 2, 101.0)])
    out = reference.write_expectations(folder, sets=[1, 2])
    assert out == folder / "expected"
    loaded = Expectations.load(folder)
    assert loaded.as_of == reference.REFERENCE_AS_OF and loaded.sets == (1, 2)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["format"] == 1 and set(manifest["inputs"]) >= {"3-bpm_1.json", "6-date-lookup.json"}
    assert manifest["inputs"]["3-bpm_1.json"] == reference.sha256(folder / "3-bpm_1.json")
    assert (out / "default" / "set_2" / "users.parquet").is_file()
    for mode in ("default", "course"):
        computed = reference.compute(folder, mode, sets=[1, 2])
        for n in (1, 2):
            assert loaded.tables(mode, n) == list(computed[n])
            for table, want in computed[n].items():
                got = loaded.table(mode, n, table)
                assert isinstance(got, TableExpectation)
                assert (got.count, got.exact, got.aggregates, got.note) == (
                    want.count, want.exact, want.aggregates, want.note), (mode, n, table)
                if want.rows is None:
                    assert got.rows is None
                else:
                    pd.testing.assert_frame_equal(got.rows, want.rows, check_dtype=False)
                    for name in want.rows.columns:
                        if str(want.rows[name].dtype) != "object":
                            assert got.rows[name].dtype == want.rows[name].dtype, (table, name)
    assert loaded.landing(2)["kafka_multiplex_bz"] == {"user_info": 1, "workout": 2, "bpm": 2}
    # the loader also accepts the expectations folder itself, and the course-compat alias
    assert Expectations.load(out).table("course-compat", 1, "users").count == 1


def test_write_skips_when_inputs_unchanged(tmp_path):
    folder = _workout_folder(tmp_path / "data", [(100, T0 + 1, 100.0)])
    manifest = reference.write_expectations(folder, sets=[1]) / "manifest.json"
    stamp = manifest.stat().st_mtime_ns
    os.utime(manifest, ns=(stamp - 10**9, stamp - 10**9))
    stamp = manifest.stat().st_mtime_ns
    reference.write_expectations(folder, sets=[1])
    assert manifest.stat().st_mtime_ns == stamp  # nothing rewritten
    # another as_of: rewritten
    reference.write_expectations(folder, sets=[1], as_of=dt.date(2024, 1, 1))
    assert Expectations.load(folder).as_of == dt.date(2024, 1, 1)
    stamp = manifest.stat().st_mtime_ns
    # a changed input file: rewritten with the new hash and the new contents
    make_folder(folder, {1: {"bpm": [(100, T0 + 1, 100.0), (100, T0 + 2, 100.0)]}})
    reference.write_expectations(folder, sets=[1], as_of=dt.date(2024, 1, 1))
    loaded = Expectations.load(folder)
    assert loaded.inputs["3-bpm_1.json"] == reference.sha256(folder / "3-bpm_1.json")
    assert loaded.table("default", 1, "workout_bpm").count == 2
    assert not list(folder.glob(".expected.*"))  # no temporary folders left


def test_write_requires_heart_rate_files(tmp_path):
    folder = make_folder(tmp_path / "data", {1: {"users": [(1, 10, "aa", T0)]}})
    (folder / "3-bpm_1.json").unlink()
    with pytest.raises(ExpectationsError, match="3-bpm_1.json"):
        reference.write_expectations(folder, sets=[1])
    assert not (folder / "expected").exists()


def test_missing_expectations_give_a_clear_error(tmp_path):
    with pytest.raises(ExpectationsError, match=r"no expectations in .*nowhere.*sbit prepare-data"):
        Expectations.load(tmp_path / "nowhere")
    folder = _workout_folder(tmp_path / "data", [(100, T0 + 1, 100.0)])
    reference.write_expectations(folder, sets=[1])
    loaded = Expectations.load(folder)
    with pytest.raises(ExpectationsError, match=r"table 'nope' \(mode 'default', set 1\)"):
        loaded.table("default", 1, "nope")
    with pytest.raises(ExpectationsError, match="set 7"):
        loaded.table("default", 7, "users")
    with pytest.raises(ExpectationsError, match="mode 'weird'"):
        loaded.table("weird", 1, "users")
    with pytest.raises(ExpectationsError, match="set 4"):
        loaded.landing(4)


def test_unknown_format_is_rejected(tmp_path):
    (tmp_path / "expected").mkdir()
    (tmp_path / "expected" / "manifest.json").write_text(json.dumps({"format": 99}))
    with pytest.raises(ExpectationsError, match="format 99"):
        Expectations.load(tmp_path)
