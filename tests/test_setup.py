"""SetupHelper and HistoryLoader on real Delta tables: idempotent, complete, isolated."""

import pytest

from sbit_lib.course.history import HistoryLoader
from sbit_lib.course.producer import Producer
from sbit_lib.course.setup_helper import SetupHelper
from sbit_lib.course.tables import ALL_TABLES, GYM_SUMMARY, QUARANTINE, REJECTS, TABLES
from sbit_lib.testing.validation import ValidationError


def latest_version(spark, table: str) -> int:
    return spark.sql(f"DESCRIBE HISTORY {table}").agg({"version": "max"}).first()[0]


def test_setup_creates_every_table_and_the_view_and_is_idempotent(spark, make_config):
    config = make_config("setup_idem")
    helper = SetupHelper(config, spark)
    with pytest.raises(ValidationError) as err:
        helper.validate()
    assert "users" in str(err.value) and GYM_SUMMARY in str(err.value)

    helper.setup()
    HistoryLoader(config, spark).load_history()
    helper.validate()
    # The spec's 13 tables plus the pipeline's own two: bronze's quarantine, silver's rejects.
    assert len(TABLES) == 13 and set(ALL_TABLES) - set(TABLES) == {QUARANTINE, REJECTS}
    versions = {t.name: latest_version(spark, config.qualified(t.name)) for t in ALL_TABLES}

    helper.setup()                                   # again: nothing replaced, nothing lost
    HistoryLoader(config, spark).load_history()      # again: no new Delta version
    assert {t.name: latest_version(spark, config.qualified(t.name)) for t in ALL_TABLES} == versions
    HistoryLoader(config, spark).validate()
    parts = spark.sql(f"DESCRIBE DETAIL {config.qualified('kafka_multiplex_bz')}").first()
    assert parts["partitionColumns"] == ["topic", "week_part"]
    assert parts["location"].endswith("/setup_idem/data/delta/kafka_multiplex_bz")


def test_date_lookup_holds_2023_with_typed_columns(spark, make_config):
    config = make_config("setup_idem")
    row = spark.sql(
        f"SELECT count(*) n, min(date) lo, max(date) hi, count(DISTINCT week_part) w "
        f"FROM {config.qualified('date_lookup')}").first()
    assert (row["n"], str(row["lo"]), str(row["hi"])) == (365, "2023-01-01", "2023-12-31")
    assert dict(spark.table(config.qualified("date_lookup")).dtypes)["dayofyear"] == "int"


def test_cleanup_removes_one_environment_only(spark, make_config):
    a, b = make_config("iso_a"), make_config("iso_b")
    for config in (a, b):
        SetupHelper(config, spark).setup()
        HistoryLoader(config, spark).load_history()
        Producer(config).produce(1)

    SetupHelper(a, spark).cleanup()

    assert not a.env_root.exists()
    assert a.db_name not in [d.name for d in spark.catalog.listDatabases()]
    SetupHelper(b, spark).validate()
    assert spark.table(b.qualified("date_lookup")).count() == 365
    assert len(list(b.landing_zone.rglob("*.json"))) == 3
    assert b.checkpoint_zone.exists()


def test_a_second_session_sees_tables_through_their_locations(spark, make_config):
    """What another process does on start: point a fresh catalog at the Delta folders."""
    from sbit_lib.course.catalog import register_tables

    config = make_config("setup_idem")
    spark.sql(f"DROP TABLE {config.qualified('date_lookup')}")       # forget it (data stays)
    assert "date_lookup" in register_tables(spark, config)
    assert spark.table(config.qualified("date_lookup")).count() == 365


# ------------------------------------------------------------------ set-up cut short (issue 17)
def delta_log(config, table: str):
    return config.table_location(table) / "_delta_log"


def commits(config, table: str) -> list[str]:
    return sorted(p.name for p in delta_log(config, table).glob("*.json"))


def test_setup_creates_the_tables_a_killed_setup_left_without_a_commit_and_keeps_the_others(spark, make_config):
    """The crash states a SIGKILL during set-up leaves, made by hand, then set-up again."""
    import shutil

    from sbit_lib.course.catalog import has_commit, register_tables

    config = make_config("setup_crash")
    helper = SetupHelper(config, spark)
    helper.setup()
    HistoryLoader(config, spark).load_history()
    spark.sql(f"INSERT INTO {config.qualified('users')} VALUES (1, 2, 'aa:bb', TIMESTAMP'2023-03-11 10:00:00')")
    kept = {t: commits(config, t) for t in ("date_lookup", "users")}

    # What a kill during the CREATEs leaves: a _delta_log with only _staged_commits/ (the state
    # of the issue), an empty one, and a table whose folder is gone while this process's
    # catalog still points at it; the next process would start without the catalog entry.
    for table in ("workout_bpm_summary", "gym_logs", "heart_rate"):
        shutil.rmtree(config.table_location(table))
    (delta_log(config, "workout_bpm_summary") / "_staged_commits").mkdir(parents=True)
    delta_log(config, "gym_logs").mkdir(parents=True)
    spark.sql(f"DROP TABLE {config.qualified('gym_logs')}")        # as in a new process: no entry
    assert not has_commit(config.table_location("workout_bpm_summary"))
    assert not has_commit(config.table_location("gym_logs"))
    assert has_commit(config.table_location("users"))

    # A new process registers what exists and skips the rest (it failed with
    # DELTA_CREATE_EXTERNAL_TABLE_WITHOUT_TXN_LOG); set-up then knows what is missing.
    registered = register_tables(spark, config)
    assert {"users", "date_lookup"} <= set(registered)
    assert not {"workout_bpm_summary", "gym_logs", "heart_rate"} & set(registered)
    assert helper.missing() == ["gym_logs", "heart_rate", "workout_bpm_summary"]

    helper.setup()
    helper.validate()
    for table in ("workout_bpm_summary", "gym_logs", "heart_rate"):
        assert commits(config, table) == ["00000000000000000000.json"], table
        assert spark.table(config.qualified(table)).count() == 0
    assert {t: commits(config, t) for t in kept} == kept                 # untouched: no new version
    assert spark.table(config.qualified("date_lookup")).count() == 365
    assert spark.table(config.qualified("users")).count() == 1
    spark.sql(f"INSERT INTO {config.qualified('gym_logs')} VALUES ('aa:bb', 1, TIMESTAMP'2023-03-11 10:00:00', "
              "TIMESTAMP'2023-03-11 11:00:00')")
    assert spark.table(config.qualified("gym_summary")).count() == 0     # the view reads the new table


def test_a_setup_killed_at_its_first_commits_then_run_in_a_new_process_creates_every_table_whole(
        spark, make_config):
    """Every table's folder as a kill leaves it, the catalog empty (a new process): each one is
    created with its partitioning and properties, as a clean set-up makes it."""
    from sbit_lib.course.tables import parse_columns

    config = make_config("setup_cut")
    for number, table in enumerate(ALL_TABLES):
        if number % 3 == 0:
            (delta_log(config, table.name) / "_staged_commits").mkdir(parents=True)
        elif number % 3 == 1:
            delta_log(config, table.name).mkdir(parents=True)
        # else: no folder at all, the kill came before this table's turn
    SetupHelper(config, spark).setup()
    for table in ALL_TABLES:
        detail = spark.sql(f"DESCRIBE DETAIL {config.qualified(table.name)}").first()
        assert tuple(detail["partitionColumns"]) == table.partitioned_by, table.name
        assert set(table.properties) <= set(detail["properties"].items()), table.name
        assert [(f.name, f.dataType.simpleString()) for f in spark.table(config.qualified(table.name)).schema] \
            == parse_columns(table.columns), table.name


def test_setup_leaves_a_commitless_folder_holding_other_files_alone(spark, make_config):
    config = make_config("setup_foreign")
    stray = config.table_location("users") / "notes.txt"
    stray.parent.mkdir(parents=True)
    stray.write_text("not a Delta file")
    (delta_log(config, "users") / "_staged_commits").mkdir(parents=True)
    with pytest.raises(RuntimeError, match="notes.txt but no Delta commit"):
        SetupHelper(config, spark).setup()
    assert stray.read_text() == "not a Delta file"
    assert (delta_log(config, "users") / "_staged_commits").is_dir()     # its log left as it was, too


def test_setup_does_not_remove_a_commitless_log_while_another_process_runs_the_environment(spark, make_config):
    """That process may be creating the table right now: set-up is refused, the log stays."""
    from sbit_lib.spark.runlock import JobLockedError
    from tests.test_job import hold_lock

    config = make_config("setup_busy")
    (delta_log(config, "users") / "_staged_commits").mkdir(parents=True)
    holder = hold_lock(config)
    try:
        with pytest.raises(JobLockedError, match="cannot create .*users.* in use by a stream job"):
            SetupHelper(config, spark).setup()
        assert (delta_log(config, "users") / "_staged_commits").is_dir()
    finally:
        holder.kill()
        holder.wait()
    SetupHelper(config, spark).setup()                     # once it has gone: created
    assert commits(config, "users") == ["00000000000000000000.json"]


def test_a_commitless_log_in_a_zone_given_as_a_url_is_found_and_cleared_through_hadoop(spark, make_config,
                                                                                       tmp_path):
    from sbit_lib.course.catalog import create_database, has_commit
    from sbit_lib.course.tables import table_def
    from sbit_lib.spark.storage import HadoopPath

    config = make_config("setup_url", data_root=f"file://{tmp_path / 'zone'}")
    location = config.table_location("users")
    assert isinstance(location, HadoopPath) and not has_commit(location)
    staged = tmp_path / "zone" / "setup_url" / "delta" / "users" / "_delta_log" / "_staged_commits"
    staged.mkdir(parents=True)
    assert not has_commit(location)
    create_database(spark, config)
    SetupHelper(config, spark)._create_table(table_def("users"))       # one table is enough here
    assert has_commit(location)
    assert sorted(p.name for p in staged.parent.glob("*.json")) == ["00000000000000000000.json"]
