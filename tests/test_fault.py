"""The fault test (sbit_lib.ops.fault): `sbit run` killed with SIGKILL (set-up, history load,
bronze, a silver MERGE and its commit, gold, a checkpoint commit), run again in a new process,
and every table equal to an uninterrupted run's.

* Without Spark, in seconds: a trial's bookkeeping, with small programs standing in for
  ``sbit run`` (real processes, really killed): a trial passes only if its run was killed and
  nothing was found wrong; a run that finished or failed by itself before its kill moment
  fails it, and so does a problem recorded before the tables were compared, however equal
  they are. And the phase targets and the kill window, on files laid out by hand.
* With real runs (one baseline for the module, :func:`fault`): two trials at random moments
  (the fast tier); 20 more, and three trials killed at chosen moments (set-up, a silver MERGE
  in flight, between its Delta commit and its checkpoint commit), marked ``full``
  (``make test-full``; `make fault-test` runs 20 trials from the command line).

The random moments come from a seed that changes with every run and is printed at the start
and named in a failure's message: ``SBIT_FAULT_SEED=<seed> pytest tests/test_fault.py``
replays them; ``SBIT_FAULT_TRIALS`` sets how many trials the full-tier test runs (20 by
default; the fast one always runs 2). The module is an xdist group of its own (the root
conftest.py groups tests by module).
"""

import json
import os
import signal
import sys
import time

import pytest

from sbit_lib.course.tables import ALL_TABLES
from sbit_lib.ops.fault import (
    END_OF_RUN,
    TARGETS,
    FaultTest,
    Trial,
    differences,
    disk_state,
    kill_window,
    snapshot,
)

FAST_TRIALS = 2
FULL_TRIALS = int(os.environ.get("SBIT_FAULT_TRIALS") or 20)
SEED = int(os.environ.get("SBIT_FAULT_SEED") or time.time_ns() // 1000 % 1_000_000)

# A program in place of `sbit run`: prints the lines it is given (phase markers), then finishes
# (exit 0), fails (exit 3, with an error line) or waits to be killed.
STAND_IN = """
import sys, time
action, lines = sys.argv[1], sys.argv[2:]
for line in lines:
    print(line, flush=True)
if action == "finish":
    sys.exit(0)
if action == "fail":
    print("RuntimeError: the stand-in failed", flush=True)
    sys.exit(3)
time.sleep(600)         # "wait": a run going on until the trial kills it (ended anyway after 10 minutes)
"""


def stand_in(action: str, *lines: str) -> list[str]:
    return [sys.executable, "-c", STAND_IN, action, *lines]


class TablesEqual(FaultTest):
    """A fault test whose table comparison finds every table equal: what these tests check is the
    trial's bookkeeping around the comparison (the comparison itself is tested on real tables below)."""

    def compare(self, config) -> list[str]:
        return []


# ---------------------------------------------------------------------------- a trial's bookkeeping
def test_a_run_killed_at_its_moment_whose_rerun_leaves_equal_tables_passes(tmp_path):
    fault = TablesEqual(tmp_path, SEED, command=stand_in("wait", "Setting up the stand-in"))
    config = fault.config("fault_01")
    trial = Trial(1, anchor="set-up", offset_s=0.0)          # killed as soon as set-up begins
    fault.interrupt(trial, config)
    assert trial.killed and trial.exit_code == -signal.SIGKILL and trial.phase == "set-up", trial.report()
    fault.command = stand_in("finish", "Gold layer completed")
    fault.check(trial, config)
    assert trial.passed and trial.problems == [], trial.report()
    assert "PASS" in trial.line()


def test_a_problem_recorded_before_the_comparison_fails_the_trial_however_equal_the_tables(tmp_path):
    fault = TablesEqual(tmp_path, SEED, command=stand_in("finish", "Gold layer completed"))
    config = fault.config("fault_01")
    recorded = Trial(1, killed=True, problems=["a problem recorded before the comparison"])
    clean = Trial(2, killed=True)
    for trial in (recorded, clean):
        fault.check(trial, config)
    assert clean.passed, clean.report()        # the rerun ended well and the tables are equal ...
    assert not recorded.passed and recorded.problems == ["a problem recorded before the comparison"], \
        recorded.report()                      # ... which leaves the problem recorded before in place
    assert "FAIL" in recorded.line()


def test_a_run_that_finishes_before_its_kill_moment_fails_the_trial(tmp_path):
    fault = TablesEqual(tmp_path, SEED, command=stand_in("finish", "Setting up the stand-in", "Gold layer completed"))
    config = fault.config("fault_01")
    trial = Trial(1, anchor="set-up", offset_s=600.0)         # a moment past the run's end
    fault.interrupt(trial, config)
    assert not trial.killed and trial.exit_code == 0 and trial.phase == "not killed", trial.report()
    fault.check(trial, config)
    assert not trial.passed, trial.report()
    assert len(trial.problems) == 1 and trial.problems[0].startswith(
        "not killed: the run finished by itself after "), trial.report()
    assert "before its kill moment (600.0 s into set-up)" in trial.problems[0]
    assert "NOT KILLED: the run ended by itself (exit 0)" in trial.line() and "FAIL" in trial.line()


def test_a_run_that_fails_by_itself_fails_the_trial(tmp_path):
    fault = TablesEqual(tmp_path, SEED, command=stand_in("fail", "Setting up the stand-in"))
    config = fault.config("fault_01")
    trial = Trial(1, anchor="set-up", offset_s=600.0)
    fault.interrupt(trial, config)
    assert not trial.killed and trial.exit_code == 3, trial.report()
    fault.command = stand_in("finish", "Gold layer completed")    # the rerun ends well, the tables are equal
    fault.check(trial, config)
    assert not trial.passed, trial.report()
    assert len(trial.problems) == 1 and trial.problems[0].startswith(
        "not killed: the run failed by itself (exit 3) after "), trial.report()
    assert "RuntimeError: the stand-in failed" in trial.problems[0]      # the run's output, to see why
    assert "NOT KILLED: the run ended by itself (exit 3)" in trial.line() and "FAIL" in trial.line()


def test_a_drawn_moment_past_its_phase_comes_when_the_next_phase_begins(tmp_path):
    # A trial's phase may be quicker than the baseline's: its drawn moment is taken at the next
    # phase's start then, not after the end of the run (the last phase drawn from is gold).
    fault = TablesEqual(tmp_path, SEED, command=stand_in("wait", "Setting up the stand-in", "Setup completed"))
    trial = Trial(1, anchor="set-up", offset_s=600.0, within_phase=True)
    fault.interrupt(trial, fault.config("fault_01"))
    assert trial.killed and trial.phase == "set-up done, before the history load", trial.report()
    assert trial.delay_s < 60, trial.report()


def test_the_kill_window_ends_with_the_gold_layer_and_begins_with_set_up():
    marks = [(2.0, "set-up"), (10.0, "set-up done, before the history load"), (90.0, END_OF_RUN)]
    assert kill_window(marks, 100.0) == (0.0, 0.9)
    assert kill_window(marks, 100.0, from_setup=True) == (0.02, 0.9)
    assert kill_window([(2.0, "set-up"), (40.0, "the stream job's queries")], 100.0) == (0.0, 1.0)


def _file(path, mtime: float, text: str = "") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    os.utime(path, (mtime, mtime))           # file times set, not waited for


def test_the_phase_targets_see_their_moment_in_the_files(tmp_path):
    config = FaultTest(tmp_path, SEED).config("targets")
    setup, merge, commit = (TARGETS[name][1] for name in ("set-up", "merge", "commit"))
    silver = [(1.0, "set-up"), (9.0, "silver wave 1")]
    table, checkpoint = config.table_location("users"), config.checkpoint_dir("users")

    _file(table / "_delta_log" / f"{0:020d}.json", 100, json.dumps({"commitInfo": {"operation": "CREATE TABLE"}}))
    assert setup([], config) is None                          # set-up has not begun
    assert setup(silver[:1], config) == f"1/{len(ALL_TABLES)} tables created"

    _file(checkpoint / "offsets" / "0", 200)                 # a micro-batch planned
    assert merge(silver, config) is None and commit(silver, config) is None
    assert "users batch 0: planned, not written" in disk_state(config)

    _file(table / "part-00000-a.snappy.parquet", 210)        # its MERGE writing
    assert merge(silver, config) == "users batch 0: 1 data file(s) written, no Delta commit"
    assert commit(silver, config) is None
    assert merge(silver, config) in disk_state(config)

    _file(table / "_delta_log" / f"{1:020d}.json", 220, json.dumps({"commitInfo": {"operation": "MERGE"}}))
    assert merge(silver, config) is None
    assert commit(silver, config) == "users batch 0: written (v1 MERGE), checkpoint commit missing"
    assert commit(silver, config) in disk_state(config)

    _file(checkpoint / "commits" / "0", 230)                 # the micro-batch committed
    assert merge(silver, config) is None and commit(silver, config) is None
    assert "users batch" not in disk_state(config)


# ---------------------------------------------------------------------------- real runs
@pytest.fixture(scope="module")
def fault(spark, tmp_path_factory):
    """The data set and the baseline, made once for the module's tests that kill real runs (the
    baseline is a whole run): in this worker's (warm) session, the trials' runs and reruns in
    processes of their own; no random kill is drawn before set-up begins (while Python and the
    JVM start)."""
    print(f"fault test seed {SEED} (SBIT_FAULT_SEED={SEED} replays its random moments)", flush=True)
    test = FaultTest(tmp_path_factory.mktemp("fault"), SEED, spark=spark, from_setup=True, baseline_in_process=True)
    test.prepare()
    return test


def _trials(fault: FaultTest, numbers: range, replay: str) -> None:
    """Run the seed's trials `numbers`; fail naming the seed, the replay and every failed trial's report."""
    replay = f"{replay}, or {fault.replay(0, list(numbers))}"
    print(f"fault test seed {SEED}, trials {numbers[0]}-{numbers[-1]}; replay: {replay}", flush=True)
    failed = [r for r in fault.run(len(numbers), only=list(numbers)) if not r.passed]
    assert not failed, (f"fault test seed {SEED}: trial(s) {', '.join(str(r.number) for r in failed)} failed; "
                        f"replay: {replay} (those only: {fault.replay(0, [r.number for r in failed])}):\n"
                        + "\n".join(r.report() for r in failed))


def test_runs_killed_at_random_moments_and_run_again_equal_an_uninterrupted_run(fault, request):
    _trials(fault, range(1, FAST_TRIALS + 1), f"SBIT_FAULT_SEED={SEED} pytest {request.node.nodeid}")


@pytest.mark.full
@pytest.mark.parametrize("half", [pytest.param(half, marks=pytest.mark.xdist_group(f"fault-full-{half}"))
                                  for half in (1, 2)])
def test_twenty_runs_killed_at_random_moments_and_run_again_equal_an_uninterrupted_run(fault, request, half):
    # Trials after the fast test's: the same seed, other moments. Each half is an xdist group of
    # its own, so make test-full's two workers share the trials (each worker makes its baseline).
    first = FAST_TRIALS + 1
    middle = first + FULL_TRIALS // 2
    numbers = range(first, middle) if half == 1 else range(middle, first + FULL_TRIALS)
    _trials(fault, numbers, f"SBIT_FAULT_SEED={SEED} SBIT_FAULT_TRIALS={FULL_TRIALS} pytest {request.node.nodeid}")


@pytest.mark.full
def test_runs_killed_in_set_up_in_a_silver_merge_and_between_its_commits_equal_an_uninterrupted_run(fault, request):
    """Three kills at chosen moments, each then run again and compared like any trial.

    A seed's moment is a time, and which phase a time falls in depends on the machine's speed;
    these moments are chosen by what the run is seen doing (:data:`sbit_lib.ops.fault.TARGETS`),
    so they land in their phase on any machine: the trial polls the run's output and files
    every 10 ms, freezes the run (SIGSTOP, every thread) the moment it sees the state, looks
    again, and kills it there (or lets it go on and waits for the next such moment, if it
    moved on meanwhile). The three:

    * set-up: "Setting up" printed and some of the tables created, not all;
    * merge: a silver micro-batch planned (its checkpoint offsets logged) whose MERGE has
      written data files into its table, with no Delta commit yet;
    * commit: a silver micro-batch whose MERGE is committed to its table (a Delta commit
      after its offsets) and whose checkpoint commit is not written yet: the batch runs again
      after the restart, and the MERGE must find its rows already there.

    After each kill, what was running is read back (the output's phase and the files' state)
    and must be what was seen.
    """
    replay = f"pytest {request.node.nodeid}, or {fault.replay(0, at=list(TARGETS))}"
    print(f"fault test: kills at {', '.join(TARGETS)}; replay: {replay}", flush=True)
    results = {r.target: r for r in fault.run(0, at=list(TARGETS))}
    failed = [r for r in results.values() if not r.passed]
    assert not failed, f"replay: {replay}\n" + "\n".join(r.report() for r in failed)
    setup, merge, commit = results["set-up"], results["merge"], results["commit"]
    assert setup.phase == "set-up" and setup.state.startswith(setup.seen), setup.report()
    assert merge.phase.startswith("silver wave") and merge.seen in merge.state, merge.report()
    assert "data file(s) written, no Delta commit" in merge.seen, merge.report()
    assert commit.phase.startswith("silver wave") and commit.seen in commit.state, commit.report()
    assert "MERGE), checkpoint commit missing" in commit.seen, commit.report()


def test_the_comparison_finds_a_row_missing_from_a_table(fault, spark):
    # One heart-rate reading deleted from the baseline's table (its snapshot, which the trials
    # compare with, stays as it was).
    base = fault.config("fault_base")
    table = base.qualified("heart_rate")
    # By its microseconds: a TIMESTAMP literal from Python's datetime would depend on the local time zone.
    one = spark.sql(f"SELECT device_id, unix_micros(time) AS us FROM {table} LIMIT 1").first()
    spark.sql(f"DELETE FROM {table} WHERE device_id = {one['device_id']} AND unix_micros(time) = {one['us']}")
    problems = differences(fault.baseline, snapshot(spark, base))
    assert len(problems) == 1 and problems[0].startswith("heart_rate: "), problems
    assert "1 of the baseline's missing, 0 not in it" in problems[0] and f"missing ({one['device_id']}, " in problems[0]
