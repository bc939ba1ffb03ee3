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
