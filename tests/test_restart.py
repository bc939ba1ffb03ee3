"""Kill the pipeline hard (SIGKILL) part-way, run it again, and every table equals the
reference: nothing lost, nothing duplicated. Once for a batch run (during the silver
MERGE waves), once for the stream job (during bronze's heart-rate ingestion, then
during silver's heart_rate MERGE).

The full tier (`make test-full`): the fast tier kills batch runs in tests/test_fault.py and the
stream job in tests/test_bad_input.py."""

import json
import signal
import time
from pathlib import Path

import pytest

from sbit_lib.course.catalog import get_spark
from sbit_lib.course.config import Config
from sbit_lib.course.producer import Producer
from sbit_lib.course.run import run
from sbit_lib.course.run import validate_every_layer as validate_layers
from sbit_lib.ops.fault import RunProcess
from sbit_lib.ops.stream_test import StreamTest
from tests.conftest import sbit_cli, wait_for

pytestmark = pytest.mark.full

# Where the batch run is killed: a micro-batch of silver's heart_rate MERGE (wave 1, the set's
# 253,801 readings), else of a later wave's MERGE (see _freeze_at_a_planned_batch).
KILL_IN = ("heart_rate", "user_bins", "completed_workouts", "workout_bpm")


def _freeze_at_a_planned_batch(job: RunProcess, checkpoints: list[Path], timeout_s: float) -> tuple[Path, int]:
    """Poll (20 ms) `checkpoints` for a micro-batch planned and not committed; the moment one is
    seen, freeze the run (:meth:`RunProcess.freeze`: SIGSTOP to its process group, every thread
    stopped) and look again. Still uncommitted: return (checkpoint, batch), with the run frozen
    there for its kill. Committed in the milliseconds between (a batch that short): let the run go
    on (SIGCONT) and wait for the next planned batch, of the same query or of a later one in
    `checkpoints`."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if any(_planned(c) for c in checkpoints):
            job.freeze()
            planned = [(c, k) for c in checkpoints for k in _planned(c)]
            if planned:
                return planned[0]
            job.resume()
        elif not job.alive():
            raise AssertionError(f"the run ended (exit code {job.process.returncode}) before a micro-batch of "
                                 f"{', '.join(c.name for c in checkpoints)} was seen planned; its output:\n{job.tail()}")
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout_s} s waiting for a planned micro-batch of "
                         f"{', '.join(c.name for c in checkpoints)}; the run's output:\n{job.tail()}")


def test_a_run_killed_part_way_and_run_again_gives_the_reference_tables_then_set_2_does_too(
        spark, lakehouse_home, test_data):
    config = Config.resolve(environment="killed", home=lakehouse_home, test_data=test_data, as_of="2023-03-31")
    args = ["--env", config.environment, "--home", str(config.home), "--test-data", str(test_data),
            "--as-of", "2023-03-31"]
    Producer(config).produce(1)
    # `sbit run` in a process group of its own: the Python process and its Spark JVM, frozen and
    # killed together (a JVM left running would go on, and might commit, after its Python died).
    job = RunProcess(config)
    # A silver MERGE's micro-batch has been planned (its offsets are logged) but not committed:
    # the run is frozen right there, and killed.
    checkpoint, batch = _freeze_at_a_planned_batch(job, [config.checkpoint_dir(t) for t in KILL_IN], 600)
    job.kill()
    assert job.process.returncode == -signal.SIGKILL, f"the run ended before it could be killed:\n{job.tail()}"
    assert not (checkpoint / "commits" / str(batch)).exists()
    print(f"Killed with micro-batch {batch} of {checkpoint.name} planned, not committed")

    # Recovery is a new process, as after a real crash.
    again = sbit_cli("run", *args, timeout=900)
    assert again.returncode == 0, again.stderr[-2000:]
    validate_every_layer(config, spark, 1)

    # The next set goes on from the repaired checkpoints: set 2 (profile updates, late
    # readings of set 1's workouts) ends equal to the reference too. This is also the
    # suite's default-mode batch test on the full data (CI runs 08-batch-test in course mode).
    # It runs in this test's own (warm) session: a third JVM would prove nothing more.
    Producer(config).produce(2)
    run(config, spark=spark)
    validate_every_layer(config, spark, 2)


def validate_every_layer(config, spark, n: int) -> None:
    """What `sbit validate n` checks, in this process: landing zone, bronze, silver, gold."""
    get_spark(config)                       # point this session's catalog at config's tables
    validate_layers(config, spark, n)


# ------------------------------------------------------------------ the stream job, killed twice
def _planned(checkpoint: Path) -> list[int]:
    """Micro-batches whose offsets are logged (planned) but not committed yet."""
    try:
        offsets = [int(p.name) for p in (checkpoint / "offsets").iterdir() if p.name.isdigit()]
    except FileNotFoundError:
        return []
    return sorted(k for k in offsets if not (checkpoint / "commits" / str(k)).exists())


def _wait_for_planned(checkpoint: Path, wanted, timeout_s: float, what: str) -> int:
    """Poll (20 ms) for a planned, uncommitted micro-batch satisfying `wanted(batch)`; return its id."""
    found: list[int] = []

    def check() -> bool:
        found[:] = [k for k in _planned(checkpoint) if wanted(k)]
        return bool(found)

    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.02)
    return found[0]


def _delta_version_of_batch(config: Config, table: str, app_id: str, batch: int) -> int | None:
    """The Delta version of `table` that bronze's idempotent append of `batch` created."""
    for commit in sorted((config.table_location(table) / "_delta_log").glob("*.json")):
        for line in commit.read_text().splitlines():
            txn = json.loads(line).get("txn")
            if txn and txn["appId"] == app_id and txn["version"] == batch:
                return int(commit.stem)
    return None


def _source_positions(checkpoint: Path, batch: int) -> tuple[tuple[int, int], tuple[int, int]]:
    """Where a silver batch starts and ends reading its Delta source: (version, index within it).

    Delta's offset (V, i) means: every file of versions before V is read, and the files
    of V up to index i (-1: none of V).
    """
    def position(k: int) -> tuple[int, int]:
        if k < 0:
            return (-1, -1)
        offset = json.loads((checkpoint / "offsets" / str(k)).read_text().splitlines()[2])
        return offset["reservoirVersion"], offset["index"]
    return position(batch - 1), position(batch)


def test_a_stream_job_killed_in_bronze_and_in_silver_ends_equal_to_the_reference(spark, lakehouse_home, test_data):
    config = Config.resolve(environment="killed_stream", home=lakehouse_home, test_data=test_data,
                            as_of="2023-03-31")
    test = StreamTest(config, processing_time="1 second", timeout_s=600, spark=spark)
    test.start()
    Producer(config).produce(1)

    # 1. Bronze has planned the micro-batch of the heart-rate file (253,801 records): kill.
    bronze = config.checkpoint_dir("kafka_multiplex_bz")
    bpm_batch = _wait_for_planned(
        bronze, lambda k: "3-bpm_1.json" in (bronze / "sources" / "0" / str(k)).read_text(errors="ignore"),
        300, "bronze to start ingesting 3-bpm_1.json")
    test.job.kill()
    assert not (bronze / "commits" / str(bpm_batch)).exists(), "bronze finished the batch before the kill"

    # 2. Restarted, bronze replays it; silver's heart_rate MERGE of those readings starts: kill.
    test.start(clean=False)
    wait_for(lambda: (bronze / "commits" / str(bpm_batch)).exists() or not test.job.alive(), 300,
             "bronze to replay the batch")
    assert test.job.alive(), f"the restarted job died; its log:\n{test.job.log_tail()}"
    app_id = json.loads((bronze / "metadata").read_text().splitlines()[0])["id"]
    bpm_version = _delta_version_of_batch(config, "kafka_multiplex_bz", app_id, bpm_batch)
    silver = config.checkpoint_dir("heart_rate")

    def reads_the_readings(k: int) -> bool:
        start, end = _source_positions(silver, k)
        return start < (bpm_version, 10**18) and end >= (bpm_version, 0)

    merge_batch = _wait_for_planned(silver, reads_the_readings, 300, "silver's heart_rate MERGE of the readings")
    test.job.kill()
    assert not (silver / "commits" / str(merge_batch)).exists(), "the MERGE finished before the kill"

    # 3. Restarted again: every layer ends equal to the reference, nothing lost or duplicated.
    test.start(clean=False)
    test.wait_until_valid(1, time.monotonic() + 600)
    test.stop()
