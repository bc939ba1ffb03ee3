"""Producer: atomic, idempotent landing of a set, and clear errors. No Spark needed."""

import shutil
from pathlib import Path

import pytest

from sbit_lib.course.config import Config
from sbit_lib.course.producer import Producer, count_records
from sbit_lib.spark import storage as storage_module
from sbit_lib.testing.validation import ValidationError


@pytest.fixture
def producer(tmp_path, test_data):
    return Producer(Config.resolve(environment="prod_test", home=tmp_path / "home", test_data=test_data))


def test_set_1_lands_every_source_in_its_folder(producer):
    landed = producer.produce(1)
    zone = producer.config.landing_zone
    assert sorted(p.relative_to(zone).as_posix() for p in landed) == [
        "gym_logins_bz/5-gym_logins_1.csv",
        "kafka_multiplex_bz/2-user_info_1.json",
        "kafka_multiplex_bz/3-bpm_1.json",
        "kafka_multiplex_bz/4-workout_1.json",
        "registered_users_bz/1-registered_users_1.csv",
    ]
    assert not list(zone.rglob(".*"))                     # no temporary file left behind
    assert landed[-1].name == "3-bpm_1.json"             # the big file last: small ones reach silver first
    assert producer.landed_counts() == {
        "registered_users_bz": 5, "gym_logins_bz": 8,
        "kafka_multiplex_bz": {"user_info": 7, "workout": 16, "bpm": 253_801},
    }


def test_sets_after_2_land_heart_rate_only(producer):
    producer.produce(1)
    producer.produce(2)
    assert [p.name for p in producer.produce(3)] == ["3-bpm_3.json"]
    producer.validate(3)


def test_producing_a_set_twice_lands_nothing_new(producer):
    producer.produce(1)
    assert producer.produce(1) == []
    producer.validate(1)


def test_validate_detects_a_missing_file(producer):
    producer.produce(1)
    (producer.config.landing_zone / "gym_logins_bz" / "5-gym_logins_1.csv").unlink()
    with pytest.raises(ValidationError, match="gym_logins_bz"):
        producer.validate(1)


def test_a_failed_copy_leaves_no_partial_file(producer, monkeypatch):
    def broken_copy(src, dst):
        with open(dst, "wb") as handle:
            handle.write(b"half a fi")
        raise OSError("disk full")

    monkeypatch.setattr(storage_module.shutil, "copyfile", broken_copy)
    with pytest.raises(OSError, match="disk full"):
        producer.produce(1)
    folder = producer.config.landing_zone
    assert [p for p in folder.rglob("*") if p.is_file()] == []


def test_the_stream_only_ever_sees_whole_files(producer, monkeypatch):
    """While a file is being written it exists only under a hidden name the stream ignores."""
    real_copy = shutil.copyfile
    written = []

    def watching_copy(src, dst):
        assert not (dst.parent / Path(src).name).exists()    # not visible under its real name yet
        written.append(dst.name)
        return real_copy(src, dst)

    monkeypatch.setattr(storage_module.shutil, "copyfile", watching_copy)
    producer.produce(1)
    assert len(written) == 5
    assert all(name.startswith(".") and name.endswith(".tmp") for name in written)


def test_a_changed_file_cannot_be_landed_again(producer, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(producer.config.test_data, data, ignore=shutil.ignore_patterns("3-bpm_*", "expected"))
    shutil.copy(producer.config.test_data / "3-bpm_1.json", data / "3-bpm_1.json")
    changed = Producer(Config.resolve(environment="prod_test", home=producer.config.home, test_data=data))
    changed.produce(1)
    with open(data / "5-gym_logins_1.csv", "a") as handle:
        handle.write("\naa:bb,1,1678521600,1678526100\n")
    with pytest.raises(FileExistsError, match="already landed with different content"):
        changed.produce(1)


@pytest.mark.parametrize("bad", [0, 11, "1", 2.0, True])
def test_a_wrong_set_number_says_which_sets_exist(producer, bad):
    with pytest.raises(ValueError, match="from 1 to 10"):
        producer.produce(bad)


def test_missing_source_files_are_named(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    p = Producer(Config.resolve(environment="x", home=tmp_path / "h", test_data=empty))
    with pytest.raises(FileNotFoundError) as err:
        p.produce(4)
    assert "3-bpm_4.json" in str(err.value) and "sbit prepare-data" in str(err.value)


def test_records_are_counted_without_headers_or_blank_lines(tmp_path):
    csv = tmp_path / "a.csv"
    csv.write_text("h1,h2\n1,2\n3,4\n\n\n")
    js = tmp_path / "a.json"
    js.write_text('{"a":1}\n\n{"a":2}')
    assert (count_records(csv), count_records(js)) == (2, 2)
