"""The `sync` command: each vector store the manifest names ends holding exactly the manifest's
files for it (SPEC "sync"). This is the front, as `run`'s: settings, the key, the lock, the
log's first and last lines, the API session, the exit code and what is printed at the end; the
algorithm (list, plan, the phases) is runner/sync/.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Sequence

from runner.commands.common import (
    close_log,
    holding_the_lock,
    load_index,
    prepare,
    print_end,
    progress_for,
    resume_due_in,
    run_end_counts,
    run_error,
)
from runner.commands.sync_dry_run import show_sync_plan
from runner.config import ApiKey, Settings, load_api_key
from runner.console import Io
from runner.errors import UsageError, register_secret, scrub_secrets
from runner.log.resume import ResumeIndex
from runner.log.writer import ResultLog
from runner.manifest import ManifestSource, ManifestStats
from runner.requests.sender import Sender
from runner.requests.targets import Target, VectorStoreFiles
from runner.run.session import api_session
from runner.run.summary import build_summary
from runner.run.tally import RunResult, exit_code_for
from runner.sync.execute import SyncResult, run_sync
from runner.sync.plan import StorePlan, store_plans
from runner.sync.report import (
    add_sync_fields,
    guard_error,
    refusal_text,
    store_lines,
    sync_exit_code,
)


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
                                   store_plans(source, target, index), source.display))
    with holding_the_lock(settings):
        index = load_index(settings, target, io)
        index.expect_repeats = False  # sync plans from its own map of the manifest
        return asyncio.run(execute(settings, io, argv, target, source, stats, index,
                                   store_plans(source, target, index), key))


async def execute(settings: Settings, io: Io, argv: Sequence[str], target: Target,
                  source: ManifestSource, stats: ManifestStats, index: ResumeIndex,
                  plans: list[StorePlan], key: ApiKey) -> int:
    """The sync itself, with the lock held and the log read."""
    due_in = resume_due_in(settings)  # before this run writes its first line
    log = ResultLog(settings.log, uuid.uuid4().hex[:12])
    log.open()
    synced: SyncResult | None = None
    loop = asyncio.get_running_loop()
    started = loop.time()
    try:
        log.append_run_start(manifest=source.display, target=target.name, items=stats.pairs,
                             op="sync")
        async with api_session(settings, target, stats, key) as (sender, limiter):
            synced = await run_sync(
                settings, io, target, source, stats, index, plans, sender=sender, log=log,
                progress=lambda pairs: progress_for(settings, io, pairs), due_in=due_in,
                started=started)
        result = synced.run_result(loop.time() - started)
        code = (exit_code_for(result) if synced.log_error is not None
                else sync_exit_code(result, synced.plans, synced.detach_tally, synced.guard))
        error = _error(synced, result, settings, key, target, sender)
        summary = build_summary(
            result, sender.counters, target=target.name, manifest=source.display,
            log=settings.log, rpm=settings.rpm, learned_rpm=limiter.rate, exit_code=code,
            argv=argv, error=error, run_id=log.run_id, op="sync", uploads=synced.uploads)
        add_sync_fields(summary, result.tally, synced.detach_tally, synced.plans,
                        synced.guard, lists=sender.counters.lists, argv=argv)
        if synced.log_error is None:
            log.append_run_end(counts=run_end_counts(summary),
                               interrupted=summary["interrupted"], exit_code=code)
    finally:
        close_log(log, None if synced is None else synced.engine)
    fatal = (synced.refusal is not None or synced.log_error is not None
             or bool(synced.guard))
    print_end(settings, io, summary, sender, error, fatal=fatal,
              more=store_lines(synced.plans))
    return code


def _error(synced: SyncResult, result: RunResult, settings: Settings, key: ApiKey,
           target: Target, sender: Sender) -> str | None:
    """The sync's one-line error (`--json`'s `error`), if it stopped early."""
    if synced.log_error is not None:
        return f"{synced.log_error}; the run stopped sending at once"
    if synced.guard:
        return guard_error(synced.guard)
    if synced.engine is None:
        if result.refusal is not None:  # met while listing
            return refusal_text(result.refusal, key, target)
        if result.stop is not None:
            return f"stopped by {result.stop}"
        return None
    return run_error(result, settings, key, target, sender, synced.engine)
