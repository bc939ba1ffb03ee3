"""Starting a streaming query the way every layer does: one function, not one per class."""

from __future__ import annotations

import re
from pathlib import Path

from sbit_lib.config import ConfigError

_INTERVAL = re.compile(r"^\s*\d+(\.\d+)?\s*(milliseconds?|seconds?|minutes?|hours?)\s*$", re.I)


def check_processing_time(value: str) -> str:
    """Return `value` if Spark accepts it as a processingTime trigger, else raise ConfigError."""
    if not isinstance(value, str) or not _INTERVAL.match(value):
        raise ConfigError(f"processing time {value!r} (--processing-time / processing_time) is not an interval: "
                          "use e.g. '1 second', '500 milliseconds' or '2 minutes'")
    return value.strip()


def trigger(once: bool, processing_time: str) -> dict:
    """Return the writeStream.trigger arguments: availableNow for a batch run, else processingTime."""
    return {"availableNow": True} if once else {"processingTime": check_processing_time(processing_time)}


def start_foreach_batch(spark, df, query_name: str, checkpoint: Path, writer, pool: str,
                        once: bool, processing_time: str, output_mode: str = "append"):
    """Start `df` as a query named `query_name` that hands each micro-batch to `writer`.

    The query runs in the FAIR scheduler pool `pool` (a thread-local property that the
    query's thread inherits when it starts) and keeps its progress in `checkpoint`.
    """
    spark.sparkContext.setLocalProperty("spark.scheduler.pool", pool)
    try:
        return (df.writeStream.queryName(query_name)
                .option("checkpointLocation", str(checkpoint))
                .outputMode(output_mode)
                .foreachBatch(writer)
                .trigger(**trigger(once, processing_time))
                .start())
    finally:
        spark.sparkContext.setLocalProperty("spark.scheduler.pool", None)
