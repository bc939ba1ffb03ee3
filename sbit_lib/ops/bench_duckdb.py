"""The benchmark's single-machine comparison: DuckDB computing the silver and gold tables.

``make bench`` (:mod:`sbit_lib.ops.bench`, the engine ratio) sets the pipeline's time for
one set end to end next to what a single-machine engine needs for the same tables, in the
same run: an in-memory DuckDB reading the landing files directly (``read_csv`` /
``read_json``) and materialising every silver and gold table of **default mode**
(``CREATE TABLE ... AS``, one SQL statement per table) after sets 1..n.

This is a yardstick, not a reference: the expected results come from
:mod:`sbit_lib.testing.reference`, and :func:`check` compares these tables with them.
The rules are those of ``sbit_lib/course/silver.py`` and ``gold.py`` for clean data;
bad input is only skipped (no quarantine, no rejects table).

Usage::

    python -m sbit_lib.ops.bench_duckdb --sets 1        # seconds, row counts, differences
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import os
import sys
import time
from pathlib import Path

# Silver and gold tables (and the gym_summary view), in the order they are computed.
TABLES = ("users", "gym_logs", "user_profile", "workouts", "heart_rate", "user_bins",
          "completed_workouts", "workout_bpm", "workout_bpm_summary", "gym_summary")

# Helpers shared by the statements. Times follow Spark's DOUBLE -> TIMESTAMP cast
# (truncated to microseconds), NULL outside TIMESTAMP's years 1..9999.
MACROS = """
CREATE MACRO set_of(file) AS CAST(regexp_extract(file, '_(\\d+)\\.(csv|json)$', 1) AS INTEGER);
CREATE MACRO ts(seconds) AS CASE WHEN seconds BETWEEN -62135596800 AND 253402300799
                                 THEN make_timestamp(CAST(trunc(seconds * 1000000) AS BIGINT)) END;
CREATE MACRO unix_seconds(t) AS epoch_us(t) // 1000000;
CREATE MACRO age_years(dob, as_of) AS year(as_of) - year(dob)
    - CASE WHEN month(as_of) * 100 + day(as_of) < month(dob) * 100 + day(dob) THEN 1 ELSE 0 END;
"""

# One statement per table: {name: SELECT}. {registrations}, {gym_logins} and {kafka} are the
# landing files of sets 1..n; {as_of} the date ages are computed at.
STATEMENTS = {
    # The Kafka landing files (topics user_info, bpm, workout), as bronze keeps them.
    "kafka": """
        SELECT set_of(filename) AS set_no, topic, "offset", value
        FROM read_json({kafka}, format = 'newline_delimited', filename = true,
                       columns = {{key: 'VARCHAR', value: 'VARCHAR', topic: 'VARCHAR', partition: 'BIGINT',
                                   "offset": 'BIGINT', timestamp: 'BIGINT'}})""",

    # A user registers once: the first registration wins (earlier set, then earliest, lowest device).
    "users": """
        SELECT user_id, device_id, mac_address, ts(registration_timestamp) AS registration_timestamp
        FROM read_csv({registrations}, header = true, filename = true,
                      columns = {{user_id: 'BIGINT', device_id: 'BIGINT', mac_address: 'VARCHAR',
                                  registration_timestamp: 'DOUBLE'}})
        WHERE user_id IS NOT NULL AND device_id IS NOT NULL AND trim(mac_address) <> ''
          AND (registration_timestamp IS NULL OR ts(registration_timestamp) IS NOT NULL)
        QUALIFY row_number() OVER (PARTITION BY user_id
                                   ORDER BY set_of(filename), registration_timestamp, device_id) = 1""",

    # One row per visit (mac_address, gym, login): the logout of its first set, raised by any
    # later logout that is after the login.
    "gym_logs": """
        SELECT mac_address, gym, login,
               greatest(max(logout) FILTER (WHERE set_no = first_set),
                        max(logout) FILTER (WHERE logout > login)) AS logout
        FROM (SELECT mac_address, gym, ts(login) AS login, ts(logout) AS logout, set_of(filename) AS set_no,
                     min(set_of(filename)) OVER (PARTITION BY mac_address, gym, ts(login)) AS first_set
              FROM read_csv({gym_logins}, header = true, filename = true,
                            columns = {{mac_address: 'VARCHAR', gym: 'BIGINT', login: 'DOUBLE',
                                        logout: 'DOUBLE'}})
              WHERE trim(mac_address) <> '' AND gym IS NOT NULL AND ts(login) IS NOT NULL
                AND (logout IS NULL OR ts(logout) IS NOT NULL))
        GROUP BY mac_address, gym, login""",

    # CDC, SCD type 1: the newest event per user (a tie goes to the earlier set, then the higher offset).
    "user_profile": """
        SELECT user_id, CAST(try_strptime(dob, '%m/%d/%Y') AS DATE) AS dob, sex, gender, first_name,
               last_name, address.street_address, address.city, address.state, address.zip,
               ts(timestamp) AS updated
        FROM (SELECT set_no, "offset", unnest(try(json_transform(value, '{{
                  "user_id": "BIGINT", "update_type": "VARCHAR", "timestamp": "DOUBLE", "dob": "VARCHAR",
                  "sex": "VARCHAR", "gender": "VARCHAR", "first_name": "VARCHAR", "last_name": "VARCHAR",
                  "address": {{"street_address": "VARCHAR", "city": "VARCHAR", "state": "VARCHAR",
                               "zip": "INTEGER"}}}}')))
              FROM kafka WHERE topic = 'user_info')
        WHERE user_id IS NOT NULL AND ts(timestamp) IS NOT NULL AND update_type IN ('new', 'update')
        QUALIFY row_number() OVER (PARTITION BY user_id ORDER BY updated DESC, set_no, "offset" DESC) = 1""",

    # Workout start/stop events, one per (user_id, time): the first to arrive wins. Keeps the
    # set each event arrived in, which completed_workouts needs; `workouts` drops it.
    "workout_events": """
        SELECT user_id, workout_id, ts(timestamp) AS time, action, session_id, set_no
        FROM (SELECT set_no, "offset", unnest(try(json_transform(value, '{{
                  "user_id": "INTEGER", "workout_id": "INTEGER", "timestamp": "DOUBLE", "action": "VARCHAR",
                  "session_id": "INTEGER"}}')))
              FROM kafka WHERE topic = 'workout')
        WHERE user_id IS NOT NULL AND workout_id IS NOT NULL AND session_id IS NOT NULL
          AND ts(timestamp) IS NOT NULL AND action IN ('start', 'stop')
        QUALIFY row_number() OVER (PARTITION BY user_id, time ORDER BY set_no, "offset") = 1""",

    "workouts": "SELECT user_id, workout_id, time, action, session_id FROM workout_events",

    # Readings, one per (device_id, time): the first to arrive wins; valid when heartrate > 0.
    "heart_rate": """
        SELECT device_id, ts(time) AS time, heartrate, coalesce(heartrate > 0, false) AS valid
        FROM (SELECT set_no, "offset", unnest(try(json_transform(value, '{{
                  "device_id": "BIGINT", "time": "DOUBLE", "heartrate": "DOUBLE"}}')))
              FROM kafka WHERE topic = 'bpm')
        WHERE device_id IS NOT NULL AND ts(time) IS NOT NULL
        QUALIFY row_number() OVER (PARTITION BY device_id, ts(time) ORDER BY set_no, "offset") = 1""",

    # Each registered user's age bin (as of {as_of}, lower bound inclusive) and location.
    "user_bins": """
        SELECT p.user_id,
               CASE WHEN age IS NULL THEN NULL
                    WHEN age < 18 THEN 'under 18' WHEN age < 25 THEN '18-25' WHEN age < 35 THEN '25-35'
                    WHEN age < 45 THEN '35-45' WHEN age < 55 THEN '45-55' WHEN age < 65 THEN '55-65'
                    WHEN age < 75 THEN '65-75' WHEN age < 85 THEN '75-85' WHEN age < 95 THEN '85-95'
                    ELSE '95+' END AS age,
               p.gender, p.city, p.state
        FROM (SELECT *, age_years(dob, DATE '{as_of}') AS age FROM user_profile) p
        JOIN users u ON p.user_id = u.user_id""",

    # Start ⋈ stop of one session, the stop after the start and within 3 hours. A session
    # completes in the first set that brings such a pair, with its earliest pair then;
    # a pair arriving later does not change it.
    "completed_workouts": """
        SELECT user_id, workout_id, session_id, start_time, end_time
        FROM (SELECT s.user_id, s.workout_id, s.session_id, s.time AS start_time, e.time AS end_time,
                     greatest(s.set_no, e.set_no) AS completed_in
              FROM workout_events s JOIN workout_events e
                ON s.user_id = e.user_id AND s.workout_id = e.workout_id AND s.session_id = e.session_id
              WHERE s.action = 'start' AND e.action = 'stop'
                AND e.time > s.time AND e.time < s.time + INTERVAL 3 HOURS)
        QUALIFY row_number() OVER (PARTITION BY user_id, workout_id, session_id
                                   ORDER BY completed_in, start_time, end_time) = 1""",

    # Valid readings of the user's device inside (start_time, end_time] of a completed workout.
    "workout_bpm": """
        SELECT c.user_id, c.workout_id, c.session_id, c.start_time, c.end_time, h.time, h.heartrate
        FROM completed_workouts c
        JOIN users u ON c.user_id = u.user_id
        JOIN heart_rate h ON h.device_id = u.device_id AND h.time > c.start_time AND h.time <= c.end_time
                         AND c.end_time < h.time + INTERVAL 3 HOURS
        WHERE h.valid""",

    # Gold, exact: every workout with readings, over all its readings, with the user's bins.
    "workout_bpm_summary": """
        SELECT s.workout_id, s.session_id, CAST(s.user_id AS BIGINT) AS user_id, b.age, b.gender, b.city,
               b.state, s.min_bpm, s.avg_bpm, s.max_bpm, s.num_recordings
        FROM (SELECT user_id, workout_id, session_id, min(heartrate) AS min_bpm, avg(heartrate) AS avg_bpm,
                     max(heartrate) AS max_bpm, count(heartrate) AS num_recordings
              FROM workout_bpm GROUP BY user_id, workout_id, session_id) s
        JOIN user_bins b ON s.user_id = b.user_id""",

    # The view: gym visits that contain a completed workout's start, minutes in whole seconds.
    "gym_summary": """
        SELECT CAST(l.login AS DATE) AS date, l.gym, l.mac_address, w.workout_id, w.session_id,
               round((unix_seconds(l.logout) - unix_seconds(l.login)) / 60, 2) AS minutes_in_gym,
               round((unix_seconds(w.end_time) - unix_seconds(w.start_time)) / 60, 2) AS minutes_exercising
        FROM gym_logs l
        JOIN (SELECT u.mac_address, c.workout_id, c.session_id, c.start_time, c.end_time
              FROM completed_workouts c JOIN users u ON c.user_id = u.user_id) w
          ON l.mac_address = w.mac_address AND w.start_time BETWEEN l.login AND l.logout
        ORDER BY date, l.gym, l.mac_address, w.session_id""",
}


def landing_files(test_data: Path, sets: int) -> dict[str, list[str]]:
    """The set files of sets 1..`sets` present in `test_data`, per source (missing files count as empty)."""
    names = {
        "registrations": [f"1-registered_users_{n}.csv" for n in range(1, sets + 1)],
        "gym_logins": [f"5-gym_logins_{n}.csv" for n in range(1, sets + 1)],
        "kafka": [f"{kind}_{n}.json" for n in range(1, sets + 1) for kind in ("2-user_info", "3-bpm", "4-workout")],
    }
    files = {source: [str(test_data / name) for name in group if (test_data / name).is_file()]
             for source, group in names.items()}
    empty = [source for source, found in files.items() if not found]
    if empty:
        raise FileNotFoundError(f"{test_data} has no file of {', '.join(empty)} for sets 1..{sets}")
    return files


def _sql_list(paths: list[str]) -> str:
    return "[" + ", ".join("'" + p.replace("'", "''") + "'" for p in paths) + "]"


def run(test_data: Path, sets: int = 1, as_of: dt.date | None = None) -> dict:
    """Compute every silver and gold table after sets 1..`sets` in an in-memory DuckDB.

    `as_of` (ages) defaults to the expected results' date. Returns ``{"seconds": wall time
    from reading the files to the last table materialised, "rows": {table: count},
    "tables": {table: pandas.DataFrame}}`` (the frames are read after the timing).
    """
    import duckdb

    test_data = Path(test_data)
    if sets < 1:
        raise ValueError(f"sets must be >= 1, got {sets}")
    if as_of is None:
        from sbit_lib.testing.expectations import Expectations

        as_of = Expectations.load(test_data).as_of
    files = {source: _sql_list(paths) for source, paths in landing_files(test_data, sets).items()}
    statements = {name: sql.format(**files, as_of=as_of.isoformat()) for name, sql in STATEMENTS.items()}
    with duckdb.connect() as con:
        con.execute("SET TimeZone = 'UTC'")
        con.execute(MACROS)
        start = time.perf_counter()
        for name, select in statements.items():
            con.execute(f"CREATE TABLE {name} AS {select}")
        seconds = time.perf_counter() - start
        rows = {name: con.execute(f"SELECT count(*) FROM {name}").fetchall()[0][0] for name in TABLES}
        tables = {name: con.table(name).to_arrow_table().to_pandas(date_as_object=True) for name in TABLES}
    return {"seconds": seconds, "sets": sets, "as_of": as_of.isoformat(), "rows": rows, "tables": tables}


def _heart_rate_differences(actual, expected: dict) -> list[str]:
    """heart_rate holds no expected rows: compare its aggregates (EXPECTED.md)."""
    from sbit_lib.testing.expectations import heart_rate_hash

    def iso(value) -> str | None:
        return None if value is None or value != value else value.isoformat()

    found = {
        "count": len(actual),
        "valid_count": int(actual["valid"].sum()),
        "distinct_devices": int(actual["device_id"].nunique()),
        "min_time": iso(actual["time"].min()),
        "max_time": iso(actual["time"].max()),
        "row_hash": heart_rate_hash(actual["device_id"], actual["time"], actual["heartrate"], actual["valid"]),
    }
    out = [f"heart_rate {key}: expected {expected[key]!r}, found {value!r}"
           for key, value in found.items() if key in expected and expected[key] != value]
    total = math.fsum(actual["heartrate"].dropna().tolist())
    if "sum_heartrate" in expected and not math.isclose(total, expected["sum_heartrate"], rel_tol=1e-9):
        out.append(f"heart_rate sum_heartrate: expected {expected['sum_heartrate']!r}, found {total!r}")
    return out


def check(test_data: Path, result: dict, sets: int) -> list[str]:
    """Differences between `result` (of :func:`run`) and the expected default-mode tables after set `sets`.

    Row counts always; with ``result["tables"]`` also the rows (floats to 6 decimals, any
    order, like the pipeline's validators) and heart_rate's aggregates. Empty: same tables.
    """
    from sbit_lib.testing.expectations import Expectations
    from sbit_lib.testing.validation import diff_rows

    expectations = Expectations.load(test_data)
    differences = []
    if result.get("as_of") not in (None, expectations.as_of.isoformat()):
        differences.append(f"ages computed as of {result['as_of']}, the expected results as of {expectations.as_of}")
    tables = result.get("tables") or {}
    for name in TABLES:
        expected = expectations.table("default", sets, name)
        count = result["rows"].get(name)
        if count != expected.count:
            differences.append(f"{name}: expected {expected.count:,} rows, found {count}")
        actual = tables.get(name)
        if actual is None:
            continue
        if expected.rows is not None:
            missing, unexpected = diff_rows(actual, expected.rows)
            if len(missing) or len(unexpected):
                differences.append(f"{name}: {len(missing):,} expected rows missing, {len(unexpected):,} unexpected")
        elif name == "heart_rate":
            differences += _heart_rate_differences(actual, expected.aggregates)
    return differences


def main(argv=None) -> int:
    from sbit_lib import PROJECT_ROOT

    parser = argparse.ArgumentParser(prog="python -m sbit_lib.ops.bench_duckdb", description=__doc__.split("\n")[0])
    parser.add_argument("--sets", type=int, default=1, help="compute the tables after sets 1..N (default 1)")
    parser.add_argument("--test-data", default=os.environ.get("SBIT_TEST_DATA") or str(PROJECT_ROOT / "test_data"),
                        help="folder of the set files and expected/ (default: SBIT_TEST_DATA, else test_data)")
    parser.add_argument("--as-of", type=dt.date.fromisoformat,
                        help="as-of date for ages, YYYY-MM-DD (default: the expected results')")
    args = parser.parse_args(argv)
    test_data = Path(args.test_data)
    result = run(test_data, sets=args.sets, as_of=args.as_of)
    print(f"DuckDB, sets 1..{args.sets}: {result['seconds']:.2f} s")
    for name, count in result["rows"].items():
        print(f"  {name}: {count:,} rows")
    differences = check(test_data, result, args.sets)
    print(f"differences from the expected results: {differences}")
    return 1 if differences else 0


if __name__ == "__main__":
    sys.exit(main())
