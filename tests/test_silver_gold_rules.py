"""Every silver/gold rule on a tiny hand-made data set, through the real pipeline.

Two sets of a few records each, written below, run like the course's batch test
(produce, run, validate). Each rule is asserted with its hand-worked value, and every
table is also compared with the reference computation over the same files.

The environment's zones are given as ``file://`` URLs, so this pipeline run also proves the
pipeline on zones that go through Hadoop's FileSystem (the code path of an ``s3a://`` zone),
and its last test cleans them up; tests/test_storage.py checks set-up, the producer and
clean-up's finer points there without a run of its own.
"""

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from sbit_lib.course.config import PROJECT_ROOT, Config
from sbit_lib.course.producer import Producer
from sbit_lib.course.run import run, validate_every_layer
from sbit_lib.course.setup_helper import SetupHelper
from sbit_lib.course.silver import Silver
from sbit_lib.testing.reference import write_expectations
from sbit_lib.testing.spec import KEYS
from sbit_lib.testing.validation import ValidationError

START = 1678521600            # 2023-03-11 08:00:00 UTC
END = START + 3600            # a one-hour workout
H3 = 3 * 3600


def kafka(topic, key, value: dict, offset, ts):
    return json.dumps({"key": str(key), "value": json.dumps(value), "topic": topic, "partition": 0,
                       "offset": offset, "timestamp": ts})


def profile(user, kind, ts, city, offset):
    value = {"user_id": user, "update_type": kind, "timestamp": ts, "dob": "01/15/1990", "sex": "F",
             "gender": "F", "first_name": "A", "last_name": "B",
             "address": {"street_address": "1 Main St", "city": city, "state": "CA", "zip": 90001}}
    return kafka("user_info", user, value, offset, int(ts))


def workout(user, action, ts, offset, session=1):
    value = {"user_id": user, "workout_id": 1, "timestamp": float(ts), "action": action, "session_id": session}
    return kafka("workout", user, value, offset, ts)


def bpm(device, t, hr, offset):
    return kafka("bpm", device, {"device_id": device, "time": t, "heartrate": hr}, offset, t)


FILES = {
    # user 1 registers twice: the second registration (device 109) is ignored
    "1-registered_users_1.csv": "user_id,device_id,mac_address,registration_timestamp\n"
                                "1,101,m1,1678450000\n2,102,m2,1678450001\n1,109,m9,1678450002\n",
    "1-registered_users_2.csv": "user_id,device_id,mac_address,registration_timestamp\n3,103,m3,1678460000\n",
    "2-user_info_1.json": "\n".join([
        profile(1, "new", 1678450000, "Alpha", 1),
        profile(1, "update", 1678450100, "Beta", 10),
        profile(1, "update", 1678450100, "Gamma", 11),      # same second: the higher offset wins
        profile(2, "new", 1678450200, "Delta", 3),
        profile(2, "update", 1678450050, "Stale", 4),       # older event arriving later: ignored
    ]),
    "2-user_info_2.json": "\n".join([
        profile(1, "update", 1678460000, "Omega", 20),      # a later run changes user_bins
        profile(3, "new", 1678460000, "Epsilon", 21),
    ]),
    "4-workout_1.json": "\n".join([
        workout(1, "start", START, 1), workout(1, "stop", END, 2),
        workout(2, "start", START, 3), workout(2, "stop", START + H3 + 60, 4),   # > 3 h: not completed
    ]),
    "4-workout_2.json": "\n".join([workout(3, "start", START + 86400, 5), workout(3, "stop", START + 86400 + 600, 6)]),
    "5-gym_logins_1.csv": "mac_address,gym,login,logout\nm1,1,1678521000,1678526000\nm2,2,1678521000,1678526000\n",
    "5-gym_logins_2.csv": "mac_address,gym,login,logout\n"
                          "m1,1,1678521000,1678527000\n"      # later logout: updates
                          "m2,2,1678521000,1678525000\n"      # earlier logout: ignored
                          "m3,1,1678606800,1678608600\n",
    "3-bpm_1.json": "\n".join([
        bpm(101, START, 80.0, 1),            # exactly at start_time: excluded
        bpm(101, START + 60, 90.0, 2),
        bpm(101, START + 120, 0.0, 3),       # invalid reading: excluded
        bpm(101, START + 120, 0.0, 4),       # duplicate
        bpm(101, END, 100.0, 5),             # exactly at end_time: included
        bpm(101, END + 1, 110.0, 6),         # after the workout
        bpm(102, START + 60, 95.0, 7),       # user 2's workout never completed
        bpm(999, START + 60, 70.0, 8),       # unregistered device
    ]),
    "3-bpm_2.json": "\n".join([
        bpm(101, START + 300, 120.0, 9),     # late: arrives one set after its workout
        bpm(103, START + 86400 + 60, 85.0, 10),
    ]),
}


@pytest.fixture(scope="module")
def tiny(spark, lakehouse_home, tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny_data")
    for name, text in FILES.items():
        (folder / name).write_text(text + ("" if text.endswith("\n") else "\n"))
    shutil.copy(PROJECT_ROOT / "test_data" / "6-date-lookup.json", folder)
    write_expectations(folder, sets=range(1, 3))
    zones = tmp_path_factory.mktemp("rules_zones")
    return Config.resolve(environment="rules", home=lakehouse_home, test_data=folder, as_of="2023-03-31",
                          data_root=f"file://{zones / 'data'}", checkpoint_root=f"file://{zones / 'checkpoints'}")


def local_folders(config) -> tuple[Path, Path]:
    """The data and checkpoint zones' folders, for Python's own file functions (not Hadoop's)."""
    return tuple(Path(str(zone).removeprefix("file://")) for zone in (config.data_zone, config.checkpoint_zone))


def rows(spark, config, table, order):
    return [tuple(r) for r in spark.table(config.qualified(table)).orderBy(*order).collect()]


@dataclass(frozen=True)
class Ran:
    """The tables the rules are checked on, right after set n's run: the next set changes them."""

    tables: dict[str, list[tuple]]     # rows ordered by the table's key (spec.KEYS)
    problem: str | None                # what validate_every_layer(n) found wrong, None when nothing


def run_set(spark, config, n: int, tables: tuple[str, ...]) -> Ran:
    """Produce set n, run the pipeline once, and record `tables` and every layer's validation."""
    Producer(config).produce(n)
    run(config, spark=spark)
    try:
        validate_every_layer(config, spark, n)          # landing zone, bronze, silver, gold
        problem = None
    except ValidationError as err:
        problem = str(err)
    return Ran({t: rows(spark, config, t, KEYS[t]) for t in tables}, problem)


@pytest.fixture(scope="module")
def set_1(spark, tiny) -> Ran:
    """The environment's first run (set-up included), on set 1."""
    return run_set(spark, tiny, 1, ("users", "user_profile", "completed_workouts", "workout_bpm",
                                    "workout_bpm_summary"))


@pytest.fixture(scope="module")
def set_2(spark, tiny, set_1) -> Ran:
    return run_set(spark, tiny, 2, ("gym_logs", "user_bins", "workout_bpm_summary"))


def test_set_1(tiny, set_1):
    assert str(tiny.landing_zone).startswith("file:///") and str(tiny.checkpoint_zone).startswith("file:///")
    data, checkpoints = local_folders(tiny)            # the tables and checkpoints are in the URL zones
    assert (data / "delta" / "workout_bpm_summary" / "_delta_log" / f"{1:020d}.json").is_file()   # set-up made 0
    assert (checkpoints / "kafka_multiplex_bz" / "commits" / "0").is_file()
    tables = set_1.tables
    assert [r[:2] for r in tables["users"]] == [(1, 101), (2, 102)]
    assert {r[0]: r[7] for r in tables["user_profile"]} == {1: "Gamma", 2: "Delta"}
    assert [r[:3] for r in tables["completed_workouts"]] == [(1, 1, 1)]
    assert [r[5].timestamp() for r in tables["workout_bpm"]] == [START + 60, END]
    assert [(r[2], r[7], r[9], r[10]) for r in tables["workout_bpm_summary"]] == [(1, 90.0, 100.0, 2)]
    assert set_1.problem is None, set_1.problem


def test_set_2(set_2):
    tables = set_2.tables
    logouts = {(r[0], r[1]): r[3].timestamp() for r in tables["gym_logs"]}
    assert logouts[("m1", 1)] == 1678527000 and logouts[("m2", 2)] == 1678526000
    assert {r[0]: r[3] for r in tables["user_bins"]} == {1: "Omega", 2: "Delta", 3: "Epsilon"}
    summary = {r[2]: (r[7], r[9], r[10]) for r in tables["workout_bpm_summary"]}
    assert summary[1] == (90.0, 120.0, 3)            # the late reading corrected the summary
    assert set_2.problem is None, set_2.problem


def test_a_rerun_without_new_data_changes_no_table(spark, tiny, set_2):
    tables = Silver.TABLES + ("workout_bpm_summary",)
    before = {t: spark.sql(f"DESCRIBE HISTORY {tiny.qualified(t)}").first()["version"] for t in tables}
    run(tiny, spark=spark)
    after = {t: spark.sql(f"DESCRIBE HISTORY {tiny.qualified(t)}").first()["version"] for t in tables}
    assert after == before


def test_clean_up_empties_both_url_zones(spark, tiny, set_1):
    """After a run (set 1's, or every one before it in the module): this ends the environment,
    so it stays the module's last test."""
    data, checkpoints = local_folders(tiny)
    assert (checkpoints / "heart_rate" / "commits").is_dir() and (data / "delta" / "users").is_dir()
    SetupHelper(tiny, spark).cleanup()
    assert not checkpoints.exists(), sorted(p.name for p in checkpoints.rglob("*"))[:10]
    assert not data.exists() or os.listdir(data) == [], os.listdir(data)
    assert tiny.db_name not in [d.name for d in spark.catalog.listDatabases()]
