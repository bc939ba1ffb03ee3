"""The `sbit` command line: errors are one clear line with a non-zero exit."""

from sbit_lib.ops import cli
from tests.conftest import sbit_cli


def test_a_bad_environment_name_is_one_line_and_exit_2():
    result = sbit_cli("setup", "--env", "Bad-Name")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        result.stderr.strip().splitlines()[0]] and result.stderr.startswith("error: environment 'Bad-Name'")


def test_an_unknown_set_number_is_one_line_and_exit_1(tmp_path):
    result = sbit_cli("produce", "11", "--home", str(tmp_path))
    assert result.returncode == 1
    assert result.stderr.strip() == "error: set number must be a whole number from 1 to 10, got 11"


def test_bad_sql_is_one_line_not_a_java_trace(spark, make_config, capsys):
    config = make_config("cli_t")
    code = cli.main(["sql", "SELEC 1", "--env", config.environment, "--home", str(config.home)])
    err = capsys.readouterr().err
    assert code == 1
    assert err.startswith("error: ") and err.count("\n") == 1
    assert "py4j" not in err.lower()


def test_sql_on_an_environment_without_tables_says_run_setup(spark, make_config, capsys):
    config = make_config("cli_empty")
    assert cli.main(["sql", "SELECT 1", "--env", config.environment, "--home", str(config.home)]) == 1
    assert "run `sbit setup --env cli_empty` first" in capsys.readouterr().err


def test_sql_prints_csv_and_json(spark, make_config, capsys):
    from sbit_lib.course.catalog import create_database

    config = make_config("cli_t")
    create_database(spark, config)
    args = ["--env", config.environment, "--home", str(config.home)]
    assert cli.main(["sql", "SELECT 1 AS a, 'x' AS b", "--format", "csv", *args]) == 0
    assert capsys.readouterr().out == "a,b\n1,x\n"
    assert cli.main(["sql", "SELECT 1 AS a", "--format", "json", *args]) == 0
    assert capsys.readouterr().out.strip() == '{"a":1}'


def test_jars_reports_the_cache(capsys):
    assert cli.main(["jars"]) == 0
    assert "(cached)" in capsys.readouterr().out
