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
