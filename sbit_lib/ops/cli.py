"""``sbit``: the pipeline from the command line.

Every command takes the configuration options (or the SBIT_* environment variables)
and prints one clear line and exits non-zero on an error.

    sbit setup | clean | produce N | run [--stream] | validate N | sql "SELECT ..." | counts
    sbit start | status | stop          (the stream job in the background)
    sbit jars | prepare-data | cds | demo
    sbit declarative run [--full-refresh] | dry-run   (the same pipeline as a Spark Declarative Pipeline)
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import os
import sys

from sbit_lib.course.config import Config, ConfigError
from sbit_lib.ops.job import root_cause


def _config(args) -> Config:
    return Config.resolve(environment=args.env, home=args.home, test_data=args.test_data,
                          mode=args.mode, as_of=args.as_of, spark_master=args.spark_master,
                          data_root=args.data_zone, checkpoint_root=args.checkpoint_zone)


def _spark(config: Config):
    from sbit_lib.course.catalog import get_spark

    return get_spark(config)


def cmd_setup(args, config):
    from sbit_lib.course.run import ensure_setup
    from sbit_lib.course.setup_helper import SetupHelper

    spark = _spark(config)
    ensure_setup(config, spark)                   # creates only what is missing, loads history if empty
    SetupHelper(config, spark).validate()


def cmd_clean(args, config):
    from sbit_lib.course.setup_helper import SetupHelper
    from sbit_lib.ops.job import ensure_not_running

    ensure_not_running(config, "clean up")       # before starting Spark: a quick, clear refusal
    SetupHelper(config, _spark(config)).cleanup()


def cmd_produce(args, config):
    from sbit_lib.course.producer import Producer
    from sbit_lib.spark.storage import HadoopPath

    if isinstance(config.landing_zone, HadoopPath):
        _spark(config)        # a URL zone is written through Spark's JVM: this config's session

    Producer(config).produce(args.set)


def cmd_run(args, config):
    from sbit_lib.course.run import ensure_hand_built_environment

    ensure_hand_built_environment(config)        # a quick refusal, before Spark or a stream job starts
    if args.stream:
        from sbit_lib.ops.job import run_job

        run_job(config, processing_time=args.processing_time, log=args.log)   # takes the lock, then starts Spark
    else:
        from sbit_lib.course.run import run
        from sbit_lib.ops.job import ensure_not_running

        ensure_not_running(config, "run the pipeline")
        run(config, once=True, spark=_spark(config))


def cmd_declarative(args, config):
    from sbit_lib.declarative.runner import run as run_declarative
    from sbit_lib.ops.job import ensure_not_running

    if args.action == "dry-run" and args.full_refresh:
        raise ConfigError("--full-refresh belongs to `sbit declarative run`; a dry run writes nothing")
    if args.action == "run":
        ensure_not_running(config, "run the declarative pipeline")
    result = run_declarative(config, full_refresh=args.full_refresh, dry_run=args.action == "dry-run")
    if args.action == "dry-run":
        print("The graph (dataset, kind, what it reads):")
        print(result.graph.listing())
        print("As Mermaid (paste into a Markdown cell or mermaid.live):")
        print(result.graph.mermaid())
    print(f"Declarative pipeline {'dry run' if result.dry_run else 'run'} done in {result.seconds:.1f} s "
          f"(Spark Connect session {result.start_up_s:.1f} s); {len(result.completed_flows)} flows completed")


def cmd_start(args, config):
    from sbit_lib.ops.job import start_job

    job = start_job(config, processing_time=args.processing_time)
    print(f"Started the stream job of environment {config.environment!r}: pid {job.pid}, log {job.log_path}")
    if args.no_wait:
        return
    job.wait_running(args.timeout)
    print(f"Its queries are running. Watch: sbit status --env {config.environment}   "
          f"Stop: sbit stop --env {config.environment}")


def cmd_status(args, config):
    from sbit_lib.ops.job import format_status, read_status

    status = read_status(config)
    print(format_status(config, status))
    if not (status and status["alive"]):
        return 3        # like `systemctl status`: 3 = not running
    return 0


def cmd_stop(args, config):
    from sbit_lib.ops.job import read_status, request_stop

    if not request_stop(config, timeout_s=args.timeout):
        print(f"No stream job is running in environment {config.environment!r}; nothing to stop")
        return
    status = read_status(config) or {}
    print(f"Stream job of environment {config.environment!r} stopped ({status.get('state', '?')}); "
          "its checkpoints are valid, `sbit start` resumes where it stopped")


def cmd_validate(args, config):
    from sbit_lib.course.run import validate_every_layer

    validate_every_layer(config, _spark(config), args.set)


def cmd_counts(args, config):
    from sbit_lib.course.bronze import Bronze
    from sbit_lib.course.silver import Silver
    from sbit_lib.course.tables import QUARANTINE

    spark = _spark(config)
    bronze = Bronze(config, spark)
    counts = bronze.counts()
    print(f"Bronze tables of {config.db_name}:")
    print(f"  registered_users_bz  {counts['registered_users_bz']:>9,}")
    print(f"  gym_logins_bz        {counts['gym_logins_bz']:>9,}")
    for topic, n in counts["kafka_multiplex_bz"].items():
        print(f"  kafka_multiplex_bz   {n:>9,}  topic {topic}")
    rejected = bronze.rejected_counts()
    print(f"  quarantine_bz        {sum(rejected.values()):>9,}  malformed records kept")
    for row in (spark.read.table(config.qualified(QUARANTINE.name)).groupBy("source", "reason").count()
                .orderBy("source", "reason").collect()):
        print(f"    {row['count']:>9,}  {row['source']}: {row['reason']}")
    print(f"Silver tables of {config.db_name} (bronze records read = rows written or merged + rejected + dropped):")
    for line in Silver(config, spark).counts():
        name = line["table"] or "(none)"
        print(f"  {name:<20} {line['rows']:>9,} rows  from {line['bronze']:,} records of {line['source']}")
        for reason, n in sorted(line["rejected"].items()):
            print(f"    {n:>9,}  rejected: {reason}  (rejects_sv)")
        if line["dropped"]:
            print(f"    {line['dropped']:>9,}  dropped by design: {line['dropped_why']}")


def _sql_text(frame):
    """Return (column names, Spark types, rows): every value as the text Spark prints for its SQL type.

    Spark renders, not pandas (which would make a DATE a timestamp and a BIGINT column with a
    NULL a float): a value is cast to STRING (a DATE ``2023-03-11``, a TIMESTAMP ``2023-03-11
    10:00:00.5`` in the session's time zone, a BIGINT ``500109``, a DOUBLE ``0.1`` or
    ``1.0E10``); a struct, array or map becomes JSON (``to_json``), a BINARY base64. A NULL
    stays None.
    """
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    names, types = frame.columns, [field.dataType for field in frame.schema.fields]
    aliases = [f"c{i}" for i in range(len(names))]          # positional: names may repeat

    def text(alias, data_type):
        if isinstance(data_type, (T.StructType, T.ArrayType, T.MapType)):
            return F.to_json(F.col(alias), {"ignoreNullFields": "false"})
        if isinstance(data_type, T.BinaryType):
            return F.base64(F.col(alias))
        return F.col(alias).cast("string")

    rows = frame.toDF(*aliases).select([text(a, t).alias(a) for a, t in zip(aliases, types)]).collect()
    return names, types, [tuple(row) for row in rows]


def _json_value(text, data_type) -> str:
    """One value of `_sql_text` as JSON: numbers and booleans bare, nested values as their JSON."""
    from pyspark.sql import types as T

    if text is None:
        return "null"
    if isinstance(data_type, T.BooleanType) or (
            isinstance(data_type, T.NumericType) and text not in ("NaN", "Infinity", "-Infinity")):
        return text
    if isinstance(data_type, (T.StructType, T.ArrayType, T.MapType, T.VariantType)):
        return text
    return json.dumps(text, ensure_ascii=False)


def _table(names, types, rows) -> str:
    """A plain text table: a NULL shows as NULL, numbers right-aligned."""
    from pyspark.sql import types as T

    cells = [["NULL" if v is None else v.replace("\n", " ") for v in row] for row in rows]
    widths = [max([len(name), *(len(row[i]) for row in cells)]) for i, name in enumerate(names)]
    right = [isinstance(t, T.NumericType) for t in types]

    def line(values):
        return "  ".join(v.rjust(w) if r else v.ljust(w) for v, w, r in zip(values, widths, right)).rstrip()

    return "\n".join([line(names), *(line(row) for row in cells)])


def cmd_sql(args, config):
    spark = _spark(config)
    if not spark.catalog.databaseExists(config.db_name):
        raise RuntimeError(f"environment {config.environment!r} has no tables under {config.env_root}: "
                           f"run `sbit setup --env {config.environment}` first")
    spark.catalog.setCurrentDatabase(config.db_name)
    names, types, rows = _sql_text(spark.sql(args.query))
    if args.format == "csv":
        if names:
            writer = csv.writer(sys.stdout, lineterminator="\n")
            writer.writerow(names)
            writer.writerows(["" if v is None else v for v in row] for row in rows)
    elif args.format == "json":
        for row in rows:
            fields = (f"{json.dumps(n, ensure_ascii=False)}:{_json_value(v, t)}" for n, v, t in zip(names, row, types))
            sys.stdout.write("{" + ",".join(fields) + "}\n")
    else:
        print(_table(names, types, rows) if rows else "(no rows)")


def cmd_jars(args, config):
    from sbit_lib.spark import jars

    cached = None if args.force else jars.cached_jars()
    found = cached or jars.resolve(via=tuple(args.via))
    print(f"{len(found)} Delta jars for {jars.delta_artifact()} in {found[0].parent}"
          + (" (cached)" if cached else ""))


def cmd_cds(args, config):
    from sbit_lib.ops.cds import build

    build(force=args.force)


def cmd_prepare_data(args, config):
    from sbit_lib.testing.testdata import prepare

    prepare(config.test_data)


def cmd_demo(args, config):
    """The main job: a fresh environment, set 1 through every layer, validated, then the results."""
    from sbit_lib.course.producer import Producer
    from sbit_lib.course.run import run
    from sbit_lib.course.setup_helper import SetupHelper
    from sbit_lib.testing.expectations import Expectations

    if args.env is None and "SBIT_ENV" not in os.environ:
        config = dataclasses.replace(config, environment="demo")
    if config.as_of is None:   # ages as of the expected results' date, so validation can pass
        config = dataclasses.replace(config, as_of=Expectations.load(config.test_data).as_of)
    spark = _spark(config)
    SetupHelper(config, spark).cleanup()
    Producer(config).produce(1)
    run(config, spark=spark)
    args.set = 1
    cmd_validate(args, config)
    cmd_counts(args, config)
    print(f"\nGold: {config.qualified('gym_summary')}")
    spark.table(config.qualified("gym_summary")).show(truncate=False)
    print(f"Gold: {config.qualified('workout_bpm_summary')}")
    spark.table(config.qualified("workout_bpm_summary")).orderBy("user_id", "session_id").show(truncate=False)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sbit", description="The SBIT lakehouse on local Spark + Delta.")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--env", help="environment name (SBIT_ENV, default dev)")
    common.add_argument("--home", help="root folder of all environments (SBIT_HOME, default ./lakehouse)")
    common.add_argument("--test-data", help="folder of set files (SBIT_TEST_DATA, default ./test_data)")
    common.add_argument("--mode", help="default | course (SBIT_MODE)")
    common.add_argument("--as-of", help="date ages are computed at, YYYY-MM-DD (SBIT_AS_OF)")
    common.add_argument("--spark-master", help="Spark master URL (SBIT_SPARK_MASTER, default local[*])")
    common.add_argument("--data-zone", help="root of the data zone, a folder or a URL such as s3a://bucket/sbit; "
                        "each environment gets a folder below it (SBIT_DATA_ZONE, default <home>/<env>/data)")
    common.add_argument("--checkpoint-zone", help="root of the checkpoint zone, a folder or a URL "
                        "(SBIT_CHECKPOINT_ZONE, default <home>/<env>/checkpoints)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name, func, help_text):
        p = sub.add_parser(name, parents=[common], help=help_text, description=help_text)
        p.set_defaults(func=func)
        return p

    add("setup", cmd_setup, "create the tables and view (idempotent) and load history")
    add("clean", cmd_clean, "remove this environment's database, landing zone and checkpoints")
    add("produce", cmd_produce, "land set N's files in the landing zone").add_argument("set", type=int)
    p = add("run", cmd_run, "run the pipeline once (availableNow) or as a stream")
    p.add_argument("--stream", action="store_true", help="keep running with processingTime triggers")
    p.add_argument("--processing-time", default="5 seconds", help='trigger interval, e.g. "1 second"')
    p.add_argument("--log", help=argparse.SUPPRESS)   # set by `sbit start`: shown by `sbit status`
    p = add("start", cmd_start, "start the stream job in the background (log in <home>/.jobs/<env>/job.log)")
    p.add_argument("--processing-time", default="5 seconds", help='trigger interval, e.g. "1 second"')
    p.add_argument("--timeout", type=float, default=300, help="seconds to wait for its queries to run")
    p.add_argument("--no-wait", action="store_true", help="return as soon as the process is started")
    add("status", cmd_status, "show the stream job: state, each query's last micro-batch, memory "
        "(exit 3 when none runs)")
    p = add("stop", cmd_stop, "stop the stream job gracefully and wait until it has stopped")
    p.add_argument("--timeout", type=float, default=180, help="seconds to wait")
    add("validate", cmd_validate, "check every layer after set N against the expected results").add_argument("set", type=int)
    add("counts", cmd_counts, "print the bronze row counts")
    p = add("sql", cmd_sql, "run a SQL query against this environment's database")
    p.add_argument("query")
    p.add_argument("--format", choices=("table", "csv", "json"), default="table")
    p = add("jars", cmd_jars, "download the Delta jars once into the cache (done by make setup)")
    p.add_argument("--via", nargs="+", choices=("ivy", "maven"), default=["ivy", "maven"])
    p.add_argument("--force", action="store_true", help="download again even if cached")
    add("prepare-data", cmd_prepare_data, "generate heart-rate sets and expected results")
    p = add("cds", cmd_cds, "make the driver JVM's class-data archive once: faster Spark start-up (done by make setup)")
    p.add_argument("--force", action="store_true", help="make it again even if it exists")
    p = add("declarative", cmd_declarative, "the pipeline declared with pyspark.pipelines (notebook 11): "
            "run it, or dry-run it to check and print its graph; in an environment of its own")
    p.add_argument("action", choices=("run", "dry-run"))
    p.add_argument("--full-refresh", action="store_true",
                   help="empty every table and checkpoint of the pipeline and rebuild from the landed files")
    add("demo", cmd_demo, "the main job: fresh environment 'demo', set 1 through every layer, validated")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        config = _config(args)
        code = args.func(args, config)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:         # `sbit status | head`: the reader has gone, not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as err:  # one clear line, not a Py4J trace (SBIT_DEBUG=1 shows it)
        if os.environ.get("SBIT_DEBUG"):
            raise
        print(f"error: {root_cause(err)}", file=sys.stderr)
        return 2 if isinstance(err, ConfigError) else 1
    return code or 0


if __name__ == "__main__":
    sys.exit(main())
