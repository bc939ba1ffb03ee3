"""The fault test: kill the pipeline with SIGKILL at random moments, run it again, compare every table.

Every write of the pipeline is meant to be crash-consistent: set-up (a table folder without a
commit is a table not yet created), the history load, bronze's idempotent appends, silver's
and gold's MERGEs, the checkpoints' offset and commit logs. This test checks it end to end::

    python -m sbit_lib.ops.fault --trials 20 --seed 1234 [--keep] [--stream]
    make fault-test                     # FAULT_TRIALS ?= 20, FAULT_SEED ?= a random one, printed

1. A small data set: the course's files of sets 1-2 and the date lookup, and heart-rate files
   cut to one reading every 15 s of each registered device (a few thousand per set, which
   still hit every workout, late, duplicate and invalid readings included), with its
   expected results from the independent reference computation.
2. The baseline: in a fresh environment, sets 1 and 2 landed, one uninterrupted ``sbit run``
   (set-up, history load, bronze, silver's three waves, gold) in a process of its own; its
   duration is the span the kill moments are drawn from, and every table is validated
   against the expected results.
3. Each trial: a fresh environment, the same landing and the same ``sbit run``, killed with
   SIGKILL (the Python process and its Spark JVM at once) at the moment drawn from the seed
   (a fraction of the span, taken as so long after the phase it falls in began); then ``sbit
   run`` again, to completion, in a new process. Every table of ``ALL_TABLES`` and the
   ``gym_summary`` view must then equal the baseline's exactly: the same columns and types,
   the same multiset of rows (without ``load_time``, a wall-clock time, and with ``source_file``
   cut to the file's name, since the folders differ). The baseline being valid, so is each
   trial; ``--validate-each`` validates every trial against the expected results all the same.

A trial passes only if its run was killed: a run that finished by itself before its kill
moment interrupted nothing, and one that failed by itself is a failure of the pipeline, so
either fails the trial, whatever the comparison says afterwards (every problem found is kept).
The moments are drawn so that they fall inside the run: no later than the end of the
baseline's gold layer (the last write), and a kill comes at the latest when the phase after
the one drawn begins, so a trial run quicker than the baseline's is still killed in that phase
rather than after its end.

``--stream`` runs the stream job instead (``sbit run --stream``): killed at a random moment,
restarted, and compared once it has caught up and been stopped.

``--at set-up,merge,commit`` chooses moments by what the run is seen doing instead of by a
clock (one trial each; :data:`TARGETS`): set-up with some tables created and not all, a silver
MERGE that has written data files without its Delta commit, and a silver micro-batch whose
MERGE is committed and whose checkpoint commit is not. The files are polled, the run frozen
(SIGSTOP) the moment one is seen, looked at again, and killed there.

Each trial prints the kill delay, what was running when it was killed (from the run's output
and from the checkpoint and Delta log files: ``heart_rate batch 0: written (v1 MERGE),
checkpoint commit missing``) and the result. The seed is printed first: ``--seed S --trials N``
draws the same kill fractions again (a moment's phase also depends on the machine's load, so
the replay's phase is printed too; ``--span`` fixes the span instead of measuring it, and
``--delays 31.5`` kills at exactly that second). ``--from-setup`` draws no moment before the
baseline's set-up began (while Python and the JVM start nothing is written); the tests use it.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from sbit_lib.course.config import PROJECT_ROOT, Config
from sbit_lib.course.tables import ALL_TABLES, GYM_SUMMARY

SETS = (1, 2)
AS_OF = "2023-03-31"                 # the reference's as-of date: ages must match the expected results
READING_EVERY_S = 15                 # heart rate: one reading in 15 s of each registered device ...
FILLER_EVERY_S = 900                 # ... and one in 15 minutes of the unregistered ones
FIRST_UNREGISTERED = 900_001
COURSE_FILES = ("1-registered_users_{n}.csv", "2-user_info_{n}.json", "4-workout_{n}.json", "5-gym_logins_{n}.csv")
VOLATILE = ("load_time",)            # wall-clock by nature: never compared
FILE_COLUMNS = ("source_file",)      # a path into the environment: compared by file name
RUN_TIMEOUT_S = 900
POLL_S = 0.01                        # how often a trial looks at its run's output and files
END_OF_RUN = "the end of the run"

# The run's output lines, in order, and what runs after each (sbit_lib.course.run).
MARKERS = (
    ("Setting up", "set-up"),
    ("Setup completed", "set-up done, before the history load"),
    ("Loading history", "history load"),
    ("History load completed", "history loaded, before bronze"),
    ("Starting bronze", "bronze"),
    ("Bronze layer completed", "silver wave 1"),
    ("Silver wave 1 completed", "silver wave 2"),
    ("Silver wave 2 completed", "silver wave 3"),
    ("Silver wave 3 completed", "gold"),
    ("Gold layer completed", END_OF_RUN),
    ("Streaming ", "the stream job's queries"),
)


# ---------------------------------------------------------------------------- the data set
def _bpm_line_kept(line: str) -> bool:
    record = json.loads(line)
    value = json.loads(record["value"])
    every = FILLER_EVERY_S if value["device_id"] >= FIRST_UNREGISTERED else READING_EVERY_S
    return int(value["time"]) % every == 0


def make_data(folder: Path, source: Path = PROJECT_ROOT / "test_data") -> Path:
    """Write the small data set of sets 1-2 into `folder` with its expected results; return `folder`.

    The course's files are copied from `source`; each heart-rate set is the generator's, cut
    to the readings whose second is a multiple of 15 (a duplicate goes with its original).
    Deterministic: the same bytes every time.
    """
    from sbit_lib.testing import bpm_generator, reference

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("6-date-lookup.json", *(p.format(n=n) for p in COURSE_FILES for n in SETS)):
        shutil.copyfile(source / name, folder / name)
    for n in SETS:
        target = folder / bpm_generator.bpm_file_name(n)
        if not target.exists():
            lines = [line for line in bpm_generator.set_lines(folder, n) if _bpm_line_kept(line)]
            tmp = target.with_name(f".{target.name}.tmp")
            tmp.write_text("\n".join(lines) + "\n")
            tmp.replace(target)
    with contextlib.redirect_stdout(io.StringIO()):
        reference.write_expectations(folder, sets=SETS)
    return folder


# ---------------------------------------------------------------------------- one run, as a process
@dataclass
class RunProcess:
    """``sbit run`` (or ``sbit run --stream``) started in a process group of its own, its output timed.

    `command` runs another program instead (the tests' stand-ins for ``sbit run``: a process
    that ends by itself, fails, or waits to be killed).
    """

    config: Config
    stream: bool = False
    command: list | None = None
    lines: list = field(default_factory=list)       # (seconds since start, line)

    def __post_init__(self):
        command = self.command or [
            sys.executable, "-m", "sbit_lib.ops.cli", "run",
            "--env", self.config.environment, "--home", str(self.config.home),
            "--test-data", str(self.config.test_data), "--mode", self.config.mode, "--as-of", AS_OF]
        if self.stream and not self.command:
            command += ["--stream", "--processing-time", "1 second"]
        self.started = time.monotonic()
        self.process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True,
            start_new_session=True, env={**os.environ, "PYTHONUNBUFFERED": "1", "SBIT_SPARK_UI": "false"})
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.append((time.monotonic() - self.started, line.rstrip("\n")))

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def alive(self) -> bool:
        return self.process.poll() is None

    def wait(self, timeout_s: float = RUN_TIMEOUT_S) -> int:
        try:
            code = self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()
            raise TimeoutError(f"`sbit run` did not finish within {timeout_s:.0f} s; its output:\n{self.tail()}")
        self._reader.join(timeout=10)
        return code

    def kill(self) -> None:
        """SIGKILL to the run's process group: the Python process and its Spark JVM at once."""
        from sbit_lib.spark.runlock import JobLock, job_dir, wait_for_jvm

        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=60)
        self._reader.join(timeout=10)
        # The JVM, if it had its own group: the disk is inspected only once it has stopped writing.
        wait_for_jvm(JobLock._record(job_dir(self.config) / "lock"), timeout_s=60, poll_s=0.05)

    def freeze(self, timeout_s: float = 30) -> None:
        """SIGSTOP to the run's process group; return once every thread of it has stopped, so
        the files can be looked at with nothing more written, not even a write under way."""
        deadline = time.monotonic() + timeout_s
        while True:
            # Sent again on every look: a process the JVM started while the first one was being
            # delivered (a helper of Hadoop's shell commands) may have missed it.
            os.killpg(self.process.pid, signal.SIGSTOP)
            running = _running_threads(self.process.pid)
            if not running:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"process group {self.process.pid} not stopped {timeout_s} s after SIGSTOP; "
                                   "still running (pid, thread, state): " + ", ".join(map(str, running[:10])))
            time.sleep(0.001)

    def resume(self) -> None:
        """SIGCONT to the run's process group: it goes on after :meth:`freeze`."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGCONT)

    def text(self) -> str:
        return "\n".join(line for _, line in self.lines)

    def tail(self, lines: int = 25) -> str:
        return "\n".join(line for _, line in self.lines[-lines:])

    def marks(self) -> list[tuple[float, str]]:
        """(seconds, phase) each time the output says a new phase began."""
        return marks(self.lines)


def _running_threads(pgid: int) -> list[tuple[str, str, str]]:
    """(pid, thread name, state) of every thread of process group `pgid` that has not stopped.

    Stopped are T and t, and so are ended threads (Z, X) and a thread in D whose process has a
    stopped child: a JVM starts a program with vfork, and the thread that did waits (in D) until
    the child runs on to its exec, which a child stopped first never does; it writes nothing meanwhile.
    """
    def read(stat: Path) -> tuple[str, list[str]]:
        try:
            text = stat.read_text()
            return text[text.index("(") + 1:text.rindex(")")], text.rsplit(")", 1)[1].split()  # state, ppid, pgrp
        except (OSError, ValueError, IndexError):
            return "", []                                       # ended meanwhile

    processes = {}                                             # pid: (state, ppid) of the group's processes
    for stat in Path("/proc").glob("[0-9]*/stat"):
        fields = read(stat)[1]
        if fields[2:3] == [str(pgid)]:
            processes[stat.parent.name] = (fields[0], fields[1])
    waiting_on_a_stopped_child = {ppid for state, ppid in processes.values() if state in "Tt"}
    running = []
    for pid in processes:
        for name, fields in map(read, Path(f"/proc/{pid}/task").glob("*/stat")):
            state = fields[0] if fields else "X"
            if state not in "TtZX" and not (state == "D" and pid in waiting_on_a_stopped_child):
                running.append((pid, name, state))
    return running


def marks(lines) -> list[tuple[float, str]]:
    """(seconds, phase) of each output line (seconds, text) that begins a phase (MARKERS)."""
    found = []
    for seconds, line in list(lines):
        for marker, phase in MARKERS:
            if line.startswith(marker):
                found.append((seconds, phase))
    return found


class _TimedLines(io.TextIOBase):
    """A stdout that keeps each line with the seconds since it was made: an in-process run's output."""

    def __init__(self):
        self.started, self.lines, self._part = time.monotonic(), [], ""

    def write(self, text: str) -> int:
        self._part += text
        *complete, self._part = self._part.split("\n")
        self.lines += [(time.monotonic() - self.started, line) for line in complete]
        return len(text)

    def marks(self) -> list[tuple[float, str]]:
        return marks(self.lines)


class _JobView:
    """What :meth:`StreamTest.wait_until_valid` asks of its job, for a :class:`RunProcess`."""

    def __init__(self, run: RunProcess):
        self.run, self.process, self.log_path = run, run.process, "(the output above)"

    def alive(self) -> bool:
        return self.run.alive()

    def log_tail(self) -> str:
        return self.run.tail()


# ---------------------------------------------------------------------------- what was running
def _planned(checkpoint: Path) -> list[int]:
    """Micro-batches whose offsets are logged but not committed."""
    try:
        offsets = [int(p.name) for p in (checkpoint / "offsets").iterdir() if p.name.isdigit()]
    except (FileNotFoundError, NotADirectoryError):
        return []
    return sorted(k for k in offsets if not (checkpoint / "commits" / str(k)).exists())


def _commits_since(table: Path, since: float) -> list[tuple[int, str]]:
    """(version, operation) of the table's commits written at or after `since` (a file time)."""
    found = []
    for commit in (table / "_delta_log").glob("*.json"):
        if commit.stem.isdigit() and commit.stat().st_mtime >= since:
            operation = "?"
            for line in commit.read_text().splitlines():
                info = json.loads(line).get("commitInfo")
                if info:
                    operation = info.get("operation", "?")
            found.append((int(commit.stem), operation))
    return sorted(found)


def _mtime(path: Path) -> float | None:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return None


def _committed_since(table: Path, since: float) -> bool:
    """True when a Delta commit of the table was written at or after `since` (a file time)."""
    return any(commit.stem.isdigit() and (_mtime(commit) or 0) >= since
               for commit in (table / "_delta_log").glob("*.json"))


def _data_files_since(table: Path, since: float) -> int:
    """How many data files (Parquet, outside the Delta log) were written in `table` at or after
    `since`: a write's files are in place before its Delta commit names them."""
    return sum(1 for path in table.rglob("*.parquet")
               if "_delta_log" not in path.relative_to(table).parts and (_mtime(path) or 0) >= since)


def disk_state(config: Config) -> str:
    """What the files say was in flight: tables cut short in set-up, micro-batches planned not committed
    (nothing written yet, data files written without their Delta commit, or the Delta commit written
    without the checkpoint's)."""
    from sbit_lib.course.catalog import has_commit

    created = [t.name for t in ALL_TABLES if has_commit(config.table_location(t.name))]
    cut = [t.name for t in ALL_TABLES if (config.table_location(t.name) / "_delta_log").is_dir()
           and t.name not in created]
    notes = []
    if len(created) < len(ALL_TABLES):
        notes.append(f"{len(created)}/{len(ALL_TABLES)} tables created"
                     + (f", {len(cut)} cut short ({', '.join(cut)})" if cut else ""))
    if config.checkpoint_zone.is_dir():
        for checkpoint in sorted(config.checkpoint_zone.iterdir()):
            for batch in _planned(checkpoint):
                since = (checkpoint / "offsets" / str(batch)).stat().st_mtime
                table = config.table_location(checkpoint.name)
                written = _commits_since(table, since)
                files = _data_files_since(table, since) if not written else 0
                if written:
                    what = ", ".join(f"v{v} {op}" for v, op in written)
                    notes.append(f"{checkpoint.name} batch {batch}: written ({what}), checkpoint commit missing")
                elif files:
                    notes.append(f"{checkpoint.name} batch {batch}: {files} data file(s) written, no Delta commit")
                else:
                    notes.append(f"{checkpoint.name} batch {batch}: planned, not written")
    return "; ".join(notes)


# ---------------------------------------------------------------------------- kill moments chosen by phase
SILVER_TABLES = tuple(t.name for t in ALL_TABLES if t.layer == "silver")


def _silver_batches(config: Config):
    """(table, batch, its offsets file's time) of every silver micro-batch planned and not committed."""
    for name in SILVER_TABLES:
        checkpoint = config.checkpoint_dir(name)
        for batch in _planned(checkpoint):
            since = _mtime(checkpoint / "offsets" / str(batch))
            if since is not None:
                yield name, batch, since


def _setup_under_way(marks: list, config: Config) -> str | None:
    """Set-up has begun and created some of the tables, not all."""
    from sbit_lib.course.catalog import has_commit

    if not any(name == "set-up" for _, name in marks):
        return None
    created = sum(1 for t in ALL_TABLES if has_commit(config.table_location(t.name)))
    return f"{created}/{len(ALL_TABLES)} tables created" if 0 < created < len(ALL_TABLES) else None


def _merge_writing(marks: list, config: Config) -> str | None:
    """A silver micro-batch's MERGE has written data files and not yet its Delta commit."""
    for name, batch, since in _silver_batches(config):
        table = config.table_location(name)
        files = _data_files_since(table, since)
        if files and not _committed_since(table, since):
            return f"{name} batch {batch}: {files} data file(s) written, no Delta commit"   # as disk_state says
    return None


def _merge_committed(marks: list, config: Config) -> str | None:
    """A silver micro-batch's MERGE is committed to its table, its checkpoint commit not yet written."""
    for name, batch, since in _silver_batches(config):
        written = _commits_since(config.table_location(name), since)
        if written and not (config.checkpoint_dir(name) / "commits" / str(batch)).exists():
            what = ", ".join(f"v{v} {op}" for v, op in written)
            return f"{name} batch {batch}: written ({what}), checkpoint commit missing"
    return None


# name: (what it is, the check: (the run's phase marks, its config) -> what was seen, or None)
TARGETS = {
    "set-up": ("set-up creating the tables", _setup_under_way),
    "merge": ("a silver MERGE in flight", _merge_writing),
    "commit": ("between a silver MERGE's Delta commit and its checkpoint commit", _merge_committed),
}


STARTING = "starting (Python, the Spark JVM, the catalog)"


def phase_at(run: RunProcess, seconds: float) -> str:
    """The phase the run's output says was running `seconds` after it started."""
    phase = STARTING
    for at, name in run.marks():
        if at <= seconds:
            phase = name
    return phase


# ---------------------------------------------------------------------------- the tables
def _plain(value, file_name: bool = False):
    """A value as compared: NaN equal to NaN, a file path cut to the file's name."""
    if isinstance(value, float) and math.isnan(value):
        return "NaN"
    if file_name and isinstance(value, str):
        return value.rsplit("/", 1)[-1]
    return value


def read_delta(location: Path) -> tuple[list[str], Counter]:
    """A Delta table's current rows, read without Spark: ([column type], multiset of row tuples).

    The table is what its JSON commits say: the files added and not removed since, read with
    pyarrow, partition values from the log. Tables whose protocol needs more (deletion
    vectors, column mapping: reader version 2 or more) are refused, not misread. Without the
    wall-clock columns (VOLATILE); file columns hold the file's name only.
    """
    import urllib.parse

    import pyarrow.parquet as pq

    log = location / "_delta_log"
    versions = sorted(int(p.stem) for p in log.glob("*.json") if p.stem.isdigit() and len(p.stem) == 20)
    if versions != list(range(len(versions))) or not versions:
        raise RuntimeError(f"{log}: commits {versions[:3]}...{versions[-3:]} are not 0..n in a row")
    files: dict[str, dict] = {}
    schema, partitions = None, []
    for version in versions:
        for line in (log / f"{version:020d}.json").read_text().splitlines():
            action = json.loads(line)
            if "protocol" in action and action["protocol"].get("minReaderVersion", 1) > 1:
                raise RuntimeError(f"{location}: reader version {action['protocol']['minReaderVersion']} "
                                   "(deletion vectors or column mapping): read it with Spark")
            if "metaData" in action:
                schema = json.loads(action["metaData"]["schemaString"])["fields"]
                partitions = action["metaData"].get("partitionColumns", [])
            elif "add" in action:
                files[action["add"]["path"]] = action["add"].get("partitionValues") or {}
            elif "remove" in action:
                files.pop(action["remove"]["path"], None)
    columns = [(f["name"], f["type"]) for f in schema if f["name"] not in VOLATILE]
    rows: Counter = Counter()
    for path, values in files.items():
        data = pq.read_table(location / urllib.parse.unquote(path)).to_pydict()
        count = len(next(iter(data.values()), []))
        picked = []
        for name, kind in columns:
            if name in partitions:
                value = values.get(name)
                if value is not None and kind != "string":
                    raise RuntimeError(f"{location}: partition column {name} of type {kind} is not supported")
                picked.append([value] * count)
            else:
                picked.append(data.get(name, [None] * count))   # a column added later: NULL in older files
        for row in zip(*picked):
            rows[tuple(_plain(v, name in FILE_COLUMNS) for v, (name, _) in zip(row, columns))] += 1
    return [f"{name} {kind}" for name, kind in columns], rows


def snapshot(spark, config: Config) -> dict[str, tuple[list[str], Counter]]:
    """Every table of ALL_TABLES (read from its files, :func:`read_delta`) and the gym_summary view
    (a query: it lives in the catalog): ([column type], multiset of rows)."""
    from sbit_lib.course.catalog import register_tables

    tables = {t.name: read_delta(config.table_location(t.name)) for t in ALL_TABLES}
    register_tables(spark, config)
    view = spark.table(config.qualified(GYM_SUMMARY))
    tables[GYM_SUMMARY] = ([f"{c} {t}" for c, t in view.dtypes],
                           Counter(tuple(_plain(v) for v in row) for row in view.collect()))
    return tables


def differences(expected: dict, actual: dict, show: int = 5) -> list[str]:
    """One message per table that differs between two snapshots (empty when they are equal)."""
    problems = []
    for name, (columns, rows) in expected.items():
        if name not in actual:
            problems.append(f"{name}: missing")
            continue
        other_columns, other = actual[name]
        if other_columns != columns:
            problems.append(f"{name}: columns {other_columns}, the baseline has {columns}")
            continue
        if other == rows:
            continue
        lost, extra = rows - other, other - rows
        lines = [f"{name}: {sum(other.values()):,} rows, the baseline has {sum(rows.values()):,}; "
                 f"{sum(lost.values()):,} of the baseline's missing, {sum(extra.values()):,} not in it "
                 f"(columns {', '.join(columns)})"]
        lines += [f"    missing {row}" + (f" x{n}" if n > 1 else "") for row, n in list(lost.items())[:show]]
        lines += [f"    extra   {row}" + (f" x{n}" if n > 1 else "") for row, n in list(extra.items())[:show]]
        problems.append("\n".join(lines))
    return problems


def validate(spark, config: Config, n: int = SETS[-1]) -> str | None:
    """Validate every layer against the expected results; None when valid, else the error."""
    from sbit_lib.course.catalog import register_tables
    from sbit_lib.course.run import validate_every_layer
    from sbit_lib.testing.validation import ValidationError

    register_tables(spark, config)
    output = io.StringIO()
    try:
        with contextlib.redirect_stdout(output):
            validate_every_layer(config, spark, n)
    except (ValidationError, AssertionError) as err:
        return f"{err}\n{output.getvalue()[-2000:]}"
    return None


# ---------------------------------------------------------------------------- the test
def kill_window(marks: list, span_s: float, from_setup: bool = False) -> tuple[float, float]:
    """The fractions of `span_s` the kill moments are drawn from, given the baseline's phase marks.

    No moment after the gold layer's end, the last write (in a batch run; the stream job has no
    end): what follows is the process exiting, which a quicker trial run may have done by then.
    `from_setup`: no moment before set-up began either (while Python and the JVM start nothing
    is written).
    """
    end_at = next((at for at, name in marks if name == END_OF_RUN), None)
    high = min(end_at / span_s, 1.0) if end_at else 1.0
    low = 0.0
    if from_setup:
        setup_at = next((at for at, name in marks if name == "set-up"), 0.0)
        low = min(setup_at / span_s, 0.9 * high)
    return low, high


def _exit(code: int | None) -> str:
    return f"signal {-code}" if code is not None and code < 0 else f"exit {code}"


@dataclass
class Trial:
    """What one trial did and found."""

    number: int
    fraction: float = math.nan
    anchor: str = STARTING      # the kill comes `offset_s` after this phase began (STARTING: the start)
    offset_s: float = 0.0
    within_phase: bool = False  # ... or, if sooner, when the phase after `anchor` begins (drawn moments)
    target: str = ""            # else a TARGETS name: the kill comes when the run is seen there
    seen: str = ""              # what the target's check saw
    delay_s: float = 0.0        # when it came, seconds after the start
    phase: str = ""
    state: str = ""
    killed: bool = False        # by this trial's SIGKILL (not: ended, or failed, by itself)
    exit_code: int | None = None
    rerun_s: float = 0.0
    check_s: float = 0.0
    repaired: int = 0
    problems: list = field(default_factory=list)
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return self.killed and not self.problems

    def moment(self) -> str:
        """The kill moment planned: the seed's fraction (or a delay), or a target and what was seen."""
        if self.target:
            return f"at {self.target}: {self.seen or 'never seen'}"
        return (("" if math.isnan(self.fraction) else f"{self.fraction:.3f}: ") + f"{self.offset_s:.1f} s into "
                + ("the run" if self.anchor == STARTING else self.anchor))

    def line(self) -> str:
        if self.killed:
            state = f" [{self.state}]" if self.state else ""
            what = f"kill at {self.delay_s:5.1f} s ({self.moment()}) in {self.phase}{state}"
        else:
            what = (f"NOT KILLED: the run ended by itself ({_exit(self.exit_code)}) at {self.delay_s:5.1f} s, "
                    f"before its kill moment ({self.moment()})")
        repaired = f", {self.repaired} table log(s) repaired" if self.repaired else ""
        verdict = "PASS" if self.passed else "FAIL"
        return (f"trial {self.number:>2}: {what}; "
                f"rerun {self.rerun_s:.1f} s{repaired}, checks {self.check_s:.1f} s; {verdict} ({self.seconds:.0f} s)")

    def report(self) -> str:
        return self.line() + "".join(f"\n  {p}" for p in self.problems)


class FaultTest:
    """The baseline and the trials of one seed, in `home` (a fresh folder of environments).

    `command` runs instead of ``sbit run`` in the trials and their reruns (the tests' stand-ins).
    """

    def __init__(self, home: Path, seed: int, spark=None, stream: bool = False, span_s: float | None = None,
                 from_setup: bool = False, keep: bool = False, validate_each: bool = False,
                 baseline_in_process: bool = False, command: list | None = None):
        self.home = Path(home).resolve()
        self.command = command
        self.seed, self.stream, self.keep, self.validate_each = seed, stream, keep, validate_each
        self.baseline_in_process = baseline_in_process and not stream
        self.span_s, self.from_setup = span_s, from_setup
        self.window = (0.0, 1.0)
        self.data = self.home / "data"
        self.spark = spark
        self.baseline: dict | None = None
        self.baseline_marks: list = []
        self.baseline_s = 0.0

    def fraction(self, number: int) -> float:
        """Trial `number`'s kill moment, as a fraction of the span: the seed's draw, in the window."""
        low, high = self.window
        return low + (high - low) * random.Random(f"sbit-fault/{self.seed}/{number}").random()

    def moment(self, number: int) -> tuple[float, str, float]:
        """(fraction, phase, seconds into it) of trial `number`'s kill.

        The fraction is a moment of the baseline's run; the kill comes as long after the same
        phase began in the trial's run as it did in the baseline's, so a busier or a quieter
        machine shifts it with its phase instead of past the end of the run.
        """
        fraction = self.fraction(number)
        at = fraction * self.span_s
        anchor, began = STARTING, 0.0
        for seconds, name in self.baseline_marks:
            if seconds <= at:
                anchor, began = name, seconds
        return fraction, anchor, at - began

    def config(self, environment: str) -> Config:
        return Config.resolve(environment=environment, home=self.home, test_data=self.data, mode="default",
                              as_of=AS_OF)

    def _fresh(self, environment: str) -> Config:
        """A new environment with sets 1-2 landed (anything of an earlier one of that name removed)."""
        from sbit_lib.course.producer import Producer

        config = self.config(environment)
        self._remove(config)
        with contextlib.redirect_stdout(io.StringIO()):
            for n in SETS:
                Producer(config).produce(n)
        return config

    def _remove(self, config: Config) -> None:
        from sbit_lib.spark.runlock import job_dir

        if self.spark is not None:
            self.spark.sql(f"DROP DATABASE IF EXISTS {config.db_name} CASCADE")   # external tables: no file
        shutil.rmtree(config.env_root, ignore_errors=True)
        shutil.rmtree(job_dir(config), ignore_errors=True)

    def _session(self, config: Config):
        if self.spark is None:
            from sbit_lib.course.catalog import get_spark

            self.spark = get_spark(config)
        return self.spark

    # -- the pipeline until it is done ----------------------------------------------------
    def _complete(self, config: Config) -> tuple[RunProcess, float]:
        """Run the pipeline to its end in a new process: (the run, seconds it took)."""
        if self.stream:
            return self._complete_stream(config)
        if self.baseline_in_process and self.baseline is None:
            return self._complete_here(config)
        run = RunProcess(config, command=self.command)
        code = run.wait()
        if code != 0:
            raise RuntimeError(f"`sbit run --env {config.environment}` exited with {code}:\n{run.tail()}")
        return run, run.elapsed()

    def _complete_here(self, config: Config) -> tuple[_TimedLines, float]:
        """The baseline in this process's (warm) Spark session: no JVM to start, the same run() as `sbit run`."""
        from sbit_lib.course.run import run

        output = _TimedLines()
        with contextlib.redirect_stdout(output):
            run(config, spark=self._session(config))
        return output, time.monotonic() - output.started

    def _complete_stream(self, config: Config) -> tuple[RunProcess, float]:
        """Start the stream job, wait until every table equals the expected results, stop it."""
        from sbit_lib.course.catalog import register_tables
        from sbit_lib.ops.job import request_stop
        from sbit_lib.ops.stream_test import StreamTest

        run = RunProcess(config, stream=True, command=self.command)
        try:
            check = StreamTest(config, processing_time="1 second", timeout_s=RUN_TIMEOUT_S,
                               spark=self._session(config))
            check.job = _JobView(run)
            deadline = time.monotonic() + RUN_TIMEOUT_S
            while not any(line.startswith("Streaming ") for _, line in run.lines):
                if not run.alive() or time.monotonic() > deadline:
                    raise RuntimeError(f"the stream job did not start its queries:\n{run.tail()}")
                time.sleep(0.2)
            with contextlib.redirect_stdout(io.StringIO()):
                register_tables(self.spark, config)
                check.wait_until_valid(SETS[-1], deadline)
        except BaseException:
            run.kill()          # nothing of a failed trial keeps running
            raise
        seconds = run.elapsed()
        request_stop(config, timeout_s=180)
        code = run.wait()
        if code != 0:
            raise RuntimeError(f"the stream job of {config.environment} exited with {code}:\n{run.tail()}")
        return run, seconds

    # -- baseline and trials ------------------------------------------------------------------
    def prepare(self) -> None:
        """The data set, then the baseline run, its snapshot and its validation."""
        started = time.monotonic()
        make_data(self.data)
        print(f"Data set: sets {SETS[0]}-{SETS[-1]} in {self.data} "
              f"({sum(1 for _ in open(self.data / '3-bpm_1.json'))} + "
              f"{sum(1 for _ in open(self.data / '3-bpm_2.json'))} heart-rate readings), "
              f"expected results computed ({time.monotonic() - started:.1f} s)", flush=True)
        config = self._fresh("fault_base")
        spark = self._session(config)
        run, self.baseline_s = self._complete(config)
        self.baseline_marks = run.marks()
        self.span_s = self.span_s or self.baseline_s
        self.window = kill_window(self.baseline_marks, self.span_s, self.from_setup)
        checking = time.monotonic()
        self.baseline = snapshot(spark, config)
        snapshot_s = time.monotonic() - checking
        problem = validate(spark, config)
        if problem:
            raise RuntimeError(f"the baseline itself is not valid: {problem}")
        phases = ", ".join(f"{name} {at:.1f} s" for at, name in self.baseline_marks)
        how = "run() in this process" if self.baseline_in_process else f"`sbit run{' --stream' if self.stream else ''}`"
        print(f"Baseline: {how} took {self.baseline_s:.1f} s "
              f"({phases}); {len(self.baseline)} tables and views, "
              f"{sum(sum(rows.values()) for _, rows in self.baseline.values()):,} rows (read in {snapshot_s:.1f} s), "
              f"valid against the expected results (checked in {time.monotonic() - checking - snapshot_s:.1f} s)",
              flush=True)
        print(f"Kill moments: fractions of {self.span_s:.1f} s in [{self.window[0]:.2f}, {self.window[1]:.2f})",
              flush=True)

    def plan(self, number: int, delay_s: float | None = None, at: str | None = None) -> Trial:
        """Trial `number` with its kill moment: when the run is seen at target `at`, else `delay_s`
        seconds after the start, else the seed's moment (:meth:`moment`)."""
        if at is not None:
            if at not in TARGETS:
                raise ValueError(f"no kill target {at!r}; known: {', '.join(TARGETS)}")
            return Trial(number, target=at)
        if delay_s is not None:
            return Trial(number, delay_s / self.span_s if self.span_s else math.nan, STARTING, delay_s)
        return Trial(number, *self.moment(number), within_phase=True)

    def trial(self, number: int, delay_s: float | None = None, at: str | None = None) -> Trial:
        """Kill one run at its moment (:meth:`plan`), run again, compare with the baseline."""
        started = time.monotonic()
        trial = self.plan(number, delay_s, at)
        config = self._fresh(f"fault_{at.replace('-', '')}" if at else f"fault_{number:02d}")
        self.interrupt(trial, config)
        self.check(trial, config)
        trial.seconds = time.monotonic() - started
        if trial.passed and not self.keep:
            self._remove(config)
        elif not trial.passed:
            trial.problems.append(f"environment kept: {config.env_root}")
        return trial

    @staticmethod
    def _due(trial: Trial, run: RunProcess) -> bool:
        """Has the trial's clock moment come: `offset_s` after its anchor phase began in this run (or,
        `within_phase`, the next phase has begun already)?"""
        marks = run.marks()
        if trial.anchor == STARTING:
            began, after = 0.0, marks
        else:
            at = next((i for i, (_, name) in enumerate(marks) if name == trial.anchor), None)
            if at is None:
                return False
            began, after = marks[at][0], marks[at + 1:]
        if trial.within_phase and any(name != trial.anchor for _, name in after):
            return True
        return run.elapsed() >= began + trial.offset_s

    def _at_target(self, trial: Trial, run: RunProcess, config: Config) -> bool:
        """Is the run where the trial's target wants it? Once seen, the run is frozen and looked at
        again: still there, it stays frozen for its kill; gone on meanwhile, it is resumed."""
        check = TARGETS[trial.target][1]
        if not check(run.marks(), config):
            return False
        run.freeze()
        trial.seen = check(run.marks(), config) or ""
        if not trial.seen:
            run.resume()
        return bool(trial.seen)

    def interrupt(self, trial: Trial, config: Config) -> RunProcess:
        """Start the run in `config`'s environment, SIGKILL it at the trial's moment and record what was
        running then; a run that ended by itself before (finished, or failed) is recorded as a problem."""
        run = RunProcess(config, stream=self.stream, command=self.command)
        try:
            while run.alive():
                due = self._at_target(trial, run, config) if trial.target else self._due(trial, run)
                if due:
                    break
                if run.elapsed() > RUN_TIMEOUT_S:
                    raise TimeoutError(f"trial {trial.number}: its kill moment ({trial.moment()}) did not come "
                                       f"within {RUN_TIMEOUT_S} s; the run's output:\n{run.tail()}")
                time.sleep(POLL_S)
        except BaseException:
            run.kill()          # nothing of a failed trial keeps running (or stays frozen)
            raise
        trial.delay_s = run.elapsed()
        alive = run.alive()
        run.kill()
        trial.exit_code = run.process.returncode
        trial.killed = alive and trial.exit_code == -signal.SIGKILL
        if trial.killed:
            trial.phase = phase_at(run, trial.delay_s)
            trial.state = disk_state(config)
        elif trial.exit_code == 0:
            trial.phase = "not killed"
            trial.problems.append(
                f"not killed: the run finished by itself after {trial.delay_s:.1f} s, before its kill moment "
                f"({trial.moment()}); nothing was interrupted, so this trial tested nothing")
        else:
            trial.phase = "not killed"
            trial.problems.append(
                f"not killed: the run failed by itself ({_exit(trial.exit_code)}) after {trial.delay_s:.1f} s, "
                f"before its kill moment ({trial.moment()}); its output:\n{run.tail()}")
        return run

    def check(self, trial: Trial, config: Config) -> None:
        """Run the pipeline again in `config`'s environment, to its end in a new process, and compare
        every table with the baseline's. What it finds is added to the trial's problems: a problem
        recorded before (the run not killed, say) stays, however equal the tables are."""
        try:
            rerun, trial.rerun_s = self._complete(config)
        except Exception as err:  # noqa: BLE001 - a failed rerun is the trial's result
            trial.problems.append(f"the rerun failed: {err}")
            return
        trial.repaired = rerun.text().count("removed the Delta log of a create cut short")
        checking = time.monotonic()
        try:
            trial.problems += self.compare(config)
        except Exception as err:  # noqa: BLE001 - tables that cannot be read are the trial's result
            trial.problems.append(f"the comparison failed: {err}")
        trial.check_s = time.monotonic() - checking

    def compare(self, config: Config) -> list[str]:
        """What differs between `config`'s tables and the baseline's (and, `validate_each`, from the
        expected results): one message per difference, none when equal."""
        problems = differences(self.baseline, snapshot(self.spark, config))
        if not problems and self.validate_each:
            problem = validate(self.spark, config)
            problems += [f"not valid: {problem}"] if problem else []
        return problems

    def replay(self, trials: int, only: list[int] | None = None, at: list[str] | None = None) -> str:
        """The command that runs the same trials again: the seed's 1..`trials`, or `only` those, or the
        kills at the targets `at`."""
        if at:
            which = f"--at {','.join(at)}"
        else:
            which = f"--seed {self.seed} " + (f"--only {','.join(map(str, only))}" if only else f"--trials {trials}")
        return (f"python -m sbit_lib.ops.fault {which}"
                + (" --stream" if self.stream else "") + (" --from-setup" if self.from_setup else ""))

    def run(self, trials: int, only: list[int] | None = None, delays: list[float] | None = None,
            at: list[str] | None = None) -> list[Trial]:
        """The baseline, then the trials (1..trials, or `only` those; or one per delay in `delays`, or
        one per target in `at`), each printed as it ends."""
        if at:
            plan = [(n, None, target) for n, target in enumerate(at, start=1)]
        elif delays:
            plan = [(n, delay, None) for n, delay in enumerate(delays, start=1)]
        else:
            plan = [(n, None, None) for n in only or range(1, trials + 1)]
        print(f"Fault test: seed {self.seed}, {len(plan)} trial(s), "
              f"{'stream job' if self.stream else 'batch run'}; replay: {self.replay(trials, only, at)}", flush=True)
        if self.baseline is None:
            self.prepare()
        results = []
        for number, delay, target in plan:
            result = self.trial(number, delay, target)
            print(result.report(), flush=True)
            results.append(result)
        return results


def summary(results: list[Trial], seed: int, baseline_s: float) -> str:
    failed = [r for r in results if not r.passed]
    phases = Counter(r.phase for r in results)
    each = [r.seconds for r in results]
    return (f"Fault test, seed {seed}: {len(results) - len(failed)} passed, {len(failed)} failed "
            f"(baseline {baseline_s:.1f} s; a trial {min(each, default=0):.0f}-{max(each, default=0):.0f} s, "
            f"{sum(each) / max(len(each), 1):.0f} s on average)\n"
            f"  killed in: {', '.join(f'{p} x{n}' for p, n in phases.most_common())}"
            + "".join(f"\n  failed: trial {r.number} ("
                      + (f"kill at {r.delay_s:.1f} s" if r.killed else "not killed") + ")" for r in failed))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sbit_lib.ops.fault", description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20, help="how many kills (default 20)")
    parser.add_argument("--seed", type=int, help="seed of the kill moments (default: a random one, printed)")
    parser.add_argument("--only", help="run only these trials of the seed, e.g. 3,7 (replaying a failure)")
    parser.add_argument("--delays", help="kill at these seconds after the start instead, e.g. 12.5,40 (one trial each)")
    parser.add_argument("--at", help="kill when the run is seen at these moments instead, one trial each: "
                        f"{', '.join(f'{name} ({what})' for name, (what, _) in TARGETS.items())}")
    parser.add_argument("--stream", action="store_true", help="kill the stream job instead of a batch run")
    parser.add_argument("--span", type=float, help="seconds the kill moments are spread over "
                        "(default: the baseline's duration)")
    parser.add_argument("--home", help="folder for the environments (default: a new temporary one)")
    parser.add_argument("--keep", action="store_true", help="keep every environment (failed ones are always kept)")
    parser.add_argument("--from-setup", action="store_true",
                        help="draw no kill moment before the baseline's set-up began (Python and the JVM starting)")
    parser.add_argument("--validate-each", action="store_true",
                        help="validate every trial against the expected results too (the baseline always is, "
                             "and each trial must equal it)")
    args = parser.parse_args(argv)
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1, 10**6)
    home = Path(args.home) if args.home else Path(tempfile.mkdtemp(prefix="sbit-fault-"))
    only = [int(n) for n in args.only.split(",")] if args.only else None
    delays = [float(d) for d in args.delays.split(",")] if args.delays else None
    at = args.at.split(",") if args.at else None
    unknown = [name for name in at or [] if name not in TARGETS]
    if unknown:
        parser.error(f"--at {','.join(unknown)}: no such moment; known: {', '.join(TARGETS)}")
    test = FaultTest(home, seed, stream=args.stream, span_s=args.span, from_setup=args.from_setup, keep=args.keep,
                     validate_each=args.validate_each)
    started = time.monotonic()
    results = test.run(args.trials, only, delays, at)
    print(summary(results, seed, test.baseline_s))
    print(f"Total {time.monotonic() - started:.0f} s; environments in {home}")
    failed = any(not r.passed for r in results)
    if not failed and not args.keep and not args.home:
        shutil.rmtree(home, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
