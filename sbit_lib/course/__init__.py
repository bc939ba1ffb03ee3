"""The course's pipeline, in the course's order and with the course's class names.

Read top to bottom: ``config`` (Config) → ``tables`` (every table's DDL) → ``catalog``
(get_spark, tables registered by location) → ``setup_helper`` (SetupHelper) → ``history``
(HistoryLoader) → ``producer`` (Producer) → ``streaming`` (how every query is started) →
``bronze`` (Bronze) → ``upserter`` (Upserter, CDCUpserter) → ``silver`` (Silver) →
``gold`` (Gold) → ``run`` (the course's 07-run).
"""
