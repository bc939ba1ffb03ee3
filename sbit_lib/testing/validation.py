"""Validation helpers shared by every layer: written once, not once per class like the course.

A failure raises :class:`ValidationError` whose message shows expected vs actual
and, for rows, the rows that differ. Its subclass :class:`IncompleteError` means
"not there yet": the table holds only what the reference produces (or an earlier
set's values) but not all of it, as a stream that is still catching up does. Anything
else -- a row the reference never produces, a duplicate key, a value that differs
from the expected one (and from the previous set's), more rows than expected, a
column of the wrong type -- is wrong, and raises a plain :class:`ValidationError`.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from pathlib import Path

import pandas as pd

from sbit_lib.testing.expectations import heart_rate_hash

COURSE_SUMMARY_FILE = "8-workout_bpm_summary_2.parquet"   # the course's summary after sets 1+2
COURSE_SUMMARY_SET = 2


class ValidationError(AssertionError):
    """A table does not hold what it should; the message says what differs."""


class IncompleteError(ValidationError):
    """A table holds only expected rows (or the previous set's values) but not all yet: it may still catch up."""


def assert_count(spark, table: str, expected: int, where: str | None = None) -> int:
    """Check that `table` (optionally filtered by a SQL `where`) has `expected` rows; return the count.

    >>> assert_count(spark, "dev_sbit_db.users", 5)   # doctest: +SKIP
    """
    df = spark.read.table(table)
    if where:
        df = df.where(where)
    actual = df.count()
    label = f"{table}" + (f" where {where}" if where else "")
    print(f"  {label}: expected {expected:,}, found {actual:,}", "ok" if actual == expected else "MISMATCH")
    if actual != expected:
        raise ValidationError(f"{label}: expected {expected:,} rows, found {actual:,}")
    return actual


def _normalise(df: pd.DataFrame, columns: list[str], float_digits: int) -> pd.DataFrame:
    out = df[columns].copy()
    for col in columns:
        if pd.api.types.is_float_dtype(out[col]):
            out[col] = out[col].round(float_digits)
        elif pd.api.types.is_datetime64_any_dtype(out[col]):
            out[col] = pd.to_datetime(out[col]).astype("datetime64[us]")
        elif pd.api.types.is_integer_dtype(out[col]):
            out[col] = out[col].astype("int64")
        else:
            out[col] = out[col].astype(object).where(out[col].notna(), None)
            out[col] = out[col].map(lambda v: v if v is None or isinstance(v, str) else str(v))
    return out


def diff_rows(actual: pd.DataFrame, expected: pd.DataFrame, float_digits: int = 6):
    """Return (missing, unexpected): expected rows not in actual, and actual rows not expected."""
    columns = list(expected.columns)
    absent = [c for c in columns if c not in actual.columns]
    if absent:
        raise ValidationError(f"columns missing from the table: {absent}; it has {list(actual.columns)}")
    a = _normalise(actual, columns, float_digits)
    e = _normalise(expected, columns, float_digits)
    a["_n"] = a.groupby(columns, dropna=False).cumcount()
    e["_n"] = e.groupby(columns, dropna=False).cumcount()
    merged = e.merge(a, on=columns + ["_n"], how="outer", indicator=True)
    missing = merged[merged["_merge"] == "left_only"][columns]
    unexpected = merged[merged["_merge"] == "right_only"][columns]
    return missing, unexpected


def _show(frame: pd.DataFrame, show: int) -> str:
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        return frame.head(show).to_string(index=False) if len(frame) else "(none)"


def assert_rows(actual, expected: pd.DataFrame, label: str, float_digits: int = 6,
                show: int = 10) -> int:
    """Check that `actual` (a Spark or pandas DataFrame) holds exactly the `expected` rows, in any order.

    Floats are compared rounded to `float_digits`; duplicates count. Returns the row count.
    """
    if not isinstance(actual, pd.DataFrame):
        actual = actual.toPandas()
    missing, unexpected = diff_rows(actual, expected, float_digits)
    if len(missing) or len(unexpected):
        raise ValidationError(
            f"{label}: {len(expected):,} rows expected, {len(actual):,} found; "
            f"{len(missing):,} expected rows missing, {len(unexpected):,} unexpected rows.\n"
            f"missing (first {show}):\n{_show(missing, show)}\n"
            f"unexpected (first {show}):\n{_show(unexpected, show)}"
        )
    print(f"  {label}: {len(expected):,} rows ok")
    return len(expected)


def assert_close(actual: float, expected: float, label: str, rel: float = 1e-9) -> None:
    """Check two numbers are equal within a relative tolerance."""
    if not math.isclose(actual, expected, rel_tol=rel, abs_tol=1e-9):
        raise ValidationError(f"{label}: expected {expected!r}, found {actual!r}")


def fingerprint(frame) -> tuple[int, int]:
    """A Spark DataFrame's rows in one aggregation: (row count, sum of a 64-bit hash of each row).

    Independent of row order, duplicates counted: equal multisets of rows give equal
    fingerprints, and different ones the same only by a hash collision. Spark's ``xxhash64``
    skips a NULL (``(1, NULL)`` and ``(NULL, 1)`` would hash alike), so which columns are NULL
    is hashed too. One job where comparing two tables with ``exceptAll`` both ways costs two
    shuffles. (Notebook 11 writes the same aggregation in a cell of its own, where the reader
    sees it.)
    """
    from pyspark.sql import functions as F

    row_hash = F.xxhash64(*frame.columns, *(F.col(c).isNull() for c in frame.columns))
    count, total = frame.agg(F.count("*"), F.sum(row_hash.cast("decimal(38,0)"))).first()
    return count, int(total or 0)


# ----------------------------------------------------------------------------------
# schema
# ----------------------------------------------------------------------------------
def check_schema(df, table: str, label: str | None = None) -> None:
    """Check a Spark DataFrame's columns (names, order, types) against the spec's (`spec.SCHEMAS`).

    Tables the spec does not list (``quarantine_bz``, ...) are not checked. Raises
    :class:`ValidationError` naming each column that differs.
    """
    from sbit_lib.testing.spec import SCHEMAS

    spec = SCHEMAS.get(table)
    if spec is None:
        return
    label = label or table
    actual = [(f.name, f.dataType.simpleString()) for f in df.schema.fields]
    names, wanted = [n for n, _ in actual], [n for n, _ in spec]
    problems = [f"column {name!r} ({kind}) is missing" for name, kind in spec if name not in names]
    problems += [f"column {name!r} ({kind}) is not in the spec" for name, kind in actual if name not in wanted]
    types = dict(actual)
    problems += [f"column {name!r} is {types[name]}, the spec says {kind}"
                 for name, kind in spec if name in types and types[name] != kind]
    if not problems and names != wanted:
        problems.append(f"columns are in the order {names}, the spec's order is {wanted}")
    if problems:
        raise ValidationError(f"{label}: schema differs from the spec: " + "; ".join(problems))


# ----------------------------------------------------------------------------------
# classification of differing rows
# ----------------------------------------------------------------------------------
def _cell(value):
    """A comparable, hashable cell: every kind of NULL/NaN as None."""
    try:
        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        pass
    return value


def _tuples(frame: pd.DataFrame, columns: list[str]) -> list[tuple]:
    return [tuple(_cell(v) for v in row) for row in frame[columns].itertuples(index=False, name=None)]


def _check_exact(actual: pd.DataFrame, expected, previous, keys: list[str], label: str, show: int = 10) -> int:
    """Compare a table with exactly expected rows; classify a difference as not-yet or wrong."""
    rows = expected.rows
    columns = list(rows.columns)
    missing, unexpected = diff_rows(actual, rows)
    if not len(missing) and not len(unexpected):
        print(f"  {label}: {len(rows):,} rows ok")
        return len(rows)
    e = _normalise(rows, columns, 6)
    p = _normalise(previous.rows, columns, 6) if previous is not None and previous.rows is not None else None
    expected_keys = Counter(_tuples(e, keys))
    actual_keys = Counter(_tuples(_normalise(actual, columns, 6), keys))
    allowed: dict[tuple, dict[str, set]] = {}
    for frame in (e, p) if p is not None else (e,):
        for key, values in zip(_tuples(frame, keys), _tuples(frame, columns)):
            if key in expected_keys:
                slot = allowed.setdefault(key, {c: set() for c in columns})
                for c, v in zip(columns, values):
                    slot[c].add(v)
    never, duplicated, changed, stale = [], [], [], []
    for key, values in zip(_tuples(unexpected, keys), _tuples(unexpected, columns)):
        if key not in expected_keys:
            never.append(values)
        elif actual_keys[key] > expected_keys[key]:
            duplicated.append(values)
        elif all(v in allowed[key][c] for c, v in zip(columns, values)):
            stale.append(values)            # each value is this set's or the previous set's
        else:
            changed.append(values)
    more = len(actual) > expected.count
    if never or duplicated or changed or more:
        parts = [f"{label}: wrong: {len(actual):,} rows, {expected.count:,} expected"]
        if never:
            parts.append(f"{len(never):,} rows with keys the reference never produces (first {show}):\n"
                         + _show(pd.DataFrame(never, columns=columns), show))
        if duplicated:
            parts.append(f"{len(duplicated):,} rows repeat a key {keys} (first {show}):\n"
                         + _show(pd.DataFrame(duplicated, columns=columns), show))
        if changed:
            shown = pd.DataFrame(changed, columns=columns)
            wanted = e.merge(shown[keys].drop_duplicates(), on=keys, how="inner")
            parts.append(f"{len(changed):,} rows differ from the expected row of their key (first {show}):\n"
                         + _show(shown, show) + f"\nexpected for those keys:\n{_show(wanted, show)}")
        if len(missing):
            parts.append(f"{len(missing):,} expected rows missing (first {show}):\n{_show(missing, show)}")
        raise ValidationError("\n".join(parts))
    stale_note = f", {len(stale):,} rows still hold the previous set's values" if stale else ""
    raise IncompleteError(
        f"{label}: not there yet: {len(actual):,} of {expected.count:,} rows, "
        f"{len(missing):,} expected rows missing{stale_note} (first {show} missing):\n{_show(missing, show)}")


def _check_bounded(actual: pd.DataFrame, table: str, expected, keys: list[str], label: str, config=None,
                   n: int | None = None, show: int = 10) -> int:
    """Course mode's batch-dependent tables: only expected rows/keys, within the bounds (EXPECTED.md)."""
    rows = expected.rows
    columns = list(rows.columns)
    problems = []
    if len(actual) > expected.count:
        problems.append(f"{len(actual):,} rows, at most {expected.count:,} expected")
    actual_keys = Counter(_tuples(_normalise(actual, columns, 6), keys))
    repeated = [k for k, c in actual_keys.items() if c > 1]
    if repeated:
        problems.append(f"{len(repeated):,} keys {keys} appear more than once: {repeated[:show]}")
    if table == "workout_bpm":
        _, unexpected = diff_rows(actual, rows)
        if len(unexpected):
            problems.append(f"{len(unexpected):,} rows the reference never produces (first {show}):\n"
                            + _show(unexpected, show))
    else:
        problems += _summary_bounds(actual, rows, keys, show)
        if config is not None and n is not None and n >= COURSE_SUMMARY_SET:
            problems += _course_summary_rows(actual, expected, Path(config.test_data) / COURSE_SUMMARY_FILE, keys)
    if problems:
        raise ValidationError(f"{label}: wrong (batch-dependent table): " + "\n".join(problems))
    lacking = []
    if "must_emit" in expected.aggregates:
        present = set(actual_keys)
        lacking = [tuple(k) for k in expected.aggregates["must_emit"] if tuple(k) not in present]
    if len(actual) < expected.min_count or lacking:
        raise IncompleteError(
            f"{label}: not there yet: {len(actual):,} rows, at least {expected.min_count:,} expected"
            + (f"; workouts the watermark has passed, not emitted yet: {lacking[:show]}" if lacking else ""))
    print(f"  {label}: {len(actual):,} rows, between {expected.min_count:,} and {expected.count:,}, "
          "only expected ones, ok (batch-dependent)")
    return len(actual)


def _summary_bounds(actual: pd.DataFrame, rows: pd.DataFrame, keys: list[str], show: int) -> list[str]:
    problems = []
    merged = actual.merge(rows, on=keys, how="left", suffixes=("", "_expected"), indicator=True)
    stray = merged[merged["_merge"] == "left_only"]
    if len(stray):
        problems.append(f"{len(stray):,} rows with keys the reference never produces (first {show}):\n"
                        + _show(stray[list(rows.columns)], show))
    both = merged[merged["_merge"] == "both"]
    tol = 1e-9
    checks = (
        (both["num_recordings"] > both["num_recordings_expected"], "num_recordings above the expected row's",
         ["num_recordings", "num_recordings_expected"]),
        (both["min_bpm"] < both["min_bpm_expected"] - tol, "min_bpm below the expected row's",
         ["min_bpm", "min_bpm_expected"]),
        (both["max_bpm"] > both["max_bpm_expected"] + tol, "max_bpm above the expected row's",
         ["max_bpm", "max_bpm_expected"]),
        ((both["avg_bpm"] < both["min_bpm"] - tol) | (both["avg_bpm"] > both["max_bpm"] + tol),
         "avg_bpm outside the row's own [min_bpm, max_bpm]", ["min_bpm", "avg_bpm", "max_bpm"]),
    )
    for bad, what, columns in checks:
        if bad.any():
            problems.append(f"{int(bad.sum()):,} rows with {what} (first {show}):\n"
                            + _show(both.loc[bad, keys + columns], show))
    return problems


def _course_summary_rows(actual: pd.DataFrame, expected, path: Path, keys: list[str]) -> list[str]:
    """The course's own expected summary (file 8): its rows that the watermark must have emitted.

    What the course's semantics reproduce: the key, the user's bins (age as of the
    expectations' as-of date, gender, city, state), and num_recordings at most the course's
    (its heart-rate files are not published; it has one reading per second of a workout).
    """
    if not path.is_file() or "must_emit" not in expected.aggregates:
        return []
    course = pd.read_parquet(path)
    must = {tuple(k) for k in expected.aggregates["must_emit"]}
    mine = {tuple(int(v) for v in k): row for k, row in zip(_tuples(actual, keys), actual.to_dict("records"))}
    problems = []
    for row in course.to_dict("records"):
        key = tuple(int(row[k]) for k in keys)
        if key not in must or key not in mine:       # not emitted yet: the must_emit check says so
            continue
        got = mine[key]
        differs = [f"{c} {got[c]!r} (the course's {row[c]!r})" for c in ("age", "gender", "city", "state")
                   if got[c] != row[c]]
        if got["num_recordings"] > row["num_recordings"]:
            differs.append(f"num_recordings {got['num_recordings']} > the course's {row['num_recordings']}")
        if differs:
            problems.append(f"the course's {path.name} row {key} differs: " + ", ".join(differs))
    return problems


# ----------------------------------------------------------------------------------
# heart_rate: an order-independent hash of every row
# ----------------------------------------------------------------------------------
def heart_rate_rows(df) -> pd.DataFrame:
    """The heart_rate rows of a Spark DataFrame as pandas: device_id, time_us (integer microseconds), heartrate, valid."""
    return df.selectExpr("device_id", "unix_micros(time) AS time_us", "heartrate", "valid").toPandas()


def _hash_of(rows: pd.DataFrame) -> str:
    return heart_rate_hash(rows["device_id"], rows["time_us"], rows["heartrate"], rows["valid"])


def _check_heart_rate(df, expected, label: str, config=None, n: int | None = None, quick: bool = False) -> int:
    aggregates = expected.aggregates
    if "row_hash" not in aggregates:
        raise ValidationError(f"{label}: the expectations give no heart_rate row_hash (see test_data/EXPECTED.md): "
                              "regenerate them with `sbit prepare-data`")
    if quick:
        count = df.count()
        if count < expected.count:
            raise IncompleteError(f"{label}: not there yet: {count:,} rows, {expected.count:,} expected")
    started = time.monotonic()
    rows = heart_rate_rows(df)
    found = _hash_of(rows)
    if found == aggregates["row_hash"] and len(rows) == expected.count:
        print(f"  {label}: {len(rows):,} readings ok (row hash {found}, {time.monotonic() - started:.1f} s)")
        return len(rows)
    difference, only_missing = heart_rate_difference(rows, aggregates, config, n)
    if only_missing is None:          # rows not compared: fewer rows may still be catching up
        only_missing = len(rows) < expected.count
    detail = (f"row hash {found}, expected {aggregates['row_hash']} "
              f"({len(rows):,} rows, {expected.count:,} expected)\n{difference}")
    if only_missing:
        raise IncompleteError(f"{label}: not there yet: {detail}")
    raise ValidationError(f"{label}: wrong: {detail}")


def _iso(us) -> str:
    """Integer microseconds -> naive UTC ISO 8601, like the expectations' min_time / max_time."""
    return (pd.Timestamp(0) + pd.Timedelta(microseconds=int(us))).isoformat()


def _with_time(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.assign(time=pd.to_datetime(frame["time_us"], unit="us"))


def _summary_numbers(rows: pd.DataFrame) -> dict:
    valid = rows["valid"].fillna(False).astype(bool)
    times = rows["time_us"].dropna().astype("int64")
    return {
        "count": len(rows), "valid_count": int(valid.sum()), "distinct_devices": int(rows["device_id"].nunique()),
        "min_time": _iso(times.min()) if len(times) else None, "max_time": _iso(times.max()) if len(times) else None,
        "sum_heartrate": round(math.fsum(rows["heartrate"].dropna().tolist()), 6),
    }


def heart_rate_difference(rows: pd.DataFrame, aggregates: dict, config=None, n: int | None = None,
                          show: int = 10) -> tuple[str, bool | None]:
    """What differs between heart_rate `rows` (:func:`heart_rate_rows`) and the expectations after set n.

    Returns (text, only_missing). The text gives the summary numbers that differ; and the
    rows themselves when the reference can recompute them from ``config.test_data`` (its
    input files for sets 1..n): then `only_missing` says whether the table only lacks rows
    (None: rows not compared).
    """
    lines = []
    numbers = _summary_numbers(rows)
    for key, value in numbers.items():
        want = aggregates.get(key)
        same = (math.isclose(value, want, rel_tol=1e-9) if key == "sum_heartrate" and want is not None
                else value == want)
        if not same:
            lines.append(f"  {key}: found {value!r}, expected {want!r}")
    text = "summary numbers that differ:\n" + ("\n".join(lines) if lines else "  (none)")
    if config is None or n is None:
        return text + "\n(no data folder given: rows not compared)", None
    folder = Path(config.test_data)
    if not all((folder / f"3-bpm_{k}.json").is_file() for k in range(1, n + 1)):
        return text + f"\n({folder} lacks the heart-rate files of sets 1..{n}: rows not compared)", None
    from sbit_lib.testing import reference  # only on a mismatch: recompute the expected rows

    hr = reference._Inputs(folder, range(1, n + 1)).heart_rate
    hr = hr[hr["set"] <= n]
    want = pd.DataFrame({"device_id": hr["device_id"].to_numpy(), "time_us": hr["time_us"].to_numpy(),
                         "heartrate": hr["heartrate"].to_numpy(), "valid": (hr["heartrate"] > 0).to_numpy()})
    if _hash_of(want) != aggregates.get("row_hash"):
        text += (f"\nnote: the rows recomputed from {folder} do not hash to the expected row_hash either: "
                 "the input files changed since the expectations were written (`sbit prepare-data`)")
    key = ["device_id", "time_us"]
    got = rows.copy()
    got["_n"] = got.groupby(key, dropna=False).cumcount()
    want["_n"] = 0
    merged = want.merge(got, on=key + ["_n"], how="outer", suffixes=("_expected", ""), indicator=True)
    missing = merged[merged["_merge"] == "left_only"]
    extra = merged[merged["_merge"] == "right_only"]
    both = merged[merged["_merge"] == "both"]
    same_rate = (both["heartrate"] == both["heartrate_expected"]) | (
        both["heartrate"].isna() & both["heartrate_expected"].isna())
    changed = both[~same_rate | (both["valid"].astype(object) != both["valid_expected"].astype(object))]
    text += (f"\nrows compared with the reference's, recomputed from {folder} (sets 1..{n}): "
             f"{len(missing):,} missing, {len(extra):,} unexpected (duplicates included), {len(changed):,} changed")
    if len(missing):
        text += f"\nmissing (first {show}):\n" + _show(_with_time(missing)[["device_id", "time", "heartrate_expected",
                                                                     "valid_expected"]], show)
    if len(extra):
        text += f"\nunexpected (first {show}):\n" + _show(_with_time(extra)[["device_id", "time", "heartrate", "valid"]],
                                                          show)
    if len(changed):
        text += f"\nchanged (first {show}):\n" + _show(_with_time(changed)[["device_id", "time", "heartrate",
                                                                      "heartrate_expected", "valid",
                                                                      "valid_expected"]], show)
    per_device = (rows.groupby("device_id").size().rename("found").to_frame()
                  .join(want.groupby("device_id").size().rename("expected"), how="outer").fillna(0).astype("int64"))
    per_device = per_device[per_device["found"] != per_device["expected"]].reset_index()
    if len(per_device):
        text += f"\nrows per device that differ (first {show}):\n" + _show(per_device, show)
    return text, not len(extra) and not len(changed)


# ----------------------------------------------------------------------------------
# every table
# ----------------------------------------------------------------------------------
AGE_TABLES = ("user_bins", "workout_bpm_summary")


def check_table(spark, config, n: int, table: str, expectations=None, quick: bool = False) -> int:
    """Compare one table of `config`'s environment after set n with the expected results.

    Raises :class:`IncompleteError` when the table only lacks expected rows (or holds
    the previous set's values), :class:`ValidationError` when it is wrong; returns the
    row count when it is valid. With `quick` (a poll), a heart_rate with fewer rows than
    expected is "not there yet" without fetching its rows.
    """
    from sbit_lib.testing.expectations import Expectations
    from sbit_lib.testing.spec import KEYS

    exp = expectations or Expectations.load(config.test_data)
    expected = exp.table(config.mode, n, table)
    df = spark.table(config.qualified(table))
    label = f"{config.qualified(table)} after set {n} ({config.mode} mode)"
    check_schema(df, table, label)
    if table == "heart_rate":
        return _check_heart_rate(df, expected, label, config, n, quick)
    if expected.rows is None:
        found = df.count()
        if found < expected.count:
            raise IncompleteError(f"{label}: not there yet: {found:,} rows, {expected.count:,} expected")
        if found > expected.count:
            raise ValidationError(f"{label}: wrong: {found:,} rows, {expected.count:,} expected")
        print(f"  {label}: {found:,} rows ok")
        return found
    keys = list(KEYS.get(table, expected.rows.columns))
    actual = df.toPandas()
    if not expected.exact:
        return _check_bounded(actual, table, expected, keys, label, config, n)
    previous = None
    if n - 1 in exp.sets:
        previous = exp.table(config.mode, n - 1, table)
    return _check_exact(actual, expected, previous, keys, label)


def validate_tables(spark, config, n: int, tables, expectations=None) -> None:
    """Compare `tables` of `config`'s environment after set n with the expected results.

    Each table's columns must be the spec's; exact tables must equal the expected rows,
    ``heart_rate`` its row hash; a batch-dependent one (course mode's watermarked
    results, ``exact: false``) may only hold expected rows/keys, within the bounds
    test_data/EXPECTED.md gives (at least ``min_count``, at most ``count``).
    """
    from sbit_lib.testing.expectations import Expectations

    exp = expectations or Expectations.load(config.test_data)
    if config.as_of_date != exp.as_of and any(t in AGE_TABLES for t in tables):
        raise ValidationError(
            f"ages are computed as of {config.as_of_date} but the expected results as of {exp.as_of}: "
            f"run with SBIT_AS_OF={exp.as_of} (or --as-of / the as_of parameter)")
    for table in tables:
        check_table(spark, config, n, table, exp)
