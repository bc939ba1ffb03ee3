import datetime as dt
from pathlib import Path

import pytest

from sbit_lib.course.config import PROJECT_ROOT, Config, ConfigError


@pytest.fixture(autouse=True)
def _no_sbit_env(monkeypatch):
    for var in ("SBIT_HOME", "SBIT_ENV", "SBIT_TEST_DATA", "SBIT_MODE", "SBIT_AS_OF", "SBIT_SPARK_MASTER"):
        monkeypatch.delenv(var, raising=False)


def test_defaults_live_under_the_project_lakehouse_folder():
    config = Config.resolve()
    assert config.environment == "dev"
    assert config.db_name == "dev_sbit_db"
    assert config.home == PROJECT_ROOT / "lakehouse"
    assert config.landing_zone == PROJECT_ROOT / "lakehouse" / "dev" / "data" / "raw"
    assert config.test_data == PROJECT_ROOT / "test_data"
    assert (config.mode, config.as_of, config.spark_master) == ("default", None, "local[*]")
    assert config.max_files_per_trigger == 1000


def test_environment_variables_override_defaults(monkeypatch, tmp_path):
    monkeypatch.setenv("SBIT_HOME", str(tmp_path / "h"))
    monkeypatch.setenv("SBIT_ENV", "qa")
    monkeypatch.setenv("SBIT_TEST_DATA", str(tmp_path / "d"))
    monkeypatch.setenv("SBIT_MODE", "course")
    monkeypatch.setenv("SBIT_AS_OF", "2023-03-31")
    monkeypatch.setenv("SBIT_SPARK_MASTER", "local[2]")
    config = Config.resolve()
    assert config.checkpoint_zone == tmp_path / "h" / "qa" / "checkpoints"
    assert config.test_data == tmp_path / "d"
    assert config.mode == "course"
    assert config.as_of == dt.date(2023, 3, 31)
    assert config.spark_master == "local[2]"


def test_explicit_arguments_override_environment_variables(monkeypatch, tmp_path):
    monkeypatch.setenv("SBIT_ENV", "qa")
    monkeypatch.setenv("SBIT_MODE", "course")
    config = Config.resolve(environment="prod", mode="default", home=tmp_path)
    assert (config.environment, config.mode, config.db_name) == ("prod", "default", "prod_sbit_db")


def test_relative_paths_become_absolute(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    config = Config.resolve(home="rel/home", test_data="data")
    assert config.home == tmp_path / "rel" / "home"
    assert config.test_data.is_absolute()


def test_two_environments_share_no_location(tmp_path):
    dev, qa = Config.resolve(environment="dev", home=tmp_path), Config.resolve(environment="qa", home=tmp_path)
    dev_paths = {dev.landing_zone, dev.checkpoint_zone, dev.tables_zone, dev.table_location("users")}
    qa_paths = {qa.landing_zone, qa.checkpoint_zone, qa.tables_zone, qa.table_location("users")}
    for a in dev_paths:
        for b in qa_paths:
            assert not (a == b or a in b.parents or b in a.parents)
    assert dev.db_name != qa.db_name


@pytest.mark.parametrize("kwargs, words", [
    ({"environment": "Dev-1"}, ["environment 'Dev-1'", "lowercase"]),
    ({"environment": "../x"}, ["environment '../x'"]),
    ({"mode": "fast"}, ["mode 'fast'", "default", "course"]),
    ({"as_of": "31/03/2023"}, ["as-of date '31/03/2023'", "YYYY-MM-DD"]),
])
def test_a_wrong_parameter_says_which_and_why(kwargs, words):
    with pytest.raises(ConfigError) as err:
        Config.resolve(**kwargs)
    for word in words:
        assert word in str(err.value)


def test_as_of_date_defaults_to_today_and_can_be_pinned():
    assert Config.resolve().as_of_date == dt.datetime.now(dt.timezone.utc).date()
    assert Config.resolve(as_of="2023-03-31").as_of_date == dt.date(2023, 3, 31)


def test_checkpoints_are_one_folder_per_query(tmp_path):
    config = Config.resolve(home=tmp_path)
    assert config.checkpoint_dir("a") != config.checkpoint_dir("b")
    assert config.checkpoint_dir("a").parent == config.checkpoint_zone
    assert isinstance(config.table_location("users"), Path)


def test_the_code_generation_setting_reads_true_or_false_and_refuses_anything_else(monkeypatch):
    from sbit_lib.spark.session import codegen_setting

    monkeypatch.delenv("SBIT_SPARK_CODEGEN", raising=False)
    assert codegen_setting() is True                     # unset: Spark's default
    for value, on in (("false", False), ("0", False), ("True", True), (" no ", False)):
        monkeypatch.setenv("SBIT_SPARK_CODEGEN", value)
        assert codegen_setting() is on, value
    monkeypatch.setenv("SBIT_SPARK_CODEGEN", "off")
    with pytest.raises(ConfigError, match=r"SBIT_SPARK_CODEGEN='off' is neither true nor false"):
        codegen_setting()


def test_the_driver_stays_on_loopback_unless_an_address_is_given_and_a_remote_master_needs_one(monkeypatch):
    from sbit_lib.spark.session import host_setting

    monkeypatch.delenv("SBIT_SPARK_HOST", raising=False)
    for master in ("local[*]", "local[2]", "spark://127.0.0.1:7077", "spark://localhost:7077"):
        assert host_setting(master) is None, master          # every listener on loopback
    # executors on another machine could not connect back to a driver on 127.0.0.1
    with pytest.raises(ConfigError, match=r"master 'spark://192\.0\.2\.7:7077' is on another machine.*SBIT_SPARK_HOST"):
        host_setting("spark://192.0.2.7:7077")
    monkeypatch.setenv("SBIT_SPARK_HOST", "192.0.2.1")
    assert host_setting("spark://192.0.2.7:7077") == "192.0.2.1"
    monkeypatch.setenv("SBIT_SPARK_HOST", "no such host.invalid")
    with pytest.raises(ConfigError, match=r"SBIT_SPARK_HOST='no such host\.invalid' does not resolve"):
        host_setting()
