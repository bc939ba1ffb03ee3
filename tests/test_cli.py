"""The `sbit` command line: errors are one clear line with a non-zero exit; `sbit sql` prints SQL values."""

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


def test_sql_prints_values_as_their_sql_types(spark, make_config, capsys):
    """Not through pandas: a DATE stays a date, a BIGINT column with a NULL stays integral."""
    from sbit_lib.course.catalog import create_database

    config = make_config("cli_t")
    create_database(spark, config)
    args = ["--env", config.environment, "--home", str(config.home)]
    query = ("SELECT DATE'2023-03-11' AS d, CAST(NULL AS BIGINT) AS n "
             "UNION ALL SELECT DATE'2023-03-12', 500109 ORDER BY d")
    assert cli.main(["sql", query, "--format", "csv", *args]) == 0
    assert capsys.readouterr().out == "d,n\n2023-03-11,\n2023-03-12,500109\n"
    assert cli.main(["sql", query, "--format", "json", *args]) == 0
    assert capsys.readouterr().out == '{"d":"2023-03-11","n":null}\n{"d":"2023-03-12","n":500109}\n'
    assert cli.main(["sql", query, *args]) == 0
    assert capsys.readouterr().out == "d                n\n2023-03-11    NULL\n2023-03-12  500109\n"


def test_sql_renders_each_type_as_spark_prints_it(spark, make_config, capsys):
    from sbit_lib.course.catalog import create_database

    config = make_config("cli_t")
    create_database(spark, config)
    query = ("SELECT TIMESTAMP'2023-03-11 10:00:00.5' AS ts, TIMESTAMP'2023-03-11 10:00:00' AS ts0, "
             "0.1D AS x, CAST('NaN' AS DOUBLE) AS nan, 12.50BD AS dec, true AS b, 'a,\"b\"' AS s, "
             "named_struct('k', 1, 'v', CAST(NULL AS STRING), 'd', DATE'2023-03-11') AS st, array(1, 2) AS arr")
    args = ["--env", config.environment, "--home", str(config.home)]
    assert cli.main(["sql", query, "--format", "json", *args]) == 0
    assert capsys.readouterr().out == (
        '{"ts":"2023-03-11 10:00:00.5","ts0":"2023-03-11 10:00:00","x":0.1,"nan":"NaN","dec":12.50,"b":true,'
        '"s":"a,\\"b\\"","st":{"k":1,"v":null,"d":"2023-03-11"},"arr":[1,2]}\n')
    assert cli.main(["sql", query, "--format", "csv", *args]) == 0
    assert capsys.readouterr().out.splitlines()[1] == (
        '2023-03-11 10:00:00.5,2023-03-11 10:00:00,0.1,NaN,12.50,true,"a,""b""",'
        '"{""k"":1,""v"":null,""d"":""2023-03-11""}","[1,2]"')


def test_jars_reports_the_cache(capsys):
    assert cli.main(["jars"]) == 0
    assert "(cached)" in capsys.readouterr().out
