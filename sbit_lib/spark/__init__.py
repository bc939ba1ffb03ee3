"""How this project runs Spark on a laptop: Java 17/21 (``java``), the Delta jars
(``jars``), the driver's class-data archive (``cds``), the session (``session``), local
folders and Hadoop URLs (``storage``) and the one-run-per-environment lock (``runlock``).
Nothing here knows the course's tables; the course uses it."""
