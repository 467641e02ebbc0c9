"""What the commands share: reading the manifest and the log before a run (prepare, the
target, the resume index) and ending a sending one (its error line, warnings and summary).
"""


from __future__ import annotations

import contextlib
import dataclasses
import gc
import json
import time
from collections.abc import Callable, Iterator
from typing import Any

from runner.config import ApiKey, Settings, check_for_target
from runner.console import Io
from runner.errors import (
    SIGNAL_EXITS,
    LogError,
    UsageError,
)
from runner.items import Item
from runner.log.lock import RunLock
from runner.log.reader import check_log, last_timestamp
from runner.log.resume import ResumeIndex
from runner.log.writer import ResultLog
from runner.manifest import (
    Block,
    KeptParts,
    ManifestSource,
    ManifestStats,
    check_manifest,
    detect_target,
    iter_blocks,
    iter_items,
    open_manifest,
)
from runner.operations.detach import refuse_detach_rows
from runner.requests.sender import Sender
from runner.requests.targets import Target, get_target
from runner.run.engine import Engine
from runner.run.progress import Progress, is_terminal
from runner.run.summary import (
    format_summary,
    refusal_line,
)
from runner.run.tally import RunResult


def prepare(settings: Settings, io: Io) -> tuple[Target, ManifestSource, ManifestStats]:
    """Open the manifest, settle the target and check the whole manifest before anything is
    sent (ManifestError, UsageError: exit 2)."""
    target, source, said_on = open_source(settings)
    return target, source, check_source(settings, io, target, source, said_on)


def open_source(settings: Settings) -> tuple[Target, ManifestSource, int | None]:
    """The manifest opened, its target and the line that names it (see resolve_target)."""
    source = open_manifest(settings.manifest, settings.format)
    if settings.command == "detach":
        source = dataclasses.replace(source, unread_paths=True)
    target, said_on = resolve_target(settings, source)
    check_for_target(settings, target.name)
    return target, source, said_on


def check_source(settings: Settings, io: Io, target: Target, source: ManifestSource,
                 said_on: int | None, settles: Callable[[Block], bool] | None = None,
                 vouches: Callable[[Block], bool] | None = None,
                 keep: KeptParts | None = None) -> ManifestStats:
    """The whole manifest checked (see check_manifest; `settles` and `vouches` with the log
    read first; `keep`, where to keep the parts for the run)."""
    stats = check_manifest(source, target.owner_column, target.group_key, said_on=said_on,
                           settles=settles, vouches=vouches, keep=keep)
    if settings.command == "run":
        refuse_detach_rows(source)
    for note in stats.skipped_notes:
        io.warn(note)
    if stats.duplicates:
        io.warn(f"{source.display}: {stats.duplicates} repeated pair(s) in the manifest; "
                f"each pair is {'detached' if settings.command == 'detach' else 'attached'} "
                "once")
    return stats


def remembers_every_pair(stats: ManifestStats, index: ResumeIndex) -> bool:
    """Whether the run must remember each pair it meets (ResumeIndex.expect_repeats): when
    the check counted repeats; when the manifest has path rows (paths of one content name one
    pair, which only their upload can tell); when the log uploaded files (the run's end deletes
    only what no pair it met names: run/leftovers.py)."""
    return (stats.duplicates > 0 or stats.first_path_line is not None
            or bool(index.uploads.claimed))


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


@contextlib.contextmanager
def holding_the_lock(settings: Settings) -> Iterator[None]:
    """One run per log: the lock on `<log>.lock` for the block. A wrong --log (not ours, a
    link, a directory) is refused first, before a lock file is made beside it."""
    check_log(settings.log)
    with RunLock(settings.log):
        yield


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


def manifest_parts(source: ManifestSource, target: Target,
                   stats: ManifestStats | None = None) -> Callable[[], Iterator[Block | Item]]:
    """What run and dry-run plan from: the manifest with its fast-path blocks left whole, less
    the runs of blocks the check found settled (`stats`, when it had the log); the parts the
    check kept, when it kept them (the manifest is then not read again)."""
    if stats is not None and stats.kept is not None:
        return stats.kept.parts
    skips, identity = (stats.skips, stats.identity) if stats is not None else ({}, None)
    return lambda: iter_blocks(source, target.owner_column, target.group_key, skips, identity)


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


def progress_for(settings: Settings, io: Io, total: int) -> Progress | None:
    return (None if settings.quiet or settings.no_progress
            else Progress(total, io.err, tty=is_terminal(io.err)))


def run_error(result: RunResult, settings: Settings, key: ApiKey, target: Target,
              sender: Sender, engine: Engine) -> str | None:
    """The run's one-line error (`--json`'s `error`), if it stopped early."""
    error = (refusal_message(result, key, target, sender, engine.operation.name)
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


def print_end(settings: Settings, io: Io, summary: dict[str, Any], sender: Sender,
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
        examples = ", ".join(sender.counters.chunking_examples)
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
                     sender: Sender, engine_op: str = "attach") -> str:
    refusal = result.refusal
    assert refusal is not None
    breaker = sender.breaker
    signature = " ".join(str(x) for x in breaker.signature or () if x is not None)
    return refusal_line(
        refusal.kind, key_source=key.source, other_target=target.other_target,
        size=breaker.size, signature=signature or "?", owners=len(breaker.owners),
        op=engine_op,
        detail=refusal.error.message if refusal.error else "")
