"""The Delta Lake jars: resolved once from Maven Central, cached, then used offline.

``delta.configure_spark_with_delta_pip`` asks Spark's Ivy to download the jars on
*every* session start, which needs the network each time and prints pages of Ivy
output. Here they are resolved once (``sbit jars``, run by ``make setup``) into a
cache folder and every session gets their absolute paths through ``spark.jars``.

Resolution tries Spark's own Ivy first (``spark-submit --packages``) and then
Maven (``mvn dependency:copy-dependencies``) where only ``mvn`` reaches Maven
Central (a mirror in ``~/.m2/settings.xml``).

The cache is ``$SBIT_JARS_DIR`` or ``~/.cache/sbit-lakehouse/jars/<artifact>-<version>``.
"""

from __future__ import annotations

import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pyspark

from sbit_lib.spark.java import ensure_java_home

SCALA_VERSION = "2.13"
MANIFEST = "jars.txt"


class JarResolutionError(RuntimeError):
    """The Delta jars could not be resolved; the message names the artifact and the remedy."""


def delta_version() -> str:
    """Return the installed delta-spark Python package version (the jar must match it)."""
    return importlib.metadata.version("delta-spark")


def delta_artifact() -> str:
    """Return the Maven coordinate of the Delta jar matching the installed pyspark and delta-spark."""
    spark_minor = ".".join(pyspark.__version__.split(".")[:2])
    return f"io.delta:delta-spark_{spark_minor}_{SCALA_VERSION}:{delta_version()}"


def cache_dir(artifact: str | None = None) -> Path:
    """Return the folder the jars of `artifact` are cached in."""
    if os.environ.get("SBIT_JARS_DIR"):
        return Path(os.environ["SBIT_JARS_DIR"]).expanduser().resolve()
    _, name, version = (artifact or delta_artifact()).split(":")
    return Path.home() / ".cache" / "sbit-lakehouse" / "jars" / f"{name}-{version}"


def cached_jars(folder: Path | None = None) -> list[Path] | None:
    """Return the cached jar paths, or None when the cache is missing or incomplete."""
    folder = folder or cache_dir()
    manifest = folder / MANIFEST
    if not manifest.exists():
        return None
    jars = [folder / line for line in manifest.read_text().split() if line]
    if not jars or not all(j.exists() for j in jars):
        return None
    return jars


def _failure_message(artifact: str, reasons: list[str], folder: Path) -> str:
    return (
        f"Could not download the Delta Lake jars ({artifact} and its dependencies) from Maven "
        f"Central: {'; '.join(reasons)}. Spark needs them once; afterwards they are used from "
        f"{folder} without network. Remedies: allow HTTPS access to repo1.maven.org (or set a "
        "proxy/mirror that Maven uses in ~/.m2/settings.xml and run `sbit jars --via maven`); or "
        f"copy the jar files from a machine that has them into {folder} and list their file names "
        f"in {folder / MANIFEST}; or point SBIT_JARS_DIR at such a folder."
    )


def _spark_env() -> dict[str, str]:
    spark_home = Path(pyspark.__file__).resolve().parent
    env = dict(os.environ)
    env["SPARK_HOME"] = str(spark_home)
    env["PYSPARK_PYTHON"] = sys.executable
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def _resolve_with_ivy(artifact: str, work: Path, timeout: int) -> list[Path]:
    """Resolve with Spark's Ivy (what `--packages` does) and return the downloaded jars."""
    ensure_java_home()
    spark_submit = Path(pyspark.__file__).resolve().parent / "bin" / "spark-submit"
    noop = work / "noop.py"
    noop.write_text("")
    ivy = work / "ivy"
    cmd = [
        str(spark_submit), "--packages", artifact,
        "--conf", f"spark.jars.ivy={ivy}", "--conf", "spark.ui.enabled=false", str(noop),
    ]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, env=_spark_env(), timeout=timeout)
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"Ivy did not finish within {timeout} s") from None
    jars = sorted((ivy / "jars").glob("*.jar"))
    if out.returncode != 0 or not jars:
        text = out.stderr + out.stdout
        found = re.findall(r"(unresolved dependency: [^\n]*|not found: [^\n]*|UnknownHost[^\n]*|"
                           r"Connection refused[^\n]*|Server access error[^\n]*)", text)
        detail = found[0].strip() if found else (text.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"Ivy: {detail}")
    return jars


_POM = """<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>sbit</groupId><artifactId>delta-jars</artifactId><version>1</version>
  <dependencies><dependency>
    <groupId>{group}</groupId><artifactId>{name}</artifactId><version>{version}</version>
  </dependency></dependencies>
</project>
"""


def _resolve_with_maven(artifact: str, work: Path, timeout: int) -> list[Path]:
    """Resolve with `mvn dependency:copy-dependencies` and return the copied jars."""
    mvn = shutil.which("mvn")
    if not mvn:
        raise RuntimeError("Maven: `mvn` is not installed")
    group, name, version = artifact.split(":")
    (work / "pom.xml").write_text(_POM.format(group=group, name=name, version=version))
    out_dir = work / "mvn-jars"
    cmd = [mvn, "-q", "-B", "dependency:copy-dependencies", "-DincludeScope=runtime",
           f"-DoutputDirectory={out_dir}"]
    try:
        out = subprocess.run(cmd, cwd=work, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"Maven did not finish within {timeout} s") from None
    jars = sorted(out_dir.glob("*.jar"))
    if out.returncode != 0 or not jars:
        lines = [ln for ln in (out.stdout + out.stderr).splitlines() if "ERROR" in ln]
        raise RuntimeError(f"Maven: {(lines or ['no jars copied'])[0].strip()}")
    return jars


def resolve(artifact: str | None = None, via: tuple[str, ...] = ("ivy", "maven"),
            folder: Path | None = None, timeout: int = 600) -> list[Path]:
    """Download the jars of `artifact` into the cache (trying each of `via` in turn) and return them."""
    artifact = artifact or delta_artifact()
    folder = folder or cache_dir(artifact)
    methods = {"ivy": _resolve_with_ivy, "maven": _resolve_with_maven}
    reasons: list[str] = []
    with tempfile.TemporaryDirectory(prefix="sbit-jars-") as tmp:
        for name in via:
            try:
                jars = methods[name](artifact, Path(tmp), timeout)
            except RuntimeError as err:
                reasons.append(str(err))
                continue
            folder.mkdir(parents=True, exist_ok=True)
            for jar in jars:
                shutil.copy2(jar, folder / jar.name)
            # The manifest is written last: a cache without it is incomplete.
            (folder / MANIFEST).write_text("\n".join(j.name for j in jars) + "\n")
            return [folder / j.name for j in jars]
    raise JarResolutionError(_failure_message(artifact, reasons, folder))


def delta_jars() -> list[Path]:
    """Return the cached Delta jars, resolving them first if the cache is empty."""
    return cached_jars() or resolve()
