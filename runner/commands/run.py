"""The commands behind the CLI: run, validate, status, failed, demo. Each takes resolved
Settings and returns an exit code; errors are raised as RunnerError for cli.main to print."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import os
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TextIO

from runner.config import ApiKey, Settings, check_for_target, load_api_key
from runner.errors import LogError, UsageError, one_line, register_secret, scrub_secrets
from runner.items import Item
from runner.log.lock import RunLock
from runner.log.reader import check_log, last_timestamp
from runner.log.resume import ResumeIndex
from runner.log.writer import ResultLog
from runner.manifest import (
    Block,
    ManifestSource,
    ManifestStats,
    check_manifest,
    detect_target,
    iter_blocks,
    iter_items,
    open_manifest,
)
from runner.operations.base import Attach, Operation
from runner.operations.detach import Detacher, refuse_detach_rows
from runner.pacing.limiter import RateLimiter
from runner.pacing.store_limiter import KeyedLimiter
from runner.requests.client import ApiClient
from runner.requests.sender import Attempter, Breaker
from runner.requests.targets import Target, get_target
from runner.run.engine import Engine, RunResult
from runner.run.progress import Progress, is_terminal
from runner.run.summary import (
    build_summary,
    format_summary,
    refusal_line,
)

EXIT_OK, EXIT_FAILED, EXIT_REFUSED, EXIT_RUNTIME = 0, 1, 4, 5
SIGNAL_EXITS = {"SIGINT": 130, "SIGTERM": 143}


@dataclass
class Io:
    out: TextIO
    err: TextIO
    # `run` with --json, once the settings are known (the flag, ATTACH_RUNNER_*, or `json: true`
    # in a config file): exits 2 and 3 then print {"exit", "error"}. None: not known yet.
    json: bool | None = None

    def warn(self, message: str) -> None:
        self.err.write(f"attach-runner: warning: {one_line(message)}\n")
        self.err.flush()


def prepare(settings: Settings, io: Io) -> tuple[Target, ManifestSource, ManifestStats]:
    """Open the manifest, settle the target and check the whole manifest before anything is
    sent (ManifestError, UsageError: exit 2)."""
    source = open_manifest(settings.manifest, settings.format)
    target, said_on = resolve_target(settings, source)
    check_for_target(settings, target.name)
    stats = check_manifest(source, target.owner_column, target.group_key, said_on=said_on)
    if settings.command == "run":
        refuse_detach_rows(source)
    if stats.duplicates:
        io.warn(f"{source.display}: {stats.duplicates} repeated pair(s) in the manifest; "
                f"each pair is {'detached' if settings.command == 'detach' else 'attached'} "
                "once")
    return target, source, stats


def resolve_target(settings: Settings, source: ManifestSource) -> tuple[Target, int | None]:
    """The target the manifest names (SPEC "Which target"), and the line that names it; the
    one --target or `target:` gives where the manifest cannot say. One that contradicts the
    manifest is refused, naming both."""
    detected = detect_target(source)
    given = settings.target
    if detected is None:
        # Nothing names an owner: an empty manifest (any target reads it as empty), or one
        # whose rows the check refuses anyway; vector stores are what is left to attach to.
        return get_target(given or "vector-store-files"), None
    said = detected.target
    if given is not None and given != said:
        if settings.sources.get("target") == "config":
            where = settings.named("target").rsplit(": ", 1)[0]
            named, drop = f"target: {given} in {where}", "remove target: from the config file"
        else:
            named, drop = f"--target {given}", "drop --target"
        raise UsageError(f"{source.display}:{detected.line}: {detected.said}, so the manifest "
                         f"is for {said}, but {named} says otherwise; {drop} (the manifest "
                         f"says which), or give a manifest for {given}")
    return get_target(said), detected.line


def load_index(settings: Settings, target: Target, io: Io) -> ResumeIndex:
    index = ResumeIndex(target.owner_column)
    index.load_log(settings.log, warn=io.warn)
    # The index lives as long as the run and holds no cycles: keep the collector from
    # walking it again and again while the plan and the run allocate (a rerun of a million
    # done pairs spent ~0.1 s there).
    gc.freeze()
    return index


def manifest_items(source: ManifestSource, target: Target) -> Callable[[], Iterator[Item]]:
    return lambda: iter_items(source, target.owner_column, target.group_key)


def manifest_parts(source: ManifestSource, target: Target) -> Callable[[], Iterator[Block | Item]]:
    """What run and dry-run plan from: the manifest with its fast-path blocks left whole."""
    return lambda: iter_blocks(source, target.owner_column, target.group_key)


# --- validate ---------------------------------------------------------------------------------

def validate(settings: Settings, io: Io) -> int:
    target, source, stats = prepare(settings, io)
    noun = "assistants" if target.owner_column == "assistant_id" else "vector stores"
    said = "--target" if settings.target is not None else "from the manifest"
    io.out.write(f"{source.display}: OK ({source.format}, {target.name}, {said})\n")
    io.out.write(f"  pairs: {stats.pairs}  (rows {stats.rows}, repeated {stats.duplicates})\n")
    io.out.write(f"  {noun}: {stats.owners}\n")
    if stats.max_files_owner is not None:
        io.out.write(f"  most files for one: {stats.max_files} ({stats.max_files_owner})\n")
    if target.owner_column == "assistant_id":
        for owner, n in stats.owners_over:
            io.warn(f"{source.display}: assistant {owner} gets {n} files; Assistants v1 allows "
                    "at most 20 per assistant, so the rest will be refused")
    return EXIT_OK


# --- run --------------------------------------------------------------------------------------

EXIT_USAGE = 2


def operation_class(settings: Settings) -> type[Operation]:
    """The run's operation, chosen by the command: `detach` detaches, `run` attaches."""
    return Detacher if settings.command == "detach" else Attach


def exit_code_for(result: RunResult) -> int:
    if result.stop == "log-write":  # SPEC: 2 wins over everything but 70
        return EXIT_USAGE
    if result.refusal is not None:
        return EXIT_REFUSED
    if result.stop in SIGNAL_EXITS:
        return SIGNAL_EXITS[result.stop]
    if result.stop == "max-runtime":
        return EXIT_RUNTIME
    tally = result.tally
    return EXIT_OK if not (tally.failed or tally.refused_earlier or tally.pending) else EXIT_FAILED


def run(settings: Settings, io: Io, argv: Sequence[str]) -> int:
    if settings.dry_run:
        from runner.commands.dry_run import dry_run

        return dry_run(settings, io)
    target, source, stats = prepare(settings, io)
    key = load_api_key(settings, os.environ)
    register_secret(key.reveal())
    check_log(settings.log)  # a wrong --log is refused before a lock file is made beside it
    lock = RunLock(settings.log)
    lock.acquire()
    try:
        index = load_index(settings, target, io)
        # The check counted no repeated pair: the run need not remember each pair it meets.
        index.expect_repeats = stats.duplicates > 0
        # The command line is echoed as the "next:" command: never with the key in it.
        argv = [scrub_secrets(arg) for arg in argv]
        return asyncio.run(execute(settings, io, argv, target, source, stats, index, key))
    finally:
        lock.release()


def resume_due_in(settings: Settings) -> float:
    """Seconds from now before a pair an earlier run left uncertain may be checked (SPEC's
    settle rule: no sooner than --settle after the client stopped waiting for its write).
    The log's last line bounds that moment: a run that ended normally (`run-end`) had given
    up on every write before writing it; a run that was killed may have sent a write just
    before its last line and waited up to --timeout for it. So a nightly rerun never waits,
    and a rerun straight after a kill waits at most --timeout + --settle for those checks
    (its other work goes on meanwhile)."""
    last = last_timestamp(settings.log)
    if last is None:
        return 0.0
    when, ended = last
    waited = 0.0 if ended else settings.timeout
    return max(0.0, when + waited + settings.settle - time.time())


async def execute(settings: Settings, io: Io, argv: Sequence[str], target: Target,
                  source: ManifestSource, stats: ManifestStats, index: ResumeIndex,
                  key: ApiKey) -> int:
    """The run itself, with the lock held and the log read."""
    due_in = resume_due_in(settings)  # before this run writes its first line
    engine: Engine | None = None
    log = ResultLog(settings.log, uuid.uuid4().hex[:12])
    log.open()
    try:
        log.append("run-start", manifest=source.display, target=target.name, items=stats.pairs)
        # Progress is on stderr, so it stays with --json; --quiet and --no-progress drop it.
        progress = progress_for(settings, io, stats.pairs)
        try:
            async with api_session(settings, target, stats, key) as (attempter, limiter):
                engine = Engine(
                    parts=manifest_parts(source, target),
                    pairs=stats.pairs, index=index, log=log,
                    attempter=attempter, owner_column=target.owner_column,
                    concurrency=settings.concurrency, batch_size=settings.batch_size,
                    retry_failed=settings.retry_failed, max_runtime=settings.max_runtime,
                    on_progress=progress, resume_due_in=due_in,
                    operation=operation_class(settings)(attempter))
                result = await engine.run()
        finally:
            # Before anything else is printed: the bar ends on its own line, cursor shown.
            if progress is not None:
                progress.close()
        code = exit_code_for(result)
        error = run_error(result, settings, key, target, attempter, engine)
        summary = build_summary(
            result, attempter.counters, target=target.name, manifest=source.display,
            log=settings.log, rpm=settings.rpm, learned_rpm=limiter.rate, exit_code=code,
            argv=argv, error=error, run_id=log.run_id, op=engine.operation.name)
        if engine.log_error is None:
            log.append("run-end", counts=run_end_counts(summary),
                       interrupted=summary["interrupted"], exit=code)
    finally:
        close_log(log, engine)
    print_end(settings, io, summary, attempter, error,
              fatal=result.refusal is not None or engine.log_error is not None)
    return code


def progress_for(settings: Settings, io: Io, total: int) -> Progress | None:
    return (None if settings.quiet or settings.no_progress
            else Progress(total, io.err, tty=is_terminal(io.err)))


@contextlib.asynccontextmanager
async def api_session(settings: Settings, target: Target, stats: ManifestStats,
                      key: ApiKey) -> AsyncIterator[tuple[Attempter, RateLimiter]]:
    """The client, limiters and attempter of one sending command."""
    limiter = RateLimiter(settings.rpm, auto=settings.rpm is None)
    store_limiter = KeyedLimiter(settings.store_rpm) if target.supports_batches else None
    async with ApiClient(settings.base_url, api_key=key.reveal(),
                         beta_header=target.beta_header, org=settings.org,
                         project=settings.project, concurrency=settings.concurrency,
                         timeout=settings.timeout) as client:
        yield Attempter(
            client, target, limiter=limiter, store_limiter=store_limiter,
            max_attempts=settings.max_attempts, backoff_initial=settings.backoff_initial,
            backoff_max=settings.backoff_max, wait=settings.wait,
            wait_timeout=settings.wait_timeout,
            breaker=Breaker(manifest_owners=stats.owners), settle=settings.settle), limiter


def run_error(result: RunResult, settings: Settings, key: ApiKey, target: Target,
              attempter: Attempter, engine: Engine) -> str | None:
    """The run's one-line error (`--json`'s `error`), if it stopped early."""
    error = (refusal_message(result, key, target, attempter, engine.operation.name)
             if result.refusal else None)
    if result.stop in SIGNAL_EXITS or result.stop == "max-runtime":
        error = (f"stopped by {result.stop}" if result.stop != "max-runtime"
                 else f"stopped at --max-runtime {settings.max_runtime:g}s")
    if engine.log_error is not None:
        error = f"{engine.log_error}; the run stopped sending at once"
    return error


RUN_END_COUNTS = ("pairs", "attached", "already_attached", "updated", "detached",
                  "already_detached", "failed", "update_requests", "attached_earlier",
                  "detached_earlier", "refused_earlier", "pending", "duplicates", "requests",
                  "checks", "retries", "throttled", "uncertain")


def run_end_counts(summary: dict[str, Any]) -> dict[str, Any]:
    return {k: summary[k] for k in RUN_END_COUNTS}


def close_log(log: ResultLog, engine: Engine | None) -> None:
    """Close the log; a failure to is an error unless the run already stopped for one."""
    try:
        log.close()
    except LogError:
        if engine is None or engine.log_error is None:
            raise


def print_end(settings: Settings, io: Io, summary: dict[str, Any], attempter: Attempter,
              error: str | None, *, fatal: bool, more: str = "") -> None:
    """The error or warning line, the run's warnings, then the summary (text or JSON)."""
    if error and fatal:
        io.err.write(f"attach-runner: error: {error}\n")
    elif error:
        io.warn(f"{error}; run the same command again to finish")
    if summary["still_in_progress"]:
        # On stderr, so --quiet and --json keep it (SPEC: "counts as attached, with a warning").
        io.warn(f"{summary['still_in_progress']} file(s) were still processing when "
                f"--wait-timeout {settings.wait_timeout:g}s ran out; counted as attached")
    if summary["chunking_mismatch"]:
        # On stderr too, so --quiet and --json keep it (SPEC: a warning, not a re-add).
        examples = ", ".join(attempter.counters.chunking_examples)
        shown = f" (e.g. {examples})" if examples else ""
        io.warn(f"{summary['chunking_mismatch']} file(s) are in their store with another "
                f"chunking strategy than the manifest's{shown}; chunking cannot "
                "change in place: detach and add them again to change it")
    if settings.json:
        io.out.write(json.dumps(summary) + "\n")
    elif not settings.quiet:
        io.out.write(format_summary(summary) + "\n" + (more + "\n" if more else ""))
    io.out.flush()


def refusal_message(result: RunResult, key: ApiKey, target: Target,
                     attempter: Attempter, engine_op: str = "attach") -> str:
    refusal = result.refusal
    assert refusal is not None
    breaker = attempter.breaker
    signature = " ".join(str(x) for x in breaker.signature or () if x is not None)
    return refusal_line(
        refusal.kind, key_source=key.source, other_target=target.other_target,
        size=breaker.size, signature=signature or "?", owners=len(breaker.owners),
        op=engine_op,
        detail=refusal.error.message if refusal.error else "")


def stdout_io() -> Io:
    return Io(out=sys.stdout, err=sys.stderr)
