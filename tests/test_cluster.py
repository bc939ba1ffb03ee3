"""The local standalone cluster of `make cluster-test`: it starts, runs Delta work on its
executors, and its processes are gone afterwards, also when the block using it fails."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from sbit_lib.ops.cluster import LOOPBACK, ClusterError, LocalCluster
from tests.conftest import listeners

# The tests that start a cluster are the long tail (`make test-full`): a master and its workers
# are JVMs of their own.

# A separate process: the test process already has its (local) SparkSession.
CLIENT = r"""
import json, sys
from sbit_lib.course.config import Config
from sbit_lib.course.catalog import get_spark
from pyspark.sql import functions as F
import time
config = Config.resolve(environment="cluster_client", home=sys.argv[1])
spark = get_spark(config)
# Static allocation (SBIT_DYNAMIC_ALLOCATION=false): both workers' executors are asked for
# at the start; wait until they have registered, at most a minute.
deadline = time.monotonic() + 60
while spark.sparkContext._jsc.sc().getExecutorMemoryStatus().size() - 1 < 2 and time.monotonic() < deadline:
    time.sleep(0.5)
target = str(config.table_location("numbers"))
spark.range(0, 100_000, numPartitions=4).withColumn("even", F.col("id") % 2 == 0) \
    .write.format("delta").mode("overwrite").save(target)
back = spark.read.format("delta").load(target)
executors = spark.sparkContext._jsc.sc().getExecutorMemoryStatus().size() - 1   # less the driver
# Python code on the executors (a Python worker each): which interpreter runs it.
pythons = set(spark.sparkContext.parallelize(range(4), 4).map(lambda _: __import__("sys").executable).collect())
print(json.dumps({"master": spark.sparkContext.master, "rows": back.count(),
                  "evens": back.where("even").count(), "sum": back.agg(F.sum("id")).first()[0],
                  "executors": executors, "pythons": sorted(pythons)}))
"""


def _alive(groups) -> list[int]:
    """The process groups (one per master or worker, executors included) with a process left."""
    alive = []
    for group in groups:
        try:
            os.killpg(group, 0)
            alive.append(group)
        except ProcessLookupError:
            pass
    return alive


def _left_after_stop(groups, timeout_s: float = 15) -> list[int]:
    """Groups still holding a process once init has reaped what it inherited: spark-class leaves
    a zombie shell (its process substitution) that is reparented to init and reaped shortly."""
    import time

    deadline = time.monotonic() + timeout_s
    while _alive(groups) and time.monotonic() < deadline:
        time.sleep(0.2)
    return _alive(groups)


@pytest.mark.full
def test_a_local_cluster_runs_delta_work_on_two_executors_and_stops(tmp_path):
    with LocalCluster(workers=2, cores=1, memory="1g", logs=tmp_path / "logs") as cluster:
        status = cluster.status()
        assert status["aliveworkers"] == 2 and status["cores"] == 2
        pids = [p.pid for p in cluster._procs]
        assert len(_alive(pids)) == 3
        # master and workers (their RPC ports and web UIs) listen on loopback only; no REST server
        listening = [entry for pid in pids for entry in listeners(pid)]
        assert len(listening) >= 6 and 6066 not in [port for *_, port, _ in listening], listening
        assert not [entry for entry in listening if not entry[4]], listening
        env = {**os.environ, **LOOPBACK, "SBIT_SPARK_MASTER": cluster.master_url, "SBIT_SPARK_UI": "false",
               "SBIT_DYNAMIC_ALLOCATION": "false", "SBIT_SHUFFLE_PARTITIONS": "2"}
        done = subprocess.run([sys.executable, "-c", CLIENT, str(tmp_path / "lakehouse")], env=env,
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
        result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["master"] == cluster.master_url
    # Expected from arithmetic, not from Spark: 0..99,999.
    assert (result["rows"], result["evens"], result["sum"]) == (100_000, 50_000, 99_999 * 100_000 // 2)
    assert result["executors"] == 2
    assert result["pythons"] == [sys.executable]      # the executors use the driver's Python
    assert _left_after_stop(pids) == []


@pytest.mark.full
def test_the_cluster_is_stopped_when_the_block_using_it_fails(tmp_path):
    with pytest.raises(RuntimeError, match="the test fails here"):
        with LocalCluster(workers=1, cores=1, memory="1g", logs=tmp_path / "logs") as cluster:
            pids = [p.pid for p in cluster._procs]
            raise RuntimeError("the test fails here")
    assert _left_after_stop(pids) == []


@pytest.mark.full
def test_a_cluster_that_cannot_start_says_so_and_leaves_nothing_running(tmp_path):
    cluster = LocalCluster(workers=1, cores=1, memory="not-a-size", logs=tmp_path / "logs", timeout_s=60)
    with pytest.raises(ClusterError, match=r"worker-1 exited .* logs in"):
        cluster.start()
    assert cluster._procs == []


def test_a_wrong_shuffle_partitions_setting_is_refused_before_spark_starts(tmp_path):
    env = {**os.environ, "SBIT_SHUFFLE_PARTITIONS": "two", "SBIT_HOME": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", "from sbit_lib.course.catalog import get_spark; get_spark()"],
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    assert "SBIT_SHUFFLE_PARTITIONS='two' is not a positive whole number" in done.stderr
