"""A run: the engine (workers, signals, --max-runtime, run-start/run-end), its units of work,
the settle rule's waiting room, the tally, progress and the summary.

May import: operations, requests, pacing, log, manifest, config and the core modules. Never
sync or commands.
"""
