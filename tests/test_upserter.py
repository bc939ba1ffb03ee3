"""The time-range pruned insert-only MERGE: replaying rows never duplicates them, even when
their times have sub-millisecond parts that Delta's file statistics truncate."""

from sbit_lib.course.upserter import insert_new

ROWS = "SELECT id AS device_id, timestamp_micros(1678521600000500 + id * 1000000) AS time, 70.0 + id AS heartrate FROM range({lo}, {hi})"


def test_replayed_and_overlapping_batches_insert_each_reading_once(spark, tmp_path):
    spark.sql("CREATE DATABASE IF NOT EXISTS pruning_db")
    spark.sql(f"CREATE TABLE pruning_db.readings (device_id BIGINT, time TIMESTAMP, heartrate DOUBLE) "
              f"USING DELTA LOCATION '{tmp_path / 'readings'}'")
    writer = insert_new("pruning_db", "readings", ["device_id", "time"], prune_on="time")
    writer(spark.sql(ROWS.format(lo=0, hi=5)), 0)
    writer(spark.sql(ROWS.format(lo=0, hi=5)), 0)        # the same micro-batch replayed
    # Only the newest reading again: its time (…:04.000500) lies above the file's max
    # statistic, which Delta stores truncated to the millisecond (…:04.000).
    writer(spark.sql(ROWS.format(lo=4, hi=5)), 1)
    writer(spark.sql(ROWS.format(lo=3, hi=8)), 2)        # overlaps: 3 and 4 known, 5-7 new
    history = spark.sql("DESCRIBE HISTORY pruning_db.readings").count()
    writer(spark.sql(ROWS.format(lo=0, hi=0)), 3)        # an empty batch: no MERGE, no commit
    assert spark.sql("DESCRIBE HISTORY pruning_db.readings").count() == history
    rows = spark.sql("SELECT device_id, unix_micros(time) AS t FROM pruning_db.readings ORDER BY device_id").collect()
    assert [(r.device_id, r.t) for r in rows] == [(i, 1678521600000500 + i * 1_000_000) for i in range(8)]
    spark.sql("DROP DATABASE pruning_db CASCADE")
