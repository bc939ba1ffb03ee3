"""The course's ``Gold``: the ``workout_bpm_summary`` table (and the ``gym_summary`` view).

Two modes, chosen by configuration:

* **default** — exact: for every (user, workout, session) touched by a micro-batch
  (new readings in workout_bpm, or a changed user in user_bins) the summary row is
  recomputed from the whole ``workout_bpm`` table and MERGEd. The result is the same
  whatever the micro-batch boundaries, and a reading that arrives in a later run
  corrects its workout's row.
* **course** — the course's streaming aggregation: ``withWatermark("end_time", "30
  seconds")`` and ``groupBy`` in append mode, insert-only. A group is emitted only
  once the watermark passes its end time, which needs *newer* data: the last
  workouts of a run wait in the state (the course's expected file has 2 rows).
"""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from sbit_lib.course.catalog import get_spark
from sbit_lib.course.config import Config
from sbit_lib.course.streaming import start_foreach_batch
from sbit_lib.course.upserter import insert_new
from sbit_lib.testing.validation import validate_tables

SUMMARY_COLUMNS = ["workout_id", "session_id", "user_id", "age", "gender", "city", "state",
                   "min_bpm", "avg_bpm", "max_bpm", "num_recordings"]


class Gold:
    """Start, await and validate the gold query of one environment."""

    def __init__(self, config: Config | None = None, spark=None):
        self.config = config or Config.resolve()
        self.spark = spark or get_spark(self.config)
        self.db = self.config.db_name

    def _start(self, df: DataFrame, writer, once: bool, processing_time: str):
        return start_foreach_batch(self.spark, df, "workout_bpm_summary_upsert_stream",
                                   self.config.checkpoint_dir("workout_bpm_summary"), writer, "gold_p1",
                                   once, processing_time)

    def _upsert_exact(self, once: bool, processing_time: str):
        db = self.db
        readings = self.spark.readStream.table(f"{db}.workout_bpm").selectExpr(
            "user_id", "workout_id", "session_id")
        bins = (self.spark.readStream.option("readChangeFeed", "true").table(f"{db}.user_bins")
                .where("_change_type IN ('insert', 'update_postimage')")
                .selectExpr("CAST(user_id AS INT) AS user_id", "CAST(NULL AS INT) AS workout_id",
                            "CAST(NULL AS INT) AS session_id"))

        def recompute(batch: DataFrame, batch_id: int) -> None:
            batch.distinct().createOrReplaceTempView("touched")
            batch.sparkSession.sql(f"""
                MERGE INTO {db}.workout_bpm_summary a
                USING (SELECT s.workout_id, s.session_id, CAST(s.user_id AS BIGINT) AS user_id,
                              b.age, b.gender, b.city, b.state, s.min_bpm, s.avg_bpm, s.max_bpm, s.num_recordings
                       FROM (SELECT user_id, workout_id, session_id, min(heartrate) AS min_bpm,
                                    avg(heartrate) AS avg_bpm, max(heartrate) AS max_bpm,
                                    count(heartrate) AS num_recordings
                             FROM {db}.workout_bpm w
                             WHERE EXISTS (SELECT 1 FROM touched t WHERE t.user_id = w.user_id
                                           AND (t.workout_id IS NULL OR (t.workout_id = w.workout_id
                                                AND t.session_id = w.session_id)))
                             GROUP BY user_id, workout_id, session_id) s
                       JOIN {db}.user_bins b ON s.user_id = b.user_id) n
                ON a.user_id = n.user_id AND a.workout_id = n.workout_id AND a.session_id = n.session_id
                WHEN MATCHED THEN UPDATE SET * WHEN NOT MATCHED THEN INSERT *""")

        return self._start(readings.unionByName(bins), recompute, once, processing_time)

    def _upsert_course(self, once: bool, processing_time: str):
        db = self.db
        bins = self.spark.read.table(f"{db}.user_bins")
        summary = (self.spark.readStream.table(f"{db}.workout_bpm")
                   .withWatermark("end_time", "30 seconds")
                   .groupBy("user_id", "workout_id", "session_id", "end_time")
                   .agg(F.min("heartrate").alias("min_bpm"), F.mean("heartrate").alias("avg_bpm"),
                        F.max("heartrate").alias("max_bpm"), F.count("heartrate").alias("num_recordings"))
                   .withColumn("user_id", F.col("user_id").cast("bigint"))
                   .join(bins, "user_id").select(*SUMMARY_COLUMNS))
        keys = ["user_id", "workout_id", "session_id"]
        return self._start(summary, insert_new(db, "workout_bpm_summary", keys), once, processing_time)

    def upsert(self, once: bool = True, processing_time: str = "5 seconds") -> list:
        """Start the gold query (exact in default mode, the course's aggregation in course mode)."""
        start = self._upsert_course if self.config.mode == "course" else self._upsert_exact
        query = start(once, processing_time)
        if once:
            query.awaitTermination()
            print("Gold layer completed")
        return [query]

    def validate(self, n: int) -> None:
        """Compare workout_bpm_summary and the gym_summary view after set n with the expected results."""
        print(f"Validating gold layer after set {n} ...")
        validate_tables(self.spark, self.config, n, ("workout_bpm_summary", "gym_summary"))
        print("Gold layer validation completed")
