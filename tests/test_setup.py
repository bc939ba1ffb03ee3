"""SetupHelper and HistoryLoader on real Delta tables: idempotent, complete, isolated."""

import pytest

from sbit_lib.course.history import HistoryLoader
from sbit_lib.course.producer import Producer
from sbit_lib.course.setup_helper import SetupHelper
from sbit_lib.course.tables import ALL_TABLES, GYM_SUMMARY, QUARANTINE, TABLES
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
    # The spec's 13 tables plus quarantine_bz; with the view, the course's 14 checks + 1.
    assert len(TABLES) == 13 and QUARANTINE in ALL_TABLES and len(ALL_TABLES) == 14
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
