"""The pipeline's table definitions (sbit_lib/course/tables.py) match the spec's tables as the
checks state them (sbit_lib/testing/spec.py, written from ../shared/docs/pipeline-spec.md):
a wrong column name, type or order in the pipeline fails here, not silently in both."""

import pytest

from sbit_lib.course.tables import GYM_SUMMARY, GYM_SUMMARY_COLUMNS, TABLES, parse_columns
from sbit_lib.testing.spec import KEYS, SCHEMAS

PIPELINE = {**{t.name: parse_columns(t.columns) for t in TABLES}, GYM_SUMMARY: parse_columns(GYM_SUMMARY_COLUMNS)}


def test_the_same_tables():
    assert sorted(PIPELINE) == sorted(SCHEMAS)


@pytest.mark.parametrize("table", sorted(SCHEMAS))
def test_columns_and_types_as_the_spec_states(table):
    assert PIPELINE[table] == SCHEMAS[table]


def test_the_comparison_fails_on_a_wrong_type():
    wrong = [(name, "string" if name == "zip" else kind) for name, kind in PIPELINE["user_profile"]]
    assert wrong != SCHEMAS["user_profile"]


def test_every_key_is_a_column():
    for table, keys in KEYS.items():
        assert set(keys) <= {name for name, _ in SCHEMAS[table]}, table
