"""The tables and the view of the lakehouse: one place for every schema.

Each table is a Delta table at ``<data zone>/delta/<name>``; the Spark catalog
only holds pointers to those locations (see :mod:`sbit_lib.course.catalog`).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TableDef:
    """A Delta table: name, layer, column DDL and partition columns."""

    name: str
    layer: str
    columns: str
    partitioned_by: tuple[str, ...] = ()
    properties: tuple[tuple[str, str], ...] = ()


TABLES: tuple[TableDef, ...] = (
    TableDef("date_lookup", "history",
             "date DATE, week INT, year INT, month INT, dayofweek INT, dayofmonth INT, "
             "dayofyear INT, week_part STRING"),
    TableDef("registered_users_bz", "bronze",
             "user_id BIGINT, device_id BIGINT, mac_address STRING, registration_timestamp DOUBLE, "
             "load_time TIMESTAMP, source_file STRING"),
    TableDef("gym_logins_bz", "bronze",
             "mac_address STRING, gym BIGINT, login DOUBLE, logout DOUBLE, "
             "load_time TIMESTAMP, source_file STRING"),
    TableDef("kafka_multiplex_bz", "bronze",
             "key STRING, value STRING, topic STRING, partition BIGINT, offset BIGINT, "
             "timestamp BIGINT, date DATE, week_part STRING, load_time TIMESTAMP, source_file STRING",
             partitioned_by=("topic", "week_part"),
             # Data-skipping statistics only on the columns queries filter on: min/max of the raw
             # `value` payload, the key and the file name cost ~1 s per heart-rate set and serve
             # no query (topic and week_part are partitions, pruned without statistics).
             properties=(("delta.dataSkippingStatsColumns", "partition,offset,timestamp,date,load_time"),)),
    TableDef("users", "silver",
             "user_id BIGINT, device_id BIGINT, mac_address STRING, registration_timestamp TIMESTAMP"),
    TableDef("gym_logs", "silver",
             "mac_address STRING, gym BIGINT, login TIMESTAMP, logout TIMESTAMP"),
    TableDef("user_profile", "silver",
             "user_id BIGINT, dob DATE, sex STRING, gender STRING, first_name STRING, "
             "last_name STRING, street_address STRING, city STRING, state STRING, zip INT, "
             "updated TIMESTAMP",
             # user_bins follows the updates of this table through its Change Data Feed.
             properties=(("delta.enableChangeDataFeed", "true"),)),
    TableDef("heart_rate", "silver",
             "device_id BIGINT, time TIMESTAMP, heartrate DOUBLE, valid BOOLEAN"),
    TableDef("workouts", "silver",
             "user_id INT, workout_id INT, time TIMESTAMP, action STRING, session_id INT"),
    TableDef("completed_workouts", "silver",
             "user_id INT, workout_id INT, session_id INT, start_time TIMESTAMP, end_time TIMESTAMP"),
    TableDef("workout_bpm", "silver",
             "user_id INT, workout_id INT, session_id INT, start_time TIMESTAMP, "
             "end_time TIMESTAMP, time TIMESTAMP, heartrate DOUBLE"),
    TableDef("user_bins", "silver",
             "user_id BIGINT, age STRING, gender STRING, city STRING, state STRING",
             # the gold summary follows profile changes through this table's Change Data Feed.
             properties=(("delta.enableChangeDataFeed", "true"),)),
    TableDef("workout_bpm_summary", "gold",
             "workout_id INT, session_id INT, user_id BIGINT, age STRING, gender STRING, "
             "city STRING, state STRING, min_bpm DOUBLE, avg_bpm DOUBLE, max_bpm DOUBLE, "
             "num_recordings BIGINT"),
)

# Malformed input records of every bronze source: kept, with their file and the reason,
# never dropped. (`reason` comes last: a table made before it existed gains it on the
# next write, see bronze.)
QUARANTINE = TableDef(
    "quarantine_bz", "bronze",
    "source STRING, raw_record STRING, source_file STRING, load_time TIMESTAMP, reason STRING",
)

# Bronze records a silver table cannot use (a key missing, a time that is not a number...):
# kept with the table they were meant for, the reason, the raw record and where it came from.
REJECTS = TableDef(
    "rejects_sv", "silver",
    "target_table STRING, reason STRING, raw_record STRING, source_file STRING, load_time TIMESTAMP",
)

ALL_TABLES: tuple[TableDef, ...] = TABLES + (QUARANTINE, REJECTS)
TABLE_NAMES: tuple[str, ...] = tuple(t.name for t in TABLES)

GYM_SUMMARY = "gym_summary"
GYM_SUMMARY_COLUMNS = ("date DATE, gym BIGINT, mac_address STRING, workout_id INT, session_id INT, "
                       "minutes_in_gym DOUBLE, minutes_exercising DOUBLE")

# One row per gym visit that contains a completed workout. Whole seconds, like the
# course's `timestamp::long`, so minutes match its published results.
GYM_SUMMARY_SQL = """
SELECT to_date(l.login) AS date, l.gym, l.mac_address, w.workout_id, w.session_id,
       round((unix_seconds(l.logout) - unix_seconds(l.login)) / 60, 2) AS minutes_in_gym,
       round((unix_seconds(w.end_time) - unix_seconds(w.start_time)) / 60, 2) AS minutes_exercising
FROM {db}.gym_logs l
JOIN (SELECT u.mac_address, c.workout_id, c.session_id, c.start_time, c.end_time
      FROM {db}.completed_workouts c JOIN {db}.users u ON c.user_id = u.user_id) w
  ON l.mac_address = w.mac_address AND w.start_time BETWEEN l.login AND l.logout
ORDER BY date, l.gym, l.mac_address, w.session_id
"""


def parse_columns(ddl: str) -> list[tuple[str, str]]:
    """Return [(column, lower-case type)] of a column DDL such as ``"a INT, b STRING"``."""
    return [(part.split()[0], part.split()[1].lower()) for part in ddl.split(", ")]


def table_def(name: str) -> TableDef:
    """Return the definition of table `name` (KeyError names the known tables)."""
    for table in ALL_TABLES:
        if table.name == name:
            return table
    raise KeyError(f"unknown table {name!r}; known: {', '.join(t.name for t in ALL_TABLES)}")
