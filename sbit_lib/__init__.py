"""sbit_lib: the SBIT streaming lakehouse (bronze, silver, gold on Delta Lake) on local Spark.

Where to start reading (each arrow points one way, no import cycles)::

    course/    the course's pipeline, read top to bottom like the course's classes:
               config, tables, catalog, setup_helper, history, producer, streaming,
               bronze, upserter, silver, gold, run
    spark/     how Spark and Delta start on a laptop: java, jars, class-data archive,
               session, storage (local folders and Hadoop URLs), the run lock
    testing/   what checks the course: spec, reference (independent of course/),
               expectations, validation, heart-rate generator, test data
    teaching/  what only the notebooks use: explore, lessons, plots, show
    ops/       what runs the course for you: cli, the stream job, batch and stream
               tests, cluster, bench, class-data training run

Arrows: ops -> course, teaching -> course, course -> spark, course -> testing
(validation and expected results, for the classes' validate()), testing -> nothing of the
course.
"""

from pathlib import Path

__version__ = "0.1.0"

_PACKAGE_DIR = Path(__file__).resolve().parent
# The project folder when sbit_lib is used from a checkout (editable install);
# otherwise the current directory stands in for it.
PROJECT_ROOT = _PACKAGE_DIR.parent if (_PACKAGE_DIR.parent / "pyproject.toml").exists() else Path.cwd()


class ConfigError(ValueError):
    """A configuration value is invalid; the message names the setting and why."""
