"""Gold, declared: workout_bpm_summary and gym_summary as materialized views.

The hand-built version is sbit_lib/course/gold.py (notebook 06): a stream over workout_bpm and
user_bins' change feed, each micro-batch recomputing the workouts it touches and MERGEing them.
A materialized view recomputes every workout on every run: the same rows, no MERGE to write.
Course mode's watermarked aggregation (rows emitted once a later event passes the watermark)
has no declarative equivalent here: `sbit declarative run` implements default mode.
"""

from pyspark import pipelines as dp
from pyspark.sql import functions as F

from sbit_lib.course.gold import SUMMARY_COLUMNS
from sbit_lib.course.tables import GYM_SUMMARY, GYM_SUMMARY_COLUMNS, GYM_SUMMARY_SQL, table_def


@dp.materialized_view(schema=table_def("workout_bpm_summary").columns,
                      comment="min, average and max heart rate of each completed workout, with the user's bins")
def workout_bpm_summary():
    summary = (spark.read.table("workout_bpm").groupBy("user_id", "workout_id", "session_id")
               .agg(F.min("heartrate").alias("min_bpm"), F.avg("heartrate").alias("avg_bpm"),
                    F.max("heartrate").alias("max_bpm"), F.count("heartrate").alias("num_recordings"))
               .select(F.col("user_id").cast("bigint").alias("user_id"), "workout_id", "session_id", "min_bpm",
                       "avg_bpm", "max_bpm", "num_recordings"))
    return summary.join(spark.read.table("user_bins"), "user_id").select(*SUMMARY_COLUMNS)


@dp.materialized_view(name=GYM_SUMMARY, schema=GYM_SUMMARY_COLUMNS,
                      comment="one row per gym visit that contains a completed workout (a view in 06-gold)")
def gym_summary():
    # The hand-built pipeline's view, word for word, on this pipeline's tables.
    return spark.sql(GYM_SUMMARY_SQL.format(db=spark.conf.get("sbit.database")))
