"""The heart-rate generator against what it documents (its module docstring, test_data/README.md,
the spec's "Heart-rate data"): every expected value is worked out here, in plain Python, from
the course files the sets are made from and from the generated files' own lines; none comes
from the generator's constants, its helpers or the committed checksums."""

import calendar
import csv
import json
import os
import shutil
import subprocess
import sys
from collections import Counter, defaultdict, namedtuple

import pytest

from sbit_lib.course.config import PROJECT_ROOT
from sbit_lib.testing import bpm_generator as gen

COURSE = PROJECT_ROOT / "test_data"
COURSE_FILES = ["1-registered_users_1.csv", "1-registered_users_2.csv", "4-workout_1.json", "4-workout_2.json"]
SETS = (1, 2)                          # the sets with registrations and workouts: every rule is in them

# The documented figures, stated here rather than read from the generator.
RECORDS = 253_801                      # per set, like the course
MARGIN = 4 * 60                        # readings from 4 minutes before to 4 minutes after a workout
OPEN_WORKOUT = 30 * 60                 # a workout with no stop is read for 30 minutes
LATE = 5 * 60                          # the last 5 minutes of a set's first completed workout come a set later
FIRST_UNREGISTERED = 900_001           # unregistered devices' ids
INVALID_RATE = 1 / 400                 # heartrate 0 or negative
DUPLICATE_RATE = 1 / 200               # the same record again under a new offset
DAY = 86_400
SET_1_DAY = calendar.timegm((2023, 3, 11, 0, 0, 0))    # set n covers the UTC day 2023-03-11 + (n - 1) days

Reading = namedtuple("Reading", "device time heartrate offset timestamp")
Workout = namedtuple("Workout", "device start end completed")


def set_file(n: int) -> str:
    return f"3-bpm_{n}.json"


def day_of(n: int) -> range:
    first = SET_1_DAY + (n - 1) * DAY
    return range(first, first + DAY)


def generate_into(folder, sets=SETS):
    """The course files the generator reads, then the heart-rate sets, in `folder`."""
    for name in COURSE_FILES:
        shutil.copy(COURSE / name, folder / name)
    gen.generate(folder, sets=sets)
    return folder


@pytest.fixture(scope="module")
def fresh(tmp_path_factory):
    """Sets 1 and 2 generated into an empty folder (no checksum file, so nothing is skipped)."""
    return generate_into(tmp_path_factory.mktemp("bpm"))


@pytest.fixture(scope="module")
def lines(fresh) -> dict[int, list[str]]:
    """Set n's lines, in file order."""
    return {n: (fresh / set_file(n)).read_text().splitlines() for n in SETS}


@pytest.fixture(scope="module")
def readings(lines) -> dict[int, list[Reading]]:
    """Set n's records, in file order, as (device, time, heartrate, offset, Kafka timestamp)."""
    out = {}
    for n in SETS:
        out[n] = []
        for line in lines[n]:
            envelope = json.loads(line)
            value = json.loads(envelope["value"])
            out[n].append(Reading(value["device_id"], value["time"], value["heartrate"], envelope["offset"],
                                  envelope["timestamp"]))
    return out


# ------------------------------------------------------------- what the course files imply
def registered_devices(upto: int, folder=COURSE) -> dict[int, int]:
    """user_id -> device_id registered in sets 1..upto (a user's first registration counts)."""
    devices = {}
    for n in range(1, upto + 1):
        with (folder / f"1-registered_users_{n}.csv").open(newline="") as handle:
            for row in csv.DictReader(handle):
                devices.setdefault(int(row["user_id"]), int(row["device_id"]))
    return devices


def workouts(n: int, folder=COURSE) -> list[Workout]:
    """Set n's workouts of registered users, in the order they start (ties: file order)."""
    starts, stops = {}, {}
    for line in (folder / f"4-workout_{n}.json").read_text().splitlines():
        event = json.loads(json.loads(line)["value"])
        key = (event["user_id"], event["workout_id"], event["session_id"])
        (starts if event["action"] == "start" else stops)[key] = int(event["timestamp"])
    devices = registered_devices(n, folder)
    out = []
    for key, start in sorted(starts.items(), key=lambda item: item[1]):
        if key[0] in devices:
            stop = stops.get(key)
            out.append(Workout(devices[key[0]], start, stop if stop is not None else start + OPEN_WORKOUT,
                               stop is not None))
    return out


def held_back(n: int, folder=COURSE) -> set[tuple[int, int]]:
    """(device, time) of the last 5 minutes of set n's first completed workout: they arrive in set n+1."""
    first = next(w for w in workouts(n, folder) if w.completed)
    return {(first.device, t) for t in range(first.end - LATE + 1, first.end + 1)}


def expected_registered_readings(n: int, folder=COURSE) -> set[tuple[int, int]]:
    """(device, time) of every reading of a registered device in set n: each second around each
    of set n's workouts, less what is held back for set n+1, plus what set n-1 held back."""
    around = {(w.device, t) for w in workouts(n, folder) for t in range(w.start - MARGIN, w.end + MARGIN + 1)}
    return (around - held_back(n, folder)) | (held_back(n - 1, folder) if n > 1 else set())


def inside_completed_workout(n: int):
    """Whether a reading of set n falls in one of its completed workouts (start < time <= end)."""
    spans = defaultdict(list)
    for w in workouts(n):
        if w.completed:
            spans[w.device].append((w.start, w.end))
    return lambda r: any(start < r.time <= end for start, end in spans.get(r.device, ()))


# ------------------------------------------------------------------------------ the tests
def test_generation_is_byte_for_byte_reproducible_in_another_process(fresh, tmp_path):
    """Generated again in a new interpreter with another hash seed: the same bytes."""
    code = "import sys; from sbit_lib.testing import bpm_generator as g; g.generate(sys.argv[1], sets=(1, 2))"
    for name in COURSE_FILES:
        shutil.copy(COURSE / name, tmp_path / name)
    seed = "2" if os.environ.get("PYTHONHASHSEED") == "1" else "1"
    subprocess.run([sys.executable, "-c", code, str(tmp_path)], check=True, cwd=PROJECT_ROOT,
                   env={**os.environ, "PYTHONHASHSEED": seed})
    for n in SETS:
        assert (tmp_path / set_file(n)).read_bytes() == (fresh / set_file(n)).read_bytes(), set_file(n)


def test_every_set_has_the_course_size_and_the_course_kafka_envelope(lines, readings):
    """Each line is laid out like a line of the course's own Kafka files (4-workout_1.json): the
    envelope's fields in the same order, compact separators, `value` a JSON string; so each line
    is the json module's rendering of its reading, in that layout, with topic bpm, partition 0
    and the device id as key."""
    course_line = (COURSE / "4-workout_1.json").read_text().splitlines()[0]
    course = json.loads(course_line)
    assert json.dumps(course, separators=(",", ":")) == course_line
    assert json.dumps(json.loads(course["value"])) == course["value"]
    for n in SETS:
        assert len(lines[n]) == RECORDS, set_file(n)
        for line, r in zip(lines[n], readings[n]):
            assert type(r.device) is int and type(r.time) is int and type(r.heartrate) is float, line
            fields = {"key": str(r.device), "topic": "bpm", "partition": 0, "offset": r.offset,
                      "timestamp": r.timestamp,
                      "value": json.dumps({"device_id": r.device, "time": r.time, "heartrate": r.heartrate})}
            assert json.dumps({name: fields[name] for name in course}, separators=(",", ":")) == line
    offsets = [r.offset for n in SETS for r in readings[n]]
    assert len(set(offsets)) == len(offsets)           # one partition: every offset once, across sets


def test_registered_devices_read_every_second_around_each_workout(readings):
    """From 4 minutes before to 4 minutes after each workout: readings inside and outside it."""
    for n in SETS:
        registered = set(registered_devices(n).values())
        got = {(r.device, r.time) for r in readings[n] if r.device in registered}
        assert got == expected_registered_readings(n), f"set {n}"
        # so silver's rule start_time < time <= end_time meets both sides of its start bound,
        # a reading inside and one just after the end
        for w in workouts(n):
            assert {(w.device, w.start), (w.device, w.start + 1), (w.device, w.end + 1)} <= got, (n, w)


def test_a_workout_without_a_stop_is_read_for_30_minutes(tmp_path):
    """The course's sets have no such workout: set 1 with one user's stop event taken out."""
    shutil.copy(COURSE / "1-registered_users_1.csv", tmp_path)
    events = (COURSE / "4-workout_1.json").read_text().splitlines()
    first_stop = next(line for line in events if json.loads(json.loads(line)["value"])["action"] == "stop")
    (tmp_path / "4-workout_1.json").write_text("\n".join(line for line in events if line != first_stop) + "\n")
    open_one = [w for w in workouts(1, tmp_path) if not w.completed]
    assert len(open_one) == 1
    lines = gen.set_lines(tmp_path, 1)
    assert len(lines) == RECORDS
    registered = set(registered_devices(1, tmp_path).values())
    values = (json.loads(json.loads(line)["value"]) for line in lines)
    got = {(v["device_id"], v["time"]) for v in values if v["device_id"] in registered}
    assert got == expected_registered_readings(1, tmp_path)
    w = open_one[0]
    assert (w.device, w.start + OPEN_WORKOUT + MARGIN) in got and (w.device, w.start + OPEN_WORKOUT + MARGIN + 1) \
        not in got


def test_unregistered_devices_fill_each_set(readings):
    for n in SETS:
        registered = set(registered_devices(n).values())
        assert max(registered) < FIRST_UNREGISTERED
        others = Counter(r.device for r in readings[n] if r.device not in registered)
        assert min(others) >= FIRST_UNREGISTERED, f"set {n}: {sorted(others)[:5]}"
        assert sum(others.values()) > RECORDS / 2, f"set {n}"


def test_invalid_readings_about_one_in_400_and_some_inside_workouts(readings):
    for n in SETS:
        invalid = [r for r in readings[n] if r.heartrate <= 0]
        assert INVALID_RATE / 2 < len(invalid) / RECORDS < INVALID_RATE * 2, f"set {n}: {len(invalid)}"
        inside = inside_completed_workout(n)
        assert any(inside(r) for r in invalid), f"set {n}: none inside a completed workout"


def test_exact_duplicates_about_one_in_200_and_some_inside_workouts(readings):
    """A duplicate is the same reading again under a new offset: same device, time, heartrate
    and Kafka timestamp; no (device, time) has two different readings."""
    for n in SETS:
        first, per_key = {}, Counter()
        for r in readings[n]:
            key = (r.device, r.time)
            per_key[key] += 1
            reading = (r.heartrate, r.timestamp)
            assert first.setdefault(key, reading) == reading, f"set {n}: {r} differs from its first copy"
        extra = sum(c - 1 for c in per_key.values())
        assert DUPLICATE_RATE / 2 < extra / RECORDS < DUPLICATE_RATE * 2, f"set {n}: {extra}"
        inside = inside_completed_workout(n)
        assert any(per_key[(r.device, r.time)] > 1 and inside(r) for r in readings[n]), f"set {n}"


def test_late_readings_arrive_in_the_next_set_stamped_with_its_day(readings):
    """The last 5 minutes of set 1's first completed workout are missing from set 1 and come
    in set 2, whose Kafka timestamp (the arrival) is set 2's day; set 2's own are held back too."""
    late = held_back(1)
    assert len(late) == LATE
    assert not late & {(r.device, r.time) for r in readings[1]}
    arrived = [r for r in readings[2] if (r.device, r.time) in late]
    assert {(r.device, r.time) for r in arrived} == late and len(arrived) == LATE
    assert all(r.time < day_of(2).start and r.timestamp in day_of(2) for r in arrived)
    assert not held_back(2) & {(r.device, r.time) for r in readings[2]}


def test_each_set_covers_its_own_day(readings):
    """Event time moves forward set by set; the Kafka timestamp never precedes the event."""
    for n in SETS:
        late = held_back(n - 1) if n > 1 else set()
        assert all(r.time in day_of(n) for r in readings[n] if (r.device, r.time) not in late), f"set {n}"
        assert all(r.timestamp in day_of(n) and r.timestamp >= r.time for r in readings[n]), f"set {n}"


def test_generate_skips_files_that_match_their_checksum(fresh, tmp_path, monkeypatch):
    for name in COURSE_FILES + [set_file(1)]:
        shutil.copy(fresh / name, tmp_path / name)
    (tmp_path / gen.CHECKSUM_FILE).write_text(f"{gen.sha256(tmp_path / '3-bpm_1.json')}  3-bpm_1.json\n")
    monkeypatch.setattr(gen, "set_lines", lambda *a: pytest.fail("regenerated a valid file"))
    assert gen.generate(tmp_path, sets=(1,)) == [tmp_path / "3-bpm_1.json"]


def test_generate_rewrites_a_file_that_does_not_match_its_checksum(fresh, tmp_path):
    """A damaged file beside the right checksum is generated again, not trusted."""
    for name in COURSE_FILES:
        shutil.copy(fresh / name, tmp_path / name)
    right = (fresh / set_file(1)).read_bytes()
    (tmp_path / set_file(1)).write_bytes(right[: len(right) // 2])
    (tmp_path / gen.CHECKSUM_FILE).write_text(f"{gen.sha256(fresh / set_file(1))}  {set_file(1)}\n")
    gen.generate(tmp_path, sets=(1,))
    assert (tmp_path / set_file(1)).read_bytes() == right


def test_an_unknown_set_is_refused(fresh):
    with pytest.raises(ValueError, match="1..10"):
        gen.set_lines(fresh, 11)


@pytest.mark.parametrize("record", [
    (118440, 1678521600, 72.5, 0, 1678521600), (900001, 1678579200, -1.0, 1_000_000, 1678579200),
    (1, 2, 0.0, 3, 4), (5, 6, 103.36, 7, 8), (5, 6, 100.0, 7, 8), (5, 6, 1e-05, 7, 8),
])
def test_the_fast_record_format_is_exactly_json(record):
    """The hand-formatted record equals the json module's, edge-case floats included."""
    device, t, heartrate, offset, kafka_ts = record
    value = json.dumps({"device_id": device, "time": t, "heartrate": heartrate})
    want = json.dumps({"key": str(device), "value": value, "topic": "bpm", "partition": 0, "offset": offset,
                       "timestamp": kafka_ts}, separators=(",", ":"))
    assert gen._record(*record) == want
