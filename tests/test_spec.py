"""The spec's tables agree in three places: docs/pipeline-spec.md (the project's statement of
what every table holds), sbit_lib/testing/spec.py (the same columns and keys as the checks use
them) and the pipeline's table definitions (sbit_lib/course/tables.py). A wrong column name,
type or order, or a wrong key, in any one of them fails here, not silently in all of them.

The doc is parsed: every ``### `<table>``` section holds one ```` ```columns ```` block, one
``<column> <type>`` per line in the table's order, and one ``Key:`` line naming the key
columns in backticks (``Key: none`` for an append-only table).
"""

from __future__ import annotations

import re

import pytest

from sbit_lib import PROJECT_ROOT
from sbit_lib.course.tables import GYM_SUMMARY, GYM_SUMMARY_COLUMNS, QUARANTINE, REJECTS, TABLES, parse_columns
from sbit_lib.testing.spec import BRONZE_TABLES, KEYS, SCHEMAS

SPEC_DOC = PROJECT_ROOT / "docs" / "pipeline-spec.md"
PIPELINE = {**{t.name: parse_columns(t.columns) for t in TABLES}, GYM_SUMMARY: parse_columns(GYM_SUMMARY_COLUMNS)}
# The pipeline's own bad-input tables: in the doc and in tables.py, not among the spec's checked tables.
OWN_TABLES = {t.name: parse_columns(t.columns) for t in (QUARANTINE, REJECTS)}

_SECTION = re.compile(r"^### `(\w+)`[ \t]*$", re.M)
_COLUMNS = re.compile(r"^```columns[ \t]*\n(.*?)^```[ \t]*$", re.M | re.S)
_KEY = re.compile(r"^Key:[ \t]*(.*?)[ \t]*$", re.M)
_KEY_NAMES = re.compile(r"`\w+`(?:, `\w+`)*")


class SpecDocError(ValueError):
    """The doc does not follow the layout the parser reads."""


def parse_spec(text: str) -> tuple[dict[str, list[tuple[str, str]]], dict[str, tuple[str, ...]]]:
    """({table: [(column, type)]}, {table: key columns}) of the doc's text; keyless tables have no key entry."""
    schemas: dict[str, list[tuple[str, str]]] = {}
    keys: dict[str, tuple[str, ...]] = {}
    parts = _SECTION.split(text)
    for name, body in zip(parts[1::2], parts[2::2]):
        body = re.split(r"^## ", body, maxsplit=1, flags=re.M)[0]  # the section ends at the next part
        blocks, key_lines = _COLUMNS.findall(body), _KEY.findall(body)
        if len(blocks) != 1 or len(key_lines) != 1:
            raise SpecDocError(f"{name}: want one ```columns block and one Key: line, "
                               f"got {len(blocks)} and {len(key_lines)}")
        if name in schemas:
            raise SpecDocError(f"{name}: stated twice")
        columns = []
        for line in blocks[0].splitlines():
            fields = line.split()
            if len(fields) != 2:
                raise SpecDocError(f"{name}: {line!r} is not `<column> <type>`")
            columns.append((fields[0], fields[1]))
        schemas[name] = columns
        key = key_lines[0]
        if key == "none":
            continue
        if not _KEY_NAMES.fullmatch(key):
            raise SpecDocError(f"{name}: Key: {key!r} is neither `none` nor backticked column names")
        keys[name] = tuple(re.findall(r"`(\w+)`", key))
    return schemas, keys


@pytest.fixture(scope="module")
def doc_text() -> str:
    if not SPEC_DOC.is_file():
        pytest.fail(f"{SPEC_DOC} is missing: the project's statement of every table")
    return SPEC_DOC.read_text()


@pytest.fixture(scope="module")
def doc(doc_text):
    return parse_spec(doc_text)


# ---------------------------------------------------------------------------- tables.py vs spec.py
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


# ---------------------------------------------------------------------------- the doc vs spec.py
def test_the_doc_states_the_spec_tables_and_the_pipelines_own_two(doc):
    schemas, _ = doc
    assert sorted(schemas) == sorted([*SCHEMAS, *OWN_TABLES])


@pytest.mark.parametrize("table", sorted(SCHEMAS))
def test_the_doc_states_each_tables_columns_and_types_in_order(doc, table):
    schemas, _ = doc
    assert schemas[table] == SCHEMAS[table]


def test_the_doc_states_the_keys_and_only_the_bronze_tables_have_none(doc):
    schemas, keys = doc
    assert keys == KEYS
    assert sorted(t for t in SCHEMAS if t not in keys) == sorted(BRONZE_TABLES)


def test_the_doc_states_the_bad_input_tables_as_the_pipeline_defines_them(doc):
    schemas, keys = doc
    for table, columns in OWN_TABLES.items():
        assert schemas[table] == columns, table
        assert table not in keys, table


# ---------------------------------------------------------------------------- the doc check can fail
def changed(text: str, pattern: str, replacement: str) -> str:
    """`text` with the one line matching `pattern` replaced: the change must happen exactly once."""
    new, count = re.subn(pattern, replacement, text, flags=re.M)
    assert count == 1, f"{pattern!r} matched {count} times: the negative check would test nothing"
    return new


def test_a_changed_type_column_order_or_key_in_the_doc_is_noticed(doc_text):
    schemas, _ = parse_spec(changed(doc_text, r"^zip(\s+)int$", r"zip\1string"))
    assert schemas["user_profile"] != SCHEMAS["user_profile"]

    schemas, _ = parse_spec(changed(doc_text, r"^(min_bpm\s+double)\n(avg_bpm\s+double)$", r"\2\n\1"))
    assert schemas["workout_bpm_summary"] != SCHEMAS["workout_bpm_summary"]

    schemas, _ = parse_spec(changed(doc_text, r"^valid(\s+)boolean$", r"is_valid\1boolean"))
    assert schemas["heart_rate"] != SCHEMAS["heart_rate"]

    _, keys = parse_spec(changed(doc_text, r"^Key: `user_id`, `time`$", "Key: `user_id`"))
    assert keys["workouts"] != KEYS["workouts"]


def test_a_doc_the_parser_cannot_read_fails_loudly(doc_text):
    without_block = changed(doc_text, r"^```columns\n(?=date        date)", "```\n")
    with pytest.raises(SpecDocError, match="date_lookup: want one ```columns block"):
        parse_spec(without_block)
    with pytest.raises(SpecDocError, match="is not `<column> <type>`"):
        parse_spec(changed(doc_text, r"^zip(\s+)int$", r"zip int not null"))
    with pytest.raises(SpecDocError, match="neither `none`"):
        parse_spec(changed(doc_text, r"^Key: `date`$", "Key: date"))
    extra = doc_text + "\n### `made_up`\n\n```columns\nid  int\n```\n\nKey: `id`\n"
    assert sorted(parse_spec(extra)[0]) != sorted([*SCHEMAS, *OWN_TABLES])


def test_parse_spec_reads_a_small_doc():
    text = ("# Spec\n\n## Part\n\n### `t`\n\nText.\n\n```columns\na  int\nb  string\n```\n\nKey: `a`\n\n"
            "### `log`\n\n```columns\nline  string\n```\n\nKey: none\n\n## After\n\nKey: `ignored`\n")
    assert parse_spec(text) == ({"t": [("a", "int"), ("b", "string")], "log": [("line", "string")]}, {"t": ("a",)})
