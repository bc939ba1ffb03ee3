"""One run per environment: the run lock every run of the pipeline takes.

``<SBIT_HOME>/.jobs/<environment>/lock`` is an exclusive ``flock`` taken by any run of
the pipeline (batch or stream, ``sbit run``, the stream job, ``07-run``) and by clean-up.
A second run on the same environment is refused with a message naming the first: two
runs would share its checkpoints. The kernel drops the lock when the process dies, even
by SIGKILL. Spark runs in a child JVM that may outlive a killed Python process for a
moment, still committing; the lock file records the JVM's pid and a new run waits for it
to exit.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
import sys
import time
from pathlib import Path

_HELD: dict[Path, "JobLock"] = {}   # locks this process holds, by path (re-entrant within a process)


class JobLockedError(RuntimeError):
    """Another process is running the pipeline on this environment."""


def job_dir(config) -> Path:
    """Where the lock, status, stop request and log of `config`'s environment live."""
    return config.home / ".jobs" / config.environment


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def _process_start(pid: int) -> str | None:
    """The kernel's start time of `pid` (to tell a pid from a recycled one), None if gone or a zombie."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return None if fields[0] == "Z" else fields[19]


def _alive(pid: int | None, start: str | None = None) -> bool:
    if not pid:
        return False
    if Path("/proc").is_dir():
        current = _process_start(pid)
        return current is not None and (start is None or current == start)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _write_json(path: Path, data: dict) -> None:
    """Write `data` so that a reader never sees half a file (temporary file, then rename)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=1, default=str))
    os.replace(tmp, path)


class JobLock:
    """The per-environment run lock (see the module docstring).

    `config` is the course's Config (only its ``home`` and ``environment`` are used).
    """

    def __init__(self, config, kind: str):
        self.config = config
        self.kind = kind
        self.path = job_dir(config) / "lock"
        self._fd: int | None = None
        self._depth = 0

    # -- reading the holder ------------------------------------------------------------
    @staticmethod
    def holder(config) -> dict | None:
        """Return the holder's record if another process holds the lock, else None."""
        path = job_dir(config) / "lock"
        if not path.exists() or path in _HELD:
            return None
        fd = os.open(path, os.O_RDONLY)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                return JobLock._record(path) or {"pid": "?", "kind": "run"}
            fcntl.flock(fd, fcntl.LOCK_UN)
            return None
        finally:
            os.close(fd)

    @staticmethod
    def held_here(config) -> bool:
        """True if this process holds `config`'s lock."""
        return job_dir(config) / "lock" in _HELD

    @staticmethod
    def _record(path: Path) -> dict:
        try:
            return json.loads(path.read_text() or "{}")
        except (OSError, ValueError):
            return {}

    @staticmethod
    def describe(record: dict) -> str:
        return f"a {record.get('kind', 'run')} (pid {record.get('pid', '?')}, started {record.get('started', '?')})"

    # -- taking and releasing it ---------------------------------------------------------
    def acquire(self, jvm_wait_s: float = 120.0) -> "JobLock":
        held = _HELD.get(self.path)
        if held is not None:            # this process already runs the pipeline here
            held._depth += 1
            return held
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        if not self._flock(fd):
            os.close(fd)
            record = self._record(self.path)
            raise JobLockedError(
                f"environment {self.config.environment!r} is in use by {self.describe(record)}; "
                f"stop it first (`sbit stop --env {self.config.environment}`) or use another environment "
                "(--env): two runs on one environment would share its checkpoints") from None
        previous = self._record(self.path)
        self._fd = fd
        self._depth = 1
        _HELD[self.path] = self
        # Who holds it, at once: `sbit stop` and error messages must name this process
        # even while it waits for a killed predecessor's JVM below.
        self._write({"pid": os.getpid(), "pid_start": _process_start(os.getpid()), "kind": self.kind,
                     "started": _now(), "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]])})
        try:
            self._wait_for_previous_jvm(previous, jvm_wait_s)
        except BaseException:
            self.release()
            raise
        return self

    @staticmethod
    def _flock(fd: int, patience_s: float = 2.0) -> bool:
        """Take the exclusive lock; a moment's patience, since status readers take it shared briefly."""
        deadline = time.monotonic() + patience_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return True
            except BlockingIOError:
                if time.monotonic() > deadline:
                    return False
                time.sleep(0.05)

    def _wait_for_previous_jvm(self, previous: dict, timeout_s: float) -> None:
        """A killed run's JVM may still be finishing a commit: wait until it has exited.

        Only a holder that died without releasing the lock leaves such a JVM; one that
        released it (and may still be alive, idle) has nothing in flight.
        """
        if previous.get("released") or _alive(previous.get("pid"), previous.get("pid_start")):
            return
        if not wait_for_jvm(previous, timeout_s):
            jvm = previous.get("jvm_pid")
            raise JobLockedError(
                f"the Spark JVM (pid {jvm}) of an earlier run on environment "
                f"{self.config.environment!r} is still running {timeout_s:.0f} s after its "
                f"Python process ended; stop it (kill {jvm}) and start again")

    def _write(self, record: dict) -> None:
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, json.dumps(record).encode(), 0)

    def record_jvm(self, spark) -> int | None:
        """Note the pid of this run's Spark JVM, for the next run to wait on if we are killed; return it."""
        if self._fd is None:
            return None
        try:
            pid = int(spark.sparkContext._jvm.java.lang.ProcessHandle.current().pid())
        except Exception:   # not a local py4j JVM (e.g. Spark Connect): nothing to wait for
            return None
        if pid == os.getpid():
            return None
        record = self._record(self.path)
        record.update(jvm_pid=pid, jvm_start=_process_start(pid))
        self._write(record)
        return pid

    def release(self) -> None:
        if self._fd is None:
            return
        self._depth -= 1
        if self._depth > 0:
            return
        _HELD.pop(self.path, None)
        record = self._record(self.path)
        record["released"] = _now()
        self._write(record)
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
        self._fd = None

    def __enter__(self) -> "JobLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def wait_for_jvm(record: dict, timeout_s: float, poll_s: float = 0.2) -> bool:
    """Wait until the Spark JVM a lock record names (``jvm_pid``/``jvm_start``) has exited;
    True if it has (or none was recorded), False after `timeout_s`."""
    jvm, start = record.get("jvm_pid"), record.get("jvm_start")
    deadline = time.monotonic() + timeout_s
    while _alive(jvm, start):
        if time.monotonic() > deadline:
            return False
        time.sleep(poll_s)
    return True


def ensure_not_running(config, action: str) -> None:
    """Raise JobLockedError if another process runs the pipeline on `config`'s environment."""
    record = JobLock.holder(config)
    if record is not None:
        raise JobLockedError(
            f"cannot {action}: environment {config.environment!r} is in use by {JobLock.describe(record)}; "
            f"stop it first (`sbit stop --env {config.environment}`)")
