"""The course's ``SetupHelper``: create, check and remove one environment's objects."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from sbit_lib.course.catalog import create_database, create_view, get_spark, sql_str
from sbit_lib.course.config import Config
from sbit_lib.course.tables import ALL_TABLES, GYM_SUMMARY, TableDef
from sbit_lib.spark.runlock import JobLock, job_dir
from sbit_lib.spark.storage import remove_if_empty, remove_tree
from sbit_lib.testing.validation import ValidationError

SETUP_THREADS = 4


class SetupHelper:
    """Create (idempotently), validate and clean up the tables and view of one environment."""

    def __init__(self, config: Config | None = None, spark=None):
        self.config = config or Config.resolve()
        self.spark = spark or get_spark(self.config)

    def _create_table(self, table: TableDef) -> None:
        # IF NOT EXISTS, not OR REPLACE: a second setup must never wipe data.
        partitioned = f" PARTITIONED BY ({', '.join(table.partitioned_by)})" if table.partitioned_by else ""
        props = ""
        if table.properties:
            props = " TBLPROPERTIES (" + ", ".join(f"'{k}' = '{v}'" for k, v in table.properties) + ")"
        name = self.config.qualified(table.name)
        self.spark.sql(
            f"CREATE TABLE IF NOT EXISTS {name} ({table.columns}) "
            f"USING DELTA{partitioned} LOCATION {sql_str(self.config.table_location(table.name))}{props}"
        )
        # A table made by an older setup may lack a property; add it without a new
        # Delta version when it is already there.
        current = {r["key"]: r["value"] for r in self.spark.sql(f"SHOW TBLPROPERTIES {name}").collect()}
        missing = [(k, v) for k, v in table.properties if current.get(k) != v]
        if missing:
            pairs = ", ".join(f"'{k}' = '{v}'" for k, v in missing)
            self.spark.sql(f"ALTER TABLE {name} SET TBLPROPERTIES ({pairs})")

    def setup(self) -> None:
        """Create the database, every table and the gym_summary view; safe to call again."""
        print(f"Setting up {self.config.db_name} in {self.config.data_zone} ...")
        create_database(self.spark, self.config)
        # Each CREATE is a Delta commit of its own, mostly waiting on the driver: a few at a
        # time keep both cores busy (a fresh setup: 17 s one by one, see the commit log).
        with ThreadPoolExecutor(max_workers=SETUP_THREADS) as pool:
            list(pool.map(self._create_table, ALL_TABLES))
        create_view(self.spark, self.config)
        self.config.landing_zone.mkdir(parents=True, exist_ok=True)
        self.config.checkpoint_zone.mkdir(parents=True, exist_ok=True)
        print(f"Setup completed: {len(ALL_TABLES)} tables and the {GYM_SUMMARY} view")

    def is_set_up(self) -> bool:
        """Return True when every table and the view exist."""
        return not self.missing()

    def missing(self) -> list[str]:
        """Return the names of the tables or view that do not exist (yet)."""
        names = [t.name for t in ALL_TABLES] + [GYM_SUMMARY]
        return [n for n in names if not self.spark.catalog.tableExists(self.config.qualified(n))]

    def validate(self) -> None:
        """Raise ValidationError naming any table or view that is missing."""
        print(f"Validating setup of {self.config.db_name} ...")
        missing = self.missing()
        if missing:
            raise ValidationError(
                f"setup of {self.config.db_name} is incomplete: missing {', '.join(missing)} "
                "(run `sbit setup`)"
            )
        print(f"Setup validation completed: all {len(ALL_TABLES) + 1} objects exist")

    def cleanup(self) -> None:
        """Drop this environment's database and delete its tables, landing zone and checkpoints.

        Nothing outside ``<SBIT_HOME>/<environment>`` is touched, nor, when the zones live
        elsewhere (see Config), anything but the landing and tables folders and the query
        checkpoints in the environment's zone folders (then those folders, if empty); so
        other environments survive. Zones given as URLs are deleted through Hadoop's file
        system (sbit_lib.spark.storage).
        """
        with JobLock(self.config, "cleanup"):     # refused while a run holds the environment
            self._cleanup(job_dir(self.config))

    def _cleanup(self, jobs) -> None:
        print(f"Cleaning up {self.config.db_name} ...")
        create_database(self.spark, self.config)   # claims the name for this environment's folders
        self.spark.sql(f"DROP DATABASE IF EXISTS {self.config.db_name} CASCADE")
        # A zone elsewhere (SBIT_DATA_ZONE, SBIT_CHECKPOINT_ZONE) loses what the pipeline put
        # there, then the environment's folder if that is empty: a folder of the same name
        # someone else filled survives.
        config, removed, kept = self.config, [], []
        outside = [(zone, parts) for zone, parts in (
            (config.data_zone, [config.landing_zone, config.tables_zone]),
            (config.checkpoint_zone, [config.checkpoint_dir(t.name) for t in ALL_TABLES]))
            if not zone.is_relative_to(config.env_root)]
        for zone, parts in outside:
            removed += [str(part) for part in parts if remove_tree(part)]
            if remove_if_empty(zone):
                removed.append(str(zone))
            elif zone.exists():
                kept.append(str(zone))
        if remove_tree(config.env_root):
            removed.append(str(config.env_root))
        for leftover in jobs.glob("*"):   # the last job's status and log; not the lock
            if leftover.name != "lock":
                leftover.unlink()
        print(f"Removed {', '.join(removed) or 'nothing (no folders)'}")
        for zone in kept:
            print(f"Kept {zone}: it holds files the pipeline did not put there")
