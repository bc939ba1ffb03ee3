"""What runs the course for you: the ``sbit`` command line (``cli``), the stream job
(``job``), the batch and stream tests (``batch_test``, ``stream_test``), the fault test
(``fault``: runs killed with SIGKILL at random moments, run again, compared), a local standalone
cluster (``cluster``), the benchmark (``bench``) and the class-data archive's training run
(``cds``)."""
