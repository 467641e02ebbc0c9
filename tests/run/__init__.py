"""The run (runner/run): end to end, under trouble, the settle rule, a log that cannot be
written."""
