"""The commands: one module a command (run, detach, sync, validate, status, failed, demo, and the
dry runs), each turning resolved Settings into an exit code, over the shared helpers of
`common.py`.

The top of the house: only runner.cli imports it, and it may import every room below.
"""
