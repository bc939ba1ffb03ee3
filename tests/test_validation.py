"""The shared validation helpers: failures show expected vs actual and the differing rows."""

import datetime as dt

import pandas as pd
import pytest

from sbit_lib.testing.validation import ValidationError, assert_count, assert_rows, diff_rows


def test_assert_count_shows_expected_and_found(spark):
    spark.range(3).createOrReplaceTempView("three")
    assert assert_count(spark, "three", 3) == 3
    with pytest.raises(ValidationError, match="three: expected 4 rows, found 3"):
        assert_count(spark, "three", 4)
    assert assert_count(spark, "three", 1, where="id > 1") == 1


def test_assert_rows_ignores_order_and_float_noise_but_not_values(spark):
    expected = pd.DataFrame({"k": [1, 2], "v": [0.1 + 0.2, 2.0],
                             "t": pd.to_datetime(["2023-03-11 08:05:00", "2023-03-11 09:00:00"])})
    actual = spark.createDataFrame(
        [(2, 2.0, dt.datetime(2023, 3, 11, 9)), (1, 0.3, dt.datetime(2023, 3, 11, 8, 5))], "k INT, v DOUBLE, t TIMESTAMP")
    assert assert_rows(actual, expected, "t") == 2

    wrong = spark.createDataFrame([(1, 0.3, dt.datetime(2023, 3, 11, 8, 5)), (2, 2.5, dt.datetime(2023, 3, 11, 9))],
                                  "k INT, v DOUBLE, t TIMESTAMP")
    with pytest.raises(ValidationError) as err:
        assert_rows(wrong, expected, "t")
    message = str(err.value)
    assert "1 expected rows missing, 1 unexpected rows" in message
    assert "2.5" in message and "2.0" in message


def test_duplicates_count_as_differences():
    expected = pd.DataFrame({"a": [1]})
    missing, unexpected = diff_rows(pd.DataFrame({"a": [1, 1]}), expected)
    assert (len(missing), len(unexpected)) == (0, 1)
