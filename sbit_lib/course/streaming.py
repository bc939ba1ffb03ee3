"""Starting and stopping a streaming query the way every layer does: one place, not one per class."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

from sbit_lib import ConfigError

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


def checkpoint_query_id(checkpoint) -> str:
    """Return the id of the query whose checkpoint folder is `checkpoint` (it survives restarts).

    With ``txnVersion`` = the batch id it makes a write idempotent (``txnAppId``): a micro-batch
    replayed after a crash is skipped by Delta instead of appended twice. A new checkpoint gets
    a new id, so its batch ids (restarting at 0) are never mistaken for old ones.
    """
    return json.loads((checkpoint / "metadata").read_text().splitlines()[0])["id"]


def stop_queries(queries, drain_s: float = 60.0) -> None:
    """Stop every query, each between two micro-batches where it can (waiting up to `drain_s` in all).

    Stopping a query in the middle of its foreachBatch interrupts the Python function;
    that is safe (the batch is not committed and runs again on restart) but Spark then
    logs a long error. Waiting for the running micro-batch avoids both.
    """
    deadline = time.monotonic() + drain_s
    errors = []
    for query in queries:
        try:
            while query.isActive and query.status.get("isTriggerActive") and time.monotonic() < deadline:
                time.sleep(0.1)
            query.stop()
        except Exception as err:          # stop the others all the same
            errors.append(err)
    if errors:
        raise errors[0]
