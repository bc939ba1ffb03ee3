"""The driver JVM's class-data archive (sbit_lib/spark/cds.py): made by `make setup` for this JDK
and these jars, accepted by the JVM Spark starts, and ignored when it does not match."""

import os
import subprocess
import sys
import time

from sbit_lib.spark import cds
from sbit_lib.spark.java import DEFAULT_JAVA_OPTIONS


def test_the_archive_of_this_setup_is_accepted_by_the_jvm_spark_starts(tmp_path):
    """-Xshare:on turns any mismatch (other JDK, other class path) into a failed start,
    where the default, -Xshare:auto, would silently load classes the slow way."""
    archive = cds.archive_path()
    assert archive.is_file(), f"no class-data archive {archive}: `make setup` (sbit cds) makes it"
    code = ("from sbit_lib.course.config import Config; from sbit_lib.course.catalog import get_spark; "
            f"spark = get_spark(Config.resolve(environment='cds_t', home={str(tmp_path)!r})); "
            "spark.range(3).write.format('delta').save(" + repr(str(tmp_path / "t")) + "); "
            "print(spark.sparkContext._jvm.java.lang.management.ManagementFactory"
            ".getRuntimeMXBean().getInputArguments())")
    env = {**os.environ, "SBIT_JAVA_OPTIONS": f"{DEFAULT_JAVA_OPTIONS} -Xshare:on"}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    assert f"-XX:SharedArchiveFile={archive}" in done.stdout and "-Xshare:on" in done.stdout


def test_no_matching_archive_means_no_option(monkeypatch, tmp_path):
    monkeypatch.setenv("SBIT_CDS_DIR", str(tmp_path))
    assert cds.java_option() == ""
    cds.archive_path().write_bytes(b"")
    assert cds.java_option() == f"-XX:SharedArchiveFile={cds.archive_path()}"
    monkeypatch.setenv("SBIT_CDS", "0")
    assert cds.java_option() == ""


def test_a_changed_jar_changes_the_archive_name(monkeypatch, tmp_path):
    jars = [tmp_path / "a.jar", tmp_path / "b.jar"]
    for jar in jars:
        jar.write_bytes(b"x")
    monkeypatch.setattr(cds, "_jars", lambda: jars)
    before = cds.archive_path()
    assert cds.archive_path() == before
    jars[1].write_bytes(b"xy")
    assert cds.archive_path() != before


def test_making_an_archive_removes_only_those_no_checkout_can_use(monkeypatch, tmp_path):
    monkeypatch.setenv("SBIT_CDS_DIR", str(tmp_path))
    other_checkout = tmp_path / "other" / "jars"
    other_checkout.mkdir(parents=True)

    def archive(name: str, owner: str | None):
        path = tmp_path / f"driver-{name}.jsa"
        path.write_bytes(b"")
        path.with_suffix(".log").write_text("training log")
        if owner is not None:
            path.with_suffix(".owner").write_text(owner + "\n")
        return path

    current = archive("current", cds._owner())
    earlier = archive("earlier", cds._owner())                  # this checkout, before its jars changed
    gone = archive("gone", str(tmp_path / "deleted" / "jars"))  # a clone since deleted
    unowned = archive("unowned", None)                          # made before archives named their checkout,
    week_ago = time.time() - 8 * 86400                          # and not used for over a week
    os.utime(unowned, (week_ago, week_ago))
    archive("recent", None)                                     # unowned too, but recent: may be in use
    archive("kept", str(other_checkout))                        # another checkout: still in use
    assert sorted(cds.remove_stale(current)) == sorted([earlier, gone, unowned])
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_file()) == [
        "driver-current.jsa", "driver-current.log", "driver-current.owner",
        "driver-kept.jsa", "driver-kept.log", "driver-kept.owner", "driver-recent.jsa", "driver-recent.log"]


def test_a_spark_start_claims_the_archive_it_maps_for_this_checkout(monkeypatch, tmp_path):
    monkeypatch.setenv("SBIT_CDS_DIR", str(tmp_path))
    cds.archive_path().write_bytes(b"")                         # made before archives named their checkout
    assert cds.java_option() == f"-XX:SharedArchiveFile={cds.archive_path()}"
    assert cds.archive_path().with_suffix(".owner").read_text() == cds._owner() + "\n"
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []
