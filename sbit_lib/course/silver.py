"""The course's ``Silver``: bronze → cleaned, de-duplicated, merged Delta tables.

Every query reads its source as a stream, and writes through ``foreachBatch`` with
an idempotent ``MERGE`` (:mod:`sbit_lib.course.upserter`), with its own checkpoint and query
name, in the course's three waves (each wave reads the tables of the previous one):

1. users, gym_logs, user_profile, workouts, heart_rate
2. user_bins, completed_workouts
3. workout_bpm

Decisions that differ from the course, and why:

* De-duplication happens inside each micro-batch and across batches by the MERGE key,
  not with ``withWatermark(...).dropDuplicates(...)``: a watermark drops any event
  older than the newest event minus 30 s, so a heart-rate reading that arrives one
  set late would vanish. Nothing is dropped here.
* Event times keep full precision (DOUBLE seconds) in default mode; course mode
  parses workout and profile times as 32-bit FLOAT like the course (multiples of
  128 s in 2023), which is where its 66.13 minutes come from.
* ``user_bins`` and ``workout_bpm`` are recomputed for the keys a micro-batch touches,
  from the current tables, instead of joining two streams: a profile update in a
  later run reaches user_bins, and a reading that arrives after its workout still
  reaches workout_bpm. ``user_profile`` publishes its changes through Delta's Change
  Data Feed (``ignoreChanges`` is deprecated; ``skipChangeCommits`` would skip the
  updates user_bins needs).
* ``completed_workouts`` stays a stream-stream join with watermarks and the 3-hour
  bound, like the course: a workout's start waits in the join's state for its stop.
  A stop at or before its start completes nothing (the course would write a negative
  duration).

Bad input (README "Bad input"): no value stops a query. Every parse is one that gives
NULL instead of raising under Spark 4's ANSI mode (``from_json``, ``try_to_date``, a
range check before ``timestamp_seconds``), and a wave-1 record the table cannot use is
written to ``rejects_sv`` with its target table and reason (:func:`reject_reason`,
:class:`_SplitRejects`), never dropped silently:

* users: ``user_id``, ``device_id`` or ``mac_address`` missing; a time out of range;
* gym_logs: ``mac_address``, ``gym`` or ``login`` missing; a time out of range;
* user_profile: ``user_id`` or ``timestamp`` missing or not a number; ``update_type``
  other than new/update (``delete`` is not implemented: the course has none). A ``dob``
  that does not parse is kept as NULL: the user stays, ``user_bins.age`` is NULL;
* workouts: ``user_id``, ``workout_id``, ``session_id`` or ``timestamp`` missing or not a
  number; ``action`` other than start/stop;
* heart_rate: ``device_id`` or ``time`` missing or not a number (a NULL ``heartrate`` is
  kept, ``valid = false``).

Dropped by design, and counted by :meth:`Silver.counts` (source rows - table rows -
rejects): a second registration of a user, an older or superseded profile event, a
logout that is not later, and a duplicate workout event or reading. Of two readings of
one device at one time (or two workout events of one user at one time) the first to
arrive wins: earlier bronze load, then lower Kafka offset, so batch, stream and replay
agree.
"""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from sbit_lib.course.catalog import get_spark
from sbit_lib.course.config import Config
from sbit_lib.course.streaming import checkpoint_query_id, start_foreach_batch
from sbit_lib.course.tables import REJECTS
from sbit_lib.course.upserter import CDCUpserter, insert_new
from sbit_lib.testing.validation import validate_tables

WATERMARK = "30 seconds"
# timestamp_seconds raises on a time outside years 1..9999 (ANSI or not): check first.
_SECONDS_RANGE = "BETWEEN -62135596800 AND 253402300799"
AGE_BINS_SQL = """CASE WHEN age IS NULL THEN NULL
  WHEN age < 18 THEN 'under 18' WHEN age < 25 THEN '18-25'
  WHEN age < 35 THEN '25-35' WHEN age < 45 THEN '35-45' WHEN age < 55 THEN '45-55'
  WHEN age < 65 THEN '55-65' WHEN age < 75 THEN '65-75' WHEN age < 85 THEN '75-85'
  WHEN age < 95 THEN '85-95' ELSE '95+' END"""


def to_timestamp(seconds: str) -> str:
    """SQL: epoch `seconds` as a TIMESTAMP, NULL when missing or out of range (never an error)."""
    return f"CASE WHEN {seconds} {_SECONDS_RANGE} THEN timestamp_seconds({seconds}) END"


def bad_time(seconds: str) -> str:
    """SQL: true when `seconds` is present but out of range."""
    return f"({seconds} IS NOT NULL AND NOT {seconds} {_SECONDS_RANGE})"


def reject_reason(*rules: tuple[str, str]) -> F.Column:
    """Column ``_reject``: the reason of the first rule whose SQL condition holds, else NULL."""
    return F.expr("CASE " + " ".join(f"WHEN {cond} THEN '{why}'" for cond, why in rules) + " END").alias("_reject")


class _SplitRejects:
    """foreachBatch function: rows with a ``_reject`` reason go to rejects_sv, the others to `writer`.

    The rejects are appended with Delta's idempotent-write options (``txnAppId`` = the
    query's id, ``txnVersion`` = the batch id), so a replayed micro-batch writes them once.
    """

    def __init__(self, config: Config, name: str, writer):
        self.config, self.name, self.writer = config, name, writer

    def __call__(self, batch: DataFrame, batch_id: int) -> None:
        batch = batch.persist()
        try:
            rejected = batch.where("_reject IS NOT NULL")
            if not rejected.isEmpty():
                (rejected.selectExpr(f"'{self.name}' AS target_table", "_reject AS reason", "raw_record",
                                     "source_file", "load_time")
                 .write.format("delta").mode("append")
                 .option("txnAppId", checkpoint_query_id(self.config.checkpoint_dir(self.name)))
                 .option("txnVersion", batch_id)
                 .save(str(self.config.table_location(REJECTS.name))))
            self.writer(batch.where("_reject IS NULL").drop("_reject", "raw_record", "source_file"), batch_id)
        finally:
            batch.unpersist()


class Silver:
    """Start, await and validate the silver queries of one environment."""

    def __init__(self, config: Config | None = None, spark=None):
        self.config = config or Config.resolve()
        self.spark = spark or get_spark(self.config)
        self.db = self.config.db_name
        # Course mode reads workout/profile times as FLOAT (float32), like the course.
        self.event_time_type = "FLOAT" if self.config.mode == "course" else "DOUBLE"

    # ------------------------------------------------------------------ plumbing
    def _stream(self, table: str, **options) -> DataFrame:
        # Like the course: at most max_files_per_trigger (1000) Delta files per micro-batch.
        reader = self.spark.readStream.option("maxFilesPerTrigger", self.config.max_files_per_trigger)
        for key, value in options.items():
            reader = reader.option(key, value)
        return reader.table(f"{self.db}.{table}")

    def _start(self, name: str, df: DataFrame, writer, pool: str, once: bool, processing_time: str):
        return start_foreach_batch(self.spark, df, f"{name}_upsert_stream", self.config.checkpoint_dir(name),
                                   writer, pool, once, processing_time)

    def _start_with_rejects(self, name: str, df: DataFrame, writer, pool: str, once: bool,
                            processing_time: str):
        """Like _start; `df` carries ``_reject``, ``raw_record``, ``source_file`` and ``load_time``."""
        return self._start(name, df, _SplitRejects(self.config, name, writer), pool, once, processing_time)

    def _topic(self, topic: str, schema: str) -> DataFrame:
        """The topic's events: the fields of `value` (NULL where a field is absent or of another type).

        ``from_json`` never raises: text that is not JSON gives every field NULL, so
        ``_not_json`` tells that case apart for the reject reason.
        """
        return (self._stream("kafka_multiplex_bz").where(f"topic = '{topic}'")
                .select(F.from_json("value", schema).alias("v"), "offset", F.col("value").alias("raw_record"),
                        "source_file", "load_time",
                        F.expr("json_object_keys(value) IS NULL").alias("_not_json"))
                .select("v.*", "offset", "raw_record", "source_file", "load_time", "_not_json"))

    # ------------------------------------------------------------------ wave 1
    def upsert_users(self, once=True, processing_time="15 seconds"):
        """users: first registration of each user_id wins."""
        df = self._stream("registered_users_bz").select(
            "*", reject_reason(("user_id IS NULL", "user_id missing"),
                               ("device_id IS NULL", "device_id missing"),
                               ("mac_address IS NULL OR trim(mac_address) = ''", "mac_address missing"),
                               (bad_time("registration_timestamp"), "registration_timestamp out of range")),
            F.to_json(F.struct("user_id", "device_id", "mac_address", "registration_timestamp")).alias("raw_record"))
        df = df.selectExpr("user_id", "device_id", "mac_address",
                           f"{to_timestamp('registration_timestamp')} AS registration_timestamp",
                           "_reject", "raw_record", "source_file", "load_time")
        merge = f"""MERGE INTO {self.db}.users a USING users_delta b ON a.user_id = b.user_id
                    WHEN NOT MATCHED THEN INSERT *"""
        writer = CDCUpserter(merge, "users_delta", "user_id", "neg_ts", "neg_device",
                             ["user_id", "device_id", "mac_address", "registration_timestamp"])
        # CDCUpserter keeps the row that sorts first descending; negating keeps the *earliest*
        # registration (then the lowest device id) instead of the latest.
        df = df.withColumn("neg_ts", -F.unix_micros("registration_timestamp")).withColumn("neg_device", -F.col("device_id"))
        return self._start_with_rejects("users", df, writer, "silver_p1", once, processing_time)

    def upsert_gym_logs(self, once=True, processing_time="15 seconds"):
        """gym_logs: a later logout updates the stored one, an earlier one does not."""
        df = self._stream("gym_logins_bz").select(
            "*", reject_reason(("mac_address IS NULL OR trim(mac_address) = ''", "mac_address missing"),
                               ("gym IS NULL", "gym missing"), ("login IS NULL", "login missing"),
                               (bad_time("login"), "login out of range"), (bad_time("logout"), "logout out of range")),
            F.to_json(F.struct("mac_address", "gym", "login", "logout")).alias("raw_record"))
        df = df.selectExpr("mac_address", "gym", f"{to_timestamp('login')} AS login",
                           f"{to_timestamp('logout')} AS logout", "_reject", "raw_record", "source_file", "load_time")
        merge = f"""MERGE INTO {self.db}.gym_logs a USING gym_logs_delta b
                    ON a.mac_address = b.mac_address AND a.gym = b.gym AND a.login = b.login
                    WHEN MATCHED AND b.logout > a.login AND (a.logout IS NULL OR b.logout > a.logout)
                      THEN UPDATE SET logout = b.logout
                    WHEN NOT MATCHED THEN INSERT *"""
        writer = CDCUpserter(merge, "gym_logs_delta", "key", "logout", "logout",
                             ["mac_address", "gym", "login", "logout"])
        df = df.withColumn("key", F.concat_ws("|", "mac_address", "gym", "login"))
        return self._start_with_rejects("gym_logs", df, writer, "silver_p2", once, processing_time)

    def upsert_user_profile(self, once=True, processing_time="15 seconds"):
        """user_profile: SCD type 1 from CDC events; only a newer event updates a user."""
        schema = (f"user_id BIGINT, update_type STRING, timestamp {self.event_time_type}, dob STRING, "
                  "sex STRING, gender STRING, first_name STRING, last_name STRING, "
                  "address STRUCT<street_address: STRING, city: STRING, state: STRING, zip: INT>")
        df = self._topic("user_info", schema).select(
            "*", reject_reason(("_not_json", "value is not a JSON object"),
                               ("user_id IS NULL", "user_id missing or not a number"),
                               ("timestamp IS NULL", "timestamp missing or not a number"),
                               (bad_time("timestamp"), "timestamp out of range"),
                               ("update_type IS NULL OR update_type NOT IN ('new', 'update')",
                                "update_type not new or update")))
        # try_to_date: a dob that does not parse is NULL (to_date raises CANNOT_PARSE_TIMESTAMP).
        df = df.selectExpr("user_id", "try_to_date(dob, 'MM/dd/yyyy') AS dob", "sex", "gender", "first_name",
                           "last_name", "address.street_address", "address.city", "address.state",
                           "address.zip", f"{to_timestamp('timestamp')} AS updated", "offset",
                           "_reject", "raw_record", "source_file", "load_time")
        merge = f"""MERGE INTO {self.db}.user_profile a USING user_profile_cdc b ON a.user_id = b.user_id
                    WHEN MATCHED AND a.updated < b.updated THEN UPDATE SET *
                    WHEN NOT MATCHED THEN INSERT *"""
        columns = ["user_id", "dob", "sex", "gender", "first_name", "last_name", "street_address",
                   "city", "state", "zip", "updated"]
        writer = CDCUpserter(merge, "user_profile_cdc", "user_id", "updated", "offset", columns)
        return self._start_with_rejects("user_profile", df, writer, "silver_p3", once, processing_time)

    def upsert_workouts(self, once=True, processing_time="15 seconds"):
        """workouts: start/stop events, one per (user_id, time)."""
        schema = (f"user_id INT, workout_id INT, timestamp {self.event_time_type}, action STRING, "
                  "session_id INT")
        df = self._topic("workout", schema).select(
            "*", reject_reason(("_not_json", "value is not a JSON object"),
                               ("user_id IS NULL", "user_id missing or not a number"),
                               ("timestamp IS NULL", "timestamp missing or not a number"),
                               (bad_time("timestamp"), "timestamp out of range"),
                               ("action IS NULL OR action NOT IN ('start', 'stop')", "action not start or stop"),
                               ("workout_id IS NULL OR session_id IS NULL", "workout_id or session_id missing")))
        df = df.selectExpr("user_id", "workout_id", f"{to_timestamp('timestamp')} AS time", "action",
                           "session_id", "offset", "_reject", "raw_record", "source_file", "load_time")
        # Two events of one user at one time: the first to arrive wins (bronze load, then offset).
        writer = insert_new(self.db, "workouts", ["user_id", "time"], first=["load_time", "offset"])
        return self._start_with_rejects("workouts", df, writer, "silver_p2", once, processing_time)

    def upsert_heart_rate(self, once=True, processing_time="15 seconds"):
        """heart_rate: readings, valid when heartrate > 0, one per (device_id, time)."""
        df = self._topic("bpm", "device_id BIGINT, time DOUBLE, heartrate DOUBLE").select(
            "*", reject_reason(("_not_json", "value is not a JSON object"),
                               ("device_id IS NULL", "device_id missing or not a number"),
                               ("time IS NULL", "time missing or not a number"),
                               (bad_time("time"), "time out of range")))
        df = df.selectExpr("device_id", f"{to_timestamp('time')} AS time", "heartrate",
                           "coalesce(heartrate > 0, false) AS valid", "offset",
                           "_reject", "raw_record", "source_file", "load_time")
        # Two readings of one device at one time: the first to arrive wins (bronze load, then offset).
        writer = insert_new(self.db, "heart_rate", ["device_id", "time"], prune_on="time",
                            first=["load_time", "offset"])
        return self._start_with_rejects("heart_rate", df, writer, "silver_p3", once, processing_time)

    # ------------------------------------------------------------------ wave 2
    def upsert_user_bins(self, once=True, processing_time="15 seconds"):
        """user_bins: age bin and location of each registered user, recomputed when either side changes."""
        profile_changes = (self._stream("user_profile", readChangeFeed="true")
                           .where("_change_type IN ('insert', 'update_postimage')").select("user_id"))
        new_users = self._stream("users").select("user_id")
        as_of = self.config.as_of_date.isoformat()
        db = self.db

        def recompute(batch: DataFrame, batch_id: int) -> None:
            batch.select("user_id").distinct().createOrReplaceTempView("touched_users")
            batch.sparkSession.sql(f"""
                MERGE INTO {db}.user_bins a
                USING (SELECT p.user_id, {AGE_BINS_SQL} AS age, p.gender, p.city, p.state
                       FROM (SELECT *, year(DATE'{as_of}') - year(dob)
                                  - CASE WHEN month(DATE'{as_of}') * 100 + day(DATE'{as_of}')
                                              < month(dob) * 100 + day(dob) THEN 1 ELSE 0 END AS age
                             FROM {db}.user_profile WHERE user_id IN (SELECT user_id FROM touched_users)) p
                       JOIN {db}.users u ON p.user_id = u.user_id) b
                ON a.user_id = b.user_id
                WHEN MATCHED THEN UPDATE SET * WHEN NOT MATCHED THEN INSERT *""")

        return self._start("user_bins", profile_changes.union(new_users), recompute, "silver_p2",
                           once, processing_time)

    def upsert_completed_workouts(self, once=True, processing_time="15 seconds"):
        """completed_workouts: start ⋈ stop of the same session, the stop after the start and within 3 hours."""
        starts = (self._stream("workouts").where("action = 'start'")
                  .selectExpr("user_id", "workout_id", "session_id", "time AS start_time")
                  .withWatermark("start_time", WATERMARK))
        stops = (self._stream("workouts").where("action = 'stop'")
                 .selectExpr("user_id AS stop_user", "workout_id AS stop_workout",
                             "session_id AS stop_session", "time AS end_time")
                 .withWatermark("end_time", WATERMARK))
        joined = starts.join(stops, F.expr(
            "user_id = stop_user AND workout_id = stop_workout AND session_id = stop_session "
            "AND end_time > start_time AND end_time < start_time + INTERVAL 3 HOURS"), "inner").select(
            "user_id", "workout_id", "session_id", "start_time", "end_time")
        keys = ["user_id", "workout_id", "session_id"]
        return self._start("completed_workouts", joined, insert_new(self.db, "completed_workouts", keys),
                           "silver_p3", once, processing_time)

    # ------------------------------------------------------------------ wave 3
    def upsert_workout_bpm(self, once=True, processing_time="15 seconds"):
        """workout_bpm: valid readings inside (start_time, end_time] of a completed workout of the device.

        One query reads two streams: new readings (from heart_rate) and new completed
        workouts. A new reading is matched against the completed workouts; a new workout
        against the readings already stored, read only within its time range (Delta
        skips the heart_rate files outside it). Either may arrive first.
        """
        readings = (self._stream("heart_rate").where("valid")
                    .selectExpr("device_id", "time", "heartrate", "CAST(NULL AS INT) AS user_id",
                                "CAST(NULL AS INT) AS workout_id", "CAST(NULL AS INT) AS session_id"))
        workouts = self._stream("completed_workouts").selectExpr(
            "CAST(NULL AS BIGINT) AS device_id", "CAST(NULL AS TIMESTAMP) AS time", "CAST(NULL AS DOUBLE) AS heartrate",
            "user_id", "workout_id", "session_id")
        db = self.db
        workouts_of_devices = f"""(SELECT c.*, u.device_id FROM {db}.completed_workouts c
                                   JOIN {db}.users u ON c.user_id = u.user_id)"""
        columns = "w.user_id, w.workout_id, w.session_id, w.start_time, w.end_time"

        def recompute(batch: DataFrame, batch_id: int) -> None:
            session = batch.sparkSession
            batch.persist()
            touched = None
            try:
                batch.where("device_id IS NOT NULL").createOrReplaceTempView("new_readings")
                batch.where("user_id IS NOT NULL").select("user_id", "workout_id", "session_id").distinct() \
                    .createOrReplaceTempView("new_workouts")
                touched = session.sql(f"""SELECT w.* FROM {workouts_of_devices} w JOIN new_workouts n
                                          ON w.user_id = n.user_id AND w.workout_id = n.workout_id
                                         AND w.session_id = n.session_id""").persist()
                touched.createOrReplaceTempView("touched_workouts")
                bounds = session.sql("""
                    SELECT min(lo) AS lo, max(hi) AS hi FROM (
                      SELECT min(unix_micros(time)) AS lo, max(unix_micros(time)) AS hi FROM new_readings
                      UNION ALL
                      SELECT min(unix_micros(start_time)), max(unix_micros(end_time)) FROM touched_workouts)""").first()
                if bounds["lo"] is None:
                    return
                span = f"timestamp_micros({bounds['lo']}) AND timestamp_micros({bounds['hi']})"
                session.sql(f"""
                    MERGE INTO {db}.workout_bpm a
                    USING (
                      SELECT DISTINCT * FROM (
                        SELECT {columns}, r.time, r.heartrate
                        FROM new_readings r JOIN {workouts_of_devices} w
                          ON r.device_id = w.device_id AND r.time > w.start_time AND r.time <= w.end_time
                         AND w.end_time < r.time + INTERVAL 3 HOURS
                        UNION ALL
                        SELECT {columns}, h.time, h.heartrate
                        FROM touched_workouts w JOIN {db}.heart_rate h
                          ON h.device_id = w.device_id AND h.time > w.start_time AND h.time <= w.end_time
                         AND w.end_time < h.time + INTERVAL 3 HOURS
                        WHERE h.valid AND h.time BETWEEN {span})) b
                    ON a.user_id = b.user_id AND a.workout_id = b.workout_id
                       AND a.session_id = b.session_id AND a.time = b.time AND a.time BETWEEN {span}
                    WHEN NOT MATCHED THEN INSERT *""")
            finally:
                if touched is not None:
                    touched.unpersist()
                batch.unpersist()

        return self._start("workout_bpm", readings.unionByName(workouts), recompute, "silver_p2",
                           once, processing_time)

    # ------------------------------------------------------------------ waves
    WAVES = (
        ("upsert_users", "upsert_gym_logs", "upsert_user_profile", "upsert_workouts", "upsert_heart_rate"),
        ("upsert_user_bins", "upsert_completed_workouts"),
        ("upsert_workout_bpm",),
    )

    def upsert(self, once: bool = True, processing_time: str = "5 seconds") -> list:
        """Run the three waves; with ``once`` each wave finishes before the next starts."""
        queries = []
        for number, wave in enumerate(self.WAVES, start=1):
            started = [getattr(self, name)(once, processing_time) for name in wave]
            if once:
                for query in started:
                    query.awaitTermination()
                print(f"Silver wave {number} completed: {', '.join(q.name for q in started)}")
            queries.extend(started)
        return queries

    TABLES = ("users", "gym_logs", "user_profile", "workouts", "heart_rate", "user_bins",
              "completed_workouts", "workout_bpm")

    # The bronze records each wave-1 table reads, and what it drops by design.
    SOURCES = {
        "users": ("registered_users_bz", None, "a later registration of a registered user"),
        "gym_logs": ("gym_logins_bz", None, "a visit already stored (its logout kept if later)"),
        "user_profile": ("kafka_multiplex_bz", "user_info", "an older or superseded profile event"),
        "workouts": ("kafka_multiplex_bz", "workout", "a second event of a user at one time"),
        "heart_rate": ("kafka_multiplex_bz", "bpm", "a second reading of a device at one time"),
    }

    def counts(self) -> list[dict]:
        """Per wave-1 table: bronze records read, rows, rejected per reason, dropped by design.

        bronze = rejected + dropped + (records that made or changed a row): dropped is
        what the rules discard on purpose, computed as bronze - rows - rejected.
        """
        fq = self.config.qualified
        rejected: dict[str, dict[str, int]] = {}
        for row in self.spark.read.table(fq(REJECTS.name)).groupBy("target_table", "reason").count().collect():
            rejected.setdefault(row["target_table"], {})[row["reason"]] = row["count"]
        topics = {r["topic"]: r["count"] for r in
                  self.spark.read.table(fq("kafka_multiplex_bz")).groupBy("topic").count().collect()}
        out = []
        for table, (source, topic, why) in self.SOURCES.items():
            read = topics.get(topic, 0) if topic else self.spark.read.table(fq(source)).count()
            rows = self.spark.read.table(fq(table)).count()
            bad = rejected.get(table, {})
            out.append({"table": table, "source": f"{source}" + (f" topic {topic}" if topic else ""),
                        "bronze": read, "rows": rows, "rejected": bad,
                        "dropped": read - rows - sum(bad.values()), "dropped_why": why})
        unread = {t: c for t, c in topics.items() if t not in ("user_info", "workout", "bpm")}
        if unread:
            out.append({"table": None, "source": "kafka_multiplex_bz, other topics", "bronze": sum(unread.values()),
                        "rows": 0, "rejected": {}, "dropped": sum(unread.values()),
                        "dropped_why": "topics no silver table reads: " + ", ".join(map(str, unread))})
        return out

    def validate(self, n: int) -> None:
        """Compare every silver table, and the rejects, after set n with the expected results."""
        from sbit_lib.testing.expectations import Expectations
        from sbit_lib.testing.validation import assert_rows

        print(f"Validating silver layer after set {n} ...")
        validate_tables(self.spark, self.config, n, self.TABLES)
        rejects = self.spark.read.table(self.config.qualified(REJECTS.name)).selectExpr(
            "target_table", "reason", "element_at(split(source_file, '/'), -1) AS file")
        expected = Expectations.load(self.config.test_data).table(self.config.mode, n, REJECTS.name)
        assert_rows(rejects, expected.rows, f"{self.config.qualified(REJECTS.name)} after set {n} (table, reason, file)")
        print("Silver layer validation completed")
