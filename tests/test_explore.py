"""catch_up's decisions (sbit_lib/teaching/explore.py): which layers have work left, read from
checkpoint and Delta log files as Spark writes them (here written by hand, with set times)."""

import os

from sbit_lib.course.bronze import SOURCES
from sbit_lib.course.config import Config
from sbit_lib.course.silver import Silver
from sbit_lib.teaching.explore import _uncommitted, pending_files, silver_is_current

SILVER = [name.removeprefix("upsert_") for wave in Silver.WAVES for name in wave]


def touch(path, seconds: float, text: str = "v1\n{}\n") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    os.utime(path, (seconds, seconds))


def delta_commit(config, table, version: int, at: float) -> None:
    touch(config.table_location(table) / "_delta_log" / f"{version:020d}.json", at)


def batch(config, query, batch_id: int, planned: float, committed: bool = True) -> None:
    touch(config.checkpoint_dir(query) / "offsets" / str(batch_id), planned)
    if committed:
        touch(config.checkpoint_dir(query) / "commits" / str(batch_id), planned + 5)


def environment(tmp_path) -> Config:
    """Bronze written at t=100, then each silver wave planned after the one before."""
    config = Config.resolve(environment="explore_t", home=tmp_path)
    for table in SOURCES:
        delta_commit(config, table, 0, 100)
    for wave_number, wave in enumerate(Silver.WAVES, start=1):
        for name in wave:
            table = name.removeprefix("upsert_")
            batch(config, table, 0, 100 + 10 * wave_number)
            delta_commit(config, table, 0, 103 + 10 * wave_number)
    return config


def test_silver_is_current_after_a_run_that_followed_bronze(tmp_path):
    assert silver_is_current(environment(tmp_path))


def test_a_bronze_commit_after_silver_planned_means_silver_is_behind(tmp_path):
    config = environment(tmp_path)
    delta_commit(config, "kafka_multiplex_bz", 1, 200)
    assert not silver_is_current(config)


def test_a_source_commit_while_the_batch_ran_is_not_in_it(tmp_path):
    """The batch planned at 110 and committed at 115; bronze committed at 112 in between."""
    config = environment(tmp_path)
    delta_commit(config, "registered_users_bz", 1, 112)
    assert not silver_is_current(config)


def test_a_later_wave_planned_before_an_earlier_wave_wrote_is_behind(tmp_path):
    config = environment(tmp_path)
    delta_commit(config, "workouts", 1, 125)          # after wave 2 planned at 120
    assert not silver_is_current(config)


def test_an_uncommitted_batch_or_a_missing_checkpoint_means_behind(tmp_path):
    config = environment(tmp_path)
    batch(config, "heart_rate", 1, 150, committed=False)
    assert _uncommitted(config, "heart_rate")
    assert not silver_is_current(config)
    assert not silver_is_current(Config.resolve(environment="explore_new", home=tmp_path))


def test_pending_files_are_landed_files_missing_from_the_checkpoints_file_log(tmp_path):
    config = environment(tmp_path)
    landing = config.landing_zone / "registered_users_bz"
    for name in ("1-registered_users_1.csv", "1-registered_users_2.csv", ".hidden.tmp"):
        touch(landing / name, 100, "")
    log = config.checkpoint_dir("registered_users_bz") / "sources" / "0" / "0"
    touch(log, 100, 'v1\n{"path":"file://%s","timestamp":1,"batchId":0}\n' % (landing / "1-registered_users_1.csv"))
    assert pending_files(config)["registered_users_bz"] == ["1-registered_users_2.csv"]
