"""The course's 07-run: set up a new environment, then run bronze, silver's three waves and gold."""

from __future__ import annotations

from sbit_lib.bronze import Bronze
from sbit_lib.config import Config
from sbit_lib.gold import Gold
from sbit_lib.history import HistoryLoader
from sbit_lib.session import get_spark
from sbit_lib.setup_helper import SetupHelper
from sbit_lib.silver import Silver


def ensure_setup(config: Config, spark=None) -> bool:
    """Create the tables and load history if the environment is new; return True if it was."""
    spark = spark or get_spark(config)
    helper = SetupHelper(config, spark)
    if helper.is_set_up():
        return False
    helper.setup()
    HistoryLoader(config, spark).load_history()
    return True


def run(config: Config | None = None, once: bool = True, processing_time: str = "5 seconds",
        spark=None) -> list:
    """Run the pipeline: batch (``once``, returns when done) or stream (returns the running queries)."""
    config = config or Config.resolve()
    spark = spark or get_spark(config)
    ensure_setup(config, spark)
    queries = Bronze(config, spark).consume(once=once, processing_time=processing_time)
    queries += Silver(config, spark).upsert(once=once, processing_time=processing_time)
    queries += Gold(config, spark).upsert(once=once, processing_time=processing_time)
    return queries
