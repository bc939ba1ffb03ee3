"""Validation helpers shared by every layer: written once, not once per class like the course.

A failure raises :class:`ValidationError` whose message shows expected vs actual
and, for rows, the rows that differ.
"""

from __future__ import annotations

import math

import pandas as pd


class ValidationError(AssertionError):
    """A table does not hold what it should; the message says what differs."""


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


def assert_rows(actual, expected: pd.DataFrame, label: str, float_digits: int = 6,
                show: int = 10) -> int:
    """Check that `actual` (a Spark or pandas DataFrame) holds exactly the `expected` rows, in any order.

    Floats are compared rounded to `float_digits`; duplicates count. Returns the row count.
    """
    if not isinstance(actual, pd.DataFrame):
        actual = actual.toPandas()
    missing, unexpected = diff_rows(actual, expected, float_digits)
    if len(missing) or len(unexpected):
        with pd.option_context("display.width", 200, "display.max_columns", 20):
            raise ValidationError(
                f"{label}: {len(expected):,} rows expected, {len(actual):,} found; "
                f"{len(missing):,} expected rows missing, {len(unexpected):,} unexpected rows.\n"
                f"missing (first {show}):\n{missing.head(show).to_string(index=False)}\n"
                f"unexpected (first {show}):\n{unexpected.head(show).to_string(index=False)}"
            )
    print(f"  {label}: {len(expected):,} rows ok")
    return len(expected)


def assert_close(actual: float, expected: float, label: str, rel: float = 1e-9) -> None:
    """Check two numbers are equal within a relative tolerance."""
    if not math.isclose(actual, expected, rel_tol=rel, abs_tol=1e-9):
        raise ValidationError(f"{label}: expected {expected!r}, found {actual!r}")


AGE_TABLES = ("user_bins", "workout_bpm_summary")


def validate_tables(spark, config, n: int, tables, expectations=None) -> None:
    """Compare `tables` of `config`'s environment after set n with the expected results.

    Exact tables must equal the expected rows; a batch-dependent one (course mode's
    watermarked results, ``exact: false``) may only hold expected keys, at most as many.
    """
    from sbit_lib.testing.expectations import Expectations
    from sbit_lib.testing.spec import KEYS

    exp = expectations or Expectations.load(config.test_data)
    if config.as_of_date != exp.as_of and any(t in AGE_TABLES for t in tables):
        raise ValidationError(
            f"ages are computed as of {config.as_of_date} but the expected results as of {exp.as_of}: "
            f"run with SBIT_AS_OF={exp.as_of} (or --as-of / the as_of parameter)")
    for table in tables:
        expected = exp.table(config.mode, n, table)
        df = spark.table(config.qualified(table))
        label = f"{config.qualified(table)} after set {n} ({config.mode} mode)"
        if table == "heart_rate":
            _check_heart_rate(df, expected.aggregates, label)
        elif expected.rows is not None and expected.exact:
            assert_rows(df, expected.rows, label)
        elif expected.rows is not None:
            actual = df.toPandas()
            keys = list(KEYS[table])
            stray = actual.merge(expected.rows[keys].drop_duplicates(), on=keys, how="left", indicator=True)
            stray = stray[stray["_merge"] == "left_only"]
            if len(stray) or len(actual) > expected.count:
                raise ValidationError(
                    f"{label}: {len(actual):,} rows, at most {expected.count:,} expected; "
                    f"{len(stray):,} rows with keys the reference never produces:\n"
                    f"{stray[keys].head(10).to_string(index=False)}")
            print(f"  {label}: {len(actual):,} of at most {expected.count:,} rows ok (batch-dependent)")
        else:
            assert_count(spark, config.qualified(table), expected.count)


def _check_heart_rate(df, aggregates: dict, label: str) -> None:
    from pyspark.sql import functions as F

    row = df.agg(F.count("*").alias("count"), F.sum(F.col("valid").cast("int")).alias("valid_count"),
                 F.countDistinct("device_id").alias("distinct_devices"),
                 F.sum("heartrate").alias("sum_heartrate")).first()
    for key in ("count", "valid_count", "distinct_devices"):
        if row[key] != aggregates[key]:
            raise ValidationError(f"{label}: {key} expected {aggregates[key]:,}, found {row[key]:,}")
    assert_close(row["sum_heartrate"], aggregates["sum_heartrate"], f"{label} sum_heartrate", rel=1e-9)
    print(f"  {label}: {row['count']:,} readings ok")
