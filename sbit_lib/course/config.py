"""Where everything of one environment lives, and how the pipeline is configured.

The course's ``Config`` reads external locations from Unity Catalog; here every
location comes from configuration, resolved in this order:

1. explicit arguments (notebook / papermill parameters, ``sbit --env ...``),
2. environment variables (``SBIT_HOME``, ``SBIT_ENV``, ``SBIT_TEST_DATA``,
   ``SBIT_MODE``, ``SBIT_AS_OF``, ``SBIT_SPARK_MASTER``, ``SBIT_DATA_ZONE``,
   ``SBIT_CHECKPOINT_ZONE``; ``SBIT_SPARK_UI=false`` turns the Spark UI off, as the
   tests do),
3. defaults: everything under ``<project>/lakehouse/``.

The data zone (landing files and Delta tables) and the checkpoint zone may live
elsewhere, as a local folder or a Hadoop-compatible URL (``file:///shared/sbit``,
``s3a://bucket/sbit``): ``SBIT_DATA_ZONE`` / ``SBIT_CHECKPOINT_ZONE`` name a root,
and each environment gets a folder of its own below it. A zone given as a URL is a
:class:`sbit_lib.spark.storage.HadoopPath`, a local one a :class:`pathlib.Path`.

Example::

    >>> from sbit_lib.course.config import Config
    >>> Config.resolve(environment="qa", home="/tmp/lh").landing_zone
    PosixPath('/tmp/lh/qa/data/raw')
"""

from __future__ import annotations

import datetime as dt
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from sbit_lib import PROJECT_ROOT, ConfigError
from sbit_lib.spark.storage import HadoopPath, Zone, as_zone, is_url

__all__ = ["Config", "ConfigError", "MODES", "PROJECT_ROOT"]

MODES = ("default", "course")
# The folder below the checkpoint zone where the declarative pipeline (sbit_lib/declarative,
# notebook 11) keeps its checkpoints; an environment that has it is that pipeline's.
DECLARATIVE_CHECKPOINTS = "declarative"
_ENV_NAME = re.compile(r"^[a-z][a-z0-9_]{0,30}$")

def _pick(explicit, env_var: str, default):
    if explicit is not None and explicit != "":
        return explicit
    value = os.environ.get(env_var)
    return value if value not in (None, "") else default


def _root(value) -> str | None:
    """A zone root as given: a URL unchanged, a local path made absolute."""
    if value is None or value == "":
        return None
    return str(value) if is_url(value) else str(Path(value).expanduser().resolve())


def _check_root(value: str | None, var: str) -> None:
    if value is None:
        return
    if is_url(value):
        try:
            HadoopPath(value)
        except ValueError as error:
            raise ConfigError(f"{var}={value!r} is not a usable URL: {error}") from None
        if value.lower().startswith("file:") and not value[5:].startswith("/"):
            raise ConfigError(f"{var}={value!r}: a file: URL needs an absolute path, e.g. file:///shared/sbit")
        host = re.match(r"^file://([^/]*)", value, re.IGNORECASE)
        if host and host.group(1) not in ("", "localhost"):
            raise ConfigError(f"{var}={value!r}: {host.group(1)!r} would be a host name; a local folder "
                              f"is file:/// + its absolute path, e.g. file:///{value[7:]}")
    elif not Path(value).is_absolute():
        raise ConfigError(f"{var}={value!r} must be an absolute folder or a URL such as "
                          "file:///shared/sbit or s3a://bucket/sbit")


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
    data_root: str | None = None
    checkpoint_root: str | None = None
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
        for name, var in (("data_root", "SBIT_DATA_ZONE"), ("checkpoint_root", "SBIT_CHECKPOINT_ZONE")):
            _check_root(getattr(self, name), var)

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
            data_root=_root(_pick(overrides.pop("data_root", None), "SBIT_DATA_ZONE", None)),
            checkpoint_root=_root(_pick(overrides.pop("checkpoint_root", None), "SBIT_CHECKPOINT_ZONE", None)),
            **{"spark_ui": _pick(None, "SBIT_SPARK_UI", "true").lower() not in ("0", "false", "no"),
               **overrides},
        )

    # -- derived locations: one folder per environment, nothing shared --------------
    @property
    def env_root(self) -> Path:
        """Everything of this environment lives below this folder."""
        return self.home / self.environment

    @property
    def data_zone(self) -> Zone:
        """The course's ``data_zone`` external location: ``<SBIT_DATA_ZONE>/<environment>``,
        by default ``<env root>/data``."""
        return as_zone(self.data_root) / self.environment if self.data_root else self.env_root / "data"

    @property
    def landing_zone(self) -> Zone:
        """Where the producer lands raw files: ``<data zone>/raw``."""
        return self.data_zone / "raw"

    @property
    def tables_zone(self) -> Zone:
        """Where the Delta tables of this environment are stored."""
        return self.data_zone / "delta"

    @property
    def checkpoint_zone(self) -> Zone:
        """The course's ``checkpoint`` external location: ``<SBIT_CHECKPOINT_ZONE>/<environment>``,
        by default ``<env root>/checkpoints``."""
        if self.checkpoint_root:
            return as_zone(self.checkpoint_root) / self.environment
        return self.env_root / "checkpoints"

    @property
    def db_name(self) -> str:
        """Spark database of this environment: ``<environment>_sbit_db`` (the course's ``dev.sbit_db``)."""
        return f"{self.environment}_{self.database}"

    @property
    def as_of_date(self) -> dt.date:
        """The date ages are computed at: the configured one, else today (UTC)."""
        return self.as_of or dt.datetime.now(dt.timezone.utc).date()

    def table_location(self, table: str) -> Zone:
        """Absolute storage folder of a Delta table."""
        return self.tables_zone / table

    def checkpoint_dir(self, query: str) -> Zone:
        """Absolute checkpoint folder of one streaming query."""
        return self.checkpoint_zone / query

    def qualified(self, table: str) -> str:
        """``<db>.<table>`` for SQL."""
        return f"{self.db_name}.{table}"
