"""``make bench``: what a user waits for, as ratios to a plain Spark batch timed in the same run.

The machine's own speed changes from day to day (2.5 times between two days here), so each
figure is divided by a **calibration** measured at the start of the run, in a new process: a
plain Spark batch of one heart-rate file (``spark.read.schema(<bronze's Kafka schema>)
.json("3-bpm_1.json").write.format("delta")``, after one warm-up, median of 3:
``calibration_s``), with DuckDB's time for the same file beside it (the single-machine floor).

Ratios in ``build/bench/bench.json`` (``ratios.<key>``; seconds under ``seconds.<key>``):
``warm_set`` (one set through every layer, set 2 after set 1 in one session),
``new_process_set1`` (``sbit run`` of a landed set 1, start-up included), ``freshness`` (stream
mode, landing to every layer valid, the worst of sets 1-2; ``freshness_per_set`` beside it),
``silver_notebook`` (``05-silver`` in a new kernel, 02-04 done) and ``make_run`` (the 2-set
batch test); and ``engine_ratio``: the warm set / DuckDB computing the tables it ends with
(:mod:`sbit_lib.ops.bench_duckdb`, its tables checked against the expected results).

docs/performance.md keeps the ratios per release in a table; the bench reads the latest
committed figure of each and says "regressed" where a ratio is more than 15% above it
(:func:`verdicts`). ``--calibrate`` measures the calibration alone and prints one line
(``make test`` starts with it, so the times in its log can be read against the day's
machine); ``--smoke`` runs the calibration and the warm set, to check the bench works.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sbit_lib.course.config import PROJECT_ROOT, Config

OUT = PROJECT_ROOT / "build" / "bench"
PERFORMANCE_MD = PROJECT_ROOT / "docs" / "performance.md"
CALIBRATION_FILE = "3-bpm_1.json"
CALIBRATION_REPS = 3                # after one warm-up: with the JVM start, under a minute on 2 cores
REGRESSION = 0.15                   # a ratio more than 15% above the committed one has regressed
ENGINE_RATIO_AIM = 20.0             # warm set / DuckDB computing the same tables

# What the user waits for, by the key of its ratio.
FIGURES = {
    "warm_set": "one set through every layer, warm session (set 2 after set 1)",
    "new_process_set1": "set 1 in a new process (`sbit run`, start-up included)",
    "freshness": "stream mode, landing to every layer valid (worst of sets 1-2)",
    "silver_notebook": "05-silver top to bottom in a new kernel (02-04 done)",
    "make_run": "`make run` after set-up (the 2-set batch test)",
}
# docs/performance.md's table of ratios per release: (key, column title), in its order.
COLUMNS = (("date", "date"), ("code", "code"), ("calibration_s", "calibration s"),
           ("warm_set", "warm set"), ("new_process_set1", "set 1, new process"),
           ("freshness", "freshness (worst set)"), ("silver_notebook", "05-silver"),
           ("make_run", "make run"), ("engine_ratio", "engine ratio"))
TABLE_HEADER = "| " + " | ".join(title for _, title in COLUMNS) + " |"


def _median(values) -> float:
    return round(statistics.median(values), 2)


def _quiet(fn, *args, **kwargs):
    """Run fn with its prints (progress lines of the library) swallowed."""
    import contextlib
    import io

    with contextlib.redirect_stdout(io.StringIO()):
        return fn(*args, **kwargs)


def _fresh(name: str, home: Path, **settings) -> Config:
    """A clean, set-up environment `name` (set-up is not part of any timing)."""
    from sbit_lib.course.catalog import get_spark
    from sbit_lib.course.run import ensure_setup
    from sbit_lib.course.setup_helper import SetupHelper

    config = Config.resolve(environment=name, home=home, **settings)
    spark = get_spark(config)
    _quiet(SetupHelper(config, spark).cleanup)
    _quiet(ensure_setup, config, spark)
    return config


# ------------------------------------------------------------------ the calibration
def _plain_once(spark, bpm: Path, target: Path) -> float:
    from sbit_lib.course.bronze import SOURCES

    shutil.rmtree(target, ignore_errors=True)
    start = time.monotonic()
    # Bronze's explicit schema (no inference pass): the plain batch of what bronze reads.
    spark.read.schema(SOURCES["kafka_multiplex_bz"].schema).json(str(bpm)) \
        .write.format("delta").mode("overwrite").save(str(target))
    return time.monotonic() - start


def _duckdb_once(bpm: Path, target: Path) -> float:
    import duckdb

    target.unlink(missing_ok=True)
    start = time.monotonic()
    with duckdb.connect() as con:
        con.execute(f"SET threads = {os.cpu_count()}")
        con.execute(
            "COPY (SELECT * FROM read_json(?, format = 'newline_delimited', columns = {"
            "'key': 'VARCHAR', 'value': 'VARCHAR', 'topic': 'VARCHAR', 'partition': 'BIGINT', "
            "'offset': 'BIGINT', 'timestamp': 'BIGINT'})) TO '" + str(target).replace("'", "''")
            + "' (FORMAT parquet)", [str(bpm)])
    return time.monotonic() - start


def calibrate(test_data: Path, reps: int = CALIBRATION_REPS) -> dict:
    """The plain Spark batch of one heart-rate file and DuckDB's floor, alternating after one
    warm-up, in this process's Spark session, on a temporary home removed afterwards."""
    from sbit_lib.course.catalog import get_spark

    bpm = test_data / CALIBRATION_FILE
    if not bpm.is_file():
        raise FileNotFoundError(f"{bpm} is missing: `make setup` (sbit prepare-data) makes it")
    home = Path(tempfile.mkdtemp(prefix="sbit-calibrate-"))
    os.environ["SBIT_HOME"] = str(home)
    try:
        spark = get_spark(Config.resolve(environment="bench_calibrate", home=home))
        _plain_once(spark, bpm, home / "plain")        # the first Delta write of a JVM: not counted
        plain, floor = [], []
        for _ in range(reps):
            plain.append(_plain_once(spark, bpm, home / "plain"))
            floor.append(_duckdb_once(bpm, home / "floor.parquet"))
    finally:
        shutil.rmtree(home, ignore_errors=True)
    return {"file": bpm.name, "reps": reps, "calibration_s": _median(plain), "duckdb_s": _median(floor),
            "plain_all_s": [round(x, 2) for x in plain], "duckdb_all_s": [round(x, 2) for x in floor]}


def calibration_line(calibration: dict, committed: dict) -> str:
    line = (f"calibration: plain Spark batch of {calibration['file']} {calibration['calibration_s']:.2f} s "
            f"(median of {calibration['reps']}), DuckDB floor {calibration['duckdb_s']:.2f} s; ")
    if "calibration_s" not in committed:
        return line + "no committed calibration to compare with"
    seconds, date = committed["calibration_s"]
    return line + f"machine factor vs committed table {calibration['calibration_s'] / seconds:.1f}x ({date})"


# ------------------------------------------------------------------ the committed ratios
def committed_figures(text: str) -> dict[str, tuple[float, str]]:
    """{key: (figure, date of its row)}: the latest number in each column of the ratio table.

    `text` is docs/performance.md; its table starts with :data:`TABLE_HEADER`, oldest row
    first. A cell that does not start with a number ("to be measured") leaves the figure of
    an earlier row in place; a column without any number is left out.
    """
    lines = [line.strip() for line in text.splitlines()]
    if TABLE_HEADER not in lines:
        return {}
    found = {}
    for line in lines[lines.index(TABLE_HEADER) + 2:]:
        if not line.startswith("|"):
            break
        row = dict(zip((key for key, _ in COLUMNS), (cell.strip() for cell in line.strip("|").split("|"))))
        for key, cell in row.items():
            number = re.match(r"\d+(\.\d+)?", cell)
            if number and key not in ("date", "code"):
                found[key] = (float(number.group()), row["date"])
    return found


def verdicts(ratios: dict[str, float], committed: dict[str, tuple[float, str]],
             tolerance: float = REGRESSION) -> dict[str, str]:
    """For each ratio: "regressed" when more than `tolerance` above the committed one (larger is
    worse), else "ok"; "no committed row" when the table has no figure for it."""
    out = {}
    for key, ratio in ratios.items():
        if key not in committed:
            out[key] = "no committed row"
            continue
        before, date = committed[key]
        change = ratio / before - 1
        out[key] = f"{'regressed' if change > tolerance else 'ok'} ({change:+.0%} vs {before:g} of {date})"
    return out


def read_committed(path: Path = PERFORMANCE_MD) -> dict[str, tuple[float, str]]:
    return committed_figures(path.read_text()) if path.is_file() else {}


# ------------------------------------------------------------------ the figures
def timed_run(config: Config, spark) -> dict:
    """One batch run of every layer: wall time per layer and in all."""
    from sbit_lib.course.bronze import Bronze
    from sbit_lib.course.gold import Gold
    from sbit_lib.course.silver import Silver
    from sbit_lib.ops.job import JobLock

    layers = {}
    with JobLock(config, "bench run"):
        for layer, start_layer in (("bronze", lambda: Bronze(config, spark).consume(once=True)),
                                   ("silver", lambda: Silver(config, spark).upsert(once=True)),
                                   ("gold", lambda: Gold(config, spark).upsert(once=True))):
            start = time.monotonic()
            for query in _quiet(start_layer):
                query.awaitTermination()
            layers[layer] = round(time.monotonic() - start, 2)
    return {"total_s": round(sum(layers.values()), 2), "layers": layers}


def warm_set(home: Path, test_data: Path) -> dict:
    """Sets 1 and 2 through every layer in one session: set 2 is the warm set, what a learner's
    next cell costs. Then DuckDB computing the tables the warm set ends with (every silver and
    gold table after sets 1-2, from both sets' files, checked against the expected results)."""
    from sbit_lib.course.catalog import get_spark
    from sbit_lib.course.producer import Producer
    from sbit_lib.ops import bench_duckdb

    config = _fresh("bench_warm", home)
    spark = get_spark(config)
    runs = []
    for n in (1, 2):
        _quiet(Producer(config).produce, n)
        runs.append(timed_run(config, spark))
    warm = runs[1]["total_s"]
    duck = [bench_duckdb.run(test_data, sets=2) for _ in range(3)]
    differences = bench_duckdb.check(test_data, duck[-1], sets=2)
    duck_s = statistics.median(r["seconds"] for r in duck)
    return {"seconds": {"warm_set": warm}, "set1": runs[0], "warm_set_layers": runs[1]["layers"],
            "engine": {"duckdb_s": round(duck_s, 3), "duckdb_all_s": [round(r["seconds"], 3) for r in duck],
                       "same_tables": not differences, "differences": differences[:10],
                       "ratio": round(warm / duck_s, 1)}}


def freshness(home: Path, test_data: Path) -> dict:
    """The stream job fed sets 1-2: seconds from landing to every layer valid, per set and the worst."""
    from sbit_lib.course.catalog import get_spark
    from sbit_lib.ops.stream_test import StreamTest
    from sbit_lib.testing.expectations import Expectations

    as_of = Expectations.load(test_data).as_of      # ages in user_bins, as validated
    config = Config.resolve(environment="bench_stream", home=home, as_of=as_of.isoformat())
    test = StreamTest(config, processing_time="1 second", timeout_s=600, spark=get_spark(config))
    _quiet(test.start)
    try:
        per_set = [round(_quiet(test.feed, n).freshness_s, 1) for n in (1, 2)]
    finally:
        _quiet(test.stop)
    return {"seconds": {"freshness": max(per_set), "freshness_per_set": per_set}}


def _timed_process(what: str, command: list[str], **kwargs) -> float:
    start = time.monotonic()
    done = subprocess.run([sys.executable, "-m", *command], capture_output=True, text=True, cwd=PROJECT_ROOT,
                          **kwargs)
    if done.returncode != 0:
        raise RuntimeError(f"{what} failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    return round(time.monotonic() - start, 1)


def make_run(home: Path, test_data: Path) -> dict:
    """The 2-set batch test, which is what `make run` does after set-up."""
    return {"seconds": {"make_run": _timed_process(
        "the batch test", ["sbit_lib.ops.batch_test", "--sets", "2", "--env", "bench_batch_test"],
        env={**os.environ, "SBIT_HOME": str(home)})}}


def new_process_set1(home: Path, test_data: Path) -> dict:
    """`sbit run` of set 1 in a new process (Python, Spark and Delta start-up included).

    The environment is set up, its history loaded and set 1 landed beforehand, as after
    `make setup` and `sbit produce 1`: the figure is what a learner waits for at the prompt.
    """
    from sbit_lib.course.producer import Producer

    config = _fresh("bench_new_process", home)
    _quiet(Producer(config).produce, 1)
    return {"seconds": {"new_process_set1": _timed_process(
        "sbit run", ["sbit_lib.ops.cli", "run", "--env", config.environment, "--home", str(home)])}}


def silver_notebook(home: Path, test_data: Path) -> dict:
    """05-silver top to bottom in a new kernel, after 02-04 ran (untimed) in the same environment."""
    import papermill

    from sbit_lib.ops.batch_test import local_kernel

    _fresh("bench_notebooks", home)            # nothing left of an earlier bench run: 05 has work to do
    notebooks = PROJECT_ROOT / "notebooks"
    out = OUT / "notebooks"
    out.mkdir(parents=True, exist_ok=True)
    seconds = 0.0
    for name in ("02-setup", "03-history-loader", "04-bronze", "05-silver"):
        start = time.monotonic()
        papermill.execute_notebook(str(notebooks / f"{name}.ipynb"), str(out / f"{name}.ipynb"),
                                   parameters=dict(environment="bench_notebooks", home=str(home)),
                                   cwd=str(notebooks), progress_bar=False, **local_kernel())
        seconds = time.monotonic() - start
    return {"seconds": {"silver_notebook": round(seconds, 1)}}


# ------------------------------------------------------------------ child processes
def run_child(module: str, args: list[str], env: dict, log: Path, what: str,
              timeout_s: float | None = None) -> dict:
    """Run ``python -m <module> <args>`` in a new process; return the JSON line it prints last.

    Its standard error goes to `log`; a failure names `what` and ends with the log's tail.
    On a timeout (none by default), Ctrl-C or SIGTERM the child is asked to stop (SIGTERM, so it can stop what
    it started, e.g. a stream job) and killed after 120 s.
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as err:
        proc = subprocess.Popen([sys.executable, "-m", module, *args], stdout=subprocess.PIPE, stderr=err,
                                text=True, cwd=PROJECT_ROOT, env=env)
        try:
            stdout, _ = proc.communicate(timeout=timeout_s)
        except BaseException:
            proc.terminate()
            try:
                proc.wait(120)
            except subprocess.TimeoutExpired:
                proc.kill()
            raise
    lines = [line for line in stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-30:])
        raise RuntimeError(f"{what} failed (exit {proc.returncode}); the end of its log {log}:\n{tail}")
    return json.loads(lines[-1])


# ------------------------------------------------------------------ report
def machine() -> dict:
    import pyspark

    from sbit_lib.spark.jars import delta_version

    return {"cores": os.cpu_count(), "spark": pyspark.__version__, "delta": delta_version(),
            "python": platform.python_version(), "platform": platform.platform(terse=True)}


def add_ratios(results: dict, committed: dict[str, tuple[float, str]]) -> dict:
    """Add ``ratios`` (each figure's seconds / ``calibration_s``), ``engine_ratio`` and ``verdicts``."""
    seconds, calibration = results.get("seconds", {}), results["calibration_s"]
    ratios = {key: round(seconds[key] / calibration, 1) for key in FIGURES if key in seconds}
    if "freshness_per_set" in seconds:
        ratios["freshness_per_set"] = [round(s / calibration, 1) for s in seconds["freshness_per_set"]]
    results["ratios"] = ratios
    gated = {key: ratios[key] for key in FIGURES if key in ratios}
    if "engine" in results:
        results["engine_ratio"] = gated["engine_ratio"] = results["engine"]["ratio"]
    results["committed"] = {key: {"figure": figure, "date": date} for key, (figure, date) in committed.items()}
    results["verdicts"] = verdicts(gated, committed)
    return results


def table(results: dict) -> list[tuple[str, str, str, str]]:
    """(figure, seconds, ratio, verdict) rows for the printed and Markdown tables."""
    seconds, ratios, verdict = results.get("seconds", {}), results.get("ratios", {}), results.get("verdicts", {})
    rows = []
    for key, title in FIGURES.items():
        if key not in seconds:
            continue
        value, ratio = f"{seconds[key]} s", f"{ratios[key]}"
        if key == "warm_set":
            value += ": " + ", ".join(f"{k} {v}" for k, v in results["warm_set_layers"].items())
        if key == "freshness" and "freshness_per_set" in seconds:
            value = ", ".join(f"set {n} {s} s" for n, s in enumerate(seconds["freshness_per_set"], 1))
            ratio += " (" + ", ".join(str(r) for r in ratios["freshness_per_set"]) + ")"
        rows.append((title, value, ratio, verdict[key]))
    engine = results.get("engine")
    if engine:
        same = "same tables" if engine["same_tables"] else f"tables DIFFER: {'; '.join(engine['differences'][:3])}"
        aim = "met" if engine["ratio"] <= ENGINE_RATIO_AIM else "NOT met"
        rows.append(("engine ratio: warm set / DuckDB computing its silver and gold tables (sets 1-2, from scratch)",
                     f"{seconds['warm_set']} s / {engine['duckdb_s']} s; {same}", f"{engine['ratio']}",
                     f"{verdict['engine_ratio']}; aim <= {ENGINE_RATIO_AIM:.0f} {aim}"))
    return rows


def write_report(results: dict, out: Path) -> str:
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench.json").write_text(json.dumps(results, indent=2) + "\n")
    m = results["machine"]
    committed = {key: (c["figure"], c["date"]) for key, c in results.get("committed", {}).items()}
    lines = [f"# make bench, {results['date']}", "",
             f"{m['cores']} cores, Spark {m['spark']}, Delta {m['delta']}, Python {m['python']}, {m['platform']}", "",
             calibration_line(results["calibration"], committed), "",
             "| what you wait for | seconds | ratio to the calibration | vs docs/performance.md |", "|---|---|---|---|"]
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in table(results)]
    text = "\n".join(lines) + "\n"
    (out / "bench.md").write_text(text)
    return text


# --only's parts: what each measures, and how.
PARTS = {"warm": ("sets 1-2 in one session, and DuckDB on the same tables", warm_set),
         "freshness": ("freshness in stream mode", freshness),
         "make-run": ("the 2-set batch test (make run)", make_run),
         "new-process": ("set 1 in a new process", new_process_set1),
         "silver": ("05-silver in a new kernel", silver_notebook)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sbit_lib.ops.bench",
                                     description="Benchmark the pipeline (see sbit_lib/ops/bench.py).")
    parser.add_argument("--only", default="", help=f"comma-separated parts, of {', '.join(PARTS)} "
                                                   "(default all; the calibration always runs)")
    parser.add_argument("--calibrate", action="store_true", help="measure the calibration alone, print one line")
    parser.add_argument("--smoke", action="store_true",
                        help="a short run that checks the bench works: the calibration and the warm set")
    parser.add_argument("--json", action="store_true", help=argparse.SUPPRESS)   # --calibrate for make bench
    parser.add_argument("--home", default="", help="lakehouse home for the bench environments")
    parser.add_argument("--out", default="", help=f"report folder (default {OUT}; --smoke: {OUT / 'smoke'})")
    args = parser.parse_args(argv)
    os.environ["SBIT_SPARK_UI"] = "false"
    if args.calibrate:
        calibration = calibrate(Config.resolve().test_data)
        print(json.dumps(calibration) if args.json else calibration_line(calibration, read_committed()))
        return 0
    wanted = {"warm"} if args.smoke else {x.strip() for x in args.only.split(",") if x.strip()} or set(PARTS)
    if not wanted <= set(PARTS):
        parser.error(f"--only takes parts of {', '.join(PARTS)}, got {args.only!r}")
    out = Path(args.out or (OUT / "smoke" if args.smoke else OUT))
    home = Path(args.home or os.environ.get("SBIT_HOME") or PROJECT_ROOT / "lakehouse").resolve()
    from sbit_lib.testing.testdata import prepare

    test_data = Config.resolve().test_data
    _quiet(prepare, test_data)
    results: dict = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "machine": machine()}
    print("Measuring the calibration (a new process) ...", flush=True)
    results["calibration"] = run_child("sbit_lib.ops.bench", ["--calibrate", "--json"], dict(os.environ),
                                       out / "logs" / "calibrate.log", "the calibration")
    results.update(calibration_s=results["calibration"]["calibration_s"], seconds={})
    for part, (what, measure) in PARTS.items():
        if part in wanted:
            print(f"Measuring {what} ...", flush=True)
            started = time.monotonic()
            measured = measure(home, test_data)
            results["seconds"].update(measured.pop("seconds"))
            results.update(measured)
            print(f"  done in {time.monotonic() - started:.0f} s", flush=True)
    add_ratios(results, read_committed())
    text = write_report(results, out)
    print()
    print(text)
    print(f"Written to {out / 'bench.json'} and bench.md")
    if args.smoke and not (results["engine"]["same_tables"] and results["committed"]):
        print("bench smoke: FAILED (DuckDB's tables differ from the expected ones, or docs/performance.md's "
              "table of ratios did not parse)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
