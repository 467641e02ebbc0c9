"""sync's core: list every store the manifest names, plan each store (what to add, update,
check and detach), execute the plan through the run's engine, and report (SPEC "sync").

May import: run, operations, requests, pacing, log, manifest, config and the core modules
(items, attributes, errors). Never commands.
"""
