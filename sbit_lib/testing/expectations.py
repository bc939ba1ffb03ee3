"""Expected table contents after each set, as written by the reference computation.

The Spark pipeline's validators read the expectations through this module; it
imports neither pyspark nor the reference code (``sbit_lib.testing.reference``), so a
data folder may bring its own expectations written by any tool that follows the
format described in ``test_data/EXPECTED.md``.

Layout of ``<data folder>/expected/``::

    manifest.json                       # everything but the rows (see EXPECTED.md)
    <mode>/set_<n>/<table>.parquet      # rows of the tables that store rows

Example::

    >>> exp = Expectations.load("test_data")                    # doctest: +SKIP
    >>> exp.landing(1)["kafka_multiplex_bz"]["bpm"]              # doctest: +SKIP
    253801
    >>> t = exp.table("default", 2, "users"); t.count, len(t.rows)   # doctest: +SKIP
    (10, 10)
"""

from __future__ import annotations

import datetime as dt
import json
import threading
from dataclasses import dataclass, field
from pathlib import Path

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
EXPECTED_DIR = "expected"
MODES = ("default", "course")
MODE_ALIASES = {"course-compat": "course", "course_compat": "course"}

# Every table (and the gym_summary view) with its columns in the spec's order and the
# spec's types (sbit_lib.testing.spec). How a type is stored in the parquet files / pandas:
#   int -> int32, bigint -> int64, double -> float64, string -> str,
#   boolean -> bool, timestamp -> datetime64[us] (naive, UTC), date -> datetime.date
PANDAS_DTYPES = {"int": "int32", "bigint": "int64", "double": "float64", "string": "str",
                 "boolean": "bool", "timestamp": "datetime64[us]", "date": "object"}


class ExpectationsError(RuntimeError):
    """Expectations are missing, unreadable or do not cover what was asked for."""


@dataclass(frozen=True)
class TableExpectation:
    """What one table must contain after one set in one mode.

    * ``count``: the exact row count when ``exact``; an upper bound otherwise.
    * ``exact``: False when the result depends on micro-batch boundaries (course
      mode's watermarked ``workout_bpm`` / ``workout_bpm_summary``); ``note`` then
      says what may still be checked.
    * ``rows``: the expected rows (columns and dtypes as in :data:`SCHEMAS`), or
      None for tables described by counts/aggregates only.
    * ``aggregates``: per-table summary numbers (see EXPECTED.md), ``{}`` if none.
    """

    table: str
    count: int
    exact: bool
    rows: "object | None" = field(default=None, repr=False, compare=False)  # pandas.DataFrame | None
    aggregates: dict = field(default_factory=dict)
    note: str | None = None

    @property
    def min_count(self) -> int:
        """Rows the table must have at least: ``count`` when exact, else ``aggregates["min_count"]`` (0 if absent)."""
        return self.count if self.exact else int(self.aggregates.get("min_count", 0))


def _missing_message(where: Path) -> str:
    return (
        f"no expectations in {where}: run `sbit prepare-data` "
        "(or bring your own manifest, see test_data/EXPECTED.md)"
    )


def resolve_dir(folder) -> Path:
    """Return the expectations folder for a data folder (``<folder>/expected``) or the folder itself."""
    folder = Path(folder)
    if (folder / MANIFEST).is_file():
        return folder
    return folder / EXPECTED_DIR


class Expectations:
    """Read-only view of ``<folder>/expected`` (manifest eagerly, parquet rows lazily)."""

    def __init__(self, root: Path, manifest: dict):
        self.root = Path(root)
        self.manifest = manifest
        self.as_of: dt.date = dt.date.fromisoformat(manifest["as_of"])
        self.sets: tuple[int, ...] = tuple(int(n) for n in manifest["sets"])
        self.modes: tuple[str, ...] = tuple(manifest.get("tables", {}).keys())
        self.inputs: dict = dict(manifest.get("inputs", {}))
        self._rows: dict[str, object] = {}
        self._lock = threading.Lock()

    @classmethod
    def load(cls, folder) -> "Expectations":
        """Load ``<folder>/expected/manifest.json`` (or ``<folder>/manifest.json``)."""
        root = resolve_dir(folder)
        path = root / MANIFEST
        if not path.is_file():
            raise ExpectationsError(_missing_message(root))
        try:
            manifest = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise ExpectationsError(f"cannot read {path}: {exc}") from exc
        fmt = manifest.get("format") if isinstance(manifest, dict) else None
        if fmt != FORMAT_VERSION:
            raise ExpectationsError(
                f"{path} has format {fmt!r}, this code reads format {FORMAT_VERSION}: "
                "regenerate it with `sbit prepare-data`"
            )
        for key in ("as_of", "sets", "landing", "tables"):
            if key not in manifest:
                raise ExpectationsError(f"{path} lacks the required key {key!r} (see test_data/EXPECTED.md)")
        try:
            return cls(root, manifest)
        except (TypeError, ValueError) as exc:
            raise ExpectationsError(f"{path} is malformed: {exc}") from exc

    # -- landing / bronze -----------------------------------------------------------
    def landing(self, n: int) -> dict:
        """Cumulative landed records after sets 1..n (equal to the bronze row counts)."""
        entry = self.manifest["landing"].get(str(int(n)))
        if entry is None:
            raise ExpectationsError(
                f"no landing counts for set {n} in {self.root / MANIFEST} (covered sets: {list(self.sets)})"
            )
        return json.loads(json.dumps(entry))  # a copy the caller may modify

    # -- tables -----------------------------------------------------------------------
    @staticmethod
    def _mode(mode: str) -> str:
        return MODE_ALIASES.get(mode, mode)

    def tables(self, mode: str, n: int) -> list[str]:
        """Names of the tables with expectations after set n in `mode`."""
        return list(self._set_entry(self._mode(mode), n).keys())

    def _set_entry(self, mode: str, n: int) -> dict:
        by_mode = self.manifest["tables"].get(mode)
        if by_mode is None:
            raise ExpectationsError(
                f"no expectations for mode {mode!r} in {self.root / MANIFEST} (modes: {list(self.modes)})"
            )
        entry = by_mode.get(str(int(n)))
        if entry is None:
            raise ExpectationsError(
                f"no expectations for mode {mode!r} set {n} in {self.root / MANIFEST} "
                f"(covered sets: {list(self.sets)})"
            )
        return entry

    def table(self, mode: str, n: int, table: str) -> TableExpectation:
        """Expectation for `table` after sets 1..n in `mode` (rows read on first use)."""
        mode = self._mode(mode)
        entry = self._set_entry(mode, n).get(table)
        if entry is None:
            raise ExpectationsError(
                f"no expectation for table {table!r} (mode {mode!r}, set {n}) in {self.root / MANIFEST}"
            )
        rows = self._read_rows(entry["rows"]) if entry.get("rows") else None
        return TableExpectation(
            table=table,
            count=int(entry["count"]),
            exact=bool(entry.get("exact", True)),
            rows=rows,
            aggregates=json.loads(json.dumps(entry.get("aggregates") or {})),
            note=entry.get("note"),
        )

    def _read_rows(self, relative: str):
        with self._lock:
            cached = self._rows.get(relative)
        if cached is None:
            import pyarrow.parquet as pq  # local: keep `import sbit_lib.testing.expectations` light

            path = self.root / relative
            if not path.is_file():
                raise ExpectationsError(f"{path} (listed in {self.root / MANIFEST}) does not exist")
            cached = pq.read_table(path).to_pandas(date_as_object=True)
            with self._lock:
                self._rows[relative] = cached
        return cached.copy()

    def __repr__(self) -> str:
        return f"Expectations({str(self.root)!r}, as_of={self.as_of}, sets={self.sets}, modes={self.modes})"


# ----------------------------------------------------------------------------------
# Numbers of the format that a writer and a reader of expectations compute alike
# (numpy / pandas only, imported when used).
# ----------------------------------------------------------------------------------
_GOLDEN = 0x9E3779B97F4A7C15
_MIX1 = 0xBF58476D1CE4E5B9
_MIX2 = 0x94D049BB133111EB
NULL_WORD = 0x8000000000000000            # a NULL device_id / time
NAN_WORD = 0x7FF8000000000000             # every NaN and NULL heartrate


def _mix64(x):
    """splitmix64 on a uint64 array (arithmetic modulo 2**64)."""
    import numpy as np

    x = x + np.uint64(_GOLDEN)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(_MIX1)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(_MIX2)
    return x ^ (x >> np.uint64(31))


def _int_words(values):
    """int64 values (NULL as :data:`NULL_WORD`) as uint64; datetimes as integer microseconds (UTC)."""
    import numpy as np
    import pandas as pd

    series = pd.Series(values).reset_index(drop=True)
    if isinstance(series.dtype, np.dtype) and series.dtype.kind in "iu":      # no NULLs: as it is
        return series.to_numpy().astype("int64").view("uint64")
    if isinstance(series.dtype, pd.DatetimeTZDtype):
        series = series.dt.tz_convert("UTC").dt.tz_localize(None)
    if pd.api.types.is_datetime64_any_dtype(series.dtype):
        nulls = series.isna().to_numpy()
        words = series.astype("datetime64[us]").to_numpy().view("int64").astype("uint64")
    else:
        numbers = pd.array(series, dtype="Int64")     # exact for ints, refuses fractional floats
        nulls = np.asarray(numbers.isna())
        words = numbers.to_numpy(dtype="int64", na_value=0).view("uint64")
    return np.where(nulls, np.uint64(NULL_WORD), words)


def heart_rate_hash(device_id, time_us, heartrate, valid) -> str:
    """Order-independent hash of ``heart_rate`` rows: 16 hex digits (the ``row_hash`` aggregate).

    Each row (device_id; time as integer microseconds, or datetimes; heartrate; valid) is
    turned into four 64-bit words -- device_id and time as two's-complement int64 (NULL:
    ``0x8000000000000000``), heartrate as its IEEE-754 bits with -0.0 as 0.0 and every NaN or
    NULL as ``0x7ff8000000000000``, valid as 1 / 0 (NULL: 2) -- and hashed with splitmix64:
    ``h = mix(mix(mix(mix(device) ^ time) ^ heartrate) ^ valid)`` where
    ``mix(x) = z ^ (z >> 31)`` for ``z`` the two multiply-xorshift steps of splitmix64 on
    ``x + 0x9E3779B97F4A7C15``. The table's hash is the sum of the row hashes modulo 2**64:
    the same for any row order, different (with overwhelming probability) when one value,
    one row or one duplicate differs.

    >>> heart_rate_hash([1], [1678492800000000], [72.0], [True]) == heart_rate_hash([1], [1678492800000000], [72.0], [True])
    True
    """
    import numpy as np
    import pandas as pd

    device = _int_words(device_id)
    when = _int_words(time_us)
    rate = pd.Series(heartrate).reset_index(drop=True).astype("float64").to_numpy()
    rate = np.where(rate == 0.0, 0.0, rate)                       # -0.0 -> 0.0
    rate_words = np.where(np.isnan(rate), np.uint64(NAN_WORD), rate.view("uint64"))
    flags = pd.Series(valid).reset_index(drop=True)
    if flags.dtype == np.dtype("bool"):
        valid_words = flags.to_numpy().astype("uint64")
    else:
        flags = pd.array(flags, dtype="boolean")
        valid_words = np.where(np.asarray(flags.isna()), np.uint64(2),
                               flags.to_numpy(dtype="bool", na_value=False).astype("uint64"))
    if not len(device) == len(when) == len(rate_words) == len(valid_words):
        raise ValueError("heart_rate_hash: the four columns differ in length")
    with np.errstate(over="ignore"):
        h = _mix64(device)
        h = _mix64(h ^ when)
        h = _mix64(h ^ rate_words)
        h = _mix64(h ^ valid_words)
        total = int(h.sum(dtype=np.uint64)) if len(h) else 0
    return f"{total:016x}"


COURSE_WATERMARK_S = 30


def course_bounds(workout_bpm, readings, heart_rate, summary=None, delay_s: int = COURSE_WATERMARK_S) -> dict:
    """Course mode's lower bounds for ``workout_bpm`` and ``workout_bpm_summary`` after a set.

    ``workout_bpm``: every row the join can produce, with ``device_id``, ``time_us`` and
    ``end_us`` (integer microseconds) besides the key. ``readings``: the valid readings
    they come from, with ``device_id``, ``time_us`` and ``set`` (the set a reading first
    arrived in). ``heart_rate``: every reading so far (``set``, ``time_us``). ``summary``:
    the expected summary rows (only their keys are used: the users with bins).

    Returns ``{"workout_bpm": {"min_count": n}, "workout_bpm_summary": {"min_count": k,
    "must_emit": [[user_id, workout_id, session_id], ...]}}``. The rules (see
    test_data/EXPECTED.md, "Batch-dependent results"):

    * a row is *on time* when its reading arrived in the first set, or is newer than every
      reading of the earlier sets minus ``delay_s``: no watermarked join can drop it;
    * a workout reaches the summary's stream with its first on-time rows; it is late (dropped)
      when its end_time is not later than the newest end_time seen in earlier sets minus
      ``delay_s``; otherwise it is emitted once the newest end_time seen (in milliseconds)
      minus ``delay_s`` is later than its end_time -- that needs a workout ending more
      than ``delay_s`` later, so the last workouts stay held back.
    """
    import pandas as pd

    keys = ["user_id", "workout_id", "session_id"]
    delay = int(delay_s) * 1_000_000
    arrivals = readings[["device_id", "time_us", "set"]].drop_duplicates(["device_id", "time_us"])
    rows = workout_bpm[keys + ["device_id", "time_us", "end_us"]].merge(arrivals, on=["device_id", "time_us"],
                                                                        how="left")
    newest = heart_rate.groupby("set")["time_us"].max().sort_index().cummax()
    before = newest.shift(1)                                       # newest reading of the earlier sets
    threshold = rows["set"].map(before)
    on_time = rows["set"].notna() & (threshold.isna() | (rows["time_us"] > threshold - delay))

    first = (rows[on_time].groupby(keys, sort=True)
             .agg(arrival=("set", "min"), end=("end_us", "max")).reset_index())
    emitted: list[tuple] = []
    waiting: dict[tuple, int] = {}
    newest_end = None
    for arrival in sorted(first["arrival"].unique()):
        group = first[first["arrival"] == arrival]
        for row in group.itertuples(index=False):
            key = (int(row.user_id), int(row.workout_id), int(row.session_id))
            if newest_end is None or row.end > newest_end - delay:
                waiting[key] = int(row.end)
        latest = int(group["end"].max())
        newest_end = latest if newest_end is None else max(newest_end, latest)
        cutoff = (newest_end // 1000) * 1000 - delay
        for key, end in list(waiting.items()):
            if end < cutoff:
                emitted.append(key)
                del waiting[key]
    with_bins = None if summary is None else set(
        zip(*(pd.Series(summary[k]).astype("int64").tolist() for k in keys)))
    must = sorted(k for k in emitted if with_bins is None or k in with_bins)
    return {"workout_bpm": {"min_count": int(on_time.sum())},
            "workout_bpm_summary": {"min_count": len(must), "must_emit": [list(k) for k in must]}}
