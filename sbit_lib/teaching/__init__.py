"""What only the notebooks use: ``show`` (a library function's own source, rendered),
``explore`` (counts, checkpoints, catch-up), ``lessons`` (the interview
walkthrough's shared set-up: scratch folders, tiny files) and ``plots``."""
