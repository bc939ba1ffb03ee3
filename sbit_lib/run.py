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
    """Create what is missing (tables, view, history); return True if the environment was new."""
    spark = spark or get_spark(config)
    helper = SetupHelper(config, spark)
    new = not helper.is_set_up()
    if new:
        helper.setup()
    history = HistoryLoader(config, spark)
    if new or not history.is_loaded():
        history.load_history()
    return new


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
