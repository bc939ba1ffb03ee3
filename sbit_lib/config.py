"""Where everything of one environment lives, and how the pipeline is configured.

The course's ``Config`` reads external locations from Unity Catalog; here every
location comes from configuration, resolved in this order:

1. explicit arguments (notebook / papermill parameters, ``sbit --env ...``),
2. environment variables (``SBIT_HOME``, ``SBIT_ENV``, ``SBIT_TEST_DATA``,
   ``SBIT_MODE``, ``SBIT_AS_OF``, ``SBIT_SPARK_MASTER``; ``SBIT_SPARK_UI=false``
   turns the Spark UI off, as the tests do),
3. defaults: everything under ``<project>/lakehouse/``.

Example::

    >>> from sbit_lib.config import Config
    >>> Config.resolve(environment="qa", home="/tmp/lh").landing_zone
    PosixPath('/tmp/lh/qa/data/raw')
"""

from __future__ import annotations

import datetime as dt
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

MODES = ("default", "course")
_ENV_NAME = re.compile(r"^[a-z][a-z0-9_]{0,30}$")

# The project folder when sbit_lib is used from a checkout (editable install);
# otherwise the current directory stands in for it.
_PACKAGE_DIR = Path(__file__).resolve().parent
PROJECT_ROOT = (
    _PACKAGE_DIR.parent if (_PACKAGE_DIR.parent / "pyproject.toml").exists() else Path.cwd()
)


class ConfigError(ValueError):
    """A configuration value is invalid; the message names the setting and why."""


def _pick(explicit, env_var: str, default):
    if explicit is not None and explicit != "":
        return explicit
    value = os.environ.get(env_var)
    return value if value not in (None, "") else default


def _parse_as_of(value) -> dt.date | None:
    if value is None or isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError:
        raise ConfigError(
            f"as-of date {value!r} (--as-of / SBIT_AS_OF) is not a date: use YYYY-MM-DD, e.g. 2023-03-31"
        ) from None


@dataclass(frozen=True)
class Config:
    """Resolved settings of one environment. Build it with :meth:`Config.resolve`."""

    environment: str
    home: Path
    test_data: Path
    mode: str = "default"
    as_of: dt.date | None = None
    spark_master: str = "local[*]"
    database: str = "sbit_db"
    max_files_per_trigger: int = 1000
    bronze_max_files_per_trigger: int = 1
    spark_ui: bool = True
    extra: dict = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        if not _ENV_NAME.match(self.environment):
            raise ConfigError(
                f"environment {self.environment!r} (--env / SBIT_ENV) is invalid: use 1-31 "
                "lowercase letters, digits or underscores, starting with a letter (e.g. dev, qa, ci_1); "
                "it becomes part of the database name"
            )
        if self.mode not in MODES:
            raise ConfigError(
                f"mode {self.mode!r} (--mode / SBIT_MODE) is unknown: choose 'default' "
                "(exact results) or 'course' (reproduces the course's published numbers)"
            )
        for name in ("max_files_per_trigger", "bronze_max_files_per_trigger"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} must be a positive whole number, got {value!r}")
        for name in ("home", "test_data"):
            if not Path(getattr(self, name)).is_absolute():
                raise ConfigError(f"{name} must be an absolute path after resolution")

    @classmethod
    def resolve(
        cls,
        environment: str | None = None,
        home: str | os.PathLike | None = None,
        test_data: str | os.PathLike | None = None,
        mode: str | None = None,
        as_of: str | dt.date | None = None,
        spark_master: str | None = None,
        **overrides,
    ) -> "Config":
        """Return the configuration: explicit arguments, then SBIT_* variables, then defaults."""
        home_path = Path(_pick(home, "SBIT_HOME", PROJECT_ROOT / "lakehouse")).expanduser()
        data_path = Path(_pick(test_data, "SBIT_TEST_DATA", PROJECT_ROOT / "test_data")).expanduser()
        return cls(
            environment=str(_pick(environment, "SBIT_ENV", "dev")),
            home=home_path.resolve(),
            test_data=data_path.resolve(),
            mode=str(_pick(mode, "SBIT_MODE", "default")),
            as_of=_parse_as_of(_pick(as_of, "SBIT_AS_OF", None)),
            spark_master=str(_pick(spark_master, "SBIT_SPARK_MASTER", "local[*]")),
            **{"spark_ui": _pick(None, "SBIT_SPARK_UI", "true").lower() not in ("0", "false", "no"),
               **overrides},
        )

    # -- derived locations: one folder per environment, nothing shared --------------
    @property
    def env_root(self) -> Path:
        """Everything of this environment lives below this folder."""
        return self.home / self.environment

    @property
    def data_zone(self) -> Path:
        """The course's ``data_zone`` external location."""
        return self.env_root / "data"

    @property
    def landing_zone(self) -> Path:
        """Where the producer lands raw files: ``<data zone>/raw``."""
        return self.data_zone / "raw"

    @property
    def tables_zone(self) -> Path:
        """Where the Delta tables of this environment are stored."""
        return self.data_zone / "delta"

    @property
    def checkpoint_zone(self) -> Path:
        """The course's ``checkpoint`` external location."""
        return self.env_root / "checkpoints"

    @property
    def db_name(self) -> str:
        """Spark database of this environment: ``<environment>_sbit_db`` (the course's ``dev.sbit_db``)."""
        return f"{self.environment}_{self.database}"

    @property
    def as_of_date(self) -> dt.date:
        """The date ages are computed at: the configured one, else today (UTC)."""
        return self.as_of or dt.datetime.now(dt.timezone.utc).date()

    def table_location(self, table: str) -> Path:
        """Absolute storage folder of a Delta table."""
        return self.tables_zone / table

    def checkpoint_dir(self, query: str) -> Path:
        """Absolute checkpoint folder of one streaming query."""
        return self.checkpoint_zone / query

    def qualified(self, table: str) -> str:
        """``<db>.<table>`` for SQL."""
        return f"{self.db_name}.{table}"
