"""A local standalone Spark cluster, and the check that the pipeline gives the same tables on it.

``make cluster-test`` (``python -m sbit_lib.ops.cluster``) starts a master and two workers
from the installed pyspark (``bin/spark-class org.apache.spark.deploy.master.Master`` and
``...deploy.worker.Worker``, one core each), then runs the batch test's steps (a clean
environment; for sets 1..2: land the files, run every layer once, validate every layer
against the expected results) twice, each in a process of its own: in local mode and
against the cluster (``SBIT_SPARK_MASTER=spark://127.0.0.1:<port>``). It prints the
per-layer times side by side, checks that every silver and gold table holds the same rows
in both runs, and stops the cluster whatever happened.

What the executors need and how they get it (nothing is installed on the workers):

* the Delta jars: ``spark.jars`` lists them (``sbit_lib/spark/session.py``); the driver serves
  them and every executor fetches them when it starts;
* the same Python: the driver sets ``PYSPARK_PYTHON`` to its own interpreter, which the
  executors use for Python workers (here the same machine, so the same ``.venv``; on a
  real cluster the same Python and packages must exist on every node at that path);
* the data and checkpoints: one place every process can read and write. On several
  machines that is a shared file system or an object store URL; here the cluster runs get
  them as ``file:///`` URLs (``SBIT_DATA_ZONE``, ``SBIT_CHECKPOINT_ZONE``), so the
  producer, set-up and clean-up take the code path an ``s3a://`` zone would
  (``sbit_lib/spark/storage.py``), and local mode keeps plain folders.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from sbit_lib.course.config import PROJECT_ROOT

BUILD = PROJECT_ROOT / "build" / "cluster"
# Driver, master, workers and executors on the loopback interface only.
LOOPBACK = {"SPARK_LOCAL_IP": "127.0.0.1", "SPARK_LOCAL_HOSTNAME": "localhost"}
SILVER_GOLD = ("users", "gym_logs", "user_profile", "heart_rate", "workouts", "completed_workouts",
               "workout_bpm", "user_bins", "workout_bpm_summary")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def spark_home() -> Path:
    """The installed pyspark package: it carries bin/spark-class and Spark's jars."""
    import pyspark

    return Path(pyspark.__file__).resolve().parent


class ClusterError(RuntimeError):
    """The local cluster did not come up; the message says what and where its logs are."""


class LocalCluster:
    """A standalone master and `workers` workers on 127.0.0.1, as child processes.

    Use it as a context manager: the processes are stopped when the block ends, also
    when it ends with an exception::

        with LocalCluster(workers=2) as cluster:
            os.environ["SBIT_SPARK_MASTER"] = cluster.master_url
    """

    def __init__(self, workers: int = 2, cores: int = 1, memory: str = "2g", logs: Path = BUILD / "logs",
                 timeout_s: float = 120):
        self.workers, self.cores, self.memory, self.timeout_s = workers, cores, memory, timeout_s
        self.logs = Path(logs)
        self.port, self.ui_port = _free_port(), _free_port()
        self.master_url = f"spark://127.0.0.1:{self.port}"
        self.ui_url = f"http://127.0.0.1:{self.ui_port}"
        self._procs: list[subprocess.Popen] = []

    def _env(self) -> dict:
        from sbit_lib.spark.java import ensure_java_home

        ensure_java_home()
        # Everything on the loopback interface: nothing of the cluster is reachable from outside.
        # A port taken between _free_port() and the bind: fail (a clear error) instead of
        # moving to the next port, where the workers would not look for the master.
        no_retry = "-Dspark.port.maxRetries=0"
        # The master's REST submission server (port 6066, on by default since Spark 4.1) would
        # take jobs from anyone who reaches it; jobs come here through the driver only.
        return {**os.environ, "SPARK_HOME": str(spark_home()), **LOOPBACK, "SPARK_MASTER_HOST": "127.0.0.1",
                "SPARK_MASTER_OPTS": f"{no_retry} -Dspark.master.rest.enabled=false", "SPARK_WORKER_OPTS": no_retry}

    def _spawn(self, name: str, *args: str) -> None:
        self.logs.mkdir(parents=True, exist_ok=True)
        log = (self.logs / f"{name}.log").open("w")
        cmd = [str(spark_home() / "bin" / "spark-class"), *args]
        # A process group of its own, so that stop() ends the JVM and the launcher script together.
        self._procs.append(subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=self._env(),
                                            start_new_session=True))
        log.close()

    def status(self) -> dict:
        """The master's JSON status (alive workers, cores, running applications)."""
        with urllib.request.urlopen(f"{self.ui_url}/json/", timeout=5) as response:
            return json.load(response)

    def start(self) -> "LocalCluster":
        """Start the master and the workers; return when every worker has registered.

        Whatever goes wrong meanwhile (a process exits, a timeout, Ctrl-C), the processes
        already started are stopped before the error propagates."""
        try:
            return self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> "LocalCluster":
        self._spawn("master", "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1",
                    "--port", str(self.port), "--webui-port", str(self.ui_port))
        for i in range(1, self.workers + 1):
            work = self.logs.parent / f"work-{i}"     # executors copy the jars here (~90 MB each)
            shutil.rmtree(work, ignore_errors=True)
            self._spawn(f"worker-{i}", "org.apache.spark.deploy.worker.Worker", self.master_url,
                        "--host", "127.0.0.1", "--cores", str(self.cores), "--memory", self.memory,
                        "--webui-port", str(_free_port()), "--work-dir", str(work))
        names = ["master"] + [f"worker-{i}" for i in range(1, self.workers + 1)]
        started, alive, why = time.monotonic(), 0, ""
        while time.monotonic() - started < self.timeout_s:
            dead = [f"{name} exited (code {p.returncode})" for name, p in zip(names, self._procs)
                    if p.poll() is not None]
            if dead:
                why = ", ".join(dead) + ": "
                break
            try:
                status = self.status()
            except (OSError, ValueError):
                status = {}     # the master's web UI is not up yet
            if status.get("url") not in (None, self.master_url):
                why = f"the master listens on {status['url']}, not {self.master_url}: "
                break
            alive = status.get("aliveworkers", 0)
            if alive >= self.workers:
                return self
            time.sleep(1)
        raise ClusterError(f"the local cluster did not start: {why}{alive} of {self.workers} workers alive "
                           f"after {time.monotonic() - started:.0f} s; logs in {self.logs}")

    def stop(self) -> None:
        """End every process of the cluster.

        Each master and worker leads a process group (with the executors it started): the
        group gets SIGTERM; once its leader has exited, or after 20 s, whatever is left in
        the group gets SIGKILL.
        """
        for proc in self._procs:
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        for proc in self._procs:
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                pass
            # Whatever is left in its group (an executor JVM a worker did not end, or the
            # JVM itself after 20 s) is killed.
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait(10)
        self._procs = []

    def __enter__(self) -> "LocalCluster":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


# ------------------------------------------------------------------ the batch run in one process
def batch_run(environment: str, home: Path, sets: int) -> dict:
    """08-batch-test's loop in one application; return layer times per set and a digest per table.

    A clean environment, then for sets 1..`sets`: land the set, run every layer once,
    validate every layer against the expected results.
    """
    import hashlib

    from sbit_lib.course.bronze import Bronze
    from sbit_lib.course.catalog import get_spark
    from sbit_lib.course.config import Config
    from sbit_lib.course.gold import Gold
    from sbit_lib.course.producer import Producer
    from sbit_lib.course.setup_helper import SetupHelper
    from sbit_lib.course.silver import Silver
    from sbit_lib.ops.bench import _fresh, _quiet, timed_run
    from sbit_lib.testing.expectations import Expectations

    config = _fresh(environment, home, as_of=Expectations.load(Config.resolve().test_data).as_of)
    spark = get_spark(config)
    runs = []
    for n in range(1, sets + 1):
        _quiet(Producer(config).produce, n)
        run = timed_run(config, spark)
        for layer in (Bronze, Silver, Gold):
            _quiet(layer(config, spark).validate, n)     # raises ValidationError with the difference
        runs.append({"set": n, "total_s": run["total_s"], "layers": run["layers"]})

    def canonical(row) -> str:
        # Doubles rounded to 9 digits: an average may be summed in another order on executors.
        return json.dumps({k: round(v, 9) if isinstance(v, float) else v for k, v in row.asDict().items()},
                          default=str, sort_keys=True)

    digests = {}
    for table in SILVER_GOLD:
        rows = sorted(canonical(r) for r in spark.table(config.qualified(table)).collect())
        digests[table] = {"rows": len(rows), "sha256": hashlib.sha256("\n".join(rows).encode()).hexdigest()}
    _quiet(SetupHelper(config, spark).cleanup)
    return {"master": spark.sparkContext.master, "runs": runs, "tables": digests}


def stream_run(environment: str, home: Path, sets: int, master: str) -> dict:
    """The stream job on the cluster: start it, feed sets 1..`sets`, validate each, stop it.

    The job (a process of its own, ``sbit_lib.ops.job``) is the cluster's application; this
    process only lands files and checks the tables, with a local session, so that it does
    not wait for the cores the job's executors hold.
    """
    import dataclasses

    from sbit_lib.course.catalog import get_spark
    from sbit_lib.course.config import Config
    from sbit_lib.course.setup_helper import SetupHelper
    from sbit_lib.ops.bench import _quiet
    from sbit_lib.ops.stream_test import StreamTest
    from sbit_lib.testing.expectations import Expectations

    as_of = Expectations.load(Config.resolve().test_data).as_of
    checker = Config.resolve(environment=environment, home=home, as_of=as_of, spark_master="local[*]")
    spark = get_spark(checker)
    test = StreamTest(dataclasses.replace(checker, spark_master=master), processing_time="1 second",
                      timeout_s=600, spark=spark)
    try:
        _quiet(test.start)
        _quiet(test.validate_setup)
        fresh = [round(_quiet(test.feed, n).freshness_s, 1) for n in range(1, sets + 1)]
    except BaseException:
        if test.job is not None:             # stop the job; the first error is the one to report
            with contextlib.suppress(Exception):
                _quiet(test.stop)
        raise
    _quiet(test.stop)                        # raises unless the job stopped cleanly
    _quiet(SetupHelper(checker, spark).cleanup)
    return {"freshness_s": fresh, "app": f"sbit-{environment}"}


def _child(environment: str, home: Path, sets: int, master: str | None, log: Path, stream: bool = False,
           timeout_s: float = 1800) -> dict:
    """Run one part in a new process; return the JSON it prints last."""
    from sbit_lib.ops.bench import run_child

    env = {**os.environ, **LOOPBACK, "SBIT_SPARK_UI": "false"}
    env.pop("SBIT_SPARK_MASTER", None)
    for name in ("SBIT_DATA_ZONE", "SBIT_CHECKPOINT_ZONE"):
        env.pop(name, None)
    if master:
        # Two cores in all: as many shuffle partitions, as local mode has (see session.py).
        # The zones as URLs, as a cluster of several machines would name them (s3a://,
        # abfss://): the producer, set-up and clean-up go through Hadoop's file system.
        env.update(SBIT_SPARK_MASTER=master, SBIT_SHUFFLE_PARTITIONS="2",
                   SBIT_DATA_ZONE=f"file://{home / 'zones' / 'data'}",           # Hadoop paths are
                   SBIT_CHECKPOINT_ZONE=f"file://{home / 'zones' / 'checkpoints'}")  # not %-escaped
    args = ["--part", environment, "--home", str(home), "--sets", str(sets)] + (["--stream"] if stream else [])
    what = f"the {'cluster' if master else 'local'} {'stream' if stream else 'batch'} run"
    return run_child("sbit_lib.ops.cluster", args, env, log, what, timeout_s)


def report(local: dict, cluster: dict) -> tuple[str, list[str]]:
    """The side-by-side table and the tables whose rows differ between the two runs."""
    lines = [f"{'set':>3} {'layer':8} {'local s':>9} {'cluster s':>10}"]
    for a, b in zip(local["runs"], cluster["runs"]):
        for layer in ("bronze", "silver", "gold"):
            lines.append(f"{a['set']:>3} {layer:8} {a['layers'][layer]:>9.1f} {b['layers'][layer]:>10.1f}")
        lines.append(f"{a['set']:>3} {'total':8} {a['total_s']:>9.1f} {b['total_s']:>10.1f}")
    differ = [t for t in SILVER_GOLD if local["tables"][t] != cluster["tables"][t]]
    lines.append("")
    for table in SILVER_GOLD:
        mark = "DIFFERENT" if table in differ else "same rows"
        lines.append(f"  {table:22} {local['tables'][table]['rows']:>7,} rows local, "
                     f"{cluster['tables'][table]['rows']:>7,} on the cluster: {mark}")
    return "\n".join(lines), differ


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run the batch test locally and on a local standalone cluster.")
    parser.add_argument("--sets", type=int, default=2)
    parser.add_argument("--home", default=str(BUILD / "lakehouse"), help="shared lakehouse home")
    parser.add_argument("--part", default="", help=argparse.SUPPRESS)
    parser.add_argument("--stream", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    home = Path(args.home).resolve()
    # A `kill` (or CI's timeout) ends a run through its cleanup: the `with` below stops the
    # cluster; a part stops the stream job it started.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if args.part and args.stream:
        print(json.dumps(stream_run(args.part, home, args.sets, os.environ["SBIT_SPARK_MASTER"])))
        return 0
    if args.part:
        print(json.dumps(batch_run(args.part, home, args.sets)))
        return 0
    if not 1 <= args.sets <= 2:
        parser.error("--sets must be 1 or 2 (the sets with expected results for every layer)")
    # Each part cleans its own environment (cluster_local, cluster_remote, cluster_stream)
    # first and last; nothing else under --home is touched.
    BUILD.mkdir(parents=True, exist_ok=True)
    print(f"Local mode: sets 1..{args.sets} through every layer, validated ...", flush=True)
    local = _child("cluster_local", home, args.sets, None, BUILD / "local.log")
    print("Starting a standalone cluster: 1 master, 2 workers with 1 core each ...", flush=True)
    with LocalCluster(workers=2, cores=1) as cluster:
        print(f"  {cluster.master_url} (master UI {cluster.ui_url}); logs in {cluster.logs}", flush=True)
        print("On the cluster: the same sets and checks, data and checkpoint zones as file:/// URLs ...",
              flush=True)
        remote = _child("cluster_remote", home, args.sets, cluster.master_url, BUILD / "cluster.log")
        print("The stream job on the cluster: start, feed set 1, validate every layer, stop ...", flush=True)
        stream = _child("cluster_stream", home, 1, cluster.master_url, BUILD / "stream.log", stream=True)
        status = cluster.status()
        apps = {app["name"] for app in status.get("completedapps", []) + status.get("activeapps", [])}
    print("Cluster stopped.\n")
    text, differ = report(local, remote)
    print(text)
    if not remote["master"].startswith("spark://"):
        print(f"error: the cluster run used master {remote['master']!r}", file=sys.stderr)
        return 1
    print(f"\nStream job on the cluster: set 1 valid in every layer {stream['freshness_s'][0]} s after it landed")
    if differ:
        print(f"error: {', '.join(differ)} differ between local mode and the cluster", file=sys.stderr)
        return 1
    if stream["app"] not in apps:
        print(f"error: the stream job's application {stream['app']} did not run on the cluster "
              f"(applications there: {sorted(apps)})", file=sys.stderr)
        return 1
    print(f"\nCluster test passed: sets 1..{args.sets} validated in both modes, "
          f"{len(SILVER_GOLD)} silver and gold tables equal row for row; the stream job ran on the cluster.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
