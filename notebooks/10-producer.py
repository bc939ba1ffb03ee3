# ---
# jupyter:
#   execution:
#     timeout: 300
#   jupytext:
#     formats: ipynb,py:percent
#     notebook_metadata_filter: execution
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (sbit-lakehouse)
#     language: python
#     name: sbit-lakehouse
# ---

# %% [markdown]
# # 10 · Producer: landing files the way a stream needs them
#
# **What this step does.** In production, upstream systems write files into the landing zone: a
# registration service, the gym's door system, a Kafka connector dumping topics. Here the
# `Producer` plays them: `produce(n)` lands **set n** of the test data, one file per source. The
# batch and stream tests (`08`, `09`) call it before each run.
#
# ```mermaid
# flowchart LR
#     T["test_data/<br/>1-registered_users_n.csv<br/>2-user_info_n.json<br/>3-bpm_n.json<br/>4-workout_n.json<br/>5-gym_logins_n.csv"]
#     T -- "copy to a hidden .tmp file" --> H[".name.pid.tmp<br/>(ignored by readers)"]
#     H -- "rename (atomic)" --> L["landing zone/SOURCE/name"]
#     L -- "next trigger" --> B(["bronze stream"])
# ```
#
# **Why atomically.** The file source lists the folder at every trigger and reads every new file
# it finds, once. A file still being written would be read half, and the rest never. So the
# producer writes a *hidden* temporary file (Spark's file source skips names starting with `.` or
# `_`) and renames it into place: a rename within one file system is atomic, so a reader sees
# either no file or the whole file. On Databricks, Auto Loader and cloud storage give the same
# guarantee.
#
# **Runs:** one file landed by hand into a scratch landing folder, with small file streams
# (`availableNow`) reading that folder; then the library's producer for sets 1..`set_number` (only
# files not landed yet) and a check that both landed the same bytes. About 1 minute on a 2-core
# laptop, after 04 or in a fresh environment alike (no pipeline step runs here).

# %% tags=["parameters"]
environment = "dev"
home = ""
test_data = ""
as_of = ""               # empty: SBIT_AS_OF, else the expected results' date (ages in user_bins)
set_number = 2           # land sets 1..set_number (the course's producer takes one set number)

# %%
import filecmp
import json
import os
import shutil

from pyspark.sql import functions as F

from sbit_lib.course.catalog import get_spark
from sbit_lib.course.producer import Producer, count_records
from sbit_lib.spark.storage import atomic_copy
from sbit_lib.teaching.explore import lesson_config, pending_files, relative
from sbit_lib.teaching.show import show

config = lesson_config(environment, home, test_data, as_of=as_of)
spark = get_spark(config)
producer = Producer(config)
for source, path in producer.files(set_number):
    print(f"{path.name:28} -> {source.target:20} {count_records(path):>8,} records")

# %% [markdown]
# ## A stream over a landing folder
#
# To see what a bronze stream sees, this cell defines a small one over a scratch landing folder of
# its own: the file source reading CSV with a fixed schema, writing to a scratch Delta table. Each
# call runs it with `availableNow`: read every file not read yet, then stop. Its checkpoint
# remembers the files read, as bronze's does, so the next call reads only new ones.

# %%
scratch = config.env_root / "scratch" / "10-producer"
shutil.rmtree(scratch, ignore_errors=True)               # a re-run starts with empty folders
REGISTRATIONS = "user_id BIGINT, device_id BIGINT, mac_address STRING, registration_timestamp DOUBLE"


def read_landed(demo: str) -> int:
    """Run the stream over scratch/<demo>/landing once; return the rows its table holds by now."""
    landing, table = scratch / demo / "landing", scratch / demo / "table"
    query = (spark.readStream.format("csv").option("header", "true").schema(REGISTRATIONS)
             .load(str(landing))
             .withColumn("source_file", F.col("_metadata.file_name"))
             .writeStream.format("delta")
             .option("checkpointLocation", str(scratch / demo / "checkpoint"))
             .trigger(availableNow=True)
             .start(str(table)))
    query.awaitTermination()
    # No file read yet, no batch written: the Delta table does not exist until the first one.
    return spark.read.format("delta").load(str(table)).count() if (table / "_delta_log").exists() else 0

# %% [markdown]
# ## Landing one file, written out
#
# The producer's two moves, by hand: copy the file under a hidden name *in the landing folder*
# (the same file system, so the rename cannot turn into a copy), then rename it into place. The
# stream runs between the two and after them.

# %%
original = config.test_data / "1-registered_users_1.csv"
landing = scratch / "atomic" / "landing"
landing.mkdir(parents=True)
landed = landing / original.name
hidden = landing / f".{original.name}.{os.getpid()}.tmp"   # "." first: the file source skips it

shutil.copyfile(original, hidden)
print("listed:", sorted(p.name for p in landing.iterdir()))
print("rows read while the file is hidden:", read_landed("atomic"))
os.replace(hidden, landed)                                 # atomic: all the bytes, or no file
print("listed:", sorted(p.name for p in landing.iterdir()))
print("rows read once it is renamed:      ", read_landed("atomic"))

# %% [markdown]
# The stream read nothing while the file was hidden, then every record at once. Its checkpoint
# lists only the final name: the hidden file was never even seen.

# %%
log = scratch / "atomic" / "checkpoint" / "sources" / "0"      # one file per batch, a version line first
seen = [json.loads(line)["path"].rsplit("/", 1)[-1]
        for entry in sorted(log.iterdir()) if not entry.name.startswith(".")
        for line in entry.read_text().splitlines()[1:]]
print("the stream's file log:", seen)
rows = spark.read.format("delta").load(str(scratch / "atomic" / "table"))
rows.groupBy("source_file").count().show(truncate=False)
assert seen == [original.name] and rows.count() == count_records(original)

# %% [markdown]
# ## What the hidden name prevents
#
# The same file written *visibly*, in two halves, with the stream triggering in between (as a
# stream's trigger can, any time): it reads the half that is there and remembers the name. The
# line cut in two becomes a row with a truncated value, and when the rest of the file arrives it is
# never read.

# %%
visible = scratch / "visible" / "landing"
visible.mkdir(parents=True)
data = original.read_bytes()
with open(visible / original.name, "wb") as out:
    out.write(data[: len(data) // 2])
    out.flush()
    first = read_landed("visible")
    out.write(data[len(data) // 2:])
second = read_landed("visible")
print(f"rows read mid-write: {first}, after the rest arrived: {second}, in the file: {count_records(original)}")
partial = spark.read.format("delta").load(str(scratch / "visible" / "table")).drop("source_file")
partial.orderBy("user_id").show(truncate=False)
wrong = partial.exceptAll(spark.read.csv(str(original), header=True, schema=REGISTRATIONS))
print("rows that are not in the file:", wrong.collect())
assert first == second < count_records(original) and not wrong.isEmpty()

# %% [markdown]
# ## The library's landing
#
# `atomic_copy` is the same copy-and-rename, and a refusal: a file already landed with other bytes
# is an error, because the stream has read that name once and would never read the new bytes. (A
# landing zone given as a URL, such as `s3a://...`, goes through Hadoop's file system instead.)
# `Producer.produce(n)` lands set n's files with it, the big heart-rate file last.

# %%
show(atomic_copy, Producer.produce)

# %% [markdown]
# Producing is idempotent: a file already landed with the same bytes is skipped, so running the
# producer again (or a test re-running a set) lands nothing new.

# %%
for n in range(1, set_number + 1):
    producer.produce(n)
again = [p for n in range(1, set_number + 1) for p in producer.produce(n)]
assert again == [], again
print("landed:", producer.landed_counts())
counts = producer.validate(set_number)   # exactly sets 1..set_number, record for record

# %% [markdown]
# ## Check: the cells landed what the library landed
#
# The same bytes under the same name, and no hidden file left behind in either landing folder.

# %%
library_file = config.landing_zone / "registered_users_bz" / original.name
assert filecmp.cmp(landed, library_file, shallow=False)
leftovers = [p for folder in (landing, config.landing_zone) for p in folder.rglob(".*")]
assert leftovers == [], leftovers
print(relative(config, landed), "==", relative(config, library_file))

# %% [markdown]
# ## What the bronze streams have not read yet
#
# Each bronze query logs the files it has taken in its checkpoint (`sources/0/`, see `04-bronze`).
# The files landed but not in that log are what its next trigger will read: run `07-run` (or let
# the stream job pick them up) to take them through every layer.

# %%
for table, files in pending_files(config).items():
    print(f"{table:20} waiting: {files}")

# %% [markdown]
# ## Changed files and wrong set numbers are refused
#
# A landed file that changes is never read again by the stream (its name is in the checkpoint), so
# the producer refuses to overwrite one with other bytes. A set that does not exist says which do.

# %%
changed = scratch / original.name
changed.write_text(library_file.read_text() + "999,999,ff:ff:ff:ff:ff:ff,1678450000\n")
for attempt in (lambda: atomic_copy(changed, library_file), lambda: producer.produce(11)):
    try:
        attempt()
    except (FileExistsError, ValueError) as error:
        print(type(error).__name__, "->", str(error).replace(str(config.home), "<SBIT_HOME>"))
    else:
        raise AssertionError("accepted")

# %% [markdown]
# ## The heart-rate sets are generated, deterministically
#
# The course never published its heart-rate files, so `make setup` generates ten
# (`sbit_lib/testing/bpm_generator.py`): one reading per second around every workout, invalid readings
# (heart rate ≤ 0), exact duplicates, readings of unregistered devices, and late readings that
# arrive one set later. They are byte-for-byte the same on every machine: the checksums are
# committed in `test_data/3-bpm.sha256`. What set 1 holds, counted in plain Python:

# %%
import collections
import hashlib

from sbit_lib.testing.bpm_generator import FIRST_UNREGISTERED

bpm = config.test_data / "3-bpm_1.json"
expected = dict(line.split()[::-1] for line in (config.test_data / "3-bpm.sha256").read_text().splitlines())
assert hashlib.sha256(bpm.read_bytes()).hexdigest() == expected[bpm.name]
keys, stats = set(), collections.Counter()
for line in bpm.read_text().splitlines():
    value = json.loads(json.loads(line)["value"])
    key = (value["device_id"], value["time"])
    stats["records"] += 1
    stats["invalid (heartrate <= 0)"] += value["heartrate"] <= 0
    stats["duplicates"] += key in keys
    stats["unregistered device"] += value["device_id"] >= FIRST_UNREGISTERED
    keys.add(key)
for name, count in stats.items():
    print(f"{name:26} {count:>8,}")

# %% [markdown]
# **Next:** run `07-run` to process what was just landed, or `09-stream-test` to watch a running
# stream job pick sets up as they land.
