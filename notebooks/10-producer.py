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
# producer writes a *hidden* temporary file (Spark ignores names starting with `.` or `_`) and
# renames it into place: a rename within one file system is atomic, so a reader sees either no
# file or the whole file. On Databricks, Auto Loader and cloud storage give the same guarantee.

# %% tags=["parameters"]
environment = "dev"
home = ""
test_data = ""
as_of = ""               # empty: SBIT_AS_OF, else the expected results' date (ages in user_bins)
set_number = 2           # land sets 1..set_number (the course's producer takes one set number)

# %%
from sbit_lib.teaching.explore import lesson_config, pending_files
from sbit_lib.course.producer import Producer, count_records

config = lesson_config(environment, home, test_data, as_of=as_of)
producer = Producer(config)
for source, path in producer.files(set_number):
    print(f"{path.name:28} -> {source.target:20} {count_records(path):>8,} records")

# %% [markdown]
# ## Land the sets, twice
#
# Producing is idempotent: a file already landed with the same bytes is skipped, so running the
# producer again (or a test re-running a set) lands nothing new.

# %%
for n in range(1, set_number + 1):
    producer.produce(n)
again = [p for n in range(1, set_number + 1) for p in producer.produce(n)]
assert again == [], again
print("landed:", producer.landed_counts())
producer.validate(set_number)        # exactly sets 1..set_number, record for record

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
# ## Hidden files are invisible to readers
#
# The guarantee the rename relies on, shown with Spark's JSON reader on a scratch folder: a hidden
# file next to a complete one is not read.

# %%
import json

from sbit_lib.course.catalog import get_spark

spark = get_spark(config)
folder = config.env_root / "scratch" / "hidden_demo"
folder.mkdir(parents=True, exist_ok=True)
(folder / "complete.json").write_text(json.dumps({"device_id": 1, "heartrate": 61.0}) + "\n")
(folder / ".complete2.json.123.tmp").write_text('{"device_id": 2, "heart')      # half written
rows = spark.read.schema("device_id BIGINT, heartrate DOUBLE").json(str(folder)).collect()
print(rows)
assert [r.device_id for r in rows] == [1]

# %% [markdown]
# ## Changed files and wrong set numbers are refused
#
# A landed file that changes is never read again by the stream (its name is in the checkpoint), so
# the producer refuses to overwrite one with other bytes. A set that does not exist says which do.

# %%
from sbit_lib.spark.storage import atomic_copy

landed = config.landing_zone / "registered_users_bz" / "1-registered_users_1.csv"
changed = config.env_root / "scratch" / "1-registered_users_1.csv"
changed.write_text(landed.read_text() + "999,999,ff:ff:ff:ff:ff:ff,1678450000\n")
for attempt in (lambda: atomic_copy(changed, landed), lambda: producer.produce(11)):
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
seen, stats = set(), collections.Counter()
for line in bpm.read_text().splitlines():
    value = json.loads(json.loads(line)["value"])
    key = (value["device_id"], value["time"])
    stats["records"] += 1
    stats["invalid (heartrate <= 0)"] += value["heartrate"] <= 0
    stats["duplicates"] += key in seen
    stats["unregistered device"] += value["device_id"] >= FIRST_UNREGISTERED
    seen.add(key)
for name, count in stats.items():
    print(f"{name:26} {count:>8,}")

# %% [markdown]
# **Next:** run `07-run` to process what was just landed, or `09-stream-test` to watch a running
# stream job pick sets up as they land.
