"""Zones given as Hadoop-compatible URLs: the producer, set-up and clean-up work on
``file:///`` zones through Hadoop's FileSystem (sbit_lib.spark.storage.HadoopPath), the code
path an ``s3a://`` or ``abfss://`` zone takes. What landed and what was deleted is checked with
Python's own file functions, not through that layer. The pipeline itself runs on URL zones in
tests/test_silver_gold_rules.py (two sets, every table against the reference)."""

import os
from pathlib import Path

import pytest

from sbit_lib.course.config import Config, ConfigError
from sbit_lib.course.history import HistoryLoader
from sbit_lib.course.producer import SOURCES, Producer, count_records
from sbit_lib.course.run import remove_incomplete_checkpoint_writes
from sbit_lib.course.setup_helper import SetupHelper
from sbit_lib.spark.storage import HadoopPath, StorageError, atomic_copy, remove_tree


def visible(folder: Path) -> list[str]:
    """File names in a local folder, without Hadoop's hidden checksum files."""
    return sorted(n for n in os.listdir(folder) if not (n.startswith(".") and n.endswith(".crc")))


def test_a_file_url_folder_is_made_filled_listed_read_and_deleted_through_hadoop(spark, tmp_path):
    # Hadoop takes a URL's path unescaped: a space is a space (as_uri()'s %20 would be literal).
    local = tmp_path / "a zone"                      # where Python's own functions look
    local.mkdir()
    root = HadoopPath(f"file://{local}")             # file:///tmp/.../a zone
    folder = root / "raw" / "gym_logins_bz"
    with pytest.raises(FileNotFoundError):
        folder.mkdir()                               # no parents=True: like pathlib
    folder.mkdir(parents=True)
    folder.mkdir(parents=True, exist_ok=True)
    assert (local / "raw" / "gym_logins_bz").is_dir() and folder.is_dir() and not folder.is_file()

    src = tmp_path / "gym logins 1.csv"
    src.write_text("mac_address,gym,login,logout\naa,1,1,2\n\nbb,2,3,4\n")
    dest = folder / src.name
    assert atomic_copy(src, dest) is True
    assert (local / "raw" / "gym_logins_bz" / src.name).read_bytes() == src.read_bytes()
    assert visible(local / "raw" / "gym_logins_bz") == [src.name]      # no temporary file left
    assert atomic_copy(src, dest) is False                                # same bytes: nothing to do
    changed = tmp_path / "a changed file.csv"
    changed.write_text("mac_address,gym,login,logout\nzz,9,9,9\n")
    with pytest.raises(FileExistsError, match="different content"):
        atomic_copy(changed, dest)
    assert (local / "raw" / "gym_logins_bz" / src.name).read_bytes() == src.read_bytes()

    assert dest.is_file() and dest.read_text() == src.read_text() and count_records(dest) == 2
    assert [p.name for p in folder.iterdir()] == [src.name]
    assert list(root.glob("*/gym_logins_bz")) == [folder]
    assert [p.name for p in root.rglob("*.csv")] == [src.name]
    assert dest.relative_to(root).as_posix() == f"raw/gym_logins_bz/{src.name}"
    assert dest.relative_to(dest) == Path(".") and dest.is_relative_to(root)
    with pytest.raises(NotADirectoryError):
        list(dest.iterdir())
    with pytest.raises(IsADirectoryError):
        folder.unlink()
    with pytest.raises(ValueError):
        root / "/etc"                                # an absolute part is not silently appended
    assert list((root / "nowhere").rglob("*")) == []
    dest.unlink()
    assert not (local / "raw" / "gym_logins_bz" / src.name).exists()
    with pytest.raises(FileNotFoundError):
        dest.unlink()
    with pytest.raises(FileNotFoundError):
        list((root / "nowhere").iterdir())
    assert remove_tree(root / "raw") is True and not (local / "raw").exists()
    assert remove_tree(root / "raw") is False


@pytest.mark.parametrize("url, connector", [("s3a://sbit-bucket/lakehouse", "hadoop-aws"),
                                            ("abfss://c@account.dfs.core.windows.net/sbit", "hadoop-azure")])
def test_a_url_whose_connector_is_missing_says_which_jar(spark, url, connector):
    with pytest.raises(StorageError) as error:
        HadoopPath(url).exists()
    assert connector in str(error.value) and url in str(error.value)


@pytest.mark.parametrize("value, words", [("file:tmp/sbit", ["SBIT_DATA_ZONE", "not a usable URL"]),
                                          ("s3a:bucket", ["SBIT_DATA_ZONE", "scheme:/path"]),
                                          ("file://tmp/sbit", ["'tmp' would be a host", "file:///tmp/sbit"])])
def test_a_malformed_zone_url_is_refused_with_the_setting_named(value, words):
    with pytest.raises(ConfigError) as error:
        Config.resolve(data_root=value)
    assert all(word in str(error.value) for word in words)


def test_zone_roots_come_from_the_cli_and_are_in_a_job_process_arguments(tmp_path):
    from sbit_lib.ops.cli import _config, build_parser
    from sbit_lib.ops.job import _cli_args

    args = build_parser().parse_args(["status", "--env", "qa", "--home", str(tmp_path),
                                      "--data-zone", "s3a://b/sbit", "--checkpoint-zone", "file:///c/k"])
    config = _config(args)
    assert (str(config.landing_zone), str(config.checkpoint_dir("users"))) == (
        "s3a://b/sbit/qa/raw", "file:///c/k/qa/users")
    forwarded = _config(build_parser().parse_args(["status", *_cli_args(config)]))
    assert (forwarded.data_zone, forwarded.checkpoint_zone) == (config.data_zone, config.checkpoint_zone)


def test_setup_producer_and_cleanup_work_on_zones_given_as_file_urls(spark, make_config, tmp_path):
    data, checkpoints = tmp_path / "data", tmp_path / "checkpoints"
    config = make_config("url_zones", as_of="2023-03-31", data_root=f"file://{data}",
                         checkpoint_root=f"file://{checkpoints}")
    neighbour = make_config("url_zones_other", data_root=f"file://{data}", checkpoint_root=f"file://{checkpoints}")
    assert isinstance(config.landing_zone, HadoopPath) and isinstance(config.checkpoint_zone, HadoopPath)
    assert str(config.landing_zone).startswith("file:///")

    SetupHelper(config, spark).setup()
    HistoryLoader(config, spark).load_history()
    SetupHelper(neighbour, spark).setup()
    assert (data / "url_zones" / "raw").is_dir() and (checkpoints / "url_zones").is_dir()
    assert (data / "url_zones" / "delta" / "users" / "_delta_log").is_dir()

    landed = Producer(config).produce(1)
    expected = sorted(s.file_name(1) for s in SOURCES)
    assert sorted(p.name for p in landed) == expected
    on_disk = sorted(n for t in ("registered_users_bz", "kafka_multiplex_bz", "gym_logins_bz")
                     for n in visible(data / "url_zones" / "raw" / t))
    assert on_disk == expected
    for source in SOURCES:                          # byte for byte what the test data holds
        assert (data / "url_zones" / "raw" / source.target / source.file_name(1)).read_bytes() == \
            (config.test_data / source.file_name(1)).read_bytes()
    assert Producer(config).produce(1) == []        # landing again changes nothing
    Producer(config).validate(1)                    # counts records through the layer

    # The pipeline itself on URL zones is tests/test_silver_gold_rules.py's: its two sets and
    # clean-up run on file:// zones, on small data.

    # A crashed write's leftover in a checkpoint log is found and removed through the layer;
    # the log's real entries stay.
    offsets = checkpoints / "url_zones" / "heart_rate" / "offsets"
    offsets.mkdir(parents=True)
    for name in ("0", ".0.crc", ".7.0b1e.tmp"):
        (offsets / name).write_text("v1\n")
    assert [p.name for p in remove_incomplete_checkpoint_writes(config)] == [".7.0b1e.tmp"]
    assert sorted(os.listdir(offsets)) == [".0.crc", "0"]

    # Clean-up removes what the pipeline put in the zones; a file someone else keeps in the
    # environment's folder there survives, and so does that folder.
    (data / "url_zones" / "notes.txt").write_text("not the pipeline's")
    SetupHelper(config, spark).cleanup()
    assert os.listdir(data / "url_zones") == ["notes.txt"] and not (checkpoints / "url_zones").exists()
    assert not config.env_root.exists()
    assert config.db_name not in [d.name for d in spark.catalog.listDatabases()]
    assert (data / "url_zones_other" / "delta" / "users" / "_delta_log").is_dir()   # untouched
    SetupHelper(neighbour, spark).validate()
    SetupHelper(neighbour, spark).cleanup()
    assert os.listdir(data) == ["url_zones"] and os.listdir(checkpoints) == []
