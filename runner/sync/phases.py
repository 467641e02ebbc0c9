"""sync's phases, each over the run's engine and log (SPEC "sync"), each reading the stores'
sets (runner/sync/plan.py) and writing their results (runner/sync/result.py):
A. checks, updates and adds: the attach operation planned from the listing (`ListedAttach`);
B. in the stores where every write of A succeeded (`prunable`), the guard, then the detaches
   (`ListedDetach`) unless the guard stops the run;
C. the adds a full store refused in A, sent again once its detaches made room.
"""

from __future__ import annotations

import asyncio
import itertools
import re
from collections.abc import Awaitable, Callable

from runner.attributes import digest_text
from runner.config import Settings
from runner.items import Item, pair_key
from runner.log.resume import ResumeIndex
from runner.log.states import Plan
from runner.log.writer import ResultLog
from runner.operations.attach import Attach
from runner.operations.detach import Detach
from runner.operations.upload import Uploads
from runner.requests.outcomes import Outcome, RunRefused
from runner.requests.sender import Sender
from runner.run.engine import Engine
from runner.run.leftovers import Leftovers
from runner.run.progress import Progress
from runner.run.tally import Tally
from runner.sync.plan import StorePlan


class ListedAttach(Attach):
    """Attach, planned from the listing: a pair is sent (SEND), or checked first (CHECK: an
    unsettled write in the log), or updated (UPDATE: listed with other attributes)."""

    skips_blocks = False

    def __init__(self, sender: Sender, plans: dict[int, Plan]) -> None:
        super().__init__(sender)
        self._plans = plans

    def plan(self, index: ResumeIndex, item: Item, *,  # type: ignore[override]
             retry_failed: bool) -> tuple[Plan, int | None]:
        if not item.file_id:  # a local file whose content is not uploaded yet
            return Plan.UPLOAD, None
        return self._plans.get(pair_key(item.owner, item.file_id), Plan.SEND), None


class ListedDetach(Detach):
    """Detach the listed files the manifest does not name (CHECK first: an unsettled write)."""

    def __init__(self, sender: Sender, checks: set[int]) -> None:
        super().__init__(sender)
        self._checks = checks

    def plan(self, index: ResumeIndex, item: Item, *,  # type: ignore[override]
             retry_failed: bool) -> tuple[Plan, int | None]:
        key = pair_key(item.owner, item.file_id)
        return (Plan.CHECK if key in self._checks else Plan.SEND), None


# An add refused because the store holds its maximum of files (the real API's wording is not
# documented: any 400 that says the store is full, or names a maximum or limit of files).
_FULL = re.compile(r"\bis full\b|\bmaximum\b.*\bfiles\b|\bfiles?\b.*\blimit\b|too many files",
                   re.IGNORECASE)


def is_store_full(outcome: Outcome) -> bool:
    error = outcome.error
    return (outcome.outcome == "failed" and outcome.status == 400 and error is not None
            and _FULL.search(error.message) is not None)


def guard_breaches(plans: list[StorePlan], max_delete: int | None) -> list[str]:
    """What stops the run before its first detach (SPEC: the guard, or --max-delete)."""
    if max_delete is not None:
        total = sum(plan.sets.to_detach for plan in plans)
        if total > max_delete:
            return [f"{total} detach(es) planned over --max-delete {max_delete} ("
                    + ", ".join(f"{p.store}: {p.sets.to_detach} of {p.listing.listed}"
                                for p in plans if p.sets.to_detach) + ")"]
        return []
    return [f"{plan.store} would detach {plan.sets.to_detach} of its {plan.listing.listed} "
            "listed file(s)" for plan in plans if over_half(plan)]


def over_half(plan: StorePlan) -> bool:
    """SPEC's half-store guard: 2 x detaches > files listed."""
    return 2 * plan.sets.to_detach > plan.listing.listed




class Phases:
    """A sync's writes, once every store is listed and planned: phases A, B and C, and how
    they ended (the first stop, refusal or log error of any phase stops the next)."""

    def __init__(self, settings: Settings, plans: list[StorePlan], *, index: ResumeIndex,
                 log: ResultLog, sender: Sender, owner_column: str,
                 progress: Callable[[int], Progress | None], due_in: float,
                 started: float) -> None:
        self.settings = settings
        self.plans = plans
        self.by_store = {plan.store: plan for plan in plans}
        self.index = index
        self.log = log
        self.sender = sender
        self.owner_column = owner_column
        self.progress = progress  # a bar for a phase of so many pairs (None: no bar)
        self.due_in = due_in  # seconds (from now) before an unsettled pair may be checked
        self.started = started  # the run's start, on the loop's clock
        self.stop: str | None = None  # a signal, "max-runtime", "refused", "log-write", "guard"
        self.refusal: RunRefused | None = None
        self.log_error: str | None = None
        self.guard: list[str] = []  # what stopped the run before its first detach
        self.tally = Tally()  # the manifest's pairs (adds, updates, checks, in place)
        self.detach_tally = Tally()  # the extras' detaches
        self.engine: Engine | None = None  # the last phase's
        # Local files: their uploads (phase A's), replaces and clean-up (after A, after C).
        self.uploads: Uploads | None = None
        self.leftovers: Leftovers | None = None
        # Whether the run meets local files (the log uploaded some, or the manifest has path
        # rows): only then does the run's end ask the log's last word on what this run did,
        # so only then is each outcome folded into the index (a plain sync skips that work).
        self.meets_local_files = bool(
            index.uploads.claimed or index.versions.superseded
            or any(plan.uploads or plan.local for plan in plans))

    async def run(self) -> None:
        """A, then (unless A stopped the run) the guard, B's detaches and C, with the
        replaces beside them all; the clean-up of our unused file objects beside those."""
        try:
            await self._phases()
        finally:
            leftovers = self.leftovers
            if leftovers is not None:
                # The deletes went on beside the detaches; the rest, unless the run stopped.
                if self._halted():
                    leftovers.stop = leftovers.stop or self.stop
                await self._finish(leftovers.finish_deleting())
                leftovers.add_failures(self.tally)

    async def _phases(self) -> None:
        """The replaces (detach each old version once its new one is in place) go on beside
        A, then beside B and C: a store's writes are one queue at 300 a minute, kept full."""
        try:
            await self.add_and_update()
            if self.stop is not None:
                return
            if self.leftovers is not None:
                self.leftovers.replace_the_rest()
            prunable = self.prunable()
            if not self.check_guard(prunable):
                return
            await self.detach(prunable)
            await self.refill(prunable)
        finally:
            if self.leftovers is not None:
                halted = self._halted()
                if halted is not None:
                    self.leftovers.stop_replacing(halted)
                await self._finish(self.leftovers.finish_replacing())

    def _halted(self) -> str | None:
        """What stopped the run, unless it was the guard: the guard stops prunes, not the
        replaces or the deletes of objects already in no store."""
        return None if self.stop == "guard" else self.stop

    def keeps(self, store: str, file_id: str) -> bool:
        """A pair of the manifest."""
        plan = self.by_store.get(store)
        return plan is not None and file_id in plan.pairs.index_of

    def wanted(self, store: str, file_id: str) -> bool:
        """Not to be detached: a pair of the manifest, or any in a store it does not name
        (never written to)."""
        return store not in self.by_store or self.keeps(store, file_id)

    async def _finish(self, doing: Awaitable[None]) -> None:
        """A step of the local files' end; its stop and failures are the run's."""
        leftovers = self.leftovers
        assert leftovers is not None
        await doing
        self.stop = self.stop or leftovers.stop
        self.refusal = self.refusal or leftovers.refusal
        if leftovers.log_error is not None:
            self.log_error = self.log_error or str(leftovers.log_error)
            self.stop = self.stop or "log-write"

    async def add_and_update(self) -> None:
        """Phase A: each store's checks, updates and adds; and a `done` line for each pair
        the listing shows in place that the log did not say was."""
        by_store: list[list[Item]] = []
        plans: dict[int, Plan] = {}
        for plan in self.plans:
            store, sets = plan.store, plan.sets
            for file_id in sets.checks:
                plans[pair_key(store, file_id)] = Plan.CHECK
            for file_id in sets.updates:
                plans[pair_key(store, file_id)] = Plan.UPDATE
            writes = sets.write_items(sets.checks + sets.updates + sets.adds)
            if plan.listing.error is None:
                writes += plan.uploads
            by_store.append(writes)
        # The stores' work taken in turn, not store after store: each store's writes (300 a
        # minute) begin at once, its uploads not waiting for every other store's.
        work = [item for turn in itertools.zip_longest(*by_store) for item in turn
                if item is not None]
        engine = self._engine(work, ListedAttach(self.sender, plans), self.tally)
        if engine.local is not None:
            self.uploads = engine.local.uploads
            for plan in self.plans:  # read when the plan was made (sync/plan.py)
                self.uploads.counts.changed.update(plan.changed)
        in_place = Outcome("already_attached", 200, 0)
        for plan in self.plans:
            pairs = plan.pairs
            for file_id in plan.sets.to_record:
                digest = pairs.digest_at(pairs.index_of[file_id])
                engine.record(plan.local.get(file_id) or Item(plan.store, file_id), in_place,
                              digest=None if digest is None else digest_text(digest))
        if self.uploads is not None and self.meets_local_files:
            leftovers = self.leftovers = Leftovers(
                self.settings, self.uploads, index=self.index, log=self.log,
                sender=self.sender, owner_column=self.owner_column, started=self.started,
                due_in=self.due_in)
            leftovers.start_deleting(self.by_store, self.keeps)
            # Each old version is detached as soon as its new version is in place, beside the
            # adds still going (every pair the manifest keeps is known: `wanted`).
            leftovers.start_replacing(self.wanted)
            engine.on_superseded = leftovers.superseded
        if work:
            await self._run(engine)

    def prunable(self) -> list[StorePlan]:
        """The stores whose detaches may go: listed, and every add and update of this run
        there succeeded (a full store's refused adds excepted: its detaches make room)."""
        prunable = []
        for plan in self.plans:
            result = plan.result
            if plan.listing.error is not None:
                result.not_pruned = "its files could not be listed"
            elif result.failed > len(result.full):
                result.not_pruned = (f"{result.failed - len(result.full)} add(s) or "
                                     "update(s) failed in this run; the next run prunes it "
                                     "once they succeed")
            else:
                prunable.append(plan)
                if not plan.sets.to_detach:
                    result.pruned = True
        return prunable

    def check_guard(self, prunable: list[StorePlan]) -> bool:
        """Phase B's guard, before any detach: False (the run stops) when it is breached."""
        self.guard = guard_breaches([p for p in prunable if p.sets.to_detach],
                                    self.settings.max_delete)
        if not self.guard:
            return True
        for plan in prunable:
            if plan.sets.to_detach:
                plan.result.not_pruned = "the guard stopped the run before any detach"
        self.stop = "guard"
        return False

    async def detach(self, prunable: list[StorePlan]) -> None:
        """Phase B: detach the prunable stores' extras; a store is pruned when all went."""
        extras = [Item(plan.store, file_id) for plan in prunable
                  for file_id in plan.sets.detaches + plan.sets.detach_checks]
        checks = {pair_key(p.store, file_id) for p in prunable
                  for file_id in p.sets.detach_checks}
        if extras:
            engine = self._engine(extras, ListedDetach(self.sender, checks), self.detach_tally)
            await self._run(engine)
        for plan in prunable:
            result = plan.result
            result.pruned = self.stop is None and result.detach_failed == 0
            if not result.pruned:
                result.not_pruned = ("the run stopped" if self.stop is not None
                                     else f"{result.detach_failed} detach(es) failed")

    async def refill(self, prunable: list[StorePlan]) -> None:
        """Phase C: the adds a full store refused in phase A, sent again now that its
        detaches made room (counted failed in A: taken back out first)."""
        refill = [item for plan in prunable if plan.result.pruned
                  for item, _ in plan.result.full]
        if not refill or self.stop is not None:
            return
        refused = [outcome for plan in prunable if plan.result.pruned
                   for _, outcome in plan.result.full]
        for plan in prunable:
            result = plan.result
            result.failed -= len(result.full)
            result.full = []
        for outcome in refused:
            self.tally.unfail(outcome.status, outcome.error)
        engine = self._engine(refill, ListedAttach(self.sender, {}), self.tally)
        await self._run(engine)

    def _engine(self, items: list[Item], operation: Attach | Detach, tally: Tally) -> Engine:
        """The run's engine for one phase, counting into `tally` and each store's result."""
        settings = self.settings
        loop = asyncio.get_running_loop()
        spent = loop.time() - self.started
        left = None if settings.max_runtime is None else max(0.001,
                                                              settings.max_runtime - spent)
        detaching = isinstance(operation, Detach)

        def count(item: Item, outcome: Outcome) -> None:
            if item.file_id and self.meets_local_files:  # asked at the run's end
                self.index.note_done(item.owner, item.file_id, outcome.outcome,
                                     retryable=outcome.retryable, uncertain=outcome.uncertain,
                                     op=outcome.op)
            result = self.by_store[item.owner].result
            result.count(outcome, detaching=detaching)
            if detaching and self.leftovers is not None and outcome.outcome in (
                    "detached", "already_detached"):
                self.leftovers.freed(item.file_id)  # deleted now if ours and in no store
            if not detaching and is_store_full(outcome):
                result.full.append((item, outcome))

        engine = Engine(
            parts=lambda: iter(items), pairs=len(items), index=self.index, log=self.log,
            sender=self.sender, owner_column=self.owner_column,
            concurrency=settings.concurrency, batch_size=settings.batch_size,
            retry_failed=settings.retry_failed, max_runtime=left,
            on_progress=self.progress(len(items)),
            resume_due_in=max(0.0, self.due_in), operation=operation, on_outcome=count,
            keep_files=settings.keep_files)
        engine.tally = tally
        tally.pairs += len(items)
        self.engine = engine
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
