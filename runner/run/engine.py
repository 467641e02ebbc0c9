"""The run: a stream of work from the manifest (minus what the log says is done), a fixed pool of
workers, the log, and the stop rules (signals, --max-runtime, run-level refusals).

Memory stays flat: items are pulled one at a time from a generator by `concurrency` workers;
nothing holds the manifest (for vector stores, at most STORE_LOOKAHEAD pairs wait aside while
their store is busy: see FreeStoresFirst). Each worker has at most one request in flight, so the
pool's size is the concurrency bound.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator

from runner.errors import LogError
from runner.items import Item, pair_key
from runner.log.resume import ResumeIndex
from runner.log.states import Plan
from runner.log.versions import OldVersion
from runner.log.writer import ResultLog
from runner.manifest import Block
from runner.operations.attach import Attach
from runner.operations.base import Operation
from runner.operations.batches import BatchRunner
from runner.operations.file_delete import FileDeleter
from runner.operations.upload import Uploads
from runner.requests.outcomes import Outcome, RunRefused, Unsettled
from runner.requests.sender import Sender
from runner.requests.targets import ApiError
from runner.run.local import LocalPairs, PairActions
from runner.run.settle import Parked, SettleQueue
from runner.run.signals import stopping_on_signals
from runner.run.tally import RunResult, Tally
from runner.run.work import (
    OPENING_LOOKAHEAD,
    FreeStoresFirst,
    NewBatch,
    Single,
    Work,
    interleave_owners,
    iter_work,
)

SETTLING = ApiError("not_checked", "the run stopped before this uncertain pair could be "
                    "checked (the server may have applied its last write late)", None)
# In-flight requests get this long to finish after a stop (SIGINT/SIGTERM, --max-runtime).
DRAIN_SECONDS = 10.0


class Engine:
    def __init__(
        self,
        *,
        parts: Callable[[], Iterator[Block | Item]],
        pairs: int,
        index: ResumeIndex,
        log: ResultLog,
        sender: Sender,
        owner_column: str,
        concurrency: int,
        batch_size: int,
        retry_failed: bool,
        max_runtime: float | None,
        operation: Operation,
        on_progress: Callable[[Engine], None] | None = None,
        resume_due_in: float = 0.0,
        on_outcome: Callable[[Item, Outcome], None] | None = None,
        settled: int = 0,
        keep_files: bool = False,
        signals: bool = True,
    ) -> None:
        self._parts = parts
        # What the run does to each pair: see runner/operations/base.py.
        self.operation = operation
        self.index = index
        self.log = log
        self.sender = sender
        self.owner_column = owner_column
        self.concurrency = concurrency
        self.batch_size = batch_size
        self.retry_failed = retry_failed
        self.max_runtime = max_runtime
        self.on_progress = on_progress
        # Told of each pair's end once its `done` is written (sync counts per store).
        self.on_outcome = on_outcome
        self.tally = Tally(pairs=pairs)
        # Pairs the manifest's check found done in runs of blocks `parts` passes over unread.
        self.tally.done_earlier = settled
        self.stop_reason: str | None = None
        self.refusal: RunRefused | None = None
        # The log could not be written (a full disk): the run stopped sending at once.
        self.log_error: LogError | None = None
        self._stopping = asyncio.Event()
        self._hard_stop = asyncio.Event()
        self.settle_queue = SettleQueue(self._stopping)
        # File batches add pairs, so they are the attach operation's (its Adder).
        self._batches = (BatchRunner(self.operation.adder, log, owner_column, record=self.record,
                                     park=self.settle_queue.park)
                         if isinstance(self.operation, Attach) else None)
        # Local files are the attach operation's too: uploaded, then attached (SPEC).
        batches = self._batches
        self.local = (LocalPairs(
            Uploads(sender, index.uploads, log, timeout=sender.upload_stall,
                    deleter=FileDeleter(sender, index.uploads, index.versions, log,
                                        keep=keep_files)),
            index, self.tally,
            PairActions(record=self.record, record_in_place=self._record_in_place,
                        attach=self._one, park=self.settle_queue.park,
                        create_batch=batches.create if batches is not None
                        and sender.target.supports_batches else None),
            batch_size=batch_size, retry_failed=retry_failed)
            if isinstance(self.operation, Attach) else None)
        self.started = 0.0
        # Pairs an earlier run left uncertain are checked no sooner than this many seconds
        # from the start (the log's last line plus --timeout and --settle: see commands).
        self.resume_due_in = resume_due_in
        self._resume_due = 0.0
        # False: another engine running beside this one takes SIGINT/SIGTERM (and halts the
        # sender both share).
        self.signals = signals
        # Told of each old version a path pair's new version superseded (sync replaces it
        # at once: run/leftovers.py).
        self.on_superseded: Callable[[OldVersion], None] | None = None

    # --- stopping -----------------------------------------------------------------------------

    def stop(self, reason: str) -> None:
        """Start nothing new. A second stop request (a second signal) stops at once."""
        if self._stopping.is_set():
            if reason.startswith("SIG"):
                self._hard_stop.set()
            return
        self.stop_reason = reason
        self.sender.halt()
        if self.local is not None:
            self.local.release()
        self.settle_queue.stop()  # sets _stopping; workers waiting for work end

    def _log_failed(self, error: LogError) -> None:
        """A line could not be written: send nothing more (SPEC: exit 2, `log-write`). What
        is already in the log stays true: a pair whose `done` was lost keeps its `sent`, so
        the next run checks it before sending anything."""
        if self.log_error is None:
            self.log_error = error
        self.stop("log-write")

    def _refuse(self, refusal: RunRefused) -> None:
        if self.refusal is None:
            self.refusal = refusal
        self.stop("refused")

    # --- workers --------------------------------------------------------------------------------

    async def _worker(self, work: Iterator[Work]) -> None:
        stopping = self._stopping
        while not stopping.is_set():
            unit = await self.settle_queue.take(work)
            if unit is None:
                if self.local is not None:  # uploaded pairs may wait in groups for a batch
                    await self._guarded(self.local.manifest_read())
                return
            if isinstance(unit, Parked):
                await self._guarded(self._check_parked(unit))
            elif isinstance(unit, Single):
                await self._guarded(self._one(unit.item, unit.plan))
            elif self._batches is None:
                raise AssertionError(f"{self.operation.name} makes no file batches")
            elif isinstance(unit, NewBatch):
                await self._guarded(self._batches.create(unit.store, unit.items))
            else:
                await self._guarded(self._batches.follow(unit.store, unit.batch_id, unit.items))

    async def _guarded(self, doing: Awaitable[None]) -> None:
        """A worker's unit of work, under the run's stop rules."""
        try:
            await doing
        except RunRefused as refusal:
            self._refuse(refusal)
        except LogError as error:
            self._log_failed(error)
        if self.sender.breaker_tripped and self.refusal is None:
            self._refuse(RunRefused("breaker", None, None))

    async def _one(self, item: Item, plan: Plan) -> None:
        if plan is Plan.UPLOAD:
            if self.local is None:
                raise AssertionError(f"{self.operation.name} takes no local files")
            await self.local.start(item, None)
            return
        if plan is Plan.CHECK and self._resume_due > asyncio.get_running_loop().time():
            # Left uncertain by a run that may have ended moments ago: the server may not
            # have applied that write yet. Check it when its time comes; go on meanwhile.
            self.settle_queue.park(item, None, self._resume_due)
            return
        # Log "sent" before the first request: a crash after sending must leave the pair
        # uncertain (checked next run), not pending (sent blind).
        op = self.operation.op_of(plan)
        self.log.append_sent(self.owner_column, item, op)
        try:
            outcome = await self.operation.start(item, plan)
        except Unsettled as unsettled:
            self.settle_queue.park(item, unsettled, unsettled.due)
            return
        except RunRefused as refusal:
            self.record(item, Outcome("failed", refusal.status, 1, refusal.error, retryable=True,
                                      op=op))
            raise
        self.record(item, outcome)

    def _record_in_place(self, item: Item) -> None:
        """A path pair the log has in place, its file read again: its `done` records the
        content as read now (not counted again: it was attached earlier)."""
        try:
            self._write_done(item, Outcome("already_attached", None, 0), None)
        except LogError as error:
            self._log_failed(error)

    async def _check_parked(self, parked: Parked) -> None:
        """A parked item's time has come: check it (GET), and send it only if absent."""
        item, unsettled = parked.item, parked.unsettled
        if item.local is not None and not item.file_id and self.local is not None:
            await self.local.start(item, unsettled)
            return
        op = self.operation.name
        if unsettled is None:
            self.log.append_sent(self.owner_column, item, op)
        state = unsettled.state if unsettled is not None else None
        try:
            outcome = await self.operation.settle(item, state)
        except Unsettled as again:
            self.settle_queue.park(item, again, again.due)
            return
        except RunRefused as refusal:
            self.record(item, Outcome("failed", refusal.status, 1, refusal.error,
                                      retryable=True, uncertain=True, op=op))
            raise
        self.record(item, outcome)

    def _unpark_all(self) -> None:
        """The run stopped while items waited for their check: each ends failed, retryable
        and uncertain (SPEC), so the next run checks it first."""
        if self.local is not None:
            self.local.drop_groups()
        for parked in self.settle_queue.drain():
            if parked.unsettled is not None:
                self.record(parked.item, parked.unsettled.outcome())
            else:
                self.record(parked.item, Outcome(
                    "failed", None, 0, SETTLING, retryable=True, uncertain=True,
                    op=self.operation.name))

    def record(self, item: Item, outcome: Outcome, digest: str | None = None) -> None:
        """Write the item's `done` line and count it. `digest`: the attributes' digest, for
        an Item that does not carry them (sync records in-place pairs from its plan)."""
        if outcome.outcome == "failed" and self.refusal is not None and not outcome.retryable:
            # After a run-level stop, a refusal may be the run's fault, not the item's.
            outcome.retryable = True
        try:
            self._write_done(item, outcome, digest)
        except LogError as error:
            self._log_failed(error)
        if item.local is not None:
            if self.local is not None:
                self.local.ended(item, outcome)
            # The path's version in its store, as this run leaves it (run/leftovers.py).
            old = self.index.versions.note_end(pair_key(item.owner, item.file_id), item.owner,
                                               item.file_id, outcome.outcome, item.local.path,
                                               outcome.file_status)
            if old is not None and self.on_superseded is not None:
                self.on_superseded(old)
        self._count(outcome)
        if self.on_outcome is not None:
            self.on_outcome(item, outcome)

    def _write_done(self, item: Item, outcome: Outcome, digest: str | None) -> None:
        if self.log_error is not None:
            return  # the log is failing: the pair keeps its `sent`, and is checked next run
        self.log.append_done(self.owner_column, item, outcome, digest)

    def _count(self, outcome: Outcome) -> None:
        tally = self.tally
        if outcome.outcome == "attached":
            tally.attached += 1
        elif outcome.outcome == "already_attached":
            tally.already_attached += 1
        elif outcome.outcome == "updated":
            tally.updated += 1
        elif outcome.outcome == "detached":
            tally.detached += 1
        elif outcome.outcome == "already_detached":
            tally.already_detached += 1
        else:
            tally.fail(outcome.status, outcome.error)

    # --- the run --------------------------------------------------------------------------------

    async def run(self) -> RunResult:
        loop = asyncio.get_running_loop()
        self.started = loop.time()
        self._resume_due = self.started + self.resume_due_in
        ticker = asyncio.create_task(self._tick()) if self.on_progress else None
        operation = self.operation
        batches = operation.batches and self.sender.target.supports_batches
        work = interleave_owners(
            iter_work(self._parts(), self.index, self.tally, retry_failed=self.retry_failed,
                      batch_size=self.batch_size if batches else 0, operation=operation),
            OPENING_LOOKAHEAD)
        store_limiter = self.sender.store_limiter
        if store_limiter is not None:
            work = FreeStoresFirst(work, store_limiter.ready_in)
        workers = [asyncio.create_task(self._worker(work)) for _ in range(self.concurrency)]
        try:
            with stopping_on_signals(self.stop, max_runtime=self.max_runtime,
                                     signals=self.signals):
                await self._until_done_or_stopped(workers)
        finally:
            if ticker is not None:
                ticker.cancel()
        self._unpark_all()
        if self.refusal is not None and self.log_error is None:
            try:
                self._release_breaker_items()
            except LogError as error:
                self._log_failed(error)
        return RunResult(self.tally, self.stop_reason, self.refusal, loop.time() - self.started)

    async def _until_done_or_stopped(self, workers: list[asyncio.Task[None]]) -> None:
        async def all_done() -> None:
            await asyncio.gather(*workers, return_exceptions=True)

        everything = asyncio.create_task(all_done())
        stop_wait = asyncio.create_task(self._stopping.wait())
        hard = asyncio.create_task(self._hard_stop.wait())
        try:
            await asyncio.wait({everything, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
            if not everything.done():
                # Stopping: let in-flight requests finish, within the drain bound.
                await asyncio.wait({everything, hard}, timeout=DRAIN_SECONDS,
                                   return_when=asyncio.FIRST_COMPLETED)
                # Whatever is still in flight stays uncertain: its "sent" has no "done".
                for task in workers:
                    task.cancel()
            await everything
            for task in workers:
                if not task.cancelled() and (error := task.exception()) is not None:
                    raise error
        finally:
            stop_wait.cancel()
            hard.cancel()

    def _release_breaker_items(self) -> None:
        """Items refused in the breaker's window end retryable (written last, so it stands)."""
        breaker = self.sender.breaker
        if self.refusal is None or self.refusal.kind != "breaker":
            return
        signature = breaker.signature
        status, code = signature if signature else (None, None)
        refused = Outcome("failed", status, 1, ApiError(
            "run_refused", "stopped: the first answers were all the same refusal", code),
            retryable=True, op=self.operation.name)
        for item in breaker.items:
            self.log.append_done(self.owner_column, item, refused)

    # --- work handed in while the run goes on ------------------------------------------------

    def open_feed(self) -> None:
        """Workers wait for `feed` once their work has run out, until `close_feed`."""
        self.settle_queue.open_feed()

    def feed(self, item: Item) -> None:
        """One more pair, planned by the run's operation."""
        plan, _ = self.operation.plan(self.index, item, retry_failed=self.retry_failed)
        self.tally.pairs += 1
        self.settle_queue.push(Single(item, plan))

    def close_feed(self) -> None:
        self.settle_queue.close_feed()

    async def _tick(self) -> None:
        assert self.on_progress is not None
        while True:
            await asyncio.sleep(0.5)
            self.on_progress(self)
