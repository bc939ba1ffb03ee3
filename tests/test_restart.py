"""Kill `sbit run` hard in the middle of the silver MERGE waves, run it again, and every
table equals the reference: nothing lost, nothing duplicated."""

import subprocess
import sys
from pathlib import Path

from sbit_lib.config import Config
from sbit_lib.producer import Producer
from tests.conftest import sbit_cli, wait_for


def test_a_run_killed_part_way_and_run_again_gives_the_reference_tables(lakehouse_home, test_data):
    config = Config.resolve(environment="killed", home=lakehouse_home, test_data=test_data, as_of="2023-03-31")
    args = ["--env", config.environment, "--home", str(config.home), "--test-data", str(test_data),
            "--as-of", "2023-03-31"]
    Producer(config).produce(1)
    job = subprocess.Popen([str(Path(sys.executable).parent / "sbit"), "run", *args],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    # The heart_rate MERGE's first micro-batch has been planned (its offsets are logged)
    # but not committed: kill the process right there.
    started = config.checkpoint_dir("heart_rate") / "offsets" / "0"
    wait_for(lambda: started.exists() or job.poll() is not None, 600, "silver's heart_rate batch to start")
    job.kill()
    job.wait(timeout=60)
    assert job.returncode == -9, "the run finished before it could be killed"
    assert not (config.checkpoint_dir("heart_rate") / "commits" / "0").exists()

    again = sbit_cli("run", *args, timeout=900)
    assert again.returncode == 0, again.stderr[-2000:]
    check = sbit_cli("validate", "1", *args, timeout=900)
    assert check.returncode == 0, check.stdout[-3000:] + check.stderr[-2000:]
    assert "Gold layer validation completed" in check.stdout
