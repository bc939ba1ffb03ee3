"""Silver, declared: the bronze tables -> cleaned, de-duplicated tables.

The hand-built version is sbit_lib/course/silver.py (notebook 05): a streaming query per
table, each micro-batch MERGEd into its table, in three waves. Here each table is what its
rule needs:

* a **streaming table** where the rule only ever *adds* rows: rejects_sv, fed by one append
  flow per silver table. Each run reads only the new bronze rows.
* a **materialized view** where a later record changes or outranks an earlier one: the first
  registration wins, the newest profile event replaces the stored one (the course's CDC
  MERGE), a later logout updates the visit, and the joins and bins built on those. Open-source
  SDP has no MERGE flow into Delta (AUTO CDC is refused: AUTOCDC_TARGET_DOES_NOT_SUPPORT_MERGE,
  apache/spark SPARK-57623), so the rule becomes a window over every bronze record, recomputed
  in full on each run: the same rows, a cost that grows with history.

The parsing and reject rules are the hand-built pipeline's own (to_timestamp, bad_time,
reject_reason): a record silver cannot use goes to rejects_sv with its reason. Each parse
below takes its bronze table as a batch read (for a view) or a stream (for a streaming table).
"""

from pyspark import pipelines as dp
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from sbit_lib.course.silver import AGE_BINS_SQL, bad_time, reject_reason, to_timestamp
from sbit_lib.course.tables import REJECTS, table_def

AS_OF = spark.conf.get("sbit.as_of")          # the date ages are computed at (SBIT_AS_OF)


def first(df: DataFrame, key: str, order: str) -> DataFrame:
    """The rows of `df` that come first in `order` among the rows of their `key`."""
    return df.select("*", F.expr(f"row_number() OVER (PARTITION BY {key} ORDER BY {order})").alias("_n")).where("_n = 1")


# ---------------------------------------------------------------- parsing: bronze rows -> typed rows + _reject
def parse_users(bronze: DataFrame) -> DataFrame:
    return bronze.select(
        "user_id", "device_id", "mac_address",
        F.expr(to_timestamp("registration_timestamp")).alias("registration_timestamp"),
        reject_reason(("user_id IS NULL", "user_id missing"), ("device_id IS NULL", "device_id missing"),
                      ("mac_address IS NULL OR trim(mac_address) = ''", "mac_address missing"),
                      (bad_time("registration_timestamp"), "registration_timestamp out of range")),
        F.to_json(F.struct("user_id", "device_id", "mac_address", "registration_timestamp")).alias("raw_record"),
        "source_file", "load_time")


def parse_gym_logs(bronze: DataFrame) -> DataFrame:
    return bronze.select(
        "mac_address", "gym", F.expr(to_timestamp("login")).alias("login"),
        F.expr(to_timestamp("logout")).alias("logout"),
        reject_reason(("mac_address IS NULL OR trim(mac_address) = ''", "mac_address missing"),
                      ("gym IS NULL", "gym missing"), ("login IS NULL", "login missing"),
                      (bad_time("login"), "login out of range"), (bad_time("logout"), "logout out of range")),
        F.to_json(F.struct("mac_address", "gym", "login", "logout")).alias("raw_record"),
        "source_file", "load_time")


def topic(bronze: DataFrame, name: str, schema: str) -> DataFrame:
    """The topic's events: the fields of `value` (NULL where absent or of another type)."""
    return (bronze.where(f"topic = '{name}'")
            .select(F.from_json("value", schema).alias("v"), "offset", F.col("value").alias("raw_record"),
                    "source_file", "load_time", F.expr("json_object_keys(value) IS NULL").alias("_not_json"))
            .select("v.*", "offset", "raw_record", "source_file", "load_time", "_not_json"))


def parse_user_profile(bronze: DataFrame) -> DataFrame:
    events = topic(bronze, "user_info", "user_id BIGINT, update_type STRING, timestamp DOUBLE, dob STRING, "
                   "sex STRING, gender STRING, first_name STRING, last_name STRING, "
                   "address STRUCT<street_address: STRING, city: STRING, state: STRING, zip: INT>")
    return events.select(
        "user_id", F.expr("try_to_date(dob, 'MM/dd/yyyy')").alias("dob"), "sex", "gender", "first_name",
        "last_name", "address.street_address", "address.city", "address.state", "address.zip",
        F.expr(to_timestamp("timestamp")).alias("updated"), "offset",
        reject_reason(("_not_json", "value is not a JSON object"),
                      ("user_id IS NULL", "user_id missing or not a number"),
                      ("timestamp IS NULL", "timestamp missing or not a number"),
                      (bad_time("timestamp"), "timestamp out of range"),
                      ("update_type IS NULL OR update_type NOT IN ('new', 'update')",
                       "update_type not new or update")),
        "raw_record", "source_file", "load_time")


def parse_workouts(bronze: DataFrame) -> DataFrame:
    events = topic(bronze, "workout", "user_id INT, workout_id INT, timestamp DOUBLE, action STRING, session_id INT")
    return events.select(
        "user_id", "workout_id", F.expr(to_timestamp("timestamp")).alias("time"), "action", "session_id", "offset",
        reject_reason(("_not_json", "value is not a JSON object"),
                      ("user_id IS NULL", "user_id missing or not a number"),
                      ("timestamp IS NULL", "timestamp missing or not a number"),
                      (bad_time("timestamp"), "timestamp out of range"),
                      ("action IS NULL OR action NOT IN ('start', 'stop')", "action not start or stop"),
                      ("workout_id IS NULL OR session_id IS NULL", "workout_id or session_id missing")),
        "raw_record", "source_file", "load_time")


def parse_heart_rate(bronze: DataFrame) -> DataFrame:
    events = topic(bronze, "bpm", "device_id BIGINT, time DOUBLE, heartrate DOUBLE")
    return events.select(
        "device_id", F.expr(to_timestamp("time")).alias("time"), "heartrate",
        F.expr("coalesce(heartrate > 0, false)").alias("valid"), "offset",
        reject_reason(("_not_json", "value is not a JSON object"),
                      ("device_id IS NULL", "device_id missing or not a number"),
                      ("time IS NULL", "time missing or not a number"), (bad_time("time"), "time out of range")),
        "raw_record", "source_file", "load_time")


# ---------------------------------------------------------------- rejects: a streaming table, one flow per table
# silver table -> (its bronze table, its parse)
PARSED = {"users": ("registered_users_bz", parse_users), "gym_logs": ("gym_logins_bz", parse_gym_logs),
          "user_profile": ("kafka_multiplex_bz", parse_user_profile),
          "workouts": ("kafka_multiplex_bz", parse_workouts), "heart_rate": ("kafka_multiplex_bz", parse_heart_rate)}

dp.create_streaming_table(REJECTS.name, schema=REJECTS.columns,
                          comment="bronze records a silver table cannot use, with the reason")


def _rejects_flow(table: str):
    bronze, parse = PARSED[table]

    @dp.append_flow(target=REJECTS.name, name=f"rejects_{table}")
    def flow():
        return parse(spark.readStream.table(bronze)).where("_reject IS NOT NULL").select(
            F.lit(table).alias("target_table"), F.col("_reject").alias("reason"), "raw_record", "source_file",
            "load_time")


for _table in PARSED:
    _rejects_flow(_table)


# ---------------------------------------------------------------- wave 1: one row per key
# "First" means first to arrive: the earlier bronze load (a landed file here; a run's micro-batch
# in the hand-built pipeline, which holds one file per source and set with the course's data),
# then the hand-built pipeline's order within a micro-batch.
@dp.materialized_view(schema=table_def("users").columns, comment="first registration of each user")
def users():
    valid = parse_users(spark.read.table("registered_users_bz")).where("_reject IS NULL")
    return (first(valid, "user_id", "load_time, registration_timestamp NULLS LAST, device_id")
            .select("user_id", "device_id", "mac_address", "registration_timestamp"))


@dp.materialized_view(schema=table_def("gym_logs").columns, comment="gym visits, the latest logout")
def gym_logs():
    # The MERGE inserts a visit with the latest logout of its first load, then takes a later
    # logout only if it is after the login (and after the stored one).
    valid = parse_gym_logs(spark.read.table("gym_logins_bz")).where("_reject IS NULL").select(
        "*", F.expr("min(load_time) OVER (PARTITION BY mac_address, gym, login)").alias("_first_load"))
    return valid.groupBy("mac_address", "gym", "login").agg(F.expr(
        "greatest(max(CASE WHEN load_time = _first_load THEN logout END), "
        "max(CASE WHEN logout > login THEN logout END))").alias("logout"))


@dp.materialized_view(schema=table_def("user_profile").columns, comment="each user's newest profile event (SCD type 1)")
def user_profile():
    # The MERGE takes a strictly newer event only: of two with one time, the earlier load wins
    # (and, in one load, the higher offset, as the hand-built de-duplication does). A load is a
    # landed file here, a run in the hand-built pipeline: the same with one profile file per set.
    valid = parse_user_profile(spark.read.table("kafka_multiplex_bz")).where("_reject IS NULL")
    return (first(valid, "user_id", "updated DESC, load_time, offset DESC")
            .select("user_id", "dob", "sex", "gender", "first_name", "last_name", "street_address", "city",
                    "state", "zip", "updated"))


@dp.materialized_view(schema=table_def("workouts").columns, comment="workout start/stop events")
def workouts():
    valid = parse_workouts(spark.read.table("kafka_multiplex_bz")).where("_reject IS NULL")
    return first(valid, "user_id, time", "load_time, offset").select(
        "user_id", "workout_id", "time", "action", "session_id")


@dp.materialized_view(schema=table_def("heart_rate").columns, comment="heart-rate readings, one per device and time")
def heart_rate():
    # Append-only by nature, yet a materialized view: de-duplicating a stream by key
    # (dropDuplicates(["device_id", "time"])) makes Spark Connect analyse the plan when the flow
    # is registered, before kafka_multiplex_bz exists, and the first run fails
    # (TABLE_OR_VIEW_NOT_FOUND). So every run reads every reading again: the view's cost.
    valid = parse_heart_rate(spark.read.table("kafka_multiplex_bz")).where("_reject IS NULL")
    return first(valid, "device_id, time", "load_time, offset").select("device_id", "time", "heartrate", "valid")


# ---------------------------------------------------------------- wave 2
@dp.materialized_view(schema=table_def("user_bins").columns, comment="age bin and location of each user")
def user_bins():
    age = (f"year(DATE'{AS_OF}') - year(dob) - CASE WHEN month(DATE'{AS_OF}') * 100 + day(DATE'{AS_OF}') "
           "< month(dob) * 100 + day(dob) THEN 1 ELSE 0 END")
    profiles = spark.read.table("user_profile").select("user_id", F.expr(age).alias("age"), "gender", "city", "state")
    return (profiles.join(spark.read.table("users").select("user_id"), "user_id")
            .select("user_id", F.expr(AGE_BINS_SQL).alias("age"), "gender", "city", "state"))


@dp.materialized_view(schema=table_def("completed_workouts").columns,
                      comment="start and stop of one session, the stop after the start and within 3 hours")
def completed_workouts():
    starts = spark.read.table("workouts").where("action = 'start'").selectExpr(
        "user_id", "workout_id", "session_id", "time AS start_time")
    stops = spark.read.table("workouts").where("action = 'stop'").selectExpr(
        "user_id AS stop_user", "workout_id AS stop_workout", "session_id AS stop_session", "time AS end_time")
    pairs = starts.join(stops, F.expr(
        "user_id = stop_user AND workout_id = stop_workout AND session_id = stop_session "
        "AND end_time > start_time AND end_time < start_time + INTERVAL 3 HOURS"))
    return first(pairs, "user_id, workout_id, session_id", "start_time, end_time").select(
        "user_id", "workout_id", "session_id", "start_time", "end_time")


# ---------------------------------------------------------------- wave 3
@dp.materialized_view(schema=table_def("workout_bpm").columns,
                      comment="valid readings inside (start_time, end_time] of a completed workout of the device")
def workout_bpm():
    workouts = spark.read.table("completed_workouts").join(
        spark.read.table("users").select("user_id", "device_id"), "user_id")
    readings = spark.read.table("heart_rate").where("valid").select("device_id", "time", "heartrate")
    # No DISTINCT needed: users, completed_workouts and heart_rate are unique by their keys. (And
    # .distinct() would make the Connect client analyse the plan before the tables exist.)
    return (workouts.join(readings, "device_id")
            .where("time > start_time AND time <= end_time AND end_time < time + INTERVAL 3 HOURS")
            .select("user_id", "workout_id", "session_id", "start_time", "end_time", "time", "heartrate"))
