"""What is done to one pair: the Operation interface and each operation (attach, update,
detach), file batches and store listings; each is built by its operation and sends through
the request layer (runner.requests).

May import: requests, pacing, log, manifest, config and the core modules. Never run, sync or
commands.
"""
