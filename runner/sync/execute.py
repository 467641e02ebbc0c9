"""One sync run: each vector store the manifest names ends holding exactly the manifest's files
for it, with the manifest's attributes (SPEC "sync"). rclone's `sync` is the model: `run` is
its `copy`. The command around it (key, lock, the log's ends, the summary) is
runner/commands/sync.py; this is the algorithm, and it never imports the commands.

A sync is three steps over one log, under one lock:
1. list every named store (runner/sync/listing.py) and plan each: the store's sets, what to
   add, update, check and detach (runner/sync/plan.py);
2. add what is missing and update attributes that differ: the attach operation, with the
   plan coming from the listing instead of the log (`ListedAttach`), under every rule of `run`
   (rate, per-store limit, batches, retries, breaker, settle rule);
3. then, only in stores where every add and update of this run succeeded, and only if the
   guard allows (2 x detaches > listed stops the run, exit 4, or `--max-delete N`), detach the
   files the manifest does not list (`ListedDetach`). An add refused because the store is full
   lets that store's detaches go first; the refused adds are sent again after them.
Steps 2 and 3 are runner/sync/phases.py.

Stores the manifest does not name are never written to: every write goes to a store of
`plans`, and plans are made only from the manifest. A pair of the manifest is never detached:
detaches are made only from listed files whose id the store's manifest pairs do not hold.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from runner.config import Settings
from runner.console import Io
from runner.log.resume import ResumeIndex
from runner.log.writer import ResultLog
from runner.manifest import ManifestSource, ManifestStats, iter_items
from runner.operations.upload import UploadCounts
from runner.requests.outcomes import RunRefused
from runner.requests.sender import Sender
from runner.requests.targets import Target
from runner.run.engine import Engine
from runner.run.progress import Progress
from runner.run.tally import RunResult, Tally
from runner.sync.listing import list_named_stores
from runner.sync.phases import Phases
from runner.sync.plan import StorePlan, read_writes
from runner.sync.store import CHUNKING_EXAMPLES


@dataclass
class SyncResult:
    """How a sync ended, for its exit code, error line and summary (runner/commands/sync.py)."""

    plans: list[StorePlan]  # each store's sets and result
    tally: Tally  # the manifest's pairs (adds, updates, checks, in place)
    detach_tally: Tally  # the extras' detaches
    stop: str | None  # None | "SIGINT" | "SIGTERM" | "max-runtime" | "refused" | "guard"
    refusal: RunRefused | None
    guard: list[str]  # what stopped the run before its first detach (SPEC's guard)
    log_error: str | None  # the log could not be written: the run stopped at once
    engine: Engine | None  # the last phase's engine; None when no phase ran
    uploads: UploadCounts | None = None  # local files: uploads, replaces, deletes

    def run_result(self, elapsed: float) -> RunResult:
        """The pairs' tally and how the run ended, as run's summary and exit code read them
        (the guard is not a stop of the engine: sync's exit code says it)."""
        stop = self.stop if self.stop != "guard" else None
        return RunResult(self.tally, stop, self.refusal, elapsed)


async def run_sync(settings: Settings, io: Io, target: Target, source: ManifestSource,
                   stats: ManifestStats, index: ResumeIndex, plans: list[StorePlan], *,
                   sender: Sender, log: ResultLog, progress: Callable[[int], Progress | None],
                   due_in: float, started: float) -> SyncResult:
    """List, plan, write, with the log open and the session up. `due_in`: seconds from
    `started` (the loop's clock) before a pair an earlier run left unsettled may be checked;
    `progress`: a bar for a phase of so many pairs."""
    loop = asyncio.get_running_loop()
    stop, refusal = await list_named_stores(settings, io, sender, plans)
    counters = sender.counters
    for plan in plans:
        plan.plan(index, retry_failed=settings.retry_failed)
        counters.chunking_mismatch += plan.listing.chunking_mismatch
        counters.chunking_examples += plan.listing.chunking_examples
    del counters.chunking_examples[CHUNKING_EXAMPLES:]
    if stop is None and any(plan.sets.writes for plan in plans):
        read_writes({plan.store: plan for plan in plans},
                    iter_items(source, target.owner_column, target.group_key), source.display)
    phases = Phases(settings, plans, index=index, log=log, sender=sender,
                    owner_column=target.owner_column, progress=progress,
                    due_in=due_in - (loop.time() - started), started=started)
    if stop is None:
        await phases.run()
        stop, refusal = phases.stop, phases.refusal
    final_tally(phases.tally, plans, stats)
    return SyncResult(plans, phases.tally, phases.detach_tally, stop, refusal, phases.guard,
                      phases.log_error, phases.engine,
                      phases.uploads.counts if phases.uploads is not None else None)


def final_tally(tally: Tally, plans: Sequence[StorePlan], stats: ManifestStats) -> None:
    """Complete the manifest pairs' tally: pairs the listing found in place and the log
    already knew, pairs refused earlier, and every pair of a store that could not be listed
    (failed, with the listing's error)."""
    tally.pairs = stats.pairs
    tally.duplicates = stats.duplicates
    for plan in plans:
        sets = plan.sets
        tally.done_earlier += sets.in_place - len(sets.to_record)
        tally.refused_earlier += sets.refused_earlier
        unlisted = plan.unlisted_failed
        if plan.listing.error is not None and unlisted:
            status, error = plan.listing.error
            tally.fail(status, error, unlisted)
