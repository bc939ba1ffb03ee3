"""The fault test, a few trials: `sbit run` killed with SIGKILL at random moments (set-up,
history load, bronze, a silver MERGE and its commit, gold, a checkpoint commit), run again in
a new process, and every table equal to an uninterrupted run's (sbit_lib.ops.fault;
`make fault-test` runs 20 trials).

The kill moments come from a seed that changes with every run and is printed (and named in
a failure's message): ``SBIT_FAULT_SEED=<seed> pytest tests/test_fault.py`` replays them,
``SBIT_FAULT_TRIALS`` sets how many trials (2 by default). The module is an xdist group of
its own (the root conftest.py groups tests by module).
"""

import os
import time

from sbit_lib.ops.fault import FaultTest, differences, snapshot

TRIALS = int(os.environ.get("SBIT_FAULT_TRIALS") or 2)
SEED = int(os.environ.get("SBIT_FAULT_SEED") or time.time_ns() // 1000 % 1_000_000)


def test_runs_killed_at_random_moments_and_run_again_equal_an_uninterrupted_run(spark, tmp_path):
    # The baseline runs in this worker's (warm) session, the trials' runs and reruns in processes
    # of their own; no kill is drawn before set-up begins (while Python and the JVM start).
    fault = FaultTest(tmp_path / "fault", SEED, spark=spark, from_setup=True, baseline_in_process=True)
    replay = f"SBIT_FAULT_SEED={SEED} SBIT_FAULT_TRIALS={TRIALS} pytest tests/test_fault.py, or {fault.replay(TRIALS)}"
    print(f"fault test seed {SEED}; replay: {replay}")
    results = fault.run(TRIALS)
    failed = [r for r in results if not r.passed]
    assert not failed, f"seed {SEED} (replay: {replay}):\n" + "\n".join(r.report() for r in failed)

    # The comparison catches a difference: one heart-rate reading gone from the baseline's table.
    base = fault.config("fault_base")
    table = base.qualified("heart_rate")
    # By its microseconds: a TIMESTAMP literal from Python's datetime would depend on the local time zone.
    one = spark.sql(f"SELECT device_id, unix_micros(time) AS us FROM {table} LIMIT 1").first()
    spark.sql(f"DELETE FROM {table} WHERE device_id = {one['device_id']} AND unix_micros(time) = {one['us']}")
    problems = differences(fault.baseline, snapshot(spark, base))
    assert len(problems) == 1 and problems[0].startswith("heart_rate: "), problems
    assert "1 of the baseline's missing, 0 not in it" in problems[0] and f"missing ({one['device_id']}, " in problems[0]
