"""The course's ``HistoryLoader``: the static reference data (the 2023 calendar)."""

from __future__ import annotations

from sbit_lib.course.catalog import get_spark
from sbit_lib.course.config import Config
from sbit_lib.testing.validation import assert_count

DATE_LOOKUP_FILE = "6-date-lookup.json"
DATE_LOOKUP_ROWS = 365

# Every field of the file is a JSON string: read them as strings and cast explicitly.
# Spark 4 runs with ANSI casts, so a malformed value fails the load loudly instead of
# turning into a silent NULL in a table every Kafka event is joined with.
_RAW_SCHEMA = ("date STRING, week STRING, year STRING, month STRING, dayofweek STRING, "
               "dayofmonth STRING, dayofyear STRING, week_part STRING")


class HistoryLoader:
    """Load and validate ``date_lookup`` from ``6-date-lookup.json``."""

    def __init__(self, config: Config | None = None, spark=None):
        self.config = config or Config.resolve()
        self.spark = spark or get_spark(self.config)
        self.table = self.config.qualified("date_lookup")

    def load_date_lookup(self) -> int:
        """Fill date_lookup from the file unless it already holds it; return its row count."""
        path = self.config.test_data / DATE_LOOKUP_FILE
        if not path.exists():
            raise FileNotFoundError(f"history file {path} not found (test data folder: {self.config.test_data})")
        raw = self.spark.read.schema(_RAW_SCHEMA).json(str(path))
        rows = raw.selectExpr(
            "CAST(date AS DATE) AS date", "CAST(week AS INT) AS week", "CAST(year AS INT) AS year",
            "CAST(month AS INT) AS month", "CAST(dayofweek AS INT) AS dayofweek",
            "CAST(dayofmonth AS INT) AS dayofmonth", "CAST(dayofyear AS INT) AS dayofyear", "week_part",
        )
        # Re-running must not add a Delta version when nothing changed (an empty table, as
        # after setup, is filled at once: its metadata says so without a scan).
        empty = self.spark.sql(f"DESCRIBE DETAIL {self.table}").first()["numFiles"] == 0
        if not empty and self.spark.read.table(self.table).exceptAll(rows).isEmpty() and \
                rows.exceptAll(self.spark.read.table(self.table)).isEmpty():
            return DATE_LOOKUP_ROWS
        rows.write.insertInto(self.table, overwrite=True)
        return self.spark.read.table(self.table).count()

    def is_loaded(self) -> bool:
        """Return True when date_lookup holds its 365 rows."""
        return self.spark.read.table(self.table).count() == DATE_LOOKUP_ROWS

    def load_history(self) -> None:
        """Load every history table (the course has one: date_lookup)."""
        print("Loading history ...")
        self.load_date_lookup()
        print("History load completed")

    def validate(self) -> None:
        """Check date_lookup holds the 365 days of 2023."""
        print("Validating history ...")
        assert_count(self.spark, self.table, DATE_LOOKUP_ROWS)
        print("History validation completed")
