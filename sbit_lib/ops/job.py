"""The stream job: the pipeline in stream mode as a long-running process you can watch and stop.

On Databricks the course's 09-stream-test creates a *job* that runs 07-run in stream
mode. Locally a job is a process (``sbit run --stream``, ``sbit start`` in the
background, or ``07-run`` with ``run_type="stream"``) with three companions, all in
``<SBIT_HOME>/.jobs/<environment>/``:

* ``lock`` — the run lock every run of the pipeline takes (:mod:`sbit_lib.spark.runlock`).
* ``status.json`` — rewritten every second by the job: state, each query's last
  micro-batch (id, time, rows, rows per second, duration, state-store rows) from
  ``StreamingQuery.lastProgress``, and the process's memory. ``sbit status`` prints it.
* ``stop`` — a stop request: ``sbit stop`` creates it, the job stops every query
  (checkpoints stay valid), writes its final status and exits 0. SIGTERM and SIGINT
  do the same.
"""

from __future__ import annotations

import atexit
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from sbit_lib.course.config import Config
from sbit_lib.course.streaming import stop_queries
from sbit_lib.spark.runlock import (
    JobLock,
    JobLockedError,
    _alive,
    _now,
    _write_json,
    ensure_not_running,
    job_dir,
)

__all__ = ["JobLock", "JobLockedError", "ensure_not_running", "job_dir", "run_job", "start_job",
           "request_stop", "read_status", "format_status", "stop_queries"]

STATUS_INTERVAL_S = 1.0


# ---------------------------------------------------------------------------- status
def _rss_mb(pid: int) -> tuple[float | None, float | None]:
    """Current and peak resident memory (MiB) of `pid` from /proc (None where unavailable)."""
    try:
        fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
                      if ":" in line)
        return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024
    except (OSError, KeyError, ValueError):
        return None, None


def memory(jvm_pid: int | None) -> dict:
    """Resident memory of this process and its Spark JVM, current and peak, in MiB."""
    py_now, py_peak = _rss_mb(os.getpid())
    jvm_now, jvm_peak = _rss_mb(jvm_pid) if jvm_pid else (None, None)
    if py_now is None:   # no /proc (macOS): the peak of this process from getrusage
        import resource

        py_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (1024 * 1024 if sys.platform == "darwin" else 1024)
    total = lambda a, b: None if a is None and b is None else round((a or 0) + (b or 0), 1)  # noqa: E731
    return {"rss_mb": total(py_now, jvm_now), "peak_rss_mb": total(py_peak, jvm_peak),
            "python_peak_mb": py_peak and round(py_peak, 1), "jvm_peak_mb": jvm_peak and round(jvm_peak, 1)}


def log_batches(queries, seen: dict) -> None:
    """Print one line per micro-batch that read rows since the last call (the job's log)."""
    for query in queries:
        for progress in query.recentProgress:
            key = (progress["batchId"], progress["timestamp"])
            if progress.get("numInputRows") and key > seen.get(query.name, (-1, "")):
                seen[query.name] = key
                print(f"{progress['timestamp'][11:23]} {query.name:38} batch {progress['batchId']:>4} "
                      f"{progress['numInputRows']:>9,} rows {progress['durationMs'].get('triggerExecution', 0):>7,} ms",
                      flush=True)


_BATCH_LINE = re.compile(r"^(\d\d):(\d\d):(\d\d\.\d+) (\S+)\s+batch\s+(\d+)\s+([\d,]+) rows\s+([\d,]+) ms$")


def batch_log(config: Config):
    """The job log's micro-batch lines (see `log_batches`) as a pandas frame.

    Columns: seconds (since the first line), query, batch, rows, ms, rows_per_s.
    """
    import pandas as pd

    path = job_dir(config) / "job.log"
    rows, day, last = [], 0.0, -1.0
    for line in path.read_text().splitlines() if path.exists() else []:
        match = _BATCH_LINE.match(line.strip())
        if not match:
            continue
        hours, minutes, seconds, query, batch, count, ms = match.groups()
        clock = int(hours) * 3600 + int(minutes) * 60 + float(seconds)
        if clock + day < last:          # the log crossed midnight (UTC)
            day += 86400
        last = clock + day
        rows.append({"clock": last, "query": query, "batch": int(batch), "rows": int(count.replace(",", "")),
                     "ms": int(ms.replace(",", ""))})
    frame = pd.DataFrame(rows, columns=["clock", "query", "batch", "rows", "ms"])
    frame.insert(0, "seconds", frame["clock"] - (frame["clock"].min() if len(frame) else 0))
    frame["rows_per_s"] = frame["rows"] / (frame["ms"].clip(lower=1) / 1000)
    return frame.drop(columns="clock")


def query_status(query, last_data: dict) -> dict:
    """One query's line of the status: from lastProgress, plus its last micro-batch that read rows."""
    progress = query.lastProgress or {}
    now = query.status or {}
    if progress.get("numInputRows"):
        last_data[query.name] = progress
    data = last_data.get(query.name, {})
    state = progress.get("stateOperators") or []
    return {
        "name": query.name,
        "active": query.isActive,
        "busy": bool(now.get("isTriggerActive")),
        "message": now.get("message"),          # e.g. "Waiting for data to arrive"
        "batch_id": progress.get("batchId"),
        "last_progress": progress.get("timestamp"),      # when its last reported trigger started
        "last_rows": progress.get("numInputRows"),       # 0: that trigger looked and found nothing
        "last_data_batch": data.get("batchId"),
        "last_data_time": data.get("timestamp"),
        "last_data_rows": data.get("numInputRows", 0),
        "last_data_ms": (data.get("durationMs") or {}).get("triggerExecution"),
        "input_rows_per_s": round(progress.get("inputRowsPerSecond") or 0.0, 1),
        "processed_rows_per_s": round(progress.get("processedRowsPerSecond") or 0.0, 1),
        "state_rows": sum(op.get("numRowsTotal", 0) for op in state) if state else None,
    }


def read_status(config: Config) -> dict | None:
    """The last status the environment's job wrote (None if it never ran), with ``alive`` added."""
    path = job_dir(config) / "status.json"
    try:
        status = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    holder = JobLock.holder(config)
    status["alive"] = holder is not None and holder.get("pid") == status.get("pid") and _alive(status.get("pid"))
    return status


def format_status(config: Config, status: dict | None) -> str:
    """The text `sbit status` prints."""
    if status is None:
        return f"No stream job has run in environment {config.environment!r} (nothing in {job_dir(config)})."
    state = status["state"] if status["alive"] else (
        status["state"] if status["state"] in ("stopped", "failed") else f"dead (last state {status['state']})")
    mem = status.get("memory") or {}
    lines = [
        f"Stream job of environment {config.environment!r}: {state}",
        f"  pid {status.get('pid')}, started {status.get('started')}, status written {status.get('updated')}",
        f"  trigger every {status.get('processing_time')}, mode {status.get('mode')}, "
        f"memory {mem.get('rss_mb')} MiB resident (peak {mem.get('peak_rss_mb')} MiB)",
        f"  log: {status.get('log') or '(not captured)'}",
    ]
    if status.get("error"):
        lines.append(f"  error: {status['error']}")
    if status.get("queries"):
        lines.append(f"  {'query':38} {'active':6} {'now':4} {'batch':>5} {'last data batch (UTC)':24} "
                     f"{'rows':>8} {'ms':>6} {'in rows/s':>10} {'done rows/s':>11} {'state':>6}")
        for q in status["queries"]:
            when = (q.get("last_data_time") or "-")[:23].replace("T", " ")
            state_rows = "-" if q.get("state_rows") is None else q["state_rows"]
            now = "busy" if q.get("busy") else "idle"
            lines.append(f"  {q['name']:38} {str(q['active']):6} {now:4} "
                         f"{q['batch_id'] if q['batch_id'] is not None else '-':>5} "
                         f"{when:24} {q['last_data_rows']:>8,} {q.get('last_data_ms') or '-':>6} "
                         f"{q['input_rows_per_s']:>10,.1f} {q['processed_rows_per_s']:>11,.1f} {state_rows:>6}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------- the job
def run_job(config: Config, processing_time: str = "5 seconds", spark=None,
            handle_signals: bool = True, log: str | None = None) -> None:
    """Run the pipeline in stream mode until a stop request, SIGTERM/SIGINT or a query failure.

    Blocks. On any way out every query is stopped (its checkpoint stays valid), the
    final status is written and the lock released; a failed query raises RuntimeError.
    """
    from sbit_lib.course.catalog import get_spark
    from sbit_lib.course.run import run
    from sbit_lib.course.streaming import check_processing_time

    processing_time = check_processing_time(processing_time)
    folder = job_dir(config)
    stop_file, status_file = folder / "stop", folder / "status.json"
    began = time.time()
    with JobLock(config, "stream job") as lock:
        # A stop request older than this process was meant for an earlier job; a newer one
        # (sent while we waited for the lock) is for us.
        if stop_file.exists() and stop_file.stat().st_mtime < began - 1:
            stop_file.unlink(missing_ok=True)
        status = {"environment": config.environment, "pid": os.getpid(), "state": "starting",
                  "started": _now(), "processing_time": processing_time, "mode": config.mode,
                  "log": log, "error": None, "queries": [], "memory": memory(None)}

        def write(state: str | None = None) -> None:
            if state:
                status["state"] = state
            status["updated"] = _now()
            _write_json(status_file, status)

        write()
        stop = threading.Event()
        previous_handlers = {}
        if handle_signals and threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                previous_handlers[sig] = signal.signal(sig, lambda *_: stop.set())
        queries: list = []
        last_data: dict = {}
        logged: dict = {}
        jvm_pid = None
        try:
            spark = spark or get_spark(config)
            jvm_pid = lock.record_jvm(spark)
            queries = run(config, once=False, processing_time=processing_time, spark=spark)
            print(f"Streaming {len(queries)} queries every {processing_time}; stop with "
                  f"`sbit stop --env {config.environment}`, Ctrl-C or SIGTERM", flush=True)
            status["queries"] = [query_status(q, last_data) for q in queries]
            status["memory"] = memory(jvm_pid)
            write("running")
            while not stop.is_set():
                if stop_file.exists():
                    print("Stop requested", flush=True)
                    break
                failed = [q for q in queries if not q.isActive]
                if failed:
                    err = failed[0].exception()
                    raise RuntimeError(f"query {failed[0].name} "
                                       + (f"failed: {root_cause(err)}" if err else "stopped unexpectedly"))
                status["queries"] = [query_status(q, last_data) for q in queries]
                status["memory"] = memory(jvm_pid)
                write()
                log_batches(queries, logged)
                stop.wait(STATUS_INTERVAL_S)
        except KeyboardInterrupt:     # Ctrl-C / interrupting the notebook: a normal stop
            print("Interrupted", flush=True)
        except BaseException as err:
            status["error"] = str(err).splitlines()[0] if str(err) else type(err).__name__
            raise
        finally:
            write("stopping")
            stop_queries(queries)
            status["queries"] = [query_status(q, last_data) for q in queries]
            status["memory"] = memory(jvm_pid)
            write("failed" if status["error"] else "stopped")
            stop_file.unlink(missing_ok=True)
            for sig, handler in previous_handlers.items():
                signal.signal(sig, handler)
            print("All queries stopped", flush=True)


# ---------------------------------------------------------------------------- a job process
def _cli_args(config: Config) -> list[str]:
    args = ["--env", config.environment, "--home", str(config.home), "--test-data", str(config.test_data),
            "--mode", config.mode, "--spark-master", config.spark_master]
    if config.as_of:
        args += ["--as-of", config.as_of.isoformat()]
    if config.data_root:
        args += ["--data-zone", config.data_root]
    if config.checkpoint_root:
        args += ["--checkpoint-zone", config.checkpoint_root]
    return args


@dataclass
class JobProcess:
    """A stream job started in the background by :func:`start_job`."""

    config: Config
    process: subprocess.Popen
    log_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def status(self) -> dict | None:
        return read_status(self.config)

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def wait_running(self, timeout_s: float = 300.0) -> dict:
        """Poll until the job's queries run; raise with the log's tail if it dies or times out."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            status = self.status()
            if status and status.get("pid") == self.pid and status["state"] == "running":
                return status
            if not self.alive():
                raise RuntimeError(f"the stream job exited with code {self.process.returncode} before its "
                                   f"queries ran; the end of its log {self.log_path}:\n{self.log_tail()}")
            time.sleep(0.25)
        raise TimeoutError(f"the stream job did not start its queries within {timeout_s:.0f} s; "
                           f"log {self.log_path}:\n{self.log_tail()}")

    def stop(self, timeout_s: float = 180.0) -> int:
        """Ask the job to stop (stop request), wait for it to exit, return its exit code."""
        if self.alive():
            (job_dir(self.config) / "stop").touch()
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.process.terminate()
                self.process.wait(timeout=60)
        return self.process.returncode

    def kill(self) -> None:
        """SIGKILL to the job and its Spark JVM at once, as a crash would: nothing stops, nothing flushes."""
        try:
            os.killpg(self.process.pid, signal.SIGKILL)   # the job leads its own process group
        except ProcessLookupError:
            pass
        self.process.wait(timeout=60)
        jvm = JobLock._record(job_dir(self.config) / "lock")
        deadline = time.monotonic() + 60
        while _alive(jvm.get("jvm_pid"), jvm.get("jvm_start")) and time.monotonic() < deadline:
            time.sleep(0.05)


def start_job(config: Config, processing_time: str = "5 seconds", log_path: Path | None = None,
              stop_at_exit: bool = False) -> JobProcess:
    """Start ``sbit run --stream`` for `config` as a background process; its output goes to `log_path`.

    The job runs in its own session, so Ctrl-C in the caller does not reach it; with
    `stop_at_exit` it is asked to stop when the calling Python process exits (a notebook
    kernel that fails part-way does not leave a job behind).
    """
    from sbit_lib.course.streaming import check_processing_time

    processing_time = check_processing_time(processing_time)
    ensure_not_running(config, "start a stream job")
    log_path = Path(log_path or job_dir(config) / "job.log")
    log_path.parent.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "sbit_lib.ops.cli", "run", "--stream", "--processing-time", processing_time,
               "--log", str(log_path), *_cli_args(config)]
    with log_path.open("ab") as log:
        log.write(f"--- {_now()} {' '.join(command)}\n".encode())
        log.flush()
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   start_new_session=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    job = JobProcess(config, process, log_path)
    if stop_at_exit:
        atexit.register(job.stop)
    return job


def request_stop(config: Config, timeout_s: float = 180.0) -> bool:
    """Ask the environment's job to stop and wait until it has; False if none was running."""
    record = JobLock.holder(config)
    if record is None:
        return False
    if record.get("kind") == "batch run":
        raise JobLockedError(f"environment {config.environment!r} is in use by {JobLock.describe(record)}, "
                             "which stops by itself when it has read everything landed")
    if record.get("kind") != "stream job":
        raise JobLockedError(f"environment {config.environment!r} is in use by {JobLock.describe(record)}, "
                             "started by run(once=False) in a notebook or script: stop its queries there, "
                             "or end that process")
    (job_dir(config) / "stop").touch()
    deadline = time.monotonic() + timeout_s
    while JobLock.holder(config) is not None:
        if time.monotonic() > deadline:
            raise TimeoutError(f"the stream job (pid {record.get('pid')}) did not stop within {timeout_s:.0f} s; "
                               f"`kill {record.get('pid')}` sends SIGTERM, which stops it the same way")
        time.sleep(0.25)
    return True


def root_cause(err: BaseException) -> str:
    """Return the most specific line of an error: the innermost Python or Java cause."""
    text = str(err).strip()
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    for marker in ("Caused by: ", "Error: ", "Exception: "):
        inner = [ln for ln in lines if marker in ln and not ln.startswith("at ")]
        if inner and len(lines) > 1:
            return inner[-1][inner[-1].index(marker) + len(marker):] if marker == "Caused by: " else inner[-1]
    return lines[0] if lines else type(err).__name__
