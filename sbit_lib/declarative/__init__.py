"""The SBIT pipeline as a Spark Declarative Pipeline (``pyspark.pipelines``): notebook 11.

* ``spark-pipeline.yml`` -- the pipeline spec, as ``spark-pipelines init`` makes one;
* ``transformations/`` -- the definitions: bronze streaming tables, silver and gold
  materialized views (files the pipeline runner imports, not modules of this package);
* :mod:`sbit_lib.declarative.runner` -- ``sbit declarative run``: a Spark Connect session
  with this project's settings, the graph, the run and its events.
"""
