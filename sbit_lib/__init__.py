"""sbit_lib: the SBIT streaming lakehouse (bronze, silver, gold on Delta Lake) on local Spark."""

__version__ = "0.1.0"
