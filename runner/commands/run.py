"""The `run` and `detach` commands: read the manifest and the log, take the lock, and send every
pair the log does not show done through the engine, with the operation the command names."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Sequence

from runner.commands.common import (
    check_source,
    close_log,
    holding_the_lock,
    load_index,
    manifest_parts,
    open_source,
    prepare,
    print_end,
    progress_for,
    remembers_every_pair,
    resume_due_in,
    run_end_counts,
    run_error,
)
from runner.commands.dry_run import show_run_plan
from runner.config import ApiKey, Settings, load_api_key
from runner.console import Io
from runner.errors import (
    register_secret,
    scrub_secrets,
)
from runner.log.reader import check_log, log_identity
from runner.log.resume import ResumeIndex
from runner.log.writer import ResultLog
from runner.manifest import (
    KeptParts,
    ManifestSource,
    ManifestStats,
)
from runner.operations.attach import Attach
from runner.operations.base import Operation
from runner.requests.targets import Target
from runner.run.engine import Engine
from runner.run.leftovers import Leftovers
from runner.run.session import api_session
from runner.run.summary import (
    build_summary,
)
from runner.run.tally import exit_code_for
from runner.run.work import block_settles, block_vouches


def run(settings: Settings, io: Io, argv: Sequence[str]) -> int:
    """`attach-runner run`: attach every pair (and converge its attributes)."""
    return send(settings, io, argv, Attach)


def send(settings: Settings, io: Io, argv: Sequence[str], operation: type[Operation]) -> int:
    """Do `operation` to every pair the log does not show done (or show the plan, --dry-run)."""
    if settings.dry_run:
        return show_run_plan(settings, io, operation)
    if not operation.skips_blocks:
        target, source, stats = prepare(settings, io)
        return _send_locked(settings, io, argv, operation, target, source, stats)
    # The log is read before the manifest is checked, so that the check, reading every row
    # anyway, also finds the blocks the log has all done: the run passes over them unread (a
    # converged rerun reads its manifest once). The rest the check keeps beside the log, for
    # the run to take from there (a fresh run reads its manifest once too). The lock is taken
    # after the check, as for every command (a bad manifest leaves no lock file), and the log
    # read again under it if another run wrote to it meanwhile.
    target, source, said_on = open_source(settings)
    check_log(settings.log)
    log_seen = log_identity(settings.log)
    index = load_index(settings, target, io)
    with KeptParts.beside(os.path.dirname(os.path.abspath(settings.log))) as kept:
        stats = check_source(settings, io, target, source, said_on, block_settles(index),
                             block_vouches(index), keep=kept)
        return _send_locked(settings, io, argv, operation, target, source, stats, index,
                            log_seen)


def _send_locked(settings: Settings, io: Io, argv: Sequence[str], operation: type[Operation],
                 target: Target, source: ManifestSource, stats: ManifestStats,
                 index: ResumeIndex | None = None,
                 log_seen: tuple[int, int, int] | None = None) -> int:
    """The run under the lock. `index`: the log as the check read it (`log_seen`: its
    identity then), None when the check did not read it."""
    key = load_api_key(settings, os.environ)
    register_secret(key.reveal())
    with holding_the_lock(settings):
        if index is None or log_identity(settings.log) != log_seen:
            index = load_index(settings, target, io)
            stats.forget_settled()
        index.expect_repeats = remembers_every_pair(stats, index)
        if index.uploads.claimed:  # and so every pair is met, none passed over in a block
            stats.forget_settled()
        # The command line is echoed as the "next:" command: never with the key in it.
        argv = [scrub_secrets(arg) for arg in argv]
        return asyncio.run(execute(settings, io, argv, target, source, stats, index, key,
                                   operation))


async def execute(settings: Settings, io: Io, argv: Sequence[str], target: Target,
                  source: ManifestSource, stats: ManifestStats, index: ResumeIndex,
                  key: ApiKey, operation: type[Operation] = Attach) -> int:
    """The run itself, with the lock held and the log read."""
    due_in = resume_due_in(settings)  # before this run writes its first line
    engine: Engine | None = None
    leftovers: Leftovers | None = None
    log = ResultLog(settings.log, uuid.uuid4().hex[:12])
    log.open()
    try:
        log.append_run_start(manifest=source.display, target=target.name, items=stats.pairs)
        # Progress is on stderr, so it stays with --json; --quiet and --no-progress drop it.
        progress = progress_for(settings, io, stats.pairs)
        try:
            async with api_session(settings, target, stats, key) as (sender, limiter):
                engine = Engine(
                    parts=manifest_parts(source, target, stats), settled=stats.settled,
                    pairs=stats.pairs, index=index, log=log,
                    sender=sender, owner_column=target.owner_column,
                    concurrency=settings.concurrency, batch_size=settings.batch_size,
                    retry_failed=settings.retry_failed, max_runtime=settings.max_runtime,
                    on_progress=progress, resume_due_in=due_in,
                    operation=operation(sender), keep_files=settings.keep_files)
                result = await engine.run()
                if (engine.local is not None and index.expect_repeats and result.stop is None
                        and result.refusal is None and engine.log_error is None
                        and (index.uploads.claimed or index.versions.superseded)):
                    leftovers = Leftovers(settings, engine.local.uploads, index=index,
                                          log=log, sender=sender,
                                          owner_column=target.owner_column,
                                          started=engine.started, due_in=due_in)
                    await leftovers.finish()
                    result = leftovers.merged(result)
                    engine.log_error = engine.log_error or leftovers.log_error
        finally:
            # Before anything else is printed: the bar ends on its own line, cursor shown.
            if progress is not None:
                progress.close()
        code = exit_code_for(result)
        error = run_error(result, settings, key, target, sender, engine)
        summary = build_summary(
            result, sender.counters, target=target.name, manifest=source.display,
            log=settings.log, rpm=settings.rpm, learned_rpm=limiter.rate, exit_code=code,
            argv=argv, error=error, run_id=log.run_id, op=engine.operation.name,
            uploads=engine.local.uploads.counts if engine.local is not None else None)
        if engine.log_error is None:
            log.append_run_end(counts=run_end_counts(summary),
                               interrupted=summary["interrupted"], exit_code=code)
    finally:
        close_log(log, engine)
    print_end(settings, io, summary, sender, error,
              fatal=result.refusal is not None or engine.log_error is not None)
    return code
