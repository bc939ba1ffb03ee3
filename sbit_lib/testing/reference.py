"""Independent reference computation of every table after each set (plain Python + pandas).

The expected contents of the lakehouse after sets 1..n (n = 1..10) have been landed
and processed, in both modes, computed from the input files alone -- never from the
Spark pipeline's output -- and written to ``<data folder>/expected/`` in the format
documented in ``test_data/EXPECTED.md`` (read back with :mod:`sbit_lib.testing.expectations`).

Usage::

    python -m sbit_lib.testing.reference [folder] [--out DIR] [--as-of YYYY-MM-DD] [--force]

Rules (docs/pipeline-spec.md wins; where it leaves room):

* arrival order is set order, then file order (2-user_info, 3-bpm, 4-workout), then
  line order; each set is one run (one micro-batch per source);
* times are kept as integer microseconds, ``trunc(seconds * 1e6)`` like Spark's
  DOUBLE -> TIMESTAMP cast; course mode first rounds workout and profile event
  times to float32 (the course's FLOAT schema: multiples of 128 s in 2023);
* bad input (README "Bad input"), stated here again from the rules, not imported from
  the pipeline: a line Spark's PERMISSIVE reader cannot parse (a CSV line with another
  number of fields or a value of another type, a JSON line that is not an object or
  whose partition/offset/timestamp is not an integer) is quarantined with its reason;
  a CSV file whose header lacks or adds a column is quarantined whole, one in another
  order is read by name; a record a silver table cannot use is rejected with the
  table's reason (:func:`_reject_registration` and friends); fields inside a Kafka
  ``value`` are typed like ``from_json``: a number given as text is NULL;
* of two records with one key (a reading of one device at one time, a workout event of
  one user at one time) the first to arrive wins: earlier set, then lower Kafka offset.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import io
import json
import math
import os
import re
import shutil
import sys
import time
from collections import Counter
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import numpy as np
import pandas as pd

# Only the file hash is shared with the generator; the expected values are computed here.
from sbit_lib import PROJECT_ROOT
from sbit_lib.testing.bpm_generator import sha256
from sbit_lib.testing.expectations import (
    EXPECTED_DIR,
    FORMAT_VERSION,
    MANIFEST,
    MODES,
    ExpectationsError,
    TableExpectation,
)
from sbit_lib.testing.spec import SCHEMAS

REFERENCE_AS_OF = dt.date(2023, 3, 31)
# Bump when a rule below changes: existing expected/ folders are then rebuilt.
RULES_VERSION = 3
SETS = tuple(range(1, 11))
US = 1_000_000
THREE_HOURS_US = 3 * 3600 * US
DAY_SECONDS = 86_400
EPOCH = dt.date(1970, 1, 1)

AGE_BINS = (
    (18, "under 18"), (25, "18-25"), (35, "25-35"), (45, "35-45"), (55, "45-55"),
    (65, "55-65"), (75, "65-75"), (85, "75-85"), (95, "85-95"),
)

COURSE_WORKOUT_BPM_NOTE = (
    "course mode: workout_bpm is a watermarked stream-stream join, so readings behind the "
    "watermark may be dropped depending on micro-batch boundaries. These are all rows the join "
    "can produce (float32 workout times); check that every produced row (key and values) is "
    "among them, that the row count is <= count, and at least the aggregates' min_count "
    "(rows the watermark cannot have dropped; test_data/EXPECTED.md)."
)
COURSE_SUMMARY_NOTE = (
    "course mode: workout_bpm_summary is a watermarked (30 s on end_time) append-mode, "
    "insert-only aggregation; which workouts are emitted and over which readings depends on "
    "micro-batch boundaries (late readings may be dropped, the last workouts are held back). "
    "These rows aggregate every reading the join can produce (float32 workout times). Check: "
    "every emitted (user_id, workout_id, session_id) is among these keys, the row count is "
    "<= count, and per emitted row num_recordings <= this num_recordings, "
    "min_bpm >= this min_bpm, max_bpm <= this max_bpm; and at least the aggregates' min_count "
    "rows, the must_emit keys among them (test_data/EXPECTED.md)."
)


# The reasons, worded like the pipeline's (a drift fails the comparison of the rejects).
CSV_LINE_REASON = "wrong number of fields, or a value of the wrong type"
JSON_LINE_REASON = "not a JSON object, or a field of the wrong type"
NOT_JSON = "value is not a JSON object"
MIN_SECONDS, MAX_SECONDS = -62135596800, 253402300799   # TIMESTAMP's years 1..9999
# Projections of the quarantine and reject tables that the expectations hold.
REJECT_SCHEMAS = {
    "quarantine_bz": [("source", "string"), ("reason", "string"), ("file", "string")],
    "rejects_sv": [("target_table", "string"), ("reason", "string"), ("file", "string")],
}


def _header_reason(missing: list[str], extra: list[str]) -> str:
    parts = ([f"missing column(s) {', '.join(missing)}"] if missing else []) + (
        [f"unexpected column(s) {', '.join(extra)}"] if extra else [])
    return "header " + "; ".join(parts) + ": file quarantined whole"


def _json_int(value, bits: int = 64) -> int | None:
    """A JSON field read as INT/BIGINT by from_json: an integer in range, else NULL."""
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value if -(2 ** (bits - 1)) <= value < 2 ** (bits - 1) else None


def _json_num(value) -> float | None:
    """A JSON field read as DOUBLE/FLOAT by from_json: a number, else NULL."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def _out_of_range(seconds) -> bool:
    return seconds is not None and not (MIN_SECONDS <= seconds <= MAX_SECONDS)


# ----------------------------------------------------------------------------------
# small helpers
# ----------------------------------------------------------------------------------
def _f32(x: float) -> float:
    """Round to the nearest float32 (the course's FLOAT schema) and back to a Python float."""
    return float(np.float32(x))


def _to_us(seconds) -> int | None:
    """Seconds (number) -> integer microseconds, truncating like Spark's DOUBLE -> TIMESTAMP."""
    if seconds is None:
        return None
    try:
        value = float(seconds)
    except (TypeError, ValueError):
        return None
    if math.isnan(value) or math.isinf(value):
        return None
    return int(value * US)


def _floor_s(us: int) -> int:
    """Whole epoch seconds of a microsecond timestamp (like unix_timestamp / CAST AS LONG)."""
    return us // US


def _us_to_date(us: int) -> dt.date:
    return EPOCH + dt.timedelta(days=us // (DAY_SECONDS * US))


def _us_iso(us) -> str | None:
    if us is None:
        return None
    value = dt.datetime(1970, 1, 1) + dt.timedelta(microseconds=int(us))
    return value.isoformat()


def _int(value) -> int | None:
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, str):
        value = value.strip()
        if not value:
            return None
    try:
        return int(value)
    except (TypeError, ValueError):
        pass
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) or math.isinf(number) else int(number)


def _float(value) -> float | None:
    if value is None or value == "":
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) else number


def _str(value) -> str | None:
    return None if value is None else str(value)


def _minutes(seconds: int) -> float:
    """round(seconds / 60, 2) with HALF_UP like Spark's round()."""
    return float((Decimal(seconds) / Decimal(60)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))


def age_years(dob: dt.date, as_of: dt.date) -> int:
    """Completed years between `dob` and `as_of`."""
    return as_of.year - dob.year - ((as_of.month, as_of.day) < (dob.month, dob.day))


def age_bin(age: int | None) -> str | None:
    """The course's age bin of an age in completed years (lower bound inclusive)."""
    if age is None:
        return None
    for upper, label in AGE_BINS:
        if age < upper:
            return label
    return "95+"


def _parse_dob(value) -> dt.date | None:
    try:
        return dt.datetime.strptime(str(value), "%m/%d/%Y").date()
    except (TypeError, ValueError):
        return None


def _nonblank(lines) -> list:
    return [line for line in lines if line.strip()]


# ----------------------------------------------------------------------------------
# input files
# ----------------------------------------------------------------------------------
def input_files(folder, sets=SETS) -> list[str]:
    """Names of the input files (present in `folder`) the reference reads for `sets`."""
    folder = Path(folder)
    last = max(sets) if sets else 0
    names = ["6-date-lookup.json"]
    for n in range(1, last + 1):
        names += [
            f"1-registered_users_{n}.csv", f"2-user_info_{n}.json", f"3-bpm_{n}.json",
            f"4-workout_{n}.json", f"5-gym_logins_{n}.csv",
        ]
    return [name for name in names if (folder / name).is_file()]


def _csv_value(kind: str, text: str):
    """(ok, value) of one CSV field the way Spark's CSV reader types it ('' is NULL)."""
    if text == "":
        return True, None
    if kind == "bigint":
        if not re.fullmatch(r"[+-]?\d+", text) or not -(2 ** 63) <= int(text) < 2 ** 63:
            return False, None
        return True, int(text)
    if kind == "double":
        try:
            return True, float(text)
        except ValueError:
            return False, None
    return True, text


def _read_csv(path: Path, table: str) -> tuple[int, list[dict], list[str]]:
    """(landed records, parsed rows, quarantine reasons) of a bronze CSV with header.

    Blank lines are not records. Columns are read by the header's names; a header that
    lacks or adds a column quarantines every line of the file.
    """
    if not path.is_file():
        return 0, [], []
    with path.open(newline="") as handle:
        text = handle.read()
    rows = [row for row in csv.reader(io.StringIO(text)) if any(cell.strip() for cell in row)]
    if not rows:
        return 0, [], []
    wanted = [(n, k) for n, k in SCHEMAS[table] if n not in ("load_time", "source_file")]
    names = [name.strip().strip('"') for name in rows[0]]
    data = rows[1:]
    wanted_names = [n for n, _ in wanted]
    if sorted(names) != sorted(wanted_names):
        missing = [n for n in wanted_names if n not in names]
        extra = [n for n in names if n not in wanted_names]
        return len(data), [], [_header_reason(missing, extra)] * len(data)
    kinds = dict(wanted)
    parsed, quarantined = [], []
    for row in data:
        if len(row) != len(names):
            quarantined.append(CSV_LINE_REASON)
            continue
        values = {name: _csv_value(kinds[name], cell) for name, cell in zip(names, row)}
        if not all(ok for ok, _ in values.values()):
            quarantined.append(CSV_LINE_REASON)
            continue
        parsed.append({name: value for name, (_, value) in values.items()})
    return len(data), parsed, quarantined


def _envelope(line: str) -> dict | None:
    """A Kafka JSON line as Spark's reader keeps it, or None when it is quarantined."""
    try:
        record = json.loads(line)
    except ValueError:
        return None
    if not isinstance(record, dict):
        return None
    if any(record.get(f) is not None and _json_int(record.get(f)) is None
           for f in ("partition", "offset", "timestamp")):
        return None
    return record


def _read_kafka_small(path: Path) -> tuple[int, list[dict | None]]:
    """(landed records, envelopes (None when unparsable)) of a JSON-lines Kafka file."""
    if not path.is_file():
        return 0, []
    lines = _nonblank(path.read_text().splitlines())
    return len(lines), [_envelope(line) for line in lines]


def _read_bpm(path: Path) -> tuple[int, pd.DataFrame, list[dict | None]]:
    """Parse one heart-rate file: (landed records, envelope frame, other-topic envelopes).

    The frame has one row per parsable envelope: topic, kafka_ts (seconds, float),
    device_id, time, heartrate (NaN where the value could not be parsed).
    """
    import pyarrow as pa
    import pyarrow.json as pj

    data = path.read_bytes()
    landed = sum(1 for line in data.split(b"\n") if line.strip())
    envelope_schema = pa.schema([
        ("value", pa.string()), ("topic", pa.string()), ("partition", pa.int64()), ("offset", pa.int64()),
        ("timestamp", pa.int64()),
    ])
    value_schema = pa.schema([("device_id", pa.int64()), ("time", pa.float64()), ("heartrate", pa.float64())])
    options = pj.ParseOptions(explicit_schema=envelope_schema, unexpected_field_behavior="ignore")
    try:
        table = pj.read_json(io.BytesIO(data), parse_options=options)
        env = pd.DataFrame({
            "topic": table.column("topic").to_pandas(),
            "kafka_ts": table.column("timestamp").to_numpy(zero_copy_only=False).astype("float64"),
            "offset": table.column("offset").to_numpy(zero_copy_only=False).astype("float64"),
        })
        values = table.column("value").to_pylist()
    except (pa.ArrowInvalid, pa.ArrowTypeError, ValueError):
        records = []
        for line in data.decode("utf-8", errors="replace").splitlines():
            if line.strip() and (record := _envelope(line)) is not None:
                records.append(record)
        env = pd.DataFrame({
            "topic": [_str(r.get("topic")) for r in records],
            "kafka_ts": [_float(r.get("timestamp")) for r in records],
            "offset": [_float(r.get("offset")) for r in records],
        }, columns=["topic", "kafka_ts", "offset"]).astype({"kafka_ts": "float64", "offset": "float64"})
        values = [_str(r.get("value")) for r in records]
        table = None
    others: list[dict | None] = []
    is_bpm = (env["topic"] == "bpm").to_numpy(dtype=bool, na_value=False)
    if not is_bpm.all():  # envelopes of other topics in a bpm file: handled like the small files
        if table is not None:
            full = table.to_pylist()
        else:
            full = records
        others = [full[i] for i in np.flatnonzero(~is_bpm)]
    bpm_values = [values[i] for i in np.flatnonzero(is_bpm)]
    device = np.full(len(bpm_values), np.nan)
    when = np.full(len(bpm_values), np.nan)
    rate = np.full(len(bpm_values), np.nan)
    not_json = np.zeros(len(bpm_values), dtype=bool)
    if bpm_values:
        try:
            if any(v is None for v in bpm_values):
                raise ValueError("null value")
            parsed = pj.read_json(
                io.BytesIO("\n".join(bpm_values).encode()),
                parse_options=pj.ParseOptions(explicit_schema=value_schema, unexpected_field_behavior="ignore"),
            )
            if parsed.num_rows != len(bpm_values):
                raise ValueError("value count mismatch")
            device = parsed.column("device_id").to_numpy(zero_copy_only=False).astype("float64")
            when = parsed.column("time").to_numpy(zero_copy_only=False).astype("float64")
            rate = parsed.column("heartrate").to_numpy(zero_copy_only=False).astype("float64")
        except (pa.ArrowInvalid, pa.ArrowTypeError, ValueError):
            for i, value in enumerate(bpm_values):
                try:
                    event = json.loads(value)
                except (TypeError, ValueError):
                    event = None
                if not isinstance(event, dict):
                    not_json[i] = True
                    continue
                # typed like from_json: a number given as text is NULL
                number = _json_int(event.get("device_id"))
                device[i] = np.nan if number is None else float(number)
                for target, field in ((when, "time"), (rate, "heartrate")):
                    number = _json_num(event.get(field))
                    target[i] = np.nan if number is None else number
    frame = env.loc[is_bpm].reset_index(drop=True)
    frame["device_id"] = device
    frame["time"] = when
    frame["heartrate"] = rate
    frame["not_json"] = not_json
    return landed, frame, others


class _Inputs:
    """Every input file of sets 1..last, parsed once and shared by both modes."""

    def __init__(self, folder, sets=SETS):
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise ExpectationsError(f"data folder {self.folder} does not exist")
        self.sets = tuple(sorted(set(int(n) for n in sets)))
        if not self.sets or self.sets[0] < 1:
            raise ValueError(f"sets must be positive set numbers, got {sets!r}")
        self.last = self.sets[-1]
        self.date_lookup = self._date_lookup()
        self._week_part = {
            (d - EPOCH).days: wp for d, wp in zip(self.date_lookup["date"], self.date_lookup["week_part"])
        }
        self.registrations: dict[int, list[dict]] = {}
        self.gym: dict[int, list[dict]] = {}
        self.kafka: dict[int, list[dict]] = {}  # small-topic envelopes in arrival order
        self.landed: dict[int, dict] = {}
        self.kafka_counts: dict[int, Counter] = {}  # (topic, week_part|None) -> count
        self.unparsed: dict[int, int] = {}
        self.quarantine: dict[int, list[tuple]] = {}  # (source, reason, file) of each quarantined line
        bpm_frames = []
        for n in range(1, self.last + 1):
            quarantine: list[tuple] = []
            for attr, table, name in (("registrations", "registered_users_bz", f"1-registered_users_{n}.csv"),
                                      ("gym", "gym_logins_bz", f"5-gym_logins_{n}.csv")):
                count, rows, reasons = _read_csv(self.folder / name, table)
                getattr(self, attr)[n] = rows
                quarantine += [(table, reason, name) for reason in reasons]
                if table == "registered_users_bz":
                    reg_landed = count
                else:
                    gym_landed = count
            counts: Counter = Counter()
            unparsed = 0
            envelopes: list[dict] = []
            info_name, bpm_name, workout_name = f"2-user_info_{n}.json", f"3-bpm_{n}.json", f"4-workout_{n}.json"
            info_landed, info = _read_kafka_small(self.folder / info_name)
            bpm_landed, others = 0, []
            bpm_path = self.folder / bpm_name
            if bpm_path.is_file():
                bpm_landed, frame, others = _read_bpm(bpm_path)
                bad = bpm_landed - len(frame) - len(others)
                unparsed += bad
                quarantine += [("kafka_multiplex_bz", JSON_LINE_REASON, bpm_name)] * bad
                counts.update(self._week_part_counts(frame))
                frame = frame[["device_id", "time", "heartrate", "offset", "not_json"]].copy()
                frame["set"] = n
                frame["file"] = bpm_name
                bpm_frames.append(frame)
            workout_landed, workout = _read_kafka_small(self.folder / workout_name)
            named = ([(info_name, r) for r in info] + [(bpm_name, r) for r in others]
                     + [(workout_name, r) for r in workout])
            for file, record in named:
                if record is None:
                    unparsed += 1
                    quarantine.append(("kafka_multiplex_bz", JSON_LINE_REASON, file))
                    continue
                envelopes.append({**record, "_file": file})
                counts[(_str(record.get("topic")), self._week_part_of(record.get("timestamp")))] += 1
            self.quarantine[n] = quarantine
            self.kafka[n] = envelopes
            self.kafka_counts[n] = counts
            self.unparsed[n] = unparsed
            self.landed[n] = {
                "registered_users_bz": reg_landed,
                "gym_logins_bz": gym_landed,
                "kafka_multiplex_bz": {"user_info": info_landed, "workout": workout_landed, "bpm": bpm_landed},
            }
        self.heart_rate, self.heart_rate_rejects = self._heart_rate(bpm_frames)

    # -- date lookup ---------------------------------------------------------------
    def _date_lookup(self) -> pd.DataFrame:
        path = self.folder / "6-date-lookup.json"
        if not path.is_file():
            raise ExpectationsError(f"{path} is missing: the reference needs the date lookup")
        records = [json.loads(line) for line in _nonblank(path.read_text().splitlines())]
        ints = ("week", "year", "month", "dayofweek", "dayofmonth", "dayofyear")
        rows = [
            (dt.date.fromisoformat(r["date"]), *[_int(r.get(c)) for c in ints], _str(r.get("week_part")))
            for r in records
        ]
        return _frame("date_lookup", rows)

    def _week_part_of(self, timestamp) -> str | None:
        seconds = _float(timestamp)
        if seconds is None:
            return None
        return self._week_part.get(math.floor(seconds) // DAY_SECONDS)

    def _week_part_counts(self, frame: pd.DataFrame) -> Counter:
        days = np.floor(frame["kafka_ts"].to_numpy(dtype="float64") / DAY_SECONDS)
        keys = pd.DataFrame({"topic": frame["topic"].astype(object), "day": days})
        counter: Counter = Counter()
        for (topic, day), count in keys.groupby(["topic", "day"], dropna=False).size().items():
            week_part = None if pd.isna(day) else self._week_part.get(int(day))
            counter[(None if pd.isna(topic) else topic, week_part)] += int(count)
        return counter

    # -- heart rate ------------------------------------------------------------------
    @staticmethod
    def _heart_rate(frames: list[pd.DataFrame]) -> tuple[pd.DataFrame, pd.DataFrame]:
        """(heart_rate rows of all sets with their set, rejected readings: set, reason, file).

        A reading without a usable device or time is rejected; of two readings of one
        device at one time the first to arrive wins (earlier set, then lower offset).
        """
        columns = ["set", "device_id", "time_us", "heartrate"]
        reject_columns = ["set", "reason", "file"]
        if not frames:
            return (pd.DataFrame({c: pd.Series(dtype="int64" if c != "heartrate" else "float64") for c in columns}),
                    pd.DataFrame({c: pd.Series(dtype="object") for c in reject_columns}))
        allrows = pd.concat(frames, ignore_index=True)
        reason = np.select(
            [allrows["not_json"].to_numpy(dtype=bool), allrows["device_id"].isna().to_numpy(),
             allrows["time"].isna().to_numpy(),
             ~allrows["time"].between(MIN_SECONDS, MAX_SECONDS).to_numpy()],
            [NOT_JSON, "device_id missing or not a number", "time missing or not a number", "time out of range"],
            default="")
        rejects = allrows.loc[reason != "", ["set", "file"]].assign(reason=reason[reason != ""])[reject_columns]
        allrows = allrows[reason == ""]
        result = pd.DataFrame({
            "set": allrows["set"].to_numpy(dtype="int64"),
            "device_id": allrows["device_id"].to_numpy(dtype="int64"),
            "time_us": np.trunc(allrows["time"].to_numpy(dtype="float64") * US).astype("int64"),
            "heartrate": allrows["heartrate"].to_numpy(dtype="float64"),
            "offset": allrows["offset"].fillna(np.inf).to_numpy(dtype="float64"),
        })
        result = result.sort_values(["set", "offset"], kind="stable")
        result = result.drop_duplicates(["device_id", "time_us"], keep="first").sort_index()
        return result[columns].reset_index(drop=True), rejects.reset_index(drop=True)


# ----------------------------------------------------------------------------------
# frames with the spec's types
# ----------------------------------------------------------------------------------
def _column(kind: str, values) -> pd.Series:
    values = list(values)
    if kind == "timestamp":
        return pd.Series(
            np.array([np.datetime64("NaT", "us") if v is None else np.datetime64(int(v), "us") for v in values],
                     dtype="datetime64[us]")
        )
    if kind in ("int", "bigint"):
        dtype = "int32" if kind == "int" else "int64"
        if any(v is None for v in values):
            return pd.Series(values, dtype=dtype.capitalize())
        return pd.Series(np.array(values, dtype=dtype))
    if kind == "double":
        return pd.Series(np.array([np.nan if v is None else v for v in values], dtype="float64"))
    if kind == "boolean":
        return pd.Series(values, dtype="bool" if all(v is not None for v in values) else "boolean")
    if kind == "string":
        return pd.Series(values, dtype="str")
    if kind == "date":
        return pd.Series(values, dtype="object")
    raise ValueError(kind)


def _frame(table: str, rows) -> pd.DataFrame:
    """DataFrame of `rows` (tuples in the spec's column order) with the spec's dtypes."""
    schema = REJECT_SCHEMAS.get(table) or SCHEMAS[table]
    rows = list(rows)
    columns = list(zip(*rows)) if rows else [[] for _ in schema]
    return pd.DataFrame({name: _column(kind, col) for (name, kind), col in zip(schema, columns)})


def _arrow_schema(table: str):
    import pyarrow as pa

    types = {
        "int": pa.int32(), "bigint": pa.int64(), "double": pa.float64(), "string": pa.string(),
        "boolean": pa.bool_(), "timestamp": pa.timestamp("us"), "date": pa.date32(),
    }
    return pa.schema([(name, types[kind]) for name, kind in (REJECT_SCHEMAS.get(table) or SCHEMAS[table])])


def _with_timestamps(frame: pd.DataFrame, columns: dict[str, str]) -> pd.DataFrame:
    """Replace integer-microsecond columns (source) by datetime64[us] columns (target)."""
    out = frame.copy()
    for source, target in columns.items():
        out[target] = out[source].to_numpy(dtype="int64").astype("datetime64[us]")
    return out


# ----------------------------------------------------------------------------------
# the rules, set after set
# ----------------------------------------------------------------------------------
def _expect(table, count, rows=None, aggregates=None, exact=True, note=None) -> TableExpectation:
    return TableExpectation(table=table, count=int(count), exact=exact, rows=rows,
                            aggregates=aggregates or {}, note=note)


def _compute(inputs: _Inputs, mode: str, as_of: dt.date, sets) -> dict[int, dict[str, TableExpectation]]:
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    course = mode == "course"
    event_time = _f32 if course else (lambda x: x)
    wanted = set(int(n) for n in sets)
    results: dict[int, dict[str, TableExpectation]] = {}

    users: dict[int, tuple] = {}            # user_id -> (user_id, device_id, mac, reg_us)
    gym_logs: dict[tuple, list] = {}         # (mac, gym, login_us) -> [mac, gym, login_us, logout_us]
    profiles: dict[int, dict] = {}           # user_id -> profile row (+ "updated_us")
    workouts: dict[tuple, tuple] = {}        # (user_id, time_us) -> (user_id, workout_id, time_us, action, session_id)
    completed: dict[tuple, tuple] = {}       # (user_id, workout_id, session_id) -> (start_us, end_us)
    landed = {"registered_users_bz": 0, "gym_logins_bz": 0, "kafka": 0}
    kafka_counts: Counter = Counter()
    unparsed = 0
    quarantine: list[tuple] = []             # (source, reason, file)
    rejects: list[tuple] = []                # (target table, reason, file)
    hr = inputs.heart_rate
    hr_valid = hr[hr["heartrate"] > 0]

    for n in range(1, inputs.last + 1):
        # ---- bronze (cumulative counts) ----
        landed["registered_users_bz"] += inputs.landed[n]["registered_users_bz"]
        landed["gym_logins_bz"] += inputs.landed[n]["gym_logins_bz"]
        landed["kafka"] += sum(inputs.landed[n]["kafka_multiplex_bz"].values())
        kafka_counts.update(inputs.kafka_counts[n])
        unparsed += inputs.unparsed[n]
        quarantine += inputs.quarantine[n]
        hr_rejects = inputs.heart_rate_rejects
        rejects += [("heart_rate", r, f) for r, f in
                    hr_rejects.loc[hr_rejects["set"] == n, ["reason", "file"]].itertuples(index=False)]

        # ---- users: first registration of a user_id wins ----
        file = f"1-registered_users_{n}.csv"
        for row in inputs.registrations[n]:
            user_id, device_id, mac = row.get("user_id"), row.get("device_id"), row.get("mac_address")
            reason = ("user_id missing" if user_id is None else "device_id missing" if device_id is None
                      else "mac_address missing" if mac is None or not mac.strip()
                      else "registration_timestamp out of range" if _out_of_range(row.get("registration_timestamp"))
                      else None)
            if reason:
                rejects.append(("users", reason, file))
                continue
            if user_id in users:
                continue
            users[user_id] = (user_id, device_id, mac, _to_us(row.get("registration_timestamp")))

        # ---- gym_logs: insert new key; later logout (> login and > stored) updates ----
        file = f"5-gym_logins_{n}.csv"
        for row in inputs.gym[n]:
            mac, gym = row.get("mac_address"), row.get("gym")
            login, logout = row.get("login"), row.get("logout")
            reason = ("mac_address missing" if mac is None or not mac.strip() else "gym missing" if gym is None
                      else "login missing" if login is None else "login out of range" if _out_of_range(login)
                      else "logout out of range" if _out_of_range(logout) else None)
            if reason:
                rejects.append(("gym_logs", reason, file))
                continue
            login, logout = _to_us(login), _to_us(logout)
            key = (mac, gym, login)
            stored = gym_logs.get(key)
            if stored is None:
                gym_logs[key] = [mac, gym, login, logout]
            elif logout is not None and logout > login and (stored[3] is None or logout > stored[3]):
                stored[3] = logout

        # ---- kafka topics of this set, in arrival order ----
        latest: dict[int, tuple] = {}  # user_id -> (sort key, row) within this set (one micro-batch)
        arrivals = sorted(enumerate(inputs.kafka[n]), key=lambda item: (
            item[1]["_file"] != f"2-user_info_{n}.json", _float(item[1].get("offset")) or math.inf, item[0]))
        new_workouts: dict[tuple, tuple] = {}
        for line_no, envelope in arrivals:
            topic, file = envelope.get("topic"), envelope["_file"]
            if topic not in ("user_info", "workout"):
                continue
            table = "user_profile" if topic == "user_info" else "workouts"
            try:
                event = json.loads(envelope.get("value"))
            except (TypeError, ValueError):
                event = None
            if not isinstance(event, dict):
                rejects.append((table, NOT_JSON, file))
                continue
            seconds = _json_num(event.get("timestamp"))
            seconds = None if seconds is None else event_time(seconds)
            user_id = _json_int(event.get("user_id"), 64 if topic == "user_info" else 32)
            reason = ("user_id missing or not a number" if user_id is None
                      else "timestamp missing or not a number" if seconds is None or math.isnan(seconds)
                      else "timestamp out of range" if _out_of_range(seconds) else None)
            if topic == "user_info":
                update_type = event.get("update_type")
                if reason is None and (not isinstance(update_type, str) or update_type not in ("new", "update")):
                    reason = "update_type not new or update"
                if reason:
                    rejects.append((table, reason, file))
                    continue
                time_us = _to_us(seconds)
                address = event.get("address") if isinstance(event.get("address"), dict) else {}
                row = {
                    "user_id": user_id, "dob": _parse_dob(event.get("dob")),
                    "sex": _str(event.get("sex")), "gender": _str(event.get("gender")),
                    "first_name": _str(event.get("first_name")), "last_name": _str(event.get("last_name")),
                    "street_address": _str(address.get("street_address")), "city": _str(address.get("city")),
                    "state": _str(address.get("state")), "zip": _json_int(address.get("zip"), 32),
                    "updated": time_us,
                }
                offset = _int(envelope.get("offset"))
                sort_key = (time_us, offset if offset is not None else -1, line_no)
                if user_id not in latest or sort_key > latest[user_id][0]:
                    latest[user_id] = (sort_key, row)
            else:
                workout_id, session_id = _json_int(event.get("workout_id"), 32), _json_int(event.get("session_id"), 32)
                action = event.get("action")
                if reason is None and action not in ("start", "stop"):
                    reason = "action not start or stop"
                if reason is None and (workout_id is None or session_id is None):
                    reason = "workout_id or session_id missing"
                if reason:
                    rejects.append((table, reason, file))
                    continue
                time_us = _to_us(seconds)
                key = (user_id, time_us)
                if key not in workouts and key not in new_workouts:
                    new_workouts[key] = (user_id, workout_id, time_us, action, session_id)
        workouts.update(new_workouts)

        # ---- user_profile: insert new, update only when strictly newer ----
        for user_id, (_, row) in latest.items():
            stored = profiles.get(user_id)
            if stored is None or row["updated"] > stored["updated"]:
                profiles[user_id] = row

        # ---- completed_workouts: start ⋈ stop, stop < start + 3 h, insert new keys ----
        starts: dict[tuple, list[int]] = {}
        stops: dict[tuple, list[int]] = {}
        for user_id, workout_id, time_us, action, session_id in workouts.values():
            key = (user_id, workout_id, session_id)
            if action == "start":
                starts.setdefault(key, []).append(time_us)
            elif action == "stop":
                stops.setdefault(key, []).append(time_us)
        for key in sorted(set(starts) & set(stops), key=lambda k: tuple(-1 if v is None else v for v in k)):
            if key in completed or None in key:
                continue
            pairs = [(s, e) for s in starts[key] for e in stops[key] if s < e < s + THREE_HOURS_US]
            if pairs:
                completed[key] = min(pairs)

        if n not in wanted:
            continue
        results[n] = _tables_after(inputs, n, course, as_of, users, gym_logs, profiles, workouts,
                                   completed, landed, kafka_counts, unparsed, hr, hr_valid)
        results[n]["quarantine_bz"] = _expect("quarantine_bz", len(quarantine),
                                              rows=_frame("quarantine_bz", sorted(quarantine)))
        results[n]["rejects_sv"] = _expect("rejects_sv", len(rejects), rows=_frame("rejects_sv", sorted(rejects)))
    return results


def _tables_after(inputs, n, course, as_of, users, gym_logs, profiles, workouts, completed,
                  landed, kafka_counts, unparsed, hr, hr_valid) -> dict[str, TableExpectation]:
    out: dict[str, TableExpectation] = {}
    # ---- bronze ----
    kept = {t: sum(1 for m in range(1, n + 1) for q in inputs.quarantine[m] if q[0] == t)
            for t in ("registered_users_bz", "gym_logins_bz")}
    out["registered_users_bz"] = _expect("registered_users_bz", landed["registered_users_bz"]
                                         - kept["registered_users_bz"])
    out["gym_logins_bz"] = _expect("gym_logins_bz", landed["gym_logins_bz"] - kept["gym_logins_bz"])
    per_topic: dict[str, int] = {}
    per_week: dict[str, dict[str, int]] = {}
    null_date: dict[str, int] = {}
    for (topic, week_part), count in sorted(kafka_counts.items(), key=lambda kv: (str(kv[0][0]), str(kv[0][1]))):
        name = "null" if topic is None else topic
        per_topic[name] = per_topic.get(name, 0) + count
        if week_part is None:
            null_date[name] = null_date.get(name, 0) + count
        else:
            per_week.setdefault(name, {})[week_part] = count
    out["kafka_multiplex_bz"] = _expect("kafka_multiplex_bz", landed["kafka"] - unparsed, aggregates={
        "per_topic": per_topic,
        "per_topic_week_part": per_week,
        "null_date_count": sum(null_date.values()),
        "null_date_per_topic": null_date,
        "unparsed": unparsed,
    })
    out["date_lookup"] = _expect("date_lookup", len(inputs.date_lookup), rows=inputs.date_lookup.copy())

    # ---- silver ----
    users_rows = sorted(users.values())
    out["users"] = _expect("users", len(users_rows), rows=_frame("users", users_rows))
    gym_rows = sorted(tuple(v) for v in gym_logs.values())
    out["gym_logs"] = _expect("gym_logs", len(gym_rows), rows=_frame("gym_logs", gym_rows))
    columns = [name for name, _ in SCHEMAS["user_profile"]]
    profile_rows = [tuple(profiles[u][c] for c in columns) for u in sorted(profiles)]
    out["user_profile"] = _expect("user_profile", len(profile_rows), rows=_frame("user_profile", profile_rows))
    workout_rows = sorted(workouts.values(), key=lambda r: (r[0], r[2]))
    out["workouts"] = _expect("workouts", len(workout_rows), rows=_frame("workouts", workout_rows))

    from sbit_lib.testing.expectations import course_bounds, heart_rate_hash

    upto = hr[hr["set"] <= n]
    heartrate = upto["heartrate"].to_numpy()
    heartrate = heartrate[~np.isnan(heartrate)]
    out["heart_rate"] = _expect("heart_rate", len(upto), aggregates={
        "count": int(len(upto)),
        "valid_count": int((upto["heartrate"] > 0).sum()),
        "distinct_devices": int(upto["device_id"].nunique()),
        "min_time": _us_iso(int(upto["time_us"].min())) if len(upto) else None,
        "max_time": _us_iso(int(upto["time_us"].max())) if len(upto) else None,
        "sum_heartrate": round(math.fsum(heartrate.tolist()), 6),
        "row_hash": heart_rate_hash(upto["device_id"], upto["time_us"], upto["heartrate"], upto["heartrate"] > 0),
    })

    bins: dict[int, tuple] = {}
    for user_id in sorted(profiles):
        if user_id not in users:
            continue
        p = profiles[user_id]
        age = age_bin(age_years(p["dob"], as_of)) if p["dob"] is not None else None
        bins[user_id] = (user_id, age, p["gender"], p["city"], p["state"])
    out["user_bins"] = _expect("user_bins", len(bins), rows=_frame("user_bins", bins.values()))

    completed_rows = [(*key, s, e) for key, (s, e) in sorted(completed.items())]
    out["completed_workouts"] = _expect("completed_workouts", len(completed_rows),
                                        rows=_frame("completed_workouts", completed_rows))

    # ---- workout_bpm: valid readings ⋈ (completed ⋈ users) on device ----
    cw = pd.DataFrame(
        [(u, w, s, start, end, users[u][1]) for (u, w, s), (start, end) in completed.items() if u in users],
        columns=["user_id", "workout_id", "session_id", "start_us", "end_us", "device_id"],
    ).astype({"user_id": "int64", "workout_id": "int64", "session_id": "int64",
              "start_us": "int64", "end_us": "int64", "device_id": "int64"})
    readings = hr_valid[(hr_valid["set"] <= n) & hr_valid["device_id"].isin(cw["device_id"])]
    joined = cw.merge(readings[["device_id", "time_us", "heartrate"]], on="device_id", how="inner")
    joined = joined[
        (joined["time_us"] > joined["start_us"]) & (joined["time_us"] <= joined["end_us"])
        & (joined["end_us"] < joined["time_us"] + THREE_HOURS_US)
    ]
    keys = ["user_id", "workout_id", "session_id"]
    joined = (joined.drop_duplicates(keys + ["time_us"], keep="first")
              .sort_values(keys + ["time_us"], kind="stable").reset_index(drop=True))
    bpm = _with_timestamps(joined, {"start_us": "start_time", "end_us": "end_time", "time_us": "time"})
    bpm_rows = pd.DataFrame({
        "user_id": bpm["user_id"].astype("int32"), "workout_id": bpm["workout_id"].astype("int32"),
        "session_id": bpm["session_id"].astype("int32"), "start_time": bpm["start_time"],
        "end_time": bpm["end_time"], "time": bpm["time"], "heartrate": bpm["heartrate"].astype("float64"),
    })
    out["workout_bpm"] = _expect("workout_bpm", len(bpm_rows), rows=bpm_rows,
                                 exact=not course, note=COURSE_WORKOUT_BPM_NOTE if course else None,
                                 aggregates=course_bounds(joined, readings, upto)["workout_bpm"] if course else None)

    # ---- gold: workout_bpm_summary ----
    stats = joined.groupby(keys, sort=True)["heartrate"].agg(["min", "mean", "max", "size"]).reset_index()
    bins_frame = pd.DataFrame(list(bins.values()), columns=["user_id", "age", "gender", "city", "state"])
    bins_frame = bins_frame.astype({"user_id": "int64"})
    summary = stats.merge(bins_frame, on="user_id", how="inner")
    summary = summary.sort_values(["user_id", "workout_id", "session_id"], kind="stable")
    summary_rows = _frame("workout_bpm_summary", zip(
        summary["workout_id"].tolist(), summary["session_id"].tolist(), summary["user_id"].tolist(),
        summary["age"].tolist(), summary["gender"].tolist(), summary["city"].tolist(),
        summary["state"].tolist(), summary["min"].tolist(), summary["mean"].tolist(),
        summary["max"].tolist(), summary["size"].tolist(),
    ))
    out["workout_bpm_summary"] = _expect("workout_bpm_summary", len(summary_rows), rows=summary_rows,
                                         exact=not course, note=COURSE_SUMMARY_NOTE if course else None,
                                         aggregates=course_bounds(joined, readings, upto, summary)[
                                             "workout_bpm_summary"] if course else None)

    # ---- gold: gym_summary view ----
    by_mac: dict[str, list[tuple]] = {}
    for (user_id, workout_id, session_id), (start, end) in completed.items():
        if user_id in users:
            by_mac.setdefault(users[user_id][2], []).append((workout_id, session_id, start, end))
    visits = []
    for mac, gym, login, logout in gym_logs.values():
        for workout_id, session_id, start, end in by_mac.get(mac, []):
            if logout is None or not (login <= start <= logout):
                continue
            visits.append((
                _us_to_date(login), gym, mac, workout_id, session_id,
                _minutes(_floor_s(logout) - _floor_s(login)), _minutes(_floor_s(end) - _floor_s(start)),
                login,
            ))
    visits.sort(key=lambda r: (r[0], r[1], r[2], r[4], r[3], r[7]))
    out["gym_summary"] = _expect("gym_summary", len(visits), rows=_frame("gym_summary", [v[:7] for v in visits]))
    return out


# ----------------------------------------------------------------------------------
# public API
# ----------------------------------------------------------------------------------
def compute(folder, mode: str, as_of: dt.date = REFERENCE_AS_OF, sets=SETS) -> dict[int, dict[str, TableExpectation]]:
    """Expected tables after sets 1..n for each n in `sets`, in `mode` ('default' or 'course').

    Returns ``{n: {table name: TableExpectation}}``. Missing set files count as empty.
    """
    inputs = _Inputs(folder, sets)
    return _compute(inputs, mode, as_of, sets)


def landing(inputs: _Inputs, sets) -> dict[int, dict]:
    """Cumulative landed records per source after sets 1..n."""
    totals = {"registered_users_bz": 0, "gym_logins_bz": 0,
              "kafka_multiplex_bz": {"user_info": 0, "workout": 0, "bpm": 0}}
    result = {}
    for n in range(1, inputs.last + 1):
        totals["registered_users_bz"] += inputs.landed[n]["registered_users_bz"]
        totals["gym_logins_bz"] += inputs.landed[n]["gym_logins_bz"]
        for topic, count in inputs.landed[n]["kafka_multiplex_bz"].items():
            totals["kafka_multiplex_bz"][topic] += count
        if n in sets:
            result[n] = json.loads(json.dumps(totals))
    return result


def _manifest_key(folder: Path, as_of: dt.date, sets) -> dict:
    folder = Path(folder)
    return {
        "format": FORMAT_VERSION,
        "rules_version": RULES_VERSION,
        "as_of": as_of.isoformat(),
        "sets": sorted(int(n) for n in sets),
        "inputs": {name: sha256(folder / name) for name in input_files(folder, sets)},
    }


def _up_to_date(out_dir: Path, key: dict) -> bool:
    path = out_dir / MANIFEST
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    if any(manifest.get(k) != v for k, v in key.items()):
        return False
    files = {entry["rows"] for mode in manifest.get("tables", {}).values() for tables in mode.values()
             for entry in tables.values() if entry.get("rows")}
    return all((out_dir / f).is_file() for f in files)


def write_expectations(folder, out_dir=None, as_of: dt.date = REFERENCE_AS_OF, sets=SETS,
                       force: bool = False, require_bpm: bool = True) -> Path:
    """Write ``<folder>/expected/`` (or `out_dir`): manifest.json + ``<mode>/set_<n>/<table>.parquet``.

    Does nothing when the existing manifest records the same input SHA-256s, as_of,
    sets, format and rules version (unless `force`). With `require_bpm` (default) a
    missing ``3-bpm_<n>.json`` is an error, as the expectations would silently lack
    heart-rate data. Returns the expectations folder.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = Path(folder)
    out_dir = Path(out_dir) if out_dir is not None else folder / EXPECTED_DIR
    sets = tuple(sorted(set(int(n) for n in sets)))
    if require_bpm:
        missing = [f"3-bpm_{n}.json" for n in range(1, max(sets) + 1) if not (folder / f"3-bpm_{n}.json").is_file()]
        if missing:
            raise ExpectationsError(
                f"{folder} lacks {', '.join(missing)}: generate the heart-rate files first "
                "(`sbit prepare-data` or sbit_lib.testing.bpm_generator.generate)"
            )
    key = _manifest_key(folder, as_of, sets)
    if not force and _up_to_date(out_dir, key):
        return out_dir

    started = time.monotonic()
    inputs = _Inputs(folder, sets)
    tmp = out_dir.parent / f".{out_dir.name}.tmp-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    try:
        tables: dict[str, dict] = {}
        for mode in MODES:
            tables[mode] = {}
            for n, expectations in _compute(inputs, mode, as_of, sets).items():
                entries = {}
                for name, expectation in expectations.items():
                    relative = None
                    if expectation.rows is not None:
                        relative = f"{mode}/set_{n}/{name}.parquet"
                        target = tmp / relative
                        target.parent.mkdir(parents=True, exist_ok=True)
                        arrow = pa.Table.from_pandas(expectation.rows, schema=_arrow_schema(name),
                                                     preserve_index=False)
                        pq.write_table(arrow, target)
                    entries[name] = {
                        "count": expectation.count, "exact": expectation.exact, "rows": relative,
                        "aggregates": expectation.aggregates, "note": expectation.note,
                    }
                tables[mode][str(n)] = entries
        manifest = {
            **key,
            "generated_by": "sbit_lib.testing.reference",
            "modes": list(MODES),
            "landing": {str(n): counts for n, counts in landing(inputs, sets).items()},
            "tables": tables,
            "seconds": round(time.monotonic() - started, 1),
        }
        tmp.mkdir(parents=True, exist_ok=True)
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=False) + "\n")
        old = out_dir.parent / f".{out_dir.name}.old-{os.getpid()}"
        if out_dir.exists():
            out_dir.rename(old)
        tmp.rename(out_dir)
        if old.exists():
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir


def _default_folder() -> Path:
    """SBIT_TEST_DATA, else the project's test_data/ (what Config resolves, without importing it)."""
    return Path(os.environ.get("SBIT_TEST_DATA") or PROJECT_ROOT / "test_data").expanduser().resolve()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m sbit_lib.testing.reference",
        description="Write the expected table contents after each set (<folder>/expected/).",
    )
    parser.add_argument("folder", nargs="?", help="data folder with the set files (default: test_data)")
    parser.add_argument("--out", help="expectations folder (default: <folder>/expected)")
    parser.add_argument("--as-of", default=REFERENCE_AS_OF.isoformat(), help="as-of date for ages (YYYY-MM-DD)")
    parser.add_argument("--sets", type=int, default=len(SETS), help="write sets 1..N (default 10)")
    parser.add_argument("--force", action="store_true", help="rewrite even when up to date")
    args = parser.parse_args(argv)
    folder = Path(args.folder) if args.folder else _default_folder()
    try:
        as_of = dt.date.fromisoformat(args.as_of)
    except ValueError:
        parser.error(f"--as-of {args.as_of!r} is not a date (YYYY-MM-DD)")
    started = time.monotonic()
    try:
        out = write_expectations(folder, args.out, as_of=as_of, sets=range(1, args.sets + 1), force=args.force)
    except ExpectationsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"expectations in {out} ({time.monotonic() - started:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
