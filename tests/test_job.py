"""The run lock, the status file and the CLI around them, with real processes (no Spark)."""

import json
import subprocess
import sys
import textwrap
import time

import pytest

from sbit_lib.course.config import Config
from sbit_lib.ops.job import (
    JobLock,
    JobLockedError,
    ensure_not_running,
    format_status,
    job_dir,
    read_status,
    request_stop,
)
from tests.conftest import sbit_cli, wait_for

HOLDER = textwrap.dedent("""
    import sys, time
    from sbit_lib.course.config import Config
    from sbit_lib.ops.job import JobLock
    config = Config.resolve(environment=sys.argv[1], home=sys.argv[2])
    lock = JobLock(config, sys.argv[3]).acquire()
    print("locked", flush=True)
    time.sleep(600)
""")


@pytest.fixture
def config(tmp_path):
    return Config.resolve(environment="locked", home=tmp_path / "home")


def hold_lock(config, kind="stream job"):
    """Another process that takes the environment's lock and keeps it until killed."""
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, config.environment, str(config.home), kind],
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked"
    return holder


def test_a_second_run_on_the_same_environment_is_refused_until_the_first_ends(config):
    holder = hold_lock(config)
    try:
        with pytest.raises(JobLockedError) as err:
            JobLock(config, "batch run").acquire()
        message = str(err.value)
        assert f"pid {holder.pid}" in message and "stream job" in message
        assert "sbit stop --env locked" in message
        with pytest.raises(JobLockedError, match="cannot clean up"):
            ensure_not_running(config, "clean up")
        assert JobLock.holder(config)["pid"] == holder.pid
        # other environments are not affected
        other = Config.resolve(environment="other", home=config.home)
        with JobLock(other, "batch run"):
            assert JobLock.held_here(other)
    finally:
        holder.kill()          # SIGKILL: the kernel releases the lock with the process
        holder.wait()
    assert JobLock.holder(config) is None
    with JobLock(config, "batch run") as lock:
        assert JobLock.held_here(config)
        assert JobLock(config, "batch run").acquire() is lock      # re-entrant within one process
        lock.release()
        assert JobLock.held_here(config)
    assert not JobLock.held_here(config)
    assert json.loads((job_dir(config) / "lock").read_text())["released"]


def test_a_new_run_waits_for_the_jvm_of_a_killed_run(config):
    """A killed run's JVM (here: a stand-in process) may still commit: the next run waits for it."""
    jvm = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    try:
        lock_file = job_dir(config) / "lock"
        lock_file.parent.mkdir(parents=True)
        start = open(f"/proc/{jvm.pid}/stat").read().rsplit(")", 1)[1].split()[19]
        lock_file.write_text(json.dumps({"pid": dead.pid, "kind": "stream job", "jvm_pid": jvm.pid,
                                         "jvm_start": start}))
        began = time.monotonic()
        with pytest.raises(JobLockedError, match=f"JVM \\(pid {jvm.pid}\\).*still running"):
            JobLock(config, "stream job").acquire(jvm_wait_s=1.0)
        assert time.monotonic() - began >= 1.0
        assert not JobLock.held_here(config)          # the refused acquisition let go of the lock
        jvm.kill()
        jvm.wait()
        with JobLock(config, "stream job"):           # the JVM is gone: no waiting
            pass
    finally:
        jvm.kill()


def test_cli_refuses_to_clean_run_or_start_while_a_job_holds_the_environment(config):
    holder = hold_lock(config)
    args = ["--env", config.environment, "--home", str(config.home)]
    try:
        for command in (["clean"], ["run"], ["start"]):
            result = sbit_cli(*command, *args, timeout=120)
            assert result.returncode == 1, result
            assert result.stderr.startswith("error: ") and f"pid {holder.pid}" in result.stderr
            assert len(result.stderr.strip().splitlines()) == 1
        stop = sbit_cli("stop", "--timeout", "1", *args, timeout=120)     # the holder ignores stop requests
        assert stop.returncode == 1 and "did not stop within 1 s" in stop.stderr
    finally:
        holder.kill()
        holder.wait()
    assert not request_stop(config)           # nothing running: nothing to stop
    result = sbit_cli("stop", *args)
    assert result.returncode == 0 and "nothing to stop" in result.stdout


def test_status_of_an_environment_without_a_job(config):
    assert read_status(config) is None
    result = sbit_cli("status", "--env", config.environment, "--home", str(config.home))
    assert result.returncode == 3
    assert "No stream job has run in environment 'locked'" in result.stdout


def test_status_text_shows_each_query_and_a_dead_job(config):
    status = {"state": "running", "alive": False, "pid": 4242, "started": "2026-01-01 10:00:00 UTC",
              "updated": "2026-01-01 10:05:00 UTC", "processing_time": "1 second", "mode": "default",
              "log": "/x/job.log", "memory": {"rss_mb": 1500.0, "peak_rss_mb": 1600.5}, "error": None,
              "queries": [{"name": "heart_rate_upsert_stream", "active": True, "batch_id": 7,
                           "last_data_time": "2026-01-01T10:04:59.000Z", "last_data_rows": 253801,
                           "last_data_ms": 8000, "input_rows_per_s": 12.5, "processed_rows_per_s": 31725.1,
                           "state_rows": None}]}
    text = format_status(config, status)
    assert "dead (last state running)" in text           # the process is gone without a final status
    assert "heart_rate_upsert_stream" in text and "253,801" in text and "31,725.1" in text
    assert "peak 1600.5 MiB" in text


def test_a_wrong_trigger_interval_is_refused_before_anything_starts(config):
    result = sbit_cli("start", "--processing-time", "soon", "--env", config.environment, "--home", str(config.home))
    assert result.returncode == 2
    assert "processing time 'soon'" in result.stderr and "'1 second'" in result.stderr
    assert not job_dir(config).exists()


def test_start_job_reports_a_job_that_dies_at_start(config, tmp_path):
    """A job that cannot start (here: no history file to load) fails with the end of its log."""
    from sbit_lib.ops.job import start_job

    bad = Config.resolve(environment="bad_start", home=config.home, test_data=tmp_path / "missing")
    job = start_job(bad, processing_time="1 second")
    with pytest.raises(RuntimeError, match="exited with code 1 before its queries ran") as err:
        job.wait_running(timeout_s=300)
    assert "error:" in str(err.value)
    wait_for(lambda: JobLock.holder(bad) is None, 30, "the lock to be released")


def test_a_crashed_writes_leftovers_are_removed_from_the_checkpoint_logs(tmp_path):
    """What a run killed while Spark wrote offsets/0 leaves behind (seen in CI), and nothing else."""
    from sbit_lib.course.run import remove_incomplete_checkpoint_writes

    config = Config.resolve(environment="crashed", home=tmp_path)
    offsets = config.checkpoint_dir("user_bins") / "offsets"
    offsets.mkdir(parents=True)
    (config.checkpoint_dir("user_bins") / "commits").mkdir()
    leftovers = [offsets / ".0.19a0d4bc-abd0-49af-970a-a02cd25feb01.tmp",
                 offsets / "..0.19a0d4bc-abd0-49af-970a-a02cd25feb01.tmp.crc"]
    for path in leftovers:
        path.write_text("partial")
    kept = [offsets / "1", config.checkpoint_dir("user_bins") / "metadata",
            config.checkpoint_dir("user_bins") / "state" / "0" / ".1.tmp"]
    for path in kept:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("real")
    assert sorted(remove_incomplete_checkpoint_writes(config)) == sorted(leftovers)
    assert not any(p.exists() for p in leftovers) and all(p.exists() for p in kept)
