"""Class-data sharing (AppCDS) for the driver JVM: start Spark without re-reading its jars.

Why: a cold driver JVM spends about half of its start-up loading classes out of
Spark's and Delta's jars (JFR on 2 cores: 252 of 511 samples in class loading, from
the session start to the first Delta write). Every notebook, papermill run, CLI
command and test process pays it. Java 13+ can write the classes a run loaded into an
archive when that JVM exits (``-XX:ArchiveClassesAtExit``) and map the archive into
later JVMs (``-XX:SharedArchiveFile``), which then skip parsing and verifying them.
On 2 cores, alternating runs with and without it, the session starts and reaches its
first Delta write in a little over half the time.

``make setup`` runs ``sbit cds`` once: a short training run (``sbit_lib.ops.cds``) in a new JVM (set-up of a
throw-away environment, one small set through every layer, a stream and a MERGE), whose
classes become ``~/.cache/sbit-lakehouse/cds/driver-<fingerprint>.jsa`` (~200 MB).
:func:`java_option` adds the archive to the driver's options when it exists.

An archive is only valid for the JDK and the jars it was made with. Its name carries a
fingerprint of both (JDK folder and version, every jar's name, size and time), so a new
JDK or Delta version finds no archive and starts as before, until ``make setup`` makes
one; the JVM checks again itself and on any mismatch loads classes the normal way.
``SBIT_CDS=0`` turns the archive off.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import subprocess
import sys
import time
from pathlib import Path

from sbit_lib.spark.java import DEFAULT_JAVA_OPTIONS, ensure_java_home


def cache_root() -> Path:
    return Path(os.environ.get("SBIT_CDS_DIR") or Path.home() / ".cache" / "sbit-lakehouse" / "cds")


UNOWNED_DAYS = 7      # an archive that names no checkout is kept this long (made before archives did)


def _spark_jars() -> Path:
    """pyspark's jars folder, in this checkout's .venv."""
    import pyspark

    return Path(pyspark.__file__).parent / "jars"


def _jars() -> list[Path]:
    from sbit_lib.spark.jars import delta_jars

    return sorted(_spark_jars().glob("*.jar")) + list(delta_jars())


def fingerprint() -> str:
    """A digest of what an archive depends on: the JDK Spark starts (JAVA_HOME, which
    get_spark sets first) and every jar on the driver's paths."""
    if not os.environ.get("JAVA_HOME"):
        ensure_java_home()
    java_home = Path(os.environ["JAVA_HOME"]).resolve()
    release = java_home / "release"
    parts = [str(java_home), release.read_text() if release.exists() else ""]
    for jar in _jars():
        st = jar.stat()
        parts.append(f"{jar.resolve()}|{st.st_size}|{int(st.st_mtime)}")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def _owner() -> str:
    """The checkout an archive belongs to: its pyspark jars folder."""
    return str(_spark_jars().resolve())


def claim(archive: Path) -> None:
    """Name this checkout as `archive`'s owner, unless it already names one (atomically:
    another checkout's clean-up never reads half an owner file)."""
    owner = archive.with_suffix(".owner")
    if not owner.is_file():
        partial = owner.with_name(f".{owner.name}.{os.getpid()}.tmp")
        partial.write_text(f"{_owner()}\n")
        os.replace(partial, owner)


def remove_stale(current: Path) -> list[Path]:
    """Delete the archives (~200 MB each) no checkout can use any more; return them.

    Stale: an earlier archive of this checkout (for another JDK or jar set), one whose
    checkout is gone, and one that names no checkout and is older than UNOWNED_DAYS (made
    before archives named theirs, and not used since: every Spark start claims the archive it
    maps). Another checkout's archive stays: a clean clone made for a CI run does not take a
    developer's archive away (their processes would start without it, about twice as slowly).
    """
    mine, removed = _owner(), []
    for other in sorted(current.parent.glob("driver-*.jsa")):
        if other == current:
            continue
        owner = other.with_suffix(".owner")
        try:
            folder = owner.read_text().strip() if owner.is_file() else ""
            unowned_old = not folder and time.time() - other.stat().st_mtime > UNOWNED_DAYS * 86400
        except FileNotFoundError:          # another build removed it meanwhile
            continue
        if unowned_old or folder == mine or (folder and not Path(folder).is_dir()):
            for path in (other, other.with_suffix(".log"), owner):
                path.unlink(missing_ok=True)
            removed.append(other)
    return removed


def archive_path() -> Path:
    return cache_root() / f"driver-{fingerprint()}.jsa"


def java_option() -> str:
    """``-XX:SharedArchiveFile=...`` when this machine has a matching archive, else ""."""
    if os.environ.get("SBIT_CDS", "1") == "0":
        return ""
    try:
        path = archive_path()
    except Exception:   # noqa: BLE001 - no JDK or jars yet: the session start will say so
        return ""
    if not path.is_file():
        return ""
    with contextlib.suppress(OSError):
        claim(path)          # an archive made before archives named their checkout: now it does
    return f"-XX:SharedArchiveFile={path}"


def build(training: list[str], force: bool = False, timeout_s: int = 900) -> Path | None:
    """Make the archive for this JDK and these jars (skipped when it exists) by running the
    `training` command in a new JVM; return its path, or None when the training run failed
    (start-up then stays as it was: nothing breaks). ``sbit cds`` gives it
    ``python -m sbit_lib.ops.cds --train``."""
    target = archive_path()
    if target.is_file() and not force:
        claim(target)
        print(f"Class-data archive for this JDK and these jars: {target} (cached)")
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    for stale in target.parent.glob(".driver-*.tmp"):     # from a training run that was killed
        stale.unlink(missing_ok=True)
    partial = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    log = target.with_suffix(".log")
    options = os.environ.get("SBIT_JAVA_OPTIONS", DEFAULT_JAVA_OPTIONS)
    env = {**os.environ, "SBIT_CDS": "0", "SBIT_SPARK_UI": "false",
           "SBIT_JAVA_OPTIONS": f"{options} -XX:ArchiveClassesAtExit={partial}".strip()}
    print("Making the class-data archive (a short training run, about 2.5 minutes once) ...", flush=True)
    start = time.monotonic()
    with log.open("w") as out:
        try:
            done = subprocess.run(training, env=env,
                                  stdout=out, stderr=subprocess.STDOUT, timeout=timeout_s)
            ok = done.returncode == 0
        except subprocess.TimeoutExpired:
            ok = False
    if not ok or not partial.is_file():
        partial.unlink(missing_ok=True)
        print(f"WARNING: no class-data archive (training run failed, see {log}); Spark starts "
              "without it, only slower", file=sys.stderr)
        return None
    claim(target)                   # first: another checkout's clean-up must not find it unowned
    os.replace(partial, target)
    remove_stale(target)
    print(f"Class-data archive written in {time.monotonic() - start:.0f} s: {target} "
          f"({target.stat().st_size / 2**20:.0f} MiB)")
    return target
