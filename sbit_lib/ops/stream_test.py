"""The course's 09-stream-test, locally: a stream job fed set by set, every layer validated.

The course starts a Databricks job that runs 07-run in stream mode, lands a set,
sleeps two minutes and validates. Here the job is a background process
(:func:`sbit_lib.ops.job.start_job`), and instead of sleeping the test *polls*: after
landing set n it re-checks each table when it gets a new Delta version, and moves on as
soon as every layer equals the expected results.

Each check tells "not there yet" from "wrong" (:mod:`sbit_lib.testing.validation`): a
table with fewer rows, missing expected rows or the previous set's values is still
catching up, and is checked again at its next version (the test fails after
``timeout_s``, naming what is still behind); a table with a row the reference never
produces, a duplicate key, a value that differs for an expected key, more rows than
expected or a wrong column type fails the test at once, with the difference.

Freshness — the seconds from ``produce(n)`` returning to the first check that finds
every layer complete for set n — and the job's peak resident memory are recorded per
set and printed by :meth:`StreamTest.summary`.
"""

from __future__ import annotations

import contextlib
import io
import statistics
import time
from dataclasses import dataclass, field

from sbit_lib.course.config import Config
from sbit_lib.course.tables import ALL_TABLES, QUARANTINE

FRESHNESS_TARGET_S = 20.0
LAYERS = (
    ("bronze", ("registered_users_bz", "gym_logins_bz", "kafka_multiplex_bz")),
    ("silver", ("users", "gym_logs", "user_profile", "workouts", "heart_rate", "user_bins",
                "completed_workouts", "workout_bpm")),
    ("gold", ("workout_bpm_summary", "gym_summary")),
)


# A view has no Delta version of its own: it changes when one of these does.
VIEW_SOURCES = {"gym_summary": ("users", "completed_workouts", "gym_logs")}
DEFERRED = "deferred"   # check_one: the check is left for when every other table is complete


class StreamTestError(AssertionError):
    """The stream test failed: the message names the set, the layer and the table behind."""


@dataclass
class SetResult:
    """What feeding one set measured."""

    set: int
    freshness_s: float
    checks: int
    peak_rss_mb: float | None
    rss_mb: float | None
    state_rows: int

    def row(self) -> dict:
        return {"set": self.set, "freshness_s": round(self.freshness_s, 1), "checks": self.checks,
                "peak_rss_mb": self.peak_rss_mb, "rss_mb": self.rss_mb, "state_rows": self.state_rows}


@dataclass
class StreamTest:
    """Start a stream job on a clean environment, feed it sets, validate, stop it."""

    config: Config
    processing_time: str = "1 second"
    timeout_s: float = 300.0
    spark: object = None
    results: list[SetResult] = field(default_factory=list)
    job: object = None

    def __post_init__(self):
        from sbit_lib.course.catalog import get_spark
        from sbit_lib.course.streaming import check_processing_time
        from sbit_lib.testing.expectations import Expectations

        self.processing_time = check_processing_time(self.processing_time)   # before anything is cleaned
        self.spark = self.spark or get_spark(self.config)
        self.expected = Expectations.load(self.config.test_data)
        self._counts: dict = {}
        self._valid: dict = {}     # table -> (set, state) it was last found valid at
        self.behind: list[str] = []   # what the last check found still behind
        self.complete_at: float = 0.0  # when the last check found every count complete

    # ------------------------------------------------------------------ the job
    def start(self, clean: bool = True) -> dict:
        """(Clean the environment and) start the job; return its first 'running' status."""
        from sbit_lib.course.catalog import register_tables
        from sbit_lib.course.setup_helper import SetupHelper
        from sbit_lib.ops.job import start_job

        if clean:
            SetupHelper(self.config, self.spark).cleanup()
        self.job = start_job(self.config, self.processing_time, stop_at_exit=True)
        print(f"Stream job started: pid {self.job.pid}, trigger every {self.processing_time}, "
              f"log {self.job.log_path}")
        status = self.job.wait_running(self.timeout_s)   # polls the job's status file
        print(f"Its {len(status['queries'])} queries are running")
        register_tables(self.spark, self.config)    # the job created them after this session started
        return status

    def validate_setup(self) -> None:
        """The job created the tables and loaded the history: check both from this process."""
        from sbit_lib.course.history import HistoryLoader
        from sbit_lib.course.setup_helper import SetupHelper

        SetupHelper(self.config, self.spark).validate()
        HistoryLoader(self.config, self.spark).validate()

    def stop(self, timeout_s: float = 180.0) -> dict:
        """Ask the job to stop; check it exited 0 and stopped every query; return its last status."""
        code = self.job.stop(timeout_s)
        status = self.job.status() or {}
        if code != 0 or status.get("state") != "stopped":
            raise StreamTestError(f"the stream job ended with exit code {code}, state {status.get('state')!r}; "
                                  f"log {self.job.log_path}:\n{self.job.log_tail()}")
        if any(q["active"] for q in status["queries"]):
            raise StreamTestError(f"queries still active after the stop: {status['queries']}")
        print(f"Stream job stopped cleanly (exit 0, {len(status['queries'])} queries stopped)")
        return status

    # ------------------------------------------------------------------ one set
    def feed(self, n: int) -> SetResult:
        """Land set n, wait until every layer equals the expected results, record freshness."""
        from sbit_lib.course.producer import Producer

        with contextlib.redirect_stdout(io.StringIO()):
            Producer(self.config).produce(n)
        landed = time.monotonic()
        fresh_at, checks = self.wait_until_valid(n, landed + self.timeout_s)
        status = self.job.status() if self.job else None
        memory = (status or {}).get("memory") or {}
        state_rows = sum(q.get("state_rows") or 0 for q in (status or {}).get("queries", []))
        result = SetResult(n, fresh_at - landed, checks, memory.get("peak_rss_mb"), memory.get("rss_mb"),
                           state_rows)
        self.results.append(result)
        print(f"Set {n} validated: every layer equals the expected results {result.freshness_s:.1f} s "
              f"after it landed ({checks} checks); job memory {result.rss_mb} MiB, peak {result.peak_rss_mb} MiB")
        return result

    def _versions(self) -> dict[str, int]:
        """The latest Delta version of every table, from its log folder (no Spark needed)."""
        versions = {}
        for table in ALL_TABLES:
            log = self.config.table_location(table.name) / "_delta_log"
            try:
                commits = [int(e.name[:-5]) for e in log.iterdir()
                           if e.name.endswith(".json") and e.name[:-5].isdigit()]
            except FileNotFoundError:
                commits = []
            versions[table.name] = max(commits, default=-1)
        return versions

    def _count(self, table: str, version: int, **where) -> int:
        """Rows of `table` at `version` (a Delta version never changes, so each is counted once)."""
        key = (table, version, tuple(sorted(where.items())))
        if key not in self._counts:
            df = (self.spark.read.format("delta").option("versionAsOf", version)
                  .load(str(self.config.table_location(table))))
            for column, value in where.items():
                df = df.where(df[column] == value)
            self._counts[key] = df.count()
        return self._counts[key]

    def _state(self, table: str, versions: dict[str, int]):
        """What a table's content depends on: its Delta version (a view: its sources' versions)."""
        return tuple(versions.get(t, -1) for t in VIEW_SOURCES.get(table, (table,)))

    def _bronze_count(self, n: int, table: str, versions: dict[str, int]) -> None:
        """Bronze by row count: fewer than expected is 'not yet', more is wrong.

        The expected count is the reference's (the landed lines, less those it finds
        unparsable), not the landed count less this pipeline's own quarantine: a good
        record quarantined by mistake keeps the table short and fails at the deadline.
        """
        from sbit_lib.testing.validation import IncompleteError, ValidationError

        expected = self.expected.table(self.config.mode, n, table).count
        found = self._count(table, versions[table])
        if found > expected:
            raise ValidationError(f"{table} has {found:,} rows, only {expected:,} records were landed "
                                  "(less the unparsable ones)")
        if found < expected:
            raise IncompleteError(f"{table}: not there yet: {found:,} rows, {expected:,} expected")

    def check_one(self, n: int, layer: str, table: str, versions: dict[str, int],
                  defer: bool = False) -> str | None:
        """Check one table at `versions`: None when valid, what is behind when it is not there yet.

        Raises :class:`StreamTestError` at once, with the difference, when the table is wrong.
        Row counts come first (cheap, once per Delta version): fewer rows than expected is
        "not there yet"; the rows are compared once the count is reached (or exceeded). A
        table found valid is not read again until its version (a view: its sources') changes.
        With `defer`, heart_rate's row hash (seconds for a few million rows) is left for
        later: returns :data:`DEFERRED`.
        """
        from sbit_lib.testing.validation import IncompleteError, ValidationError, check_table

        state = (n, self._state(table, versions))
        if self._valid.get(table) == state:
            return None
        if table not in VIEW_SOURCES and versions.get(table, -1) < 0:
            return f"{layer}: {table} does not exist yet"
        try:
            if layer == "bronze":
                self._bronze_count(n, table, versions)
            else:
                expectation = self.expected.table(self.config.mode, n, table)
                if expectation.exact and table not in VIEW_SOURCES:
                    found = self._count(table, versions[table])
                    if found < expectation.count:
                        raise IncompleteError(f"{table}: not there yet: {found:,} rows, {expectation.count:,} expected")
                    if defer and table == "heart_rate" and found == expectation.count:
                        return DEFERRED
                with contextlib.redirect_stdout(io.StringIO()):
                    check_table(self.spark, self.config, n, table, self.expected, quick=True)
        except IncompleteError as err:
            return f"{layer}: {str(err).splitlines()[0]}"
        except ValidationError as err:
            raise StreamTestError(f"set {n}: {layer}: {table} is wrong (not merely behind):\n{err}") from err
        self._valid[table] = state
        return None

    def check(self, n: int, versions: dict[str, int]) -> str | None:
        """Check every table (:meth:`check_one`); return the first that is still behind, or None.

        Every table is checked even when an earlier one is behind, so that a wrong one
        fails the test at once (:class:`StreamTestError`). When nothing is behind,
        :attr:`complete_at` is set, then heart_rate's row hash is compared.
        """
        from sbit_lib.course.bronze import Bronze
        from sbit_lib.testing.validation import ValidationError

        behind, deferred = [], []
        for layer, tables in LAYERS:
            for table in tables:
                verdict = self.check_one(n, layer, table, versions, defer=True)
                if verdict is DEFERRED:
                    deferred.append((layer, table))
                elif verdict:
                    behind.append(verdict)
            if layer == "bronze" and not behind:
                # every bronze count is right: the layer's own validation (per topic, dates) once per state
                state = (n, tuple(versions.get(t, -1) for t in tables + (QUARANTINE.name,)))
                if self._valid.get("bronze") != state:
                    try:
                        with contextlib.redirect_stdout(io.StringIO()):
                            Bronze(self.config, self.spark).validate(n)
                    except ValidationError as err:
                        raise StreamTestError(f"set {n}: bronze is wrong (not merely behind):\n{err}") from err
                    self._valid["bronze"] = state
        if not behind:
            self.complete_at = time.monotonic()
            behind += [v for v in (self.check_one(n, layer, t, versions) for layer, t in deferred) if v]
        self.behind = behind
        return behind[0] if behind else None

    def wait_until_valid(self, n: int, deadline: float) -> tuple[float, int]:
        """Poll until every layer is valid for set n; return (monotonic time it was seen, checks).

        Raises :class:`StreamTestError` at once when a table is wrong, after `deadline`
        when one is still behind.
        """
        seen, problem, checks = None, "no check has run yet", 0
        while time.monotonic() < deadline:
            if self.job is not None and not self.job.alive():
                raise StreamTestError(f"set {n}: the stream job died (exit code {self.job.process.returncode}); "
                                      f"log {self.job.log_path}:\n{self.job.log_tail()}")
            versions = self._versions()
            if versions != seen:       # nothing committed since the last check: nothing to re-check
                seen = versions
                checks += 1
                problem = self.check(n, versions)
                if problem is None:
                    return self.complete_at, checks
            time.sleep(0.2)
        raise StreamTestError(f"set {n} did not reach every layer within {self.timeout_s:.0f} s: "
                              f"still behind — {problem}")

    # ------------------------------------------------------------------ summary
    def summary(self) -> str:
        """A table of the sets fed: freshness against the target, memory, state rows."""
        if not self.results:
            return "No set was fed."
        lines = [f"Stream test of {self.config.db_name} ({self.config.mode} mode), trigger every "
                 f"{self.processing_time}, {len(self.results)} sets",
                 f"  {'set':>3} {'freshness s':>11} {'checks':>6} {'job RSS MiB':>11} {'peak RSS MiB':>12} "
                 f"{'state rows':>10}"]
        for r in self.results:
            lines.append(f"  {r.set:>3} {r.freshness_s:>11.1f} {r.checks:>6} {r.rss_mb or '-':>11} "
                         f"{r.peak_rss_mb or '-':>12} {r.state_rows:>10}")
        worst = max(r.freshness_s for r in self.results)
        median = statistics.median(r.freshness_s for r in self.results)
        met = "met" if worst <= FRESHNESS_TARGET_S else "NOT met"
        lines.append(f"Freshness: median {median:.1f} s, worst {worst:.1f} s per set; "
                     f"target <= {FRESHNESS_TARGET_S:.0f} s per set: {met} (the course budgets 120 s)")
        peaks = [r.peak_rss_mb for r in self.results if r.peak_rss_mb]
        if len(peaks) >= 2:
            lines.append(f"Peak job memory: {peaks[0]:.0f} MiB after set {self.results[0].set}, "
                         f"{peaks[-1]:.0f} MiB after set {self.results[-1].set}")
        return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """``make stream-test``: run notebooks/09-stream-test.ipynb with papermill and print what it printed."""
    import argparse

    import papermill

    from sbit_lib.course.config import PROJECT_ROOT
    from sbit_lib.ops.batch_test import BUILD, kernel_log, local_kernel, report

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--sets", type=int, default=2)
    parser.add_argument("--mode", default="default", choices=("default", "course"))
    parser.add_argument("--env", default="stream_test")
    parser.add_argument("--processing-time", default="1 second")
    args = parser.parse_args(argv)
    notebook = PROJECT_ROOT / "notebooks" / "09-stream-test.ipynb"
    output = BUILD / f"09-stream-test-{args.mode}.ipynb"
    output.parent.mkdir(parents=True, exist_ok=True)
    log = kernel_log(f"09-stream-test-{args.mode}")

    def execute():
        papermill.execute_notebook(str(notebook), str(output), progress_bar=False,
                                   cwd=str(notebook.parent), **local_kernel(log),
                                   parameters=dict(environment=args.env, sets=args.sets, mode=args.mode,
                                                   processing_time=args.processing_time))

    return report(execute, output, "stream test",
                  f"Stream test passed for sets 1..{args.sets} in {args.mode} mode; executed notebook {output}", log)


if __name__ == "__main__":
    raise SystemExit(main())
