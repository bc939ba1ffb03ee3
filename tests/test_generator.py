"""The heart-rate generator: exact size, same bytes every time, and data that exercises every rule."""

import json
import shutil
from collections import Counter

import pytest

from sbit_lib.course.config import PROJECT_ROOT
from sbit_lib.testing import bpm_generator as gen

COURSE_FILES = ["1-registered_users_1.csv", "1-registered_users_2.csv", "4-workout_1.json", "4-workout_2.json"]


@pytest.fixture(scope="module")
def fresh(tmp_path_factory):
    """Sets 1 and 2 generated into an empty folder (no checksum file, so nothing is skipped)."""
    folder = tmp_path_factory.mktemp("bpm")
    for name in COURSE_FILES:
        shutil.copy(PROJECT_ROOT / "test_data" / name, folder / name)
    gen.generate(folder, sets=(1, 2))
    return folder


def readings(path):
    out = []
    for line in path.read_text().splitlines():
        envelope = json.loads(line)
        value = json.loads(envelope["value"])
        out.append((envelope, value))
    return out


def test_generation_is_byte_for_byte_reproducible(fresh):
    committed = gen.read_checksums(PROJECT_ROOT / "test_data")
    assert set(committed) == {gen.bpm_file_name(n) for n in gen.SETS}
    for n in (1, 2):
        assert gen.sha256(fresh / gen.bpm_file_name(n)) == committed[gen.bpm_file_name(n)]
        assert "\n".join(gen.set_lines(fresh, n)) + "\n" == (fresh / gen.bpm_file_name(n)).read_text()


def test_every_set_has_the_course_size_in_the_kafka_envelope(fresh):
    rows = readings(fresh / "3-bpm_1.json")
    assert len(rows) == gen.RECORDS_PER_SET == 253_801
    envelope, value = rows[0]
    assert list(envelope) == ["key", "value", "topic", "partition", "offset", "timestamp"]
    assert set(value) == {"device_id", "time", "heartrate"}
    assert {e["topic"] for e, _ in rows} == {"bpm"}
    assert len({e["offset"] for e, _ in rows}) == len(rows)
    assert all(1672531200 <= e["timestamp"] < 1704067200 for e, _ in rows)  # all in 2023


def test_the_data_exercises_every_rule(fresh):
    rows = readings(fresh / "3-bpm_1.json")
    registered = {118440, 141687, 109290, 190960, 114131}
    devices = Counter(v["device_id"] for _, v in rows)
    assert registered <= set(devices)
    assert any(d >= gen.FIRST_UNREGISTERED for d in devices)             # unregistered devices
    assert sum(1 for _, v in rows if v["heartrate"] <= 0) > 100           # invalid readings
    keys = Counter((v["device_id"], v["time"]) for _, v in rows)
    assert sum(c - 1 for c in keys.values()) > 1000                        # duplicates
    # 12474 (device 118440) works out from 1678521900 to 1678525800: readings inside and outside
    times = {v["time"] for _, v in rows if v["device_id"] == 118440}
    assert 1678521900 - 60 in times and 1678523000 in times


def test_late_readings_arrive_in_the_next_set(fresh):
    set1 = {(v["device_id"], v["time"]) for _, v in readings(fresh / "3-bpm_1.json")}
    set2 = readings(fresh / "3-bpm_2.json")
    late = [(e, v) for e, v in set2 if v["device_id"] == 118440 and v["time"] <= 1678525800]
    assert len(late) == gen.LATE_SECONDS
    assert all((v["device_id"], v["time"]) not in set1 for _, v in late)
    assert all(e["timestamp"] > v["time"] for e, v in late)               # Kafka time = arrival


def test_generate_skips_files_that_match_their_checksum(fresh, tmp_path, monkeypatch):
    for name in COURSE_FILES + [gen.bpm_file_name(1)]:
        shutil.copy(fresh / name, tmp_path / name)
    (tmp_path / gen.CHECKSUM_FILE).write_text(f"{gen.sha256(tmp_path / '3-bpm_1.json')}  3-bpm_1.json\n")
    monkeypatch.setattr(gen, "set_lines", lambda *a: pytest.fail("regenerated a valid file"))
    assert gen.generate(tmp_path, sets=(1,)) == [tmp_path / "3-bpm_1.json"]


def test_an_unknown_set_is_refused(fresh):
    with pytest.raises(ValueError, match="1..10"):
        gen.set_lines(fresh, 11)


@pytest.mark.parametrize("record", [
    (118440, 1678521600, 72.5, 0, 1678521600), (900001, 1678579200, -1.0, 1_000_000, 1678579200),
    (1, 2, 0.0, 3, 4), (5, 6, 103.36, 7, 8), (5, 6, 100.0, 7, 8), (5, 6, 1e-05, 7, 8),
])
def test_the_fast_record_format_is_exactly_json(record):
    assert gen._record(*record) == gen._record_json(*record)
    envelope = json.loads(gen._record(*record))
    assert json.loads(envelope["value"])["heartrate"] == record[2]
