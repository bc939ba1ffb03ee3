"""`sbit run --stream` as a separate process: other processes read its tables while it
runs, a file landed meanwhile is picked up, and SIGTERM stops it cleanly (exit 0)."""

import signal
import subprocess
import sys
from pathlib import Path

from sbit_lib.config import Config
from sbit_lib.producer import atomic_copy
from tests.conftest import sbit_cli, wait_for


def delta_versions(config: Config, table: str) -> int:
    return len(list((config.table_location(table) / "_delta_log").glob("*.json")))


def test_a_second_process_reads_the_tables_of_a_running_stream(lakehouse_home, test_data, tmp_path):
    config = Config.resolve(environment="stream_job", home=lakehouse_home, test_data=test_data)
    args = ["--env", config.environment, "--home", str(config.home), "--test-data", str(test_data)]
    log_path = tmp_path / "job.log"
    with log_path.open("w") as log:
        job = subprocess.Popen([str(Path(sys.executable).parent / "sbit"), "run", "--stream",
                                "--processing-time", "1 second", *args], stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_for(lambda: (config.checkpoint_dir("registered_users_bz") / "metadata").exists(), 300,
                     "the stream job to set up and start its queries")
            atomic_copy(test_data / "1-registered_users_1.csv",
                        config.landing_zone / "registered_users_bz" / "1-registered_users_1.csv")
            wait_for(lambda: delta_versions(config, "users") >= 2, 240,
                     "the landed file to reach silver users")
            result = sbit_cli("sql", "SELECT count(*) AS bronze, (SELECT count(*) FROM users) AS silver "
                              "FROM registered_users_bz", "--format", "csv", *args)
            assert result.returncode == 0, result.stderr
            assert result.stdout.split() == ["bronze,silver", "5,5"]
            assert job.poll() is None, log_path.read_text()[-2000:]
        finally:
            job.send_signal(signal.SIGTERM)
            code = job.wait(timeout=180)
    output = log_path.read_text()
    assert code == 0, output[-2000:]
    assert "All queries stopped" in output
