"""Deterministic heart-rate data: ``3-bpm_<n>.json`` for sets 1..10.

The course's heart-rate files were never published, so the project makes its
own, in the course's Kafka envelope
``{"key","value","topic":"bpm","partition","offset","timestamp"}`` with
``value`` a JSON string ``{"device_id", "time", "heartrate"}``, exactly
253,801 records per set, byte-for-byte the same on every run and machine.

What a set contains (so every silver and gold rule is exercised):

* one reading per second for every registered device from 4 minutes before to
  4 minutes after each of its workouts of that set (inside and outside the
  workout; a workout with no stop gets 30 minutes after its start);
* invalid readings (heartrate 0 or negative), about 1 in 400;
* exact duplicates (same record again, new offset), about 1 in 200;
* late readings: the last 5 minutes of the first completed workout of set n
  arrive in set n+1's file (their Kafka timestamp is the arrival day);
* sets 3..10: 20 minutes of readings per registered device, outside workouts;
* readings of unregistered devices (ids from 900001) that fill the set up to
  253,801 records.

Set n covers the UTC day 2023-03-11 + (n - 1) days, so event time moves forward
from set to set, as it does in a live stream.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import random
from dataclasses import dataclass
from pathlib import Path

RECORDS_PER_SET = 253_801
SETS = tuple(range(1, 11))
SEED = 20230311
DAY_SECONDS = 86_400
FIRST_DAY = 1_678_492_800  # 2023-03-11T00:00:00Z, the day of set 1's workouts
MARGIN_SECONDS = 240
OPEN_WORKOUT_SECONDS = 1_800
LATE_SECONDS = 300
IDLE_SECONDS = 1_200
UNREGISTERED_DEVICES = 4
FIRST_UNREGISTERED = 900_001
INVALID_RATE = 1 / 400
DUPLICATE_RATE = 1 / 200
CHECKSUM_FILE = "3-bpm.sha256"


def bpm_file_name(n: int) -> str:
    """Return the file name of heart-rate set n."""
    return f"3-bpm_{n}.json"


@dataclass(frozen=True)
class _Workout:
    device_id: int
    start: int
    stop: int | None


def _read_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _devices(folder: Path, upto: int) -> dict[int, int]:
    """user_id -> device_id of the registrations of sets 1..upto."""
    devices: dict[int, int] = {}
    for n in range(1, upto + 1):
        path = folder / f"1-registered_users_{n}.csv"
        if not path.exists():
            continue
        with path.open(newline="") as handle:
            for row in csv.DictReader(handle):
                if row.get("user_id"):
                    devices.setdefault(int(row["user_id"]), int(row["device_id"]))
    return devices


def _workouts(folder: Path, n: int, devices: dict[int, int]) -> list[_Workout]:
    path = folder / f"4-workout_{n}.json"
    if not path.exists():
        return []
    starts: dict[tuple, int] = {}
    stops: dict[tuple, int] = {}
    order: list[tuple] = []
    for record in _read_lines(path):
        event = json.loads(record["value"])
        key = (event["user_id"], event["workout_id"], event["session_id"])
        if event["action"] == "start":
            starts[key] = int(event["timestamp"])
            order.append(key)
        else:
            stops[key] = int(event["timestamp"])
    return [
        _Workout(devices[key[0]], starts[key], stops.get(key))
        for key in order
        if key[0] in devices
    ]


def _heartrate(rng: random.Random, t: int, exercising: bool) -> float:
    base = 118.0 if exercising else 68.0
    wave = 14.0 * math.sin(t / 97.0)
    noise = (rng.random() - 0.5) * 12.0
    if rng.random() < INVALID_RATE:
        return 0.0 if rng.random() < 0.5 else -1.0
    return round(base + wave + noise, 2)


def _readings(rng: random.Random, device: int, first: int, last: int, workout: tuple | None):
    """(device, time, heartrate) for every second in [first, last]."""
    for t in range(first, last + 1):
        inside = workout is not None and workout[0] < t <= workout[1]
        yield device, t, _heartrate(rng, t, inside)


def _set_readings(folder: Path, n: int) -> tuple[list, list]:
    """Return (on_time, held_back) readings of set n, before filling and duplication."""
    rng = random.Random(SEED * 100 + n)
    day = FIRST_DAY + (n - 1) * DAY_SECONDS
    devices = _devices(folder, n)
    on_time: list[tuple] = []
    held_back: list[tuple] = []
    workouts = _workouts(folder, n, devices)
    first_completed = next((w for w in workouts if w.stop is not None), None)
    for w in workouts:
        end = w.stop if w.stop is not None else w.start + OPEN_WORKOUT_SECONDS
        span = (w.start, end)
        for reading in _readings(rng, w.device_id, w.start - MARGIN_SECONDS, end + MARGIN_SECONDS, span):
            late = w is first_completed and end - LATE_SECONDS < reading[1] <= end
            (held_back if late else on_time).append(reading)
    if not workouts:
        for i, device in enumerate(sorted(devices.values())):
            first = day + 3_600 * (1 + i)
            on_time.extend(_readings(rng, device, first, first + IDLE_SECONDS - 1, None))
    return on_time, held_back


def _fill(rng: random.Random, n: int, count: int) -> list[tuple]:
    """Readings of unregistered devices, `count` of them, spread over set n's day."""
    day = FIRST_DAY + (n - 1) * DAY_SECONDS
    readings: list[tuple] = []
    for i in range(UNREGISTERED_DEVICES):
        share = count // UNREGISTERED_DEVICES + (1 if i < count % UNREGISTERED_DEVICES else 0)
        first = day + 600 * i
        readings.extend(_readings(rng, FIRST_UNREGISTERED + i, first, first + share - 1, None))
    return readings


def _record(device: int, t: int, heartrate: float, offset: int, kafka_ts: int) -> str:
    # Formatted by hand for speed; the bytes equal json.dumps of the envelope with
    # separators (",", ":") around a json.dumps'd value (tests/test_generator.py checks).
    value = f'{{\\"device_id\\": {device}, \\"time\\": {t}, \\"heartrate\\": {heartrate!r}}}'
    return (f'{{"key":"{device}","value":"{value}","topic":"bpm","partition":0,'
            f'"offset":{offset},"timestamp":{kafka_ts}}}')


def _record_json(device: int, t: int, heartrate: float, offset: int, kafka_ts: int) -> str:
    """The same record through the json module: the definition _record must match."""
    value = json.dumps({"device_id": device, "time": t, "heartrate": heartrate})
    envelope = {"key": str(device), "value": value, "topic": "bpm", "partition": 0,
                "offset": offset, "timestamp": kafka_ts}
    return json.dumps(envelope, separators=(",", ":"))


def set_lines(folder: Path, n: int) -> list[str]:
    """Return the 253,801 JSON lines of heart-rate set n (needs the course files in `folder`)."""
    if n not in SETS:
        raise ValueError(f"heart-rate set must be one of 1..{SETS[-1]}, got {n}")
    rng = random.Random(SEED * 1000 + n)
    on_time, _ = _set_readings(folder, n)
    late = _set_readings(folder, n - 1)[1] if n > 1 else []
    arrival = FIRST_DAY + (n - 1) * DAY_SECONDS
    # Draw the duplicates first so the filler can make the total exact.
    base = len(on_time) + len(late)
    dup_budget = round(RECORDS_PER_SET * DUPLICATE_RATE)
    filler = _fill(rng, n, RECORDS_PER_SET - base - dup_budget)
    events = sorted(on_time + filler, key=lambda r: (r[1], r[0]))
    lines: list[str] = []
    offset = (n - 1) * 1_000_000
    pending = dup_budget
    stride = max(1, len(events) // max(dup_budget, 1))
    for device, t, hr in late:
        lines.append(_record(device, t, hr, offset, arrival))
        offset += 1
    for i, (device, t, hr) in enumerate(events):
        lines.append(_record(device, t, hr, offset, t))
        offset += 1
        if pending and i % stride == stride // 2:
            lines.append(_record(device, t, hr, offset, t))
            offset += 1
            pending -= 1
    if len(lines) != RECORDS_PER_SET:
        raise AssertionError(f"set {n}: generated {len(lines)} records, expected {RECORDS_PER_SET}")
    return lines


def generate(folder: str | Path, sets=SETS) -> list[Path]:
    """Write ``3-bpm_<n>.json`` into `folder` for each n in `sets` and return the paths.

    A file whose SHA-256 already equals the committed checksum is left alone, so
    calling this again is cheap. Files are written under a temporary name and renamed.
    """
    folder = Path(folder)
    known = read_checksums(folder)
    written: list[Path] = []
    for n in sets:
        target = folder / bpm_file_name(n)
        if target.exists() and known.get(target.name) == sha256(target):
            written.append(target)
            continue
        tmp = target.with_name(f".{target.name}.tmp")
        tmp.write_text("\n".join(set_lines(folder, n)) + "\n")
        tmp.replace(target)
        written.append(target)
    return written


def sha256(path: Path) -> str:
    """Return the hex SHA-256 of a file."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_checksums(folder: Path) -> dict[str, str]:
    """Return {file name: sha256} from the committed ``3-bpm.sha256`` (empty if absent)."""
    path = Path(folder) / CHECKSUM_FILE
    if not path.exists():
        return {}
    pairs = (line.split() for line in path.read_text().splitlines() if line.strip())
    return {name: digest for digest, name in pairs}


def write_checksums(folder: Path, sets=SETS) -> Path:
    """Record the SHA-256 of the generated files (run after an intended generator change)."""
    folder = Path(folder)
    lines = [f"{sha256(folder / bpm_file_name(n))}  {bpm_file_name(n)}" for n in sets]
    path = folder / CHECKSUM_FILE
    path.write_text("\n".join(lines) + "\n")
    return path
