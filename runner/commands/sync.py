"""The `sync` command: each vector store the manifest names ends holding exactly the manifest's
files for it (SPEC "sync"); the algorithm is runner/sync/.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence

from runner.commands.common import load_index, prepare
from runner.commands.sync_dry_run import show_sync_plan
from runner.config import Settings, load_api_key
from runner.console import Io
from runner.errors import UsageError, register_secret, scrub_secrets
from runner.log.lock import RunLock
from runner.log.reader import check_log
from runner.requests.targets import VectorStoreFiles
from runner.sync.execute import Sync
from runner.sync.plan import store_plans


def sync(settings: Settings, io: Io, argv: Sequence[str]) -> int:
    """`attach-runner sync`: list, plan, add and update, then detach (or show the plan)."""
    target, source, stats = prepare(settings, io)
    if not isinstance(target, VectorStoreFiles):
        raise UsageError(f"{source.display}: sync is for vector stores, and this manifest is "
                         "for assistants; use `attach-runner run` or `attach-runner detach`")
    key = load_api_key(settings, os.environ)
    register_secret(key.reveal())
    argv = [scrub_secrets(arg) for arg in argv]
    if settings.dry_run:
        # SPEC: list requests only (so the key), no lock, no log written.
        index = load_index(settings, target, io)
        return asyncio.run(show_sync_plan(settings, io, target, stats, key, index,
                                   store_plans(source, target), source.display))
    check_log(settings.log)
    lock = RunLock(settings.log)
    lock.acquire()
    try:
        index = load_index(settings, target, io)
        index.expect_repeats = False  # sync plans from its own map of the manifest
        job = Sync(settings, io, target, index, store_plans(source, target), stats, source)
        return asyncio.run(job.execute(key, source.display, argv))
    finally:
        lock.release()
