"""The course's ``SetupHelper``: create, check and remove one environment's objects.

Set-up is crash-consistent: a process killed while it creates a table can leave the table's
folder with a ``_delta_log`` but no commit in it (only ``_staged_commits/``, or nothing).
No version of that table was ever written, so it is a table not yet created: the next
set-up removes the log's leftovers and creates it. A table with a commit is never removed
or replaced (``CREATE TABLE IF NOT EXISTS``).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

from sbit_lib.course.catalog import create_database, create_view, get_spark, has_commit, sql_str
from sbit_lib.course.config import DECLARATIVE_CHECKPOINTS, Config
from sbit_lib.course.tables import ALL_TABLES, GYM_SUMMARY, TableDef
from sbit_lib.spark.runlock import JobLock, JobLockedError, job_dir
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
        if not has_commit(self.config.table_location(table.name)):
            self._clear_uncommitted(table)      # a create cut short: no version of it exists
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

    def _clear_uncommitted(self, table: TableDef) -> None:
        """Make way for creating `table`, whose folder holds no commit: forget it, remove its log.

        A catalog entry (this process registered the table, and its folder lost its log since)
        is dropped: the table is external, so DROP TABLE deletes no file. What the log holds
        (``_staged_commits/``, checksums, temporary files) belongs to no version. Anything
        else in the folder is not Delta's leftover: it is left alone, and the error says so.
        """
        location = self.config.table_location(table.name)
        # Look before removing anything: a folder with other files keeps its log too.
        others = sorted(entry.name for entry in location.iterdir() if entry.name != "_delta_log") \
            if location.is_dir() else []
        if others:
            raise RuntimeError(
                f"{location} holds {', '.join(others[:5])}{' ...' if len(others) > 5 else ''} but no Delta "
                f"commit, so no version of table {table.name} was ever written there; move those files away "
                f"(or delete the folder) and run set-up again")
        self.spark.sql(f"DROP TABLE IF EXISTS {self.config.qualified(table.name)}")
        if remove_tree(location / "_delta_log"):
            print(f"  {table.name}: removed the Delta log of a create cut short (it held no commit)")

    def setup(self) -> None:
        """Create the database, every table and the gym_summary view; safe to call again."""
        print(f"Setting up {self.config.db_name} in {self.config.data_zone} ...")
        create_database(self.spark, self.config)
        # Each CREATE is a Delta commit of its own, mostly waiting on the driver: a few at a
        # time keep both cores busy (a fresh setup: 17 s one by one, see the commit log).
        with self._lock_while_creating(), ThreadPoolExecutor(max_workers=SETUP_THREADS) as pool:
            list(pool.map(self._create_table, ALL_TABLES))
        create_view(self.spark, self.config)
        self.config.landing_zone.mkdir(parents=True, exist_ok=True)
        self.config.checkpoint_zone.mkdir(parents=True, exist_ok=True)
        print(f"Setup completed: {len(ALL_TABLES)} tables and the {GYM_SUMMARY} view")

    @contextmanager
    def _lock_while_creating(self):
        """Hold the environment's run lock (re-entrant within a run) while tables are created.

        Creating a table may remove the commit-less log a killed set-up left: no other process
        may be creating that table meanwhile (the lock is refused while one runs), and a killed
        run's Spark JVM may still be writing its first commit (acquiring waits for it to exit).
        When every table exists no lock is taken, so set-up can run while a stream job does (it
        then only adds a missing table property, if any).
        """
        todo = [t.name for t in ALL_TABLES if not has_commit(self.config.table_location(t.name))]
        if not todo:
            yield
            return
        try:
            lock = JobLock(self.config, "setup").acquire()
        except JobLockedError as err:
            raise JobLockedError(f"cannot create {', '.join(todo)}: {err}") from None
        try:
            lock.record_jvm(self.spark)
            yield
        finally:
            lock.release()

    def is_set_up(self) -> bool:
        """Return True when every table and the view exist."""
        return not self.missing()

    def missing(self) -> list[str]:
        """Return the names of the tables or view that do not exist (yet).

        A table exists when its folder holds a Delta commit and the catalog points at it; a
        folder without a commit (a create cut short) is missing, whatever the catalog holds.
        The catalog is listed, not asked table by table: ``tableExists`` fails on an entry
        whose folder lost its log.
        """
        db = self.config.db_name
        known = set()
        if self.spark.catalog.databaseExists(db):
            known = {row["tableName"] for row in self.spark.sql(f"SHOW TABLES IN {db}").collect()
                     if not row["isTemporary"]}
        missing = [t.name for t in ALL_TABLES
                   if t.name not in known or not has_commit(self.config.table_location(t.name))]
        return missing + ([GYM_SUMMARY] if GYM_SUMMARY not in known else [])

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
            # ... and the declarative pipeline's checkpoints (`sbit declarative run`, notebook 11)
            (config.checkpoint_zone, [config.checkpoint_dir(t.name) for t in ALL_TABLES]
             + [config.checkpoint_zone / DECLARATIVE_CHECKPOINTS]))
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
