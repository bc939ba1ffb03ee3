"""What only the notebooks use: ``show`` (a library function's own source, rendered),
``explore`` (counts, checkpoints, catch-up), ``lessons`` (small experiments of the
walkthrough) and ``plots``."""
