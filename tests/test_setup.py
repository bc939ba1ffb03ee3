"""SetupHelper and HistoryLoader on real Delta tables: idempotent, complete, isolated.

The tables' columns are checked against the spec as the checks state it
(sbit_lib/testing/spec.py, written apart from the pipeline's sbit_lib/course/tables.py), and
date_lookup against its file read in plain Python."""

import datetime
import json

import pytest

from sbit_lib.course.config import Config
from sbit_lib.course.history import HistoryLoader
from sbit_lib.course.producer import Producer
from sbit_lib.course.setup_helper import SetupHelper
from sbit_lib.course.tables import ALL_TABLES, GYM_SUMMARY
from sbit_lib.testing import spec
from sbit_lib.testing.validation import ValidationError

# The pipeline's own bad-input tables are not among the spec's (spec.SCHEMAS): their columns
# as the project's docs state them (pipeline-spec.md, "Bad input"; README).
OWN_TABLES = {
    "quarantine_bz": [("source", "string"), ("raw_record", "string"), ("source_file", "string"),
                      ("load_time", "timestamp"), ("reason", "string")],
    "rejects_sv": [("target_table", "string"), ("reason", "string"), ("raw_record", "string"),
                   ("source_file", "string"), ("load_time", "timestamp")],
}
EXPECTED_SCHEMAS = {**spec.SCHEMAS, **OWN_TABLES}          # the 13 tables, the two above, the view
PARTITIONED = {"kafka_multiplex_bz": ["topic", "week_part"]}   # the only partitioned table of the spec
DELTA_TABLES = sorted(set(EXPECTED_SCHEMAS) - {GYM_SUMMARY})


def latest_version(spark, table: str) -> int:
    return spark.sql(f"DESCRIBE HISTORY {table}").agg({"version": "max"}).first()[0]


def columns(spark, name: str) -> list[tuple[str, str]]:
    """[(column, Spark SQL type)] of a table or view, as the catalog reads it."""
    return [(f.name, f.dataType.simpleString()) for f in spark.table(name).schema]


@pytest.fixture(scope="module")
def set_up(spark, lakehouse_home, test_data):
    """One environment set up and its history loaded, for the tests that read it."""
    config = Config.resolve(environment="setup_idem", home=lakehouse_home, test_data=test_data)
    SetupHelper(config, spark).setup()
    HistoryLoader(config, spark).load_history()
    return config


def test_validate_names_what_is_missing_before_setup(spark, make_config):
    with pytest.raises(ValidationError) as err:
        SetupHelper(make_config("setup_never"), spark).validate()
    assert "users" in str(err.value) and GYM_SUMMARY in str(err.value)


def test_setup_creates_every_table_and_the_view_with_the_spec_columns(spark, set_up):
    SetupHelper(set_up, spark).validate()
    HistoryLoader(set_up, spark).validate()
    made = {r["tableName"] for r in spark.sql(f"SHOW TABLES IN {set_up.db_name}").collect() if not r["isTemporary"]}
    assert made == set(EXPECTED_SCHEMAS)
    for name, want in EXPECTED_SCHEMAS.items():
        assert columns(spark, set_up.qualified(name)) == want, name
    parts = spark.sql(f"DESCRIBE DETAIL {set_up.qualified('kafka_multiplex_bz')}").first()
    assert parts["partitionColumns"] == PARTITIONED["kafka_multiplex_bz"]
    assert parts["location"].endswith("/setup_idem/data/delta/kafka_multiplex_bz")


def test_setup_and_history_load_again_add_no_version(spark, set_up):
    versions = {name: latest_version(spark, set_up.qualified(name)) for name in DELTA_TABLES}
    SetupHelper(set_up, spark).setup()                  # again: nothing replaced, nothing lost
    HistoryLoader(set_up, spark).load_history()         # again: no new Delta version
    assert {name: latest_version(spark, set_up.qualified(name)) for name in DELTA_TABLES} == versions
    HistoryLoader(set_up, spark).validate()


def test_date_lookup_holds_the_file_with_typed_columns(spark, set_up):
    """Every line of 6-date-lookup.json, its string fields cast to the spec's types."""
    want = []
    for line in (set_up.test_data / "6-date-lookup.json").read_text().splitlines():
        day = json.loads(line)
        want.append((datetime.date.fromisoformat(day["date"]), *(int(day[f]) for f in (
            "week", "year", "month", "dayofweek", "dayofmonth", "dayofyear")), day["week_part"]))
    want.sort()
    assert (len(want), str(want[0][0]), str(want[-1][0])) == (365, "2023-01-01", "2023-12-31")
    table = spark.table(set_up.qualified("date_lookup"))
    assert sorted(tuple(r) for r in table.collect()) == want
    assert columns(spark, set_up.qualified("date_lookup")) == spec.SCHEMAS["date_lookup"]


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


def test_a_second_session_sees_tables_through_their_locations(spark, set_up):
    """What another process does on start: point a fresh catalog at the Delta folders."""
    from sbit_lib.course.catalog import register_tables

    spark.sql(f"DROP TABLE {set_up.qualified('date_lookup')}")       # forget it (data stays)
    assert "date_lookup" in register_tables(spark, set_up)
    assert spark.table(set_up.qualified("date_lookup")).count() == 365


def test_the_same_environment_under_another_home_forgets_the_old_tables_temporary_views_aside(
        spark, set_up, tmp_path):
    """A notebook re-run with another SBIT_HOME: the database's entries of the old home go, so a
    name never resolves to another lakehouse's table; a temporary view of the session stays."""
    from sbit_lib.course.catalog import register_tables

    register_tables(spark, set_up)
    spark.range(3).createOrReplaceTempView("a_learners_scratch_view")
    elsewhere = Config.resolve(environment=set_up.environment, home=tmp_path / "elsewhere",
                               test_data=set_up.test_data)
    try:
        assert register_tables(spark, elsewhere) == []            # nothing set up there yet
        assert not spark.catalog.tableExists(set_up.qualified("date_lookup"))
        assert spark.table("a_learners_scratch_view").count() == 3
    finally:
        assert "date_lookup" in register_tables(spark, set_up)    # the module's environment back
        spark.catalog.dropTempView("a_learners_scratch_view")
    assert spark.table(set_up.qualified("date_lookup")).count() == 365


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
    created with the spec's columns and partitioning and its properties, as a clean set-up makes it."""
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
        assert detail["partitionColumns"] == PARTITIONED.get(table.name, []), table.name
        # the properties are the pipeline's own choices (Change Data Feed, statistics columns),
        # not the spec's: the ones its definition asks for, as a clean set-up sets them
        assert set(table.properties) <= set(detail["properties"].items()), table.name
        assert columns(spark, config.qualified(table.name)) == EXPECTED_SCHEMAS[table.name], table.name


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
