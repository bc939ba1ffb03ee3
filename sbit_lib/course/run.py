"""The course's 07-run: set up a new environment, then run bronze, silver's three waves and gold."""

from __future__ import annotations

from sbit_lib import ConfigError
from sbit_lib.course.bronze import Bronze
from sbit_lib.course.catalog import get_spark
from sbit_lib.course.config import DECLARATIVE_CHECKPOINTS, Config
from sbit_lib.course.gold import Gold
from sbit_lib.course.history import HistoryLoader
from sbit_lib.course.setup_helper import SetupHelper
from sbit_lib.course.silver import Silver
from sbit_lib.course.streaming import stop_queries
from sbit_lib.spark.runlock import JobLock
from sbit_lib.spark.storage import HadoopPath


def ensure_hand_built_environment(config: Config) -> None:
    """Refuse an environment the declarative pipeline runs in (it owns tables of the same names)."""
    if not isinstance(config.checkpoint_zone, HadoopPath) and (config.checkpoint_zone / DECLARATIVE_CHECKPOINTS).exists():
        raise ConfigError(f"environment {config.environment!r} holds the declarative pipeline's tables "
                          "(`sbit declarative run`): run the hand-built pipeline in another environment")


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


def validate_every_layer(config: Config, spark, n: int) -> None:
    """What ``sbit validate n`` checks: the landing zone, bronze, silver and gold after set n
    against the expected results (raises ValidationError naming the first difference)."""
    from sbit_lib.course.producer import Producer

    Producer(config).validate(n)
    Bronze(config, spark).validate(n)
    Silver(config, spark).validate(n)
    Gold(config, spark).validate(n)


def run(config: Config | None = None, once: bool = True, processing_time: str = "5 seconds",
        spark=None) -> list:
    """Run the pipeline: batch (``once``, returns when done) or stream (returns the running queries).

    Either way the run takes the environment's lock first (:mod:`sbit_lib.spark.runlock`), so a
    second process cannot run the pipeline on the same checkpoints at the same time. A
    batch run releases it when it returns; a stream run keeps it until this process
    exits (or :func:`sbit_lib.ops.job.run_job`, which holds it, stops the queries).
    """
    config = config or Config.resolve()
    ensure_hand_built_environment(config)
    spark = spark or get_spark(config)
    if not once and JobLock.held_here(config):
        return _start(config, once, processing_time, spark)
    lock = JobLock(config, "batch run" if once else "stream run").acquire()
    lock.record_jvm(spark)
    try:
        queries = _start(config, once, processing_time, spark)
    except BaseException:
        lock.release()
        raise
    if once:
        lock.release()        # a stream run keeps it while its queries run
    return queries


def remove_incomplete_checkpoint_writes(config: Config, queries: str = "*") -> list:
    """Delete the temporary files a crashed run left in its checkpoints' offset and commit logs.

    Spark writes ``offsets/N`` and ``commits/N`` as a hidden ``.N.<uuid>.tmp`` (and its
    ``.crc``) renamed into place. A process killed in between leaves the temporary file,
    and Spark 4.2 then refuses to start a query whose offset log holds anything on batch 0
    (STATE_STORE_CHECKPOINT_LOCATION_NOT_EMPTY). The rename never happened, so the batch
    was never logged: removing the leftover is safe while this run holds the lock.
    `queries` globs the queries' checkpoint folders below the checkpoint zone (the
    declarative pipeline's are deeper: ``declarative/_checkpoints/<catalog>/<db>/<table>/<flow>/<n>``).
    """
    removed = []
    if not config.checkpoint_zone.exists():
        return removed
    for log in ("offsets", "commits", "sources/*"):
        for folder in config.checkpoint_zone.glob(f"{queries}/{log}"):
            for path in folder.iterdir():
                if path.is_file() and path.name.startswith(".") and path.name.endswith((".tmp", ".tmp.crc")):
                    path.unlink()
                    removed.append(path)
    if removed:
        print(f"Removed {len(removed)} incomplete checkpoint file(s) left by a crashed run")
    return removed


def _start(config: Config, once: bool, processing_time: str, spark) -> list:
    remove_incomplete_checkpoint_writes(config)    # we hold the lock: nobody else is writing them
    before = {q.id for q in spark.streams.active}
    try:
        ensure_setup(config, spark)
        queries = Bronze(config, spark).consume(once=once, processing_time=processing_time)
        queries += Silver(config, spark).upsert(once=once, processing_time=processing_time)
        queries += Gold(config, spark).upsert(once=once, processing_time=processing_time)
    except BaseException:
        # Nothing of a failed start may keep writing once the lock is released.
        stop_queries([q for q in spark.streams.active if q.id not in before], drain_s=0)
        raise
    return queries
