"""Where the files live: local folders or Hadoop-compatible URLs, through one interface.

The data zone (landing files, Delta tables) and the checkpoint zone can be local folders
(the default, under ``SBIT_HOME``) or URLs that Spark's Hadoop file-system layer serves:
``file:///shared/sbit``, ``s3a://bucket/sbit``, ``abfss://container@account.dfs.core.windows.net/sbit``.
Spark reads and writes either kind itself; the library's own file operations (the
producer landing files, set-up making folders, clean-up deleting them, reading a
checkpoint's metadata) go through this module:

* a local path is a :class:`pathlib.Path`;
* a URL is a :class:`HadoopPath`: the same methods, carried out by Hadoop's
  ``FileSystem`` in the Spark driver's JVM, so that ``file:///`` takes the very code path
  ``s3a://`` or ``abfss://`` would (only the connector behind the scheme differs);
* what pathlib has no method for goes through functions that accept both:
  :func:`atomic_copy` (land a file atomically) and :func:`remove_tree`.

On Databricks the same holds: its ``dbutils.fs`` is a wrapper over this ``FileSystem``
layer, which the driver's JVM offers there too.

Example::

    >>> zone = as_zone("file:///tmp/lh/qa/data")       # doctest: +SKIP
    >>> (zone / "raw" / "gym_logins_bz").mkdir(parents=True, exist_ok=True)
"""

from __future__ import annotations

import filecmp
import fnmatch
import io
import os
import re
import shutil
from pathlib import Path, PurePosixPath
from typing import Iterator, Union

# A URL: a scheme of two or more characters, a colon and a slash ("file:/x", "s3a://b/x");
# anything starting with such a scheme and a colon is meant as one.
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]+:/")
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]+:")


def _split(url: str) -> tuple[str, str]:
    """("scheme:" or "scheme://authority", "/path") of a URL."""
    match = re.match(r"^([A-Za-z][A-Za-z0-9+.-]+:(?://[^/]*)?)(.*)$", url)
    return match.group(1), match.group(2)


class StorageError(OSError):
    """A file operation on a URL failed in a way the message explains (e.g. no connector)."""


def is_url(value) -> bool:
    """True when `value` is a URL with a scheme, not a local path."""
    return isinstance(value, HadoopPath) or bool(_SCHEME.match(str(value)))


def as_zone(value) -> "Zone":
    """A local path as an absolute :class:`Path`, a URL as a :class:`HadoopPath`."""
    if isinstance(value, (Path, HadoopPath)):
        return value
    return HadoopPath(str(value)) if is_url(value) else Path(value).expanduser().resolve()


def _hadoop():
    """(jvm, Hadoop configuration) of the process's Spark session.

    The session's configuration (``sessionState().newHadoopConf()``), not the context's:
    it includes what a notebook set at run time with ``spark.conf.set("fs.s3a....")``
    (credentials), as Spark's own reads do. Any thread: the session is found globally.
    """
    from sbit_lib.spark.session import active_session

    spark = active_session()
    if spark is None:
        raise StorageError("a zone given as a URL is reached through Spark's Hadoop file system, and no "
                           "Spark session runs in this process: start one first "
                           "(sbit_lib.course.catalog.get_spark(config))")
    return spark._jvm, spark._jsparkSession.sessionState().newHadoopConf()


def _java_class(error: Exception) -> str:
    java = getattr(error, "java_exception", None)
    return java.getClass().getName() if java is not None else ""


_CONNECTORS = {"s3a": "hadoop-aws", "abfs": "hadoop-azure", "abfss": "hadoop-azure", "wasb": "hadoop-azure",
               "wasbs": "hadoop-azure", "gs": "gcs-connector"}


class HadoopPath:
    """A file or folder named by a URL, with the :class:`pathlib.Path` methods the library uses.

    Every operation asks Hadoop's ``FileSystem`` for the URL's scheme (the one Spark uses for
    the same URL), so the path needs a Spark driver in this process; one is started if none
    runs. Names are joined with ``/``; the URL is kept as given (no trailing slash).
    """

    __slots__ = ("_url",)

    def __init__(self, url: str):
        url = str(url)
        if not _URL.match(url):
            raise ValueError(f"{url!r} is not a URL (scheme:/path)")
        prefix, path = _split(url)
        self._url = prefix + (path.rstrip("/") or "/")

    # -- names ---------------------------------------------------------------------
    def __str__(self) -> str:
        return self._url

    def __repr__(self) -> str:
        return f"HadoopPath({self._url!r})"

    def __eq__(self, other) -> bool:
        return isinstance(other, HadoopPath) and other._url == self._url

    def __hash__(self) -> int:
        return hash(self._url)

    def __lt__(self, other: "HadoopPath") -> bool:
        return self._url < str(other)

    def __truediv__(self, part) -> "HadoopPath":
        return self.joinpath(part)

    def joinpath(self, *parts) -> "HadoopPath":
        url = self._url
        for part in parts:
            part = str(part)
            if part.startswith("/") or ".." in part.split("/"):
                raise ValueError(f"{part!r}: only names below {self._url} can be joined to it")
            part = part.strip("/")
            if part:
                url = f"{url}{part}" if url.endswith("/") else f"{url}/{part}"
        return HadoopPath(url)

    def as_posix(self) -> str:
        return self._url

    @property
    def name(self) -> str:
        return PurePosixPath(_split(self._url)[1]).name

    @property
    def suffix(self) -> str:
        return PurePosixPath(self.name).suffix

    @property
    def stem(self) -> str:
        return PurePosixPath(self.name).stem

    @property
    def parent(self) -> "HadoopPath":
        prefix, path = _split(self._url)
        return HadoopPath(prefix + str(PurePosixPath(path).parent))

    def with_name(self, name: str) -> "HadoopPath":
        return self.parent / name

    def _base(self, other) -> str:
        return str(other) if str(other).endswith("/") else f"{other}/"

    def relative_to(self, other) -> PurePosixPath:
        if self._url == str(other).rstrip("/") or self._url == str(other):
            return PurePosixPath(".")
        if not self._url.startswith(self._base(other)):
            raise ValueError(f"{self._url!r} is not below {str(other)!r}")
        return PurePosixPath(self._url[len(self._base(other)):])

    def is_relative_to(self, other) -> bool:
        return self._url in (str(other), str(other).rstrip("/")) or self._url.startswith(self._base(other))

    # -- the file system -----------------------------------------------------------
    def _fs(self):
        jvm, conf = _hadoop()
        try:
            jpath = jvm.org.apache.hadoop.fs.Path(self._url)
            return jvm, jpath.getFileSystem(conf), jpath
        except Exception as error:  # noqa: BLE001 - py4j wraps the Java exception
            text = str(error)
            scheme = self._url.split(":", 1)[0]
            # No implementation configured for the scheme (UnsupportedFileSystemException), or
            # one configured whose class is missing (s3a://: core-default names S3AFileSystem;
            # with hadoop-aws present but not its AWS SDK, an SDK class is the missing one).
            missing = re.search(r"Class (\S+) not found", text)
            if "UnsupportedFileSystemException" in _java_class(error) or "No FileSystem for scheme" in text \
                    or missing:
                jar = _CONNECTORS.get(scheme.lower(), "the connector for it")
                what = f"class {missing.group(1)} is missing" if missing else "no file system is configured"
                raise StorageError(
                    f"Spark cannot open {scheme}:// URLs ({self._url}): {what}. Its Hadoop connector ({jar}, "
                    "of pyspark's Hadoop version, with its SDK) must be on the driver's and the executors' "
                    "classpath, e.g. spark.jars.packages in spark-defaults.conf (SPARK_CONF_DIR). Local "
                    "folders and file:/// URLs need nothing more") from None
            raise StorageError(f"Hadoop cannot use {self._url}: {text.splitlines()[0] if text else error!r}") \
                from error

    def _status(self):
        """(file system, Hadoop path, FileStatus or None when nothing is there): one lookup
        that the methods below share."""
        _, fs, jpath = self._fs()
        try:
            return fs, jpath, fs.getFileStatus(jpath)
        except Exception as error:  # noqa: BLE001
            if _java_class(error) == "java.io.FileNotFoundException":
                return fs, jpath, None
            raise

    def exists(self) -> bool:
        return self._status()[2] is not None

    def is_dir(self) -> bool:
        status = self._status()[2]
        return status is not None and status.isDirectory()

    def is_file(self) -> bool:
        status = self._status()[2]
        return status is not None and status.isFile()

    def mkdir(self, parents: bool = False, exist_ok: bool = False) -> None:
        fs, jpath, status = self._status()
        if status is not None:
            if exist_ok and status.isDirectory():
                return
            raise FileExistsError(f"{self._url} exists")
        if not parents and not self.parent.is_dir():
            raise FileNotFoundError(f"{self.parent} does not exist (mkdir without parents=True)")
        if not fs.mkdirs(jpath):
            raise StorageError(f"could not create the folder {self._url}")

    def iterdir(self) -> Iterator["HadoopPath"]:
        fs, jpath, status = self._status()
        if status is None:
            raise FileNotFoundError(f"{self._url} does not exist")
        if not status.isDirectory():
            raise NotADirectoryError(f"{self._url} is a file")
        return iter([self / child.getPath().getName() for child in fs.listStatus(jpath)])

    def glob(self, pattern: str) -> Iterator["HadoopPath"]:
        """The paths below this one matching `pattern` (Hadoop glob: ``*`` stays within a name)."""
        jvm, fs, jpath = self._fs()
        base = fs.makeQualified(jpath).toString().rstrip("/") + "/"
        statuses = fs.globStatus(jvm.org.apache.hadoop.fs.Path(f"{self._url}/{pattern}")) or []
        found = []
        for status in statuses:
            qualified = status.getPath().toString()
            if qualified.startswith(base):
                found.append(self.joinpath(qualified[len(base):]))
        return iter(sorted(found))

    def rglob(self, pattern: str) -> Iterator["HadoopPath"]:
        """Every path below this one (at any depth) whose name matches `pattern`."""
        folders = [self] if self.is_dir() else []       # like pathlib: nothing below a missing folder
        while folders:
            folder = folders.pop()
            _, fs, jpath = folder._fs()
            for status in fs.listStatus(jpath):
                child = folder / status.getPath().getName()
                if fnmatch.fnmatchcase(child.name, pattern):
                    yield child
                if status.isDirectory():
                    folders.append(child)

    def read_bytes(self) -> bytes:
        jvm, fs, jpath = self._fs()
        try:
            stream = fs.open(jpath)
        except Exception as error:  # noqa: BLE001
            if _java_class(error) == "java.io.FileNotFoundException":
                raise FileNotFoundError(f"{self._url} does not exist") from None
            raise
        try:
            return bytes(jvm.org.apache.commons.io.IOUtils.toByteArray(stream))   # one transfer, by value
        finally:
            stream.close()

    def read_text(self, encoding: str = "utf-8") -> str:
        return self.read_bytes().decode(encoding)

    def open(self, mode: str = "r", encoding: str = "utf-8"):
        """Read-only: the whole file in memory (a heart-rate set is about 40 MB)."""
        if mode not in ("r", "rb"):
            raise ValueError(f"HadoopPath.open supports reading only ('r' or 'rb'), not {mode!r}")
        data = io.BytesIO(self.read_bytes())
        return data if mode == "rb" else io.TextIOWrapper(data, encoding=encoding)

    def unlink(self, missing_ok: bool = False) -> None:
        fs, jpath, status = self._status()
        if status is None:
            if missing_ok:
                return
            raise FileNotFoundError(f"{self._url} does not exist")
        if status.isDirectory():
            raise IsADirectoryError(f"{self._url} is a folder (storage.remove_tree deletes folders)")
        fs.delete(jpath, False)

    def size(self) -> int:
        """The file's length in bytes."""
        status = self._status()[2]
        if status is None:
            raise FileNotFoundError(f"{self._url} does not exist")
        return status.getLen()


Zone = Union[Path, HadoopPath]


def _same_bytes(src: Path, dest: Zone) -> bool:
    """Whether the landed file `dest` holds exactly local file `src`'s bytes (sizes first)."""
    if isinstance(dest, Path):
        return filecmp.cmp(src, dest, shallow=False)
    return dest.size() == src.stat().st_size and dest.read_bytes() == src.read_bytes()


def atomic_copy(src: Path, dest: Zone) -> bool:
    """Land local file `src` at `dest` atomically; False when the same bytes are already there.

    The file is written under a hidden name (Spark's file source skips names starting with
    ``.``) and then renamed into place, so a running stream never reads half a file. A file
    already landed with other content is an error: the stream has read it once and would
    never read the new bytes. On object stores a rename is a server-side copy, still never
    visible half-written.
    """
    src = Path(src)
    if dest.exists():
        if _same_bytes(src, dest):
            return False
        raise FileExistsError(
            f"{dest} was already landed with different content; clean the environment "
            "(`sbit clean`) before landing a changed file")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
    try:
        if isinstance(dest, Path):
            shutil.copyfile(src, tmp)
            os.replace(tmp, dest)
        else:
            jvm, fs, jtmp = tmp._fs()
            # "file://" + the path as it is: Hadoop's Path takes names unescaped (as_uri()'s
            # "%20" would name a file "%20").
            local = jvm.org.apache.hadoop.fs.Path(f"file://{src.resolve().as_posix()}")
            fs.copyFromLocalFile(False, True, local, jtmp)
            # Whether a rename replaces an existing file depends on the file system (HDFS and
            # the object stores' connectors refuse, the local one replaces): exists() above
            # is the check, and a refused rename is looked at again here.
            if not fs.rename(jtmp, dest._fs()[2]):
                if dest.exists() and _same_bytes(src, dest):
                    return False                       # someone landed the same file meanwhile
                raise StorageError(f"could not rename {tmp} to {dest}")
    finally:
        tmp.unlink(missing_ok=True)
    return True


def remove_tree(path: Zone) -> bool:
    """Delete a folder and everything below it; False when there was nothing."""
    if isinstance(path, Path):
        if not path.exists():
            return False
        shutil.rmtree(path)
        return True
    _, fs, jpath = path._fs()
    return bool(fs.delete(jpath, True))


def remove_if_empty(path: Zone) -> bool:
    """Delete a folder if nothing is in it; False when it is missing or holds something."""
    if not path.is_dir() or next(iter(path.iterdir()), None) is not None:
        return False
    if isinstance(path, Path):
        path.rmdir()
        return True
    _, fs, jpath = path._fs()
    return bool(fs.delete(jpath, False))


__all__ = ["HadoopPath", "StorageError", "Zone", "as_zone", "atomic_copy", "is_url", "remove_if_empty",
           "remove_tree"]
