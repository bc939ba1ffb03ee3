"""Delta jar resolution: cache behaviour and the error paths (one real, failing download)."""

import pytest

from sbit_lib.spark import jars
from sbit_lib.spark.jars import JarResolutionError


def test_artifact_matches_the_installed_spark_and_delta():
    import pyspark

    artifact = jars.delta_artifact()
    minor = ".".join(pyspark.__version__.split(".")[:2])
    assert artifact == f"io.delta:delta-spark_{minor}_2.13:{jars.delta_version()}"


def test_the_cache_is_complete_only_with_its_manifest_and_every_jar(tmp_path):
    assert jars.cached_jars(tmp_path) is None
    (tmp_path / "a.jar").write_bytes(b"x")
    assert jars.cached_jars(tmp_path) is None            # no manifest: an interrupted download
    (tmp_path / jars.MANIFEST).write_text("a.jar\nb.jar\n")
    assert jars.cached_jars(tmp_path) is None            # b.jar missing
    (tmp_path / "b.jar").write_bytes(b"y")
    assert jars.cached_jars(tmp_path) == [tmp_path / "a.jar", tmp_path / "b.jar"]


def test_sessions_use_the_cached_jars_without_network(monkeypatch, tmp_path):
    (tmp_path / "d.jar").write_bytes(b"x")
    (tmp_path / jars.MANIFEST).write_text("d.jar\n")
    monkeypatch.setenv("SBIT_JARS_DIR", str(tmp_path))
    monkeypatch.setattr(jars, "resolve", lambda *a, **k: pytest.fail("must not download"))
    assert jars.delta_jars() == [tmp_path / "d.jar"]


def test_maven_missing_is_reported(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(JarResolutionError) as err:
        jars.resolve("io.delta:delta-spark_4.2_2.13:0.0.0-missing", via=("maven",), folder=tmp_path / "c")
    assert "`mvn` is not installed" in str(err.value)


def test_a_failed_download_names_the_artifact_and_the_remedy(tmp_path):
    """A real Ivy resolution of an artifact version that does not exist on Maven Central."""
    artifact = "io.delta:delta-spark_4.2_2.13:0.0.0-does-not-exist"
    with pytest.raises(JarResolutionError) as err:
        jars.resolve(artifact, via=("ivy",), folder=tmp_path / "cache", timeout=300)
    message = str(err.value)
    assert artifact in message
    assert "unresolved dependency" in message or "not found" in message
    assert "SBIT_JARS_DIR" in message and "sbit jars --via maven" in message
    assert "Py4J" not in message and "Traceback" not in message
    assert "\n" not in message                                   # one paragraph
    assert not (tmp_path / "cache" / jars.MANIFEST).exists()     # nothing half-cached
