"""The class-data archive's training run (``sbit cds``, run by ``make setup``).

The archive itself (where it lives, when a JVM maps it) is plumbing:
:mod:`sbit_lib.spark.cds`. What it should hold is what the course's processes load, so the
training run is a pipeline run: set-up of a throw-away environment, one small set through
every layer, a stream and a MERGE.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

from sbit_lib.spark import cds

TRAINING = [sys.executable, "-m", "sbit_lib.ops.cds", "--train"]


def build(force: bool = False):
    """Make the archive for this JDK and these jars unless it exists; return its path or None."""
    return cds.build(TRAINING, force=force)


def training_data(folder: Path) -> Path:
    """Set 1's files in `folder`, its heart-rate readings made here and cut to 2,000 (the code
    paths, not the volume). The training run needs nothing `sbit prepare-data` makes, so
    ``make setup`` runs the two side by side."""
    from sbit_lib.course.config import Config
    from sbit_lib.course.history import DATE_LOOKUP_FILE
    from sbit_lib.course.producer import SOURCES
    from sbit_lib.testing import bpm_generator

    source = Config.resolve().test_data
    folder.mkdir(parents=True, exist_ok=True)
    bpm = bpm_generator.bpm_file_name(1)
    for name in [DATE_LOOKUP_FILE, *(s.file_name(1) for s in SOURCES)]:
        if name != bpm:
            shutil.copy(source / name, folder / name)
    (folder / bpm).write_text("\n".join(bpm_generator.set_lines(folder, 1)[:2000]) + "\n")
    return folder


def train() -> None:
    """The training workload: what a notebook or test process typically loads."""
    from sbit_lib.course.catalog import get_spark
    from sbit_lib.course.config import Config
    from sbit_lib.course.producer import Producer
    from sbit_lib.course.run import ensure_setup, run

    home = Path(tempfile.mkdtemp(prefix="sbit-cds-"))
    try:
        config = Config.resolve(environment="cds_training", home=home, test_data=training_data(home / "data"))
        spark = get_spark(config)
        ensure_setup(config, spark)
        Producer(config).produce(1)
        run(config, once=True, spark=spark)
        spark.table(config.qualified("workout_bpm_summary")).toPandas()
        gateway = spark.sparkContext._gateway
        jvm = spark.sparkContext._jvm
        spark.stop()
        # The archive is written when the JVM exits. Left alone, this JVM outlived its
        # Python process by about two minutes after the streams had run, so end it now and
        # wait (the JVM is this process's child) until it has written the archive.
        try:
            jvm.java.lang.System.exit(0)
        except Exception:   # noqa: BLE001 - the JVM exits under the call: the connection drops
            pass
        gateway.proc.wait(timeout=300)
    finally:
        shutil.rmtree(home, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Make the driver JVM's class-data archive (see sbit_lib/spark/cds.py).")
    parser.add_argument("--force", action="store_true", help="make it again even if it exists")
    parser.add_argument("--train", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.train:
        train()
        return 0
    build(force=args.force)
    return 0


if __name__ == "__main__":
    sys.exit(main())
