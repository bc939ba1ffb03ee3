"""The course's ``Upserter`` and ``CDCUpserter``: MERGE a micro-batch into a Delta table.

Why MERGE inside ``foreachBatch``? Structured Streaming guarantees each micro-batch
is *delivered* at least once: after a crash, the last batch is replayed. An append
would then write it twice; a ``MERGE ... WHEN NOT MATCHED THEN INSERT`` finds the
rows already there and does nothing, so a replay is harmless (idempotent).
"""

from __future__ import annotations

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F


class Upserter:
    """foreachBatch function: de-duplicate the micro-batch on `keys`, then run `merge_sql`.

    `merge_sql` reads the micro-batch as the temporary view `view`. The view lives
    in the micro-batch's own session (``batch.sparkSession``), so queries running at
    the same time never see each other's batches.
    """

    def __init__(self, merge_sql: str, view: str, keys: list[str] | None = None, prune_on: str | None = None,
                 first: list[str] | None = None):
        self.merge_sql = merge_sql
        self.view = view
        self.keys = keys
        self.prune_on = prune_on
        self.first = first or []

    def prepare(self, batch: DataFrame) -> DataFrame:
        """Return the rows to merge: one per key (the lowest `first` columns win, which are then dropped)."""
        if not self.keys:
            return batch
        if not self.first:
            return batch.dropDuplicates(self.keys)
        # Which duplicate wins must not depend on how Spark ordered the batch.
        earliest = Window.partitionBy(*self.keys).orderBy(*self.first)
        return (batch.withColumn("_rank", F.row_number().over(earliest)).where("_rank = 1")
                .drop("_rank", *self.first))

    def __call__(self, batch: DataFrame, batch_id: int) -> None:
        rows = self.prepare(batch)
        if not self.prune_on:
            rows.createOrReplaceTempView(self.view)
            batch.sparkSession.sql(self.merge_sql.replace("{prune}", ""))
            return
        # A MERGE reads every target file that may hold a matching key. Telling it the
        # micro-batch's time range lets Delta skip the files outside it (min/max stats),
        # so the cost of a batch does not grow with the history already stored.
        rows = rows.persist()
        try:
            low, high = rows.agg(F.min(F.unix_micros(self.prune_on)), F.max(F.unix_micros(self.prune_on))).first()
            if low is None:
                return             # nothing with a time: nothing to insert
            rows.createOrReplaceTempView(self.view)
            batch.sparkSession.sql(self.merge_sql.replace(
                "{prune}", f" AND a.{self.prune_on} BETWEEN timestamp_micros({low}) AND timestamp_micros({high})"))
        finally:
            rows.unpersist()


class CDCUpserter(Upserter):
    """Upserter for change events: keep only the latest event per id in each micro-batch.

    "Latest" is the newest `order_by` value; ties (two events of one user in the same
    second, or the same 128 s in course mode) go to the higher Kafka offset, so the
    result never depends on how Spark happened to order the batch.
    """

    def __init__(self, merge_sql: str, view: str, id_column: str, order_by: str,
                 tie_breaker: str, columns: list[str]):
        super().__init__(merge_sql, view)
        self.id_column, self.order_by, self.tie_breaker, self.columns = id_column, order_by, tie_breaker, columns

    def prepare(self, batch: DataFrame) -> DataFrame:
        latest = Window.partitionBy(self.id_column).orderBy(
            F.col(self.order_by).desc(), F.col(self.tie_breaker).desc())
        return (batch.withColumn("_rank", F.row_number().over(latest))
                .where("_rank = 1").select(*self.columns))


def insert_new(db: str, table: str, keys: list[str], prune_on: str | None = None,
               first: list[str] | None = None) -> Upserter:
    """Upserter that inserts the micro-batch rows whose `keys` are not in `db.table` yet.

    ``MERGE ... WHEN NOT MATCHED THEN INSERT *``: the course's rule for every table whose
    rows never change once written (users aside, which keep the first registration).
    `prune_on`, a timestamp key, limits the target files the MERGE reads to the batch's
    time range. `first`: columns (not in the table) that order duplicates of a key in the
    batch; the lowest wins, so the row stored is the first to arrive.
    """
    view = f"{table}_delta"
    on = " AND ".join(f"a.{k} = b.{k}" for k in keys)
    return Upserter(f"MERGE INTO {db}.{table} a USING {view} b ON {on}{{prune}} WHEN NOT MATCHED THEN INSERT *",
                    view, keys, prune_on, first)
