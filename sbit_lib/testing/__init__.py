"""What checks the course: the spec's tables (``spec``), the independent reference
computation (``reference``: plain Python and pandas over the input files, no Spark, nothing
of ``sbit_lib.course``), the expected results it writes (``expectations``), the validators
the course's classes call (``validation``), and the generated heart-rate data
(``bpm_generator``, ``testdata``)."""
