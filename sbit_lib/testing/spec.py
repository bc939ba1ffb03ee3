"""The tables the checks expect, as ``docs/pipeline-spec.md`` states them.

This is the checks' own statement of the spec, written from the spec's text, not imported
from the pipeline's table definitions (:mod:`sbit_lib.course.tables`): a wrong column type
there then fails a test (``tests/test_spec.py``) instead of being "expected" too. The same
test parses the doc's ``columns`` blocks and ``Key:`` lines and compares them with
``SCHEMAS`` and ``KEYS``, so the doc and this module change together.

Types are Spark SQL type names, lower case; columns in the spec's order.
"""

from __future__ import annotations


def _columns(ddl: str) -> list[tuple[str, str]]:
    return [(part.split()[0], part.split()[1].lower()) for part in ddl.split(", ")]


SCHEMAS: dict[str, list[tuple[str, str]]] = {name: _columns(ddl) for name, ddl in {
    # history: 6-date-lookup.json, string fields cast to these types
    "date_lookup": "date date, week int, year int, month int, dayofweek int, dayofmonth int, "
                   "dayofyear int, week_part string",
    # bronze
    "registered_users_bz": "user_id bigint, device_id bigint, mac_address string, "
                           "registration_timestamp double, load_time timestamp, source_file string",
    "gym_logins_bz": "mac_address string, gym bigint, login double, logout double, load_time timestamp, "
                     "source_file string",
    "kafka_multiplex_bz": "key string, value string, topic string, partition bigint, offset bigint, "
                          "timestamp bigint, date date, week_part string, load_time timestamp, source_file string",
    # silver
    "users": "user_id bigint, device_id bigint, mac_address string, registration_timestamp timestamp",
    "gym_logs": "mac_address string, gym bigint, login timestamp, logout timestamp",
    "user_profile": "user_id bigint, dob date, sex string, gender string, first_name string, last_name string, "
                    "street_address string, city string, state string, zip int, updated timestamp",
    "workouts": "user_id int, workout_id int, time timestamp, action string, session_id int",
    "heart_rate": "device_id bigint, time timestamp, heartrate double, valid boolean",
    "user_bins": "user_id bigint, age string, gender string, city string, state string",
    "completed_workouts": "user_id int, workout_id int, session_id int, start_time timestamp, end_time timestamp",
    "workout_bpm": "user_id int, workout_id int, session_id int, start_time timestamp, end_time timestamp, "
                   "time timestamp, heartrate double",
    # gold
    "workout_bpm_summary": "workout_id int, session_id int, user_id bigint, age string, gender string, "
                           "city string, state string, min_bpm double, avg_bpm double, max_bpm double, "
                           "num_recordings bigint",
    "gym_summary": "date date, gym bigint, mac_address string, workout_id int, session_id int, "
                   "minutes_in_gym double, minutes_exercising double",
}.items()}

# Key columns: rows are unique on them (gym_summary: its ORDER BY columns).
KEYS: dict[str, tuple[str, ...]] = {
    "date_lookup": ("date",),
    "users": ("user_id",),
    "gym_logs": ("mac_address", "gym", "login"),
    "user_profile": ("user_id",),
    "workouts": ("user_id", "time"),
    "heart_rate": ("device_id", "time"),
    "user_bins": ("user_id",),
    "completed_workouts": ("user_id", "workout_id", "session_id"),
    "workout_bpm": ("user_id", "workout_id", "session_id", "time"),
    "workout_bpm_summary": ("user_id", "workout_id", "session_id"),
    "gym_summary": ("date", "gym", "mac_address", "session_id"),
}
BRONZE_TABLES = ("registered_users_bz", "gym_logins_bz", "kafka_multiplex_bz")
