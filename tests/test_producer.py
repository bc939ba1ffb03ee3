"""Producer: atomic, idempotent landing of a set, and clear errors. No Spark needed."""

import json
import shutil
from pathlib import Path

import pytest

from sbit_lib.course.config import Config
from sbit_lib.course.producer import Producer, count_records
from sbit_lib.spark import storage as storage_module
from sbit_lib.testing.validation import ValidationError
from tests.conftest import TEST_DATA


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


def test_the_course_sets_after_2_land_heart_rate_only(producer, capsys):
    producer.produce(1)
    producer.produce(2)
    capsys.readouterr()
    assert [p.name for p in producer.produce(3)] == ["3-bpm_3.json"]
    out = capsys.readouterr().out
    assert "1-registered_users_3.csv     skipped: not in " in out
    assert out.splitlines()[-1] == "Set 3 produced: 1 new files, 0 already landed, 4 skipped"
    producer.validate(3)
    assert producer.latest_set() == 3


def bpm_lines(n: int, devices=(1, 2, 3)) -> str:
    """A few heart-rate envelopes of set n, formatted as the generator formats them."""
    t = 1_678_521_600 + (n - 1) * 86_400
    lines = []
    for i, device in enumerate(devices):
        value = json.dumps({"device_id": device, "time": t + i, "heartrate": 80.5 + i})
        lines.append(json.dumps({"key": str(device), "value": value, "topic": "bpm", "partition": 0,
                                 "offset": n * 1000 + i, "timestamp": t + i}, separators=(",", ":")))
    return "\n".join(lines) + "\n"


COURSE_FILES = ("1-registered_users_{n}.csv", "2-user_info_{n}.json", "4-workout_{n}.json", "5-gym_logins_{n}.csv")


def data_folder(root: Path, set_3: tuple[str, ...]) -> Path:
    """Sets 1-2 of the course's files (small heart-rate files) and set 3 with the `set_3` files.

    Set 3's files other than heart rate are set 2's under set 3's names.
    """
    data = root / "data"
    data.mkdir()
    shutil.copy(TEST_DATA / "6-date-lookup.json", data)
    for n in (1, 2):
        for pattern in COURSE_FILES:
            shutil.copy(TEST_DATA / pattern.format(n=n), data)
        (data / f"3-bpm_{n}.json").write_text(bpm_lines(n))
    for pattern in set_3:
        if pattern.startswith("3-bpm_"):
            (data / "3-bpm_3.json").write_text(bpm_lines(3, devices=(4, 5)))
        else:
            shutil.copy(TEST_DATA / pattern.format(n=2), data / pattern.format(n=3))
    return data


def producer_of(data: Path, home: Path) -> Producer:
    return Producer(Config.resolve(environment="prod_test", home=home, test_data=data))


def test_a_set_after_2_lands_every_source_file_it_has(tmp_path, capsys):
    data = data_folder(tmp_path, set_3=(*COURSE_FILES, "3-bpm_{n}.json"))
    producer = producer_of(data, tmp_path / "home")
    landed = producer.produce(3)
    zone = producer.config.landing_zone
    assert [p.relative_to(zone).as_posix() for p in landed] == [
        "registered_users_bz/1-registered_users_3.csv",
        "kafka_multiplex_bz/2-user_info_3.json",
        "kafka_multiplex_bz/4-workout_3.json",
        "gym_logins_bz/5-gym_logins_3.csv",
        "kafka_multiplex_bz/3-bpm_3.json",                 # still the heart-rate file last
    ]
    assert capsys.readouterr().out.splitlines()[1:] == [
        "  1-registered_users_3.csv     landed in registered_users_bz",
        "  2-user_info_3.json           landed in kafka_multiplex_bz",
        "  4-workout_3.json             landed in kafka_multiplex_bz",
        "  5-gym_logins_3.csv           landed in gym_logins_bz",
        "  3-bpm_3.json                 landed in kafka_multiplex_bz",
        "Set 3 produced: 5 new files, 0 already landed, 0 skipped",
    ]
    # counted like set 2's files, whose copies they are (set 2 itself is not landed)
    assert producer.landed_counts() == {
        "registered_users_bz": 5, "gym_logins_bz": 8,
        "kafka_multiplex_bz": {"user_info": 6, "workout": 16, "bpm": 2},
    }
    assert producer.latest_set() == 0                      # sets 1-2 are not landed

    assert producer.produce(3) == []                       # again: nothing new, each source says so
    out = capsys.readouterr().out.splitlines()
    assert out[1] == "  1-registered_users_3.csv     already landed in registered_users_bz"
    assert out[-1] == "Set 3 produced: 0 new files, 5 already landed, 0 skipped"
    assert sum("already landed in" in line for line in out) == 5


def test_landed_optional_files_count_in_validation(tmp_path):
    from sbit_lib.testing.reference import write_expectations

    data = data_folder(tmp_path, set_3=("1-registered_users_{n}.csv", "3-bpm_{n}.json"))
    write_expectations(data, sets=(1, 2, 3))
    producer = producer_of(data, tmp_path / "home")
    for n in (1, 2, 3):
        producer.produce(n)
    counts = producer.validate(3)                          # the reference counts the extra file too
    assert counts["registered_users_bz"] == 2 * 5 + 5
    assert producer.latest_set() == 3
    (producer.config.landing_zone / "registered_users_bz" / "1-registered_users_3.csv").unlink()
    with pytest.raises(ValidationError, match="registered_users_bz"):
        producer.validate(3)


def test_a_set_after_2_with_heart_rate_only_says_what_it_skipped(tmp_path, capsys):
    data = data_folder(tmp_path, set_3=("3-bpm_{n}.json",))
    producer = producer_of(data, tmp_path / "home")
    assert [p.name for p in producer.produce(3)] == ["3-bpm_3.json"]
    assert capsys.readouterr().out.splitlines()[1:] == [
        f"  1-registered_users_3.csv     skipped: not in {data}",
        f"  2-user_info_3.json           skipped: not in {data}",
        f"  4-workout_3.json             skipped: not in {data}",
        f"  5-gym_logins_3.csv           skipped: not in {data}",
        "  3-bpm_3.json                 landed in kafka_multiplex_bz",
        "Set 3 produced: 1 new files, 0 already landed, 4 skipped",
    ]


def test_a_set_without_its_heart_rate_file_is_incomplete(tmp_path):
    data = data_folder(tmp_path, set_3=COURSE_FILES)        # every file of set 3 but the required one
    producer = producer_of(data, tmp_path / "home")
    with pytest.raises(FileNotFoundError) as err:
        producer.produce(3)
    assert str(err.value) == (f"set 3 is incomplete, missing: {data / '3-bpm_3.json'} "
                              "(heart-rate files are generated by `sbit prepare-data`)")
    assert not producer.config.landing_zone.exists() or not any(producer.config.landing_zone.rglob("*.*"))


def test_sets_1_and_2_need_every_source(tmp_path):
    data = data_folder(tmp_path, set_3=())
    (data / "5-gym_logins_2.csv").unlink()
    with pytest.raises(FileNotFoundError, match=r"set 2 is incomplete, missing: .*5-gym_logins_2.csv$"):
        producer_of(data, tmp_path / "home").produce(2)


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
