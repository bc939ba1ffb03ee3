"""The course's 09-stream-test, locally: a stream job fed set by set, every layer validated.

The course starts a Databricks job that runs 07-run in stream mode, lands a set,
sleeps two minutes and validates. Here the job is a background process
(:func:`sbit_lib.ops.job.start_job`), and instead of sleeping the test *polls*: after
landing set n it re-checks the tables each time one of them gets a new Delta version,
and moves on as soon as every layer equals the expected results (or fails after
``timeout_s``, naming the layer and table still behind).

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
from sbit_lib.course.tables import ALL_TABLES

FRESHNESS_TARGET_S = 20.0
LAYERS = (
    ("bronze", ("registered_users_bz", "gym_logins_bz", "kafka_multiplex_bz")),
    ("silver", ("users", "gym_logs", "user_profile", "workouts", "heart_rate", "user_bins",
                "completed_workouts", "workout_bpm")),
    ("gold", ("workout_bpm_summary", "gym_summary")),
)


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

    def behind(self, n: int, versions: dict[str, int]) -> str | None:
        """A quick check by row counts; return what is behind ('silver: heart_rate has ...'), or None."""
        from sbit_lib.course.tables import QUARANTINE

        landing = self.expected.landing(n)
        for layer, tables in LAYERS:
            for table in tables:
                expectation = self.expected.table(self.config.mode, n, table)
                if not expectation.exact or table not in versions:
                    continue      # course mode's watermarked summary and the view: checked by validation
                if versions[table] < 0:
                    return f"{layer}: {table} does not exist yet"
                if layer == "bronze":
                    expected = landing[table] if table != "kafka_multiplex_bz" else sum(landing[table].values())
                    # malformed records are kept in quarantine_bz, not in the table
                    if versions.get(QUARANTINE.name, -1) >= 0:
                        expected -= self._count(QUARANTINE.name, versions[QUARANTINE.name], source=table)
                else:
                    expected = expectation.count
                found = self._count(table, versions[table])
                if found != expected:
                    return f"{layer}: {table} has {found:,} rows, {expected:,} expected"
        return None

    def validate(self, n: int) -> str | None:
        """Every layer's validation; return None when it passes, else what fails ('layer: message')."""
        from sbit_lib.course.bronze import Bronze
        from sbit_lib.course.gold import Gold
        from sbit_lib.course.silver import Silver
        from sbit_lib.testing.validation import ValidationError

        for layer, cls in (("bronze", Bronze), ("silver", Silver), ("gold", Gold)):
            try:
                with contextlib.redirect_stdout(io.StringIO()):
                    cls(self.config, self.spark).validate(n)
            except ValidationError as err:
                return f"{layer}: {str(err).splitlines()[0]}"
        return None

    def wait_until_valid(self, n: int, deadline: float) -> tuple[float, int]:
        """Poll until every layer is valid for set n; return (monotonic time it was seen, checks)."""
        seen, problem, checks = None, "no check has run yet", 0
        while time.monotonic() < deadline:
            if self.job is not None and not self.job.alive():
                raise StreamTestError(f"set {n}: the stream job died (exit code {self.job.process.returncode}); "
                                      f"log {self.job.log_path}:\n{self.job.log_tail()}")
            versions = self._versions()
            if versions != seen:       # nothing committed since the last check: nothing to re-check
                seen = versions
                checks += 1
                problem = self.behind(n, versions)
                if problem is None:
                    complete = time.monotonic()
                    problem = self.validate(n)
                    if problem is None:
                        return complete, checks
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
    from sbit_lib.ops.batch_test import BUILD, report

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--sets", type=int, default=2)
    parser.add_argument("--mode", default="default", choices=("default", "course"))
    parser.add_argument("--env", default="stream_test")
    parser.add_argument("--processing-time", default="1 second")
    args = parser.parse_args(argv)
    notebook = PROJECT_ROOT / "notebooks" / "09-stream-test.ipynb"
    output = BUILD / f"09-stream-test-{args.mode}.ipynb"
    output.parent.mkdir(parents=True, exist_ok=True)

    def execute():
        papermill.execute_notebook(str(notebook), str(output), progress_bar=False,
                                   cwd=str(notebook.parent),
                                   parameters=dict(environment=args.env, sets=args.sets, mode=args.mode,
                                                   processing_time=args.processing_time))

    return report(execute, output, "stream test",
                  f"Stream test passed for sets 1..{args.sets} in {args.mode} mode; executed notebook {output}")


if __name__ == "__main__":
    raise SystemExit(main())
