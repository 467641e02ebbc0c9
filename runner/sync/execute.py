"""One sync run: each vector store the manifest names ends holding exactly the manifest's files
for it, with the manifest's attributes (SPEC "sync"). rclone's `sync` is the model: `run` is
its `copy`. The command around it (key, lock, the log's ends, the summary) is
runner/commands/sync.py; this is the algorithm, and it never imports the commands.

A sync is three steps over one log, under one lock:
1. list every named store (runner/sync/listing.py) and plan each (runner/sync/plan.py);
2. add what is missing and update attributes that differ: the attach operation, with the
   plan coming from the listing instead of the log (`ListedAttach`), under every rule of `run`
   (rate, per-store limit, batches, retries, breaker, settle rule);
3. then, only in stores where every add and update of this run succeeded, and only if the
   guard allows (2 x detaches > listed stops the run, exit 4, or `--max-delete N`), detach the
   files the manifest does not list (`ListedDetach`). An add refused because the store is full
   lets that store's detaches go first; the refused adds are sent again after them.

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
from runner.items import Item, pair_key
from runner.log.resume import Plan, ResumeIndex
from runner.log.writer import ResultLog
from runner.manifest import ManifestSource, ManifestStats, iter_items
from runner.operations.attach import Attach
from runner.operations.detach import Detach
from runner.requests.outcomes import Outcome, RunRefused
from runner.requests.sender import Sender
from runner.requests.targets import Target, generic_message
from runner.run.engine import Engine
from runner.run.progress import Progress
from runner.run.tally import RunResult, Tally
from runner.sync.listing import list_named_stores
from runner.sync.phases import (
    ListedAttach,
    ListedDetach,
    guard_breaches,
    is_store_full,
    uncount,
)
from runner.sync.plan import StorePlan, read_writes


def final_tally(tally: Tally, plans: Sequence[StorePlan], stats: ManifestStats) -> None:
    """Complete the manifest pairs' tally: pairs the listing found in place and the log
    already knew, pairs refused earlier, and every pair of a store that could not be listed
    (failed, with the listing's error)."""
    tally.pairs = stats.pairs
    tally.duplicates = stats.duplicates
    for plan in plans:
        tally.done_earlier += plan.in_place - len(plan.to_record)
        tally.refused_earlier += plan.refused_earlier
        if plan.listing_error is not None and plan.unlisted_failed:
            status, error = plan.listing_error
            tally.failed += plan.unlisted_failed
            reason = (status, error.code, generic_message(error.message))
            tally.failed_reasons[reason] = (tally.failed_reasons.get(reason, 0)
                                            + plan.unlisted_failed)


@dataclass
class SyncResult:
    """How a sync ended, for its exit code, error line and summary (runner/commands/sync.py)."""

    plans: list[StorePlan]
    tally: Tally  # the manifest's pairs (adds, updates, checks, in place)
    detach_tally: Tally  # the extras' detaches
    stop: str | None  # None | "SIGINT" | "SIGTERM" | "max-runtime" | "refused" | "guard"
    refusal: RunRefused | None
    guard: list[str]  # what stopped the run before its first detach (SPEC's guard)
    log_error: str | None  # the log could not be written: the run stopped at once
    engine: Engine | None  # the last phase's engine; None when no phase ran

    def run_result(self, elapsed: float) -> RunResult:
        """The pairs' tally and how the run ended, as run's summary and exit code read them
        (the guard is not a stop of the engine: sync's exit code says it)."""
        stop = self.stop if self.stop != "guard" else None
        return RunResult(self.tally, stop, self.refusal, elapsed)


class Sync:
    """One sync run, the log open and the session up: listing, adds and updates, then the guard
    and the detaches."""

    def __init__(self, settings: Settings, io: Io, target: Target, index: ResumeIndex,
                 plans: list[StorePlan], stats: ManifestStats, source: ManifestSource, *,
                 sender: Sender, log: ResultLog,
                 progress: Callable[[int], Progress | None]) -> None:
        self.settings = settings
        self.source = source
        self.io = io
        self.target = target
        self.index = index
        self.plans = plans
        self.by_store = {plan.store: plan for plan in plans}
        self.stats = stats
        self.sender = sender
        self.log = log
        self.progress = progress  # a bar for an engine's phase, of so many pairs
        self.stop: str | None = None
        self.refusal: RunRefused | None = None
        self.guard: list[str] = []
        self.log_error: str | None = None
        self.tally = Tally()  # the manifest's pairs (adds, updates, checks, in place)
        self.detach_tally = Tally()  # the extras' detaches
        self.engine: Engine | None = None

    async def run(self, due_in: float, started: float) -> SyncResult:
        """List, plan, write. `due_in`: seconds from `started` (the loop's clock) before a
        pair an earlier run left uncertain may be checked."""
        settings = self.settings
        loop = asyncio.get_running_loop()
        self.stop, self.refusal = await list_named_stores(settings, self.io, self.sender,
                                                          self.plans)
        counters = self.sender.counters
        for plan in self.plans:
            plan.plan(self.index, retry_failed=settings.retry_failed)
            counters.chunking_mismatch += plan.chunking_mismatch
            counters.chunking_examples += plan.chunking_examples
        del counters.chunking_examples[3:]
        if self.stop is None and any(plan.writes for plan in self.plans):
            target = self.target
            read_writes(self.by_store, iter_items(self.source, target.owner_column,
                                                  target.group_key), self.source.display)
        self.engine = await self._phases(self.log, due_in - (loop.time() - started), started)
        final_tally(self.tally, self.plans, self.stats)
        return SyncResult(self.plans, self.tally, self.detach_tally, self.stop, self.refusal,
                          self.guard, self.log_error, self.engine)

    # --- steps 2 and 3 ------------------------------------------------------------------------

    async def _phases(self, log: ResultLog, due_in: float, started: float) -> Engine | None:
        """Adds and updates; then the guard and the detaches; then adds a full store refused."""
        if self.stop is not None:
            return None
        work: list[Item] = []
        plans: dict[int, Plan] = {}
        for plan in self.plans:
            store = plan.store
            for file_id in plan.checks:
                plans[pair_key(store, file_id)] = Plan.CHECK
            for file_id in plan.updates:
                plans[pair_key(store, file_id)] = Plan.UPDATE
            work += plan.write_items(plan.checks + plan.updates + plan.adds)
        engine = self._engine(log, work, ListedAttach(self.sender, plans), due_in, started,
                              self.tally)
        in_place = Outcome("already_attached", 200, 0)
        for plan in self.plans:  # pairs the listing shows in place, which the log did not say
            for file_id in plan.to_record:
                digest = plan.digest_at(plan.index_of[file_id])
                engine.record(Item(plan.store, file_id), in_place,
                              digest=None if digest is None else f"{digest:016x}")
        if work:
            await self._run(engine)
        if self.stop is not None:
            return engine
        prunable = self._prunable()
        self.guard = guard_breaches([p for p in prunable if p.to_detach],
                                    self.settings.max_delete)
        if self.guard:
            for plan in prunable:
                if plan.to_detach:
                    plan.not_pruned = "the guard stopped the run before any detach"
            self.stop = "guard"
            return engine
        extras = [Item(plan.store, file_id) for plan in prunable
                  for file_id in plan.detaches + plan.detach_checks]
        checks = {pair_key(p.store, file_id) for p in prunable for file_id in p.detach_checks}
        if extras:
            engine = self._engine(log, extras, ListedDetach(self.sender, checks), due_in,
                                  started, self.detach_tally)
            await self._run(engine)
        for plan in prunable:
            plan.pruned = self.stop is None and plan.detach_failed == 0
            if not plan.pruned:
                plan.not_pruned = ("the run stopped" if self.stop is not None
                                   else f"{plan.detach_failed} detach(es) failed")
        refill = [item for plan in prunable if plan.pruned for item in plan.full]
        refill_failures = [o for plan in prunable if plan.pruned for o in plan.full_outcomes]
        if refill and self.stop is None:
            for plan in prunable:  # counted failed above; sent again now
                for _ in plan.full:
                    plan.failed -= 1
                plan.full = []
            uncount(self.tally, refill_failures)
            engine = self._engine(log, refill, ListedAttach(self.sender, {}), due_in,
                                  started, self.tally)
            await self._run(engine)
        return engine

    def _prunable(self) -> list[StorePlan]:
        """The stores whose detaches may go: listed, and every add and update of this run
        there succeeded (a full store's refused adds excepted: its detaches make room)."""
        prunable = []
        for plan in self.plans:
            if plan.listing_error is not None:
                plan.not_pruned = "its files could not be listed"
            elif plan.failed > len(plan.full):
                plan.not_pruned = (f"{plan.failed - len(plan.full)} add(s) or update(s) "
                                   "failed in this run; the next run prunes it once they "
                                   "succeed")
            else:
                prunable.append(plan)
                if not plan.to_detach:
                    plan.pruned = True
        return prunable

    def _engine(self, log: ResultLog, items: list[Item], operation: Attach | Detach,
                due_in: float, started: float, tally: Tally) -> Engine:
        settings = self.settings
        loop = asyncio.get_running_loop()
        spent = loop.time() - started
        left = None if settings.max_runtime is None else max(0.001,
                                                              settings.max_runtime - spent)
        detaching = isinstance(operation, Detach)

        def count(item: Item, outcome: Outcome) -> None:
            plan = self.by_store[item.owner]
            plan.count(outcome, detaching=detaching)
            if not detaching and is_store_full(outcome):
                plan.full.append(item)
                plan.full_outcomes.append(outcome)

        engine = Engine(
            parts=lambda: iter(items), pairs=len(items), index=self.index, log=log,
            sender=self.sender, owner_column=self.target.owner_column,
            concurrency=settings.concurrency, batch_size=settings.batch_size,
            retry_failed=settings.retry_failed, max_runtime=left,
            on_progress=self.progress(len(items)),
            resume_due_in=max(0.0, due_in), operation=operation, on_outcome=count)
        engine.tally = tally
        tally.pairs += len(items)
        return engine

    async def _run(self, engine: Engine) -> None:
        progress = engine.on_progress
        try:
            result = await engine.run()
        finally:
            close = getattr(progress, "close", None)
            if close is not None:
                close()
        if result.stop is not None and self.stop is None:
            self.stop = result.stop
        if result.refusal is not None and self.refusal is None:
            self.refusal = result.refusal
        if engine.log_error is not None and self.log_error is None:
            self.log_error = str(engine.log_error)
